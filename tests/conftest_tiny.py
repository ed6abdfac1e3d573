"""Fixtures and helpers around the tiny random-weight HunyuanVideo (import what a test module needs)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# The tiny models gain nothing from threads, and on a busy 2-core machine OpenMP's spinning threads make a
# 1 ms forward take hundreds of ms.
torch.set_num_threads(1)

SEED = 0


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny T2V base written once per test run, the way users point at a local diffusers directory."""
    from diffusers.utils import logging as diffusers_logging
    from synmotion_hunyuan.tiny import save_tiny_pipeline

    diffusers_logging.disable_progress_bar()
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-hunyuan"), seed=SEED)


def load_pipe(directory, i2v: bool = False):
    from diffusers import HunyuanVideoImageToVideoPipeline, HunyuanVideoPipeline

    pipe = (HunyuanVideoImageToVideoPipeline if i2v else HunyuanVideoPipeline).from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_clap_clips(folder, count: int):
    """``count`` small clips (a square sliding at its own speed in each) for learning "clap"."""
    from media_fixtures import moving_square
    from synmotion_cli import media

    for i in range(count):
        media.write_mp4(moving_square(16, 48, 64, step=1 + i), folder / f"clap{i}.mp4", fps=8)
    return folder


def learn_tiny_clap(capsys, tmp_path, tiny_dir) -> tuple:
    """Learn a two-step "clap" pack on the tiny base through the CLI; returns the arguments of a small
    `gen "a panda claps"` with it, under classifier-free guidance (the guidance options act there)."""
    from cli_runner import run

    clips = write_clap_clips(tmp_path / "clips", 2)
    assert run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "2").code == 0
    return ("gen", "a panda claps", "--base", tiny_dir, "--size", "16x32", "--frames", "5", "--steps", "2",
            "-O", "true_cfg_scale=2")


@pytest.fixture(scope="session")
def tiny_pipe(tiny_dir):
    """A loaded tiny pipeline shared by tests that do not change its modules."""
    return load_pipe(tiny_dir)


@pytest.fixture
def fresh_pipe(tiny_dir):
    """A freshly loaded tiny pipeline for tests that add adapters or train."""
    return load_pipe(tiny_dir)


def toy_video_latents(seed: int = SEED):
    """Noisy latents and a target in the tiny transformer's latent shape (B, C, F, H, W)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, 2, 4, 4, generator=generator)
    target = torch.randn(1, 4, 2, 4, 4, generator=generator)
    return latents, target


def transformer_forward(transformer, latents, embeds, mask, pooled, timestep: float = 500.0):
    """One denoiser call the way the pipeline makes it (guidance-distilled T2V: guidance = 1000 * g)."""
    import torch

    return transformer(
        hidden_states=latents,
        timestep=torch.tensor([timestep]),
        encoder_hidden_states=embeds,
        encoder_attention_mask=mask,
        pooled_projections=pooled,
        guidance=torch.tensor([6.0 * 1000.0]),
        return_dict=False,
    )[0]
