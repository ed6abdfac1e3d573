"""Image-to-video: SynMotion on a tiny random-weight HunyuanVideo-I2V saved to disk and loaded the users' way.
The dual embeddings start as the base, training moves exactly the right parameters, the CLI learns and
generates the I2V variant beside the T2V one, and bad or odd images are handled."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import run
from conftest_tiny import load_pipe, tiny_dir, write_clap_clips  # noqa: F401  (session fixture)

from synmotion_cli import media
from synmotion_cli.backend import LearnRequest
from synmotion_cli.reporting import RecordingReporter


@pytest.fixture(scope="session")
def tiny_i2v_dir(tmp_path_factory):
    from synmotion_hunyuan.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-hunyuan-i2v"), i2v=True)


@pytest.fixture(scope="session")
def tiny_i2v_token_dir(tmp_path_factory):
    """Like the default HunyuanVideo-I2V: latent frame 0 is the image latent, guidance-distilled."""
    from synmotion_hunyuan.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-hunyuan-i2v-token"), i2v=True,
                              condition="token_replace")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_clap_clips(tmp_path_factory.mktemp("clips"), 2)


def _image(path, height, width, seed=0):
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_fresh_module_gives_exactly_the_base_i2v_prompt_embeddings(tiny_i2v_dir):
    """[image tokens, text tokens] as the pipeline encodes them; the text reordered [motion, subject, …]."""
    from synmotion_cli.prompts import parse_roles
    from synmotion_hunyuan.embedding import DualEmbedding, reorder_index
    from synmotion_hunyuan.text_encoding import PromptEncoder

    pipe = load_pipe(tiny_i2v_dir, i2v=True)
    encoder = PromptEncoder.from_pipeline(pipe, tiny_i2v_dir)
    image = Image.open(_image(tiny_i2v_dir.parent / "i.png", 32, 32))
    encoded = encoder.encode(parse_roles("a panda claps", ["clap"]), image=image)
    module = DualEmbedding.from_encoder(encoder, "claps", image=image)
    out, mask = module(encoded.embeds, encoded.mask, encoded.spans, prefix=encoded.image_embeds)

    base, _, base_mask = pipe.encode_prompt(image=image, prompt="a panda claps", device="cpu",
                                            prompt_template=encoder.pipeline_template,
                                            max_sequence_length=encoder.max_sequence_length)
    n = encoded.image_embeds.shape[1]
    assert n == 32 and out.shape == base.shape   # 64 image tokens, every 2nd kept (latent_concat)
    order = reorder_index(encoded.mask[0], encoded.spans)
    assert torch.equal(out[:, :n], base[:, :n]) and torch.equal(mask[:, :n], base_mask[:, :n])
    assert torch.equal(out[:, n:], base[:, n:][:, order]) and torch.equal(mask[:, n:], base_mask[:, n:][:, order])


def _trainer(tmp_path, base_dir, clips, settings):
    from synmotion_hunyuan import bases
    from synmotion_hunyuan.runtime import load_pipeline, pick_runtime
    from synmotion_hunyuan.spv import prompts_for
    from synmotion_hunyuan.training import Trainer

    base = bases.resolve(str(base_dir))
    pipe = load_pipeline(base, pick_runtime(), training=True, i2v=True)
    request = LearnRequest(motion="clap", clips=tuple(media.find_clips([clips])), work_dir=tmp_path / "work",
                           run_dir=tmp_path / "run", steps=settings.steps, seed=1, i2v=True)
    request.work_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {p: (rng.random((settings.height, settings.width, 3)) * 255).astype(np.uint8)
              for p, _ in prompts_for(settings)}
    trainer = Trainer(pipe, base, pick_runtime(), settings, request, RecordingReporter(), {}, spv_images=images,
                      spv_images_from="test")
    trainer.prepare()
    return trainer, pipe


@pytest.mark.parametrize("alpha, moving", [
    (0.0, ("res_sub", "z_sub")),                                             # SPV steps: the subject path only
    (1.0, ("res_mot", "z_mot", "res_sub", "z_sub", "refiner", "z_out")),     # user clips: every part
])
@pytest.mark.parametrize("condition", ["latent_concat", "token_replace"])
def test_i2v_steps_train_exactly_their_parameters(request, tmp_path, clips, alpha, moving, condition):
    from synmotion_hunyuan.settings import LearnSettings, build
    from synmotion_hunyuan.tiny import TINY_DEFAULTS

    base_dir = request.getfixturevalue("tiny_i2v_dir" if condition == "latent_concat" else "tiny_i2v_token_dir")
    settings = build(LearnSettings, TINY_DEFAULTS["learn"], {"alpha": alpha, "steps": 3})
    trainer, pipe = _trainer(tmp_path, base_dir, clips, settings)
    assert all(e.prompt.image_embeds is not None for e in trainer.user + trainer.spv)
    assert len({e.prompt.image_embeds.sum().item() for e in trainer.user}) == 2   # each clip its own frame
    base_weights = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    before = {n: p.detach().clone() for n, p in trainer.embedding.named_parameters()}
    trainer.run()
    for name, param in trainer.embedding.named_parameters():
        assert (not torch.equal(before[name], param.detach())) == name.startswith(moving), name
    lora_b = [v for k, v in pipe.transformer.state_dict().items() if "lora_B" in k]
    assert lora_b and all((torch.count_nonzero(v) > 0) == (alpha == 1.0) for v in lora_b)
    for name, value in pipe.transformer.state_dict().items():
        if "lora_" not in name:   # the base, image-condition channels included, never changes
            assert torch.equal(value, base_weights[name.replace(".base_layer", "")]), name


def test_mirrored_clips_are_conditioned_on_their_mirrored_first_frame(tmp_path, tiny_i2v_dir, clips):
    from synmotion_hunyuan.settings import LearnSettings, build
    from synmotion_hunyuan.text_encoding import PromptEncoder
    from synmotion_hunyuan.tiny import TINY_DEFAULTS
    from synmotion_hunyuan.training import first_frame

    settings = build(LearnSettings, TINY_DEFAULTS["learn"], {"strategy": "joint", "steps": 1, "mirror": True})
    trainer, pipe = _trainer(tmp_path, tiny_i2v_dir, clips, settings)
    n = len(trainer.request.clips)
    assert len(trainer.user) == 2 * n
    image = first_frame(trainer.request.clips[0], settings)[:, ::-1]
    encoder = PromptEncoder.from_pipeline(load_pipe(tiny_i2v_dir, i2v=True), tiny_i2v_dir)
    expected = encoder.encode(trainer.user[n].prompt.text, image=np.ascontiguousarray(image)).image_embeds
    assert torch.equal(trainer.user[n].prompt.image_embeds, expected)
    assert not torch.equal(trainer.user[n].prompt.image_embeds, trainer.user[0].prompt.image_embeds)


def test_learn_i2v_beside_t2v_then_gen_image_end_to_end(capsys, tmp_path, tiny_dir, tiny_i2v_dir, clips):
    assert run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "2").code == 0
    t2v = json.loads(run(capsys, "packs", "show", "clap", "--json").out)
    r = run(capsys, "learn", "clap", clips, "--i2v", "--i2v-base", tiny_i2v_dir, "--steps", "3", "--json")
    assert r.code == 0, r.err
    assert "keeps its t2v variant" in r.err
    manifest = json.loads(r.out)["manifest"]
    assert set(manifest["files"]) == {"t2v/embedding.safetensors", "t2v/lora.safetensors",
                                      "i2v/embedding.safetensors", "i2v/lora.safetensors"}
    for name in ("t2v/embedding.safetensors", "t2v/lora.safetensors"):   # the kept variant's very blobs
        assert manifest["files"][name] == t2v["manifest"]["files"][name]
    assert manifest["variants"]["i2v"]["base"]["id"] == str(tiny_i2v_dir.resolve())
    assert manifest["variants"]["i2v"]["metrics"]["steps"] == 3 and manifest["metrics"]["steps"] == 2
    assert manifest["base"]["id"] == str(tiny_dir.resolve())   # top level: the primary (t2v) variant

    shown = json.loads(run(capsys, "packs", "show", "clap", "--json").out)
    assert shown["variants"] == {"t2v": str(tiny_dir.resolve()), "i2v": str(tiny_i2v_dir.resolve())}
    assert "variants:  t2v, i2v" in run(capsys, "packs", "show", "clap").out
    assert json.loads(run(capsys, "packs", "list", "--json").out)[0]["variants"] == ["t2v", "i2v"]

    # the same variant again needs --force; the other variant stays
    r = run(capsys, "learn", "clap", clips, "--i2v", "--steps", "1")
    assert r.code == 2 and "already has a i2v variant" in r.err

    image = _image(tmp_path / "cat.png", 45, 61)
    out = tmp_path / "cat.mp4"
    r = run(capsys, "gen", "--image", image, "a cat claps", "--seed", "4", "--size", "32x48", "--frames", "13",
            "-o", out, "--json")
    assert r.code == 0, r.err
    meta = json.loads(r.out)["metadata"]
    assert meta["embedding_from"] == "clap:latest" and meta["image"] == "cat.png" and meta["adapters"] == "1"
    assert meta["base"] == str(tiny_i2v_dir.resolve())
    info = media.probe(out)
    assert (info.frames, info.height, info.width) == (13, 32, 48)
    assert run(capsys, "gen", "a cat claps", "--seed", "4", "-o", tmp_path / "t2v.mp4").code == 0   # T2V still works

    # export/import keeps both variants, byte for byte
    archive = tmp_path / "clap.smpack"
    assert run(capsys, "packs", "export", "clap", archive).code == 0
    assert run(capsys, "packs", "rm", "clap", "--yes").code == 0
    r = run(capsys, "packs", "import", archive, "--json")
    assert r.code == 0, r.err
    assert json.loads(run(capsys, "packs", "show", "clap", "--json").out)["digest"] == shown["digest"]
    assert run(capsys, "packs", "verify").code == 0
    again = tmp_path / "again.mp4"
    assert run(capsys, "gen", "--image", image, "a cat claps", "--seed", "4", "--size", "32x48", "--frames", "13",
               "-o", again).code == 0
    decode = dict(fps=8, height=32, width=48, frames=13)
    assert np.array_equal(media.decode(out, **decode), media.decode(again, **decode))

    # several seeds from one image: each video is the one its seed alone makes, and the seeds differ
    r = run(capsys, "gen", "--image", image, "a cat claps", "--seed", "4", "-n", "2", "--size", "32x48", "--frames",
            "13", "-o", tmp_path / "many.mp4", "--json")
    assert r.code == 0, r.err
    assert [(d["seed"], d["metadata"]["image"]) for d in json.loads(r.out)] == [(4, "cat.png"), (5, "cat.png")]
    first, second = (media.decode(tmp_path / f"many-{s}.mp4", **decode) for s in (4, 5))
    assert np.array_equal(first, media.decode(out, **decode)) and not np.array_equal(first, second)


def test_t2v_only_pack_with_image_is_a_usage_error(capsys, tmp_path, tiny_dir, clips):
    assert run(capsys, "learn", "clap", clips, "--base", tiny_dir, "--steps", "1").code == 0
    r = run(capsys, "gen", "--image", _image(tmp_path / "c.png", 32, 32), "a cat claps", "-o", tmp_path / "o.mp4")
    assert r.code == 2 and "clap:latest has no image-to-video variant" in r.err and "--i2v" in r.err
    errors = [line for line in r.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in r.err and not (tmp_path / "o.mp4").exists()


def test_bad_images_are_named(capsys, tmp_path, tiny_i2v_dir):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(_image(tmp_path / "real.jpg", 40, 40).read_bytes()[:200])
    for bad in (text, broken):
        r = run(capsys, "gen", "--image", bad, "a cat claps", "--i2v-base", tiny_i2v_dir, "--no-pack",
                "-o", tmp_path / "o.mp4")
        assert r.code == 2 and str(bad) in r.err and "Traceback" not in r.err, r.err
    r = run(capsys, "gen", "--image", tmp_path / "missing.png", "a cat claps", "--no-pack", "-o", tmp_path / "o.mp4")
    assert r.code == 3 and "missing.png" in r.err


@pytest.mark.parametrize("suffix, size", [(".png", (17, 90)), (".jpg", (123, 45)), (".webp", (33, 33))])
def test_images_of_any_format_and_size_are_fitted(capsys, tmp_path, tiny_i2v_dir, suffix, size):
    image = _image(tmp_path / f"odd{suffix}", *size)
    out = tmp_path / "o.mp4"
    r = run(capsys, "gen", "--image", image, "a cat claps", "--i2v-base", tiny_i2v_dir, "--no-pack",
            "--size", "32x48", "--frames", "9", "--steps", "1", "-o", out)
    assert r.code == 0, r.err
    info = media.probe(out)
    assert (info.frames, info.height, info.width) == (9, 32, 48)


def test_i2v_base_pairing_and_kind(tiny_dir, tiny_i2v_dir, tmp_path):
    from synmotion_cli.errors import UsageError
    from synmotion_hunyuan import bases
    from synmotion_hunyuan.runtime import load_pipeline, pick_runtime

    assert bases.i2v_partner(bases.DEFAULT_T2V) == bases.DEFAULT_I2V and bases.i2v_partner("toy") == "toy-i2v"
    with pytest.raises(UsageError, match="no image-to-video partner"):
        bases.resolve_i2v(None, str(tiny_dir))
    with pytest.raises(UsageError, match="HunyuanVideoPipeline, not an image-to-video"):
        load_pipeline(bases.resolve(str(tiny_dir)), pick_runtime(), training=False, i2v=True)
    config = tiny_dir / "synmotion.json"
    saved = config.read_text()
    try:   # a local base names its partner beside it
        config.write_text(json.dumps({**json.loads(saved), "i2v_base": str(tiny_i2v_dir)}))
        assert bases.resolve_i2v(None, str(tiny_dir)).path == tiny_i2v_dir.resolve()
    finally:
        config.write_text(saved)


def test_image_tokens_reach_the_refiner(tiny_i2v_dir):
    """Fig. 1: the image tokens are context for R, so (once Z is trained away from zero) a different image
    changes the refined text tokens; the image tokens themselves pass through unchanged."""
    from synmotion_cli.prompts import parse_roles
    from synmotion_hunyuan.embedding import DualEmbedding
    from synmotion_hunyuan.text_encoding import PromptEncoder

    pipe = load_pipe(tiny_i2v_dir, i2v=True)
    encoder = PromptEncoder.from_pipeline(pipe, tiny_i2v_dir)
    images = [Image.open(_image(tiny_i2v_dir.parent / f"r{seed}.png", 32, 32, seed=seed)) for seed in (1, 2)]
    encoded = [encoder.encode(parse_roles("a panda claps", ["clap"]), image=img) for img in images]
    assert not torch.equal(encoded[0].image_embeds, encoded[1].image_embeds)
    module = DualEmbedding.from_encoder(encoder, "claps", image=images[0])
    with torch.no_grad():
        for p in module.z_out.parameters():  # as after training: the refiner's output reaches the tokens
            p.normal_(0.0, 0.5)
    # The same text tokens with either image's tokens in front: only R can carry the difference.
    text = encoded[0]
    outs = [module(text.embeds, text.mask, text.spans, prefix=e.image_embeds)[0] for e in encoded]
    n = text.image_embeds.shape[1]
    assert torch.equal(outs[1][:, :n], encoded[1].image_embeds)  # the image tokens pass through unchanged
    assert (outs[0][:, n:] - outs[1][:, n:]).abs().max() > 1e-3  # R read the image tokens
    # and without the image tokens the refined text differs again: they are not optional context
    without = module(text.embeds, text.mask, text.spans)[0]
    assert (without - outs[0][:, n:]).abs().max() > 1e-3


def test_token_replace_base_learns_and_generates_through_the_cli(capsys, tmp_path, tiny_dir, tiny_i2v_token_dir,
                                                                clips):
    """The default HunyuanVideo-I2V's kind of image conditioning, end to end; the image latent stays frame 0."""
    from synmotion_hunyuan import image_condition

    r = run(capsys, "learn", "clap", clips, "--i2v", "--base", tiny_dir, "--i2v-base", tiny_i2v_token_dir,
            "--steps", "2", "--json")
    assert r.code == 0, r.err
    image = _image(tmp_path / "fox.png", 40, 40)
    out = tmp_path / "fox.mp4"
    r = run(capsys, "gen", "--image", image, "a fox claps", "--seed", "1", "--size", "32x32", "--frames", "9",
            "-o", out, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metadata"]["base"] == str(tiny_i2v_token_dir.resolve())
    info = media.probe(out)
    assert (info.frames, info.height, info.width) == (9, 32, 32)

    # what the trainer feeds the transformer: frame 0 clean (the image), the loss on the other frames only
    pipe = load_pipe(tiny_i2v_token_dir, i2v=True)
    x0, x_t = torch.randn(1, 4, 3, 4, 4), torch.randn(1, 4, 3, 4, 4)
    model_in, scored = image_condition.model_input(pipe.transformer, x_t, x0)
    assert torch.equal(model_in[:, :, :1], x0[:, :, :1]) and torch.equal(model_in[:, :, 1:], x_t[:, :, 1:])
    assert scored == slice(1, None)
    assert image_condition.pipeline_frames(pipe, 9) == 9
