"""`synmotion doctor`: what this machine can run, and what to fix."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import typer

from ._common import JSON, human_size, open_store, out

HELP = """Check this machine: python, torch, CUDA and free GPU memory, ffmpeg, which known base models are in
the Hugging Face cache, installed backends, and the health of the pack store.

[bold]Examples[/bold]

  synmotion doctor

  synmotion doctor --json
"""

KNOWN_BASES = ("hunyuanvideo-community/HunyuanVideo", "hunyuanvideo-community/HunyuanVideo-I2V")


def _check(name: str, ok: bool, detail: str, fix: str = "", required: bool = True) -> dict:
    return {"check": name, "ok": ok, "detail": detail, "fix": "" if ok else fix, "required": required}


def _torch() -> list[dict]:
    if importlib.util.find_spec("torch") is None:
        return [_check("torch", False, "not installed", "pip install torch==2.13.0 (CPU) or a CUDA build")]
    import torch

    rows = [_check("torch", True, torch.__version__)]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            rows.append(_check(f"cuda:{i}", True, f"{torch.cuda.get_device_name(i)}, "
                               f"{human_size(free)} free of {human_size(total)}", required=False))
    else:
        rows.append(_check("cuda", False, "no CUDA device", "full-size HunyuanVideo needs a CUDA GPU with >= 40 GB; "
                           "the toy base runs on CPU", required=False))
    return rows


def _ffmpeg() -> dict:
    from ..media import ffmpeg_exe

    try:
        exe = ffmpeg_exe()
        first = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=20).stdout.splitlines()[0]
        return _check("ffmpeg", True, f"{first.split(' Copyright')[0]} ({exe})")
    except Exception as e:
        return _check("ffmpeg", False, str(e), "pip install imageio-ffmpeg, or install ffmpeg on PATH")


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hub"


def _bases() -> list[dict]:
    cache = _hf_cache_dir()
    rows = []
    for repo in KNOWN_BASES:
        folder = cache / ("models--" + repo.replace("/", "--"))
        snapshots = sorted((folder / "snapshots").glob("*")) if folder.is_dir() else []
        rows.append(_check(f"base {repo}", bool(snapshots),
                           f"cached ({len(snapshots)} snapshot(s)) in {folder}" if snapshots else f"not in {cache}",
                           f"hf download {repo} (on a machine with network), or pass --base DIR",
                           required=False))
    return rows


def _store() -> dict:
    try:
        store = open_store()
        packs = store.list()
        broken = store.list_broken()
        usage = shutil.disk_usage(store.root if store.root.exists() else store.root.parent)
        detail = (f"{len(packs)} pack(s) in {store.root}; {human_size(usage.free)} free on disk"
                  + (f"; {len(broken)} unreadable manifest(s)" if broken else ""))
        return _check("pack store", not broken, detail, "run `synmotion packs verify`")
    except Exception as e:  # the doctor reports, it does not crash
        return _check("pack store", False, str(e), "check SYNMOTION_HOME and permissions")


def _backends() -> list[dict]:
    from ..plugins import load_backends

    rows = []
    for plugin in load_backends():
        if plugin.error:
            rows.append(_check(f"backend {plugin.name}", False, plugin.error, "reinstall the backend"))
            continue
        try:
            problems = plugin.obj.check(None)
        except Exception as e:
            problems = []
            rows.append(_check(f"backend {plugin.name}", False, f"check failed: {e}", "reinstall the backend"))
            continue
        fatal = [p for p in problems if p.fatal]
        rows.append(_check(f"backend {plugin.name}", not fatal,
                           ", ".join(sorted(plugin.obj.capabilities)) + (f"; {fatal[0].what}" if fatal else ""),
                           fatal[0].fix if fatal else "", required=False))
        for p in problems:
            if not p.fatal:
                rows.append(_check(f"  {plugin.name}", False, p.what, p.fix, required=False))
    if not rows:
        rows.append(_check("backends", False, "none installed", "pip install -e backends/hunyuan"))
    return rows


def doctor(json_out: bool = JSON) -> None:
    o = out(json_out)
    rows = [_check("python", sys.version_info >= (3, 11), f"{platform.python_version()} ({sys.executable})",
                   "use Python 3.11 or newer")]
    rows += _torch() + [_ffmpeg()] + _bases() + _backends() + [_store()]

    def render(console):
        for r in rows:
            mark = "[green]ok[/green]  " if r["ok"] else ("[red]FAIL[/red]" if r["required"] else "[yellow]--[/yellow]  ")
            console.print(f"{mark} {r['check']}: {r['detail']}", highlight=False)
            if r["fix"]:
                console.print(f"       [dim]fix: {r['fix']}[/dim]", highlight=False)

    o.emit(rows, render)
    if any(not r["ok"] and r["required"] for r in rows):
        raise typer.Exit(5)
