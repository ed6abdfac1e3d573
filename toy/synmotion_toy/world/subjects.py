"""Subjects: who moves. Each is data in ``data/subjects.toml``: proportions, colours and features
(ears, snout, tail, mane, stripes …), read once at import."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

from .skeleton import Proportions

RGB = tuple[int, int, int]

PARTS = ("head", "torso", "upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot")
HEAD_SHAPES = ("round", "box")

# Each feature table and the keys it may hold; colours are "#rrggbb", sizes are fractions of the part
# they sit on (the head radius for face features, the torso radius for body features).
FEATURES: dict[str, dict[str, Any]] = {
    "eyes": {"color": "#1e1e1e", "size": 0.16, "style": "dot", "white": "#ffffff", "patch": None},
    "snout": {"shape": "round", "length": 0.45, "width": 0.4, "color": None, "nose": "#1e1e1e"},
    "ears": {"shape": "round", "size": 0.4, "color": None, "inner": None, "tip": None},
    "tail": {"length": 0.3, "width": 0.04, "tip_width": 0.02, "color": None, "tip": None, "tip_size": 0.0,
             "lift": 20.0, "curl": 0.0, "segments": 4},
    "mane": {"color": "#000000", "size": 1.6, "spikes": 12},
    "hair": {"color": "#000000"},
    "face": {"color": "#ffffff", "size": 0.7},
    "belly": {"color": "#ffffff", "size": 0.65},
    "stripes": {"color": "#000000", "spacing": 0.06, "width": 0.018, "on": ["torso", "limbs", "head"]},
    "ridges": {"color": None, "count": 5, "size": 0.5},
    "antenna": {"color": "#555555", "tip": "#ff3030", "length": 0.5},
    "panel": {"color": "#40c0ff"},
}
COLOR_KEYS = {"color", "white", "patch", "nose", "inner", "tip"}
EYE_STYLES = ("dot", "big", "top", "visor")
SNOUT_SHAPES = ("round", "cone", "long")
EAR_SHAPES = ("round", "pointy", "long")


@dataclass(frozen=True)
class Subject:
    """One character: ``name`` ("zebra"), ``phrase`` ("a zebra"), proportions, part colours, features."""

    name: str
    phrase: str
    body: Proportions
    colors: Mapping[str, RGB]
    head_shape: str = "round"
    features: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def feature(self, name: str) -> Mapping[str, Any] | None:
        return self.features.get(name)


def parse_color(value: str, where: str) -> RGB:
    text = str(value).strip().lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    try:
        if len(text) != 6:
            raise ValueError
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a colour; write it as \"#rrggbb\"") from None


def _feature(name: str, table: Mapping[str, Any], owner: str) -> dict[str, Any]:
    known = FEATURES[name]
    unknown = set(table) - set(known)
    if unknown:
        raise ValueError(f"subject {owner!r}, [{name}]: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    merged = {**known, **table}
    for key in COLOR_KEYS & merged.keys():
        if isinstance(merged[key], str):
            merged[key] = parse_color(merged[key], f"subject {owner!r}, [{name}].{key}")
    choices = {"eyes": ("style", EYE_STYLES), "snout": ("shape", SNOUT_SHAPES), "ears": ("shape", EAR_SHAPES)}
    if name in choices:
        key, allowed = choices[name]
        if merged[key] not in allowed:
            raise ValueError(f"subject {owner!r}, [{name}].{key} = {merged[key]!r}; choose one of {allowed}")
    return merged


def parse_subjects(data: Mapping[str, Any]) -> dict[str, Subject]:
    """Subjects from the parsed TOML: ``[defaults.body]``, ``[defaults.colors]`` and ``[subjects.<name>]``."""
    defaults = data.get("defaults", {})
    subjects: dict[str, Subject] = {}
    for name, table in data.get("subjects", {}).items():
        table = dict(table)
        body_values = {**defaults.get("body", {}), **table.pop("body", {})}
        try:
            body = Proportions(**body_values).normalised()
        except TypeError as e:
            raise ValueError(f"subject {name!r}, [body]: {e}") from None
        color_values = {**defaults.get("colors", {}), **table.pop("colors", {})}
        base = color_values.pop("body", "#808080")
        unknown = set(color_values) - set(PARTS)
        if unknown:
            raise ValueError(f"subject {name!r}, [colors]: unknown parts {sorted(unknown)}; known: body, {', '.join(PARTS)}")
        colors = {part: parse_color(color_values.get(part, base), f"subject {name!r}, colors.{part}") for part in PARTS}
        phrase = table.pop("phrase", f"a {name}")
        head_shape = table.pop("head_shape", "round")
        if head_shape not in HEAD_SHAPES:
            raise ValueError(f"subject {name!r}: head_shape {head_shape!r}; choose one of {HEAD_SHAPES}")
        features = {"eyes": MappingProxyType(_feature("eyes", {}, name))}  # everyone has eyes
        for key, value in table.items():
            if key not in FEATURES or not isinstance(value, dict):
                raise ValueError(f"subject {name!r}: unknown entry {key!r}; features: {', '.join(FEATURES)}")
            features[key] = MappingProxyType(_feature(key, value, name))
        subjects[name] = Subject(name=name, phrase=phrase, body=body, colors=MappingProxyType(colors),
                                 head_shape=head_shape, features=MappingProxyType(features))
    return subjects


def load_subjects() -> dict[str, Subject]:
    text = resources.files("synmotion_toy").joinpath("data/subjects.toml").read_text(encoding="utf-8")
    return parse_subjects(tomllib.loads(text))


SUBJECTS: dict[str, Subject] = load_subjects()
