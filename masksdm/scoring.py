"""Per-species scores of a split, for presence/absence and for presence-only data alike.

On presence/absence data every plot scores every species: its presences against its absences.
On presence-only data (a workspace built from occurrence records, :mod:`masksdm.data.occurrences`)
the rows are record sites and random background points (:mod:`masksdm.data.background`): a
species' presences are scored against the **background** only, never against the sites where only
other species were recorded (those are target-group pseudo-absences, good for training but not
known absences). So each species is scored on its own rows, ``labels | background``; the
discrimination is then the AUC of presences against background (Phillips et al. 2006), and the
continuous Boyce index (Hirzel et al. 2006) tells whether predictions rise with the share of
presences. Brier scores and reliability curves need true absences and are NaN there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from masksdm.metrics import (
    MIN_CLASS,
    auc_interval,
    background_auc,
    boyce_indices,
    brier_score,
    max_tss,
    roc_auc,
    scorable_species,
    tss_at,
)

__all__ = ["auc", "is_presence_only", "max_tss_thresholds", "scorable", "species_rows", "species_scores"]


def is_presence_only(background: np.ndarray | None) -> bool:
    """True when ``background`` marks any background row."""
    return background is not None and bool(np.asarray(background).any())


def auc(scores: np.ndarray, labels: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """(S,) AUC per species: presences against absences (:func:`~masksdm.metrics.roc_auc`), or
    on presence-only data against the background (:func:`~masksdm.metrics.background_auc`)."""
    if is_presence_only(background):
        return background_auc(scores, labels, background)
    return roc_auc(scores, labels)


def species_rows(labels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(N, S) bool: the rows each species is scored on, its presences and the background."""
    return np.asarray(labels, dtype=bool) | np.asarray(background, dtype=bool)[:, None]


def _by_species(
    fn: Callable[..., tuple[np.ndarray, ...]], n_out: int, labels: np.ndarray, background: np.ndarray,
    *arrays: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """``fn`` applied to each species on its own rows (:func:`species_rows`), one column at a
    time: ``arrays`` are (N, S) or (S,), and ``fn(*columns, labels_column)`` returns ``n_out``
    (1,) arrays; the results stacked to (S,) each."""
    rows = species_rows(labels, background)
    out = np.full((n_out, labels.shape[1]), np.nan)
    for s in range(labels.shape[1]):
        r = rows[:, s]
        cols = [a[r][:, [s]] if a.ndim == 2 else a[[s]] for a in arrays]
        out[:, s] = [float(v[0]) for v in fn(*cols, labels[r][:, [s]])]
    return tuple(out)


def scorable(labels: np.ndarray, background: np.ndarray | None = None, min_class: int = MIN_CLASS) -> np.ndarray:
    """(S,) bool: species with at least ``min_class`` presences and as many absences (on
    presence-only data: background points); ``min_class=1`` gives the evaluable species."""
    labels = np.asarray(labels, dtype=bool)
    if not is_presence_only(background):
        return scorable_species(labels, min_class)
    bg = np.asarray(background, dtype=bool)
    n_pos = (labels & ~bg[:, None]).sum(axis=0)
    return (n_pos >= max(min_class, 1)) & (int(bg.sum()) >= max(min_class, 1))


def max_tss_thresholds(prob: np.ndarray, labels: np.ndarray, background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(tss, threshold) per species at the maximum TSS: presences against absences, or on
    presence-only data against the background."""
    if not is_presence_only(background):
        return max_tss(prob, labels)
    assert background is not None
    tss, thr = _by_species(max_tss, 2, labels, background, np.asarray(prob, dtype=np.float64))
    return tss, thr


def species_scores(
    prob: np.ndarray,
    labels: np.ndarray,
    *,
    background: np.ndarray | None = None,
    thresholds: np.ndarray | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row a species: ``auc`` with its DeLong interval ``auc_low``/``auc_high``, ``tss`` and
    its ``threshold`` (max TSS on these rows), ``tss_val_threshold`` (TSS at the given
    ``thresholds``, e.g. chosen on validation; NaN without), ``brier``, ``boyce``,
    ``n_presences`` and ``n_absences`` (background points on presence-only data).

    Args:
        prob: (N, S) predicted probabilities.
        labels: (N, S) bool presences.
        background: (N,) bool background rows (presence-only data); None or all False for
            presence/absence data.
        thresholds: (S,) presence thresholds, NaN where a species has none.
        level: the intervals' confidence level.
    """
    prob = np.asarray(prob, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_species = labels.shape[1]
    nan = np.full(n_species, np.nan)
    if not is_presence_only(background):
        auc, low, high = auc_interval(prob, labels, level=level)
        tss, thr = max_tss(prob, labels)
        tss_val = nan
        if thresholds is not None:
            thresholds = np.asarray(thresholds, dtype=np.float64)
            tss_val = np.where(np.isfinite(thresholds), tss_at(prob, labels, thresholds), np.nan)
        n_pos = labels.sum(axis=0)
        return pd.DataFrame({
            "auc": auc, "auc_low": low, "auc_high": high, "tss": tss, "threshold": thr,
            "tss_val_threshold": tss_val, "brier": brier_score(prob, labels), "boyce": nan,
            "n_presences": n_pos, "n_absences": len(labels) - n_pos,
        })
    bg = np.asarray(background, dtype=bool)
    auc, low, high = _by_species(lambda p, y: auc_interval(p, y, level=level), 3, labels, bg, prob)
    tss, thr = _by_species(max_tss, 2, labels, bg, prob)
    if thresholds is not None:
        thresholds = np.asarray(thresholds, dtype=np.float64)
        (tss_val,) = _by_species(lambda p, t, y: (tss_at(p, y, t),), 1, labels, bg, prob, thresholds)
        tss_val = np.where(np.isfinite(thresholds), tss_val, np.nan)
    else:
        tss_val = nan
    evaluable = scorable(labels, bg, 1)
    return pd.DataFrame({
        "auc": np.where(evaluable, auc, np.nan), "auc_low": np.where(evaluable, low, np.nan),
        "auc_high": np.where(evaluable, high, np.nan), "tss": np.where(evaluable, tss, np.nan),
        "threshold": np.where(evaluable, thr, np.nan), "tss_val_threshold": np.where(evaluable, tss_val, np.nan),
        "brier": nan, "boyce": boyce_indices(prob, labels, bg),
        "n_presences": (labels & ~bg[:, None]).sum(axis=0), "n_absences": np.full(n_species, int(bg.sum())),
    })
