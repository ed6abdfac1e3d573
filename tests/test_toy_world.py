"""The toy world's renderer: shapes, determinism, distinct subjects, motions, backgrounds and styles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

world = pytest.importorskip("synmotion_toy.world")

from synmotion_cli.prompts import parse_roles  # noqa: E402
from synmotion_toy.world import (  # noqa: E402
    BACKGROUNDS, BASE_MOTIONS, CUSTOM_MOTIONS, MOTIONS, STYLES, SUBJECTS, Motion, Subject, prompt_for, render_clip,
)
from synmotion_toy.world import skeleton  # noqa: E402
from synmotion_toy.world.motions import MotionFileError, load_motions, parse_motion  # noqa: E402
from synmotion_toy.world.render import plan_clip  # noqa: E402


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


# --- tables ---------------------------------------------------------------------------------------


def test_tables_hold_what_the_world_promises():
    assert len(SUBJECTS) >= 12
    assert {"person", "panda", "zebra", "cat", "fox", "frog", "penguin", "robot", "bear", "rabbit", "lion",
            "crocodile"} <= set(SUBJECTS)
    assert {"walk", "run", "jump", "sit-down", "turn-around", "stand-still"} <= set(BASE_MOTIONS)
    assert {"clap", "wave", "handstand", "spin", "bow", "punch"} <= set(CUSTOM_MOTIONS)
    assert set(BASE_MOTIONS) | set(CUSTOM_MOTIONS) == set(MOTIONS)
    assert len(BACKGROUNDS) >= 4 and len(STYLES) >= 3
    for m in MOTIONS.values():
        assert isinstance(m, Motion) and m.set in ("base", "custom") and m.duration > 0 and m.verb
    for s in SUBJECTS.values():
        assert isinstance(s, Subject) and s.phrase.startswith(("a ", "an "))
        assert s.body.standing_height == pytest.approx(1.0)


@pytest.mark.parametrize("subject, motion, background, style, expected", [
    ("zebra", "walk", "grass", "pixel", "a zebra walks on grass, pixel art style"),
    ("zebra", "handstand", None, None, "a zebra does a handstand"),
    ("person", "sit-down", "night", "sketch", "a person sits down at night, sketch style"),
    ("crocodile", "turn-around", "beach", "cut-paper", "a crocodile turns around on a beach, cut paper style"),
    ("robot", "stand-still", "snow", None, "a robot stands still in snow"),
])
def test_prompts_read_like_the_paper(subject, motion, background, style, expected):
    assert prompt_for(subject, motion, background, style) == expected


def test_prompts_split_into_subject_motion_and_extensions():
    for name, motion in MOTIONS.items():
        roles = parse_roles(prompt_for("fox", name, "night", "pixel"), [motion.verb])
        assert roles.subject_text == "a fox"
        assert roles.motion_text == motion.third_person
        assert roles.extensions_text == "at night, pixel art style"


# --- rendering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_every_motion_renders_deterministically(subject):
    for motion in MOTIONS:
        clip = render_clip(subject, motion, seed=4)
        assert clip.shape == (17, 64, 64, 3) and clip.dtype == np.uint8
        assert np.array_equal(clip, render_clip(subject, motion, seed=4)), (subject, motion)
        assert mad(clip, render_clip(subject, motion, seed=5)) > 1.0, (subject, motion)


def test_clip_shape_follows_the_arguments():
    clip = render_clip("cat", "wave", frames=5, fps=4.0, height=48, width=80, background="beach", style="pixel")
    assert clip.shape == (5, 48, 80, 3) and clip.dtype == np.uint8
    clip = render_clip("cat", "wave", frames=3, height=128, width=96, style="cut-paper")
    assert clip.shape == (3, 128, 96, 3)


def test_unknown_names_are_refused():
    with pytest.raises(KeyError, match="choose one of"):
        render_clip("unicorn", "walk")
    with pytest.raises(KeyError, match="motion"):
        render_clip("person", "moonwalk")
    with pytest.raises(KeyError, match="background"):
        render_clip("person", "walk", background="mars")


@pytest.mark.parametrize("motion", list(MOTIONS))
def test_the_body_stays_in_frame(motion):
    for seed in range(6):
        plan = plan_clip("crocodile" if seed % 2 else "rabbit", motion, seed=seed, height=64, width=96 if seed % 3 else 64)
        fig = plan.figure
        h, w = plan.canvas_size
        for name, radius in fig.radius.items():
            xs, ys, _ = fig.xy[name]
            r = radius * plan.scale
            assert min(xs) - r >= -0.5 and max(xs) + r <= w + 0.5, (motion, seed, name)
            assert min(ys) - r >= -0.5 and max(ys) <= plan.ground + 0.5, (motion, seed, name)


def test_subjects_look_different_from_each_other():
    clips = {s: np.concatenate([render_clip(s, m, seed=i) for i, m in enumerate(("walk", "clap", "stand-still"))])
             for s in SUBJECTS}

    def colours(clip):  # a coarse colour histogram; the backgrounds are the same for the same seeds
        q = (clip // 64).reshape(-1, 3).astype(int)
        h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64)
        return h / h.sum()

    for a, b in itertools.combinations(SUBJECTS, 2):
        assert mad(clips[a], clips[b]) > 3.0, (a, b)
        assert np.abs(colours(clips[a]) - colours(clips[b])).sum() > 0.04, (a, b)


@pytest.mark.parametrize("subject", ["person", "penguin", "crocodile"])
def test_motions_look_different_from_each_other(subject):
    for seed in (0, 1):
        clips = {m: render_clip(subject, m, seed=seed) for m in MOTIONS}
        for a, b in itertools.combinations(MOTIONS, 2):
            assert mad(clips[a], clips[b]) > 3.0, (subject, seed, a, b)
        # Everything but standing still moves visibly from frame to frame.
        energy = {m: float(np.abs(np.diff(c.astype(np.float32), axis=0)).mean()) for m, c in clips.items()}
        for m, e in energy.items():
            if m != "stand-still":
                assert e > 2 * energy["stand-still"], (subject, seed, m, energy)


def _pose(motion: str, progress, subject="person"):
    m = MOTIONS[motion]
    channels = m.sample(np.asarray(progress, dtype=float))
    return channels, skeleton.pose(SUBJECTS[subject].body, channels, 30.0)


def test_motions_do_what_their_names_say():
    t = np.linspace(0, 2, 41)
    # Clap: the hands meet and part.
    _, p = _pose("clap", t)
    gap = np.linalg.norm(p.points["hand_l"] - p.points["hand_r"], axis=1)
    assert gap.min() < 0.06 and gap.max() > 0.3
    # Handstand: ends upside down, standing on its hands.
    _, p = _pose("handstand", [0.0, 1.0])
    assert p.points["head"][0, 1] > p.points["ankle_l"][0, 1]
    assert p.points["head"][1, 1] < p.points["ankle_l"][1, 1]
    assert min(p.points["hand_l"][1, 1], p.points["hand_r"][1, 1]) < 0.08
    # Sit down: the hips end far lower than they start.
    _, p = _pose("sit-down", [0.0, 1.0])
    assert p.points["hips"][1, 1] < 0.6 * p.points["hips"][0, 1]
    # Jump: the body leaves the ground.
    c, _ = _pose("jump", t)
    assert c["lift"].max() > 0.25
    # Turn around and spin: the body turns; spin keeps turning.
    c, _ = _pose("turn-around", [0.0, 1.0])
    assert abs(c["yaw"][1] - c["yaw"][0]) >= 120
    c, _ = _pose("spin", [0.0, 1.0, 2.0])
    assert np.allclose(np.diff(c["yaw"]), 360)
    # Walk and run travel; running is faster.
    walk, run = MOTIONS["walk"], MOTIONS["run"]
    assert run.per_cycle["dx"] / run.duration > 1.5 * walk.per_cycle["dx"] / walk.duration
    # Wave: one hand above the head, the other low.
    _, p = _pose("wave", t)
    assert (p.points["hand_r"][:, 1] > p.points["head"][:, 1]).all()
    assert (p.points["hand_l"][:, 1] < p.points["hips"][:, 1]).all()
    # Bow: the head dips well below its standing height and comes back.
    _, p = _pose("bow", t)
    assert p.points["head"][:, 1].min() < 0.8 * p.points["head"][:, 1].max()


def test_keyframes_are_hit_and_cycles_close():
    motion = parse_motion("t", {"set": "custom", "verb": "test", "key": [
        {"at": 0.0, "torso": 10}, {"at": 0.3, "torso": 50}, {"at": 0.7, "torso": -20}]})
    values = motion.sample(np.array([0.0, 0.3, 0.7, 1.0, 1.3]))["torso"]
    assert np.allclose(values, [10, 50, -20, 10, 50])
    one_shot = parse_motion("o", {"set": "base", "verb": "test", "cyclic": False, "key": [
        {"at": 0.0, "pitch": 0}, {"at": 1.0, "pitch": 90}]})
    assert np.allclose(one_shot.sample(np.array([-1.0, 0.0, 0.5, 1.0, 3.0]))["pitch"], [0, 0, 45, 90, 90])


# --- backgrounds and styles -----------------------------------------------------------------------


def _rows(clip, start, stop):
    h = clip.shape[1]
    return clip[:, int(start * h):int(stop * h)].reshape(-1, 3).astype(np.float32)


def test_backgrounds_look_like_their_names():
    clips = {bg: render_clip("robot", "stand-still", background=bg, seed=2) for bg in [None, *BACKGROUNDS]}
    sky = {bg: np.median(_rows(c, 0.0, 0.3), axis=0) for bg, c in clips.items()}
    ground = {bg: np.median(_rows(c, 0.93, 1.0), axis=0) for bg, c in clips.items()}
    r, g, b = ground["grass"]
    assert g > r + 40 and g > b + 40                       # green grass
    assert sky["night"].mean() < 70 and ground["night"].mean() < 70   # dark
    assert sky["night"][2] > sky["night"][0]               # a blue night sky
    assert ground["snow"].min() > 215                      # white snow
    r, g, b = ground["beach"]
    assert r > g > b and r > 180                           # sand
    assert sky["beach"][2] > sky["beach"][0] + 60          # blue sky
    for a, b in itertools.combinations(clips, 2):
        assert mad(clips[a], clips[b]) > 20, (a, b)


def test_styles_change_the_picture_as_intended():
    plain = render_clip("fox", "walk", background="grass", seed=3)
    pixel = render_clip("fox", "walk", background="grass", style="pixel", seed=3)
    sketch = render_clip("fox", "walk", background="grass", style="sketch", seed=3)
    paper = render_clip("fox", "walk", background="grass", style="cut-paper", seed=3)
    for other in (pixel, sketch, paper):
        assert mad(plain, other) > 4.0
    # Pixel art: 2x2 blocks of one colour, from a few levels per channel.
    assert np.array_equal(pixel[:, ::2, ::2], pixel[:, 1::2, 1::2])
    assert set(np.unique(pixel)) <= set(range(0, 256, 51))
    # Sketch: pale paper and washed-out colour.
    saturation = lambda c: float((c.max(-1).astype(int) - c.min(-1)).mean())  # noqa: E731
    assert sketch.mean() > plain.mean() + 30 and saturation(sketch) < 0.6 * saturation(plain)
    # Cut paper: flat colours with paper grain; the plain sky is a smooth gradient.
    def grain(clip):
        top = clip[:, : clip.shape[1] // 8].astype(np.float32)
        return float(np.median(np.abs(np.diff(top, axis=2))))

    assert grain(paper) >= 3.0 and grain(plain) <= 0.5


# --- motions as data ------------------------------------------------------------------------------

KICK = """
description = "one leg kicks high in front, again and again"
set = "custom"
verb = "kick"
duration = 0.8
mirror = 0.5

[pose]
shoulder_l = 30
elbow_l = 60

[[key]]
at = 0.0
hip_l = 0
knee_l = 0

[[key]]
at = 0.25
hip_l = 95
knee_l = 10

[[key]]
at = 0.5
hip_l = 0
knee_l = 0
"""


def test_a_motion_dropped_in_a_folder_appears_and_renders(tmp_path, monkeypatch):
    (tmp_path / "kick.toml").write_text(KICK)
    monkeypatch.setenv("SYNMOTION_TOY_MOTIONS", str(tmp_path))
    motions = load_motions()
    assert set(MOTIONS) < set(motions)
    kick = motions["kick"]
    assert (kick.set, kick.verb, kick.third_person, kick.cyclic) == ("custom", "kick", "kicks", True)
    assert prompt_for("panda", kick, "snow") == "a panda kicks in snow"
    clip = render_clip("panda", kick, seed=1)
    assert clip.shape == (17, 64, 64, 3)
    assert mad(clip, render_clip("panda", "stand-still", seed=1)) > 3.0


@pytest.mark.parametrize("text, message", [
    ('set = "base"\nverb = "x"\n[pose]\nelbow = 3\n', "unknown channels"),
    ('set = "other"\nverb = "x"\n', "set ="),
    ('set = "base"\n', "no verb"),
    ('set = "base"\nverb = "x"\nduration = -1\n', "duration"),
    ('set = "base"\nverb = "x"\n[[key]]\ntorso = 3\n', "no `at`"),
    ('set = "base"\nverb = "x"\n[[key]]\nat = 0\ntorso = 3\n[[key]]\nat = 1\ntorso = 5\n', "equal its key at 0"),
    ('set = "base"\nverb = "x"\nthis is not toml\n', "motion file"),
])
def test_bad_motion_files_are_reported_by_name(tmp_path, monkeypatch, text, message):
    (tmp_path / "broken.toml").write_text(text)
    monkeypatch.setenv("SYNMOTION_TOY_MOTIONS", str(tmp_path))
    with pytest.raises(MotionFileError, match=message) as caught:
        load_motions()
    assert "broken.toml" in caught.value.message and caught.value.hint
