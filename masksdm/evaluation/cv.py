"""Spatial k-fold cross-validation: every plot is a test plot once, in a block held out whole.

The workspace's plots are dealt by spatial blocks into ``folds`` folds of about equal size
(:func:`~masksdm.data.splits.spatial_folds`). For fold k, its plots are the test split, whole
blocks of the others the validation split (``val_fraction`` of them) and the rest train; a copy
of the workspace with that split, and a normalisation fitted on its training plots, goes to
``<out_dir>/fold-<k>/`` (:meth:`~masksdm.workspace.Workspace.with_split`), MaskSDM is trained
there and evaluated on the test fold under each predictor subset. The result holds each fold's
scores and their mean and standard deviation over folds.

Folds that were finished are reused (same split, same config), so an interrupted run goes on
where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from masksdm.data.splits import fold_split, spatial_folds
from masksdm.errors import DataError
from masksdm.evaluation.subsets import evaluate
from masksdm.metrics import MIN_CLASS, mean_interval
from masksdm.model.checkpoint import load_checkpoint
from masksdm.model.config import RunConfig, preset
from masksdm.model.training import ensure_trained
from masksdm.workspace import Workspace

__all__ = ["CrossValidation", "cross_validate"]


@dataclass
class CrossValidation:
    """Results of :func:`cross_validate`.

    Attributes:
        folds: one row per (fold, subset): ``fold``, ``subset``, ``n_test``, ``n_species``,
            ``mean_auc``, ``mean_tss`` (max TSS on the test fold).
        summary: one row per subset: ``mean_auc`` and ``sd_auc`` (mean and standard deviation
            over folds of the fold's mean AUC), ``mean_tss``, ``sd_tss``, ``brier``, ``n_folds``, and
            ``pooled_auc`` with ``auc_low``/``auc_high``: the mean over all scored (fold, species)
            pairs and its bootstrap interval over them.
        per_species: one row per (fold, subset, species): ``auc`` with its DeLong interval
            (``auc_low``, ``auc_high``), ``tss``, ``brier``, ``n_presences``, ``n_absences``, ``thin``.
        workspaces: the fold workspaces, in fold order.
    """

    folds: pd.DataFrame
    summary: pd.DataFrame
    per_species: pd.DataFrame
    workspaces: list[Path]


def _fold_workspace(ws: Workspace, split: np.ndarray, path: Path, description: str) -> Workspace:
    """The fold's workspace: reused when it holds this very split, else (re)built."""
    if (path / "workspace.json").exists():
        existing = Workspace(path)
        same_plots = existing.plots["plot_id"].to_numpy().tolist() == ws.plots["plot_id"].to_numpy().tolist()
        if same_plots and np.array_equal(existing.plots["split"].to_numpy(), split):
            return existing
    return ws.with_split(split, path, description=description, force=True)


def cross_validate(
    workspace: Workspace | str | Path,
    *,
    folds: int = 5,
    config: RunConfig | None = None,
    subsets: Mapping[str, Sequence[str] | None] | None = None,
    block_size: float | None = None,
    val_fraction: float | None = None,
    seed: int = 42,
    out_dir: str | Path | None = None,
    stratify: bool = True,
    min_class: int = MIN_CLASS,
    keep_thin: bool = False,
    progress: bool = True,
) -> CrossValidation:
    """Spatial k-fold cross-validation of MaskSDM on a workspace (see the module docstring).

    Args:
        workspace: a prepared workspace.
        folds: number of folds (at least 2).
        config: the run config of every fold's model (default: the ``cpu`` preset's, as ``train``).
        subsets: predictor subsets to evaluate (default: each group alone, and all predictors).
        block_size: block size in degrees (default: the workspace's split block size, else 1).
        val_fraction: share of each fold's non-test plots used for validation (default: the
            workspace's, else 0.15).
        seed: seed of the fold assignment and of the validation blocks.
        out_dir: where the fold workspaces go (default ``<workspace>/cv``).
        stratify: deal blocks into folds (and validation blocks) so that each species' presences
            are shared evenly (:func:`~masksdm.data.splits.stratified_blocks`).
        min_class, keep_thin: a species with fewer than ``min_class`` presences or absences in a
            test fold is left out of that fold's means, unless ``keep_thin``
            (:func:`~masksdm.evaluation.subsets.evaluate`).
        progress: show progress bars.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    config = config or preset("cpu")
    split_meta = ws.meta.get("split", {})
    block_size = float(block_size or split_meta.get("block_size", 1.0))
    val_fraction = float(val_fraction or split_meta.get("val_fraction", 0.15))
    out = Path(out_dir) if out_dir is not None else ws.path / "cv"
    lon, lat = ws.plots["lon"].to_numpy(), ws.plots["lat"].to_numpy()
    labels = ws.presences() if stratify else None
    fold_of = spatial_folds(lon, lat, n_folds=folds, block_size=block_size, seed=seed, labels=labels)

    rows, frames, paths = [], [], []
    for k in range(folds):
        split = fold_split(fold_of, k, lon, lat, block_size=block_size, val_fraction=val_fraction, seed=seed + k,
                           labels=labels)
        fold_ws = _fold_workspace(ws, split, out / f"fold-{k}", f"spatial fold {k + 1} of {folds} (seed {seed})")
        run_dir = fold_ws.run_dir("main")
        ensure_trained(fold_ws, run_dir, config, progress=progress)
        model, card = load_checkpoint(run_dir)
        try:
            result = evaluate(model, card, fold_ws, split="test", subsets=subsets, min_class=min_class,
                              keep_thin=keep_thin)
        except DataError as err:
            raise DataError(f"fold {k + 1} of {folds}: {err}; or use fewer --folds") from None
        summary = result.summary.assign(fold=k, n_test=int((split == "test").sum()))
        rows.append(summary[["fold", "subset", "n_test", "n_species", "n_thin", "mean_auc", "auc_low", "auc_high",
                             "mean_tss", "brier"]])
        frames.append(result.per_species.assign(fold=k)[["fold", "subset", "species", "auc", "auc_low", "auc_high",
                                                         "tss", "brier", "n_presences", "n_absences", "thin"]])
        paths.append(fold_ws.path)
    table = pd.concat(rows, ignore_index=True)
    per_species = pd.concat(frames, ignore_index=True)
    grouped = table.groupby("subset", sort=False)
    summary = pd.DataFrame({
        "mean_auc": grouped["mean_auc"].mean(),
        "sd_auc": grouped["mean_auc"].std(ddof=1),
        "mean_tss": grouped["mean_tss"].mean(),
        "sd_tss": grouped["mean_tss"].std(ddof=1),
        "brier": grouped["brier"].mean(),
        "n_folds": grouped["fold"].nunique(),
    }).reset_index()
    counted = per_species if keep_thin else per_species[~per_species["thin"]]
    pooled = {name: mean_interval(g["auc"].to_numpy(dtype=float)) for name, g in counted.groupby("subset", sort=False)}
    summary["pooled_auc"] = summary["subset"].map(lambda s: pooled.get(s, (np.nan,) * 3)[0])
    summary["auc_low"] = summary["subset"].map(lambda s: pooled.get(s, (np.nan,) * 3)[1])
    summary["auc_high"] = summary["subset"].map(lambda s: pooled.get(s, (np.nan,) * 3)[2])
    return CrossValidation(table, summary, per_species, paths)
