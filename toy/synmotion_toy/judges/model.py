"""JudgeNet: one small video CNN with four heads (motion, subject, background, style).

Each frame enters with its difference to the previous frame, which makes what moves stand out. A
spatial stem and (2+1)-D residual blocks (a 3x3 spatial convolution, then a 3-tap temporal one) follow;
after each block every frame is summed up as a vector (the mean and the max over space: what is there,
and its strongest part). The appearance heads read the vectors of all blocks (fine details and coarse
shapes) pooled over time. The motion head runs two temporal convolutions over the frame vectors of all
blocks, so it sees how they change, then pools over time; that pooled vector is the motion
feature vector. One shared trunk: one forward pass judges all four things.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

FRAMES = 17
SIZE = 64  # height and width the judges see
FPS = 8.0
HEADS = ("motion", "subject", "background", "style")
NONE_LABEL = "none"  # the neutral studio background, the plain style


@dataclass(frozen=True)
class JudgeConfig:
    widths: tuple[int, ...] = (16, 32, 64, 128)  # stem, then one (2+1)-D block per further entry
    temporal_strides: tuple[int, ...] = (1, 2, 1)  # one per block: the middle block halves the frame rate
    motion_width: int = 128  # channels of the motion head's temporal convolutions

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> JudgeConfig:
        return cls(widths=tuple(data["widths"]), temporal_strides=tuple(data["temporal_strides"]),
                   motion_width=int(data["motion_width"]))


class Block21(nn.Module):
    """Residual (2+1)-D block: spatial 3x3 (stride 2), then temporal 3-tap, plus a 1x1x1 shortcut."""

    def __init__(self, cin: int, cout: int, temporal_stride: int):
        super().__init__()
        self.spatial = nn.Conv3d(cin, cout, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.norm1 = nn.BatchNorm3d(cout)
        self.temporal = nn.Conv3d(cout, cout, (3, 1, 1), (temporal_stride, 1, 1), (1, 0, 0), bias=False)
        self.norm2 = nn.BatchNorm3d(cout)
        self.shortcut = nn.Conv3d(cin, cout, 1, (temporal_stride, 2, 2), bias=False)
        self.norm3 = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.spatial(x)))
        y = self.norm2(self.temporal(y))
        return F.relu(y + self.norm3(self.shortcut(x)))


def _pool_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T) -> (B, 2C): the mean and the max over time."""
    return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)


def _resample_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, C, T) -> (B, C, steps), averaging neighbouring frames when there are more."""
    return x if x.shape[2] == steps else F.adaptive_avg_pool1d(x, steps)


class JudgeNet(nn.Module):
    """Video (B, 3, T, H, W) in [0, 1] -> logits per head, and the motion features (B, 2 * motion_width)."""

    def __init__(self, config: JudgeConfig, sizes: dict[str, int]):
        super().__init__()
        self.config = config
        w, m = config.widths, config.motion_width
        # The stem sees each frame and its difference to the previous one. Both halves are spatial
        # convolutions, and a spatial convolution of a difference is the difference of the convolutions, so
        # one convolution of the frames gives both (cheaper than stacking the differences onto the input).
        self.stem = nn.Conv3d(3, 2 * w[0], (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.stem_norm = nn.BatchNorm3d(w[0])
        self.blocks = nn.Sequential(*[Block21(a, b, s) for a, b, s in zip(w[:-1], w[1:], config.temporal_strides)])
        self.motion_temporal = nn.Sequential(
            nn.Conv1d(2 * sum(w[1:]), m, 3, padding=1, bias=False), nn.BatchNorm1d(m), nn.ReLU(),
            nn.Conv1d(m, m, 3, padding=2, dilation=2, bias=False), nn.BatchNorm1d(m), nn.ReLU())
        self.heads = nn.ModuleDict({"motion": nn.Linear(2 * m, sizes["motion"])})
        for head in HEADS[1:]:
            self.heads[head] = nn.Linear(4 * sum(w[1:]), sizes[head])
        # Channels-last is the layout the CPU convolution kernels are fastest with (about twice as fast here).
        self.to(memory_format=torch.channels_last_3d)

    def frame_vectors(self, video: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, T, H, W) -> per block, (B, 2C, T'): each frame's mean and max over space."""
        x = ((video - 0.5) / 0.25).contiguous(memory_format=torch.channels_last_3d)
        frames, change = self.stem(x).chunk(2, dim=1)
        x = F.relu(self.stem_norm(frames + torch.diff(change, dim=2, prepend=change[:, :, :1])))
        vectors = []
        for block in self.blocks:
            x = block(x)
            # max() rather than amax(): its backward is a cheap scatter, amax's a full-size mask (4x slower).
            vectors.append(torch.cat([x.mean(dim=(3, 4)), x.flatten(3).max(dim=3).values], dim=1))
        return vectors

    def forward(self, video: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        vectors = self.frame_vectors(video)
        # Motion reads every block, the finer ones brought to the frame rate of the last: limbs are a few
        # pixels wide, so the finer blocks still see them where the coarsest has merged them with the body.
        steps = vectors[-1].shape[2]
        features = _pool_time(self.motion_temporal(torch.cat([_resample_time(v, steps) for v in vectors], dim=1)))
        logits = {"motion": self.heads["motion"](features)}
        appearance = torch.cat([_pool_time(v) for v in vectors], dim=1)
        for head in HEADS[1:]:
            logits[head] = self.heads[head](appearance)
        return logits, features


@torch.inference_mode()
def judge_tensor(model: JudgeNet, video: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Class probabilities per head and motion features of (B, 3, T, H, W) videos in [0, 1], each the
    average over the video and its mirror image: the toy world has no handedness (every subject faces
    either way, any arm may wave), so both views are equally good evidence and their average is steadier."""
    model.eval()
    logits, features = model(torch.cat([video, video.flip(-1)]))
    n = len(video)
    probs = {h: (x[:n].softmax(dim=1) + x[n:].softmax(dim=1)) / 2 for h, x in logits.items()}
    return probs, (features[:n] + features[n:]) / 2
