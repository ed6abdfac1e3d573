"""Pack names, tags and digest references: ``clap`` means ``clap:latest``."""

from __future__ import annotations

import re

from ..errors import UsageError

DEFAULT_TAG = "latest"
MAX_LENGTH = 64
DIGEST_SCHEME = "sha256:"
MIN_DIGEST_PREFIX = 4

# One rule for names and tags: they become a directory and a file name on every platform.
_PART = re.compile(r"[a-z0-9][a-z0-9._-]*")
_HEX = re.compile(r"[0-9a-f]+")
_RULE = "lowercase letters, digits, '-', '_' and '.', starting with a letter or digit"


def part_problem(value: str) -> str | None:
    """Why ``value`` is not a valid name or tag, or None."""
    if not value:
        return "is empty"
    if len(value) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if not _PART.fullmatch(value):
        return f"may only use {_RULE}"
    if value.endswith("."):
        return "must not end with '.'"
    return None


def _name_problem(name: str) -> str | None:
    # "sha256:…" always reads as a digest, so no pack may be called sha256.
    return "is reserved for digests" if name == DIGEST_SCHEME[:-1] else part_problem(name)


def parse_name(ref: str) -> tuple[str, str]:
    """Split ``name[:tag]`` into a checked (name, tag); a missing tag is ``latest``."""
    name, sep, tag = ref.partition(":")
    if not sep:
        tag = DEFAULT_TAG
    for what, value, problem in (("name", name, _name_problem(name)), ("tag", tag, part_problem(tag))):
        if problem:
            raise UsageError(f"invalid pack {what} {value!r} in {ref!r}: it {problem}",
                             hint="write a pack as NAME or NAME:TAG, e.g. clap or clap:v2")
    return name, tag


def full_name(name: str, tag: str) -> str:
    return f"{name}:{tag}"


def digest_prefix(ref: str) -> str | None:
    """The hex digest prefix ``ref`` stands for, or None when it cannot be one.

    ``sha256:`` forces a digest reading; a bare hex string of 4+ characters may be a digest prefix or a name.
    """
    explicit = ref.startswith(DIGEST_SCHEME)
    hex_part = ref[len(DIGEST_SCHEME):].lower() if explicit else ref.lower()
    if _HEX.fullmatch(hex_part) and MIN_DIGEST_PREFIX <= len(hex_part) <= 64:
        return hex_part
    if explicit:
        raise UsageError(f"invalid digest {ref!r}",
                         hint=f"give at least {MIN_DIGEST_PREFIX} hex characters, e.g. sha256:3f9a")
    return None
