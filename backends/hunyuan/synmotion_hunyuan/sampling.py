"""Generation: the plain base (the baseline) or the base with motion packs applied.

A pack contributes two things: its LoRA (weighted; several packs' LoRAs combine) and its dual-embedding
module, applied to the prompt's motion and subject tokens. One prompt has one subject-motion pair, so the
embedding of the first pack whose motion appears in the prompt is used; other packs add their LoRA only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from synmotion_cli.errors import UsageError
from synmotion_cli.prompts import compose, parse_roles

from .adapters import load_lora
from .embedding import DualEmbedding
from .image_condition import denoised_frames, pipeline_frames
from .settings import CFG_NEGATIVES
from .text_encoding import PromptEncoder


def weighed(packs, default: float) -> tuple:
    """``packs`` with every weight left open (a pack named without one) set to the base's ``default``."""
    return tuple(p if p.weight is not None else dataclasses.replace(p, weight=default) for p in packs)


def encode_with_packs(encoder: PromptEncoder, prompt: str, style, background, packs, reporter, variant="t2v",
                      image=None, apply_embedding: bool = True):
    """Prompt embeddings with a pack's embedding module applied; returns (embeds, mask, pooled, text, used).

    The first pack whose motion is in the prompt lends its embedding; every other pack with an embedding is
    told (adapter only). If packs carry embeddings but none finds its motion, the prompt is malformed.
    With ``image`` (I2V) the image tokens go first, as context for the refiner, unchanged.
    ``apply_embedding=False`` chooses (and checks) the same way but returns the prompt as the plain base
    encodes it: motion-transfer guidance uses the pack on its own prompt instead (``transfer_reference``).
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
    if not apply_embedding:
        encoded = encoder.encode(roles.text, image=image)
        return *encoded.joined(), encoded.pooled, roles.text, pack.name
    encoded = encoder.encode(roles, image=image)
    module = DualEmbedding.load(pack.files[v["embedding"]])
    module.to(encoded.embeds.device)
    with torch.no_grad():
        embeds, mask = module(encoded.embeds.float(), encoded.mask, encoded.spans, prefix=encoded.image_embeds,
                              scale=pack.weight)
    return embeds, mask, encoded.pooled, roles.text, pack.name


@dataclass(frozen=True)
class Transfer:
    """Motion-transfer guidance (``gen -O transfer=W``): every denoising step adds
    ``weight * (the pack's prediction on its own prompt - the plain base's prediction on that prompt)`` to the
    plain base's prediction for the asked prompt. ``pack`` and ``base`` are the pack's prompt ("a person
    claps") encoded with and without the pack's embedding, as (embeds, mask, pooled)."""
    prompt: str
    pack: tuple
    base: tuple
    weight: float


def _text_kwargs(embeds, mask, pooled, device=None, dtype=None) -> dict:
    """The transformer's keyword arguments for one encoded prompt."""
    return dict(encoder_hidden_states=embeds.to(device, dtype), encoder_attention_mask=mask.to(device),
                pooled_projections=pooled.to(device, dtype))


def transfer_reference(encoder: PromptEncoder, packs, used, reporter, weight: float, variant="t2v",
                       image=None) -> Transfer:
    """The reference of motion-transfer guidance: the prompt the pack was learnt from (its clips' prompt,
    "a person claps"), which the pack fits best, encoded through the pack's embedding and plainly. The pack
    is the one that lent the prompt its embedding (``used``), else the first; with ``image`` the reference
    sees the same image as the video."""
    pack = next((p for p in packs if p.name == used), packs[0])
    prompt = pack.manifest["variants"][variant].get("prompt") or pack.manifest["motion"]["prompt"]
    embeds, mask, pooled, _, _ = encode_with_packs(encoder, prompt, None, None, (pack,), reporter, variant, image)
    plain = encoder.encode(prompt, image=image)
    return Transfer(prompt=prompt, pack=(embeds, mask, pooled), base=(*plain.joined(), plain.pooled), weight=weight)


def encode_for_sampling(encoder: PromptEncoder, prompt: str, style, background, packs, reporter, *, transfer: float,
                        variant="t2v", image=None):
    """What ``sample`` takes for a prompt with packs: (embeds, mask, pooled, text, used, reference). With
    ``transfer`` > 0 and packs, the prompt is encoded plainly and ``reference`` is motion-transfer guidance's
    (``transfer_reference``); otherwise the pack's embedding is applied and ``reference`` is None."""
    transfer = transfer if packs else 0.0
    embeds, mask, pooled, text, used = encode_with_packs(encoder, prompt, style, background, packs, reporter, variant,
                                                         image, apply_embedding=not transfer)
    reference = transfer_reference(encoder, packs, used, reporter, transfer, variant, image) if transfer else None
    return embeds, mask, pooled, text, used, reference


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


def remove_loras(pipe) -> None:
    """Undo ``apply_loras``, even one that failed halfway: the transformer's layers become the plain base's."""
    if has_adapters(pipe.transformer):
        pipe.transformer.unload_lora()


def has_adapters(transformer) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in transformer.modules())


# The transformer's keyword arguments that hold one row per video in the batch: the latents, the timestep and
# the guidance repeat for every text run in the same call; the text arguments are stacked.
_SHARED = ("hidden_states", "timestep", "guidance")
_TEXT = ("encoder_hidden_states", "encoder_attention_mask", "pooled_projections")


def _stacked(kwargs: dict, texts: list[dict]) -> dict | None:
    """``kwargs`` of one transformer call widened to run its own text and then each of ``texts`` as one batch;
    None where a text's shapes differ from the call's (then they run one by one)."""
    if any(t[k].shape[1:] != kwargs[k].shape[1:] for t in texts for k in _TEXT):
        return None
    n = 1 + len(texts)
    wide = {k: v.repeat(n, *([1] * (v.dim() - 1))) for k, v in kwargs.items()
            if k in _SHARED and isinstance(v, torch.Tensor)}
    wide.update({k: torch.cat([kwargs[k], *(t[k].to(kwargs[k].dtype) for t in texts)]) for k in _TEXT})
    return {**kwargs, **wide}


@contextlib.contextmanager
def _extra_passes(transformer, combine, adapters_in_call: bool, batched=lambda: []):
    """While active, each forward call of ``transformer`` that the pipeline makes returns
    ``combine(prediction, predictions, run)`` in place of its prediction, where ``predictions`` are the same
    call's for each text keyword arguments in ``batched()`` (asked afresh at every call), run in the same
    forward pass as a larger batch, and ``run(text, adapters)`` repeats the call (same latents and timestep)
    with other text keyword arguments, the packs' adapters on or off. The pipeline's own call and the batched
    texts run with the adapters on or off as ``adapters_in_call`` says.

    Why a batch: on a CPU one pass of batch 3 costs about three quarters of three passes of batch 1 on the
    toy base (docs/benchmarks.md), and the predictions agree to float rounding."""
    adapters = has_adapters(transformer)
    busy = False
    call: dict = {}   # the pipeline's call in progress: its own keyword arguments, the texts batched with it

    def switch(module, on: bool) -> None:
        if adapters:
            module.enable_lora() if on else module.disable_lora()

    def widen(module, args, kwargs):
        if busy:  # one of the repeated calls
            return None
        texts = batched()
        wide = _stacked(kwargs, texts) if texts and not args else None
        call.update(kwargs=kwargs, texts=texts, wide=wide is not None)
        return None if wide is None else (args, wide)

    def hook(module, args, kwargs, output):
        nonlocal busy
        if busy:
            return None
        busy = True
        kwargs, texts = call["kwargs"], call["texts"]

        def run(text: dict, with_adapters: bool):
            switch(module, with_adapters)
            try:
                return module(*args, **{**kwargs, **text})[0]
            finally:
                switch(module, adapters_in_call)

        try:
            if call["wide"]:
                prediction, *others = output[0].chunk(1 + len(texts))
            else:  # the texts' shapes differ from the call's: one by one
                prediction, others = output[0], [run(text, adapters_in_call) for text in texts]
            prediction = combine(prediction, others, run)
        finally:
            busy = False
        # HunyuanVideo's pipelines call the transformer with return_dict=False: a tuple, prediction first
        return (prediction, *output[1:])

    switch(transformer, adapters_in_call)
    handles = (transformer.register_forward_pre_hook(widen, with_kwargs=True),
               transformer.register_forward_hook(hook, with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        switch(transformer, True)


def guidance_against_base(transformer, negative: dict, scale: float):
    """Classifier-free guidance whose negative pass is the plain base: while active, every forward call of
    ``transformer`` (made with the prompt, adapters on) runs a second time with the ``negative`` keyword
    arguments and every adapter switched off, and returns ``negative + scale * (positive - negative)``.

    Why: with the adapters in both passes (diffusers' usual true CFG) whatever a pack's LoRA does regardless
    of the prompt (most of it: it only ever saw one prompt) appears in both predictions and cancels out of
    the guidance term, so it reaches the video unamplified while the prompt is amplified ``scale`` times.
    Against the plain base, guidance amplifies what the pack adds as it does what the prompt adds: on the toy
    base a pack then reproduced its own clips 70 % of the time instead of 11 %, though on other subjects it
    trades subject for motion like a heavier pack weight (docs/fidelity.md, "Guidance against the base").
    The pipeline itself runs with ``true_cfg_scale=1`` meanwhile."""
    def combine(positive, _, run):
        unconditional = run(negative, False)
        return unconditional + scale * (positive - unconditional)

    return _extra_passes(transformer, combine, adapters_in_call=True)


def batched_guidance(transformer, negative: dict, scale: float):
    """Classifier-free guidance as diffusers' pipelines run it (``true_cfg_scale``; the adapters, if any, in
    both passes), the negative pass batched with the pipeline's own (``_extra_passes``). The pipeline itself
    runs with ``true_cfg_scale=1`` meanwhile."""
    def combine(positive, predictions, _):
        (unconditional,) = predictions
        return unconditional + scale * (positive - unconditional)

    return _extra_passes(transformer, combine, adapters_in_call=True, batched=lambda: [negative])


def without_static_part(delta: torch.Tensor, keep: float, frames: slice = slice(None)) -> torch.Tensor:
    """``delta`` (B, C, F, H, W) with only ``keep`` of its static part: its mean over the latent ``frames``
    (``image_condition.denoised_frames``: not an image-to-video base's clean image frame, whose prediction the
    pipeline discards), at each latent pixel and channel."""
    if keep == 1.0:
        return delta
    static = delta[:, :, frames].mean(dim=2, keepdim=True)
    return delta - (1.0 - keep) * static


def transfer_guidance(transformer, pack: dict, base: dict, weight: float, negative: dict | None, scale: float,
                      first_step: int = 0, static: float = 1.0):
    """Motion-transfer guidance while active: the pipeline's forward calls (the asked prompt, run here on the
    plain base: every adapter is switched off) become ``u + scale * (c - u) + weight * (p - b)``, where ``c``
    is that call, ``u`` the ``negative`` prompt on the plain base (without ``negative``: ``c + weight * (p -
    b)``, for guidance-distilled bases), ``p`` the pack (adapters on) on its own prompt, given by the text
    keyword arguments ``pack``, and ``b`` the plain base on that prompt (``base``).

    Why: a pack learnt from clips of one subject carries that subject's look along with its motion, and
    applied to another subject's prompt it draws the clips' subject (docs/fidelity.md). On its own prompt the
    look is the base's own for that subject too, so ``p - b`` is mostly the motion, and the asked subject
    comes from the plain base's ``c``, which no adapter touches. Costs two more predictions a step, ``b``
    in the same batch as ``c`` and ``u`` (all on the plain base), and ``p`` in a pass of its own. The
    pipeline itself runs with ``true_cfg_scale=1`` meanwhile.

    The denoising steps before ``first_step`` (counted by the pipeline's calls, one a step) leave out the
    ``weight`` term and its two predictions (``b`` leaves the batch, ``p`` is not run): there the plain base lays out the video and draws the subject, and
    the pack's motion joins from ``first_step`` on. On the toy base, starting at step 3 of 20 kept the judged
    motion and drew the asked subject in 42 % of the videos instead of 32 % (docs/fidelity.md).

    ``static`` is the share kept of the term's static part, what it adds alike to every latent frame at a latent
    pixel (``without_static_part``; the mean over the frames the transformer denoises). A motion is what changes from frame to
    frame; what the pack adds to every frame alike is mostly the look of its clips' subject, which ``p - b``
    still carries where the pack's clips and the base's drawing of their subject differ. On the toy base
    ``static=0`` kept the asked subject in more videos at the same judged motion (docs/fidelity.md)."""
    calls, frames = 0, denoised_frames(transformer)

    def batched() -> list[dict]:
        # the passes on the plain base, batched with the pipeline's own (``_extra_passes``): u, then b from
        # ``first_step`` on (``calls`` counts the pipeline's calls made so far)
        return ([negative] if negative is not None else []) + ([base] if calls >= first_step else [])

    def combine(asked, predictions, run):
        nonlocal calls
        step, calls = calls, calls + 1
        if negative is not None:
            unconditional, *predictions = predictions
            asked = unconditional + scale * (asked - unconditional)
        if step < first_step:
            return asked
        (plain,) = predictions
        return asked + weight * without_static_part(run(pack, True) - plain, static, frames)

    return _extra_passes(transformer, combine, adapters_in_call=False, batched=batched)


def _step_callback(on_step):
    """A diffusers ``callback_on_step_end`` that reports the step and leaves the pipeline's tensors as they are."""
    def callback(pipe, step, timestep, tensors):
        on_step()
        return tensors

    return callback


def sample(pipe, embeds, mask, pooled, *, height, width, frames, steps, guidance, seed, negative=None,
           true_cfg_scale: float = 1.0, cfg_negative: str = CFG_NEGATIVES[0], output_type: str = "np", image=None,
           transfer: Transfer | None = None, transfer_start: float = 0.0, transfer_static: float = 1.0,
           on_step=None):
    """Run the pipeline from precomputed text embeddings; uint8 frames (F, H, W, 3), or latents.

    ``negative`` (embeds, mask, pooled) with ``true_cfg_scale`` > 1 adds classifier-free guidance; bases
    trained with prompt dropout (the toy base) need it, guidance-distilled ones (HunyuanVideo) do not.
    ``cfg_negative`` says what the negative pass runs when adapters are loaded: "pack" (with them, as
    diffusers does) or "base" (without them, ``guidance_against_base``).
    ``image`` (uint8 (height, width, 3), I2V pipelines only) is the first frame; ``frames`` frames come back.
    ``transfer`` (``transfer_reference``) samples with motion-transfer guidance (``transfer_guidance``), the
    prompt then being the plainly encoded asked prompt; ``cfg_negative`` does not apply. It leaves out the
    first ``transfer_start`` share of the steps and keeps ``transfer_static`` of its static part.
    ``on_step()`` is called after every denoising step (progress).
    """
    if cfg_negative not in CFG_NEGATIVES:
        raise ValueError(f"cfg_negative is one of {CFG_NEGATIVES}, not {cfg_negative!r}")
    device, dtype = pipe.transformer.device, pipe.transformer.dtype
    generator = torch.Generator("cpu").manual_seed(seed)
    extra = {}
    if image is not None:
        from PIL import Image

        extra["image"] = Image.fromarray(np.asarray(image, dtype=np.uint8))
        frames = pipeline_frames(pipe, frames)
    if on_step is not None:
        extra["callback_on_step_end"] = _step_callback(on_step)
    guided = contextlib.nullcontext()
    guiding = negative is not None and true_cfg_scale > 1
    negative_text = _text_kwargs(*negative, device, dtype) if guiding else None
    if transfer is not None:
        guided = transfer_guidance(pipe.transformer, _text_kwargs(*transfer.pack, device, dtype),
                                   _text_kwargs(*transfer.base, device, dtype), transfer.weight, negative_text,
                                   true_cfg_scale, first_step=round(transfer_start * steps), static=transfer_static)
    elif guiding and cfg_negative == "base" and has_adapters(pipe.transformer):
        guided = guidance_against_base(pipe.transformer, negative_text, true_cfg_scale)
    elif guiding:
        guided = batched_guidance(pipe.transformer, negative_text, true_cfg_scale)
    with torch.no_grad(), guided:
        out = pipe(prompt_embeds=embeds.to(device, dtype), prompt_attention_mask=mask.to(device),
                   pooled_prompt_embeds=pooled.to(device, dtype), height=height, width=width, num_frames=frames,
                   num_inference_steps=steps, guidance_scale=guidance, generator=generator,
                   output_type=output_type, **extra).frames
    if output_type == "latent":
        return out
    video = np.asarray(out[0], dtype=np.float32)
    return (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
