"""The contract between the CLI and a backend plugin.

A backend is an object registered under the ``synmotion.backends`` entry point group. Its module must be
cheap to import (no torch at import time): ``synmotion backends list`` loads it to read ``name``,
``description`` and ``capabilities``. Heavy imports happen inside ``check``/``learn``/``generate``.

The CLI owns everything around the model: resolving packs from the store, installing the pack a backend
drafts, writing the video file, its metadata and watermark. A backend only turns requests into tensors
and tensors into a draft or frames, reporting progress through a ``Reporter``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .prompts import DEFAULT_SUBJECT
from .reporting import Reporter

CAP_LEARN = "learn"
CAP_T2V = "t2v"
CAP_I2V = "i2v"


@dataclass(frozen=True)
class Problem:
    """Something that keeps a backend from working here, and what to do about it."""

    what: str
    fix: str
    fatal: bool = True
    exit_code: int = 5  # ExitCode.ENVIRONMENT; NOT_FOUND (3) for missing weights


@dataclass(frozen=True)
class LearnRequest:
    motion: str                     # pack name and motion word, e.g. "clap"
    clips: tuple[Path, ...]         # video files or folders of numbered frames, already checked to exist
    work_dir: Path                  # scratch directory for the draft's files (inside the store's tmp)
    run_dir: Path                   # checkpoints for --resume
    base: str | None = None         # hub id or local directory; None lets the backend choose
    trigger_words: tuple[str, ...] = ()
    subject: str = DEFAULT_SUBJECT  # who does the motion in the clips, as their prompt says it
    steps: int | None = None
    seed: int = 0
    resume: bool = False
    i2v: bool = False               # learn the image-to-video variant
    i2v_base: str | None = None     # the image-to-video base; None: the one paired with ``base``
    spv_dir: Path | None = None     # user-supplied subject-prior videos
    options: dict[str, Any] = field(default_factory=dict)   # backend-specific `-O key=value`
    preview_dir: Path | None = None  # where preview videos written during training go


@dataclass
class PackDraft:
    """What ``learn`` hands back: files written under ``work_dir`` and the manifest fields to record."""

    files: dict[str, Path]          # name inside the pack ("t2v/lora.safetensors") -> file on disk
    manifest: dict[str, Any]        # motion, base, variants, config, data, metrics, timings


# A pack's weight at generation, whoever sets it (`--pack NAME:W`, a base's `pack_weight`), is in [0, this].
MAX_PACK_WEIGHT = 4.0


@dataclass(frozen=True)
class PackUse:
    """A stored pack chosen for generation, with its blobs resolved to read-only files."""

    name: str
    digest: str
    manifest: dict[str, Any]
    files: dict[str, Path]
    weight: float | None = None     # None: the base's default pack weight (1 unless the base sets another)


@dataclass(frozen=True)
class GenRequest:
    prompt: str
    packs: tuple[PackUse, ...] = ()
    base: str | None = None
    image: Path | None = None       # first frame: image-to-video with the packs' i2v variants
    i2v_base: str | None = None     # the image-to-video base; None: the packs' own, else the one paired with ``base``
    style: str | None = None
    background: str | None = None
    negative: str | None = None     # classifier-free guidance's negative prompt; None: the base's own (empty)
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenResult:
    frames: Any                     # numpy uint8 array (F, H, W, 3)
    fps: float
    metadata: dict[str, Any]        # prompt as used, base identity, seed, sampler settings
    pack_weights: tuple[float, ...] | None = None  # the weight each requested pack ran at; None: as requested, else 1


@runtime_checkable
class Backend(Protocol):
    name: str
    description: str
    capabilities: frozenset[str]

    def check(self, base: str | None = None) -> list[Problem]:
        ...

    def learn(self, request: LearnRequest, reporter: Reporter) -> PackDraft:
        ...

    def generate(self, request: GenRequest, reporter: Reporter) -> GenResult:
        ...
