"""Prompts in the paper's form: "<subject> <motion>[ background][, style]"."""

from __future__ import annotations

from synmotion_cli.prompts import compose

from .motions import Motion
from .scenes import BACKGROUNDS
from .styles import STYLES
from .subjects import Subject


def prompt_for(subject: str | Subject, motion: str | Motion, background: str | None = None,
               style: str | None = None) -> str:
    """``prompt_for("zebra", "walk", "grass", "pixel")`` -> "a zebra walks on grass, pixel art style"."""
    from . import MOTIONS, SUBJECTS

    subj = subject if isinstance(subject, Subject) else SUBJECTS[subject]
    mot = motion if isinstance(motion, Motion) else MOTIONS[motion]
    return compose(f"{subj.phrase} {mot.third_person}",
                   style=STYLES[style] if style else None,
                   background=BACKGROUNDS[background] if background else None)
