"""The embedding pipeline on REAL Sentinel-2/Sentinel-1 patches (BigEarthNet examples) with a tiny
randomly initialised SMARTIES saved under the official key names: plots and map cells, resume,
bad input, and the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import torch.nn.functional as F
from affine import Affine
from pyproj import Transformer
from safetensors.torch import save_file

import foundation_encoders
from foundation_encoders.discovery import find_scenes
from foundation_encoders.smarties import build_smarties
from foundation_encoders.spectrum import BandError, normalise
from masksdm.cli import main
from masksdm.data.embeddings import read_embeddings
from masksdm.data.plotdata import PlotData
from masksdm.explain.games import global_shapley
from masksdm.model.checkpoint import load_checkpoint
from masksdm.model.training import train
from masksdm.satellite import embed_cells, embed_locations
from masksdm.workspace import Workspace, prepare_workspace
from tests.conftest import make_plot_data, tiny_config

TINY = "smarties-tiny"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_smarties(TINY)
    path = tmp_path_factory.mktemp("weights") / "smarties-tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture
def tiny_registered(monkeypatch):
    """``--encoder smarties-tiny`` on the command line, for this test only."""
    def factory(weights=None, sha256=None, **kw):
        return build_smarties(TINY, weights=weights, sha256=sha256, **kw)

    monkeypatch.setattr(foundation_encoders, "ENCODERS", {**foundation_encoders.ENCODERS, TINY: factory})


@pytest.fixture(scope="module")
def encoder(tiny_weights):
    return build_smarties(TINY, weights=tiny_weights)


@pytest.fixture(scope="module")
def s2(ben_dir):
    return find_scenes(ben_dir / "BigEarthNet-S2-Example")


def _centres(scenes) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of each scene's centre."""
    lon, lat = [], []
    for scene in scenes:
        left, bottom, right, top = scene.bounds
        to_wgs84 = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
        x, y = to_wgs84.transform((left + right) / 2, (bottom + top) / 2)
        lon.append(x)
        lat.append(y)
    return np.array(lon), np.array(lat)


def test_one_plot_is_the_encoder_on_its_normalised_resized_window(encoder, s2):
    lon, lat = _centres(s2)
    result = embed_locations(encoder, s2, lon[:1], lat[:1], device="cpu", progress=False)
    assert result.status == ["ok"] and result.vectors.shape == (1, 32)
    scene = s2[0]
    left, bottom, right, top = scene.bounds
    raw, valid = scene.read((left + right) / 2, (bottom + top) / 2, size_px=120)
    image = torch.from_numpy(normalise(raw, scene.band_names, valid))[None]
    image = F.interpolate(image, size=(64, 64), mode="bicubic", align_corners=False)
    with torch.no_grad():
        expected = encoder(image, scene.band_names).numpy()
    np.testing.assert_allclose(result.vectors, expected, atol=1e-5)


def test_covered_uncovered_and_partial_plots(encoder, s2):
    lon, lat = _centres(s2)
    lon = np.concatenate([lon, [0.0]])  # the last one is in the Gulf of Guinea: no image
    lat = np.concatenate([lat, [0.0]])
    result = embed_locations(encoder, s2, lon, lat, device="cpu", batch_size=4, progress=False)
    assert result.available.tolist() == [True] * 6 + [False]
    assert result.status[-1] == "not covered by any image"
    assert np.isfinite(result.vectors[:6]).all() and np.isnan(result.vectors[6]).all()
    assert len({tuple(np.round(v, 4)) for v in result.vectors[:6]}) == 6  # six different landscapes
    again = embed_locations(encoder, s2, lon, lat, device="cpu", batch_size=3, progress=False)
    np.testing.assert_allclose(again.vectors[:6], result.vectors[:6], atol=1e-5)  # batching does not matter
    # many plots per scene read by several threads at once: the same vectors as one thread
    many_lon, many_lat = np.repeat(lon[:6], 5), np.repeat(lat[:6], 5)
    threads = embed_locations(encoder, s2, many_lon, many_lat, device="cpu", batch_size=2, workers=4, progress=False)
    one = embed_locations(encoder, s2, many_lon, many_lat, device="cpu", batch_size=2, workers=1, progress=False)
    np.testing.assert_array_equal(threads.vectors, one.vectors)
    np.testing.assert_allclose(threads.vectors[::5], result.vectors[:6], atol=1e-5)
    # a window centred on a patch corner holds a quarter of valid pixels: below min_valid=0.5
    scene = s2[0]
    corner = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True).transform(scene.bounds[0] + 5, scene.bounds[3] - 5)
    edge = embed_locations(encoder, s2[:1], [corner[0]], [corner[1]], device="cpu", progress=False)
    assert edge.status[0].startswith("nodata: 2") and not edge.available[0]
    kept = embed_locations(encoder, s2[:1], [corner[0]], [corner[1]], min_valid=0.2, device="cpu", progress=False)
    assert kept.available[0]


def test_band_subsets_and_wrong_band_names(encoder, s2):
    lon, lat = _centres(s2)
    rgb = embed_locations(encoder, s2, lon[:2], lat[:2], bands=["b4", "B03", "blue_1"], device="cpu", progress=False)
    full = embed_locations(encoder, s2, lon[:2], lat[:2], device="cpu", progress=False)
    assert rgb.available.all() and not np.allclose(rgb.vectors, full.vectors)
    with pytest.raises(BandError, match="B10"):
        embed_locations(encoder, s2, lon, lat, bands=["B02", "B10"], device="cpu", progress=False)
    with pytest.raises(BandError, match="B8A"):
        embed_locations(encoder, s2, lon, lat, bands=["B02", "B8X"], device="cpu", progress=False)


def test_nodata_filled_windows_are_flagged_and_the_run_goes_on(encoder, s2, ben_dir, tmp_path):
    name = s2[1].name
    folder = tmp_path / name
    shutil.copytree(ben_dir / "BigEarthNet-S2-Example" / name, folder)
    for tif in folder.glob("*.tif"):
        with rasterio.open(tif, "r+") as dst:
            dst.write(np.zeros((dst.height, dst.width), dtype=dst.dtypes[0]), 1)  # 0 = Sentinel-2 NO_DATA
    scenes = find_scenes([folder, ben_dir / "BigEarthNet-S2-Example" / s2[2].name])
    lon, lat = _centres(s2[1:3])
    result = embed_locations(encoder, scenes, lon, lat, device="cpu", progress=False)
    assert result.status[0].startswith("nodata: 0%") and result.available.tolist() == [False, True]


class Interrupted(Exception):
    """Stands for Ctrl-C or a crash in the middle of a run."""


def test_an_interrupted_run_resumes_where_it_stopped(encoder, s2, tmp_path):
    lon, lat = _centres(s2)
    calls = []
    fail = True

    class Flaky(torch.nn.Module):
        embed_dim, img_size, name = 32, 64, TINY

        def forward(self, x, bands):
            calls.append(len(x))
            if len(calls) == 3 and fail:
                raise Interrupted
            return encoder(x, bands)

    partial = tmp_path / "run.partial"
    with pytest.raises(Interrupted):
        embed_locations(Flaky(), s2, lon, lat, batch_size=1, partial=partial, device="cpu", progress=False)
    assert len(calls) == 3
    calls.clear()
    fail = False
    resumed = embed_locations(Flaky(), s2, lon, lat, batch_size=1, partial=partial, device="cpu", progress=False)
    assert sum(calls) == 4  # the two finished plots were not embedded again
    fresh = embed_locations(encoder, s2, lon, lat, device="cpu", progress=False)
    np.testing.assert_allclose(resumed.vectors, fresh.vectors, atol=1e-5)
    with pytest.raises(ValueError, match="other settings"):
        embed_locations(encoder, s2, lon, lat, window=64, partial=partial, device="cpu", progress=False)


def test_map_cells_become_a_multiband_raster(encoder, s2, tmp_path):
    scene = s2[0]
    to_wgs84 = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    left, bottom = to_wgs84.transform(scene.bounds[0], scene.bounds[1])
    right, top = to_wgs84.transform(scene.bounds[2], scene.bounds[3])
    step = 0.005  # ~500 m cells: a 7 x 7 grid around the patch, its border outside it
    transform = Affine(step, 0, (left + right) / 2 - 3.5 * step, 0, -step, (bottom + top) / 2 + 3.5 * step)
    like = tmp_path / "bio_1.tif"
    with rasterio.open(like, "w", driver="GTiff", width=7, height=7, count=1, dtype="float32",
                       crs="EPSG:4326", transform=transform) as dst:
        dst.write(np.ones((1, 7, 7), dtype="float32"))
    out = tmp_path / "emb" / "smarties_s2.tif"
    result = embed_cells(encoder, s2, like, out, window=32, device="cpu", progress=False)
    with rasterio.open(out) as src:
        assert (src.count, src.width, src.height) == (32, 7, 7) and src.transform == transform
        bands = src.read()
    covered = np.isfinite(bands).all(axis=0)
    assert covered[3, 3] and not covered[0, 0] and covered.sum() == int(result.available.sum())
    cell = embed_locations(encoder, s2, [(left + right) / 2], [(bottom + top) / 2], window=32, device="cpu",
                           progress=False)
    np.testing.assert_allclose(bands[:, 3, 3], cell.vectors[0], atol=1e-5)


def test_map_cells_are_written_strip_by_strip(encoder, s2, tmp_path):
    """A grid taller than one 256-row strip: every strip gets its own cells' vectors."""
    scene = s2[0]
    left, bottom, right, top = scene.bounds
    rows, step = 520, 2.0  # 2 m cells in the scene's own CRS: 1,040 m tall, inside the 1.2 km patch
    transform = Affine(step, 0, (left + right) / 2, 0, -step, top - 80)
    like = tmp_path / "grid.tif"
    with rasterio.open(like, "w", driver="GTiff", width=2, height=rows, count=1, dtype="float32",
                       crs=scene.crs, transform=transform) as dst:
        dst.write(np.ones((1, rows, 2), dtype="float32"))
    out = tmp_path / "cells.tif"
    result = embed_cells(encoder, s2[:1], like, out, window=8, batch_size=256, device="cpu", progress=False)
    with rasterio.open(out) as src:
        bands = src.read()
    assert result.available.all() and np.isfinite(bands).all()
    to_wgs84 = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    for row in (0, 255, 256, 519):  # both sides of the strip boundary, and the last row
        lon, lat = to_wgs84.transform(transform.c + 1.5 * step, transform.f - (row + 0.5) * step)
        one = embed_locations(encoder, s2[:1], [lon], [lat], window=8, device="cpu", progress=False)
        np.testing.assert_allclose(bands[:, row, 1], one.vectors[0], atol=1e-5)


def _covered_workspace(s2, tmp_path) -> Workspace:
    """600 plots over Europe, the first six at the centres of the BigEarthNet patches."""
    data = make_plot_data()
    lon, lat = _centres(s2)
    plots = data.plots.copy()
    plots.loc[:5, "lon"], plots.loc[:5, "lat"] = lon, lat
    return prepare_workspace(PlotData(plots, data.occurrences, "test"), tmp_path / "ws", block_size=2.0,
                             progress=False)


def test_embed_plots_from_the_command_line(tiny_weights, tiny_registered, s2, ben_dir, tmp_path, capsys):
    ws = _covered_workspace(s2, tmp_path)
    argv = ["embed", "plots", "--workspace", str(ws.path), "--imagery", str(ben_dir / "BigEarthNet-S2-Example"),
            "--weights", str(tiny_weights), "--encoder", TINY, "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert "6 of 600 plots embedded" in capsys.readouterr().out
    table, vectors, meta = read_embeddings(ws.path / "embeddings" / "smarties_s2.parquet")
    assert table["available"].sum() == 6 and vectors.shape == (600, 32)
    assert '"bands": ["B01"' in meta["settings"]
    ws = Workspace(ws.path)
    assert ws.predictors[-1].name == "smarties_s2" and ws.predictors[-1].width == 32
    assert main(argv) == 2  # exists: needs --force
    assert "--force" in capsys.readouterr().err
    s1 = ["embed", "plots", "--workspace", str(ws.path), "--imagery", str(ben_dir / "BigEarthNet-S1-Example"),
          "--weights", str(tiny_weights), "--encoder", TINY, "--sensor", "S1", "--device", "cpu", "--quiet"]
    assert main(s1) == 0
    assert [p.name for p in Workspace(ws.path).predictors[-2:]] == ["smarties_s2", "smarties_s1"]
    # the workspace trains with both satellite tokens and explains them as one group
    ws = Workspace(ws.path)
    train(ws, ws.path / "models" / "sat", config=tiny_config(epochs=2), progress=False)
    model, card = load_checkpoint(ws.path / "models" / "sat")
    assert card.d_embeddings == (32, 32) and model.n_inputs == ws.features().shape[1]
    result, _ = global_shapley(model, card, ws.features("val"), ws.labels("val"))
    assert "Satellite" in result.players and result.efficiency_gap() < 1e-6
    assert main([*argv[:-1], "--sha256", "0" * 64, "--force", "--quiet"]) == 2
    assert "sha256" in capsys.readouterr().err


def test_embed_cli_errors_are_clear(tiny_weights, tiny_registered, s2, ben_dir, tmp_path, capsys, monkeypatch):
    ws = _covered_workspace(s2, tmp_path)
    base = ["embed", "plots", "--workspace", str(ws.path), "--imagery", str(ben_dir / "BigEarthNet-S2-Example"),
            "--encoder", TINY, "--device", "cpu", "--quiet"]
    monkeypatch.delenv("MASKSDM_SMARTIES_WEIGHTS", raising=False)
    assert main(base) == 2
    assert "MASKSDM_SMARTIES_WEIGHTS" in capsys.readouterr().err
    monkeypatch.setenv("MASKSDM_SMARTIES_WEIGHTS", str(tiny_weights))
    assert main([*base, "--bands", "B02", "B10"]) == 2
    assert "B10" in capsys.readouterr().err
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(tiny_weights.read_bytes()[:1000])
    assert main([*base, "--weights", str(truncated)]) == 2
    assert "truncated" in capsys.readouterr().err
    assert main([*base, "--sensor", "S1"]) == 2
    assert "--sensor S1" in capsys.readouterr().err or "S1" in capsys.readouterr().err
    pd.testing.assert_index_equal(Workspace(ws.path).plots.index, ws.plots.index)  # nothing was written
    assert not (ws.path / "embeddings").exists()
