"""The ``hunyuan`` backend: SynMotion on HunyuanVideo through diffusers.

This module is imported by ``synmotion backends list``; it must not import torch at import time.
"""

from __future__ import annotations

import importlib.util

from synmotion_cli import variants
from synmotion_cli.backend import CAP_I2V, CAP_LEARN, CAP_T2V, GenResult, PackDraft, Problem

KIND = "synmotion.motion-pack"


def _pack_base(packs, variant: str = "t2v") -> str | None:
    ids = {variants.base_id(p.manifest, variant) for p in packs}
    ids.discard(None)
    if len(ids) > 1:
        from synmotion_cli.errors import UsageError

        raise UsageError(f"the packs were learned on different bases: {', '.join(sorted(ids))}",
                         hint="use packs of one base together")
    return ids.pop() if ids else None


class HunyuanBackend:
    name = "hunyuan"
    description = "SynMotion on HunyuanVideo (diffusers): dual embeddings, motion LoRA, embedding-exclusive training"
    capabilities = frozenset({CAP_LEARN, CAP_T2V, CAP_I2V})

    def check(self, base: str | None = None) -> list[Problem]:
        problems = []
        for module in ("torch", "diffusers", "transformers", "peft", "accelerate"):
            if importlib.util.find_spec(module) is None:
                problems.append(Problem(f"python package {module} is not installed",
                                        "pip install -e backends/hunyuan (with torch==2.13.0 on CPU machines)"))
        if problems:
            return problems
        from synmotion_cli.errors import SynMotionError

        from . import bases

        try:
            spec = bases.resolve(base or bases.choose_default()[0])
        except SynMotionError as e:
            return [Problem(e.message, e.hint or "", exit_code=e.exit_code)]
        import torch

        if spec.full_size and not torch.cuda.is_available():
            problems.append(Problem(f"{spec.id} is full size and this machine has no CUDA device",
                                    "run on a CUDA GPU (>= 40 GB for training)"))
        return problems

    # -- learn ------------------------------------------------------------------------------------------
    def learn(self, request, reporter) -> PackDraft:
        from . import bases
        from .runtime import drop_generation_pipeline, load_pipeline, pick_runtime
        from .training import Trainer

        drop_generation_pipeline()  # training loads a copy of its own
        if request.i2v:
            return self._learn_i2v(request, reporter)
        if request.base is None:
            name, why = bases.choose_default()
            reporter.message(f"base: {name} ({why}; choose another with --base or `base = …` in the config file)")
            base = bases.resolve(name)
        else:
            base = bases.resolve(request.base)
        base_cfg, settings = self._learn_settings(base, request)
        runtime = pick_runtime(settings.mixed_precision)
        reporter.message(f"base {base.id} on {runtime.device}; {settings.steps} steps, alpha {settings.alpha}, "
                         f"strategy {settings.strategy}")
        pipe = load_pipeline(base, runtime, training=True)
        trainer = Trainer(pipe, base, runtime, settings, request, reporter, base_cfg)
        trainer.prepare()
        result = trainer.run()
        return self._draft("t2v", request, base, settings, result)

    @staticmethod
    def _learn_settings(base, request):
        """The base's ``synmotion.json`` and the learn settings: the method's defaults, the base's, then
        the request's options and step count."""
        from . import bases
        from .settings import LearnSettings, build

        base_cfg = bases.read_synmotion_config(base.path)
        overrides = dict(request.options)
        if request.steps is not None:
            overrides["steps"] = request.steps
        return base_cfg, build(LearnSettings, base_cfg.get("defaults", {}).get("learn", {}), overrides)

    def _draft(self, variant: str, request, base, settings, result) -> PackDraft:
        """One variant's pack draft; the CLI adds it beside the pack's other variant, if any."""
        from synmotion_cli import __version__
        from synmotion_cli.prompts import inflections

        triggers = list(dict.fromkeys(w for t in [*request.trigger_words, request.motion] for w in [t, *inflections(t)]))
        manifest = {
            "kind": KIND,
            "backend": self.name,
            "tool_version": __version__,
            "motion": {"name": request.motion, "trigger_words": triggers, "prompt": result["data"]["user_prompt"]},
            "base": base.identity(),
            "variants": {variant: {**result["variant"], "base": base.identity()}},
            "config": {**settings.to_dict(), "seed": request.seed},
            "data": result["data"],
            "metrics": result["metrics"],
            "timings": result["timings"],
        }
        return PackDraft(files=result["files"], manifest=manifest)

    def _learn_i2v(self, request, reporter) -> PackDraft:
        """The I2V variant: trained on the image-to-video base paired with the text-to-video one, whose
        one-frame samples are the condition images of the subject-prior videos (made before the I2V base
        loads, so the two never share memory)."""
        import gc

        from synmotion_cli.errors import UsageError
        from synmotion_cli.paths import cache_dir

        from . import bases
        from .runtime import load_pipeline, pick_runtime
        from .spv import first_frames, prompts_for
        from .text_encoding import PromptEncoder
        from .training import Trainer

        base = bases.resolve_i2v(request.i2v_base, request.base)
        reporter.message(f"image-to-video base: {base.id}")
        base_cfg, settings = self._learn_settings(base, request)
        runtime = pick_runtime(settings.mixed_precision)
        spv_images, images_from = None, ""
        if settings.strategy == "exclusive" and settings.alpha < 1.0 and request.spv_dir is None:
            t2v_name = request.base or bases.t2v_partner(base)
            if t2v_name is None:
                raise UsageError(f"subject-prior videos on {base.id} need condition images from a text-to-video base",
                                 hint="name it with --base, bring your own clips with --spv DIR, or -O strategy=joint")
            t2v = bases.resolve(t2v_name)

            def load_t2v():
                pipe = load_pipeline(t2v, runtime, training=False)
                return pipe, PromptEncoder.from_pipeline(pipe, t2v.path)

            spv_images = first_frames(load_t2v, prompts_for(settings), height=settings.height, width=settings.width,
                                      steps=settings.spv_steps, guidance=settings.spv_guidance,
                                      true_cfg_scale=settings.spv_true_cfg_scale, seed=0,
                                      base_fingerprint=t2v.fingerprint, reporter=reporter,
                                      cache_dir=cache_dir() / "spv-images" / t2v.fingerprint
                                      / f"{settings.height}x{settings.width}")
            images_from = t2v.fingerprint
            gc.collect()
        reporter.message(f"base {base.id} on {runtime.device}; {settings.steps} steps, alpha {settings.alpha}, "
                         f"strategy {settings.strategy}")
        pipe = load_pipeline(base, runtime, training=True, i2v=True)
        trainer = Trainer(pipe, base, runtime, settings, request, reporter, base_cfg, spv_images=spv_images,
                          spv_images_from=images_from)
        trainer.prepare()
        result = trainer.run()
        if images_from:
            result["data"]["spv_images_from"] = t2v.id
        return self._draft("i2v", request, base, settings, result)

    # -- generate ---------------------------------------------------------------------------------------
    def generate(self, request, reporter) -> GenResult:
        import time

        from synmotion_cli.errors import UsageError

        from . import bases
        from .runtime import generation_pipeline, pick_runtime
        from .sampling import apply_loras, encode_for_sampling, remove_loras, sample, weighed
        from .settings import VIDEO_SHAPE, GenSettings, build
        from .text_encoding import PromptEncoder

        i2v = request.image is not None
        variant = "i2v" if i2v else "t2v"
        for pack in request.packs:
            if pack.manifest.get("kind") != KIND:
                raise UsageError(f"pack {pack.name} is not a motion pack of the hunyuan backend")
            variants.require(pack.name, pack.manifest, variant)
        recorded = _pack_base(request.packs, variant)
        if not i2v:
            base = bases.resolve(request.base or recorded or bases.choose_default()[0])
        elif request.i2v_base or (recorded and not request.base):
            base = bases.resolve(request.i2v_base or recorded)
        else:
            base = bases.resolve_i2v(None, request.base)
        for pack in request.packs:
            identity = variants.base(pack.manifest, variant)
            fingerprint = identity.get("fingerprint")
            if fingerprint and fingerprint != base.fingerprint:
                raise UsageError(f"pack {pack.name} was learned on another base ({identity.get('id')}, "
                                 f"fingerprint {fingerprint}) than {base.id} ({base.fingerprint})",
                                 hint="generate with the pack's own base (omit --base), or re-learn the pack")
        base_cfg = bases.read_synmotion_config(base.path)
        pack_defaults = {}
        if request.packs:
            v = request.packs[0].manifest["variants"][variant]
            pack_defaults = {k: v[k] for k in VIDEO_SHAPE if k in v}
        cli = {k: v for k, v in dict(steps=request.steps, guidance=request.guidance, height=request.height,
                                     width=request.width, frames=request.frames).items() if v is not None}
        settings = build(GenSettings, base_cfg.get("defaults", {}).get("gen", {}), pack_defaults,
                         {k: v for k, v in request.options.items()}, cli)
        if request.negative and settings.true_cfg_scale <= 1:
            raise UsageError(f"--negative needs classifier-free guidance, which {base.id} samples without",
                             hint="add -O true_cfg_scale=S with S above 1 (each step then runs one more pass)")
        if settings.height % 16 or settings.width % 16:
            raise UsageError(f"size {settings.height}x{settings.width} is not a multiple of 16",
                             hint="HunyuanVideo needs height and width divisible by 16, e.g. --size 320x512")
        packs = weighed(request.packs, settings.pack_weight)
        if settings.pack_weight != 1 and any(p.weight is None for p in request.packs):
            reporter.message(f"packs named without a weight run at {settings.pack_weight:g}, the default of {base.id} "
                             f"(--pack NAME:W sets one)")
        runtime = pick_runtime()
        reporter.message(f"base {base.id} on {runtime.device}")
        image = None
        if i2v:  # any size or format Pillow reads, fitted (resized, center-cropped) to the video
            from synmotion_cli import media

            image = media.load_image(request.image, height=settings.height, width=settings.width)
        pipe = generation_pipeline(base, runtime, i2v=i2v)
        encoder = PromptEncoder.from_pipeline(pipe, base.path)
        embeds, mask, pooled, text, used, transfer = encode_for_sampling(
            encoder, request.prompt, request.style, request.background, packs, reporter,
            transfer=settings.transfer, variant=variant, image=image)
        if transfer:
            start = settings.transfer_start
            after = f", after the first {start:.0%} of the steps" if start else ""
            if settings.transfer_static < 1:
                after += f", {settings.transfer_static:.0%} of its static part"
            reporter.message(f"motion-transfer guidance at {transfer.weight:g} from \"{transfer.prompt}\"{after} "
                             f"(-O transfer=0 applies the pack to the prompt itself)")
        # classifier-free guidance against the empty prompt, or against --negative
        negative = encoder.negative(request.negative or "") if settings.true_cfg_scale > 1 else None
        try:
            adapters = apply_loras(pipe, packs, variant)
            reporter.stage("sample", total=settings.steps)
            t0 = time.perf_counter()
            frames = sample(pipe, embeds, mask, pooled, height=settings.height, width=settings.width,
                            frames=settings.frames, steps=settings.steps, guidance=settings.guidance,
                            seed=request.seed, negative=negative, true_cfg_scale=settings.true_cfg_scale,
                            cfg_negative=settings.cfg_negative, image=image, transfer=transfer,
                            transfer_start=settings.transfer_start, transfer_static=settings.transfer_static,
                            on_step=reporter.advance)
        finally:  # the pipeline is kept for the next video: it goes back without this one's packs
            remove_loras(pipe)
        reporter.close()
        reporter.debug(f"sampled in {time.perf_counter() - t0:.2f}s")
        return GenResult(frames=frames, fps=settings.fps, pack_weights=tuple(p.weight for p in packs), metadata={
            "prompt": text, "base": base.id, "base_fingerprint": base.fingerprint, "backend": self.name,
            "steps": settings.steps, "guidance": settings.guidance, "true_cfg_scale": settings.true_cfg_scale,
            "cfg_negative": settings.cfg_negative if settings.true_cfg_scale > 1 and adapters and not transfer else "",
            "negative_prompt": request.negative or "",
            "transfer": transfer.weight if transfer else 0.0, "transfer_prompt": transfer.prompt if transfer else "",
            "transfer_start": settings.transfer_start if transfer and settings.transfer_start else "",
            "transfer_static": settings.transfer_static if transfer and settings.transfer_static < 1 else "",
            "embedding_from": used or "", "image": request.image.name if i2v else "",
            "adapters": len(adapters)})  # no timings: the same seed and packs must give the same file
