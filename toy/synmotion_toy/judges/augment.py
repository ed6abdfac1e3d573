"""Random degradations of rendered clips, so the judges judge blurry, noisy generated videos fairly.

Generated videos differ from renders in ways that say nothing about their motion or subject: soft edges,
lost detail, noise and blotches, shifted colours, flicker, wobbling shapes, stuttering time. Each
degradation is applied to a random part of the batch at a random strength; all randomness comes from one
``torch.Generator``, so a seed gives the same batch every time.

Videos are float tensors (B, 3, T, H, W) in [0, 1]. Degrading a batch costs about as much as a training
step, so the linear degradations are folded into one matrix product each (the blurs and resampling
into one matrix per axis, every colour change into one 3x3 matrix and offset per clip).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _pick(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    """Indices of a random fraction ``p`` of ``n`` clips."""
    return torch.nonzero(torch.rand(n, generator=gen) < p).flatten()


def _time_jitter(video: torch.Tensor, gen: torch.Generator, p: float) -> None:
    """Drop a frame and hold another one (the clip keeps its length), once or twice."""
    t = video.shape[2]
    picked = _pick(gen, video.shape[0], p)
    for i in picked.tolist():
        order = list(range(t))
        for _ in range(1 + int(torch.randint(0, 2, (1,), generator=gen))):
            del order[int(torch.randint(1, t, (1,), generator=gen))]
            hold = int(torch.randint(0, t - 1, (1,), generator=gen))
            order.insert(hold, order[hold])
        video[i] = video[i][:, order]


def _time_blur(video: torch.Tensor, gen: torch.Generator, p: float) -> None:
    """Each frame mixed with its neighbours: the smearing of a model that smooths time."""
    picked = _pick(gen, video.shape[0], p)
    if len(picked) == 0:
        return
    part = video[picked]
    w = _uniform(gen, len(picked), 0.05, 0.3).view(-1, 1, 1, 1, 1)
    prev = torch.cat([part[:, :, :1], part[:, :, :-1]], dim=2)
    nxt = torch.cat([part[:, :, 1:], part[:, :, -1:]], dim=2)
    video[picked] = (1 - 2 * w) * part + w * (prev + nxt)


def _geometry(video: torch.Tensor, gen: torch.Generator, p: float, p_flip: float, p_melt: float) -> None:
    """A mirror image; shift, scale and a slight tilt; slow low-frequency warps ("melting")."""
    b, c, t, h, w = video.shape
    flipped = _pick(gen, b, p_flip)
    video[flipped] = video[flipped].flip(-1)
    moved = (torch.rand(b, generator=gen) < p).float()
    scale = 1 + moved * _uniform(gen, b, -0.15, 0.15)
    angle = moved * _uniform(gen, b, -5.0, 5.0) * math.pi / 180
    shift_x, shift_y = moved * _uniform(gen, b, -0.15, 0.15), moved * _uniform(gen, b, -0.1, 0.1)
    melt = _uniform(gen, b, 0.0, 0.06) * (torch.rand(b, generator=gen) < p_melt)
    lattice = torch.randn(b, 2, 3, 4, 4, generator=gen) * melt.view(b, 1, 1, 1, 1)
    picked = torch.nonzero((moved > 0) | (melt > 0)).flatten()
    if len(picked) == 0:
        return
    n = len(picked)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta[picked], [n, c, h, w], align_corners=False).unsqueeze(1).expand(n, t, h, w, 2)
    melting = torch.nonzero(melt[picked] > 0).flatten()
    if len(melting):
        # A smooth random displacement on a 4x4 lattice at 3 moments, blended over the clip.
        warp = F.interpolate(lattice[picked[melting]], size=(t, h, w), mode="trilinear", align_corners=True)
        grid = grid.clone()
        grid[melting] += warp.permute(0, 2, 3, 4, 1)
    frames = video[picked].transpose(1, 2).reshape(n * t, c, h, w)
    frames = F.grid_sample(frames, grid.reshape(n * t, h, w, 2), mode="bilinear", padding_mode="border",
                           align_corners=False)
    video[picked] = frames.reshape(n, t, c, h, w).transpose(1, 2)


def _blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """(size, size) matrix M with ``row @ M`` a gaussian blur of a row, edges replicated."""
    radius = max(1, math.ceil(2.5 * sigma))
    offsets = torch.arange(-radius, radius + 1)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = torch.arange(size).view(1, -1)
    src = (out + offsets.view(-1, 1)).clamp(0, size - 1)  # (taps, size): input index of each tap
    matrix = torch.zeros(size, size)
    matrix.index_put_((src.flatten(), out.expand_as(src).flatten()), kernel.repeat_interleave(size), accumulate=True)
    return matrix


def _resample_matrix(size: int, small: int) -> torch.Tensor:
    """(size, size) matrix of shrinking a row to ``small`` pixels (antialiased) and enlarging it back."""
    basis = torch.eye(size).view(size, 1, 1, size)
    down = F.interpolate(basis, size=(1, small), mode="bilinear", antialias=True, align_corners=False)
    up = F.interpolate(down, size=(1, size), mode="bilinear", align_corners=False)
    return up.view(size, size)


def _soften(video: torch.Tensor, gen: torch.Generator, p_blur: float, p_down: float) -> None:
    """Gaussian blur of random strength, and shrinking then enlarging again (lost detail, soft edges)."""
    b, c, t, h, w = video.shape
    sigmas = _uniform(gen, b, 0.3, 1.6)
    blurred = torch.rand(b, generator=gen) < p_blur
    factors = _uniform(gen, b, 0.3, 0.75)
    shrunk = torch.rand(b, generator=gen) < p_down
    picked = torch.nonzero(blurred | shrunk).flatten().tolist()
    if not picked:
        return
    rows, cols = [], []
    for i in picked:
        m_h, m_w = torch.eye(h), torch.eye(w)
        if shrunk[i]:
            m_h = _resample_matrix(h, max(4, round(h * float(factors[i]))))
            m_w = _resample_matrix(w, max(4, round(w * float(factors[i]))))
        if blurred[i]:
            m_h = m_h @ _blur_matrix(h, float(sigmas[i]))
            m_w = m_w @ _blur_matrix(w, float(sigmas[i]))
        rows.append(m_h.T)
        cols.append(m_w)
    part = video[picked].reshape(len(picked), c * t, h, w)
    part = torch.stack(rows).unsqueeze(1) @ part @ torch.stack(cols).unsqueeze(1)
    video[picked] = part.reshape(len(picked), c, t, h, w)


def _colour(video: torch.Tensor, gen: torch.Generator, p: float, p_flat: float, p_flicker: float) -> torch.Tensor:
    """Saturation, contrast, brightness and channel balance; washed-out colours; flicker.

    All are affine in the colour, so they become one 3x3 matrix per clip and one offset per frame."""
    b, c, t, _, _ = video.shape
    on = (torch.rand(b, generator=gen) < p).float().view(b, 1, 1)

    def factor(spread, channels=1):  # 1 where the clip keeps its colours
        return 1 + on * _uniform(gen, b * channels, -spread, spread).view(b, channels, 1)

    # saturation: x -> luma(x) + s (x - luma(x)), as a matrix acting on the colour vector
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 1, 3)
    sat = factor(0.4)
    matrix = sat * torch.eye(3) + (1 - sat) * luma
    # contrast about the clip's mean grey level
    contrast = factor(0.3)
    mean = (matrix @ video.mean(dim=(2, 3, 4)).unsqueeze(2)).mean(dim=1, keepdim=True)  # (B, 1, 1)
    matrix, offset = contrast * matrix, (1 - contrast) * mean
    # brightness and channel balance
    gain = factor(0.25) * factor(0.08, channels=3)
    matrix, offset = gain * matrix, gain * offset
    # washed out: pulled towards a grey, as a model unsure of its colours draws them
    flat = torch.rand(b, generator=gen) < p_flat
    keep = torch.where(flat, _uniform(gen, b, 0.5, 0.85), torch.ones(b)).view(b, 1, 1)
    grey = _uniform(gen, b, 0.35, 0.65).view(b, 1, 1)
    matrix, offset = keep * matrix, keep * offset + (1 - keep) * grey
    # flicker: brightness that wavers from frame to frame
    flicker = _uniform(gen, b * t, -0.05, 0.05).view(b, 1, t) * (torch.rand(b, generator=gen) < p_flicker).view(b, 1, 1)
    offset = offset + flicker  # (B, 3, T)
    out = (matrix @ video.reshape(b, c, -1)).view_as(video)
    return out.add_(offset.view(b, c, t, 1, 1))


def _noise(video: torch.Tensor, gen: torch.Generator, p: float, p_blotch: float) -> None:
    """Pixel noise, and low-frequency colour blotches that drift over the clip."""
    b, c, t, h, w = video.shape
    picked = _pick(gen, b, p)
    if len(picked):
        std = _uniform(gen, len(picked), 0.01, 0.07).view(-1, 1, 1, 1, 1)
        video[picked] += torch.randn((len(picked), c, t, h, w), generator=gen) * std
    picked = _pick(gen, b, p_blotch)
    if len(picked):
        std = _uniform(gen, len(picked), 0.01, 0.06).view(-1, 1, 1, 1, 1)
        coarse = torch.randn(len(picked), c, max(2, t // 4), 6, 6, generator=gen) * std
        video[picked] += F.interpolate(coarse, size=(t, h, w), mode="trilinear", align_corners=False)


def augment(video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A randomly degraded copy of a batch of clips (B, 3, T, H, W) in [0, 1]."""
    x = video.clone()
    _time_jitter(x, gen, p=0.25)
    _time_blur(x, gen, p=0.15)
    _geometry(x, gen, p=0.5, p_flip=0.5, p_melt=0.3)
    _soften(x, gen, p_blur=0.45, p_down=0.3)
    x = _colour(x, gen, p=0.6, p_flat=0.1, p_flicker=0.2)
    _noise(x, gen, p=0.4, p_blotch=0.2)
    return x.clamp_(0, 1)
