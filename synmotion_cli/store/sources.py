"""Read-only pack sources: packs that a plugin distribution ships, listed beside the local store.

A distribution registers a factory under the ``synmotion.packs`` entry point group; calling it returns a
``PackSource``. The simplest one is a ``DirectorySource`` over a folder in the store layout shipped as
package data (see docs/pack-format.md, "Shipping packs in a plugin").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..plugins import load_pack_sources
from .store import PackRef, PackStore


@runtime_checkable
class PackSource(Protocol):
    name: str
    description: str

    def list(self) -> list[PackRef]:
        """The packs on offer; each ``PackRef.source`` is this source's name."""
        ...

    def files(self, pack: PackRef) -> dict[str, Path]:
        """Name inside the pack -> readable file, for a pack this source listed."""
        ...


class DirectorySource:
    """Serves a folder laid out like the store (``manifests/``, ``blobs/``), without writing to it."""

    def __init__(self, name: str, root: Path, description: str = ""):
        self.name = name
        self.description = description
        self._store = PackStore(Path(root))  # only its reading methods are used: no lock, no writes

    def list(self) -> list[PackRef]:
        return [replace(pack, source=self.name) for pack in self._store.list()]

    def files(self, pack: PackRef) -> dict[str, Path]:
        return self._store.files(pack)


def plugin_sources() -> tuple[list[PackSource], list[tuple[str, str]]]:
    """Installed pack sources, and (plugin name, problem) for each plugin that failed to load."""
    sources: list[PackSource] = []
    problems: list[tuple[str, str]] = []
    for plugin in load_pack_sources():
        if plugin.error:
            problems.append((plugin.name, plugin.error))
        elif not isinstance(plugin.obj, PackSource):
            problems.append((plugin.name, "its factory did not return a pack source (name, description, list, files)"))
        else:
            sources.append(plugin.obj)
    return sources, problems
