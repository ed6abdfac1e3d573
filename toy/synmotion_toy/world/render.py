"""Render a clip: a subject performing a motion, on a background, in a style.

Everything random about a clip (facing, view angle, speed, phase or start delay, framing, scale,
background layout) comes from one seed, so the same arguments always give the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import skeleton
from .figure import Figure, View
from .motions import Motion
from .scenes import BACKGROUND_LOOKS, BACKGROUNDS, Scene, build_scene
from .styles import STYLES, Style, get_style
from .subjects import Subject

SPEED_RANGE = (0.8, 1.2)
VIEW_YAW = (20.0, 38.0)  # degrees turned towards the viewer from a side view: both sides' limbs show
HEIGHT_RANGE = (0.6, 0.76)  # a standing subject's height as a fraction of the frame height, when it fits
MAX_SCREEN_TRAVEL = 0.4  # body heights a subject may cross the picture; beyond it the camera follows
MAX_SIDE = 1024


def _semicircle(n: int) -> list[tuple[float, float]]:
    return [(math.cos(a), math.sin(a)) for a in np.linspace(-math.pi / 2, math.pi / 2, n)]


_SEMI = {n: _semicircle(n) for n in (3, 4, 5, 7, 9)}


def capsule_points(x0, y0, x1, y1, r, n) -> list[tuple[float, float]]:
    dx, dy = x1 - x0, y1 - y0
    length = math.hypot(dx, dy)
    if length < 1e-9:
        dx, dy = 1.0, 0.0
    else:
        dx, dy = dx / length, dy / length
    nx, ny = -dy, dx
    semi = _SEMI[n]
    return ([(x1 + r * (c * dx + s * nx), y1 + r * (c * dy + s * ny)) for c, s in semi]
            + [(x0 - r * (c * dx + s * nx), y0 - r * (c * dy + s * ny)) for c, s in semi])


class Painter:
    """Draws a figure's shapes on a canvas following a style."""

    def __init__(self, style: Style, unit: float, outline: float, rng: np.random.Generator):
        self.style, self.unit, self.outline = style, unit, outline
        self.noise = rng.normal(0.0, 1.0, 4096).tolist() if style.jagged else []
        self._next = 0

    def _jitter(self, pts, r):
        amount = min(0.3 * r, 1.1 * self.unit)
        noise, i = self.noise, self._next
        out = [(x + amount * noise[(i + 2 * k) % 4096], y + amount * noise[(i + 2 * k + 1) % 4096])
               for k, (x, y) in enumerate(pts)]
        self._next = (i + 2 * len(pts)) % 4096
        return out

    def _points(self, shape, grow: float) -> list[tuple[float, float]] | None:
        kind = shape[0]
        if kind == "cap":
            _, x0, y0, x1, y1, r, *_ = shape
            r += grow
            n = 3 if self.style.jagged else (3 if r < 1.5 else 5 if r < 5 else 7 if r < 12 else 9)
            pts = capsule_points(x0, y0, x1, y1, r, n)
            return self._jitter(pts, r) if self.style.jagged else pts
        if kind == "disc" and self.style.jagged and shape[3] > 1.5:
            _, x, y, r, *_ = shape
            n = 7
            pts = [(x + r * math.cos(2 * math.pi * k / n), y + r * math.sin(2 * math.pi * k / n)) for k in range(n)]
            return self._jitter(pts, r)
        return None

    def paint(self, draw: ImageDraw.ImageDraw, groups) -> None:
        self._next = 0
        style, ow = self.style, self.outline
        for _, shapes in groups:
            if ow > 0:
                for shape in shapes:
                    if shape[-1] == "part":
                        self._draw(draw, shape, style.outline(shape[-2]), ow)
            for shape in shapes:
                role, color = shape[-1], shape[-2]
                self._draw(draw, shape, style.detail(color) if role == "mark" else style.fill(color), 0.0)

    def _draw(self, draw, shape, color, grow: float) -> None:
        kind = shape[0]
        if kind == "line":
            _, pts, width, *_ = shape
            draw.line(pts, fill=color, width=max(1, int(round(width + 2 * grow))))
            return
        if kind == "cap" and shape[5] + grow < 0.8:  # thinner than a pixel: a polygon could vanish
            _, x0, y0, x1, y1, r, *_ = shape
            draw.line([(x0, y0), (x1, y1)], fill=color, width=1)
            return
        pts = self._points(shape, grow)
        if pts is not None:
            draw.polygon(pts, fill=color)
        elif kind == "disc":
            _, x, y, r, *_ = shape
            r += grow
            draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
        elif kind == "poly":
            pts = shape[1]
            if grow:
                draw.line(pts + [pts[0]], fill=color, width=max(1, int(round(2 * grow))), joint="curve")
            draw.polygon(pts, fill=color)


def _lookup(kind: str, key, table: dict):
    if key is None or key in table:
        return key
    raise KeyError(f"unknown {kind} {key!r}; choose one of: {', '.join(table)}")


@dataclass
class ClipPlan:
    """Everything random about a clip, drawn from its seed, and what painting it needs."""

    figure: Figure
    scene: Scene
    style: Style
    painter: Painter
    times: np.ndarray
    scroll: np.ndarray  # ground offset per frame, canvas pixels
    lift: np.ndarray
    ground: float  # canvas row the subject stands on
    scale: float  # canvas pixels per body height
    canvas_size: tuple[int, int]
    height: int
    width: int
    grain: np.ndarray | None = None


def plan_clip(subject: str | Subject, motion: str | Motion, *, background: str | None = None,
              style: str | None = None, frames: int = 17, fps: float = 8.0, height: int = 64, width: int = 64,
              seed: int = 0) -> ClipPlan:
    """Lay out a clip: timing, pose, framing and background, all from ``seed``."""
    from . import MOTIONS, SUBJECTS

    subj = subject if isinstance(subject, Subject) else SUBJECTS[_lookup("subject", subject, SUBJECTS)]
    mot = motion if isinstance(motion, Motion) else MOTIONS[_lookup("motion", motion, MOTIONS)]
    _lookup("background", background, BACKGROUNDS)
    _lookup("style", style, STYLES)
    if frames < 1 or fps <= 0 or not (8 <= height <= MAX_SIDE and 8 <= width <= MAX_SIDE):
        raise ValueError(f"bad clip shape: frames={frames}, fps={fps}, size={height}x{width} (8..{MAX_SIDE} pixels)")
    look = get_style(style)
    rng = np.random.default_rng(seed)

    # Timing: random speed, and a random phase (cyclic) or start delay (one-shot, still finishing in the clip).
    facing = 1.0 if rng.random() < 0.5 else -1.0
    base_yaw = rng.uniform(*VIEW_YAW)
    speed = rng.uniform(*SPEED_RANGE)
    start = rng.random()
    times = np.arange(frames) / fps
    if mot.cyclic:
        progress = times * speed / mot.duration + start
    else:
        slack = max(0.0, times[-1] - mot.duration / speed)
        progress = (times - 0.5 * slack * start) * speed / mot.duration
    channels = mot.sample(progress)
    pose = skeleton.pose(subj.body, channels, base_yaw)
    scene_look = BACKGROUND_LOOKS[background]
    figure = Figure(subj, pose, channels, light=scene_look.light)

    # Travel: the camera follows when the subject would otherwise cross too much of the picture.
    along = np.asarray(channels.get("dx", np.zeros(frames))) * math.cos(math.radians(base_yaw))
    along = along - along[0]
    span = float(along.max() - along.min())
    follow = 0.0 if span <= MAX_SCREEN_TRAVEL else 1.0 - MAX_SCREEN_TRAVEL / span
    on_screen = (1.0 - follow) * along

    # Framing in output pixels: random ground line, horizon and size, shrunk until every frame fits.
    margin = 0.04 * min(height, width)
    ground = rng.uniform(0.8, 0.92) * height
    horizon = rng.uniform(0.42, 0.58) * height
    xmin, xmax, ytop = figure.extent(facing, on_screen)
    scale = min(rng.uniform(*HEIGHT_RANGE) * height, (ground - margin) / max(ytop, 1e-3),
                (width - 2 * margin) / max(xmax - xmin, 1e-3))
    lo, hi = margin - scale * xmin, width - margin - scale * xmax
    x0 = rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2

    k = look.canvas_scale(height, width)
    if look.key == "pixel":
        block = look.pixel_size(height, width)
        canvas_size = (-(-height // block), -(-width // block))
    else:
        canvas_size = (int(round(height * k)), int(round(width * k)))
    scene_rng = np.random.default_rng(rng.integers(2**63))
    scene = build_scene(background, look, canvas_size, int(round(horizon * k)), k, scene_rng)
    figure.project(View(x0=x0 * k, ground=ground * k, scale=scale * k, facing=facing, travel=on_screen))
    painter = Painter(look, k, look.outline_width * k * max(1.0, min(height, width) / 64), scene_rng)
    grain = None
    if look.key == "cut-paper":
        grain = np.round(scene_rng.normal(0, 5.0, (height, width, 1))).astype(np.int16)
    return ClipPlan(figure=figure, scene=scene, style=look, painter=painter, times=times,
                    scroll=-facing * follow * along * scale * k,
                    lift=np.asarray(channels.get("lift", np.zeros(frames)), dtype=np.float64),
                    ground=ground * k, scale=scale * k, canvas_size=canvas_size, height=height, width=width,
                    grain=grain)


def paint_clip(plan: ClipPlan, with_subject: bool = True) -> np.ndarray:
    """The planned clip as uint8 (frames, height, width, 3); ``with_subject=False`` paints the scene alone (the
    same pixels wherever the subject and its shadow are not)."""
    figure, look = plan.figure, plan.style
    hips_x = figure.xy["hips"][0]
    out = np.empty((len(plan.times), plan.height, plan.width, 3), dtype=np.uint8)
    for f in range(len(plan.times)):
        canvas = plan.scene.frame(int(round(plan.scroll[f])))
        if with_subject:
            groups = figure.shapes(f)
            if look.key == "cut-paper":
                _paint_cut_paper(canvas, plan.painter, groups, plan.painter.unit)
            else:
                draw = ImageDraw.Draw(canvas)
                rx = 0.2 * plan.scale / (1 + 3 * max(0.0, plan.lift[f]))
                draw.ellipse([hips_x[f] - rx, plan.ground - 0.25 * rx, hips_x[f] + rx, plan.ground + 0.25 * rx],
                             fill=plan.scene.shadow)
                plan.painter.paint(draw, groups)
        plan.scene.draw_front(canvas, float(plan.times[f]))
        out[f] = look.finish(canvas, plan.height, plan.width, plan.grain)
    return out


def render_clip(subject: str | Subject, motion: str | Motion, *, background: str | None = None,
                style: str | None = None, frames: int = 17, fps: float = 8.0, height: int = 64, width: int = 64,
                seed: int = 0) -> np.ndarray:
    """A clip as uint8 (frames, height, width, 3). ``subject``/``motion`` are names (or objects, e.g. a
    motion loaded from a file); ``background`` a key of BACKGROUNDS and ``style`` a key of STYLES, or None.
    The same arguments always give the same pixels."""
    return paint_clip(plan_clip(subject, motion, background=background, style=style, frames=frames, fps=fps,
                                height=height, width=width, seed=seed))


def render_clip_and_mask(subject: str | Subject, motion: str | Motion, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``render_clip(subject, motion, **kwargs)`` and where the subject (with its shadow) is in it, as bool
    (frames, height, width): the pixels that differ from the same scene painted without the subject."""
    plan = plan_clip(subject, motion, **kwargs)
    # the scene first: painting it draws nothing from the plan's painter, so the full clip that follows is
    # exactly render_clip's
    scene = paint_clip(plan, with_subject=False)
    full = paint_clip(plan)
    return full, (full != scene).any(axis=-1)


def _paint_cut_paper(canvas: Image.Image, painter: Painter, groups, unit: float) -> None:
    """Paint on a separate layer, darken the background under the layer's offset silhouette, then lay it on."""
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    painter.paint(ImageDraw.Draw(layer), groups)
    alpha = np.asarray(layer.getchannel("A"), dtype=np.float32) / 255.0
    shift = max(1, int(round(2.0 * unit)))
    shadow = np.zeros_like(alpha)
    shadow[shift:, shift:] = alpha[:-shift, :-shift]
    base = np.asarray(canvas, dtype=np.float32) * (1.0 - 0.55 * shadow)[..., None]
    merged = Image.fromarray(base.astype(np.uint8)).convert("RGBA")
    merged.alpha_composite(layer)
    canvas.paste(merged.convert("RGB"))
