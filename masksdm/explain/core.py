"""Model-agnostic Shapley value estimators: exact enumeration, permutation and KernelSHAP sampling.

The estimators here know nothing about models or masking. They explain a *game*: any callable
``game(coalitions)`` that takes a boolean matrix of shape ``(C, k)`` (row ``c`` is one coalition,
column ``j`` is True when player ``j`` is present) and returns the coalitions' values as a float
array of shape ``(C, *batch)``. ``batch`` is ``()`` for a scalar score such as a mean AUC, ``(N,)``
or ``(N, n_species)`` for per-site predictions. For MaskSDM a player is a predictor (or a group of
predictors) and the value ``v(S)`` of a coalition ``S`` is the model output when only the
predictors in ``S`` are given and the others are masked.

The Shapley value of player ``j`` (Shapley, 1953) is its marginal contribution averaged over all
orders in which the players can join::

    phi_j = sum over S not containing j of  |S|! (k - |S| - 1)! / k!  * (v(S + {j}) - v(S))

It is the only attribution that is *efficient* (``sum_j phi_j = v(all) - v(empty)``), *symmetric*
(interchangeable players get equal values), gives a *dummy* player that never changes ``v`` zero,
and is linear in the game. Every estimator below returns values that satisfy efficiency to float
precision, also the sampled ones.

* :func:`exact_shapley` evaluates all ``2**k`` coalitions and applies the weights of
  :func:`shapley_weight_matrix` in a streaming pass (feasible up to roughly 16-20 players).
* :func:`sampled_shapley` with ``method="permutation"`` averages marginal contributions along
  random orders (Castro, Gomez & Tejada, 2009), using each order together with its reverse
  (antithetic sampling), which cancels much of the variance.
* :func:`sampled_shapley` with ``method="kernel"`` is KernelSHAP (Lundberg & Lee, 2017), the
  weighted linear regression view of Shapley values, in the unbiased form with paired sampling of
  Covert & Lee (2021), whose per-sample estimates give honest standard errors.

References:
    Shapley, L. S. (1953). A value for n-person games. In *Contributions to the Theory of Games
    II*, Annals of Mathematics Studies 28, 307-317.

    Castro, J., Gomez, D., & Tejada, J. (2009). Polynomial calculation of the Shapley value based
    on sampling. *Computers & Operations Research*, 36(5), 1726-1730.

    Lundberg, S. M., & Lee, S.-I. (2017). A unified approach to interpreting model predictions.
    *Advances in Neural Information Processing Systems 30*.

    Covert, I., & Lee, S.-I. (2021). Improving KernelSHAP: practical Shapley value estimation
    using linear regression. *Proceedings of AISTATS*, PMLR 130, 3457-3465.

Example:
    An additive game gives each player its own coefficient:

    >>> import numpy as np
    >>> coef = np.array([1.0, -2.0, 0.5])
    >>> def game(coalitions):
    ...     return coalitions.astype(float) @ coef + 10.0
    >>> result = exact_shapley(game, ["temp", "soil", "rain"])
    >>> result.values
    array([ 1. , -2. ,  0.5])
    >>> float(result.base_value), float(result.full_value), result.n_evaluations
    (10.0, 9.5, 8)
    >>> sampled = sampled_shapley(game, ["temp", "soil", "rain"], max_evaluations=50)
    >>> bool(np.allclose(sampled.values, coef)), float(sampled.std_errors.max())
    (True, 0.0)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from masksdm.errors import ConfigError

__all__ = [
    "Game",
    "ShapleyResult",
    "coalition_matrix",
    "exact_shapley",
    "sampled_shapley",
    "shapley_weight_matrix",
]

Game = Callable[[np.ndarray], np.ndarray]
"""A cooperative game: bool coalitions ``(C, k)`` -> float values ``(C, *batch)``."""

_METHODS = ("permutation", "kernel")


def _coalition_rows(start: int, stop: int, k: int) -> np.ndarray:
    """Rows ``start:stop`` of :func:`coalition_matrix` without building the whole matrix."""
    index = np.arange(start, stop, dtype=np.int64)
    return ((index[:, None] >> np.arange(k, dtype=np.int64)) & 1).astype(bool)


def _shapley_kernel_weights(k: int) -> np.ndarray:
    """``w(s) = s! (k-s-1)! / k! = 1 / (k * C(k-1, s))`` for ``s = 0..k-1`` in float64."""
    return np.array([1.0 / (k * math.comb(k - 1, s)) for s in range(k)], dtype=np.float64)


def _weight_rows(coalitions: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rows of :func:`shapley_weight_matrix` for the given coalitions."""
    k = coalitions.shape[1]
    size = coalitions.sum(axis=1)
    # clip only to keep the gather in range: w_in is unused for the empty set, w_out for the full one
    w_in = w[np.clip(size - 1, 0, k - 1)]
    w_out = w[np.clip(size, 0, k - 1)]
    return np.where(coalitions, w_in[:, None], -w_out[:, None])


def coalition_matrix(k: int) -> np.ndarray:
    """All ``2**k`` coalitions of ``k`` players as a bool matrix.

    Row ``i`` holds player ``j`` iff bit ``j`` of ``i`` is set, so row 0 is the empty coalition and
    row ``2**k - 1`` the grand coalition.

    Args:
        k: Number of players, ``>= 0``.

    Returns:
        Bool array of shape ``(2**k, k)``.

    Raises:
        ConfigError: If ``k`` is negative.

    >>> coalition_matrix(2)
    array([[False, False],
           [ True, False],
           [False,  True],
           [ True,  True]])
    """
    if k < 0:
        raise ConfigError(f"the number of players must be >= 0, got {k=}")
    return _coalition_rows(0, 2**k, k)


def shapley_weight_matrix(k: int) -> np.ndarray:
    """Matrix ``W`` that turns coalition values into Shapley values: ``phi = V @ W``.

    ``W[S, j] = w(|S| - 1)`` if ``j`` is in ``S`` and ``-w(|S|)`` otherwise, with
    ``w(s) = s! (k - s - 1)! / k!``, computed as ``1 / (k * comb(k - 1, s))`` in float64. Rows follow
    :func:`coalition_matrix`, so ``V`` must list the values of those coalitions in that order.

    Args:
        k: Number of players, ``>= 1``.

    Returns:
        Float64 array of shape ``(2**k, k)``. Every column sums to 0 (a constant game has zero
        Shapley values).

    Raises:
        ConfigError: If ``k < 1``.

    >>> shapley_weight_matrix(2)
    array([[-0.5, -0.5],
           [ 0.5, -0.5],
           [-0.5,  0.5],
           [ 0.5,  0.5]])
    """
    if k < 1:
        raise ConfigError(f"a weight matrix needs at least one player, got {k=}")
    return _weight_rows(coalition_matrix(k), _shapley_kernel_weights(k))


@dataclass
class ShapleyResult:
    """Shapley values of a game and how they were obtained.

    ``batch`` below is the trailing shape of the game's output (``()`` for a scalar game).

    Attributes:
        players: Player names, in the order of the last axis of ``values``.
        values: Shapley values, shape ``(*batch, k)``.
        base_value: ``v(empty)``, shape ``batch`` (a 0-d array for a scalar game).
        full_value: ``v(all players)``, shape ``batch``.
        std_errors: Standard errors of ``values``, shape ``(*batch, k)``; None for exact values.
        method: ``"exact"``, ``"permutation"`` or ``"kernel"``.
        n_evaluations: Coalition evaluations made, i.e. rows passed to the game in total.
        n_samples: Antithetic permutation pairs or paired kernel samples drawn; None for exact.
        converged: Whether ``target_se`` was reached; None when no target was given.
    """

    players: list[str]
    values: np.ndarray
    base_value: np.ndarray
    full_value: np.ndarray
    std_errors: np.ndarray | None
    method: str
    n_evaluations: int
    n_samples: int | None = None
    converged: bool | None = None

    def efficiency_gap(self) -> float:
        """Largest ``|sum_j phi_j - (v(all) - v(empty))|`` over the batch (NaN entries are skipped).

        Returns:
            The gap; about 1e-15 times the value scale for every estimator here, NaN if every
            entry is NaN.
        """
        gap = np.abs(self.values.sum(axis=-1) - (self.full_value - self.base_value))
        finite = gap[np.isfinite(gap)]
        return float(finite.max()) if finite.size else float("nan")

    def to_frame(self) -> pd.DataFrame:
        """Tidy table with one row per (item, player).

        Returns:
            Columns ``player, value, std_error`` (``std_error`` NaN for exact values), rows in
            the order of ``players``. For a batched game the batch dimensions are flattened
            (C order) into a leading ``item`` column numbered ``0..n-1``.
        """
        k = len(self.players)
        values = np.asarray(self.values, dtype=np.float64).reshape(-1, k)
        if self.std_errors is None:
            errors = np.full_like(values, np.nan)
        else:
            errors = np.asarray(self.std_errors, dtype=np.float64).reshape(-1, k)
        n_items = values.shape[0]
        columns: dict[str, object] = {}
        if np.ndim(self.values) > 1:
            columns["item"] = np.repeat(np.arange(n_items), k)
        columns["player"] = np.tile(np.array(self.players, dtype=object), n_items)
        columns["value"] = values.reshape(-1)
        columns["std_error"] = errors.reshape(-1)
        return pd.DataFrame(columns)


def _check_players(players: Sequence[str]) -> list[str]:
    names = [str(p) for p in players]
    if not names:
        raise ConfigError("players is empty: pass at least one player name")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ConfigError(
            f"duplicate player names {duplicates}: give every player a distinct name "
            "(group predictors into one player instead of repeating a name)"
        )
    return names


def _check_positive(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {name}={value!r}")
    return int(value)


def _evaluate(game: Game, coalitions: np.ndarray, batch: tuple[int, ...] | None) -> np.ndarray:
    """Call the game and check that it returns one float row per coalition."""
    values = np.asarray(game(coalitions), dtype=np.float64)
    n = coalitions.shape[0]
    if (
        values.ndim == 0
        or values.shape[0] != n
        or (batch is not None and values.shape[1:] != batch)
    ):
        expected = f"({n}, *batch)" if batch is None else str((n, *batch))
        raise ConfigError(
            f"the game returned values of shape {values.shape} for {n} coalitions: a game must "
            f"return an array of shape {expected}, one row per coalition"
        )
    return values


def exact_shapley(
    game: Game,
    players: Sequence[str],
    *,
    max_players: int = 16,
    coalitions_per_call: int = 64,
    progress: bool = False,
) -> ShapleyResult:
    """Exact Shapley values by evaluating all ``2**k`` coalitions.

    Coalitions are passed to the game in chunks of at most ``coalitions_per_call`` rows (in
    :func:`coalition_matrix` order) and each chunk's values are folded into the result straight
    away with the matching rows of :func:`shapley_weight_matrix`, so memory holds one chunk of
    values, never all ``2**k``.

    Args:
        game: Callable mapping bool coalitions ``(C, k)`` to values ``(C, *batch)``.
        players: Distinct player names; their order is the column order of the coalitions.
        max_players: Refuse games with more players than this (the cost doubles per player).
        coalitions_per_call: Largest number of coalitions passed to one game call.
        progress: Show a tqdm progress bar over coalitions.

    Returns:
        A :class:`ShapleyResult` with ``method="exact"``, ``std_errors=None`` and
        ``n_evaluations = 2**k``.

    Raises:
        ConfigError: If there are no players, duplicate names, more than ``max_players``
            players, a non-positive ``coalitions_per_call``, or the game returns a wrong shape.

    >>> import numpy as np
    >>> def game(z):  # players 0 and 1 only count together; player 2 is a dummy
    ...     return (z[:, 0] & z[:, 1]).astype(float)
    >>> exact_shapley(game, ["a", "b", "c"]).values
    array([0.5, 0.5, 0. ])
    """
    names = _check_players(players)
    k = len(names)
    chunk = _check_positive("coalitions_per_call", coalitions_per_call)
    if k > max_players:
        raise ConfigError(
            f"exact Shapley values for k={k} players need 2**{k} = {2**k:,} coalition "
            f"evaluations, more than max_players={max_players} allows: use "
            'sampled_shapley(..., method="permutation") or sampled_shapley(..., method="kernel"), '
            "group the predictors into fewer players, or raise max_players"
        )
    n_coalitions = 2**k
    w = _shapley_kernel_weights(k)
    phi: np.ndarray | None = None
    base = full = np.empty(0)
    batch: tuple[int, ...] | None = None
    with tqdm(
        total=n_coalitions, unit="coalition", disable=not progress, desc="exact Shapley"
    ) as bar:
        for start in range(0, n_coalitions, chunk):
            stop = min(start + chunk, n_coalitions)
            coalitions = _coalition_rows(start, stop, k)
            values = _evaluate(game, coalitions, batch)
            if phi is None:
                batch = values.shape[1:]
                phi = np.zeros((*batch, k), dtype=np.float64)
            phi += np.einsum("c...,cj->...j", values, _weight_rows(coalitions, w))
            if start == 0:
                base = values[0].copy()
            if stop == n_coalitions:
                full = values[-1].copy()
            bar.update(stop - start)
    assert phi is not None  # n_coalitions >= 2, so the loop ran
    return ShapleyResult(
        players=names,
        values=phi,
        base_value=base,
        full_value=full,
        std_errors=None,
        method="exact",
        n_evaluations=n_coalitions,
    )


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
    names = _check_players(players)
    k = len(names)
    if method not in _METHODS:
        raise ConfigError(f"unknown Shapley sampling {method=}: use one of {list(_METHODS)}")
    per_round = _check_positive("samples_per_round", samples_per_round)
    min_samples = _check_positive("min_samples", min_samples)
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
        max_evaluations = _check_positive("max_evaluations", max_evaluations)
        needed = 2 + 2 * rows_per_sample
        if max_evaluations < needed:
            raise ConfigError(
                f"max_evaluations={max_evaluations} is too small for {method=} with k={k} players: "
                f"v(empty), v(all) and two samples need up to {needed} evaluations; pass "
                f"max_evaluations >= {needed}"
            )

    ends = np.zeros((2, k), dtype=bool)
    ends[1] = True
    end_values = _evaluate(game, ends, None)
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
            values = _evaluate(game, unique, batch).reshape(unique.shape[0], -1)
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
