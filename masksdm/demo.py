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

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.neighbors import KNeighborsRegressor

from masksdm._io import write_json, write_parquet, write_text
from masksdm.data.predictors import resolve_subset
from masksdm.data.rasters import find_rasters
from masksdm.data.splotopen import load_splotopen
from masksdm.errors import DataError, OutputExistsError
from masksdm.evaluation.subsets import default_subsets, evaluate
from masksdm.explain.games import global_shapley, local_shapley
from masksdm.metrics import mean_auc
from masksdm.model.checkpoint import CARD, ModelCard, load_checkpoint
from masksdm.model.config import RunConfig, preset
from masksdm.model.network import Network
from masksdm.model.training import train
from masksdm.sim.scenario import write_future_rasters
from masksdm.sim.simulate import WorldPaths, simulate_world
from masksdm.workspace import Workspace, prepare_workspace

__all__ = ["Demo", "DemoResult", "bayes_reference", "open_demo", "run_demo", "shapley_truth_check"]

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
    model: Network, card: ModelCard, workspace: Workspace, truth_dir: str | Path, *, split: str = "test"
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
class Demo:
    """A built demo: its virtual world, workspace and trained model.

    Attributes:
        root: the demo folder.
        world: where the world's files are (sPlotOpen tables, rasters, truth).
        workspace: the prepared workspace.
        run_dir: the trained model (``workspace/models/main``).
        reused: whether it was found already built with the same settings.
    """

    root: Path
    world: WorldPaths
    workspace: Workspace
    run_dir: Path
    reused: bool

    def load(self) -> tuple[Network, ModelCard]:
        """The trained model and its card."""
        return load_checkpoint(self.run_dir)

    @property
    def future_rasters(self) -> Path:
        """The world's rasters in a warmer, drier future (+2 degrees C, 10 % less rain; the
        delta method of :func:`masksdm.sim.scenario.write_future_rasters`)."""
        return self.world.root / "future_rasters"


@dataclass
class DemoResult:
    """Where the demo wrote everything, its summary table and the Shapley check on the truth."""

    root: Path
    workspace: Path
    run_dir: Path
    table: pd.DataFrame
    seconds: float
    shapley: dict[str, float]


_SETTINGS_FILE = "demo.json"


def _settings(seed: int, n_plots: int | None, n_species: int | None, resolution: float | None,
              extent: tuple[float, float, float, float] | None, plots_at: tuple[np.ndarray, np.ndarray] | None,
              config: RunConfig) -> dict:
    where = None
    if plots_at is not None:
        where = hashlib.sha256(np.round(np.asarray(plots_at, dtype=np.float64), 6).tobytes()).hexdigest()[:16]
    return {"seed": seed, "n_plots": n_plots, "n_species": n_species, "resolution": resolution,
            "extent": None if extent is None else [float(v) for v in extent], "plots_at": where, "config": config.to_dict()}


def open_demo(
    out_dir: str | Path = "masksdm-demo",
    *,
    seed: int = 0,
    n_plots: int | None = None,
    n_species: int | None = None,
    resolution: float | None = None,
    extent: tuple[float, float, float, float] | None = None,
    plots_at: tuple[np.ndarray, np.ndarray] | None = None,
    config: RunConfig | None = None,
    force: bool = False,
    progress: bool = True,
) -> Demo:
    """The demo under ``out_dir``: reused when built before with the same settings, else built.

    Building simulates the virtual world (:func:`masksdm.sim.simulate.simulate_world`), prepares a
    workspace and trains MaskSDM (``config``, default the ``cpu`` preset), replacing whatever an
    earlier build with other settings left there. ``masksdm demo`` builds the same thing and
    evaluates it; notebooks use this to start from a trained model in seconds when one exists.

    Args:
        out_dir: the demo folder.
        seed, n_plots, n_species, resolution, extent, plots_at: see :func:`masksdm.sim.simulate.simulate_world`
            (None: the demo scale's).
        config: run config (default: the ``cpu`` preset).
        force: build even when ``out_dir`` holds other files than an earlier demo's.
        progress: show progress bars.

    Raises:
        OutputExistsError: ``out_dir`` holds files that are not a demo's and ``force`` is false.
    """
    root = Path(out_dir)
    config = config or preset("cpu")
    wanted = _settings(seed, n_plots, n_species, resolution, extent, plots_at, config)
    world = WorldPaths.at(root / "world")
    run_dir = root / "workspace" / "models" / "main"
    settings_file = root / _SETTINGS_FILE
    if settings_file.is_file() and (run_dir / CARD).is_file():
        if json.loads(settings_file.read_text()) == json.loads(json.dumps(wanted)):
            log.info("reusing the demo built under %s", root)
            _future(world)
            return Demo(root, world, Workspace(root / "workspace"), run_dir, reused=True)
    if root.exists() and any(root.iterdir()) and not settings_file.is_file() and not force:
        raise OutputExistsError(f"'{root}' is not empty and holds no demo: choose another folder")
    settings_file.unlink(missing_ok=True)  # a half-built demo never looks finished
    world = simulate_world(world.root, seed=seed, n_plots=n_plots, n_species=n_species, resolution=resolution,
                           extent=extent, plots_at=plots_at, force=True, progress=progress)
    ws = prepare_workspace(load_splotopen(world.splotopen_dir), root / "workspace",
                           rasters=find_rasters(world.rasters_dir), seed=seed, force=True, progress=progress)
    train(ws, run_dir, config=config, force=True, progress=progress)
    _future(world)
    write_json(settings_file, wanted)
    return Demo(root, world, ws, run_dir, reused=False)


#: The demo's future climate: degrees C of warming and relative change of rain.
FUTURE_WARMING, FUTURE_RAIN = 2.0, -0.1


def _future(world: WorldPaths) -> Path:
    """The demo world's future climate (``world/future_rasters``), written once
    (:func:`masksdm.sim.scenario.write_future_rasters`)."""
    out = world.root / "future_rasters"
    if not (out / "worldclim" / "bio_1.tif").is_file():
        write_future_rasters(world.rasters_dir, out, warming=FUTURE_WARMING, rain_change=FUTURE_RAIN, force=True)
    return out


def run_demo(
    out_dir: str | Path = "masksdm-demo",
    *,
    seed: int = 0,
    n_plots: int | None = None,
    n_species: int | None = None,
    resolution: float | None = None,
    config: RunConfig | None = None,
    force: bool = False,
    progress: bool = True,
) -> DemoResult:
    """Simulate, prepare, train and evaluate; returns the per-subset table (also written to reports/)."""
    start = time.perf_counter()
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()) and not force:
        raise OutputExistsError(f"'{root}' is not empty: pass --force to rebuild the demo there, or --out DIR")
    if force:
        (root / _SETTINGS_FILE).unlink(missing_ok=True)  # rebuild: an earlier demo there is not reused
    demo = open_demo(root, seed=seed, n_plots=n_plots, n_species=n_species, resolution=resolution,
                     config=config, force=force, progress=progress)
    ws, run_dir = demo.workspace, demo.run_dir
    model, card = demo.load()
    subsets = default_subsets(card)
    evaluation = evaluate(model, card, ws, subsets=subsets)
    bayes = bayes_reference(ws, demo.world.truth_dir, subsets)
    table = evaluation.summary[["subset", "n_predictors", "n_species", "mean_auc", "mean_tss"]].copy()
    table.insert(4, "bayes_auc", [bayes[s] for s in table["subset"]])
    reports = ws.path / "reports"
    write_text(reports / "demo.csv", table.to_csv(index=False))
    write_parquet(reports / "demo_per_species.parquet", evaluation.per_species)
    shares, per_species = shapley_truth_check(model, card, ws, demo.world.truth_dir)
    write_text(reports / "demo_shapley_truth.csv", per_species.to_csv(index=False))
    return DemoResult(root=root, workspace=ws.path, run_dir=run_dir, table=table,
                      seconds=time.perf_counter() - start, shapley=shares)
