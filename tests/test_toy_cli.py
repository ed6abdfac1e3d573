"""`synmotion toy …`: the toy world's commands, arriving through the `synmotion.commands` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
from PIL import Image

from cli_runner import run, run_process
from synmotion_cli import media
from synmotion_cli.errors import ExitCode

pytestmark = pytest.mark.skipif(
    not any(ep.name == "toy" for ep in entry_points(group="synmotion.commands")),
    reason="synmotion-toy is not installed (pip install -e toy)",
)


def test_clips_writes_readable_videos_and_a_sheet(capsys, tmp_path):
    folder = tmp_path / "clips"
    r = run(capsys, "toy", "clips", "clap", folder, "-n", "3", "--size", "48x64", "--frames", "9", "--fps", "6",
            "--subject", "panda", "--background", "snow", "--style", "pixel", "--seed", "2")
    assert r.code == 0, r.err
    assert r.out.strip() == str(folder)
    assert 'a panda claps in snow, pixel art style' in r.err and 'learn from them with --subject "a panda"' in r.err
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["clap-0.mp4", "clap-1.mp4", "clap-2.mp4", "contact-sheet.png"]
    videos = []
    for i in range(3):
        info = media.probe(folder / f"clap-{i}.mp4")
        assert (info.width, info.height, info.frames) == (64, 48, 9)
        assert info.fps == pytest.approx(6.0)
        videos.append(media.decode(folder / f"clap-{i}.mp4", fps=6.0, height=48, width=64, frames=9))
        assert media.read_metadata(folder / f"clap-{i}.mp4")["synmotion_toy_seed"] == str(2000 + i)
    assert np.abs(videos[0].astype(int) - videos[1]).mean() > 1.0  # each clip has its own seed
    with Image.open(folder / "contact-sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.height > 3 * 48


def test_clips_say_how_learn_reads_them(capsys, tmp_path):
    """A motion whose name is not its verb ("handstand": "does a handstand") needs --trigger, or learn would
    read the clips as "a person handstands"; a motion named by its verb needs nothing."""
    r = run(capsys, "toy", "clips", "handstand", tmp_path / "h", "-n", "1", "--frames", "5")
    assert r.code == 0 and 'learn from them with --trigger "do a handstand"' in r.err, r.err
    r = run(capsys, "toy", "clips", "sit-down", tmp_path / "s", "-n", "1", "--frames", "5", "--subject", "fox")
    assert r.code == 0 and 'learn from them with --trigger "sit down" --subject "a fox"' in r.err, r.err
    r = run(capsys, "toy", "clips", "clap", tmp_path / "c", "-n", "1", "--frames", "5")
    assert r.code == 0 and "learn from them" not in r.err, r.err


def test_clips_json_and_overwrite_rules(capsys, tmp_path):
    r = run(capsys, "toy", "clips", "sit down", tmp_path, "-n", "2", "--frames", "5", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["motion"] == "sit-down" and data["subject"] == "person" and data["prompt"] == "a person sits down"
    assert "--subject" not in r.err   # learn reads clips as a person's by default
    assert [p.rsplit("/", 1)[-1] for p in data["clips"]] == ["sit-down-0.mp4", "sit-down-1.mp4"]
    assert data["seeds"] == [0, 1] and (data["height"], data["width"], data["frames"]) == (64, 64, 5)
    r = run(capsys, "toy", "clips", "sit-down", tmp_path, "-n", "2", "--frames", "5")
    assert r.code == ExitCode.USAGE and "already exists" in r.err and "--force" in r.err
    r = run(capsys, "toy", "clips", "sit-down", tmp_path, "-n", "2", "--frames", "5", "--force")
    assert r.code == 0, r.err


@pytest.mark.parametrize("args, words", [
    (["moonwalk"], ["unknown motion 'moonwalk'", "clap", "walk", "toy list"]),
    (["clap", "--subject", "unicorn"], ["unknown subject 'unicorn'", "zebra", "crocodile"]),
    (["clap", "--background", "mars"], ["unknown background 'mars'", "grass", "beach"]),
    (["clap", "--style", "oil"], ["unknown style 'oil'", "pixel", "sketch"]),
    (["clap", "--size", "big"], ["bad --size", "HEIGHTxWIDTH"]),
    (["clap", "--size", "4x4"], ["out of range"]),
    (["clap", "-n", "0"], ["-n"]),
])
def test_bad_names_exit_2(capsys, tmp_path, args, words):
    r = run(capsys, "toy", "clips", args[0], tmp_path / "out", *args[1:])
    assert r.code == ExitCode.USAGE, r.err
    for word in words:
        assert word in r.err
    assert not (tmp_path / "out").exists()


def test_list(capsys):
    r = run(capsys, "toy", "list", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    motions = {m["name"]: m for m in data["motions"]}
    assert motions["clap"]["set"] == "custom" and motions["walk"]["set"] == "base"
    assert motions["handstand"]["third_person"] == "does a handstand"
    assert len(data["subjects"]) >= 12 and {"name": "zebra", "phrase": "a zebra"} in data["subjects"]
    assert {"name": "grass", "phrase": "on grass"} in data["backgrounds"]
    assert {"name": "pixel", "phrase": "pixel art style"} in data["styles"]
    r = run(capsys, "toy", "list")
    assert r.code == 0 and "handstand" in r.out and "custom" in r.out and "pixel art style" in r.out


def test_motions_from_a_user_folder_reach_the_commands(tmp_path):
    motions = tmp_path / "motions"
    motions.mkdir()
    (motions / "nod.toml").write_text('set = "custom"\nverb = "nod"\nduration = 0.8\n'
                                      '[[key]]\nat = 0.0\nhead = 0\n[[key]]\nat = 0.5\nhead = 35\n')
    env = {"SYNMOTION_TOY_MOTIONS": str(motions)}
    r = run_process("toy", "list", "--json", env=env)
    assert r.code == 0, r.err
    assert {"nod": "custom"}.items() <= {m["name"]: m["set"] for m in json.loads(r.out)["motions"]}.items()
    r = run_process("toy", "clips", "nod", tmp_path / "clips", "-n", "1", "--frames", "4", env=env)
    assert r.code == 0, r.err
    assert (tmp_path / "clips" / "nod-0.mp4").is_file()
    r = run_process("toy", "list", env={"SYNMOTION_TOY_MOTIONS": str(tmp_path / "missing")})
    assert r.code == ExitCode.USAGE and "not a folder" in r.err


def test_the_toy_group_does_not_load_the_renderer_or_torch():
    code = ("import sys; from synmotion_cli import app; "
            "print([m for m in ('torch', 'synmotion_toy.world') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_quickstart_end_to_end_says_what_the_judges_see(capsys, tmp_path):
    """The README's main command, on a short budget: clips, a pack, a video with its sheet, and the judges'
    verdict on that video."""
    pytest.importorskip("torch")
    folder = tmp_path / "qs"
    r = run(capsys, "toy", "quickstart", folder, "--motion", "wave", "--subject", "fox", "--clips", "2",
            "--steps", "2", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["prompt"] == "a fox waves" and data["pack"] == "wave:latest"
    from synmotion_toy.base import clip_rate

    assert media.probe(data["video"]).frames == clip_rate()[0]   # the toy base's own video length
    assert Image.open(data["contact_sheet"]).size[0] > 0
    judged = data["judged"]
    assert 0 < judged["motion_p"] <= 1 and 0 < judged["subject_p"] <= 1
    assert judged["right"] == (judged["motion"] == "wave" and judged["subject"] == "fox")
    assert f"the judges see: {judged['motion']}" in r.err
    assert len(list((folder / "clips").glob("*.mp4"))) == 2

    r = run(capsys, "toy", "quickstart", tmp_path / "p", "--subject", "person")
    assert r.code == 2 and "pick another --subject" in r.err
