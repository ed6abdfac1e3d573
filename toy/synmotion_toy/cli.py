"""`synmotion toy …`: the toy world's commands, added to the root app through the
``synmotion.commands`` entry point. Rendering modules load only when a command runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from synmotion_cli.commands._common import JSON, out

HELP = """The toy world: small articulated characters (a person, a panda, a zebra …) doing motions, on
backgrounds, in styles; rendered procedurally, so a video model can be trained and judged on any CPU.

[bold]Examples[/bold]

  synmotion toy list

  synmotion toy clips clap ./clips -n 8                    [dim]# 8 clips of a person clapping[/dim]

  synmotion toy clips wave ./fox --subject fox --background night --style pixel
"""

toy_app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode="rich")


def register(app: typer.Typer) -> None:
    """Entry point of ``synmotion.commands``: adds `synmotion toy` to the root app."""
    app.add_typer(toy_app, name="toy", help=HELP,
                  short_help="The toy world: list its subjects and motions, render example clips.")


def _size(text: str) -> tuple[int, int]:
    from synmotion_cli.errors import UsageError

    from .world.render import MAX_SIDE

    m = re.fullmatch(r"\s*(\d+)\s*(?:x\s*(\d+))?\s*", text)
    if not m:
        raise UsageError(f"bad --size {text!r}", hint="write HEIGHTxWIDTH, e.g. --size 64x64")
    height = int(m.group(1))
    width = int(m.group(2) or height)
    if not (16 <= height <= MAX_SIDE and 16 <= width <= MAX_SIDE):
        raise UsageError(f"--size {text} is out of range", hint=f"use 16 to {MAX_SIDE} pixels a side, e.g. --size 128x128")
    return height, width


@toy_app.command("clips", no_args_is_help=True)
def clips(
    motion: str = typer.Argument(..., help="Motion to render, e.g. clap, walk, sit-down (see `synmotion toy list`)."),
    out_dir: Path = typer.Argument(..., help="Folder to write the clips and contact-sheet.png into."),
    count: int = typer.Option(8, "-n", "--count", min=1, max=1000, help="How many clips."),
    subject: str = typer.Option("person", "--subject", "-s", help="Who moves, e.g. person, zebra, robot."),
    background: Optional[str] = typer.Option(None, "--background", "-b", help="grass, night, snow or beach."),
    style: Optional[str] = typer.Option(None, "--style", help="cut-paper, pixel or sketch."),
    seed: int = typer.Option(0, "--seed", help="Seed of the set; clip i uses seed*1000+i."),
    size: str = typer.Option("64x64", "--size", help="HEIGHTxWIDTH in pixels."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, max=1000,
                                         help="Frames per clip (default: the toy base's, 2 s and one more)."),
    fps: Optional[float] = typer.Option(None, "--fps", min=0.1, max=120.0,
                                        help="Frames per second (default: the toy base's, the rate its packs learn at)."),
    force: bool = typer.Option(False, "--force", help="Overwrite clips already in the folder."),
    json_out: bool = JSON,
) -> None:
    """Render example clips of a subject doing a motion, plus a contact sheet; prints the folder.

    Each clip has its own random placement, size, speed and phase; the contact sheet shows one clip per row.

    Example: synmotion toy clips clap ./clips -n 8 --subject panda --style sketch
    """
    from synmotion_cli.prompts import DEFAULT_SUBJECT, clips_prompt

    from .clips import write_clips
    from .world import MOTIONS, SUBJECTS

    o = out(json_out)
    height, width = _size(size)
    result = write_clips(motion, out_dir, count=count, subject=subject, background=background, style=style,
                         seed=seed, height=height, width=width, frames=frames, fps=fps, force=force)
    frames, fps = result.frames, result.fps
    o.info(f'wrote {len(result.clips)} clips of "{result.prompt}" ({frames} frames, {height}x{width}, {fps:g} fps) '
           f"and {result.sheet.name}")
    # `learn` reads clips as "a person <the motion's name, in the third person>" unless told otherwise, so
    # say which flags make that the clips' own prompt ("handstand" alone would read "a person handstands").
    motion, phrase = MOTIONS[result.motion], SUBJECTS[result.subject].phrase
    flags = [] if clips_prompt(result.motion).motion_form == motion.third_person else [f'--trigger "{motion.verb}"']
    if phrase != DEFAULT_SUBJECT:
        flags.append(f'--subject "{phrase}"')
    if flags:
        o.info(f"learn from them with {' '.join(flags)}")
    data = {"folder": str(result.folder), "motion": result.motion, "subject": result.subject, "prompt": result.prompt,
            "clips": [str(p) for p in result.clips], "seeds": result.seeds, "sheet": str(result.sheet),
            "frames": frames, "height": height, "width": width, "fps": fps}
    o.emit(data, lambda c: c.print(str(result.folder), markup=False, highlight=False))


@toy_app.command("list")
def list_(json_out: bool = JSON) -> None:
    """List the toy world's subjects, motions, backgrounds and styles.

    Base motions are those the toy base is trained on; custom motions it never sees.

    Example: synmotion toy list --json
    """
    from .world import BACKGROUNDS, STYLES, SUBJECTS, load_motions

    o = out(json_out)
    motions = load_motions()
    data = {
        "subjects": [{"name": k, "phrase": s.phrase} for k, s in SUBJECTS.items()],
        "motions": [{"name": k, "set": m.set, "verb": m.verb, "third_person": m.third_person,
                     "duration": m.duration, "cyclic": m.cyclic, "description": m.description, "source": m.source}
                    for k, m in motions.items()],
        "backgrounds": [{"name": k, "phrase": p} for k, p in BACKGROUNDS.items()],
        "styles": [{"name": k, "phrase": p} for k, p in STYLES.items()],
    }

    def render(console):
        from rich.markup import escape
        from rich.table import Table

        console.print("[bold]subjects[/bold]  " + escape(", ".join(s["name"] for s in data["subjects"])))
        table = Table(box=None, header_style="bold")
        for col in ("MOTION", "SET", "PROMPT", "SECONDS", "MOVEMENT"):
            table.add_column(col)
        for m in data["motions"]:
            table.add_row(escape(m["name"]), m["set"], escape(f"… {m['third_person']}"),
                          f"{m['duration']:g}" + ("" if m["cyclic"] else " once"), escape(m["description"]))
        console.print(table)
        console.print("[bold]backgrounds[/bold]  " + escape(", ".join(f"{b['name']} ({b['phrase']})" for b in data["backgrounds"])))
        console.print("[bold]styles[/bold]  " + escape(", ".join(f"{s['name']} ({s['phrase']})" for s in data["styles"])))

    o.emit(data, render)


# The toy base's commands live beside the world's (they load torch only when they run).
from .cli_base import add_commands  # noqa: E402
from .cli_bench import add_commands as add_bench_commands  # noqa: E402

add_commands(toy_app)
add_bench_commands(toy_app)


@toy_app.command("judge", no_args_is_help=True)
def judge(
    videos: list[Path] = typer.Argument(..., help="Videos (or folders of frames) to judge."),
    json_out: bool = JSON,
) -> None:
    """Judge toy-world videos: which motion, subject, background and style each one shows.

    Each video is read at 8 fps and 64x64, for up to 17 frames (a shorter one holds its last frame). Needs torch.

    Example: synmotion toy judge ./clips/clap-0.mp4 out.mp4 --json
    """
    from synmotion_cli.errors import EnvironmentProblem

    o = out(json_out)
    try:
        from .judges import load_judges, read_video
    except ImportError as e:
        raise EnvironmentProblem(f"the judges need torch, which cannot be imported ({e})",
                                 hint="pip install torch") from None
    judges = load_judges()
    clips = [read_video(path) for path in videos]
    data = [{"video": str(path), **j.to_dict()} for path, j in zip(videos, judges.judge_batch(clips))]

    def render(console):
        from rich.markup import escape
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for col in ("VIDEO", "MOTION", "P", "SUBJECT", "P", "BACKGROUND", "STYLE"):
            table.add_column(col)
        for d in data:
            table.add_row(escape(d["video"]), d["motion"], f"{d['motion_p'][d['motion']]:.2f}", d["subject"],
                          f"{d['subject_p'][d['subject']]:.2f}", d["background"], d["style"])
        console.print(table)

    o.emit(data, render)


@toy_app.command("train-judges", hidden=True)
def train_judges(
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for the weights (default: the shipped ones)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the training data, initialisation and degradations."),
    json_out: bool = JSON,
) -> None:
    """Train the judges on rendered clips and measure them on held-out renders (8 to 12 minutes on 2 cores).

    Example: synmotion toy train-judges --out ./judges --seed 0
    """
    from synmotion_cli.reporting import ConsoleReporter

    from .judges.score import WEIGHTS_DIR
    from .judges.train import TrainConfig, save, train

    o = out(json_out)
    model, record = train(TrainConfig(seed=seed), ConsoleReporter(o))
    folder = save(model, record, out_dir or WEIGHTS_DIR)
    held = record["heldout"]
    for kind in ("clean", "augmented"):
        o.info(f"held-out accuracy ({kind}): " + ", ".join(f"{h} {a:.1%}" for h, a in held[kind].items()))
    o.info(f"trained in {record['training']['total_seconds']:.0f} s")
    o.emit({"folder": str(folder), **{k: held[k] for k in ("clean", "augmented")},
            "seconds": record["training"]["total_seconds"]},
           lambda c: c.print(str(folder), markup=False, highlight=False))
