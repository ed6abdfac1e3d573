"""Which backend a command uses: ``--backend``, then ``$SYNMOTION_BACKEND``, then the config file, then
the only installed backend (or ``hunyuan`` when several are installed)."""

from __future__ import annotations

from . import config, plugins
from .errors import EnvironmentProblem, NotFoundError

PREFERRED = "hunyuan"


def default_backend_name(cli_value: str | None = None) -> tuple[str | None, str]:
    value, source = config.setting("backend", cli_value, env="SYNMOTION_BACKEND")
    if value:
        return str(value), source
    names = plugins.backend_names()
    if len(names) == 1:
        return names[0], "the only installed backend"
    if PREFERRED in names:
        return PREFERRED, "preferred when several are installed"
    return None, "no backend installed"


def select_backend(cli_value: str | None, capability: str):
    """Load the chosen backend and check it can do ``capability``; clear errors, never a traceback."""
    name, source = default_backend_name(cli_value)
    if name is None:
        raise NotFoundError("no synmotion backend is installed",
                            hint="install one, e.g. `pip install -e backends/hunyuan` from a synmotion checkout")
    plugin = plugins.load_backend(name)
    if plugin.error:
        raise EnvironmentProblem(f"backend {name!r} (chosen by {source}) failed to load: {plugin.error}",
                                 hint="reinstall it, or pick another with --backend (see `synmotion backends list`)")
    backend = plugin.obj
    if capability not in getattr(backend, "capabilities", ()):
        raise EnvironmentProblem(f"backend {name!r} cannot {capability}",
                                 hint="pick another with --backend (see `synmotion backends list`)")
    return backend


def raise_for_problems(problems) -> None:
    """Turn the first fatal problem a backend's ``check`` reports into the matching error."""
    from .errors import SynMotionError

    fatal = [p for p in problems if p.fatal]
    if not fatal:
        return
    first = fatal[0]
    err = SynMotionError(first.what, hint=first.fix)
    err.exit_code = first.exit_code
    raise err
