"""Per-species discrimination metrics, vectorised over all species at once.

``scores`` and ``labels`` are (N, S) arrays: N sites, S species. Species without both a presence
and an absence among the N sites have no AUC/TSS (NaN) and are left out of means.

Presence-only data (records and background points, :mod:`masksdm.data.background`) add a
``background`` (N,) bool marking the background rows: :func:`background_auc` scores each
species' presences against the background, :func:`boyce_indices` gives the continuous Boyce index.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

__all__ = [
    "MIN_CLASS", "auc_interval", "background_auc", "boyce_index", "boyce_indices", "brier_score",
    "evaluable_species", "max_tss", "mean_auc", "mean_interval", "reliability_curve", "roc_auc",
    "scorable_species", "tss_at",
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


def _as_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """A NumPy view of an array or (any device's) tensor."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _as_tensor(values: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """A tensor of an array or tensor; read-only arrays (e.g. from Arrow) are copied, as torch
    cannot wrap them without a warning."""
    if isinstance(values, torch.Tensor):
        return values if device is None else values.to(device)
    array = np.asarray(values)
    return torch.as_tensor(array if array.flags.writeable else array.copy(), device=device)


def background_auc(
    scores: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    background: np.ndarray | torch.Tensor | None,
    *,
    chunk: int = 2048,
) -> np.ndarray:
    """Per-species AUC of presences against background points (presence-only data), (S,).

    Species ``s`` is scored on its presences (rows with ``labels[:, s]`` that are not background)
    against every background row; the presences of other species (target-group sites) are left
    out, as they are neither. This is the AUC MaxEnt reports (Phillips, Anderson & Schapire 2006,
    Ecol Model 190:231): the chance that a presence scores above a random background point, ties
    counting 1/2. The background scores of each species are sorted once and each presence placed
    among them by binary search (:func:`torch.searchsorted`), on the device of ``scores`` for
    tensors, ``chunk`` species at a time.

    Args:
        scores: (N, S) scores (any monotone scale: logits or probabilities).
        labels: (N, S) presences; ignored on background rows.
        background: (N,) bool, True on background rows (None: no background row).

    Returns:
        (S,) float64; NaN for a species without a presence, or when no row is background.

    >>> s = np.array([[0.9], [0.5], [0.7], [0.5], [0.1], [0.8]])
    >>> y = np.array([[1], [1], [0], [0], [0], [0]])
    >>> background_auc(s, y, np.array([0, 0, 0, 1, 1, 1], dtype=bool))  # row 2 is left out
    array([0.75])
    """
    scores_t = _as_tensor(scores)
    if scores_t.dtype not in (torch.float32, torch.float64):
        scores_t = scores_t.float()
    device = scores_t.device
    labels_t = _as_tensor(labels, device).bool()
    n, n_species = scores_t.shape
    if background is None:
        return np.full(n_species, np.nan)
    bg = _as_tensor(background, device).bool().ravel()
    if labels_t.shape != scores_t.shape or bg.shape != (n,):
        raise ValueError(
            f"scores {tuple(scores_t.shape)}, labels {tuple(labels_t.shape)} and background "
            f"{tuple(bg.shape)} must be (N, S), (N, S) and (N,)"
        )
    out = np.full(n_species, np.nan)
    n_bg = int(bg.sum())
    if n_bg == 0 or n_species == 0:
        return out
    presences = labels_t & ~bg[:, None]
    background_scores = scores_t[bg]  # (n_bg, S)
    for c in range(0, n_species, chunk):
        sorted_bg = _sorted_rows(background_scores[:, c : c + chunk].T.contiguous())  # (C, n_bg)
        s = scores_t[:, c : c + chunk].T  # (C, N)
        y = presences[:, c : c + chunk].T
        n_pos = y.sum(dim=1)
        rows, cols = y.nonzero(as_tuple=True)  # row-major: grouped by species
        start = torch.cumsum(n_pos, 0) - n_pos
        width = max(int(n_pos.max()), 1)
        queries = torch.full((len(s), width), float("inf"), dtype=s.dtype, device=device)
        queries[rows, torch.arange(len(rows), device=device) - start[rows]] = s[rows, cols]
        below = torch.searchsorted(sorted_bg, queries, side="left")
        at_or_below = torch.searchsorted(sorted_bg, queries, side="right")
        used = torch.arange(width, device=device)[None, :] < n_pos[:, None]
        placement = torch.where(used, (below + at_or_below).to(torch.float64) / 2, 0.0)  # ties 1/2
        auc = placement.sum(dim=1) / (n_pos.to(torch.float64) * n_bg)
        out[c : c + chunk] = torch.where(n_pos > 0, auc, torch.nan).cpu().numpy()
    return out


def _boyce_windows(low: float, high: float, windows: int, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of ``windows`` moving windows of width ``width * (high - low)``
    whose centres run evenly from ``low + w / 2`` to ``high - w / 2``."""
    w = width * (high - low)
    lower = low + np.arange(windows) * ((high - low - w) / (windows - 1))
    upper = lower + w
    upper[-1] = high  # rounding must not drop the top score from the last window
    return lower, upper


def boyce_index(
    presence_scores: np.ndarray | torch.Tensor,
    background_scores: np.ndarray | torch.Tensor,
    *,
    windows: int = 100,
    width: float = 0.1,
) -> float:
    """Continuous Boyce index of one species (Hirzel et al. 2006, Ecol Model 199:142).

    Over the range [min, max] of the presence and background scores together, ``windows`` moving
    windows of width ``w = width * (max - min)`` with centres evenly spaced from ``min + w/2`` to
    ``max - w/2`` (closed intervals). In each window the predicted-to-expected ratio is
    ``F = (share of presences in it) / (share of background points in it)``; windows without a
    background point (F undefined) are dropped. The index is the Spearman rank correlation of F
    with the window centres: near 1 when presences are ever more frequent than the background as
    the score rises, near 0 for a random model, negative for one worse than random.

    NOTE[DIFF]: as ecospat's ``ecospat.boyce`` in windows and ratios, except that the window width
    is a share of the range of both score sets (ecospat: of the background's), that windows with
    presences but no background are dropped (ecospat keeps F = Inf), and that repeated successive
    F values are kept (ecospat drops them by default, ``rm.duplicate = TRUE``).

    Args:
        presence_scores: scores at the presences (non-finite ones are ignored).
        background_scores: scores at the background points (non-finite ones are ignored).
        windows: number of moving windows (at least 3).
        width: window width as a share of the score range, in (0, 1].

    Returns:
        The index in [-1, 1]; NaN with fewer than 2 presences, no background point, fewer than 3
        windows holding background points, or the same F in every window.

    >>> rng = np.random.default_rng(0)
    >>> round(boyce_index(rng.beta(4, 1, 500), rng.uniform(0, 1, 2000)), 2) > 0.9
    True
    """
    if int(windows) != windows or windows < 3:
        raise ValueError(f"windows must be an integer >= 3, got {windows=}")
    if not 0 < width <= 1:
        raise ValueError(f"width must be a share of the score range in (0, 1], got {width=}")
    pres = np.asarray(_as_numpy(presence_scores), dtype=np.float64).ravel()
    back = np.asarray(_as_numpy(background_scores), dtype=np.float64).ravel()
    pres, back = np.sort(pres[np.isfinite(pres)]), np.sort(back[np.isfinite(back)])
    if len(pres) < 2 or len(back) == 0:
        return float("nan")
    low, high = min(pres[0], back[0]), max(pres[-1], back[-1])
    if not high > low:
        return float("nan")
    lower, upper = _boyce_windows(float(low), float(high), int(windows), width)

    def counts(sorted_values: np.ndarray) -> np.ndarray:  # values in each [lower, upper]
        return np.searchsorted(sorted_values, upper, side="right") - np.searchsorted(sorted_values, lower, side="left")

    n_back = counts(back)
    defined = n_back > 0
    if defined.sum() < 3:
        return float("nan")
    ratio = (counts(pres)[defined] / len(pres)) / (n_back[defined] / len(back))
    if np.all(ratio == ratio[0]):  # Spearman is undefined for a constant F
        return float("nan")
    from scipy.stats import spearmanr

    centres = (lower + upper)[defined] / 2
    return float(spearmanr(centres, ratio).statistic)


def boyce_indices(
    scores: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    background: np.ndarray | torch.Tensor,
    *,
    windows: int = 100,
    width: float = 0.1,
) -> np.ndarray:
    """:func:`boyce_index` of every species, (S,): its presences (``labels`` on rows that are not
    background) against the background rows; NaN where the index is undefined.

    >>> rng = np.random.default_rng(0)
    >>> s = np.r_[rng.beta(4, 1, 300), rng.uniform(0, 1, 1000)][:, None]
    >>> bg = np.r_[np.zeros(300, bool), np.ones(1000, bool)]
    >>> bool(boyce_indices(s, ~bg[:, None], bg)[0] > 0.9)
    True
    """
    s = np.asarray(_as_numpy(scores), dtype=np.float64)
    y = _as_numpy(labels).astype(bool)
    bg = _as_numpy(background).astype(bool).ravel()
    if y.shape != s.shape or bg.shape != (s.shape[0],):
        raise ValueError(
            f"scores {s.shape}, labels {y.shape} and background {bg.shape} must be (N, S), (N, S) and (N,)"
        )
    presences = y & ~bg[:, None]
    back = s[bg]
    return np.array(
        [boyce_index(s[presences[:, j], j], back[:, j], windows=windows, width=width) for j in range(s.shape[1])],
        dtype=np.float64,
    )
