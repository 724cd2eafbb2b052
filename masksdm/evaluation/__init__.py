"""Evaluation: AUC and TSS of a model under predictor subsets (:mod:`~masksdm.evaluation.subsets`),
the imputation baselines (:mod:`~masksdm.evaluation.imputation`) and the paper-style comparison
of MaskSDM with imputation and retrained oracles (:mod:`~masksdm.evaluation.compare`). The metrics
themselves are :mod:`masksdm.metrics`, shared with training.
"""

from masksdm.evaluation.compare import compare_subsets, format_table
from masksdm.evaluation.imputation import make_imputer
from masksdm.evaluation.subsets import Evaluation, default_subsets, evaluate

__all__ = ["Evaluation", "compare_subsets", "default_subsets", "evaluate", "format_table", "make_imputer"]
