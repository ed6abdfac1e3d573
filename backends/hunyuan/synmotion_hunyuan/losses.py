"""A weighted mean squared error, shared by the motion trainer and the toy bases' training."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, where: torch.Tensor, weight: float) -> torch.Tensor:
    """Mean squared error in which each element weighs ``1 + weight * where`` (``where`` from 0 to 1,
    broadcast over ``target``, e.g. one value per latent pixel), normalised so that the loss keeps the scale of
    a plain MSE; ``weight`` 0 is exactly ``F.mse_loss``."""
    pred, target = pred.float(), target.float()
    if weight <= 0:
        return F.mse_loss(pred, target)
    w = (1 + weight * where).expand_as(target)
    return (w * (pred - target) ** 2).sum() / w.sum()
