"""SynMotion's building blocks on a tiny random-weight HunyuanVideo of the real classes."""

from __future__ import annotations

import itertools
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from conftest_tiny import (  # noqa: E402
    fresh_pipe,  # noqa: F401
    load_pipe,
    tiny_dir,  # noqa: F401
    tiny_pipe,  # noqa: F401
    toy_video_latents,
    transformer_forward,
)
from synmotion_cli.errors import IntegrityError, UsageError  # noqa: E402
from synmotion_cli.prompts import parse_roles  # noqa: E402
from synmotion_hunyuan.adapters import (  # noqa: E402
    AdapterConfig,
    adapter_state_dict,
    add_motion_adapter,
    load_lora,
    save_lora,
)
from synmotion_hunyuan.embedding import DualEmbedding, EmbeddingConfig, reorder_index, resample  # noqa: E402
from synmotion_hunyuan.text_encoding import PromptEncoder, load_prompt_template  # noqa: E402
from synmotion_hunyuan.tiny import build_tiny_components  # noqa: E402

FOX = "A red fox is clapping at night, cut paper style"


@pytest.fixture(scope="module")
def encoder(tiny_pipe):
    return PromptEncoder.from_pipeline(tiny_pipe)


def _decode(encoder, text, span):
    ids = encoder.tokenizer(encoder.template.template.format(text)).input_ids[encoder.template.crop_start:]
    return encoder.tokenizer.decode(ids[span[0]:span[1]])


def _base_state(*modules):
    return [{k: v.clone() for k, v in m.state_dict().items() if "lora_" not in k} for m in modules]


# ---- tiny components and prompt template ---------------------------------------------------------------

def test_tiny_components_are_deterministic_per_seed(tiny_pipe):
    # tiny_pipe was saved with seed 0 and loaded back, so this also checks the on-disk round trip.
    same, other = build_tiny_components(seed=0), build_tiny_components(seed=1)
    for name in ("transformer", "text_encoder", "text_encoder_2", "vae"):
        saved, rebuilt, reseeded = (m.state_dict() for m in (getattr(tiny_pipe, name), same[name], other[name]))
        assert saved.keys() == rebuilt.keys() and all(torch.equal(saved[k], rebuilt[k]) for k in saved), name
        assert not all(torch.equal(saved[k], reseeded[k]) for k in saved), name
    assert tiny_pipe.tokenizer.get_vocab() == same["tokenizer"].get_vocab() == other["tokenizer"].get_vocab()
    assert tiny_pipe.tokenizer.padding_side == "right"


def test_prompt_template_comes_from_the_base(tiny_dir, tmp_path):
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    stored = json.loads((tiny_dir / "synmotion.json").read_text())
    tiny = load_prompt_template(tiny_dir)
    assert (tiny.template, tiny.crop_start) == (stored["prompt_template"], stored["crop_start"])
    real = load_prompt_template(tmp_path)              # a base without synmotion.json
    assert real.template == DEFAULT_PROMPT_TEMPLATE["template"] and real.crop_start == 95
    assert load_prompt_template("hunyuanvideo-community/HunyuanVideo").crop_start == 95


# ---- prompt encoding -----------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["a panda claps", FOX])
def test_encoder_equals_the_pipelines_own_encoding(tiny_pipe, encoder, prompt):
    encoded = encoder.encode(parse_roles(prompt, ["clap"]))
    embeds, mask = tiny_pipe._get_llama_prompt_embeds(prompt, encoder.pipeline_template, device="cpu")
    assert torch.equal(encoded.embeds, embeds) and torch.equal(encoded.mask, mask)
    _, pooled, _ = tiny_pipe.encode_prompt(prompt, prompt_template=encoder.pipeline_template, device="cpu")
    assert torch.equal(encoded.pooled, pooled)
    assert encoded.embeds.shape == (1, 256, 16) and encoded.pooled.shape == (1, 8)
    assert not encoded.embeds.requires_grad and encoded.embeds.device.type == "cpu"
    valid = int(encoded.mask.sum())
    assert encoded.mask[0, :valid].all() and not encoded.mask[0, valid:].any()   # right padding
    assert torch.equal(encoder.encode(prompt).embeds, encoded.embeds)             # plain text, no spans
    assert encoder.encode(prompt).spans is None


def test_encoder_pads_right_and_freezes_encoders(tiny_dir):
    pipe = load_pipe(tiny_dir)
    pipe.tokenizer.padding_side = "left"               # transformers' default for Llama
    pipe.text_encoder.requires_grad_(True)
    encoder = PromptEncoder.from_pipeline(pipe)
    assert pipe.tokenizer.padding_side == "right"
    assert not any(p.requires_grad for p in pipe.text_encoder.parameters())
    assert not any(p.requires_grad for p in pipe.text_encoder_2.parameters())
    assert encoder.encode("a panda claps").mask[0, 0] == 1


def test_spans_are_the_right_tokens(encoder):
    encoded = encoder.encode(parse_roles("a panda claps", ["clap"]))
    spans = encoded.spans
    assert _decode(encoder, "a panda claps", spans.subject) == "a panda"
    assert _decode(encoder, "a panda claps", spans.motion) == " claps"
    assert spans.subject[0] == 0 and spans.subject[1] == spans.motion[0]
    assert spans.extensions == (spans.motion[1], spans.motion[1]) == (int(encoded.mask.sum()) - 1,) * 2  # at eot

    spans = encoder.encode(parse_roles(FOX, ["clap"])).spans
    assert _decode(encoder, FOX, spans.subject) == "A red fox"
    assert _decode(encoder, FOX, spans.motion) == " clapping"
    assert _decode(encoder, FOX, spans.extensions) == " at night, cut paper style"


def test_prompt_longer_than_the_encoder_reads_is_a_usage_error(tiny_pipe):
    short = PromptEncoder.from_pipeline(tiny_pipe, max_sequence_length=3)
    with pytest.raises(UsageError, match="cut off"):
        short.encode(parse_roles(FOX, ["clap"]))
    with pytest.raises(UsageError, match="negative prompt .* longer than the text encoder reads"):
        short.negative("a blurry, dark and noisy video")
    assert short.negative()[0].shape[1] == 3   # the empty negative always fits


# ---- dual embeddings -----------------------------------------------------------------------------------

def test_motion_residue_starts_as_the_motion_in_a_person_phrase(encoder):
    module = DualEmbedding.from_encoder(encoder, "claps")
    person = encoder.encode(parse_roles("a person claps", ["clap"]))
    start, end = person.spans.motion
    assert module.config.motion_tokens == end - start
    assert torch.equal(module.res_mot.detach(), person.embeds[0, start:end])
    base_std = float(person.embeds[0, : int(person.mask.sum())].std())
    assert module.res_sub.std().item() == pytest.approx(base_std, rel=0.6)
    again = DualEmbedding.from_encoder(encoder, "claps")
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), again.state_dict().values()))
    # clips of another subject: the motion's tokens as that subject's phrase reads them (the LLM is causal)
    dog = encoder.encode(parse_roles("a big dog claps", ["clap"]))
    start, end = dog.spans.motion
    by_dog = DualEmbedding.from_encoder(encoder, "claps", subject="a big dog")
    assert torch.equal(by_dog.res_mot.detach(), dog.embeds[0, start:end])
    assert not torch.equal(by_dog.res_mot.detach(), module.res_mot.detach())


def test_resample_is_identity_at_equal_length_and_keeps_constants():
    residue = torch.randn(3, 5)
    assert resample(residue, 3) is residue
    assert resample(residue, 7).shape == (7, 5) and resample(residue, 1).shape == (1, 5)
    constant = torch.ones(2, 4) * 3.0
    assert torch.allclose(resample(constant, 5), torch.full((5, 4), 3.0))


SWITCHES = list(itertools.product([True, False], repeat=3))


@pytest.mark.parametrize("motion_residue, subject_residue, refiner", SWITCHES)
def test_zero_init_is_exactly_the_reordered_base(encoder, motion_residue, subject_residue, refiner):
    module = DualEmbedding.from_encoder(encoder, "claps", subject_tokens=3, motion_residue=motion_residue,
                                        subject_residue=subject_residue, refiner=refiner, refiner_heads=2)
    for prompt in ("a crocodile clapped", FOX):
        encoded = encoder.encode(parse_roles(prompt, ["clap"]))
        spans = encoded.spans
        n_sub = spans.subject[1] - spans.subject[0]
        assert n_sub != 3                                   # the residue really is resampled
        order = reorder_index(encoded.mask[0], spans)
        for grad_enabled in (True, False):                  # training and inference paths
            with torch.set_grad_enabled(grad_enabled):
                out, mask = module(encoded.embeds, encoded.mask, spans)
            assert torch.equal(out, encoded.embeds[:, order]) and torch.equal(mask, encoded.mask[:, order])
            assert torch.equal(out[:, torch.argsort(order)], encoded.embeds)
        n_mot = spans.motion[1] - spans.motion[0]
        assert torch.equal(out[0, :n_mot], encoded.embeds[0, spans.motion[0]:spans.motion[1]])
        assert mask.sum() == encoded.mask.sum() and mask[0, : int(mask.sum())].all()
    lengths = {encoder.encode(parse_roles(p, ["clap"])).spans.motion for p in ("a crocodile clapped", "a cat claps")}
    assert len({b - a for a, b in lengths}) == 2              # motion spans of other lengths are covered too


def test_prefix_stays_first_and_unchanged(encoder):
    module = DualEmbedding.from_encoder(encoder, "claps")
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn_like(param) * 0.1)      # a trained module, not the identity
    encoded = encoder.encode(parse_roles(FOX, ["clap"]))
    prefix = torch.randn(1, 5, 16)
    out, mask = module(encoded.embeds, encoded.mask, encoded.spans, prefix=prefix)
    assert torch.equal(out[:, :5], prefix) and mask[0, :5].all()
    assert out.shape[1] == 5 + encoded.embeds.shape[1] and mask.sum() == 5 + encoded.mask.sum()
    plain, _ = module(encoded.embeds, encoded.mask, encoded.spans)
    order = reorder_index(encoded.mask[0], encoded.spans)
    n_roles = sum(b - a for a, b in (encoded.spans.motion, encoded.spans.subject))
    assert torch.equal(out[:, 5 + n_roles:], encoded.embeds[:, order][:, n_roles:])   # extensions untouched
    assert not torch.allclose(out[:, 5:5 + n_roles], plain[:, :n_roles])             # the prefix is context for R


def _names(**switches):
    return {name for name, _ in DualEmbedding(EmbeddingConfig(dim=16, **switches)).named_parameters()}


def test_switching_a_part_off_removes_exactly_its_parameters():
    full = _names()
    refiner = {n for n in full if n.startswith(("refiner.", "z_out."))}
    assert full - _names(motion_residue=False) == {"res_mot", "z_mot.weight", "z_mot.bias"}
    assert full - _names(subject_residue=False) == {"res_sub", "z_sub.weight", "z_sub.bias"}
    assert full - _names(refiner=False) == refiner and len(refiner) > 2
    assert _names(motion_residue=False, subject_residue=False, refiner=False) == set()
    two_layers = _names(refiner_layers=2)
    assert any(n.startswith("refiner.layers.1.") for n in two_layers) and not any("layers.1." in n for n in full)
    groups = DualEmbedding(EmbeddingConfig(dim=16)).parameter_groups()
    assert [len(groups[k]) for k in ("motion", "subject")] == [3, 3] and len(groups["refiner"]) == len(refiner)


def test_embedding_config_validates_and_round_trips():
    config = EmbeddingConfig(dim=16, motion_tokens=2, subject_tokens=5, refiner=False, refiner_heads=4)
    assert EmbeddingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert EmbeddingConfig(dim=4096).heads == 32 and EmbeddingConfig(dim=16).heads == 1
    with pytest.raises(UsageError, match="does not divide"):
        EmbeddingConfig(dim=16, refiner_heads=3)
    with pytest.raises(IntegrityError):
        EmbeddingConfig.from_dict({"dim": 16, "colour": "red"})


# ---- training through the real transformer -------------------------------------------------------------

def _loss(module, transformer, encoded, latents, target, **kwargs):
    embeds, mask = module(encoded.embeds, encoded.mask, encoded.spans, **kwargs)
    prediction = transformer_forward(transformer, latents, embeds, mask, encoded.pooled)
    return torch.nn.functional.mse_loss(prediction, target)


def test_two_adamw_steps_move_exactly_the_trainable_parts(fresh_pipe):
    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    transformer = fresh_pipe.transformer
    module = DualEmbedding.from_encoder(encoder, "claps", subject_tokens=3)
    lora = add_motion_adapter(transformer, AdapterConfig(rank=4))
    frozen_before = _base_state(transformer, fresh_pipe.text_encoder, fresh_pipe.text_encoder_2)
    learned_before = {k: v.clone() for k, v in module.state_dict().items()}
    lora_before = [p.detach().clone() for p in lora]
    encoded = encoder.encode(parse_roles(FOX, ["clap"]))
    latents, target = toy_video_latents()
    # weight_decay=0 so that a parameter only moves when it has a gradient
    optimizer = torch.optim.AdamW([*module.parameters(), *lora], lr=1e-3, weight_decay=0.0)
    for step in range(2):
        optimizer.zero_grad(set_to_none=True)
        _loss(module, transformer, encoded, latents, target).backward()
        if step == 0:   # zero-convs: only Z (and LoRA-B) see a gradient on the first step
            assert module.res_mot.grad.abs().sum() == 0 and module.z_mot.weight.grad.abs().sum() > 0
        optimizer.step()

    moved = {k: not torch.equal(v, module.state_dict()[k]) for k, v in learned_before.items()}
    assert all(moved.values()), [k for k, m in moved.items() if not m]
    assert all(not torch.equal(a, b.detach()) for a, b in zip(lora_before, lora))
    with_grad = {n for n, p in transformer.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in n for n in with_grad)
    assert with_grad == {n for n, p in transformer.named_parameters() if "lora_" in n}
    for before, after in zip(frozen_before,
                             _base_state(transformer, fresh_pipe.text_encoder, fresh_pipe.text_encoder_2)):
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in fresh_pipe.text_encoder.parameters())

    # A subject-prior step: the motion path is held, the subject path learns.
    optimizer.zero_grad(set_to_none=True)
    spv = encoder.encode(parse_roles("a zebra walks on grass", ["walk"]))
    _loss(module, transformer, spv, latents, target, motion_stop_grad=True).backward()
    groups = module.parameter_groups()
    assert all(p.grad is None or not p.grad.any() for p in groups["motion"])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["subject"])


# ---- LoRA adapters -------------------------------------------------------------------------------------

def _tiny_transformer(num_layers=2, num_single_layers=3):
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(0)
    return HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=num_layers,
        num_single_layers=num_single_layers, num_refiner_layers=1, patch_size=1, patch_size_t=1,
        guidance_embeds=True, text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4),
    )


def _lora_modules(transformer):
    return {name: module for name, module in transformer.named_modules() if hasattr(module, "lora_A")}


@pytest.mark.parametrize(
    "config, dual, single",
    [
        (AdapterConfig(), 6, 3),
        (AdapterConfig(streams="dual", rank=8), 6, 0),
        (AdapterConfig(streams="single", rank=2), 0, 3),
        (AdapterConfig(projections=("q",)), 2, 1),
    ],
)
def test_adapter_streams_and_rank_choose_exactly_the_lora_modules(config, dual, single):
    transformer = _tiny_transformer(num_layers=2, num_single_layers=3)
    add_motion_adapter(transformer, config)
    modules = _lora_modules(transformer)
    assert len(modules) == 2 * dual + 3 * single
    assert sum(n.startswith("transformer_blocks.") for n in modules) == 2 * dual
    assert sum(n.startswith("single_transformer_blocks.") for n in modules) == 3 * single
    assert not any("context_embedder" in n for n in modules)
    assert all(m.lora_A["synmotion"].weight.shape[0] == config.rank for m in modules.values())
    trainable = {n for n, p in transformer.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(adapter_state_dict(transformer)) == 2 * len(modules)


def test_adapter_config_rejects_unknown_values():
    with pytest.raises(UsageError):
        AdapterConfig(streams="triple")
    with pytest.raises(UsageError):
        AdapterConfig(projections=("q", "o"))
    config = AdapterConfig(rank=8, alpha=4, streams="dual")
    assert AdapterConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_saved_lora_loads_in_diffusers_with_the_same_output(tiny_dir, fresh_pipe, tmp_path):
    encoder = PromptEncoder.from_pipeline(fresh_pipe)
    encoded = encoder.encode("a panda claps")
    latents, _ = toy_video_latents()

    def forward(transformer):
        with torch.no_grad():
            return transformer_forward(transformer, latents, encoded.embeds, encoded.mask, encoded.pooled)

    base = forward(fresh_pipe.transformer)
    add_motion_adapter(fresh_pipe.transformer, AdapterConfig(rank=4, alpha=2))   # scale 0.5 must survive
    with torch.no_grad():
        for name, param in fresh_pipe.transformer.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.5)   # as if trained: B starts at zero
    trained = forward(fresh_pipe.transformer)
    assert not torch.allclose(trained, base)
    path = save_lora(fresh_pipe.transformer, tmp_path / "t2v" / "lora.safetensors")

    reloaded = load_pipe(tiny_dir)
    reloaded.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="synmotion")
    torch.testing.assert_close(forward(reloaded.transformer), trained, rtol=0, atol=1e-6)

    bare = load_lora(load_pipe(tiny_dir).transformer, path)
    torch.testing.assert_close(forward(bare), trained, rtol=0, atol=1e-6)
    switched_off = load_lora(load_pipe(tiny_dir), path, weight=0.0)
    torch.testing.assert_close(forward(switched_off.transformer), base, rtol=0, atol=1e-6)
    assert _lora_modules(switched_off.transformer).keys() == _lora_modules(fresh_pipe.transformer).keys()


# ---- embedding save / load -----------------------------------------------------------------------------

def test_embedding_save_load_round_trip_is_exact(encoder, tmp_path):
    module = DualEmbedding.from_encoder(encoder, "claps", subject_tokens=3, refiner_heads=2)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    path = module.save(tmp_path / "embedding.safetensors")
    for loaded in (DualEmbedding.load(path), DualEmbedding.load(path, module.config)):
        assert loaded.config == module.config
        original, restored = module.state_dict(), loaded.state_dict()
        assert original.keys() == restored.keys() and all(torch.equal(original[k], restored[k]) for k in original)
        encoded = encoder.encode(parse_roles(FOX, ["clap"]))
        with torch.no_grad():
            assert torch.equal(loaded(encoded.embeds, encoded.mask, encoded.spans)[0],
                               module(encoded.embeds, encoded.mask, encoded.spans)[0])
    with pytest.raises(IntegrityError, match="do not match"):
        DualEmbedding.load(path, EmbeddingConfig(dim=16, motion_tokens=2, subject_tokens=4))
    (tmp_path / "broken.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(IntegrityError):
        DualEmbedding.load(tmp_path / "broken.safetensors")


def test_prompt_encoder_reads_at_the_templates_length_unless_told():
    """A base's template says how many prompt tokens it takes; an encoder built without a length uses it
    (a longer default only adds masked padding that every dual-stream block still pays for)."""
    from dataclasses import replace

    from synmotion_hunyuan.text_encoding import PromptTemplate
    from synmotion_hunyuan.tiny import crop_start_for, tiny_template

    parts = build_tiny_components()
    template = PromptTemplate(tiny_template(False), crop_start_for(parts["tokenizer"], tiny_template(False)), 24)
    args = (parts["tokenizer"], parts["text_encoder"], parts["tokenizer_2"], parts["text_encoder_2"])
    assert PromptEncoder(*args, template).encode("a panda claps").mask.shape[1] == 24
    assert PromptEncoder(*args, template, 40).encode("a panda claps").mask.shape[1] == 40
    assert PromptEncoder(*args, replace(template, max_sequence_length=256)).encode("a panda claps").mask.shape[1] == 256
