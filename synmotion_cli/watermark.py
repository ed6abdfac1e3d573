"""An invisible provenance mark in the pixels of every generated video.

What is embedded: a 56-bit code word = an 8-bit marker, the 32-bit payload (an id of the video's metadata, see
``payload_for``) and a CRC-16 of the payload. Each frame's luma is cut into 8x8 blocks; eight mid-frequency DCT
coefficients of every block form the carrier, each one assigned to one bit with a pseudo-random sign. A bit
reads as the sign of the mean of its signed coefficients. Embedding moves that mean to ``strength`` with the
bit's sign, changing only what is needed (content that already agrees is left alone), within a per-frame
budget that keeps PSNR >= 38.5 dB (more only on noise-like frames, whose own texture hides the change).

Why this shape: the same change is added to R, G and B, so only luma moves and 4:2:0 chroma subsampling cannot
touch it; the layout is the same in every frame, so h264's motion prediction carries the mark from frame to
frame and any subset of frames can be read on its own; frames vote, so longer clips read more reliably.
The marker plus the CRC reject unmarked video (a random word passes about once in 450,000 tries).

The key is fixed and published: this marks provenance; it is not DRM and not tamper-proof.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
import json
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

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
DEFAULT_STRENGTH = 8.0          # target |mean| of a bit's signed coefficients, in orthonormal DCT units
LEVELS = (1.0, 0.85, 0.7, 0.55, 0.4)     # fractions of strength tried when a frame's budget is tight
MAX_MSE = 255.0**2 / 10 ** (38.5 / 10)   # per-frame change budget: PSNR >= 38.5 dB (before rounding) ...
MASKING = 0.05                  # ... or this share of the frame's own carrier-band energy, if larger
BLOCK = 8
# (row, col) DCT frequencies of the carrier. Low enough for h264 at crf <= 23 to keep them; high enough that
# image content, strongest at low frequencies, rarely costs much to override; none in the first row or
# column, where smooth gradients and straight edges put their energy.
CARRIER = ((2, 2), (2, 3), (3, 2), (3, 3), (1, 4), (4, 1), (2, 4), (4, 2))
TILE = (2, 4)                   # blocks per tile (rows, columns): 64 slots, each bit once plus 8 extras
MIN_SCALE = 0.05                # a frame whose typical |bit score| is below this is flat or black: no vote
CHUNK = 16                      # frames processed at once, to bound memory on long or large videos
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)     # BT.601; the weights sum to 1, as do BT.709's


@dataclass(frozen=True)
class Detection:
    found: bool                 # a code word with the marker and a matching CRC was read
    payload: int | None         # the 32-bit id, only when found
    confidence: float           # how clearly the code word read: 1 clean, near 0 barely; 0 when not found
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
        raise UsageError(f"frames of {frames.shape[1]}x{frames.shape[2]} (height x width) are too small for the "
                         "watermark", hint="generate frames at least 16 pixels high and 32 wide")
    want = 2.0 * _codeword(_payload_int(payload)) - 1.0            # +-1 per bit
    mse_per_unit = layout.counts / (frames.shape[1] * frames.shape[2])   # MSE of moving a bit's mean by 1
    return np.concatenate([_embed_chunk(frames[i:i + CHUNK], layout, want, mse_per_unit, strength)
                           for i in range(0, len(frames), CHUNK)])


def _embed_chunk(frames: np.ndarray, layout: _Layout, want: np.ndarray, mse_per_unit: np.ndarray,
                 strength: float) -> np.ndarray:
    """``embed`` for a few frames at a time."""
    original = frames.astype(np.float32)
    coeffs = layout.coefficients(_luma(original))
    # Busy texture hides a change in proportion to its own energy in the carrier band: pure noise gets more
    # room than MAX_MSE, anything natural-looking stays within it.
    budget = np.maximum(MAX_MSE, MASKING * np.sum(coeffs**2, axis=1) / (frames.shape[1] * frames.shape[2]))
    target, chosen = _plan(layout.bit_means(coeffs), want, mse_per_unit, strength, budget)
    out = frames
    # Rounding and clipping (dark or bright areas) eat part of each change; a few passes make up the shortfall,
    # as far as the budget allows.
    for attempt in range(4):
        rgb = out.astype(np.float32)
        scores = layout.scores(_luma(rgb))
        shortfall = np.maximum(target - want * scores, 0.0) * want * chosen   # (F, CODE_BITS)
        if not shortfall.any():
            break
        change = layout.pattern(shortfall)
        rgb[:, : change.shape[1], : change.shape[2]] += change[..., None]    # same change to R, G, B: luma only
        np.clip(np.rint(rgb, out=rgb), 0, 255, out=rgb)
        within = np.mean(np.square(rgb - original), axis=(1, 2, 3)) <= budget
        if attempt == 0:
            within[:] = True
        out = np.where(within[:, None, None, None], rgb.astype(np.uint8), out)
    return out


def _plan(scores: np.ndarray, want: np.ndarray, mse_per_unit: np.ndarray, strength: float, budget: np.ndarray):
    """Per frame, the target score and which bits to push to it, within the frame's MSE budget.

    Busy texture can oppose a bit so strongly that pushing every bit to full strength would show: the target
    is lowered step by step while that fixes more bits, and the dearest bits left over are left to other
    frames, where the content has moved. Returns (target (F, 1), chosen (F, CODE_BITS) of 0.0 or 1.0).
    """
    target = best = None
    for level in LEVELS:
        cost = np.maximum(strength * level - want * scores, 0.0) ** 2 * mse_per_unit
        order = np.argsort(cost, axis=1)
        fits = np.cumsum(np.take_along_axis(cost, order, axis=1), axis=1) <= budget[:, None]
        chosen = np.zeros_like(cost)
        np.put_along_axis(chosen, order, fits.astype(cost.dtype), axis=1)
        if best is None:
            target, best = np.full((len(scores), 1), strength * level), chosen
            continue
        better = (best.sum(axis=1) < CODE_BITS) & (chosen.sum(axis=1) > best.sum(axis=1))
        target[better], best[better] = strength * level, chosen[better]
    return target, best


def detect(frames: np.ndarray) -> Detection:
    """Read the watermark from uint8 ``frames`` (F, H, W, 3); any number of frames >= 1."""
    frames = _check_frames(frames)
    layout = _Layout.for_shape(frames.shape[1], frames.shape[2])
    if layout is None:
        return Detection(False, None, 0.0, None)
    scores = np.concatenate([layout.scores(_luma(frames[i:i + CHUNK].astype(np.float32)))
                             for i in range(0, len(frames), CHUNK)])   # (F, CODE_BITS)
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
    word = _decode(tally)
    if word is None:
        return Detection(False, None, 0.0, None)
    payload = _int(word[MARKER_BITS:MARKER_BITS + PAYLOAD_BITS])
    clarity = float(np.clip(np.mean(tally * (2.0 * word - 1.0)), 0.0, 1.0))
    return Detection(True, payload, clarity, int(np.sum(word != (tally > 0))))


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
    """Which carrier coefficient of which block belongs to which bit, with which sign, for one frame size.

    The frame is tiled from its top-left corner with TILE blocks; a tile's slots hold every bit once plus a
    few extras, in a keyed order that depends only on the tile's position. So a frame grown or cut at its
    bottom or right edge (an odd size padded for yuv420p, say) keeps the rest of its pattern.
    """

    def __init__(self, blocks_y: int, blocks_x: int):
        self.blocks_y, self.blocks_x = blocks_y, blocks_x
        ty, tx = TILE
        bit_of = np.zeros((blocks_y, blocks_x, len(CARRIER)), dtype=np.intp)
        sign = np.zeros((blocks_y, blocks_x, len(CARRIER)), dtype=np.float32)
        for row in range(0, blocks_y, ty):
            for col in range(0, blocks_x, tx):
                bits, signs = _tile_pattern(row // ty, col // tx)
                h, w = bit_of[row:row + ty, col:col + tx].shape[:2]
                bit_of[row:row + ty, col:col + tx] = bits[:h, :w]
                sign[row:row + ty, col:col + tx] = signs[:h, :w]
        self.bit_of, self.sign = bit_of.ravel(), sign.ravel()
        self.counts = np.bincount(self.bit_of, minlength=CODE_BITS).astype(np.float32)
        # A bit's score is a mean over its slots: sort slots by bit once, then sum runs with reduceat.
        self._by_bit = np.argsort(self.bit_of, kind="stable")
        self._run_starts = np.concatenate([[0], np.cumsum(self.counts[:-1])]).astype(np.intp)
        self._weight = self.sign / np.maximum(self.counts[self.bit_of], 1)

    @classmethod
    def for_shape(cls, height: int, width: int) -> _Layout | None:
        """The layout for frames of this size, or None when they are too small to hold every bit."""
        key = (height // BLOCK, width // BLOCK)
        if key not in _layouts:
            layout = cls(*key)
            _layouts[key] = layout if layout.counts.min() > 0 else None
        return _layouts[key]

    def coefficients(self, luma: np.ndarray) -> np.ndarray:
        """Per frame, every slot's carrier coefficient (F, slots)."""
        f, by, bx = len(luma), self.blocks_y, self.blocks_x
        blocks = luma[:, : by * BLOCK, : bx * BLOCK].reshape(f, by, BLOCK, bx, BLOCK).transpose(0, 1, 3, 2, 4)
        return (blocks.reshape(f, by, bx, BLOCK * BLOCK) @ _BASIS.T).reshape(f, -1)

    def scores(self, luma: np.ndarray) -> np.ndarray:
        """Per frame and bit, the mean of the bit's signed carrier coefficients (F, CODE_BITS)."""
        return self.bit_means(self.coefficients(luma))

    def bit_means(self, coefficients: np.ndarray) -> np.ndarray:
        """Per frame and bit, the mean of the bit's signed slots in ``coefficients`` (F, slots)."""
        return np.add.reduceat((coefficients * self._weight)[:, self._by_bit], self._run_starts, axis=1)

    def pattern(self, per_bit: np.ndarray) -> np.ndarray:
        """The luma change over the whole blocks that adds ``per_bit`` (F, CODE_BITS) to each bit's mean score."""
        f, by, bx = len(per_bit), self.blocks_y, self.blocks_x
        slots = (per_bit[:, self.bit_of] * self.sign).reshape(f, by, bx, len(CARRIER))
        blocks = (slots @ _BASIS).reshape(f, by, bx, BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
        return blocks.reshape(f, by * BLOCK, bx * BLOCK)


_layouts: dict[tuple[int, int], _Layout | None] = {}


def _tile_pattern(tile_row: int, tile_col: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit index and sign (+-1) of each slot of one tile, shaped (TILE rows, TILE cols, carrier)."""
    slots = TILE[0] * TILE[1] * len(CARRIER)
    # shake_256 gives the same bytes on every platform and version, so marks stay readable for good.
    raw = hashlib.shake_256(KEY + f":{tile_row}:{tile_col}".encode()).digest(4 * (CODE_BITS + slots) + slots)
    draws = np.frombuffer(raw[: 4 * (CODE_BITS + slots)], dtype=">u4")
    extras = np.argsort(draws[:CODE_BITS], kind="stable")[: slots - CODE_BITS]
    bits = np.concatenate([np.arange(CODE_BITS), extras])[np.argsort(draws[CODE_BITS:], kind="stable")]
    signs = np.where(np.frombuffer(raw[-slots:], dtype=np.uint8) & 1, 1.0, -1.0)
    shape = (TILE[0], TILE[1], len(CARRIER))
    return bits.reshape(shape), signs.reshape(shape)


def _dct_basis() -> np.ndarray:
    """The carrier's 2-D orthonormal DCT-II basis images, one flattened 8x8 block per row."""
    k, i = np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), indexing="ij")
    dct = np.cos(np.pi * (2 * i + 1) * k / (2 * BLOCK)) * np.sqrt(2.0 / BLOCK)
    dct[0] /= np.sqrt(2.0)
    return np.stack([np.outer(dct[r], dct[c]).ravel() for r, c in CARRIER]).astype(np.float32)


_BASIS = _dct_basis()


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ LUMA


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
