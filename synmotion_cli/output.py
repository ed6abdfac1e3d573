"""Output discipline: stdout carries data, stderr carries everything a person reads while waiting.

- ``emit(data, render)``: the command's result. ``--json`` prints it as JSON on stdout; otherwise
  ``render`` draws it (a rich table, a path) on stdout.
- ``info``/``warn``/``debug``: messages on stderr, silenced by ``-q`` (warnings stay), ``debug`` only with ``-v``.
- ``NO_COLOR`` is honoured by rich itself; off a terminal rich prints no colour codes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console


def _data_console() -> Console:
    # Off a terminal (a pipe, a file) tables must not be folded to rich's default 80 columns.
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=240)
    return console


@dataclass
class Output:
    json_mode: bool = False
    quiet: bool = False
    verbose: int = 0
    out: Console = field(default_factory=lambda: _data_console())
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))

    def emit(self, data: Any, render: Callable[[Console], None] | None = None) -> None:
        if self.json_mode or render is None:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
            sys.stdout.flush()
        else:
            render(self.out)

    # Messages carry user paths, prompts and manifest values that may contain brackets: never markup.
    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, highlight=False, markup=False)

    def warn(self, message: str) -> None:
        from rich.markup import escape

        self.err.print(f"[yellow]Warning:[/yellow] {escape(message)}", highlight=False)

    def debug(self, message: str) -> None:
        if self.verbose:
            self.err.print(message, highlight=False, markup=False, style="dim")

    def error(self, message: str, hint: str | None = None) -> None:
        from rich.markup import escape

        self.err.print(f"[bold red]Error:[/bold red] {escape(message)}", highlight=False)
        if hint:
            self.err.print(f"[dim]Hint:[/dim] {escape(hint)}", highlight=False)


_current = Output()


def current() -> Output:
    return _current


def configure(json_mode: bool = False, quiet: bool = False, verbose: int = 0) -> Output:
    global _current
    _current = Output(json_mode=json_mode, quiet=quiet, verbose=verbose)
    return _current
