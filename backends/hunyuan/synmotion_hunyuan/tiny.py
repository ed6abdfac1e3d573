"""A tiny random-weight HunyuanVideo of the real diffusers/transformers classes, for tests and dry runs.

The configs are the ones diffusers' own fast tests use; the tokenizers are built locally (no hub): a
byte-level BPE Llama-3-like tokenizer trained on a small corpus, and a character-level CLIP tokenizer.
``save_tiny_pipeline`` writes a normal diffusers directory, so it loads with ``from_pretrained`` like a
real base, plus a ``synmotion.json`` holding the prompt template and the crop_start that fits its tokenizer.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

TEMPLATE_FILE = "synmotion.json"
TINY_DEFAULTS = {
    "learn": {"height": 32, "width": 32, "frames": 9, "steps": 20, "lr": 1e-3, "rank": 4, "spv_count": 4,
              "spv_steps": 2, "checkpoint_every": 10},
    "gen": {"height": 32, "width": 32, "frames": 9, "steps": 4},
}
LLAMA_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<pad>", "<image>",
]
TEXT_DIM = 16     # Llama hidden size == transformer text_embed_dim
POOLED_DIM = 8    # CLIP hidden size == transformer pooled_projection_dim

_WORDS = """
a an the person panda crocodile red fox zebra cat dog bear rabbit horse man woman child robot astronaut
monkey penguin tiger lion elephant kangaroo marilyn monroe is are
clap claps clapping clapped wave waves waving waved run runs running punch punches punching spin spins spinning
bow bows bowing handstand handstands does do doing walk walks walking jump jumps jumping dance dances dancing
sit sits down open opens door at night on grass in the snow park beach city cut paper pixel art watercolor style
""".split()


def _corpus(template: str) -> list[str]:
    # Header words follow <|start_header_id|> without a leading space; they must be single tokens
    # because the I2V pipeline crops a fixed number of assistant-header tokens.
    plain = template
    for special in LLAMA_SPECIALS:
        plain = plain.replace(special, "\n")
    lines = [line for line in plain.replace("{}", "").split("\n") if line.strip()]
    return (lines + ["system", "user", "assistant"]) * 8 + [" " + " ".join(_WORDS)] * 2


def build_llama_tokenizer(template: str, corpus: list[str] | None = None, vocab_size: int = 512):
    """Byte-level BPE with llama-3's special tokens and BOS post-processor, padding on the right.

    Byte-level means any text encodes (no unknown token); ``corpus`` only decides which words take few tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=LLAMA_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus if corpus is not None else _corpus(template), trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                      special_tokens=[(bos, tok.token_to_id(bos))]),
    ])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token="<|end_of_text|>", pad_token="<pad>", model_max_length=1024,
    )
    fast.padding_side = "right"
    return fast


def build_clip_tokenizer():
    """A character-level CLIP tokenizer: every printable character, alone and as a word end."""
    from transformers import CLIPTokenizer

    specials = ["<|startoftext|>", "<|endoftext|>"]
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab = {token: i for i, token in enumerate(specials + chars + [c + "</w>" for c in chars])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def crop_start_for(tokenizer, template: str) -> int:
    """How many tokens the template puts before the user's prompt (BOS included)."""
    return len(tokenizer(template.split("{}")[0]).input_ids)


def build_tiny_components(i2v: bool = False, seed: int = 0, **overrides) -> dict:
    """The keyword arguments of ``HunyuanVideoPipeline``, random but deterministic for ``seed``.

    ``overrides`` replace components by name (e.g. ``transformer=...``).
    """
    if i2v:
        raise NotImplementedError("the tiny image-to-video components are not built yet")
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoTransformer3DModel,
    )
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer = build_llama_tokenizer(DEFAULT_PROMPT_TEMPLATE["template"])
    tokenizer_2 = build_clip_tokenizer()
    # fork_rng keeps the caller's random state untouched while making the weights depend on seed only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = HunyuanVideoTransformer3DModel(
            in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
            num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1, guidance_embeds=True,
            text_embed_dim=TEXT_DIM, pooled_projection_dim=POOLED_DIM, rope_axes_dim=(2, 4, 4),
        )
        torch.manual_seed(seed + 1)
        vae = AutoencoderKLHunyuanVideo(
            in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=("HunyuanVideoDownBlock3D",) * 4, up_block_types=("HunyuanVideoUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8), layers_per_block=1, act_fn="silu", norm_num_groups=4,
            scaling_factor=0.476986, spatial_compression_ratio=8, temporal_compression_ratio=4,
            mid_block_add_attention=True,
        )
        torch.manual_seed(seed + 2)
        text_encoder = LlamaModel(LlamaConfig(
            hidden_size=TEXT_DIM, intermediate_size=37, num_attention_heads=4, num_key_value_heads=4,
            num_hidden_layers=3, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        ))
        torch.manual_seed(seed + 3)
        text_encoder_2 = CLIPTextModel(CLIPTextConfig(
            hidden_size=POOLED_DIM, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            vocab_size=len(tokenizer_2), pad_token_id=1, bos_token_id=0, eos_token_id=1, projection_dim=32,
            max_position_embeddings=77,
        ))
    components = dict(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
    )
    components.update(overrides)
    return components


def save_tiny_pipeline(directory: str | Path, i2v: bool = False, seed: int = 0) -> Path:
    """Write a tiny pipeline as a diffusers directory plus its ``synmotion.json`` prompt template."""
    from diffusers import HunyuanVideoPipeline
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    directory = Path(directory)
    components = build_tiny_components(i2v=i2v, seed=seed)
    HunyuanVideoPipeline(**components).save_pretrained(directory)
    template = DEFAULT_PROMPT_TEMPLATE["template"]
    info = {"prompt_template": template, "crop_start": crop_start_for(components["tokenizer"], template),
            # A random-weight model learns nothing real: small sizes and few steps keep runs on it fast.
            "defaults": TINY_DEFAULTS}
    (directory / TEMPLATE_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return directory
