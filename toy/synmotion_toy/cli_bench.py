"""`synmotion toy bench`: the paper's evaluation and ablations on the toy base (see ``bench``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from synmotion_cli.backend import MAX_PACK_WEIGHT
from synmotion_cli.commands._common import JSON, out

HELP = """Measure the method on the toy base: for each custom motion, learn a pack from clips of a person
under every ablation row, generate the motion on subjects never in the clips, and judge it.

Reports motion and subject accuracy, dynamics, subject consistency and motion similarity to the clips
(mean ± spread over sampling seeds) per row, the same with a background and style added to the prompt,
and writes results.json plus one contact sheet per row into the output folder. Every row uses the same
clips, seeds and step budget.

[bold]Examples[/bold]

  synmotion toy bench --quick                     [dim]# 2 motions, 7 rows, 2 seeds: about 10 minutes on 2 cores[/dim]

  synmotion toy bench -r full -r no-strategy -m clap --seeds 4

  synmotion toy bench --json > bench.json         [dim]# everything: about 45 minutes on 2 cores[/dim]
"""

# Subjects generated in the bench, in order of use: unlike each other in shape and colour, never "person".
SUBJECT_ORDER = ("panda", "zebra", "fox", "robot", "frog", "penguin", "cat", "bear", "rabbit", "lion", "crocodile")
# --quick's motions: named, so motions a user adds to the toy world never change what --quick measures.
QUICK_MOTIONS = ("bow", "clap")
EXTENSIONS = (("night", "cut-paper"), ("snow", "pixel"), ("beach", "sketch"), ("grass", "pixel"))


def bench(
    out_dir: Path = typer.Option(Path("synmotion-bench"), "--out", "-o", help="Folder for results.json and the sheets."),
    quick: bool = typer.Option(False, "--quick", help="Two motions (bow, clap), the paper's seven rows, 3 subjects, 2 seeds, "
                                                           "one background/style prompt per motion."),
    motion: Optional[List[str]] = typer.Option(None, "--motion", "-m", help="Custom motion(s) to learn (default: all)."),
    row: Optional[List[str]] = typer.Option(None, "--row", "-r", help="Row(s) to run (default: all; see --list-rows)."),
    subjects: Optional[int] = typer.Option(None, "--subjects", min=1, max=len(SUBJECT_ORDER),
                                           help="How many subjects to generate (default 5; quick 3)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Sampling seeds per video (default 3; quick 2)."),
    clips: int = typer.Option(8, "--clips", "-n", min=1, help="Reference clips per motion."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Learn steps for every row (the base's default)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the clips and of learning."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-O",
                                               help="Learn option key=value for every row (repeatable). It wins over "
                                                    "a row's preset; a row's other settings win over it."),
    gen_option: Optional[List[str]] = typer.Option(None, "--gen-option", "-G",
                                                   help="Generation setting key=value for every row (repeatable), "
                                                        "as `gen -O` takes it, e.g. transfer=3. Rows apply packs "
                                                        "the paper's way (transfer=0) unless told."),
    pack_weight: Optional[float] = typer.Option(None, "--pack-weight", min=0.0, max=MAX_PACK_WEIGHT,
                                                help="Every pack's weight at generation, as `gen --pack NAME:W` "
                                                     "(default: the base's, as `gen --pack NAME`)."),
    extensions: bool = typer.Option(True, "--extensions/--no-extensions",
                                    help="Also judge prompts with a background and a style."),
    list_rows: bool = typer.Option(False, "--list-rows", help="List the rows and exit."),
    json_out: bool = JSON,
) -> None:
    from synmotion_cli.commands._options import parse_options
    from synmotion_cli.errors import UsageError
    from synmotion_hunyuan.settings import VIDEO_SHAPE, GenSettings, build

    from .bench import QUICK_ROWS, ROWS, BenchPlan, row_by_name

    o = out(json_out)
    if list_rows:
        o.emit([{"row": r.name, "about": r.about, "paper": r.paper, "options": r.options} for r in ROWS],
               lambda c: [c.print(f"{r.name:22} {r.about}", markup=False, highlight=False) for r in ROWS])
        return
    from .world import CUSTOM_MOTIONS
    from .world.names import motion_key

    motions = [motion_key(m) for m in motion] if motion else list(QUICK_MOTIONS) if quick else list(CUSTOM_MOTIONS)
    not_custom = [m for m in motions if m not in CUSTOM_MOTIONS]
    if not_custom:
        raise UsageError(f"{not_custom[0]} is a base motion: the toy base was trained on it",
                         hint=f"custom motions: {', '.join(CUSTOM_MOTIONS)}")
    rows = [row_by_name(r) for r in row] if row else [row_by_name(r) for r in QUICK_ROWS] if quick else list(ROWS)
    if not row and any(r.i2v for r in rows) and not _i2v_base_built(o):
        rows = [r for r in rows if not r.i2v]
    gen_options = parse_options(gen_option)
    fixed = [k for k in VIDEO_SHAPE if k in gen_options]
    if fixed:
        raise UsageError(f"the bench generates at the toy world's video size: -G {fixed[0]} cannot change it",
                         hint="the judges and the condition images are made for it")
    plan = BenchPlan(motions=motions, rows=rows, subjects=list(SUBJECT_ORDER[:subjects or (3 if quick else 5)]),
                     seeds=seeds or (2 if quick else 3), clips=clips, steps=steps, seed=seed,
                     options=parse_options(option), gen_options=gen_options, pack_weight=pack_weight,
                     extensions=list(EXTENSIONS) if extensions else [], extension_subjects=1 if quick else None)
    build(GenSettings, plan.generation())   # what every row runs with: a bad setting fails here, before any learning
    runs = len(plan.motions) * sum(r.options is not None for r in plan.rows)
    o.info(f"{len(plan.rows)} rows x {len(plan.motions)} motions ({runs} packs to learn), {len(plan.subjects)} subjects, "
           f"{plan.seeds} seeds; writing to {out_dir}")
    data = _run(plan, out_dir, o)
    o.info(f"done in {data['seconds']:.0f}s: {out_dir / 'results.json'}")
    o.emit(data, lambda c: render_table(c, data))


def _run(plan, out_dir, o) -> dict:
    import os
    import tempfile

    from synmotion_cli.reporting import ConsoleReporter

    from .bench import run_bench

    # Packs go to a private store inside the output folder, never the user's.
    out_dir.mkdir(parents=True, exist_ok=True)
    home = tempfile.mkdtemp(prefix="store-", dir=out_dir)
    previous = os.environ.get("SYNMOTION_HOME")
    os.environ["SYNMOTION_HOME"] = home
    reporter = ConsoleReporter(o)
    try:
        return run_bench(plan, out_dir, reporter)
    finally:
        reporter.close()
        if previous is None:
            del os.environ["SYNMOTION_HOME"]
        else:
            os.environ["SYNMOTION_HOME"] = previous


def _i2v_base_built(o) -> bool:
    """Whether the toy image-to-video base is there; without it the I2V rows are left out (said on stderr)."""
    from synmotion_cli.errors import NotFoundError

    from .base.i2v import weights_dir

    try:
        weights_dir()
        return True
    except NotFoundError as e:
        o.warn(f"leaving out the image-to-video rows: {e}")
        return False


def _pm(m: dict, percent: bool) -> str:
    if m["mean"] != m["mean"]:
        return "-"
    if percent:
        return f"{m['mean']:.0%} ± {m['std']:.0%}"
    return f"{m['mean']:.2f} ± {m['std']:.2f}"


def render_table(console, data: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, header_style="bold", title="toy MotionBench (mean ± spread over seeds)")
    cols = ("ROW", "MOTION ACC", "SUBJECT ACC", "DYNAMICS", "SUBJ. CONSIST.", "MOTION SIM.", "LEARN S", "PACK W.")
    ext = any(r["extension"] for r in data["rows"].values())
    i2v = any(r.get("i2v") for r in data["rows"].values())
    if i2v:
        cols += ("IMAGE CONSIST.",)
    if ext:
        cols += ("EXT: MOTION", "SUBJECT", "BACKGROUND", "STYLE")
    for col in cols:
        table.add_column(col)
    for name, r in data["rows"].items():
        o = r["overall"]
        cells = [escape(name), _pm(o["motion_acc"], True), _pm(o["subject_acc"], True), _pm(o["dynamics"], False),
                 _pm(o["subject_consistency"], False), _pm(o["motion_similarity"], False),
                 f"{r['learn_s']:.0f}" if r["learn_s"] else "-",
                 f"{r['pack_weight']:g}" if r.get("pack_weight") is not None else "-"]
        if i2v:
            cells.append(_pm(o["image_consistency"], False) if "image_consistency" in o else "-")
        if ext:
            e = r["extension"]
            cells += ([f"{e[k]['mean']:.0%}" for k in ("motion_acc", "subject_acc", "background_acc", "style_acc")]
                      if e else ["-"] * 4)
        table.add_row(*cells)
    console.print(table)
    ref = ", ".join(f"{m} {v['dynamics']:.2f}" for m, v in data["reference"].items())
    console.print(f"reference clips' dynamics: {escape(ref)}", highlight=False)
    per = Table(box=None, header_style="bold", title="motion accuracy per motion")
    motions = list(data["plan"]["motions"])
    per.add_column("ROW")
    for m in motions:
        per.add_column(m.upper())
    for name, r in data["rows"].items():
        per.add_row(escape(name), *[f"{r['per_motion'][m]['motion_acc']:.0%}" for m in motions])
    console.print(per)


def add_commands(toy_app: typer.Typer) -> None:
    toy_app.command("bench", help=HELP, short_help="The paper's evaluation and ablations on the toy base.")(bench)
