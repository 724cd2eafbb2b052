"""Per-species discrimination metrics, vectorised over all species at once.

``scores`` and ``labels`` are (N, S) arrays: N sites, S species. Species without both a presence
and an absence among the N sites have no AUC/TSS (NaN) and are left out of means.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

__all__ = [
    "MIN_CLASS", "auc_interval", "brier_score", "evaluable_species", "max_tss", "mean_auc", "mean_interval",
    "reliability_curve", "roc_auc", "scorable_species", "tss_at",
]


#: Fewest presences, and fewest absences, a species needs in a split for its score there to count
#: in means and in choosing epochs (``--min-presences``).
MIN_CLASS = 5


def evaluable_species(labels: np.ndarray) -> np.ndarray:
    """Boolean (S,) mask of species with at least one presence and one absence."""
    n_pos = labels.sum(axis=0)
    return (n_pos > 0) & (n_pos < labels.shape[0])


def scorable_species(labels: np.ndarray, min_class: int = MIN_CLASS) -> np.ndarray:
    """Boolean (S,) mask of species with at least ``min_class`` presences and as many absences
    (and at least one of each)."""
    n_pos = np.asarray(labels.sum(axis=0))
    n_neg = labels.shape[0] - n_pos
    return (n_pos >= max(min_class, 1)) & (n_neg >= max(min_class, 1))


def _sorted_rows(values: torch.Tensor) -> torch.Tensor:
    """Each row of a (R, N) tensor sorted ascending. On CPU NumPy's vectorised sort runs in
    threads over row blocks (several times faster than torch.sort there)."""
    if values.device.type != "cpu":
        return torch.sort(values, dim=1).values
    array = values.numpy()
    n_threads = max(1, min(torch.get_num_threads(), len(array)))
    if n_threads == 1:
        return torch.from_numpy(np.sort(array, axis=1))
    out = np.empty_like(array)
    blocks = np.array_split(np.arange(len(array)), n_threads)

    def sort_block(rows: np.ndarray) -> None:
        out[rows[0] : rows[-1] + 1] = np.sort(array[rows[0] : rows[-1] + 1], axis=1)

    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(sort_block, [b for b in blocks if len(b)]))
    return torch.from_numpy(out)


def roc_auc(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *, chunk: int = 2048) -> np.ndarray:
    """ROC-AUC per species (Mann-Whitney U with average ranks for ties); (S,) with NaN where undefined.

    Each species' scores are sorted once; the average rank of each presence (or of each absence,
    whichever class is smaller) is then found by binary search, so the work is one sort per
    species. Runs on the device of ``scores`` when given torch tensors (e.g. validation on the
    GPU), in chunks of ``chunk`` species to bound memory.

    >>> roc_auc(np.array([[0.1], [0.4], [0.35], [0.8]]), np.array([[0], [0], [1], [1]]))
    array([0.75])
    >>> roc_auc(np.array([[0.5], [0.5], [0.2]]), np.array([[1], [0], [0]]))  # a tie counts 1/2
    array([0.75])
    """
    scores_t = torch.as_tensor(scores)
    if scores_t.dtype not in (torch.float32, torch.float64):
        scores_t = scores_t.float()
    labels_t = torch.as_tensor(labels, device=scores_t.device).bool()
    n, n_species = scores_t.shape
    out = torch.empty(n_species, dtype=torch.float64, device=scores_t.device)
    for c in range(0, n_species, chunk):
        s = scores_t[:, c : c + chunk].T.contiguous()  # (C, N)
        y = labels_t[:, c : c + chunk].T
        n_pos = y.sum(dim=1)
        flip = n_pos > n - n_pos  # rank the smaller class; AUC(pos vs neg) = 1 - AUC(neg vs pos)
        minority = y ^ flip[:, None]
        n_min = torch.where(flip, n - n_pos, n_pos)
        sorted_s = _sorted_rows(s)
        rows, cols = minority.nonzero(as_tuple=True)  # row-major: grouped by species
        start = torch.cumsum(n_min, 0) - n_min
        width = max(int(n_min.max()), 1) if len(n_min) else 1
        queries = torch.full((len(s), width), float("inf"), dtype=s.dtype, device=s.device)
        queries[rows, torch.arange(len(rows), device=s.device) - start[rows]] = s[rows, cols]
        below = torch.searchsorted(sorted_s, queries, side="left")
        at_or_below = torch.searchsorted(sorted_s, queries, side="right")
        used = torch.arange(width, device=s.device)[None, :] < n_min[:, None]
        rank = torch.where(used, (below + at_or_below + 1).to(torch.float64) / 2, 0.0)  # 1-based average rank
        m = n_min.to(torch.float64)
        u = (rank.sum(dim=1) - m * (m + 1) / 2) / (m * (n - m))
        out[c : c + chunk] = torch.where(flip, 1 - u, u)
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


def auc_interval(
    scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *, level: float = 0.95, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-species ROC-AUC and its DeLong interval (DeLong, DeLong & Clarke-Pearson 1988), as
    pROC's ``ci.auc`` gives it: AUC +- z * SE, clipped to [0, 1].

    The SE comes from the placement values: for each presence, the share of absences scored below
    it (ties 1/2); for each absence, the share of presences scored above it;
    ``var = var(presence placements) / m + var(absence placements) / n``.

    Returns:
        ``(auc, low, high)``, each (S,), NaN where a species lacks a class.

    >>> auc, low, high = auc_interval(np.array([[0.1], [0.4], [0.35], [0.8]]), np.array([[0], [0], [1], [1]]))
    >>> float(auc[0]), bool(low[0] < 0.75 < high[0])
    (0.75, True)
    """
    from scipy.stats import norm, rankdata

    s_all = np.asarray(torch.as_tensor(scores).detach().cpu().numpy(), dtype=np.float64)
    y_all = np.asarray(torch.as_tensor(labels).detach().cpu().numpy()).astype(bool)
    n_sites, n_species = s_all.shape
    auc = np.full(n_species, np.nan)
    se = np.full(n_species, np.nan)
    for c in range(0, n_species, chunk):
        s, y = s_all[:, c : c + chunk], y_all[:, c : c + chunk]
        m = y.sum(axis=0).astype(np.float64)  # presences
        n = n_sites - m  # absences
        rank_all = rankdata(s, axis=0)
        rank_pos = rankdata(np.where(y, s, np.inf), axis=0)  # presences first; their ranks among presences
        rank_neg = rankdata(np.where(y, np.inf, s), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            v10 = np.where(y, (rank_all - rank_pos) / n, np.nan)  # absences below each presence
            v01 = np.where(y, np.nan, 1 - (rank_all - rank_neg) / m)  # presences above each absence
            a = np.nansum(v10, axis=0) / np.maximum(m, 1)  # the AUC; species without a class masked below
            var10 = np.where(m > 1, np.nansum((v10 - a) ** 2, axis=0) / np.maximum(m - 1, 1), 0.0)
            var01 = np.where(n > 1, np.nansum((v01 - a) ** 2, axis=0) / np.maximum(n - 1, 1), 0.0)
            se[c : c + chunk] = np.sqrt(var10 / m + var01 / n)
        auc[c : c + chunk] = a
    ok = evaluable_species(y_all)
    auc, se = np.where(ok, auc, np.nan), np.where(ok, se, np.nan)
    z = float(norm.ppf(0.5 + level / 2))
    return auc, np.clip(auc - z * se, 0.0, 1.0), np.clip(auc + z * se, 0.0, 1.0)


def mean_interval(
    values: np.ndarray, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of the finite entries of ``values`` and a percentile bootstrap interval of it over the
    entries: the interval over species, how much the mean would move with another set of species
    of the same kind. With fewer than 2 finite entries the interval is NaN.

    >>> mean, low, high = mean_interval(np.append(np.linspace(0.6, 1.0, 41), np.nan))
    >>> round(mean, 2), bool(0.75 < low < mean < high < 0.85)
    (0.8, True)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    block = max(1, 2_000_000 // len(v))
    means = np.concatenate([v[rng.integers(0, len(v), (min(block, n_boot - i), len(v)))].mean(axis=1)
                            for i in range(0, n_boot, block)])
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(v.mean()), float(low), float(high)


def brier_score(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-species Brier score: mean squared difference between probability and the 0/1 label,
    (S,); NaN for species without both classes (as for the AUC, so means agree).

    >>> brier_score(np.array([[0.9], [0.2]]), np.array([[1], [0]])).round(3).tolist()
    [0.025]
    """
    labels = np.asarray(labels, dtype=bool)
    score = ((np.asarray(prob, dtype=np.float64) - labels) ** 2).mean(axis=0)
    return np.where(evaluable_species(labels), score, np.nan)


def reliability_curve(prob: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Reliability curve pooled over all the sites and species given: equal-width bins of predicted
    probability on [0, 1], with ``bin_low``, ``bin_high``, ``mean_predicted``, ``observed`` (share
    of presences) and ``n``; empty bins left out. A well-calibrated model's ``observed`` is close to
    its ``mean_predicted`` in every bin.

    >>> reliability_curve(np.array([0.05, 0.15, 0.12]), np.array([0, 1, 0]))[["bin_low", "observed", "n"]].values.tolist()
    [[0.0, 0.0, 1.0], [0.1, 0.5, 2.0]]
    """
    p = np.asarray(prob, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    index = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    n = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame({
            "bin_low": np.arange(bins) / bins, "bin_high": np.arange(1, bins + 1) / bins,
            "mean_predicted": np.bincount(index, weights=p, minlength=bins) / n,
            "observed": np.bincount(index, weights=y.astype(np.float64), minlength=bins) / n, "n": n,
        })
    return frame[frame["n"] > 0].reset_index(drop=True)
