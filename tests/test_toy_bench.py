"""The toy MotionBench: its measures in closed form, and `synmotion toy bench` end to end on a tiny budget."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cli_runner import run

torch = pytest.importorskip("torch")


def test_dynamics_is_zero_for_a_still_video_and_grows_with_change():
    from synmotion_toy.metrics import dynamics

    still = np.full((17, 8, 8, 3), 100, np.uint8)
    assert dynamics(still) == 0.0
    flicker = still.copy()
    flicker[1::2] = 151  # every pair of frames differs by 51 of 255: 20 %
    assert dynamics(flicker) == pytest.approx(20.0)
    assert dynamics(still[:1]) == 0.0


def test_subject_consistency_follows_vbench():
    from synmotion_toy.metrics import subject_consistency

    same = np.tile(np.array([[0.6, 0.8]]), (5, 1))
    assert subject_consistency(same) == pytest.approx(1.0)
    # frame 1 orthogonal to frame 0, frame 2 back to frame 0's direction
    f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # t=1: 1/2 (0 + 0); t=2: 1/2 (cos(f1,f2)=0 + cos(f0,f2)=1) -> mean 0.25
    assert subject_consistency(f) == pytest.approx(0.25)
    # opposite directions count as 0, never negative
    assert subject_consistency(np.array([[1.0, 0.0], [-1.0, 0.0]])) == 0.0


def test_motion_similarity_and_spread():
    from synmotion_toy.metrics import motion_similarity, spread

    ref = np.array([[1.0, 0.0], [0.8, 0.6]])
    sims = motion_similarity(np.array([[2.0, 0.0], [0.0, -3.0]]), ref)
    direction = ref.mean(axis=0) / np.linalg.norm(ref.mean(axis=0))
    assert sims == pytest.approx([direction[0], -direction[1]])
    assert spread([0.5]) == {"mean": 0.5, "std": 0.0}
    assert spread([0.2, 0.4])["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))


def test_frame_features_are_unit_vectors_per_frame():
    from synmotion_toy.judges import load_judges
    from synmotion_toy.world import render_clip

    judges = load_judges()
    video = render_clip("panda", "walk", seed=1)
    feats = judges.frame_features_batch([video, video[:, :, ::-1]])
    assert feats.shape[:2] == (2, 17)
    assert np.linalg.norm(feats, axis=2) == pytest.approx(np.ones((2, 17)), abs=1e-5)
    from synmotion_toy.metrics import subject_consistency

    # A still video is near 1 (the judges' temporal convolutions pad at the ends); a subject that turns
    # into another halfway is clearly less consistent.
    still = np.repeat(video[:1], 17, axis=0)
    swapped = np.concatenate([video[:8], render_clip("zebra", "walk", background="night", seed=1)[8:]])
    still_c, swapped_c = (subject_consistency(f) for f in judges.frame_features_batch([still, swapped]))
    assert still_c > 0.95
    assert swapped_c < still_c - 0.05


def test_bench_end_to_end_on_a_tiny_budget(capsys, tmp_path, isolated_home):
    out = tmp_path / "bench"
    r = run(capsys, "toy", "bench", "-o", out, "-m", "clap", "-r", "base", "-r", "full", "--subjects", "1",
            "--seeds", "2", "--steps", "2", "--clips", "2", "-O", "spv_count=2", "-O", "spv_steps=2",
            "-G", "transfer=2", "--pack-weight", "1.5", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert list(data["rows"]) == ["base", "full"]
    assert data["plan"]["motions"] == ["clap"] and data["plan"]["subjects"] == ["panda"]
    assert data["plan"]["gen_options"] == {"transfer": 2} and data["plan"]["pack_weight"] == 1.5
    base, full = data["rows"]["base"], data["rows"]["full"]
    assert base["learn_s"] is None and full["learn_s"] > 0
    assert base["pack_weight"] is None and full["pack_weight"] == 1.5
    for row in (base, full):
        assert row["videos"] == 2 + 1  # 2 seeds, plus one background/style prompt
        for name, m in row["overall"].items():
            assert m["mean"] == m["mean"], name
        assert 0.0 <= row["overall"]["motion_acc"]["mean"] <= 1.0
        assert 0.0 < row["overall"]["subject_consistency"]["mean"] <= 1.0
        assert set(row["extension"]) == {"motion_acc", "subject_acc", "background_acc", "style_acc"}
        assert os.path.getsize(row["sheet"]) > 1000
    assert json.loads((out / "results.json").read_text()) == data
    # the packs it learned live inside the output folder, not in the user's store
    assert not (isolated_home / "store").exists() or not any((isolated_home / "store").rglob("manifest*"))


@pytest.mark.parametrize("args,words", [
    (["-r", "nonsense"], "unknown bench row"),
    (["-m", "walk"], "base motion"),
    (["-m", "moonwalk"], "moonwalk"),
    (["-G", "cfg_negative=both"], "cfg_negative"),
    (["-G", "strength=2"], "unknown option"),
    (["-G", "height=32"], "video size"),
    (["--pack-weight", "-1"], "pack-weight"),
])
def test_bench_refuses_bad_rows_and_motions(capsys, tmp_path, args, words):
    r = run(capsys, "toy", "bench", "-o", tmp_path / "b", *args)
    assert r.code == 2
    assert words in r.err
    assert not (tmp_path / "b").exists()


def test_bench_lists_its_rows(capsys):
    r = run(capsys, "toy", "bench", "--list-rows", "--json")
    assert r.code == 0
    rows = [x["row"] for x in json.loads(r.out)]
    assert rows[:7] == ["base", "motion-residue", "residues", "residues+refiner", "full", "no-strategy", "lora-only"]


def test_image_consistency_follows_the_papers_i2v_formula():
    from synmotion_toy.metrics import image_consistency

    image = np.array([1.0, 0.0])
    kept = np.tile(image, (4, 1))
    assert image_consistency(image, kept) == pytest.approx(1.0)
    # a video that leaves the image at once: max cos to the image 0, neighbours identical (1)
    gone = np.tile(np.array([0.0, 1.0]), (4, 1))
    assert image_consistency(image, gone) == pytest.approx(0.6)
    # starts on the image, then jumps away once: max 1, neighbours (0, 1, 1): mean 2/3, min 0
    jump = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert image_consistency(image, jump) == pytest.approx(0.4 + 0.3 * 2 / 3)


def test_every_row_names_a_valid_pack():
    from synmotion_cli.store.names import parse_name
    from synmotion_toy.bench import ROWS, pack_name
    from synmotion_toy.world import CUSTOM_MOTIONS

    names = {pack_name(m, r) for m in CUSTOM_MOTIONS for r in ROWS}
    assert len(names) == len(CUSTOM_MOTIONS) * len(ROWS)
    for name in names:
        assert parse_name(name)[0] == name


def test_rows_keep_the_papers_strategy_on_a_base_that_trains_jointly():
    """The toy base ships joint training as its default; every bench row but no-strategy must still train
    with the paper's subject-prior steps, and a row's own option must beat its preset."""
    from synmotion_hunyuan.settings import LearnSettings, build
    from synmotion_toy.base import WEIGHTS
    from synmotion_toy.base.i2v import WEIGHTS_I2V, i2v_defaults
    from synmotion_toy.base.train import DEFAULTS
    from synmotion_toy.bench import ROWS

    # the shipped bases carry what a retrain would write
    assert json.loads((WEIGHTS / "synmotion.json").read_text())["defaults"] == DEFAULTS
    assert json.loads((WEIGHTS_I2V / "synmotion.json").read_text())["defaults"] == i2v_defaults(DEFAULTS)
    assert DEFAULTS["gen"]["transfer"] > 0 and "transfer" not in i2v_defaults(DEFAULTS)["gen"]
    assert "pack_weight" not in DEFAULTS["gen"] and "pack_weight" not in i2v_defaults(DEFAULTS)["gen"]
    shipped = DEFAULTS["learn"]
    assert build(LearnSettings, shipped).strategy == "joint"
    resolved = {r.name: build(LearnSettings, shipped, r.options) for r in ROWS if r.options is not None}
    for name, s in resolved.items():
        assert s.strategy == ("joint" if name == "no-strategy" else "exclusive"), name
    assert resolved["full"].alpha == 0.75 and resolved["full"].spv_updates == "subject"
    assert resolved["alpha-0.9"].alpha == 0.9 and resolved["alpha-0.5"].alpha == 0.5
    assert resolved["spv-subject+refiner"].spv_updates == "subject+refiner"
    assert resolved["lora-only"].adapter and not resolved["lora-only"].refiner
    assert not resolved["residues+refiner"].adapter and resolved["residues+refiner"].refiner


def test_generator_takes_generation_settings_over_the_bases_defaults():
    from synmotion_toy.evaluate import Generator

    gen = Generator("toy", options={"cfg_negative": "base", "transfer": "0", "steps": "3"})
    assert (gen.settings.cfg_negative, gen.settings.transfer, gen.settings.steps) == ("base", 0.0, 3)
    assert gen.settings.true_cfg_scale == 4.0 and (gen.settings.height, gen.settings.width) == (64, 64)
