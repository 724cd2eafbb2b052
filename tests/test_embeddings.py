"""Embedding inputs end to end: stored per plot, one masked token in training, a Shapley player,
and a multiband raster on maps. The vectors here are synthetic (informative by construction)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from masksdm.data.embeddings import align_embeddings, read_embeddings, write_embeddings
from masksdm.data.predictors import EMBEDDING, Predictor
from masksdm.errors import DataError, RasterError
from masksdm.evaluation.subsets import subset_logits
from masksdm.metrics import mean_auc
from masksdm.model.checkpoint import load_checkpoint
from masksdm.workspace import prepare_workspace
from tests.conftest import make_plot_data, tiny_config

WIDTH = 6


def _vectors(plots, rng):
    """Environment seen from above: temperature and soil, plus noise dimensions."""
    temp, soil = plots["bio_1"].to_numpy(), plots["PHIHOX"].to_numpy()
    cols = [temp / 5, soil - 6] + [rng.normal(0, 1, len(plots)) for _ in range(WIDTH - 2)]
    return (np.stack(cols, axis=1) + rng.normal(0, 0.1, (len(plots), WIDTH))).astype(np.float32)


@pytest.fixture(scope="module")
def sat_workspace(tmp_path_factory):
    ws = prepare_workspace(make_plot_data(seed=3), tmp_path_factory.mktemp("sat") / "ws", block_size=2.0, seed=0, progress=False)
    plots = ws.plots
    rng = np.random.default_rng(0)
    available = rng.random(len(plots)) < 0.8
    write_embeddings(ws.path / "embeddings" / "sat.parquet", plots["plot_id"], _vectors(plots, rng), available,
                     metadata={"encoder": "synthetic"})
    ws.add_embedding(Predictor("sat", "Satellite", EMBEDDING, width=WIDTH))
    return ws, available


@pytest.fixture(scope="module")
def sat_run(sat_workspace):
    from masksdm.model.training import train

    ws, _ = sat_workspace
    run_dir = ws.path / "models" / "sat"
    train(ws, run_dir, config=tiny_config(epochs=40), progress=False)
    return run_dir


def test_embeddings_file_round_trip(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = write_embeddings(tmp_path / "e.parquet", [10, 11, 12, 13], vectors, np.array([True, False, True, True]),
                            ["ok", "nodata: 10% valid pixels", "ok", "ok"], metadata={"bands": "B02,B03"})
    table, read, meta = read_embeddings(path)
    assert table["status"].tolist()[1].startswith("nodata")
    assert meta == {"bands": "B02,B03"}
    np.testing.assert_array_equal(read[[0, 2, 3]], vectors[[0, 2, 3]])
    assert np.isnan(read[1]).all()
    aligned = align_embeddings(path, [13, 99, 10])  # plot 99 has no row: NaN
    np.testing.assert_array_equal(aligned[0], vectors[3])
    assert np.isnan(aligned[1]).all()
    np.testing.assert_array_equal(aligned[2], vectors[0])


def test_workspace_lists_the_embedding_last_with_its_width(sat_workspace):
    ws, available = sat_workspace
    assert ws.predictors[-1] == Predictor("sat", "Satellite", EMBEDDING, width=WIDTH)
    x = ws.features()
    assert x.shape == (len(ws.plots), len(ws.predictors) - 1 + WIDTH)
    assert np.isnan(x[~available, -WIDTH:]).all() and not np.isnan(x[available, -WIDTH:]).any()
    with pytest.raises(DataError, match="already a predictor"):
        ws.add_embedding(Predictor("bio_1", "Satellite", EMBEDDING, width=3))


def test_the_embedding_is_one_masked_token_that_carries_the_environment(sat_workspace, sat_run):
    ws, _ = sat_workspace
    model, card = load_checkpoint(sat_run)
    assert card.d_embeddings == (WIDTH,) and model.n_tokens == len(card.predictors)
    x, y = ws.features("test"), ws.labels("test")
    satellite_only = mean_auc(subset_logits(model, card, x, ["Satellite"]), y)
    nothing = mean_auc(subset_logits(model, card, x, ["none"]), y)
    assert nothing == pytest.approx(0.5, abs=0.02)  # every token masked: one prediction for all
    assert satellite_only > 0.56  # the vector alone ranks the plots


def test_satellite_is_one_shapley_player(sat_workspace, sat_run):
    from masksdm.explain.games import global_shapley

    ws, _ = sat_workspace
    model, card = load_checkpoint(sat_run)
    result, _ = global_shapley(model, card, ws.features("test"), ws.labels("test"))
    assert "Satellite" in result.players
    assert result.values[result.players.index("Satellite")] > 0
    assert result.efficiency_gap() < 1e-6


def _raster(path, values, transform):
    values = np.atleast_3d(values.T).T if values.ndim == 2 else values
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[1], width=values.shape[2], count=len(values),
                       dtype="float32", crs="EPSG:4326", transform=transform, nodata=np.nan) as dst:
        dst.write(values.astype("float32"))


def test_maps_read_the_embedding_raster(sat_run, tmp_path):
    from masksdm.maps.predict import predict_maps

    model, card = load_checkpoint(sat_run)
    transform = Affine(0.5, 0.0, -5.0, 0.0, -0.5, 58.0)
    rng = np.random.default_rng(1)
    folder = tmp_path / "rasters"
    folder.mkdir()
    _raster(folder / "bio_1.tif", rng.normal(10, 4, (1, 40, 60)), transform)
    _raster(folder / "PHIHOX.tif", rng.normal(6, 1, (1, 40, 60)), transform)
    emb = rng.normal(0, 1, (WIDTH, 40, 60))
    emb[:, :10] = np.nan  # no imagery in the north
    _raster(folder / "sat.tif", emb, transform)
    with_sat = predict_maps(model, card, folder, tmp_path / "with", layout="multiband", dtype="float32",
                            precision="fp32", progress=False)
    (folder / "sat.tif").unlink()
    without = predict_maps(model, card, folder, tmp_path / "without", layout="multiband", dtype="float32",
                           precision="fp32", progress=False)
    with rasterio.open(with_sat.files[0]) as a, rasterio.open(without.files[0]) as b:
        pa, pb = a.read(), b.read()
    np.testing.assert_allclose(pa[:, :10], pb[:, :10], atol=1e-5)  # no imagery there: masked as when absent
    assert np.abs(pa[:, 10:] - pb[:, 10:]).max() > 1e-3  # the satellite token changes the rest
    _raster(folder / "sat.tif", emb[:3], transform)
    with pytest.raises(RasterError, match="3 band"):
        predict_maps(model, card, folder, tmp_path / "wrong", progress=False)
