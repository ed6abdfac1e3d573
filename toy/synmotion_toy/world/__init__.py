"""The toy world: articulated 2-D characters, their motions, backgrounds and styles, rendered to clips.

    from synmotion_toy.world import render_clip, prompt_for
    frames = render_clip("zebra", "walk", background="grass", style="pixel", seed=3)  # (17, 64, 64, 3) uint8
    prompt_for("zebra", "walk", "grass", "pixel")  # "a zebra walks on grass, pixel art style"
"""

from .motions import Motion, load_motions
from .scenes import BACKGROUNDS
from .styles import STYLES
from .subjects import SUBJECTS, Subject

MOTIONS: dict[str, Motion] = load_motions()
BASE_MOTIONS: dict[str, Motion] = {k: m for k, m in MOTIONS.items() if m.set == "base"}
CUSTOM_MOTIONS: dict[str, Motion] = {k: m for k, m in MOTIONS.items() if m.set == "custom"}

from .prompts import prompt_for  # noqa: E402  (needs the tables above)
from .render import render_clip, render_clip_and_mask  # noqa: E402

__all__ = ["SUBJECTS", "MOTIONS", "BASE_MOTIONS", "CUSTOM_MOTIONS", "BACKGROUNDS", "STYLES", "render_clip", "render_clip_and_mask",
           "prompt_for", "Motion", "Subject", "load_motions"]
