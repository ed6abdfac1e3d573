"""Parsing of `-O key=value` backend options and `--pack NAME[:WEIGHT]`."""

from __future__ import annotations

import json

from ..backend import MAX_PACK_WEIGHT
from ..errors import UsageError


def parse_options(items: list[str] | None) -> dict:
    """``-O rank=16 -O streams=dual`` -> {"rank": 16, "streams": "dual"}; values are JSON when they parse as JSON."""
    options = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad option {item!r}", hint="write backend options as -O key=value, e.g. -O rank=16")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[key.strip().replace("-", "_")] = value
    return options


def parse_pack_spec(spec: str) -> tuple[str, float | None]:
    """``clap`` -> (clap, None); ``clap:0.8`` -> (clap, 0.8); ``clap:v2:0.8`` -> (clap:v2, 0.8); ``clap:v2`` ->
    (clap:v2, None). None leaves the weight to the base the pack runs on (1 unless its defaults say otherwise)."""
    head, sep, tail = spec.rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            return spec, None
        if not 0.0 <= weight <= MAX_PACK_WEIGHT:
            raise UsageError(f"pack weight {weight} in {spec!r} is out of range",
                             hint=f"use a weight between 0 and {MAX_PACK_WEIGHT:g}, e.g. clap:0.8")
        return head, weight
    return spec, None
