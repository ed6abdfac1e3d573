"""`synmotion toy quickstart` and `synmotion toy train-base`: the whole mission on the toy base."""

from __future__ import annotations

import contextlib
import enum
import io
import time
from pathlib import Path
from typing import Optional

import typer
from synmotion_cli.commands._common import JSON, out

from .base.config import I2V_CONDITIONS, BaseTrainConfig, I2VTrainConfig

QUICKSTART_HELP = """Render clips of a person doing a motion the toy base has never seen, learn it as a pack, and
generate it on another subject; prints where the video and its contact sheet are.

[bold]Examples[/bold]

  synmotion toy quickstart

  synmotion toy quickstart --motion wave --subject fox ./wave-demo
"""

TRAIN_HELP = """Train the toy base from scratch (or further, with --from) on the toy world (base motions only), by one
reproducible command.
The shipped base's VAE was made with the defaults on a CPU, its transformer on a GPU in two sittings, then its
decoder refined on the CPU; its synmotion.json holds every sitting's record, and docs/toy-base.md the commands
and the time they take.

[bold]Examples[/bold]

  synmotion toy train-base ./toy-base

  synmotion toy train-base ./toy-base --transformer-minutes 5 --vae-minutes 2    [dim]# a quick trial[/dim]

  synmotion toy train-base ./b --vae-from toy --subject-weight 9    [dim]# a new transformer on the shipped VAE[/dim]

  synmotion toy train-base ./c --from toy --seed 1 --lr 3e-4    [dim]# the shipped base, trained further[/dim]

  synmotion toy train-base ./g --vae-from toy --batch 256 --transformer-minutes 7 --device cuda

  synmotion toy train-base ./d --from toy --seed 1 --transformer-minutes 0 --decoder-minutes 25

  synmotion toy train-base ./f --fps 16 --batch 256 --device cuda    [dim]# 33 frames at 16 fps: fast motions survive the VAE[/dim]
"""


def _cli(*args: str) -> str:
    """Run a synmotion command in-process (the same code path as typing it); returns its stdout."""
    from synmotion_cli.app import main
    from synmotion_cli.errors import SynMotionError

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([str(a) for a in args])
    if code:
        err = SynMotionError(f"`synmotion {' '.join(map(str, args[:2]))} …` failed (exit {code}); see the error above")
        err.exit_code = code
        raise err
    return buffer.getvalue()


def quickstart(
    folder: Path = typer.Argument(Path("synmotion-quickstart"), help="Where the clips, video and sheet go."),
    motion: str = typer.Option("clap", "--motion", help="A custom motion of the toy world (the base never saw it)."),
    subject: str = typer.Option("panda", "--subject", help="Who performs it in the generated video."),
    clips: int = typer.Option(8, "--clips", "-n", min=1, help="How many example clips to learn from."),
    seed: int = typer.Option(0, "--seed", help="Seed for clips, training and sampling."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps (the toy base's default)."),
    json_out: bool = JSON,
) -> None:
    from synmotion_cli.errors import UsageError

    from .clips import write_clips
    from .world import load_motions, prompt_for
    from .world.names import motion_key, subject_key

    o = out(json_out)
    motions = load_motions()
    key, who = motion_key(motion, motions), subject_key(subject)
    if who == "person":
        raise UsageError("the clips show a person: pick another --subject to see the motion transfer")
    m = motions[key]
    started = time.perf_counter()
    o.info(f"1/3 rendering {clips} clips of \"{prompt_for('person', m)}\" into {folder / 'clips'}")
    clip_set = write_clips(key, folder / "clips", count=clips, seed=seed, force=True)
    o.info(f"2/3 learning {key} on the toy base")
    learn_args = ["learn", key, folder / "clips", "--base", "toy", "--trigger", m.verb, "--seed", str(seed), "--force"]
    if steps:
        learn_args += ["--steps", str(steps)]
    _cli(*learn_args)
    prompt = prompt_for(who, m)
    video = folder / f"{who}-{key}.mp4"
    o.info(f"3/3 generating \"{prompt}\"")
    _cli("gen", prompt, "--pack", key, "--seed", str(seed), "-o", video, "--sheet", "--force")
    # The toy world has judges: say what they see, so a run that did not work is not taken for one that did.
    from .judges import load_judges, read_video

    judged = load_judges().judge(read_video(video))
    o.info(f"the judges see: {judged.motion} ({judged.motion_p[judged.motion]:.0%}), "
           f"performed by a {judged.subject} ({judged.subject_p[judged.subject]:.0%}); asked for {key} by a {who}")
    data = {"video": str(video), "contact_sheet": str(video.with_suffix(".png")), "pack": f"{key}:latest",
            "clips": str(clip_set.folder), "prompt": prompt, "seconds": round(time.perf_counter() - started, 1),
            "judged": {"motion": judged.motion, "motion_p": round(judged.motion_p[judged.motion], 3),
                       "subject": judged.subject, "subject_p": round(judged.subject_p[judged.subject], 3),
                       "right": judged.motion == key and judged.subject == who}}
    o.info(f"done in {data['seconds']}s: the video is {video}, its contact sheet {data['contact_sheet']}")
    o.emit(data, lambda c: c.print(f"{data['video']}\n{data['contact_sheet']}", highlight=False, markup=False))


BF16_HELP = "bf16 mixed precision where the device computes in bf16 (float32 elsewhere)."
THREADS_HELP = "CPU threads for torch, and processes that render the training clips."
DEVICE_HELP = "auto: a CUDA GPU where one is at hand, else the CPU. The time budgets stay the same."
VAE_FROM_HELP = ("Keep the VAE of this trained toy base (toy, or a folder) and skip the VAE phase: compares "
                 "transformer recipes on the same latents.")
DECODER_HELP = ("Minutes to fine-tune the VAE's decoder on whole clips, its encoder frozen (so the latents, and a "
                "transformer trained on them, stay valid). Default: 10 for a VAE trained here, 0 for a kept one.")

FROM_HELP = ("Continue this trained toy base (toy, or a folder): keep its VAE and text encoders and train its "
             "transformer further on freshly rendered clips (use another --seed for new ones). With another --fps "
             "its transformer learns that rate (a retime).")


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


Condition = enum.Enum("Condition", {c: c for c in I2V_CONDITIONS}, type=str)   # Typer lists an enum's choices


CONDITION_HELP = ("How the image conditions the video, as in HunyuanVideo-I2V: token_replace (latent frame 0 is "
                  "the clean image) or latent_concat (image latents beside the noisy ones, a new input channel block).")


def train_base_cmd(
    folder: Path = typer.Argument(..., help="Where to write the trained base (a diffusers directory)."),
    seed: int = typer.Option(0, "--seed"),
    clips: int = typer.Option(BaseTrainConfig.clips, "--clips", help="Rendered training clips."),
    fps: int = typer.Option(BaseTrainConfig.fps, "--fps", help="The clips' frame rate, a multiple of 8; 2 s a clip. "
                            "16 keeps fast motions through the VAE (docs/toy-base.md)."),
    vae_minutes: float = typer.Option(BaseTrainConfig.vae_minutes, "--vae-minutes"),
    vae_from: Optional[str] = typer.Option(None, "--vae-from", help=VAE_FROM_HELP),
    decoder_minutes: Optional[float] = typer.Option(None, "--decoder-minutes", min=0, help=DECODER_HELP),
    init_from: Optional[str] = typer.Option(None, "--from", help=FROM_HELP),
    transformer_minutes: float = typer.Option(BaseTrainConfig.transformer_minutes, "--transformer-minutes"),
    subject_weight: float = typer.Option(BaseTrainConfig.transformer_subject_weight, "--subject-weight",
                                         help="Extra flow-matching loss weight on the subject's latent pixels."),
    lr: float = typer.Option(BaseTrainConfig.lr, "--lr", help="The transformer's peak learning rate."),
    batch: int = typer.Option(BaseTrainConfig.batch, "--batch", min=1,
                              help="Clips per transformer step (a GPU has room for more than the CPU default)."),
    threads: int = typer.Option(BaseTrainConfig.threads, "--threads", help=THREADS_HELP),
    bf16: bool = typer.Option(BaseTrainConfig.mixed_precision, "--bf16/--fp32", help=BF16_HELP),
    device: Device = typer.Option(BaseTrainConfig.device, "--device", help=DEVICE_HELP),
) -> None:
    from .base.train import train_base

    o = out(False)
    cfg = BaseTrainConfig(out=folder, seed=seed, clips=clips, fps=fps, vae_from=vae_from, init_from=init_from,
                          vae_minutes=vae_minutes, decoder_minutes=decoder_minutes, lr=lr, batch=batch,
                          transformer_minutes=transformer_minutes, transformer_subject_weight=subject_weight,
                          threads=threads, mixed_precision=bf16, device=device.value)
    path = train_base(cfg, report=o.info)
    o.emit({"path": str(path)}, lambda c: c.print(str(path), highlight=False, markup=False))


TRAIN_I2V_HELP = """Make the toy image-to-video base from the toy base (its transformer conditioned on the image latent,
a Llava around the same Llama) and fine-tune it on toy clips conditioned on their first frame, by one
reproducible command. Installed as the base `toy-i2v` when written to its package folder.

[bold]Examples[/bold]

  synmotion toy train-i2v-base toy/synmotion_toy/base/weights-i2v --minutes 30

  synmotion toy train-i2v-base ./toy-i2v --minutes 1 --clips 64    [dim]# a quick trial[/dim]
"""


def train_i2v_base_cmd(
    folder: Path = typer.Argument(..., help="Where to write the image-to-video base (a diffusers directory)."),
    minutes: float = typer.Option(I2VTrainConfig.minutes, "--minutes", help="Fine-tuning time budget."),
    t2v: Optional[Path] = typer.Option(None, "--from", help="The toy text-to-video base (default: the installed one)."),
    clips: int = typer.Option(I2VTrainConfig.clips, "--clips", help="Rendered training clips."),
    batch: int = typer.Option(I2VTrainConfig.batch, "--batch"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(I2VTrainConfig.threads, "--threads", help=THREADS_HELP),
    bf16: bool = typer.Option(I2VTrainConfig.mixed_precision, "--bf16/--fp32", help=BF16_HELP),
    device: Device = typer.Option(I2VTrainConfig.device, "--device", help=DEVICE_HELP),
    condition: Condition = typer.Option(I2VTrainConfig.condition, "--condition", help=CONDITION_HELP),
) -> None:
    from .base.i2v import train_i2v_base

    o = out(False)
    cfg = I2VTrainConfig(out=folder, t2v=t2v, seed=seed, clips=clips, minutes=minutes, batch=batch, threads=threads,
                         mixed_precision=bf16, device=device.value, condition=condition.value)
    path = train_i2v_base(cfg, report=o.info)
    o.emit({"path": str(path)}, lambda c: c.print(str(path), highlight=False, markup=False))


def add_commands(toy_app: typer.Typer) -> None:
    toy_app.command("quickstart", help=QUICKSTART_HELP, short_help="Clips -> pack -> video, on the toy base.")(quickstart)
    toy_app.command("train-base", help=TRAIN_HELP, short_help="Train the toy base from scratch.",
                    no_args_is_help=True)(train_base_cmd)
    toy_app.command("train-i2v-base", help=TRAIN_I2V_HELP, short_help="Make the toy image-to-video base from the toy base.",
                    no_args_is_help=True)(train_i2v_base_cmd)
