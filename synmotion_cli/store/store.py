"""The local pack store: content-addressed blobs plus one manifest per ``name:tag``, written last.

Layout under ``root`` (details in docs/pack-format.md)::

    blobs/sha256-<hex>            file contents named by their sha256, read-only
    manifests/<name>/<tag>.json   canonical manifest JSON; its sha256 is the pack digest
    tmp/<pid>-<time>-<rand>.*     staging files and folders; gc removes them once their process is gone
    store.lock                    held while manifests or blobs change (commit, remove, gc)

Readers take no lock: every file appears by ``os.replace``, so a reader sees either the old or the new state.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import filelock

from ..errors import EnvironmentProblem, IntegrityError, NotFoundError, UsageError
from . import archive as archive_mod
from . import manifest as manifest_mod
from .names import DIGEST_SCHEME, digest_prefix, full_name, parse_name

_CHUNK = 1 << 20
_TEMP_NAME = re.compile(r"(\d+)-(\d+)-[0-9a-f]+")
_BLOB_NAME = re.compile(r"sha256-([0-9a-f]{64})")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_LIST_HINT = "see `synmotion packs list`"
_REPAIR_HINT = "run `synmotion packs verify`, then reinstall or re-import the pack"


@dataclass(frozen=True)
class PackRef:
    """One stored pack: where it is named, its digest (hex) and its parsed manifest."""

    name: str
    tag: str
    digest: str
    manifest: dict[str, Any] = field(repr=False, compare=False)  # the digest already stands for it
    source: str = "local"

    @property
    def full_name(self) -> str:
        return full_name(self.name, self.tag)

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    @property
    def size(self) -> int:
        return sum(entry["size"] for entry in self.manifest.get("files", {}).values())


@dataclass(frozen=True)
class VerifyResult:
    ref_name: str
    digest: str
    ok: bool
    problems: list[str]


@dataclass(frozen=True)
class GcResult:
    dry_run: bool
    blobs: list[str] = field(default_factory=list)        # hex digests of unreferenced blobs
    blob_bytes: int = 0
    temp_paths: list[Path] = field(default_factory=list)  # stale staging files and folders
    temp_bytes: int = 0


def _copy_hashing(src: IO[bytes], dst: IO[bytes] | None) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (or nowhere); the sha256 hex digest and size of what was read."""
    digest, size = hashlib.sha256(), 0
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _hash_file(path: Path) -> tuple[str, int] | None:
    try:
        with open(path, "rb") as f:
            return _copy_hashing(f, None)
    except FileNotFoundError:
        return None


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; not every platform can open a directory, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)


def _unlink(path: Path) -> None:
    """Remove a file, read-only or not (Windows refuses to delete read-only files)."""
    try:
        path.unlink(missing_ok=True)
    except PermissionError:
        os.chmod(path, 0o644)
        path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill would terminate the process there; age alone decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    return True


def _tree_size(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def _exists_error(label: str) -> UsageError:
    return UsageError(f"pack {label} already exists with different contents",
                      hint="import it under another name with --name, or replace it with --force")


@contextmanager
def _disk_errors(where: Path, action: str) -> Iterator[None]:
    """Turn a full or read-only disk into one clear EnvironmentProblem."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise EnvironmentProblem(f"no space left on the disk holding {where} while {action}",
                                     hint="free some space (`synmotion packs gc` removes unused data) "
                                          "or move the store elsewhere with SYNMOTION_HOME") from None
        if e.errno == errno.EROFS or (isinstance(e, PermissionError) and e.filename
                                      and Path(e.filename).is_relative_to(where)):
            raise EnvironmentProblem(f"cannot write to {where} while {action}: {e.strerror}",
                                     hint="check the folder's permissions, or set SYNMOTION_HOME "
                                          "to a writable folder") from None
        raise


def find_pack(packs: list[PackRef], ref: str) -> PackRef:
    """The pack ``ref`` names among ``packs``: ``name[:tag]`` first, else a unique digest prefix."""
    prefix = digest_prefix(ref)
    if not ref.startswith(DIGEST_SCHEME):
        try:
            name, tag = parse_name(ref)
        except UsageError:
            if prefix is None:
                raise
        else:
            for pack in packs:
                if (pack.name, pack.tag) == (name, tag):
                    return pack
    if prefix is None:
        raise NotFoundError(f"no pack named {ref!r}", hint=_LIST_HINT)
    matches = [pack for pack in packs if pack.digest.startswith(prefix)]
    if len(matches) > 1:
        names = ", ".join(f"{pack.full_name} ({pack.short_digest})" for pack in matches)
        raise UsageError(f"digest prefix {prefix!r} matches several packs: {names}",
                         hint="give more characters of the digest, or the pack's name")
    if not matches:
        raise NotFoundError(f"no pack named {ref!r} or with a digest starting {prefix!r}", hint=_LIST_HINT)
    return matches[0]


class PackStore:
    """Packs stored under ``root``; see the module docstring for the layout."""

    def __init__(self, root: Path, lock_timeout: float = 60.0):
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.manifests_dir = self.root / "manifests"
        self.tmp_dir = self.root / "tmp"
        self.lock_timeout = lock_timeout
        self._lock = filelock.FileLock(str(self.root / "store.lock"), timeout=lock_timeout)

    # -- locking and staging ------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise EnvironmentProblem(
                f"the pack store is locked by another synmotion process (waited {self.lock_timeout:g} s "
                f"for {self._lock.lock_file})",
                hint="wait for the other synmotion command to finish, then try again") from None
        try:
            yield
        finally:
            self._lock.release()

    def _ensure_dirs(self) -> None:
        for folder in (self.blobs_dir, self.manifests_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def _temp_path(self, suffix: str) -> Path:
        # pid and creation time in the name let gc tell a stale temp file from one still being written.
        return self.tmp_dir / f"{os.getpid()}-{int(time.time())}-{secrets.token_hex(4)}{suffix}"

    def _stage(self, src: IO[bytes], temps: list[Path]) -> tuple[Path, str, int]:
        """Copy a stream into tmp/ while hashing it, durably; the caller removes ``temps`` at the end."""
        path = self._temp_path(".part")
        temps.append(path)
        with open(path, "xb") as out:
            digest, size = _copy_hashing(src, out)
            out.flush()
            os.fsync(out.fileno())
        return path, digest, size

    @contextmanager
    def scratch_dir(self) -> Iterator[Path]:
        """A private folder in tmp/ (same disk as the blobs), removed on exit and by gc if left behind."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        path = self._temp_path(".d")
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    # -- reading ------------------------------------------------------------------------------------

    def _manifest_file(self, name: str, tag: str) -> Path:
        return self.manifests_dir / name / f"{tag}.json"

    def manifest_path(self, pack: PackRef) -> Path:
        return self._manifest_file(pack.name, pack.tag)

    def _manifest_files(self) -> list[Path]:
        return sorted(self.manifests_dir.glob("*/*.json"))

    def _ref_from_bytes(self, path: Path, data: bytes) -> PackRef:
        name, tag = path.parent.name, path.stem
        where = f"pack {full_name(name, tag)}"
        manifest = manifest_mod.parse(data, where)
        if (manifest["name"], manifest["tag"]) != (name, tag):
            raise IntegrityError(f"{where}: its manifest names it {manifest_mod.label(manifest)}",
                                 hint=manifest_mod.STORED_HINT)
        return PackRef(name, tag, manifest_mod.sha256_hex(data), manifest)

    def _scan(self) -> tuple[list[PackRef], list[tuple[Path, str]]]:
        packs, broken = [], []
        for path in self._manifest_files():
            try:
                packs.append(self._ref_from_bytes(path, path.read_bytes()))
            except FileNotFoundError:
                continue  # removed while listing
            except IntegrityError as e:
                broken.append((path, e.message))
        return sorted(packs, key=lambda p: (p.name, p.tag)), broken

    def list(self) -> list[PackRef]:
        """Every readable pack, sorted by name and tag; unreadable ones are in ``list_broken``."""
        return self._scan()[0]

    def list_broken(self) -> list[tuple[Path, str]]:
        """Manifests that cannot be read, with the reason."""
        return self._scan()[1]

    def resolve(self, ref: str) -> PackRef:
        """A pack from ``name``, ``name:tag`` or a unique digest prefix (``3f9a…`` or ``sha256:3f9a…``)."""
        if not ref.startswith(DIGEST_SCHEME):
            try:
                path = self._manifest_file(*parse_name(ref))
                return self._ref_from_bytes(path, path.read_bytes())
            except (UsageError, FileNotFoundError):
                pass  # find_pack tries the digest reading and words the error
        return find_pack(self.list(), ref)

    def _resolve_even_broken(self, ref: str) -> tuple[PackRef, bytes]:
        """Like ``resolve``, but a named pack whose manifest is unreadable still resolves (with an
        empty manifest), so it can be removed and reported."""
        try:
            pack = self.resolve(ref)
            return pack, self.manifest_path(pack).read_bytes()
        except IntegrityError:
            name, tag = parse_name(ref)
            data = self._manifest_file(name, tag).read_bytes()
            return PackRef(name, tag, manifest_mod.sha256_hex(data), {}), data

    def blob_path(self, digest: str) -> Path:
        hex_digest = digest.removeprefix(DIGEST_SCHEME)
        if not _HEX_DIGEST.fullmatch(hex_digest):
            raise UsageError(f"not a sha256 digest: {digest!r}")
        return self.blobs_dir / f"sha256-{hex_digest}"

    def files(self, pack: PackRef) -> dict[str, Path]:
        """Name inside the pack -> blob file to read (never to write)."""
        found = {}
        for path, entry in pack.manifest["files"].items():
            blob = self.blob_path(entry["digest"])
            try:
                size = blob.stat().st_size
            except FileNotFoundError:
                raise IntegrityError(f"pack {pack.full_name}: the blob for {path} is missing ({blob})",
                                     hint=_REPAIR_HINT) from None
            if size != entry["size"]:
                raise IntegrityError(f"pack {pack.full_name}: the blob for {path} has {size} bytes, "
                                     f"expected {entry['size']}", hint=_REPAIR_HINT)
            found[path] = blob
        return found

    # -- writing ------------------------------------------------------------------------------------

    def install(self, name: str, files: dict[str, Path], manifest: dict[str, Any]) -> PackRef:
        """Store ``files`` (name inside the pack -> file) under ``name[:tag]``, replacing that name:tag.

        The store sets schema_version, name, tag and files, and created when absent.
        """
        name, tag = parse_name(name)
        for pack_path, src in files.items():
            problem = manifest_mod.pack_path_problem(pack_path)
            if problem:
                raise UsageError(f"pack file name {pack_path!r} {problem}")
            if not Path(src).is_file():
                raise NotFoundError(f"pack file {pack_path}: no such file {src}")
        temps: list[Path] = []
        try:
            with _disk_errors(self.root, f"installing {full_name(name, tag)}"):
                self.tmp_dir.mkdir(parents=True, exist_ok=True)
                entries, staged = {}, {}
                for pack_path, src in sorted(files.items()):
                    with open(src, "rb") as f:
                        temp, digest, size = self._stage(f, temps)
                    entries[pack_path] = {"digest": f"{DIGEST_SCHEME}{digest}", "size": size}
                    staged.setdefault(digest, temp)
                record = {**manifest, "schema_version": manifest_mod.SCHEMA_VERSION,
                          "name": name, "tag": tag, "files": entries}
                record["created"] = record.get("created") or manifest_mod.now_utc()
                return self._commit(record, staged, temps, replace=True)
        finally:
            for temp in temps:
                _unlink(temp)

    def _commit(self, record: dict[str, Any], staged: dict[str, Path], temps: list[Path],
                replace: bool) -> PackRef:
        """Move staged blobs into blobs/, then write the manifest: the commit point."""
        data = manifest_mod.canonical_bytes(record)
        label = manifest_mod.label(record)
        manifest = manifest_mod.parse(data, f"pack {label}")
        digest = manifest_mod.sha256_hex(data)
        manifest_temp, _, _ = self._stage(io.BytesIO(data), temps)
        with self._locked():
            self._ensure_dirs()
            target = self._manifest_file(manifest["name"], manifest["tag"])
            old = target.read_bytes() if target.is_file() else None
            if old is not None and manifest_mod.sha256_hex(old) != digest and not replace:
                raise _exists_error(label)
            for blob_digest, temp in staged.items():
                blob = self.blob_path(blob_digest)
                if blob.is_file() and blob.stat().st_size == temp.stat().st_size:
                    continue
                os.chmod(temp, 0o444)
                os.replace(temp, blob)
            _fsync_dir(self.blobs_dir)
            target.parent.mkdir(exist_ok=True)
            _fsync_dir(self.manifests_dir)
            os.replace(manifest_temp, target)
            _fsync_dir(target.parent)
            if old is not None:
                self._free(manifest_mod.referenced_digests(old))
        return PackRef(manifest["name"], manifest["tag"], digest, manifest)

    def _live_digests(self) -> set[str]:
        live: set[str] = set()
        for path in self._manifest_files():
            try:
                live |= manifest_mod.referenced_digests(path.read_bytes())
            except FileNotFoundError:
                continue
        return live

    def _free(self, candidates: set[str]) -> tuple[list[str], int]:
        """Delete those of ``candidates`` no manifest references any more. Call with the lock held."""
        freed, freed_bytes = [], 0
        for digest in sorted(candidates - self._live_digests()):
            blob = self.blob_path(digest)
            try:
                size = blob.stat().st_size
            except FileNotFoundError:
                continue
            _unlink(blob)
            freed.append(digest)
            freed_bytes += size
        return freed, freed_bytes

    def remove(self, ref: str) -> tuple[PackRef, list[str], int]:
        """Remove a pack; returns it, the digests of blobs no other pack used, and the bytes freed."""
        self._resolve_even_broken(ref)  # a missing pack fails before anything is created or locked
        with self._locked():
            pack, data = self._resolve_even_broken(ref)
            path = self.manifest_path(pack)
            _unlink(path)
            _fsync_dir(path.parent)
            with contextlib.suppress(OSError):  # other tags remain
                path.parent.rmdir()
            freed, freed_bytes = self._free(manifest_mod.referenced_digests(data))
        return pack, freed, freed_bytes

    def verify(self, refs: list[str] | None = None) -> list[VerifyResult]:
        """Re-hash every blob of the named packs (all, including unreadable manifests, when None)."""
        if refs is None:
            paths = self._manifest_files()
        else:
            paths = [self.manifest_path(self._resolve_even_broken(ref)[0]) for ref in refs]
        hashed: dict[str, tuple[str, int] | None] = {}
        results = []
        for path in paths:
            label = full_name(path.parent.name, path.stem)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            digest = manifest_mod.sha256_hex(data)
            try:
                pack = self._ref_from_bytes(path, data)
            except IntegrityError as e:
                results.append(VerifyResult(label, digest, False, [e.message]))
                continue
            problems = []
            if data != manifest_mod.canonical_bytes(pack.manifest):
                problems.append("manifest is not in canonical form (edited by hand?)")
            for pack_path, entry in sorted(pack.manifest["files"].items()):
                blob_digest = entry["digest"].removeprefix(DIGEST_SCHEME)
                if blob_digest not in hashed:
                    hashed[blob_digest] = _hash_file(self.blob_path(blob_digest))
                found = hashed[blob_digest]
                where = f"{pack_path} (sha256:{blob_digest[:12]})"
                if found is None:
                    problems.append(f"{where}: blob is missing")
                elif found[1] != entry["size"]:
                    problems.append(f"{where}: blob has {found[1]} bytes, expected {entry['size']}")
                elif found[0] != blob_digest:
                    problems.append(f"{where}: blob is damaged (its content hashes to sha256:{found[0][:12]})")
            results.append(VerifyResult(label, digest, not problems, problems))
        return results

    def _is_stale(self, path: Path, max_age_s: float) -> bool:
        match = _TEMP_NAME.match(path.name)
        try:
            modified = path.lstat().st_mtime
        except FileNotFoundError:
            return False
        last_sign_of_life = max(int(match.group(2)), modified) if match else modified
        if time.time() - last_sign_of_life > max_age_s:
            return True
        return match is not None and not _pid_alive(int(match.group(1)))

    def gc(self, dry_run: bool = False, temp_max_age_s: float = 3600) -> GcResult:
        """Remove blobs no manifest references and temp files whose process is gone or that are old."""
        if not self.root.is_dir():
            return GcResult(dry_run)
        with self._locked():
            live = self._live_digests()
            orphans = []
            for blob in sorted(self.blobs_dir.glob("sha256-*")):
                match = _BLOB_NAME.fullmatch(blob.name)
                if match and match.group(1) not in live:
                    orphans.append((match.group(1), blob, blob.stat().st_size))
            stale = [(p, _tree_size(p)) for p in sorted(self.tmp_dir.glob("*")) if self._is_stale(p, temp_max_age_s)]
            if not dry_run:
                for _, blob, _ in orphans:
                    _unlink(blob)
                for path, _ in stale:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        _unlink(path)
                for folder in self.manifests_dir.glob("*"):
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
        return GcResult(dry_run, [d for d, _, _ in orphans], sum(s for _, _, s in orphans),
                        [p for p, _ in stale], sum(s for _, s in stale))

    # -- moving packs between machines ----------------------------------------------------------------

    def export(self, ref: str, dest: Path) -> Path:
        """Write a pack to one ``.smpack`` file (into a folder: ``<name>-<tag>.smpack``); returns its path."""
        pack = self.resolve(ref)
        self.files(pack)  # a missing blob fails here, before anything is written
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"{pack.name}-{pack.tag}{archive_mod.SUFFIX}"
        if not dest.parent.is_dir():
            raise NotFoundError(f"folder {dest.parent} does not exist", hint="create it or pick another path")
        blobs = {digest: self.blob_path(digest) for digest in manifest_mod.blob_sizes(pack.manifest)}
        with _disk_errors(dest.parent, f"exporting {pack.full_name}"):
            archive_mod.write_archive(dest, manifest_mod.canonical_bytes(pack.manifest), blobs, pack.full_name)
        return dest

    def import_archive(self, archive: Path, name: str | None = None, force: bool = False) -> PackRef:
        """Check a ``.smpack`` completely, then store it (as ``name[:tag]`` when given).

        An existing name:tag with other contents is replaced only with ``force``; the same contents is a no-op.
        """
        temps: list[Path] = []
        try:
            with archive_mod.ArchiveReader(Path(archive)) as reader:
                record = dict(reader.manifest)
                if name is not None:
                    record["name"], record["tag"] = parse_name(name)
                label = manifest_mod.label(record)
                existing = self._manifest_file(record["name"], record["tag"])
                if (not force and existing.is_file() and manifest_mod.sha256_hex(existing.read_bytes())
                        != manifest_mod.sha256_hex(manifest_mod.canonical_bytes(record))):
                    raise _exists_error(label)
                with _disk_errors(self.root, f"importing {label}"):
                    self.tmp_dir.mkdir(parents=True, exist_ok=True)
                    staged = reader.stage_blobs(lambda stream: self._stage(stream, temps))
                    return self._commit(record, staged, temps, replace=force)
        finally:
            for temp in temps:
                _unlink(temp)
