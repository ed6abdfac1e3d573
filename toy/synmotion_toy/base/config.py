"""The toy bases' training settings, free of torch so the CLI takes its option defaults from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# How an image-to-video base reads its image (diffusers' ``image_condition_type``); the first is the default.
I2V_CONDITIONS = ("token_replace", "latent_concat")


@dataclass
class BaseTrainConfig:
    out: Path
    seed: int = 0
    clips: int = 4320                 # a little more than one of each subject x motion x look combination
    fps: int = 8                      # the clips' frame rate (2 s each: architecture.frames_at); 16 keeps fast
                                      # motions through the VAE's 4x compression in time (docs/toy-base.md)
    vae_from: str | None = None       # a trained toy base ("toy" or a folder) whose VAE to keep, its VAE phase skipped
    init_from: str | None = None      # a trained toy base to continue: its frozen parts kept, its transformer trained further
    vae_minutes: float = 15.0
    vae_batch: int = 8
    vae_frames: int = 5               # 5-frame windows (the first latent frame + one more); whole clips: docs/toy-base.md
    vae_crop: int = 32                # ... and 32x32 crops: it is convolutional, and crops cost a quarter
    vae_lr: float = 1e-3
    vae_subject_weight: float = 4.0   # extra loss weight on the subject's pixels (see train_vae)
    kl_weight: float = 1e-6
    decoder_minutes: float | None = None   # whole-clip decoder phase (train.train_decoder); None: 10 for a VAE
                                           # trained here, 0 for a kept one (--vae-from, --from), which stays as it is
    decoder_batch: int = 4
    decoder_crop: int = 32
    decoder_lr: float = 3e-4              # fine-tuning a trained decoder: below the VAE phase's 1e-3
    transformer_minutes: float = 65.0
    transformer_subject_weight: float = 4.0   # extra loss weight on the subject's latent pixels (train.subject_weighted_mse)
    batch: int = 16
    lr: float = 1.5e-3                # peak (cosine to a tenth); beat 5e-4 at equal steps: docs/toy-base.md
    warmup: int = 200
    cfg_dropout: float = 0.1
    ema: float = 0.999
    threads: int = 2
    mixed_precision: bool = True      # bf16 autocast where the device supports it (train.mixed_precision)
    device: str = "auto"              # auto: a CUDA GPU where one is at hand, else the CPU
    log: list = field(default_factory=list)


@dataclass
class I2VTrainConfig:
    out: Path
    t2v: Path | None = None      # the toy text-to-video base directory (default: the shipped one)
    seed: int = 0
    clips: int = 1440
    minutes: float = 30.0
    batch: int = 16
    lr: float = 2e-4             # fine-tuning: lower than the from-scratch peak
    subject_weight: float = 4.0  # extra loss weight on the subject's latent pixels, as in the toy base
    warmup: int = 100
    cfg_dropout: float = 0.1
    ema: float = 0.999
    threads: int = 2
    mixed_precision: bool = True
    device: str = "auto"
    condition: str = I2V_CONDITIONS[0]  # one of I2V_CONDITIONS (what each does: i2v.py)
