"""A multiband stack of predictors (bands named by their descriptions) works like one file per
predictor: the same workspace, the same model inputs, the same maps."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import make_plot_data, tiny_config

from masksdm.data.plotdata import PlotData
from masksdm.data.rasters import find_rasters
from masksdm.maps.predict import predict_maps
from masksdm.model.checkpoint import load_checkpoint
from masksdm.model.training import train
from masksdm.workspace import prepare_workspace

# Over the fixture's plots (lon -5..25, lat 38..58), non-square cells.
TRANSFORM = Affine(1.0, 0.0, -6.0, 0.0, -0.8, 59.0)
HEIGHT, WIDTH = 29, 32
NODATA = -9999.0


def _layers() -> dict[str, np.ndarray]:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    bio = 22 - 0.5 * rows + (cols % 7) / 10
    soil = 4 + ((7 * rows + 3 * cols) % 40) / 10
    bio[0:2, 0:3] = soil[0:2, 0:3] = NODATA  # sea
    bio[12, 5] = NODATA  # only bio_1 is missing there
    return {"bio_1": bio.astype("float32"), "PHIHOX": soil.astype("float32")}


def _write(path, bands: list[np.ndarray], descriptions: list[str] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=HEIGHT, width=WIDTH, count=len(bands), dtype="float32",
                       crs="EPSG:4326", transform=TRANSFORM, nodata=NODATA) as dst:
        dst.write(np.stack(bands))
        for band, text in enumerate(descriptions or (), start=1):
            dst.set_band_description(band, text)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``singles/{bio_1,PHIHOX}.tif`` and ``stack/climate.tif`` (bands ``phihox``, ``bio1``)."""
    root = tmp_path_factory.mktemp("multiband")
    layers = _layers()
    for name, values in layers.items():
        _write(root / "singles" / f"{name}.tif", [values], None)
    _write(root / "stack" / "climate.tif", [layers["PHIHOX"], layers["bio_1"]], ["phihox", "bio1"])
    return root / "singles", root / "stack"


def _plots() -> PlotData:
    data = make_plot_data(500, seed=3)
    return PlotData(data.plots.drop(columns=["bio_1", "PHIHOX"]), data.occurrences, data.source)


def test_a_model_prepared_from_a_multiband_stack_maps_like_single_files(folders, tmp_path):
    singles, stack = folders
    assert sorted(find_rasters(stack)) == ["PHIHOX", "bio_1"]  # catalogue names of the descriptions
    one = prepare_workspace(_plots(), tmp_path / "singles_ws", rasters=find_rasters(singles), block_size=2.0,
                            progress=False)
    multi = prepare_workspace(_plots(), tmp_path / "stack_ws", rasters=find_rasters(stack), block_size=2.0,
                              progress=False)
    assert multi.predictors == one.predictors
    assert {p.name: p.group for p in multi.predictors if p.source == "raster"} == {"bio_1": "WorldClim",
                                                                                   "PHIHOX": "SoilGrids"}
    np.testing.assert_array_equal(multi.raw_predictors(), one.raw_predictors())
    assert multi.plots["bio_1"].notna().mean() > 0.9

    run = multi.run_dir("main")
    train(multi, run, config=tiny_config(epochs=3), progress=False)
    model, card = load_checkpoint(run)
    maps = {}
    for name, folder in (("stack", stack), ("singles", singles)):
        result = predict_maps(model, card, folder, tmp_path / name, layout="multiband", dtype="float32",
                              precision="fp32", progress=False)
        with rasterio.open(result.files[0]) as src:
            maps[name] = src.read()
    assert maps["stack"].shape == (len(card.species), HEIGHT, WIDTH)
    np.testing.assert_array_equal(maps["stack"], maps["singles"])
    assert np.isnan(maps["stack"][:, 0, 0]).all() and np.isfinite(maps["stack"][:, 12, 5]).all()
