"""SynMotion end to end on a tiny random-weight HunyuanVideo saved to disk and loaded the users' way:
through the CLI (learn, gen, export/import), the trainer's rules (SPV steps, frozen base, ablations) and
``--resume`` reproducing an uninterrupted run exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cli_runner import run
from conftest_tiny import load_pipe, tiny_dir, write_clap_clips  # noqa: F401  (session fixture)
from media_fixtures import moving_square

from synmotion_cli import media
from synmotion_cli.backend import LearnRequest
from synmotion_cli.errors import Interrupted
from synmotion_cli.reporting import RecordingReporter


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_clap_clips(tmp_path_factory.mktemp("clips"), 3)


def _learn_request(tmp_path, clips_dir, **kw):
    from synmotion_cli import media as m

    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    defaults = dict(motion="clap", clips=tuple(m.find_clips([clips_dir])), work_dir=work, run_dir=tmp_path / "run",
                    base=None, steps=12, seed=3)
    defaults.update(kw)
    return LearnRequest(**defaults)


def _prepared_trainer(folder, tiny_dir, clips, options: dict):
    """A Trainer on the tiny base with the tiny defaults and ``options``, prepared (clips encoded, parts built)
    but not yet run; returns (pipe, trainer) so a test can hook the transformer first."""
    from synmotion_hunyuan import bases
    from synmotion_hunyuan.runtime import load_pipeline, pick_runtime
    from synmotion_hunyuan.settings import LearnSettings, build
    from synmotion_hunyuan.tiny import TINY_DEFAULTS
    from synmotion_hunyuan.training import Trainer

    base = bases.resolve(str(tiny_dir))
    pipe = load_pipeline(base, pick_runtime(), training=True)
    trainer = Trainer(pipe, base, pick_runtime(), build(LearnSettings, TINY_DEFAULTS["learn"], options),
                      _learn_request(folder, clips, base=str(tiny_dir)), RecordingReporter(), {})
    trainer.prepare()
    return pipe, trainer


def _tensors(files):
    out = {}
    for name, path in files.items():
        out.update({f"{name}:{k}": v for k, v in load_file(str(path)).items()})
    return out


def test_learn_then_gen_through_the_cli(capsys, tmp_path, tiny_dir, clips):
    r = run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "20", "--json")
    assert r.code == 0, r.err
    pack = json.loads(r.out)
    manifest = pack["manifest"]
    assert manifest["motion"]["name"] == "clap" and "claps" in manifest["motion"]["trigger_words"]
    assert set(manifest["files"]) == {"t2v/embedding.safetensors", "t2v/lora.safetensors"}
    assert manifest["metrics"]["steps"] == 20 and manifest["data"]["clips"] == 3
    assert manifest["base"]["fingerprint"] and manifest["data"]["spv_videos"] == 4

    out = tmp_path / "panda.mp4"
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--seed", "5", "--size", "32x48", "--frames", "13",
            "-o", out, "--json")
    assert r.code == 0, r.err
    assert "sample: started (4 steps)" in r.err and "sample: 4/4 " in r.err   # every denoising step reported
    info = media.probe(out)
    assert (info.frames, info.height, info.width, info.codec) == (13, 32, 48, "h264")
    tags = media.read_metadata(out)
    assert tags["synmotion_prompt"] == "a panda claps" and tags["synmotion_seed"] == "5"
    assert pack["digest"][:12] in tags["synmotion_packs"] and tags["synmotion_embedding_from"] == "clap:latest"
    inspected = json.loads(run(capsys, "inspect", out, "--json").out)
    assert inspected["watermark"]["found"] and inspected["watermark"]["matches_metadata"]

    # never overwrite without --force
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--seed", "5", "-o", out)
    assert r.code == 2 and "already exists" in r.err

    # the pack round-trips through export/import and generates the same video
    archive = tmp_path / "clap.smpack"
    assert run(capsys, "packs", "export", "clap", archive).code == 0
    assert run(capsys, "packs", "rm", "clap", "--yes").code == 0
    assert run(capsys, "packs", "import", archive).code == 0
    again = tmp_path / "again.mp4"
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--seed", "5", "--size", "32x48", "--frames", "13",
            "-o", again)
    assert r.code == 0, r.err
    first = media.decode(out, fps=8, height=32, width=48, frames=13)
    second = media.decode(again, fps=8, height=32, width=48, frames=13)
    assert np.array_equal(first, second)


def test_gen_count_loads_the_base_once_and_makes_what_single_runs_make(capsys, tmp_path, tiny_dir, clips,
                                                                       monkeypatch):
    from synmotion_hunyuan import runtime
    from synmotion_hunyuan.sampling import has_adapters

    assert run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "2").code == 0
    loads = []
    load = runtime.load_pipeline
    monkeypatch.setattr(runtime, "load_pipeline", lambda *a, **k: loads.append(1) or load(*a, **k))
    runtime.drop_generation_pipeline()
    shape = ["--size", "32x48", "--frames", "13"]
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--seed", "7", "-n", "3", *shape,
            "-o", tmp_path / "many.mp4", "--json")
    assert r.code == 0, r.err
    made = json.loads(r.out)
    assert [d["seed"] for d in made] == [7, 8, 9] and len(loads) == 1
    assert [d["path"] for d in made] == [str(tmp_path / f"many-{s}.mp4") for s in (7, 8, 9)]
    assert not has_adapters(runtime._generation_cache["pipe"].transformer)  # kept without the pack's LoRA

    # the second of them is the video a run of its seed alone makes
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--seed", "8", *shape, "-o", tmp_path / "one.mp4")
    assert r.code == 0, r.err
    decode = dict(fps=8, height=32, width=48, frames=13)
    assert np.array_equal(media.decode(tmp_path / "one.mp4", **decode), media.decode(tmp_path / "many-8.mp4", **decode))
    assert len(loads) == 1

    # a base changed on disk is loaded (and checked) again
    weights = next((tiny_dir / "transformer").glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--seed", "8", *shape, "-o", tmp_path / "two.mp4")
    assert r.code == 0 and len(loads) == 2

    # one name taken: nothing is generated, no file is touched
    (tmp_path / "many-7.mp4").unlink()
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--seed", "7", "-n", "3", "-o", tmp_path / "many.mp4")
    assert r.code == 2 and "many-8.mp4 already exists" in r.err and not (tmp_path / "many-7.mp4").exists()


def test_negative_prompt_steers_classifier_free_guidance(capsys, tmp_path, tiny_dir, monkeypatch):
    """--negative replaces the empty prompt of classifier-free guidance's negative pass (the transformer reads
    exactly its encoding), and is recorded; without that guidance it is refused before anything loads."""
    from synmotion_hunyuan.text_encoding import PromptEncoder

    pipe = load_pipe(tiny_dir)
    negative = PromptEncoder.from_pipeline(pipe, tiny_dir).negative("a blurry cat")[0]
    texts = []
    forward = type(pipe.transformer).forward

    def spy(self, *args, **kwargs):
        texts.append(kwargs["encoder_hidden_states"].detach().clone())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe.transformer), "forward", spy)
    common = ["--base", tiny_dir, "--no-pack", "--seed", "2", "-O", "true_cfg_scale=3"]
    r = run(capsys, "gen", "a panda claps", *common, "--negative", "a blurry cat", "-o", tmp_path / "neg.mp4", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metadata"]["negative_prompt"] == "a blurry cat"
    rows = [row for t in texts for row in t.split(1)]   # the negative rides in the prompt's batch
    assert any(row.shape == negative.shape and torch.equal(row, negative.to(row.dtype)) for row in rows)
    assert run(capsys, "gen", "a panda claps", *common, "-o", tmp_path / "plain.mp4").code == 0
    decode = dict(fps=8, height=32, width=32, frames=9)
    assert not np.array_equal(media.decode(tmp_path / "neg.mp4", **decode), media.decode(tmp_path / "plain.mp4", **decode))

    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--no-pack", "--negative", "blurry",
            "-o", tmp_path / "no.mp4")
    assert r.code == 2 and "--negative needs classifier-free guidance" in r.err and "true_cfg_scale" in r.err
    assert not (tmp_path / "no.mp4").exists()


def test_learn_subject_names_who_does_the_motion_in_the_clips(capsys, tmp_path, tiny_dir, clips, monkeypatch):
    """--subject: the clips are read as "<subject> <motion>" in training, the pack records that prompt, and
    motion-transfer guidance takes it as its reference; a subject holding the motion's words is refused first."""
    from synmotion_hunyuan import training

    texts = []
    encode = training.PromptEncoder.encode
    monkeypatch.setattr(training.PromptEncoder, "encode", lambda self, p, **k: texts.append(getattr(p, "text", p))
                        or encode(self, p, **k))
    r = run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "2", "--subject", " a  big dog ", "--json")
    assert r.code == 0, r.err
    manifest = json.loads(r.out)["manifest"]
    assert manifest["motion"]["prompt"] == manifest["variants"]["t2v"]["prompt"] == "a big dog claps"
    assert manifest["data"]["user_prompt"] == "a big dog claps" and "a big dog claps" in texts
    assert "a person claps" not in texts
    r = run(capsys, "gen", "a fox claps", "--base", tiny_dir, "-O", "transfer=2", "-O", "true_cfg_scale=2",
            "-o", tmp_path / "fox.mp4", "--json")
    assert r.code == 0 and 'from "a big dog claps"' in r.err, r.err
    assert json.loads(r.out)["metadata"]["transfer_prompt"] == "a big dog claps"

    for bad in ("a clapping dog", "  "):
        r = run(capsys, "learn", "clap:v2", clips, "--base", tiny_dir, "--subject", bad)
        assert r.code == 2 and "--subject" in r.err and "Traceback" not in r.err, r.err


def test_learn_suggests_a_prompt_in_the_packs_own_words(capsys, tiny_dir, clips):
    """The closing hint names the motion as the clips' prompt does: a trigger phrase, not the pack's name."""
    r = run(capsys, "learn", "handstand", clips, "--base", tiny_dir, "--steps", "1", "--trigger", "do a handstand",
            "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["manifest"]["motion"]["prompt"] == "a person does a handstand"
    assert 'try: synmotion gen "a panda does a handstand"' in r.err, r.err
    r = run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "1")
    assert r.code == 0 and 'try: synmotion gen "a panda claps"' in r.err, r.err


def test_gen_errors_are_one_line(capsys, tmp_path, tiny_dir, clips):
    assert run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "2").code == 0
    r = run(capsys, "gen", "a panda jumps", "--pack", "clap", "--base", tiny_dir, "-o", tmp_path / "x.mp4")
    assert r.code == 2 and "expected" in r.err and "<subject> <motion>" in r.err and "Traceback" not in r.err
    r = run(capsys, "gen", "a panda claps", "--base", "nobody/not-cached", "--no-pack", "-o", tmp_path / "y.mp4")
    assert r.code == 3 and "not in the Hugging Face cache" in r.err
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--size", "30x48", "-o", tmp_path / "z.mp4")
    assert r.code == 2 and "16" in r.err
    # the baseline: no pack at all
    r = run(capsys, "gen", "a panda claps", "--base", tiny_dir, "--no-pack", "-o", tmp_path / "base.mp4", "--json")
    assert r.code == 0 and "packs" not in json.loads(r.out)["metadata"]


def test_learn_puts_lora_on_the_projections_asked_for(capsys, tmp_path, tiny_dir, clips):
    r = run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "2", "-O", "projections=kq", "--json")
    assert r.code == 0, r.err
    manifest = json.loads(r.out)["manifest"]
    assert manifest["variants"]["t2v"]["adapter_config"]["projections"] == ["q", "k"]
    files = dict(line.split("\t") for line in run(capsys, "packs", "path", "clap").out.strip().splitlines())
    keys = load_file(files["t2v/lora.safetensors"]).keys()
    projected = {k.split(".attn.")[1].split(".lora_")[0] for k in keys}
    assert projected == {"to_q", "to_k", "add_q_proj", "add_k_proj"}


@pytest.mark.parametrize("option", ["batch=0", "alpha=1.5", "rank=0", "frames=16", "projections=qo",
                                    "caption_dropout=1", "time_shift=-1"])
def test_learn_rejects_a_bad_setting_in_one_line(capsys, tmp_path, tiny_dir, clips, option):
    r = run(capsys, "learn", "clap", clips, "--base", tiny_dir, "-O", option, "--steps", "2")
    assert r.code == 2 and f"{option.split('=')[0]}=" in r.err and "Traceback" not in r.err
    assert r.err.count("Error:") == 1 and "at least 1" in r.err
    assert json.loads(run(capsys, "packs", "list", "--json").out) == []


def test_pack_refuses_another_base(capsys, tmp_path, tiny_dir, clips):
    from synmotion_hunyuan.tiny import save_tiny_pipeline

    other = save_tiny_pipeline(tmp_path / "other", seed=1)
    (other / "transformer" / "config.json").write_text(
        (other / "transformer" / "config.json").read_text().replace('"num_layers": 1', '"num_layers": 1 '))
    assert run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "2").code == 0
    r = run(capsys, "gen", "a panda claps", "--base", other, "-o", tmp_path / "o.mp4")
    assert r.code == 2 and "another base" in r.err


class _InterruptAt(RecordingReporter):
    """Delivers Ctrl-C once training reaches ``step``, the way a user's keypress lands between steps."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def advance(self, steps=1, **metrics):
        super().advance(steps, **metrics)
        if self.events and any(e[0] == "stage" and e[1][0] == "train" for e in self.events):
            self.seen += steps
            if self.seen == self.step:
                raise KeyboardInterrupt


@pytest.mark.parametrize("options", [{}, {"batch": 2}, {"ema": 0.8}])
def test_resume_matches_an_uninterrupted_run(tmp_path, tiny_dir, clips, options):
    from synmotion_hunyuan.backend import HunyuanBackend

    backend = HunyuanBackend()
    straight = backend.learn(_learn_request(tmp_path / "a", clips, base=str(tiny_dir), options=options),
                             RecordingReporter())

    req = _learn_request(tmp_path / "b", clips, base=str(tiny_dir), options=options)
    with pytest.raises(Interrupted, match="interrupted at step 5/12"):
        backend.learn(req, _InterruptAt(5))
    assert (req.run_dir / "checkpoint" / "state.json").is_file()
    resumed = backend.learn(_learn_request(tmp_path / "b", clips, base=str(tiny_dir), resume=True, options=options),
                            RecordingReporter())
    a, b = _tensors(straight.files), _tensors(resumed.files)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert straight.manifest["metrics"]["loss_curve"] == resumed.manifest["metrics"]["loss_curve"]


def test_the_pack_keeps_the_moving_average_of_its_weights(tmp_path, tiny_dir, clips):
    """-O ema=D: every trained weight the pack holds is the average of the weights after each step (the first
    step's weights, then D x the average + (1 - D) x the step's), a preview shows the average of its step and
    training goes on from the trained weights, and the same run without it keeps the last step's weights."""
    decay = 0.6
    previews = {"preview_every": 3, "preview_steps": 1}

    def trained(folder, options):
        pipe, trainer = _prepared_trainer(folder, tiny_dir, clips, {"steps": 6, **previews, **options})
        steps, previewed = [], []

        class EveryStep(RecordingReporter):
            def advance(self, n=1, **metrics):  # called after each optimiser step
                super().advance(n, **metrics)
                steps.append(_trainable_weights(pipe, trainer))

        def preview(step, make=trainer._preview):
            previewed.append(_trainable_weights(pipe, trainer))
            return make(step)

        trainer.reporter, trainer._preview = EveryStep(), preview
        files = trainer.run()["files"]
        weights = {k: v for k, v in files.items() if k.endswith(".safetensors")}   # not the preview
        return steps, previewed, _trainable_weights(pipe, trainer), _tensors(weights)

    steps, previewed, kept, files = trained(tmp_path / "a", {"ema": decay})
    averages = [steps[0]]
    for weights in steps[1:]:
        averages.append({n: decay * averages[-1][n] + (1 - decay) * w for n, w in weights.items()})
    assert len(steps) == 6 and len(previewed) == 2 and kept.keys() == averages[-1].keys()
    for name, value in kept.items():
        assert torch.allclose(value, averages[-1][name], atol=1e-6), name
        assert torch.allclose(previewed[0][name], averages[2][name], atol=1e-6), name   # the preview at step 3
    assert any(not torch.allclose(kept[n], steps[-1][n]) for n in kept)   # an average, not the last step
    plain_steps, _, plain_kept, plain_files = trained(tmp_path / "b", {})
    for name, value in plain_kept.items():
        assert torch.equal(value, plain_steps[-1][name]) and torch.equal(value, steps[-1][name]), name
    assert files.keys() == plain_files.keys()
    assert any(not torch.equal(files[k], plain_files[k]) for k in files)


def _trainable_weights(pipe, trainer) -> dict:
    weights = {f"embedding.{n}": p.detach().clone() for n, p in trainer.embedding.named_parameters()}
    weights.update({f"transformer.{n}": p.detach().clone() for n, p in pipe.transformer.named_parameters()
                    if p.requires_grad})
    return weights


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path, tiny_dir, clips):
    """A real SIGINT to the CLI: exit 130 with a checkpoint, then --resume completes and installs the pack."""
    cmd = [sys.executable, "-m", "synmotion_cli", "learn", "clap", str(clips), "--base", str(tiny_dir),
           "--steps", "40"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("train: started"):
            proc.send_signal(signal.SIGINT)
            break
    rest_err = proc.stderr.read()
    proc.wait(timeout=120)
    err = "".join(lines) + rest_err
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    # resuming with another clips' prompt is refused, and the checkpoint stays for the right command
    other = subprocess.run(cmd + ["--resume", "--subject", "a dog"], capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and 'learnt from "a person claps", not "a dog claps"' in other.stderr, other.stderr
    done = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming clap at step" in done.stderr
    assert json.loads(done.stdout)["manifest"]["metrics"]["steps"] == 40


def test_spv_steps_change_no_motion_parameter_and_base_stays_frozen(tmp_path, tiny_dir, clips):
    """alpha=0: every step is a subject-prior step, so only the subject path may move."""
    from synmotion_hunyuan import bases
    from synmotion_hunyuan.runtime import load_pipeline, pick_runtime
    from synmotion_hunyuan.settings import LearnSettings, build
    from synmotion_hunyuan.tiny import TINY_DEFAULTS
    from synmotion_hunyuan.training import Trainer

    base = bases.resolve(str(tiny_dir))
    settings = build(LearnSettings, TINY_DEFAULTS["learn"], {"alpha": 0.0, "steps": 4})
    pipe = load_pipeline(base, pick_runtime(), training=True)
    base_weights = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    trainer = Trainer(pipe, base, pick_runtime(), settings, _learn_request(tmp_path, clips, base=str(tiny_dir)),
                      RecordingReporter(), {})
    trainer.prepare()
    before = {n: p.detach().clone() for n, p in trainer.embedding.named_parameters()}
    trainer.run()
    after = dict(trainer.embedding.named_parameters())
    for name, value in before.items():
        moved = not torch.equal(value, after[name].detach())
        assert moved == name.startswith(("res_sub", "z_sub")), name
    for name, value in pipe.transformer.state_dict().items():
        if "lora_B" in name:
            assert torch.count_nonzero(value) == 0, f"{name}: the adapter learned from SPV steps"
        elif "lora_" not in name:
            assert torch.equal(value, base_weights[name.replace(".base_layer", "")]), name


def test_caption_dropped_examples_train_the_adapter_on_the_empty_prompt(tmp_path, tiny_dir, clips):
    """-O caption_dropout: a dropped clip is read with the guidance's negative prompt, so it reaches the
    adapter but no part of the embedding, and the transformer sees exactly that prompt."""

    def train(dropout):
        pipe, trainer = _prepared_trainer(tmp_path / str(dropout), tiny_dir, clips,
                                          {"strategy": "joint", "steps": 3, "caption_dropout": dropout})
        texts = []
        pipe.transformer.register_forward_pre_hook(
            lambda _, args, kwargs: texts.append(kwargs["encoder_hidden_states"].detach().clone()), with_kwargs=True)
        before = {n: p.detach().clone() for n, p in trainer.embedding.named_parameters()}
        trainer.run()
        moved = {n for n, p in trainer.embedding.named_parameters() if not torch.equal(before[n], p.detach())}
        lora_b = [v for n, v in pipe.transformer.state_dict().items() if "lora_B" in n]
        return trainer.negative[0], texts, moved, any(torch.count_nonzero(v) for v in lora_b)

    empty, texts, moved, adapter_learned = train(0.999)
    assert len(texts) == 3 and all(torch.equal(t, empty.to(t.dtype)) for t in texts)
    assert not moved and adapter_learned
    empty, texts, moved, adapter_learned = train(0.0)
    assert not any(torch.equal(t, empty.to(t.dtype)) for t in texts if t.shape == empty.shape)
    assert moved and adapter_learned


def test_time_shift_sets_the_noise_levels_training_draws(tmp_path, tiny_dir, clips):
    """-O time_shift=S: a step's noise level is sigma = S*u / (1 + (S-1)*u) of the same draw u; 1 is u itself."""
    from synmotion_hunyuan.training import flow_matching_sigma

    def timesteps(shift):
        pipe, trainer = _prepared_trainer(tmp_path / str(shift), tiny_dir, clips,
                                          {"strategy": "joint", "steps": 4, "time_shift": shift})
        seen = []
        pipe.transformer.register_forward_pre_hook(
            lambda _, args, kwargs: seen.append(kwargs["timestep"].float() / 1000), with_kwargs=True)
        trainer.run()
        return torch.cat(seen)

    u = timesteps(1.0)
    assert len(u) == 4
    torch.testing.assert_close(timesteps(8.0), flow_matching_sigma(u, 8.0))
    assert torch.all(flow_matching_sigma(u, 8.0) > u)


def test_mirror_adds_each_clips_mirror_image_encoded_from_flipped_pixels(tmp_path, tiny_dir, clips):
    """-O mirror=true: the clips' mirror images join them as examples with the same prompt, each the VAE's
    encoding of the flipped pixels (not flipped latents: the VAE is not mirror-symmetric)."""
    from synmotion_hunyuan.latents import encode_frames

    pipe, plain = _prepared_trainer(tmp_path / "plain", tiny_dir, clips, {"strategy": "joint", "steps": 1})
    _, mirrored = _prepared_trainer(tmp_path / "mirror", tiny_dir, clips,
                                    {"strategy": "joint", "steps": 1, "mirror": True})
    n = len(plain.user)
    assert len(mirrored.user) == 2 * n
    s, clip = mirrored.s, mirrored.request.clips[0]
    pixels = media.decode(clip, fps=s.fps, height=s.height, width=s.width, frames=s.frames)
    flipped = encode_frames(pipe.vae, np.ascontiguousarray(pixels[:, :, ::-1]), "cpu", torch.float32)
    torch.testing.assert_close(mirrored.user[n].latents, flipped)
    assert torch.equal(mirrored.user[0].latents, plain.user[0].latents)
    assert not torch.allclose(mirrored.user[n].latents, mirrored.user[0].latents.flip(-1))
    assert mirrored.user[n].prompt is mirrored.user[0].prompt
    data = mirrored.run()["data"]   # and it trains, recording the clips as given
    assert data["clips"] == len(data["clip_files"]) == n and data["mirrored"]


def test_batch_accumulates_that_many_examples_per_step(tmp_path, tiny_dir, clips):
    """-O batch=3: three forward passes per optimiser step, one loss recorded per step."""
    pipe, trainer = _prepared_trainer(tmp_path, tiny_dir, clips, {"strategy": "joint", "steps": 2, "batch": 3})
    forwards = []
    pipe.transformer.register_forward_hook(lambda *_: forwards.append(1))
    result = trainer.run()
    assert len(forwards) == 6
    assert result["metrics"]["steps"] == 2


@pytest.mark.parametrize("preset, files, spv", [
    ("lora-only", {"t2v/lora.safetensors"}, True),
    ("motion-residue", {"t2v/embedding.safetensors"}, True),
    ("no-strategy", {"t2v/embedding.safetensors", "t2v/lora.safetensors"}, False),
])
def test_ablations_remove_exactly_their_parts(tmp_path, tiny_dir, clips, preset, files, spv):
    from synmotion_hunyuan.backend import HunyuanBackend

    draft = HunyuanBackend().learn(_learn_request(tmp_path, clips, base=str(tiny_dir), steps=2,
                                                  options={"preset": preset}), RecordingReporter())
    assert set(draft.files) == files
    assert (draft.manifest["data"]["spv_videos"] > 0) == spv
    if "t2v/embedding.safetensors" in files:
        names = set(load_file(str(draft.files["t2v/embedding.safetensors"])))
        assert any(n.startswith("res_mot") for n in names)
        assert not any(n.startswith(("res_sub", "refiner", "z_out")) for n in names) or preset != "motion-residue"


def test_previews_and_diffusers_lora_export(capsys, tmp_path, tiny_dir, clips):
    """Previews appear while training and travel with the pack; the LoRA exports for diffusers as is."""
    from diffusers import HunyuanVideoPipeline

    from synmotion_cli.paths import cache_dir

    r = run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "10", "-O", "preview_every=5",
            "-O", "preview_steps=2", "--json")
    assert r.code == 0, r.err
    previews = sorted((cache_dir() / "previews" / "clap-latest").glob("*.mp4"))
    assert [p.name for p in previews] == ["step-000005.mp4", "step-000010.mp4"]
    assert media.probe(previews[-1]).frames == 9
    assert "t2v/preview.mp4" in json.loads(r.out)["manifest"]["files"]

    lora = tmp_path / "clap-lora.safetensors"
    r = run(capsys, "packs", "export", "clap", lora, "--lora")
    assert r.code == 0 and r.out.strip() == str(lora)
    pipe = HunyuanVideoPipeline.from_pretrained(tiny_dir)
    pipe.load_lora_weights(str(tmp_path), weight_name=lora.name, adapter_name="clap")
    assert any("lora_A" in n for n, _ in pipe.transformer.named_parameters())


def test_two_packs_with_weights_and_user_spv_folder(capsys, tmp_path, tiny_dir, clips):
    """Two packs combine (one embedding, both adapters); `--spv DIR` replaces the synthesized SPV set."""
    spv = tmp_path / "spv"
    spv.mkdir()
    media.write_mp4(moving_square(12, 48, 64), spv / "a_cat_runs.mp4", fps=8)
    media.write_mp4(moving_square(12, 48, 64, step=2), spv / "a dog jumps.mp4", fps=8)
    r = run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "4", "--spv", spv, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)["manifest"]["data"]
    assert data["spv_videos"] == 2 and data["spv_source"].startswith("user folder")
    assert run(capsys, "learn", "wave", clips, "--base", tiny_dir, "--steps", "2").code == 0

    out = tmp_path / "both.mp4"
    r = run(capsys, "gen", "a fox claps", "--pack", "clap:0.8", "--pack", "wave:0.5", "--base", tiny_dir,
            "--seed", "1", "-o", out, "--json")
    assert r.code == 0, r.err
    meta = json.loads(r.out)["metadata"]
    assert meta["embedding_from"] == "clap:latest" and meta["adapters"] == "2"
    assert "clap:latest@" in meta["packs"] and ":0.8" in meta["packs"] and ":0.5" in meta["packs"]
    assert "wave" in r.err and "adapter only" in r.err

    bad = tmp_path / "spv-bad"
    bad.mkdir()
    media.write_mp4(moving_square(12, 48, 64), bad / "something.mp4", fps=8)
    r = run(capsys, "learn", "clap:v2", clips, "--base", tiny_dir, "--steps", "2", "--spv", bad)
    assert r.code == 2 and "something.mp4" in r.err


def test_a_base_sets_the_weight_of_packs_named_without_one(capsys, tmp_path, tiny_dir, clips):
    """A base's `defaults.gen.pack_weight` is the weight of `--pack NAME` (and of packs found in the prompt):
    the video is the one `--pack NAME:W` makes at that weight, and the metadata records the weight applied.
    A weight given with the pack wins over the base's."""
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_dir, base)
    info_file = base / "synmotion.json"
    info = json.loads(info_file.read_text())

    def set_pack_weight(weight):
        defaults = info.get("defaults", {})
        info_file.write_text(json.dumps({**info, "defaults": {**defaults, "gen": {**defaults.get("gen", {}),
                                                                                  "pack_weight": weight}}}))

    set_pack_weight(3.0)
    r = run(capsys, "learn", "clap", clips, "--base", base, "--steps", "6", "-O", "lr=0.05")
    assert r.code == 0, r.err

    def gen(name, *args):
        path = tmp_path / f"{name}.mp4"
        r = run(capsys, "gen", "a fox claps", *args, "--seed", "2", "--size", "32x48", "--frames", "5", "-o", path,
                "--json")
        assert r.code == 0, r.err
        return json.loads(r.out)["metadata"]["packs"], r.err, media.decode(path, fps=8, height=32, width=48, frames=5)

    found, found_err, found_frames = gen("found")           # the pack's motion is in the prompt
    named, named_err, named_frames = gen("named", "--pack", "clap")
    explicit, explicit_err, explicit_frames = gen("explicit", "--pack", "clap:3")
    one, _, one_frames = gen("one", "--pack", "clap:1")
    assert found.endswith(":3") and named.endswith(":3") and explicit.endswith(":3") and one.endswith(":1")
    assert "run at 3" in named_err and "run at 3" in found_err and "run at 3" not in explicit_err
    assert np.array_equal(named_frames, explicit_frames) and np.array_equal(found_frames, explicit_frames)
    assert not np.array_equal(named_frames, one_frames)   # the weight is applied, not only recorded

    set_pack_weight(9)
    r = run(capsys, "gen", "a fox claps", "--pack", "clap", "-o", tmp_path / "bad.mp4")
    assert r.code == 2 and "pack_weight=9" in r.err and r.err.count("Error:") == 1 and "Traceback" not in r.err


def test_manifest_names_every_file_it_stores(capsys, tiny_dir, clips):
    """Each stored file is referenced by its variant, so generation finds it (a pack with an unreferenced
    LoRA would silently generate without its adapter)."""
    r = run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "2", "--json")
    manifest = json.loads(r.out)["manifest"]
    variant = manifest["variants"]["t2v"]
    referenced = {variant[k] for k in ("embedding", "lora", "preview") if variant.get(k)}
    assert referenced == set(manifest["files"])
    assert variant["adapter_config"]["rank"] == 4


def test_a_fresh_gen_process_prints_no_library_notices(tmp_path, tiny_dir):
    """Progress and messages are synmotion's own: diffusers' and transformers' notices (e.g. the
    torchvision one that importing the I2V pipeline prints) stay quiet, in a process that imports them fresh."""
    from cli_runner import run_process

    r = run_process("gen", "a panda claps", "--base", tiny_dir, "--steps", "1", "-o", tmp_path / "v.mp4")
    assert r.code == 0, r.err
    for noise in ("[transformers]", "torchvision", "Loading", "it/s]"):
        assert noise not in r.err, r.err


def test_motion_weight_weighs_the_latent_pixels_a_clip_moves():
    """-O motion_weight=K: a still clip's loss is the plain MSE; in a moving one, an error where it moves costs
    up to K + 1 times one where it stays still, and the weights keep the scale of a plain MSE."""
    from types import SimpleNamespace

    from synmotion_hunyuan.training import flow_matching_loss, motion_map

    still = torch.randn(1, 4, 1, 6, 6).expand(1, 4, 5, 6, 6).clone()
    assert torch.count_nonzero(motion_map(still)) == 0
    moving = still.clone()
    moving[:, :, :, 2, 3] = torch.randn(1, 4, 5)           # one latent pixel changes over the frames
    m = motion_map(moving)
    assert m.shape == (1, 1, 1, 6, 6) and m[0, 0, 0, 2, 3] == 1 and m.sum() == 1
    assert torch.count_nonzero(motion_map(moving[:, :, :1])) == 0   # one latent frame: nothing moves

    class Predicts:   # a stand-in transformer that predicts a fixed velocity, so the loss is a known error
        config, dtype = SimpleNamespace(guidance_embeds=False, image_condition_type=None), torch.float32

        def __init__(self, pred):
            self.pred = pred

        def __call__(self, **kw):
            return (self.pred,)

    def loss(x0, pred, weight):
        return flow_matching_loss(Predicts(pred), x0, torch.zeros(1, 2, 8), torch.ones(1, 2), torch.zeros(1, 8),
                                  torch.Generator().manual_seed(0), shift=1.0, guidance=1.0, autocast=False,
                                  motion_weight=weight)

    def target(x0):
        g = torch.Generator().manual_seed(0)
        return torch.randn(x0.shape, generator=g) - x0

    for x0 in (still, moving):   # weight 0 is exactly the MSE
        pred = torch.randn(x0.shape)
        assert loss(x0, pred, 0.0) == torch.nn.functional.mse_loss(pred, target(x0))
    pred = torch.randn(still.shape)   # and so is any weight on a still clip
    torch.testing.assert_close(loss(still, pred, 8.0), torch.nn.functional.mse_loss(pred, target(still)))
    off_moving, off_still = target(moving).clone(), target(moving).clone()
    off_moving[:, :, :, 2, 3] += 1.0       # the same error at the moving pixel or at a still one
    off_still[:, :, :, 4, 0] += 1.0
    assert loss(moving, off_moving, 0.0) == pytest.approx(loss(moving, off_still, 0.0).item())
    assert loss(moving, off_moving, 8.0) == pytest.approx(9 * loss(moving, off_still, 8.0).item())


def test_the_trainer_learns_with_the_motion_weight_it_is_given(tmp_path, tiny_dir, clips):
    """-O motion_weight reaches the loss a step trains on: the same draws give another loss, 0 the plain one."""
    def first_loss(weight):
        options = {"strategy": "joint", "steps": 1, **({} if weight is None else {"motion_weight": weight})}
        _, trainer = _prepared_trainer(tmp_path / str(weight), tiny_dir, clips, options)
        return trainer.run()["metrics"]["final_loss"]

    plain = first_loss(None)
    assert first_loss(0.0) == plain
    assert first_loss(8.0) != pytest.approx(plain, rel=1e-4)
