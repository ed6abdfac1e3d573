"""Generation: the plain base (the baseline) or the base with motion packs applied.

A pack contributes two things: its LoRA (weighted; several packs' LoRAs combine) and its dual-embedding
module, applied to the prompt's motion and subject tokens. One prompt has one subject-motion pair, so the
embedding of the first pack whose motion appears in the prompt is used; other packs add their LoRA only.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from synmotion_cli.errors import UsageError
from synmotion_cli.prompts import compose, parse_roles

from .adapters import load_lora
from .embedding import DualEmbedding
from .text_encoding import PromptEncoder


def encode_with_packs(encoder: PromptEncoder, prompt: str, style, background, packs, reporter, variant="t2v",
                      image=None):
    """Prompt embeddings with a pack's embedding module applied; returns (embeds, mask, pooled, text, used).

    The first pack whose motion is in the prompt lends its embedding; every other pack with an embedding is
    told (adapter only). If packs carry embeddings but none finds its motion, the prompt is malformed.
    With ``image`` (I2V) the image tokens go first, as context for the refiner, unchanged.
    """
    text = compose(prompt, style, background)
    chosen, first_error = None, None
    for pack in packs:
        v = pack.manifest["variants"][variant]
        if not v.get("embedding"):
            continue
        triggers = pack.manifest["motion"]["trigger_words"]
        if chosen is None:
            try:
                chosen = (pack, v, parse_roles(prompt, triggers, style=style, background=background))
                continue
            except UsageError as e:
                first_error = first_error or e
        reporter.message(f"pack {pack.name}: "
                         + ("one motion per prompt" if chosen else f"its motion ({', '.join(triggers[:3])}) is not in the prompt")
                         + "; using its adapter only")
    if chosen is None:
        if first_error is not None:
            raise first_error
        encoded = encoder.encode(text, image=image)
        return *encoded.joined(), encoded.pooled, text, None
    pack, v, roles = chosen
    encoded = encoder.encode(roles, image=image)
    module = DualEmbedding.load(pack.files[v["embedding"]])
    module.to(encoded.embeds.device)
    with torch.no_grad():
        embeds, mask = module(encoded.embeds.float(), encoded.mask, encoded.spans, prefix=encoded.image_embeds,
                              scale=pack.weight)
    return embeds, mask, encoded.pooled, roles.text, pack.name


def apply_loras(pipe, packs, variant="t2v") -> list[str]:
    names, weights = [], []
    for i, pack in enumerate(packs):
        v = pack.manifest["variants"][variant]
        if v.get("lora"):
            name = f"pack{i}"
            target = pipe if hasattr(pipe, "load_lora_weights") else pipe.transformer
            with warnings.catch_warnings():
                # Stacking packs is several adapters on one model by design; peft warns about exactly that.
                warnings.filterwarnings("ignore", message=".*multiple adapters.*")
                load_lora(target, pack.files[v["lora"]], weight=pack.weight, adapter_name=name)
            names.append(name)
            weights.append(pack.weight)
    if names:  # the image-to-video pipeline has no LoRA mixin: its transformer takes the adapters itself
        (pipe if hasattr(pipe, "set_adapters") else pipe.transformer).set_adapters(names, weights)
    return names


def sample(pipe, embeds, mask, pooled, *, height, width, frames, steps, guidance, seed, negative=None,
           true_cfg_scale: float = 1.0, output_type: str = "np", image=None):
    """Run the pipeline from precomputed text embeddings; uint8 frames (F, H, W, 3), or latents.

    ``negative`` (embeds, mask, pooled) with ``true_cfg_scale`` > 1 adds classifier-free guidance; bases
    trained with prompt dropout (the toy base) need it, guidance-distilled ones (HunyuanVideo) do not.
    ``image`` (uint8 (height, width, 3), I2V pipelines only) is the first frame; ``frames`` frames come back.
    """
    device, dtype = pipe.transformer.device, pipe.transformer.dtype
    generator = torch.Generator("cpu").manual_seed(seed)
    extra = {}
    if image is not None:
        from PIL import Image

        from .image_condition import pipeline_frames

        extra["image"] = Image.fromarray(np.asarray(image, dtype=np.uint8))
        frames = pipeline_frames(pipe, frames)
    if negative is not None and true_cfg_scale > 1:
        n_embeds, n_mask, n_pooled = negative
        extra.update(negative_prompt_embeds=n_embeds.to(device, dtype), negative_prompt_attention_mask=n_mask.to(device),
                     negative_pooled_prompt_embeds=n_pooled.to(device, dtype), true_cfg_scale=true_cfg_scale)
    with torch.no_grad():
        out = pipe(prompt_embeds=embeds.to(device, dtype), prompt_attention_mask=mask.to(device),
                   pooled_prompt_embeds=pooled.to(device, dtype), height=height, width=width, num_frames=frames,
                   num_inference_steps=steps, guidance_scale=guidance, generator=generator,
                   output_type=output_type, **extra).frames
    if output_type == "latent":
        return out
    video = np.asarray(out[0], dtype=np.float32)
    return (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
