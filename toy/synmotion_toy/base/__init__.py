"""The toy base: a small HunyuanVideo (same diffusers/transformers classes) trained on the toy world.

``weights_dir()`` is where the trained base ships; it is registered as the base named ``toy`` through the
``synmotion.bases`` entry point, so ``--base toy`` loads it with the same ``from_pretrained`` as any base.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).with_name("weights")


def weights_dir() -> Path:
    return WEIGHTS
