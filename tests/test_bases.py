"""Base resolution and the checks made before anything large is loaded."""

from __future__ import annotations

import json

import pytest

from cli_runner import run
from conftest_tiny import tiny_dir  # noqa: F401  (session fixture)

from synmotion_cli.errors import EnvironmentProblem, NotFoundError, UsageError


def _fake_full_size_base(root):
    """A directory shaped like a full-size base: a sparse 24 GB transformer file costs no disk."""
    (root / "transformer").mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanVideoPipeline"}))
    (root / "transformer" / "config.json").write_text("{}")
    with open(root / "transformer" / "diffusion_pytorch_model.safetensors", "wb") as f:
        f.truncate(24 * 1024**3)
    return root


def test_local_dir_and_fingerprint(tiny_dir):
    from synmotion_hunyuan import bases

    a, b = bases.resolve(str(tiny_dir)), bases.resolve(str(tiny_dir))
    assert a.path == tiny_dir.resolve() and a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    assert not a.full_size and a.transformer_bytes > 0


def test_fingerprint_ignores_option_defaults_but_not_the_model(tmp_path, tiny_dir):
    """A base's ``synmotion.json`` defaults are settings: tuning them must not orphan the packs learnt on it,
    while its prompt template (how a pack's tokens are read) is part of the model."""
    import json
    import shutil

    from synmotion_hunyuan import bases

    copy = tmp_path / "base"
    shutil.copytree(tiny_dir, copy)
    info_file = copy / "synmotion.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    info_file.write_text(json.dumps({**info, "defaults": {"gen": {"steps": 20}}}))
    before = bases.resolve(str(copy)).fingerprint
    info_file.write_text(json.dumps({**info, "defaults": {"gen": {"steps": 8, "transfer": 3.0}}}))
    assert bases.resolve(str(copy)).fingerprint == before
    info_file.write_text(json.dumps({**info, "defaults": {"gen": {"steps": 8}}, "prompt_template": "{} again"}))
    assert bases.resolve(str(copy)).fingerprint != before


def test_missing_and_malformed_bases(tmp_path):
    from synmotion_hunyuan import bases

    with pytest.raises(NotFoundError, match="not in the Hugging Face cache"):
        bases.resolve("someone/NotCached")
    with pytest.raises(UsageError, match="model_index.json"):
        bases.resolve(str(tmp_path))


def test_full_size_base_without_cuda_is_refused_before_loading(tmp_path, capsys):
    from synmotion_hunyuan import bases

    spec = bases.resolve(str(_fake_full_size_base(tmp_path / "big")))
    assert spec.full_size
    with pytest.raises(EnvironmentProblem, match="no CUDA device"):
        bases.check_fits(spec, "cpu", training=True, dtype_bytes=2)
    r = run(capsys, "gen", "a panda claps", "--base", tmp_path / "big", "--no-pack", "-o", tmp_path / "o.mp4")
    assert r.code == 5 and "no CUDA device" in r.err and "Traceback" not in r.err
    (tmp_path / "big" / "transformer" / "diffusion_pytorch_model.safetensors").unlink()  # others walk the temp dir


def test_memory_estimate_is_checked_against_free_memory(tiny_dir, monkeypatch):
    from synmotion_hunyuan import bases

    spec = bases.resolve(str(tiny_dir))
    need = bases.estimate_bytes(spec, training=True, dtype_bytes=4)
    assert need > spec.transformer_bytes  # weights plus working memory
    assert bases.estimate_bytes(spec, training=True, dtype_bytes=4) > bases.estimate_bytes(spec, training=False,
                                                                                             dtype_bytes=4)
    monkeypatch.setattr(bases, "_available_bytes", lambda device: need - 1)
    with pytest.raises(EnvironmentProblem, match="needs about"):
        bases.check_fits(spec, "cpu", training=True, dtype_bytes=4)
    monkeypatch.setattr(bases, "_available_bytes", lambda device: need + 1)
    bases.check_fits(spec, "cpu", training=True, dtype_bytes=4)


def test_registered_base_name_wins_over_a_same_named_folder(tmp_path, monkeypatch):
    """`--base toy` from a checkout's root (which has a toy/ folder) still means the registered toy base."""
    from synmotion_hunyuan import bases

    if "toy" not in bases.named_bases():
        pytest.skip("the toy world is not installed")
    (tmp_path / "toy").mkdir()
    monkeypatch.chdir(tmp_path)
    spec = bases.resolve("toy")
    assert spec.id == "toy" and (spec.path / "model_index.json").is_file()
    with pytest.raises(UsageError, match="model_index.json"):
        bases.resolve("./toy")
