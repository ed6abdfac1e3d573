"""Motions: joint-angle and root trajectories given as keyframes in TOML, one file per motion.

A motion file (``data/motions/clap.toml``; more in the folders named by ``SYNMOTION_TOY_MOTIONS``)::

    set = "custom"            # "base": the toy base trains on it; "custom": it never sees it
    verb = "clap"             # base form; third_person ("claps") is derived unless given
    duration = 0.5            # seconds per cycle (cyclic) or for the whole movement (one-shot)
    cyclic = true
    mirror = 0.5              # optional: *_r channels not given copy *_l, this many cycles later
    [pose]                    # constant channels
    shoulder_l = 75
    [per_cycle]               # optional, cyclic only: channels that grow each cycle (travel, spinning)
    dx = 0.8
    [[key]]                   # keyframes: a phase in [0, 1] and any channels (see skeleton.CHANNELS)
    at = 0.0
    arm_out_l = 40

Each channel is interpolated through its own keys with a cubic Hermite spline using Catmull-Rom tangents
(wrapping around for cyclic motions; easing in and out at the ends of one-shot ones).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np
from synmotion_cli.errors import UsageError
from synmotion_cli.prompts import inflections

from .skeleton import CHANNELS

MOTIONS_ENV = "SYNMOTION_TOY_MOTIONS"
MOTION_SETS = ("base", "custom")
_TOP_KEYS = {"set", "verb", "third_person", "duration", "cyclic", "mirror", "description", "pose", "per_cycle", "key"}


class MotionFileError(UsageError):
    """A motion file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Curve:
    """One channel through its keys: phases ``at`` (ascending) and ``values``."""

    at: np.ndarray
    values: np.ndarray
    cyclic: bool

    def __call__(self, phase: np.ndarray) -> np.ndarray:
        at, values = self.at, self.values
        if len(at) == 1:
            return np.full(np.shape(phase), values[0], dtype=np.float64)
        if self.cyclic:
            # One key wrapped on each side (two after) gives every segment its Catmull-Rom neighbours.
            at = np.concatenate([at[-1:] - 1.0, at, at[:2] + 1.0])
            values = np.concatenate([values[-1:], values, values[:2]])
            slopes = (values[2:] - values[:-2]) / (at[2:] - at[:-2])
            at, values = at[1:-1], values[1:-1]
            phase = np.mod(phase, 1.0) + np.where(np.mod(phase, 1.0) < at[0], 1.0, 0.0)
        else:
            inner = (values[2:] - values[:-2]) / (at[2:] - at[:-2])
            slopes = np.concatenate([[0.0], inner, [0.0]])  # ease in and out
            phase = np.clip(phase, at[0], at[-1])
        i = np.clip(np.searchsorted(at, phase, side="right") - 1, 0, len(at) - 2)
        h = at[i + 1] - at[i]
        s = (phase - at[i]) / h
        h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
        return h00 * values[i] + h10 * h * slopes[i] + h01 * values[i + 1] + h11 * h * slopes[i + 1]


@dataclass(frozen=True)
class Motion:
    """A motion: ``name``, ``verb`` ("sit down"), ``third_person`` ("sits down"), ``set`` ("base" or
    "custom"), ``duration`` in seconds, ``cyclic``; ``sample`` gives its channels at any time."""

    name: str
    verb: str
    third_person: str
    set: str
    duration: float
    cyclic: bool
    description: str = ""
    curves: Mapping[str, Curve] = field(default_factory=dict)
    per_cycle: Mapping[str, float] = field(default_factory=dict)
    mirror: float | None = None
    source: str = ""

    def sample(self, progress: np.ndarray) -> dict[str, np.ndarray]:
        """Channel values at ``progress``: cycles since the start (cyclic) or the fraction done (one-shot)."""
        progress = np.asarray(progress, dtype=np.float64)
        out: dict[str, np.ndarray] = {}
        for name in CHANNELS:
            source, shift = name, 0.0
            if name not in self.curves and name not in self.per_cycle and name.endswith("_r") \
                    and self.mirror is not None:
                source, shift = name[:-2] + "_l", self.mirror
            curve, growth = self.curves.get(source), self.per_cycle.get(source, 0.0)
            if curve is None and not growth:
                continue
            t = progress + shift
            value = curve(t) if curve is not None else np.zeros_like(t)
            out[name] = value + growth * t
        return out


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, not {value!r}")
    return float(value)


def _channels(table: Mapping, where: str) -> dict[str, float]:
    unknown = set(table) - set(CHANNELS)
    if unknown:
        raise ValueError(f"{where}: unknown channels {sorted(unknown)}; channels are {', '.join(CHANNELS)}")
    return {k: _number(v, f"{where}.{k}") for k, v in table.items()}


def parse_motion(name: str, data: Mapping, source: str = "") -> Motion:
    """A Motion from a parsed motion file; ValueError says what is wrong."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; a motion file holds {', '.join(sorted(_TOP_KEYS))}")
    motion_set = data.get("set")
    if motion_set not in MOTION_SETS:
        raise ValueError(f'set = {motion_set!r}; write set = "base" or set = "custom"')
    verb = str(data.get("verb", "")).strip()
    if not verb:
        raise ValueError('no verb; write e.g. verb = "clap"')
    duration = _number(data.get("duration", 1.0), "duration")
    if duration <= 0:
        raise ValueError("duration must be positive (seconds)")
    cyclic = data.get("cyclic", True)
    if not isinstance(cyclic, bool):
        raise ValueError("cyclic must be true or false")
    mirror = data.get("mirror")
    mirror = None if mirror is None else _number(mirror, "mirror")
    per_cycle = _channels(data.get("per_cycle", {}), "[per_cycle]")
    if per_cycle and not cyclic:
        raise ValueError("[per_cycle] needs cyclic = true")

    keys: dict[str, list[tuple[float, float]]] = {k: [(0.0, v)] for k, v in _channels(data.get("pose", {}), "[pose]").items()}
    for n, key in enumerate(data.get("key", [])):
        key = dict(key)
        if "at" not in key:
            raise ValueError(f"[[key]] number {n + 1} has no `at` (its phase, 0 to 1)")
        at = _number(key.pop("at"), f"[[key]] {n + 1}.at")
        if not 0.0 <= at <= 1.0:
            raise ValueError(f"[[key]] {n + 1}: at = {at} is outside 0..1")
        for channel, value in _channels(key, f"[[key]] {n + 1}").items():
            if channel in data.get("pose", {}):
                raise ValueError(f"channel {channel!r} is both in [pose] and in a [[key]]")
            keys.setdefault(channel, []).append((at, value))

    curves = {}
    for channel, points in keys.items():
        points.sort()
        ats = [a for a, _ in points]
        if len(set(ats)) != len(ats):
            raise ValueError(f"channel {channel!r} has two keys at the same phase")
        if cyclic and len(points) > 1 and ats[-1] == 1.0:
            # A key at 1 closes the loop: it must repeat the key at 0.
            if ats[0] != 0.0 or points[0][1] != points[-1][1]:
                raise ValueError(f"cyclic channel {channel!r}: its key at 1 must equal its key at 0")
            points = points[:-1]
        curves[channel] = Curve(np.array([a for a, _ in points]), np.array([v for _, v in points]), cyclic)

    third = str(data.get("third_person") or inflections(verb)[1])
    return Motion(name=name, verb=verb, third_person=third, set=motion_set, duration=duration, cyclic=cyclic,
                  description=str(data.get("description", "")), curves=MappingProxyType(curves),
                  per_cycle=MappingProxyType(per_cycle), mirror=mirror, source=source)


def load_motion_file(path: Path) -> Motion:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return parse_motion(path.stem, data, str(path))
    except (tomllib.TOMLDecodeError, ValueError, OSError) as e:
        raise MotionFileError(f"motion file {path}: {e}",
                              hint="fix the file (see docs/toy-world.md for the motion format) or move it away") from None


def motion_dirs() -> list[Path]:
    """The built-in motions folder, then each folder in $SYNMOTION_TOY_MOTIONS (later ones win)."""
    dirs = [Path(str(resources.files("synmotion_toy").joinpath("data/motions")))]
    extra = os.environ.get(MOTIONS_ENV, "")
    dirs += [Path(d).expanduser() for d in extra.split(os.pathsep) if d.strip()]
    return dirs


def load_motions(dirs: list[Path] | None = None) -> dict[str, Motion]:
    """Every ``*.toml`` motion in ``dirs`` (default: ``motion_dirs()``), base set first, then by name."""
    found: dict[str, Motion] = {}
    for folder in dirs if dirs is not None else motion_dirs():
        if not folder.is_dir():
            raise MotionFileError(f"{MOTIONS_ENV} names {folder}, which is not a folder",
                                  hint=f"point {MOTIONS_ENV} at folders of motion .toml files")
        for path in sorted(folder.glob("*.toml")):
            found[path.stem] = load_motion_file(path)
    return dict(sorted(found.items(), key=lambda item: (MOTION_SETS.index(item[1].set), item[0])))
