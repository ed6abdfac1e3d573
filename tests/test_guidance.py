"""Classifier-free guidance with packs: the negative pass runs the base with the packs' adapters
(``cfg_negative="pack"``, the default, diffusers' usual) or the plain base (``"base"``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest_tiny import fresh_pipe, tiny_dir, toy_video_latents, transformer_forward  # noqa: E402,F401

from synmotion_cli.errors import UsageError  # noqa: E402
from synmotion_hunyuan.adapters import AdapterConfig, add_motion_adapter  # noqa: E402
from synmotion_hunyuan.sampling import batched_guidance, guidance_against_base, has_adapters, sample  # noqa: E402
from synmotion_hunyuan.settings import GenSettings, build  # noqa: E402
from synmotion_hunyuan.text_encoding import PromptEncoder  # noqa: E402


def _trained_adapter(transformer) -> None:
    add_motion_adapter(transformer, AdapterConfig(rank=4))
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.5)   # as if trained: B starts at zero


def test_negative_pass_runs_without_the_adapters(fresh_pipe):
    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    positive = encoder.encode("a panda claps")
    n_embeds, n_mask, n_pooled = encoder.negative()
    latents, _ = toy_video_latents()
    transformer = fresh_pipe.transformer

    def forward(embeds, mask, pooled):
        with torch.no_grad():
            return transformer_forward(transformer, latents, embeds, mask, pooled)

    base_negative = forward(n_embeds, n_mask, n_pooled)
    _trained_adapter(transformer)
    assert has_adapters(transformer)
    with_pack = forward(positive.embeds, positive.mask, positive.pooled)
    pack_negative = forward(n_embeds, n_mask, n_pooled)
    assert not torch.allclose(pack_negative, base_negative)   # the adapter changes the negative pass

    negative = dict(encoder_hidden_states=n_embeds, encoder_attention_mask=n_mask, pooled_projections=n_pooled)
    with guidance_against_base(transformer, negative, 4.0):
        guided = forward(positive.embeds, positive.mask, positive.pooled)
    torch.testing.assert_close(guided, base_negative + 4.0 * (with_pack - base_negative), rtol=0, atol=1e-5)
    # afterwards the hook is gone and the adapters are back on
    torch.testing.assert_close(forward(positive.embeds, positive.mask, positive.pooled), with_pack, rtol=0, atol=0)


def test_the_negative_pass_is_batched_with_the_prompts(fresh_pipe):
    """diffusers' true CFG (adapters in both passes) as one forward pass of batch 2: the same guided
    prediction as two passes, to float rounding. A negative of another length runs on its own."""
    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    positive = encoder.encode("a panda claps")
    n_embeds, n_mask, n_pooled = encoder.negative()
    latents, _ = toy_video_latents()
    transformer = fresh_pipe.transformer
    _trained_adapter(transformer)
    batches = []

    def count(module, args, kwargs):   # registered inside the guidance: after its own hook widens the call
        batches.append(kwargs["hidden_states"].shape[0])

    def forward(embeds, mask, pooled):
        with torch.no_grad():
            return transformer_forward(transformer, latents, embeds, mask, pooled)

    expected = forward(n_embeds, n_mask, n_pooled) + 4.0 * (
        forward(positive.embeds, positive.mask, positive.pooled) - forward(n_embeds, n_mask, n_pooled))
    for cut in (None, -1):   # the negative as long as the prompt, then one token shorter
        negative = dict(encoder_hidden_states=n_embeds[:, :cut], encoder_attention_mask=n_mask[:, :cut],
                        pooled_projections=n_pooled)
        batches.clear()
        with batched_guidance(transformer, negative, 4.0):
            handle = transformer.register_forward_pre_hook(count, with_kwargs=True)
            guided = forward(positive.embeds, positive.mask, positive.pooled)
            handle.remove()
        torch.testing.assert_close(guided, expected, rtol=0, atol=1e-5)
        assert batches == ([2] if cut is None else [1, 1])


def _video(pipe, cfg_negative: str, true_cfg_scale: float = 4.0) -> np.ndarray:
    encoder = PromptEncoder.from_pipeline(pipe)
    positive = encoder.encode("a panda claps")
    return sample(pipe, *positive.joined(), positive.pooled, height=16, width=16, frames=5, steps=2, guidance=1.0,
                  seed=0, negative=encoder.negative(), true_cfg_scale=true_cfg_scale, cfg_negative=cfg_negative)


def test_cfg_negative_matters_only_with_adapters_and_true_cfg(fresh_pipe):
    without = {mode: _video(fresh_pipe, mode) for mode in ("base", "pack")}
    np.testing.assert_array_equal(without["base"], without["pack"])     # nothing to switch off

    _trained_adapter(fresh_pipe.transformer)
    with_pack = {mode: _video(fresh_pipe, mode) for mode in ("base", "pack")}
    assert np.abs(with_pack["base"].astype(int) - with_pack["pack"].astype(int)).max() > 0
    assert np.abs(with_pack["pack"].astype(int) - without["pack"].astype(int)).max() > 0
    # without true CFG there is no negative pass at all
    np.testing.assert_array_equal(_video(fresh_pipe, "base", 1.0), _video(fresh_pipe, "pack", 1.0))


def test_cfg_negative_is_validated():
    assert build(GenSettings, {}).cfg_negative == "pack"
    assert build(GenSettings, {"cfg_negative": "base"}).cfg_negative == "base"
    with pytest.raises(UsageError, match="cfg_negative"):
        build(GenSettings, {"cfg_negative": "both"})


def test_gen_takes_cfg_negative_from_the_command_line(capsys, tmp_path, tiny_dir):
    from cli_runner import run
    from conftest_tiny import learn_tiny_clap

    common = learn_tiny_clap(capsys, tmp_path, tiny_dir)
    r = run(capsys, *common, "-O", "cfg_negative=base", "-o", tmp_path / "a.mp4", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metadata"]["cfg_negative"] == "base"
    r = run(capsys, *common, "-O", "cfg_negative=both", "-o", tmp_path / "b.mp4")
    assert r.code == 2 and "cfg_negative='both'" in r.err and r.err.count("Error:") == 1
    assert not (tmp_path / "b.mp4").exists()


@pytest.mark.parametrize("condition", ["latent_concat", "token_replace"])
def test_guidance_against_base_on_an_image_to_video_base(tmp_path, condition):
    from conftest_tiny import load_pipe
    from synmotion_hunyuan.tiny import save_tiny_pipeline

    pipe = load_pipe(save_tiny_pipeline(tmp_path / "i2v", i2v=True, condition=condition), i2v=True)
    image = (np.random.default_rng(0).random((16, 32, 3)) * 255).astype(np.uint8)
    encoder = PromptEncoder.from_pipeline(pipe)
    positive = encoder.encode("a panda claps", image=image)

    def video(mode):
        return sample(pipe, *positive.joined(), positive.pooled, height=16, width=32, frames=5, steps=2,
                      guidance=1.0, seed=0, negative=encoder.negative(), true_cfg_scale=4.0, cfg_negative=mode,
                      image=image)

    np.testing.assert_array_equal(video("base"), video("pack"))
    _trained_adapter(pipe.transformer)
    assert np.abs(video("base").astype(int) - video("pack").astype(int)).max() > 0
