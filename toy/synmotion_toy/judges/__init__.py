"""Judges: one small video network that tells, for a toy-world video, which motion it shows, which
subject, which background and which style. Trained on rendered ground truth only (with degradations so
that blurry generated videos are judged fairly); used to measure what a video model learned.

    from synmotion_toy.judges import load_judges
    judges = load_judges()
    judgement = judges.judge(video)        # uint8 (frames, height, width, 3)
    judgement.motion, judgement.motion_p["clap"], judgement.subject, judgement.style

Needs torch. See docs/judges.md.
"""

from .score import Judgement, Judges, fit_video, load_judges, read_video

__all__ = ["Judgement", "Judges", "fit_video", "load_judges", "read_video"]
