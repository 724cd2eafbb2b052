"""open_demo builds once and reuses; the virtual world takes plots at given places."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from masksdm.demo import open_demo
from masksdm.errors import ConfigError, OutputExistsError
from masksdm.sim.simulate import simulate_world
from tests.conftest import tiny_config

SMALL = dict(n_plots=300, n_species=6, resolution=1.0)


def test_open_demo_builds_once_then_reuses_and_rebuilds_on_other_settings(tmp_path):
    config = tiny_config(epochs=1)
    first = open_demo(tmp_path / "demo", config=config, progress=False, **SMALL)
    assert not first.reused and (first.run_dir / "model.safetensors").is_file()
    model, card = first.load()
    assert len(card.species) == len(first.workspace.species_names) and card.config == config
    stamp = (first.run_dir / "model.safetensors").stat().st_mtime_ns
    again = open_demo(tmp_path / "demo", config=config, progress=False, **SMALL)
    assert again.reused and (again.run_dir / "model.safetensors").stat().st_mtime_ns == stamp
    other = open_demo(tmp_path / "demo", config=tiny_config(epochs=2), progress=False, **SMALL)
    assert not other.reused and other.load()[1].config.train.epochs == 2
    bigger = open_demo(tmp_path / "demo", config=config, progress=False, **{**SMALL, "n_plots": 400})
    assert not bigger.reused and len(bigger.workspace.plots) == 400


def test_open_demo_refuses_a_folder_that_holds_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="holds no demo"):
        open_demo(tmp_path, config=tiny_config(epochs=1), progress=False, **SMALL)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_plots_at_adds_plots_at_those_places_as_one_dataset(tmp_path):
    lon, lat = np.array([10.25, 2.35, 16.37]), np.array([47.5, 48.85, 48.2])
    world = simulate_world(tmp_path / "w", plots_at=(lon, lat), progress=False, **SMALL)
    header = pd.read_csv(world.splotopen_dir / "sPlotOpen_header.txt", sep="\t")
    assert len(header) == 303
    tail = header.tail(3)
    np.testing.assert_allclose(tail["Longitude"], lon)
    np.testing.assert_allclose(tail["Latitude"], lat)
    assert tail["Dataset"].nunique() == 1 and not set(tail["Dataset"]) & set(header["Dataset"][:300])
    with pytest.raises(ConfigError, match="1 of the 2 plots_at places are off land"):
        simulate_world(tmp_path / "sea", plots_at=(np.array([10.25, -20.0]), np.array([47.5, 45.0])),
                       progress=False, **SMALL)
