"""Model-agnostic Shapley values: games, their exact values, and the result type.

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
* :func:`~masksdm.explain.sampling.sampled_shapley` with ``method="permutation"`` averages marginal contributions along
  random orders (Castro, Gomez & Tejada, 2009), using each order together with its reverse
  (antithetic sampling), which cancels much of the variance.
* :func:`~masksdm.explain.sampling.sampled_shapley` with ``method="kernel"`` is KernelSHAP (Lundberg & Lee, 2017), the
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
    "check_players",
    "check_positive",
    "coalition_matrix",
    "evaluate_game",
    "exact_shapley",
    "shapley_weight_matrix",
]

Game = Callable[[np.ndarray], np.ndarray]
"""A cooperative game: bool coalitions ``(C, k)`` -> float values ``(C, *batch)``."""

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


def check_players(players: Sequence[str]) -> list[str]:
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


def check_positive(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {name}={value!r}")
    return int(value)


def evaluate_game(game: Game, coalitions: np.ndarray, batch: tuple[int, ...] | None) -> np.ndarray:
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
    names = check_players(players)
    k = len(names)
    chunk = check_positive("coalitions_per_call", coalitions_per_call)
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
            values = evaluate_game(game, coalitions, batch)
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
