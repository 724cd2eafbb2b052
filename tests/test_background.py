"""Background points on tiny raster grids with NaN "sea" cells: only valid cells, none in the
buffers, seeded, and drawn where the target group or the bias raster says."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import rasterio
from affine import Affine

from masksdm.data.background import EARTH_RADIUS_KM, METHODS, sample_background
from masksdm.data.grid import RasterStack
from masksdm.errors import DataError, RasterError

# EPSG:4326, lon 0..15, lat 40..50, 0.5 degree; the 8 western columns are sea.
WEST, NORTH, RES, HEIGHT, WIDTH, SEA_COLS = 0.0, 50.0, 0.5, 20, 30, 8
TRANSFORM = Affine(RES, 0.0, WEST, 0.0, -RES, NORTH)


def _write(path, values, *, transform=TRANSFORM, nodata=None, dtype="float32"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1], count=1,
                       dtype=dtype, crs="EPSG:4326", transform=transform, nodata=nodata) as dst:
        dst.write(values.astype(dtype)[None])
    return path


@pytest.fixture
def stack(tmp_path):
    """bio_1: NaN at sea; bio_2 (int16, nodata -9999): also missing at three land cells."""
    values = np.arange(HEIGHT * WIDTH, dtype=np.float64).reshape(HEIGHT, WIDTH)
    bio_1 = values.copy()
    bio_1[:, :SEA_COLS] = np.nan
    bio_2 = values.copy()
    bio_2[[0, 5, 19], [10, 20, 29]] = -9999
    folder = tmp_path / "rasters"
    _write(folder / "bio_1.tif", bio_1, nodata=np.nan)
    _write(folder / "bio_2.tif", bio_2, nodata=-9999, dtype="int16")
    with RasterStack(folder) as opened:
        yield opened


def _haversine_km(lon1, lat1, lon2, lat2):
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _cell(row, col):
    return row * WIDTH + col


def _centre(row, col):
    return WEST + (col + 0.5) * RES, NORTH - (row + 0.5) * RES


def test_uniform_background_lies_on_distinct_valid_cells(stack):
    valid = stack.valid_cells()
    assert valid.sum() == HEIGHT * (WIDTH - SEA_COLS) - 3
    points = sample_background(stack, 150)
    assert list(points.columns) == ["lon", "lat", "cell"] and len(points) == 150
    cells = points["cell"].to_numpy()
    assert cells.dtype == np.int64 and (np.diff(cells) > 0).all()  # distinct, sorted
    assert valid[cells].all()
    lon, lat = stack.cell_lonlat(cells)
    np.testing.assert_array_equal(points["lon"], lon)
    np.testing.assert_array_equal(points["lat"], lat)
    np.testing.assert_array_equal(stack.cell_index(lon, lat), cells)
    # every valid cell, when all are asked for
    everything = sample_background(stack, int(valid.sum()))
    np.testing.assert_array_equal(everything["cell"], np.flatnonzero(valid))


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_points_other_seed_other_points(stack, tmp_path, method):
    lon, lat = _centre(np.arange(HEIGHT).repeat(3), np.tile([10, 15, 25], HEIGHT))
    bias = _write(tmp_path / "bias.tif", np.linspace(0, 1, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH))
    kwargs = {"method": method, "group": (lon, lat), "bias": bias}
    first = sample_background(stack, 30, seed=7, **kwargs)
    np.testing.assert_array_equal(first["cell"], sample_background(stack, 30, seed=7, **kwargs)["cell"])
    assert not np.array_equal(first["cell"], sample_background(stack, 30, seed=8, **kwargs)["cell"])


def test_no_background_point_inside_the_buffers(stack):
    presences = np.array([_centre(4, 12), _centre(15, 22), _centre(10, 6)])  # the last one at sea
    buffer_km = 120.0
    points = sample_background(stack, 200, exclude=(presences[:, 0], presences[:, 1]), buffer_km=buffer_km)
    assert len(points) == 200 and stack.valid_cells()[points["cell"]].all()
    distance = _haversine_km(points["lon"].to_numpy()[:, None], points["lat"].to_numpy()[:, None],
                             presences[None, :, 0], presences[None, :, 1])
    assert distance.min() > buffer_km
    # the buffers remove every valid cell within reach, and only those
    lon, lat = stack.cell_lonlat(np.arange(HEIGHT * WIDTH))
    near = (_haversine_km(lon[:, None], lat[:, None], presences[None, :, 0], presences[None, :, 1]) <= buffer_km).any(1)
    n_left = int((stack.valid_cells() & ~near).sum())
    assert n_left < stack.valid_cells().sum() - 40
    assert (near.reshape(HEIGHT, WIDTH)[10, SEA_COLS:] & stack.valid_cells().reshape(HEIGHT, WIDTH)[10, SEA_COLS:]).any()
    everything = sample_background(stack, n_left, exclude=(presences[:, 0], presences[:, 1]), buffer_km=buffer_km)
    np.testing.assert_array_equal(everything["cell"], np.flatnonzero(stack.valid_cells() & ~near))
    with pytest.raises(DataError, match=rf"only {n_left} cells .*within buffer_km=120 of a presence.*smaller buffer_km"):
        sample_background(stack, n_left + 1, exclude=(presences[:, 0], presences[:, 1]), buffer_km=buffer_km)


def test_too_many_points_is_an_error_not_a_partial_result(stack):
    n_valid = int(stack.valid_cells().sum())
    with pytest.raises(DataError, match=rf"{n_valid + 1} background points .* only {n_valid} cells.*fewer points"):
        sample_background(stack, n_valid + 1)


def test_valid_mask_restricts_the_draw(stack):
    valid = np.zeros(HEIGHT * WIDTH, bool)
    valid[[_cell(1, 1), _cell(2, 2), _cell(3, 3)]] = True  # even sea cells, when the caller says so
    np.testing.assert_array_equal(sample_background(stack, 3, valid=valid)["cell"], np.flatnonzero(valid))
    with pytest.raises(DataError, match="valid must be a boolean array of the 20 x 30"):
        sample_background(stack, 3, valid=np.ones(5, bool))


def test_target_group_draws_cells_with_group_records_in_proportion(stack, caplog):
    counts = {_cell(2, 10): 60, _cell(8, 20): 20, _cell(12, 15): 10, _cell(18, 28): 5, _cell(5, 9): 5}
    cells = np.repeat(list(counts), list(counts.values()))
    lon, lat = _centre(*np.divmod(cells, WIDTH))
    # records at sea, on a cell without bio_2, and off the grid are never drawn
    lon = np.r_[lon, _centre(3, 3)[0], _centre(0, 10)[0], -20.0]
    lat = np.r_[lat, _centre(3, 3)[1], _centre(0, 10)[1], 45.0]
    points = sample_background(stack, 3, method="target-group", group=(lon, lat))
    assert len(points) == 3 and set(points["cell"]) <= set(counts)
    # n = 1 draws a cell with probability in proportion to its records
    drawn = np.array([sample_background(stack, 1, method="target-group", group=(lon, lat), seed=s)["cell"][0]
                      for s in range(400)])
    share = {c: np.mean(drawn == c) for c in counts}
    assert share[_cell(2, 10)] == pytest.approx(0.6, abs=0.08)
    assert share[_cell(8, 20)] == pytest.approx(0.2, abs=0.06)
    # more points than cells with records: all of them, with a warning
    with caplog.at_level(logging.WARNING, logger="masksdm.data.background"):
        points = sample_background(stack, 50, method="target-group", group=(lon, lat))
    np.testing.assert_array_equal(points["cell"], sorted(counts))
    assert "50 points asked for" in caplog.text and "only 5 cells" in caplog.text
    with pytest.raises(DataError, match="no target-group record"):
        sample_background(stack, 5, method="target-group", group=(np.array([-20.0]), np.array([45.0])))


def test_bias_raster_never_draws_where_it_is_zero(stack, tmp_path):
    bias = np.ones((HEIGHT, WIDTH))
    bias[:, : WIDTH // 2] = 0.0  # western half: no draws
    bias[0, 20], bias[1, 20], bias[2, 20] = np.nan, -5.0, -9999.0  # NaN, negative, nodata: count as 0
    path = _write(tmp_path / "bias.tif", bias, nodata=-9999.0)
    allowed = (bias.ravel() > 0) & stack.valid_cells()
    for seed in range(5):
        points = sample_background(stack, 100, method="bias", bias=path, seed=seed)
        assert len(points) == 100 and allowed[points["cell"]].all()
    n_allowed = int(allowed.sum())
    everything = sample_background(stack, n_allowed, method="bias", bias=path)
    np.testing.assert_array_equal(everything["cell"], np.flatnonzero(allowed))
    with pytest.raises(DataError, match=rf"only {n_allowed} cells with a positive bias value"):
        sample_background(stack, n_allowed + 1, method="bias", bias=path)
    # a strong bias concentrates the draws
    strong = np.ones((HEIGHT, WIDTH))
    strong[:10, 15:] = 1000.0
    points = sample_background(stack, 20, method="bias", bias=_write(tmp_path / "strong.tif", strong))
    rows, cols = np.divmod(points["cell"].to_numpy(), WIDTH)
    assert np.mean((rows < 10) & (cols >= 15)) > 0.9


def test_bias_raster_all_zero_or_off_the_grid_is_an_error(stack, tmp_path):
    zero = _write(tmp_path / "zero.tif", np.zeros((HEIGHT, WIDTH)))
    with pytest.raises(DataError, match="zero, negative or nodata at every cell"):
        sample_background(stack, 5, method="bias", bias=zero)
    coarse = _write(tmp_path / "coarse.tif", np.ones((HEIGHT // 2, WIDTH // 2)),
                    transform=Affine(2 * RES, 0.0, WEST, 0.0, -2 * RES, NORTH))
    with pytest.raises(RasterError, match=r"coarse.tif.* 15 x 10 cells .*not on the stack's grid .*30 x 20 "
                                          r"cells.*gdalwarp .*-te 0 40 15 50 -tr 0.5 0.5.*reproject_match"):
        sample_background(stack, 5, method="bias", bias=coarse)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "positive integer, got n=0"),
        ({"n": 2.5}, "positive integer"),
        ({"method": "random"}, "unknown background method='random': use one of uniform, target-group, bias"),
        ({"method": "target-group"}, "needs group="),
        ({"method": "bias"}, "needs bias="),
        ({"buffer_km": -1.0}, "buffer_km must be a distance >= 0"),
        ({"buffer_km": 10.0}, "needs exclude="),
        ({"method": "target-group", "group": ([1.0, 2.0], [45.0])}, "2 longitudes but 1 latitudes"),
    ],
)
def test_bad_arguments_are_named(stack, kwargs, message):
    kwargs = {"n": 5, **kwargs}
    with pytest.raises(DataError, match=message):
        sample_background(stack, **kwargs)
