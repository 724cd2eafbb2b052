"""Sampled Shapley values with standard errors, for games with too many players to enumerate.

* ``method="permutation"`` averages marginal contributions along random orders (Castro, Gomez &
  Tejada, 2009), using each order together with its reverse (antithetic sampling), which cancels
  much of the variance.
* ``method="kernel"`` is KernelSHAP (Lundberg & Lee, 2017) in the unbiased form with paired
  sampling of Covert & Lee (2021), whose per-sample estimates give honest standard errors.

Both run in rounds until the largest standard error reaches a target or the evaluation budget is
spent, and both return values that satisfy efficiency to float precision. Games and results are
those of :mod:`masksdm.explain.core` (references there).

Example:
    >>> import numpy as np
    >>> coef = np.array([1.0, -2.0, 0.5])
    >>> def game(coalitions):
    ...     return coalitions.astype(float) @ coef + 10.0
    >>> sampled = sampled_shapley(game, ["temp", "soil", "rain"], max_evaluations=50)
    >>> bool(np.allclose(sampled.values, coef)), float(sampled.std_errors.max())
    (True, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from masksdm.errors import ConfigError
from masksdm.explain.core import Game, ShapleyResult, check_players, check_positive, evaluate_game

__all__ = ["sampled_shapley"]

_METHODS = ("permutation", "kernel")


def _permutation_coalitions(
    rng: np.random.Generator, m: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions for ``m`` antithetic permutation pairs.

    Returns:
        ``(coalitions, rank)``: coalitions ``(m, 2, k-1, k)``, where ``[i, d, t-1]`` holds the first
        ``t`` players of order ``d`` of pair ``i`` (``d = 1`` is the reverse of ``d = 0``), and
        ``rank`` ``(m, 2, k)``, each player's position in that order.
    """
    rank = np.argsort(rng.random((m, k)), axis=1)  # a uniform random permutation per row
    rank = np.stack([rank, k - 1 - rank], axis=1)
    coalitions = rank[:, :, None, :] < np.arange(1, k)[:, None]
    return coalitions, rank


def _permutation_estimates(
    values: np.ndarray, rank: np.ndarray, v0: np.ndarray, v1: np.ndarray
) -> np.ndarray:
    """Per-pair estimates ``(m, B, k)`` from the chains' values ``(m, 2, k-1, B)``."""
    m, _, _, n_batch = values.shape
    ends = (m, 2, 1, n_batch)
    # value after the first t players joined, t = 0..k
    path = np.concatenate([np.broadcast_to(v0, ends), values, np.broadcast_to(v1, ends)], axis=2)
    index = rank[..., None]
    delta = np.take_along_axis(path, index + 1, axis=2) - np.take_along_axis(path, index, axis=2)
    return delta.mean(axis=1).transpose(0, 2, 1)


def _kernel_size_probabilities(k: int) -> np.ndarray:
    """``p(s)`` proportional to ``(k-1) / (s (k-s))`` for ``s = 1..k-1``."""
    sizes = np.arange(1, k, dtype=np.float64)
    p = (k - 1) / (sizes * (k - sizes))
    return p / p.sum()


def _kernel_projection(k: int) -> tuple[np.ndarray, np.ndarray]:
    """``M`` ``(k, k)`` and ``u`` ``(k,)`` such that ``phi_i = M b_i + u (v1 - v0)``.

    ``A = E[z z^T]`` under the Shapley kernel distribution is exact: its diagonal is
    ``P(j in z) = sum_s p(s) s / k`` (1/2 by symmetry) and its off-diagonal is
    ``P(i, j in z) = sum_s p(s) s (s-1) / (k (k-1))``. ``M b + u (v1 - v0)`` is the solution of the
    least squares problem under the efficiency constraint (Covert & Lee 2021).
    """
    p = _kernel_size_probabilities(k)
    sizes = np.arange(1, k, dtype=np.float64)
    diagonal = float(np.sum(p * sizes / k))
    off = float(np.sum(p * sizes * (sizes - 1) / (k * (k - 1))))
    a_inv = np.linalg.inv(np.full((k, k), off) + np.eye(k) * (diagonal - off))
    a_inv_ones = a_inv.sum(axis=1)
    denominator = float(a_inv_ones.sum())
    projection = a_inv - np.outer(a_inv_ones, a_inv_ones) / denominator
    return projection, a_inv_ones / denominator


def _kernel_coalitions(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    """``(m, 2, k)``: coalitions from the Shapley kernel distribution and their complements."""
    sizes = rng.choice(np.arange(1, k), size=m, p=_kernel_size_probabilities(k))
    order = np.argsort(rng.random((m, k)), axis=1)  # members uniform given the size
    z = order < sizes[:, None]
    return np.stack([z, ~z], axis=1)


def _kernel_estimates(
    values: np.ndarray,
    coalitions: np.ndarray,
    v0: np.ndarray,
    v1: np.ndarray,
    projection: np.ndarray,
    offset: np.ndarray,
) -> np.ndarray:
    """Per-pair estimates ``(m, B, k)`` from values ``(m, 2, B)`` of ``z`` and its complement."""
    gain = values - v0  # (m, 2, B)
    b = (gain[..., None] * coalitions[:, :, None, :]).mean(axis=1)  # (m, B, k)
    return b @ projection.T + (v1 - v0)[None, :, None] * offset


def _affordable_samples(coalitions: np.ndarray, budget: int) -> int:
    """Largest number of leading samples whose distinct coalitions fit in ``budget`` evaluations."""
    m, k = coalitions.shape[0], coalitions.shape[-1]
    while m > 0 and np.unique(coalitions[:m].reshape(-1, k), axis=0).shape[0] > budget:
        m -= 1
    return m


class _RunningMoments:
    """Mean and sum of squared deviations merged round by round (Chan et al.'s pairwise update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)

    def update(self, samples: np.ndarray) -> None:
        n_new = samples.shape[0]
        mean_new = samples.mean(axis=0)
        m2_new = ((samples - mean_new) ** 2).sum(axis=0)
        if self.n == 0:
            self.n, self.mean, self.m2 = n_new, mean_new, m2_new
            return
        total = self.n + n_new
        delta = mean_new - self.mean
        self.mean = self.mean + delta * (n_new / total)
        self.m2 = self.m2 + m2_new + delta**2 * (self.n * n_new / total)
        self.n = total

    def std_errors(self) -> np.ndarray:
        if self.n < 2:
            return np.full_like(self.mean, np.inf)
        return np.sqrt(self.m2 / (self.n - 1) / self.n)


def _max_finite(se: np.ndarray) -> float:
    """Largest standard error, skipping NaN entries of the game; NaN when all are NaN."""
    finite = se[~np.isnan(se)]
    return float(finite.max()) if finite.size else float("nan")


def sampled_shapley(
    game: Game,
    players: Sequence[str],
    *,
    method: str = "permutation",
    target_se: float | None = None,
    max_evaluations: int | None = None,
    samples_per_round: int = 16,
    min_samples: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> ShapleyResult:
    """Shapley values estimated by sampling, with standard errors and a stopping rule.

    Each sample ``i`` gives a full estimate ``phi_i`` that is unbiased and efficient on its own
    (``sum_j phi_ij = v(all) - v(empty)``); the result is their mean and the standard errors are
    ``std(phi_i, ddof=1) / sqrt(n)``.

    * ``"permutation"`` (Castro et al. 2009, antithetic): a sample is a random order of the
      players and its reverse; ``phi_i`` is the mean of the two orders' marginal contributions.
      One sample costs up to ``2 (k - 1)`` evaluations. Additive games come out exact (SE 0), and
      a dummy player gets exactly 0 because each of its marginal contributions is 0.
    * ``"kernel"`` (unbiased KernelSHAP with paired sampling, Covert & Lee 2021): a sample is a
      coalition ``z`` drawn from the Shapley kernel distribution (size ``s`` in ``1..k-1`` with
      probability proportional to ``(k-1) / (s (k-s))``, members uniform given the size) and its
      complement; ``b_i = [z (v(z) - v0) + (1-z)(v(1-z) - v0)] / 2`` is projected to
      ``phi_i = M b_i + c`` with the exact ``A = E[z z^T]``. One sample costs up to 2 evaluations.

    ``v(empty)`` and ``v(all)`` are evaluated once, in the first game call. Samples are drawn in
    rounds of ``samples_per_round``; each round makes one game call on the round's distinct
    coalitions. The run stops when at least ``min_samples`` samples have been drawn and the
    largest standard error is at most ``target_se`` (``converged=True``), or when the budget is
    spent: a round that would exceed ``max_evaluations`` is cut to the samples whose coalitions
    still fit, and the run ends when not one more sample fits (``converged=False`` if a target was
    given). Without ``max_evaluations`` the budget is ``200 * k + 2``, with or without a target.

    Batch entries where the game returns NaN get NaN values and are skipped by the stopping rule;
    if every entry is NaN the run stops after ``min_samples`` samples with ``converged=False``.
    One round holds about ``samples_per_round * 2 (k - 1)`` rows of game output in memory.

    Args:
        game: Callable mapping bool coalitions ``(C, k)`` to values ``(C, *batch)``.
        players: Distinct player names; their order is the column order of the coalitions.
        method: ``"permutation"`` or ``"kernel"``.
        target_se: Stop once every standard error is at most this (same units as the game).
        max_evaluations: Most coalition evaluations (rows passed to the game) in total,
            including ``v(empty)`` and ``v(all)``.
        samples_per_round: Samples drawn per round, i.e. per game call.
        min_samples: Fewest samples before the target may stop the run (at least 2).
        seed: Seed of ``np.random.default_rng``; equal seeds give equal results.
        progress: Show a tqdm progress bar of evaluations with the current largest SE.

    Returns:
        A :class:`ShapleyResult` with ``std_errors``, ``n_samples`` and ``converged`` filled.
        With a single player the value ``v(all) - v(empty)`` is exact: SE 0, ``n_samples=0``.

    Raises:
        ConfigError: If ``method`` is unknown, the players are empty or repeated, a count is not
            positive, ``target_se`` is not positive, ``max_evaluations`` cannot pay for
            ``v(empty)``, ``v(all)`` and two samples, or the game returns a wrong shape.

    >>> import numpy as np
    >>> def game(z):  # players 0 and 1 only count together; player 2 is a dummy
    ...     return (z[:, 0] & z[:, 1]).astype(float)
    >>> result = sampled_shapley(game, ["a", "b", "c"], method="kernel", target_se=0.05)
    >>> result.converged, result.efficiency_gap() < 1e-12
    (True, True)
    """
    names = check_players(players)
    k = len(names)
    if method not in _METHODS:
        raise ConfigError(f"unknown Shapley sampling {method=}: use one of {list(_METHODS)}")
    per_round = check_positive("samples_per_round", samples_per_round)
    min_samples = check_positive("min_samples", min_samples)
    if min_samples < 2:
        raise ConfigError(
            f"min_samples must be at least 2 for a standard error, got {min_samples=}"
        )
    if target_se is not None and not target_se > 0:
        raise ConfigError(f"target_se must be positive, got {target_se=}; pass None for no target")
    if max_evaluations is None:  # a target the game cannot reach must not run forever
        max_evaluations = 200 * k + 2
    rows_per_sample = 2 * (k - 1) if method == "permutation" else 2
    if max_evaluations is not None:
        max_evaluations = check_positive("max_evaluations", max_evaluations)
        needed = 2 + 2 * rows_per_sample
        if max_evaluations < needed:
            raise ConfigError(
                f"max_evaluations={max_evaluations} is too small for {method=} with k={k} players: "
                f"v(empty), v(all) and two samples need up to {needed} evaluations; pass "
                f"max_evaluations >= {needed}"
            )

    ends = np.zeros((2, k), dtype=bool)
    ends[1] = True
    end_values = evaluate_game(game, ends, None)
    batch = end_values.shape[1:]
    v0 = end_values[0].reshape(-1)
    v1 = end_values[1].reshape(-1)
    n_evaluations = 2

    def result(values: np.ndarray, se: np.ndarray, n: int, converged: bool | None) -> ShapleyResult:
        return ShapleyResult(
            players=names,
            values=values.reshape(*batch, k),
            base_value=end_values[0],
            full_value=end_values[1],
            std_errors=se.reshape(*batch, k),
            method=method,
            n_evaluations=n_evaluations,
            n_samples=n,
            converged=converged,
        )

    if k == 1:  # one player takes the whole gain: nothing to sample
        gain = (v1 - v0)[:, None]
        return result(gain, np.zeros_like(gain), 0, None if target_se is None else True)

    rng = np.random.default_rng(seed)
    if method == "kernel":
        projection, offset = _kernel_projection(k)
    moments = _RunningMoments()
    max_se = float("inf")
    converged: bool | None = None
    with tqdm(
        total=max_evaluations, unit="eval", disable=not progress, desc=f"{method} Shapley"
    ) as bar:
        bar.update(n_evaluations)
        while True:
            if moments.n >= min_samples:
                if target_se is not None and max_se <= target_se:
                    converged = True
                    break
                if np.isnan(max_se):  # the game is NaN everywhere: no target can be met
                    break
            if method == "permutation":
                coalitions, rank = _permutation_coalitions(rng, per_round, k)
            else:
                coalitions = _kernel_coalitions(rng, per_round, k)
            m = per_round
            if max_evaluations is not None:
                m = _affordable_samples(coalitions, max_evaluations - n_evaluations)
                if m == 0:
                    break
                coalitions = coalitions[:m]
            unique, inverse = np.unique(coalitions.reshape(-1, k), axis=0, return_inverse=True)
            values = evaluate_game(game, unique, batch).reshape(unique.shape[0], -1)
            values = values[inverse.reshape(-1)].reshape(*coalitions.shape[:-1], -1)
            n_evaluations += unique.shape[0]
            if method == "permutation":
                estimates = _permutation_estimates(values, rank[:m], v0, v1)
            else:
                estimates = _kernel_estimates(values, coalitions, v0, v1, projection, offset)
            moments.update(estimates)
            max_se = _max_finite(moments.std_errors())
            bar.update(unique.shape[0])
            bar.set_postfix(max_se=f"{max_se:.3g}", samples=moments.n)
    if target_se is not None and converged is None:
        converged = False
    return result(moments.mean, moments.std_errors(), moments.n, converged)
