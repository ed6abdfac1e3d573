"""Importing ``.smpack`` archives: a tampered or malformed archive is refused and touches nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from synmotion_cli.errors import IntegrityError, NotFoundError, UsageError
from synmotion_cli.store import PackStore
from tree_snapshot import snapshot

Member = tuple[tarfile.TarInfo, bytes]




@pytest.fixture
def store(tmp_path) -> PackStore:
    store = PackStore(tmp_path / "store", lock_timeout=5)
    files = {}
    for seed, name in enumerate(["t2v/lora.safetensors", "t2v/embedding.safetensors"]):
        path = tmp_path / "src" / f"{seed}.safetensors"
        path.parent.mkdir(exist_ok=True)
        save_file({"w": np.full((3, 5), seed, dtype=np.float32)}, str(path))
        files[name] = path
    store.install("clap", files, {"kind": "motion", "motion": "clap"})
    return store


@pytest.fixture
def good_archive(store, tmp_path) -> Path:
    (tmp_path / "archives").mkdir()
    return store.export("clap", tmp_path / "archives" / "clap.smpack")


def read_members(archive: Path) -> list[Member]:
    with tarfile.open(archive) as tar:
        return [(info, tar.extractfile(info).read() if info.isreg() else b"") for info in tar.getmembers()]


def write_members(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def regular(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def blob_members(members: list[Member]) -> list[Member]:
    return [m for m in members if m[0].name.startswith("blobs/")]


def with_manifest(members: list[Member], **changes) -> list[Member]:
    manifest = json.loads(members[0][1])
    manifest.update(changes)
    return [regular("manifest.json", json.dumps(manifest).encode())] + members[1:]


def flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


# Each case turns the members of a good archive into a bad one, and names what the error must mention.
CASES = {
    "parent-path": (lambda m, out: m + [regular("../x", b"escape")], "'..'"),
    "nested-parent-path": (lambda m, out: m + [regular("blobs/../../x", b"escape")], "'..'"),
    "absolute-path": (lambda m, out: m + [regular(str(out / "pwned"), b"escape")], "absolute"),
    "symlink": (lambda m, out: m[:1] + [special(blob_members(m)[0][0].name, tarfile.SYMTYPE, "/etc/passwd")]
                + blob_members(m)[1:], "symbolic link"),
    "hardlink": (lambda m, out: m[:1] + [special(blob_members(m)[0][0].name, tarfile.LNKTYPE, "manifest.json")]
                 + blob_members(m)[1:], "hard link"),
    "device": (lambda m, out: m + [special("blobs/null", tarfile.CHRTYPE)], "not a regular file"),
    "directory": (lambda m, out: m + [special("evil", tarfile.DIRTYPE)], "directory"),
    "duplicate": (lambda m, out: m + [blob_members(m)[0]], "appears twice"),
    "unknown-member": (lambda m, out: m + [regular("README.md", b"hello")], "not part of a pack archive"),
    "unlisted-blob": (lambda m, out: m + [regular("blobs/sha256-" + hashlib.sha256(b"x").hexdigest(), b"x")],
                      "does not list"),
    "size-mismatch": (lambda m, out: m[:1] + [regular(b[0].name, b[1] + b"\0") for b in blob_members(m)],
                      "bytes, the manifest says"),
    "digest-mismatch": (lambda m, out: m[:1] + [regular(b[0].name, flip(b[1])) for b in blob_members(m)],
                        "does not match its digest"),
    "missing-blob": (lambda m, out: m[:2], "blobs missing"),
    "manifest-not-first": (lambda m, out: m[1:] + m[:1], "must be"),
    "unknown-schema": (lambda m, out: with_manifest(m, schema_version=99), "schema_version 99"),
    "bad-pack-file-name": (lambda m, out: with_manifest(m, files={
        "../../x": json.loads(m[0][1])["files"]["t2v/lora.safetensors"]}), "'..'"),
    "manifest-not-json": (lambda m, out: [regular("manifest.json", b"{not json")] + m[1:], "not valid JSON"),
    "empty": (lambda m, out: [], "empty"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_archive_is_refused_and_changes_nothing(store, good_archive, tmp_path, case):
    mutate, expected = CASES[case]
    outside = tmp_path / "outside"
    bad = write_members(tmp_path / "archives" / f"{case}.smpack", mutate(read_members(good_archive), outside))
    before = snapshot(tmp_path)

    with pytest.raises(IntegrityError) as caught:
        store.import_archive(bad, name="evil")
    assert expected in caught.value.message
    assert caught.value.hint

    assert snapshot(tmp_path) == before
    assert not outside.exists()
    assert [p.full_name for p in store.list()] == ["clap:latest"]


def test_the_good_archive_imports(store, good_archive):
    before = store.resolve("clap")
    members = read_members(good_archive)
    assert [m[0].name for m in members][0] == "manifest.json"
    assert all(m[0].name.startswith("blobs/sha256-") for m in members[1:]) and len(members) == 3
    assert store.import_archive(good_archive, name="clap2").manifest["files"] == before.manifest["files"]


def test_a_blobs_directory_entry_is_allowed(store, good_archive, tmp_path):
    members = read_members(good_archive)
    archive = write_members(tmp_path / "with-dir.smpack", members[:1] + [special("blobs", tarfile.DIRTYPE)]
                            + members[1:])
    assert store.import_archive(archive, name="clap:dir").tag == "dir"


def test_a_truncated_archive_is_refused(store, good_archive, tmp_path):
    with tarfile.open(good_archive) as tar:
        last = tar.getmembers()[-1]
    truncated = tmp_path / "truncated.smpack"
    truncated.write_bytes(good_archive.read_bytes()[: last.offset_data + last.size // 2])
    before = snapshot(store.root)
    with pytest.raises(IntegrityError):
        store.import_archive(truncated, name="evil")
    assert snapshot(store.root) == before


def test_something_else_is_not_an_archive(store, good_archive, tmp_path):
    before = snapshot(store.root)
    text = tmp_path / "notes.smpack"
    text.write_text("just some text, long enough to not be a tar header at all " * 20)
    compressed = tmp_path / "clap.smpack.gz"
    compressed.write_bytes(gzip.compress(good_archive.read_bytes()))
    for path in (text, compressed, tmp_path):
        with pytest.raises(UsageError, match="not a synmotion pack archive"):
            store.import_archive(path)
    with pytest.raises(NotFoundError):
        store.import_archive(tmp_path / "missing.smpack")
    assert snapshot(store.root) == before


def test_export_refuses_a_missing_folder_and_leaves_no_temp_file(store, tmp_path):
    with pytest.raises(NotFoundError):
        store.export("clap", tmp_path / "no" / "such" / "clap.smpack")
    dest = tmp_path / "clap.smpack"
    dest.write_bytes(b"old")
    store.export("clap", dest)
    assert tarfile.is_tarfile(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clap.smpack", "src", "store"]
