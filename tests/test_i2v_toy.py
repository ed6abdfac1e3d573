"""The toy image-to-video base: made from the toy base so that it starts as exactly that model, built by one
command (here with a budget of seconds), and a clear error while its weights are not built."""

from __future__ import annotations

import json

import pytest
import torch

from cli_runner import run
from conftest_tiny import SEED, tiny_dir, toy_video_latents  # noqa: F401  (session fixture)

pytest.importorskip("synmotion_toy")


def test_token_replace_transformer_starts_from_the_text_to_video_weights(tiny_dir):
    """token_replace adds no parameter: every weight is T2V's, and only frame 0's modulation differs."""
    from diffusers import HunyuanVideoTransformer3DModel
    from synmotion_toy.base.i2v import image_to_video_transformer

    t2v = HunyuanVideoTransformer3DModel.from_pretrained(tiny_dir / "transformer")
    i2v = image_to_video_transformer(t2v, "token_replace")
    assert i2v.config.image_condition_type == "token_replace" and i2v.config.in_channels == t2v.config.in_channels
    weights = t2v.state_dict()
    assert i2v.state_dict().keys() == weights.keys()
    assert all(torch.equal(v, weights[k]) for k, v in i2v.state_dict().items())
    with pytest.raises(ValueError, match="unknown image condition"):
        image_to_video_transformer(t2v, "channel_concat")


def test_latent_concat_transformer_starts_as_the_text_to_video_one(tiny_dir):
    """The image-latent and mask channels are zero-initialised: whatever they hold, the output is T2V's."""
    from diffusers import HunyuanVideoTransformer3DModel
    from synmotion_toy.base.i2v import image_to_video_transformer

    t2v = HunyuanVideoTransformer3DModel.from_pretrained(tiny_dir / "transformer")
    i2v = image_to_video_transformer(t2v, "latent_concat")
    assert i2v.config.in_channels == 9 and i2v.config.image_condition_type == "latent_concat"
    latents, _ = toy_video_latents(SEED)
    generator = torch.Generator().manual_seed(1)
    condition = torch.randn(1, 5, *latents.shape[2:], generator=generator)
    args = dict(timestep=torch.tensor([500.0]), encoder_hidden_states=torch.randn(1, 6, 16, generator=generator),
                encoder_attention_mask=torch.ones(1, 6), pooled_projections=torch.randn(1, 8, generator=generator),
                guidance=torch.tensor([6000.0]), return_dict=False)
    with torch.no_grad():
        expected = t2v(hidden_states=latents, **args)[0]
        got = i2v(hidden_states=torch.cat([latents, condition], dim=1), **args)[0]
    assert torch.equal(expected, got)


@pytest.mark.parametrize("condition", ["token_replace", "latent_concat"])
def test_train_i2v_base_command_writes_a_loadable_base(capsys, tmp_path, condition):
    """The real command on the shipped toy base, with a budget of a few steps, for either image condition."""
    from synmotion_hunyuan import bases
    from synmotion_hunyuan.runtime import load_pipeline, pick_runtime

    out = tmp_path / "toy-i2v"
    r = run(capsys, "toy", "train-i2v-base", out, "--minutes", "0.03", "--clips", "4", "--batch", "2",
            "--threads", "1", "--condition", condition)
    assert r.code == 0, r.err
    assert r.out.strip() == str(out)
    info = json.loads((out / "synmotion.json").read_text())
    assert info["t2v_base"] == "toy" and info["image_emb_len"] == 64 and info["training"]["transformer_steps"] >= 1
    assert info["training"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    # its parts come from the toy base on disk; their configs do not carry this machine's paths
    assert not [c for c in out.glob("*/config.json") if "_name_or_path" in c.read_text()]
    from synmotion_toy.base.architecture import TOKENIZER_LOAD_STATE

    for config in out.glob("tokenizer*/tokenizer_config.json"):
        assert not set(json.loads(config.read_text())) & set(TOKENIZER_LOAD_STATE), config
    spec = bases.resolve(str(out))
    assert bases.t2v_partner(spec) == "toy"
    pipe = load_pipeline(spec, pick_runtime(), training=False, i2v=True)
    assert pipe.transformer.config.image_condition_type == condition
    toy = load_pipeline(bases.resolve("toy"), pick_runtime(), training=False)
    # the same frozen Llama inside the Llava, the same VAE
    llama = pipe.text_encoder.model.language_model.state_dict()
    assert all(torch.equal(v, llama[k]) for k, v in toy.text_encoder.state_dict().items())
    assert all(torch.equal(v, pipe.vae.state_dict()[k]) for k, v in toy.vae.state_dict().items())


def test_missing_toy_i2v_weights_say_how_to_build_them(capsys, tmp_path, monkeypatch):
    from synmotion_toy.base import i2v

    monkeypatch.setattr(i2v, "WEIGHTS_I2V", tmp_path / "weights-i2v")
    image = tmp_path / "c.png"
    from PIL import Image

    Image.new("RGB", (20, 30), (200, 10, 10)).save(image)
    r = run(capsys, "gen", "--image", image, "a cat claps", "--base", "toy", "--no-pack", "-o", tmp_path / "o.mp4")
    assert r.code == 3 and "not built yet" in r.err and "synmotion toy train-i2v-base" in r.err


def test_shipped_toy_i2v_base_generates_from_an_image_out_of_the_box(capsys, tmp_path):
    """`gen --image` on a CPU with nothing configured: the shipped toy-i2v, its frame count and size."""
    from PIL import Image

    from synmotion_cli import media
    from synmotion_toy.world import render_clip

    image = tmp_path / "panda.png"
    Image.fromarray(render_clip("panda", "stand-still", seed=3)[0]).resize((96, 80)).save(image)
    out = tmp_path / "o.mp4"
    r = run(capsys, "gen", "--image", image, "a panda stands still", "--base", "toy", "--no-pack", "--steps", "4",
            "-o", out, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metadata"]["base"] == "toy-i2v"
    info = media.probe(out)
    assert (info.frames, info.height, info.width) == (17, 64, 64)
