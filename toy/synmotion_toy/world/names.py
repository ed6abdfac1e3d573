"""Names users type for subjects, motions, backgrounds and styles, resolved to the tables' keys.

Keys and prompt phrases both work, in any case: "sit down", "sit_down" and "sit-down" name one motion;
"pixel", "pixel art" and "pixel art style" one style; "grass" and "on grass" one background.
"""

from __future__ import annotations

import re
from typing import Iterable

from synmotion_cli.errors import UsageError


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.strip().lower())


def _resolve(kind: str, text: str, choices: dict[str, Iterable[str]]) -> str:
    wanted = _norm(text)
    for key, aliases in choices.items():
        if wanted in {_norm(key), *(_norm(a) for a in aliases)}:
            return key
    raise UsageError(f"unknown {kind} {text!r}; choose one of: {', '.join(choices)}",
                     hint="`synmotion toy list` shows every subject, motion, background and style")


def subject_key(text: str) -> str:
    from . import SUBJECTS

    return _resolve("subject", text, {k: [s.phrase] for k, s in SUBJECTS.items()})


def motion_key(text: str, motions=None) -> str:
    from . import MOTIONS

    table = motions if motions is not None else MOTIONS
    return _resolve("motion", text, {k: [m.verb, m.third_person] for k, m in table.items()})


def background_key(text: str | None) -> str | None:
    from .scenes import BACKGROUNDS

    if text is None or _norm(text) in ("", "none", "plain"):
        return None
    return _resolve("background", text, {k: [p, p.split(" ", 1)[1]] for k, p in BACKGROUNDS.items()})


def style_key(text: str | None) -> str | None:
    from .styles import STYLES

    if text is None or _norm(text) in ("", "none", "plain"):
        return None
    return _resolve("style", text, {k: [p, p.removesuffix(" style")] for k, p in STYLES.items()})
