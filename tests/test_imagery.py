"""Sentinel imagery discovery and window reads, on the real BigEarthNet example patches.

``bigearthnet-common`` ships six Sentinel-2 L2A patches (12 per-band GeoTIFFs at 10/20/60 m,
uint16, in UTM zones 29N, 33N and 35N) and the six matching Sentinel-1 patches (VV, VH float32 dB),
each with a ``*_labels_metadata.json`` sidecar giving its bounds and source product.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.shutil as rio_shutil
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from foundation_encoders.discovery import find_scenes
from foundation_encoders.imagery import (
    S1_BANDS,
    S2_BANDS,
    ImageryError,
    Scene,
    SceneList,
    locate,
)

SCENE = "S2A_MSIL2A_20171221T112501_56_35"  # UTM 29N, tile_source baseline N0206


@pytest.fixture(scope="session")
def s2_scenes(ben_dir: Path) -> Iterator[SceneList]:
    scenes = find_scenes(ben_dir / "BigEarthNet-S2-Example")
    yield scenes
    for scene in scenes:
        scene.close()


def _by_name(scenes: list[Scene], name: str) -> Scene:
    return next(s for s in scenes if s.name == name)


def _centre(scene: Scene) -> tuple[float, float]:
    left, bottom, right, top = scene.bounds
    return (left + right) / 2, (bottom + top) / 2


def _copy_scene(src: Path, dst_root: Path, new_name: str, *, sidecar: bool) -> Path:
    """Copy one per-band scene folder under ``dst_root``, renaming its files to ``new_name``."""
    dst = dst_root / new_name
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix == ".tif" or sidecar:
            shutil.copy(f, dst / f.name.replace(src.name, new_name))
    return dst


def _write(path: Path, data: np.ndarray, like: Path, descriptions: list[str] | None = None) -> None:
    with rasterio.open(like) as src:
        assert src.shape == data.shape[1:]
        profile = {**src.profile, "count": data.shape[0], "dtype": data.dtype.name}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, text in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, text)


def test_finds_six_s2_scenes_of_twelve_bands(s2_scenes: SceneList) -> None:
    assert len(s2_scenes) == 6
    assert s2_scenes.problems == []
    for scene in s2_scenes:
        assert scene.sensor == "S2"
        assert scene.band_names == S2_BANDS
        assert scene.skipped == ()
        assert scene.nodata == 0.0
        path, index = scene.bands["B8A"]
        assert Path(path).name == f"{scene.name}_B8A.tif" and index == 1


def test_crs_and_bounds_match_the_sidecars(s2_scenes: SceneList, ben_dir: Path) -> None:
    for scene in s2_scenes:
        sidecar = Path(scene.bands["B02"][0]).parent / f"{scene.name}_labels_metadata.json"
        meta = json.loads(sidecar.read_text())
        c = meta["coordinates"]
        assert scene.bounds == (c["ulx"], c["lry"], c["lrx"], c["uly"])
        assert scene.crs == CRS.from_wkt(meta["projection"])
    assert {s.crs.to_epsg() for s in s2_scenes} == {32629, 32633, 32635}


def test_offset_from_the_sidecar_baseline(s2_scenes: SceneList) -> None:
    scene = _by_name(s2_scenes, SCENE)
    assert scene.offset == 0.0
    assert "02.06" in scene.offset_source and "labels_metadata.json" in scene.offset_source
    assert all(s.offset == 0.0 for s in s2_scenes)


def test_offset_1000_from_baseline_or_date_in_the_name(ben_dir: Path, tmp_path: Path) -> None:
    src = ben_dir / "BigEarthNet-S2-Example" / SCENE
    _copy_scene(src, tmp_path / "baseline", "S2A_MSIL2A_20171221T112501_N0500_56_35", sidecar=True)
    _copy_scene(src, tmp_path / "late", "S2A_MSIL2A_20220125T112501_56_35", sidecar=False)
    _copy_scene(src, tmp_path / "early", "S2A_MSIL2A_20220124T112501_56_35", sidecar=False)
    _copy_scene(src, tmp_path / "nothing", "patch_56_35", sidecar=False)
    (scene,) = find_scenes(tmp_path / "baseline")
    assert (scene.offset, "05.00" in scene.offset_source) == (1000.0, True)
    (scene,) = find_scenes(tmp_path / "late")
    assert (scene.offset, scene.offset_source.startswith("acquisition date 2022-01-25")) == (1000.0, True)
    (scene,) = find_scenes(tmp_path / "early")
    assert (scene.offset, scene.offset_source.startswith("acquisition date 2022-01-24")) == (0.0, True)
    (scene,) = find_scenes(tmp_path / "nothing")
    assert scene.offset == 0.0 and scene.offset_source.startswith("assumed")
    assert "--l2a-offset 1000" in scene.offset_source


def test_offset_from_gdal_metadata_beats_the_sidecar(ben_dir: Path, tmp_path: Path) -> None:
    folder = _copy_scene(ben_dir / "BigEarthNet-S2-Example" / SCENE, tmp_path, SCENE, sidecar=True)
    with rasterio.open(folder / f"{SCENE}_B04.tif", "r+") as dst:
        dst.update_tags(1, BOA_ADD_OFFSET_B4="-1000")
    (scene,) = find_scenes(tmp_path)
    assert scene.offset == 1000.0 and "BOA_ADD_OFFSET_B4" in scene.offset_source


def test_offset_override_is_subtracted(ben_dir: Path) -> None:
    folder = ben_dir / "BigEarthNet-S2-Example" / SCENE
    (scene,) = find_scenes(folder, l2a_offset=1000)
    assert scene.offset == 1000.0 and "given" in scene.offset_source
    with scene:
        data, valid = scene.read(*_centre(scene), bands=["B04"])
    with rasterio.open(folder / f"{SCENE}_B04.tif") as src:
        raw = src.read(1).astype(np.float32)
    np.testing.assert_array_equal(data[0], raw - 1000)
    assert valid.all()
    (s1,) = find_scenes(next((ben_dir / "BigEarthNet-S1-Example").glob("*_56_35")), l2a_offset=1000)
    assert s1.offset == 0.0
    with pytest.raises(ImageryError, match="l2a_offset"):
        find_scenes(folder, l2a_offset=500)


def test_locate_finds_the_scene_at_its_centre(s2_scenes: SceneList) -> None:
    lons, lats = [], []
    for scene in s2_scenes:
        lon, lat = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True).transform(*_centre(scene))
        lons.append(lon)
        lats.append(lat)
    index, x, y = locate(np.array(lons + [0.0]), np.array(lats + [0.0]), s2_scenes)
    np.testing.assert_array_equal(index, [0, 1, 2, 3, 4, 5, -1])
    centres = np.array([_centre(s) for s in s2_scenes])
    np.testing.assert_allclose(x[:6], centres[:, 0], atol=1e-6)
    np.testing.assert_allclose(y[:6], centres[:, 1], atol=1e-6)
    assert np.isnan(x[6]) and np.isnan(y[6])


def test_locate_prefers_the_scene_holding_most_of_the_window() -> None:
    crs = CRS.from_epsg(32633)
    common: dict[str, Any] = dict(
        sensor="S1", crs=crs, bands={"VV": ("unused.tif", 1)}, nodata=None, offset=0.0, offset_source=""
    )
    west = Scene(name="west", bounds=(500_000.0, 5_000_000.0, 501_200.0, 5_001_200.0), **common)
    east = Scene(name="east", bounds=(500_600.0, 5_000_000.0, 501_800.0, 5_001_200.0), **common)
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform([500_700.0, 501_100.0, 501_700.0, 499_000.0], [5_000_600.0] * 4)
    index, x, _ = locate(lon, lat, [west, east])
    np.testing.assert_array_equal(index, [0, 1, 1, -1])
    np.testing.assert_allclose(x[:3], [500_700.0, 501_100.0, 501_700.0], atol=1e-6)


def test_centre_window_reproduces_native_and_bilinear_bands(s2_scenes: SceneList) -> None:
    scene = _by_name(s2_scenes, SCENE)
    lon, lat = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True).transform(*_centre(scene))
    index, x, y = locate([lon], [lat], s2_scenes)
    assert s2_scenes[index[0]] is scene
    data, valid = scene.read(x[0], y[0])
    assert data.shape == (12, 120, 120) and data.dtype == np.float32 and valid.all()
    with rasterio.open(scene.bands["B04"][0]) as src:
        np.testing.assert_array_equal(data[S2_BANDS.index("B04")], src.read(1))
    with rasterio.open(scene.bands["B05"][0]) as src:
        assert src.res == (20.0, 20.0)
        expected = src.read(1, out_shape=(120, 120), resampling=Resampling.bilinear)
        np.testing.assert_array_equal(data[S2_BANDS.index("B05")], expected)
    subset, _ = scene.read(x[0], y[0], bands=["b8a", "B4"])
    np.testing.assert_array_equal(subset, data[[S2_BANDS.index("B8A"), S2_BANDS.index("B04")]])


def test_window_near_the_edge_is_partly_invalid(s2_scenes: SceneList) -> None:
    scene = _by_name(s2_scenes, SCENE)
    left, _, _, _ = scene.bounds
    data, valid = scene.read(left + 300.0, _centre(scene)[1])
    assert not valid[:, :30].any() and valid[:, 30:].all()
    assert np.isnan(data[:, :, :30]).all() and np.isfinite(data[:, :, 30:]).all()
    with rasterio.open(scene.bands["B04"][0]) as src:
        np.testing.assert_array_equal(data[S2_BANDS.index("B04"), :, 30:], src.read(1)[:, :90])


def test_nodata_pixels_inside_the_image_are_invalid(ben_dir: Path, tmp_path: Path) -> None:
    folder = _copy_scene(ben_dir / "BigEarthNet-S2-Example" / SCENE, tmp_path, SCENE, sidecar=True)
    with rasterio.open(folder / f"{SCENE}_B05.tif", "r+") as dst:  # 20 m, 60 x 60
        block = dst.read(1)
        block[10:20, 30:40] = 0  # ESA NO_DATA; the file declares no nodata value
        dst.write(block, 1)
    (scene,) = find_scenes(tmp_path)
    with scene:
        data, valid = scene.read(*_centre(scene))
    hole = np.zeros((120, 120), bool)
    hole[20:40, 60:80] = True
    np.testing.assert_array_equal(valid, ~hole)
    assert np.isnan(data[S2_BANDS.index("B05")][hole]).all()
    assert np.isfinite(data[S2_BANDS.index("B04")]).all()


def test_scene_pickles_without_its_open_datasets(s2_scenes: SceneList) -> None:
    scene = s2_scenes[0]
    data, _ = scene.read(*_centre(scene))
    copy = pickle.loads(pickle.dumps(scene))
    with copy:
        np.testing.assert_array_equal(copy.read(*_centre(copy))[0], data)


def test_read_rejects_b10_and_unknown_bands(s2_scenes: SceneList) -> None:
    scene = s2_scenes[0]
    with pytest.raises(ImageryError, match="B10"):
        scene.read(*_centre(scene), bands=["B10"])
    with pytest.raises(ImageryError, match="no band 'VV'"):
        scene.read(*_centre(scene), bands=["VV"])
    with pytest.raises(ImageryError, match="finite"):
        scene.read(float("nan"), 0.0)


def test_b10_file_is_skipped_and_recorded(ben_dir: Path, tmp_path: Path) -> None:
    folder = _copy_scene(ben_dir / "BigEarthNet-S2-Example" / SCENE, tmp_path, SCENE, sidecar=True)
    shutil.copy(folder / f"{SCENE}_B01.tif", folder / f"{SCENE}_B10.tif")
    (scene,) = find_scenes(tmp_path)
    assert scene.band_names == S2_BANDS
    assert len(scene.skipped) == 1 and "B10" in scene.skipped[0]


def test_scene_with_bands_in_two_crss_is_reported(ben_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "s2"
    shutil.copytree(ben_dir / "BigEarthNet-S2-Example", root)
    bad = root / SCENE / f"{SCENE}_B05.tif"
    moved = bad.with_name("moved.tif")
    with rasterio.open(bad) as src, WarpedVRT(src, crs="EPSG:32630") as vrt:
        rio_shutil.copy(vrt, moved, driver="GTiff")
    moved.replace(bad)
    scenes = find_scenes(root)
    assert len(scenes) == 5 and SCENE not in {s.name for s in scenes}
    (problem,) = scenes.problems
    assert f"{SCENE}_B05.tif (EPSG:32630)" in problem and f"{SCENE}_B04.tif (EPSG:32629)" in problem
    with scenes[0]:
        _, valid = scenes[0].read(*_centre(scenes[0]))
    assert valid.all()
    with pytest.raises(ImageryError, match="EPSG:32630"):
        find_scenes(root / SCENE)


def test_multiband_geotiff_reads_like_the_per_band_scene(s2_scenes: SceneList, tmp_path: Path) -> None:
    scene = _by_name(s2_scenes, SCENE)
    cx, cy = _centre(scene)
    stack, valid = scene.read(cx, cy)
    assert valid.all()
    # Accepted spellings in the descriptions, plus a band that is not a Sentinel band.
    names = ["B1", *S2_BANDS[1:8], "b08a", *S2_BANDS[9:], "QA60"]
    data = np.concatenate([stack, np.ones((1, 120, 120), np.float32)]).astype(np.uint16)
    path = tmp_path / f"{SCENE}_stack.tif"
    _write(path, data, like=Path(scene.bands["B04"][0]), descriptions=names)
    (multi,) = find_scenes(path)
    assert multi.sensor == "S2" and multi.band_names == S2_BANDS and multi.bounds == scene.bounds
    assert multi.bands["B8A"] == (str(path), 9)
    assert len(multi.skipped) == 1 and "QA60" in multi.skipped[0]
    with multi:
        np.testing.assert_array_equal(multi.read(cx, cy)[0], stack)
        ten_metre = [S2_BANDS.index(b) for b in ("B02", "B03", "B04", "B08")]
        for dx, dy in [(300.0, -200.0), (-610.0, 1000.0)]:
            expected, expected_valid = scene.read(cx + dx, cy + dy)
            got, got_valid = multi.read(cx + dx, cy + dy)
            np.testing.assert_array_equal(got_valid, expected_valid)
            np.testing.assert_array_equal(got[ten_metre], expected[ten_metre])
            # 20/60 m bands: the same bilinear values, up to the uint16 rounding of exact .5 ties.
            np.testing.assert_allclose(got, expected, rtol=0, atol=1)


def test_explicit_band_names_for_a_file_without_descriptions(s2_scenes: SceneList, tmp_path: Path) -> None:
    scene = _by_name(s2_scenes, SCENE)
    rgbn, _ = scene.read(*_centre(scene), bands=["B02", "B03", "B04", "B08"])
    path = tmp_path / "composite.tif"
    _write(path, rgbn.astype(np.uint16), like=Path(scene.bands["B04"][0]))
    with pytest.raises(ImageryError, match="bands="):
        find_scenes(path)
    (multi,) = find_scenes(path, bands=["B02", "B03", "B04", "B08"])
    assert multi.band_names == ("B02", "B03", "B04", "B08")
    assert multi.offset_source.startswith("assumed")
    with multi:
        np.testing.assert_array_equal(multi.read(*_centre(scene))[0], rgbn)
    with pytest.raises(ImageryError, match="has 4 bands but bands= names 3"):
        find_scenes(path, bands=["B02", "B03", "B04"])
    with pytest.raises(ImageryError, match="unknown band names"):
        find_scenes(path, bands=["B02", "B03", "B04", "NIR"])


def test_s1_scenes(ben_dir: Path) -> None:
    scenes = find_scenes([ben_dir / "BigEarthNet-S1-Example"])
    assert len(scenes) == 6
    assert {s.crs.to_epsg() for s in scenes} == {32629, 32633, 32635}
    for scene in scenes:
        assert (scene.sensor, scene.band_names, scene.offset, scene.nodata) == ("S1", S1_BANDS, 0.0, None)
    scene = scenes[0]
    with scene:
        data, valid = scene.read(*_centre(scene))
    with rasterio.open(scene.bands["VV"][0]) as src:
        assert src.dtypes[0] == "float32"
        np.testing.assert_array_equal(data[0], src.read(1))
    assert valid.all() and data.max() < 20 and data.min() > -60  # dB, not linear


def test_missing_imagery_errors_say_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageryError, match=r"expected per-band GeoTIFFs named <prefix>_<BAND>\.tif"):
        find_scenes(tmp_path / "empty")
    with pytest.raises(ImageryError, match="does not exist"):
        find_scenes(tmp_path / "nowhere")
