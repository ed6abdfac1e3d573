"""The toy base: a small HunyuanVideo (same diffusers/transformers classes) trained on the toy world.

``weights_dir()`` is where the trained base ships; it is registered as the base named ``toy`` through the
``synmotion.bases`` entry point, so ``--base toy`` loads it with the same ``from_pretrained`` as any base.
"""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = Path(__file__).with_name("weights")


def weights_dir() -> Path:
    return WEIGHTS


def clip_rate() -> tuple[int, float]:
    """Frames and frame rate of the clips the toy base learns packs from (its ``synmotion.json``), read without
    torch: clips rendered for it come at that rate, so ``learn`` never has to resample them."""
    from .architecture import FPS, FRAMES

    try:
        learn = json.loads((WEIGHTS / "synmotion.json").read_text())["defaults"]["learn"]
        return int(learn["frames"]), float(learn["fps"])
    except (OSError, ValueError, KeyError):   # no trained base installed: the architecture's own rate
        return FRAMES, FPS
