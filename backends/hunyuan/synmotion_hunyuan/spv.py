"""Subject-Prior Videos (SPV): common subjects doing common actions, made by the frozen base.

On SPV steps the trainer regularises the subject path toward broad subjects while the motion path is held
fixed (the paper's embedding-exclusive strategy). The set depends only on the base and the resolution, so
it is cached per base fingerprint, resolution and sampler settings and reused by every pack learned there.
Users may bring their own SPV clips instead: a folder of clips named by their prompt ("a cat runs.mp4").

Image-to-video SPV needs a condition image per prompt: the text-to-video base of the pair draws it (a
one-frame video of the prompt, cached per base), then the frozen image-to-video base animates it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from synmotion_cli.errors import MediaError
from synmotion_cli.media import find_clips
from synmotion_cli.prompts import third_person

SUBJECTS = ("a cat", "a zebra", "a dog", "a horse", "a panda", "a fox", "a rabbit", "a bear", "a lion",
            "a penguin", "a frog", "a crocodile")
ACTIONS = ("run", "walk", "jump", "sit down", "turn around", "stand still")


@dataclass(frozen=True)
class SPVItem:
    prompt: str
    action: str          # the action's base form; its inflections are the prompt's motion words
    latents: object      # torch tensor (1, C, f, h, w), scaled like clip latents


def default_prompts(count: int, seed: int, subjects=SUBJECTS, actions=ACTIONS) -> list[tuple[str, str]]:
    """``count`` distinct (prompt, action) pairs, drawn reproducibly from subjects x actions."""
    pairs = [(f"{s} {third_person(a.split()[0])}{a[len(a.split()[0]):]}", a) for s in subjects for a in actions]
    random.Random(seed).shuffle(pairs)
    return pairs[:count]


def prompts_for(settings) -> list[tuple[str, str]]:
    """The SPV prompts that learn settings (``spv_count``, ``spv_subjects``, ``spv_actions``) ask for."""
    subjects = [x.strip() for x in settings.spv_subjects.split(",") if x.strip()] or SUBJECTS
    actions = [x.strip() for x in settings.spv_actions.split(",") if x.strip()] or ACTIONS
    return default_prompts(settings.spv_count, seed=0, subjects=subjects, actions=actions)


def _cache_key(base_fingerprint, prompt, height, width, frames, steps, seed) -> str:
    return hashlib.sha256(json.dumps([base_fingerprint, prompt, height, width, frames, steps, seed]).encode()).hexdigest()[:24]


def synthesize(pipe, prompts, *, height, width, frames, steps, guidance, seed, base_fingerprint, cache_dir: Path,
               encode_prompt, reporter=None, negative=None, true_cfg_scale: float = 1.0,
               images: dict | None = None) -> list[SPVItem]:
    """Generate (or load from the cache) one latent video per prompt with the frozen base.

    ``encode_prompt(prompt, action)`` returns (embeds, mask, pooled) for the base: the same encoder the
    trainer uses, so the SPV is what the base makes of exactly these prompts. An image-to-video base also
    takes ``images`` (prompt -> uint8 RGB frame), and ``base_fingerprint`` should then name where they came from.
    """
    from .latents import cached_tensor

    cache_dir.mkdir(parents=True, exist_ok=True)
    items = []
    if reporter:
        reporter.stage("subject-prior videos", total=len(prompts))
    for i, (prompt, action) in enumerate(prompts):
        key = _cache_key(base_fingerprint, prompt, height, width, frames, [steps, guidance, true_cfg_scale], seed + i)

        def make(prompt=prompt, action=action, i=i):
            from .sampling import sample

            embeds, mask, pooled = encode_prompt(prompt, action)
            image = None if images is None else images[prompt]
            latents = sample(pipe, embeds, mask, pooled, height=height, width=width, frames=frames, steps=steps,
                             guidance=guidance, seed=seed + i, negative=negative, true_cfg_scale=true_cfg_scale,
                             output_type="latent", image=image)
            if image is not None:
                from .image_condition import clip_latents_from_sample
                from .latents import encode_frames

                condition = encode_frames(pipe.vae, image[None], pipe.vae.device, pipe.vae.dtype)
                latents = clip_latents_from_sample(pipe, latents, condition, frames)
            return latents.float().cpu()

        latents = cached_tensor(cache_dir / f"{key}.safetensors", "latents", make,
                                metadata={"prompt": prompt, "action": action})
        items.append(SPVItem(prompt, action, latents))
        if reporter:
            reporter.advance(1)
    if reporter:
        reporter.close()
    return items


def first_frames(load_t2v, prompts, *, height, width, steps, guidance, true_cfg_scale, seed, base_fingerprint,
                 cache_dir: Path, reporter=None) -> dict:
    """A condition image per SPV prompt for image-to-video learning: prompt -> uint8 (height, width, 3).

    Each is a one-frame video of the prompt by the text-to-video base, cached like SPV latents.
    ``load_t2v()`` returns (pipeline, PromptEncoder); it is called only when an image is not cached yet,
    so a warm cache never loads the text-to-video base.
    """
    import torch

    from .latents import cached_tensor
    from .sampling import sample

    cache_dir.mkdir(parents=True, exist_ok=True)
    images, loaded = {}, None
    if reporter:
        reporter.stage("subject-prior images", total=len(prompts))
    for i, (prompt, _) in enumerate(prompts):
        key = _cache_key(base_fingerprint, prompt, height, width, 1, [steps, guidance, true_cfg_scale], seed + i)

        def make(prompt=prompt, i=i):
            nonlocal loaded
            if loaded is None:  # the text-to-video base loads only for an image not cached yet
                pipe, encoder = load_t2v()
                loaded = pipe, encoder, encoder.negative()
            pipe, encoder, negative = loaded
            e = encoder.encode(prompt)
            return torch.from_numpy(sample(pipe, e.embeds, e.mask, e.pooled, height=height, width=width, frames=1,
                                           steps=steps, guidance=guidance, seed=seed + i, negative=negative,
                                           true_cfg_scale=true_cfg_scale)[0])

        images[prompt] = cached_tensor(cache_dir / f"{key}.safetensors", "image", make,
                                       metadata={"prompt": prompt}).numpy()
        if reporter:
            reporter.advance(1)
    if reporter:
        reporter.close()
    return images


def user_spv_clips(folder: Path) -> list[tuple[Path, str, str]]:
    """Clips in a user SPV folder with their prompts and actions, taken from the file names.

    "a_cat_runs.mp4" or "a cat runs.mp4" -> ("a cat runs", "run"). Every clip must name one of the known
    actions so its motion tokens can be found; the error lists every clip that does not.
    """
    known = {}
    for a in ACTIONS:
        head, tail = a.split()[0], a[len(a.split()[0]):]
        for form in (a, third_person(head) + tail, head + "ing" + tail, head + "s" + tail):
            known[form] = a
    items, bad = [], []
    for clip in find_clips([folder]):
        prompt = re.sub(r"[_\-]+", " ", clip.stem if clip.is_file() else clip.name).strip()
        action = next((known[f] for f in sorted(known, key=len, reverse=True)
                       if re.search(rf"(?<!\w){re.escape(f)}(?!\w)", prompt.lower())), None)
        if action is None:
            bad.append((str(clip), f'name it "<subject> <action>", action one of: {", ".join(ACTIONS)}'))
        else:
            items.append((clip, prompt, action))
    if bad:
        raise MediaError(f"{len(bad)} subject-prior clip(s) have no known action in their name: "
                         + "; ".join(f"{p}: {why}" for p, why in bad), bad_files=bad)
    return items
