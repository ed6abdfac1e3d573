"""A posed subject as drawable shapes: the skeleton's joints plus the subject's features (ears, snout,
tail …) in world space for every frame, and per frame the shapes grouped by body part in drawing order.

Shapes are tuples, drawn by ``render.Painter``:
  ("cap", x0, y0, x1, y1, r, color, role)   a capsule (a thick segment with round ends)
  ("disc", x, y, r, color, role)
  ("poly", [(x, y), …], color, role)
  ("line", [(x, y), …], width, color, role)
``role`` is "part" (outlined body part), "patch" (a coloured area on a part) or "mark" (eyes, stripes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .skeleton import SIDES, Pose, apply
from .subjects import Subject


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _darker(color, k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c * k)) for c in color)


@dataclass
class View:
    """How world units map to canvas pixels: x = x0 + facing * scale * (X + travel), y = ground - scale * Y."""

    x0: float
    ground: float
    scale: float
    facing: float
    travel: np.ndarray  # (F,) travel shown on screen, in body heights along the subject's facing


class Figure:
    """World-space points of a posed subject (each an (F, 3) array) and how to draw frame ``f``."""

    def __init__(self, subject: Subject, pose: Pose, channels: dict[str, np.ndarray],
                 light=(1.0, 1.0, 1.0)):
        self.subject, self.pose, self.light = subject, pose, light
        b, p = subject.body, pose.points
        self.points: dict[str, np.ndarray] = {k: v.copy() for k, v in p.items()}
        self.radius: dict[str, float] = {"head": b.head_radius, "hips": b.torso_radius, "neck": b.torso_radius}
        for name in SIDES:
            self.radius.update({f"hand_{name}": b.hand_radius, f"elbow_{name}": b.arm_radius,
                                f"knee_{name}": b.leg_radius, f"toe_{name}": b.foot_radius})
        r, head = b.head_radius, p["head"]
        hd = pose.head

        def on_head(local, scale=r) -> np.ndarray:
            return head + apply(hd, np.asarray(local, dtype=np.float64) * scale)

        def facing_viewer(local) -> np.ndarray:
            return apply(hd, _unit(local))[:, 2]

        self.head_forward_z = hd[:, 2, 0]
        self.torso_forward_z = pose.torso[:, 2, 0]
        f = subject.feature
        self.eye_visible: dict[str, list[float]] = {}
        eyes = f("eyes")
        for name, s in SIDES.items():
            local = (0.3, 0.82, s * 0.42) if eyes["style"] == "top" else (0.72, 0.22, s * 0.5)
            self.points[f"eye_{name}"] = on_head(_unit(local) * 0.92)
            self.eye_visible[name] = facing_viewer(local).tolist()
        if snout := f("snout"):
            down = -0.12 if snout["shape"] == "long" else -0.05
            start = np.array([0.5, -0.2, 0.0])
            self.points["snout_0"] = on_head(start)
            self.points["snout_1"] = on_head(start + _unit((1.0, down, 0.0)) * snout["length"])
            self.radius["snout_1"] = snout["width"] * r
        if ears := f("ears"):
            tilt = {"pointy": 22.0, "round": 40.0, "long": 8.0}[ears["shape"]]
            for name, s in SIDES.items():
                base = _unit((-0.1, 0.8, s * 0.55)) * 0.85
                direction = np.array([-0.1, math.cos(math.radians(tilt)), s * math.sin(math.radians(tilt))])
                self.points[f"ear_{name}"] = on_head(base)
                self.points[f"ear_tip_{name}"] = on_head(base + direction * ears["size"])
                self.radius[f"ear_tip_{name}"] = 0.3 * r * ears["size"]
        if antenna := f("antenna"):
            self.points["antenna_0"] = on_head((0.0, 0.9, 0.0))
            self.points["antenna_1"] = on_head((0.0, 1.0 + antenna["length"], 0.0))
            self.radius["antenna_1"] = 0.2 * r
        if mane := f("mane"):
            self.points["mane"] = on_head((-0.2, 0.0, 0.0))
            self.radius["mane"] = mane["size"] * r
        if f("face"):
            self.points["face"] = on_head((0.42, -0.05, 0.0))
        # Projected head axes for decorations drawn in the picture plane (hair, box head, mane).
        self.head_up = hd[:, :, 1]
        self.head_fwd = hd[:, :, 0]
        self.torso_up = pose.torso[:, :, 1]
        self.torso_fwd = pose.torso[:, :, 0]
        if belly := f("belly"):
            k = b.torso_radius * (1 - belly["size"]) * 0.95
            self.points["belly_0"] = p["hips"] + apply(pose.torso, np.array([k, 0.12 * b.torso_length, 0.0]))
            self.points["belly_1"] = p["hips"] + apply(pose.torso, np.array([k, 0.82 * b.torso_length, 0.0]))
        if f("panel"):
            self.points["panel"] = p["hips"] + apply(pose.torso, np.array([0.55 * b.torso_radius, 0.6 * b.torso_length, 0.0]))
        if ridges := f("ridges"):
            for i in range(ridges["count"]):
                y = b.torso_length * (0.12 + 0.8 * i / max(1, ridges["count"] - 1))
                self.points[f"ridge_{i}"] = p["hips"] + apply(pose.torso, np.array([-0.8 * b.torso_radius, y, 0.0]))
                self.points[f"ridge_tip_{i}"] = p["hips"] + apply(
                    pose.torso, np.array([-(0.8 + 0.9 * ridges["size"]) * b.torso_radius, y + 0.3 * ridges["size"] * b.torso_radius, 0.0]))
        if tail := f("tail"):
            angle = tail["lift"] + channels.get("tail", 0.0)
            point = p["hips"] + apply(pose.root, np.array([-0.85 * b.torso_radius, 0.04, 0.0]))
            self.points["tail_0"] = point
            n = int(tail["segments"]) if tail["length"] > 0 else 0
            for i in range(n):
                a = np.deg2rad(angle + tail["curl"] * i)
                step = np.stack([-np.cos(a), np.sin(a), np.zeros_like(a)], -1) * (tail["length"] / n)
                point = point + np.einsum("fij,fj->fi", pose.root, np.broadcast_to(step, point.shape))
                self.points[f"tail_{i + 1}"] = point
            self.tail_segments = n
            self.radius[f"tail_{n}"] = max(tail["tip_size"], tail["tip_width"])

        # Ears, tails and snouts never go through the floor: where one would, the whole body rises.
        lowest = np.min([self.points[name][:, 1] - r for name, r in self.radius.items()], axis=0)
        rise = np.maximum(0.0, -lowest)
        if rise.any():
            for pts in self.points.values():
                pts[:, 1] += rise

    # --- layout -----------------------------------------------------------------------------------

    def extent(self, facing: float, travel: np.ndarray) -> tuple[float, float, float]:
        """Smallest x, largest x and highest y over all frames, in body heights, on screen."""
        xmin, xmax, ytop = math.inf, -math.inf, -math.inf
        for name, r in self.radius.items():
            pts = self.points[name]
            x = facing * (pts[:, 0] + travel)
            xmin, xmax = min(xmin, float(x.min()) - r), max(xmax, float(x.max()) + r)
            ytop = max(ytop, float(pts[:, 1].max()) + r)
        return xmin, xmax, ytop

    # --- drawing ----------------------------------------------------------------------------------

    def project(self, view: View) -> None:
        """Canvas coordinates (lists of floats per point) for ``shapes``."""
        self.xy: dict[str, tuple[list, list, list]] = {}
        for name, pts in self.points.items():
            xs = view.x0 + view.facing * view.scale * (pts[:, 0] + view.travel)
            ys = view.ground - view.scale * pts[:, 1]
            self.xy[name] = (xs.tolist(), ys.tolist(), pts[:, 2].tolist())
        s, fc = view.scale, view.facing
        self.head_up2 = np.column_stack([fc * self.head_up[:, 0], -self.head_up[:, 1]]).tolist()
        self.head_fwd2 = np.column_stack([fc * self.head_fwd[:, 0], -self.head_fwd[:, 1]]).tolist()
        self.torso_up2 = np.column_stack([fc * self.torso_up[:, 0], -self.torso_up[:, 1]]).tolist()
        self.px = s  # canvas pixels per body height

    def _pt(self, name: str, f: int) -> tuple[float, float]:
        xs, ys, _ = self.xy[name]
        return xs[f], ys[f]

    def _z(self, name: str, f: int) -> float:
        return self.xy[name][2][f]

    def _lit(self, color) -> tuple[int, int, int]:
        return _lit(color, self.light)

    def shapes(self, f: int) -> list[tuple[float, list[tuple]]]:
        """Groups of shapes for frame ``f``, each with its depth (draw the lowest first)."""
        subj, b, px = self.subject, self.subject.body, self.px
        colors = {k: self._lit(v) for k, v in subj.colors.items()}
        feature = subj.feature
        stripes = feature("stripes")
        stripe_on = set(stripes["on"]) if stripes else set()
        groups: list[tuple[float, list[tuple]]] = []
        torso_z = (self._z("hips", f) + self._z("neck", f)) / 2

        def shade_for(z: float) -> float:
            return 0.78 + 0.22 * min(1.0, max(0.0, (z - torso_z) / (3 * b.shoulder_width) + 0.5))

        def striped(shapes, a, bb, r, spacing_px):
            if not stripes:
                return
            (x0, y0), (x1, y1) = a, bb
            length = math.hypot(x1 - x0, y1 - y0)
            if length < 1e-6:
                return
            nx, ny = -(y1 - y0) / length, (x1 - x0) / length
            count = int(length / spacing_px)
            for i in range(count):
                t = (i + 0.5) / count
                cx, cy = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
                shapes.append(("line", [(cx - nx * r * 0.95, cy - ny * r * 0.95), (cx + nx * r * 0.95, cy + ny * r * 0.95)],
                               stripes["width"] * px, self._lit(stripes["color"]), "mark"))

        spacing = stripes["spacing"] * px if stripes else 0.0

        # Legs and arms.
        for name in SIDES:
            z = (self._z(f"hip_{name}", f) + self._z(f"knee_{name}", f) + self._z(f"ankle_{name}", f)) / 3
            k = shade_for(z)
            hip, knee, ankle, toe = (self._pt(f"{j}_{name}", f) for j in ("hip", "knee", "ankle", "toe"))
            leg = [("cap", *hip, *knee, b.leg_radius * px, _darker(colors["upper_leg"], k), "part"),
                   ("cap", *knee, *ankle, b.leg_radius * 0.92 * px, _darker(colors["lower_leg"], k), "part"),
                   ("cap", *ankle, *toe, b.foot_radius * px, _darker(colors["foot"], k), "part")]
            if "limbs" in stripe_on:
                striped(leg, hip, knee, b.leg_radius * px, spacing)
                striped(leg, knee, ankle, b.leg_radius * 0.92 * px, spacing)
            groups.append((z - 0.04, leg))

            z = (self._z(f"shoulder_{name}", f) + self._z(f"elbow_{name}", f) + self._z(f"hand_{name}", f)) / 3
            k = shade_for(z)
            shoulder, elbow, hand = (self._pt(f"{j}_{name}", f) for j in ("shoulder", "elbow", "hand"))
            arm = [("cap", *shoulder, *elbow, b.arm_radius * px, _darker(colors["upper_arm"], k), "part"),
                   ("cap", *elbow, *hand, b.arm_radius * 0.92 * px, _darker(colors["lower_arm"], k), "part"),
                   ("disc", *hand, b.hand_radius * px, _darker(colors["hand"], k), "part")]
            if "limbs" in stripe_on:
                striped(arm, shoulder, elbow, b.arm_radius * px, spacing)
                striped(arm, elbow, hand, b.arm_radius * 0.92 * px, spacing)
            groups.append((z + 0.01, arm))

        # Torso with its belly, plate, ridges and stripes.
        hips, neck = self._pt("hips", f), self._pt("neck", f)
        tr = b.torso_radius * px
        torso: list[tuple] = []
        if ridges := feature("ridges"):
            ux, uy = self.torso_up2[f]
            half = 0.35 * ridges["size"] * tr
            for i in range(ridges["count"]):
                bx, by = self._pt(f"ridge_{i}", f)
                tx, ty = self._pt(f"ridge_tip_{i}", f)
                torso.append(("poly", [(bx - ux * half, by - uy * half), (tx, ty), (bx + ux * half, by + uy * half)],
                              self._lit(ridges["color"] or subj.colors["torso"]), "part"))
        torso.append(("cap", *hips, *neck, tr, colors["torso"], "part"))
        if (belly := feature("belly")) and self.torso_forward_z[f] > -0.3:
            torso.append(("cap", *self._pt("belly_0", f), *self._pt("belly_1", f), belly["size"] * tr,
                          self._lit(belly["color"]), "patch"))
        if "torso" in stripe_on:
            striped(torso, hips, neck, tr, spacing * 1.2)
        if (panel := feature("panel")) and self.torso_forward_z[f] > 0.0:
            cx, cy = self._pt("panel", f)
            ux, uy = self.torso_up2[f]
            h = 0.42 * tr
            torso.append(("poly", [(cx + (ux + uy) * h, cy + (uy - ux) * h), (cx + (ux - uy) * h, cy + (uy + ux) * h),
                                   (cx - (ux + uy) * h, cy - (uy - ux) * h), (cx - (ux - uy) * h, cy - (uy + ux) * h)],
                          self._lit(panel["color"]), "mark"))
        groups.append((torso_z, torso))

        # Tail.
        if tail := feature("tail"):
            pts = [self._pt(f"tail_{i}", f) for i in range(self.tail_segments + 1)]
            shapes: list[tuple] = []
            color = self._lit(tail["color"] or subj.colors["torso"])
            for i in range(self.tail_segments):
                t = i / max(1, self.tail_segments - 1)
                r = (tail["width"] * (1 - t) + tail["tip_width"] * t) * px
                shapes.append(("cap", *pts[i], *pts[i + 1], r, color, "part"))
                if "tail" in stripe_on and i % 2 == 1:
                    shapes.append(("cap", *pts[i], *pts[i + 1], r * 0.8, self._lit(stripes["color"]), "patch"))
            if tail["tip_size"] > 0:
                shapes.append(("disc", *pts[-1], tail["tip_size"] * px, self._lit(tail["tip"] or color), "part"))
            z = sum(self._z(f"tail_{i}", f) for i in range(self.tail_segments + 1)) / (self.tail_segments + 1)
            # Seen from the front the tail and the torso are level: the tail belongs behind.
            groups.append((min(z, torso_z - 1e-3) if abs(z - torso_z) < 0.02 else z, shapes))

        groups.append((self._z("head", f) + 0.5 * b.head_radius, self._head(f, colors)))
        groups.sort(key=lambda g: g[0])
        return groups

    def _head(self, f: int, colors) -> list[tuple]:
        subj, b, px = self.subject, self.subject.body, self.px
        feature = subj.feature
        r = b.head_radius * px
        cx, cy = self._pt("head", f)
        ux, uy = self.head_up2[f]
        norm = math.hypot(ux, uy) or 1.0
        ux, uy = ux / norm, uy / norm
        fx, fy = self.head_fwd2[f]
        front = self.head_forward_z[f]
        shapes: list[tuple] = []
        if mane := feature("mane"):
            mx, my = self._pt("mane", f)
            n, outer = int(mane["spikes"]), mane["size"] * r
            base = math.atan2(uy, ux)
            star = []
            for i in range(2 * n):
                a = base + math.pi * i / n
                rr = outer if i % 2 == 0 else outer * 0.78
                star.append((mx + rr * math.cos(a), my + rr * math.sin(a)))
            shapes.append(("poly", star, self._lit(mane["color"]), "part"))
        if antenna := feature("antenna"):
            a0, a1 = self._pt("antenna_0", f), self._pt("antenna_1", f)
            shapes.append(("line", [a0, a1], max(1.0, 0.12 * r), self._lit(antenna["color"]), "mark"))
            shapes.append(("disc", *a1, 0.2 * r, self._lit(antenna["tip"]), "part"))
        if ears := feature("ears"):
            for name in SIDES:
                shapes += self._ear(ears, self._pt(f"ear_{name}", f), self._pt(f"ear_tip_{name}", f), r)
        snout = feature("snout")
        snout_shapes = self._snout(snout, f, r) if snout else []
        if front <= -0.2:
            shapes += snout_shapes
        if subj.head_shape == "box":
            h = 0.95 * r
            shapes.append(("poly", [(cx + (ux + uy) * h, cy + (uy - ux) * h), (cx + (ux - uy) * h, cy + (uy + ux) * h),
                                    (cx - (ux + uy) * h, cy - (uy - ux) * h), (cx - (ux - uy) * h, cy - (uy + ux) * h)],
                           colors["head"], "part"))
        else:
            shapes.append(("disc", cx, cy, r, colors["head"], "part"))
        stripes = feature("stripes")
        if stripes and "head" in stripes["on"]:
            # Bands across the head, square to its up axis.
            for o in (-0.5, 0.0, 0.5):
                half = 0.9 * r * math.sqrt(1 - o * o)
                mx, my = cx + ux * o * r, cy + uy * o * r
                shapes.append(("line", [(mx - uy * half, my + ux * half), (mx + uy * half, my - ux * half)],
                               stripes["width"] * px, self._lit(stripes["color"]), "mark"))
        if hair := feature("hair"):
            # A cap over the top of the head, pulled towards the back as the face turns sideways.
            dx, dy = ux - 0.55 * fx, uy - 0.55 * fy
            d = math.hypot(dx, dy) or 1.0
            centre = math.atan2(dy / d, dx / d)
            cap = [(cx + 1.06 * r * math.cos(centre + math.radians(a)), cy + 1.06 * r * math.sin(centre + math.radians(a)))
                   for a in range(-80, 81, 20)]
            shapes.append(("poly", cap, self._lit(hair["color"]), "patch"))
        if (face := feature("face")) and front > -0.35:
            shapes.append(("disc", *self._pt("face", f), face["size"] * r, self._lit(face["color"]), "patch"))
        if front > -0.2:
            shapes += snout_shapes
        shapes += self._eyes(feature("eyes"), f, r, front)
        return shapes

    def _ear(self, ears, base, tip, r) -> list[tuple]:
        (bx, by), (tx, ty) = base, tip
        length = math.hypot(tx - bx, ty - by) or 1e-6
        nx, ny = -(ty - by) / length, (tx - bx) / length
        size = ears["size"] * r
        color = self._lit(ears["color"] or self.subject.colors["head"])
        inner = self._lit(ears["inner"]) if ears["inner"] else None
        out: list[tuple] = []
        if ears["shape"] == "pointy":
            w = 0.55 * size
            out.append(("poly", [(bx + nx * w, by + ny * w), (tx, ty), (bx - nx * w, by - ny * w)], color, "part"))
            if inner:
                mx, my = bx + (tx - bx) * 0.2, by + (ty - by) * 0.2
                ix, iy = bx + (tx - bx) * 0.8, by + (ty - by) * 0.8
                out.append(("poly", [(mx + nx * w * 0.5, my + ny * w * 0.5), (ix, iy), (mx - nx * w * 0.5, my - ny * w * 0.5)],
                            inner, "patch"))
            if ears["tip"]:
                k = 0.65
                jx, jy = bx + (tx - bx) * k, by + (ty - by) * k
                out.append(("poly", [(jx + nx * w * (1 - k), jy + ny * w * (1 - k)), (tx, ty),
                                     (jx - nx * w * (1 - k), jy - ny * w * (1 - k))], self._lit(ears["tip"]), "patch"))
        elif ears["shape"] == "round":
            cx, cy = bx + (tx - bx) * 0.4, by + (ty - by) * 0.4
            out.append(("disc", cx, cy, 0.6 * size, color, "part"))
            if inner:
                out.append(("disc", cx, cy, 0.32 * size, inner, "patch"))
        else:  # long
            out.append(("cap", bx, by, tx, ty, 0.2 * size, color, "part"))
            if inner:
                ix, iy = bx + (tx - bx) * 0.2, by + (ty - by) * 0.2
                out.append(("cap", ix, iy, tx - (tx - bx) * 0.08, ty - (ty - by) * 0.08, 0.1 * size, inner, "patch"))
        return out

    def _snout(self, snout, f: int, r: float) -> list[tuple]:
        (x0, y0), (x1, y1) = self._pt("snout_0", f), self._pt("snout_1", f)
        width = snout["width"] * r
        color = self._lit(snout["color"] or self.subject.colors["head"])
        nose = self._lit(snout["nose"])
        length = math.hypot(x1 - x0, y1 - y0)
        out: list[tuple] = []
        if snout["shape"] == "cone":
            if length > 1e-6:
                nx, ny = -(y1 - y0) / length, (x1 - x0) / length
                out.append(("poly", [(x0 + nx * width, y0 + ny * width), (x1, y1), (x0 - nx * width, y0 - ny * width)],
                            color, "part"))
            out.append(("disc", x1, y1, 0.3 * width, nose, "mark"))
        else:
            rad = width if snout["shape"] == "round" else 0.6 * width
            out.append(("cap", x0, y0, x1, y1, rad, color, "part"))
            if length > 1e-6:
                ex, ey = x1 + (x1 - x0) / length * rad * 0.7, y1 + (y1 - y0) / length * rad * 0.7
            else:
                ex, ey = x1, y1
            out.append(("disc", ex, ey, 0.38 * rad, nose, "mark"))
        return out

    def _eyes(self, eyes, f: int, r: float, front: float) -> list[tuple]:
        out: list[tuple] = []
        size = eyes["size"] * r
        color = self._lit(eyes["color"])
        if eyes["style"] == "visor":
            if front > -0.3:
                a, b = self._pt("eye_l", f), self._pt("eye_r", f)
                out.append(("line", [a, b], size, color, "mark"))
                out.append(("disc", *a, size * 0.5, color, "mark"))
                out.append(("disc", *b, size * 0.5, color, "mark"))
            return out
        fx, fy = self.head_fwd2[f]
        for name in SIDES:
            x, y = self._pt(f"eye_{name}", f)
            if eyes["style"] == "top":
                out.append(("disc", x, y, size, self._lit(eyes["white"]), "part"))
                out.append(("disc", x + fx * size * 0.35, y + fy * size * 0.35, size * 0.5, color, "mark"))
                continue
            if self.eye_visible[name][f] <= 0.05:
                continue
            if eyes["patch"]:
                out.append(("disc", x, y + 0.2 * size, size * 2.0, self._lit(eyes["patch"]), "patch"))
            if eyes["style"] == "big":
                out.append(("disc", x, y, size, self._lit(eyes["white"]), "mark"))
                out.append(("disc", x + fx * size * 0.3, y, size * 0.5, color, "mark"))
            else:
                out.append(("disc", x, y, size, color, "mark"))
        return out


def _lit(color, light) -> tuple[int, int, int]:
    return tuple(int(min(255, round(c * k))) for c, k in zip(color, light))
