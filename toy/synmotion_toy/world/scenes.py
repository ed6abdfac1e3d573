"""Backgrounds: a static sky, a ground strip that scrolls when the camera follows a travelling subject,
and, for snow, flakes falling in front. ``None`` is a neutral studio with no prompt phrase.

Each background is drawn through a ``Pen`` that follows the style: flat cut-out shapes for cut paper,
pencil outlines on paper for sketch, plain fills otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from .styles import PAPER, PENCIL, RGB, Style, blend

BACKGROUNDS: dict[str, str] = {
    "grass": "on grass",
    "night": "at night",
    "snow": "in snow",
    "beach": "on a beach",
}


class Pen:
    """Draws background shapes in a style. Coordinates are canvas pixels."""

    def __init__(self, image: Image.Image, style: Style, rng: np.random.Generator, unit: float):
        self.image, self.style, self.rng, self.unit = image, style, rng, unit
        self.draw = ImageDraw.Draw(image)
        self.sketch = style.key == "sketch"

    def color(self, c) -> RGB:
        if self.sketch:
            return blend(PAPER, c, 0.4)
        if self.style.key == "cut-paper":
            return blend(c, PAPER, 0.12)
        return tuple(c)

    def band(self, top: float, bottom: float, c0, c1) -> None:
        """Rows ``top``..``bottom`` in a vertical gradient (flat for cut paper)."""
        top, bottom = int(round(top)), int(round(bottom))
        if bottom <= top:
            return
        if self.style.key in ("cut-paper", "pixel"):  # flat areas, no gradients
            c0 = c1 = blend(c0, c1, 0.5)
        arr = np.asarray(self.image).copy()
        t = np.linspace(0.0, 1.0, bottom - top)[:, None]
        rows = np.array(self.color(c0))[None] * (1 - t) + np.array(self.color(c1))[None] * t
        arr[top:bottom] = np.round(rows).astype(np.uint8)[:, None, :]
        self.image.paste(Image.fromarray(arr))

    def disc(self, x: float, y: float, r: float, c) -> None:
        if self.sketch:
            w = max(1, round(self.unit * 0.8))
            self.draw.ellipse([x - r, y - r, x + r, y + r], fill=self.color(c), outline=blend(PENCIL, c, 0.3), width=w)
        elif self.style.jagged and r >= 2:
            n = 7
            pts = [(x + r * (1 + 0.15 * self.rng.standard_normal()) * math.cos(2 * math.pi * i / n),
                    y + r * (1 + 0.15 * self.rng.standard_normal()) * math.sin(2 * math.pi * i / n)) for i in range(n)]
            self.draw.polygon(pts, fill=tuple(c))
        else:
            self.draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(c))

    def poly(self, points, c) -> None:
        if self.sketch:
            self.draw.polygon(points, fill=self.color(c), outline=blend(PENCIL, c, 0.3),
                              width=max(1, round(self.unit * 0.8)))
        else:
            self.draw.polygon(points, fill=tuple(c))

    def stroke(self, points, width: float, c) -> None:
        color = blend(PENCIL, c, 0.35) if self.sketch else tuple(c)
        self.draw.line(points, fill=color, width=max(1, int(round(width))))


@dataclass(frozen=True)
class Background:
    key: str | None
    phrase: str
    sky: tuple[RGB, RGB]
    ground: tuple[RGB, RGB]
    light: tuple[float, float, float] = (1.0, 1.0, 1.0)  # multiplies the subject's colours
    sky_details: Callable | None = None
    ground_details: Callable | None = None
    flakes: int = 0


def _wrapped(width: int, x: float, r: float) -> list[float]:
    """``x`` and its copies one width away where a shape of radius ``r`` crosses the edge, so strips tile."""
    return [x + d for d in (-width, 0, width) if -r <= x + d <= width + r]


def _clouds(pen: Pen, w: int, h: int, horizon: int, rng) -> None:
    for _ in range(rng.integers(1, 3)):
        x, y = rng.uniform(0.1, 0.9) * w, rng.uniform(0.12, 0.45) * horizon
        r = rng.uniform(0.05, 0.08) * h
        for dx, dy, k in ((-1.1, 0.2, 0.7), (0.0, 0.0, 1.0), (1.1, 0.25, 0.75)):
            pen.disc(x + dx * r, y + dy * r, r * k, (250, 252, 255))


def _grass_tufts(pen: Pen, w: int, h: int, rng) -> None:
    for _ in range(int(w / pen.unit / 5)):
        x, y = rng.uniform(0, w), rng.uniform(0.06, 0.95) * h
        size = pen.unit * rng.uniform(1.6, 2.8) * (0.6 + 0.6 * y / h)
        dark = (38, 110, 36) if rng.random() < 0.7 else (130, 200, 80)
        for xx in _wrapped(w, x, size):
            for lean in (-0.6, 0.0, 0.6):
                pen.stroke([(xx, y), (xx + lean * size, y - size)], pen.unit * 0.6, dark)
    for _ in range(int(w / pen.unit / 14)):
        x, y = rng.uniform(0, w), rng.uniform(0.2, 0.95) * h
        for xx in _wrapped(w, x, pen.unit):
            pen.disc(xx, y, pen.unit * 0.8, (250, 220, 60) if rng.random() < 0.5 else (250, 250, 250))


def _night_sky(pen: Pen, w: int, h: int, horizon: int, rng) -> None:
    x, y, r = rng.uniform(0.15, 0.85) * w, rng.uniform(0.25, 0.55) * horizon, 0.075 * h
    sky = pen.image.getpixel((int(min(w - 1, max(0, x))), int(min(horizon - 1, max(0, y)))))
    pen.disc(x, y, r, (250, 246, 210))
    if pen.style.key != "sketch":  # a crescent: the sky bites into the moon
        pen.disc(x + 0.45 * r, y - 0.25 * r, r * 0.85, sky)
    for _ in range(int(w * horizon / pen.unit**2 / 110)):
        x, y = rng.uniform(0, w), rng.uniform(0, horizon * 0.95)
        pen.disc(x, y, pen.unit * rng.uniform(0.35, 0.6), (255, 255, 235))


def _night_ground(pen: Pen, w: int, h: int, rng) -> None:
    for _ in range(int(w / pen.unit / 8)):
        x, y = rng.uniform(0, w), rng.uniform(0.1, 0.95) * h
        for xx in _wrapped(w, x, 2 * pen.unit):
            pen.stroke([(xx - pen.unit, y), (xx + pen.unit, y)], pen.unit * 0.6, (52, 66, 86))


def _snow_sky(pen: Pen, w: int, h: int, horizon: int, rng) -> None:
    for _ in range(rng.integers(3, 6)):  # distant snowy pines on the horizon
        x, size = rng.uniform(0, w), rng.uniform(0.1, 0.18) * h
        pen.poly([(x - 0.35 * size, horizon + 1), (x, horizon - size), (x + 0.35 * size, horizon + 1)], (52, 92, 70))
        pen.poly([(x - 0.16 * size, horizon - 0.55 * size), (x, horizon - size), (x + 0.16 * size, horizon - 0.55 * size)],
                 (246, 249, 255))


def _snow_ground(pen: Pen, w: int, h: int, rng) -> None:
    for _ in range(int(w / pen.unit / 10)):
        x, y = rng.uniform(0, w), rng.uniform(0.15, 0.95) * h
        for xx in _wrapped(w, x, 4 * pen.unit):
            pen.stroke([(xx - 3 * pen.unit, y), (xx + 3 * pen.unit, y)], pen.unit * 0.7, (196, 210, 232))


def _beach_sky(pen: Pen, w: int, h: int, horizon: int, rng) -> None:
    x, y, r = rng.uniform(0.12, 0.88) * w, rng.uniform(0.25, 0.5) * horizon, 0.07 * h
    pen.disc(x, y, r, (255, 214, 60))


def _beach_ground(pen: Pen, w: int, h: int, rng) -> None:
    sea = 0.28 * h  # the sea is the top of the strip, then foam, then sand
    pen.band(0, sea, (40, 120, 200), (60, 160, 215))
    pen.stroke([(0, sea), (w, sea)], pen.unit * 1.2, (250, 250, 250))
    for _ in range(int(w / pen.unit / 9)):
        x, y = rng.uniform(0, w), rng.uniform(sea + 2 * pen.unit, h * 0.95)
        for xx in _wrapped(w, x, pen.unit):
            pen.disc(xx, y, pen.unit * rng.uniform(0.5, 0.9), (196, 150, 96) if rng.random() < 0.6 else (250, 240, 226))


def _studio_ground(pen: Pen, w: int, h: int, rng) -> None:
    for _ in range(int(w / pen.unit / 9)):
        x, y = rng.uniform(0, w), rng.uniform(0.1, 0.95) * h
        for xx in _wrapped(w, x, pen.unit):
            pen.disc(xx, y, pen.unit * 0.45, (140, 134, 126))


BACKGROUND_LOOKS: dict[str | None, Background] = {
    None: Background(None, "", ((212, 210, 204), (228, 226, 220)), ((178, 172, 162), (160, 154, 145)),
                     ground_details=_studio_ground),
    "grass": Background("grass", BACKGROUNDS["grass"], ((112, 182, 238), (190, 226, 250)), ((92, 176, 66), (58, 140, 48)),
                        sky_details=_clouds, ground_details=_grass_tufts),
    "night": Background("night", BACKGROUNDS["night"], ((8, 12, 52), (32, 36, 92)), ((36, 46, 62), (20, 26, 38)),
                        light=(0.6, 0.63, 0.78), sky_details=_night_sky, ground_details=_night_ground),
    "snow": Background("snow", BACKGROUNDS["snow"], ((188, 198, 214), (222, 228, 238)), ((246, 249, 255), (226, 234, 248)),
                       light=(0.95, 0.97, 1.03), sky_details=_snow_sky, ground_details=_snow_ground, flakes=28),
    "beach": Background("beach", BACKGROUNDS["beach"], ((70, 160, 236), (168, 216, 248)), ((240, 214, 152), (222, 188, 124)),
                        sky_details=_beach_sky, ground_details=_beach_ground),
}


@dataclass
class Scene:
    """A background laid out on a canvas: call ``frame`` for each picture."""

    look: Background
    sky: np.ndarray  # (H, W, 3): the whole canvas without the ground
    ground: np.ndarray  # (H - horizon, W, 3): horizontally tileable
    horizon: int
    shadow: RGB
    unit: float
    flakes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    flake_color: RGB = (255, 255, 255)

    def frame(self, scroll: int) -> Image.Image:
        canvas = self.sky.copy()
        canvas[self.horizon:] = np.roll(self.ground, scroll, axis=1) if scroll else self.ground
        return Image.fromarray(canvas)

    def draw_front(self, image: Image.Image, t: float) -> None:
        """Snow falling in front of the subject at time ``t`` seconds."""
        if not len(self.flakes):
            return
        draw = ImageDraw.Draw(image)
        w, h = image.size
        xs = np.mod(self.flakes[:, 0] + self.flakes[:, 2] * t, 1.0) * w
        ys = np.mod(self.flakes[:, 1] + self.flakes[:, 3] * t, 1.0) * h
        r = max(0.5, 0.55 * self.unit)
        for x, y in zip(xs.tolist(), ys.tolist()):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=self.flake_color)


def build_scene(key: str | None, style: Style, size: tuple[int, int], horizon: int, unit: float,
                rng: np.random.Generator) -> Scene:
    """Lay out background ``key`` on a canvas of ``size`` (height, width) with the horizon at row ``horizon``.
    ``unit`` is the canvas size of one output pixel, so details keep their size at any supersampling."""
    look = BACKGROUND_LOOKS[key]
    h, w = size
    sky_image = Image.new("RGB", (w, h), PAPER)
    pen = Pen(sky_image, style, rng, unit)
    pen.band(0, horizon, *look.sky)
    if look.sky_details:
        look.sky_details(pen, w, h, horizon, rng)
    ground_image = Image.new("RGB", (w, h - horizon), PAPER)
    ground_pen = Pen(ground_image, style, rng, unit)
    ground_pen.band(0, h - horizon, *look.ground)
    if look.ground_details:
        look.ground_details(ground_pen, w, h - horizon, rng)
    if style.key == "sketch":
        ground_pen.stroke([(0, 0), (w, 0)], unit * 1.0, PENCIL)
    if style.jagged:  # a hand-cut horizon: teeth of sky colour bite into the top of the ground
        n = max(8, w // int(max(2, 3 * unit)))
        xs = np.linspace(0, w, n + 1)
        depth = np.abs(rng.normal(0, 0.9 * unit, n + 1))
        depth[-1] = depth[0]
        ground_pen.draw.polygon([(0, 0)] + [(x, d) for x, d in zip(xs, depth)] + [(w, 0)],
                                fill=blend(*look.sky, 0.5))
    sky, ground = np.asarray(sky_image).copy(), np.asarray(ground_image).copy()
    mid_ground = blend(*look.ground, 0.5)
    shadow = blend(PAPER, PENCIL, 0.2) if style.key == "sketch" else blend(mid_ground, (0, 0, 0), 0.35)
    flakes = np.zeros((0, 4))
    if look.flakes:
        # x, y in [0, 1) and their drift per second: slow sideways, faster downwards.
        flakes = np.column_stack([rng.random(look.flakes), rng.random(look.flakes),
                                  rng.uniform(-0.05, 0.08, look.flakes), rng.uniform(0.12, 0.25, look.flakes)])
    flake_color = blend(PENCIL, (120, 140, 170), 0.3) if style.key == "sketch" else (255, 255, 255)
    return Scene(look=look, sky=sky, ground=ground, horizon=horizon, shadow=shadow, unit=unit,
                 flakes=flakes, flake_color=flake_color)
