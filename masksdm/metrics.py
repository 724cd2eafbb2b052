"""Per-species discrimination metrics, vectorised over all species at once.

``scores`` and ``labels`` are (N, S) arrays: N sites, S species. Species without both a presence
and an absence among the N sites have no AUC/TSS (NaN) and are left out of means.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["evaluable_species", "max_tss", "mean_auc", "roc_auc", "tss_at"]


def evaluable_species(labels: np.ndarray) -> np.ndarray:
    """Boolean (S,) mask of species with at least one presence and one absence."""
    n_pos = labels.sum(axis=0)
    return (n_pos > 0) & (n_pos < labels.shape[0])


def roc_auc(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *, chunk: int = 2048) -> np.ndarray:
    """ROC-AUC per species (Mann-Whitney U with average ranks for ties); (S,) with NaN where undefined.

    Runs on the device of ``scores`` when given torch tensors (e.g. validation on the GPU), in
    chunks of ``chunk`` species to bound memory.

    >>> roc_auc(np.array([[0.1], [0.4], [0.35], [0.8]]), np.array([[0], [0], [1], [1]]))
    array([0.75])
    """
    scores_t = torch.as_tensor(scores)
    labels_t = torch.as_tensor(labels, device=scores_t.device).bool()
    n, n_species = scores_t.shape
    out = torch.empty(n_species, dtype=torch.float64, device=scores_t.device)
    position = torch.arange(n, device=scores_t.device, dtype=torch.float64)[:, None]
    for c in range(0, n_species, chunk):
        values, order = torch.sort(scores_t[:, c : c + chunk], dim=0)
        y = torch.gather(labels_t[:, c : c + chunk], 0, order).to(torch.float64)
        # average rank of each tie group: (first + last position) / 2, 1-based
        starts = torch.ones_like(values, dtype=torch.bool)
        starts[1:] = values[1:] != values[:-1]
        ends = torch.ones_like(starts)
        ends[:-1] = starts[1:]
        first = torch.cummax(torch.where(starts, position, 0.0), dim=0).values
        last = torch.flip(torch.cummin(torch.flip(torch.where(ends, position, float(n)), [0]), dim=0).values, [0])
        rank = (first + last) / 2 + 1
        n_pos = y.sum(dim=0)
        out[c : c + chunk] = ((rank * y).sum(dim=0) - n_pos * (n_pos + 1) / 2) / (n_pos * (n - n_pos))
    auc = out.cpu().numpy()
    return np.where(evaluable_species(labels_t.cpu().numpy()), auc, np.nan)


def mean_auc(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Mean of :func:`roc_auc` over the species that have one (NaN when none has)."""
    auc = roc_auc(scores, labels)
    return float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")


def max_tss(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum true skill statistic per species and the threshold reaching it.

    A site is predicted present when ``score >= threshold``. Only thresholds that separate distinct
    scores are considered, so ties are never split.

    Returns:
        ``(tss, threshold)``, each (S,), NaN for species without both classes.

    >>> tss, thr = max_tss(np.array([[0.1], [0.4], [0.35], [0.8]]), np.array([[0], [1], [1], [1]]))
    >>> float(tss[0]), float(thr[0])
    (1.0, 0.35)
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, axis=0, kind="stable")
    s_sorted = np.take_along_axis(scores, order, axis=0)
    y_sorted = np.take_along_axis(labels, order, axis=0)
    n_pos = labels.sum(axis=0)
    n_neg = labels.shape[0] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.cumsum(y_sorted, axis=0) / n_pos
        fpr = np.cumsum(~y_sorted, axis=0) / n_neg
    tss = tpr - fpr
    # a cut after row k is realisable only if the next score is strictly lower
    realisable = np.ones_like(s_sorted, dtype=bool)
    realisable[:-1] = s_sorted[:-1] > s_sorted[1:]
    tss = np.where(realisable, tss, -np.inf)
    best = np.argmax(tss, axis=0)
    cols = np.arange(scores.shape[1])
    ok = evaluable_species(labels)
    return (
        np.where(ok, tss[best, cols], np.nan),
        np.where(ok, s_sorted[best, cols], np.nan),
    )


def tss_at(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """True skill statistic per species at given thresholds (present when ``score >= threshold``)."""
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores) >= np.asarray(thresholds)[None, :]
    n_pos = labels.sum(axis=0)
    n_neg = labels.shape[0] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = (predicted & labels).sum(axis=0) / n_pos
        specificity = (~predicted & ~labels).sum(axis=0) / n_neg
    return np.where(evaluable_species(labels), sensitivity + specificity - 1, np.nan)
