"""Intervals and calibration: DeLong intervals of per-species AUC, bootstrap intervals of a mean
over species, Brier scores and reliability curves; coverage is checked in simulation."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.stats import norm

from masksdm.metrics import auc_interval, brier_score, mean_interval, reliability_curve, roc_auc
from masksdm.plots import reliability_figure


def test_delong_auc_equals_roc_auc_and_the_variance_its_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, (80, 5)).astype(float)  # many ties
    labels = rng.random((80, 5)) < 0.3
    auc, low, high = auc_interval(scores, labels)
    np.testing.assert_allclose(auc, roc_auc(scores, labels), atol=1e-12)
    assert (low <= auc).all() and (auc <= high).all()

    s = np.array([0.1, 0.4, 0.35, 0.8, 0.5, 0.5, 0.2, 0.9])
    y = np.array([0, 0, 1, 1, 1, 0, 0, 1], dtype=bool)
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = np.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
    a, lo, hi = auc_interval(s[:, None], y[:, None], level=0.9)
    assert a[0] == pytest.approx(psi.mean())
    assert a[0] - lo[0] == pytest.approx(norm.ppf(0.95) * se)  # the upper end is clipped at 1
    assert hi[0] == 1.0
    assert np.isnan(auc_interval(s[:, None], np.ones((8, 1), bool))[1][0])


@pytest.mark.parametrize("level, band", [(0.95, (0.93, 0.97)), (0.5, (0.45, 0.55))])
def test_delong_intervals_cover_a_known_auc_at_their_level(level, band):
    rng = np.random.default_rng(1)
    n_species, m, n = 2000, 30, 120
    scores = np.concatenate([rng.normal(1, 1, (m, n_species)), rng.normal(0, 1, (n, n_species))])
    labels = np.zeros_like(scores, dtype=bool)
    labels[:m] = True
    truth = norm.cdf(1 / np.sqrt(2))
    _, low, high = auc_interval(scores, labels, level=level)
    coverage = ((low <= truth) & (truth <= high)).mean()
    assert band[0] <= coverage <= band[1]


def test_the_interval_of_a_mean_over_species_covers_the_known_mean():
    rng = np.random.default_rng(2)
    truth = 8 / 11  # mean of Beta(8, 3)
    hits = [low <= truth <= high for low, high in
            (mean_interval(rng.beta(8, 3, 50), n_boot=1000, seed=i)[1:] for i in range(400))]
    assert 0.91 <= np.mean(hits) <= 0.98
    assert np.isnan(mean_interval(np.array([0.7]))[1])


def test_brier_score_and_reliability_curve():
    rng = np.random.default_rng(3)
    prob = rng.random((500, 3))
    y = rng.random((500, 3)) < prob
    y[:, 2] = False
    brier = brier_score(prob, y)
    np.testing.assert_allclose(brier[:2], ((prob[:, :2] - y[:, :2]) ** 2).mean(axis=0))
    assert np.isnan(brier[2])

    p = rng.random(200_000)
    curve = reliability_curve(p, rng.random(200_000) < p)
    assert curve["n"].sum() == 200_000 and len(curve) == 10
    big = curve[curve["n"] > 2000]
    assert (np.abs(big["observed"] - big["mean_predicted"]) < 0.05).all()
    inflated = reliability_curve(p, rng.random(200_000) < p / 2)  # predictions twice too high
    assert (inflated["observed"] < inflated["mean_predicted"] - 0.02).iloc[3:].all()


def test_reliability_figure_draws_one_line_per_curve_and_the_diagonal():
    rng = np.random.default_rng(4)
    p = rng.random(1000)
    curves = {"all": reliability_curve(p, rng.random(1000) < p), "climate": reliability_curve(p, rng.random(1000) < 0.5)}
    fig = reliability_figure(curves, title="t")
    assert len(fig.axes[0].lines) == 3
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["calibrated", "all", "climate"]
