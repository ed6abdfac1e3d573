"""What a toy VAE keeps of each motion: held-out renders encoded and decoded, then judged.

    python benchmarks/vae_motions.py                           # the shipped toy base's VAE
    python benchmarks/vae_motions.py ./toy-base/vae --fps 16   # a VAE trained on 16 fps clips
    python benchmarks/vae_motions.py --json out.json

The transformer cannot draw a motion better than the VAE decodes it, so this is the ceiling the VAE puts on
every judged figure. Each motion is rendered for the 12 subjects, once without a background and once on grass
(seeds the training set never uses), over the same 2 seconds at the VAE's frame rate; the round trip is
judged as the judges see any video, 17 frames evenly over it (every second frame of a 16 fps clip: the
renderer draws the same pixels at the same moments as at 8 fps). 7 minutes at 8 fps on one thread of a 2-core machine shared with another job.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

BACKGROUNDS = (None, "grass")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vae", nargs="?", type=Path, help="a diffusers AutoencoderKLHunyuanVideo folder "
                    "(default: the shipped toy base's)")
    ap.add_argument("--fps", type=int, default=8, help="the frame rate the VAE was trained at (a multiple of 8)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from diffusers import AutoencoderKLHunyuanVideo
    from synmotion_toy.base import weights_dir
    from synmotion_toy.base.architecture import frames_at
    from synmotion_toy.base.train import pixels
    from synmotion_toy.judges import load_judges
    from synmotion_toy.judges.model import FPS as JUDGE_FPS
    from synmotion_toy.world import BASE_MOTIONS, CUSTOM_MOTIONS, SUBJECTS
    from synmotion_toy.world.render import render_clip

    if args.fps < JUDGE_FPS or args.fps % JUDGE_FPS:   # then the judges' 17 frames are exact frames of the clip
        raise SystemExit(f"--fps must be a multiple of {JUDGE_FPS:g}, not {args.fps}")
    torch.set_num_threads(args.threads)
    vae = AutoencoderKLHunyuanVideo.from_pretrained(args.vae or weights_dir() / "vae").eval()
    judges = load_judges()
    rows = {}
    for motion in [*BASE_MOTIONS, *CUSTOM_MOTIONS]:
        motion_hits = subject_hits = 0
        taken_for: dict[str, int] = {}
        for i, subject in enumerate(SUBJECTS):
            for k, background in enumerate(BACKGROUNDS):
                clip = render_clip(subject, motion, background=background, seed=10**6 + 31 * i + k,
                                   frames=frames_at(args.fps), fps=args.fps)
                with torch.no_grad():
                    decoded = vae.decode(vae.encode(pixels(clip[None], "cpu")).latent_dist.mode()).sample.clamp(-1, 1)
                video = ((decoded[0].permute(1, 2, 3, 0) + 1) * 127.5).round().byte().numpy()
                verdict = judges.judge(video)
                motion_hits += verdict.motion == motion
                subject_hits += verdict.subject == subject
                taken_for[verdict.motion] = taken_for.get(verdict.motion, 0) + 1
        n = len(SUBJECTS) * len(BACKGROUNDS)
        wrong = {m: c for m, c in sorted(taken_for.items(), key=lambda kv: -kv[1]) if m != motion}
        rows[motion] = {"set": "base" if motion in BASE_MOTIONS else "custom", "motion": motion_hits / n,
                        "subject": subject_hits / n, "videos": n, "taken_for": wrong}

    print(f"| motion | set | judged motion | judged subject | taken for |\n|---|---|---|---|---|")
    for motion, r in rows.items():
        wrong = ", ".join(f"{m} {c}" for m, c in r["taken_for"].items()) or "-"
        print(f"| {motion} | {r['set']} | {r['motion']:.0%} | {r['subject']:.0%} | {wrong} |")
    for kind in ("base", "custom"):
        part = [r for r in rows.values() if r["set"] == kind]
        print(f"| {kind} motions, mean | | {sum(r['motion'] for r in part) / len(part):.1%} "
              f"| {sum(r['subject'] for r in part) / len(part):.1%} | |")
    if args.json:
        args.json.write_text(json.dumps({"vae": str(args.vae or "toy"), "fps": args.fps, "motions": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
