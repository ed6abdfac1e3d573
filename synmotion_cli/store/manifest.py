"""Pack manifests: canonical bytes, digests and schema validation (see docs/pack-format.md)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from ..errors import IntegrityError, UsageError
from .names import full_name, part_problem

SCHEMA_VERSION = 1
KNOWN_SCHEMA_VERSIONS = (1,)
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_PACK_PATH = 255

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_UPGRADE_HINT = "upgrade synmotion (pip install -U synmotion) to read packs made by a newer version"
STORED_HINT = "remove the pack (`synmotion packs rm NAME`) and install or import it again"


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """The one byte form of a manifest: what is hashed and what is written to disk."""
    try:
        text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:  # a NaN metric or a non-JSON value from the caller
        raise UsageError(f"the pack manifest cannot be stored as JSON: {e}",
                         hint="store metrics and settings as plain numbers, strings, lists and dicts") from None
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def pack_path_problem(path: object) -> str | None:
    """Why ``path`` cannot name a file inside a pack, or None. Pack paths must stay inside any folder."""
    if not isinstance(path, str) or not path:
        return "is empty or not a string"
    if len(path) > MAX_PACK_PATH:
        return f"is longer than {MAX_PACK_PATH} characters"
    if "\\" in path or ":" in path or "\0" in path:
        return "contains a backslash, colon or NUL"
    if path.startswith("/"):
        return "is absolute"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "has an empty, '.' or '..' part"
    return None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse(data: bytes, where: str, hint: str = STORED_HINT) -> dict[str, Any]:
    """Parse and validate manifest bytes; ``where`` names the manifest in errors, ``hint`` says what to do."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise IntegrityError(f"{where}: manifest is larger than {MAX_MANIFEST_BYTES} bytes", hint=hint)
    try:
        manifest = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise IntegrityError(f"{where}: manifest is not valid JSON ({e})", hint=hint) from None
    return validate(manifest, where, hint)


def validate(manifest: object, where: str, hint: str = STORED_HINT) -> dict[str, Any]:
    """Check the store's own fields of a manifest; other fields belong to whoever made the pack."""
    def bad(reason: str, why_hint: str = hint) -> IntegrityError:
        return IntegrityError(f"{where}: {reason}", hint=why_hint)

    if not isinstance(manifest, dict):
        raise bad("manifest is not a JSON object")
    version = manifest.get("schema_version")
    if type(version) is not int:
        raise bad("manifest has no integer schema_version")
    if version > max(KNOWN_SCHEMA_VERSIONS):
        raise bad(f"manifest schema_version {version} is newer than this synmotion reads "
                  f"(up to {max(KNOWN_SCHEMA_VERSIONS)})", _UPGRADE_HINT)
    if version not in KNOWN_SCHEMA_VERSIONS:
        raise bad(f"unknown manifest schema_version {version}")
    for key in ("name", "tag"):
        value = manifest.get(key)
        problem = part_problem(value) if isinstance(value, str) else "is missing or not a string"
        if problem:
            raise bad(f"manifest {key} {value!r} {problem}")
    created = manifest.get("created")
    try:
        datetime.fromisoformat(created)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise bad(f"manifest created {created!r} is not an ISO date") from None
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise bad("manifest has no files object")
    sizes: dict[str, int] = {}
    for path, entry in files.items():
        problem = pack_path_problem(path)
        if problem:
            raise bad(f"pack file name {path!r} {problem}")
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            raise bad(f"pack file {path!r} has no digest")
        match = _DIGEST.fullmatch(entry["digest"])
        size = entry.get("size")
        if not match:
            raise bad(f"pack file {path!r} has a malformed digest {entry['digest']!r}")
        if type(size) is not int or size < 0:
            raise bad(f"pack file {path!r} has no valid size")
        if sizes.setdefault(match.group(1), size) != size:
            raise bad(f"pack file {path!r} gives a different size for a blob listed twice")
    return manifest


def blob_sizes(manifest: dict[str, Any]) -> dict[str, int]:
    """Hex digest -> size for every blob a validated manifest references (each blob once)."""
    return {entry["digest"].removeprefix("sha256:"): entry["size"] for entry in manifest["files"].values()}


def referenced_digests(data: bytes) -> set[str]:
    """Blob digests a manifest mentions, read leniently.

    Used for reference counting: a manifest this version cannot validate (say, a newer schema) still
    keeps its blobs alive.
    """
    try:
        files = json.loads(data.decode("utf-8")).get("files")
        entries = files.values() if isinstance(files, dict) else []
        digests = [e.get("digest") for e in entries if isinstance(e, dict)]
        found = [_DIGEST.fullmatch(d) for d in digests if isinstance(d, str)]
        return {m.group(1) for m in found if m}
    except (UnicodeDecodeError, ValueError, AttributeError, TypeError):
        return set()


def label(manifest: dict[str, Any]) -> str:
    return full_name(manifest["name"], manifest["tag"])
