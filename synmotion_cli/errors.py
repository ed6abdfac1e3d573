"""Errors the CLI turns into one clear line and a documented exit code.

Every failure a user can cause or fix raises a ``SynMotionError`` subclass; the error boundary in
``app.main`` prints ``Error: <message>`` plus an optional ``hint`` (what to do next) on stderr and exits
with the class's code. Anything else is a bug: exit 1 with a pointer to ``SYNMOTION_DEBUG=1``.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    NOT_FOUND = 3
    INTEGRITY = 4
    ENVIRONMENT = 5
    INTERRUPTED = 130


class SynMotionError(Exception):
    exit_code = ExitCode.UNEXPECTED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(SynMotionError):
    """The command line or an input file is wrong in a way the user can fix."""

    exit_code = ExitCode.USAGE


class NotFoundError(SynMotionError):
    """A pack, file, base model or backend that was named does not exist."""

    exit_code = ExitCode.NOT_FOUND


class IntegrityError(SynMotionError):
    """Stored or imported data does not match its recorded digest, size or schema."""

    exit_code = ExitCode.INTEGRITY


class EnvironmentProblem(SynMotionError):
    """The machine lacks something: CUDA, memory, disk, ffmpeg, a free lock."""

    exit_code = ExitCode.ENVIRONMENT


class Interrupted(SynMotionError):
    """Ctrl-C, after whatever could be saved was saved."""

    exit_code = ExitCode.INTERRUPTED


class MediaError(UsageError):
    """A clip or image cannot be read. Carries every bad file so a folder is reported in one go."""

    def __init__(self, message: str, bad_files: list[tuple[str, str]] | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.bad_files = bad_files or []
