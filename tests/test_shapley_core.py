"""Shapley estimators: golden values, the Shapley axioms, a brute-force reference, shap agreement."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from masksdm.errors import ConfigError
from masksdm.explain.core import (
    ShapleyResult,
    coalition_matrix,
    exact_shapley,
    shapley_weight_matrix,
)
from masksdm.explain.sampling import (
    _kernel_estimates,
    _kernel_projection,
    _kernel_size_probabilities,
    _permutation_estimates,
    _RunningMoments,
    sampled_shapley,
)

SAMPLERS = ["permutation", "kernel"]


def names(k: int) -> list[str]:
    return [f"x{j}" for j in range(k)]


def table_game(table: np.ndarray):
    """The most general game: an arbitrary value per coalition, looked up by its bit code."""
    k = int(round(math.log2(table.shape[0])))
    bits = 1 << np.arange(k)

    def game(z: np.ndarray) -> np.ndarray:
        return table[z.astype(np.int64) @ bits]

    return game


def smooth_game(k: int, seed: int, batch: tuple[int, ...] = ()):
    """A nonlinear game with pairwise and three-way interactions (and a batch of outputs)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, *batch))
    b = rng.normal(scale=0.5, size=(k, k, *batch))

    def game(z: np.ndarray) -> np.ndarray:
        zf = z.astype(np.float64)
        linear = np.einsum("cj,j...->c...", zf, a)
        pairs = np.einsum("ci,cj,ij...->c...", zf, zf, b) / k
        triple = zf[:, :3].prod(axis=1).reshape(-1, *([1] * len(batch)))
        return np.tanh(linear / 2 + pairs) + 0.5 * triple

    return game


def brute_force_shapley(game, k: int) -> np.ndarray:
    """The textbook formula, one subset at a time; returns (*batch, k)."""
    phi = []
    for j in range(k):
        others = [i for i in range(k) if i != j]
        total = 0.0
        for size in range(k):
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for subset in itertools.combinations(others, size):
                without = np.zeros((1, k), dtype=bool)
                without[0, list(subset)] = True
                with_j = without.copy()
                with_j[0, j] = True
                total = total + weight * (game(with_j)[0] - game(without)[0])
        phi.append(total)
    return np.stack(phi, axis=-1)


class CountingGame:
    """Wraps a game and records the coalition matrices it was called with."""

    def __init__(self, game) -> None:
        self.game = game
        self.calls: list[np.ndarray] = []

    def __call__(self, z: np.ndarray) -> np.ndarray:
        self.calls.append(z.copy())
        return self.game(z)

    @property
    def n_rows(self) -> int:
        return sum(len(z) for z in self.calls)


# ---------------------------------------------------------------------------- coalitions, weights


def test_coalition_matrix_bit_order():
    z = coalition_matrix(3)
    assert z.shape == (8, 3) and z.dtype == bool
    assert not z[0].any() and z[7].all()
    for i in range(8):
        assert [bool(i >> j & 1) for j in range(3)] == z[i].tolist()


def test_weight_matrix_k6_golden():
    k = 6
    w = shapley_weight_matrix(k)
    z = coalition_matrix(k)
    assert w.shape == (64, 6) and w.dtype == np.float64
    expected = np.array([1 / 6, 1 / 30, 1 / 60, 1 / 60, 1 / 30, 1 / 6])
    size = z.sum(axis=1)
    for s in range(k):  # j outside S: minus w(|S|)
        np.testing.assert_allclose(w[(size == s)[:, None] & ~z], -expected[s], rtol=1e-15)
    for s in range(1, k + 1):  # j inside S: w(|S| - 1)
        np.testing.assert_allclose(w[(size == s)[:, None] & z], expected[s - 1], rtol=1e-15)


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_weight_matrix_row_and_column_sums(k):
    w = shapley_weight_matrix(k)
    z = coalition_matrix(k)
    # a constant game has zero Shapley values
    np.testing.assert_allclose(w.sum(axis=0), 0, atol=1e-13)
    # efficiency: phi summed over players weights v(all) by +1, v(empty) by -1, the rest by 0
    row_sums = w.sum(axis=1)
    np.testing.assert_allclose(row_sums[0], -1, rtol=1e-13)
    np.testing.assert_allclose(row_sums[-1], 1, rtol=1e-13)
    np.testing.assert_allclose(row_sums[1:-1], 0, atol=1e-13)
    # the weights of j inside S over all S sum to 1 (a player alone in an additive game)
    np.testing.assert_allclose((w * z).sum(axis=0), 1, rtol=1e-13)


# ------------------------------------------------------------------------------------------ exact


@pytest.mark.parametrize("k", range(1, 8))
def test_exact_matches_brute_force_on_arbitrary_games(k):
    rng = np.random.default_rng(k)
    game = table_game(rng.normal(size=2**k) ** 3)
    result = exact_shapley(game, names(k))
    np.testing.assert_allclose(result.values, brute_force_shapley(game, k), rtol=1e-12, atol=1e-12)
    assert result.method == "exact" and result.std_errors is None and result.n_samples is None
    assert result.n_evaluations == 2**k and result.converged is None


@pytest.mark.parametrize("k", [1, 3, 6])
def test_exact_matches_brute_force_batched(k):
    rng = np.random.default_rng(10 + k)
    game = table_game(rng.normal(size=(2**k, 5, 3)))
    result = exact_shapley(game, names(k), coalitions_per_call=5)
    assert result.values.shape == (5, 3, k)
    assert result.base_value.shape == (5, 3) and result.full_value.shape == (5, 3)
    np.testing.assert_allclose(result.values, brute_force_shapley(game, k), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.base_value, game(np.zeros((1, k), bool))[0])
    np.testing.assert_array_equal(result.full_value, game(np.ones((1, k), bool))[0])
    assert result.efficiency_gap() < 1e-10


def test_exact_chunking_does_not_change_the_result():
    game = CountingGame(smooth_game(7, seed=3, batch=(4,)))
    small = exact_shapley(game, names(7), coalitions_per_call=3)
    assert max(len(z) for z in game.calls) == 3 and game.n_rows == 2**7
    large = exact_shapley(smooth_game(7, seed=3, batch=(4,)), names(7), coalitions_per_call=1000)
    np.testing.assert_allclose(small.values, large.values, rtol=1e-13, atol=1e-14)


def test_exact_progress_bar_runs():
    result = exact_shapley(smooth_game(4, seed=0), names(4), progress=True)
    assert result.n_evaluations == 16


# ------------------------------------------------------------------------------------ axioms


@pytest.mark.parametrize("method", ["exact", *SAMPLERS])
def test_efficiency_to_float_precision(method):
    k = 7
    game = smooth_game(k, seed=4, batch=(6,))
    if method == "exact":
        result = exact_shapley(game, names(k))
    else:
        result = sampled_shapley(game, names(k), method=method, max_evaluations=500, seed=1)
    assert result.efficiency_gap() < 1e-10
    np.testing.assert_allclose(
        result.values.sum(-1), result.full_value - result.base_value, atol=1e-10
    )


def symmetric_dummy_game(z: np.ndarray) -> np.ndarray:
    """Players 0 and 1 are interchangeable; player 3 never matters."""
    zf = z.astype(np.float64)
    pair = zf[:, 0] + zf[:, 1]
    return np.sin(1.3 * pair + 0.7 * zf[:, 2]) + pair * zf[:, 4] ** 2 + 0.25 * zf[:, 2] * zf[:, 4]


def test_exact_symmetry_and_dummy():
    result = exact_shapley(symmetric_dummy_game, names(5))
    assert abs(result.values[0] - result.values[1]) < 1e-14
    assert abs(result.values[0] - result.values[2]) > 1e-3  # the test game is not trivially flat
    assert abs(result.values[3]) < 1e-15


def test_permutation_dummy_is_exactly_zero_and_symmetry_holds_in_expectation():
    result = sampled_shapley(symmetric_dummy_game, names(5), max_evaluations=802, seed=2)
    assert result.values[3] == 0.0 and result.std_errors is not None
    assert result.std_errors[3] == 0.0
    gap = abs(result.values[0] - result.values[1])
    assert gap <= 4 * np.hypot(result.std_errors[0], result.std_errors[1])


def test_kernel_dummy_and_symmetry_within_standard_errors():
    exact = exact_shapley(symmetric_dummy_game, names(5))
    result = sampled_shapley(symmetric_dummy_game, names(5), method="kernel", max_evaluations=2002)
    assert result.std_errors is not None
    assert np.all(np.abs(result.values - exact.values) <= 4 * result.std_errors + 1e-12)


def test_additive_game_gives_coefficients():
    coef = np.array([1.5, -2.0, 0.0, 0.25, 3.0, -0.75])

    def game(z: np.ndarray) -> np.ndarray:
        return 4.0 + z.astype(np.float64) @ coef

    exact = exact_shapley(game, names(6))
    np.testing.assert_allclose(exact.values, coef, atol=1e-14)
    perm = sampled_shapley(game, names(6), target_se=1e-9, max_evaluations=10**4, seed=5)
    np.testing.assert_allclose(perm.values, coef, atol=1e-13)
    assert perm.std_errors is not None and np.all(perm.std_errors < 1e-13)
    assert perm.converged is True and perm.n_samples == 16  # one round is enough


# ------------------------------------------------------------------------------------ sampling


@pytest.mark.parametrize("k", [2, 3, 5])
def test_permutation_estimator_averaged_over_all_orders_is_exact(k):
    """Averaging the per-pair estimate over every order gives the Shapley value, not just nearly."""
    game = smooth_game(k, seed=20 + k, batch=(2,))
    rank = np.array(list(itertools.permutations(range(k))))
    rank = np.stack([rank, k - 1 - rank], axis=1)  # (k!, 2, k)
    chains = rank[:, :, None, :] < np.arange(1, k)[:, None]  # (k!, 2, k-1, k)
    values = game(chains.reshape(-1, k)).reshape(*chains.shape[:3], 2)
    ends = game(np.array([[False] * k, [True] * k]))
    estimates = _permutation_estimates(values, rank, ends[0], ends[1])
    np.testing.assert_allclose(
        estimates.mean(axis=0), exact_shapley(game, names(k)).values, rtol=1e-12, atol=1e-13
    )


def test_kernel_size_distribution_golden():
    # p(s) proportional to (k-1) / (s (k-s)); for k = 4: 1, 3/4, 1
    np.testing.assert_allclose(_kernel_size_probabilities(4), np.array([4, 3, 4]) / 11, rtol=1e-15)
    p = _kernel_size_probabilities(9)
    np.testing.assert_allclose(p, p[::-1], rtol=1e-15)
    assert p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_kernel_estimator_is_unbiased(k):
    """The expectation of phi_i over the exact sampling distribution of z equals Shapley values."""
    game = smooth_game(k, seed=30 + k, batch=(3,))
    z = coalition_matrix(k)[1:-1]  # sizes 1..k-1
    size = z.sum(axis=1)
    prob = _kernel_size_probabilities(k)[size - 1] / np.array([math.comb(k, s) for s in size])
    assert prob.sum() == pytest.approx(1.0)
    pairs = np.stack([z, ~z], axis=1)
    values = game(pairs.reshape(-1, k)).reshape(len(z), 2, 3)
    ends = game(np.array([[False] * k, [True] * k]))
    projection, offset = _kernel_projection(k)
    np.testing.assert_allclose(projection.sum(axis=1), 0, atol=1e-12)  # efficiency of each sample
    estimates = _kernel_estimates(values, pairs, ends[0], ends[1], projection, offset)
    expectation = np.einsum("i,i...->...", prob, estimates)
    np.testing.assert_allclose(
        expectation, exact_shapley(game, names(k)).values, rtol=1e-11, atol=1e-12
    )


def mean_abs_error(k: int, method: str, budget: int, seeds: range) -> float:
    game = smooth_game(k, seed=k)
    exact = exact_shapley(game, names(k)).values
    errors = [
        np.abs(
            sampled_shapley(game, names(k), method=method, max_evaluations=budget, seed=s).values
            - exact
        ).mean()
        for s in seeds
    ]
    return float(np.mean(errors))


@pytest.mark.parametrize("k", [8, 10])
@pytest.mark.parametrize("method", SAMPLERS)
def test_sampled_estimates_converge_to_exact(k, method):
    game = smooth_game(k, seed=k)
    exact = exact_shapley(game, names(k))
    budget = 60 * k
    result = sampled_shapley(game, names(k), method=method, max_evaluations=budget, seed=11)
    assert result.method == method and result.n_evaluations <= budget
    assert result.std_errors is not None and np.all(result.std_errors > 0)
    assert np.all(np.abs(result.values - exact.values) <= 4 * result.std_errors)
    # four times the budget halves the error in expectation; averaged over seeds it must shrink
    small = mean_abs_error(k, method, budget, range(6))
    large = mean_abs_error(k, method, 4 * budget, range(6))
    assert large < small


def test_sampled_is_deterministic_given_seed():
    game = smooth_game(6, seed=1)
    for method in SAMPLERS:
        first = sampled_shapley(game, names(6), method=method, max_evaluations=300, seed=7)
        again = sampled_shapley(game, names(6), method=method, max_evaluations=300, seed=7)
        other = sampled_shapley(game, names(6), method=method, max_evaluations=300, seed=8)
        np.testing.assert_array_equal(first.values, again.values)
        assert not np.array_equal(first.values, other.values)


@pytest.mark.parametrize("method", SAMPLERS)
def test_target_se_stops_with_convergence(method):
    game = CountingGame(smooth_game(6, seed=2, batch=(3,)))
    result = sampled_shapley(
        game, names(6), method=method, target_se=0.01, min_samples=20, max_evaluations=10**6
    )
    assert result.converged is True
    assert result.std_errors is not None and result.std_errors.max() <= 0.01
    assert result.n_samples is not None and result.n_samples >= 20
    # the reported count is the rows the game saw; the ends are evaluated once, in the first call
    assert result.n_evaluations == game.n_rows
    assert len(game.calls[0]) == 2 and all(len(np.unique(z, axis=0)) == len(z) for z in game.calls)
    ends = np.concatenate(game.calls[1:])
    assert ends.any(axis=1).all() and not ends.all(axis=1).any()
    assert len(game.calls) == 1 + -(-result.n_samples // 16)  # one call per round


@pytest.mark.parametrize("method", SAMPLERS)
def test_min_samples_is_respected(method):
    game = smooth_game(5, seed=4)
    result = sampled_shapley(
        game, names(5), method=method, target_se=100.0, min_samples=10, samples_per_round=4
    )
    assert result.converged is True and result.n_samples == 12  # three rounds of four


def test_running_moments_merge_rounds_exactly():
    rng = np.random.default_rng(0)
    samples = rng.normal(loc=3.0, size=(23, 2, 4)) * np.arange(1, 5)
    moments = _RunningMoments()
    for part in np.split(samples, [5, 6, 17]):
        moments.update(part)
    assert moments.n == 23
    np.testing.assert_allclose(moments.mean, samples.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(
        moments.std_errors(), samples.std(axis=0, ddof=1) / np.sqrt(23), rtol=1e-12
    )


@pytest.mark.parametrize("method", SAMPLERS)
def test_tiny_budget_stops_without_convergence(method):
    k = 8
    budget = 40
    game = CountingGame(smooth_game(k, seed=3))
    result = sampled_shapley(game, names(k), method=method, target_se=1e-6, max_evaluations=budget)
    assert result.converged is False
    assert result.n_evaluations <= budget and result.n_evaluations == game.n_rows
    assert result.n_samples is not None and result.n_samples >= 2
    assert result.efficiency_gap() < 1e-10


def test_default_budget_without_target():
    k = 5
    result = sampled_shapley(smooth_game(k, seed=6), names(k))
    assert result.converged is None
    assert result.n_evaluations <= 200 * k + 2
    assert result.n_evaluations > 100 * k  # most of the default budget was used


def test_one_and_two_players_are_exact():
    for method in SAMPLERS:
        one = sampled_shapley(lambda z: 2.0 + 3.0 * z[:, 0], ["a"], method=method, target_se=0.1)
        assert one.n_evaluations == 2 and one.n_samples == 0
        assert one.values.shape == (1,) and one.converged is True
        np.testing.assert_allclose(one.values, [3.0])
        game = table_game(np.array([0.5, 2.0, -1.5, 4.0]))
        two = sampled_shapley(
            game, ["a", "b"], method=method, target_se=1e-12, max_evaluations=1000
        )
        np.testing.assert_allclose(two.values, exact_shapley(game, ["a", "b"]).values, atol=1e-14)
        assert two.converged is True and two.std_errors is not None
        assert two.std_errors.max() < 1e-14


def test_nan_entries_propagate_and_are_skipped_by_the_stopping_rule():
    base = smooth_game(5, seed=9, batch=(2,))

    def game(z: np.ndarray) -> np.ndarray:
        values = base(z)
        values[:, 1] = np.nan  # e.g. a species without an AUC
        return values

    result = sampled_shapley(game, names(5), target_se=0.05, max_evaluations=5000)
    assert result.converged is True and np.isnan(result.values[1]).all()
    assert np.isfinite(result.values[0]).all()


def test_progress_bar_runs_for_sampling():
    result = sampled_shapley(smooth_game(4, seed=0), names(4), max_evaluations=100, progress=True)
    assert result.n_evaluations <= 100


# ------------------------------------------------------------------------------------ result


def test_to_frame_scalar_and_batched():
    k = 3
    exact = exact_shapley(smooth_game(k, seed=0), ["temp", "soil", "rain"])
    frame = exact.to_frame()
    assert list(frame.columns) == ["player", "value", "std_error"]
    assert frame["player"].tolist() == ["temp", "soil", "rain"]
    np.testing.assert_array_equal(frame["value"].to_numpy(), exact.values)
    assert frame["std_error"].isna().all()

    batched = sampled_shapley(smooth_game(k, seed=0, batch=(2, 2)), ["temp", "soil", "rain"])
    frame = batched.to_frame()
    assert list(frame.columns) == ["item", "player", "value", "std_error"]
    assert len(frame) == 4 * k and frame["item"].tolist() == list(np.repeat(np.arange(4), k))
    assert batched.std_errors is not None
    np.testing.assert_array_equal(frame["value"].to_numpy(), batched.values.reshape(-1))
    np.testing.assert_array_equal(frame["std_error"].to_numpy(), batched.std_errors.reshape(-1))
    assert isinstance(frame, pd.DataFrame)


def test_efficiency_gap_detects_a_broken_result():
    result = ShapleyResult(
        players=["a", "b"],
        values=np.array([1.0, 1.0]),
        base_value=np.array(0.0),
        full_value=np.array(2.5),
        std_errors=None,
        method="exact",
        n_evaluations=4,
    )
    assert result.efficiency_gap() == pytest.approx(0.5)


# ------------------------------------------------------------------------------------ errors


def test_too_many_players_for_exact_points_to_sampling():
    with pytest.raises(ConfigError, match="sampled_shapley") as info:
        exact_shapley(smooth_game(3, seed=0), names(17))
    assert "131,072" in str(info.value)
    with pytest.raises(ConfigError, match="max_players=4"):
        exact_shapley(smooth_game(5, seed=0), names(5), max_players=4)


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(ConfigError, match="permutation.*kernel"):
        sampled_shapley(smooth_game(3, seed=0), names(3), method="owen")


@pytest.mark.parametrize("estimator", [exact_shapley, sampled_shapley])
def test_bad_players(estimator):
    with pytest.raises(ConfigError, match=r"duplicate player names \['soil'\]"):
        estimator(smooth_game(3, seed=0), ["soil", "temp", "soil"])
    with pytest.raises(ConfigError, match="at least one player"):
        estimator(smooth_game(3, seed=0), [])


def test_bad_options():
    game = smooth_game(4, seed=0)
    with pytest.raises(ConfigError, match="max_evaluations >= 14"):
        sampled_shapley(game, names(4), max_evaluations=10)
    with pytest.raises(ConfigError, match="target_se"):
        sampled_shapley(game, names(4), target_se=0.0)
    with pytest.raises(ConfigError, match="min_samples"):
        sampled_shapley(game, names(4), min_samples=1)
    with pytest.raises(ConfigError, match="coalitions_per_call"):
        exact_shapley(game, names(4), coalitions_per_call=0)
    with pytest.raises(ConfigError, match=r"shape \(3,\) for 4 coalitions"):
        exact_shapley(lambda z: np.zeros(3), names(2))


# ------------------------------------------------------------------------------------ shap


def test_agrees_with_shap_exact_explainer():
    with warnings.catch_warnings():
        # shap's colour maps call a matplotlib API that is pending deprecation
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        shap = pytest.importorskip("shap")

    default = np.array([0.0, 0.5, -0.2, 1.0, 0.1, -0.4])

    def model(x: np.ndarray) -> np.ndarray:
        """NaN marks an absent feature, which the model replaces by its default."""
        x = np.where(np.isnan(x), default, x)
        return (
            np.sin(x[:, 0]) * x[:, 1]
            + np.exp(0.3 * x[:, 2]) * x[:, 3]
            + x[:, 0] * x[:, 2] * x[:, 4]
            + np.tanh(x[:, 5] - x[:, 1])
        )

    def masker(mask: np.ndarray, row: np.ndarray) -> np.ndarray:
        return np.where(mask, row, np.nan)[None, :]

    row = np.array([0.3, -1.2, 0.8, 2.0, -0.5, 1.1])
    explanation = shap.explainers.Exact(model, masker)(row[None, :])

    result = exact_shapley(lambda z: model(np.where(z, row, np.nan)), names(6))
    np.testing.assert_allclose(explanation.values[0], result.values, rtol=0, atol=1e-8)
    np.testing.assert_allclose(explanation.base_values[0], result.base_value, atol=1e-8)
    np.testing.assert_allclose(result.base_value, model(np.full((1, 6), np.nan))[0])
