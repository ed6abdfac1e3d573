"""Measures of generated toy videos beyond the judges' verdicts, in the spirit of the paper's VBench columns.

- ``dynamics``: how much moves — the mean absolute change between consecutive frames, in percent of full
  scale. The paper's "dynamic degree" needs optical flow (RAFT); on the toy world's flat-shaded frames the
  plain frame difference measures the same thing, and the reference clips' value is the yardstick.
- ``subject_consistency``: VBench's formula on per-frame appearance vectors,
  1/(T-1) sum_t 1/2 [max(0, cos(f_{t-1}, f_t)) + max(0, cos(f_0, f_t))]; 1 for a still video.
- ``image_consistency`` (I2V): the paper's I2V subject measure on the same vectors,
  0.4 max_t cos(image, f_t) + 0.3 mean_t cos(f_{t-1}, f_t) + 0.3 min_t cos(f_{t-1}, f_t).
- ``motion_similarity``: class-agnostic closeness to the reference clips — the cosine between a video's
  motion feature vector and the mean of the references' (both from the motion judge), so a motion that is
  "like the clips" scores high even where the classifier's verdict is wrong.
"""

from __future__ import annotations

import numpy as np


def dynamics(video: np.ndarray) -> float:
    """Mean absolute frame-to-frame change of a uint8 (T, H, W, 3) video, in percent of full scale."""
    video = np.asarray(video)
    if len(video) < 2:
        return 0.0
    diffs = np.abs(np.diff(video.astype(np.int16), axis=0))
    return float(diffs.mean() / 255.0 * 100.0)


def subject_consistency(frame_features: np.ndarray) -> float:
    """VBench's subject consistency of one video, from its unit per-frame feature vectors (T, D)."""
    f = np.asarray(frame_features, dtype=np.float64)
    if len(f) < 2:
        return 1.0
    previous = np.clip(np.sum(f[1:] * f[:-1], axis=1), 0.0, None)
    first = np.clip(f[1:] @ f[0], 0.0, None)
    return float(np.mean((previous + first) / 2))


def image_consistency(image_feature: np.ndarray, frame_features: np.ndarray) -> float:
    """How well an image-to-video result keeps its condition image (unit vectors: image (D,), frames (T, D))."""
    f = np.asarray(frame_features, dtype=np.float64)
    to_image = f @ np.asarray(image_feature, dtype=np.float64)
    neighbours = np.sum(f[1:] * f[:-1], axis=1) if len(f) > 1 else np.ones(1)
    return float(0.4 * to_image.max() + 0.3 * neighbours.mean() + 0.3 * neighbours.min())


def motion_similarity(features: np.ndarray, reference_features: np.ndarray) -> np.ndarray:
    """Cosine of each video's motion vector (N, D) with the mean reference motion vector (M, D) -> (N,)."""
    ref = np.asarray(reference_features, dtype=np.float64).mean(axis=0)
    ref = ref / max(np.linalg.norm(ref), 1e-12)
    f = np.asarray(features, dtype=np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return f @ ref


def spread(values) -> dict:
    """Mean and sample standard deviation (0 for a single value) of per-seed values."""
    v = np.asarray([x for x in values if x == x], dtype=np.float64)
    if len(v) == 0:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
