"""Training checkpoints for ``learn --resume``: trainable weights, optimizer, LR schedule, step counter
and every random state, so a resumed run ends with the same weights as an uninterrupted one.

Everything is stored as safetensors plus JSON (never pickle), written to a temp directory and swapped in
with ``os.replace``: an interruption while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

STATE = "state.json"


def _optimizer_tensors(optimizer) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors (safetensors) and the JSON-able rest."""
    import torch

    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save(run_dir: Path, *, step: int, trainables: dict, optimizer, scheduler, generator, extra: dict) -> Path:
    import torch
    from safetensors.torch import save_file

    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"checkpoint.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in trainables.items()}, str(tmp / "trainables.safetensors"))
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda{i}"] = s
    save_file(rng, str(tmp / "rng.safetensors"))
    py_state = random.getstate()
    state = {"step": step, "optimizer": opt_meta, "scheduler": scheduler.state_dict(),
             "python_random": [py_state[0], list(py_state[1]), py_state[2]], **extra}
    (tmp / STATE).write_text(json.dumps(state))
    final = run_dir / "checkpoint"
    old = run_dir / f"checkpoint.old-{os.getpid()}"
    if final.exists():
        final.replace(old)
    tmp.replace(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def exists(run_dir: Path) -> bool:
    return (run_dir / "checkpoint" / STATE).is_file()


def load(run_dir: Path, *, trainables: dict, optimizer, scheduler, generator) -> dict:
    """Restore everything in place; returns the saved state (step, extra fields)."""
    import torch
    from safetensors.torch import load_file

    ckpt = run_dir / "checkpoint"
    state = json.loads((ckpt / STATE).read_text())
    saved = load_file(str(ckpt / "trainables.safetensors"))
    missing = set(trainables) ^ set(saved)
    if missing:
        from synmotion_cli.errors import UsageError

        raise UsageError("the checkpoint does not match this run's settings "
                         f"({len(missing)} parameter(s) differ)",
                         hint="resume with the same options as the interrupted run, or start over without --resume")
    with torch.no_grad():
        for name, param in trainables.items():
            param.copy_(saved[name].to(param.device, param.dtype))
    _restore_optimizer(optimizer, load_file(str(ckpt / "optimizer.safetensors")), state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = load_file(str(ckpt / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))]
        if states:
            torch.cuda.set_rng_state_all(states)
    py = state["python_random"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    return state
