"""Options and helpers shared by several commands."""

from __future__ import annotations

import typer

from .. import output

JSON = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


def out(json_mode: bool = False) -> output.Output:
    o = output.current()
    o.json_mode = json_mode
    return o


def open_store():
    from ..paths import home
    from ..store import PackStore

    return PackStore(home())


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def confirm(question: str, yes: bool) -> None:
    """Ask before destroying something; refuse (exit 2) when nobody can answer."""
    import sys

    from ..errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} needs confirmation", hint="pass --yes to confirm without a prompt")
    if not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)
