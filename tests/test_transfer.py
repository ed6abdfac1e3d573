"""Motion-transfer guidance (``gen -O transfer=W``): each step is the plain base's prediction for the asked
prompt plus W x (the pack on its own prompt - the plain base on that prompt)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest_tiny import fresh_pipe, tiny_dir, toy_video_latents, transformer_forward  # noqa: E402,F401

from synmotion_cli.errors import UsageError  # noqa: E402
from synmotion_hunyuan.adapters import AdapterConfig, add_motion_adapter  # noqa: E402
from synmotion_hunyuan.sampling import (Transfer, encode_for_sampling, sample, transfer_guidance,  # noqa: E402
                                        without_static_part)
from synmotion_hunyuan.settings import GenSettings, build  # noqa: E402
from synmotion_hunyuan.text_encoding import PromptEncoder  # noqa: E402


def _adapter(transformer, trained: bool = True) -> None:
    add_motion_adapter(transformer, AdapterConfig(rank=4))
    if trained:
        with torch.no_grad():
            for name, param in transformer.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn_like(param) * 0.5)   # as if trained: B starts at zero


def _plain(encoded) -> tuple:
    return (*encoded.joined(), encoded.pooled)


def _reference(encoder, weight: float, embedding_shift: float = 0.3, image=None) -> Transfer:
    """The pack's own prompt, plainly and through a stand-in for the pack's embedding (a shift of it)."""
    embeds, mask, pooled = plain = _plain(encoder.encode("a person claps", image=image))
    return Transfer(prompt="a person claps", pack=(embeds + embedding_shift, mask, pooled), base=plain, weight=weight)


def _kwargs(encoding: tuple) -> dict:
    """The transformer's text keyword arguments for (embeds, mask, pooled)."""
    embeds, mask, pooled = encoding
    return dict(encoder_hidden_states=embeds, encoder_attention_mask=mask, pooled_projections=pooled)


def test_each_step_is_the_base_plus_the_packs_delta_on_its_own_prompt(fresh_pipe):
    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    asked = _kwargs(_plain(encoder.encode("a panda claps")))
    negative = _kwargs(_plain(encoder.encode("")))
    reference = _reference(encoder, weight=2.5)
    latents, _ = toy_video_latents()
    transformer = fresh_pipe.transformer

    def forward(text: dict):
        with torch.no_grad():
            return transformer_forward(transformer, latents, text["encoder_hidden_states"],
                                       text["encoder_attention_mask"], text["pooled_projections"])

    _adapter(transformer)
    with_pack_asked = forward(asked)
    pack, base = _kwargs(reference.pack), _kwargs(reference.base)
    with_pack = forward(pack)       # the pack on its own prompt: adapters on
    transformer.disable_lora()
    asked_base, unconditional, reference_base = forward(asked), forward(negative), forward(base)
    transformer.enable_lora()
    assert not torch.allclose(with_pack_asked, asked_base)   # the adapter does something

    delta = 2.5 * (with_pack - reference_base)
    with transfer_guidance(transformer, pack, base, 2.5, negative, 4.0):
        guided = forward(asked)
    torch.testing.assert_close(guided, unconditional + 4.0 * (asked_base - unconditional) + delta, rtol=0, atol=1e-5)
    with transfer_guidance(transformer, pack, base, 2.5, None, 4.0):   # a guidance-distilled base: no negative pass
        distilled = forward(asked)
    torch.testing.assert_close(distilled, asked_base + delta, rtol=0, atol=1e-5)
    # afterwards the hook is gone and the adapters are back on
    torch.testing.assert_close(forward(asked), with_pack_asked, rtol=0, atol=0)


def test_the_static_part_of_the_packs_term(fresh_pipe):
    """``static``: the pack's term keeps that share of its mean over the latent frames at each latent pixel;
    at 0 what it adds sums to nothing over the frames, and what changes from frame to frame is untouched."""
    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    asked = _kwargs(_plain(encoder.encode("a panda claps")))
    reference = _reference(encoder, weight=3.0)
    pack, base = _kwargs(reference.pack), _kwargs(reference.base)
    latents, _ = toy_video_latents()
    transformer = fresh_pipe.transformer
    _adapter(transformer)

    def forward(text: dict):
        with torch.no_grad():
            return transformer_forward(transformer, latents, text["encoder_hidden_states"],
                                       text["encoder_attention_mask"], text["pooled_projections"])

    with_pack = forward(pack)
    transformer.disable_lora()
    asked_base, reference_base = forward(asked), forward(base)
    transformer.enable_lora()
    delta = with_pack - reference_base
    static = delta.mean(dim=2, keepdim=True)
    assert static.abs().max() > 1e-3 and (delta - static).abs().max() > 1e-3   # both parts are there to remove
    for keep in (0.0, 0.5, 1.0):
        with transfer_guidance(transformer, pack, base, 3.0, None, 1.0, static=keep):
            guided = forward(asked)
        added = guided - asked_base
        torch.testing.assert_close(added, 3.0 * (delta - (1 - keep) * static), rtol=0, atol=1e-5)
        torch.testing.assert_close(added.mean(dim=2, keepdim=True), 3.0 * keep * static, rtol=0, atol=1e-5)
        torch.testing.assert_close(added.diff(dim=2), 3.0 * delta.diff(dim=2), rtol=0, atol=1e-5)


def test_the_static_part_leaves_an_image_frame_out():
    """An image-to-video base's clean image frame (token_replace: its prediction is discarded) takes no part
    in the mean; keep=1 returns the term itself."""
    delta = torch.randn(1, 4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    assert without_static_part(delta, 1.0, slice(1, None)) is delta
    out = without_static_part(delta, 0.0, slice(1, None))
    torch.testing.assert_close(out[:, :, 1:].mean(dim=2), torch.zeros(1, 4, 2, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(out - delta, (out - delta)[:, :, :1].expand_as(delta))   # one shift for all frames
    torch.testing.assert_close(out[:, :, 0], delta[:, :, 0] - delta[:, :, 1:].mean(dim=2))


def _video(pipe, transfer: Transfer | None, image=None, width: int = 16, start: float = 0.0) -> np.ndarray:
    encoder = PromptEncoder.from_pipeline(pipe)
    asked = encoder.encode("a panda claps", image=image)
    return sample(pipe, *asked.joined(), asked.pooled, height=16, width=width, frames=5, steps=2, guidance=1.0, seed=0,
                  negative=encoder.negative(), true_cfg_scale=4.0, image=image, transfer=transfer,
                  transfer_start=start)


def _assert_same_video(a: np.ndarray, b: np.ndarray) -> None:
    """The same video up to float rounding: the plain base's passes run batched with others (a batch of three
    rounds differently from one of two), which moves a rare pixel by one level."""
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())


def _assert_other_video(a: np.ndarray, b: np.ndarray) -> None:
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() > 1 and (diff > 0).mean() > 0.05, (diff.max(), (diff > 0).mean())


def test_a_pack_that_changes_nothing_transfers_nothing(fresh_pipe):
    """An untrained adapter (B = 0) and an identity embedding: the video is the plain base's."""
    plain = _video(fresh_pipe, None)
    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    _adapter(fresh_pipe.transformer, trained=False)
    _assert_same_video(_video(fresh_pipe, _reference(encoder, 3.0, embedding_shift=0.0)), plain)
    _assert_other_video(_video(fresh_pipe, _reference(encoder, 3.0)), plain)


def test_steps_before_the_start_run_the_plain_base(fresh_pipe):
    """``transfer_start``: the first steps leave out the pack's term and its two passes; a start past the last
    step gives exactly the plain base's video, a start halfway a video between that and full transfer."""
    plain = _video(fresh_pipe, None)
    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    _adapter(fresh_pipe.transformer)
    reference = _reference(encoder, 3.0)
    passes = []
    fresh_pipe.transformer.register_forward_pre_hook(lambda *_: passes.append(1))

    def video(start):
        passes.clear()
        return _video(fresh_pipe, reference, start=start), len(passes)

    full, full_passes = video(0.0)
    never, _ = video(0.99)           # 2 steps: the guidance would start at step 2, after the last
    half, half_passes = video(0.5)   # step 0 without it, step 1 with it
    np.testing.assert_array_equal(never, plain)
    # a step is one pass of the asked and the negative prompt batched, then + the base on the pack's prompt in
    # that batch and a pass of the pack
    assert (full_passes, half_passes) == (2 * 2, 1 + 2)
    _assert_other_video(half, full)
    _assert_other_video(half, plain)


@pytest.mark.parametrize("condition", ["latent_concat", "token_replace"])
def test_transfer_on_an_image_to_video_base(tmp_path, condition):
    from conftest_tiny import load_pipe
    from synmotion_hunyuan.tiny import save_tiny_pipeline

    pipe = load_pipe(save_tiny_pipeline(tmp_path / "i2v", i2v=True, condition=condition), i2v=True)
    from synmotion_hunyuan.image_condition import denoised_frames

    # the static part of the pack's term is taken over these frames: not token_replace's clean image frame
    assert denoised_frames(pipe.transformer) == (slice(1, None) if condition == "token_replace" else slice(None))
    image = (np.random.default_rng(0).random((16, 32, 3)) * 255).astype(np.uint8)
    encoder = PromptEncoder.from_pipeline(pipe)
    identity = _reference(encoder, 3.0, embedding_shift=0.0, image=image)   # it sees the video's image too
    without = _video(pipe, None, image, width=32)
    _adapter(pipe.transformer, trained=False)
    _assert_same_video(_video(pipe, identity, image, width=32), without)   # p - b = 0: nothing moves
    _assert_other_video(_video(pipe, _reference(encoder, 3.0, image=image), image, width=32), without)


def test_without_packs_there_is_nothing_to_transfer(fresh_pipe):
    from synmotion_cli.reporting import Reporter

    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    *_, used, reference = encode_for_sampling(encoder, "a panda claps", None, None, (), Reporter(), transfer=3.0)
    assert used is None and reference is None


def test_transfer_is_validated():
    assert build(GenSettings, {}).transfer == 0.0
    assert build(GenSettings, {"transfer": "2.5"}).transfer == 2.5
    for bad in ("-1", "nan"):
        with pytest.raises(UsageError, match="transfer"):
            build(GenSettings, {"transfer": bad})
    with pytest.raises(UsageError, match="choose one"):
        build(GenSettings, {"transfer": "1", "cfg_negative": "base"})
    assert build(GenSettings, {"transfer_start": "0.15"}).transfer_start == 0.15
    for bad in ("-0.1", "1", "nan"):
        with pytest.raises(UsageError, match="transfer_start"):
            build(GenSettings, {"transfer_start": bad})
    assert build(GenSettings, {}).transfer_static == 1.0
    assert build(GenSettings, {"transfer_static": "0"}).transfer_static == 0.0
    for bad in ("-0.1", "1.5", "nan"):
        with pytest.raises(UsageError, match="transfer_static"):
            build(GenSettings, {"transfer_static": bad})


def test_gen_with_transfer_through_the_cli(capsys, tmp_path, tiny_dir):
    from cli_runner import run
    from conftest_tiny import learn_tiny_clap

    common = learn_tiny_clap(capsys, tmp_path, tiny_dir)
    r = run(capsys, *common, "-O", "transfer=2", "-o", tmp_path / "a.mp4", "--json")
    assert r.code == 0, r.err
    metadata = json.loads(r.out)["metadata"]
    assert metadata["transfer"] == "2.0" and metadata["transfer_prompt"] == "a person claps"
    assert 'motion-transfer guidance at 2 from "a person claps"' in r.err
    assert "cfg_negative" not in metadata     # transfer runs its own passes (empty values are not written)
    assert "transfer_start" not in metadata and "after the first" not in r.err
    r = run(capsys, *common, "-O", "transfer=2", "-O", "transfer_start=0.5", "-o", tmp_path / "late.mp4", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metadata"]["transfer_start"] == "0.5" and "after the first 50% of the steps" in r.err
    assert "transfer_static" not in json.loads(r.out)["metadata"]
    r = run(capsys, *common, "-O", "transfer=2", "-O", "transfer_static=0", "-o", tmp_path / "moving.mp4", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metadata"]["transfer_static"] == "0.0" and "0% of its static part" in r.err
    r = run(capsys, *common, "-o", tmp_path / "b.mp4", "--json")
    assert r.code == 0 and json.loads(r.out)["metadata"]["transfer"] == "0.0"
    r = run(capsys, *common, "-O", "transfer=1", "-O", "cfg_negative=base", "-o", tmp_path / "c.mp4")
    assert r.code == 2 and "choose one" in r.err and r.err.count("Error:") == 1
    r = run(capsys, *common, "-O", "transfer=-2", "-o", tmp_path / "d.mp4")
    assert r.code == 2 and "transfer=-2.0" in r.err
    assert not (tmp_path / "c.mp4").exists() and not (tmp_path / "d.mp4").exists()


def test_the_reference_is_the_pack_whose_motion_the_prompt_names(capsys, tmp_path, tiny_dir):
    from cli_runner import run
    from conftest_tiny import write_clap_clips

    clips = write_clap_clips(tmp_path / "clips", 2)
    for motion in ("clap", "wave"):
        assert run(capsys, "learn", motion, clips, "--base", tiny_dir, "--steps", "2").code == 0
    for prompt, reference in (("a panda claps", "a person claps"), ("a panda waves", "a person waves")):
        r = run(capsys, "gen", prompt, "--pack", "clap", "--pack", "wave", "--base", tiny_dir, "--size", "16x32",
                "--frames", "5", "--steps", "2", "-O", "transfer=2", "-o", tmp_path / f"{prompt}.mp4", "--json")
        assert r.code == 0, r.err
        assert json.loads(r.out)["metadata"]["transfer_prompt"] == reference
