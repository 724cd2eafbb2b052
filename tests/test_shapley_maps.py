"""Shapley maps: georeferenced like the input, additive, equal to the model, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from masksdm.cli import main
from masksdm.errors import ConfigError, DataError, OutputExistsError, RasterError
from masksdm.explain.maps import shapley_map
from masksdm.model.checkpoint import load_checkpoint

# 1-degree grid over the tiny workspace's plots (lon -5..25, lat 38..58)
TRANSFORM = Affine(1.0, 0.0, -5.0, 0.0, -1.0, 58.0)
HEIGHT, WIDTH = 20, 30


def _write(path, values, crs="EPSG:4326", transform=TRANSFORM, nodata=-9999.0):
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1], count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(np.where(np.isnan(values), nodata, values).astype("float32")[None])
    return path


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rasters")
    lat = 58.0 - 0.5 - np.arange(HEIGHT)[:, None] * np.ones((1, WIDTH))
    bio_1 = 20 - 0.6 * (lat - 38)
    bio_1[:3, :4] = np.nan  # "sea": no raster has data here
    soil = 6 + np.sin(np.arange(WIDTH) / 4)[None, :] * np.ones((HEIGHT, 1))
    soil[:3, :4] = np.nan
    _write(folder / "bio_1.tif", bio_1)
    _write(folder / "PHIHOX.tif", soil)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_run):
    return load_checkpoint(tiny_run)


def test_map_bands_add_up_to_the_model_prediction(tiny, rasters, tmp_path):
    model, card = tiny
    out = shapley_map(model, card, rasters, "Species 01", tmp_path / "map.tif", progress=False)
    with rasterio.open(out) as src, rasterio.open(rasters / "bio_1.tif") as ref:
        assert (src.crs, src.transform, src.shape) == (ref.crs, ref.transform, ref.shape)
        # Metadata (Releve_area) and Other (noise) are plot-level fields: masked on maps
        assert src.descriptions == ("base_value", "WorldClim", "SoilGrids", "Location", "prediction")
        bands = src.read().astype(np.float64)
    assert np.isnan(bands[:, :3, :4]).all() and np.isfinite(bands[:, 3:, :]).all()
    np.testing.assert_allclose(bands[0] + bands[1:4].sum(0), bands[4], atol=1e-5, equal_nan=True)

    # the prediction band is the model's probability with every map predictor visible
    rows, cols = np.array([5, 10, 19]), np.array([0, 17, 29])
    lon, lat = -5 + cols + 0.5, 58 - rows - 0.5
    raw = np.full((3, len(card.predictors)), np.nan, dtype=np.float32)
    names = card.predictor_names
    raw[:, names.index("bio_1")] = 20 - 0.6 * (lat - 38)
    raw[:, names.index("PHIHOX")] = 6 + np.sin(cols / 4)
    raw[:, names.index("Longitude")], raw[:, names.index("Latitude")] = lon, lat
    with torch.no_grad():
        p = torch.sigmoid(model(torch.as_tensor(card.features(raw)), collapse=False)[:, 1]).numpy()
    np.testing.assert_allclose(bands[4, rows, cols], p, atol=1e-5)

    # sampled estimates keep the additivity; with 3 players they are close to exact
    sampled = shapley_map(model, card, rasters, "Species 01", tmp_path / "sampled.tif", method="permutation",
                          max_evaluations=60, progress=False)
    with rasterio.open(sampled) as src:
        estimate = src.read().astype(np.float64)
    np.testing.assert_allclose(estimate[0] + estimate[1:4].sum(0), estimate[4], atol=1e-5, equal_nan=True)
    assert np.nanmax(np.abs(estimate - bands)) < 0.05


def test_map_errors_name_the_problem_and_write_nothing(tiny, rasters, tmp_path):
    model, card = tiny
    only_climate = tmp_path / "climate"
    only_climate.mkdir()
    (only_climate / "bio_1.tif").write_bytes((rasters / "bio_1.tif").read_bytes())
    with pytest.raises(RasterError, match=r"\['PHIHOX'\]"):
        shapley_map(model, card, only_climate, "Species 01", tmp_path / "a.tif", progress=False)
    assert not list(tmp_path.glob("*.tif*")) and not list(tmp_path.glob(".*"))
    # with fewer players the same rasters are enough
    shapley_map(model, card, only_climate, "Species 01", tmp_path / "a.tif", players=["WorldClim", "Location"],
                progress=False)
    with pytest.raises(ConfigError, match="Metadata"):
        shapley_map(model, card, rasters, "Species 01", tmp_path / "b.tif", players=["Metadata"], progress=False)
    with pytest.raises(DataError, match="did you mean 'Species 01'"):
        shapley_map(model, card, rasters, "Species 1", tmp_path / "b.tif", progress=False)
    with pytest.raises(OutputExistsError):
        shapley_map(model, card, rasters, "Species 01", tmp_path / "a.tif", progress=False)


def test_shapley_commands(tiny_run, tiny_workspace, rasters, tmp_path, capsys):
    ws = str(tiny_workspace.path)
    assert main(["shapley", "global", "--workspace", ws, "--run", "tiny", "--per-species", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "SoilGrids" in printed and "v(no predictor) = 50" in printed
    reports = tiny_workspace.path / "reports"
    import pandas as pd

    table = pd.read_csv(reports / "shapley_global_tiny_test_auc.csv")
    gap = table.groupby("species").apply(lambda t: t["value"].sum() - (t["full_value"] - t["base_value"]).iloc[0],
                                         include_groups=False)
    assert np.abs(gap).max() < 1e-9 and table["species"].nunique() == 8
    assert (reports / "shapley_global_tiny_test_auc.png").stat().st_size > 1000

    assert main(["shapley", "local", "--workspace", ws, "--run", "tiny", "--species", "Species 00",
                 "--sites", "10", "--quiet"]) == 0
    local = pd.read_parquet(reports / "shapley_local_tiny_test.parquet")
    assert len(local) == 10 * 5 and set(local["species"]) == {"Species 00"}
    assert (reports / "shapley_local_tiny_test_Species_00.png").exists()

    assert main(["shapley", "global", "--workspace", ws, "--run", "tiny", "--players", "predictors",
                 "--method", "permutation", "--max-evaluations", "200", "--metric", "probability", "--quiet"]) == 0
    assert "std_error" in capsys.readouterr().out

    out = tmp_path / "map.tif"
    assert main(["shapley", "map", "--checkpoint", str(tiny_run), "--rasters", str(rasters), "--species",
                 "Species 00", "--out", str(out), "--quiet"]) == 0
    assert out.exists() and out.with_suffix(".png").stat().st_size > 1000

    capsys.readouterr()
    assert main(["shapley", "local", "--workspace", ws, "--run", "tiny", "--species", "Specis 00", "--force"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'Species 00'" in err and len(err.strip().splitlines()) == 1
