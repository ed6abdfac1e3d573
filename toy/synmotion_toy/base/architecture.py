"""The toy base's components: the real HunyuanVideo classes at a size a CPU trains in minutes.

Choices (measured and argued in docs/toy-base.md):
- Video: 64x64 pixels, 17 frames at 8 fps (about 2 s, enough for one or two cycles of every motion).
  At 64x64 a limb is 3-4 pixels wide; a VAE with 4x spatial compression keeps it (8x would leave a limb a
  fraction of a latent pixel), with 16 latent channels, 4x temporal compression (17 frames -> 5 latents).
- Transformer: patch 2 over the 16x16 latents gives 8x8x5 = 320 video tokens; 128 wide, 4 dual-stream and
  4 single-stream blocks: small enough for thousands of CPU steps, large enough for the world.
- Text: a byte-level BPE tokenizer (it encodes any text, like llama-3's) with a frozen random-weight Llama;
  the transformer's own token refiner learns to read it. A frozen random CLIP gives the pooled vector.
  Prompts are at most 32 tokens (``max_sequence_length``), so attention is not spent on padding.
"""

from __future__ import annotations

HEIGHT, WIDTH, FRAMES, FPS = 64, 64, 17, 8.0
SECONDS = 2   # every clip lasts 2 s: frames_at(fps) frames


def frames_at(fps: int) -> int:
    """Frames of a clip at ``fps``: 2 s and one more, 4k + 1 for an even ``fps``, as the causal VAE needs."""
    return SECONDS * int(fps) + 1


def fps_of(synmotion_config: dict) -> int:
    """The frame rate a toy base was trained at, from its ``synmotion.json``: the rate its videos are made at."""
    return int(synmotion_config.get("defaults", {}).get("gen", {}).get("fps", FPS))

LATENT_CHANNELS = 16
TEXT_DIM = 64
POOLED_DIM = 32
MAX_SEQUENCE_LENGTH = 32
SHIFT = 2.0      # flow-matching time shift: small latents need less push toward high noise than 720p
TEMPLATE = ("<|start_header_id|>system<|end_header_id|>\n\nDescribe the video.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>")

VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
                  down_block_types=("HunyuanVideoDownBlock3D",) * 3, up_block_types=("HunyuanVideoUpBlock3D",) * 3,
                  block_out_channels=(16, 32, 64), layers_per_block=1, act_fn="silu", norm_num_groups=8,
                  scaling_factor=1.0, spatial_compression_ratio=4, temporal_compression_ratio=4,
                  mid_block_add_attention=False)

TRANSFORMER_CONFIG = dict(in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, num_attention_heads=4,
                          attention_head_dim=32, num_layers=4, num_single_layers=4, num_refiner_layers=1,
                          mlp_ratio=4.0, patch_size=2, patch_size_t=1, qk_norm="rms_norm", guidance_embeds=False,
                          text_embed_dim=TEXT_DIM, pooled_projection_dim=POOLED_DIM, rope_axes_dim=(8, 12, 12))

LLAMA_CONFIG = dict(hidden_size=TEXT_DIM, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4,
                    num_hidden_layers=3, max_position_embeddings=256)
CLIP_CONFIG = dict(hidden_size=POOLED_DIM, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                   projection_dim=POOLED_DIM, max_position_embeddings=77)


def corpus() -> list[str]:
    """Text the tokenizer learns its merges from: the toy world's words in every form prompts use, plus
    common English, so toy prompts take few tokens and anything else still encodes (byte fallback)."""
    from synmotion_cli.prompts import inflections

    from ..world import BACKGROUNDS, MOTIONS, STYLES, SUBJECTS

    words = []
    for subject in SUBJECTS.values():
        words.append(subject.phrase)
    for motion in MOTIONS.values():
        words += [motion.verb, motion.third_person, *inflections(motion.verb)]
    words += list(BACKGROUNDS.values()) + list(STYLES.values())
    common = ("a an the person people animal video of is are was with and in on at to from by for it its his her "
              "their this that who what where when how very big small little red blue green yellow black white brown "
              "grey orange pink purple dog horse tiger elephant monkey kangaroo man woman child girl boy dance dances "
              "dancing kick kicks kicking squat squats jumps walks runs waves claps bows spins punches sits turns "
              "stands slowly quickly happily forest city street room studio park garden mountain sky water sea sand "
              "night day morning evening snow rain sun moon star cartoon watercolor painting photo realistic style")
    lines = [" ".join(words)] * 4 + [common] * 2
    return lines + ["system", "user", "assistant", "Describe the video."] * 8


def build_tokenizers():
    from synmotion_hunyuan.tiny import build_clip_tokenizer, build_llama_tokenizer

    return build_llama_tokenizer(TEMPLATE, corpus=corpus(), vocab_size=1024), build_clip_tokenizer()


def build_components(seed: int = 0) -> dict:
    """Fresh components for training: untrained VAE and transformer, frozen random text encoders."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoTransformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer, tokenizer_2 = build_tokenizers()
    torch.manual_seed(seed)
    text_encoder = LlamaModel(LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                          **LLAMA_CONFIG))
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer_2), pad_token_id=1, bos_token_id=0,
                                                  eos_token_id=1, **CLIP_CONFIG))
    return dict(
        transformer=HunyuanVideoTransformer3DModel(**TRANSFORMER_CONFIG),
        vae=AutoencoderKLHunyuanVideo(**VAE_CONFIG),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
        text_encoder=text_encoder.eval(), tokenizer=tokenizer,
        text_encoder_2=text_encoder_2.eval(), tokenizer_2=tokenizer_2,
    )


# What transformers (5.x) writes into tokenizer_config.json when it saves a tokenizer it loaded from disk: where
# it was loaded from, and the fast tokenizer's truncation and padding state, which tokenizer.json already holds
# and a load reads back from there. A continued base would otherwise differ from a fresh one in these keys alone.
TOKENIZER_LOAD_STATE = ("is_local", "local_files_only", "max_length", "pad_to_multiple_of", "pad_token_type_id",
                        "padding_side", "stride", "truncation_side", "truncation_strategy")


def save_base(pipe, folder) -> None:
    """``save_pretrained``, without the ``_name_or_path`` that diffusers and transformers write into the config
    of a part loaded from disk (a kept VAE, the I2V base's parts of the toy base): a path on the machine that
    trained the base, which says nothing about the model and would differ between two identical trainings; nor
    the load state that transformers writes into a loaded tokenizer's ``tokenizer_config.json``."""
    import json
    from pathlib import Path

    def drop_name_or_path(config: dict) -> bool:
        dropped = config.pop("_name_or_path", None) is not None
        for value in config.values():
            if isinstance(value, dict):
                dropped = drop_name_or_path(value) or dropped
        return dropped

    def drop_tokenizer_load_state(config: dict) -> bool:
        found = [key for key in TOKENIZER_LOAD_STATE if key in config]
        for key in found:
            del config[key]
        return bool(found)

    pipe.save_pretrained(folder)
    for name, drop in (("config.json", drop_name_or_path), ("tokenizer_config.json", drop_tokenizer_load_state)):
        for path in Path(folder).glob(f"*/{name}"):
            config = json.loads(path.read_text())
            if drop(config):   # rewritten as both libraries write their configs
                path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
