"""`synmotion packs …` and `learn`'s clip checks, run as a user runs them: through the CLI, reading exit codes,
stdout (data only) and stderr (messages)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from cli_runner import run, run_process
from synmotion_cli import paths
from synmotion_cli.store import PackRef, PackStore
from tree_snapshot import snapshot as _snapshot

BLOB_PREFIX = "sha256-"


def write_tensors(path: Path, seed: int, shape=(16, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"down": rng.standard_normal(shape).astype(np.float32),
               "up": rng.standard_normal(shape[::-1]).astype(np.float32)}, str(path))
    return path


def install(motion: str, lora_seed: int, folder: Path, shared_embedding: Path) -> PackRef:
    """A pack as `learn` would install it: a LoRA of its own and an embedding shared with other packs."""
    files = {"t2v/lora.safetensors": write_tensors(folder / f"{motion}-lora.safetensors", lora_seed),
             "t2v/embedding.safetensors": shared_embedding}
    manifest = {"kind": "synmotion.motion-pack", "backend": "test",
                "motion": {"name": motion, "trigger_words": [motion, motion + "s"]},
                "base": {"id": "tiny/base", "fingerprint": "abc123"},
                "variants": {"t2v": {"files": sorted(files)}}, "data": {"clips": 3}}
    return PackStore(paths.home()).install(motion, files, manifest)


@pytest.fixture
def packs(tmp_path):
    """Two installed packs, ``clap`` and ``wave``, that share one blob."""
    shared = write_tensors(tmp_path / "src" / "embedding.safetensors", 99)
    return {m: install(m, seed, tmp_path / "src", shared) for m, seed in (("clap", 1), ("wave", 2))}


def blob(pack, name: str = "t2v/lora.safetensors") -> Path:
    digest = pack.manifest["files"][name]["digest"].removeprefix("sha256:")
    return paths.home() / "blobs" / f"{BLOB_PREFIX}{digest}"




def assert_one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("Error:"), err
    assert len(lines) <= 2 and all(line.startswith(("Error:", "Hint:")) for line in lines), err
    assert "Traceback" not in err


# -- list, show, path ----------------------------------------------------------------------------------------


def test_list_as_table_and_json(capsys, packs):
    r = run(capsys, "packs", "list")
    assert r.code == 0 and r.err == ""
    for pack in packs.values():
        line = next(line for line in r.out.splitlines() if line.split()[:1] == [pack.full_name])
        assert pack.short_digest in line and "tiny/base" in line and "local" in line

    r = run(capsys, "packs", "list", "--json")
    assert r.code == 0 and r.err == ""
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert set(rows) == {"clap:latest", "wave:latest"}
    assert rows["clap:latest"]["digest"] == packs["clap"].digest
    assert rows["clap:latest"]["motion"] == "clap" and rows["clap:latest"]["variants"] == ["t2v"]
    assert rows["clap:latest"]["source"] == "local" and rows["clap:latest"]["size"] == packs["clap"].size


def test_show_as_table_and_json(capsys, packs):
    clap = packs["clap"]
    r = run(capsys, "packs", "show", "clap")
    assert r.code == 0 and r.err == ""
    assert f"sha256:{clap.digest}" in r.out and "claps" in r.out and "tiny/base  [abc123]" in r.out
    assert "t2v/lora.safetensors" in r.out and "t2v/embedding.safetensors" in r.out

    by_digest = run(capsys, "packs", "show", clap.digest[:8], "--json")
    assert by_digest.code == 0
    data = json.loads(by_digest.out)
    assert data["name"] == "clap:latest" and data["digest"] == clap.digest
    assert data["manifest"] == clap.manifest


def test_path_prints_the_root_and_a_packs_files(capsys, packs):
    r = run(capsys, "packs", "path")
    assert r.code == 0 and r.out.strip() == str(paths.home())

    r = run(capsys, "packs", "path", "clap")
    assert r.code == 0
    files = dict(line.split("\t") for line in r.out.strip().splitlines())
    assert set(files) == {"t2v/lora.safetensors", "t2v/embedding.safetensors"}
    assert Path(files["t2v/lora.safetensors"]) == blob(packs["clap"])
    assert all(Path(p).is_file() and Path(p).parent == paths.home() / "blobs" for p in files.values())

    r = run(capsys, "packs", "path", "clap", "--json")
    assert json.loads(r.out) == files


def test_manifest_text_and_paths_are_printed_as_written(capsys, tmp_path):
    """Brackets in a pack's text or in a path are data, not terminal markup."""
    lora = write_tensors(tmp_path / "lora.safetensors", 3)
    PackStore(paths.home()).install("odd", {"t2v/lora.safetensors": lora}, {
        "motion": {"name": "[/bold] clap", "trigger_words": ["[red]"]}, "base": {"id": "models/[v2]"},
        "data": {"note": "[/]"}})
    r = run(capsys, "packs", "list")
    assert r.code == 0 and "[/bold] clap" in r.out and "models/[v2]" in r.out
    r = run(capsys, "packs", "show", "odd")
    assert r.code == 0 and "[/bold] clap" in r.out and "[red]" in r.out and "note: [/]" in r.out
    folder = tmp_path / "[bold]x"
    folder.mkdir()
    r = run(capsys, "packs", "export", "odd", folder)
    assert r.code == 0 and r.out == f"{folder / 'odd-latest.smpack'}\n"


# -- export, rm, import ------------------------------------------------------------------------------------


def test_export_rm_import_round_trip(capsys, packs, tmp_path):
    clap, wave = packs["clap"], packs["wave"]
    r = run(capsys, "packs", "export", "clap", tmp_path)
    archive = tmp_path / "clap-latest.smpack"
    assert r.code == 0 and r.out == f"{archive}\n"  # stdout: just the path, for scripts
    assert "exported clap:latest" in r.err and archive.is_file()

    again = run(capsys, "packs", "export", "clap", archive)
    assert again.code == 2 and "--force" in again.err and again.out == ""

    r = run(capsys, "packs", "rm", "clap", "--yes")
    assert r.code == 0 and "removed clap:latest" in r.err
    assert not blob(clap).exists(), "the blob only clap used is freed"
    assert blob(wave, "t2v/embedding.safetensors").is_file(), "the blob wave shares is kept"
    assert [row["name"] for row in json.loads(run(capsys, "packs", "list", "--json").out)] == ["wave:latest"]

    r = run(capsys, "packs", "import", archive)
    assert r.code == 0 and r.out == "clap:latest\n" and "imported clap:latest" in r.err
    r = run(capsys, "packs", "show", "clap", "--json")
    assert json.loads(r.out)["digest"] == clap.digest, "export and import keep the pack byte for byte"

    r = run(capsys, "packs", "import", archive, "--as", "clap:friend", "--json")
    assert r.code == 0 and json.loads(r.out) == {"name": "clap:friend", "digest": json.loads(r.out)["digest"]}

    r = run(capsys, "packs", "verify", "--json")
    assert r.code == 0 and r.err == ""
    assert {(row["name"], row["ok"]) for row in json.loads(r.out)} == {
        ("clap:friend", True), ("clap:latest", True), ("wave:latest", True)}


def test_rm_without_yes_off_a_terminal_refuses(packs):
    r = run_process("packs", "rm", "clap")
    assert r.code == 2 and "--yes" in r.err
    assert_one_line_error(r.err)
    assert PackStore(paths.home()).resolve("clap").digest == packs["clap"].digest


def test_rm_of_an_unknown_pack_removes_nothing(capsys, packs):
    r = run(capsys, "packs", "rm", "clap", "nosuch", "--yes")
    assert r.code == 3 and "nosuch" in r.err
    assert {p.name for p in PackStore(paths.home()).list()} == {"clap", "wave"}


# -- integrity -------------------------------------------------------------------------------------------


def test_verify_names_a_pack_with_one_flipped_byte(capsys, packs, tmp_path):
    target = blob(packs["clap"])
    os.chmod(target, 0o644)  # blobs are stored read-only
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))

    r = run(capsys, "packs", "verify")
    assert r.code == 4
    assert "clap:latest" in r.err.splitlines()[0] and "wave" not in r.err.splitlines()[0]
    assert "BAD" in r.out and "clap:latest" in r.out

    r = run(capsys, "packs", "verify", "--json")
    assert r.code == 4
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert rows["clap:latest"]["ok"] is False and "t2v/lora.safetensors" in rows["clap:latest"]["problems"][0]
    assert rows["wave:latest"]["ok"] is True

    assert run(capsys, "packs", "verify", "wave").code == 0
    folder = tmp_path / "exports"
    folder.mkdir()
    exported = run(capsys, "packs", "export", "clap", folder / "clap.smpack")
    assert exported.code == 4 and list(folder.iterdir()) == [], "a damaged pack is never exported"


def _hostile_archive(path: Path, manifest: bytes, case: str, outside: Path, digest: str) -> None:
    """A pack archive whose valid manifest is followed by one member that reaches outside the archive."""
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        payload = b"written where it must not be\n"
        if case in ("dotdot", "nested-dotdot", "absolute"):
            name = {"dotdot": "../x", "nested-dotdot": "blobs/../../x", "absolute": str(outside / "x")}[case]
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        else:
            info = tarfile.TarInfo(f"blobs/sha256-{digest}")
            info.type = tarfile.SYMTYPE if case == "symlink" else tarfile.LNKTYPE
            info.linkname = str(outside / "x") if case == "symlink" else "manifest.json"
            tar.addfile(info)


@pytest.mark.parametrize("case, reason", [("dotdot", "outside the archive"), ("nested-dotdot", "outside the archive"),
                                          ("absolute", "absolute path"), ("symlink", "symbolic link"),
                                          ("hardlink", "hard link")])
def test_import_refuses_an_archive_that_reaches_outside(capsys, packs, tmp_path, tmp_path_factory, case, reason,
                                                        monkeypatch):
    clap = packs["clap"]
    good = tmp_path / "clap.smpack"
    assert run(capsys, "packs", "export", "clap", good).code == 0
    with tarfile.open(good) as tar:
        manifest = tar.extractfile("manifest.json").read()
    assert run(capsys, "packs", "rm", "clap", "--yes").code == 0
    hostile = tmp_path / f"{case}.smpack"
    # Everything this session's tests write lives under the base temp dir, the store included.
    everything = tmp_path_factory.getbasetemp()
    _hostile_archive(hostile, manifest, case, everything, clap.manifest["files"]["t2v/lora.safetensors"]["digest"][7:])
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # a relative escape must not land beside where the user stands either
    before = snapshot(everything)

    r = run(capsys, "packs", "import", hostile)

    assert r.code == 4, r.err
    assert_one_line_error(r.err)
    assert hostile.name in r.err and reason in r.err and r.out == ""
    assert snapshot(everything) == before, "the store and everything around it are unchanged"
    assert [p.name for p in PackStore(paths.home()).list()] == ["wave"]


def test_import_of_something_else_is_refused(capsys, packs, tmp_path):
    not_an_archive = tmp_path / "clap.smpack"
    not_an_archive.write_bytes(os.urandom(2048))
    r = run(capsys, "packs", "import", not_an_archive)
    assert r.code == 2 and "not a synmotion pack archive" in r.err
    assert_one_line_error(r.err)
    r = run(capsys, "packs", "import", tmp_path / "missing.smpack")
    assert r.code == 3 and "missing.smpack" in r.err


def test_gc_reports_and_removes_orphans(capsys, packs):
    store = paths.home()
    orphan_bytes = b"a blob whose manifest was never written"
    orphan = store / "blobs" / f"{BLOB_PREFIX}{hashlib.sha256(orphan_bytes).hexdigest()}"
    orphan.write_bytes(orphan_bytes)
    stale = store / "tmp" / "999999-1000000000-abcd.part"  # long ago, by a process long gone
    stale.write_bytes(b"half a staging file")

    r = run(capsys, "packs", "gc", "--dry-run", "--json")
    assert r.code == 0
    report = json.loads(r.out)
    assert report["dry_run"] is True and report["blobs"] == [orphan.name.removeprefix(BLOB_PREFIX)]
    assert report["blob_bytes"] == len(orphan_bytes) and report["temp_paths"] == [str(stale)]
    assert "would remove 1 unreferenced blob(s) and 1 stale temp file(s)" in r.err
    assert orphan.exists() and stale.exists()

    r = run(capsys, "packs", "gc")
    assert r.code == 0 and r.out == ""
    assert "removed 1 unreferenced blob(s) and 1 stale temp file(s)" in r.err
    assert not orphan.exists() and not stale.exists()
    assert run(capsys, "packs", "verify").code == 0
    assert {p.name for p in PackStore(paths.home()).list()} == {"clap", "wave"}

    r = run(capsys, "packs", "gc", "--json")
    assert json.loads(r.out)["blobs"] == [] and "removed 0 unreferenced blob(s)" in r.err


def test_two_processes_importing_at_once_leave_a_clean_store(capsys, tmp_path):
    # The packs share a blob, so both processes race to commit the same file and to update the manifests.
    shared = write_tensors(tmp_path / "src" / "embedding.safetensors", 7, shape=(512, 512))
    archives = []
    for motion, seed in (("clap", 1), ("wave", 2)):
        install(motion, seed, tmp_path / "src", shared)
        archive = tmp_path / f"{motion}.smpack"
        assert run(capsys, "packs", "export", motion, archive).code == 0
        assert run(capsys, "packs", "rm", motion, "--yes").code == 0
        archives.append(archive)
    assert not list((paths.home() / "blobs").iterdir())

    procs = [subprocess.Popen([sys.executable, "-m", "synmotion_cli", "packs", "import", archive],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for archive in archives]
    for proc, motion in zip(procs, ("clap", "wave")):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out == f"{motion}:latest\n"

    r = run(capsys, "packs", "verify", "--json")
    assert r.code == 0, r.err
    assert {(row["name"], row["ok"]) for row in json.loads(r.out)} == {("clap:latest", True), ("wave:latest", True)}
    gc = json.loads(run(capsys, "packs", "gc", "--dry-run", "--json").out)
    assert gc["blobs"] == [] and gc["temp_paths"] == []


# -- output discipline -------------------------------------------------------------------------------------


def test_quiet_silences_messages_but_not_data_or_errors(capsys, packs, tmp_path):
    r = run(capsys, "-q", "packs", "export", "clap", tmp_path)
    assert r.code == 0 and r.err == "" and r.out == f"{tmp_path / 'clap-latest.smpack'}\n"
    r = run(capsys, "-q", "packs", "rm", "clap", "--yes")
    assert r.code == 0 and r.err == "" and r.out == ""
    assert [row["name"] for row in json.loads(run(capsys, "packs", "list", "--json").out)] == ["wave:latest"]
    r = run(capsys, "-q", "packs", "import", tmp_path / "clap-latest.smpack")
    assert r.code == 0 and r.err == "" and r.out == "clap:latest\n"
    r = run(capsys, "-q", "packs", "gc")
    assert r.code == 0 and r.err == "" and r.out == ""
    r = run(capsys, "-q", "packs", "show", "nosuch")
    assert r.code == 3 and r.err.startswith("Error:"), "errors are never silenced"


# -- learn's clip checks ------------------------------------------------------------------------------------


def test_learn_refuses_a_clip_of_random_bytes_before_any_model_loads(capsys, tmp_path):
    clip = tmp_path / "random.mp4"
    clip.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for _ in range(2):  # the second try must meet the same error, not a left-over run to resume
        r = run(capsys, "learn", "clap", clip)
        assert r.code == 2, r.err
        assert_one_line_error(r.err)
        assert "random.mp4" in r.err.splitlines()[0] and r.out == ""
    assert PackStore(paths.home()).list() == []
    assert not paths.runs_dir().exists() or not any(paths.runs_dir().iterdir())


def test_learn_names_every_bad_clip_in_a_folder(capsys, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "first.mp4").write_bytes(os.urandom(4096))
    (folder / "second.mov").write_bytes(b"")
    r = run(capsys, "learn", "clap", folder)
    assert r.code == 2
    assert "Traceback" not in r.err and r.err.startswith("Error:")
    assert "2 of 2 clips" in r.err and "first.mp4" in r.err and "second.mov" in r.err


def snapshot(root):
    return _snapshot(root, metadata=True)
