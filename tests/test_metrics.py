"""Vectorised AUC and TSS against scikit-learn and brute force."""

import numpy as np
from sklearn.metrics import roc_auc_score

from masksdm.metrics import evaluable_species, max_tss, roc_auc, tss_at


def data(seed=0, n=200, s=12):
    rng = np.random.default_rng(seed)
    y = rng.random((n, s)) < np.linspace(0.02, 0.5, s)
    scores = y * rng.normal(1, 1, (n, s)) + rng.normal(0, 1, (n, s))
    scores[:, 3] = np.round(scores[:, 3])  # many ties
    y[:, 0] = False  # no presence: undefined
    return scores, y


def test_auc_matches_sklearn_with_ties():
    scores, y = data()
    auc = roc_auc(scores, y)
    assert np.isnan(auc[0])
    for s in range(1, y.shape[1]):
        assert np.isclose(auc[s], roc_auc_score(y[:, s], scores[:, s]))


def test_max_tss_matches_brute_force():
    scores, y = data(1)
    tss, thr = max_tss(scores, y)
    for s in range(1, y.shape[1]):
        best = -np.inf
        for t in np.unique(scores[:, s]):
            pred = scores[:, s] >= t
            sens = (pred & y[:, s]).sum() / y[:, s].sum()
            spec = (~pred & ~y[:, s]).sum() / (~y[:, s]).sum()
            best = max(best, sens + spec - 1)
        assert np.isclose(tss[s], best)
        assert np.isclose(tss_at(scores[:, [s]], y[:, [s]], thr[[s]])[0], best)
    assert np.isnan(tss[0]) and np.isnan(thr[0])


def test_evaluable_species():
    y = np.array([[1, 0, 1], [1, 0, 0]], dtype=bool)
    assert evaluable_species(y).tolist() == [False, False, True]
