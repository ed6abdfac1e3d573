"""Motion adapters: LoRA on the Q/K/V projections of HunyuanVideo's MM-DiT attention, via peft.

Dual-stream blocks (``transformer_blocks``) project the video tokens with ``to_q/to_k/to_v`` and the text
tokens with ``add_q_proj/add_k_proj/add_v_proj``; single-stream blocks (``single_transformer_blocks``) use
``to_q/to_k/to_v`` on the joint sequence. The text refiner inside ``context_embedder`` also has
``to_q/…`` layers; it is never targeted, because the pattern is anchored at the block lists.
Files are written with diffusers' own LoRA saver, so ``pipe.load_lora_weights`` (and tools that read the
diffusers key format) can load them without synmotion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from synmotion_cli.errors import IntegrityError, UsageError

ADAPTER_NAME = "synmotion"
STREAMS = ("both", "dual", "single")
# Per projection letter: (video-stream or single-stream module, text-stream module in dual blocks)
_PROJECTIONS = {"q": ("to_q", "add_q_proj"), "k": ("to_k", "add_k_proj"), "v": ("to_v", "add_v_proj")}


@dataclass(frozen=True)
class AdapterConfig:
    """Where the motion LoRA goes and how big it is (the paper: Q, K, V of every MM-DiT attention)."""

    rank: int = 32
    alpha: float | None = None        # None: equal to rank (scale 1)
    streams: str = "both"             # "both" | "dual" | "single" block lists
    projections: tuple[str, ...] = ("q", "k", "v")

    def __post_init__(self):
        if self.rank < 1:
            raise UsageError(f"LoRA rank must be at least 1, got {self.rank}", hint="e.g. -O rank=32")
        if self.streams not in STREAMS:
            raise UsageError(f"unknown adapter streams {self.streams!r}", hint=f"choose one of {', '.join(STREAMS)}")
        bad = [p for p in self.projections if p not in _PROJECTIONS]
        if bad or not self.projections:
            raise UsageError(f"unknown adapter projections {bad or self.projections}",
                             hint="choose among q, k, v")

    @property
    def lora_alpha(self) -> float:
        return self.rank if self.alpha is None else self.alpha

    def target_pattern(self) -> str:
        """A regex peft matches (``re.fullmatch``) against module names."""
        dual = "|".join(name for p in self.projections for name in _PROJECTIONS[p])
        single = "|".join(_PROJECTIONS[p][0] for p in self.projections)
        parts = []
        if self.streams in ("both", "dual"):
            parts.append(rf"transformer_blocks\.\d+\.attn\.({dual})")
        if self.streams in ("both", "single"):
            parts.append(rf"single_transformer_blocks\.\d+\.attn\.({single})")
        return "|".join(f"({p})" for p in parts)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["projections"] = list(self.projections)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> AdapterConfig:
        data = dict(data)
        if "projections" in data:
            data["projections"] = tuple(data["projections"])
        try:
            return cls(**data)
        except TypeError as e:
            raise IntegrityError(f"adapter config is not readable: {e}",
                                 hint="the pack was written by another version of synmotion") from e


def add_motion_adapter(transformer, config: AdapterConfig = AdapterConfig(), adapter_name: str = ADAPTER_NAME):
    """Freeze ``transformer`` and add a trainable LoRA; returns the LoRA parameters."""
    from peft import LoraConfig

    transformer.requires_grad_(False)
    lora = LoraConfig(r=config.rank, lora_alpha=config.lora_alpha, lora_dropout=0.0, init_lora_weights=True,
                      target_modules=config.target_pattern())
    transformer.add_adapter(lora, adapter_name=adapter_name)
    params = [p for name, p in transformer.named_parameters() if "lora_" in name]
    for param in params:
        param.requires_grad_(True)
    return params


def adapter_state_dict(transformer, adapter_name: str = ADAPTER_NAME) -> dict:
    """The LoRA tensors in peft's key format (``…to_q.lora_A.weight``), without the adapter name."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer, adapter_name=adapter_name)


def save_lora(transformer, path: str | Path, adapter_name: str = ADAPTER_NAME) -> Path:
    """Write the adapter as a diffusers LoRA file (``transformer.``-prefixed keys, config in the metadata)."""
    from diffusers import HunyuanVideoPipeline

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    HunyuanVideoPipeline.save_lora_weights(
        save_directory=path.parent,
        transformer_lora_layers=adapter_state_dict(transformer, adapter_name),
        weight_name=path.name,
        safe_serialization=True,
        # Stored so loaders restore rank and alpha instead of guessing them from tensor shapes.
        transformer_lora_adapter_metadata=transformer.peft_config[adapter_name].to_dict(),
    )
    return path


def load_lora(pipe_or_transformer, path: str | Path, weight: float = 1.0, adapter_name: str = ADAPTER_NAME):
    """Load a file written by ``save_lora`` into a pipeline or a bare transformer, active at ``weight``.

    Only this adapter is active afterwards; to combine packs, call ``set_adapters`` with all their names.
    """
    import tempfile

    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"LoRA file {path} is missing", hint="re-import the pack")
    with tempfile.TemporaryDirectory(prefix="synmotion-lora-") as tmp:
        if path.suffix != ".safetensors":
            # Store blobs are named by digest; diffusers picks the file format from the suffix.
            link = Path(tmp) / "lora.safetensors"
            link.symlink_to(path.resolve())
            path = link
        if hasattr(pipe_or_transformer, "load_lora_weights"):
            pipe_or_transformer.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=adapter_name)
        else:
            pipe_or_transformer.load_lora_adapter(str(path.parent), weight_name=path.name, prefix="transformer",
                                                  adapter_name=adapter_name)
    pipe_or_transformer.set_adapters([adapter_name], [weight])
    return pipe_or_transformer
