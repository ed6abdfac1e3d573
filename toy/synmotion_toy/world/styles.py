"""Styles: how a frame is drawn and finished. ``None`` is the plain cartoon look.

- cut paper: flat colours without outlines, jagged hand-cut edges, a drop shadow, paper grain.
- pixel art: drawn at half the size or less, snapped to a few levels per colour channel, scaled up blocky.
- sketch: a light paper ground, dark pencil outlines, barely any fill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

STYLES: dict[str, str] = {
    "cut-paper": "cut paper style",
    "pixel": "pixel art style",
    "sketch": "sketch style",
}

RGB = tuple[int, int, int]

PAPER: RGB = (244, 240, 229)
PENCIL: RGB = (48, 46, 56)

PIXEL_LEVELS = 6  # values per colour channel: the 216 "web-safe" colours, flat like an old console


def blend(a, b, t: float) -> RGB:
    """``a`` moved a fraction ``t`` towards ``b``."""
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def scaled(color, factors) -> RGB:
    return tuple(int(min(255, max(0, round(c * f)))) for c, f in zip(color, factors))


@dataclass(frozen=True)
class Style:
    """Drawing rules of one style; ``key`` None is the plain look."""

    key: str | None
    phrase: str

    def canvas_scale(self, height: int, width: int) -> float:
        """Canvas pixels per output pixel: supersampled for smooth edges, below 1 for pixel art."""
        if self.key == "pixel":
            return 1.0 / self.pixel_size(height, width)
        if self.key == "cut-paper":
            return 2.0  # little smoothing: the cut edges stay visibly jagged
        return float(max(2, round(256 / max(height, width))))

    @staticmethod
    def pixel_size(height: int, width: int) -> int:
        return max(2, round(min(height, width) / 42))

    @property
    def outline_width(self) -> float:
        """Outline thickness in output pixels (as a fraction of a 64-pixel-high figure's scale)."""
        return {None: 0.9, "sketch": 1.0}.get(self.key, 0.0)

    @property
    def jagged(self) -> bool:
        return self.key == "cut-paper"

    def fill(self, color) -> RGB:
        if self.key == "sketch":
            return blend(PAPER, color, 0.28)
        if self.key == "cut-paper":  # coloured paper is never quite saturated
            return blend(color, PAPER, 0.12)
        return tuple(color)

    def outline(self, color) -> RGB:
        if self.key == "sketch":
            return PENCIL
        return scaled(color, (0.32, 0.32, 0.32))

    def detail(self, color) -> RGB:
        """Small marks (eyes, stripes, noses): in sketch style pencil-dark so they survive the pale fill."""
        if self.key == "sketch":
            return blend(PENCIL, color, 0.25)
        return tuple(color)

    def finish(self, canvas: Image.Image, height: int, width: int, grain: np.ndarray | None = None) -> np.ndarray:
        """The canvas as a uint8 (height, width, 3) frame."""
        if self.key == "pixel":
            step = 255.0 / (PIXEL_LEVELS - 1)
            small = (np.round(np.asarray(canvas, dtype=np.float32) / step) * step).astype(np.uint8)
            block = self.pixel_size(height, width)
            return np.ascontiguousarray(small.repeat(block, 0).repeat(block, 1)[:height, :width])
        factor = int(round(self.canvas_scale(height, width)))
        frame = np.asarray(canvas.reduce(factor) if factor > 1 else canvas)[:height, :width]
        if grain is not None:
            frame = np.clip(frame.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(frame)


def get_style(key: str | None) -> Style:
    if key is None:
        return Style(None, "")
    return Style(key, STYLES[key])
