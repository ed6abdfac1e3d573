"""Clip latents: decode each clip once, encode it with the frozen VAE once, and keep the result on disk.

Training only ever needs ``x0`` latents, so the VAE runs once per clip and resolution, not once per step.
The cache key covers the clip's bytes, the decode settings and the base fingerprint, so an edited clip or
another base never reuses stale latents.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from synmotion_cli import media


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def frames_to_tensor(frames, device, dtype):
    """uint8 (F, H, W, 3) -> float (1, 3, F, H, W) in [-1, 1], the VAE's input convention."""
    import torch

    x = torch.from_numpy(frames).to(device=device, dtype=torch.float32)
    x = x.permute(3, 0, 1, 2).unsqueeze(0) / 127.5 - 1.0
    return x.to(dtype)


def encode_frames(vae, frames, device, dtype):
    """Scaled latents (1, C, f, h, w) of one clip, on CPU in float32. Uses the posterior mean, so the
    cached value is deterministic."""
    import torch

    with torch.no_grad():
        posterior = vae.encode(frames_to_tensor(frames, device, dtype)).latent_dist
        return (posterior.mode() * vae.config.scaling_factor).float().cpu()


def cached_tensor(path: Path, name: str, make, metadata: dict | None = None):
    """The tensor cached at ``path`` (safetensors), else ``make()``'s, written there atomically first
    (a half-written file never looks cached)."""
    from safetensors.torch import load_file, save_file

    if path.is_file():
        return load_file(str(path))[name]
    tensor = make().contiguous()
    tmp = path.with_suffix(".tmp")
    save_file({name: tensor}, str(tmp), metadata=metadata)
    tmp.replace(path)
    return tensor


def clip_latents(vae, clips, *, fps, height, width, frames, base_fingerprint, cache_dir: Path, device, dtype,
                 reporter=None, mirror: bool = False) -> list:
    """Latents of every clip, from the cache where possible; ``mirror``: of each clip's mirror image (flipped
    left to right before encoding: the VAE is not mirror-symmetric, so flipping latents would not do)."""
    import torch

    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    if reporter:
        reporter.stage("encode clips", total=len(clips))
    for clip in clips:
        key = hashlib.sha256(f"{_file_digest(Path(clip))}|{fps}|{height}|{width}|{frames}|{base_fingerprint}"
                             f"{'|mirror' if mirror else ''}".encode()).hexdigest()[:32]

        def make(clip=clip):
            pixels = media.decode(clip, fps=fps, height=height, width=width, frames=frames)
            return encode_frames(vae, np.ascontiguousarray(pixels[:, :, ::-1]) if mirror else pixels, device, dtype)

        out.append(cached_tensor(cache_dir / f"{key}.safetensors", "latents", make))
        if reporter:
            reporter.advance(1)
    if reporter:
        reporter.close()
    return [torch.as_tensor(x) for x in out]
