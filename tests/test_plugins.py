"""A third-party distribution adds a backend and a pack source just by being installed.

The example plugin (tests/plugins/synmotion-example-plugin) is pip-installed once per session into a temp
folder, and the CLI runs as a separate process with that folder on PYTHONPATH, as it would for a user who
installed the plugin: entry points are found from the installed metadata, nothing is registered by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from cli_runner import run_process
from synmotion_cli import media
from synmotion_cli.store import PackStore

PLUGIN_SOURCE = Path(__file__).resolve().parent / "plugins" / "synmotion-example-plugin"
CLIP_COLOUR = (200, 60, 40)
EXAMPLE_COLOUR = (20, 190, 70)
TOLERANCE = 8  # h264 moves a flat colour by a few levels; the watermark by a few more


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory) -> Path:
    """The example plugin, installed by pip from a copy (so the build leaves nothing in the source tree)."""
    work = tmp_path_factory.mktemp("example-plugin")
    source = work / "source"
    shutil.copytree(PLUGIN_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("synmotion_example_plugin-*.dist-info/entry_points.txt"))
    return target


@pytest.fixture(scope="session")
def broken_plugin_dir(tmp_path_factory) -> Path:
    """An installed distribution whose backend and pack source both fail to import."""
    target = tmp_path_factory.mktemp("broken-plugin")
    package = target / "synmotion_broken_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("import synmotion_no_such_module  # the dependency it forgot\n")
    dist_info = target / "synmotion_broken_plugin-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: synmotion-broken-plugin\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text("[synmotion.backends]\nbroken = synmotion_broken_plugin:Backend\n\n"
                                                "[synmotion.packs]\nbrokenpacks = synmotion_broken_plugin:source\n")
    return target


def cli(*args, plugins=(), **env):
    """Run ``synmotion ARGS`` in a fresh process that sees the given plugin folders."""
    path = os.pathsep.join([*map(str, plugins), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return run_process(*args, env={"PYTHONPATH": path, **env}, timeout=120)


@pytest.fixture
def clips(tmp_path) -> Path:
    folder = tmp_path / "clips"
    for i in range(2):
        frames = np.empty((12, 32, 32, 3), dtype=np.uint8)
        frames[:] = CLIP_COLOUR
        media.write_mp4(frames, folder / f"clip{i}.mp4", fps=8.0)
    return folder


def last_frame_colour(video: Path) -> np.ndarray:
    info = media.probe(video)
    frames = media.decode(video, fps=info.fps, height=info.height, width=info.width, frames=info.frames)
    return frames[-1].reshape(-1, 3).mean(0)


def assert_one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert lines[-2].startswith("Error:") and lines[-1].startswith("Hint:"), err
    assert "Traceback" not in err


def test_backends_list_shows_the_plugin_beside_hunyuan(plugin_dir):
    r = cli("backends", "list", "--json", plugins=[plugin_dir])
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert {"colour", "hunyuan"} <= set(rows)
    colour = rows["colour"]
    assert colour["capabilities"] == ["learn", "t2v"] and colour["error"] is None
    assert colour["distribution"] == "synmotion-example-plugin 0.1.0"
    assert "mean colour" in colour["description"]
    assert rows["hunyuan"]["default"] and not colour["default"], "hunyuan is preferred when several are installed"

    table = cli("backends", "list", plugins=[plugin_dir])
    line = next(line for line in table.out.splitlines() if line.split()[:1] == ["colour"])
    assert "learn,t2v" in line and "synmotion-example-plugin" in line

    without = cli("backends", "list", "--json")
    assert "colour" not in {row["name"] for row in json.loads(without.out)}


def test_learn_and_gen_through_the_plugin_backend(plugin_dir, clips, tmp_path):
    r = cli("learn", "clap", clips, "--backend", "colour", "--json", plugins=[plugin_dir])
    assert r.code == 0, r.err
    learned = json.loads(r.out)
    assert learned["name"] == "clap:latest" and learned["manifest"]["backend"] == "colour"
    assert learned["manifest"]["data"] == {"clips": 2}

    files = cli("packs", "path", "clap", "--json", plugins=[plugin_dir])
    colour = load_file(json.loads(files.out)["t2v/colour.safetensors"])["colour"]
    assert np.abs(colour - CLIP_COLOUR).max() < TOLERANCE, "the pack holds what the backend learned"

    video = tmp_path / "out.mp4"
    r = cli("gen", "a panda claps", "--backend", "colour", "-o", video, "--seed", "7", plugins=[plugin_dir])
    assert r.code == 0, r.err
    assert r.out == f"{video}\n" and "seed 7" in r.err and "using pack(s) clap:latest" in r.err
    tags = media.read_metadata(video)
    assert tags["synmotion_prompt"] == "a panda claps" and tags["synmotion_seed"] == "7"
    assert tags["synmotion_packs"] == f"clap:latest@sha256:{learned['digest'][:12]}:1"
    assert np.abs(last_frame_colour(video) - colour).max() < TOLERANCE, "the video was made with the pack"

    again = cli("gen", "a panda claps", "--backend", "colour", "-o", video, plugins=[plugin_dir])
    assert again.code == 2 and "--force" in again.err, "gen never overwrites without --force"

    r = cli("inspect", video, "--json", plugins=[plugin_dir])
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["generated_by_synmotion"] and report["metadata"]["seed"] == "7"
    assert report["watermark"]["found"] and report["watermark"]["matches_metadata"]


def test_synmotion_backend_selects_the_plugin_without_a_flag(plugin_dir, clips, tmp_path):
    r = cli("backends", "list", "--json", plugins=[plugin_dir], SYNMOTION_BACKEND="colour")
    assert {row["name"] for row in json.loads(r.out) if row["default"]} == {"colour"}

    r = cli("learn", "clap", clips, plugins=[plugin_dir], SYNMOTION_BACKEND="colour")
    assert r.code == 0 and r.out == "clap:latest\n", r.err
    video = tmp_path / "fox.mp4"
    r = cli("gen", "a fox claps", "-o", video, plugins=[plugin_dir], SYNMOTION_BACKEND="colour")
    assert r.code == 0, r.err
    assert media.read_metadata(video)["synmotion_base"] == "colour"


def test_learn_refuses_unreadable_clips_by_name(plugin_dir, tmp_path):
    bad = tmp_path / "random.mp4"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    r = cli("learn", "clap", bad, "--backend", "colour", plugins=[plugin_dir])
    assert r.code == 2 and "random.mp4" in r.err and r.out == ""
    assert_one_line_error(r.err)

    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(bad, folder / "one.mp4")
    (folder / "two.webm").write_bytes(b"not a video")
    r = cli("learn", "clap", folder, "--backend", "colour", plugins=[plugin_dir])
    assert r.code == 2 and "one.mp4" in r.err and "two.webm" in r.err and "Traceback" not in r.err


@pytest.fixture
def example_packs(tmp_path) -> tuple[Path, str]:
    """A folder in the store layout, as a plugin ships it, holding one pack ``wave``."""
    root = tmp_path / "example-packs"
    tensor = tmp_path / "colour.safetensors"
    save_file({"colour": np.array(EXAMPLE_COLOUR, dtype=np.float32)}, str(tensor))
    pack = PackStore(root).install("wave", {"t2v/colour.safetensors": tensor}, {
        "kind": "synmotion.motion-pack", "backend": "colour", "motion": {"name": "wave", "trigger_words": ["wave"]},
        "base": {"id": "colour"}, "variants": {"t2v": {"files": ["t2v/colour.safetensors"]}}})
    return root, pack.digest


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_a_plugin_pack_source_is_listed_shown_and_used(plugin_dir, example_packs, tmp_path):
    root, digest = example_packs
    before = tree(root)
    env = {"SYNMOTION_EXAMPLE_PACKS": str(root)}

    r = cli("packs", "list", "--json", plugins=[plugin_dir], **env)
    assert r.code == 0, r.err
    assert [(row["name"], row["source"], row["digest"]) for row in json.loads(r.out)] == [
        ("wave:latest", "examples", digest)]
    table = cli("packs", "list", plugins=[plugin_dir], **env)
    rows = [line.split() for line in table.out.splitlines()]
    assert any(row[0] == "wave:latest" and row[-1] == "examples" for row in rows if row)

    r = cli("packs", "show", "examples/wave", "--json", plugins=[plugin_dir], **env)
    assert r.code == 0, r.err
    shown = json.loads(r.out)
    assert shown["source"] == "examples" and shown["digest"] == digest and shown["manifest"]["motion"]["name"] == "wave"
    missing = cli("packs", "show", "examples/nosuch", plugins=[plugin_dir], **env)
    assert missing.code == 3 and "nosuch" in missing.err

    video = tmp_path / "wave.mp4"
    r = cli("gen", "a fox waves", "--pack", "examples/wave", "--backend", "colour", "-o", video,
            plugins=[plugin_dir], **env)
    assert r.code == 0, r.err
    assert media.read_metadata(video)["synmotion_packs"] == f"wave:latest@sha256:{digest[:12]}:1"
    assert np.abs(last_frame_colour(video) - EXAMPLE_COLOUR).max() < TOLERANCE

    assert tree(root) == before, "a pack source is read, never written"
    assert cli("packs", "list", "--json").out.strip() == "[]", "without the plugin, its packs are gone"


def test_a_broken_plugin_is_reported_and_other_commands_still_work(plugin_dir, broken_plugin_dir, clips, tmp_path):
    both = [plugin_dir, broken_plugin_dir]
    r = cli("backends", "list", "--json", plugins=both)
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert "synmotion_no_such_module" in rows["broken"]["error"]
    assert rows["broken"]["distribution"] == "synmotion-broken-plugin 0.1.0"
    assert rows["colour"]["error"] is None and rows["hunyuan"]["error"] is None

    table = cli("backends", "list", plugins=both)
    assert table.code == 0
    assert any(line.split()[:1] == ["broken"] and "failed to load" in line for line in table.out.splitlines())

    r = cli("gen", "a cat claps", "--backend", "broken", "--no-pack", "-o", tmp_path / "x.mp4", plugins=both)
    assert r.code == 5 and "broken" in r.err and "synmotion_no_such_module" in r.err
    assert_one_line_error(r.err)

    listed = cli("packs", "list", "--json", plugins=both)
    assert listed.code == 0 and json.loads(listed.out) == []
    assert "brokenpacks" in listed.err and "Warning:" in listed.err

    assert cli("learn", "clap", clips, "--backend", "colour", plugins=both).code == 0
    r = cli("gen", "a cat claps", "--backend", "colour", "-o", tmp_path / "cat.mp4", plugins=both)
    assert r.code == 0, r.err


def test_inspect_notices_edited_tags(tmp_path, plugin_dir):
    """The pixels carry a hash of the tags: rewriting the prompt tag (stream copy, same pixels) shows."""
    import subprocess as sp

    from synmotion_cli.media import ffmpeg_exe

    out = tmp_path / "v.mp4"
    r = cli("gen", "a panda claps", "--backend", "colour", "--no-pack", "-o", out, "--seed", "3", "--size", "64x64",
            plugins=(plugin_dir,))
    assert r.code == 0, r.err
    edited = tmp_path / "edited.mp4"
    sp.run([ffmpeg_exe(), "-v", "error", "-i", str(out), "-map_metadata", "0", "-metadata",
            "synmotion_prompt=a cat waves", "-movflags", "+use_metadata_tags", "-c", "copy", str(edited)], check=True)
    original = json.loads(cli("inspect", out, "--json").out)
    changed = json.loads(cli("inspect", edited, "--json").out)
    assert original["watermark"]["matches_metadata"] is True
    assert changed["metadata"]["prompt"] == "a cat waves"
    assert changed["watermark"]["found"] and changed["watermark"]["matches_metadata"] is False
