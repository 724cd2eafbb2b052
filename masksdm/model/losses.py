"""Multi-species presence/absence and presence-only losses.

The default is the class-balanced loss of Zbinden et al. (2024, "On the selection and effectiveness
of pseudo-absences for species distribution modeling with deep learning", Ecological Informatics
81:102623), as used by MaskSDM: with N training plots and n_s presences of species s,

    w_s = N / n_s,     L = mean[ w_s * y * -log(p) ] + mean[ w_s / (w_s - 1) * (1 - y) * -log(1 - p) ]

so presences are weighted by one over prevalence and absences by one over (1 - prevalence).

On presence-only data the training rows are record sites (each species recorded there is a
presence, every other species a *target-group pseudo-absence*) and random background points. The
same paper's **full weighted loss** then adds the background, with lambda_2 sharing the absence
term between the two kinds of pseudo-absence (lambda_1 = 1, w_s from the sites only):

    L = mean_sites[ w_s * y * -log(p) ] + lambda_2 * mean_sites[ w_s / (w_s - 1) * (1 - y) * -log(1 - p) ]
        + (1 - lambda_2) * mean_background[ -log(1 - p) ]

With no background row it is the loss above scaled on its absence term by lambda_2. lambda_2 is
one number for all species, as in the paper, also for a species recorded at every site (no
target-group pseudo-absence): giving such a species lambda_2 = 0 instead, so that the background
takes its whole absence term, was measured on elapid's two one-species samples (3 folds, cpu
preset): +0.8 AUC points on Bradypus, -0.7 on Ariolimax, so the paper's form stays.
NOTE[DIFF]: computed from logits with softplus (-log(sigmoid(z)) = softplus(-z)) instead of
log(sigmoid(z) + 1e-5), which is exact and stable for large |z|.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FullWeightedLoss", "WeightedLoss", "make_loss"]


class WeightedLoss(nn.Module):
    """Class-balanced BCE over all species. ``logits`` and ``targets`` are (B, S); ``background``
    is accepted for a common call and must be None or all False."""

    pos_weight: Tensor
    neg_weight: Tensor

    def __init__(self, n_presences: Tensor, n_plots: int) -> None:
        super().__init__()
        n_pos = n_presences.to(torch.float32)
        self.register_buffer("pos_weight", n_plots / (n_pos + 1e-5))
        self.register_buffer("neg_weight", n_plots / (n_plots - n_pos + 1e-5))

    def terms(self, logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The presence and the absence term, each a mean over (rows, species)."""
        logits = logits.float()
        targets = targets.to(logits.dtype)
        pos = self.pos_weight * targets * F.softplus(-logits)
        neg = self.neg_weight * (1 - targets) * F.softplus(logits)
        return pos.mean(), neg.mean()

    def forward(self, logits: Tensor, targets: Tensor, background: Tensor | None = None) -> Tensor:
        pos, neg = self.terms(logits, targets)
        return pos + neg


class FullWeightedLoss(WeightedLoss):
    """The full weighted presence-only loss (module docstring): weights from the record sites'
    presences, ``background`` (B,) bool marking the random background rows of a batch."""

    def __init__(self, n_presences: Tensor, n_sites: int, target_group_weight: float = 0.8) -> None:
        super().__init__(n_presences, n_sites)
        self.lambda_2 = float(target_group_weight)

    def forward(self, logits: Tensor, targets: Tensor, background: Tensor | None = None) -> Tensor:
        if background is None:
            background = torch.zeros(len(logits), dtype=torch.bool, device=logits.device)
        sites, bg = ~background, background
        loss = logits.new_zeros((), dtype=torch.float32)
        if sites.any():
            pos, neg = self.terms(logits[sites], targets[sites])
            loss = loss + pos + self.lambda_2 * neg
        if bg.any():
            loss = loss + (1 - self.lambda_2) * F.softplus(logits[bg].float()).mean()
        return loss


class _BCE(nn.Module):
    def forward(self, logits: Tensor, targets: Tensor, background: Tensor | None = None) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def make_loss(name: str, y_train: Tensor, background: Tensor | None = None, *, target_group_weight: float = 0.8) -> nn.Module:
    """Loss by name (``"weighted"`` or ``"bce"``), with weights from the training labels (N, S).

    With ``background`` (N,) bool holding any True (presence-only rows), ``"weighted"`` is the
    full weighted loss, its weights counted over the record sites only.
    """
    if name == "weighted":
        if background is not None and bool(background.any()):
            sites = y_train[~background]
            return FullWeightedLoss(sites.sum(dim=0), sites.shape[0], target_group_weight)
        return WeightedLoss(y_train.sum(dim=0), y_train.shape[0])
    if name == "bce":
        return _BCE()
    raise ValueError(f"unknown loss {name!r}: choose 'weighted' or 'bce'")
