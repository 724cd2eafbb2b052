"""Workspace preparation: spatial block split, train-only normalisation, errors."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_plot_data

from masksdm.data.plotdata import PlotData
from masksdm.data.splits import spatial_block_split
from masksdm.errors import DataError, OutputExistsError
from masksdm.workspace import Workspace, prepare_workspace


def test_block_split_keeps_blocks_whole_and_hits_fractions():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(0, 20, 5000), rng.uniform(40, 60, 5000)
    split = spatial_block_split(lon, lat, block_size=1.0, seed=3)
    blocks = pd.DataFrame({"b": np.floor(lon).astype(int) * 1000 + np.floor(lat).astype(int), "s": split})
    assert (blocks.groupby("b")["s"].nunique() == 1).all()
    shares = pd.Series(split).value_counts(normalize=True)
    assert 0.15 <= shares["test"] < 0.2 and 0.15 <= shares["val"] < 0.2
    assert not np.array_equal(split, spatial_block_split(lon, lat, block_size=1.0, seed=4))
    np.testing.assert_array_equal(split, spatial_block_split(lon, lat, block_size=1.0, seed=3))


def test_block_split_needs_blocks():
    with pytest.raises(DataError, match="block-size"):
        spatial_block_split(np.zeros(10), np.zeros(10), block_size=1.0)


def test_workspace_contents(tiny_workspace):
    ws = tiny_workspace
    assert ws.predictor_names[:2] == ["bio_1", "PHIHOX"]  # paper order first
    assert {p.name: p.group for p in ws.predictors}["noise"] == "Other"
    assert {p.name: p.group for p in ws.predictors}["Longitude"] == "Location"
    train = ws.raw_predictors("train")
    norm = ws.normalisation
    assert np.isclose(norm["bio_1"]["mean"], np.nanmean(train[:, 0]))
    assert not np.isclose(norm["bio_1"]["mean"], np.nanmean(ws.raw_predictors(None)[:, 0]))
    x = ws.features("train")
    assert abs(np.nanmean(x[:, 0])) < 1e-5 and x.dtype == np.float32
    assert np.isnan(x[:, ws.predictor_names.index("Releve_area")]).any()  # NaN kept for masking
    y = ws.labels()
    occ = ws.occurrences
    assert y.sum() == len(occ)
    counts = ws.species.set_index("species_id")
    assert (counts["n_train"] + counts["n_val"] + counts["n_test"] == counts["n_plots"]).all()


def test_existing_workspace_needs_force(tiny_workspace):
    with pytest.raises(OutputExistsError, match="--force"):
        prepare_workspace(make_plot_data(), tiny_workspace.path, progress=False)


def test_incomplete_workspace_is_refused(tmp_path):
    with pytest.raises(DataError, match="masksdm prepare"):
        Workspace(tmp_path)


def test_infinite_predictor_values_are_refused(tmp_path):
    data = make_plot_data(200)
    data.plots.loc[3, "noise"] = np.inf
    with pytest.raises(DataError, match="'noise' has 1 infinite"):
        prepare_workspace(data, tmp_path / "ws", block_size=2.0, progress=False)


def test_swapped_coordinates_are_refused(tmp_path):
    data = make_plot_data(200)
    data.plots["lon"] += 110  # East Asia: longitudes beyond 90 make a swap detectable
    plots = data.plots.rename(columns={"lon": "lat", "lat": "lon"})
    with pytest.raises(DataError, match="swapped"):
        prepare_workspace(PlotData(plots, data.occurrences), tmp_path / "ws", progress=False)


def test_labels_in_the_order_of_given_species(tiny_workspace):
    ws = tiny_workspace
    names = ws.species_names
    picked = [names[2], "Not a species", names[0]]
    y = ws.labels("test", picked)
    full = ws.labels("test")
    assert y.shape == (len(full), 3)
    np.testing.assert_array_equal(y[:, 0], full[:, 2])
    np.testing.assert_array_equal(y[:, 2], full[:, 0])
    assert not y[:, 1].any()
