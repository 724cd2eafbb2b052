"""Range maps: on the input grid, equal to the model, bounded in memory, resumable, never truncated."""

from __future__ import annotations

import copy
import dataclasses
import errno
import json
import logging
import os
import shutil
import sys
import tracemalloc

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import torch
from affine import Affine
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate

from masksdm.cli import main
from masksdm.errors import ConfigError, DataError, DiskFullError, OutputExistsError, RasterError
from masksdm.maps import predict as prediction
from masksdm.maps import writer
from masksdm.maps.predict import predict_maps
from masksdm.metrics import max_tss
from masksdm.model.checkpoint import load_checkpoint, save_checkpoint, sha256_file
from masksdm.model.inference import predict_proba

# Non-square cells over the tiny workspace's plots (lon -5..25, lat 37..57): a swapped axis, a
# half-cell shift or a flip changes the values the model sees, so the value tests catch them.
TRANSFORM = Affine(1.0, 0.0, -5.0, 0.0, -0.8, 57.0)
HEIGHT, WIDTH = 25, 30
SEA = (slice(0, 3), slice(0, 4))  # no raster has data: nodata in every output
BIO_GAP = (12, 5)  # only bio_1 is missing: predicted with bio_1 masked
SPECIES = [f"Species {i:02d}" for i in range(8)]
DTYPES = {"uint8": (254, 255), "uint16": (65_534, 65_535), "float32": (None, None)}  # top code, nodata
ALL = ("probability", "binary", "richness")


def _bio_1(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return 8 + (rows * 1000 + cols) / 2100  # encodes the cell: 8..19.5 degC


def _phihox(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return 4 + ((7 * rows + 3 * cols) % 40) / 10


def _write(path, values, *, crs="EPSG:4326", transform=TRANSFORM, nodata=-9999.0):
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1], count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(np.where(np.isnan(values), nodata, values).astype("float32")[None])
    return path


def _write_stack(folder, *, height=HEIGHT, width=WIDTH, transform=TRANSFORM, crs="EPSG:4326", sea=True):
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:height, 0:width]
    bio, soil = _bio_1(rows, cols), _phihox(rows, cols)
    if sea:
        bio[SEA] = soil[SEA] = np.nan
        bio[BIO_GAP] = np.nan
    _write(folder / "bio_1.tif", bio, crs=crs, transform=transform)
    _write(folder / "PHIHOX.tif", soil, crs=crs, transform=transform)
    return folder


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    return _write_stack(tmp_path_factory.mktemp("rasters"))


@pytest.fixture(scope="module")
def tiny(tiny_run):
    return load_checkpoint(tiny_run)


def _model_probabilities(model, card, *, masked=(), lonlat=None, transform=TRANSFORM, shape=(HEIGHT, WIDTH)):
    """(H, W, S) probabilities of every cell, computed without the map code: raw predictors from the
    formulas (float32, as the rasters store them), NaN for plot-level and masked predictors, the
    model's NaN masking on the full token sequence."""
    rows, cols = (a.ravel() for a in np.mgrid[0 : shape[0], 0 : shape[1]])
    x, y = transform.c + (cols + 0.5) * transform.a, transform.f + (rows + 0.5) * transform.e
    lon, lat = (x, y) if lonlat is None else lonlat(x, y)
    names = card.predictor_names
    raw = np.full((len(rows), len(names)), np.nan, dtype=np.float32)
    raw[:, names.index("bio_1")] = _bio_1(rows, cols).astype(np.float32)
    raw[:, names.index("PHIHOX")] = _phihox(rows, cols).astype(np.float32)
    raw[:, names.index("Longitude")], raw[:, names.index("Latitude")] = lon, lat
    if shape == (HEIGHT, WIDTH):
        raw[np.ravel_multi_index(BIO_GAP, shape), names.index("bio_1")] = np.nan
    for name in masked:
        raw[:, names.index(name)] = np.nan
    with torch.no_grad():
        logits = model(torch.as_tensor(card.features(raw)), collapse=False)
    return torch.sigmoid(logits).numpy().astype(np.float64).reshape(*shape, -1)


def _decoded(path):
    """Bands as a reader gets them: value x scale + offset in float64, NaN at nodata."""
    with rasterio.open(path) as src:
        values = src.read(masked=True).astype(np.float64)
        scales, offsets = np.array(src.scales), np.array(src.offsets)
    return (values * scales[:, None, None] + offsets[:, None, None]).filled(np.nan)


def _read(path):
    with rasterio.open(path) as src:
        return src.read()


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _sea_mask(*, soil: bool = True):
    """Cells without data in any raster the map reads (bio_1's gap too when PHIHOX is not read)."""
    sea = np.zeros((HEIGHT, WIDTH), bool)
    sea[SEA] = True
    sea[BIO_GAP] = not soil
    return sea


# --- 1-2. grid, metadata and values ----------------------------------------------------------

@pytest.mark.parametrize("dtype", list(DTYPES))
def test_probability_maps_keep_the_grid_and_equal_the_model(tiny, tiny_run, rasters, tmp_path, dtype):
    model, card = tiny
    out = tmp_path / "maps"
    result = predict_maps(model, card, rasters, out, dtype=dtype, threshold="0.4", run_dir=tiny_run, progress=False)
    assert _files(out) == [f"probability/Species_{i:02d}.tif" for i in range(8)]
    assert [p.relative_to(out).as_posix() for p in result.files] == _files(out)
    top, nodata = DTYPES[dtype]
    expected = _model_probabilities(model, card)
    sea = _sea_mask()
    with rasterio.open(rasters / "bio_1.tif") as ref:
        grid = (ref.crs, ref.transform, ref.width, ref.height)
    for j, species in enumerate(SPECIES):
        path = out / "probability" / f"Species_{j:02d}.tif"
        valid, errors, _ = cog_validate(str(path), quiet=True)
        assert valid and not errors, errors
        with rasterio.open(path) as src:
            assert (src.crs, src.transform, src.width, src.height) == grid
            assert src.count == 1 and src.dtypes == (dtype,)
            assert src.descriptions == (species,)
            tags, band_tags = src.tags(), src.tags(1)
            if top is None:
                assert np.isnan(src.nodata) and src.scales == (1.0,) and src.offsets == (0.0,)
            else:
                assert src.nodata == nodata and src.scales == (1 / top,) and src.offsets == (0.0,)
            stored = src.read(1)
        assert tags["species"] == band_tags["species"] == species
        assert tags["threshold_rule"] == "0.4" and float(tags["threshold"]) == float(band_tags["threshold"]) == 0.4
        assert tags["predictors_used"] == "bio_1,PHIHOX,Longitude,Latitude"
        assert tags["predictors_masked"] == "Releve_area,noise"
        assert tags["model_sha256"] == sha256_file(tiny_run / "model.safetensors") and tags["output"] == "probability"

        decoded = _decoded(path)[0]
        assert np.isnan(decoded[sea]).all() and np.isfinite(decoded[~sea]).all()
        if top is None:
            assert np.isnan(stored[sea]).all()
            np.testing.assert_allclose(decoded[~sea], expected[..., j][~sea], rtol=0, atol=1e-5)
        else:
            assert (stored[sea] == nodata).all() and stored[~sea].max() <= top
            # within half a quantisation step (+ float noise between the two model paths)
            np.testing.assert_allclose(decoded[~sea], expected[..., j][~sea], rtol=0, atol=0.5 / top + 2e-6)


def test_projected_grid_keeps_its_crs_and_cell_coordinates(tiny, tmp_path):
    """On an equal-area grid (EPSG:3035), Longitude/Latitude are the cell centres in WGS84."""
    model, card = tiny
    transform = Affine(100_000.0, 0.0, 2_900_000.0, 0.0, -80_000.0, 3_900_000.0)
    folder = _write_stack(tmp_path / "laea", height=12, width=14, transform=transform, crs="EPSG:3035", sea=False)
    out = tmp_path / "maps"
    predict_maps(model, card, folder, out, species=["Species 03"], dtype="float32", layout="multiband",
                 progress=False)
    to_wgs84 = Transformer.from_crs("EPSG:3035", "EPSG:4326", always_xy=True)
    expected = _model_probabilities(model, card, lonlat=lambda x, y: to_wgs84.transform(x, y), transform=transform,
                                    shape=(12, 14))
    with rasterio.open(out / "probability.tif") as src, rasterio.open(folder / "bio_1.tif") as ref:
        assert src.crs == ref.crs and src.crs.to_epsg() == 3035
        assert (src.transform, src.shape) == (ref.transform, ref.shape)
        np.testing.assert_allclose(src.read(1), expected[..., 3], atol=1e-5)


# --- 3. predictor subsets ------------------------------------------------------------------------

def test_use_and_mask_choose_the_predictors(tiny, rasters, tmp_path):
    model, card = tiny
    expected = _model_probabilities(model, card, masked=["PHIHOX"])
    sea = _sea_mask(soil=False)
    maps = {}
    for name, options in {"mask": dict(mask=["SoilGrids"]), "use": dict(use=["WorldClim", "Location"])}.items():
        out = tmp_path / name
        predict_maps(model, card, rasters, out, dtype="float32", layout="multiband", progress=False, **options)
        with rasterio.open(out / "probability.tif") as src:
            assert src.tags()["predictors_used"] == "bio_1,Longitude,Latitude"
            assert src.tags()["predictors_masked"] == "PHIHOX,Releve_area,noise"
            maps[name] = src.read()
        assert np.isnan(maps[name][:, sea]).all()
        np.testing.assert_allclose(np.moveaxis(maps[name], 0, -1)[~sea], expected[~sea], atol=1e-5)
    np.testing.assert_array_equal(maps["mask"], maps["use"])
    # plot-level predictors (releve area) have no raster: a map cannot use them
    with pytest.raises(ConfigError, match="plot-level"):
        predict_maps(model, card, rasters, tmp_path / "meta", use=["Metadata"], progress=False)
    assert not (tmp_path / "meta").exists()


def test_a_missing_raster_is_named_with_the_fix(tiny, rasters, tmp_path):
    model, card = tiny
    folder = tmp_path / "climate"
    folder.mkdir()
    (folder / "bio_1.tif").write_bytes((rasters / "bio_1.tif").read_bytes())
    out = tmp_path / "maps"
    with pytest.raises(RasterError, match=r"\['PHIHOX'\].*--mask PHIHOX"):
        predict_maps(model, card, folder, out, progress=False)
    assert not out.exists()
    predict_maps(model, card, folder, out, mask=["SoilGrids"], layout="multiband", dtype="float32", progress=False)
    expected = _model_probabilities(model, card, masked=["PHIHOX"])
    sea = _sea_mask(soil=False)
    np.testing.assert_allclose(np.moveaxis(_read(out / "probability.tif"), 0, -1)[~sea], expected[~sea], atol=1e-5)


# --- 4. thresholds and binary maps ---------------------------------------------------------------

def _check_binary(out, n_species=8, layout="per-species"):
    """Binary maps are exactly (decoded probability >= threshold tag), 255 at nodata; returns the
    thresholds from the tags."""
    sea = _sea_mask()
    thresholds = []
    for j in range(n_species):
        if layout == "multiband":
            prob, path, band = _decoded(out / "probability.tif")[j], out / "binary.tif", j + 1
        else:
            stem = f"Species_{j:02d}.tif"
            prob, path, band = _decoded(out / "probability" / stem)[0], out / "binary" / stem, 1
        binary = _read(path)[band - 1]
        with rasterio.open(path) as src:
            threshold = float(src.tags(band)["threshold"])
            assert src.nodata == 255 and src.scales[band - 1] == 1.0
        assert (binary[sea] == 255).all()
        np.testing.assert_array_equal(binary[~sea], (prob[~sea] >= threshold).astype(np.uint8))
        thresholds.append(threshold)
    return np.array(thresholds)


def test_binary_maps_follow_a_fixed_threshold(tiny, rasters, tmp_path):
    model, card = tiny
    out = tmp_path / "maps"
    predict_maps(model, card, rasters, out, outputs=["probability", "binary"], threshold="0.4", progress=False)
    assert (_check_binary(out) == 0.4).all()
    present = np.stack([_read(out / "binary" / f"Species_{j:02d}.tif")[0] for j in range(8)])
    assert 0 < (present == 1).sum() < (present != 255).sum()  # the threshold splits the map


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_binary_maps_agree_with_the_tags_at_ties(tiny, rasters, tmp_path, dtype):
    """A threshold equal to a written probability, or one float step either side of it: the cells
    holding that value are present exactly when the decoded value reaches the tagged threshold."""
    model, card = tiny
    first = tmp_path / "first"
    predict_maps(model, card, rasters, first, species=["Species 02"], layout="multiband", dtype=dtype,
                 progress=False)
    decoded = _decoded(first / "probability.tif")[0]
    values, counts = np.unique(decoded[np.isfinite(decoded)], return_counts=True)
    for i, value in enumerate(values[np.argsort(-counts)][:3]):
        for k, threshold in enumerate((np.nextafter(value, 0), value, np.nextafter(value, 1))):
            out = tmp_path / f"t{i}{k}"
            predict_maps(model, card, rasters, out, species=["Species 02"], layout="multiband", dtype=dtype,
                         outputs=["probability", "binary"], threshold=repr(float(threshold)), progress=False)
            assert _check_binary(out, n_species=1, layout="multiband")[0] == threshold  # the tag is exact
            binary = _read(out / "binary.tif")[0]
            assert (binary[decoded == value] == (1 if threshold <= value else 0)).all()


def _validation_probabilities(model, card, workspace):
    keep = np.array([n in ("bio_1", "PHIHOX", "Longitude", "Latitude") for n in card.predictor_names])
    return predict_proba(model, workspace.features("val"), keep), workspace.labels("val")


def test_max_tss_thresholds_come_from_the_validation_plots(tiny, tiny_workspace, rasters, tmp_path):
    model, card = tiny
    out = tmp_path / "maps"
    with pytest.raises(ConfigError, match="--workspace"):
        predict_maps(model, card, rasters, out, outputs=["binary"], threshold="max_tss", progress=False)
    predict_maps(model, card, rasters, out, outputs=["probability", "binary"], threshold="max_tss",
                 workspace=tiny_workspace, progress=False)
    thresholds = _check_binary(out)
    # plot-level predictors (Releve_area, noise) are masked for the thresholds too, as on the map
    p, y = _validation_probabilities(model, card, tiny_workspace)
    np.testing.assert_allclose(thresholds, max_tss(p, y)[1], rtol=1e-6)
    assert len(set(thresholds)) > 1


def test_sensitivity_thresholds_keep_the_share_of_presences(tiny, tiny_workspace, rasters, tmp_path):
    model, card = tiny
    out = tmp_path / "maps"
    predict_maps(model, card, rasters, out, outputs=["probability", "binary"], threshold="sensitivity:0.9",
                 workspace=tiny_workspace, layout="multiband", progress=False)
    thresholds = _check_binary(out, layout="multiband")
    p, y = _validation_probabilities(model, card, tiny_workspace)
    for j, t in enumerate(thresholds):  # 1e-6: float noise between the species-subset and full heads
        presences = np.sort(p[y[:, j], j])
        assert (presences >= t - 1e-6).mean() >= 0.9
        above = presences[presences > t + 1e-6]
        assert len(above) == 0 or (presences >= above[0]).mean() < 0.9  # the largest such threshold


@pytest.mark.parametrize(("rule", "message"), [
    ("1.2", "between 0 and 1"), ("0", "between 0 and 1"), ("sensitivity:1.5", r"\(0, 1\]"),
    ("sensitivity:0.9.1", "unknown threshold rule"), ("max-tss", "unknown threshold rule"),
])
def test_bad_threshold_rules_are_config_errors(tiny, tiny_workspace, rasters, tmp_path, rule, message):
    model, card = tiny
    with pytest.raises(ConfigError, match=message):
        predict_maps(model, card, rasters, tmp_path / "maps", outputs=["binary"], threshold=rule,
                     workspace=tiny_workspace, progress=False)
    assert not (tmp_path / "maps").exists()


def test_bad_options_are_config_errors(tiny, rasters, tmp_path):
    model, card = tiny
    with pytest.raises(ConfigError, match="threshold"):
        predict_maps(model, card, rasters, tmp_path / "maps", outputs=["binary"], progress=False)
    with pytest.raises(ConfigError, match="unknown outputs"):
        predict_maps(model, card, rasters, tmp_path / "maps", outputs=["probabilities"], progress=False)
    with pytest.raises(ConfigError, match="block_rows"):
        predict_maps(model, card, rasters, tmp_path / "maps", block_rows=-1, progress=False)
    assert not (tmp_path / "maps").exists()


# --- 5-6. richness and layouts -------------------------------------------------------------------

def test_richness_is_the_sum_of_the_species_maps(tiny, rasters, tmp_path):
    model, card = tiny
    out = tmp_path / "all"
    predict_maps(model, card, rasters, out, outputs=ALL, threshold="0.4", dtype="float32", progress=False)
    sea = _sea_mask()
    richness = _read(out / "richness.tif")
    with rasterio.open(out / "richness.tif") as src:
        assert src.descriptions == ("expected_richness", "predicted_present") and src.dtypes[0] == "float32"
        assert src.tags()["n_species"] == "8" and src.tags()["threshold_rule"] == "0.4"
    assert np.isnan(richness[:, sea]).all()
    expected = _model_probabilities(model, card).sum(-1)
    np.testing.assert_allclose(richness[0][~sea], expected[~sea], rtol=1e-4, atol=1e-5)
    binary = np.stack([_read(out / "binary" / f"Species_{j:02d}.tif")[0] for j in range(8)]).astype(np.float32)
    np.testing.assert_array_equal(richness[1][~sea], binary.sum(0)[~sea])

    only = tmp_path / "only"
    # (the count is of binary maps, which compare the written probabilities: same dtype here)
    predict_maps(model, card, rasters, only, outputs=["richness"], threshold="0.4", dtype="float32", progress=False)
    assert _files(only) == ["richness.tif"]
    np.testing.assert_array_equal(_read(only / "richness.tif"), richness)
    assert cog_validate(str(only / "richness.tif"), quiet=True)[0]

    no_threshold = tmp_path / "expected"
    predict_maps(model, card, rasters, no_threshold, outputs=["richness"], progress=False)
    with rasterio.open(no_threshold / "richness.tif") as src:
        assert src.descriptions == ("expected_richness",)
        np.testing.assert_array_equal(src.read(1), richness[0])


def test_layouts_hold_the_same_values(tiny, rasters, tmp_path):
    model, card = tiny
    species = ["Species 05", "Species 01", "Species 06"]
    maps, results = {}, {}
    for layout in ("per-species", "multiband"):
        maps[layout] = tmp_path / layout
        results[layout] = predict_maps(model, card, rasters, maps[layout], species=species, outputs=ALL,
                                       threshold="0.45", layout=layout, dtype="uint16", progress=False)
    assert _files(maps["multiband"]) == ["binary.tif", "probability.tif", "richness.tif"]
    assert results["multiband"].path("binary", "Species 01") == maps["multiband"] / "binary.tif"
    assert results["per-species"].path("binary", "Species 01") == maps["per-species"] / "binary" / "Species_01.tif"
    assert results["per-species"].path("richness") == maps["per-species"] / "richness.tif"
    with pytest.raises(ConfigError, match="no probability map of 'Species 02'"):
        results["per-species"].path("probability", "Species 02")
    for kind in ("probability", "binary"):
        with rasterio.open(maps["multiband"] / f"{kind}.tif") as src:
            assert src.descriptions == tuple(species)
            assert [src.tags(b)["species"] for b in (1, 2, 3)] == species
            stacked = src.read()
        for j, name in enumerate(species):
            single = _read(maps["per-species"] / kind / f"{name.replace(' ', '_')}.tif")
            np.testing.assert_array_equal(stacked[j], single[0])
    np.testing.assert_array_equal(_read(maps["multiband"] / "richness.tif"),
                                  _read(maps["per-species"] / "richness.tif"))
    # the species asked for, in that order
    expected = _model_probabilities(model, card)[..., [5, 1, 6]]
    sea = _sea_mask()
    np.testing.assert_allclose(np.moveaxis(_decoded(maps["multiband"] / "probability.tif"), 0, -1)[~sea],
                               expected[~sea], atol=0.5 / 65_534 + 2e-6)


def test_species_names_that_clash_as_file_names_get_their_own_files(tiny, rasters, tmp_path):
    model, card = tiny
    clashing = dataclasses.replace(card, species=["Species 00", "Species/00", "species 00", *SPECIES[3:]])
    out = tmp_path / "maps"
    result = predict_maps(model, clashing, rasters, out, species=clashing.species[:3], dtype="float32", progress=False)
    files = sorted((out / "probability").iterdir())
    assert len({p.name.lower() for p in files}) == 3
    assert sorted(result.path("probability", s) for s in clashing.species[:3]) == files
    with pytest.raises(ConfigError, match="no binary map was written"):
        result.path("binary", "Species 00")
    expected = _model_probabilities(model, card)
    sea = _sea_mask()
    for path in files:
        with rasterio.open(path) as src:
            j = clashing.species.index(src.tags()["species"])
            np.testing.assert_allclose(src.read(1)[~sea], expected[..., j][~sea], atol=1e-5)


# --- 7. memory -----------------------------------------------------------------------------------

def test_memory_is_set_by_the_strip_not_the_raster(tiny, tmp_path):
    model, card = tiny
    peaks = {}
    for height in (200, 1600):
        transform = Affine(30 / 400, 0.0, -5.0, 0.0, -20 / height, 57.0)
        folder = _write_stack(tmp_path / f"r{height}", height=height, width=400, transform=transform, sea=False)
        tracemalloc.start()
        try:
            predict_maps(model, card, folder, tmp_path / f"m{height}", outputs=ALL, threshold="0.5", block_rows=16,
                         progress=False)
            peaks[height] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # one whole-raster float32 array of the large grid is 2.6 MB; its 8 uint8 probability maps 5.1 MB
    assert peaks[1600] < 1.5 * peaks[200], peaks
    assert peaks[1600] < 1600 * 400 * 8, peaks


# --- 8-9. interruptions ----------------------------------------------------------------------------

def _counting(monkeypatch, *, fail_at=None):
    calls = []
    real = prediction.predict_window

    def counted(*args, **kwargs):
        calls.append(int(args[3].row_off))
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prediction, "predict_window", counted)
    return calls


def _all_outputs(folder):
    return {name: _read(folder / name) for name in _files(folder)}


def test_an_interrupted_run_resumes_where_it_stopped(tiny, tmp_path, monkeypatch):
    model, card = tiny
    rasters = _write_stack(tmp_path / "rasters")  # its own: a raster's time stamp is changed below
    mtime = (rasters / "PHIHOX.tif").stat().st_mtime_ns
    options = dict(outputs=ALL, threshold="0.4", block_rows=4, progress=False)  # strips of 4 rows: 7 strips
    reference = tmp_path / "reference"
    predict_maps(model, card, rasters, reference, **options)

    out = tmp_path / "maps"
    calls = _counting(monkeypatch, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        predict_maps(model, card, rasters, out, **options)
    assert calls == [0, 4, 8]
    assert [f for f in _files(out) if not f.startswith(".partial")] == []  # no final map yet
    state = json.loads((out / ".partial" / "state.json").read_text())
    assert state["done"] == [0, 4]

    with pytest.raises(OutputExistsError, match="--resume"):
        predict_maps(model, card, rasters, out, **options)
    with pytest.raises(ConfigError, match="other options"):
        predict_maps(model, card, rasters, out, **dict(options, threshold="0.5"), resume=True)
    with pytest.raises(ConfigError, match="other options"):
        predict_maps(model, card, rasters, out, **dict(options, block_rows=8), resume=True)

    other_model = copy.deepcopy(model)
    with torch.no_grad():
        other_model.head.bias += 0.1
    with pytest.raises(ConfigError, match="other options or data"):
        predict_maps(other_model, card, rasters, out, **options, resume=True)
    os.utime(rasters / "PHIHOX.tif", ns=(10**18, 10**18))  # the raster was rewritten since
    with pytest.raises(ConfigError, match="other options or data"):
        predict_maps(model, card, rasters, out, **options, resume=True)
    os.utime(rasters / "PHIHOX.tif", ns=(mtime, mtime))

    # a clock that jumps 31 s per look: the partial files are flushed and reopened after every strip
    clock = iter(range(0, 10**6, 31))
    monkeypatch.setattr(writer.time, "monotonic", lambda: float(next(clock)))
    checkpoints = []
    real_checkpoint = writer.PartialMaps.checkpoint
    monkeypatch.setattr(writer.PartialMaps, "checkpoint",
                        lambda self: checkpoints.append(sorted(self.done)) or real_checkpoint(self))
    calls = _counting(monkeypatch)
    predict_maps(model, card, rasters, out, **options, resume=True)
    assert calls == [8, 12, 16, 20, 24]  # the finished strips are not predicted again
    assert checkpoints[0] == [0, 4, 8] and len(checkpoints) >= 5
    assert not (out / ".partial").exists()
    resumed, expected = _all_outputs(out), _all_outputs(reference)
    assert resumed.keys() == expected.keys() and len(resumed) == 17
    for name, values in expected.items():
        np.testing.assert_array_equal(resumed[name], values, err_msg=name)
        assert cog_validate(str(out / name), quiet=True)[0]


def test_resume_does_not_overwrite_finished_maps(tiny, rasters, tmp_path):
    model, card = tiny
    out = tmp_path / "maps"
    predict_maps(model, card, rasters, out, species=["Species 00"], progress=False)
    before = (out / "probability" / "Species_00.tif").read_bytes()
    for resume in (False, True):
        with pytest.raises(OutputExistsError, match="--force"):
            predict_maps(model, card, rasters, out, species=["Species 00"], dtype="uint16", resume=resume,
                         progress=False)
    assert (out / "probability" / "Species_00.tif").read_bytes() == before
    predict_maps(model, card, rasters, out, species=["Species 00"], dtype="uint16", force=True, progress=False)
    with rasterio.open(out / "probability" / "Species_00.tif") as src:
        assert src.dtypes == ("uint16",)


def test_a_full_disk_leaves_no_truncated_map(tiny, rasters, tmp_path, monkeypatch):
    model, card = tiny
    out = tmp_path / "maps"

    real_copy = rasterio.shutil.copy
    written = []

    def disk_full(src, dst, **options):  # the copy stops half way through the file
        real_copy(src, dst, **options)
        with open(dst, "r+b") as f:
            f.truncate(os.path.getsize(dst) // 2)
        written.append(dst)
        raise OSError("No space left on device")

    monkeypatch.setattr(rasterio.shutil, "copy", disk_full)
    with pytest.raises(OSError, match="No space left"):
        predict_maps(model, card, rasters, out, outputs=ALL, threshold="0.4", progress=False)
    assert len(written) == 1 and written[0].name.startswith(".")  # it was writing a hidden temporary file
    visible = [f for f in _files(out) if not f.startswith(".partial")]
    assert visible == []  # neither a final map nor the truncated temporary file
    monkeypatch.undo()

    # the strips are kept: once there is space, resuming only writes the files
    calls = _counting(monkeypatch)
    predict_maps(model, card, rasters, out, outputs=ALL, threshold="0.4", progress=False, resume=True)
    assert calls == []
    assert len(_files(out)) == 17
    reference = tmp_path / "reference"
    predict_maps(model, card, rasters, reference, outputs=ALL, threshold="0.4", progress=False)
    for name, values in _all_outputs(reference).items():
        np.testing.assert_array_equal(_read(out / name), values, err_msg=name)


def _disk_full_at(monkeypatch, call: int, *, free: int = 12_345):
    """The ``call``-th write into a map file fails as on a full disk (ENOSPC), and so does every
    later one; the disk then has ``free`` bytes left (before, room for the run: it fills meanwhile)."""
    real_write = rasterio.io.DatasetWriter.write
    calls = []

    def write(self, *args, **kwargs):
        calls.append(self.name)
        if len(calls) >= call:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", write)
    def usage(path):
        left = free if len(calls) >= call else 10**9
        return shutil._ntuple_diskusage(10**9, 10**9 - left, left)

    monkeypatch.setattr(writer.shutil, "disk_usage", usage)
    return calls


def test_a_disk_without_room_for_the_unfinished_maps_stops_before_any_work(tiny, rasters, tmp_path, monkeypatch):
    model, card = tiny
    monkeypatch.setattr(writer.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 500, 500))
    calls = _counting(monkeypatch)
    with pytest.raises(DiskFullError, match="uncompressed") as info:
        predict_maps(model, card, rasters, tmp_path / "maps", outputs=ALL, threshold="0.4", progress=False)
    assert calls == [] and "500 bytes free" in str(info.value)  # nothing predicted
    assert _files(tmp_path / "maps") == []


def test_a_full_disk_while_strips_are_written_is_one_error(tiny, rasters, tmp_path, monkeypatch):
    model, card = tiny
    out = tmp_path / "maps"
    calls = _disk_full_at(monkeypatch, 20)  # 17 files per strip: in the second strip
    with pytest.raises(DiskFullError) as info:
        predict_maps(model, card, rasters, out, outputs=ALL, threshold="0.4", dtype="uint16", block_rows=4,
                     progress=False)
    assert isinstance(info.value, OSError)
    message = str(info.value)
    assert f"cannot write '{calls[19]}': No space left on device; 12,345 bytes free on the disk" in message
    assert "--out" in message and "--dtype" in message and "--resume" not in message
    assert _files(out) == []  # no map, and no partial file claiming finished strips


def test_a_full_disk_on_the_command_line_is_one_line(tiny_run, rasters, tmp_path, monkeypatch, capsys):
    out = tmp_path / "maps"
    _disk_full_at(monkeypatch, 1)
    command = ["predict", "--checkpoint", str(tiny_run), "--rasters", str(rasters), "--species", "Species 00",
               "--out", str(out), "--quiet"]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("masksdm predict: error: cannot write '") and "No space left on device" in line
    assert "12,345 bytes free" in line and "fewer species (--species)" in line
    assert "--dtype" not in line  # uint8 already
    assert _files(out) == []


def test_a_block_gdal_fails_to_flush_is_a_full_disk(tiny, rasters, tmp_path, monkeypatch):
    """GDAL does not raise when it cannot flush a block on close: it only logs the failure."""
    model, card = tiny
    real_close = rasterio.io.DatasetWriter.close

    def close(self):
        logging.getLogger("rasterio._err").info(
            "GDAL signalled an error: err_no=1, msg='TIFFAppendToStrip:Write error at scanline 0'")
        return real_close(self)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "close", close)
    out = tmp_path / "maps"
    with pytest.raises(DiskFullError, match=r"cannot write '.*\.partial.00000\.tif'.*Write error at scanline 0"):
        predict_maps(model, card, rasters, out, species=["Species 00"], progress=False)
    assert _files(out) == []


def test_a_full_disk_when_copying_keeps_the_strips_for_resume(tiny, rasters, tmp_path, monkeypatch):
    model, card = tiny
    out = tmp_path / "maps"
    real_copy = rasterio.shutil.copy
    copied = []

    def copy_then_full(src, dst, **options):
        if copied:
            raise rasterio.errors.RasterioIOError("Write failed. See previous exception for details.")
        copied.append(real_copy(src, dst, **options))

    monkeypatch.setattr(rasterio.shutil, "copy", copy_then_full)
    full = shutil._ntuple_diskusage(10, 10, 0)  # once the first map is copied; room for the run before
    monkeypatch.setattr(writer.shutil, "disk_usage", lambda path: full if copied else shutil._ntuple_diskusage(10**9, 0, 10**9))
    with pytest.raises(DiskFullError, match=r"Write failed; 0 bytes free.*rerun with --resume"):
        predict_maps(model, card, rasters, out, species=["Species 00", "Species 01"], progress=False)
    visible = [f for f in _files(out) if not f.startswith(".partial")]
    assert visible == ["probability/Species_00.tif"]  # the finished one; no temporary file
    assert cog_validate(str(out / visible[0]), quiet=True)[0]


def test_force_removes_the_maps_an_earlier_run_wrote_and_only_those(tiny, rasters, tmp_path):
    model, card = tiny
    out = tmp_path / "maps"
    predict_maps(model, card, rasters, out, species=SPECIES[:3], outputs=ALL, threshold="0.4", progress=False)
    # the user's own files beside the maps, and a map of this package moved elsewhere in the folder
    (out / "notes.txt").write_text("my notes")
    _write(out / "probability" / "mine.tif", np.zeros((HEIGHT, WIDTH)))
    (out / "keep").mkdir()
    shutil.copy(out / "binary" / "Species_02.tif", out / "keep" / "Species_02.tif")
    shutil.copy(out / "richness.tif", out / "richness_before.tif")

    result = predict_maps(model, card, rasters, out, species=["Species 01"], force=True, progress=False)
    assert _files(out) == ["keep/Species_02.tif", "notes.txt", "probability/Species_01.tif",
                           "probability/mine.tif", "richness_before.tif"]
    assert sorted(p.relative_to(out).as_posix() for p in result.removed) == [
        "binary/Species_00.tif", "binary/Species_01.tif", "binary/Species_02.tif", "probability/Species_00.tif",
        "probability/Species_02.tif", "richness.tif"]
    assert not (out / "binary").exists()  # left empty

    # another layout: the per-species maps go, the user's file in that folder stays
    predict_maps(model, card, rasters, out, species=["Species 01"], layout="multiband", force=True, progress=False)
    assert _files(out) == ["keep/Species_02.tif", "notes.txt", "probability.tif", "probability/mine.tif",
                           "richness_before.tif"]


# --- 10. grids -------------------------------------------------------------------------------------

def test_rasters_on_another_grid_need_align(tiny, rasters, tmp_path):
    model, card = tiny
    # PHIHOX at 1/3 degree x 0.8/3 degree: each map cell centre is the centre of a fine cell, so
    # nearest-neighbour warping gives back the values of the map grid exactly
    fine = tmp_path / "fine"
    fine.mkdir()
    (fine / "bio_1.tif").write_bytes((rasters / "bio_1.tif").read_bytes())
    rows, cols = np.mgrid[0 : 3 * HEIGHT, 0 : 3 * WIDTH]
    soil = _phihox(rows // 3, cols // 3)
    soil[: 3 * 3, : 3 * 4] = np.nan
    _write(fine / "PHIHOX.tif", soil, transform=Affine(1 / 3, 0.0, -5.0, 0.0, -0.8 / 3, 57.0))
    with pytest.raises(RasterError, match=r"PHIHOX: EPSG:4326, 90 x 75 cells of 0.333333 x 0.266667.*--align"):
        predict_maps(model, card, fine, tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    predict_maps(model, card, fine, tmp_path / "a", align=True, layout="multiband", progress=False)
    predict_maps(model, card, rasters, tmp_path / "b", layout="multiband", progress=False)
    np.testing.assert_array_equal(_read(tmp_path / "a" / "probability.tif"), _read(tmp_path / "b" / "probability.tif"))

    # another CRS: the message shows it
    laea = tmp_path / "laea"
    laea.mkdir()
    (laea / "bio_1.tif").write_bytes((rasters / "bio_1.tif").read_bytes())
    transform = Affine(50_000.0, 0.0, 2_800_000.0, 0.0, -50_000.0, 4_200_000.0)
    rows, cols = np.mgrid[0:50, 0:50]
    _write(laea / "PHIHOX.tif", _phihox(rows, cols), crs="EPSG:3035", transform=transform)
    with pytest.raises(RasterError, match=r"PHIHOX: EPSG:3035, 50 x 50 cells of 50000 x 50000"):
        predict_maps(model, card, laea, tmp_path / "c", progress=False)
    predict_maps(model, card, laea, tmp_path / "c", align=True, layout="multiband", dtype="float32", progress=False)
    with rasterio.open(tmp_path / "c" / "probability.tif") as src:
        assert (src.crs, src.transform) == (rasterio.crs.CRS.from_epsg(4326), TRANSFORM)
        assert np.isfinite(src.read()[:, ~_sea_mask()]).all()


# --- 11. dask ----------------------------------------------------------------------------------

def test_dask_workers_write_the_same_maps(tiny, tiny_run, rasters, tmp_path):
    pytest.importorskip("distributed")
    model, card = tiny
    options = dict(outputs=ALL, threshold="0.4", layout="multiband", block_rows=5, progress=False, run_dir=tiny_run)
    predict_maps(model, card, rasters, tmp_path / "local", **options)
    predict_maps(model, card, rasters, tmp_path / "dask", workers=2, **options)
    local, distributed = _all_outputs(tmp_path / "local"), _all_outputs(tmp_path / "dask")
    assert local.keys() == distributed.keys() == {"binary.tif", "probability.tif", "richness.tif"}
    for name, values in local.items():
        assert np.array_equal(values, distributed[name], equal_nan=True), name
    with pytest.raises(ConfigError, match="run_dir"):
        predict_maps(model, card, rasters, tmp_path / "x", workers=2, **dict(options, run_dir=None))


def test_a_running_cluster_sees_a_retrained_checkpoint(tiny, tiny_run, rasters, tmp_path):
    """Workers of a long-lived cluster cache the model: a checkpoint rewritten in the same folder
    must be loaded again, not served from the cache."""
    distributed = pytest.importorskip("distributed")
    model, card = tiny
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    options = dict(species=["Species 04"], layout="multiband", dtype="float32", block_rows=9, progress=False,
                   run_dir=run_dir)
    retrained = copy.deepcopy(model)
    with torch.no_grad():
        retrained.head.bias += 1.0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        predict_maps(model, card, rasters, tmp_path / "before", scheduler=cluster.scheduler_address, **options)
        save_checkpoint(run_dir, retrained, card)
        predict_maps(retrained, card, rasters, tmp_path / "after", scheduler=cluster.scheduler_address, **options)
    predict_maps(retrained, card, rasters, tmp_path / "local", **options)
    np.testing.assert_array_equal(_read(tmp_path / "after" / "probability.tif"),
                                  _read(tmp_path / "local" / "probability.tif"))
    assert not np.array_equal(_read(tmp_path / "after" / "probability.tif"),
                              _read(tmp_path / "before" / "probability.tif"), equal_nan=True)


# --- 12. command line ------------------------------------------------------------------------------

def test_predict_command(tiny_run, rasters, tmp_path, capsys, monkeypatch):
    out = tmp_path / "maps"
    command = ["predict", "--checkpoint", str(tiny_run), "--rasters", str(rasters), "--species", "Species 00",
               "--out", str(out), "--write", "probability", "binary", "richness", "--threshold", "0.5", "--quiet"]
    assert main(command) == 0
    assert _files(out) == ["binary/Species_00.tif", "probability/Species_00.tif", "richness.tif"]
    printed = capsys.readouterr().out
    assert "3 file(s)" in printed and "threshold rule 0.5" in printed

    assert main(command) == 2
    err = capsys.readouterr().err
    assert "--force" in err and len(err.strip().splitlines()) == 1

    names = tmp_path / "species.txt"
    names.write_text("Species 01\n\nSpecies 02\n")
    listed = ["predict", "--checkpoint", str(tiny_run), "--rasters", str(rasters), "--species-file", str(names),
              "--out", str(tmp_path / "listed"), "--quiet"]
    assert main(listed) == 0
    assert _files(tmp_path / "listed") == ["probability/Species_01.tif", "probability/Species_02.tif"]
    names.write_text("\n")
    assert main([*listed[:-2], str(tmp_path / "none"), "--quiet"]) == 2
    assert "names no species" in capsys.readouterr().err

    other = tmp_path / "other"
    assert main([*command[:6], "Specis 00", "--out", str(other), *command[9:]]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'Species 00'" in err and len(err.strip().splitlines()) == 1
    assert not other.exists()

    assert main([*command, "--force", "--dtype", "uint16", "--layout", "multiband"]) == 0
    assert _files(out) == ["binary.tif", "probability.tif", "richness.tif"]  # the per-species maps are gone
    assert "removed 2 map(s) of an earlier run" in capsys.readouterr().out

    # Ctrl-C keeps the finished strips; --resume finishes the run
    resumed = tmp_path / "resumed"
    again = [*command[:7], "--out", str(resumed), *command[9:], "--block-rows", "5"]
    calls = _counting(monkeypatch, fail_at=2)
    assert main(again) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.undo()
    calls = _counting(monkeypatch)
    assert main([*again, "--resume"]) == 0
    assert calls == [5, 10, 15, 20]
    assert _files(resumed) == ["binary/Species_00.tif", "probability/Species_00.tif", "richness.tif"]


def test_unknown_species_is_a_data_error(tiny, rasters, tmp_path):
    model, card = tiny
    with pytest.raises(DataError, match="did you mean 'Species 01'"):
        predict_maps(model, card, rasters, tmp_path / "maps", species=["Species 1"], progress=False)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX open-file limits")
def test_many_files_raise_the_open_file_limit(tiny, rasters, tmp_path):
    """Per-species files are all open while the strips are written: 2 per species here."""
    import resource

    model, card = tiny
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n_open = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
    low = n_open + 8
    if hard != resource.RLIM_INFINITY and hard < n_open + 64:
        pytest.skip("hard open-file limit too low to test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        predict_maps(model, card, rasters, tmp_path / "maps", outputs=["probability", "binary"], threshold="0.4",
                     progress=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(_files(tmp_path / "maps")) == 16


def test_large_maps_get_internal_overviews(tiny, tmp_path):
    model, card = tiny
    transform = Affine(0.04, 0.0, -5.0, 0.0, -0.03, 57.0)  # 600 x 700 cells: more than one 512 tile
    folder = _write_stack(tmp_path / "big", height=600, width=700, transform=transform, sea=False)
    predict_maps(model, card, folder, tmp_path / "maps", species=["Species 00"], progress=False)
    path = tmp_path / "maps" / "probability" / "Species_00.tif"
    with rasterio.open(path) as src:
        assert src.overviews(1) and src.block_shapes[0] == (512, 512)
    assert cog_validate(str(path))[0]
