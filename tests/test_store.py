"""The local pack store: install, resolve, remove with reference counting, verify, gc, full disks."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import filelock
import numpy as np
import pytest
from safetensors.numpy import save_file

from synmotion_cli.errors import EnvironmentProblem, IntegrityError, NotFoundError, UsageError
from synmotion_cli.store import DirectorySource, PackStore, find_pack
from synmotion_cli.store import manifest as manifest_mod
from synmotion_cli.store import store as store_mod
from tree_snapshot import snapshot

CREATED = "2026-01-02T03:04:05+00:00"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()




def write_tensors(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"down": rng.standard_normal((4, 8)).astype(np.float32),
               "up": rng.standard_normal((8, 4)).astype(np.float32)}, str(path))
    return path


def make_pack(folder: Path, lora_seed: int, embed_seed: int = 0) -> dict[str, Path]:
    """Two small safetensors files, as a backend's draft would hold them."""
    return {"t2v/lora.safetensors": write_tensors(folder / f"lora-{lora_seed}.safetensors", lora_seed),
            "t2v/embedding.safetensors": write_tensors(folder / f"embed-{embed_seed}.safetensors", embed_seed)}


def draft_manifest(motion: str = "clap", **extra) -> dict:
    return {"kind": "motion", "motion": motion, "backend": "hunyuan", "created": CREATED,
            "base": {"id": "hunyuanvideo-community/HunyuanVideo"}, "metrics": {"loss": 0.125}, **extra}


@pytest.fixture
def store(tmp_path) -> PackStore:
    return PackStore(tmp_path / "store", lock_timeout=5)


@pytest.fixture
def src(tmp_path) -> Path:
    return tmp_path / "src"


def test_install_list_resolve_and_read_back(store, src):
    files = make_pack(src, 1)
    pack = store.install("clap", files, draft_manifest())

    assert pack.full_name == "clap:latest" and pack.source == "local"
    manifest = pack.manifest
    assert manifest["schema_version"] == 1 and manifest["name"] == "clap" and manifest["tag"] == "latest"
    assert manifest["created"] == CREATED and manifest["metrics"] == {"loss": 0.125}
    assert manifest["files"] == {name: {"digest": f"sha256:{sha256_file(path)}", "size": path.stat().st_size}
                                 for name, path in files.items()}
    assert pack.size == sum(p.stat().st_size for p in files.values())

    # The digest is the sha256 of the canonical manifest, which is exactly what lies on disk.
    on_disk = store.manifest_path(pack).read_bytes()
    assert on_disk == json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    assert pack.digest == hashlib.sha256(on_disk).hexdigest() and pack.short_digest == pack.digest[:12]

    assert [p.full_name for p in store.list()] == ["clap:latest"]
    for ref in ("clap", "clap:latest", pack.digest[:4], pack.digest[:10].upper(), "sha256:" + pack.digest[:8],
                pack.digest):
        assert store.resolve(ref).digest == pack.digest, ref

    read_back = store.files(pack)
    assert {name: path.read_bytes() for name, path in read_back.items()} == \
        {name: path.read_bytes() for name, path in files.items()}
    assert all(path.parent == store.blobs_dir for path in read_back.values())
    assert list(store.tmp_dir.iterdir()) == []  # staging files are gone after a commit


def test_created_is_added_when_absent(store, src):
    manifest = draft_manifest()
    del manifest["created"]
    pack = store.install("clap:v2", make_pack(src, 1), manifest)
    assert pack.tag == "v2"
    assert pack.manifest["created"].endswith("+00:00")


def test_list_is_sorted_by_name_then_tag(store, src):
    files = make_pack(src, 1)
    for ref in ("wave:v2", "clap-fast", "clap:v1", "wave", "clap"):
        store.install(ref, files, draft_manifest())
    assert [p.full_name for p in store.list()] == \
        ["clap:latest", "clap:v1", "clap-fast:latest", "wave:latest", "wave:v2"]


@pytest.mark.parametrize("ref", ["Clap", "../x", "a/b", "", "-x", "x" * 65, "clap:", "clap:Bad", "clap:v1:v2",
                                 "clap.", "sha256:zz", "sha256:abc", "sha256"])
def test_invalid_refs_are_usage_errors(store, ref):
    with pytest.raises(UsageError):
        store.resolve(ref)


def test_missing_pack_is_not_found_with_a_hint(store, src):
    pack = store.install("clap", make_pack(src, 1), draft_manifest())
    unused_prefix = "1111" if pack.digest.startswith("0000") else "0000"
    for ref in ("wave", "clap:v9", unused_prefix, "sha256:" + unused_prefix):
        with pytest.raises(NotFoundError) as caught:
            store.resolve(ref)
        assert "synmotion packs list" in caught.value.hint


def predicted_digest(name: str, tag: str, files: dict[str, Path], manifest: dict) -> str:
    """The pack digest as docs/pack-format.md defines it, computed without the store."""
    entries = {n: {"digest": f"sha256:{sha256_file(p)}", "size": p.stat().st_size} for n, p in files.items()}
    record = {**manifest, "schema_version": 1, "name": name, "tag": tag, "files": entries}
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_ambiguous_digest_prefix_lists_the_candidates(store, src):
    files = make_pack(src, 1)
    # Search for two manifests whose digests share 4 hex characters (a few hundred tries at most).
    seen: dict[str, int] = {}
    for i in range(20000):
        prefix = predicted_digest(f"p{i}", "latest", files, draft_manifest(run=i))[:4]
        if prefix in seen:
            first, second = seen[prefix], i
            break
        seen[prefix] = i
    a = store.install(f"p{first}", files, draft_manifest(run=first))
    b = store.install(f"p{second}", files, draft_manifest(run=second))
    assert a.digest[:4] == b.digest[:4] == prefix

    with pytest.raises(UsageError) as caught:
        store.resolve(prefix)
    assert a.full_name in caught.value.message and b.full_name in caught.value.message
    assert store.resolve(a.digest[:12]).full_name == a.full_name


def test_a_name_wins_over_a_digest_prefix(store, src):
    files = make_pack(src, 1)
    other = store.install("clap", files, draft_manifest())
    named = store.install(other.digest[:6], make_pack(src, 2), draft_manifest())
    assert store.resolve(other.digest[:6]).digest == named.digest
    assert store.resolve("sha256:" + other.digest[:6]).digest == other.digest


def test_remove_keeps_shared_blobs_and_frees_the_rest(store, src):
    clap_files = make_pack(src, 1, embed_seed=0)
    wave_files = make_pack(src, 2, embed_seed=0)  # the same embedding file: one shared blob
    clap = store.install("clap", clap_files, draft_manifest())
    wave = store.install("wave", wave_files, draft_manifest("wave"))
    shared = clap.manifest["files"]["t2v/embedding.safetensors"]["digest"]
    assert shared == wave.manifest["files"]["t2v/embedding.safetensors"]["digest"]
    assert len(list(store.blobs_dir.iterdir())) == 3

    removed, freed, freed_bytes = store.remove("clap")
    clap_lora = clap_files["t2v/lora.safetensors"]
    assert removed.digest == clap.digest
    assert freed == [sha256_file(clap_lora)] and freed_bytes == clap_lora.stat().st_size
    assert store.blob_path(shared).is_file()
    assert not store.manifest_path(clap).parent.exists()
    assert [p.full_name for p in store.list()] == ["wave:latest"]
    assert [r.ok for r in store.verify()] == [True]

    _, freed, _ = store.remove("wave")
    assert len(freed) == 2 and list(store.blobs_dir.iterdir()) == []


def test_replacing_a_tag_is_atomic_and_frees_old_blobs(store, src):
    first = store.install("clap", make_pack(src, 1), draft_manifest())
    second = store.install("clap", make_pack(src, 2), draft_manifest())
    assert first.digest != second.digest
    assert [p.digest for p in store.list()] == [second.digest]
    assert not store.blob_path(first.manifest["files"]["t2v/lora.safetensors"]["digest"]).exists()
    assert store.blob_path(second.manifest["files"]["t2v/embedding.safetensors"]["digest"]).exists()
    assert len(list(store.blobs_dir.iterdir())) == 2


def test_export_remove_import_round_trip(store, src, tmp_path):
    clap = store.install("clap", make_pack(src, 1), draft_manifest())
    store.install("wave", make_pack(src, 2), draft_manifest("wave"))
    out = tmp_path / "out"
    out.mkdir()

    archive = store.export("clap", out)
    assert archive == out / "clap-latest.smpack"
    assert store.export("clap", out / "again.smpack").read_bytes() == archive.read_bytes()  # deterministic
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []

    store.remove("clap")
    imported = store.import_archive(archive)
    assert imported.digest == clap.digest and imported.manifest == clap.manifest
    assert all(r.ok for r in store.verify())
    assert store.import_archive(archive).digest == clap.digest  # same contents: nothing to do

    renamed = store.import_archive(archive, name="clap:imported")
    assert renamed.full_name == "clap:imported" and renamed.manifest["files"] == clap.manifest["files"]
    assert [p.full_name for p in store.list()] == ["clap:imported", "clap:latest", "wave:latest"]

    other = store.export("wave", out / "wave.smpack")
    with pytest.raises(UsageError, match="already exists"):
        store.import_archive(other, name="clap")
    assert store.resolve("clap").digest == clap.digest
    assert store.import_archive(other, name="clap", force=True).manifest["motion"] == "wave"
    assert all(r.ok for r in store.verify())
    assert list(store.tmp_dir.iterdir()) == []


def flip_one_byte(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_reports_a_damaged_blob_by_pack_name(store, src, tmp_path):
    clap = store.install("clap", make_pack(src, 1, embed_seed=5), draft_manifest())
    store.install("wave", make_pack(src, 2, embed_seed=6), draft_manifest("wave"))
    assert [(r.ref_name, r.ok) for r in store.verify()] == [("clap:latest", True), ("wave:latest", True)]

    flip_one_byte(store.files(clap)["t2v/lora.safetensors"])
    results = {r.ref_name: r for r in store.verify()}
    assert not results["clap:latest"].ok and results["wave:latest"].ok
    assert results["clap:latest"].digest == clap.digest
    assert any("t2v/lora.safetensors" in p and "damaged" in p for p in results["clap:latest"].problems)
    assert [r.ok for r in store.verify(["wave"])] == [True]
    with pytest.raises(IntegrityError, match="damaged"):
        store.export("clap", tmp_path / "clap.smpack")
    assert not (tmp_path / "clap.smpack").exists()


def test_verify_and_files_report_a_missing_blob(store, src):
    clap = store.install("clap", make_pack(src, 1), draft_manifest())
    store.files(clap)["t2v/embedding.safetensors"].unlink()
    [result] = store.verify(["clap"])
    assert not result.ok and "missing" in result.problems[0] and "t2v/embedding.safetensors" in result.problems[0]
    with pytest.raises(IntegrityError, match="missing"):
        store.files(clap)


def test_a_corrupt_manifest_is_skipped_by_list_and_reported_by_verify(store, src):
    clap = store.install("clap", make_pack(src, 1), draft_manifest())
    store.install("wave", make_pack(src, 2), draft_manifest("wave"))
    store.manifest_path(clap).write_text('{"schema_version": 1, "name": "cl')

    assert [p.full_name for p in store.list()] == ["wave:latest"]
    [(path, reason)] = store.list_broken()
    assert path == store.manifest_path(clap) and "not valid JSON" in reason
    results = {r.ref_name: r for r in store.verify()}
    assert not results["clap:latest"].ok and results["wave:latest"].ok
    assert not store.verify(["clap"])[0].ok
    with pytest.raises(IntegrityError):
        store.resolve("clap")

    removed, _, _ = store.remove("clap")  # a broken pack can still be removed by name
    assert removed.full_name == "clap:latest" and store.list_broken() == []


def test_a_manifest_renamed_on_disk_is_broken(store, src):
    clap = store.install("clap", make_pack(src, 1), draft_manifest())
    moved = store.manifests_dir / "wave" / "latest.json"
    moved.parent.mkdir()
    store.manifest_path(clap).rename(moved)
    assert store.list() == [] and "names it clap:latest" in store.list_broken()[0][1]


def test_a_newer_schema_asks_for_an_upgrade_and_keeps_its_blobs(store, src):
    clap = store.install("clap", make_pack(src, 1), draft_manifest())
    newer = dict(clap.manifest, schema_version=2)
    store.manifest_path(clap).write_bytes(manifest_mod.canonical_bytes(newer))
    with pytest.raises(IntegrityError) as caught:
        store.resolve("clap")
    assert "schema_version 2" in caught.value.message and "upgrade synmotion" in caught.value.hint
    assert store.gc().blobs == []  # a pack this version cannot read still owns its blobs


@pytest.mark.parametrize("bad_manifest, reason", [
    ({"schema_version": "1"}, "schema_version"),
    ({"schema_version": 0}, "unknown manifest schema_version"),
    ({"files": {"../x": {"digest": "sha256:" + "0" * 64, "size": 1}}}, "'..'"),
    ({"files": {"/etc/x": {"digest": "sha256:" + "0" * 64, "size": 1}}}, "absolute"),
    ({"files": {"a\\b": {"digest": "sha256:" + "0" * 64, "size": 1}}}, "backslash"),
    ({"files": {"a": {"digest": "md5:00", "size": 1}}}, "malformed digest"),
    ({"files": {"a": {"digest": "sha256:" + "0" * 64, "size": -1}}}, "size"),
    ({"name": "Clap"}, "name"),
    ({"created": "yesterday"}, "ISO date"),
])
def test_manifest_validation(bad_manifest, reason):
    good = {"schema_version": 1, "name": "clap", "tag": "latest", "created": CREATED, "files": {}}
    manifest_mod.validate(good, "test")
    with pytest.raises(IntegrityError, match=reason):
        manifest_mod.validate({**good, **bad_manifest}, "test")


def test_install_rejects_bad_input_before_writing(store, src):
    files = make_pack(src, 1)
    with pytest.raises(UsageError):
        store.install("clap", {"../escape.safetensors": files["t2v/lora.safetensors"]}, draft_manifest())
    with pytest.raises(NotFoundError):
        store.install("clap", {"t2v/lora.safetensors": src / "missing.safetensors"}, draft_manifest())
    with pytest.raises(UsageError, match="JSON"):
        store.install("clap", files, draft_manifest(metrics={"loss": float("nan")}))
    assert store.list() == [] and list(store.tmp_dir.glob("*")) == []
    assert not store.manifests_dir.exists() or list(store.manifests_dir.iterdir()) == []


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_gc_removes_orphans_and_stale_temp_files_only(store, src):
    clap = store.install("clap", make_pack(src, 1), draft_manifest())
    orphan_data = b"left behind by an interrupted removal"
    orphan = store.blob_path(hashlib.sha256(orphan_data).hexdigest())
    orphan.write_bytes(orphan_data)
    now = int(time.time())
    from_dead_process = store.tmp_dir / f"{dead_pid()}-{now}-0a0a0a0a.part"
    from_dead_process.write_bytes(b"x" * 10)
    old = store.tmp_dir / f"{os.getpid()}-{now - 7200}-0b0b0b0b.part"
    old.write_bytes(b"y" * 20)
    os.utime(old, (now - 7200, now - 7200))
    stale_dir = store.tmp_dir / f"{dead_pid()}-{now}-0c0c0c0c.d"
    (stale_dir / "t2v").mkdir(parents=True)
    (stale_dir / "t2v" / "lora.safetensors").write_bytes(b"z" * 30)
    live = store.tmp_dir / f"{os.getpid()}-{now}-0d0d0d0d.part"
    live.write_bytes(b"being written")

    preview = store.gc(dry_run=True)
    assert preview.dry_run and preview.blobs == [orphan.name.removeprefix("sha256-")]
    assert preview.blob_bytes == len(orphan_data)
    assert sorted(preview.temp_paths) == sorted([from_dead_process, old, stale_dir])
    assert preview.temp_bytes == 60
    assert orphan.exists() and old.exists() and stale_dir.exists()

    done = store.gc()
    assert done.blobs == preview.blobs and done.temp_paths == preview.temp_paths
    assert not orphan.exists() and not from_dead_process.exists() and not old.exists() and not stale_dir.exists()
    assert live.exists()
    assert all(p.exists() for p in store.files(clap).values())
    assert all(r.ok for r in store.verify())
    assert store.gc().blobs == []


def test_scratch_dir_lives_in_tmp_and_is_removed(store):
    with store.scratch_dir() as work:
        assert work.parent == store.tmp_dir
        (work / "lora.safetensors").write_bytes(b"draft")
        assert store.gc().temp_paths == []  # our own, fresh: not stale
    assert not work.exists()


@pytest.mark.parametrize("failing_call", [1, 2, 3], ids=["first-blob", "second-blob", "manifest"])
def test_a_full_disk_is_an_environment_problem_and_changes_nothing(store, src, monkeypatch, failing_call):
    existing = store.install("wave", make_pack(src, 7), draft_manifest("wave"))
    before = snapshot(store.root)
    real_copy = store_mod._copy_hashing
    calls = []

    def copy_until_the_disk_is_full(source, dest):
        calls.append(1)
        if dest is not None and len(calls) == failing_call:
            dest.write(source.read(16))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(source, dest)

    monkeypatch.setattr(store_mod, "_copy_hashing", copy_until_the_disk_is_full)
    with pytest.raises(EnvironmentProblem) as caught:
        store.install("clap", make_pack(src, 1), draft_manifest())
    assert "no space left" in caught.value.message and "gc" in caught.value.hint
    monkeypatch.undo()

    assert snapshot(store.root) == before
    assert [p.digest for p in store.list()] == [existing.digest]
    assert all(r.ok for r in store.verify())


def test_a_held_lock_times_out_as_an_environment_problem(tmp_path, src):
    store = PackStore(tmp_path / "store", lock_timeout=0.2)
    store.install("clap", make_pack(src, 1), draft_manifest())
    holder = subprocess.Popen(
        [sys.executable, "-c", "import filelock, sys, time; lock = filelock.FileLock(sys.argv[1]); lock.acquire();"
         "print('held', flush=True); time.sleep(30)", str(store.root / "store.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EnvironmentProblem, match="locked by another synmotion process"):
            store.remove("clap")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert [p.full_name for p in store.list()] == ["clap:latest"]
    with filelock.FileLock(str(store.root / "store.lock")).acquire(timeout=5):
        pass  # the lock died with its holder


def test_directory_source_serves_a_store_layout_read_only(store, src):
    clap = store.install("clap", make_pack(src, 1), draft_manifest())
    before = snapshot(store.root)
    source = DirectorySource("extras", store.root, description="bundled motions")
    [listed] = source.list()
    assert listed.source == "extras" and listed.digest == clap.digest
    assert {n: p.read_bytes() for n, p in source.files(listed).items()} == \
        {n: p.read_bytes() for n, p in store.files(clap).items()}
    assert find_pack(source.list(), "clap:latest").source == "extras"
    assert find_pack(source.list(), clap.digest[:6]).digest == clap.digest
    with pytest.raises(NotFoundError):
        find_pack(source.list(), "wave")
    assert snapshot(store.root) == before
    assert DirectorySource("empty", store.root / "nowhere").list() == []
    assert not (store.root / "nowhere").exists()
