"""`synmotion gen PROMPT`: generate a video, with motion packs or with the plain base."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path
from typing import List, Optional

import typer

from ._common import JSON, open_store, out

HELP = """Generate a video from a prompt, using motion packs (text-to-video, or image-to-video with --image).

The prompt reads "<subject> <motion>[, style/background]". Without --pack, installed packs whose motion
appears in the prompt are used; with --no-pack, the plain base generates (the baseline).
Every video records its prompt, seed, packs and base in its metadata and carries an invisible watermark
(`synmotion inspect VIDEO` reads both).

[bold]Examples[/bold]

  synmotion gen "a panda claps"

  synmotion gen "a fox waves" --pack wave:0.8 --seed 3 -o fox.mp4

  synmotion gen "a zebra claps" --style "pixel art style" --background "on a beach"

  synmotion gen --image cat.png "a cat claps"        [dim]# the packs' image-to-video variant[/dim]

  synmotion gen "a panda claps" -n 4 --seed 10       [dim]# seeds 10-13, the base loaded once[/dim]
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "video"


def _pick_packs(store, specs, prompt, no_pack, o):
    from ..backend import PackUse
    from ..prompts import inflections
    from ._options import parse_pack_spec
    from .packs import find_pack

    if no_pack:
        return []
    chosen = []
    if specs:
        for spec in specs:
            ref, weight = parse_pack_spec(spec)
            pack, files = find_pack(store, ref, o)
            chosen.append((pack, files, weight))
    else:
        words = set(re.findall(r"[a-z]+", prompt.lower()))
        for pack in store.list():
            motion = pack.manifest.get("motion") or {}
            triggers = set(motion.get("trigger_words") or [])
            for w in [motion.get("name", "")] + list(triggers):
                triggers.update(inflections(w) if w else [])
            if words & {t.lower() for t in triggers if " " not in t} and pack.tag == "latest":
                chosen.append((pack, (lambda p=pack: store.files(p)), None))
        if chosen:
            o.info("using pack(s) " + ", ".join(p.full_name for p, _, _ in chosen) + " (their motion is in the prompt)")
        else:
            o.info("no installed pack's motion is in the prompt: generating with the plain base")
    return [PackUse(name=p.full_name, digest=p.digest, manifest=p.manifest, files=files(), weight=w) for p, files, w in chosen]


def gen(
    prompt: str = typer.Argument(..., help='"<subject> <motion>[, style/background]", e.g. "a panda claps".'),
    image: Optional[Path] = typer.Option(None, "--image", help="Start from this image (png, jpg, webp): image-to-video."),
    i2v_base: Optional[str] = typer.Option(None, "--i2v-base", help="Image-to-video base (default: the packs' own)."),
    pack: Optional[List[str]] = typer.Option(None, "--pack", "-p", help="Pack NAME[:WEIGHT] to use (repeatable)."),
    no_pack: bool = typer.Option(False, "--no-pack", help="Use no pack: the plain base model."),
    style: Optional[str] = typer.Option(None, "--style", help='Appended style, e.g. "cut paper style".'),
    background: Optional[str] = typer.Option(None, "--background", help='Appended background, e.g. "at night".'),
    negative: Optional[str] = typer.Option(None, "--negative",
                                           help='What the video should not show, e.g. "blurry" (the negative prompt '
                                                'of classifier-free guidance: needs -O true_cfg_scale above 1, the toy '
                                                "bases' default)."),
    output_path: Optional[Path] = typer.Option(None, "--output", "-o", help="Video file to write (.mp4)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (random if omitted; always printed)."),
    count: int = typer.Option(1, "--count", "-n", min=1,
                              help="Videos to make, with seeds SEED, SEED+1, …; -o NAME.mp4 becomes NAME-SEED.mp4, "
                                   "and --json prints a list."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Sampling steps."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Guidance scale."),
    size: Optional[str] = typer.Option(None, "--size", help="HEIGHTxWIDTH, e.g. 320x512."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="Number of frames (4k+1)."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model (default: the packs' base)."),
    backend_name: Optional[str] = typer.Option(None, "--backend", help="Backend plugin."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-O", help="Backend option key=value (repeatable)."),
    sheet: bool = typer.Option(False, "--sheet", help="Also write a contact-sheet PNG beside the video."),
    force: bool = typer.Option(False, "--force", help="Overwrite the output file."),
    json_out: bool = JSON,
) -> None:
    from .. import media, variants
    from ..backend import CAP_I2V, CAP_T2V, GenRequest
    from ..errors import NotFoundError, UsageError
    from ..selection import raise_for_problems, select_backend
    from ._options import parse_options

    o = out(json_out)
    height = width = None
    if size:
        m = re.fullmatch(r"(\d+)x(\d+)", size.strip())
        if not m:
            raise UsageError(f"bad --size {size!r}", hint="write HEIGHTxWIDTH, e.g. --size 320x512")
        height, width = int(m.group(1)), int(m.group(2))
    if image is not None:
        if not image.is_file():
            raise NotFoundError(f"no such image: {image}")
        media.load_image(image, height=16, width=16)  # an unreadable image fails now, naming the file
    if seed is None:
        seed = random.SystemRandom().randrange(2**31 - count + 1)
    seeds = list(range(seed, seed + count))
    paths = [_output_path(output_path, prompt, s, count) for s in seeds]
    for path in paths:  # before anything is generated: a clash found after the third video wastes two
        if path.suffix.lower() != ".mp4":
            raise UsageError(f"output {path} must end in .mp4")
        if path.exists() and not force:
            raise UsageError(f"{path} already exists", hint="pass --force to overwrite it, or choose another -o path")

    store = open_store()
    packs = _pick_packs(store, pack, prompt, no_pack, o)
    variant = "i2v" if image else "t2v"
    for p in packs:
        variants.require(p.name, p.manifest, variant)
    backend = select_backend(backend_name, CAP_I2V if image else CAP_T2V)
    # A pack remembers its base; check that one unless --base (--i2v-base) names another.
    pack_base = next((b for b in (variants.base_id(p.manifest, variant) for p in packs) if b), None)
    raise_for_problems(backend.check((i2v_base or pack_base or base) if image else (base or pack_base)))
    request = GenRequest(prompt=prompt, packs=tuple(packs), base=base, image=image, i2v_base=i2v_base, style=style,
                         background=background, negative=negative, steps=steps, guidance=guidance, height=height,
                         width=width, frames=frames, options=parse_options(option))
    made = [_generate_one(backend, o, path, sheet, dataclasses.replace(request, seed=seed))
            for path, seed in zip(paths, seeds)]
    o.emit(made[0] if count == 1 else made,
           lambda c: [c.print(d["path"], markup=False, highlight=False) for d in made])


def _output_path(output_path: Optional[Path], prompt: str, seed: int, count: int) -> Path:
    if output_path is None:
        return Path(f"synmotion-{_slug(prompt)}-{seed}.mp4")
    return output_path if count == 1 else output_path.with_name(f"{output_path.stem}-{seed}{output_path.suffix}")


def _generate_one(backend, o, path: Path, sheet: bool, request) -> dict:
    """One video: generate, watermark, write (atomically) and say where. A video written stays written even
    if a later one of the same command fails or is interrupted."""
    from .. import media, watermark
    from .. import __version__
    from ..reporting import ConsoleReporter

    seed = request.seed
    o.info(f"seed {seed}")
    reporter = ConsoleReporter(o)
    try:
        result = backend.generate(request, reporter)
    finally:
        reporter.close()
    packs = request.packs
    weights = result.pack_weights or [1.0 if p.weight is None else p.weight for p in packs]
    meta = {"synmotion_version": __version__, "seed": str(seed), **{k: str(v) for k, v in result.metadata.items()},
            "packs": ",".join(f"{p.name}@sha256:{p.digest[:12]}:{w:g}" for p, w in zip(packs, weights))}
    meta = {k: v for k, v in meta.items() if v != ""}  # containers drop empty tags; the hash must match what stays
    payload = watermark.payload_for(meta)
    meta["watermark"] = f"{payload:08x}"
    framed = watermark.embed(result.frames, payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    media.write_mp4(framed, path, fps=result.fps, metadata={f"synmotion_{k}": v for k, v in meta.items()})
    sheet_path = None
    if sheet:
        sheet_path = media.contact_sheet(framed, path.with_suffix(".png"), label=meta.get("prompt", request.prompt))
    o.info(f"wrote {path} ({framed.shape[0]} frames, {framed.shape[2]}x{framed.shape[1]}, seed {seed})")
    return {"path": str(path), "seed": seed, "frames": int(framed.shape[0]), "height": int(framed.shape[1]),
            "width": int(framed.shape[2]), "fps": result.fps, "metadata": meta,
            "sheet": str(sheet_path) if sheet_path else None}
