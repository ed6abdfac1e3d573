"""The shipped judges: load once per process, then judge videos (arrays or files).

    judges = load_judges()
    j = judges.judge(video)            # uint8 (F, H, W, 3) -> Judgement
    j.motion, j.motion_p["clap"], j.subject, j.background, j.style
    judges.features(video)             # L2-normalised motion feature vector
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file

from synmotion_cli.errors import IntegrityError, NotFoundError

from .model import FPS, FRAMES, HEADS, SIZE, JudgeConfig, JudgeNet, judge_tensor
from .train import META_NAME, WEIGHTS_NAME

WEIGHTS_DIR = Path(__file__).with_name("weights")
BATCH = 32


@dataclass(frozen=True)
class Judgement:
    """What the judges see in one video: the most likely class per head and every class's probability.
    ``background`` and ``style`` are "none" for the neutral studio and the plain look."""

    motion: str
    motion_p: dict[str, float]
    subject: str
    subject_p: dict[str, float]
    background: str
    background_p: dict[str, float]
    style: str
    style_p: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def fit_video(video: np.ndarray) -> np.ndarray:
    """A video as the judges see it: uint8 (17, 64, 64, 3). Other frame counts are resampled evenly over
    the clip (so the clip is taken to last about 2 s); other sizes are cropped to a square about the
    centre and resized."""
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or len(video) == 0:
        raise ValueError(f"expected a uint8 video of shape (frames, height, width, 3), got {video.dtype} {video.shape}")
    if len(video) != FRAMES:
        video = video[np.round(np.linspace(0, len(video) - 1, FRAMES)).astype(int)]
    _, h, w, _ = video.shape
    if (h, w) != (SIZE, SIZE):
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = torch.from_numpy(np.ascontiguousarray(video[:, top:top + side, left:left + side])).permute(0, 3, 1, 2)
        x = F.interpolate(x.float(), size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
        video = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return video


def read_video(path) -> np.ndarray:
    """A video file (or folder of frames) decoded at the judges' rate and size: uint8 (17, 64, 64, 3).
    A clip shorter than 17 frames at 8 fps is padded by holding its last frame."""
    from synmotion_cli import media

    info = media.probe(path)
    count = max(1, min(FRAMES, info.frames_at(FPS)))
    video = media.decode(path, fps=FPS, height=SIZE, width=SIZE, frames=count)
    if count < FRAMES:
        video = np.concatenate([video, np.repeat(video[-1:], FRAMES - count, axis=0)])
    return video


def _batches(videos: list):
    """The videos as the network reads them, BATCH at a time: (B, 3, 17, 64, 64) floats in [0, 1]."""
    for i in range(0, len(videos), BATCH):
        clips = np.stack([fit_video(v) for v in videos[i:i + BATCH]])
        yield torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float().div_(255.0)


class Judges:
    """The four judges (motion, subject, background, style) in one network."""

    def __init__(self, model: JudgeNet, record: dict):
        self.model = model.eval()
        self.record = record
        self.labels: dict[str, list[str]] = {h: list(record["labels"][h]) for h in HEADS}

    def _run(self, videos) -> tuple[dict[str, np.ndarray], np.ndarray]:
        videos = list(videos)
        if not videos:
            width = 2 * self.model.config.motion_width
            return {h: np.zeros((0, len(self.labels[h]))) for h in HEADS}, np.zeros((0, width), dtype=np.float32)
        probs: dict[str, list] = {h: [] for h in HEADS}
        feats = []
        for x in _batches(videos):
            p, features = judge_tensor(self.model, x)
            for h in HEADS:
                probs[h].append(p[h].numpy())
            feats.append(F.normalize(features, dim=1).numpy())
        return {h: np.concatenate(p) for h, p in probs.items()}, np.concatenate(feats)

    def judge_batch(self, videos) -> list[Judgement]:
        """One Judgement per video (uint8 arrays of shape (frames, height, width, 3))."""
        return self.judge_with_features(videos)[0]

    def judge_with_features(self, videos) -> tuple[list[Judgement], np.ndarray]:
        """``judge_batch`` and ``features_batch`` from one pass of the network."""
        probs, features = self._run(videos)
        out = []
        for i in range(len(probs["motion"])):
            fields = {}
            for h in HEADS:
                p = probs[h][i]
                fields[h] = self.labels[h][int(p.argmax())]
                fields[f"{h}_p"] = {name: float(v) for name, v in zip(self.labels[h], p)}
            out.append(Judgement(**fields))
        return out, features

    def judge(self, video: np.ndarray) -> Judgement:
        return self.judge_batch([video])[0]

    def features_batch(self, videos) -> np.ndarray:
        """Motion feature vectors (N, D), each of unit length: distances between them compare motions."""
        return self._run(videos)[1]

    def features(self, video: np.ndarray) -> np.ndarray:
        """The motion judge's feature vector of one video, of unit length."""
        return self.features_batch([video])[0]

    @torch.inference_mode()
    def frame_features_batch(self, videos) -> np.ndarray:
        """Per-frame appearance vectors (N, 17, D), each of unit length: every block's summary of each frame
        (the vectors the subject, background and style judges pool), coarser blocks spread back over the
        frames they cover. Cosines between frames say how much a video's look changes over time."""
        out = []
        for x in _batches(list(videos)):
            vectors = self.model.eval().frame_vectors(x)
            frames = torch.cat([F.interpolate(v, size=FRAMES, mode="nearest") for v in vectors], dim=1)
            out.append(F.normalize(frames.transpose(1, 2), dim=2).numpy())
        return np.concatenate(out) if out else np.zeros((0, FRAMES, 0), dtype=np.float32)


def _missing(folder: Path) -> NotFoundError:
    return NotFoundError(f"no judge weights in {folder}",
                         hint="Train them with: synmotion toy train-judges --out " + str(folder))


@functools.lru_cache(maxsize=4)
def _load(folder: str) -> Judges:
    path = Path(folder)
    weights, meta = path / WEIGHTS_NAME, path / META_NAME
    if not weights.is_file() or not meta.is_file():
        raise _missing(path)
    try:
        record = json.loads(meta.read_text())
        config = JudgeConfig.from_dict(record["model"])
        model = JudgeNet(config, {h: len(record["labels"][h]) for h in HEADS})
        model.load_state_dict(load_file(str(weights)))
    except (SafetensorError, ValueError, KeyError, TypeError, RuntimeError, OSError) as e:  # damaged or foreign
        raise IntegrityError(f"the judge weights in {path} cannot be loaded: {e}",
                             hint="Train them again with: synmotion toy train-judges --out " + str(path)) from None
    return Judges(model, record)


def load_judges(folder=None) -> Judges:
    """The judges in ``folder`` (default: the ones shipped with synmotion-toy), loaded once per process."""
    return _load(str(Path(folder or WEIGHTS_DIR).resolve()))
