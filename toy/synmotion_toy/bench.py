"""The toy MotionBench: the paper's evaluation and ablations (main table, Tables 3 and 4) in miniature.

For every custom motion, clips of "a person <motion>" are rendered once; every row learns its pack from
the same clips, with the same seed and step budget, then generates the motion on subjects never in the
clips over several sampling seeds. The judges give motion and subject accuracy; ``metrics`` gives
dynamics, subject consistency and motion similarity to the clips. Each measure is averaged per seed,
and the spread is over seeds. An extension set adds backgrounds and styles to the prompt
("a panda claps at night, cut paper style") and asks all four judges.

Everything runs in one process with the base loaded once, through the same code as `synmotion learn`
and `synmotion gen` (see ``evaluate``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import metrics

MEASURES = ("motion_acc", "subject_acc", "dynamics", "subject_consistency", "motion_similarity")
I2V_MEASURES = MEASURES + ("image_consistency",)
CONDITION_MOTION = "stand-still"  # I2V condition images: a still of the subject standing
EXTENSION_MEASURES = ("motion_acc", "subject_acc", "background_acc", "style_acc")


@dataclass(frozen=True)
class Row:
    name: str
    options: dict | None          # learn options (-O); None: nothing is learned, the plain base generates
    about: str
    paper: str = ""               # the matching row of the paper, if any
    i2v: bool = False             # image-to-video: the toy-i2v base, conditioned on a still of the subject


# Every learning row names its preset: the toy base's own default strategy (joint) is not the paper's.
ROWS = (
    Row("base", None, "the toy base, no pack", "Table 3: Baseline"),
    Row("motion-residue", {"preset": "motion-residue"}, "+ motion residue e_mot", "Table 3: B + e_mot"),
    Row("residues", {"preset": "residues"}, "+ subject residue e_sub", "Table 3: B + e_mot + e_sub"),
    Row("residues+refiner", {"preset": "residues+refiner"}, "+ embedding refiner R", "Table 3: B + e_mot + e_sub + R"),
    Row("full", {"preset": "full"}, "+ motion adapter A: the full method", "Table 3/4: SynMotion"),
    Row("no-strategy", {"preset": "no-strategy"}, "full method, plain joint training (no SPV)",
        "Table 4: w/o training strategy"),
    Row("lora-only", {"preset": "lora-only"}, "LoRA adapter only (no embeddings)", "Table 4: B + LoRA only"),
    Row("spv-subject+refiner", {"preset": "full", "spv_updates": "subject+refiner"},
        "full, SPV steps also train the refiner"),
    Row("alpha-0.5", {"preset": "full", "alpha": 0.5}, "full, half the steps on SPV clips"),
    Row("alpha-0.9", {"preset": "full", "alpha": 0.9}, "full, a tenth of the steps on SPV clips"),
    Row("i2v-base", None, "image-to-video base, no pack", "Supp. Table 1: HunyuanVideo-I2V", i2v=True),
    Row("i2v", {"preset": "full"}, "the full method's image-to-video variant", "Supp. Table 1: SynMotion (I2V)",
        i2v=True),
)
QUICK_ROWS = ("base", "motion-residue", "residues", "residues+refiner", "full", "no-strategy", "lora-only")


# The paper applies a pack to the asked prompt itself. The bench's rows are the paper's, so they generate
# that way whatever the base's default (the toy base guides with motion transfer); `-G transfer=3` measures that.
PAPER_GENERATION = {"transfer": 0.0}


@dataclass
class BenchPlan:
    motions: list[str]
    rows: list[Row]
    subjects: list[str]              # who performs the motion in generated videos (never "person")
    seeds: int = 3                   # sampling seeds per (motion, subject)
    clips: int = 8                   # reference clips per motion
    steps: int | None = None         # learn steps for every row (None: the base's default)
    seed: int = 0                    # seed of the clips and of learning
    options: dict = field(default_factory=dict)   # learn options for every row: beat a row's preset, not its keys
    extensions: list[tuple[str, str]] = field(default_factory=list)   # (background, style) pairs
    extension_subjects: int | None = None   # how many subjects get a background/style prompt (None: all)
    gen_options: dict = field(default_factory=dict)   # generation settings for every row (`gen -O`), over PAPER_GENERATION
    pack_weight: float | None = None  # every pack's weight at generation (`gen --pack NAME:W`); None: the base's

    def generation(self) -> dict:
        """The generation settings every row runs with."""
        return {**PAPER_GENERATION, **self.gen_options}

    def to_dict(self) -> dict:
        return {"motions": self.motions, "rows": [r.name for r in self.rows], "subjects": self.subjects,
                "seeds": self.seeds, "clips": self.clips, "steps": self.steps, "seed": self.seed,
                "options": self.options, "gen_options": self.generation(), "pack_weight": self.pack_weight,
                "extensions": [list(e) for e in self.extensions], "extension_subjects": self.extension_subjects}


def pack_name(motion: str, row: Row) -> str:
    """The bench's pack for ``motion`` under ``row`` (pack names take no '+')."""
    return f"{motion}-{row.name.replace('+', '-')}"


def row_by_name(name: str) -> Row:
    from synmotion_cli.errors import UsageError

    for row in ROWS:
        if row.name == name:
            return row
    raise UsageError(f"unknown bench row {name!r}", hint=f"rows: {', '.join(r.name for r in ROWS)}")


def _reference(motion: str, plan: BenchPlan, judges, work: Path) -> dict:
    """The clips every row learns from: written once (``folder``), and as the judges and metrics see them
    (rendered again in memory: the same seeds, without the video codec's loss)."""
    from .base import clip_rate
    from .clips import clip_seed
    from .evaluate import person_clips
    from .world import MOTIONS, render_clip

    folder = person_clips(motion, work, clips=plan.clips, seed=plan.seed)
    frames, fps = clip_rate()   # as person_clips wrote them
    videos = [render_clip("person", MOTIONS[motion], frames=frames, fps=fps, seed=clip_seed(plan.seed, i))
              for i in range(plan.clips)]
    return {"folder": folder, "features": judges.features_batch(videos), "first": videos[0],
            "dynamics": float(np.mean([metrics.dynamics(v) for v in videos]))}


class _Tally:
    """Per-video measures of one row, keyed by motion and seed, averaged when asked."""

    def __init__(self):
        self.items: list[dict] = []

    def add(self, **item) -> None:
        self.items.append(item)

    def summary(self, keys, seeds: int) -> dict:
        out = {}
        for key in keys:
            per_seed = [np.mean([i[key] for i in self.items if i["seed"] == s]) for s in range(seeds)
                        if any(i["seed"] == s for i in self.items)]
            out[key] = metrics.spread(per_seed)
        return out

    def per_motion(self, keys) -> dict:
        motions = dict.fromkeys(i["motion"] for i in self.items)
        return {m: {k: float(np.mean([i[k] for i in self.items if i["motion"] == m])) for k in keys} for m in motions}


def _condition_image(subject: str, seed: int) -> np.ndarray:
    """The I2V condition image for ``subject``: the first frame of a clip of it standing still."""
    from .world import MOTIONS, render_clip

    return render_clip(subject, MOTIONS[CONDITION_MOTION], seed=10_000 + seed)[0]


def _measure(gen, judges, prompts, packs, reference, motion, seeds, images=None) -> tuple[list, list]:
    """Generate every (prompt, seed), judge and measure; returns per-video records and the videos.
    ``images`` (one per prompt) makes it image-to-video, and adds how well each video keeps its image."""
    videos, keys = [], []
    for n, (subject, background, style, prompt) in enumerate(prompts):
        for seed in range(seeds):
            videos.append(gen.video(prompt, seed, packs=packs, image=None if images is None else images[n]))
            keys.append((n, subject, background, style, seed))
    verdicts, features = judges.judge_with_features(videos)
    frame_features = judges.frame_features_batch(videos)
    image_features = None
    if images is not None:  # each image as a still video: its vector from the middle frame
        stills = [np.repeat(img[None], len(videos[0]), axis=0) for img in images]
        image_features = judges.frame_features_batch(stills)[:, len(frame_features[0]) // 2]
    similarity = metrics.motion_similarity(features, reference["features"])
    records = []
    for (n, subject, background, style, seed), video, j, sim, ff in zip(keys, videos, verdicts, similarity,
                                                                         frame_features):
        record = dict(
            motion=motion, seed=seed, subject=subject,
            motion_acc=float(j.motion == motion), subject_acc=float(j.subject == subject),
            background_acc=float(j.background == (background or "none")), style_acc=float(j.style == (style or "none")),
            dynamics=metrics.dynamics(video), subject_consistency=metrics.subject_consistency(ff),
            motion_similarity=float(sim), judged_motion=j.motion, judged_subject=j.subject)
        if image_features is not None:
            record["image_consistency"] = metrics.image_consistency(image_features[n], ff)
        records.append(record)
    return records, videos


def _sheet(strips: list[tuple[str, np.ndarray]], path: Path, title: str) -> Path:
    """A PNG with one generated video per row (8 frames each), labelled with its prompt."""
    from PIL import Image, ImageDraw

    frames_shown, label_h, pad = 8, 12, 2
    tiles = []
    for label, video in strips:
        picks = np.linspace(0, len(video) - 1, frames_shown).round().astype(int)
        strip = np.concatenate(list(video[picks]), axis=1)
        tiles.append((label, strip.repeat(2, axis=0).repeat(2, axis=1)))  # 64 px frames are too small to read
    h, w = tiles[0][1].shape[:2]
    sheet = Image.new("RGB", (w + 2 * pad, label_h + len(tiles) * (h + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 0), title, fill="black")
    y = label_h
    for label, strip in tiles:
        draw.text((pad, y), label, fill=(60, 60, 60))
        sheet.paste(Image.fromarray(strip), (pad, y + label_h))
        y += h + label_h + pad
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def run_bench(plan: BenchPlan, out_dir: Path, reporter) -> dict:
    """Run every row of ``plan``; writes results.json and one contact sheet per row into ``out_dir``."""
    from synmotion_cli.backend import PackUse
    from synmotion_hunyuan.sampling import weighed

    from .evaluate import Generator, learn_pack
    from .judges import load_judges
    from .world import MOTIONS, prompt_for

    started = time.perf_counter()
    out_dir = Path(out_dir)
    work = out_dir / "work"
    judges = load_judges()
    # The text-to-video base, and the image-to-video one only when a row needs it.
    generators = {i2v: Generator("toy-i2v" if i2v else "toy", i2v=i2v, options=plan.generation())
                  for i2v in sorted({r.i2v for r in plan.rows})}
    references = {m: _reference(m, plan, judges, work) for m in plan.motions}
    results: dict = {"plan": plan.to_dict(), "date": time.strftime("%Y-%m-%d"),
                     "machine": f"{os.cpu_count()} CPU cores", "rows": {},
                     "reference": {m: {"dynamics": r["dynamics"]} for m, r in references.items()}}
    total = len(plan.rows) * len(plan.motions)
    done = 0
    for row in plan.rows:
        tally, ext_tally, strips, learn_s = _Tally(), _Tally(), [], []
        gen = generators[row.i2v]
        for motion in plan.motions:
            done += 1
            packs = ()
            if row.options is not None:
                reporter.stage(f"[{done}/{total}] {row.name}: learning {motion}")
                pack, files, seconds = learn_pack(motion, references[motion]["folder"], seed=plan.seed,
                                                  options={**plan.options, **row.options}, name=pack_name(motion, row),
                                                  steps=plan.steps, i2v=row.i2v)
                learn_s.append(seconds)
                # the weight gen gives it: --pack-weight, else the base's default for a pack named without one
                packs = weighed((PackUse(name=pack.full_name, digest=pack.digest, manifest=pack.manifest, files=files,
                                         weight=plan.pack_weight),), gen.settings.pack_weight)
            reporter.stage(f"[{done}/{total}] {row.name}: generating {motion}")
            strips.append((f"reference clip: {prompt_for('person', MOTIONS[motion])}", references[motion]["first"]))
            prompts = [(s, None, None, prompt_for(s, MOTIONS[motion])) for s in plan.subjects]
            images = [_condition_image(s, i) for i, s in enumerate(plan.subjects)] if row.i2v else None
            records, videos = _measure(gen, judges, prompts, packs, references[motion], motion, plan.seeds, images)
            for r in records:
                tally.add(**r)
            strips += [(f"{prompt_for(s, MOTIONS[motion])} (judged: {r['judged_motion']}, {r['judged_subject']})", v)
                       for (s, *_), r, v in zip(prompts, records[::plan.seeds], videos[::plan.seeds])][:3]
            if plan.extensions and not row.i2v:  # with I2V the image sets the background and style
                ext_prompts = []
                for i, s in enumerate(plan.subjects[:plan.extension_subjects]):
                    background, style = plan.extensions[i % len(plan.extensions)]
                    ext_prompts.append((s, background, style, prompt_for(s, MOTIONS[motion], background, style)))
                ext_records, ext_videos = _measure(gen, judges, ext_prompts, packs, references[motion], motion, 1)
                for r in ext_records:
                    ext_tally.add(**r)
                strips.append((ext_prompts[0][3], ext_videos[0]))
        sheet = _sheet(strips, out_dir / f"{row.name}.png", f"{row.name}: {row.about}")
        results["rows"][row.name] = {
            "about": row.about, "paper": row.paper, "options": row.options,
            "overall": tally.summary(I2V_MEASURES if row.i2v else MEASURES, plan.seeds),
            "per_motion": tally.per_motion(I2V_MEASURES if row.i2v else MEASURES),
            "extension": ext_tally.summary(EXTENSION_MEASURES, 1) if ext_tally.items else None, "i2v": row.i2v,
            "learn_s": float(np.mean(learn_s)) if learn_s else None, "sheet": str(sheet),
            "pack_weight": packs[0].weight if packs else None,   # the rows that learn a pack
            "videos": len(tally.items) + len(ext_tally.items),
        }
    results["seconds"] = round(time.perf_counter() - started, 1)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return results
