"""How HunyuanVideo-I2V conditions on the image, mirrored for training and sampling.

diffusers' ``HunyuanVideoImageToVideoPipeline`` knows two kinds (``transformer.config.image_condition_type``):

- ``latent_concat``: the transformer reads ``cat([noisy latents, image latents on frame 0 (zeros after),
  a frame-0 mask], channels)``; every latent frame is denoised, and the decoded video drops its first
  ``vae_scale_factor_temporal`` frames (so synmotion asks for that many more, to return what was asked).
- ``token_replace``: latent frame 0 *is* the clean image latent (its tokens get timestep 0); only the frames
  after it are denoised and scored.

The image latent is the VAE encoding of the first frame alone. HunyuanVideo's VAE is causal in time, so that
is exactly latent frame 0 of the whole clip: a clip's own latents carry its condition, ``x0[:, :, :1]``.
"""

from __future__ import annotations

import torch


def condition_type(transformer) -> str | None:
    """``latent_concat``, ``token_replace``, or None for a text-to-video transformer."""
    return getattr(transformer.config, "image_condition_type", None)


def denoised_frames(transformer) -> slice:
    """The latent frames the transformer's prediction counts for: all of them, except the clean image frame of
    ``token_replace`` (the pipeline discards its prediction, and training does not score it)."""
    return slice(1, None) if condition_type(transformer) == "token_replace" else slice(None)


def model_input(transformer, x_t: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, slice]:
    """The transformer's input for noisy latents ``x_t`` of clip ``x0``, and the latent frames the loss scores."""
    kind, scored = condition_type(transformer), denoised_frames(transformer)
    if kind is None:
        return x_t, scored
    image = x0[:, :, :1]
    if kind == "token_replace":
        return torch.cat([image, x_t[:, :, 1:]], dim=2), scored
    frames = x0.shape[2]
    cond = torch.cat([image, image.new_zeros(image.shape[0], image.shape[1], frames - 1, *image.shape[3:])], dim=2)
    mask = x0.new_zeros(x0.shape[0], 1, frames, *x0.shape[3:])
    mask[:, :, :1] = 1
    return torch.cat([x_t, cond, mask], dim=1), scored


def pipeline_frames(pipe, frames: int) -> int:
    """``num_frames`` to ask the pipeline for so that it returns ``frames`` frames."""
    if condition_type(pipe.transformer) == "latent_concat":
        return frames + pipe.vae_scale_factor_temporal
    return frames


def clip_latents_from_sample(pipe, latents: torch.Tensor, image_latents: torch.Tensor, frames: int) -> torch.Tensor:
    """Latents the pipeline returned for ``pipeline_frames(frames)`` (``output_type="latent"``) as a training
    clip ``x0`` of ``frames`` frames whose frame 0 is the condition image."""
    if condition_type(pipe.transformer) == "latent_concat":  # the pipeline dropped the image frame
        latents = torch.cat([image_latents.to(latents), latents], dim=2)
    n = (frames - 1) // pipe.vae_scale_factor_temporal + 1
    return latents[:, :, :n]
