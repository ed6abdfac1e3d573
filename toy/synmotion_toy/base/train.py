"""Training the toy base, by one reproducible command (`synmotion toy train-base`).

Four phases, each with a time budget so the whole run fits a small CPU machine:
1. render the training set (base motions only);
2. train the VAE on it (L1 + L2 + a small KL), then encode every clip once (posterior mean) and fold a
   per-channel normalisation into the VAE so latents have zero mean and unit variance in every channel;
3. fine-tune the VAE's decoder on whole clips, its encoder (so every latent) frozen;
4. train the transformer with HunyuanVideo's flow-matching objective on the cached latents and the
   cached prompt encodings, the subject's latent pixels weighted up, dropping the prompt 10 % of the time
   (for classifier-free guidance), with an exponential moving average of the weights, which is what is saved.
The result is a normal diffusers directory plus ``synmotion.json`` (prompt template, defaults).

The same command trains on a CUDA GPU where one is at hand (``--device``): models and batches go there, while
every random draw still comes from the same seeded CPU generators, so a run's data order does not depend on
the device.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synmotion_cli.errors import UsageError
from synmotion_hunyuan.losses import weighted_mse

from . import architecture as arch
from .config import BaseTrainConfig
from .dataset import items, render_with_masks


def _timed_loop(minutes: float, step_fn, report, name: str, max_steps: int | None = None) -> int:
    """Run ``step_fn(step, planned)`` until the time budget is spent (or ``max_steps`` are done). ``planned``, the
    steps the budget is expected to hold (for LR schedules), is made from the mean speed since step 10, so a GPU's
    slow first steps (kernel selection, caches) do not shorten it, and made again every 20 steps as the speed
    drifts. The budget, not the plan, ends the run: a plan a little short leaves the last steps at the
    schedule's floor rather than the time unused."""
    start = time.perf_counter()
    budget = minutes * 60
    limit = max_steps or 10**9
    step, planned, t10 = 0, limit, start
    while time.perf_counter() - start < budget and step < limit:
        step_fn(step, planned)
        step += 1
        if step == 10:
            t10 = time.perf_counter()
        if step >= 40 and step % 20 == 0 and max_steps is None:
            now = time.perf_counter()
            planned = max(step + 1, step + int((budget - (now - start)) / ((now - t10) / (step - 10))))
        if step % 50 == 0 or step == 1:
            report(f"{name}: step {step}/{planned if planned < 10**9 else '?'} "
                   f"({time.perf_counter() - start:.0f}s)")
    return step


def loss_curve(losses: list) -> list:
    """Mean loss per 100 steps. ``losses`` holds detached tensors: reading each at its step would make the
    host wait for the GPU every step."""
    values = torch.stack(losses).float().cpu().numpy() if losses else np.zeros(0)
    return [round(float(values[i:i + 100].mean()), 4) for i in range(0, len(values), 100)]


def final_loss(losses: list, last: int = 50) -> float | None:
    """Mean of the last ``last`` losses (detached tensors, read back once), or None when no step ran."""
    return round(float(torch.stack(losses[-last:]).float().mean()), 4) if losses else None


def set_lr(opt, peak: float, i: int, planned: int, warmup: int) -> None:
    """Linear warm-up, then a cosine decay to a tenth of ``peak`` over the planned steps."""
    lr = peak * min(1.0, (i + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, i / planned))))
    for g in opt.param_groups:
        g["lr"] = lr


def noisy(x0: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HunyuanVideo's flow matching at the toy base's time shift: (x_t, sigma, target noise - x0)."""
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    u = torch.rand(len(x0), generator=gen).to(x0.device)
    sigma = arch.SHIFT * u / (1 + (arch.SHIFT - 1) * u)
    s = sigma.view(-1, 1, 1, 1, 1)
    return (1 - s) * x0 + s * noise, sigma, noise - x0


def training_device(choice: str = "auto") -> torch.device:
    """``auto``: a CUDA GPU where one is at hand, else the CPU."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        from synmotion_cli.errors import EnvironmentProblem

        raise EnvironmentProblem("--device cuda, but torch sees no CUDA GPU", hint="use --device cpu or auto")
    return torch.device(choice)


@functools.cache
def bf16_supported(device_type: str = "cpu") -> bool:
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def mixed_precision(enabled: bool, device_type: str = "cpu"):
    """bf16 autocast (weights, optimizer state and losses stay float32) where the device computes in bf16:
    on this project's AVX-512-BF16 CPU a transformer or VAE step takes 0.72x the float32 time, so a
    time-budgeted phase runs 1.4x the steps. A CPU without those instructions emulates bf16, slower, so off."""
    if enabled and bf16_supported(device_type):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def optimizer_step(opt, params, loss: torch.Tensor) -> None:
    """Back-propagate ``loss``, clip the gradients of ``params`` at norm 1, step, clear the gradients."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def weighted_reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """L1 + L2 per pixel, weighted by ``weights`` (n, frames, h, w: 1, plus the extra weight on the subject's
    pixels) scaled to mean 1, so the loss keeps the scale of an even one."""
    weight = torch.from_numpy(weights).float()[:, None].to(x.device)
    err = recon.float() - x
    return (weight / weight.mean() * (err.abs() + err.square())).mean()


def update(opt, params, loss: torch.Tensor, ema, model, i: int, ema_max: float) -> None:
    """One optimizer step (gradients clipped at 1), then the moving average of the weights, whose decay
    ramps up to ``ema_max`` so the first steps are not averaged with the random start."""
    optimizer_step(opt, params, loss)
    decay = min(ema_max, (1 + i) / (10 + i))
    with torch.no_grad():
        # one fused update for all tensors: a per-tensor loop is hundreds of kernel launches a step on a GPU
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)


def pixels(clips: np.ndarray, device) -> torch.Tensor:
    """uint8 clips (n, frames, h, w, 3) as the VAE's input: (n, 3, frames, h, w) in [-1, 1] on ``device``."""
    return torch.from_numpy(clips).to(device).float().permute(0, 4, 1, 2, 3) / 127.5 - 1.0


def _subject_crop(mask: np.ndarray, size: int, gen: torch.Generator) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop centred on a random subject pixel of ``mask`` (frames x h x w),
    clamped into the frame; anywhere when the subject is not in view."""
    ys, xs = np.nonzero(mask.any(axis=0))
    h, w = mask.shape[1:]
    if len(ys) == 0:
        return tuple(int(torch.randint(n - size + 1, (1,), generator=gen)) for n in (h, w))
    k = int(torch.randint(len(ys), (1,), generator=gen))
    return (min(max(int(ys[k]) - size // 2, 0), h - size), min(max(int(xs[k]) - size // 2, 0), w - size))


def train_vae(vae, clips: np.ndarray, masks: np.ndarray, cfg: BaseTrainConfig, report) -> dict:
    """Reconstruction (L1 + L2) on short windows and crops, plus a small KL term.

    ``masks`` say where the subject is: crops are centred on it and its pixels weigh
    ``1 + vae_subject_weight`` in the loss: the subject covers a fifth of a frame but carries everything the
    judges (and users) look at, and an evenly weighted VAE spends its capacity on backgrounds, smearing limbs
    and shifting the subject's colours (docs/toy-base.md)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    device = vae.device
    params = list(vae.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.vae_lr, weight_decay=0.0)
    losses = []

    def step(i, planned):
        set_lr(opt, cfg.vae_lr, i, planned, warmup=50)
        idx = torch.randint(len(clips), (cfg.vae_batch,), generator=gen).tolist()
        t0 = int(torch.randint(clips.shape[1] - cfg.vae_frames + 1, (1,), generator=gen))
        frames, size = slice(t0, t0 + cfg.vae_frames), cfg.vae_crop
        xs, ws = [], []
        for j in idx:
            y0, x0 = _subject_crop(masks[j, frames], size, gen)
            xs.append(clips[j, frames, y0:y0 + size, x0:x0 + size])
            ws.append(1.0 + cfg.vae_subject_weight * masks[j, frames, y0:y0 + size, x0:x0 + size])
        x = pixels(np.stack(xs), device)
        with mixed_precision(cfg.mixed_precision, device.type):
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen).to(device)
            recon = vae.decode(z).sample
        rec = weighted_reconstruction_loss(recon, x, np.stack(ws))
        optimizer_step(opt, params, rec + cfg.kl_weight * posterior.kl().float().mean())
        losses.append(rec.detach())

    vae.train()
    steps = _timed_loop(cfg.vae_minutes, step, report, "vae")
    vae.eval()
    return {"vae_steps": steps, "vae_final_recon": final_loss(losses)}


def train_decoder(vae, latents: torch.Tensor, clips: np.ndarray, masks: np.ndarray, cfg: BaseTrainConfig,
                  report) -> dict:
    """Fine-tune the VAE's decoder (and ``post_quant_conv``) on whole clips, the encoder frozen.

    The VAE phase trains on 5-frame windows, which is cheap, but generation decodes all 17 frames (5 latent
    frames) at once. That decoder smeared what moves: renders encoded and decoded were judged the right motion
    76 % of the time (bow 17 %, sit down and turn around 50 %), which capped every video the base made. Decoding
    whole clips (crops of ``decoder_crop`` pixels centred on the subject, the subject's pixels weighted as in
    the VAE phase) for 25 minutes raised that to 90 % (docs/toy-base.md). The encoder stays as it is, so every
    latent, and a transformer trained on them, stays valid: this refines the decoder of a trained base too.
    ``latents``: the clips' normalised posterior means (``normalize_latent_channels``)."""
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    device = vae.device
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    vae.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.decoder_lr, weight_decay=0.0)
    ratio, size = vae.config.spatial_compression_ratio, cfg.decoder_crop
    losses = []

    def step(i, planned):
        set_lr(opt, cfg.decoder_lr, i, planned, warmup=20)
        idx = torch.randint(len(clips), (cfg.decoder_batch,), generator=gen).tolist()
        zs, xs, ws = [], [], []
        for j in idx:
            y0, x0 = (c // ratio for c in _subject_crop(masks[j], size, gen))   # onto the latent grid
            zs.append(latents[j, :, :, y0:y0 + size // ratio, x0:x0 + size // ratio])
            pixel_crop = (slice(None), slice(y0 * ratio, y0 * ratio + size), slice(x0 * ratio, x0 * ratio + size))
            xs.append(clips[j][pixel_crop])
            ws.append(1.0 + cfg.vae_subject_weight * masks[j][pixel_crop])
        x = pixels(np.stack(xs), device)
        with mixed_precision(cfg.mixed_precision, device.type):
            recon = vae.decode(torch.stack(zs).to(device)).sample
        loss = weighted_reconstruction_loss(recon, x, np.stack(ws))
        optimizer_step(opt, params, loss)
        losses.append(loss.detach())

    vae.decoder.train()
    steps = _timed_loop(cfg.decoder_minutes, step, report, "decoder")
    vae.eval().requires_grad_(False)
    return {"decoder_steps": steps, "decoder_final_recon": final_loss(losses)}


@torch.no_grad()
def vae_errors(vae, seed: int, count: int = 12, fps: int = int(arch.FPS)) -> dict:
    """Mean absolute reconstruction error, in grey levels, of ``count`` held-out renders (seeds the training
    set does not use), on the subject's pixels and on the rest: the subject is what the VAE gets wrong first,
    and what the transformer cannot draw better than the VAE decodes it."""
    from ..world import BASE_MOTIONS, SUBJECTS
    from .dataset import Item

    subjects, motions = list(SUBJECTS), list(BASE_MOTIONS)
    # training clips take seeds below 2**31 (dataset.items), so these are never among them
    held_out = [Item(subjects[k % len(subjects)], motions[k % len(motions)], None, None, seed=2**31 + seed * count + k)
                for k in range(count)]
    clips, masks = render_with_masks(held_out, fps=fps)
    x = pixels(clips, vae.device)
    recon = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    err = ((recon - x).abs() * 127.5).mean(dim=1).cpu().numpy()   # (clips, frames, h, w)
    return {"vae_error_subject": round(float(err[masks].mean()), 2),
            "vae_error_elsewhere": round(float(err[~masks].mean()), 2)}


@torch.no_grad()
def normalize_latent_channels(vae, latents: torch.Tensor) -> torch.Tensor:
    """Give every latent channel zero mean and unit variance over the training set, folded into the VAE.

    A lightly regularised VAE leaves its channels at very different scales (the first toy VAE: standard
    deviations 0.33 to 1.57 after a global scale, means up to 0.84), so one noise level destroys some
    channels long before others and the flow-matching loss weighs them unevenly. Wan, Mochi and LTX-Video
    normalise per channel for this reason; HunyuanVideo's pipeline knows only a global ``scaling_factor``,
    so the affine map goes into the VAE's 1x1x1 ``quant_conv`` (which emits the posterior's mean and
    log-variance) and is undone in ``post_quant_conv``: decoding is unchanged, and any code that encodes
    with this VAE gets normalised latents through the ordinary diffusers calls. Returns ``latents`` (the
    posterior means of the training clips) normalised the same way."""
    c = latents.shape[1]
    mean = latents.mean(dim=(0, 2, 3, 4))
    std = latents.std(dim=(0, 2, 3, 4))
    enc, dec = vae.quant_conv, vae.post_quant_conv
    enc.weight[:c] /= std.view(-1, 1, 1, 1, 1)
    enc.bias[:c] = (enc.bias[:c] - mean) / std
    enc.bias[c:] -= 2 * std.log()                     # log-variance of z / std
    # decode(z) used post_quant_conv(z) = W z + b; now it gets z' = (z - mean) / std: W (std z' + mean) + b
    dec.bias += (dec.weight[:, :, 0, 0, 0] @ mean)
    dec.weight *= std.view(1, -1, 1, 1, 1)
    vae.register_to_config(scaling_factor=1.0)
    return (latents - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)


@torch.no_grad()
def latent_subject_masks(masks: np.ndarray, temporal: int, spatial: int, batch: int = 256) -> torch.Tensor:
    """Where the subject is on the latent grid: (clips, 1, latent frames, h / spatial, w / spatial), 1 on
    every latent pixel whose source pixels hold any of the subject, else 0. HunyuanVideo's causal VAE encodes
    frame 0 alone and every following group of ``temporal`` frames into one more latent frame."""
    out = []
    for i in range(0, len(masks), batch):
        m = torch.from_numpy(masks[i:i + batch]).float()
        n, frames, h, w = m.shape
        m = torch.cat([m[:, :1], m[:, 1:].reshape(n, (frames - 1) // temporal, temporal, h, w).amax(2)], dim=1)
        out.append(F.max_pool2d(m, spatial).unsqueeze(1))
    return torch.cat(out)


def subject_weighted_mse(pred: torch.Tensor, target: torch.Tensor, subject: torch.Tensor, weight: float) -> torch.Tensor:
    """Mean squared error with the subject's latent pixels (``subject``, broadcast over channels) weighing
    ``1 + weight``, normalised so the loss keeps the scale of a plain MSE; ``weight=0`` is exactly that MSE.

    Why: the subject covers about a quarter of the latent pixels, and an evenly weighted transformer learnt
    backgrounds, styles and motion words but hardly read the subject's word: naming the wrong subject
    raised its held-out loss by 4 % where naming the wrong motion raised it by 10 % (docs/toy-base.md)."""
    return weighted_mse(pred, target, subject, weight)


@torch.no_grad()
def encode_latents(vae, clips: np.ndarray, batch: int = 4) -> torch.Tensor:
    out = []
    for i in range(0, len(clips), batch):
        out.append(vae.encode(pixels(clips[i:i + batch], vae.device)).latent_dist.mode())
    return torch.cat(out)


def train_transformer(transformer, latents, subject, embeds, masks, pooled, prompt_idx, empty_idx, cfg, report) -> dict:
    """``subject``: the clips' latent subject masks (``latent_subject_masks``)."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    params = [p for p in transformer.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.99))
    ema = copy.deepcopy(transformer).requires_grad_(False)
    losses = []

    def step(i, planned):
        set_lr(opt, cfg.lr, i, planned, cfg.warmup)
        idx = torch.randint(len(latents), (cfg.batch,), generator=gen)
        p = prompt_idx[idx].clone()
        p[torch.rand(cfg.batch, generator=gen) < cfg.cfg_dropout] = empty_idx
        x0 = latents[idx]
        xt, sigma, target = noisy(x0, gen)
        with mixed_precision(cfg.mixed_precision, xt.device.type):
            pred = transformer(hidden_states=xt, timestep=sigma * 1000,
                               encoder_hidden_states=embeds[p], encoder_attention_mask=masks[p],
                               pooled_projections=pooled[p], return_dict=False)[0]
        loss = subject_weighted_mse(pred, target, subject[idx], cfg.transformer_subject_weight)
        update(opt, params, loss, ema, transformer, i, cfg.ema)
        losses.append(loss.detach())

    transformer.train()
    steps = _timed_loop(cfg.transformer_minutes, step, report, "transformer")
    return {"ema": ema.eval(), "transformer_steps": steps, "loss_curve_per_100_steps": loss_curve(losses)}


def train_base(cfg: BaseTrainConfig, report=print) -> Path:
    from diffusers import HunyuanVideoPipeline
    from synmotion_hunyuan.text_encoding import PromptEncoder, PromptTemplate
    from synmotion_hunyuan.tiny import crop_start_for

    # Parts kept from a trained base are loaded first, so a wrong folder fails before any work. ``vae_from`` keeps
    # its VAE: transformer recipes are then compared on the same latents, 15 minutes sooner. ``init_from`` keeps
    # every part and trains its transformer further. Either way the latents are renormalised on this training
    # set below, as a fresh VAE's are (for the set it was trained on, that is the identity).
    if cfg.init_from and cfg.vae_from and cfg.vae_from != cfg.init_from:
        raise UsageError("a continued base keeps its own VAE", hint="drop --vae-from, or train from scratch")
    if cfg.fps < arch.FPS or cfg.fps % arch.FPS:
        # 2 s at an even rate is 4k + 1 frames, as the causal VAE needs; a multiple of the judges' 8 fps lets them
        # judge every (fps / 8)th frame, exactly the moments a clip at 8 fps shows
        raise UsageError(f"--fps {cfg.fps}: the frame rate is a multiple of {arch.FPS:g}", hint="e.g. --fps 16")
    kept_parts, earlier, kept_fps = {}, None, None
    if cfg.vae_from or cfg.init_from:
        from diffusers import AutoencoderKLHunyuanVideo
        from synmotion_hunyuan import bases

        kept = bases.resolve(cfg.init_from or cfg.vae_from)   # "toy" or a folder; its errors say what is wrong
        # The kept base's own training record travels into this one's, so a base trained in sittings (or on
        # another's VAE) tells its whole history in synmotion.json.
        kept_config = bases.read_synmotion_config(kept.path)
        earlier = kept_config.get("training")
        kept_fps = arch.fps_of(kept_config)
        if cfg.init_from and kept_fps != cfg.fps:
            # A retime. The VAE compresses each frame pair alike at any rate (docs/toy-base.md, "What the VAE keeps
            # of fast motions"), so only the transformer has to learn the new number of latent frames a second,
            # and it starts from all it knows of subjects, looks and motions.
            report(f"retiming {kept.id} from {kept_fps} to {cfg.fps} fps: its VAE is kept as it is, its transformer "
                   f"learns {arch.frames_at(cfg.fps)}-frame clips")
        if cfg.init_from:
            # Every part, frozen text encoders included: the transformer has learnt to read their states.
            kept_parts = dict(HunyuanVideoPipeline.from_pretrained(kept.path).components)
        else:
            kept_parts = {"vae": AutoencoderKLHunyuanVideo.from_pretrained(kept.path / "vae")}
    if cfg.decoder_minutes is None:   # a kept VAE stays exactly as it is unless a decoder phase is asked for
        cfg = replace(cfg, decoder_minutes=0.0 if kept_parts else 10.0)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = training_device(cfg.device)
    report(f"training on {device.type}")
    timings = {}
    t = time.perf_counter()
    parts = {**arch.build_components(cfg.seed), **kept_parts}   # built anyway, so seeding is the same either way
    data = items(cfg.clips, cfg.seed)
    clips, masks = render_with_masks(data, workers=cfg.threads, fps=cfg.fps)
    timings["render_s"] = round(time.perf_counter() - t, 1)
    report(f"rendered {len(clips)} clips in {timings['render_s']}s")

    t = time.perf_counter()
    vae = parts["vae"].to(device)
    vae_info = ({"vae_from": kept.id, "vae_steps": 0} if "vae" in kept_parts
                else train_vae(vae, clips, masks, cfg, report))
    subject = latent_subject_masks(masks, vae.config.temporal_compression_ratio, vae.config.spatial_compression_ratio)
    latents = normalize_latent_channels(vae, encode_latents(vae, clips))
    timings["vae_s"] = round(time.perf_counter() - t, 1)
    if cfg.decoder_minutes > 0:
        t = time.perf_counter()
        vae_info.update(train_decoder(vae, latents, clips, masks, cfg, report))
        timings["decoder_s"] = round(time.perf_counter() - t, 1)
    del masks
    vae_info.update(vae_errors(vae, cfg.seed, fps=cfg.fps))   # of the VAE as saved
    report(f"vae: {vae_info}")

    template = PromptTemplate(arch.TEMPLATE, crop_start_for(parts["tokenizer"], arch.TEMPLATE), arch.MAX_SEQUENCE_LENGTH)
    encoder = PromptEncoder(parts["tokenizer"], parts["text_encoder"], parts["tokenizer_2"], parts["text_encoder_2"],
                            template)
    prompts = sorted({i.prompt for i in data}) + [""]
    encoded = [encoder.encode(p) for p in prompts]
    embeds = torch.cat([e.embeds for e in encoded]).to(device)
    masks = torch.cat([e.mask for e in encoded]).to(device)
    pooled = torch.cat([e.pooled for e in encoded]).to(device)
    lookup = {p: i for i, p in enumerate(prompts)}
    prompt_idx = torch.tensor([lookup[i.prompt] for i in data])

    t = time.perf_counter()
    tr = train_transformer(parts["transformer"].to(device), latents, subject.to(device), embeds, masks, pooled,
                           prompt_idx, lookup[""], cfg, report)
    timings["transformer_s"] = round(time.perf_counter() - t, 1)

    out = Path(cfg.out)
    parts["transformer"] = tr.pop("ema").cpu()
    parts["vae"] = vae.cpu()
    arch.save_base(HunyuanVideoPipeline(**parts), out)
    info = {
        "prompt_template": arch.TEMPLATE, "crop_start": template.crop_start,
        "max_sequence_length": arch.MAX_SEQUENCE_LENGTH,
        "defaults": defaults_at(cfg.fps),
        "training": {"config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "log")},
                     "device": device.type,
                     "bf16": cfg.mixed_precision and bf16_supported(device.type),   # what actually ran
                     "timings": timings, **vae_info, "transformer_from": kept.id if cfg.init_from else None,
                     "transformer_from_fps": kept_fps if cfg.init_from else None,
                     **tr, "clips": len(clips), "clip_frames": int(clips.shape[1]), "prompts": len(prompts) - 1,
                     "earlier_training": earlier},
    }
    (out / "synmotion.json").write_text(json.dumps(info, indent=1) + "\n")
    report(f"saved the toy base to {out}")
    return out


# What `learn` and `gen` use on the toy base unless told otherwise. The strategy is joint training, chosen by
# the full toy MotionBench (docs/fidelity.md): on this base the subject-prior steps cost judged motion at every
# alpha and bought no subject, for text-to-video and image-to-video alike. `-O preset=full` is the paper's.
# Generation uses motion-transfer guidance: on the bench it raised both judged motion and subject
# (36 % / 32 % against 29 % / 24 % at 3); the image-to-video base leaves it off (i2v.i2v_defaults). Its term
# keeps none of its static part (transfer_static 0), which leaves the clips' look behind, so it runs at 4 from
# the first step (docs/fidelity.md, "The static part of the transfer"). Packs learn 600 steps at 1e-3: under
# that guidance they carried 12.1 points more judged motion than 300 at 2e-3 for 5.1 of subject, over three
# learn seeds (docs/fidelity.md, "Longer, gentler learning"); the image-to-video base keeps 300 at 2e-3. Packs
# keep their last step's weights: averaged ones (-O ema) were no measured gain (docs/fidelity.md, "Averaged
# pack weights").
DEFAULTS = {
    "learn": {"height": arch.HEIGHT, "width": arch.WIDTH, "frames": arch.FRAMES, "fps": arch.FPS, "steps": 600,
              "lr": 1e-3, "rank": 8, "strategy": "joint",
              "spv_count": 24, "spv_steps": 20, "spv_guidance": 1.0, "spv_true_cfg_scale": 4.0,
              "preview_true_cfg_scale": 4.0, "checkpoint_every": 100, "preview_steps": 20},
    "gen": {"height": arch.HEIGHT, "width": arch.WIDTH, "frames": arch.FRAMES, "fps": arch.FPS, "steps": 20,
            "guidance": 1.0, "true_cfg_scale": 4.0, "transfer": 4.0, "transfer_static": 0.0},
}


def defaults_at(fps: int) -> dict:
    """``DEFAULTS`` for a base trained on clips at ``fps``: packs learn, and videos are made, at its frame rate."""
    clip = {"frames": arch.frames_at(fps), "fps": float(fps)}
    return {use: {**options, **clip} for use, options in DEFAULTS.items()}
