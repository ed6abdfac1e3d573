"""An invisible provenance mark in the pixels of every generated video.

What is embedded: a 56-bit word = a 16-bit marker, a 32-bit payload (an id of the video's metadata, see
``payload_for``) and a CRC-8 of the payload. Each frame's luma is cut into 8x8 blocks; a few low/mid-frequency
DCT coefficients of every block form the carrier, each assigned to one bit with a pseudo-random sign. A bit is
read as the sign of the mean of its signed coefficients. Embedding moves that mean to at least ``strength``
with the bit's sign, changing only what is needed (content that already agrees is left alone).

Why this shape: the same change is added to R, G and B, so only luma moves and 4:2:0 chroma subsampling cannot
touch it; the pattern is the same in every frame, so h264's motion prediction carries it from frame to frame,
and any subset of frames can be read on its own; frames vote, so the mark gets stronger with length. The
marker plus the CRC reject unmarked video: a random word passes both about once in two million tries.

The key is fixed and published: this marks provenance, it is not DRM and not tamper-proof.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
import json
from dataclasses import dataclass

import numpy as np

PAYLOAD_BITS = 32
MARKER = 0xB5                   # 10110101: flat, dark or saturated content reads as all-equal bits, never this
MARKER_BITS = 8
CRC_BITS = 16
CODE_BITS = MARKER_BITS + PAYLOAD_BITS + CRC_BITS
# Bits read near zero are the likely wrong ones: the decoder may flip up to MAX_FLIPS of the UNSURE_BITS least
# certain. That tries 37 words, so an unmarked video passes marker + CRC with odds 37 / 2**24, about 2e-6.
UNSURE_BITS = 8
MAX_FLIPS = 2
KEY = b"synmotion-watermark-v1"
DEFAULT_STRENGTH = 8.0          # target |mean| of a bit's signed coefficients, orthonormal DCT units
BLOCK = 8
# (row, col) frequencies of the carrier: low enough to survive h264 at crf 18-23, above the first row and
# column so that smooth gradients and edges along the axes barely touch it.
CARRIER = ((1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 1), (2, 3), (3, 2))
MAX_MSE = 255.0**2 / 10 ** (38.5 / 10)   # per-frame change budget: PSNR >= 38.5 dB before rounding
LEVELS = (1.0, 0.85, 0.7, 0.55, 0.4)
GAIN = 1
MIN_SCALE = 0.05                # a frame whose typical bit score is below this carries no mark (flat, black)
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Detection:
    found: bool                 # a code word with the marker and a matching CRC was read
    payload: int | None         # the 32-bit id, only when found
    confidence: float           # how clearly the bits read (the marker's when nothing was found): 0 chance, 1 clean
    bit_errors: int | None      # code bits that read wrong and were corrected; only when found


def payload_for(metadata: dict) -> int:
    """The 32-bit id of a video's metadata: the first 4 bytes of sha256 over its sorted key=value pairs.

    Values are compared as strings (container tags come back as strings), and a ``watermark`` entry is left
    out, so the id can be recomputed from the tags read back from the file.
    """
    canon = {str(k): str(v) for k, v in metadata.items() if str(k) != "watermark"}
    blob = json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big")


def embed(frames: np.ndarray, payload: bytes | int, *, strength: float = DEFAULT_STRENGTH) -> np.ndarray:
    """Return a copy of uint8 ``frames`` (F, H, W, 3) carrying ``payload`` (an int < 2**32 or 4 bytes)."""
    frames = _check_frames(frames)
    layout = _Layout.for_shape(frames.shape[1], frames.shape[2])
    if layout is None:
        raise ValueError(f"frames of {frames.shape[2]}x{frames.shape[1]} are too small to carry a watermark")
    want = 2.0 * _codeword(_payload_int(payload)) - 1.0            # +-1 per bit
    out = frames
    plan = None
    # Rounding and clipping (dark or bright areas) eat part of each change; a few passes make up the shortfall.
    for _ in range(4):
        rgb = out.astype(np.float32)
        scores = layout.scores(_luma(rgb))
        if plan is None:
            plan = _plan(scores, want, layout.counts / (frames.shape[1] * frames.shape[2]), strength)
        target, chosen = plan
        shortfall = np.maximum(target - want * scores, 0.0) * want * chosen   # (F, CODE_BITS)
        if not shortfall.any():
            break
        change = layout.pattern(shortfall)
        rgb[:, : change.shape[1], : change.shape[2]] += change[..., None]    # same change to R, G, B: luma only
        out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out


def _plan(scores: np.ndarray, want: np.ndarray, mse_per_unit: np.ndarray, strength: float):
    """Per frame, the target score and the bits to push to it, within the MAX_MSE change budget.

    Busy texture can oppose a bit so strongly that fixing every bit at full strength would be visible: the
    target is lowered first (down to half), then the dearest bits are left to the other frames, where the
    content has moved on. Returns (target (F, 1), chosen (F, CODE_BITS) of 0.0/1.0).
    """
    for level in LEVELS:
        cost = np.maximum(strength * level - want * scores, 0.0) ** 2 * mse_per_unit
        order = np.argsort(cost, axis=1)
        fits = np.cumsum(np.take_along_axis(cost, order, axis=1), axis=1) <= MAX_MSE
        chosen = np.zeros_like(cost)
        np.put_along_axis(chosen, order, fits.astype(cost.dtype), axis=1)
        if level == LEVELS[0]:
            target, best = np.full((len(scores), 1), strength * level), chosen
        take = (best.sum(axis=1) < CODE_BITS) & (chosen.sum(axis=1) >= best.sum(axis=1) + GAIN)
        target[take], best[take] = strength * level, chosen[take]
    return target, best


def detect(frames: np.ndarray) -> Detection:
    """Read the watermark from uint8 ``frames`` (F, H, W, 3); any number of frames >= 1."""
    frames = _check_frames(frames)
    layout = _Layout.for_shape(frames.shape[1], frames.shape[2])
    if layout is None:
        return Detection(False, None, 0.0, None)
    scores = layout.scores(_luma(frames.astype(np.float32)))       # (F, CODE_BITS)
    scale = np.median(np.abs(scores), axis=1)
    usable = scale > MIN_SCALE
    if not usable.any():
        return Detection(False, None, 0.0, None)
    # Each frame votes with its scores scaled to their own typical size and capped, so no frame dominates.
    votes = np.clip(scores[usable] / scale[usable, None], -2.0, 2.0)
    # Frames h264 damaged (B-frames whose mark moved with the content) read as noise: weigh each frame by how
    # well it agrees with the others. The marker plays no part in the weights, so it still tests chance.
    weight = np.ones(len(votes))
    for _ in range(3):
        consensus = np.sign(weight @ votes)
        weight = np.maximum((np.sign(votes) * consensus).mean(axis=1), 0.0) + 1e-6
    tally = weight @ votes / weight.sum()                          # (CODE_BITS,), within [-2, 2]
    marker_sign = 2.0 * _bits(MARKER, MARKER_BITS) - 1.0
    word = _decode(tally)
    if word is None:
        marker_read = float(np.mean(tally[:MARKER_BITS] * marker_sign))
        return Detection(False, None, float(np.clip(marker_read, 0.0, 1.0)), None)
    payload = _int(word[MARKER_BITS:MARKER_BITS + PAYLOAD_BITS])
    word_read = float(np.mean(tally * (2.0 * word - 1.0)))
    return Detection(True, payload, float(np.clip(word_read, 0.0, 1.0)), int(np.sum(word != (tally > 0))))


def _decode(tally: np.ndarray) -> np.ndarray | None:
    """The code word the votes point to, if one passes the marker and CRC checks with at most MAX_FLIPS flips."""
    read = (tally > 0).astype(np.uint8)
    unsure = np.argsort(np.abs(tally), kind="stable")[:UNSURE_BITS]
    for flips in itertools.chain.from_iterable(itertools.combinations(unsure, k) for k in range(MAX_FLIPS + 1)):
        word = read.copy()
        word[list(flips)] ^= 1
        payload = _int(word[MARKER_BITS:MARKER_BITS + PAYLOAD_BITS])
        if np.array_equal(word, _codeword(payload)):
            return word
    return None


class _Layout:
    """Which carrier coefficient of which block belongs to which bit, with which sign, for one frame size."""

    def __init__(self, blocks_y: int, blocks_x: int):
        self.blocks_y, self.blocks_x = blocks_y, blocks_x
        n = blocks_y * blocks_x * len(CARRIER)
        # shake_256 is stable across Python and numpy versions, so marks stay readable for good.
        stream = hashlib.shake_256(KEY + f":{blocks_y}x{blocks_x}".encode()).digest(5 * n)
        raw = np.frombuffer(stream, dtype=np.uint8)
        order = np.argsort(raw[: 4 * n].view(">u4"), kind="stable")
        self.bit_of = np.empty(n, dtype=np.intp)
        self.bit_of[order] = np.arange(n) % CODE_BITS              # a balanced, scattered share for each bit
        self.sign = np.where(raw[4 * n:] & 1, 1.0, -1.0).astype(np.float32)
        self.counts = np.bincount(self.bit_of, minlength=CODE_BITS).astype(np.float32)
        # slot -> bit averaging matrix: scores = coefficients @ self.mean_of
        self.mean_of = np.zeros((n, CODE_BITS), dtype=np.float32)
        self.mean_of[np.arange(n), self.bit_of] = self.sign / self.counts[self.bit_of]

    @classmethod
    def for_shape(cls, height: int, width: int) -> _Layout | None:
        by, bx = height // BLOCK, width // BLOCK
        if by * bx * len(CARRIER) < CODE_BITS:
            return None
        return _layouts.setdefault((by, bx), cls(by, bx))

    def scores(self, luma: np.ndarray) -> np.ndarray:
        """Per frame and bit, the mean of the bit's signed carrier coefficients."""
        f, by, bx = len(luma), self.blocks_y, self.blocks_x
        blocks = luma[:, : by * BLOCK, : bx * BLOCK].reshape(f, by, BLOCK, bx, BLOCK).transpose(0, 1, 3, 2, 4)
        coeffs = blocks.reshape(f, by, bx, BLOCK * BLOCK) @ _BASIS.T              # (F, by, bx, carrier)
        return coeffs.reshape(f, -1) @ self.mean_of

    def pattern(self, per_bit: np.ndarray) -> np.ndarray:
        """The luma change over the whole blocks that adds ``per_bit`` (F, CODE_BITS) to each bit's mean score."""
        f, by, bx = len(per_bit), self.blocks_y, self.blocks_x
        slots = (per_bit[:, self.bit_of] * self.sign).reshape(f, by, bx, len(CARRIER))
        blocks = (slots @ _BASIS).reshape(f, by, bx, BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
        return blocks.reshape(f, by * BLOCK, bx * BLOCK)


_layouts: dict[tuple[int, int], _Layout] = {}


def _dct_basis() -> np.ndarray:
    """The carrier's 2-D orthonormal DCT-II basis images, one flattened 8x8 block per row."""
    k, i = np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), indexing="ij")
    dct = np.cos(np.pi * (2 * i + 1) * k / (2 * BLOCK)) * np.sqrt(2.0 / BLOCK)
    dct[0] /= np.sqrt(2.0)
    return np.stack([np.outer(dct[r], dct[c]).ravel() for r, c in CARRIER]).astype(np.float32)


_BASIS = _dct_basis()


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ LUMA.astype(np.float32)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


def _payload_int(payload: bytes | int) -> int:
    if isinstance(payload, (bytes, bytearray)):
        if len(payload) != PAYLOAD_BITS // 8:
            raise ValueError(f"a payload is {PAYLOAD_BITS // 8} bytes, got {len(payload)}")
        return int.from_bytes(payload, "big")
    if not 0 <= int(payload) < 2**PAYLOAD_BITS:
        raise ValueError(f"a payload is an integer in [0, 2**{PAYLOAD_BITS}), got {payload}")
    return int(payload)


def _codeword(payload: int) -> np.ndarray:
    return np.concatenate([_bits(MARKER, MARKER_BITS), _bits(payload, PAYLOAD_BITS), _bits(_crc16(payload), CRC_BITS)])


def _bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint8)


def _int(bits: np.ndarray) -> int:
    return int("".join(str(int(b)) for b in bits), 2)


def _crc16(payload: int) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF) over the payload's 4 big-endian bytes."""
    return binascii.crc_hqx(payload.to_bytes(PAYLOAD_BITS // 8, "big"), 0xFFFF)
