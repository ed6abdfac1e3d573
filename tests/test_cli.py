"""The CLI surface: help, version, completions, the no-torch rule, output discipline and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run, run_process

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["learn", "gen", "inspect", "doctor", "packs", "backends"]
PACK_VERBS = ["list", "show", "rm", "verify", "export", "import", "path", "gc"]


def test_help_lists_every_command_with_examples(capsys):
    r = run(capsys, "--help")
    assert r.code == 0
    for cmd in COMMANDS:
        assert f" {cmd} " in r.out
    assert "Examples" in r.out and 'synmotion gen "a panda claps"' in r.out
    packs = run(capsys, "packs", "--help")
    for verb in PACK_VERBS:
        assert f" {verb} " in packs.out
    for cmd in ["learn", "gen", "inspect", "doctor"]:
        sub = run(capsys, cmd, "--help")
        assert sub.code == 0 and "Examples" in sub.out, cmd
    for verb in PACK_VERBS:
        sub = run(capsys, "packs", verb, "--help")
        assert sub.code == 0 and "Example" in sub.out, verb


def test_version(capsys):
    from synmotion_cli import __version__

    r = run(capsys, "--version")
    assert r.code == 0 and r.out.strip() == f"synmotion {__version__}"


def test_usage_error_exit_code_2(capsys):
    r = run(capsys, "packs", "list", "--no-such-flag")
    assert r.code == 2
    assert "No such option" in r.err or "no such option" in r.err.lower()
    r = run(capsys, "no-such-command")
    assert r.code == 2


def test_help_completion_and_packs_do_not_import_torch(tmp_path):
    """Listing and moving packs must stay fast and light: no torch, diffusers or transformers."""
    code = r"""
import os, sys, io, contextlib
from synmotion_cli.app import main
for args in (["--help"], ["packs", "list"], ["packs", "list", "--json"], ["packs", "verify"], ["packs", "gc"],
             ["packs", "path"], ["packs", "--help"], ["gen", "--help"], ["learn", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0, args
os.environ["_SYNMOTION_COMPLETE"] = "complete_bash"
os.environ["COMP_WORDS"] = "synmotion packs "
os.environ["COMP_CWORD"] = "2"
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main([])
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "peft", "accelerate") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SYNMOTION_HOME": str(tmp_path / "store")})
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY:\n" in proc.stdout or proc.stdout.strip().endswith("HEAVY:"), proc.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_current(shell):
    """completions/ is generated from the app; regenerate with scripts/make-completions.sh."""
    proc = subprocess.run([sys.executable, "-m", "synmotion_cli"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "_SYNMOTION_COMPLETE": f"source_{shell}"})
    assert proc.returncode == 0, proc.stderr
    committed = (ROOT / "completions" / f"synmotion.{shell}").read_text()
    assert proc.stdout.strip() == committed.strip(), f"completions/synmotion.{shell} is stale"


def test_completion_offers_pack_verbs():
    proc = subprocess.run([sys.executable, "-m", "synmotion_cli"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "_SYNMOTION_COMPLETE": "complete_bash",
                               "COMP_WORDS": "synmotion packs ", "COMP_CWORD": "2"})
    assert set(PACK_VERBS) <= set(proc.stdout.split())


def test_unknown_pack_is_not_found_exit_3(capsys):
    r = run(capsys, "packs", "show", "nosuchpack")
    assert r.code == 3
    assert r.err.startswith("Error:") and "nosuchpack" in r.err
    assert "Traceback" not in r.err and r.out == ""


def test_unknown_backend_is_not_found(capsys, tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"")
    r = run(capsys, "gen", "a panda claps", "--backend", "nosuchbackend", "--no-pack", "-o", str(tmp_path / "o.mp4"))
    assert r.code == 3 and "nosuchbackend" in r.err and "Traceback" not in r.err


def test_json_output_is_valid_json_on_stdout_only(capsys):
    r = run(capsys, "packs", "list", "--json")
    assert r.code == 0 and json.loads(r.out) == []
    r = run(capsys, "backends", "list", "--json")
    assert r.code == 0 and any(b["name"] == "hunyuan" for b in json.loads(r.out))


def test_no_color_and_plain_output_off_terminal():
    r = run_process("packs", "verify", env={"NO_COLOR": "1"})
    assert r.code == 0 and "\x1b[" not in r.out + r.err


def test_doctor_reports_and_succeeds_on_this_machine(capsys):
    r = run(capsys, "doctor", "--json")
    rows = {row["check"]: row for row in json.loads(r.out)}
    assert rows["python"]["ok"] and rows["ffmpeg"]["ok"] and rows["torch"]["ok"]
    assert "pack store" in rows and any(k.startswith("base ") for k in rows)
    assert r.code == 0, r.err
