"""Projections: novelty (MESS) and clamping, ensemble uncertainty, stored thresholds, range change."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from affine import Affine
from conftest import tiny_config

from masksdm.cli import main
from masksdm.errors import ConfigError, DataError, RasterError
from masksdm.maps.change import range_change
from masksdm.maps.predict import predict_maps
from masksdm.model.checkpoint import load_checkpoint, save_checkpoint
from masksdm.model.training import train

TRANSFORM = Affine(1.0, 0.0, -5.0, 0.0, -0.8, 57.0)  # over the tiny workspace's plots
HEIGHT, WIDTH = 20, 30
SPECIES = [f"Species {i:02d}" for i in range(8)]


def _write(path, values, transform=TRANSFORM):
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1], count=1,
                       dtype="float32", crs="EPSG:4326", transform=transform, nodata=-9999.0) as dst:
        dst.write(np.where(np.isnan(values), -9999.0, values).astype("float32")[None])


def _stack(folder, *, warming=0.0, soil=True, transform=TRANSFORM):
    """bio_1 from 0 to 29.9 degC across the grid (the training plots span about 5..21), PHIHOX
    from 3 to 9; the sea corner has no data; ``warming`` adds degrees to bio_1."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    bio = cols + rows / 20 + warming
    ph = 3 + 6 * rows / HEIGHT
    bio[:2, :3] = ph[:2, :3] = np.nan
    _write(folder / "bio_1.tif", bio, transform)
    if soil:
        _write(folder / "PHIHOX.tif", ph, transform)
    return folder


def _mess_by_definition(values, reference):
    """MESS of one cell, computed from the definition (Elith et al. 2010) with plain Python."""
    similarities = []
    for p, ref in zip(values, reference, strict=True):
        if np.isnan(p):
            continue
        low, high = min(ref), max(ref)
        f = 100 * sum(r < p for r in ref) / len(ref)
        if f == 0:
            s = 100 * (p - low) / (high - low)
        elif f <= 50:
            s = 2 * f
        elif f < 100:
            s = 2 * (100 - f)
        else:
            s = 100 * (high - p) / (high - low)
        similarities.append(s)
    return min(similarities) if similarities else np.nan


def _read(path, band=None):
    with rasterio.open(path) as src:
        return src.read() if band is None else src.read(band)


@pytest.fixture(scope="module")
def tiny(tiny_run):
    return load_checkpoint(tiny_run)


@pytest.fixture(scope="module")
def now(tmp_path_factory):
    return _stack(tmp_path_factory.mktemp("now"))


@pytest.fixture(scope="module")
def ensemble_run(tiny_workspace, tmp_path_factory):
    run = tmp_path_factory.mktemp("ens") / "run"
    train(tiny_workspace, run, config=tiny_config(epochs=3).replace_model(ensemble=3), progress=False)
    return run


# --- novelty and clamping ---------------------------------------------------------------------------

def test_novelty_is_the_mess_of_the_training_plots(tiny, tiny_workspace, tiny_run, now, tmp_path):
    model, card = tiny
    result = predict_maps(model, card, now, tmp_path / "maps", outputs=["probability", "novelty"],
                          workspace=tiny_workspace, run_dir=tiny_run, progress=False)
    path = result.path("novelty")
    with rasterio.open(path) as src:
        assert src.descriptions == ("mess", "n_outside_range", "most_dissimilar")
        names = src.tags()["novelty_predictors"].split(",")
        novelty = src.read()
    assert names == ["bio_1", "PHIHOX"]  # the computed coordinates are no environment
    reference = tiny_workspace.raw_predictors("train", names)
    reference = [reference[:, j][~np.isnan(reference[:, j])].tolist() for j in range(len(names))]
    bio, ph = _read(now / "bio_1.tif", 1), _read(now / "PHIHOX.tif", 1)
    rng = np.random.default_rng(0)
    for r, c in [(0, 0), (5, 0), (10, 29), *zip(rng.integers(0, HEIGHT, 25), rng.integers(0, WIDTH, 25), strict=True)]:
        values = [np.nan if v == -9999 else float(v) for v in (bio[r, c], ph[r, c])]
        expected = _mess_by_definition(values, reference)
        if np.isnan(expected):
            assert np.isnan(novelty[:, r, c]).all()
            continue
        np.testing.assert_allclose(novelty[0, r, c], expected, rtol=1e-5, atol=1e-4)
        outside = sum(not min(ref) <= v <= max(ref) for v, ref in zip(values, reference, strict=True))
        assert novelty[1, r, c] == outside
    # the warm and the acid ends of the grid lie outside the training range: MESS < 0 there
    assert (novelty[0][:, -3:] < 0).all() and (novelty[1][:, -3:] >= 1).all()
    inside = (novelty[1] == 0)
    assert inside.any() and (novelty[0][inside] >= 0).all()
    with pytest.raises(ConfigError, match="--workspace"):
        predict_maps(model, card, now, tmp_path / "no-ws", outputs=["novelty"], progress=False)


def test_clamping_equals_predicting_the_clipped_rasters(tiny, tiny_workspace, now, tmp_path):
    model, card = tiny
    clamped = predict_maps(model, card, now, tmp_path / "clamped", workspace=tiny_workspace, clamp=True,
                           dtype="float32", progress=False)
    train_values = tiny_workspace.raw_predictors("train", ["bio_1", "PHIHOX"])
    low, high = np.nanmin(train_values, axis=0), np.nanmax(train_values, axis=0)
    clipped = tmp_path / "clipped"
    clipped.mkdir()
    for j, name in enumerate(["bio_1", "PHIHOX"]):
        values = _read(now / f"{name}.tif", 1).astype(np.float64)
        values = np.where(values == -9999, np.nan, np.clip(values, low[j], high[j]))
        _write(clipped / f"{name}.tif", values)
    plain = predict_maps(model, card, clipped, tmp_path / "plain", dtype="float32", progress=False)
    free = predict_maps(model, card, now, tmp_path / "free", dtype="float32", progress=False)
    for s in SPECIES[:3]:
        a, b = _read(clamped.path("probability", s)), _read(plain.path("probability", s))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert not np.allclose(a, _read(free.path("probability", s)), equal_nan=True)  # clamping changed them
    with rasterio.open(clamped.path("probability", SPECIES[0])) as src:
        assert src.tags()["clamped"] == "bio_1,PHIHOX"


# --- uncertainty ------------------------------------------------------------------------------------

def test_uncertainty_is_the_spread_of_the_ensemble_members(ensemble_run, now, tmp_path):
    model, card = load_checkpoint(ensemble_run)
    both = predict_maps(model, card, now, tmp_path / "both", outputs=["probability", "uncertainty"],
                        dtype="float32", progress=False)
    alone = predict_maps(model, card, now, tmp_path / "alone", dtype="float32", progress=False)
    names = card.predictor_names
    rows, cols = (a.ravel() for a in np.mgrid[0:HEIGHT, 0:WIDTH])
    raw = np.full((len(rows), len(names)), np.nan, dtype=np.float32)
    raw[:, names.index("bio_1")] = _read(now / "bio_1.tif", 1).ravel()
    raw[:, names.index("PHIHOX")] = _read(now / "PHIHOX.tif", 1).ravel()
    raw[raw == -9999] = np.nan
    lon = TRANSFORM.c + (cols + 0.5) * TRANSFORM.a
    lat = TRANSFORM.f + (rows + 0.5) * TRANSFORM.e
    raw[:, names.index("Longitude")], raw[:, names.index("Latitude")] = lon, lat
    with torch.no_grad():
        members = torch.sigmoid(model.member_logits(torch.as_tensor(card.features(raw)), collapse=False)).numpy()
    spread = members.std(axis=0).reshape(HEIGHT, WIDTH, -1)
    sea = np.zeros((HEIGHT, WIDTH), bool)
    sea[:2, :3] = True
    for j, s in enumerate(card.species):
        u = _read(both.path("uncertainty", s), 1)
        assert np.isnan(u[sea]).all()
        np.testing.assert_allclose(u[~sea], spread[..., j][~sea], rtol=0, atol=2e-6)
        # the probabilities are those of the ensemble without uncertainty, bit for bit
        np.testing.assert_array_equal(_read(both.path("probability", s)), _read(alone.path("probability", s)))
    assert spread[~sea].mean() > 1e-3  # the members disagree: the band carries information


def test_uncertainty_needs_an_ensemble(tiny, now, tmp_path):
    model, card = tiny
    with pytest.raises(ConfigError, match="ensemble"):
        predict_maps(model, card, now, tmp_path / "maps", outputs=["uncertainty"], progress=False)


# --- stored thresholds ---------------------------------------------------------------------------------

def test_the_model_threshold_rule_uses_the_stored_thresholds(tiny, tiny_run, now, tmp_path):
    model, card = tiny
    result = predict_maps(model, card, now, tmp_path / "maps", outputs=["binary"], threshold="model", progress=False)
    for j, s in enumerate(card.species):
        with rasterio.open(result.path("binary", s)) as src:
            assert float(src.tags()["threshold"]) == pytest.approx(card.thresholds[j])
    card = copy.deepcopy(card)
    card.thresholds = None
    run = tmp_path / "no-thresholds"
    save_checkpoint(run, model, card)
    model2, card2 = load_checkpoint(run)
    with pytest.raises(ConfigError, match="stores no threshold"):
        predict_maps(model2, card2, now, tmp_path / "maps2", outputs=["binary"], threshold="model", progress=False)


# --- range change ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def projections(tiny, tiny_run, now, tmp_path_factory):
    """Maps of the present and of a 4-degree warmer future, at the stored thresholds."""
    model, card = tiny
    root = tmp_path_factory.mktemp("projections")
    future = _stack(root / "future", warming=4.0)
    out = {}
    for name, rasters in (("now", now), ("future", future)):
        out[name] = predict_maps(model, card, rasters, root / f"maps_{name}", threshold="model",
                                 outputs=["probability"], run_dir=tiny_run, progress=False)
    return out


def test_range_change_counts_lost_kept_and_gained_cells(projections, tmp_path):
    now, future = projections["now"], projections["future"]
    result = range_change(now.out_dir, future.out_dir, tmp_path / "change", progress=False)
    table = pd.read_csv(tmp_path / "change" / "range_change.csv")
    assert list(table["species"]) == SPECIES
    present = {}
    totals = np.zeros((2, HEIGHT, WIDTH))
    for j, s in enumerate(SPECIES):
        maps = []
        for k, r in enumerate((now, future)):
            with rasterio.open(r.path("probability", s)) as src:
                p = src.read(1, masked=True).astype(np.float64) * src.scales[0]
                threshold = float(src.tags()["threshold"])
            maps.append(p >= threshold)
            totals[k] += np.ma.filled(p >= threshold, False)
        a, b = maps
        valid = ~np.ma.getmaskarray(a) & ~np.ma.getmaskarray(b)
        a, b = np.ma.filled(a, False), np.ma.filled(b, False)
        expected = np.where(a & b, -1, np.where(a, -2, np.where(b, 1, 0)))
        codes = _read(result.out_dir / "change" / f"{s.replace(' ', '_')}.tif", 1)
        np.testing.assert_array_equal(codes[valid], expected[valid])
        assert (codes[~valid] == -128).all()
        row = table.iloc[j]
        lost, kept, gained = (a & ~b & valid).sum(), (a & b & valid).sum(), (~a & b & valid).sum()
        assert (row["lost"], row["stable_present"], row["gained"]) == (lost, kept, gained)
        assert row["stable_absent"] == (~a & ~b & valid).sum()
        assert row["current_range"] == lost + kept and row["future_range_full_dispersal"] == kept + gained
        if lost + kept:
            assert row["range_change"] == pytest.approx(100 * (gained - lost) / (lost + kept))
        present[s] = (a, b)
    assert table["lost"].sum() > 0 and table["gained"].sum() > 0  # warming moves the ranges
    richness = _read(result.out_dir / "richness_change.tif")
    valid = np.isfinite(richness[0])
    np.testing.assert_array_equal(richness[0][valid], totals[0][valid])
    np.testing.assert_array_equal(richness[2][valid], (totals[1] - totals[0])[valid])
    assert richness.shape[0] == 4  # probability maps on both sides: the expected change too


def test_range_change_layouts_and_the_command_agree(projections, tmp_path, capsys):
    now, future = projections["now"], projections["future"]
    code = main(["change", "--current", str(now.out_dir), "--future", str(future.out_dir), "--out",
                 str(tmp_path / "multi"), "--layout", "multiband", "--quiet"])
    assert code == 0
    said = capsys.readouterr().out
    assert "8 species compared" in said and "range_change.csv" in said
    per = range_change(now.out_dir, future.out_dir, tmp_path / "per", progress=False)
    multi = _read(tmp_path / "multi" / "change.tif")
    for j, s in enumerate(SPECIES):
        np.testing.assert_array_equal(multi[j], _read(per.out_dir / "change" / f"{s.replace(' ', '_')}.tif", 1))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "multi" / "range_change.csv"),
                                  pd.read_csv(per.out_dir / "range_change.csv"))


def test_range_change_bad_input_is_one_clear_error(tiny, projections, now, tmp_path):
    model, card = tiny
    now_maps, future = projections["now"], projections["future"]
    other = _stack(tmp_path / "other-grid", transform=Affine(0.5, 0.0, -5.0, 0.0, -0.4, 57.0))
    shifted = predict_maps(model, card, other, tmp_path / "maps_other", threshold="0.5", progress=False)
    with pytest.raises(RasterError, match="different grids"):
        range_change(now_maps.out_dir, shifted.out_dir, tmp_path / "c1", progress=False)
    untagged = predict_maps(model, card, now, tmp_path / "untagged", progress=False)
    with pytest.raises(ConfigError, match="stores no threshold"):
        range_change(untagged.out_dir, future.out_dir, tmp_path / "c2", progress=False)
    with pytest.raises(DataError, match="Gulo gulo"):
        range_change(now_maps.out_dir, future.out_dir, tmp_path / "c3", species=["Gulo gulo"], progress=False)
    # a future stack that lacks a predictor: named, with --mask offered
    with pytest.raises(RasterError, match="--mask PHIHOX"):
        predict_maps(model, card, _stack(tmp_path / "no-soil", soil=False), tmp_path / "m4", progress=False)
    # the same with a threshold given here
    given = range_change(untagged.out_dir, future.out_dir, tmp_path / "c5", thresholds=0.5, progress=False)
    assert (given.table["threshold_current"] == 0.5).all()


# --- the commands ---------------------------------------------------------------------------------------

def test_a_future_projection_from_the_command_line(tiny_workspace, tiny_run, now, tmp_path, capsys):
    from masksdm.sim.scenario import write_future_rasters

    future = write_future_rasters(now, tmp_path / "future", warming=3.0, rain_change=0.0)
    with rasterio.open(now / "bio_1.tif") as a, rasterio.open(future / "bio_1.tif") as b:
        before, after = a.read(1, masked=True), b.read(1, masked=True)
        assert (np.ma.getmaskarray(before) == np.ma.getmaskarray(after)).all()
        np.testing.assert_allclose((after - before).compressed(), 3.0, atol=1e-5)
    assert (future / "PHIHOX.tif").samefile(now / "PHIHOX.tif") or \
        (_read(future / "PHIHOX.tif") == _read(now / "PHIHOX.tif")).all()  # kept as it is
    base = ["predict", "--workspace", str(tiny_workspace.path), "--run", "tiny", "--species", "all", "--threshold",
            "model", "--write", "probability", "novelty", "--quiet"]
    assert main([*base, "--rasters", str(now), "--out", str(tmp_path / "m_now")]) == 0
    assert main([*base, "--rasters", str(future), "--out", str(tmp_path / "m_future"), "--clamp"]) == 0
    assert (tmp_path / "m_future" / "novelty.tif").is_file()
    capsys.readouterr()
    assert main(["change", "--current", str(tmp_path / "m_now"), "--future", str(tmp_path / "m_future"),
                 "--out", str(tmp_path / "change"), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "8 species compared over 600 cells" in said and "median range change" in said
    table = pd.read_csv(tmp_path / "change" / "range_change.csv")
    assert len(table) == 8 and (table["current_range"] == table["lost"] + table["stable_present"]).all()
    # bad input on the command line: one line, exit code 2
    assert main(["change", "--current", str(tmp_path / "m_now"), "--future", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "c2")]) == 2
    assert "no map folder" in capsys.readouterr().err
    assert main(["change", "--current", str(tmp_path / "m_now"), "--future", str(tmp_path / "m_future"),
                 "--out", str(tmp_path / "c3"), "--threshold", "2"]) == 2
    assert main(["simulate", "--future-of", str(now), "--out", str(tmp_path / "f2"), "--rain-change", "-100"]) == 2
    # the model's thresholds, read from its card
    run = tiny_run
    assert main(["change", "--current", str(tmp_path / "m_now"), "--future", str(tmp_path / "m_future"),
                 "--out", str(tmp_path / "c4"), "--threshold", "model", "--checkpoint", str(run), "--quiet"]) == 0
    card = json.loads((run / "model.json").read_text())
    used = pd.read_csv(tmp_path / "c4" / "range_change.csv")["threshold_current"]
    np.testing.assert_allclose(used, card["thresholds"])
    capsys.readouterr()
    assert main(["change", "--current", str(tmp_path / "m_now"), "--future", str(tmp_path / "m_future"),
                 "--out", str(tmp_path / "c5"), "--threshold", "model"]) == 2
    assert "--workspace DIR or --checkpoint" in capsys.readouterr().err


def test_the_command_line_offers_every_map_output():
    from masksdm.cli import maps as cli_maps
    from masksdm.maps.plan import OUTPUTS

    assert cli_maps.OUTPUTS == OUTPUTS


def test_novelty_alone_runs_no_model(tiny, tiny_workspace, now, tmp_path, monkeypatch):
    from masksdm.maps import plan

    model, card = tiny
    with_maps = predict_maps(model, card, now, tmp_path / "a", outputs=["probability", "novelty"],
                             workspace=tiny_workspace, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(plan, "predict_logits_tensor", refuse)
    alone = predict_maps(model, card, now, tmp_path / "b", outputs=["novelty"], workspace=tiny_workspace,
                         progress=False)
    np.testing.assert_array_equal(_read(alone.path("novelty")), _read(with_maps.path("novelty")))


def test_range_change_raises_the_open_file_limit(projections, tmp_path):
    """Both folders' maps and every change file are open during the pass: 3 files per species."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n_open = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
    if hard != resource.RLIM_INFINITY and hard < n_open + 64:
        pytest.skip("hard open-file limit too low to test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (n_open + 8, hard))
    try:
        result = range_change(projections["now"].out_dir, projections["future"].out_dir, tmp_path / "c",
                              progress=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(result.table) == 8 and len(list((tmp_path / "c" / "change").glob("*.tif"))) == 8
