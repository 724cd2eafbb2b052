"""Tests of masksdm.data.rasters on tiny rasters whose values encode their pixel position."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import rasterio
from fixtures.rasters import write_asc, write_grd, write_netcdf, write_position_tif
from pyproj import Transformer

import masksdm.data.rasters as rasters_module
from masksdm.data.rasters import extract_rasters, find_rasters, raster_group
from masksdm.errors import DataError, RasterError

# (row, col) pixels to probe; expected value = row * 1000 + col
PIXELS = [(0, 0), (0, 29), (19, 0), (19, 29), (7, 11), (12, 3)]


def _centres(pixels, west, north, res):
    rows = np.array([p[0] for p in pixels], dtype=float)
    cols = np.array([p[1] for p in pixels], dtype=float)
    return west + (cols + 0.5) * res, north - (rows + 0.5) * res


def _expected(pixels):
    return np.array([r * 1000 + c for r, c in pixels], dtype=float)


def test_geographic_tif_exact(tmp_path):
    path = write_position_tif(tmp_path / "bio_1.tif", west=0.0, north=50.0, res=0.5)
    lon, lat = _centres(PIXELS, 0.0, 50.0, 0.5)
    # off-centre points still fall in their pixel
    lon = np.r_[lon, 0.01, 14.99]
    lat = np.r_[lat, 49.99, 40.01]
    out = extract_rasters({"bio_1": path}, lon, lat, progress=False)
    assert list(out.columns) == ["bio_1"]
    assert out["bio_1"].dtype == np.float64
    assert isinstance(out.index, pd.RangeIndex) and len(out) == len(lon)
    np.testing.assert_array_equal(out["bio_1"], np.r_[_expected(PIXELS), 0.0, 19029.0])


@pytest.mark.parametrize(
    ("crs", "west", "north"),
    [("EPSG:3035", 4_000_000.0, 3_000_000.0), ("ESRI:54009", 500_000.0, 5_500_000.0)],
)
def test_projected_tif_exact(tmp_path, crs, west, north):
    res = 1000.0
    path = write_position_tif(tmp_path / "proj.tif", crs=crs, west=west, north=north, res=res)
    x, y = _centres(PIXELS, west, north, res)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    out = extract_rasters({"proj": path}, lon, lat, progress=False)
    np.testing.assert_array_equal(out["proj"], _expected(PIXELS))


def test_ascii_grid_exact(tmp_path):
    write_asc(
        tmp_path / "grid.asc",
        xll=-10.0,
        yll=30.0,
        cellsize=0.25,
        height=8,
        width=12,
        nodata_pixels=((2, 3),),
    )
    pixels = [(0, 0), (7, 11), (3, 5), (2, 3)]
    lon, lat = _centres(pixels, -10.0, 30.0 + 8 * 0.25, 0.25)
    out = extract_rasters(find_rasters(tmp_path), lon, lat, progress=False)
    assert list(out.columns) == ["grid"]
    np.testing.assert_array_equal(out["grid"].to_numpy()[:3], _expected(pixels[:3]))
    assert np.isnan(out["grid"].iloc[3])


def test_ascii_grid_without_prj_has_no_crs(tmp_path):
    path = write_asc(tmp_path / "grid.asc", crs=None)
    with pytest.raises(RasterError, match=r"no CRS.*write_crs"):
        extract_rasters({"grid": path}, [-9.0], [31.0], progress=False)


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [("float32", -9999.0), ("float32", -3.4e38), ("int16", -32768), ("float32", float("nan"))],
)
def test_nodata_is_nan(tmp_path, dtype, nodata):
    path = write_position_tif(
        tmp_path / "r.tif", dtype=dtype, nodata=nodata, nodata_pixels=((7, 11),)
    )
    lon, lat = _centres(PIXELS, 0.0, 50.0, 0.5)
    out = extract_rasters({"r": path}, lon, lat, progress=False)["r"].to_numpy()
    expected = _expected(PIXELS)
    expected[PIXELS.index((7, 11))] = np.nan
    np.testing.assert_array_equal(out, expected)


def test_scale_and_offset(tmp_path):
    path = write_position_tif(tmp_path / "r.tif", scale=0.1, offset=5.0)
    lon, lat = _centres(PIXELS, 0.0, 50.0, 0.5)
    out = extract_rasters({"r": path}, lon, lat, progress=False)["r"]
    np.testing.assert_allclose(out, _expected(PIXELS) * 0.1 + 5.0)


def test_block_reads_match_whole_reads(tmp_path, monkeypatch):
    path = write_position_tif(
        tmp_path / "tiled.tif",
        height=70,
        width=90,
        blocksize=16,
        nodata=-1.0,
        nodata_pixels=((40, 40),),
    )
    striped = write_position_tif(tmp_path / "striped.tif", height=70, width=90)
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 70, 500)
    cols = rng.integers(0, 90, 500)
    lon, lat = _centres(list(zip(rows, cols, strict=True)), 0.0, 50.0, 0.5)
    whole = extract_rasters({"tiled": path, "striped": striped}, lon, lat, progress=False)
    monkeypatch.setattr(rasters_module, "_READ_WHOLE_MAX_BYTES", 0)
    blocks = extract_rasters({"tiled": path, "striped": striped}, lon, lat, progress=False)
    pd.testing.assert_frame_equal(whole, blocks)
    expected = (rows * 1000 + cols).astype(float)
    expected[(rows == 40) & (cols == 40)] = np.nan
    np.testing.assert_array_equal(blocks["tiled"], expected)
    np.testing.assert_array_equal(blocks["striped"], (rows * 1000 + cols).astype(float))


def test_longitudes_0_360(tmp_path):
    path = write_position_tif(
        tmp_path / "g.tif", west=0.0, north=90.0, res=1.0, height=180, width=360
    )
    out = extract_rasters({"g": path}, [-10.5, 10.5], [0.5, 0.5], progress=False)["g"]
    np.testing.assert_array_equal(out, [89 * 1000 + 349, 89 * 1000 + 10])


def test_most_points_outside_is_an_error(tmp_path):
    path = write_position_tif(tmp_path / "bio_5.tif")  # lon 0..15, lat 40..50
    lon = [1.0, 100.0, 120.0, -60.0]
    lat = [45.0, 45.0, 10.0, 45.0]
    with pytest.raises(RasterError, match=r"3 of 4 points fall outside raster 'bio_5'") as info:
        extract_rasters({"bio_5": path}, lon, lat, progress=False)
    message = str(info.value)
    assert "lon 0.0000..15.0000, lat 40.0000..50.0000" in message
    assert "swapped" in message and "CRS" in message


def test_swapped_coordinates_detected_by_coverage(tmp_path):
    path = write_position_tif(
        tmp_path / "r.tif", west=20.0, north=45.0, res=0.5
    )  # lon 20..35, lat 35..45
    lon, lat = _centres(PIXELS, 20.0, 45.0, 0.5)
    with pytest.raises(RasterError, match="swapped"):
        extract_rasters({"r": path}, lat, lon, progress=False)


def test_some_points_outside_are_nan(tmp_path, caplog):
    path = write_position_tif(tmp_path / "r.tif")
    lon, lat = _centres(PIXELS, 0.0, 50.0, 0.5)
    lon = np.r_[lon, 30.0]
    lat = np.r_[lat, 45.0]
    with caplog.at_level(logging.INFO, logger="masksdm.data.rasters"):
        out = extract_rasters({"r": path}, lon, lat, progress=False)["r"].to_numpy()
    np.testing.assert_array_equal(out[:-1], _expected(PIXELS))
    assert np.isnan(out[-1])
    (record,) = caplog.records
    assert record.levelno == logging.WARNING  # 1 of 7 is more than 10 %
    assert "raster 'r' has no value at 1 of 7 points (14%: 1 outside it" in record.getMessage()


def test_a_raster_missing_a_quarter_of_the_plots_is_a_warning(tmp_path, caplog):
    path = write_position_tif(tmp_path / "bio_12.tif", nodata=-1.0, nodata_pixels=((0, 0),))  # lon 0..15
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(0.2, 14.8, 100), rng.uniform(40.2, 49.8, 100)
    lon[:20] += 20  # 20 outside the raster
    lon[20:25], lat[20:25] = 0.1, 49.9  # 5 on its nodata cell
    with caplog.at_level(logging.WARNING, logger="masksdm.data.rasters"):
        out = extract_rasters({"bio_12": path}, lon, lat, progress=False)["bio_12"].to_numpy()
    assert np.isnan(out).sum() == 25 and np.isfinite(out[25:]).all()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "raster 'bio_12' has no value at 25 of 100 points (25%: 20 outside it" in message
    assert "5 on nodata cells" in message and "check that the raster covers the plots" in message


def test_a_few_missing_points_are_info(tmp_path, caplog):
    path = write_position_tif(tmp_path / "r.tif")
    lon, lat = np.full(20, 1.0), np.full(20, 45.0)
    lon[0] = 30.0  # 5 %
    with caplog.at_level(logging.INFO, logger="masksdm.data.rasters"):
        extract_rasters({"r": path}, lon, lat, progress=False)
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_a_raster_without_any_value_at_the_points_is_an_error(tmp_path):
    path = write_position_tif(tmp_path / "bio_7.tif", nodata=-1.0, nodata_pixels=((10, 2), (10, 3)))
    with pytest.raises(RasterError, match=r"raster 'bio_7' .* has no value at any of the 3 points") as info:
        extract_rasters({"bio_7": path}, [1.2, 1.7, 1.3], [44.7, 44.6, 44.9], progress=False)
    assert isinstance(info.value, DataError)
    message = str(info.value)
    assert "(1 outside it, 2 on nodata cells)" not in message  # all three fall on the two nodata cells
    assert "(0 outside it, 3 on nodata cells)" in message
    assert "check the raster's CRS, extent and nodata value" in message
    assert "lon 0.0000..15.0000, lat 40.0000..50.0000" in message and "points span lon 1.2000..1.7000" in message


def test_no_crs(tmp_path):
    path = write_position_tif(tmp_path / "r.tif", crs=None)
    with pytest.raises(RasterError, match=r"'.*r\.tif' has no CRS.*write_crs"):
        extract_rasters({"r": path}, [1.0], [45.0], progress=False)


def test_unreadable(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(RasterError, match="broken.tif"):
        extract_rasters({"broken": bad}, [1.0], [45.0], progress=False)


def test_find_rasters_and_groups(tmp_path):
    write_position_tif(tmp_path / "WorldClim" / "bio_1.tif")
    write_position_tif(tmp_path / "Mine" / "deep" / "snow_days.tif")
    write_asc(tmp_path / "Mine" / "frost.asc", xll=0.0, yll=40.0)
    (tmp_path / "Mine" / "notes.txt").write_text("x", encoding="utf-8")
    write_position_tif(tmp_path / ".hidden" / "bio_2.tif")
    found = find_rasters(tmp_path)
    assert set(found) == {"bio_1", "snow_days", "frost"}
    assert raster_group(found["bio_1"]) == "WorldClim"
    assert raster_group(found["snow_days"]) == "deep"
    assert raster_group(found["frost"]) == "Mine"
    assert set(find_rasters([tmp_path / "WorldClim", found["frost"]])) == {"bio_1", "frost"}
    # sources instead of a mapping
    out = extract_rasters(
        [tmp_path / "WorldClim", tmp_path / "Mine"], [1.0], [41.0], progress=False
    )
    assert out.shape == (1, 3)


def test_duplicate_stems(tmp_path):
    a = write_position_tif(tmp_path / "a" / "bio_1.tif")
    b = write_position_tif(tmp_path / "b" / "bio_1.tif")
    with pytest.raises(DataError, match="bio_1") as info:
        find_rasters(tmp_path)
    assert str(a) in str(info.value) and str(b) in str(info.value)


def test_nothing_found(tmp_path):
    with pytest.raises(DataError, match="no raster"):
        find_rasters(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        find_rasters(tmp_path / "missing")


def test_point_count_mismatch(tmp_path):
    path = write_position_tif(tmp_path / "r.tif")
    with pytest.raises(DataError, match="latitudes"):
        extract_rasters({"r": path}, [1.0, 2.0], [45.0], progress=False)


def test_progress_bar_runs(tmp_path):
    path = write_position_tif(tmp_path / "r.tif")
    out = extract_rasters({"r": path}, [1.0], [45.0])
    assert out.iloc[0, 0] == 10 * 1000 + 2


def test_r_raster_grd_exact(tmp_path):
    write_grd(tmp_path / "grd_var.grd", nodata=-9999.0, nodata_pixels=((7, 11),))
    found = find_rasters(tmp_path)
    assert list(found) == ["grd_var"]  # the .gri data file is not a raster of its own
    lon, lat = _centres(PIXELS, 0.0, 50.0, 0.5)
    out = extract_rasters(found, lon, lat, progress=False)["grd_var"].to_numpy()
    expected = _expected(PIXELS)
    expected[PIXELS.index((7, 11))] = np.nan
    np.testing.assert_array_equal(out, expected)


def _netcdf_or_skip():
    with rasterio.Env() as env:
        if "netCDF" not in env.drivers():
            pytest.skip("GDAL has no netCDF driver")


def test_netcdf(tmp_path):
    _netcdf_or_skip()
    try:
        path = write_netcdf(tmp_path / "tmean.nc")
    except ValueError as exc:  # no netCDF engine for xarray
        pytest.skip(str(exc))
    lon, lat = _centres(PIXELS, 0.0, 50.0, 0.5)
    out = extract_rasters({"tmean": path}, lon, lat, progress=False)["tmean"]
    np.testing.assert_array_equal(out, _expected(PIXELS))
    write_netcdf(tmp_path / "two.nc", variables=("a", "b"))
    with pytest.raises(RasterError, match=r"2 variables \['a', 'b'\].*one variable per file"):
        extract_rasters({"two": tmp_path / "two.nc"}, lon, lat, progress=False)
    write_netcdf(tmp_path / "nocf.nc", cf=False)
    with pytest.raises(RasterError, match="no georeferencing"):
        extract_rasters({"nocf": tmp_path / "nocf.nc"}, lon, lat, progress=False)


# --- multiband rasters, catalogue spellings, groups -------------------------------------------

def _write_multiband(path, descriptions, *, count=None, west=0.0, north=50.0, res=0.5, height=20, width=30,
                     nodata=None):
    """Band b (1-based) holds ``b * 100_000 + row * 1000 + col``; ``descriptions`` (None: none)."""
    from affine import Affine
    from fixtures.rasters import position_values

    count = len(descriptions) if count is None else count
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.stack([b * 100_000 + position_values(height, width) for b in range(1, count + 1)])
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=count, dtype="float32",
                       crs="EPSG:4326", transform=Affine(res, 0.0, west, 0.0, -res, north), nodata=nodata) as dst:
        dst.write(values.astype("float32"))
        for band, text in enumerate(descriptions or (), start=1):
            if text:
                dst.set_band_description(band, text)
    return path


def test_a_multiband_stack_gives_one_predictor_per_described_band(tmp_path):
    stack = _write_multiband(tmp_path / "Mine" / "climate.tif", ["bio_1", "BIO12", "snow_days"])
    found = find_rasters(tmp_path)
    assert found == {"bio_1": stack, "bio_12": stack, "snow_days": stack}  # catalogue names for bio
    assert [raster_group(path, name) for name, path in found.items()] == ["WorldClim", "WorldClim", "Mine"]
    lon, lat = _centres(PIXELS, 0.0, 50.0, 0.5)
    out = extract_rasters(found, lon, lat, progress=False)
    for band, name in enumerate(found, start=1):
        np.testing.assert_array_equal(out[name], band * 100_000 + _expected(PIXELS))
    # a name spelled another way finds its band too
    np.testing.assert_array_equal(extract_rasters({"bio12": stack}, lon, lat, progress=False)["bio12"],
                                  2 * 100_000 + _expected(PIXELS))
    with pytest.raises(RasterError, match=r"no band for predictor 'bio_5'.*\['bio_1', 'bio_12', 'snow_days'\]"):
        extract_rasters({"bio_5": stack}, lon, lat, progress=False)


def test_a_multiband_raster_without_band_descriptions_is_a_clear_error(tmp_path):
    path = _write_multiband(tmp_path / "climate.tif", None, count=3)
    with pytest.raises(RasterError) as info:
        extract_rasters(find_rasters(tmp_path), [1.0], [45.0], progress=False)
    message = str(info.value)
    assert "climate.tif' has 3 bands and no band description" in message
    assert "set_band_description(1, 'bio_1')" in message and "gdal_translate -b 1 climate.tif bio_1.tif" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("descriptions", "problem"),
    [(["bio_1", "", "bio_3"], r"no description for band\(s\) \[2\]"),
     (["bio1", "bio_1"], r"bands 1 and 2 both name the predictor 'bio_1' \(descriptions 'bio1' and 'bio_1'\)")],
)
def test_a_multiband_raster_with_missing_or_repeated_descriptions_is_an_error(tmp_path, descriptions, problem):
    _write_multiband(tmp_path / "climate.tif", descriptions)
    with pytest.raises(RasterError, match=rf"climate\.tif' has {len(descriptions)} bands and {problem}"):
        find_rasters(tmp_path)


def test_embedding_rasters_stay_one_predictor_of_all_their_bands(tmp_path):
    written = _write_multiband(tmp_path / "maps" / "sat.tif", [f"e{i}" for i in range(4)])  # as embed cells writes
    stored = _write_multiband(tmp_path / "embeddings" / "smarties_s2.tif", None, count=3)  # WORKSPACE/embeddings/
    assert find_rasters(tmp_path) == {"sat": written, "smarties_s2": stored}
    for path in (written, stored):
        with pytest.raises(RasterError, match="is an embedding raster.*embed plots"):
            extract_rasters({path.stem: path}, [1.0], [45.0], progress=False)
        with rasterio.open(path) as src:
            assert rasters_module.is_embedding_raster(src, path)


def test_catalogue_spellings_of_raster_names(tmp_path):
    write_position_tif(tmp_path / "wc" / "wc2.1_10m_bio_12.tif")
    write_position_tif(tmp_path / "wc" / "BIO3.tif")
    write_position_tif(tmp_path / "soil" / "phihox.tif")
    found = find_rasters(tmp_path)
    assert sorted(found) == ["PHIHOX", "bio_12", "bio_3"]
    assert found["bio_12"].name == "wc2.1_10m_bio_12.tif"
    assert {raster_group(p, n) for n, p in found.items() if n != "PHIHOX"} == {"WorldClim"}
    write_position_tif(tmp_path / "wc" / "bio_03.tif")
    with pytest.raises(DataError, match="two rasters are named 'bio_3'"):
        find_rasters(tmp_path)


def test_a_raster_group_is_its_folder_as_given_not_resolved(tmp_path):
    write_position_tif(tmp_path / "downloads" / "x7f3" / "snow_days.tif")
    (tmp_path / "Snow").symlink_to(tmp_path / "downloads" / "x7f3", target_is_directory=True)
    found = find_rasters(tmp_path / "Snow")
    assert raster_group(found["snow_days"]) == "Snow"
    assert raster_group("snow_days.tif") == "Other"  # no folder given: the catalogue, else Other
    assert raster_group("bio_1.tif") == "WorldClim"
