"""`synmotion learn MOTION CLIPS`: learn a motion from a few clips and install it as a pack."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import List, Optional

import typer

from ..prompts import DEFAULT_SUBJECT
from ._common import JSON, open_store, out

HELP = """Learn a motion from a few example clips and install it as a motion pack.

CLIPS are video files (mp4, mov, webm, mkv, gif), folders of numbered frames, or a folder holding them.
The pack is named after MOTION (add :TAG to keep several versions). Ctrl-C saves a checkpoint;
`--resume` continues from it. A pack holds a text-to-video variant, an image-to-video one (`--i2v`,
learned on the image-to-video base paired with --base), or both: learning the other variant of an
existing pack adds it and keeps the first.

[bold]Examples[/bold]

  synmotion learn clap ./clips/

  synmotion learn clap:v2 a.mp4 b.mp4 c.mp4 --steps 1000 --seed 7

  synmotion learn wave ./clips/ --base /models/HunyuanVideo -O rank=16

  synmotion learn beg ./dog-clips/ --subject "a dog"   [dim]# clips of a dog begging, not of a person[/dim]

  synmotion learn clap ./clips/ --resume          [dim]# continue an interrupted run[/dim]

  synmotion learn clap ./clips/ --i2v             [dim]# add the image-to-video variant[/dim]
"""


def learn(
    motion: str = typer.Argument(..., help="Motion name (also the pack name), optionally NAME:TAG."),
    clips: List[Path] = typer.Argument(..., help="Clip files, frame folders, or a folder of clips."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model: a hub id or a local diffusers directory."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps (backend default if omitted)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed and data give the same pack."),
    trigger: Optional[List[str]] = typer.Option(None, "--trigger", help="Extra trigger word(s) for the motion."),
    subject: str = typer.Option(DEFAULT_SUBJECT, "--subject",
                                help='Who does the motion in the clips, as a prompt says it, e.g. "a dog".'),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run of this pack."),
    i2v: bool = typer.Option(False, "--i2v", help="Learn the image-to-video variant (`gen --image` uses it)."),
    i2v_base: Optional[str] = typer.Option(None, "--i2v-base",
                                           help="Image-to-video base (default: the one paired with --base)."),
    spv: Optional[Path] = typer.Option(None, "--spv", help="A folder of your own subject-prior clips."),
    backend_name: Optional[str] = typer.Option(None, "--backend", help="Backend plugin (see `synmotion backends list`)."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-O", help="Backend option key=value (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing pack of the same name:tag."),
    json_out: bool = JSON,
) -> None:
    from .. import config, media, variants
    from ..backend import CAP_LEARN, LearnRequest
    from ..errors import MediaError, NotFoundError, UsageError
    from ..paths import cache_dir, runs_dir
    from ..prompts import clips_prompt
    from ..reporting import ConsoleReporter
    from ..selection import raise_for_problems, select_backend
    from ..store.names import parse_name
    from ._options import parse_options

    o = out(json_out)
    name, tag = parse_name(motion)
    subject = " ".join(subject.split())
    motion_form = clips_prompt(name, trigger or [], subject).motion_form  # a subject that cannot head it fails now
    store = open_store()
    variant = "i2v" if i2v else "t2v"
    stored = next((p for p in store.list() if p.full_name == f"{name}:{tag}"), None)
    if stored is not None and variant in variants.of(stored.manifest) and not force and not resume:
        raise UsageError(f"pack {name}:{tag} already has a {variant} variant",
                         hint=f"pass --force to replace that variant (the other is kept), or learn a new version "
                              f"as {name}:v2")
    if stored is not None:  # the new variant comes from the same pair of bases as the stored one
        base = base or variants.base_id(stored.manifest, "t2v")
        i2v_base = i2v_base or variants.base_id(stored.manifest, "i2v")
    for c in clips:
        if not c.exists():
            raise NotFoundError(f"no such file or folder: {c}")
    if spv is not None and not spv.is_dir():
        raise NotFoundError(f"no such folder: {spv}", hint="--spv takes a folder of subject-prior clips")
    clip_paths = media.find_clips(clips)
    if not clip_paths:
        raise UsageError(f"no clips found in {', '.join(map(str, clips))}",
                         hint=f"clips are {', '.join(media.VIDEO_SUFFIXES)} files or folders of numbered frames")
    # Probe every clip before a backend loads a model: a bad clip fails in a second, and all are named at once.
    try:
        media.check_clips(clip_paths, fps=media.FRAMES_FPS, frames=1)
    except MediaError as e:
        e.hint = "remove or replace the clips named: each must be a video or a folder of frames that ffmpeg reads"
        raise

    base, base_source = config.setting("base", base, env="SYNMOTION_BASE")
    if base is not None and base_source != "command line":
        o.info(f"base: {base} (from {base_source})")
    backend = select_backend(backend_name, CAP_LEARN)
    raise_for_problems(backend.check(base))
    options = parse_options(option)
    run_dir = runs_dir() / f"{name}-{tag}"
    if resume and not run_dir.exists():
        raise NotFoundError(f"no interrupted run of {name}:{tag} to resume", hint="start it without --resume")
    if run_dir.exists() and not resume and not force:
        raise UsageError(f"an interrupted run of {name}:{tag} exists in {run_dir}",
                         hint="add --resume to continue it, or --force to start over")
    reporter = ConsoleReporter(o)
    started = time.time()
    # The draft lives beside the run's checkpoints (not in the store's tmp/, which `packs gc` may clean
    # while a long run is still training); install copies it into the store.
    work_dir = run_dir / "draft"
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        request = LearnRequest(motion=name, clips=tuple(clip_paths), work_dir=work_dir, run_dir=run_dir,
                               base=base, trigger_words=tuple(trigger or ()), subject=subject, steps=steps,
                               seed=seed, resume=resume, i2v=i2v, i2v_base=i2v_base, spv_dir=spv, options=options,
                               preview_dir=cache_dir() / "previews" / f"{name}-{tag}")
        draft = backend.learn(request, reporter)
    except BaseException:
        # A run that saved no checkpoint has nothing to resume, and left in place it would block the next try.
        if run_dir.is_dir() and not any(p != work_dir for p in run_dir.iterdir()):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        reporter.close()
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under `accelerate launch`, only the main process installs and reports the pack
    draft.manifest.setdefault("timings", {})["wall_s"] = round(time.time() - started, 2)
    manifest, files = draft.manifest, draft.files
    stored = next((p for p in store.list() if p.full_name == f"{name}:{tag}"), None)
    if stored is not None:  # keep the pack's other variant (its blobs are reused, not copied)
        manifest, files = variants.add(stored.manifest, store.files(stored), manifest, files)
        if len(variants.of(manifest)) > 1:
            o.info(f"pack {name}:{tag} keeps its {', '.join(v for v in variants.of(manifest) if v != variant)} "
                   f"variant beside the new {variant} one")
    pack = store.install(f"{name}:{tag}", files, manifest)
    shutil.rmtree(run_dir, ignore_errors=True)  # the pack is stored; its checkpoints are no longer needed
    o.info(f"installed pack {pack.full_name} (sha256:{pack.short_digest}); "
           f"try: synmotion gen {'--image IMAGE ' if i2v else ''}\"a panda {motion_form}\"")
    o.emit({"name": pack.full_name, "digest": pack.digest, "manifest": pack.manifest},
           lambda c: c.print(pack.full_name, highlight=False))

