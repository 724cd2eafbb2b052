"""Shapley values of predictors by masking.

:mod:`~masksdm.explain.core` (games, exact values, the result type) and
:mod:`~masksdm.explain.sampling` (permutation and KernelSHAP estimates) know nothing of models;
:mod:`~masksdm.explain.games` defines MaskSDM's games (a metric over a data set, or the
prediction per site and species), :mod:`~masksdm.explain.maps` writes them as GeoTIFF maps and
:mod:`~masksdm.explain.report` turns results into tables and figures.
"""

from masksdm.explain.core import ShapleyResult, exact_shapley
from masksdm.explain.games import compare_estimators, global_shapley, local_shapley
from masksdm.explain.maps import shapley_map
from masksdm.explain.sampling import sampled_shapley

__all__ = [
    "ShapleyResult",
    "compare_estimators",
    "exact_shapley",
    "global_shapley",
    "local_shapley",
    "sampled_shapley",
    "shapley_map",
]
