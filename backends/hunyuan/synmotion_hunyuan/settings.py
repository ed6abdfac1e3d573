"""The method's settings for learning and generation, with documented defaults.

Defaults follow the paper (alpha 0.75, 2000 steps, AdamW, lr 2e-5) at a resolution a single GPU trains
comfortably. A base may ship different defaults in its ``synmotion.json`` (small bases train at a higher
learning rate and fewer steps); ``-O key=value`` on the command line overrides both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from synmotion_cli.backend import MAX_PACK_WEIGHT
from synmotion_cli.errors import UsageError


@dataclass(frozen=True)
class LearnSettings:
    steps: int = 2000
    batch: int = 1                   # examples per optimiser step (gradients accumulated)
    lr: float = 2e-5
    weight_decay: float = 0.0        # residues are offsets from meaningful embeddings: no pull toward zero
    alpha: float = 0.75              # probability of a user clip per step; else a subject-prior video
    strategy: str = "exclusive"      # "exclusive" (the paper's alternating SPV strategy) | "joint" (user clips only)
    caption_dropout: float = 0.0     # chance a user clip trains on the empty prompt (guidance's negative), not its own
    mirror: bool = False             # also learn from each clip's mirror image (for motions without a handedness)
    spv_updates: str = "subject"     # what an SPV step trains: "subject" (paper) | "subject+refiner"
    motion_residue: bool = True
    subject_residue: bool = True
    refiner: bool = True
    adapter: bool = True
    rank: int = 32
    streams: str = "both"            # LoRA on "both" stream types, or only "dual" / "single"
    projections: str = "qkv"         # which attention projections get LoRA (any of q, k, v)
    height: int = 320
    width: int = 512
    frames: int = 33
    fps: float = 8.0
    spv_count: int = 24
    spv_steps: int = 30
    spv_guidance: float = 6.0
    spv_true_cfg_scale: float = 1.0
    guidance: float = 1.0            # embedded guidance during training (HunyuanVideo is guidance-distilled)
    time_shift: float = 0.0          # shift of the training noise levels; 0: the base scheduler's own
    motion_weight: float = 0.0       # extra loss weight on the latent pixels a clip moves (training.motion_map)
    max_grad_norm: float = 1.0      # 0 turns clipping off
    ema: float = 0.0                 # decay of a moving average of the trained weights, kept as the pack (0: last step's)
    checkpoint_every: int = 100
    preview_every: int = 0           # write a preview video every N steps (0: never)
    preview_steps: int = 30
    preview_guidance: float = 6.0
    preview_true_cfg_scale: float = 1.0
    spv_subjects: str = ""           # comma-separated SPV subjects ("a cat, a dog"); empty: the built-in list
    spv_actions: str = ""            # comma-separated SPV actions ("run, walk"); empty: the built-in list
    gradient_checkpointing: str = "auto"   # "auto" (on with CUDA) | "on" | "off"
    mixed_precision: str = "auto"          # "auto" (bf16 with CUDA) | "no" | "bf16"

    def __post_init__(self):
        checks = {
            "alpha": 0.0 <= self.alpha <= 1.0, "caption_dropout": 0.0 <= self.caption_dropout < 1.0,
            "strategy": self.strategy in ("exclusive", "joint"),
            "spv_updates": self.spv_updates in ("subject", "subject+refiner"),
            "streams": self.streams in ("both", "dual", "single"),
            "projections": bool(self.projections) and set(self.projections) <= set("qkv"),
            "steps": self.steps >= 1, "batch": self.batch >= 1, "rank": self.rank >= 1, "lr": self.lr > 0,
            "time_shift": self.time_shift >= 0, "motion_weight": self.motion_weight >= 0, "ema": 0.0 <= self.ema < 1.0,
            "frames": self.frames >= 1 and (self.frames - 1) % 4 == 0,
            "height": self.height % 16 == 0 and self.height > 0, "width": self.width % 16 == 0 and self.width > 0,
            "gradient_checkpointing": self.gradient_checkpointing in ("auto", "on", "off"),
            "mixed_precision": self.mixed_precision in ("auto", "no", "bf16"),
            "parts": self.motion_residue or self.subject_residue or self.refiner or self.adapter,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise UsageError(f"invalid setting(s): {', '.join(f'{k}={getattr(self, k, None)!r}' for k in bad)}",
                             hint="steps, batch and rank are at least 1; frames are 4k+1, height/width multiples "
                                  "of 16, alpha in [0, 1], caption_dropout and ema in [0, 1), time_shift (0: the "
                                  "base's) and motion_weight at least 0, projections letters of qkv; at least one "
                                  "trainable part must stay on")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The settings that fix a video's shape: a pack's own are the defaults of generation with it.
VIDEO_SHAPE = ("height", "width", "frames", "fps")

# What the negative pass of classifier-free guidance runs when packs are applied: the base with the packs'
# adapters (diffusers' usual, the default) or the plain base (sampling.guidance_against_base).
CFG_NEGATIVES = ("pack", "base")


@dataclass(frozen=True)
class GenSettings:
    steps: int = 30
    guidance: float = 6.0            # HunyuanVideo's embedded (distilled) guidance
    true_cfg_scale: float = 1.0      # > 1: classifier-free guidance against the empty prompt
    cfg_negative: str = CFG_NEGATIVES[0]   # that guidance's negative pass: one of CFG_NEGATIVES
    transfer: float = 0.0            # > 0: motion-transfer guidance at this weight (sampling.transfer_guidance)
    transfer_start: float = 0.0      # the share of denoising steps, from the first, that run without that guidance
    transfer_static: float = 1.0     # the share kept of that guidance's static part (its mean over the latent frames)
    pack_weight: float = 1.0         # the weight of a pack named without one (`--pack NAME:W` sets its own)
    height: int = 320
    width: int = 512
    frames: int = 33
    fps: float = 8.0

    def __post_init__(self):
        if self.cfg_negative not in CFG_NEGATIVES:
            raise UsageError(f"invalid setting: cfg_negative={self.cfg_negative!r}",
                             hint="cfg_negative is 'pack' (adapters in both passes, the default) or 'base' (the negative "
                                  "pass without them)")
        if not self.transfer >= 0:
            raise UsageError(f"invalid setting: transfer={self.transfer!r}",
                             hint="transfer is 0 (off) or the weight of motion-transfer guidance, e.g. transfer=3")
        if not 0.0 <= self.transfer_start < 1.0:
            raise UsageError(f"invalid setting: transfer_start={self.transfer_start!r}",
                             hint="transfer_start is the share of the first denoising steps without motion-transfer "
                                  "guidance, from 0 (every step guided) up to but not including 1, e.g. 0.15")
        if not 0.0 <= self.transfer_static <= 1.0:
            raise UsageError(f"invalid setting: transfer_static={self.transfer_static!r}",
                             hint="transfer_static is the share kept of what motion-transfer guidance adds alike to "
                                  "every frame, from 0 (only what changes over time) to 1 (all of it, the default)")
        if not 0.0 <= self.pack_weight <= MAX_PACK_WEIGHT:
            raise UsageError(f"invalid setting: pack_weight={self.pack_weight!r}",
                             hint=f"use a pack weight between 0 and {MAX_PACK_WEIGHT:g}, e.g. pack_weight=1.5")
        if self.transfer > 0 and self.cfg_negative == "base":
            raise UsageError(f"transfer={self.transfer} and cfg_negative=base are two ways of guiding with a pack; "
                             "choose one", hint="add -O transfer=0 for cfg_negative=base (a base may guide with "
                                                "transfer by default, as the toy base does)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Shorthands for the rows of the paper's Tables 3 and 4. Each names its training strategy, since a base may
# ship another default (the toy base trains jointly: docs/fidelity.md measured it there); a preset always
# means the paper's row.
PAPER_STRATEGY = {"strategy": "exclusive", "alpha": 0.75, "spv_updates": "subject"}
ALL_PARTS = {"motion_residue": True, "subject_residue": True, "refiner": True, "adapter": True}


def _paper_row(*off: str) -> dict:
    """The paper's strategy with every part on except those named in ``off``."""
    return {**PAPER_STRATEGY, **ALL_PARTS, **dict.fromkeys(off, False)}


PRESETS = {
    "full": _paper_row(),
    "lora-only": _paper_row("motion_residue", "subject_residue", "refiner"),
    "no-strategy": {**ALL_PARTS, "strategy": "joint"},
    "motion-residue": _paper_row("subject_residue", "refiner", "adapter"),
    "residues": _paper_row("refiner", "adapter"),
    "residues+refiner": _paper_row("adapter"),
}


def build(cls, *layers: dict):
    """Merge option layers (later wins) into ``cls``, converting types and rejecting unknown keys."""
    known = {f.name: f for f in fields(cls)}
    merged: dict = {}
    for layer in layers:
        layer = dict(layer or {})
        preset = layer.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise UsageError(f"unknown preset {preset!r}", hint=f"presets: {', '.join(PRESETS)}")
            merged.update(PRESETS[preset])
        for key, value in layer.items():
            if key not in known:
                raise UsageError(f"unknown option {key!r}",
                                 hint=f"options: preset, {', '.join(known)}")
            merged[key] = _convert(key, value, known[key].type)
    return cls(**merged)


def _convert(key, value, type_name):
    t = type_name if isinstance(type_name, str) else type_name.__name__
    try:
        if t == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if t == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if t == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise UsageError(f"option {key}={value!r} is not a valid {t}") from None
