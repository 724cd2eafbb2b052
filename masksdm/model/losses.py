"""Multi-species presence/absence losses.

The default is the class-balanced loss of Zbinden et al. (2024, "On the selection and effectiveness
of pseudo-absences for species distribution modeling with deep learning", Ecological Informatics),
as used by MaskSDM: with N training plots and n_s presences of species s,

    w_s = N / n_s,     L = mean[ w_s * y * -log(p) ] + mean[ w_s / (w_s - 1) * (1 - y) * -log(1 - p) ]

so presences are weighted by one over prevalence and absences by one over (1 - prevalence).
NOTE[DIFF]: computed from logits with softplus (-log(sigmoid(z)) = softplus(-z)) instead of
log(sigmoid(z) + 1e-5), which is exact and stable for large |z|.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["WeightedLoss", "make_loss"]


class WeightedLoss(nn.Module):
    """Class-balanced BCE over all species. ``logits`` and ``targets`` are (B, S)."""

    pos_weight: Tensor
    neg_weight: Tensor

    def __init__(self, n_presences: Tensor, n_plots: int) -> None:
        super().__init__()
        n_pos = n_presences.to(torch.float32)
        self.register_buffer("pos_weight", n_plots / (n_pos + 1e-5))
        self.register_buffer("neg_weight", n_plots / (n_plots - n_pos + 1e-5))

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        logits = logits.float()
        targets = targets.to(logits.dtype)
        pos = self.pos_weight * targets * F.softplus(-logits)
        neg = self.neg_weight * (1 - targets) * F.softplus(logits)
        return pos.mean() + neg.mean()


class _BCE(nn.Module):
    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def make_loss(name: str, y_train: Tensor) -> nn.Module:
    """Loss by name (``"weighted"`` or ``"bce"``), with weights from the training labels (N, S)."""
    if name == "weighted":
        return WeightedLoss(y_train.sum(dim=0), y_train.shape[0])
    if name == "bce":
        return _BCE()
    raise ValueError(f"unknown loss {name!r}: choose 'weighted' or 'bce'")
