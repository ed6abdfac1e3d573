"""Training the toy base: its data, the subject-weighted VAE recipe, and the command end to end at a tiny budget."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

pytest.importorskip("synmotion_toy.world")

from cli_runner import run  # noqa: E402
from synmotion_toy.world import render_clip, render_clip_and_mask  # noqa: E402
from synmotion_toy.world.render import paint_clip, plan_clip  # noqa: E402


@pytest.mark.parametrize("style", [None, "cut-paper", "pixel", "sketch"])
def test_subject_mask_marks_exactly_what_the_subject_changes(style):
    clip, mask = render_clip_and_mask("zebra", "jump", background="snow", style=style, seed=5)
    assert np.array_equal(clip, render_clip("zebra", "jump", background="snow", style=style, seed=5))
    scene = paint_clip(plan_clip("zebra", "jump", background="snow", style=style, seed=5), with_subject=False)
    assert mask.shape == clip.shape[:3] and mask.dtype == bool
    assert np.array_equal(clip[~mask], scene[~mask])          # outside the mask: the scene alone
    assert (clip[mask] != scene[mask]).any(axis=-1).all()     # inside: every pixel differs from it
    # a figure of this size covers a real part of the frame, in every frame, but far from all of it
    per_frame = mask.mean(axis=(1, 2))
    assert (per_frame > 0.03).all() and (per_frame < 0.5).all()


def test_subject_crops_hold_the_subject():
    import torch

    from synmotion_toy.base.train import _subject_crop

    _, mask = render_clip_and_mask("fox", "walk", seed=2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        y0, x0 = _subject_crop(mask[:5], 32, gen)
        assert 0 <= y0 <= 32 and 0 <= x0 <= 32
        assert mask[:5, y0:y0 + 32, x0:x0 + 32].any()
    # no subject in view: any crop inside the frame
    y0, x0 = _subject_crop(np.zeros((5, 64, 64), bool), 32, gen)
    assert 0 <= y0 <= 32 and 0 <= x0 <= 32


def test_training_items_cover_every_combination_with_a_quarter_plain():
    from synmotion_toy.base.dataset import items
    from synmotion_toy.world import BACKGROUNDS, BASE_MOTIONS, STYLES, SUBJECTS

    data = items(3456, 0)   # one full cycle: 12 subjects x 6 motions x 8 background slots x 6 style slots
    combos = collections.Counter((i.subject, i.motion, i.background, i.style) for i in data)
    assert len(combos) == len(SUBJECTS) * len(BASE_MOTIONS) * (len(BACKGROUNDS) + 1) * (len(STYLES) + 1)
    assert all(i.motion in BASE_MOTIONS for i in data)
    assert np.mean([i.background is None for i in data]) == pytest.approx(0.5)
    assert np.mean([i.style is None for i in data]) == pytest.approx(0.5)
    assert np.mean([i.background is None and i.style is None for i in data]) == pytest.approx(0.25)
    assert items(100, 3) == items(100, 3) and items(100, 3) != items(100, 4)


def test_train_base_command_writes_a_base_the_pipeline_loads(capsys, tmp_path):
    import torch
    from synmotion_hunyuan import bases
    from synmotion_hunyuan.runtime import load_pipeline, pick_runtime

    out = tmp_path / "base"
    r = run(capsys, "toy", "train-base", out, "--clips", "8", "--vae-minutes", "0.02", "--decoder-minutes", "0.02",
            "--transformer-minutes", "0.02", "--threads", "1")
    assert r.code == 0, r.err
    assert r.out.strip() == str(out)
    info = json.loads((out / "synmotion.json").read_text())
    training = info["training"]
    assert training["clips"] == 8 and training["vae_steps"] >= 1 and training["transformer_steps"] >= 1
    assert training["decoder_steps"] >= 1 and training["config"]["decoder_minutes"] == 0.02
    assert training["vae_final_recon"] > 0 and training["decoder_final_recon"] > 0
    # the VAE's reconstructions of held-out renders, measured before the transformer trains on its latents
    assert 0 < training["vae_error_elsewhere"] and 0 < training["vae_error_subject"] <= 255
    assert info["max_sequence_length"] == 32
    pipe = load_pipeline(bases.resolve(str(out)), pick_runtime(), training=False)
    # latents normalised per channel inside the VAE, so no global scale is left to apply
    assert pipe.vae.config.scaling_factor == 1.0 and pipe.transformer.config.in_channels == 16
    from synmotion_toy.base.train import bf16_supported

    assert training["bf16"] is bf16_supported() and training["config"]["mixed_precision"] is True
    assert training["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert training["config"]["transformer_subject_weight"] == 4.0


def test_train_base_keeps_a_given_vae_and_trains_only_the_transformer(capsys, tmp_path):
    import torch
    from diffusers import AutoencoderKLHunyuanVideo

    first = tmp_path / "first"
    r = run(capsys, "toy", "train-base", first, "--clips", "8", "--vae-minutes", "0.02", "--decoder-minutes", "0.02",
            "--transformer-minutes", "0.02", "--threads", "1")
    assert r.code == 0, r.err
    second = tmp_path / "second"
    r = run(capsys, "toy", "train-base", second, "--clips", "8", "--vae-from", first, "--subject-weight", "9",
            "--batch", "3", "--transformer-minutes", "0.02", "--threads", "1")
    assert r.code == 0, r.err
    training = json.loads((second / "synmotion.json").read_text())["training"]
    assert training["config"]["batch"] == 3
    assert training["vae_steps"] == 0 and training["vae_from"] == str(first.resolve())
    # a kept VAE gets no decoder phase unless one is asked for
    assert training["config"]["decoder_minutes"] == 0.0 and "decoder_steps" not in training
    # the kept VAE's history travels along: the first base's whole training record
    assert training["earlier_training"] == json.loads((first / "synmotion.json").read_text())["training"]
    assert training["earlier_training"]["vae_steps"] >= 1
    assert training["config"]["transformer_subject_weight"] == 9.0 and training["transformer_steps"] >= 1
    # the kept VAE was loaded from disk, but its config does not carry that machine's path
    assert not [c for c in second.glob("*/config.json") if "_name_or_path" in c.read_text()]
    old, new = (AutoencoderKLHunyuanVideo.from_pretrained(d / "vae").state_dict() for d in (first, second))
    # the same clips and seed: renormalising the kept VAE's latents changes nothing that matters
    for name, value in old.items():
        torch.testing.assert_close(new[name], value, atol=1e-4, rtol=1e-3, msg=name)


def test_train_base_continues_a_base_from_its_own_weights(capsys, tmp_path):
    import torch
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel
    from transformers import CLIPTextModel, LlamaModel

    first = tmp_path / "first"
    r = run(capsys, "toy", "train-base", first, "--clips", "8", "--vae-minutes", "0.02", "--decoder-minutes", "0.02",
            "--transformer-minutes", "0.02", "--threads", "1")
    assert r.code == 0, r.err

    def weights(folder, part, cls):
        return cls.from_pretrained(folder / part).state_dict()

    # No transformer steps: the continued base is the first one, so the start really is its weights
    same = tmp_path / "same"
    r = run(capsys, "toy", "train-base", same, "--clips", "8", "--from", first, "--seed", "1",
            "--transformer-minutes", "0", "--threads", "1")
    assert r.code == 0, r.err
    training = json.loads((same / "synmotion.json").read_text())["training"]
    assert training["transformer_from"] == str(first.resolve()) and training["vae_steps"] == 0
    assert training["transformer_steps"] == 0 and training["loss_curve_per_100_steps"] == []
    assert training["earlier_training"] == json.loads((first / "synmotion.json").read_text())["training"]
    old = weights(first, "transformer", HunyuanVideoTransformer3DModel)
    for name, value in weights(same, "transformer", HunyuanVideoTransformer3DModel).items():
        assert torch.equal(old[name], value), name
    # ... and it reads the prompts with the same frozen text encoders (a new seed must not draw new ones)
    for part, cls in (("text_encoder", LlamaModel), ("text_encoder_2", CLIPTextModel)):
        kept = weights(first, part, cls)
        assert all(torch.equal(kept[n], v) for n, v in weights(same, part, cls).items()), part
    # its tokenizers, loaded from the first base's folder, save as that base's did: no load state in the config
    for name in ("tokenizer", "tokenizer_2"):
        assert json.loads((same / name / "tokenizer_config.json").read_text()) == \
            json.loads((first / name / "tokenizer_config.json").read_text()), name

    # Some steps on fresh clips: the transformer moves on from there, the VAE is the first one's
    more = tmp_path / "more"
    r = run(capsys, "toy", "train-base", more, "--clips", "8", "--from", first, "--seed", "1", "--lr", "1e-3",
            "--transformer-minutes", "0.02", "--threads", "1")
    assert r.code == 0, r.err
    training = json.loads((more / "synmotion.json").read_text())["training"]
    assert training["transformer_steps"] >= 1 and training["config"]["lr"] == 1e-3
    new = weights(more, "transformer", HunyuanVideoTransformer3DModel)
    assert any(not torch.equal(old[name], new[name]) for name in old)
    vae_old, vae_new = (weights(d, "vae", AutoencoderKLHunyuanVideo) for d in (first, more))
    assert set(vae_old) == set(vae_new)
    # Only the latent normalisation (folded into quant_conv/post_quant_conv) follows the new clips
    for name in vae_old:
        if "quant_conv" not in name:
            assert torch.equal(vae_old[name], vae_new[name]), name

    # A decoder phase alone: the transformer and the encoder (so every latent) stay, the decoder moves
    sharper = tmp_path / "sharper"
    r = run(capsys, "toy", "train-base", sharper, "--clips", "8", "--from", first, "--transformer-minutes", "0",
            "--decoder-minutes", "0.02", "--threads", "1")
    assert r.code == 0, r.err
    training = json.loads((sharper / "synmotion.json").read_text())["training"]
    assert training["decoder_steps"] >= 1 and training["transformer_steps"] == 0
    for name, value in weights(sharper, "transformer", HunyuanVideoTransformer3DModel).items():
        assert torch.equal(old[name], value), name
    vae_sharper = weights(sharper, "vae", AutoencoderKLHunyuanVideo)
    assert all(torch.equal(vae_old[n], v) for n, v in vae_sharper.items() if n.startswith("encoder."))
    for name in ("quant_conv.weight", "quant_conv.bias"):   # renormalised on the same clips: no change that matters
        torch.testing.assert_close(vae_sharper[name], vae_old[name], atol=1e-4, rtol=1e-3)
    assert any(not torch.equal(vae_old[n], v) for n, v in vae_sharper.items() if n.startswith("decoder."))


def test_train_base_at_16_fps_trains_on_33_frames_and_gives_its_packs_and_videos_that_rate(capsys, tmp_path):
    out = tmp_path / "base"
    r = run(capsys, "toy", "train-base", out, "--fps", "16", "--clips", "8", "--vae-minutes", "0.02",
            "--decoder-minutes", "0.02", "--transformer-minutes", "0.02", "--threads", "1")
    assert r.code == 0, r.err
    info = json.loads((out / "synmotion.json").read_text())
    training = info["training"]
    assert training["config"]["fps"] == 16 and training["clip_frames"] == 33 and training["transformer_steps"] >= 1
    for use in ("learn", "gen"):   # 2 s at 16 fps: 4k + 1 frames, as the causal VAE needs
        assert (info["defaults"][use]["frames"], info["defaults"][use]["fps"]) == (33, 16.0)
    from synmotion_toy.base.train import DEFAULTS

    # everything else is the 8 fps base's
    assert {u: {k: v for k, v in o.items() if k not in ("frames", "fps")} for u, o in info["defaults"].items()} \
        == {u: {k: v for k, v in o.items() if k not in ("frames", "fps")} for u, o in DEFAULTS.items()}


def test_train_base_retimes_a_base_keeping_its_vae(capsys, tmp_path):
    import torch
    from diffusers import AutoencoderKLHunyuanVideo

    from synmotion_toy.base import weights_dir

    out = tmp_path / "base"
    r = run(capsys, "toy", "train-base", out, "--from", "toy", "--fps", "16", "--clips", "8",
            "--transformer-minutes", "0.02", "--threads", "1")
    assert r.code == 0, r.err
    assert "retiming toy from 8 to 16 fps" in r.err
    info = json.loads((out / "synmotion.json").read_text())
    training = info["training"]
    assert (training["transformer_from"], training["transformer_from_fps"]) == ("toy", 8)
    assert training["clip_frames"] == 33 and training["transformer_steps"] >= 1 and training["vae_steps"] == 0
    assert (info["defaults"]["gen"]["frames"], info["defaults"]["gen"]["fps"]) == (33, 16.0)
    # the VAE is the 8 fps base's: only the latent normalisation follows the new clips
    old, new = (AutoencoderKLHunyuanVideo.from_pretrained(d / "vae").state_dict() for d in (weights_dir(), out))
    for name in old:
        if "quant_conv" not in name:
            assert torch.equal(old[name], new[name]), name


def test_toy_clips_come_at_the_toy_base_rate(capsys, tmp_path):
    from synmotion_cli import media
    from synmotion_toy.base import clip_rate, weights_dir

    learn = json.loads((weights_dir() / "synmotion.json").read_text())["defaults"]["learn"]
    assert clip_rate() == (learn["frames"], learn["fps"])
    r = run(capsys, "toy", "clips", "wave", tmp_path / "c", "-n", "1", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert (data["frames"], data["fps"]) == clip_rate()
    clip = media.probe(tmp_path / "c" / "wave-0.mp4")
    assert (clip.frames, clip.fps) == (learn["frames"], learn["fps"])


@pytest.mark.parametrize("args, says", [(["--fps", "12"], "multiple of 8")])
def test_train_base_at_a_frame_rate_it_cannot_use_fails_at_once(capsys, tmp_path, args, says):
    out = tmp_path / "base"
    r = run(capsys, "toy", "train-base", out, *args, "--clips", "8")
    assert r.code == 2 and r.err.count("\n") <= 2 and says in r.err, r.err
    assert not out.exists()


def test_train_base_continued_with_another_vae_fails_at_once(capsys, tmp_path):
    out = tmp_path / "base"
    r = run(capsys, "toy", "train-base", out, "--from", "toy", "--vae-from", tmp_path, "--clips", "8")
    assert r.code == 2 and r.err.count("\n") <= 2 and "keeps its own VAE" in r.err
    assert not out.exists()


def test_train_base_from_a_folder_that_is_no_base_fails_at_once(capsys, tmp_path):
    out = tmp_path / "base"
    r = run(capsys, "toy", "train-base", out, "--vae-from", tmp_path, "--clips", "8")
    assert r.code == 2 and r.err.count("\n") <= 2 and "not a diffusers model directory" in r.err
    assert not out.exists()


def test_train_base_on_a_missing_gpu_fails_before_any_work(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out = tmp_path / "base"
    r = run(capsys, "toy", "train-base", out, "--device", "cuda", "--clips", "8")
    assert r.code == 5 and r.err.count("\n") <= 2 and "no CUDA GPU" in r.err
    assert not out.exists()


def test_latent_normalisation_folded_into_the_vae_keeps_decoding_and_normalises_encoding():
    import torch
    from diffusers import AutoencoderKLHunyuanVideo

    from synmotion_toy.base import architecture as arch
    from synmotion_toy.base.train import encode_latents, normalize_latent_channels

    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo(**{**arch.VAE_CONFIG, "block_out_channels": (8, 8, 8)}).eval()
    with torch.no_grad():   # uneven channels, as a trained VAE leaves them
        vae.quant_conv.weight[:16] *= torch.linspace(0.2, 3.0, 16).view(-1, 1, 1, 1, 1)
        vae.quant_conv.bias[:16] += torch.linspace(-1.0, 1.0, 16)
    clips = np.stack([render_clip(s, "walk", seed=k)[:5, :32, :32] for k, s in enumerate(["fox", "panda", "frog"])])
    latents = encode_latents(vae, clips)
    x = torch.from_numpy(clips).float().permute(0, 4, 1, 2, 3) / 127.5 - 1.0
    with torch.no_grad():
        before = vae.decode(vae.encode(x).latent_dist.mode()).sample
        normalised = normalize_latent_channels(vae, latents)
        after_latents = vae.encode(x).latent_dist.mode()
        after = vae.decode(after_latents).sample
    assert vae.config.scaling_factor == 1.0
    torch.testing.assert_close(after_latents, normalised, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(normalised.mean(dim=(0, 2, 3, 4)), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised.std(dim=(0, 2, 3, 4)), torch.ones(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)     # the decoder undoes it exactly


def test_latent_subject_masks_follow_the_causal_vae_grid():
    import torch
    from diffusers import AutoencoderKLHunyuanVideo

    from synmotion_toy.base import architecture as arch
    from synmotion_toy.base.train import encode_latents, latent_subject_masks

    masks = np.zeros((2, 17, 64, 64), bool)
    masks[0, 0, 10, 20] = True        # frame 0 alone makes latent frame 0
    masks[0, 5, 63, 0] = True         # frames 5-8 make latent frame 2
    masks[1, 16, 33, 47] = True       # frames 13-16 make latent frame 4
    subject = latent_subject_masks(masks, temporal=4, spatial=4, batch=1)
    assert subject.shape == (2, 1, 5, 16, 16) and subject.dtype == torch.float32
    assert {tuple(i) for i in subject.nonzero().tolist()} == {(0, 0, 0, 2, 5), (0, 0, 2, 15, 0), (1, 0, 4, 8, 11)}
    # and on a real render, the grid is the VAE's own latent grid
    vae = AutoencoderKLHunyuanVideo(**{**arch.VAE_CONFIG, "block_out_channels": (8, 8, 8)}).eval()
    clip, mask = render_clip_and_mask("panda", "walk", seed=1)
    latents = encode_latents(vae, clip[None])
    subject = latent_subject_masks(mask[None], vae.config.temporal_compression_ratio,
                                   vae.config.spatial_compression_ratio)
    assert subject.shape[2:] == latents.shape[2:] and 0.05 < subject.mean() < 0.6


def test_subject_weighted_loss_weighs_the_subject_and_keeps_the_plain_loss_scale():
    import torch
    import torch.nn.functional as F

    from synmotion_toy.base.train import subject_weighted_mse

    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 16, 5, 4, 4, generator=gen, requires_grad=True)
    target = torch.randn(2, 16, 5, 4, 4, generator=gen)
    subject = (torch.rand(2, 1, 5, 4, 4, generator=gen) < 0.3).float()
    torch.testing.assert_close(subject_weighted_mse(pred, target, subject, 0.0), F.mse_loss(pred, target))
    torch.testing.assert_close(subject_weighted_mse(pred, target, torch.ones_like(subject), 4.0), F.mse_loss(pred, target))
    subject_weighted_mse(pred, target, subject, 4.0).backward()
    # per unit of error, a subject pixel's gradient is 5 times a background pixel's
    ratio = pred.grad / (pred - target).detach()
    on, off = ratio[subject.expand_as(pred).bool()], ratio[~subject.expand_as(pred).bool()]
    torch.testing.assert_close(on / off.mean(), torch.full_like(on, 5.0))
    torch.testing.assert_close(off, torch.full_like(off, off.mean().item()))


def test_timed_loop_plans_from_the_steady_speed_not_the_slow_first_steps(monkeypatch):
    """A GPU's first steps are slow (kernel selection, caches): a plan made from them would end the schedule,
    and the run, long before the time budget is spent."""
    from synmotion_toy.base import train

    clock, plans = [0.0], []
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])

    def step(i, planned):
        plans.append(planned)
        clock[0] += 1.0 if i < 10 else 0.125     # ten warm-up steps of a second, then an eighth of a second each

    steps = train._timed_loop(1.0, step, lambda _: None, "t")
    # 10 s of warm-up and 3.75 s for steps 10-40, then 46.25 s left for 370 steps
    assert steps == 410 and plans[-1] == 410 and plans[0] == 10**9

    # A run that speeds up later (a shared machine freed) is re-planned and still uses its whole budget
    clock[0], plans[:] = 0.0, []

    def faster(i, planned):
        plans.append(planned)
        clock[0] += 0.25 if i < 100 else 0.125

    steps = train._timed_loop(1.0, faster, lambda _: None, "t")
    assert clock[0] == 60 and steps == 100 + 280 and plans[100] == 100 + 140 and plans[-1] > 360


def test_rendering_in_worker_processes_gives_the_same_training_set():
    """Training renders with --threads processes: each clip must depend on its item alone, not on which process
    drew it or in what order."""
    import numpy as np
    from synmotion_toy.base.dataset import items, render_with_masks

    batch = items(70, 5)   # three chunks, the last one short
    clips, masks = render_with_masks(batch)
    clips2, masks2 = render_with_masks(batch, workers=2)
    assert np.array_equal(clips, clips2) and np.array_equal(masks, masks2)
    assert masks.any() and clips.std() > 0


def test_rendering_falls_back_to_this_process_when_workers_cannot_start(monkeypatch):
    import concurrent.futures

    import numpy as np
    from synmotion_toy.base.dataset import items, render_with_masks

    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise concurrent.futures.process.BrokenProcessPool("a worker died")

        def __exit__(self, *exc):
            return False

    batch = items(64, 5)
    expected = render_with_masks(batch)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Broken)
    clips, masks = render_with_masks(batch, workers=2)
    assert np.array_equal(clips, expected[0]) and np.array_equal(masks, expected[1])


def test_update_moves_the_moving_average_toward_the_new_weights_by_its_decay():
    import copy

    import torch
    from synmotion_toy.base.train import update

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    ema = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(1.0)   # an average apart from the weights, so the update is visible
    before = [p.clone() for p in ema.parameters()]
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    update(opt, params, model(torch.randn(5, 3)).square().mean(), ema, model, i=90, ema_max=0.999)
    decay = min(0.999, 91 / 100)
    for e, old, new in zip(ema.parameters(), before, model.parameters()):
        torch.testing.assert_close(e, decay * old + (1 - decay) * new)
    assert all(p.grad is None for p in params)   # gradients cleared for the next step
