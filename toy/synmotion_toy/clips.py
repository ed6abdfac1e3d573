"""Example clips of the toy world written to a folder: N mp4 files and a contact sheet."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHEET_NAME = "contact-sheet.png"
SHEET_ROWS = 8  # clips shown on the contact sheet, one per row


@dataclass
class ClipSet:
    folder: Path
    motion: str
    subject: str
    prompt: str
    frames: int
    fps: float
    clips: list[Path] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    sheet: Path | None = None


def clip_seed(seed: int, index: int) -> int:
    """The seed of clip ``index`` of a set made with ``seed``: sets with different seeds share no clip."""
    return seed * 1000 + index


def write_clips(motion: str, folder, *, count: int = 8, subject: str = "person", background: str | None = None,
                style: str | None = None, seed: int = 0, height: int = 64, width: int = 64, frames: int | None = None,
                fps: float | None = None, force: bool = False) -> ClipSet:
    """Render ``count`` clips of ``subject`` doing ``motion`` into ``folder`` as ``<motion>-<i>.mp4`` plus
    ``contact-sheet.png`` (the first clips, one per row). Names may be keys or prompt phrases. ``frames`` and
    ``fps`` default to the toy base's (``base.clip_rate``)."""
    from synmotion_cli import media
    from synmotion_cli.errors import UsageError

    from .world import load_motions, prompt_for, render_clip
    from .world.names import background_key, motion_key, style_key, subject_key

    if frames is None or fps is None:
        from .base import clip_rate

        base_frames, base_fps = clip_rate()
        frames, fps = frames or base_frames, fps or base_fps
    motions = load_motions()  # read now, so that folders added to $SYNMOTION_TOY_MOTIONS count
    motion, subject = motion_key(motion, motions), subject_key(subject)
    background, style = background_key(background), style_key(style)
    folder = Path(folder)
    targets = [folder / f"{motion}-{i}.mp4" for i in range(count)]
    existing = [p for p in targets + [folder / SHEET_NAME] if p.exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists", hint="pass --force to overwrite, or choose another folder")
    prompt = prompt_for(subject, motions[motion], background, style)
    result = ClipSet(folder=folder, motion=motion, subject=subject, prompt=prompt, frames=frames, fps=fps)
    shown = []
    for i, path in enumerate(targets):
        s = clip_seed(seed, i)
        video = render_clip(subject, motions[motion], background=background, style=style, frames=frames, fps=fps,
                            height=height, width=width, seed=s)
        media.write_mp4(video, path, fps=fps, metadata={"synmotion_toy_prompt": prompt, "synmotion_toy_seed": str(s)})
        result.clips.append(path)
        result.seeds.append(s)
        if i < SHEET_ROWS:
            shown.append(video)
    # Clips stacked vertically make each sheet tile a column of clips at one moment: one clip per row.
    result.sheet = media.contact_sheet(np.concatenate(shown, axis=1), folder / SHEET_NAME,
                                       columns=min(frames, media.SHEET_MAX_FRAMES), label=prompt)
    return result
