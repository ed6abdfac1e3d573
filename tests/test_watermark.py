"""The pixel watermark: invisible, survives h264 4:2:0, read from any frames, never found where it isn't."""

from __future__ import annotations

import hashlib
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from synmotion_cli import watermark
from synmotion_cli.errors import UsageError
from synmotion_cli.watermark import detect, embed, payload_for

PAYLOAD = 0x5EED_C0DE


def natural_clip(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """Camera-pan footage stand-in: a colour field with a natural image's 1/f spectrum, drifting a few px a frame."""
    rng = np.random.default_rng(seed)
    h, w = height + 4 * frames, width + 4 * frames
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=(3, h, w)) + 1j * rng.normal(size=(3, h, w))) / radius
    field = np.real(np.fft.ifft2(spectrum)).transpose(1, 2, 0)
    field = 128 + 45 * (field - field.mean()) / field.std()
    dy, dx = rng.integers(-2, 3, size=2)
    pan = [field[2 * frames + dy * t:][:height, 2 * frames + dx * t:][:, :width] for t in range(frames)]
    return np.clip(np.stack(pan), 0, 255).astype(np.uint8)


def h264(frames: np.ndarray, tmp_path, crf: int = 20) -> np.ndarray:
    """Encode as h264 yuv420p mp4 with the bundled ffmpeg, decode back to RGB."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    f, h, w, _ = frames.shape
    path = tmp_path / f"clip-{crf}.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "16",
                    "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), str(path)],
                   input=frames.tobytes(), check=True, capture_output=True)
    raw = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize("shape", [(9, 64, 64), (1, 64, 64), (5, 72, 100), (3, 320, 512)])
def test_round_trip_on_raw_frames(shape):
    clip = natural_clip(*shape, seed=1)
    marked = embed(clip, PAYLOAD)
    assert marked.shape == clip.shape and marked.dtype == np.uint8
    found = detect(marked)
    assert found.found and found.payload == PAYLOAD
    assert found.bit_errors == 0 and found.confidence > 0.9


def test_noise_hides_a_stronger_mark():
    noise = np.random.default_rng(3).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    marked = embed(noise, PAYLOAD)
    assert detect(marked).payload == PAYLOAD
    assert 35.5 <= psnr(noise, marked) < 38.5             # beyond the plain budget, hidden by the noise itself


def test_payload_may_be_four_bytes():
    clip = natural_clip(3, 64, 64, seed=2)
    assert detect(embed(clip, bytes.fromhex("00c0ffee"))).payload == 0x00C0FFEE


@pytest.mark.parametrize("shape", [(9, 64, 64), (17, 320, 512)])
def test_invisible(shape):
    for seed in range(3):
        clip = natural_clip(*shape, seed=seed)
        marked = embed(clip, PAYLOAD)
        assert psnr(clip, marked) >= 38.0
        # Only luma moves: R, G and B change together except where a channel clips at 0 or 255.
        change = marked.astype(int) - clip.astype(int)
        unclipped = (clip > 20).all(axis=-1) & (clip < 235).all(axis=-1)
        same = (change[..., 0] == change[..., 1]) & (change[..., 1] == change[..., 2])
        assert same[unclipped].mean() > 0.99


@pytest.mark.parametrize("shape", [(9, 64, 64), (17, 320, 512)])
@pytest.mark.parametrize("crf", [18, 20])
def test_survives_h264_yuv420p(shape, crf, tmp_path):
    clip = natural_clip(*shape, seed=3)
    decoded = h264(embed(clip, PAYLOAD), tmp_path, crf)
    assert decoded.shape == clip.shape
    found = detect(decoded)
    assert found.found and found.payload == PAYLOAD


def test_survives_crf23_at_320x512(tmp_path):
    clip = natural_clip(17, 320, 512, seed=4)
    assert detect(h264(embed(clip, PAYLOAD), tmp_path, 23)).payload == PAYLOAD


def test_any_subset_of_frames_reads(tmp_path):
    decoded = h264(embed(natural_clip(17, 320, 512, seed=5), PAYLOAD), tmp_path, 20)
    for subset in (decoded[:1], decoded[8:9], decoded[3:7], decoded[::-3], decoded[::2]):
        assert detect(subset).payload == PAYLOAD


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (128, 128, 128), (12, 10, 30), (0, 0, 255)])
def test_flat_and_dark_frames_carry_it(colour, tmp_path):
    clip = np.full((9, 64, 64, 3), colour, dtype=np.uint8)
    marked = embed(clip, PAYLOAD)
    assert psnr(clip, marked) >= 38.0
    assert detect(marked).payload == PAYLOAD
    assert detect(h264(marked, tmp_path, 20)).payload == PAYLOAD


def unmarked_clips(count: int):
    """Random noise, flat colours, gradients, moving squares, stripes and natural footage, in assorted sizes."""
    rng = np.random.default_rng(7)
    for i in range(count):
        f = int(rng.integers(1, 12))
        h, w = [(64, 64), (72, 128), (48, 80)][i % 3]
        kind = i % 6
        if kind == 0:
            yield rng.integers(0, 256, (f, h, w, 3), dtype=np.uint8)
        elif kind == 1:
            yield np.full((f, h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        elif kind == 2:
            yy, xx = np.mgrid[0:h, 0:w]
            a, b, c = rng.uniform(-3, 3, 3)
            ramp = a * yy + b * xx + 128 + c * np.arange(f)[:, None, None]
            yield np.repeat(np.clip(ramp, 0, 255)[..., None], 3, axis=-1).astype(np.uint8)
        elif kind == 3:
            clip = np.full((f, h, w, 3), rng.integers(0, 60, 3), dtype=np.uint8)
            for t in range(f):
                clip[t, 8 + t:28 + t, 4 + 2 * t:24 + 2 * t] = rng.integers(150, 256, 3)
            yield clip
        elif kind == 4:
            yy, xx = np.mgrid[0:h, 0:w]
            stripes = 128 + 100 * np.sin(2 * np.pi * (xx + rng.uniform(-1, 1) * yy) / rng.uniform(2, 16))
            yield np.broadcast_to(stripes[None, ..., None], (f, h, w, 3)).astype(np.uint8)
        else:
            yield natural_clip(f, h, w, seed=100 + i)


def test_unmarked_video_is_never_found(tmp_path):
    clips = list(unmarked_clips(300))
    clips += [h264(natural_clip(9, 64, 64, seed=200 + i), tmp_path, 23) for i in range(5)]
    false_positives = [i for i, clip in enumerate(clips) if detect(clip).found]
    assert false_positives == []
    assert detect(clips[1]) == watermark.Detection(False, None, 0.0, None)     # flat: nothing to read at all


def test_payload_mismatch_is_detectable():
    meta = {"prompt": "a panda claps", "seed": "42", "synmotion_version": "0.1.0"}
    other = {**meta, "seed": "43"}
    marked = embed(natural_clip(5, 64, 64, seed=8), payload_for(meta))
    read = detect(marked).payload
    assert read == payload_for(meta) and read != payload_for(other)


def test_a_wrong_checksum_is_rejected_and_weak_bits_are_corrected():
    word = watermark._codeword(PAYLOAD).astype(float)
    tally = 2 * word - 1                                  # a clean read
    assert np.array_equal(watermark._decode(tally), word)
    weak = tally.copy()
    weak[[12, 40]] *= -0.1                                # two bits read wrong, but barely: corrected
    assert np.array_equal(watermark._decode(weak), word)
    wrong = tally.copy()
    wrong[20] *= -1                                       # one payload bit read wrong with full confidence
    assert watermark._decode(wrong) is None


def test_payload_for_is_stable_and_string_based():
    meta = {"prompt": "a panda claps", "seed": 42, "synmotion_version": "0.1.0"}
    pid = payload_for(meta)
    assert pid == 0xA9D2E3CD
    assert payload_for({"synmotion_version": "0.1.0", "seed": "42", "prompt": "a panda claps"}) == pid
    assert payload_for({**meta, "watermark": f"{pid:08x}"}) == pid      # recomputable from the file's tags
    assert payload_for({**meta, "prompt": "a panda waves"}) != pid


def test_layout_never_changes():
    # Videos already out there must stay readable: the keyed layout is part of the format.
    layout = watermark._Layout.for_shape(64, 64)
    digest = hashlib.sha256(layout.bit_of.astype("<u2").tobytes() + layout.sign.astype("<i1").tobytes()).hexdigest()
    assert digest[:16] == "860e0cafccb2bc15"
    assert layout.counts.min() >= 8                       # every bit has a fair share of every frame


def test_layout_is_anchored_top_left():
    small, large = watermark._Layout.for_shape(64, 64), watermark._Layout.for_shape(320, 512)
    slots = len(watermark.CARRIER)
    assert np.array_equal(large.bit_of.reshape(40, 64, slots)[:8, :8], small.bit_of.reshape(8, 8, slots))


def test_survives_odd_size_padding(tmp_path):
    # yuv420p needs even sizes: an odd frame gets a copied row and column at its bottom and right edges.
    marked = embed(natural_clip(9, 63, 95, seed=9), PAYLOAD)
    padded = np.pad(marked, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="edge")
    assert detect(padded).payload == PAYLOAD
    assert detect(h264(padded, tmp_path, 20)).payload == PAYLOAD


def test_bad_input():
    with pytest.raises(UsageError, match="too small"):
        embed(np.zeros((2, 8, 8, 3), np.uint8), PAYLOAD)
    assert not detect(np.zeros((2, 8, 8, 3), np.uint8)).found
    with pytest.raises(ValueError, match="uint8"):
        detect(np.zeros((2, 64, 64, 3), np.float32))
    with pytest.raises(ValueError):
        embed(np.zeros((2, 64, 64, 3), np.uint8), 2**32)
    with pytest.raises(ValueError):
        embed(np.zeros((2, 64, 64, 3), np.uint8), b"abc")
