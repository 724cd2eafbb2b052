"""Paired comparison of two methods over species: is one better than the other, and by how much?

Each species gives one pair of scores (e.g. test AUC of MaskSDM and of a baseline). The test
reports the mean difference with a bootstrap percentile interval (species resampled with
replacement) and the two-sided Wilcoxon signed-rank p-value, which asks whether the differences
are centred on zero without assuming they are normal. Species are the unit: the interval and the
p-value say how much the mean over *these* species could move with another draw of species,
not how uncertain any one species' AUC is. No correction for multiple tests is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import wilcoxon

__all__ = ["PairedTest", "paired_test"]


@dataclass(frozen=True)
class PairedTest:
    """Result of :func:`paired_test` (differences are ``a - b``).

    Attributes:
        mean_difference: mean of ``a - b`` over the pairs (NaN without pairs).
        ci_low, ci_high: bootstrap percentile interval of the mean difference.
        p_value: two-sided Wilcoxon signed-rank p-value (1.0 when every difference is 0).
        n_pairs: pairs used (both values finite).
        wins, losses, ties: pairs with ``a > b``, ``a < b`` and ``a == b``.
    """

    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_pairs: int
    wins: int
    losses: int
    ties: int


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Compare paired scores ``a`` and ``b`` (one per species); pairs with a NaN are dropped.

    Args:
        a, b: (S,) scores of the two methods on the same species.
        n_boot: bootstrap resamples of the species for the interval.
        confidence: coverage of the interval (0.95: the 2.5 and 97.5 percentiles).
        seed: seed of the bootstrap.

    >>> a = np.array([0.80, 0.75, 0.90, 0.70, np.nan])
    >>> b = np.array([0.70, 0.70, 0.85, 0.72, 0.60])
    >>> t = paired_test(a, b)
    >>> round(t.mean_difference, 3), t.n_pairs, t.wins, t.losses
    (0.045, 4, 3, 1)
    >>> bool(t.ci_low <= t.mean_difference <= t.ci_high)
    True
    >>> paired_test(a, a).p_value
    1.0
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same length, got {len(a)} and {len(b)}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot=}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence=}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    n = len(d)
    counts = {"n_pairs": n, "wins": int((d > 0).sum()), "losses": int((d < 0).sum()), "ties": int((d == 0).sum())}
    if n == 0:
        return PairedTest(np.nan, np.nan, np.nan, np.nan, **counts)
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)  # (n_boot,) resampled means
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    # scipy cannot rank all-zero differences (it divides by zero): no evidence either way
    p = 1.0 if not d.any() else float(wilcoxon(d, alternative="two-sided").pvalue)
    return PairedTest(float(d.mean()), float(low), float(high), p, **counts)
