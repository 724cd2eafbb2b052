"""Presence-only metrics: the AUC of presences against background points, checked against
scikit-learn on the sub-matrix, and the continuous Boyce index, checked against a plain loop and on
perfect, random and inverted models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from masksdm.metrics import background_auc, boyce_index, boyce_indices


def _presence_only(seed: int = 0, n_sites: int = 120, n_bg: int = 80, n_species: int = 7):
    """Record sites then background rows; integer scores, so many ties."""
    rng = np.random.default_rng(seed)
    n = n_sites + n_bg
    scores = rng.integers(0, 8, (n, n_species)).astype(np.float64)
    labels = rng.random((n, n_species)) < 0.3
    labels[n_sites:] = rng.random((n_bg, n_species)) < 0.5  # labels on background rows are ignored
    labels[:n_sites, 3] = False  # a species without presences
    background = np.r_[np.zeros(n_sites, bool), np.ones(n_bg, bool)]
    return scores, labels, background


def test_background_auc_equals_sklearn_on_each_species_presences_and_background():
    scores, labels, background = _presence_only()
    got = background_auc(scores, labels, background, chunk=3)  # several chunks
    for s in range(scores.shape[1]):
        presences = labels[:, s] & ~background
        if not presences.any():
            assert np.isnan(got[s])
            continue
        rows = presences | background  # other species' sites are left out
        expected = roc_auc_score(presences[rows], scores[rows, s])
        assert got[s] == pytest.approx(expected, abs=1e-12), s
    assert np.isnan(got[3]) and np.isfinite(np.delete(got, 3)).all()


def test_background_auc_takes_tensors_and_ignores_other_species_sites():
    scores, labels, background = _presence_only(seed=1)
    expected = background_auc(scores, labels, background)
    got = background_auc(torch.from_numpy(scores).float(), torch.from_numpy(labels), torch.from_numpy(background))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # scores of rows that are neither a presence nor background change nothing
    other = ~background[:, None] & ~labels
    np.testing.assert_array_equal(background_auc(np.where(other, 1e9, scores), labels, background), expected)


def test_background_auc_is_nan_without_background_and_checks_shapes():
    scores, labels, _ = _presence_only()
    assert np.isnan(background_auc(scores, labels, np.zeros(len(scores), bool))).all()
    assert np.isnan(background_auc(scores, labels, None)).all()
    with pytest.raises(ValueError, match="must be"):
        background_auc(scores, labels, np.ones(3, bool))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_background_auc_on_the_gpu_matches_the_cpu():
    scores, labels, background = _presence_only(seed=2, n_species=40)
    on_gpu = background_auc(torch.from_numpy(scores).cuda(), torch.from_numpy(labels).cuda(),
                            torch.from_numpy(background).cuda())
    np.testing.assert_allclose(on_gpu, background_auc(scores, labels, background))


def _boyce_loop(presences: np.ndarray, background: np.ndarray, windows: int = 100, width: float = 0.1) -> float:
    """The continuous Boyce index written out window by window."""
    low = min(presences.min(), background.min())
    high = max(presences.max(), background.max())
    w = width * (high - low)
    step = (high - low - w) / (windows - 1)
    centres, ratios = [], []
    for k in range(windows):
        lo = low + k * step
        hi = high if k == windows - 1 else lo + w
        expected = np.mean((background >= lo) & (background <= hi))
        if expected == 0:
            continue
        ratios.append(np.mean((presences >= lo) & (presences <= hi)) / expected)
        centres.append((lo + hi) / 2)
    return float(spearmanr(centres, ratios).statistic)


def test_boyce_index_of_perfect_random_and_inverted_models():
    rng = np.random.default_rng(0)
    background = rng.uniform(0, 1, 20_000)
    perfect = rng.beta(5, 1, 2_000)
    assert boyce_index(perfect, background) > 0.9
    assert boyce_index(1 - perfect, background) < -0.9
    assert abs(boyce_index(rng.uniform(0, 1, 5_000), background)) < 0.4
    # the overlapping windows make one random model's index noisy at any sample size (F is noise
    # around 1, smoothed along the score): over many random models it averages to 0
    random = [boyce_index(r.uniform(0, 1, 2_000), r.uniform(0, 1, 5_000))
              for r in map(np.random.default_rng, range(1, 21))]
    assert abs(np.mean(random)) < 0.25


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("windows", "width"), [(100, 0.1), (20, 0.25), (7, 0.5)])
def test_boyce_index_equals_a_plain_loop(seed, windows, width):
    rng = np.random.default_rng(seed)
    background = rng.normal(0, 1, 400)
    presences = rng.normal(0.8, 1, 60)
    if seed == 2:  # ties and scores on window edges
        background, presences = np.round(background, 1), np.round(presences, 1)
    expected = _boyce_loop(presences, background, windows, width)
    assert boyce_index(presences, background, windows=windows, width=width) == pytest.approx(expected, abs=1e-12)


def test_boyce_index_is_nan_when_undefined():
    rng = np.random.default_rng(0)
    background = rng.uniform(0, 1, 100)
    assert np.isnan(boyce_index(np.array([0.5]), background))  # fewer than 2 presences
    assert np.isnan(boyce_index(np.array([0.5, 0.6]), np.array([])))  # no background
    assert np.isnan(boyce_index(np.full(5, 0.3), np.full(5, 0.3)))  # no range
    # background only at the two ends: fewer than 3 windows hold background points
    assert np.isnan(boyce_index(np.array([0.2, 0.5, 0.8]), np.array([0.0, 1.0])))
    # presences and background alike everywhere: F is 1 in every window
    same = np.linspace(0, 1, 50)
    assert np.isnan(boyce_index(same, same, windows=5, width=0.5))
    assert np.isnan(boyce_index(np.array([np.nan, 0.4]), background))  # non-finite scores dropped
    with pytest.raises(ValueError, match="windows"):
        boyce_index(same, same, windows=2)
    with pytest.raises(ValueError, match="width"):
        boyce_index(same, same, width=0.0)


def test_boyce_indices_score_each_species_presences_against_the_background():
    rng = np.random.default_rng(3)
    n_sites, n_bg = 300, 1_000
    n = n_sites + n_bg
    scores = rng.uniform(0, 1, (n, 4))
    labels = np.zeros((n, 4), bool)
    labels[:n_sites, 0] = True
    scores[:n_sites, 0] = rng.beta(5, 1, n_sites)  # good model
    labels[:n_sites, 1] = rng.random(n_sites) < 0.5
    scores[:n_sites, 1] = rng.beta(1, 5, n_sites)  # inverted model
    labels[:n_sites, 2] = rng.random(n_sites) < 0.3  # random model
    labels[:1, 3] = True  # one presence: undefined
    labels[n_sites:, 2] = True  # labels on background rows are ignored
    background = np.r_[np.zeros(n_sites, bool), np.ones(n_bg, bool)]
    got = boyce_indices(torch.from_numpy(scores), labels, background)
    for s in range(3):
        presences = labels[:, s] & ~background
        assert got[s] == boyce_index(scores[presences, s], scores[background, s])
    assert got[0] > 0.9 and got[1] < -0.9 and np.isnan(got[3])


def test_read_only_arrays_are_taken_without_a_warning():
    scores, labels, background = _presence_only(seed=4)
    expected_auc = background_auc(scores, labels, background)
    expected_boyce = boyce_indices(scores, labels, background, windows=10, width=0.3)
    for array in (scores, labels, background):
        array.flags.writeable = False  # as frames backed by Arrow give them
    np.testing.assert_array_equal(background_auc(scores, labels, background), expected_auc)
    np.testing.assert_array_equal(boyce_indices(scores, labels, background, windows=10, width=0.3), expected_boyce)
