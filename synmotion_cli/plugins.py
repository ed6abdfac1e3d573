"""Entry-point plugins, in the style of llm's: a third-party distribution adds a backend or a pack source
by declaring an entry point; nothing is registered by hand.

- ``synmotion.backends``: ``name = "package.module:Factory"``; calling ``Factory()`` returns a backend
  object that satisfies ``synmotion_cli.backend.Backend``.
- ``synmotion.packs``: ``name = "package.module:factory"``; calling it returns a read-only pack source
  (see ``synmotion_cli.store.sources``).
- ``synmotion.commands``: ``name = "package.module:register"``; ``register(app)`` adds commands to the root
  Typer app (the toy world's ``synmotion toy …`` arrives this way). It must not import torch.

Plugins are loaded lazily and one at a time, so a broken plugin is reported by name instead of breaking
every command.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import NotFoundError

BACKENDS_GROUP = "synmotion.backends"
PACKS_GROUP = "synmotion.packs"
COMMANDS_GROUP = "synmotion.commands"


@dataclass
class LoadedPlugin:
    name: str
    entry_point: EntryPoint
    obj: Any = None
    error: str | None = None

    @property
    def distribution(self) -> str:
        dist = getattr(self.entry_point, "dist", None)
        return f"{dist.name} {dist.version}" if dist is not None else "?"


def _entry_points(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)  # first on sys.path wins, as for imports
    return dict(sorted(found.items()))


def _load(ep: EntryPoint) -> LoadedPlugin:
    plugin = LoadedPlugin(ep.name, ep)
    try:
        plugin.obj = ep.load()()
    except Exception as e:  # a third-party plugin may fail in any way; report it, don't crash
        plugin.error = f"{type(e).__name__}: {e}"
    return plugin


def backend_names() -> list[str]:
    return list(_entry_points(BACKENDS_GROUP))


def load_backends() -> list[LoadedPlugin]:
    return [_load(ep) for ep in _entry_points(BACKENDS_GROUP).values()]


def load_backend(name: str) -> LoadedPlugin:
    eps = _entry_points(BACKENDS_GROUP)
    if name not in eps:
        known = ", ".join(eps) or "none installed"
        raise NotFoundError(f"no backend named {name!r} (installed: {known})",
                            hint="see `synmotion backends list`; install a backend distribution such as synmotion-hunyuan")
    return _load(eps[name])


def load_pack_sources() -> list[LoadedPlugin]:
    return [_load(ep) for ep in _entry_points(PACKS_GROUP).values()]
