"""Clip probing, decoding and encoding against real files made by the ffmpeg binary."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from media_fixtures import (BLUE, RED, audio_only, encode, moving_square, random_bytes, square_center_x,
                            stream_line, write_frames)
from synmotion_cli import media
from synmotion_cli.errors import EnvironmentProblem, ExitCode, MediaError, NotFoundError


def assert_one_line_error(error: MediaError, path) -> None:
    assert str(path) in error.message
    assert "\n" not in error.message and "\n" not in str(error)
    assert "Traceback" not in error.message
    assert error.exit_code == ExitCode.USAGE
    assert error.bad_files and error.bad_files[0][0] == str(path)


# --- decoding ------------------------------------------------------------------------------------


def test_odd_sized_mp4_resamples_resizes_and_keeps_temporal_order(tmp_path):
    # 150 frames at 30 fps = 5 s; 33 frames at 8 fps need 4.1 s.
    clip = encode(moving_square(150, 241, 321, size=16, step=2), tmp_path / "odd.mp4", fps=30)
    info = media.probe(clip)
    assert (info.kind, info.codec, info.width, info.height) == ("video", "h264", 321, 241)
    assert (info.fps, info.frames) == (30, 150)
    assert info.duration == pytest.approx(5.0, abs=0.05)

    frames = media.decode(clip, fps=8, height=320, width=512, frames=33)

    assert frames.shape == (33, 320, 512, 3) and frames.dtype == np.uint8
    # Background stays blue in the corners (cover-resize + center crop, no letterbox bars).
    for corner in (frames[:, 0, 0], frames[:, -1, -1], frames[:, 0, -1], frames[:, -1, 0]):
        assert np.abs(corner.astype(int) - BLUE).max() < 40
    # The width is the limiting side: x scales by 512/321. Output frame k is the moment k/8 s, which is
    # source frame 3.75k, whose square is centered at 2 * 3.75k + 8 source pixels.
    scale = 512 / 321
    source_index = [(square_center_x(f) / scale - 8) / 2 for f in frames]
    assert np.all(np.diff(source_index) > 0), "frames out of temporal order"
    assert np.allclose(source_index, np.arange(33) * 30 / 8, atol=2.0)
    # The square is vertically centered, so the crop removed equal rows above and below it.
    rows = np.nonzero(((frames[0, ..., 0] > 150) & (frames[0, ..., 2] < 110)).any(axis=1))[0]
    assert abs((rows.min() + rows.max()) / 2 - 159.5) <= 2


def test_decode_start_skips_ahead(tmp_path):
    clip = encode(moving_square(24, 32, 64, step=2), tmp_path / "clip.mp4", fps=12)
    frames = media.decode(clip, fps=12, height=32, width=64, frames=6, start=1.0)
    source_index = [(square_center_x(f) - 4) / 2 for f in frames]
    assert np.allclose(source_index, np.arange(12, 18), atol=1.0)


@pytest.mark.parametrize("suffix", [".mov", ".webm", ".mkv", ".gif", ".avi", ".m4v"])
def test_other_containers_decode_in_order(tmp_path, suffix):
    clip = encode(moving_square(24, 32, 48, step=1), tmp_path / f"clip{suffix}", fps=12)
    info = media.probe(clip)
    assert info.kind == ("gif" if suffix == ".gif" else "video")
    assert (info.width, info.height) == (48, 32)
    assert info.frames_at(6) >= 12

    frames = media.decode(clip, fps=6, height=16, width=32, frames=9)

    assert frames.shape == (9, 16, 32, 3)
    # Width limits: x scales by 32/48. Output frame k is source frame 2k, square centered at 2k + 4.
    source_x = [square_center_x(f) * 48 / 32 for f in frames]
    assert np.all(np.diff(source_x) > 0)
    assert np.allclose(source_x, np.arange(9) * 2 + 4, atol=1.5)


def test_numbered_frames_folder_sorts_numerically(tmp_path):
    source = moving_square(12, 32, 40, step=2)
    # Lexical order would put 10.png and 11.png before 2.png.
    folder = write_frames(tmp_path / "frames", source, [f"{i}.png" for i in range(12)])
    (folder / "notes.txt").write_text("not a frame")

    info = media.probe(folder, frames_fps=12)
    assert (info.kind, info.width, info.height, info.frames, info.fps, info.codec) == ("frames", 40, 32, 12, 12, "png")

    frames = media.decode(folder, fps=12, height=32, width=40, frames=12, frames_fps=12)
    assert frames.shape == (12, 32, 40, 3)
    np.testing.assert_array_equal(frames, source)  # lossless path: exact pixels, exact order

    # At the default 24 fps a folder of 12 frames is 0.5 s: 4 frames at 8 fps, every third image.
    frames = media.decode(folder, fps=8, height=32, width=40, frames=4)
    picked = [next(i for i, s in enumerate(source) if np.array_equal(f, s)) for f in frames]
    assert np.all(np.diff(picked) == 3), picked


def test_frame_names_with_prefixes_and_padding_sort_numerically(tmp_path):
    source = moving_square(11, 16, 32, size=4, step=2)
    names = ["img-1.jpg", "img-2.jpg", "img-3.jpg", "img-4.jpg", "img-5.jpg", "img-6.jpg", "img-7.jpg",
             "img-8.jpg", "img-9.jpg", "img-10.jpg", "img-11.jpg"]
    folder = write_frames(tmp_path / "jpgs", source, names)
    assert [p.name for p in media._frame_files(folder)] == names
    frames = media.decode(folder, fps=24, height=16, width=32, frames=11)
    centers = [square_center_x(f) for f in frames]
    assert np.allclose(centers, np.arange(11) * 2 + 1.5, atol=1.0)


def test_frames_folder_with_a_different_sized_frame_names_it(tmp_path):
    folder = write_frames(tmp_path / "frames", moving_square(3, 16, 16, size=4), ["1.png", "2.png", "3.png"])
    Image.new("RGB", (8, 8)).save(folder / "2.png")
    with pytest.raises(MediaError) as caught:
        media.decode(folder, fps=24, height=16, width=16, frames=3)
    assert_one_line_error(caught.value, folder / "2.png")
    assert "8x8" in caught.value.message


# --- bad inputs ----------------------------------------------------------------------------------


def bad_inputs(tmp_path):
    text = tmp_path / "notes.mov"
    text.write_text("this is not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    return {
        "random bytes": random_bytes(tmp_path / "random.mp4"),
        "empty": empty,
        "text": text,
        "audio only": audio_only(tmp_path / "audio.mp4"),
    }


@pytest.mark.parametrize("which,reason", [("random bytes", "not a video ffmpeg can read"),
                                          ("empty", "empty file"), ("text", "not a video ffmpeg can read"),
                                          ("audio only", "no video stream")])
def test_bad_file_gives_one_line_media_error(tmp_path, which, reason):
    path = bad_inputs(tmp_path)[which]
    for action in (lambda: media.probe(path), lambda: media.decode(path, fps=8, height=16, width=16, frames=5)):
        with pytest.raises(MediaError) as caught:
            action()
        assert_one_line_error(caught.value, path)
        assert reason in caught.value.message
        assert caught.value.hint


def test_ffmpeg_noise_is_reduced_to_its_reason(tmp_path):
    path = random_bytes(tmp_path / "random.mp4")
    with pytest.raises(MediaError) as caught:
        media.probe(path)
    # Only the reason survives: no "[in#0 @ 0x…]" log prefixes, no repeated "Error opening input" lines.
    assert caught.value.message == f"{path}: not a video ffmpeg can read (Invalid data found when processing input)"


def test_too_short_clip_says_what_it_has_and_needs(tmp_path):
    clip = encode(moving_square(12, 16, 32, size=4), tmp_path / "short.mp4", fps=12)  # 1 s
    with pytest.raises(MediaError) as caught:
        media.decode(clip, fps=8, height=16, width=16, frames=33)
    assert_one_line_error(caught.value, clip)
    message = caught.value.message
    assert "too short: 8 frames at 8 fps, needs 33" in message and "4.1 s" in message


def test_missing_path_is_not_found(tmp_path):
    for action in (media.probe, lambda p: media.decode(p, fps=8, height=8, width=8, frames=1),
                   media.find_clips, media.read_metadata, lambda p: media.load_image(p, height=8, width=8)):
        with pytest.raises(NotFoundError):
            action(tmp_path / "nope.mp4")


def test_probe_frame_count_matches_decode(tmp_path):
    # ffmpeg's fps filter rounds duration x fps: 37 frames at 30 fps (1.233 s) give 10 frames at 8 fps.
    clip = encode(moving_square(37, 16, 48, size=4, step=1), tmp_path / "c.mp4", fps=30)
    info = media.probe(clip)
    assert info.frames_at(8) == 10
    assert media.decode(clip, fps=8, height=16, width=16, frames=10).shape[0] == 10
    with pytest.raises(MediaError, match="10 frames at 8 fps, needs 11"):
        media.decode(clip, fps=8, height=16, width=16, frames=11)


@pytest.mark.skipif(not shutil.which("ffprobe"), reason="no ffprobe on PATH")
def test_ffprobe_and_ffmpeg_parsers_agree(tmp_path):
    clip = encode(moving_square(30, 21, 33, size=4, step=1), tmp_path / "c.mkv", fps=15)
    exe = media.ffmpeg_exe()
    from_ffmpeg = media._facts_from_ffmpeg(clip, exe)
    from_ffprobe = media._facts_from_ffprobe(clip, shutil.which("ffprobe"))
    assert from_ffmpeg[:4] == from_ffprobe[:4]


def test_missing_ffmpeg_is_an_environment_problem(tmp_path, monkeypatch):
    clip = encode(moving_square(4, 16, 16, size=4), tmp_path / "c.mp4", fps=4)
    monkeypatch.setenv("SYNMOTION_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(EnvironmentProblem) as caught:
        media.probe(clip)
    assert "SYNMOTION_FFMPEG" in caught.value.message and caught.value.hint
    assert caught.value.exit_code == ExitCode.ENVIRONMENT


def test_synmotion_ffmpeg_selects_the_binary(monkeypatch):
    import imageio_ffmpeg

    bundled = imageio_ffmpeg.get_ffmpeg_exe()
    monkeypatch.setenv("SYNMOTION_FFMPEG", bundled)
    assert media.ffmpeg_exe() == bundled


# --- finding and checking clips ------------------------------------------------------------------


def test_find_clips_lists_videos_and_frame_folders(tmp_path):
    square = moving_square(2, 8, 16, size=4)
    for name in ("b.mp4", "a.MOV", ".hidden.mp4", "readme.txt"):
        (tmp_path / name).write_bytes(b"x")
    write_frames(tmp_path / "10", square, ["1.png", "2.png"])
    write_frames(tmp_path / "2", square, ["1.png", "2.png"])
    (tmp_path / "empty-dir").mkdir()

    assert [p.name for p in media.find_clips(tmp_path)] == ["2", "10", "a.MOV", "b.mp4"]
    assert media.find_clips(tmp_path / "b.mp4") == [tmp_path / "b.mp4"]
    assert media.find_clips([tmp_path / "b.mp4", tmp_path / "2", tmp_path / "b.mp4"]) == [tmp_path / "b.mp4",
                                                                                          tmp_path / "2"]
    # A folder that only holds frames is itself one clip.
    assert media.find_clips(tmp_path / "2") == [tmp_path / "2"]
    with pytest.raises(MediaError, match="no clips"):
        media.find_clips(tmp_path / "empty-dir")


def test_check_clips_reports_every_bad_file_at_once(tmp_path):
    good = encode(moving_square(24, 16, 32, size=4, step=1), tmp_path / "good.mp4", fps=12)  # 2 s
    short = encode(moving_square(6, 16, 32, size=4, step=1), tmp_path / "short.webm", fps=12)  # 0.5 s
    random_bytes(tmp_path / "broken.mp4")
    (tmp_path / "notes.mov").write_text("hello")

    with pytest.raises(MediaError) as caught:
        media.check_clips(media.find_clips(tmp_path), fps=8, frames=9)

    bad = dict(caught.value.bad_files)
    assert set(bad) == {str(tmp_path / "broken.mp4"), str(tmp_path / "notes.mov"), str(short)}
    assert "too short: 4 frames at 8 fps, needs 9" in bad[str(short)]
    for path in bad:
        assert path in caught.value.message
    assert str(good) not in caught.value.message
    assert caught.value.message.startswith("3 of 4 clips cannot be used")

    infos = media.check_clips([good], fps=8, frames=9)
    assert [i.path for i in infos] == [good]


def test_check_clips_with_one_bad_file_is_one_line(tmp_path):
    good = encode(moving_square(24, 16, 32, size=4, step=1), tmp_path / "good.mp4", fps=12)
    bad = random_bytes(tmp_path / "bad.mp4")
    with pytest.raises(MediaError) as caught:
        media.check_clips([good, bad], fps=8, frames=9)
    assert_one_line_error(caught.value, bad)


def test_valid_frame_count():
    assert [media.valid_frame_count(n) for n in (1, 4, 5, 8, 9, 33, 35, 129)] == [1, 1, 5, 5, 9, 33, 33, 129]
    with pytest.raises(ValueError):
        media.valid_frame_count(0)


# --- writing -------------------------------------------------------------------------------------


def test_write_mp4_odd_size_is_even_h264_yuv420p_with_tags(tmp_path):
    frames = moving_square(10, 33, 21, size=4, step=1)
    frames[:, :, -1] = (0, 255, 0)  # a green last column: its copy must fill the padding
    tags = {"synmotion_seed": "1234", "synmotion_prompt": "a panda claps; 50% = fun #1\nsecond line \\ end",
            "title": "clap"}

    out = media.write_mp4(frames, tmp_path / "out" / "gen.mp4", fps=8, metadata=tags)

    assert out == tmp_path / "out" / "gen.mp4"
    assert [p.name for p in out.parent.iterdir()] == ["gen.mp4"]  # no temp file left behind
    info = media.probe(out)
    assert (info.codec, info.width, info.height, info.frames, info.fps) == ("h264", 22, 34, 10, 8)
    assert "yuv420p" in stream_line(out)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
    tags_read = media.read_metadata(out)
    assert {k: tags_read[k] for k in tags} == tags

    decoded = media.decode(out, fps=8, height=34, width=22, frames=10)
    assert np.abs(decoded[:, 4:-4, -1].astype(int) - (0, 255, 0)).max() < 60  # padding copies the edge
    assert np.abs(decoded[:, -1, 4:-4].astype(int) - BLUE).max() < 60


def test_write_mp4_replaces_and_rejects_bad_input(tmp_path):
    path = tmp_path / "v.mp4"
    media.write_mp4(moving_square(2, 16, 16, size=4), path, fps=4)
    media.write_mp4(moving_square(5, 16, 16, size=4), path, fps=4)
    assert media.probe(path).frames == 5
    with pytest.raises(ValueError):
        media.write_mp4(np.zeros((2, 16, 16, 3), np.float32), path, fps=4)
    with pytest.raises(ValueError):
        media.write_mp4(moving_square(2, 16, 16, size=4), path, fps=4, metadata={"a=b": "c"})
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


# --- contact sheets ------------------------------------------------------------------------------


def numbered_frames(count: int, height: int, width: int) -> np.ndarray:
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[..., 1] = (np.arange(count) * 10)[:, None, None]
    return frames


def test_contact_sheet_layout(tmp_path):
    frames = numbered_frames(24, 20, 30)
    path = media.contact_sheet(frames, tmp_path / "sheet.png", columns=4)
    sheet = np.array(Image.open(path))
    gap, caption = media.SHEET_GAP, media.SHEET_CAPTION
    assert Image.open(path).format == "PNG"
    assert sheet.shape == (4 * (20 + caption) + 5 * gap, 4 * 30 + 5 * gap, 3)
    picks = np.linspace(0, 23, 16).round().astype(int)
    for n, index in enumerate(picks):
        row, col = divmod(n, 4)
        y, x = gap + row * (20 + caption + gap) + 10, gap + col * (30 + gap) + 15
        assert sheet[y, x, 1] == index * 10, f"tile {n} should show frame {index}"
        strip = sheet[y + 10:y + 10 + caption, x - 15:x + 15]
        assert (strip > 150).any(), f"tile {n} has no index printed under it"


def test_contact_sheet_auto_columns_and_max_width(tmp_path):
    frames = numbered_frames(3, 20, 30)
    sheet = np.array(Image.open(media.contact_sheet(frames, tmp_path / "a.png", label="x")))
    gap, caption, label = media.SHEET_GAP, media.SHEET_CAPTION, media.SHEET_LABEL
    assert sheet.shape == (label + 2 * (20 + caption) + 3 * gap, 2 * 30 + 3 * gap, 3)  # ceil(sqrt(3)) = 2 columns
    assert (sheet[:label] > 150).any()  # the label is drawn in its strip
    assert sheet[label + gap + 10, gap + 30 + gap + 15, 1] == 10  # second tile, below the label: frame 1

    wide = numbered_frames(16, 90, 160)
    small = Image.open(media.contact_sheet(wide, tmp_path / "b.png", max_width=200))
    assert small.width <= 200
    tile_w = (200 - 5 * gap) // 4
    assert small.size == (4 * tile_w + 5 * gap, 4 * (round(90 * tile_w / 160) + caption) + 5 * gap)


# --- still images --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_load_image_covers_and_center_crops(tmp_path, suffix):
    image = np.zeros((17, 41, 3), np.uint8)  # odd size, wider than the target
    image[:, :20] = RED
    image[:, 21:] = (0, 255, 0)
    path = tmp_path / f"img{suffix}"
    Image.fromarray(image).save(path, quality=95)

    loaded = media.load_image(path, height=32, width=32)

    assert loaded.shape == (32, 32, 3) and loaded.dtype == np.uint8
    # Scaled to 77x32 then center-cropped: red on the left, green on the right, no bars.
    assert np.abs(loaded[16, 2].astype(int) - RED).max() < 40
    assert np.abs(loaded[16, -3].astype(int) - (0, 255, 0)).max() < 40


def test_load_image_applies_exif_rotation_and_flattens_alpha(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif)
    rotated = Image.open(tmp_path / "phone.jpg")
    assert rotated.size == (40, 20)
    loaded = media.load_image(tmp_path / "phone.jpg", height=40, width=20)  # portrait as displayed: no crop
    assert loaded.shape == (40, 20, 3) and np.abs(loaded.astype(int) - (0, 255, 0)).max() < 40

    clear = Image.new("RGBA", (9, 9), (255, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    assert (media.load_image(tmp_path / "clear.png", height=9, width=9) == 255).all()


def test_load_image_rejects_non_images(tmp_path):
    text = tmp_path / "photo.png"
    text.write_text("not a picture")
    with pytest.raises(MediaError) as caught:
        media.load_image(text, height=16, width=16)
    assert_one_line_error(caught.value, text)
    with pytest.raises(MediaError):
        media.load_image(tmp_path, height=16, width=16)


def test_decode_takes_the_first_frames_of_a_longer_clip(tmp_path):
    clip = encode(moving_square(60, 16, 64, size=4, step=1), tmp_path / "c.mp4", fps=30)
    frames = media.decode(clip, fps=30, height=16, width=64, frames=3)
    assert frames.shape == (3, 16, 64, 3)
    assert np.allclose([square_center_x(f) for f in frames], [1.5, 2.5, 3.5], atol=0.75)
