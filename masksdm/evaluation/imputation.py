"""Imputation of hidden predictors, for models trained WITHOUT masking (the paper's baselines).

Every imputer returns ``m`` completed copies (m, N, P) of normalised predictors ``x`` (N, P) in which
hidden predictors (``visible[j] = False``) and NaN values are filled in:

* ``MeanImputer``: the training mean (0 after z-scoring), one copy;
* ``MedianImputer``: the training median, one copy;
* ``KNNImputer``: conditional imputation, as in the MaskSDM paper: the k training plots nearest in
  the visible predictors each give one copy with their hidden values; predictions are then averaged
  over the k copies.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

__all__ = ["Imputer", "KNNImputer", "MeanImputer", "MedianImputer", "make_imputer"]


class Imputer:
    """Base class: fill hidden and missing predictors from training data."""

    name = "imputer"

    def fit(self, x_train: np.ndarray) -> Imputer:
        self.fill_ = np.zeros(x_train.shape[1], dtype=np.float32)
        return self

    def impute(self, x: np.ndarray, visible: np.ndarray) -> np.ndarray:
        filled = np.where(visible[None, :] & ~np.isnan(x), x, self.fill_[None, :])
        return filled.astype(np.float32)[None]


class MeanImputer(Imputer):
    name = "mean"


class MedianImputer(Imputer):
    name = "median"

    def fit(self, x_train: np.ndarray) -> MedianImputer:
        median = np.nanmedian(np.where(np.isnan(x_train).all(axis=0), 0.0, x_train), axis=0)
        self.fill_ = np.nan_to_num(median, nan=0.0).astype(np.float32)
        return self


class KNNImputer(Imputer):
    """Conditional imputation from the ``k`` nearest training plots in the visible predictors."""

    name = "knn"

    def __init__(self, k: int = 5) -> None:
        self.k = k

    def fit(self, x_train: np.ndarray) -> KNNImputer:
        self.x_train_ = np.nan_to_num(x_train, nan=0.0).astype(np.float32)
        self.fill_ = np.zeros(x_train.shape[1], dtype=np.float32)
        return self

    def impute(self, x: np.ndarray, visible: np.ndarray) -> np.ndarray:
        base = np.where(visible[None, :] & ~np.isnan(x), x, 0.0).astype(np.float32)
        if not visible.any():
            return super().impute(x, visible)
        nn = NearestNeighbors(n_neighbors=self.k).fit(self.x_train_[:, visible])
        _, idx = nn.kneighbors(base[:, visible])
        hidden = ~visible[None, :] | np.isnan(x)
        donors = self.x_train_[idx.T]  # (k, N, P): the c-th nearest plot of every site
        return np.where(hidden[None], donors, base[None]).astype(np.float32)


def make_imputer(name: str, x_train: np.ndarray, *, k: int = 5) -> Imputer:
    """A fitted imputer by name: ``"mean"``, ``"median"`` or ``"knn"``."""
    imputers = {"mean": MeanImputer, "median": MedianImputer}
    if name == "knn":
        return KNNImputer(k).fit(x_train)
    if name not in imputers:
        raise ValueError(f"unknown imputation {name!r}: choose 'mean', 'median' or 'knn'")
    return imputers[name]().fit(x_train)
