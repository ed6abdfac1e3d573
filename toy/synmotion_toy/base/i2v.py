"""The toy image-to-video base (``toy-i2v``), made from the toy base the way HunyuanVideo-I2V is made from
HunyuanVideo, by one reproducible command (`synmotion toy train-i2v-base`):

- transformer: the trained toy transformer with one of the two image conditions diffusers' HunyuanVideo-I2V
  knows (``--condition``). ``token_replace`` (the default): latent frame 0 is the clean image latent and its
  tokens are modulated as at time 0, so the image's subject is in every denoising step unchanged; the weights
  are the text-to-video ones as they are (it measured better on the toy world: docs/toy-base.md).
  ``latent_concat``: the patch embedding reads ``[noisy latents, image latents, frame-0 mask]`` (2C+1
  channels) and the new input channels start at zero, so before fine-tuning it computes exactly what the
  text-to-video model does.
- text encoder: a ``LlavaForConditionalGeneration`` around the SAME frozen Llama weights as the toy base,
  with a tiny frozen random CLIP vision tower; the template puts the ``<image>`` tokens in the system turn.
- VAE, CLIP text encoder, tokenizers and scheduler: the toy base's own.

Fine-tuning: HunyuanVideo's flow matching on toy clips conditioned on their first frame
(``synmotion_hunyuan.image_condition``), the prompt dropped 10 % of the time for classifier-free guidance
(dropped means the pipeline's own negative: the empty prompt read with a black image), the subject's latent
pixels weighted up as in the toy base, and an exponential moving average of the weights, which is what is saved.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path

from .config import I2V_CONDITIONS, I2VTrainConfig

WEIGHTS_I2V = Path(__file__).with_name("weights-i2v")
TEMPLATE_I2V = ("<|start_header_id|>system<|end_header_id|>\n\n<image>\nDescribe the video.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
VISION_SIZE, VISION_PATCH, VISION_HIDDEN = 32, 4, 32   # 64 image tokens; the pipeline keeps every 2nd
BUILD_HINT = "synmotion toy train-i2v-base {folder} --minutes 30"


def weights_dir() -> Path:
    """Entry point of the base named ``toy-i2v``; says how to build it until its weights ship."""
    if not (WEIGHTS_I2V / "model_index.json").is_file():
        from synmotion_cli.errors import NotFoundError

        raise NotFoundError("the toy image-to-video base (toy-i2v) is not built yet",
                            hint="build it from the toy base (about 30 minutes on a CPU): "
                                 + BUILD_HINT.format(folder=WEIGHTS_I2V))
    return WEIGHTS_I2V


def image_to_video_transformer(transformer, condition: str):
    """The text-to-video transformer as an image-to-video one (``condition``) that starts from its weights."""
    import torch
    from diffusers import HunyuanVideoTransformer3DModel

    if condition == "token_replace":  # same parameters; only frame 0's modulation differs
        image = HunyuanVideoTransformer3DModel.from_config({**transformer.config, "image_condition_type": condition})
        image.load_state_dict(transformer.state_dict(), strict=True)
        return image
    if condition != "latent_concat":
        raise ValueError(f"unknown image condition {condition!r}; choose one of {', '.join(I2V_CONDITIONS)}")
    channels = transformer.config.in_channels
    config = {**transformer.config, "in_channels": 2 * channels + 1, "image_condition_type": condition}
    wide = HunyuanVideoTransformer3DModel.from_config(config)
    state = transformer.state_dict()
    weight = state["x_embedder.proj.weight"]
    state["x_embedder.proj.weight"] = torch.cat(
        [weight, weight.new_zeros(weight.shape[0], channels + 1, *weight.shape[2:])], dim=1)
    wide.load_state_dict(state, strict=True)
    return wide


def build_components(t2v_dir: Path, seed: int, condition: str) -> dict:
    """The image-to-video pipeline's components, before fine-tuning."""
    import torch
    from diffusers import HunyuanVideoPipeline
    from synmotion_hunyuan.tiny import clip_image_processor, llava_around

    t2v = HunyuanVideoPipeline.from_pretrained(t2v_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = llava_around(t2v.text_encoder, t2v.tokenizer, image_size=VISION_SIZE, patch_size=VISION_PATCH,
                                    vision_hidden=VISION_HIDDEN).requires_grad_(False)
    return dict(transformer=image_to_video_transformer(t2v.transformer, condition), vae=t2v.vae,
                scheduler=t2v.scheduler, text_encoder=text_encoder, tokenizer=t2v.tokenizer, text_encoder_2=t2v.text_encoder_2,
                tokenizer_2=t2v.tokenizer_2, image_processor=clip_image_processor(VISION_SIZE))


def i2v_defaults(t2v_defaults: dict) -> dict:
    """The image-to-video base's option defaults: its text-to-video base's, without motion-transfer guidance.
    Measured on the I2V bench row (docs/fidelity.md): there the image already holds the subject, and transfer
    trades subject for motion (43 % / 84 % at 3). Packs keep the ordinary weight 1: on the current toy-i2v it is
    ahead of 1.5 on motion at the same subject (46 % / 88 % against 40 % / 88 %). Packs learn as on the
    text-to-video base (its steps and learning rate), with the loss weighing what the clips move up to 9x
    (``motion_weight`` 8; docs/fidelity.md, "Weighing what the clips move" and "Longer learning under the
    motion weight")."""
    defaults = dict(t2v_defaults)
    defaults["gen"] = {k: v for k, v in defaults.get("gen", {}).items() if not k.startswith("transfer")}
    defaults["learn"] = {**defaults.get("learn", {}), "motion_weight": 8.0}
    return defaults


def template_config(tokenizer, max_sequence_length: int) -> dict:
    from synmotion_hunyuan.tiny import template_info

    return {**template_info(tokenizer, TEMPLATE_I2V, (VISION_SIZE // VISION_PATCH) ** 2),
            "max_sequence_length": max_sequence_length}


def train_i2v_base(cfg: I2VTrainConfig, report=print) -> Path:
    import torch
    from synmotion_hunyuan.runtime import quiet_libraries

    quiet_libraries()  # before diffusers' I2V module: importing it already prints a notice
    from diffusers import HunyuanVideoImageToVideoPipeline
    from synmotion_hunyuan.image_condition import model_input
    from synmotion_hunyuan.text_encoding import PromptEncoder, load_prompt_template

    from . import WEIGHTS
    from . import architecture as arch
    from .dataset import items, render_with_masks
    from .train import (_timed_loop, bf16_supported, encode_latents, latent_subject_masks, loss_curve,
                        mixed_precision, noisy, set_lr, subject_weighted_mse, training_device, update)

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = training_device(cfg.device)
    report(f"training on {device.type}")
    t2v_dir = Path(cfg.t2v or WEIGHTS)
    t2v_info = json.loads((t2v_dir / "synmotion.json").read_text())
    timings = {}
    t = time.perf_counter()
    parts = build_components(t2v_dir, cfg.seed, cfg.condition)
    pipe = HunyuanVideoImageToVideoPipeline(**parts)
    info = {**template_config(parts["tokenizer"], int(t2v_info.get("max_sequence_length", arch.MAX_SEQUENCE_LENGTH))),
            # the base that draws condition images for subject-prior videos: the one this was made from
            "t2v_base": "toy" if t2v_dir.resolve() == WEIGHTS.resolve() else str(t2v_dir.resolve()),
            "defaults": i2v_defaults(t2v_info.get("defaults", {}))}
    data = items(cfg.clips, cfg.seed)
    # the clips at the frame rate its text-to-video base was trained at (its defaults say which)
    fps = arch.fps_of(info)
    clips, pixel_masks = render_with_masks(data, workers=cfg.threads, fps=fps)
    vae = parts["vae"]
    subject = latent_subject_masks(pixel_masks, vae.config.temporal_compression_ratio,
                                   vae.config.spatial_compression_ratio)
    del pixel_masks
    with torch.no_grad():
        latents = encode_latents(vae.to(device), clips) * vae.config.scaling_factor
    vae.cpu()   # only the transformer trains; the frozen parts stay on the CPU, where they are saved from
    subject = subject.to(device)
    timings["render_encode_s"] = round(time.perf_counter() - t, 1)
    report(f"rendered and encoded {len(clips)} clips in {timings['render_encode_s']}s")

    # Every clip's prompt read with its own first frame, once; the frozen encoders are not needed after.
    t = time.perf_counter()
    scratch = Path(cfg.out)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "synmotion.json").write_text(json.dumps(info, indent=1) + "\n")
    encoder = PromptEncoder.from_pipeline(pipe, template=load_prompt_template(scratch, i2v=True))
    encoded = [encoder.encode(item.prompt, image=clip[0]) for item, clip in zip(data, clips)]
    embeds = torch.cat([e.joined()[0] for e in encoded]).to(device)
    masks = torch.cat([e.joined()[1] for e in encoded]).to(device)
    pooled = torch.cat([e.pooled for e in encoded]).to(device)
    neg_embeds, neg_mask, neg_pooled = (t.to(device) for t in encoder.negative())
    timings["prompts_s"] = round(time.perf_counter() - t, 1)

    transformer = parts["transformer"].to(device)
    transformer.train().requires_grad_(True)
    ema = copy.deepcopy(transformer).requires_grad_(False)
    params = list(transformer.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    losses = []

    def step(i, planned):
        set_lr(opt, cfg.lr, i, planned, cfg.warmup)
        idx = torch.randint(len(latents), (cfg.batch,), generator=gen)
        drop = (torch.rand(cfg.batch, generator=gen) < cfg.cfg_dropout).view(-1, 1).to(device)
        emb = torch.where(drop[..., None], neg_embeds, embeds[idx])
        mask = torch.where(drop, neg_mask, masks[idx])
        pool = torch.where(drop, neg_pooled, pooled[idx])
        x0 = latents[idx]
        xt, sigma, target = noisy(x0, gen)
        hidden, scored = model_input(transformer, xt, x0)
        with mixed_precision(cfg.mixed_precision, device.type):
            pred = transformer(hidden_states=hidden, timestep=sigma * 1000, encoder_hidden_states=emb,
                               encoder_attention_mask=mask, pooled_projections=pool, return_dict=False)[0]
        loss = subject_weighted_mse(pred[:, :, scored], target[:, :, scored], subject[idx][:, :, scored],
                                    cfg.subject_weight)
        update(opt, params, loss, ema, transformer, i, cfg.ema)
        losses.append(loss.detach())

    t = time.perf_counter()
    steps = _timed_loop(cfg.minutes, step, report, "i2v transformer")
    timings["transformer_s"] = round(time.perf_counter() - t, 1)
    pipe.transformer = ema.eval().cpu()
    pipe.register_modules(transformer=pipe.transformer)
    arch.save_base(pipe, scratch)
    info["training"] = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
                                   if k != "out"},
                        "device": device.type,
                        "bf16": cfg.mixed_precision and bf16_supported(device.type),
                        "timings": timings, "transformer_steps": steps,
                        "loss_curve_per_100_steps": loss_curve(losses),
                        "clips": len(clips)}
    (scratch / "synmotion.json").write_text(json.dumps(info, indent=1) + "\n")
    report(f"saved the toy image-to-video base to {scratch}")
    return scratch
