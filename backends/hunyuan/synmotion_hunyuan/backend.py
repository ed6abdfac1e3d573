"""The ``hunyuan`` backend: SynMotion on HunyuanVideo through diffusers.

This module is imported by ``synmotion backends list``; it must not import torch at import time.
"""

from __future__ import annotations

import importlib.util

from synmotion_cli.backend import CAP_LEARN, CAP_T2V, GenResult, PackDraft, Problem

KIND = "synmotion.motion-pack"


def _pack_base(packs) -> str | None:
    ids = {p.manifest.get("base", {}).get("id") for p in packs}
    ids.discard(None)
    if len(ids) > 1:
        from synmotion_cli.errors import UsageError

        raise UsageError(f"the packs were learned on different bases: {', '.join(sorted(ids))}",
                         hint="use packs of one base together")
    return ids.pop() if ids else None


class HunyuanBackend:
    name = "hunyuan"
    description = "SynMotion on HunyuanVideo (diffusers): dual embeddings, motion LoRA, embedding-exclusive training"
    capabilities = frozenset({CAP_LEARN, CAP_T2V})

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
        from synmotion_cli import __version__
        from synmotion_cli.prompts import inflections

        from . import bases
        from .runtime import load_pipeline, pick_runtime
        from .settings import LearnSettings, build
        from .training import Trainer

        if request.i2v:
            from synmotion_cli.errors import UsageError

            raise UsageError("this version of the hunyuan backend learns text-to-video packs only",
                             hint="drop --i2v")
        if request.base is None:
            name, why = bases.choose_default()
            reporter.message(f"base: {name} ({why}; choose another with --base or `base = …` in the config file)")
            base = bases.resolve(name)
        else:
            base = bases.resolve(request.base)
        base_cfg = bases.read_synmotion_config(base.path)
        overrides = dict(request.options)
        if request.steps is not None:
            overrides["steps"] = request.steps
        settings = build(LearnSettings, base_cfg.get("defaults", {}).get("learn", {}), overrides)
        runtime = pick_runtime(settings.mixed_precision)
        reporter.message(f"base {base.id} on {runtime.device}; {settings.steps} steps, alpha {settings.alpha}, "
                         f"strategy {settings.strategy}")
        pipe = load_pipeline(base, runtime, training=True)
        trainer = Trainer(pipe, base, runtime, settings, request, reporter, base_cfg)
        trainer.prepare()
        result = trainer.run()
        triggers = list(dict.fromkeys(w for t in [*request.trigger_words, request.motion] for w in [t, *inflections(t)]))
        manifest = {
            "kind": KIND,
            "backend": self.name,
            "tool_version": __version__,
            "motion": {"name": request.motion, "trigger_words": triggers, "prompt": result["data"]["user_prompt"]},
            "base": base.identity(),
            "variants": {"t2v": result["variant"]},
            "config": {**settings.to_dict(), "seed": request.seed},
            "data": result["data"],
            "metrics": result["metrics"],
            "timings": result["timings"],
        }
        return PackDraft(files=result["files"], manifest=manifest)

    # -- generate ---------------------------------------------------------------------------------------
    def generate(self, request, reporter) -> GenResult:
        import time

        from synmotion_cli.errors import UsageError

        from . import bases
        from .runtime import load_pipeline, pick_runtime
        from .sampling import apply_loras, encode_with_packs, sample
        from .settings import GenSettings, build
        from .text_encoding import PromptEncoder

        if request.image is not None:
            raise UsageError("this version of the hunyuan backend generates text-to-video only",
                             hint="drop --image")
        for pack in request.packs:
            if pack.manifest.get("kind") != KIND or "t2v" not in pack.manifest.get("variants", {}):
                raise UsageError(f"pack {pack.name} has no text-to-video variant for the hunyuan backend")
        base = bases.resolve(request.base or _pack_base(request.packs) or bases.choose_default()[0])
        for pack in request.packs:
            recorded = pack.manifest.get("base", {}).get("fingerprint")
            if recorded and recorded != base.fingerprint:
                raise UsageError(f"pack {pack.name} was learned on another base ({pack.manifest['base'].get('id')}, "
                                 f"fingerprint {recorded}) than {base.id} ({base.fingerprint})",
                                 hint="generate with the pack's own base (omit --base), or re-learn the pack")
        base_cfg = bases.read_synmotion_config(base.path)
        pack_defaults = {}
        if request.packs:
            v = request.packs[0].manifest["variants"]["t2v"]
            pack_defaults = {k: v[k] for k in ("height", "width", "frames", "fps") if k in v}
        cli = {k: v for k, v in dict(steps=request.steps, guidance=request.guidance, height=request.height,
                                     width=request.width, frames=request.frames).items() if v is not None}
        settings = build(GenSettings, base_cfg.get("defaults", {}).get("gen", {}), pack_defaults,
                         {k: v for k, v in request.options.items()}, cli)
        if settings.height % 16 or settings.width % 16:
            raise UsageError(f"size {settings.height}x{settings.width} is not a multiple of 16",
                             hint="HunyuanVideo needs height and width divisible by 16, e.g. --size 320x512")
        runtime = pick_runtime()
        reporter.message(f"base {base.id} on {runtime.device}")
        pipe = load_pipeline(base, runtime, training=False)
        encoder = PromptEncoder.from_pipeline(pipe, base.path)
        embeds, mask, pooled, text, used = encode_with_packs(encoder, request.prompt, request.style,
                                                             request.background, request.packs, reporter)
        negative = None
        if settings.true_cfg_scale > 1:  # classifier-free guidance against the empty prompt
            empty = encoder.encode("")
            negative = (empty.embeds, empty.mask, empty.pooled)
        adapters = apply_loras(pipe, request.packs)
        reporter.stage("sample", total=None)
        t0 = time.perf_counter()
        frames = sample(pipe, embeds, mask, pooled, height=settings.height, width=settings.width,
                        frames=settings.frames, steps=settings.steps, guidance=settings.guidance, seed=request.seed,
                        negative=negative, true_cfg_scale=settings.true_cfg_scale)
        reporter.close()
        reporter.debug(f"sampled in {time.perf_counter() - t0:.2f}s")
        return GenResult(frames=frames, fps=settings.fps, metadata={
            "prompt": text, "base": base.id, "base_fingerprint": base.fingerprint, "backend": self.name,
            "steps": settings.steps, "guidance": settings.guidance, "true_cfg_scale": settings.true_cfg_scale,
            "embedding_from": used or "",
            "adapters": len(adapters)})  # no timings: the same seed and packs must give the same file
