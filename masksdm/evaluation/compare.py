"""Subset comparison in the style of the MaskSDM paper.

For each predictor subset (default: each group alone, and all predictors) it reports test mean AUC of:

* **MaskSDM** with the other predictors masked (one model for every subset);
* the **same architecture trained without masking**, fed imputed values for the hidden predictors:
  training mean, training median, or k-nearest-neighbour conditional imputation;
* an **oracle**: the same architecture retrained on that subset alone (for "all", the unmasked
  model itself, as in the paper).

Species with fewer than ``min_class`` test presences or absences are left out of the means (see
:mod:`masksdm.evaluation.subsets`); the returned table's ``attrs["auc_low"]`` and ``attrs["auc_high"]``
hold each mean's bootstrap interval over species, in the same layout.

Baselines are trained into ``models/<run>-unmasked`` and ``models/<run>-oracle-<subset>`` and reused
when already complete, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from masksdm._io import safe_names
from masksdm.errors import CheckpointError, DataError
from masksdm.evaluation.imputation import make_imputer
from masksdm.evaluation.subsets import default_subsets, subset_logits
from masksdm.metrics import MIN_CLASS, mean_interval
from masksdm.model.checkpoint import load_checkpoint, split_arrays
from masksdm.model.training import ensure_trained
from masksdm.scoring import auc, scorable
from masksdm.workspace import Workspace

__all__ = ["compare_subsets", "format_table"]

log = logging.getLogger(__name__)


def compare_subsets(
    workspace: Workspace | str | Path,
    run: str = "main",
    *,
    subsets: Mapping[str, Sequence[str] | None] | None = None,
    imputations: Sequence[str] = ("mean", "median", "knn"),
    split: str = "test",
    min_class: int = MIN_CLASS,
    keep_thin: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Mean AUC of MaskSDM, imputation baselines and oracles, one column per subset.

    Returns:
        A DataFrame indexed by method (``MaskSDM``, ``mean imputation``, ..., ``oracle``) with one
        column per subset; ``attrs`` holds ``auc_low`` and ``auc_high`` (DataFrames of the same
        shape: the bootstrap 95 % interval of each mean over species) and ``n_species``.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    model, card = load_checkpoint(ws.run_dir(run))
    if card.config.train.masking != "random":
        raise CheckpointError(f"run '{run}' was trained without masking: compare needs a MaskSDM run")
    subsets = dict(default_subsets(card) if subsets is None else subsets)
    baseline_config = card.config.replace_train(masking="none", use=())
    ensure_trained(ws, ws.run_dir(f"{run}-unmasked"), baseline_config, progress=progress)
    # one run per subset, in a folder of its own even where two subset names make one file name
    oracle_dirs = dict(zip(subsets, map(ws.run_dir, safe_names([f"{run}-oracle-{n}" for n in subsets], what="subset")),
                           strict=True))
    for name, subset in subsets.items():
        if subset is not None:
            oracle_config = card.config.replace_train(masking="none", use=tuple(subset))
            ensure_trained(ws, oracle_dirs[name], oracle_config, progress=progress)

    x, y = split_arrays(card, ws, split)
    background = ws.background_mask(split)
    x_train, _ = split_arrays(card, ws, "train")
    baseline, baseline_card = load_checkpoint(ws.run_dir(f"{run}-unmasked"))
    imputers = {name: make_imputer(name, x_train) for name in imputations}

    counted = scorable(y, background, 1 if keep_thin else min_class)
    if not counted.any():
        raise DataError(f"no species has {min_class} presences and absences (or background points) among the "
                        f"{len(y)} {split} plots: "
                        "prepare with smaller blocks or a larger --test-fraction, use masksdm cv, or --keep-thin")
    methods = ["MaskSDM", *(f"{name} imputation" for name in imputations), "oracle"]
    scores: dict[str, dict[str, tuple[float, float, float]]] = {m: {} for m in methods}
    steps = tqdm(subsets.items(), desc="compare", unit="subset", disable=not progress)
    for name, subset in steps:
        scores["MaskSDM"][name] = mean_interval(auc(subset_logits(model, card, x, subset), y, background)[counted])
        for imp_name, imputer in imputers.items():
            logits = subset_logits(baseline, baseline_card, x, subset, imputer=imputer)
            scores[f"{imp_name} imputation"][name] = mean_interval(auc(logits, y, background)[counted])
        if subset is None:
            oracle, oracle_card = baseline, baseline_card
        else:
            oracle, oracle_card = load_checkpoint(oracle_dirs[name])
        scores["oracle"][name] = mean_interval(auc(subset_logits(oracle, oracle_card, x, subset), y, background)[counted])

    def part(k: int) -> pd.DataFrame:
        return pd.DataFrame({m: {s: v[k] for s, v in row.items()} for m, row in scores.items()}).T[list(subsets)]

    table = part(0)
    table.attrs.update(auc_low=part(1), auc_high=part(2), n_species=int(counted.sum()))
    return table


def format_table(frame: pd.DataFrame, *, scale: float = 100.0, digits: int = 1) -> str:
    """A Markdown table of mean AUC (x100 by default), best non-oracle value per column in bold,
    each followed by its interval when ``frame.attrs`` holds ``auc_low``/``auc_high``."""
    cols = list(frame.columns)
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    contenders = frame.drop(index="oracle", errors="ignore")
    best = contenders.max(axis=0)
    for method, row in frame.iterrows():
        cells = []
        for col in cols:
            text = f"{row[col] * scale:.{digits}f}"
            if method != "oracle" and np.isclose(row[col], best[col]):
                text = f"**{text}**"
            if "auc_low" in frame.attrs and np.isfinite(frame.attrs["auc_low"].loc[method, col]):
                low, high = frame.attrs["auc_low"].loc[method, col], frame.attrs["auc_high"].loc[method, col]
                text += f" ({low * scale:.{digits}f}-{high * scale:.{digits}f})"
            cells.append(text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
