"""Clips in, videos out: probing, decoding and encoding through the ffmpeg binary (via ffmpeg-python).

A clip is a video file (mp4, mov, webm, mkv, gif, avi, m4v) or a folder of numbered frames
(``frame_0001.png``, ``2.jpg`` …, ordered numerically). Every problem with an input becomes a one-line
``MediaError`` that names the file; ffmpeg's own multi-line stderr is reduced to its last meaningful line.

The ffmpeg binary is ``$SYNMOTION_FFMPEG``, else ``ffmpeg`` on PATH, else the one bundled with
imageio-ffmpeg. That bundle has no ffprobe, so probing parses ``ffmpeg -i`` unless ffprobe is on PATH.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple

import ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .errors import EnvironmentProblem, MediaError, NotFoundError

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".gif", ".avi", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FRAMES_FPS = 24.0  # the rate a folder of frames plays at unless told otherwise
PROBE_TIMEOUT_S = 120

_REENCODE_HINT = "Check that the file plays, or re-encode it: ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4"


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    kind: str  # "video" | "frames" | "gif"
    width: int  # as displayed (rotation applied)
    height: int
    fps: float
    frames: int
    duration: float
    codec: str

    def frames_at(self, fps: float) -> int:
        """How many frames ``decode`` yields at ``fps``: ffmpeg's fps filter rounds duration x fps."""
        return math.floor(self.duration * fps + 0.5)


# --- the ffmpeg binary ---------------------------------------------------------------------------


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to run; EnvironmentProblem if there is none."""
    configured = os.environ.get("SYNMOTION_FFMPEG")
    if configured:
        exe = shutil.which(configured)
        if not exe:
            raise EnvironmentProblem(
                f"SYNMOTION_FFMPEG is set to {configured!r}, which is not an executable file",
                hint="Point SYNMOTION_FFMPEG at an ffmpeg binary, or unset it to use the bundled one.",
            )
        return exe
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise EnvironmentProblem(
            "ffmpeg was not found",
            hint="Install ffmpeg (apt install ffmpeg / brew install ffmpeg), or pip install imageio-ffmpeg, "
            "or set SYNMOTION_FFMPEG to an ffmpeg binary.",
        ) from e


def _spawn(args: list[str], **popen_kwargs) -> subprocess.Popen:
    try:
        return subprocess.Popen(args, **popen_kwargs)
    except OSError as e:
        raise EnvironmentProblem(
            f"cannot run ffmpeg at {args[0]}: {e.strerror or e}",
            hint="Set SYNMOTION_FFMPEG to a working ffmpeg binary.",
        ) from e


def _run(args: list[str], path: Path) -> tuple[int, bytes, str]:
    """Run a short ffmpeg job about ``path`` (probe, count, tags): exit code, stdout, stderr."""
    proc = _spawn(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise _bad(path, f"ffmpeg did not finish reading it within {PROBE_TIMEOUT_S} s") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, out, err.decode("utf-8", "replace")


def _src(path: Path) -> str:
    # "file:" + an absolute path keeps names with ':' from being read as a protocol.
    return "file:" + os.path.abspath(path)


_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")
_NO_VIDEO = "no video stream"
_GENERIC_LINES = {"Conversion failed!", "At least one output file must be specified"}


def _reason(stderr: str, src: str) -> str:
    """ffmpeg's last meaningful stderr line, without log prefixes or the file name."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and line not in _GENERIC_LINES]
    if any("matches no streams" in line for line in lines):
        return _NO_VIDEO
    if not lines:
        return "ffmpeg failed without saying why"
    line = lines[-1].replace(f"{src}: ", "").replace(f"'{src}': ", "")
    match = re.match(r"Error opening (?:input|output) files?: (.*)", line)
    return (match.group(1) if match else line)[:200]


def _bad(path, reason: str, hint: str | None = _REENCODE_HINT) -> MediaError:
    reason = " ".join(reason.split())  # always one line
    return MediaError(f"{path}: {reason}", bad_files=[(str(path), reason)], hint=hint)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise NotFoundError(f"{path}: no such file or folder", hint="Check the path.")
    if path.is_file() and path.stat().st_size == 0:
        raise _bad(path, "empty file (0 bytes)", hint="Replace it with a real clip.")


# --- frames folders and images -------------------------------------------------------------------


def _natural_key(name: str) -> tuple[list, str]:
    # Split into text/number runs so "2.png" < "10.png"; text and numbers alternate, so types line up.
    parts = re.split(r"(\d+)", name.lower())
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


def _frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir()
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _open_rgb(path: Path) -> tuple[Image.Image, str]:
    """An image as RGB with its EXIF orientation applied, and its format name."""
    try:
        with Image.open(path) as img:
            img.load()
            fmt = (img.format or path.suffix.lstrip(".")).lower()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                # Transparent areas become white rather than whatever colour hides under the alpha.
                rgba = img.convert("RGBA")
                img = Image.new("RGB", rgba.size, (255, 255, 255))
                img.paste(rgba, mask=rgba.getchannel("A"))
            return img.convert("RGB"), fmt
    except UnidentifiedImageError:
        raise _bad(path, "not an image Pillow can read", hint="Use a PNG, JPEG or WebP file.") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise _bad(path, f"damaged image ({e})", hint="Use a PNG, JPEG or WebP file.") from None


def load_image(path, *, height: int, width: int) -> np.ndarray:
    """An image file resized to cover ``height`` x ``width``, center-cropped: uint8 (height, width, 3) RGB."""
    path = Path(path)
    _check_file(path)
    if path.is_dir():
        raise _bad(path, "is a folder, not an image", hint="Pass one image file.")
    img, _ = _open_rgb(path)
    return np.array(ImageOps.fit(img, (width, height), method=Image.Resampling.LANCZOS))


# --- probing -------------------------------------------------------------------------------------


class _VideoFacts(NamedTuple):
    codec: str
    width: int
    height: int
    fps: float
    duration: float | None
    frames: int | None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+.*?: Video: (\w+)(.*)$")
_SIZE = re.compile(r", (\d+)x(\d+)\b")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")


def _rate(text: str, unit: str) -> float:
    match = re.search(rf"([\d.]+)(k?) {unit}\b", text)
    if not match:
        return 0.0
    return float(match.group(1)) * (1000 if match.group(2) else 1)


def _facts_from_ffmpeg(path: Path, exe: str) -> _VideoFacts:
    """Parse ``ffmpeg -i FILE`` (no ffprobe needed). ffmpeg exits 1 here by design: judge by the text."""
    src = _src(path)
    _, _, err = _run([exe, "-hide_banner", "-nostdin", "-i", src], path)
    if not re.search(r"^Input #0", err, re.M):
        raise _bad(path, f"not a video ffmpeg can read ({_reason(err, src)})")
    lines = err.splitlines()
    for i, line in enumerate(lines):
        stream = _VIDEO_STREAM.match(line)
        if not stream or "(attached pic)" in line:
            continue
        codec, rest = stream.groups()
        size = _SIZE.search(rest)
        width, height = (int(size.group(1)), int(size.group(2))) if size else (0, 0)
        block = []  # this stream's side data, up to the next stream
        for follow in lines[i + 1:]:
            if re.match(r"^\s*Stream #", follow) or not follow.startswith("    "):
                break
            block.append(follow)
        rotation = _ROTATION.search("\n".join(block))
        if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
            width, height = height, width  # ffmpeg autorotates on decode
        duration = _DURATION.search(err)
        seconds = None
        if duration:
            h, m, s = duration.groups()
            seconds = int(h) * 3600 + int(m) * 60 + float(s)
        fps = _rate(rest, "fps") or _rate(rest, "tbr")
        return _VideoFacts(codec, width, height, fps, seconds, None)
    has_audio = re.search(r"^\s*Stream #0:\d+.*?: Audio: ", err, re.M)
    raise _bad(path, f"{_NO_VIDEO} (audio only)" if has_audio else _NO_VIDEO,
               hint="Pass a video file or a folder of frames.")


def _fraction(text: str | None) -> float:
    num, _, den = (text or "0/0").partition("/")
    try:
        return float(num) / float(den or 1) if float(den or 1) else 0.0
    except ValueError:
        return 0.0


def _facts_from_ffprobe(path: Path, exe: str) -> _VideoFacts:
    src = _src(path)
    code, out, err = _run([exe, "-hide_banner", "-v", "error", "-show_format", "-show_streams", "-of", "json", src],
                          path)
    if code != 0:
        raise _bad(path, f"not a video ffmpeg can read ({_reason(err, src)})")
    data = json.loads(out.decode("utf-8", "replace"))
    streams = data.get("streams", [])
    videos = [s for s in streams
              if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not videos:
        has_audio = any(s.get("codec_type") == "audio" for s in streams)
        raise _bad(path, f"{_NO_VIDEO} (audio only)" if has_audio else _NO_VIDEO,
                   hint="Pass a video file or a folder of frames.")
    video = videos[0]
    width, height = int(video.get("width", 0)), int(video.get("height", 0))
    rotation = video.get("tags", {}).get("rotate") or next(
        (d["rotation"] for d in video.get("side_data_list", []) if "rotation" in d), 0)
    if round(abs(float(rotation))) % 180 == 90:
        width, height = height, width
    fps = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate"))
    duration = video.get("duration") or data.get("format", {}).get("duration")
    frames = video.get("nb_frames")
    return _VideoFacts(video.get("codec_name", "unknown"), width, height, fps,
                       float(duration) if duration else None, int(frames) if frames else None)


def _count_frames(path: Path, exe: str) -> int:
    """Count the video packets by stream copy: no decoding, so it stays fast on long clips."""
    src = _src(path)
    code, out, err = _run([exe, "-hide_banner", "-nostdin", "-v", "error", "-i", src, "-map", "0:V:0",
                           "-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-"], path)
    counts = re.findall(rb"^frame=(\d+)", out, re.M)
    if code != 0 or not counts:
        raise _bad(path, f"cannot count its frames ({_reason(err, src)})")
    return int(counts[-1])


def _frames_or_fail(path: Path) -> list[Path]:
    """The numbered frames of a folder clip; a folder without any is a bad clip."""
    files = _frame_files(path)
    if not files:
        raise _bad(path, f"folder has no image frames ({', '.join(IMAGE_SUFFIXES)})",
                   hint="Put numbered frames (frame_0001.png …) in the folder, or pass a video file.")
    return files


def probe(path, *, frames_fps: float = FRAMES_FPS) -> ClipInfo:
    """Size, rate, length and codec of a video file or a folder of numbered frames."""
    path = Path(path)
    _check_file(path)
    if path.is_dir():
        files = _frames_or_fail(path)
        first, fmt = _open_rgb(files[0])
        return ClipInfo(path, "frames", first.width, first.height, float(frames_fps), len(files),
                        len(files) / frames_fps, fmt)
    exe = ffmpeg_exe()
    ffprobe = shutil.which("ffprobe")
    facts = _facts_from_ffprobe(path, ffprobe) if ffprobe else _facts_from_ffmpeg(path, exe)
    if facts.width <= 0 or facts.height <= 0:
        raise _bad(path, "video stream has no picture size")
    frames, duration, fps = facts.frames, facts.duration, facts.fps
    if duration is None and frames is None:
        frames = _count_frames(path, exe)
    if fps <= 0 and frames and duration:
        fps = frames / duration
    if fps <= 0:
        raise _bad(path, "cannot tell its frame rate")
    if duration is None:
        duration = frames / fps
    if frames is None:
        frames = math.floor(duration * fps + 0.5)
    kind = "gif" if facts.codec == "gif" else "video"
    return ClipInfo(path, kind, facts.width, facts.height, float(fps), int(frames), float(duration), facts.codec)


# --- finding and checking clips ------------------------------------------------------------------


def _is_frames_folder(path: Path) -> bool:
    return path.is_dir() and bool(_frame_files(path))


def find_clips(folder_or_files) -> list[Path]:
    """Clips named by a folder (its videos and frame subfolders; the folder itself if it only holds
    frames), a file, or a list of either. Sorted by name, numbers numerically."""
    items = [folder_or_files] if isinstance(folder_or_files, (str, os.PathLike)) else list(folder_or_files)
    clips: list[Path] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise NotFoundError(f"{path}: no such file or folder", hint="Check the path.")
        if not path.is_dir():
            clips.append(path)
            continue
        found = [p for p in path.iterdir() if not p.name.startswith(".") and (
            (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or _is_frames_folder(p))]
        if not found and _is_frames_folder(path):
            found = [path]
        if not found:
            raise MediaError(
                f"{path}: no clips found in this folder",
                hint=f"Put video files ({' '.join(VIDEO_SUFFIXES)}) or folders of numbered frames in it.",
            )
        clips.extend(sorted(found, key=lambda p: _natural_key(p.name)))
    return list(dict.fromkeys(clips))


def _too_short(have: int, fps: float, frames: int, *, start: float = 0.0, frames_fps: float | None = None) -> str:
    after = f" after {start:g} s" if start else ""
    need = f"at least {frames / fps:.1f} s"
    if frames_fps:
        need += f", {math.ceil(frames / fps * frames_fps)} images at {frames_fps:g} fps"
    return f"too short: {have} frames at {fps:g} fps{after}, needs {frames} ({need})"


def check_clips(paths: Iterable, *, fps: float, frames: int, frames_fps: float = FRAMES_FPS) -> list[ClipInfo]:
    """Probe every clip; one MediaError listing every unreadable or too-short clip."""
    infos: list[ClipInfo] = []
    bad: list[tuple[str, str]] = []
    paths = list(paths)
    if not paths:
        raise MediaError("no clips given", hint="Pass video files or a folder of clips.")
    for path in paths:
        try:
            info = probe(path, frames_fps=frames_fps)
        except MediaError as e:
            bad.extend(e.bad_files or [(str(path), e.message)])
            continue
        except NotFoundError:
            bad.append((str(path), "no such file or folder"))
            continue
        have = info.frames_at(fps)
        if have < frames:
            bad.append((str(path), _too_short(have, fps, frames,
                                              frames_fps=frames_fps if info.kind == "frames" else None)))
        infos.append(info)
    if bad:
        hint = (f"Remove or replace the clips named. Each clip must be a video or a folder of numbered frames lasting "
                f"at least {frames / fps:.1f} s ({frames} frames at {fps:g} fps).")
        if len(bad) == 1:
            raise MediaError(f"{bad[0][0]}: {bad[0][1]}", bad_files=bad, hint=hint)
        lines = [f"{len(bad)} of {len(paths)} clips cannot be used:"] + [f"  {p}: {why}" for p, why in bad]
        raise MediaError("\n".join(lines), bad_files=bad, hint=hint)
    return infos


def valid_frame_count(n: int) -> int:
    """Largest 4k+1 <= n: HunyuanVideo's causal VAE packs 1 + 4k frames."""
    if n < 1:
        raise ValueError(f"frame count must be at least 1, got {n}")
    return (n - 1) // 4 * 4 + 1


# --- decoding ------------------------------------------------------------------------------------


def _read_into(stream, buffer: np.ndarray) -> int:
    view = memoryview(buffer).cast("B")
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _feed_images(stdin, files: list[Path], size: tuple[int, int], errors: list[BaseException]) -> None:
    try:
        for file in files:
            img, _ = _open_rgb(file)
            if img.size != size:
                raise _bad(file, f"is {img.width}x{img.height}, but the first frame is {size[0]}x{size[1]}",
                           hint="Make every frame in the folder the same size.")
            stdin.write(img.tobytes())
    except BrokenPipeError:
        pass  # ffmpeg had all the frames it needed
    except BaseException as e:
        errors.append(e)
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass


def decode(path, *, fps: float, height: int, width: int, frames: int, start: float = 0.0,
           frames_fps: float = FRAMES_FPS) -> np.ndarray:
    """Exactly ``frames`` frames at ``fps`` from ``start`` s, each resized to cover ``height`` x ``width``
    and center-cropped: uint8 (frames, height, width, 3) RGB. One ffmpeg process per clip."""
    if fps <= 0 or height < 1 or width < 1 or frames < 1 or start < 0:
        raise ValueError(f"bad decode request: fps={fps} height={height} width={width} frames={frames} start={start}")
    path = Path(path)
    _check_file(path)
    images: list[Path] = []
    if path.is_dir():
        images = _frames_or_fail(path)
        first, _ = _open_rgb(images[0])
        # Skip and stop in Python: exact for frames, and no image is read that cannot be used.
        skip = round(start * frames_fps)
        images = images[skip: skip + math.ceil(frames * frames_fps / fps) + 1]
        stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{first.width}x{first.height}",
                              framerate=frames_fps)["v:0"]
        src = "pipe:"
    else:
        src = _src(path)
        # "V" skips cover art; input-side -ss seeks fast and, while transcoding, exactly.
        stream = (ffmpeg.input(src, ss=start) if start else ffmpeg.input(src))["V:0"]
    stream = (stream.filter("fps", fps=fps)
              .filter("scale", "iw*sar", "ih").filter("setsar", 1)  # square pixels before fitting
              .filter("scale", width, height, force_original_aspect_ratio="increase")
              .filter("crop", width, height))
    args = (stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", **{"frames:v": frames})
            .global_args("-hide_banner", "-nostdin", "-v", "error").compile(cmd=ffmpeg_exe()))

    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    errors: list[BaseException] = []
    # stderr goes to a file so a chatty decoder can never fill a pipe and stall the read below.
    with tempfile.TemporaryFile() as err_file:
        proc = _spawn(args, stdin=subprocess.PIPE if images else subprocess.DEVNULL,
                      stdout=subprocess.PIPE, stderr=err_file)
        feeder = None
        try:
            if images:
                feeder = threading.Thread(target=_feed_images,
                                          args=(proc.stdin, images, (first.width, first.height), errors),
                                          daemon=True)
                feeder.start()
            got = _read_into(proc.stdout, out)
            proc.stdout.close()
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if feeder:
                feeder.join()
        err_file.seek(0)
        stderr = err_file.read().decode("utf-8", "replace")

    if errors:
        raise errors[0]
    frame_bytes = height * width * 3
    have = got // frame_bytes
    if have == frames:
        return out
    if have == 0 and proc.returncode != 0:
        reason = _reason(stderr, src)
        if reason == _NO_VIDEO:
            raise _bad(path, reason, hint="Pass a video file or a folder of frames.")
        raise _bad(path, f"not a video ffmpeg can read ({reason})")
    raise _bad(path, _too_short(have, fps, frames, start=start, frames_fps=frames_fps if images else None),
               hint="Use a longer clip, or ask for fewer frames or a lower fps.")


# --- writing -------------------------------------------------------------------------------------


def _temp_beside(path: Path) -> Path:
    # Same folder, so os.replace is an atomic rename; a leading dot keeps it out of folder listings.
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")


def write_mp4(frames: np.ndarray, path, *, fps: float, metadata: dict[str, str] | None = None,
              crf: int = 18) -> Path:
    """Encode uint8 (N, H, W, 3) RGB frames as h264 yuv420p mp4 with +faststart; ``metadata`` becomes
    container tags. yuv420p needs even sizes: an odd width or height gains one column or row copied
    from the edge (no content is cropped). Written to a temp file, then renamed into place."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    _, height, width, _ = frames.shape
    pad_h, pad_w = height % 2, width % 2
    tags = {}
    for i, (key, value) in enumerate((metadata or {}).items()):
        if not key or "=" in key:
            raise ValueError(f"bad metadata key {key!r}")
        tags[f"metadata:g:{i}"] = f"{key}={value}"

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_beside(path)
    args = (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width + pad_w}x{height + pad_h}",
                         framerate=fps)
            .output(_src(temp), format="mp4", vcodec="libx264", pix_fmt="yuv420p", crf=crf,
                    movflags="+faststart+use_metadata_tags", **tags)
            .global_args("-hide_banner", "-nostdin", "-v", "error")
            .compile(cmd=ffmpeg_exe(), overwrite_output=True))
    try:
        with tempfile.TemporaryFile() as err_file:
            proc = _spawn(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err_file)
            finished = False
            try:
                for frame in frames:
                    if pad_h or pad_w:
                        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                    proc.stdin.write(np.ascontiguousarray(frame).tobytes())
                finished = True
            except BrokenPipeError:
                finished = True  # ffmpeg stopped early; its exit status and stderr say why
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                if not finished:  # interrupted: don't let ffmpeg finish a file nobody wants
                    proc.kill()
                proc.wait()
            err_file.seek(0)
            stderr = err_file.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            raise MediaError(f"{path}: cannot write the video ({_reason(stderr, _src(temp))})",
                             hint="Check that the folder is writable and the disk has space.")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def _parse_ffmetadata(text: str) -> dict[str, str]:
    """The global section of ffmpeg's FFMETADATA1 format: key=value, '\\' escapes '=;#\\' and newlines."""
    lines: list[list[tuple[str, bool]]] = [[]]
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            lines[-1].append((next(chars, ""), True))
        elif ch == "\n":
            lines.append([])
        else:
            lines[-1].append((ch, False))
    tags: dict[str, str] = {}
    for line in lines[1:]:  # the first line is the ";FFMETADATA1" header
        if not line or (not line[0][1] and line[0][0] in ";#"):
            continue
        if not line[0][1] and line[0][0] == "[":
            break  # [STREAM] / [CHAPTER] sections follow the global tags
        split = next((i for i, (ch, escaped) in enumerate(line) if ch == "=" and not escaped), None)
        if split is not None:
            tags["".join(ch for ch, _ in line[:split])] = "".join(ch for ch, _ in line[split + 1:])
    return tags


def read_metadata(path) -> dict[str, str]:
    """The container's tags (custom keys included), as ``write_mp4`` stored them."""
    path = Path(path)
    _check_file(path)
    src = _src(path)
    # bitexact: otherwise ffmpeg stamps its own "encoder" tag on the dump.
    code, out, err = _run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", src,
                           "-f", "ffmetadata", "-fflags", "+bitexact", "pipe:1"], path)
    if code != 0:
        raise _bad(path, f"cannot read its tags ({_reason(err, src)})")
    return _parse_ffmetadata(out.decode("utf-8", "replace"))


# --- contact sheets ------------------------------------------------------------------------------

SHEET_MAX_FRAMES = 16
SHEET_GAP = 2  # pixels between tiles and around the edge
SHEET_CAPTION = 12  # height of the frame-index strip under each tile
SHEET_LABEL = 20  # height of the optional label strip on top
_SHEET_BACKGROUND = (24, 24, 24)
_SHEET_TEXT = (220, 220, 220)


def contact_sheet(frames: np.ndarray, path, *, columns: int = 0, max_width: int = 1600,
                  label: str | None = None) -> Path:
    """A PNG grid of up to 16 evenly spaced frames, each with its index underneath.

    ``columns=0`` picks ceil(sqrt(n)). Tiles keep the frames' aspect, shrink to fit ``max_width`` and never
    grow. Layout: SHEET_GAP pixels around every tile, SHEET_CAPTION under each, SHEET_LABEL on top if labelled.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    count, height, width, _ = frames.shape
    picks = np.unique(np.linspace(0, count - 1, min(count, SHEET_MAX_FRAMES)).round().astype(int))
    columns = max(1, min(columns or math.ceil(math.sqrt(len(picks))), len(picks)))
    rows = math.ceil(len(picks) / columns)
    tile_w = max(1, min(width, (max_width - SHEET_GAP * (columns + 1)) // columns))
    tile_h = max(1, round(height * tile_w / width))
    top = SHEET_LABEL if label else 0
    sheet = Image.new("RGB", (columns * tile_w + (columns + 1) * SHEET_GAP,
                              top + rows * (tile_h + SHEET_CAPTION) + (rows + 1) * SHEET_GAP), _SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    caption_font = ImageFont.load_default(size=SHEET_CAPTION - 2)
    if label:
        draw.text((SHEET_GAP + 2, 3), label, fill=_SHEET_TEXT, font=ImageFont.load_default(size=SHEET_LABEL - 6))
    for n, index in enumerate(picks):
        row, col = divmod(n, columns)
        x = SHEET_GAP + col * (tile_w + SHEET_GAP)
        y = top + SHEET_GAP + row * (tile_h + SHEET_CAPTION + SHEET_GAP)
        tile = Image.fromarray(frames[index])
        if tile.size != (tile_w, tile_h):
            tile = tile.resize((tile_w, tile_h), Image.Resampling.LANCZOS)
        sheet.paste(tile, (x, y))
        draw.text((x + 1, y + tile_h), str(int(index)), fill=_SHEET_TEXT, font=caption_font)

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_beside(path)
    try:
        sheet.save(temp, format="PNG")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path
