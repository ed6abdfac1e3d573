"""How backends report progress without printing.

Backends receive a ``Reporter`` and call ``stage``/``advance``/``message``/``artifact``. They never print,
so the same code runs under the CLI, under ``accelerate launch`` and in tests (``RecordingReporter``).
The CLI's ``ConsoleReporter`` draws a rich progress bar on a terminal and plain periodic lines elsewhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


class Reporter:
    """The interface backends talk to. The base class ignores everything."""

    def stage(self, name: str, total: int | None = None, done: int = 0) -> None:
        """A new phase begins (``encode clips``, ``train``, ``sample``), ``total`` steps long if known."""

    def advance(self, steps: int = 1, **metrics: float) -> None:
        """``steps`` more steps of the current stage are done; ``metrics`` (loss …) are shown beside it."""

    def message(self, text: str) -> None:
        """A line a person should read (which base was chosen and why, where a checkpoint went)."""

    def debug(self, text: str) -> None:
        """Detail for ``-v``."""

    def artifact(self, kind: str, path: str) -> None:
        """A file was written (``checkpoint``, ``preview``, ``video``)."""

    def close(self) -> None:
        """The current stage is over."""


@dataclass
class RecordingReporter(Reporter):
    """Keeps every event; used by tests and by callers that want the history."""

    events: list[tuple[str, Any]] = field(default_factory=list)

    def stage(self, name, total=None, done=0):
        self.events.append(("stage", (name, total, done)))

    def advance(self, steps=1, **metrics):
        self.events.append(("advance", (steps, metrics)))

    def message(self, text):
        self.events.append(("message", text))

    def debug(self, text):
        self.events.append(("debug", text))

    def artifact(self, kind, path):
        self.events.append(("artifact", (kind, path)))

    def messages(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "message"]


def _fmt_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


class ConsoleReporter(Reporter):
    """Progress on stderr: a live bar on a terminal, a plain line every ``interval`` seconds otherwise."""

    def __init__(self, output, interval: float = 5.0):
        self.output = output
        self.interval = interval
        self.live = output.err.is_terminal and not output.quiet
        self._progress = None
        self._task = None
        self._name = ""
        self._total: int | None = None
        self._done = 0
        self._start = 0.0
        self._last_line = 0.0
        self._metrics: dict[str, float] = {}

    def stage(self, name, total=None, done=0):
        self.close()
        self._name, self._total, self._done = name, total, done
        self._start = self._last_line = time.monotonic()
        self._metrics = {}
        if self.live:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"),
                console=self.output.err, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(name, total=total, completed=done, rate="", metrics="")
        elif not self.output.quiet:
            self.output.info(f"{name}: started" + (f" ({total} steps)" if total else ""))

    def advance(self, steps=1, **metrics):
        self._done += steps
        self._metrics.update(metrics)
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = f"{self._done / elapsed:.2f} it/s"
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, rate=rate, metrics=_fmt_metrics(self._metrics))
            return
        now = time.monotonic()
        finished = self._total is not None and self._done >= self._total
        if self.output.quiet or (now - self._last_line < self.interval and not finished):
            return
        self._last_line = now
        total = f"/{self._total}" if self._total else ""
        eta = ""
        if self._total and self._done:
            eta = f" eta {max(self._total - self._done, 0) * elapsed / self._done:.0f}s"
        self.output.info(f"{self._name}: {self._done}{total} {rate}{eta} {_fmt_metrics(self._metrics)}".rstrip())

    def message(self, text):
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, markup=False)
        else:
            self.output.info(text)

    def debug(self, text):
        self.output.debug(text)

    def artifact(self, kind, path):
        if kind == "preview":  # previews are for people to look at while training runs
            self.message(f"preview: {path}")
        else:
            self.output.debug(f"{kind}: {path}")

    def close(self):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
