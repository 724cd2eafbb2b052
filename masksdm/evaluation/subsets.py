"""Evaluation under any predictor subset: per-species AUC and TSS, and their means.

A subset is a list of predictor or group names (``None`` = all predictors). MaskSDM masks every
predictor outside the subset; a model trained without masking (``train.masking = "none"``) instead
gets the hidden predictors imputed (see :mod:`masksdm.evaluation.imputation`, default: the training mean).
Species are evaluated when they have both presences and absences in the split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from masksdm.data.predictors import (
    column_mask,
    input_widths,
    predictor_groups,
    resolve_subset,
    subset_mask,
)
from masksdm.evaluation.imputation import Imputer
from masksdm.metrics import evaluable_species, max_tss, roc_auc, tss_at
from masksdm.model.checkpoint import ModelCard, split_arrays
from masksdm.model.inference import model_inputs, predict_logits
from masksdm.model.network import Network
from masksdm.workspace import Workspace

__all__ = ["Evaluation", "default_subsets", "evaluate", "subset_logits"]


def default_subsets(card_or_predictors) -> dict[str, list[str] | None]:
    """Each predictor group alone, then all predictors."""
    predictors = getattr(card_or_predictors, "predictors", card_or_predictors)
    subsets: dict[str, list[str] | None] = {g: [g] for g in predictor_groups(predictors)}
    subsets["all"] = None
    return subsets


def subset_logits(
    model: Network,
    card: ModelCard,
    x: np.ndarray,
    subset: Sequence[str] | None,
    *,
    imputer: Imputer | None = None,
    batch_size: int = 4096,
) -> np.ndarray:
    """Logits (N, S) from model inputs ``x`` (N, columns) using only ``subset``.

    The model's own training subset (``train.use``) is always respected.
    """
    visible = subset_mask(subset, card.predictors) & card.allowed  # the imputer fills the others
    if card.config.train.masking == "random" or imputer is None:
        inputs, keep = model_inputs(x, visible, card.config.train.masking, input_widths(card.predictors))
        return predict_logits(model, inputs, keep, batch_size=batch_size)
    copies = imputer.impute(x, column_mask(visible, card.predictors))  # (m, N, columns)
    prob_sum = np.zeros((x.shape[0], model.n_species), dtype=np.float64)
    for xc in copies:  # predictions averaged over the imputed copies, on the probability scale
        prob_sum += 1 / (1 + np.exp(-predict_logits(model, xc, batch_size=batch_size).astype(np.float64)))
    p = np.clip(prob_sum / len(copies), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p)).astype(np.float32)


@dataclass
class Evaluation:
    """Results of :func:`evaluate`.

    Attributes:
        summary: one row per subset: ``subset``, ``n_predictors``, ``n_species`` (evaluated),
            ``mean_auc``, ``mean_tss`` (max TSS on the split) and ``mean_tss_val_threshold`` (TSS at
            the thresholds chosen on validation, with all predictors).
        per_species: one row per (subset, species): ``auc``, ``tss``, ``threshold``, ``n_presences``.
    """

    summary: pd.DataFrame
    per_species: pd.DataFrame


def evaluate(
    model: Network,
    card: ModelCard,
    workspace: Workspace,
    *,
    split: str = "test",
    subsets: Mapping[str, Sequence[str] | None] | None = None,
    imputer: Imputer | None = None,
    batch_size: int = 4096,
) -> Evaluation:
    """Evaluate a model on a workspace split under each predictor subset."""
    x, y = split_arrays(card, workspace, split)
    subsets = default_subsets(card) if subsets is None else subsets
    thresholds = None
    if card.thresholds is not None:
        thresholds = np.array([np.nan if t is None else t for t in card.thresholds], dtype=np.float64)
    ok = evaluable_species(y)
    rows, frames = [], []
    for name, subset in subsets.items():
        logits = subset_logits(model, card, x, subset, imputer=imputer, batch_size=batch_size)
        prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
        auc = roc_auc(logits, y)
        tss, thr = max_tss(prob, y)
        tss_val = tss_at(prob, y, thresholds) if thresholds is not None else np.full(len(auc), np.nan)
        rows.append(
            {
                "subset": name,
                "n_predictors": len(resolve_subset(subset, card.predictors)),
                "n_species": int(ok.sum()),
                "mean_auc": float(np.nanmean(auc)) if ok.any() else np.nan,
                "mean_tss": float(np.nanmean(tss)) if ok.any() else np.nan,
                "mean_tss_val_threshold": float(np.nanmean(tss_val)) if np.isfinite(tss_val).any() else np.nan,
            }
        )
        frames.append(
            pd.DataFrame(
                {"subset": name, "species": card.species, "auc": auc, "tss": tss, "threshold": thr,
                 "n_presences": y.sum(axis=0)}
            )
        )
    return Evaluation(summary=pd.DataFrame(rows), per_species=pd.concat(frames, ignore_index=True))
