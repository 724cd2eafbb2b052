"""Tests of masksdm.data.grid on tiny rasters whose values encode their pixel position (row * 1000 + col)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from fixtures.rasters import position_values, write_netcdf, write_position_tif
from pyproj import Transformer
from rasterio.windows import Window

from masksdm.data.grid import GeoTIFFWriter, RasterStack, write_geotiff
from masksdm.errors import ConfigError, OutputExistsError, RasterError

# Template grid of every test unless told otherwise: EPSG:4326, lon 0..15, lat 40..50, 0.5 degree.
WEST, NORTH, RES, HEIGHT, WIDTH = 0.0, 50.0, 0.5, 20, 30


def _centres(transform: Affine, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """x, y of every cell centre, row-major."""
    col, row = (a.ravel() for a in np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5))
    t = transform
    return t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f


@pytest.fixture
def folder(tmp_path):
    """bio_1 (float32, nodata -9999 at two cells), bio_2 (scale/offset), bio_3 (int16, nodata)."""
    folder = tmp_path / "rasters"
    write_position_tif(folder / "bio_1.tif", nodata=-9999.0, nodata_pixels=((3, 4), (19, 29)))
    write_position_tif(folder / "bio_2.tif", scale=0.5, offset=10.0)
    write_position_tif(folder / "bio_3.tif", dtype="int16", nodata=-9999, nodata_pixels=((0, 0),))
    return folder


def test_aligned_rasters_read_exactly(folder):
    with RasterStack(folder) as stack:
        assert stack.names == ["bio_1", "bio_2", "bio_3"]
        assert stack.crs == "EPSG:4326"
        assert stack.transform == Affine(RES, 0.0, WEST, 0.0, -RES, NORTH)
        assert stack.shape == (HEIGHT, WIDTH) == (stack.height, stack.width)
        x = stack.read(["bio_3", "bio_1", "bio_2"])
    assert x.dtype == np.float32 and x.shape == (HEIGHT * WIDTH, 3)
    pos = position_values(HEIGHT, WIDTH).ravel()
    bio_1, bio_3 = pos.copy(), pos.copy()
    bio_1[[3 * WIDTH + 4, HEIGHT * WIDTH - 1]] = np.nan
    bio_3[0] = np.nan
    np.testing.assert_array_equal(x[:, 1], bio_1)
    np.testing.assert_array_equal(x[:, 2], pos * 0.5 + 10.0)
    np.testing.assert_array_equal(x[:, 0], bio_3)


def test_template_defaults_to_bio_1_and_like_overrides(folder, tmp_path):
    coarse = write_position_tif(folder / "a_coarse.tif", res=1.0, height=10, width=15)
    with RasterStack(folder) as stack:
        assert stack.names[0] == "a_coarse"
        assert stack.transform.a == RES and stack.shape == (HEIGHT, WIDTH)
        # nearest: each 1-degree pixel fills 2 x 2 cells of the 0.5-degree grid
        got = stack.read("a_coarse").reshape(stack.shape)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH] // 2
    np.testing.assert_array_equal(got, rows * 1000 + cols)
    with RasterStack(folder, like=coarse) as stack:
        assert stack.shape == (10, 15) and stack.transform.a == 1.0
    with pytest.raises(RasterError, match="does not exist"):
        RasterStack(folder, like=tmp_path / "nope.tif")


def test_netcdf_on_the_template_grid(folder):
    write_netcdf(folder / "tmean.nc")
    with RasterStack(folder) as stack:
        got = stack.read(["tmean"])[:, 0]
    np.testing.assert_array_equal(got, position_values(HEIGHT, WIDTH).ravel())


@pytest.mark.parametrize(
    ("crs", "west", "north"),
    [("EPSG:3857", 300_000.0, 6_200_000.0), ("ESRI:54009", 200_000.0, 5_900_000.0)],
)
def test_other_crs_warped_nearest(folder, crs, west, north):
    res, height, width = 40_000.0, 25, 30
    write_position_tif(
        folder / "proj.tif", crs=crs, west=west, north=north, res=res, height=height,
        width=width, nodata=-1.0, nodata_pixels=((5, 5), (6, 7)), scale=2.0, offset=1.0,
    )  # fmt: skip
    with RasterStack(folder) as stack:
        got = stack.read(["proj"])[:, 0]
    # expected: the source pixel holding each template cell centre
    lon, lat = _centres(Affine(RES, 0.0, WEST, 0.0, -RES, NORTH), HEIGHT, WIDTH)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    col_f, row_f = (x - west) / res, (north - y) / res
    col, row = np.floor(col_f).astype(int), np.floor(row_f).astype(int)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    source = position_values(height, width) * 2.0 + 1.0
    source[5, 5] = source[6, 7] = np.nan
    expected = np.where(inside, source[row.clip(0, height - 1), col.clip(0, width - 1)], np.nan)
    # GDAL approximates the transformation to 1/8 pixel: skip centres near a source pixel edge
    edge = np.minimum(np.abs(col_f - np.round(col_f)), np.abs(row_f - np.round(row_f)))
    clear = edge > 0.2
    assert inside.mean() < 0.9  # part of the grid lies outside the source
    assert np.isnan(expected[clear]).any() and (~np.isnan(expected[clear])).sum() > 100
    np.testing.assert_array_equal(got[clear], expected[clear])


def test_bilinear_resampling(tmp_path):
    # a finer template in the same CRS; position values are linear, so bilinear is exact inside
    write_position_tif(tmp_path / "bio_1.tif", res=0.25, height=40, width=60)
    write_position_tif(tmp_path / "coarse.tif")
    with RasterStack(tmp_path, resampling="bilinear") as stack:
        got = stack.read(["coarse"])[:, 0].reshape(40, 60)
    row_f = (np.arange(40) + 0.5) / 2 - 0.5  # fractional source pixel of each template centre
    col_f = (np.arange(60) + 0.5) / 2 - 0.5
    expected = row_f[:, None] * 1000 + col_f[None, :]
    np.testing.assert_allclose(got[1:-1, 1:-1], expected[1:-1, 1:-1], rtol=0, atol=1e-2)
    with pytest.raises(ConfigError, match="bilinear.*cubic"):
        RasterStack(tmp_path, resampling="bicubic")


def test_lonlat_geographic_and_projected(folder, tmp_path):
    with RasterStack(folder) as stack:
        lon, lat = stack.lonlat()
        x = stack.read(["Longitude", "bio_2", "Latitude"])
    exp_lon, exp_lat = _centres(stack.transform, HEIGHT, WIDTH)
    np.testing.assert_array_equal(lon, exp_lon)
    np.testing.assert_array_equal(lat, exp_lat)
    np.testing.assert_array_equal(x[:, 0], exp_lon.astype(np.float32))
    np.testing.assert_array_equal(x[:, 2], exp_lat.astype(np.float32))

    template = write_position_tif(
        tmp_path / "laea.tif", crs="EPSG:3035", west=4_000_000.0, north=3_000_000.0, res=1000.0
    )
    with RasterStack(folder, like=template) as stack:
        assert stack.crs == "EPSG:3035"
        lon, lat = stack.lonlat(Window(0, 5, WIDTH, 3))
    x, y = _centres(Affine(1000.0, 0.0, 4_000_000.0, 0.0, -1000.0, 3_000_000.0), HEIGHT, WIDTH)
    exp_lon, exp_lat = Transformer.from_crs("EPSG:3035", "EPSG:4326", always_xy=True).transform(
        x, y
    )
    cells = slice(5 * WIDTH, 8 * WIDTH)
    np.testing.assert_allclose(lon, exp_lon[cells], rtol=0, atol=1e-9)
    np.testing.assert_allclose(lat, exp_lat[cells], rtol=0, atol=1e-9)


def test_windows_cover_grid_once(folder):
    with RasterStack(folder) as stack:
        full = stack.read(stack.names + ["Longitude"])
        windows = list(stack.windows(block_rows=7))
        covered = np.zeros(stack.shape, dtype=int)
        for w in windows:
            covered[w.toslices()] += 1
        blocks = [stack.read(stack.names + ["Longitude"], w) for w in windows]
        sub = stack.read(["bio_2"], Window(3, 2, 4, 5))
        with pytest.raises(ValueError, match="block_rows must be positive"):
            stack.windows(0)
        with pytest.raises(ValueError, match="inside the 20 x 30 grid"):
            stack.read(["bio_1"], Window(28, 0, 4, 5))
    assert [(w.col_off, w.width, w.height) for w in windows] == [(0, WIDTH, 7)] * 2 + [
        (0, WIDTH, 6)
    ]
    assert (covered == 1).all()
    np.testing.assert_array_equal(np.concatenate(blocks), full)
    np.testing.assert_array_equal(sub[:, 0], full[:, 1].reshape(stack.shape)[2:7, 3:7].ravel())


def test_missing_names_and_rasters_without_crs(folder):
    with RasterStack(folder) as stack:
        with pytest.raises(RasterError, match=r"\['bio_9', 'Elevation'\].*available.*bio_3"):
            stack.read(["bio_1", "bio_9", "Elevation"])
    write_position_tif(folder / "nocrs.tif", crs=None)
    with pytest.raises(RasterError, match="nocrs.tif' has no CRS"):
        RasterStack(folder)


def test_profile(folder):
    with RasterStack(folder) as stack:
        profile = stack.profile(count=2)
        assert stack.profile(count=1, dtype="int16", nodata=-1)["predictor"] == 2
        with pytest.raises(ConfigError, match="nodata"):
            stack.profile(count=1, dtype="uint8")
    assert profile["crs"] == stack.crs and profile["transform"] == stack.transform
    assert (profile["width"], profile["height"], profile["count"]) == (WIDTH, HEIGHT, 2)
    assert profile["dtype"] == "float32" and np.isnan(profile["nodata"])
    assert profile["tiled"] and profile["blockxsize"] == profile["blockysize"] == 256
    assert (profile["compress"], profile["predictor"], profile["BIGTIFF"]) == (
        "deflate",
        3,
        "IF_SAFER",
    )


def _bands(stack):
    names = ["bio_1", "bio_2", "Latitude"]
    return names, stack.read(names).T.reshape(len(names), *stack.shape)


# rioxarray's affine_to_coords multiplies Affines with `*`, which affine >= 3.1 warns about.
@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")
def test_write_geotiff_georeferenced(folder, tmp_path):
    import rioxarray

    out = tmp_path / "out" / "map.tif"
    with RasterStack(folder) as stack:
        names, bands = _bands(stack)
        assert write_geotiff(out, bands, stack=stack, descriptions=names) == out
        with pytest.raises(OutputExistsError, match="force"):
            write_geotiff(out, bands, stack=stack)
        write_geotiff(out, bands[:2], stack=stack, descriptions=names[:2], force=True)
        write_geotiff(out, bands, profile=stack.profile(count=1), descriptions=names, force=True)
        with pytest.raises(ValueError, match=r"\(n_bands, 20, 30\)"):
            write_geotiff(tmp_path / "bad.tif", bands[:, :5], stack=stack)
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.tif"]  # no temp file left
    with rasterio.open(out) as src:
        assert src.crs == "EPSG:4326" and src.transform == stack.transform
        assert src.count == 3 and src.dtypes == ("float32",) * 3 and np.isnan(src.nodata)
        assert src.descriptions == tuple(names)
        np.testing.assert_array_equal(src.read(), bands)
        pos = position_values(HEIGHT, WIDTH)
        assert src.read(2)[7, 11] == 7011 * 0.5 + 10 and np.isnan(src.read(1)[3, 4])
        np.testing.assert_array_equal(src.read(3)[:, 0], NORTH - RES * (np.arange(HEIGHT) + 0.5))
        np.testing.assert_array_equal(src.read(2), pos * 0.5 + 10)
    with rioxarray.open_rasterio(out) as da:
        assert da.attrs["long_name"] == tuple(names)
        assert da.rio.crs == "EPSG:4326"
        np.testing.assert_array_equal(da.x, WEST + RES * (np.arange(WIDTH) + 0.5))
        np.testing.assert_array_equal(da.y, NORTH - RES * (np.arange(HEIGHT) + 0.5))
        np.testing.assert_array_equal(da.values, bands)


def test_streaming_writer(folder, tmp_path):
    with RasterStack(folder) as stack:
        names, bands = _bands(stack)
        write_geotiff(tmp_path / "whole.tif", bands, stack=stack, descriptions=names)
        with GeoTIFFWriter(tmp_path / "streamed.tif", stack, descriptions=names) as out:
            for w in stack.windows(block_rows=7):
                out.write(w, stack.read(names, w).T.reshape(len(names), w.height, w.width))
            with pytest.raises(ValueError, match=r"\(n_bands, 7, 30\)"):
                out.write(Window(0, 0, WIDTH, 7), bands)

        with pytest.raises(RuntimeError, match="boom"):
            with GeoTIFFWriter(tmp_path / "failed.tif", stack, descriptions=names) as out:
                out.write(Window(0, 0, WIDTH, HEIGHT), bands)
                raise RuntimeError("boom")
        with pytest.raises(OutputExistsError, match="streamed.tif"):
            GeoTIFFWriter(tmp_path / "streamed.tif", stack, descriptions=names)
        with pytest.raises(ValueError, match="not open"):
            out.write(Window(0, 0, WIDTH, HEIGHT), bands)
    assert sorted(p.name for p in tmp_path.glob("*.tif*")) == ["streamed.tif", "whole.tif"]
    with (
        rasterio.open(tmp_path / "whole.tif") as whole,
        rasterio.open(tmp_path / "streamed.tif") as streamed,
    ):
        assert np.isnan(streamed.nodata) and np.isnan(whole.nodata)  # NaN != NaN: drop it
        assert {**streamed.profile, "nodata": 0} == {**whole.profile, "nodata": 0}
        assert streamed.descriptions == whole.descriptions == tuple(names)
        np.testing.assert_array_equal(streamed.read(), whole.read())


def _write_bands(path, bands, descriptions, *, res=RES, nodata=None, scales=None, offsets=None):
    """A multiband GeoTIFF of ``bands`` (n, h, w) on the test grid (or at ``res``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=bands.shape[1], width=bands.shape[2], count=len(bands),
                       dtype=str(bands.dtype), crs="EPSG:4326", transform=Affine(res, 0.0, WEST, 0.0, -res, NORTH),
                       nodata=nodata) as dst:
        dst.write(bands)
        for band, text in enumerate(descriptions or (), start=1):
            dst.set_band_description(band, text)
        if scales is not None:
            dst.scales = scales
            dst.offsets = offsets or (0.0,) * len(bands)
    return path


@pytest.mark.parametrize("res", [RES, 1.0])  # on the template grid, and warped onto it
def test_a_multiband_stack_is_read_band_by_band_like_single_files(tmp_path, folder, res):
    """bio_1, bio_2 (scale 0.5 + 10) and bio_3 (nodata) of the fixture, as bands of one file."""
    shape = (HEIGHT, WIDTH) if res == RES else (HEIGHT // 2, WIDTH // 2)
    with RasterStack(folder) as singles:
        expected = singles.read(["bio_3", "bio_1"])
    pos = position_values(*shape)
    nodata = -9999.0
    bio_1, bio_3 = pos.copy(), pos.copy()
    bio_1[3, 4] = bio_1[-1, -1] = bio_3[0, 0] = nodata
    stack = _write_bands(tmp_path / "stack" / "climate.tif", np.stack([bio_3, pos, bio_1]), ["BIO_03", "bio_2", "bio1"],
                         res=res, nodata=nodata, scales=(1.0, 0.5, 1.0), offsets=(0.0, 10.0, 0.0))
    like = folder / "bio_1.tif"
    with RasterStack(stack, like=like) as multi:
        assert multi.names == ["bio_3", "bio_2", "bio_1"]
        assert multi.paths == {"bio_3": stack, "bio_2": stack, "bio_1": stack}
        assert multi.widths == {"bio_3": 1, "bio_2": 1, "bio_1": 1}
        got = multi.read(["bio_3", "bio_1", "bio_2"])
    if res == RES:
        np.testing.assert_array_equal(got[:, :2], expected)
        np.testing.assert_array_equal(got[:, 2], pos.ravel() * 0.5 + 10.0)
    else:  # nearest: each 1-degree pixel fills 2 x 2 cells; every band keeps its own nodata and scale
        for column, (band, scale, offset) in enumerate([(bio_3, 1.0, 0.0), (bio_1, 1.0, 0.0), (pos, 0.5, 10.0)]):
            up = np.repeat(np.repeat(band, 2, axis=0), 2, axis=1).ravel()
            np.testing.assert_array_equal(got[:, column], np.where(up == nodata, np.nan, up * scale + offset))


def test_an_embedding_raster_is_one_predictor_of_all_its_bands(tmp_path, folder):
    emb = np.stack([position_values(HEIGHT, WIDTH) + 100_000 * b for b in range(4)])
    _write_bands(folder / "sat.tif", emb, [f"e{i}" for i in range(4)])  # as `masksdm embed cells` writes it
    _write_bands(tmp_path / "ws" / "embeddings" / "other.tif", emb[:3], None)  # WORKSPACE/embeddings/<name>.tif
    with RasterStack([folder, tmp_path / "ws" / "embeddings"]) as stack:
        assert stack.widths == {"bio_1": 1, "bio_2": 1, "bio_3": 1, "sat": 4, "other": 3}
        x = stack.read(["sat", "bio_2", "other"])
    assert x.shape == (HEIGHT * WIDTH, 4 + 1 + 3)
    np.testing.assert_array_equal(x[:, :4], emb.reshape(4, -1).T)
    np.testing.assert_array_equal(x[:, 5:], emb[:3].reshape(3, -1).T)
