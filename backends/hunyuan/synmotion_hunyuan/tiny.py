"""A tiny random-weight HunyuanVideo of the real diffusers/transformers classes, for tests and dry runs.

The configs are the ones diffusers' own fast tests use; the tokenizers are built locally (no hub): a
byte-level BPE Llama-3-like tokenizer trained on a small corpus, and a character-level CLIP tokenizer.
``save_tiny_pipeline`` writes a normal diffusers directory, so it loads with ``from_pretrained`` like a
real base, plus a ``synmotion.json`` holding the prompt template and the crop_start that fits its tokenizer.
With ``i2v=True`` it is a ``HunyuanVideoImageToVideoPipeline``: the Llama becomes the language model of a
``LlavaForConditionalGeneration`` with a tiny CLIP vision tower, and the transformer takes the image latents
concatenated to the noisy ones (``image_condition_type="latent_concat"``).
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
VISION_IMAGE_SIZE, VISION_PATCH = 32, 4   # the tiny vision tower sees 32x32 pixels: 64 image tokens
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


# The transformer's inputs by how it takes an image (None: text-to-video, guidance-distilled like HunyuanVideo).
# ``latent_concat``: [noisy latents, image latents, mask] in, not guidance-distilled (like HunyuanVideo-I2V-33ch);
# ``token_replace``: latent frame 0 is the image, guidance-distilled (like HunyuanVideo-I2V, the default I2V base).
TRANSFORMER_IO = {
    None: dict(in_channels=4, out_channels=4, guidance_embeds=True),
    "latent_concat": dict(in_channels=2 * 4 + 1, out_channels=4, guidance_embeds=False,
                          image_condition_type="latent_concat"),
    "token_replace": dict(in_channels=4, out_channels=4, guidance_embeds=True, image_condition_type="token_replace"),
}


def build_tiny_components(i2v: bool = False, seed: int = 0, condition: str = "latent_concat", **overrides) -> dict:
    """The keyword arguments of ``HunyuanVideoPipeline`` (or, with ``i2v``, of
    ``HunyuanVideoImageToVideoPipeline``), random but deterministic for ``seed``.

    ``overrides`` replace components by name (e.g. ``transformer=...``).
    """
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer = build_llama_tokenizer(tiny_template(i2v))
    tokenizer_2 = build_clip_tokenizer()
    llama = LlamaConfig(
        hidden_size=TEXT_DIM, intermediate_size=37, num_attention_heads=4, num_key_value_heads=4,
        num_hidden_layers=3, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    # fork_rng keeps the caller's random state untouched while making the weights depend on seed only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = HunyuanVideoTransformer3DModel(
            num_attention_heads=2, attention_head_dim=10, num_layers=1,
            num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1,
            text_embed_dim=TEXT_DIM, pooled_projection_dim=POOLED_DIM, rope_axes_dim=(2, 4, 4),
            **TRANSFORMER_IO[condition if i2v else None],
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
        text_encoder = llava_around(LlamaModel(llama), tokenizer) if i2v else LlamaModel(llama)
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
    if i2v:
        components["image_processor"] = clip_image_processor(VISION_IMAGE_SIZE)
    components.update(overrides)
    return components


def llava_around(llama, tokenizer, *, image_size: int = VISION_IMAGE_SIZE, patch_size: int = VISION_PATCH,
                 vision_hidden: int = 8):
    """A ``LlavaForConditionalGeneration`` whose language model is ``llama`` (its weights, unchanged) and
    whose vision tower and projector are small and random (seeded by the caller's torch generator)."""
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    config = LlavaConfig(
        text_config=llama.config, pad_token_id=tokenizer.pad_token_id,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_config=CLIPVisionConfig(hidden_size=vision_hidden, intermediate_size=4 * vision_hidden,
                                       projection_dim=vision_hidden, num_attention_heads=4, num_hidden_layers=2,
                                       image_size=image_size, patch_size=patch_size),
    )
    llava = LlavaForConditionalGeneration(config)
    llava.model.language_model.load_state_dict(llama.state_dict())
    return llava.eval()


def clip_image_processor(size: int):
    """CLIP's preprocessing (resize, center crop, CLIP mean/std) at ``size`` pixels, as HunyuanVideo-I2V uses."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              do_center_crop=True, do_normalize=True, do_resize=True, resample=3,
                              image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711])


def tiny_template(i2v: bool) -> str:
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import (
        DEFAULT_PROMPT_TEMPLATE as I2V_TEMPLATE,
    )

    return (I2V_TEMPLATE if i2v else DEFAULT_PROMPT_TEMPLATE)["template"]


def template_info(tokenizer, template: str, image_tokens: int | None = None) -> dict:
    """The ``synmotion.json`` prompt fields for ``template`` read by ``tokenizer``; with ``image_tokens``
    (the vision tower's patch count) also where the ``<image>`` placeholder's tokens go, in the pipeline's
    ``prompt_template`` terms."""
    info = {"prompt_template": template, "crop_start": crop_start_for(tokenizer, template)}
    if image_tokens is not None:
        prefix = tokenizer(template.split("{}")[0]).input_ids
        start = prefix.index(tokenizer.convert_tokens_to_ids("<image>"))
        info.update(image_emb_start=start, image_emb_end=start + image_tokens, image_emb_len=image_tokens)
    return info


def save_tiny_pipeline(directory: str | Path, i2v: bool = False, seed: int = 0,
                       condition: str = "latent_concat") -> Path:
    """Write a tiny pipeline as a diffusers directory plus its ``synmotion.json`` prompt template
    (``condition``: how an I2V transformer takes the image, ``latent_concat`` or ``token_replace``)."""
    from diffusers import HunyuanVideoImageToVideoPipeline, HunyuanVideoPipeline

    directory = Path(directory)
    components = build_tiny_components(i2v=i2v, seed=seed, condition=condition)
    (HunyuanVideoImageToVideoPipeline if i2v else HunyuanVideoPipeline)(**components).save_pretrained(directory)
    image_tokens = (VISION_IMAGE_SIZE // VISION_PATCH) ** 2 if i2v else None
    info = {**template_info(components["tokenizer"], tiny_template(i2v), image_tokens),
            # A random-weight model learns nothing real: small sizes and few steps keep runs on it fast.
            "defaults": TINY_DEFAULTS}
    (directory / TEMPLATE_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return directory
