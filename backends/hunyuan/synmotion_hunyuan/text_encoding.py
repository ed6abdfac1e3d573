"""Prompt encoding exactly as HunyuanVideoPipeline does it, plus the token spans of each prompt role.

The LLM path templates the prompt, takes the hidden states three layers from the top and crops the
template tokens off, leaving the user's tokens, ``<|eot_id|>`` and right padding. Character spans from
``synmotion_cli.prompts`` become token spans through the fast tokenizer's offsets: byte-level BPE never
lets a token straddle two words, so "tokens overlapping the characters" is exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from synmotion_cli.errors import UsageError
from synmotion_cli.prompts import PromptRoles

from .tiny import TEMPLATE_FILE

REAL_CROP_START = 95          # right for diffusers' DEFAULT_PROMPT_TEMPLATE with the llava-llama-3 tokenizer
MAX_SEQUENCE_LENGTH = 256     # the pipeline's default
HIDDEN_LAYERS_TO_SKIP = 2     # the pipeline takes hidden_states[-3]


@dataclass(frozen=True)
class PromptTemplate:
    template: str             # contains one "{}" where the prompt goes
    crop_start: int           # tokens before the prompt, BOS included
    max_sequence_length: int = 256   # prompt tokens kept after the crop (small bases use fewer)


def load_prompt_template(base: str | Path | None = None) -> PromptTemplate:
    """The template stored with a local base (tiny pipelines write one), else diffusers' default."""
    if base is not None:
        path = Path(base) / TEMPLATE_FILE
        if path.is_file():
            info = json.loads(path.read_text())
            return PromptTemplate(info["prompt_template"], int(info["crop_start"]),
                                  int(info.get("max_sequence_length", MAX_SEQUENCE_LENGTH)))
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    return PromptTemplate(DEFAULT_PROMPT_TEMPLATE["template"], REAL_CROP_START)


@dataclass(frozen=True)
class TokenSpans:
    """Token ranges ``(start, end)`` of each role, indexing the cropped prompt embeddings."""

    subject: tuple[int, int]
    motion: tuple[int, int]
    extensions: tuple[int, int]


@dataclass(frozen=True)
class EncodedPrompt:
    """What the transformer needs for one prompt; detached CPU tensors, safe to cache."""

    text: str
    embeds: torch.Tensor      # (1, L, D) LLM hidden states of the prompt tokens, right-padded
    mask: torch.Tensor        # (1, L) 1 for valid tokens (they come first)
    pooled: torch.Tensor      # (1, P) CLIP pooled output
    spans: TokenSpans | None  # None when encoded from plain text

    def to(self, device=None, dtype=None) -> EncodedPrompt:
        return replace(
            self,
            embeds=self.embeds.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            pooled=self.pooled.to(device=device, dtype=dtype),
        )


class PromptEncoder:
    """Frozen LLM + CLIP text encoders of a HunyuanVideo pipeline, used only under ``no_grad``."""

    def __init__(self, tokenizer, text_encoder, tokenizer_2, text_encoder_2, template: PromptTemplate,
                 max_sequence_length: int = MAX_SEQUENCE_LENGTH):
        # The transformer's joint attention mask assumes valid text tokens first; transformers v5 pads Llama left.
        tokenizer.padding_side = "right"
        for encoder in (text_encoder, text_encoder_2):
            encoder.requires_grad_(False)
            encoder.eval()
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.tokenizer_2, self.text_encoder_2 = tokenizer_2, text_encoder_2
        self.template = template
        self.max_sequence_length = max_sequence_length

    @classmethod
    def from_pipeline(cls, pipe, base: str | Path | None = None, template: PromptTemplate | None = None,
                      max_sequence_length: int | None = None) -> PromptEncoder:
        if template is None:
            base = base if base is not None else getattr(pipe.config, "_name_or_path", None)
            template = load_prompt_template(base)
        return cls(pipe.tokenizer, pipe.text_encoder, pipe.tokenizer_2, pipe.text_encoder_2, template,
                   max_sequence_length or template.max_sequence_length)

    @property
    def pipeline_template(self) -> dict:
        """The ``prompt_template`` argument that makes the pipeline encode the same way."""
        return {"template": self.template.template, "crop_start": self.template.crop_start}

    @torch.no_grad()
    def encode(self, prompt: PromptRoles | str) -> EncodedPrompt:
        roles = prompt if isinstance(prompt, PromptRoles) else None
        text = roles.text if roles else prompt
        crop = self.template.crop_start
        tokens = self.tokenizer(
            self.template.template.format(text),
            max_length=self.max_sequence_length + crop,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
            return_attention_mask=True,
            return_offsets_mapping=roles is not None,
        )
        device = self.text_encoder.device
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        hidden = self.text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        embeds = hidden.hidden_states[-(HIDDEN_LAYERS_TO_SKIP + 1)].to(self.text_encoder.dtype)
        spans = None
        if roles is not None:
            offsets = tokens.offset_mapping[0, crop:].tolist()
            shift = self.template.template.index("{}")
            spans = TokenSpans(*(
                _token_span(offsets, shift, getattr(roles, role), role, text)
                for role in ("subject", "motion", "extensions")
            ))
        return EncodedPrompt(
            text=text,
            embeds=embeds[:, crop:].detach().cpu(),
            mask=mask[:, crop:].detach().cpu(),
            pooled=self._pooled(text).detach().cpu(),
            spans=spans,
        )

    def _pooled(self, text: str) -> torch.Tensor:
        ids = self.tokenizer_2(text, padding="max_length", max_length=77, truncation=True,
                               return_tensors="pt").input_ids
        pooled = self.text_encoder_2(ids.to(self.text_encoder_2.device), output_hidden_states=False).pooler_output
        return pooled.to(self.text_encoder_2.dtype)


def _token_span(offsets: list[list[int]], shift: int, chars: tuple[int, int], role: str, text: str) -> tuple[int, int]:
    start, end = chars[0] + shift, chars[1] + shift
    if start == end:   # an empty role (no extensions) sits where it would start
        before = [i for i, (a, b) in enumerate(offsets) if b > a and a < start]
        at = before[-1] + 1 if before else 0
        return at, at
    # Special tokens and padding have empty offsets (0, 0) and never overlap.
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    if not hits or offsets[hits[-1]][1] < end:
        raise UsageError(
            f'the {role} of "{text}" is cut off: the prompt is longer than the text encoder reads',
            hint="shorten the prompt",
        )
    return hits[0], hits[-1] + 1
