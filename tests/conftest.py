"""Shared fixtures: tiny workspaces and trained runs built in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from masksdm.data.plotdata import PlotData
from masksdm.model.config import ModelConfig, RunConfig, TrainConfig

SHARED_GREECE = Path(__file__).resolve().parents[2] / "shared" / "data" / "splotopen_greece"


def make_plot_data(n_plots: int = 600, n_species: int = 8, seed: int = 0) -> PlotData:
    """Plots over Europe with 4 table predictors; species respond to ``temp`` and ``soil``."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-5, 25, n_plots)
    lat = rng.uniform(38, 58, n_plots)
    temp = 20 - 0.6 * (lat - 38) + rng.normal(0, 1, n_plots)
    soil = rng.normal(6, 1, n_plots)
    area = np.where(rng.random(n_plots) < 0.3, np.nan, rng.lognormal(4, 1, n_plots))
    noise = rng.normal(0, 1, n_plots)
    plots = pd.DataFrame(
        {"plot_id": np.arange(1000, 1000 + n_plots), "lon": lon, "lat": lat,
         "bio_1": temp, "PHIHOX": soil, "Releve_area": area, "noise": noise}
    )
    records = []
    for s in range(n_species):
        driver = temp if s % 2 == 0 else soil
        opt = np.quantile(driver, 0.2 + 0.6 * s / max(n_species - 1, 1))
        logit = 1.0 - ((driver - opt) / driver.std()) ** 2 * 2
        present = rng.random(n_plots) < 1 / (1 + np.exp(-logit))
        records.append(pd.DataFrame({"plot_id": plots["plot_id"][present], "species": f"Species {s:02d}"}))
    occ = pd.concat(records, ignore_index=True)
    return PlotData(plots=plots, occurrences=occ, source="test fixture")


def tiny_config(**train: object) -> RunConfig:
    base = dict(epochs=4, batch_size=64, eval_batch_size=512, lr=3e-3, warmup_steps=5, patience=0, seed=1, device="cpu")
    base.update(train)
    return RunConfig(
        model=ModelConfig(d_token=16, n_blocks=1, n_heads=2, n_frequencies=4, dropout=0.0),
        train=TrainConfig(**base),  # type: ignore[arg-type]
        preset="cpu",
    )


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory):
    from masksdm.workspace import prepare_workspace

    out = tmp_path_factory.mktemp("ws")
    return prepare_workspace(make_plot_data(), out / "workspace", block_size=2.0, seed=0, progress=False)


@pytest.fixture(scope="session")
def tiny_run(tiny_workspace):
    from masksdm.model.training import train

    run_dir = tiny_workspace.path / "models" / "tiny"
    train(tiny_workspace, run_dir, config=tiny_config(epochs=12), progress=False)
    return run_dir


@pytest.fixture(scope="session")
def ben_dir(tmp_path_factory) -> Path:
    """Real Sentinel-2 L2A and Sentinel-1 patches (six each, BigEarthNet v1) shipped by the
    ``bigearthnet-common`` package, extracted once per session into ``BigEarthNet-S2-Example``
    and ``BigEarthNet-S1-Example``."""
    from foundation_encoders.examples import bigearthnet_examples
    from foundation_encoders.imagery import ImageryError

    root = tmp_path_factory.mktemp("bigearthnet")
    try:
        for sensor in ("S2", "S1"):
            bigearthnet_examples(root, sensor)
    except ImageryError as err:
        pytest.skip(str(err))
    return root


@pytest.fixture(scope="session")
def map_workspace(tmp_path_factory):
    """A small virtual world in the real formats (rasters at 0.5 degrees) with a trained model:
    what the dashboard opens."""
    from masksdm.data.rasters import find_rasters
    from masksdm.data.splotopen import load_splotopen
    from masksdm.model.training import train
    from masksdm.sim.simulate import simulate_world
    from masksdm.workspace import prepare_workspace

    root = tmp_path_factory.mktemp("map_world")
    world = simulate_world(root / "world", n_plots=800, n_species=25, resolution=0.5, progress=False)
    ws = prepare_workspace(load_splotopen(world.splotopen_dir), root / "workspace",
                           rasters=find_rasters(world.rasters_dir), progress=False)
    train(ws, ws.models_dir() / "main", config=tiny_config(epochs=30, patience=0), progress=False)
    return ws
