"""Evaluation: AUC and TSS of a model under predictor subsets (:mod:`~masksdm.evaluation.subsets`),
the imputation baselines (:mod:`~masksdm.evaluation.imputation`), the paper-style comparison
of MaskSDM with imputation and retrained oracles (:mod:`~masksdm.evaluation.compare`), per-species
GLM, random forest, gradient boosting and Maxent baselines (:mod:`~masksdm.evaluation.baselines`)
paired tests over species (:mod:`~masksdm.evaluation.paired`) and spatial k-fold
cross-validation (:mod:`~masksdm.evaluation.cv`). The metrics themselves are
:mod:`masksdm.metrics`, shared with training.
"""

from masksdm.evaluation.baselines import (
    BASELINES,
    BaselineComparison,
    SpeciesModel,
    compare_baselines,
    fit_baseline,
    format_comparison,
    impute_withheld,
    make_baseline,
)
from masksdm.evaluation.compare import compare_subsets, format_table
from masksdm.evaluation.cv import CrossValidation, cross_validate
from masksdm.evaluation.imputation import make_imputer
from masksdm.evaluation.paired import PairedTest, paired_test
from masksdm.evaluation.subsets import Evaluation, default_subsets, evaluate

__all__ = [
    "BASELINES",
    "BaselineComparison",
    "CrossValidation",
    "Evaluation",
    "PairedTest",
    "SpeciesModel",
    "compare_baselines",
    "compare_subsets",
    "cross_validate",
    "default_subsets",
    "evaluate",
    "fit_baseline",
    "format_comparison",
    "format_table",
    "impute_withheld",
    "make_baseline",
    "make_imputer",
    "paired_test",
]
