"""The paper's dual embeddings: learnable motion and subject residues, an Embedding Refiner, zero-convs.

    e  = [e_mot + Z_mot(e^l_mot), e_sub + Z_sub(e^l_sub)]
    e' = e + Z_out(R(e))

``e_mot``/``e_sub`` are the base LLM states of the prompt's motion and subject tokens. Design choices:

- Z is a zero-initialised ``Conv1d(D, D, kernel_size=1)`` over the token axis (a per-token linear map, as in
  ControlNet), one each for motion, subject and output; at step 0 every learned delta is exactly zero, so
  the module returns the base embeddings bit for bit.
- The residues are token sequences of a fixed learnable length (motion: the tokens of the motion in
  "a person <motion>", which also initialise it — the LLM is causal, so the word in a phrase, not alone;
  subject: ``subject_tokens`` random vectors with the base embeddings' std). A prompt's spans may tokenise
  to other lengths ("a crocodile" vs "a person"), so a residue is resampled to the span length by linear
  interpolation along the tokens (identity when the lengths match).
- The output keeps valid tokens first, as the transformer's attention mask requires:
  ``[prefix, motion, subject, other valid tokens (extensions, auxiliaries, eot) in prompt order, padding]``.
  Only motion and subject tokens receive deltas; the other tokens pass through unchanged but are context
  for R, so a style or background can shape how subject and motion are fused. An optional prefix (I2V image
  tokens) stays first, is context for R and is never changed.
- ``motion_stop_grad`` detaches the motion path (residue and its Z) for subject-prior steps. R and Z_out still
  get gradients there, since they act on the whole sequence; ``parameter_groups`` lets the trainer decide
  whether they update on those steps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from synmotion_cli.errors import IntegrityError, UsageError
from synmotion_cli.prompts import DEFAULT_SUBJECT, parse_roles

CONFIG_KEY = "synmotion.embedding_config"


@dataclass(frozen=True)
class EmbeddingConfig:
    """Shape and switches of the dual-embedding module. Each switch removes exactly its own parameters."""

    dim: int                          # LLM hidden size (4096 for HunyuanVideo)
    motion_tokens: int = 1            # learnable length of the motion residue
    subject_tokens: int = 4           # learnable length of the subject residue
    motion_residue: bool = True       # e^l_mot and Z_mot
    subject_residue: bool = True      # e^l_sub and Z_sub
    refiner: bool = True              # R and Z_out
    refiner_layers: int = 1
    refiner_heads: int | None = None  # None: the largest divisor of dim giving heads of at least 128 dims
    refiner_ff_mult: float = 1.0      # feed-forward width as a multiple of dim

    def __post_init__(self):
        if self.dim < 1 or self.motion_tokens < 1 or self.subject_tokens < 1 or self.refiner_layers < 1:
            raise UsageError(f"embedding sizes must be positive: {self}", hint="check the embedding options")
        if self.refiner_heads is not None and (self.refiner_heads < 1 or self.dim % self.refiner_heads):
            raise UsageError(
                f"refiner_heads={self.refiner_heads} does not divide the embedding size {self.dim}",
                hint="choose a divisor of the embedding size, or leave refiner_heads unset",
            )

    @property
    def heads(self) -> int:
        if self.refiner_heads is not None:
            return self.refiner_heads
        limit = max(1, self.dim // 128)
        return max(h for h in range(1, limit + 1) if self.dim % h == 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EmbeddingConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown or "dim" not in data:
            raise IntegrityError(
                f"embedding config has unknown keys {sorted(unknown)} or lacks 'dim': {data}",
                hint="the pack was written by another version of synmotion; re-learn or upgrade",
            )
        return cls(**data)


class ZeroConv(nn.Conv1d):
    """A kernel-1 convolution over the tokens of a (B, L, D) sequence, starting at exactly zero."""

    def __init__(self, dim: int):
        super().__init__(dim, dim, kernel_size=1)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def resample(residue: torch.Tensor, length: int) -> torch.Tensor:
    """Stretch a (K, D) token sequence to (length, D) by linear interpolation; identity when K == length."""
    if residue.shape[0] == length:
        return residue
    return F.interpolate(residue.T[None], size=length, mode="linear", align_corners=False)[0].T


def reorder_index(mask: torch.Tensor, spans) -> torch.Tensor:
    """Token order [motion, subject, other valid tokens, padding] for one (L,) mask with valid tokens first."""
    length, valid = mask.shape[-1], int(mask.sum())
    if not bool(mask[:valid].all()):
        raise ValueError("prompt mask must have its valid tokens first (pad the tokenizer on the right)")
    (m0, m1), (s0, s1) = spans.motion, spans.subject
    if not (0 <= m0 < m1 <= valid and 0 <= s0 < s1 <= valid) or (m0 < s1 and s0 < m1):
        raise ValueError(f"motion {spans.motion} and subject {spans.subject} must be disjoint, non-empty "
                         f"spans among the {valid} valid tokens")
    taken = set(range(m0, m1)) | set(range(s0, s1))
    order = [*range(m0, m1), *range(s0, s1), *(i for i in range(valid) if i not in taken), *range(valid, length)]
    return torch.tensor(order, dtype=torch.long, device=mask.device)


class DualEmbedding(nn.Module):
    """Turns base prompt embeddings into SynMotion's refined [motion, subject, …] embeddings."""

    def __init__(self, config: EmbeddingConfig, motion_init: torch.Tensor | None = None, base_std: float = 1.0,
                 seed: int = 0):
        super().__init__()
        self.config = config
        dim = config.dim
        generator = torch.Generator().manual_seed(seed)
        if config.motion_residue:
            self.res_mot = nn.Parameter(torch.empty(config.motion_tokens, dim))
            if motion_init is not None:
                if tuple(motion_init.shape) != (config.motion_tokens, dim):
                    raise ValueError(f"motion_init has shape {tuple(motion_init.shape)}, "
                                     f"expected {(config.motion_tokens, dim)}")
                with torch.no_grad():
                    self.res_mot.copy_(motion_init)
            else:
                nn.init.normal_(self.res_mot, std=base_std, generator=generator)
            self.z_mot = ZeroConv(dim)
        if config.subject_residue:
            # Random, not from a word: the subject residue must not lean towards any particular entity.
            self.res_sub = nn.Parameter(torch.empty(config.subject_tokens, dim))
            nn.init.normal_(self.res_sub, std=base_std, generator=generator)
            self.z_sub = ZeroConv(dim)
        if config.refiner:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                layer = nn.TransformerEncoderLayer(
                    dim, config.heads, dim_feedforward=max(1, int(dim * config.refiner_ff_mult)), dropout=0.0,
                    activation="gelu", batch_first=True, norm_first=True,
                )
                self.refiner = nn.TransformerEncoder(layer, config.refiner_layers, enable_nested_tensor=False)
            self.z_out = ZeroConv(dim)

    @classmethod
    def from_encoder(cls, encoder, motion: str, seed: int = 0, image=None, subject: str = DEFAULT_SUBJECT,
                     **options) -> DualEmbedding:
        """Build one for ``encoder``'s LLM, the motion residue initialised from "<subject> <motion>" (the clips'
        prompt: the LLM is causal, so the motion's tokens depend on the subject before them).

        ``motion`` is the form the training prompts use (e.g. "claps"); ``options`` are EmbeddingConfig fields.
        An image-to-video encoder reads the phrase with ``image`` (a training clip's condition frame).
        """
        encoded = encoder.encode(parse_roles(f"{subject} {motion}", [motion]), image=image)
        start, end = encoded.spans.motion
        valid = encoded.embeds[0, : int(encoded.mask.sum())].float()
        config = EmbeddingConfig(dim=valid.shape[-1], motion_tokens=end - start, **options)
        return cls(config, motion_init=encoded.embeds[0, start:end].float(), base_std=float(valid.std()), seed=seed)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role, so a trainer can keep the motion (and perhaps the refiner) fixed on some steps."""
        groups: dict[str, list[nn.Parameter]] = {"motion": [], "subject": [], "refiner": []}
        for name, param in self.named_parameters():
            role = name.split(".")[0]
            if role in ("res_mot", "z_mot"):
                groups["motion"].append(param)
            elif role in ("res_sub", "z_sub"):
                groups["subject"].append(param)
            else:
                groups["refiner"].append(param)
        return groups

    def _delta(self, zero_conv: ZeroConv, residue: torch.Tensor, length: int) -> torch.Tensor:
        return zero_conv(resample(residue, length)[None])

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor, spans, *, prefix: torch.Tensor | None = None,
                motion_stop_grad: bool = False, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (embeds, mask) reordered and refined; every sample in the batch shares ``spans``.

        ``embeds`` (B, L, D) and ``mask`` (B, L) are the cropped prompt encoding, ``spans`` its TokenSpans;
        ``prefix`` (B, P, D) are tokens kept in front (all valid); ``scale`` multiplies every learned delta.
        """
        if (mask != mask[:1]).any():
            raise ValueError("all prompts in a batch must share one mask and one set of spans")
        order = reorder_index(mask[0], spans)
        first = next(self.parameters(), None)
        dtype = first.dtype if first is not None else embeds.dtype
        x, mask = embeds[:, order].to(dtype), mask[:, order]
        n_mot = spans.motion[1] - spans.motion[0]
        n_sub = spans.subject[1] - spans.subject[0]
        mot, sub, rest = x[:, :n_mot], x[:, n_mot:n_mot + n_sub], x[:, n_mot + n_sub:]
        if self.config.motion_residue:
            mot = mot + scale * self._delta(self.z_mot, self.res_mot, n_mot)
        if motion_stop_grad:
            mot = mot.detach()
        if self.config.subject_residue:
            sub = sub + scale * self._delta(self.z_sub, self.res_sub, n_sub)
        roles = torch.cat([mot, sub], dim=1)
        if self.config.refiner:
            context, context_mask = torch.cat([roles, rest], dim=1), mask
            if prefix is not None:
                context = torch.cat([prefix.to(dtype), context], dim=1)
                context_mask = torch.cat([mask.new_ones(prefix.shape[:2]), mask], dim=1)
            refined = self.refiner(context, src_key_padding_mask=context_mask == 0)
            n_prefix = 0 if prefix is None else prefix.shape[1]
            roles = roles + scale * self.z_out(refined[:, n_prefix:n_prefix + n_mot + n_sub])
        out = torch.cat([roles, rest], dim=1).to(embeds.dtype)
        if prefix is not None:
            out = torch.cat([prefix.to(out.dtype), out], dim=1)
            mask = torch.cat([mask.new_ones(prefix.shape[:2]), mask], dim=1)
        return out, mask

    def save(self, path: str | Path) -> Path:
        """Write the tensors and the config (as JSON metadata) to one safetensors file."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {name: t.detach().contiguous().cpu() for name, t in self.state_dict().items()}
        save_file(tensors, str(path), metadata={CONFIG_KEY: json.dumps(self.config.to_dict())})
        return path

    @classmethod
    def load(cls, path: str | Path, config: EmbeddingConfig | None = None) -> DualEmbedding:
        """Read a module written by ``save``; ``config`` defaults to the one stored in the file."""
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        path = Path(path)
        try:
            if config is None:
                with safe_open(str(path), framework="pt") as f:
                    metadata = f.metadata() or {}
                if CONFIG_KEY not in metadata:
                    raise IntegrityError(f"{path} holds no embedding config", hint="pass the pack's config")
                config = EmbeddingConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
            tensors = load_file(str(path))
        except (OSError, ValueError, SafetensorError) as e:
            raise IntegrityError(f"cannot read embedding weights {path}: {e}", hint="re-import the pack") from e
        with torch.device("meta"):
            module = cls(config)
        try:
            module.load_state_dict(tensors, strict=True, assign=True)
        except RuntimeError as e:
            raise IntegrityError(f"embedding weights {path} do not match their config: {e}",
                                 hint="the pack is damaged or was written by another version") from e
        return module
