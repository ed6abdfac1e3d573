"""The embedding-exclusive trainer: SynMotion's learning loop on HunyuanVideo's flow-matching objective.

Per step, with probability ``alpha`` a user clip is drawn (its prompt "a person <motion>"; every trainable
part updates) or else a subject-prior video (SPV; its own prompt "a cat runs"; the motion path is a
stop-gradient and only the subject path — plus the refiner if ``spv_updates`` says so — updates). With
``strategy="joint"`` every step is a user clip (the paper's "without the training strategy" ablation).

On an image-to-video base (the I2V variant) each clip is conditioned on its own first frame: its prompt is
encoded with that image by the MLLM, the image tokens go in front of the dual embeddings (context for R,
never changed), and the image latent joins the noisy latents as the pipeline does (``image_condition``).

Everything heavy is computed once: clip latents (VAE), SPV latents (frozen base) and all prompt encodings;
the text encoders are then freed before the loop. All randomness of the loop comes from one seeded
generator whose state is checkpointed, so ``--resume`` reproduces an uninterrupted run exactly.
"""

from __future__ import annotations

import contextlib
import gc
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synmotion_cli.errors import Interrupted, UsageError
from synmotion_cli.paths import cache_dir
from synmotion_cli.prompts import clips_prompt, inflections, parse_roles
from synmotion_cli.reporting import Reporter

from . import checkpoint
from .adapters import AdapterConfig, add_motion_adapter, save_lora
from .embedding import DualEmbedding
from .image_condition import model_input
from .latents import clip_latents
from .losses import weighted_mse
from .spv import prompts_for, synthesize, user_spv_clips
from .text_encoding import PromptEncoder

PREVIEW_SUBJECTS = ("a panda", "a cat")   # previews show the motion on a subject the clips never had


@dataclass
class Example:
    latents: torch.Tensor     # (1, C, f, h, w) scaled x0
    prompt: object            # EncodedPrompt
    spv: bool


def adapter_config(s) -> AdapterConfig:
    """The LoRA the settings ask for (``projections`` is a string of q, k, v in any order)."""
    return AdapterConfig(rank=s.rank, streams=s.streams, projections=tuple(p for p in "qkv" if p in s.projections))


def flow_matching_sigma(u: torch.Tensor, shift: float) -> torch.Tensor:
    """HunyuanVideo's shifted time: sigma = shift*u / (1 + (shift-1)*u), u ~ U(0, 1)."""
    return shift * u / (1 + (shift - 1) * u)


def motion_map(x0: torch.Tensor) -> torch.Tensor:
    """How much each latent pixel of clip ``x0`` (B, C, T, H, W) changes over its frames, 0 to 1 per clip,
    shaped (B, 1, 1, H, W): the spread over the latent frames, averaged over the channels, over its maximum.
    A still background scores near 0 and the limbs that move near 1; a clip of one latent frame scores 0."""
    if x0.shape[2] < 2:
        return x0.new_zeros(x0.shape[0], 1, 1, *x0.shape[3:])
    spread = x0.float().std(dim=2).mean(dim=1, keepdim=True).unsqueeze(2)
    return spread / spread.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)


def flow_matching_loss(transformer, x0, embeds, mask, pooled, generator, *, shift, guidance, autocast,
                       motion_weight: float = 0.0):
    """MSE between the predicted and the true velocity (noise - x0) at a random shifted time.

    ``motion_weight`` K weighs each latent pixel 1 + K * ``motion_map(x0)``, normalised so that the loss keeps
    the scale of a plain MSE: what a clip moves counts up to K + 1 times what stays still in it."""
    device = x0.device
    noise = torch.randn(x0.shape, generator=generator).to(device)
    sigma = flow_matching_sigma(torch.rand(1, generator=generator), shift).to(device)
    x_t = (1 - sigma) * x0 + sigma * noise
    kwargs = {}
    if transformer.config.guidance_embeds:
        kwargs["guidance"] = torch.full((1,), guidance * 1000.0, device=device)
    dtype = transformer.dtype
    hidden, scored = model_input(transformer, x_t, x0)   # I2V: the image condition joins the noisy latents
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        pred = transformer(hidden_states=hidden.to(dtype), timestep=(sigma * 1000).to(dtype),
                           encoder_hidden_states=embeds.to(dtype), encoder_attention_mask=mask,
                           pooled_projections=pooled.to(device, dtype), return_dict=False, **kwargs)[0]
    where = motion_map(x0) if motion_weight > 0 else None
    return weighted_mse(pred[:, :, scored], (noise - x0)[:, :, scored], where, motion_weight)


class _StopFlag:
    """Turns the first Ctrl-C into a request honoured at the next step boundary (a second one aborts)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C arrives as KeyboardInterrupt instead
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class Trainer:
    """Prepares data once, then runs the loop. ``run`` returns the pack files and manifest fields."""

    def __init__(self, pipe, base, runtime, settings, request, reporter, synmotion_config: dict,
                 spv_images: dict | None = None, spv_images_from: str = ""):
        self.pipe, self.base, self.runtime, self.s = pipe, base, runtime, settings
        self.i2v = hasattr(pipe, "image_processor")
        # I2V: the condition image of each synthesized SPV prompt, and the base that drew them
        self.spv_images, self.spv_images_from = spv_images, spv_images_from
        self.request, self.reporter = request, reporter
        self.shift = settings.time_shift or float(pipe.scheduler.config.get("shift", 7.0))
        self.clips_prompt = clips_prompt(request.motion, request.trigger_words, request.subject)
        self.motion_form, self.triggers = self.clips_prompt.motion_form, self.clips_prompt.triggers
        self.user_prompt = self.clips_prompt.text   # every clip's prompt: "a person claps"
        self.timings: dict[str, float] = {}
        self.last_preview: Path | None = None
        self.template_info = synmotion_config

    # ---- data, computed once -------------------------------------------------------------------------
    def prepare(self) -> None:
        s, pipe, rt = self.s, self.pipe, self.runtime
        torch.manual_seed(self.request.seed)
        t0 = time.perf_counter()
        encoder = PromptEncoder.from_pipeline(pipe, self.base.path)
        clips = list(self.request.clips)
        # I2V: the condition of each clip is its first frame, at the training size.
        images = ([first_frame(c, s) for c in clips] if self.i2v else [None] * len(clips))
        user_roles = self.clips_prompt.roles
        # one encoding of the user prompt per clip on I2V (each with its own image), else one for all
        prompts = ([encoder.encode(user_roles, image=img) for img in images] if self.i2v
                   else [encoder.encode(user_roles)] * len(clips))
        self.preview_image = images[0]
        preview = next(p for p in PREVIEW_SUBJECTS if p != self.request.subject.lower())
        self.preview_prompt = encoder.encode(parse_roles(f"{preview} {self.motion_form}", self.triggers),
                                             image=images[0])
        self.negative = encoder.negative()
        parts = dict(motion_residue=s.motion_residue, subject_residue=s.subject_residue, refiner=s.refiner)
        self.embedding = (DualEmbedding.from_encoder(encoder, self.motion_form, seed=self.request.seed,
                                                     image=images[0], subject=self.request.subject, **parts)
                          if any(parts.values()) else None)
        cache = cache_dir() / "latents" / self.base.fingerprint
        shape = dict(fps=s.fps, height=s.height, width=s.width, frames=s.frames, base_fingerprint=self.base.fingerprint,
                     cache_dir=cache, device=rt.device, dtype=rt.dtype, reporter=self.reporter)
        user = clip_latents(pipe.vae, clips, **shape)
        self.user = [Example(x, p, False) for x, p in zip(user, prompts)]
        if s.mirror:  # each clip's mirror image too, conditioned (I2V) on its own mirrored first frame
            mirrored = ([encoder.encode(user_roles, image=np.ascontiguousarray(img[:, ::-1])) for img in images]
                        if self.i2v else prompts)
            latents = clip_latents(pipe.vae, clips, mirror=True, **shape)
            self.user += [Example(x, p, False) for x, p in zip(latents, mirrored)]
        self.timings["encode_s"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        self.spv: list[Example] = []
        self.spv_source = "none"
        if s.strategy == "exclusive" and s.alpha < 1.0:
            self.spv = self._prepare_spv(encoder, cache)
        self.timings["spv_s"] = round(time.perf_counter() - t1, 2)
        # The text encoders are frozen and every prompt is encoded: free them before the loop.
        pipe.text_encoder = pipe.text_encoder_2 = None
        del encoder
        gc.collect()
        if rt.device == "cuda" and not s.preview_every:  # the VAE is only needed again for previews
            pipe.vae.to("cpu")
            torch.cuda.empty_cache()

    def _prepare_spv(self, encoder, cache: Path) -> list[Example]:
        s, rt = self.s, self.runtime
        if self.request.spv_dir is not None:
            items = user_spv_clips(self.request.spv_dir)
            lat = clip_latents(self.pipe.vae, [c for c, _, _ in items], fps=s.fps, height=s.height, width=s.width,
                               frames=s.frames, base_fingerprint=self.base.fingerprint, cache_dir=cache,
                               device=rt.device, dtype=rt.dtype, reporter=self.reporter)
            self.spv_source = f"user folder ({len(items)} clips)"
            return [Example(x, encoder.encode(parse_roles(p, inflections(a) + [a]),
                                              image=first_frame(c, s) if self.i2v else None), True)
                    for x, (c, p, a) in zip(lat, items)]
        prompts = prompts_for(s)
        images = self.spv_images if self.i2v else None
        if self.i2v and images is None:
            raise UsageError("image-to-video subject-prior videos need condition images from a text-to-video base",
                             hint="pass --spv DIR with your own clips, or -O strategy=joint")
        encoded = {p: encoder.encode(parse_roles(p, [a]), image=None if images is None else images[p])
                   for p, a in prompts}

        def encode(prompt, action):
            e = encoded[prompt]
            return *e.joined(), e.pooled

        # I2V: the images come from another base, so the key names both.
        key = self.base.fingerprint + (f"+{self.spv_images_from}" if self.i2v else "")
        spv_cache = cache_dir() / "spv" / key / f"{s.height}x{s.width}x{s.frames}"
        items = synthesize(self.pipe, prompts, height=s.height, width=s.width, frames=s.frames, steps=s.spv_steps,
                           guidance=s.spv_guidance, seed=0, base_fingerprint=key,
                           cache_dir=spv_cache, encode_prompt=encode, reporter=self.reporter,
                           negative=self.negative, true_cfg_scale=s.spv_true_cfg_scale,
                           images=images)
        self.spv_source = f"synthesized by the base ({len(items)} videos, cached in {spv_cache})"
        return [Example(item.latents, encoded[item.prompt], True) for item in items]

    # ---- the loop ----------------------------------------------------------------------------------
    def _trainables(self):
        s = self.s
        transformer = self.pipe.transformer
        groups = {"motion": [], "subject": [], "refiner": [], "adapter": []}
        named: dict[str, torch.nn.Parameter] = {}
        if self.embedding is not None:
            self.embedding.to(self.runtime.device)
            for role, params in self.embedding.parameter_groups().items():
                groups[role] += params
            named.update({f"embedding.{n}": p for n, p in self.embedding.named_parameters()})
        if s.adapter:
            torch.manual_seed(self.request.seed)  # LoRA A init draws from the global generator
            groups["adapter"] = add_motion_adapter(transformer, adapter_config(s))
            named.update({f"transformer.{n}": p for n, p in transformer.named_parameters() if p.requires_grad})
        else:
            transformer.requires_grad_(False)
        return groups, named

    def _accelerator(self):
        """accelerate places the modules and, under ``accelerate launch``, runs data-parallel over GPUs.
        Unused-parameter detection is on because SPV steps leave the motion path and the adapter without
        gradients."""
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        return Accelerator(mixed_precision="bf16" if self.runtime.autocast else "no", cpu=self.runtime.device == "cpu",
                           kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])

    def run(self) -> dict:
        s, rt, request = self.s, self.runtime, self.request
        accelerator = self._accelerator()
        main = accelerator.is_main_process
        reporter = self.reporter if main else Reporter()
        transformer = self.pipe.transformer
        groups, named = self._trainables()
        params = [p for g in groups.values() for p in g]
        if not params:
            raise UsageError("nothing to train: every part of the method is switched off")
        for p in params:  # trainable weights stay float32 even when the frozen base computes in bf16
            p.data = p.data.float()
        if s.gradient_checkpointing == "on" or (s.gradient_checkpointing == "auto" and rt.device == "cuda"):
            transformer.enable_gradient_checkpointing()
        spv_frozen = {id(p) for p in groups["motion"] + groups["adapter"]}
        if s.spv_updates == "subject":
            spv_frozen |= {id(p) for p in groups["refiner"]}
        optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        average = _weight_average(named, s.ema)
        # the average is checkpointed with the weights, so a resumed run averages exactly as an uninterrupted one
        stored = {**named, **({f"average.{n}": t for n, t in zip(named, average.shadow_params)} if average else {})}
        warmup = max(1, min(100, s.steps // 10))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        # Every random draw of the loop comes from this generator (checkpointed); each process gets its own.
        generator = torch.Generator().manual_seed(request.seed + accelerator.process_index)
        start, losses = 0, []
        if request.resume and checkpoint.exists(request.run_dir):
            state = checkpoint.load(request.run_dir, trainables=stored, optimizer=optimizer, scheduler=scheduler,
                                    generator=generator)
            if state.get("prompt", self.user_prompt) != self.user_prompt:
                raise UsageError(f"the interrupted run learnt from \"{state['prompt']}\", not \"{self.user_prompt}\"",
                                 hint="resume with the same --subject and --trigger, or start over without --resume")
            start, losses = state["step"], state.get("losses", [])
            if average:  # its step count decides the decay, and its first step copies the weights
                average.optimization_step = start
            reporter.message(f"resuming {request.motion} at step {start}/{s.steps}")
        modules = [transformer] + ([self.embedding] if self.embedding is not None else [])
        prepared = accelerator.prepare(*modules, optimizer)
        model, optimizer = prepared[0], prepared[-1]
        embedding = prepared[1] if self.embedding is not None else None
        device = accelerator.device
        user = [(e.latents.to(device), e) for e in self.user]
        empty = tuple(t.to(device) for t in self.negative)   # the prompt of a caption-dropped example
        spv = [(e.latents.to(device), e) for e in self.spv]
        model.train()
        t0 = time.perf_counter()
        done, in_step, step_state = start, False, None

        def save(step):
            if main:
                return checkpoint.save(request.run_dir, step=step, trainables=stored, optimizer=optimizer,
                                       scheduler=scheduler, generator=generator,
                                       extra={"losses": losses, "settings": s.to_dict(), "prompt": self.user_prompt})
            return request.run_dir / "checkpoint"

        with _StopFlag() as stop:
            reporter.stage("train", total=s.steps, done=start)  # after the handler: Ctrl-C from here is saved
            try:
                for step in range(start, s.steps):
                    step_state, in_step = generator.get_state(), True
                    use_spv = bool(spv) and bool(torch.rand(1, generator=generator).item() >= s.alpha)
                    pool = spv if use_spv else user
                    step_losses = []
                    # Accumulated, not stacked: SPV prompts have their own role spans and I2V clips their own
                    # image tokens, which one DualEmbedding call cannot batch; memory stays that of one clip.
                    for _ in range(s.batch):
                        x0, ex = pool[int(torch.randint(len(pool), (1,), generator=generator))]
                        p = ex.prompt.to(device)
                        # drawn only when asked for, so runs without it keep their random stream
                        dropped = (not use_spv and s.caption_dropout > 0
                                   and torch.rand(1, generator=generator).item() < s.caption_dropout)
                        if dropped:  # the pipelines' negative, so the adapter learns the clip in that pass too
                            embeds, mask, pooled = empty
                        elif embedding is not None:
                            embeds, mask = embedding(p.embeds, p.mask, p.spans, prefix=p.image_embeds,
                                                     motion_stop_grad=use_spv)
                            pooled = p.pooled
                        else:
                            (embeds, mask), pooled = p.joined(), p.pooled
                        loss = flow_matching_loss(model, x0, embeds, mask, pooled, generator, shift=self.shift,
                                                  guidance=s.guidance, autocast=rt.autocast,
                                                  motion_weight=s.motion_weight)
                        if not torch.isfinite(loss):
                            raise UsageError(f"the loss became {loss.item()} at step {step + 1}",
                                             hint="lower the learning rate (-O lr=...) and start again")
                        if loss.requires_grad:
                            accelerator.backward(loss / s.batch)
                        step_losses.append(float(loss.item()))
                    # With only a motion path switched on, an SPV step has nothing left to train.
                    if loss.requires_grad:
                        if use_spv:  # the embedding-exclusive rule: only the subject path learns from SPV
                            for q in params:
                                if id(q) in spv_frozen:
                                    q.grad = None
                        if s.max_grad_norm > 0:
                            accelerator.clip_grad_norm_([q for q in params if q.grad is not None], s.max_grad_norm)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                        if average:
                            average.step(named.values())
                    scheduler.step()
                    losses.append(round(sum(step_losses) / len(step_losses), 6))
                    done, in_step = step + 1, False
                    reporter.advance(1, loss=_ema(losses), spv=float(use_spv))
                    if s.checkpoint_every and done % s.checkpoint_every == 0 and done < s.steps:
                        reporter.artifact("checkpoint", str(save(done)))
                    if s.preview_every and done % s.preview_every == 0 and main:
                        with _averaged(average, named):  # what the pack would be at this step
                            self.last_preview = self._preview(done)
                        reporter.artifact("preview", str(self.last_preview))
                        model.train()
                    if stop.requested:
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                if in_step:  # a step cut short changed no weight; rewind its random draws too
                    generator.set_state(step_state)
                path = save(done)
                reporter.close()
                raise Interrupted(f"interrupted at step {done}/{s.steps}; checkpoint saved in {path}",
                                  hint="continue with the same command plus --resume") from None
        reporter.close()
        train_s = time.perf_counter() - t0
        accelerator.wait_for_everyone()
        if average:
            average.copy_to(named.values())
        self.pipe.transformer = accelerator.unwrap_model(model)
        if embedding is not None:
            self.embedding = accelerator.unwrap_model(embedding)
        self.pipe.transformer.eval()
        self.timings.update(train_s=round(train_s, 2),
                            steps_per_s=round((s.steps - start) / train_s, 3) if train_s > 0 else None)
        return self._write(losses) if main else {}

    def _preview(self, step: int) -> Path:
        """A short sample of the motion on a subject the clips never showed, with the weights of ``step``."""
        from synmotion_cli import media

        from .sampling import sample

        s, p = self.s, self.preview_prompt
        transformer = self.pipe.transformer
        transformer.eval()
        with torch.no_grad():
            p = p.to(transformer.device)
            embeds, mask = (self.embedding(p.embeds, p.mask, p.spans, prefix=p.image_embeds)
                            if self.embedding is not None else p.joined())
        frames = sample(self.pipe, embeds, mask, p.pooled, height=s.height, width=s.width, frames=s.frames,
                        steps=s.preview_steps, guidance=s.preview_guidance, seed=self.request.seed,
                        negative=self.negative, true_cfg_scale=s.preview_true_cfg_scale,
                        image=self.preview_image)
        path = (self.request.preview_dir or self.request.run_dir / "previews") / f"step-{step:06d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        return media.write_mp4(frames, path, fps=s.fps, metadata={"synmotion_prompt": p.text,
                                                                  "synmotion_step": str(step)})

    def _write(self, losses) -> dict:
        s, out = self.s, self.request.work_dir
        v = "i2v" if self.i2v else "t2v"   # the pack keeps each variant's files under its own folder
        files, variant = {}, {"height": s.height, "width": s.width, "frames": s.frames, "fps": s.fps,
                              "prompt": self.user_prompt}
        if self.embedding is not None:
            files[f"{v}/embedding.safetensors"] = self.embedding.cpu().save(out / "embedding.safetensors")
            variant["embedding"] = f"{v}/embedding.safetensors"
            variant["embedding_config"] = self.embedding.config.to_dict()
        if s.adapter:
            files[f"{v}/lora.safetensors"] = save_lora(self.pipe.transformer, out / "lora.safetensors")
            variant["lora"] = f"{v}/lora.safetensors"
            variant["adapter_config"] = adapter_config(s).to_dict()
        if self.last_preview is not None:
            files[f"{v}/preview.mp4"] = self.last_preview
            variant["preview"] = f"{v}/preview.mp4"
        every = max(1, len(losses) // 50)
        return {
            "files": files,
            "variant": variant,
            "metrics": {"final_loss": _ema(losses) if losses else None, "steps": len(losses),
                        "loss_curve": [round(_mean(losses[i:i + every]), 5) for i in range(0, len(losses), every)]},
            "data": {"clips": len(self.request.clips), "clip_files": [Path(c).name for c in self.request.clips],
                     **({"mirrored": True} if s.mirror else {}),
                     "spv_videos": len(self.spv), "spv_source": self.spv_source,
                     **({"condition": "first frame of each clip"} if self.i2v else {}),
                     "user_prompt": self.user_prompt},
            "timings": self.timings,
        }


def _weight_average(named: dict, decay: float):
    """An exponential moving average of the trained weights at a constant ``decay`` (diffusers' ``EMAModel``
    with ``min_decay=decay``, which turns off its warm-up ramp; its first step copies the weights), or None for
    ``decay`` 0.

    Why: a pack is learnt from a few clips in a few hundred steps at a high rate, so its last step's weights
    carry that step's noise, and packs learnt with another seed differ widely. The toy base's own weights are
    averaged the same way (docs/fidelity.md, "Averaged pack weights", has what it did to the toy base's packs)."""
    if not decay:
        return None
    from diffusers.training_utils import EMAModel

    # foreach: one fused update over all the tensors a step (a full-size base's LoRA is hundreds of them)
    return EMAModel(list(named.values()), decay=decay, min_decay=decay, foreach=True)


@contextlib.contextmanager
def _averaged(average, named: dict):
    """The averaged weights in place of the trained ones while inside (nothing changes without an average)."""
    if average is None:
        yield
        return
    params = list(named.values())
    average.store(params)
    average.copy_to(params)
    try:
        yield
    finally:
        average.restore(params)


def first_frame(clip, settings):
    """A clip's first frame at the training size: uint8 (height, width, 3), the I2V condition."""
    from synmotion_cli import media

    return media.decode(clip, fps=settings.fps, height=settings.height, width=settings.width, frames=1)[0]


def _mean(xs) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _ema(losses, beta: float = 0.9) -> float:
    value = losses[0]
    for x in losses[1:]:
        value = beta * value + (1 - beta) * x
    return value
