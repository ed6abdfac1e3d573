"""Several processes writing one store at once (and gc running beside them) leave it whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import synmotion_cli
from synmotion_cli.store import PackStore

PACKS_PER_WORKER = 4

# Each worker waits for the go file, so the installs overlap instead of running one after the other.
WORKER = """
import sys, time
from pathlib import Path
from synmotion_cli.store import PackStore
root, go, src, worker, count = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
store = PackStore(root, lock_timeout=60)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
for i in range(count):
    files = {"t2v/embedding.safetensors": src / "shared.safetensors",
             "t2v/lora.safetensors": src / f"{worker}-{i}.safetensors"}
    store.install(f"{worker}-pack{i}", files, {"kind": "motion", "worker": worker})
store.install("contested", {"t2v/lora.safetensors": src / f"{worker}-0.safetensors"}, {"worker": worker})
print("done", flush=True)
"""

GC_WORKER = """
import sys, time
from pathlib import Path
from synmotion_cli.store import PackStore
root, go, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
store = PackStore(root, lock_timeout=60)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
while not stop.exists():
    store.gc()
print("done", flush=True)
"""


def test_concurrent_installs_with_gc_leave_a_clean_store(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    save_file({"w": rng.standard_normal((16, 16)).astype(np.float32)}, str(src / "shared.safetensors"))
    workers = ["alpha", "beta"]
    for worker in workers:
        for i in range(PACKS_PER_WORKER):
            save_file({"w": rng.standard_normal((16, 16)).astype(np.float32)}, str(src / f"{worker}-{i}.safetensors"))

    root, go, stop = tmp_path / "store", tmp_path / "go", tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(Path(synmotion_cli.__file__).parents[1])}
    installers = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(go), str(src), worker,
                                    str(PACKS_PER_WORKER)], stdout=subprocess.PIPE, text=True, env=env)
                  for worker in workers]
    collector = subprocess.Popen([sys.executable, "-c", GC_WORKER, str(root), str(go), str(stop)],
                                 stdout=subprocess.PIPE, text=True, env=env)
    try:
        for process in installers + [collector]:
            assert process.stdout.readline().strip() == "ready"
        go.touch()
        for process in installers:
            assert process.stdout.readline().strip() == "done"
            assert process.wait(timeout=120) == 0
        stop.touch()
        assert collector.stdout.readline().strip() == "done"
        assert collector.wait(timeout=120) == 0
    finally:
        for process in installers + [collector]:
            process.kill()
            process.wait()
            process.stdout.close()

    store = PackStore(root)
    expected = sorted([f"{w}-pack{i}:latest" for w in workers for i in range(PACKS_PER_WORKER)] + ["contested:latest"])
    assert sorted(p.full_name for p in store.list()) == expected
    assert store.list_broken() == []
    results = store.verify()
    assert len(results) == len(expected) and all(r.ok for r in results), [r for r in results if not r.ok]
    assert store.resolve("contested").manifest["worker"] in workers
    # One shared blob plus one per pack; "contested" reuses a worker's first file, so it adds none.
    assert len(list(store.blobs_dir.iterdir())) == 1 + len(workers) * PACKS_PER_WORKER
    leftover = store.gc(dry_run=True)
    assert leftover.blobs == [] and leftover.temp_paths == []
    assert list(store.tmp_dir.iterdir()) == []
