"""The judges: shipped weights judge fresh renders right, degraded ones mostly right, features group by
motion, the `toy judge` command reads videos, and training is reproducible."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import numpy as np
import pytest
from PIL import Image, ImageFilter

torch = pytest.importorskip("torch")

from cli_runner import run  # noqa: E402
from synmotion_cli import media  # noqa: E402
from synmotion_toy.judges import fit_video, load_judges, read_video  # noqa: E402
from synmotion_toy.judges.augment import augment  # noqa: E402
from synmotion_toy.judges.model import judge_tensor  # noqa: E402
from synmotion_toy.judges.score import WEIGHTS_DIR  # noqa: E402
from synmotion_toy.judges.train import (HELDOUT_SEED, label_sets, quick_config, render_specs, save,  # noqa: E402
                                        train, training_specs)
from synmotion_toy.world import BACKGROUNDS, MOTIONS, STYLES, SUBJECTS, render_clip  # noqa: E402

# Seeds far from both the training seeds (below HELDOUT_SEED) and the documented held-out set.
FRESH_SEED = HELDOUT_SEED + 500_000
BACKGROUND_CYCLE = [None, *BACKGROUNDS]
STYLE_CYCLE = [None, *STYLES]


def fresh_renders(count: int, *, styles=STYLE_CYCLE):
    """``count`` renders cycling through every motion and every subject (in different pairings)."""
    motions, subjects = list(MOTIONS), list(SUBJECTS)
    specs = [(subjects[(5 * i + i // 12) % 12], motions[i % 12], BACKGROUND_CYCLE[i % 5], styles[i % len(styles)],
              FRESH_SEED + i) for i in range(count)]
    videos = [render_clip(s, m, background=b, style=st, seed=seed) for s, m, b, st, seed in specs]
    return specs, videos


@pytest.fixture(scope="module")
def judges():
    return load_judges()


def test_shipped_weights_are_small_and_describe_themselves():
    record = json.loads((WEIGHTS_DIR / "judges.json").read_text())
    assert record["labels"]["motion"] == list(MOTIONS)
    assert record["labels"]["subject"] == list(SUBJECTS)
    assert record["labels"]["background"] == ["none", *BACKGROUNDS]
    assert record["labels"]["style"] == ["none", *STYLES]
    assert record["heldout"]["clean"]["motion"] >= 0.95 and record["heldout"]["clean"]["subject"] >= 0.95
    assert sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir()) < 5 * 2**20


def test_fresh_renders_of_every_motion_and_subject_are_judged_right(judges):
    specs, videos = fresh_renders(48)  # each motion and each subject 4 times, all backgrounds and styles
    found = judges.judge_batch(videos)
    motion_right = np.mean([j.motion == m for j, (_, m, *_) in zip(found, specs)])
    subject_right = np.mean([j.subject == s for j, (s, *_) in zip(found, specs)])
    background_right = np.mean([j.background == (b or "none") for j, (_, _, b, _, _) in zip(found, specs)])
    style_right = np.mean([j.style == (st or "none") for j, (*_, st, _) in zip(found, specs)])
    assert motion_right >= 0.9 and subject_right >= 0.9, (motion_right, subject_right)
    assert background_right >= 0.9 and style_right >= 0.9, (background_right, style_right)
    for j in found[:3]:
        for head in ("motion", "subject", "background", "style"):
            p = getattr(j, f"{head}_p")
            assert sum(p.values()) == pytest.approx(1.0, abs=1e-4)
            assert max(p, key=p.get) == getattr(j, head)


def test_blurred_noisy_renders_are_still_judged_right_mostly(judges):
    specs, videos = fresh_renders(24, styles=[None])
    rng = np.random.default_rng(0)
    degraded = []
    for video in videos:
        x = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(1.2))) for f in video])
        x = x + rng.normal(0, 12.0, x.shape)
        degraded.append(np.clip(np.round(x), 0, 255).astype(np.uint8))
    assert np.abs(degraded[0].astype(int) - videos[0]).mean() > 5  # really degraded
    found = judges.judge_batch(degraded)
    assert np.mean([j.motion == m for j, (_, m, *_) in zip(found, specs)]) >= 0.8
    assert np.mean([j.subject == s for j, (s, *_) in zip(found, specs)]) >= 0.8


def test_features_are_unit_length_and_closer_within_a_motion(judges):
    motions = ["walk", "jump", "clap", "wave", "handstand", "bow"]
    subjects = ["person", "zebra", "robot", "frog"]
    videos, names = [], []
    for i, motion in enumerate(motions):
        for k in range(2):
            videos.append(render_clip(subjects[(i + k) % 4], motion, background=BACKGROUND_CYCLE[(i + 2 * k) % 5],
                                      seed=FRESH_SEED + 100 + 2 * i + k))
            names.append(motion)
    features = judges.features_batch(videos)
    assert features.shape[0] == len(videos) and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(judges.features(videos[0]), features[0], atol=1e-5)
    distance = np.linalg.norm(features[:, None] - features[None], axis=2)
    same = np.array(names)[:, None] == np.array(names)[None]
    off_diagonal = ~np.eye(len(videos), dtype=bool)
    assert distance[same & off_diagonal].mean() < 0.7 * distance[~same].mean()


def test_other_sizes_and_frame_counts_are_fitted(judges):
    video = render_clip("panda", "jump", frames=33, fps=16.0, height=96, width=128, seed=FRESH_SEED + 7)
    fitted = fit_video(video)
    assert fitted.shape == (17, 64, 64, 3) and fitted.dtype == np.uint8
    assert judges.judge(video).subject == "panda"
    with pytest.raises(ValueError, match="uint8"):
        fit_video(video.astype(np.float32))


toy_commands = pytest.mark.skipif(
    not any(ep.name == "toy" for ep in entry_points(group="synmotion.commands")),
    reason="synmotion-toy is not installed (pip install -e toy)",
)


@toy_commands
def test_judge_command_reads_mp4s_and_prints_json(capsys, tmp_path):
    long_clip = media.write_mp4(render_clip("fox", "clap", background="grass", seed=FRESH_SEED + 11),
                                tmp_path / "fox clap.mp4", fps=8.0)
    short_clip = media.write_mp4(render_clip("robot", "handstand", frames=6, seed=FRESH_SEED + 12),
                                 tmp_path / "short.mp4", fps=8.0)
    assert read_video(short_clip).shape == (17, 64, 64, 3)
    r = run(capsys, "toy", "judge", long_clip, short_clip, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert [d["video"] for d in data] == [str(long_clip), str(short_clip)]
    assert (data[0]["motion"], data[0]["subject"], data[0]["background"]) == ("clap", "fox", "grass")
    assert data[1]["subject"] == "robot"
    assert set(data[0]["motion_p"]) == set(MOTIONS)
    r = run(capsys, "toy", "judge", long_clip)
    assert r.code == 0, r.err
    assert "clap" in r.out and "fox" in r.out and "MOTION" in r.out


@toy_commands
def test_judge_command_reports_a_missing_video(capsys, tmp_path):
    r = run(capsys, "toy", "judge", tmp_path / "nope.mp4")
    assert r.code == 3 and "nope.mp4" in r.err


def test_augment_is_seeded_and_keeps_shape():
    video = torch.from_numpy(np.stack(fresh_renders(4)[1])).permute(0, 4, 1, 2, 3).float() / 255
    a = augment(video, torch.Generator().manual_seed(3))
    b = augment(video, torch.Generator().manual_seed(3))
    c = augment(video, torch.Generator().manual_seed(4))
    assert a.shape == video.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(video, torch.from_numpy(np.stack(fresh_renders(4)[1])).permute(0, 4, 1, 2, 3).float() / 255)


def test_a_tiny_training_run_is_deterministic_and_loads(tmp_path):
    config = quick_config()
    videos = render_specs(training_specs(config, label_sets()))
    first, record = train(config, videos=videos)
    second, _ = train(config, videos=videos)
    other, _ = train(quick_config(seed=1), videos=videos)
    a, b, c = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert record["labels"]["motion"] == list(MOTIONS) and record["training"]["steps"] == 3
    folder = save(first, record, tmp_path / "judges")
    loaded = load_judges(folder)
    assert loaded.labels == record["labels"]
    saved = loaded.model.state_dict()
    assert set(saved) == set(a) and all(torch.equal(saved[k], a[k]) for k in a)
    video = render_clip("cat", "wave", seed=FRESH_SEED + 20)
    probs, features = judge_tensor(first, torch.from_numpy(fit_video(video)[None]).permute(0, 4, 1, 2, 3) / 255)
    np.testing.assert_allclose(loaded.features(video), (features[0] / features[0].norm()).numpy(), atol=1e-5)
    wave = record["labels"]["motion"].index("wave")
    assert loaded.judge(video).motion_p["wave"] == pytest.approx(float(probs["motion"][0, wave]), abs=1e-5)
