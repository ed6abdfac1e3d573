"""The toy base's training set: every subject doing every base motion, on every background, in every style
(and without), with random placement, scale, speed and phase. Custom motions are never rendered here."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from .architecture import FPS, HEIGHT, WIDTH, frames_at


@dataclass(frozen=True)
class Item:
    subject: str
    motion: str
    background: str | None
    style: str | None
    seed: int

    @property
    def prompt(self) -> str:
        from ..world import prompt_for

        return prompt_for(self.subject, self.motion, self.background, self.style)


def items(count: int, seed: int, motions=None) -> list[Item]:
    """``count`` items cycling through every combination in a seeded order, so each is covered evenly."""
    from ..world import BACKGROUNDS, BASE_MOTIONS, STYLES, SUBJECTS

    motions = list(motions or BASE_MOTIONS)
    # Half the clips have no background and half no style (a quarter are plain): the subject doing the motion is
    # what every prompt asks for and the hardest thing to learn, while a background or style is learnt from few
    # examples. Evenly spread over the 20 looks, plain clips were a twentieth of the data.
    backgrounds = [None] * len(BACKGROUNDS) + list(BACKGROUNDS)
    styles = [None] * len(STYLES) + list(STYLES)
    combos = [(s, m, b, st) for s in SUBJECTS for m in motions for b in backgrounds for st in styles]
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        rng.shuffle(combos)
        out += [Item(*c, seed=rng.randrange(2**31)) for c in combos[: count - len(out)]]
    return out


def _clip_args(item: Item, fps: int) -> dict:
    return dict(background=item.background, style=item.style, frames=frames_at(fps), fps=fps, height=HEIGHT,
                width=WIDTH, seed=item.seed)


def render(batch: list[Item], fps: int = int(FPS)) -> np.ndarray:
    from ..world import render_clip

    return np.stack([render_clip(i.subject, i.motion, **_clip_args(i, fps)) for i in batch])


def _empty(count: int, fps: int) -> tuple[np.ndarray, np.ndarray]:
    frames = frames_at(fps)
    return (np.empty((count, frames, HEIGHT, WIDTH, 3), np.uint8), np.empty((count, frames, HEIGHT, WIDTH), bool))


def _render_into(batch: list[Item], clips: np.ndarray, masks: np.ndarray, fps: int) -> tuple[np.ndarray, np.ndarray]:
    from ..world import render_clip_and_mask

    for k, i in enumerate(batch):
        clips[k], masks[k] = render_clip_and_mask(i.subject, i.motion, **_clip_args(i, fps))
    return clips, masks


def _render_chunk(batch: list[Item], fps: int) -> tuple[np.ndarray, np.ndarray]:
    return _render_into(batch, *_empty(len(batch), fps), fps)


def render_with_masks(batch: list[Item], workers: int = 1, fps: int = int(FPS)) -> tuple[np.ndarray, np.ndarray]:
    """The clips of ``render(batch)`` and where the subject is in each (bool, frames x height x width).

    Each clip depends on its item alone (its seed included), so ``workers`` processes render chunks of the
    batch with the same result: the renderer is plain numpy on one core, and a GPU machine's spare cores would
    otherwise leave the GPU idle through a minute and a half of rendering. The chunks are written straight
    into the two arrays, so a training set of thousands of clips is never held twice."""
    clips, masks = _empty(len(batch), fps)
    if workers <= 1 or len(batch) < 64:
        return _render_into(batch, clips, masks, fps)
    import concurrent.futures
    import functools
    import multiprocessing

    size = 32
    starts = range(0, len(batch), size)
    chunks = [batch[s:s + size] for s in starts]
    # spawn, not fork: the parent holds torch's thread pools, which a forked child must not inherit
    try:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for start, (c, m) in zip(starts, pool.map(functools.partial(_render_chunk, fps=fps), chunks)):
                clips[start:start + len(c)], masks[start:start + len(c)] = c, m
    except concurrent.futures.process.BrokenProcessPool:
        # a worker could not start (a parent run from stdin has no main module to re-import): render here,
        # into the same arrays
        return _render_into(batch, clips, masks, fps)
    return clips, masks
