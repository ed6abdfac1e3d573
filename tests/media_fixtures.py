"""Tiny synthetic clips for the media tests.

Every clip shows a red square sliding right over a blue background by ``step`` pixels per frame, so the
square's position in a decoded frame tells which source frame (and so which moment) it came from.
Clips are encoded straight with the ffmpeg binary, independently of ``media.write_mp4``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from synmotion_cli.media import ffmpeg_exe

RED = (255, 0, 0)
BLUE = (0, 0, 255)

# Per container: codec arguments ffmpeg needs to write it quickly.
_CODECS = {
    ".mp4": ["-c:v", "libx264", "-preset", "ultrafast"],
    ".mov": ["-c:v", "libx264", "-preset", "ultrafast"],
    ".mkv": ["-c:v", "libx264", "-preset", "ultrafast"],
    ".m4v": ["-c:v", "libx264", "-preset", "ultrafast"],
    ".webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p"],
    ".avi": ["-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p"],
    ".gif": ["-c:v", "gif"],
}


def moving_square(count: int, height: int, width: int, *, size: int = 8, step: int = 2) -> np.ndarray:
    """uint8 (count, height, width, 3): frame i has the square's left edge at x = i * step."""
    assert (count - 1) * step + size <= width, "the square would leave the frame"
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    frames[:] = BLUE
    top = (height - size) // 2
    for i in range(count):
        frames[i, top:top + size, i * step:i * step + size] = RED
    return frames


def square_center_x(frame: np.ndarray) -> float:
    """Horizontal center of the red square in a decoded RGB frame."""
    red = (frame[..., 0] > 150) & (frame[..., 2] < 110)
    assert red.any(), "no red square in this frame"
    return float(np.nonzero(red)[1].mean())


def encode(frames: np.ndarray, path: Path, *, fps: float) -> Path:
    """Encode RGB frames into ``path``; the codec follows the suffix. Odd-sized h264 uses yuv444p,
    which (unlike yuv420p) allows odd widths and heights."""
    _, height, width, _ = frames.shape
    codec = list(_CODECS[path.suffix])
    if codec[1] == "libx264":
        codec += ["-pix_fmt", "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"]
    args = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:", *codec, str(path)]
    subprocess.run(args, input=frames.tobytes(), check=True, capture_output=True)
    return path


def write_frames(folder: Path, frames: np.ndarray, names: list[str]) -> Path:
    """Save frame i as ``names[i]`` (the suffix picks the image format)."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names, strict=True):
        Image.fromarray(frame).save(folder / name)
    return folder


def audio_only(path: Path, seconds: float = 0.5) -> Path:
    """A file with one AAC audio stream and no video."""
    args = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-f", "mp4", str(path)]
    subprocess.run(args, check=True, capture_output=True)
    return path


def random_bytes(path: Path, size: int = 4096, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def stream_line(path: Path) -> str:
    """The first video stream line of ``ffmpeg -i`` (codec, pixel format, size), for checks on written files."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return next(line for line in result.stderr.splitlines() if "Video:" in line)
