"""Prompt encoding exactly as HunyuanVideoPipeline does it, plus the token spans of each prompt role.

The LLM path templates the prompt, takes the hidden states three layers from the top and crops the
template tokens off, leaving the user's tokens, ``<|eot_id|>`` and right padding. Character spans from
``synmotion_cli.prompts`` become token spans through the fast tokenizer's offsets: byte-level BPE never
lets a token straddle two words, so "tokens overlapping the characters" is exact.

Image-to-video bases encode the prompt together with an image (a Llava MLLM): the pipeline's own
``encode_prompt`` returns ``cat([image tokens, text tokens])``. The text tokens index exactly like the T2V
crop (the pipeline crops the same template prefix), so the same spans apply to them; the image tokens are
kept apart as ``image_embeds``, the prefix the dual embeddings put back in front.
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
    image: dict | None = None        # I2V: image_emb_start, image_emb_end, image_emb_len (the pipeline's keys)


IMAGE_KEYS = ("image_emb_start", "image_emb_end", "image_emb_len")


def load_prompt_template(base: str | Path | None = None, *, i2v: bool = False) -> PromptTemplate:
    """The template stored with a local base (small bases write one), else diffusers' default."""
    if base is not None:
        path = Path(base) / TEMPLATE_FILE
        if path.is_file():
            info = json.loads(path.read_text())
            if "prompt_template" in info:
                image = {k: int(info[k]) for k in IMAGE_KEYS} if i2v and "image_emb_len" in info else None
                return PromptTemplate(info["prompt_template"], int(info["crop_start"]),
                                      int(info.get("max_sequence_length", MAX_SEQUENCE_LENGTH)), image)
    if i2v:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

        return PromptTemplate(DEFAULT_PROMPT_TEMPLATE["template"], DEFAULT_PROMPT_TEMPLATE["crop_start"],
                              image={k: DEFAULT_PROMPT_TEMPLATE[k] for k in IMAGE_KEYS})
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
    image_embeds: torch.Tensor | None = None   # (1, P, D) I2V image tokens, which go in front of ``embeds``

    def to(self, device=None, dtype=None) -> EncodedPrompt:
        return replace(
            self,
            embeds=self.embeds.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            pooled=self.pooled.to(device=device, dtype=dtype),
            image_embeds=None if self.image_embeds is None else self.image_embeds.to(device=device, dtype=dtype),
        )

    def joined(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeds, mask) as the transformer reads them: the image tokens (all valid) first, for I2V."""
        if self.image_embeds is None:
            return self.embeds, self.mask
        ones = self.mask.new_ones(self.image_embeds.shape[:2])
        return torch.cat([self.image_embeds, self.embeds], dim=1), torch.cat([ones, self.mask], dim=1)


class PromptEncoder:
    """Frozen LLM + CLIP text encoders of a HunyuanVideo pipeline, used only under ``no_grad``."""

    def __init__(self, tokenizer, text_encoder, tokenizer_2, text_encoder_2, template: PromptTemplate,
                 max_sequence_length: int | None = None, image_pipeline=None):
        # The transformer's joint attention mask assumes valid text tokens first; transformers v5 pads Llama left.
        tokenizer.padding_side = "right"
        for encoder in (text_encoder, text_encoder_2):
            encoder.requires_grad_(False)
            encoder.eval()
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.tokenizer_2, self.text_encoder_2 = tokenizer_2, text_encoder_2
        self.template = template
        # The base's own length (its template's) unless told otherwise: a longer one only adds masked padding,
        # which still costs every dual-stream block.
        self.max_sequence_length = max_sequence_length or template.max_sequence_length
        # I2V: the image-to-video pipeline, whose own encode_prompt runs the MLLM on image and text.
        self.image_pipeline = image_pipeline

    @classmethod
    def from_pipeline(cls, pipe, base: str | Path | None = None, template: PromptTemplate | None = None,
                      max_sequence_length: int | None = None) -> PromptEncoder:
        i2v = hasattr(pipe, "image_processor")
        if template is None:
            base = base if base is not None else getattr(pipe.config, "_name_or_path", None)
            template = load_prompt_template(base, i2v=i2v)
        return cls(pipe.tokenizer, pipe.text_encoder, pipe.tokenizer_2, pipe.text_encoder_2, template,
                   max_sequence_length, image_pipeline=pipe if i2v else None)

    @property
    def pipeline_template(self) -> dict:
        """The ``prompt_template`` argument that makes the pipeline encode the same way."""
        return {"template": self.template.template, "crop_start": self.template.crop_start,
                **(self.template.image or {})}

    @property
    def image_interleave(self) -> int:
        """Every how many image tokens the I2V pipeline keeps one (its own rule, from the transformer)."""
        kind = self.image_pipeline.transformer.config.image_condition_type
        return 2 if kind == "latent_concat" else 4 if kind == "token_replace" else 1

    @torch.no_grad()
    def encode(self, prompt: PromptRoles | str, image=None, what: str = "prompt") -> EncodedPrompt:
        """Encode a prompt (with its role spans when given ``PromptRoles``); I2V bases also need ``image``
        (a PIL image or an RGB uint8 array). A prompt longer than the encoder reads is a UsageError naming it as
        ``what``, never cropped."""
        if (image is None) != (self.image_pipeline is None):
            raise ValueError("an image-to-video base encodes a prompt with an image, a text-to-video base without")
        roles = prompt if isinstance(prompt, PromptRoles) else None
        text = roles.text if roles else prompt
        crop = self.template.crop_start
        read = self.max_sequence_length + crop
        tokens = self.tokenizer(
            self.template.template.format(text),
            max_length=read,
            padding="max_length",
            truncation=False,
            return_tensors="pt",
            return_attention_mask=True,
            return_offsets_mapping=roles is not None,
        )
        if tokens.input_ids.shape[1] > read:
            shown = text if len(text) <= 60 else text[:60] + "…"
            raise UsageError(f'the {what} "{shown}" is cut off: it is longer than the text encoder reads '
                             f"({self.max_sequence_length} tokens)", hint=f"shorten the {what}")
        spans = None
        if roles is not None:
            offsets = tokens.offset_mapping[0, crop:].tolist()
            shift = self.template.template.index("{}")
            spans = TokenSpans(*(
                _token_span(offsets, shift, getattr(roles, role), role, text)
                for role in ("subject", "motion", "extensions")
            ))
        if image is not None:
            return self._encode_with_image(text, image, spans)
        device = self.text_encoder.device
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        hidden = self.text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        embeds = hidden.hidden_states[-(HIDDEN_LAYERS_TO_SKIP + 1)].to(self.text_encoder.dtype)
        return EncodedPrompt(
            text=text,
            embeds=embeds[:, crop:].detach().cpu(),
            mask=mask[:, crop:].detach().cpu(),
            pooled=self._pooled(text).detach().cpu(),
            spans=spans,
        )

    def negative(self, text: str = "") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embeds, mask, pooled) of the negative for classifier-free guidance: ``text``, by default the
        pipelines' own empty prompt, read with a black image on an image-to-video base as diffusers' I2V pipeline
        reads its negative (the image's size does not matter: the image processor resizes it, and black stays
        black)."""
        import numpy as np

        black = None if self.image_pipeline is None else np.zeros((64, 64, 3), np.uint8)
        encoded = self.encode(text, image=black, what="negative prompt")
        return (*encoded.joined(), encoded.pooled)

    def _encode_with_image(self, text: str, image, spans: TokenSpans | None) -> EncodedPrompt:
        from PIL import Image

        if not isinstance(image, Image.Image):
            image = Image.fromarray(image)
        pipe, interleave = self.image_pipeline, self.image_interleave
        embeds, pooled, mask = pipe.encode_prompt(
            image=image, prompt=text, prompt_template=self.pipeline_template, device=self.text_encoder.device,
            max_sequence_length=self.max_sequence_length, image_embed_interleave=interleave)
        n_image = len(range(0, self.template.image["image_emb_len"], interleave))
        return EncodedPrompt(
            text=text,
            embeds=embeds[:, n_image:].detach().cpu(),
            mask=mask[:, n_image:].detach().cpu(),
            pooled=pooled.detach().cpu(),
            spans=spans,
            image_embeds=embeds[:, :n_image].detach().cpu(),
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
    if not hits or offsets[hits[-1]][1] < end:   # encode refuses long prompts, so only a bad template crop does this
        raise ValueError(f"the {role} of {text!r} is not among the tokens the prompt template keeps (its crop_start)")
    return hits[0], hits[-1] + 1
