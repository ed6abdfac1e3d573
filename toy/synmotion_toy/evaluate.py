"""Measuring the toy base and motion packs on it with the judges.

Everything runs in one process with the base loaded once: generation goes through the same backend
functions as `synmotion gen` (prompt roles, pack embeddings, LoRA, classifier-free guidance), and packs
are learned through the real `synmotion learn` command into a private store.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Score:
    """Judge verdicts over a set of generated videos."""

    motion_hits: list[bool] = field(default_factory=list)
    subject_hits: list[bool] = field(default_factory=list)

    def add(self, judgement, motion: str, subject: str) -> None:
        self.motion_hits.append(judgement.motion == motion)
        self.subject_hits.append(judgement.subject == subject)

    @property
    def motion_acc(self) -> float:
        return float(np.mean(self.motion_hits)) if self.motion_hits else float("nan")

    @property
    def subject_acc(self) -> float:
        return float(np.mean(self.subject_hits)) if self.subject_hits else float("nan")

    @property
    def n(self) -> int:
        return len(self.motion_hits)


class Generator:
    """The toy base loaded once; generates with or without packs, exactly as `gen` does."""

    def __init__(self, base: str = "toy", *, i2v: bool = False, options: dict | None = None):
        """``options``: generation settings over the base's defaults, as `gen -O key=value` gives them."""
        import torch
        from synmotion_hunyuan import bases
        from synmotion_hunyuan.runtime import load_pipeline, pick_runtime
        from synmotion_hunyuan.settings import GenSettings, build
        from synmotion_hunyuan.text_encoding import PromptEncoder

        self.torch = torch
        self.i2v = i2v
        self.variant = "i2v" if i2v else "t2v"
        self.base = bases.resolve(base)
        self.settings = build(GenSettings, bases.read_synmotion_config(self.base.path).get("defaults", {}).get("gen", {}),
                              options or {})
        self.pipe = load_pipeline(self.base, pick_runtime(), training=False, i2v=i2v)
        self.encoder = PromptEncoder.from_pipeline(self.pipe, self.base.path)
        self.negative = self.encoder.negative()
        self._loaded: tuple = ()

    def _use(self, packs) -> None:
        from synmotion_hunyuan.sampling import apply_loras

        key = tuple((p.digest, p.weight) for p in packs)
        if key == self._loaded:
            return
        if self._loaded:
            self.pipe.unload_lora_weights()
        apply_loras(self.pipe, packs, self.variant)
        self._loaded = key

    def video(self, prompt: str, seed: int, packs=(), reporter=None, image=None) -> np.ndarray:
        """One video as `synmotion gen` makes it; ``image`` (uint8 (H, W, 3) at the video size) for I2V."""
        from synmotion_cli.reporting import Reporter
        from synmotion_hunyuan.sampling import encode_for_sampling, sample, weighed

        if (image is not None) != self.i2v:
            raise ValueError("an image goes with an image-to-video generator, and only there")
        s = self.settings
        packs = weighed(packs, s.pack_weight)
        self._use(packs)
        embeds, mask, pooled, _, _, transfer = encode_for_sampling(
            self.encoder, prompt, None, None, packs, reporter or Reporter(), transfer=s.transfer, variant=self.variant,
            image=image)
        return sample(self.pipe, embeds, mask, pooled, height=s.height, width=s.width, frames=s.frames,
                      steps=s.steps, guidance=s.guidance, seed=seed, negative=self.negative,
                      true_cfg_scale=s.true_cfg_scale, cfg_negative=s.cfg_negative, image=image, transfer=transfer,
                      transfer_start=s.transfer_start, transfer_static=s.transfer_static)


def base_motion_accuracy(gen: Generator, judges, *, seeds: int = 1, subjects=None, motions=None) -> dict:
    """How often the toy base's own videos of base motions are judged right (motion and subject)."""
    from .world import BASE_MOTIONS, SUBJECTS, prompt_for

    per_motion: dict[str, Score] = {}
    total = Score()
    for m in motions or BASE_MOTIONS:
        score = per_motion.setdefault(m, Score())
        for s in subjects or SUBJECTS:
            for seed in range(seeds):
                j = judges.judge(gen.video(prompt_for(s, m), seed))
                score.add(j, m, s)
                total.add(j, m, s)
    return {"overall": total, "per_motion": per_motion}


def person_clips(motion: str, workdir: Path, *, clips: int = 8, seed: int = 0) -> Path:
    """Render ``clips`` clips of a person doing ``motion`` into a folder of ``workdir``; returns the folder."""
    from .clips import write_clips

    folder = workdir / f"clips-{motion}"
    write_clips(motion, folder, count=clips, seed=seed, force=True)
    return folder


def learn_pack(motion: str, folder: Path, *, seed: int = 0, options: dict | None = None,
               name: str | None = None, steps: int | None = None, i2v: bool = False) -> tuple:
    """Learn ``motion`` from the clips in ``folder`` as a pack (named ``name``, default the motion) with
    the real CLI; returns (pack, its files, seconds spent learning)."""
    from synmotion_cli.app import main
    from synmotion_cli.paths import home
    from synmotion_cli.store import PackStore

    from .world import MOTIONS

    name = name or motion
    args = ["-q", "learn", name, str(folder), "--base", "toy", "--trigger", MOTIONS[motion].verb, "--seed", str(seed),
            "--force"]
    if steps:
        args += ["--steps", str(steps)]
    if i2v:
        args += ["--i2v"]
    for k, v in (options or {}).items():
        args += ["-O", f"{k}={v}"]
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # learn prints the pack's name; the caller's stdout is its own
        code = main(args)
    elapsed = time.perf_counter() - t
    if code:
        from synmotion_cli.errors import SynMotionError

        err = SynMotionError(f"learning {name} ({motion}) failed with exit code {code}; see the error above")
        err.exit_code = code
        raise err
    store = PackStore(home())
    pack = store.resolve(name)
    return pack, store.files(pack), elapsed


def transfer_accuracy(gen: Generator, judges, motion: str, pack_uses, *, subjects, seeds: int) -> dict:
    """Videos of ``motion`` on ``subjects`` (never in the clips), with each of the packs (several packs of one
    motion, learnt with different seeds, pool their videos) and without a pack."""
    from .world import MOTIONS, prompt_for

    with_pack, without = Score(), Score()
    for s in subjects:
        for seed in range(seeds):
            prompt = prompt_for(s, MOTIONS[motion])
            for use in pack_uses:
                with_pack.add(judges.judge(gen.video(prompt, seed, packs=(use,))), motion, s)
            without.add(judges.judge(gen.video(prompt, seed)), motion, s)
    return {"with": with_pack, "without": without}


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def mean(xs) -> float:
    xs = [x for x in xs if x == x]
    return statistics.fmean(xs) if xs else float("nan")
