"""The root ``synmotion`` command: global options, sub-command registration and the error boundary."""

from __future__ import annotations

import gc
import os
import sys
import traceback
from typing import Optional

import typer

from . import __version__, output
from .commands import backends as backends_cmd
from .commands import doctor as doctor_cmd
from .commands import gen as gen_cmd
from .commands import inspect as inspect_cmd
from .commands import learn as learn_cmd
from .commands import packs as packs_cmd
from .errors import ExitCode, SynMotionError

HELP = """Teach a video model a new motion from a few clips, then make any subject perform it.

[bold]Examples[/bold]

  synmotion learn clap ./clips/                [dim]# clips of clapping -> pack "clap"[/dim]

  synmotion gen "a panda claps"                [dim]# text-to-video with it[/dim]

  synmotion gen --image cat.png "a cat claps"  [dim]# image-to-video with it[/dim]

  synmotion packs list                         [dim]# the local pack registry[/dim]

  synmotion doctor                             [dim]# what this machine can run[/dim]

Exit codes: 0 ok, 1 unexpected, 2 usage or bad input, 3 not found, 4 integrity, 5 environment, 130 interrupted.
"""

app = typer.Typer(
    name="synmotion",
    help=HELP,
    rich_markup_mode="rich",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"synmotion {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only data on stdout; warnings and errors on stderr."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More detail on stderr (repeatable)."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    output.configure(quiet=quiet, verbose=verbose)


app.command("learn", help=learn_cmd.HELP, short_help="Learn a motion from a few clips into a motion pack.", no_args_is_help=True)(learn_cmd.learn)
app.command("gen", help=gen_cmd.HELP, short_help="Generate a video with motion packs (text or image to video).", no_args_is_help=True)(gen_cmd.gen)
app.command("inspect", help=inspect_cmd.HELP, short_help="Read the metadata and watermark of a generated video.", no_args_is_help=True)(inspect_cmd.inspect)
app.add_typer(packs_cmd.app, name="packs", short_help="Manage motion packs: list, show, rm, verify, export, import, path, gc.")
app.add_typer(backends_cmd.app, name="backends", short_help="List backend plugins and their capabilities.")
app.command("doctor", help=doctor_cmd.HELP, short_help="Check python, torch, CUDA, ffmpeg, cached bases and the store.")(doctor_cmd.doctor)


def _register_plugin_commands() -> None:
    """Distributions may add command groups (entry point group ``synmotion.commands``): each entry point is
    a callable taking the root Typer app. A plugin that fails to load is skipped with a warning."""
    from .plugins import COMMANDS_GROUP, _entry_points

    for name, ep in _entry_points(COMMANDS_GROUP).items():
        try:
            ep.load()(app)
        except Exception as e:  # a broken plugin must not take the whole CLI down
            output.current().warn(f"command plugin {name!r} failed to load: {type(e).__name__}: {e}")


_register_plugin_commands()


def _is_click_exception(e: BaseException) -> bool:
    # Typer vendors its own click; its exceptions are recognised by shape rather than imported by path.
    return hasattr(e, "show") and hasattr(e, "exit_code") and type(e).__name__ not in ("Exit",)


GLOBAL_FLAGS = {"-q", "--quiet", "-v", "-vv", "-vvv", "--verbose"}


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Accept `-q`/`-v` anywhere (`synmotion learn … -q`), not only before the command name."""
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    flags = [a for a in head if a in GLOBAL_FLAGS]
    return flags + [a for a in head if a not in GLOBAL_FLAGS] + tail


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and maps every failure to one line on stderr and an exit code."""
    command = typer.main.get_command(app)
    argv = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    try:
        result = command.main(args=argv, prog_name="synmotion", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except SynMotionError as e:
        out = output.current()
        out.error(e.message, e.hint)
        if os.environ.get("SYNMOTION_DEBUG"):
            traceback.print_exc()
        code = e.exit_code
    except KeyboardInterrupt:
        output.current().error("interrupted")
        code = ExitCode.INTERRUPTED
    except Exception as e:
        name = type(e).__name__
        if name == "Abort":  # click turns Ctrl-C at a prompt into Abort
            output.current().error("interrupted")
            code = ExitCode.INTERRUPTED
        elif _is_click_exception(e):
            e.show()
            code = e.exit_code
        else:
            out = output.current()
            if os.environ.get("SYNMOTION_DEBUG"):
                traceback.print_exc()
            out.error(f"unexpected {name}: {e}", hint="run again with SYNMOTION_DEBUG=1 for the traceback, and report it")
            code = ExitCode.UNEXPECTED
    sys.stdout.flush()
    return code


def run() -> None:
    code = main()
    # Everything is written and closed by now. Freezing the heap spares the interpreter's last garbage
    # collection over the millions of objects torch, diffusers and transformers create at import: over a
    # second of a `gen` on a 2-core machine (finalisers and atexit handlers still run).
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
