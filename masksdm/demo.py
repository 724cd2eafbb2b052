"""The end-to-end demo on the virtual world, and Bayes-optimal references from its known truth.

``masksdm demo`` simulates the virtual world, prepares a workspace, trains MaskSDM with the ``cpu``
preset, evaluates it on every predictor group alone and on all predictors, and prints its test mean
AUC beside the Bayes-optimal AUC of the virtual truth. It then computes exact Shapley values of the
predictor groups and reports how often the top group is one that truly drives the species.

The Bayes-optimal AUC with ALL predictors is the AUC of the true presence probabilities. With a
group alone it is the AUC of E[p | group], which no formula gives; it is estimated by a k-nearest-
neighbour regression of the true probabilities on that group over the training and validation plots
(so it is an estimate, marked with "~").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.neighbors import KNeighborsRegressor

from masksdm._io import write_parquet, write_text
from masksdm.checkpoint import ModelCard, load_checkpoint
from masksdm.config import RunConfig, preset
from masksdm.errors import DataError, OutputExistsError
from masksdm.evaluation import default_subsets, evaluate
from masksdm.metrics import mean_auc
from masksdm.model import MaskSDM
from masksdm.predictors import resolve_subset
from masksdm.rasters import find_rasters
from masksdm.shapley import global_shapley, local_shapley
from masksdm.simulate import simulate_world
from masksdm.splotopen import load_splotopen
from masksdm.training import train
from masksdm.workspace import Workspace, prepare_workspace

__all__ = ["DemoResult", "bayes_reference", "run_demo", "shapley_truth_check"]

log = logging.getLogger(__name__)


def bayes_reference(
    workspace: Workspace,
    truth_dir: str | Path,
    subsets: Mapping[str, Sequence[str] | None],
    *,
    split: str = "test",
    k: int = 25,
) -> dict[str, float]:
    """Mean AUC over evaluable species of the true probabilities (``all``) or of E[p | subset]."""
    path = Path(truth_dir) / "probability.parquet"
    if not path.is_file():
        raise DataError(f"no true probabilities at '{path}': simulate a world small enough to store them")
    truth = pd.read_parquet(path).set_index("PlotObservationID")
    species = workspace.species_names
    plots = workspace.plots
    p_true = truth.loc[plots["plot_id"].to_numpy(), species].to_numpy(dtype=np.float64)
    in_split = workspace.split_mask(split)
    fit_rows = ~in_split & (plots["split"] != "test").to_numpy()
    y = workspace.labels(split)
    x = np.nan_to_num(workspace.features(None), nan=0.0)
    out = {}
    for name, subset in subsets.items():
        if subset is None:
            scores = p_true[in_split]
        else:
            cols = resolve_subset(subset, workspace.predictors)
            knn = KNeighborsRegressor(n_neighbors=k).fit(x[fit_rows][:, cols], p_true[fit_rows])
            scores = knn.predict(x[in_split][:, cols])
        out[name] = mean_auc(scores, y)
    return out


def shapley_truth_check(
    model: MaskSDM, card: ModelCard, workspace: Workspace, truth_dir: str | Path, *, split: str = "test"
) -> tuple[dict[str, float], pd.DataFrame]:
    """How often exact Shapley values of the predictor groups single out the true drivers.

    Global: per species, the group with the largest Shapley value on its test AUC. Local: per test
    plot and species, the group with the largest absolute Shapley value on the probability. Each
    is compared with the species' true driver groups (``truth/species.csv``, strongest first).

    Returns:
        Shares ``global_top_is_strongest``, ``global_top_is_a_driver``, ``local_top_is_strongest``
        and ``local_top_is_a_driver``, and one row per species (its drivers and global values).
    """
    truth = pd.read_csv(Path(truth_dir) / "species.csv").set_index("species")
    x, y = workspace.features(split), workspace.labels(split)
    result, species = global_shapley(model, card, x, y, per_species=True)
    players = np.array(result.players)
    drivers = [d.split(";") for d in truth.loc[species, "driver_groups"]]
    top = players[result.values.argmax(axis=1)]
    local = local_shapley(model, card, x, species)
    local_top = players[np.abs(local.values).argmax(axis=2)]  # (plots, species)
    strongest = np.array([d[0] for d in drivers])
    is_driver = np.array([[g in d for g in players] for d in drivers])  # (species, groups)
    local_idx = np.abs(local.values).argmax(axis=2)
    shares = {
        "global_top_is_strongest": float(np.mean(top == strongest)),
        "global_top_is_a_driver": float(np.mean(is_driver[np.arange(len(species)), result.values.argmax(axis=1)])),
        "local_top_is_strongest": float(np.mean(local_top == strongest[None, :])),
        "local_top_is_a_driver": float(np.mean(is_driver[np.arange(len(species))[None, :], local_idx])),
        "chance": 1 / len(players),
    }
    table = pd.DataFrame({"species": species, "driver_groups": truth.loc[species, "driver_groups"].to_numpy(),
                          "top_group": top})
    for j, g in enumerate(result.players):
        table[f"shapley_auc_{g}"] = result.values[:, j]
    return shares, table


@dataclass
class DemoResult:
    """Where the demo wrote everything, its summary table and the Shapley check on the truth."""

    root: Path
    workspace: Path
    run_dir: Path
    table: pd.DataFrame
    seconds: float
    shapley: dict[str, float]


def run_demo(
    out_dir: str | Path = "masksdm-demo",
    *,
    seed: int = 0,
    n_plots: int | None = None,
    n_species: int | None = None,
    config: RunConfig | None = None,
    force: bool = False,
    progress: bool = True,
) -> DemoResult:
    """Simulate, prepare, train and evaluate; returns the per-subset table (also written to reports/)."""
    start = time.perf_counter()
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()) and not force:
        raise OutputExistsError(f"'{root}' is not empty: pass --force to rebuild the demo there, or --out DIR")
    config = config or preset("cpu")
    world = simulate_world(root / "world", seed=seed, n_plots=n_plots, n_species=n_species, force=force, progress=progress)
    data = load_splotopen(world.splotopen_dir)
    ws = prepare_workspace(
        data, root / "workspace", rasters=find_rasters(world.rasters_dir), seed=seed, force=force, progress=progress
    )
    run_dir = ws.models_dir() / "main"
    train(ws, run_dir, config=config, force=force, progress=progress)
    model, card = load_checkpoint(run_dir)
    subsets = default_subsets(card)
    evaluation = evaluate(model, card, ws, subsets=subsets)
    bayes = bayes_reference(ws, world.truth_dir, subsets)
    table = evaluation.summary[["subset", "n_predictors", "n_species", "mean_auc", "mean_tss"]].copy()
    table.insert(4, "bayes_auc", [bayes[s] for s in table["subset"]])
    reports = ws.path / "reports"
    write_text(reports / "demo.csv", table.to_csv(index=False))
    write_parquet(reports / "demo_per_species.parquet", evaluation.per_species)
    shares, per_species = shapley_truth_check(model, card, ws, world.truth_dir)
    write_text(reports / "demo_shapley_truth.csv", per_species.to_csv(index=False))
    return DemoResult(root=root, workspace=ws.path, run_dir=run_dir, table=table,
                      seconds=time.perf_counter() - start, shapley=shares)
