"""The toy base's targets, measured: speed of learn/gen/quickstart on this machine, and what the judges
say about the base's own videos and about motions learned from 8 clips and moved to new subjects.

    python benchmarks/toy_targets.py                  # everything (about 11 minutes on 2 cores)
    python benchmarks/toy_targets.py --quick          # two custom motions, one seed
    python benchmarks/toy_targets.py --json out.json
    python benchmarks/toy_targets.py --speed-only     # just the timings (about 3 minutes)
    python benchmarks/toy_targets.py --accuracy-only  # just the judged targets
    python benchmarks/toy_targets.py --accuracy-only --pack-seeds 3   # three packs a motion (about 25 minutes)

A custom motion's figure rests on the pack learnt for it, and packs learnt from the same clips with another
seed are judged up to 11 points apart overall (docs/fidelity.md): --pack-seeds N learns N packs a motion
(learn seeds 0..N-1) and pools their videos, for comparisons that single packs cannot settle.

Run the timings on an otherwise idle machine: they are wall-clock, each command a fresh process as a user
runs it. The judged targets do not depend on speed and may share the machine (--threads 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cli_seconds(args, env) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "synmotion_cli", *map(str, args)], env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(f"synmotion {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--pack-seeds", type=int, default=1, help="packs learnt per custom motion (learn seeds 0..N-1)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    part = ap.add_mutually_exclusive_group()
    part.add_argument("--speed-only", action="store_true")
    part.add_argument("--accuracy-only", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="synmotion-bench-"))
    os.environ.update(SYNMOTION_HOME=str(work / "home"), SYNMOTION_CACHE=str(work / "cache"),
                      SYNMOTION_CONFIG=str(work / "config.toml"))
    env = dict(os.environ)

    from synmotion_toy.evaluate import (Generator, base_motion_accuracy, learn_pack, mean, person_clips,
                                        transfer_accuracy)
    from synmotion_toy.judges import load_judges
    from synmotion_toy.world import CUSTOM_MOTIONS, SUBJECTS

    from synmotion_cli.backend import PackUse

    seeds = 1 if args.quick else args.seeds
    results: dict = {"machine": f"{os.cpu_count()} CPU cores", "date": time.strftime("%Y-%m-%d"),
                     "seeds": seeds, "pack_seeds": args.pack_seeds}

    if not args.accuracy_only:
        # speed, each a fresh process as a user runs it: the quickstart (render, learn clap, generate), then
        # learn and gen on their own
        results["quickstart_s"] = _cli_seconds(["toy", "quickstart", work / "qs"], env)
        # an empty cache, as on a user's first learn: the clips are encoded again
        results["learn_s"] = _cli_seconds(["learn", "clap-again", work / "qs" / "clips", "--base", "toy", "--trigger",
                                           "clap"], {**env, "SYNMOTION_CACHE": str(work / "cache-learn")})
        results["gen_s"] = _cli_seconds(["gen", "a fox claps", "--pack", "clap", "-o", work / "g.mp4"], env)
        # several seeds in one command load the base once (no target: how much of `gen` is loading)
        results["gen4_s"] = _cli_seconds(["gen", "a fox claps", "--pack", "clap", "-n", "4", "-o", work / "g4.mp4"], env)
        print("| measure | value | target |")
        print("|---|---|---|")
        print(f"| quickstart (fresh process) | {results['quickstart_s']:.0f} s | < 300 s |")
        print(f"| learn, one motion, 8 clips (fresh process) | {results['learn_s']:.0f} s | < 180 s |")
        print(f"| gen, one video (fresh process) | {results['gen_s']:.1f} s | < 10 s |")
        print(f"| gen -n 4, four videos (fresh process) | {results['gen4_s']:.1f} s "
              f"({results['gen4_s'] / 4:.1f} s a video) | - |")
        print()
        if args.speed_only:
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
            return 0

    judges = load_judges()
    gen = Generator("toy")
    print("judging the base's own videos of base motions", file=sys.stderr, flush=True)
    base = base_motion_accuracy(gen, judges, seeds=seeds)
    results["base_motion_acc"] = base["overall"].motion_acc
    results["base_subject_acc"] = base["overall"].subject_acc
    results["base_per_motion"] = {m: [s.motion_acc, s.subject_acc] for m, s in base["per_motion"].items()}

    motions = list(CUSTOM_MOTIONS)[:2] if args.quick else list(CUSTOM_MOTIONS)
    subjects = [s for s in SUBJECTS if s != "person"]
    rows = {}
    for motion in motions:
        print(f"learning and judging {motion}", file=sys.stderr, flush=True)
        clips, uses, learn_s = person_clips(motion, work), [], []
        for pack_seed in range(args.pack_seeds):
            pack, files, seconds = learn_pack(motion, clips, seed=pack_seed,
                                              name=f"{motion}-{pack_seed}" if pack_seed else motion)
            uses.append(PackUse(name=pack.full_name, digest=pack.digest, manifest=pack.manifest, files=files))
            learn_s.append(seconds)
        t = transfer_accuracy(gen, judges, motion, uses, subjects=subjects, seeds=seeds)
        rows[motion] = {"learn_s": mean(learn_s), "motion_acc": t["with"].motion_acc,
                        "subject_acc": t["with"].subject_acc,
                        "motion_acc_without_pack": t["without"].motion_acc, "n": t["with"].n}
    results["custom"] = rows
    results["custom_mean"] = {k: mean([r[k] for r in rows.values()])
                              for k in ("learn_s", "motion_acc", "subject_acc", "motion_acc_without_pack")}

    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| base motions: motion judged right | {results['base_motion_acc']:.1%} | >= 90 % |")
    print(f"| base motions: subject judged right | {results['base_subject_acc']:.1%} | >= 90 % |")
    print(f"| custom, with pack: motion | {results['custom_mean']['motion_acc']:.1%} | >= 80 % |")
    print(f"| custom, with pack: subject | {results['custom_mean']['subject_acc']:.1%} | >= 90 % |")
    chance = 1 / len(judges.labels["motion"])
    print(f"| custom, no pack: motion | {results['custom_mean']['motion_acc_without_pack']:.1%} | "
          f"near chance ({chance:.0%}) |")
    print()
    print("| custom motion | learn (s) | motion with pack | subject with pack | motion without pack | videos |")
    print("|---|---|---|---|---|---|")
    for m, r in rows.items():
        print(f"| {m} | {r['learn_s']:.0f} | {r['motion_acc']:.0%} | {r['subject_acc']:.0%} | "
              f"{r['motion_acc_without_pack']:.0%} | {r['n']} |")
    print()
    print("| base motion | motion judged right | subject judged right |")
    print("|---|---|---|")
    for m, (ma, sa) in results["base_per_motion"].items():
        print(f"| {m} | {ma:.0%} | {sa:.0%} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
