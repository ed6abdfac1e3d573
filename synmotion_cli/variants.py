"""A pack's variants: one learned motion, served to each kind of generator it was learned for.

``variants`` in a manifest maps ``t2v`` (text-to-video) and ``i2v`` (image-to-video) to what that variant
needs (its files, its size, the base it was learned on). A variant's files live under its own folder in the
pack (``t2v/lora.safetensors``, ``i2v/lora.safetensors``), so two variants never collide.

``learn`` makes one variant at a time. Learning the other one for a stored pack adds it beside the first:
the result is a new manifest (so a new pack digest) that lists the kept variant's files with their same
digests, so its blobs are kept and shared, never copied. Once a pack has two variants, each variant entry
carries its own training record (``base``, ``config``, ``data``, ``metrics``, ``timings``); the top-level
fields of the same names are the primary variant's (``t2v`` when present), which is what older readers show.
A single-variant pack keeps its record at the top level only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = ("t2v", "i2v")
RECORD = ("base", "config", "data", "metrics", "timings")


def of(manifest: dict[str, Any]) -> list[str]:
    """The variants a pack has, in the order t2v, i2v (then any other a plugin wrote)."""
    names = list(manifest.get("variants") or {})
    return sorted(names, key=lambda v: (KINDS.index(v) if v in KINDS else len(KINDS), v))


def base(manifest: dict[str, Any], variant: str) -> dict[str, Any]:
    """The identity (id, fingerprint …) of the base ``variant`` was learned on; empty when the pack has no
    such variant or does not say."""
    entry = (manifest.get("variants") or {}).get(variant)
    if not isinstance(entry, dict):
        return {}
    return entry.get("base") or _record(manifest, variant).get("base") or {}


def base_id(manifest: dict[str, Any], variant: str) -> str | None:
    """The id of the base ``variant`` was learned on, or None when the pack has no such variant."""
    return base(manifest, variant).get("id")


def require(pack_name: str, manifest: dict[str, Any], variant: str) -> None:
    """Refuse, with what to run instead, a pack that lacks ``variant``."""
    if variant in of(manifest):
        return
    from .errors import UsageError

    i2v = variant == "i2v"
    raise UsageError(f"pack {pack_name} has no {'image' if i2v else 'text'}-to-video variant",
                     hint=f"learn it with `synmotion learn {pack_name.split(':')[0]} CLIPS{' --i2v' if i2v else ''}`"
                          + (", or drop --image" if i2v else ""))


def _record(manifest: dict[str, Any], variant: str) -> dict[str, Any]:
    """``variant``'s training record: its own fields, else (single-variant packs) the top-level ones."""
    entry = manifest["variants"][variant]
    top = {k: manifest[k] for k in RECORD if k in manifest} if len(manifest["variants"]) == 1 else {}
    return {**top, **{k: entry[k] for k in RECORD if k in entry}}


def add(stored: dict[str, Any], stored_files: dict[str, Path], draft: dict[str, Any],
        draft_files: dict[str, Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The manifest and files of ``stored`` with the draft's single variant added (or replacing the same
    variant). Store-owned fields (name, tag, files, created …) are left for the store to set."""
    (new,) = draft["variants"]
    kept = {v: {**stored["variants"][v], **_record(stored, v)} for v in of(stored) if v != new}
    if not kept:  # nothing to keep: the draft is the whole pack
        return draft, dict(draft_files)
    variants = {**kept, new: {**draft["variants"][new], **_record(draft, new)}}
    manifest = {k: v for k, v in draft.items() if k not in RECORD}
    manifest["variants"] = {v: variants[v] for v in of({"variants": variants})}
    primary = manifest["variants"][of(manifest)[0]]
    manifest.update({k: primary[k] for k in RECORD if k in primary})
    triggers = [*(stored.get("motion") or {}).get("trigger_words", []), *draft["motion"].get("trigger_words", [])]
    manifest["motion"] = {**draft["motion"], "trigger_words": list(dict.fromkeys(triggers))}
    files = {path: f for path, f in stored_files.items() if path.split("/", 1)[0] in kept}
    return manifest, {**files, **draft_files}
