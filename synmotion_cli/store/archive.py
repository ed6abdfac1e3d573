"""The portable pack file (``.smpack``): an uncompressed tar holding ``manifest.json`` first, then one
``blobs/sha256-<hex>`` member per blob.

Reading never extracts: each member is checked by name and type, then streamed through a caller's
``stage`` function (which writes it to the store's temp area while hashing) and compared with the
manifest. Nothing here writes into the store.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..errors import IntegrityError, NotFoundError, UsageError
from . import manifest as manifest_mod

SUFFIX = ".smpack"
MANIFEST_MEMBER = "manifest.json"
BLOB_DIR = "blobs"
_BLOB_MEMBER = re.compile(r"blobs/sha256-([0-9a-f]{64})")
_TAMPERED_HINT = "this file was not made by `synmotion packs export` or was changed since; nothing was imported"

# stream -> (temp file, hex digest, size): how the store receives a member's bytes.
Stage = Callable[[IO[bytes]], tuple[Path, str, int]]


class _HashingReader:
    """Hashes what tarfile copies, so a damaged blob is caught on its way out."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        return data


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0  # the same pack always exports to the same bytes
    return info


def write_archive(dest: Path, manifest_bytes: bytes, blobs: dict[str, Path], label: str) -> None:
    """Write ``dest`` atomically from a manifest and its blobs (hex digest -> file).

    Raises IntegrityError, leaving ``dest`` untouched, when a blob no longer matches its digest.
    """
    temp = dest.with_name(f".{dest.name}.{os.getpid()}-{int(time.time())}-{secrets.token_hex(4)}.part")
    try:
        with open(temp, "xb") as out:
            with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_member(MANIFEST_MEMBER, len(manifest_bytes)), io.BytesIO(manifest_bytes))
                for digest, path in sorted(blobs.items()):
                    with open(path, "rb") as raw:
                        reader = _HashingReader(raw)
                        tar.addfile(_member(f"{BLOB_DIR}/sha256-{digest}", os.fstat(raw.fileno()).st_size), reader)
                    if reader.hash.hexdigest() != digest:
                        raise IntegrityError(f"blob sha256:{digest[:12]} of {label} is damaged; not exported",
                                             hint="run `synmotion packs verify` and reinstall the pack")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, dest)
    finally:
        temp.unlink(missing_ok=True)


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member cannot belong to a pack archive, judged on name and type alone."""
    name = member.name
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "has an absolute path"
    if "\\" in name:
        return "contains a backslash"
    if ".." in name.split("/"):
        return "points outside the archive ('..')"
    if member.issym():
        return "is a symbolic link"
    if member.islnk():
        return "is a hard link"
    if member.isdir():
        return None if name == BLOB_DIR else "is a directory"
    if not member.isreg() or member.issparse():
        return "is not a regular file"
    return None


class ArchiveReader:
    """An open ``.smpack``: ``manifest`` is read and validated on entry; ``stage_blobs`` checks the rest."""

    def __init__(self, path: Path):
        self.path = path
        self.manifest: dict[str, Any] = {}
        self._tar: tarfile.TarFile | None = None

    def _fail(self, member: str, problem: str) -> IntegrityError:
        return IntegrityError(f"{self.path.name}: member {member!r} {problem}", hint=_TAMPERED_HINT)

    def __enter__(self) -> ArchiveReader:
        try:
            self._tar = tarfile.open(self.path, mode="r:")
        except FileNotFoundError:
            raise NotFoundError(f"no such file: {self.path}") from None
        except (tarfile.TarError, IsADirectoryError, PermissionError) as e:
            raise UsageError(f"{self.path} is not a synmotion pack archive ({e})",
                             hint="make one with `synmotion packs export NAME FILE`") from None
        try:
            self.manifest = self._read_manifest()
        except BaseException:
            self._tar.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tar is not None:
            self._tar.close()

    def _next(self, after: str) -> tarfile.TarInfo | None:
        try:
            return self._tar.next()  # type: ignore[union-attr]
        except tarfile.TarError as e:
            raise IntegrityError(f"{self.path.name}: archive is damaged after member {after!r} ({e})",
                                 hint=_TAMPERED_HINT) from None

    def _read_manifest(self) -> dict[str, Any]:
        first = self._next("(start)")
        if first is None:
            raise IntegrityError(f"{self.path.name}: archive is empty", hint=_TAMPERED_HINT)
        problem = _member_problem(first)
        if problem:
            raise self._fail(first.name, problem)
        if first.name != MANIFEST_MEMBER or not first.isreg():
            raise self._fail(first.name, f"comes first, where {MANIFEST_MEMBER} must be")
        if first.size > manifest_mod.MAX_MANIFEST_BYTES:
            raise self._fail(first.name, "is too large to be a manifest")
        data = self._tar.extractfile(first).read()  # type: ignore[union-attr]
        return manifest_mod.parse(data, f"{self.path.name}: {MANIFEST_MEMBER}", _TAMPERED_HINT)

    def stage_blobs(self, stage: Stage) -> dict[str, Path]:
        """Check every remaining member and stream each blob through ``stage``; hex digest -> staged file.

        Staged files are the caller's to remove when this raises.
        """
        expected = manifest_mod.blob_sizes(self.manifest)
        staged: dict[str, Path] = {}
        seen = {MANIFEST_MEMBER}
        last = MANIFEST_MEMBER
        while (member := self._next(last)) is not None:
            last = member.name
            problem = _member_problem(member)
            if problem:
                raise self._fail(member.name, problem)
            if member.name in seen:
                raise self._fail(member.name, "appears twice")
            seen.add(member.name)
            if member.isdir():
                continue
            match = _BLOB_MEMBER.fullmatch(member.name)
            if not match:
                raise self._fail(member.name, "is not part of a pack archive")
            digest = match.group(1)
            if digest not in expected:
                raise self._fail(member.name, "is a blob the manifest does not list")
            if member.size != expected[digest]:
                raise self._fail(member.name, f"holds {member.size} bytes, the manifest says {expected[digest]}")
            try:
                path, actual, _ = stage(self._tar.extractfile(member))  # type: ignore[arg-type, union-attr]
            except tarfile.TarError as e:
                raise self._fail(member.name, f"cannot be read ({e})") from None
            staged[digest] = path
            if actual != digest:
                raise self._fail(member.name, f"does not match its digest (its content hashes to sha256:{actual[:12]})")
        missing = sorted(path for path, entry in self.manifest["files"].items()
                         if entry["digest"].removeprefix("sha256:") not in staged)
        if missing:
            raise IntegrityError(f"{self.path.name}: blobs missing for pack files {', '.join(missing)}",
                                 hint=_TAMPERED_HINT)
        return staged
