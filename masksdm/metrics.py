"""Per-species discrimination metrics, vectorised over all species at once.

``scores`` and ``labels`` are (N, S) arrays: N sites, S species. Species without both a presence
and an absence among the N sites have no AUC/TSS (NaN) and are left out of means.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["evaluable_species", "max_tss", "roc_auc", "tss_at"]


def evaluable_species(labels: np.ndarray) -> np.ndarray:
    """Boolean (S,) mask of species with at least one presence and one absence."""
    n_pos = labels.sum(axis=0)
    return (n_pos > 0) & (n_pos < labels.shape[0])


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC-AUC per species (Mann-Whitney U with average ranks for ties); (S,) with NaN where undefined.

    >>> roc_auc(np.array([[0.1], [0.4], [0.35], [0.8]]), np.array([[0], [0], [1], [1]]))
    array([0.75])
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    ranks = rankdata(scores, axis=0, method="average")
    n_pos = labels.sum(axis=0).astype(np.float64)
    n_neg = labels.shape[0] - n_pos
    rank_sum = np.where(labels, ranks, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where(evaluable_species(labels), auc, np.nan)


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
