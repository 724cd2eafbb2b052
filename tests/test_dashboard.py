"""The dashboard: its computations (masksdm.dashboard.view) and every control of the page, driven with
Streamlit's AppTest on a small virtual world with a trained model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from masksdm.dashboard.render import colorize, geotiff_bytes
from masksdm.dashboard.view import Dashboard, search_species
from masksdm.errors import DataError
from masksdm.explain.games import global_shapley

APP = Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py"
streamlit_testing = pytest.importorskip("streamlit.testing.v1")


@pytest.fixture(scope="module")
def board(map_workspace):
    return Dashboard(map_workspace.path)


def test_species_search_is_word_based_and_forgiving():
    names = ["Fagus sylvatica", "Quercus robur", "Quercus petraea", "Abies alba"]
    assert search_species("quer", names) == ["Quercus petraea", "Quercus robur"]
    assert search_species("rob quer", names) == ["Quercus robur"]
    assert search_species("Fagus silvatica", names) == ["Fagus sylvatica"]  # close spelling
    assert search_species("", names, limit=2) == names[:2]
    many = [f"Genus{i // 100} species{i}" for i in range(12_738)]
    found = search_species("species1273", many)
    assert found[0] == "Genus12 species1273" and len(found) == 9  # the whole word first, then 12730..12737


def test_maps_follow_the_predictor_subset(board):
    species = board.species[0]
    everything = board.visible(list(board.groups()))
    climate = board.visible(["WorldClim"])
    full, only_climate = board.probability(species, everything), board.probability(species, climate)
    assert full.shape == board.shape and np.isfinite(full).sum() == len(board.cells)
    assert np.nanmax(np.abs(full - only_climate)) > 1e-3  # another subset, another map
    again = board.probability(species, everything)  # from the cache
    np.testing.assert_array_equal(full, again)
    assert climate.sum() == len(board.groups()["WorldClim"])
    without_one = board.visible(["WorldClim"], exclude=["bio_1"])
    assert without_one.sum() == climate.sum() - 1
    richness = board.richness(everything)
    expected = sum(board.probability(s, everything) for s in board.species)
    np.testing.assert_allclose(richness, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(DataError, match="switch at least one"):
        board.probability(species, np.zeros_like(everything))


def test_explanations(board, map_workspace):
    species = board.species[1]
    everything = board.visible(list(board.groups()))
    lon, lat = board.cell_lonlat()
    place = board.place(lon[0], lat[0])
    assert place is not None and board.place(-170.0, -80.0) is None
    for lon_typed, lat_typed in [(1e308, lat[0]), (-1e308, lat[0]), (lon[0], 1e308), (float("nan"), lat[0]),
                                 (float("inf"), lat[0]), (lon[0], 95.0)]:  # typed in the box: no cell, no error
        assert board.place(lon_typed, lat_typed) is None
    local = board.local(species, place, everything)
    probability = board.probability(species, everything)[place.row, place.col]
    assert local.full_value[0, 0] == pytest.approx(probability, abs=1e-5)  # the bars add up to the map
    assert local.efficiency_gap() < 1e-9 and local.players == list(board.groups())
    glob = board.global_values(species)
    reference, _ = global_shapley(board.model, board.card, map_workspace.features("test"),
                                  map_workspace.labels("test"), species=[species], precision="fp32")
    np.testing.assert_allclose(glob.values, reference.values, atol=1e-9)
    alone = board.response(species, "bio_1")
    others = board.response(species, "bio_1", mode="others")
    assert list(alone.columns) == ["bio_1", "probability"] and len(others) == 60
    assert alone["bio_1"].is_monotonic_increasing and alone["probability"].between(0, 1).all()
    assert not np.allclose(alone["probability"], others["probability"])


def test_rendering_and_downloads(board):
    grid = board.probability(board.species[0], board.visible(list(board.groups())))
    rgba = colorize(grid, opacity=0.5)
    assert rgba.shape == (*grid.shape, 4) and (rgba[np.isnan(grid)][:, 3] == 0).all()
    assert (rgba[~np.isnan(grid)][:, 3] == 128).all()
    with rasterio.open(io.BytesIO(geotiff_bytes(grid, board, description="probability"))) as src:
        np.testing.assert_array_equal(src.read(1), grid.astype(np.float32))
        assert src.transform == board.transform and src.crs == board.stack.crs
    warped, (west, south, east, north) = board.web_mercator(grid)
    assert warped.shape[1] >= 2 * grid.shape[1] - 2 and west < east and south < north
    assert np.isfinite(warped).mean() == pytest.approx(np.isfinite(grid).mean(), abs=0.05)


# --- the page -----------------------------------------------------------------------------------


@pytest.fixture
def app(map_workspace, monkeypatch):
    monkeypatch.setenv("MASKSDM_WORKSPACE", str(map_workspace.path))
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _map_image(at) -> str:
    return at.get("deck_gl_json_chart")[0].proto.json


def test_page_shows_a_species_map_and_its_explanations(app, board):
    assert not app.error
    assert app.title[0].value == board.species[0]
    groups = [c.label.split(" (")[0] for c in app.sidebar.checkbox if c.key.startswith("group_")]
    assert groups == list(board.groups())
    assert app.sidebar.checkbox(key="hide_novel").label.startswith("Hide cells outside the training range")
    assert len(app.get("deck_gl_json_chart")) == 1
    assert len(app.get("vega_lite_chart")) == 3  # local, global, response curve
    assert [b.label for b in app.get("download_button")] == ["GeoTIFF", "PNG", "Shapley CSV"]


def test_search_and_pick_a_species(app, board):
    target = board.species[-1]
    app.sidebar.text_input(key="query").input(target.split()[1]).run()
    assert target in app.sidebar.selectbox(key="species").options
    app.sidebar.selectbox(key="species").select(target).run()
    assert app.title[0].value == target
    app.sidebar.text_input(key="query").input("no such plant").run()
    assert "No species matches" in app.sidebar.warning[0].value


def test_switching_a_group_off_changes_the_map(app):
    before = _map_image(app)
    app.sidebar.checkbox(key="group_WorldClim").uncheck().run()
    assert not app.exception and _map_image(app) != before
    assert "predictors on" in app.caption[0].value
    for checkbox in app.sidebar.checkbox:
        checkbox.uncheck()
    app.run()
    assert "Switch at least one predictor group on" in app.warning[0].value


def test_leaving_out_one_predictor(app):
    before = _map_image(app)
    app.sidebar.multiselect(key="exclude").select("bio_1").run()
    assert not app.exception and _map_image(app) != before


def test_layers_threshold_and_opacity(app):
    probability = _map_image(app)
    app.sidebar.radio(key="layer").set_value("Binary range").run()
    binary = _map_image(app)
    assert binary != probability and "threshold" in app.caption[1].value
    app.sidebar.selectbox(key="rule").select("fixed value").run()
    app.sidebar.slider(key="threshold").set_value(0.9).run()
    assert "0.900" in app.caption[1].value and _map_image(app) != binary
    app.sidebar.radio(key="layer").set_value("Species richness").run()
    assert not app.exception and _map_image(app) not in (probability, binary)
    faded = _map_image(app)
    app.sidebar.slider(key="opacity").set_value(0.3).run()
    assert _map_image(app) != faded


def test_a_typed_place_is_explained_and_the_curve_follows_its_controls(app, board):
    lon, lat = board.cell_lonlat()
    app.number_input(key="lon").set_value(float(lon[5])).run()
    app.number_input(key="lat").set_value(float(lat[5])).run()
    assert not app.exception and any("probability" in c.value for c in app.caption)
    app.number_input(key="lon").set_value(-170.0).run()
    assert "No map cell with data there" in app.info[0].value
    app.selectbox(key="curve_predictor").select("bio_12").run()
    app.radio(key="curve_mode").set_value("at the test plots' values").run()
    assert not app.exception


def test_full_detail_switch(app):
    app.sidebar.toggle(key="detail").set_value(True).run()
    assert not app.exception and len(app.get("deck_gl_json_chart")) == 1


def test_a_missing_workspace_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKSDM_WORKSPACE", str(tmp_path / "nowhere"))
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and "Cannot open the workspace" in at.error[0].value


def test_a_model_whose_rasters_are_gone_is_a_message(map_workspace, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "ws"
    shutil.copytree(map_workspace.path, copy)
    meta = pd.read_json(copy / "workspace.json", typ="series")
    meta["rasters"] = {"bio_1": str(tmp_path / "gone" / "bio_1.tif")}
    (copy / "workspace.json").write_text(meta.to_json())
    monkeypatch.setenv("MASKSDM_WORKSPACE", str(copy))
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and "Cannot open the workspace" in at.error[0].value


def test_the_satellite_token_is_a_group_on_the_maps(map_workspace, tmp_path):
    """A workspace with an embedding (as `masksdm embed plots` and `embed cells` leave it): the
    dashboard reads embeddings/<name>.tif, and Satellite is a group to switch and explain."""
    import shutil

    from masksdm.data.embeddings import write_embeddings
    from masksdm.data.predictors import EMBEDDING, Predictor
    from masksdm.model.training import train
    from masksdm.workspace import Workspace
    from tests.conftest import tiny_config

    shutil.copytree(map_workspace.path, tmp_path / "ws", ignore=shutil.ignore_patterns("models"))
    ws = Workspace(tmp_path / "ws")
    rng = np.random.default_rng(0)
    seen = ws.plots["bio_1"].to_numpy()
    vectors = np.stack([seen / 5, rng.normal(size=len(seen)), rng.normal(size=len(seen))], axis=1)
    write_embeddings(ws.path / "embeddings" / "sat.parquet", ws.plots["plot_id"], vectors, np.isfinite(seen))
    ws.add_embedding(Predictor("sat", "Satellite", EMBEDDING, width=3))
    train(ws, ws.models_dir() / "main", config=tiny_config(epochs=8), progress=False)
    with rasterio.open(ws.meta["rasters"]["bio_1"]) as src:
        bio, profile = src.read(1, masked=True).astype(np.float32).filled(np.nan), src.profile
    profile.update(count=3, dtype="float32", nodata=np.nan)
    with rasterio.open(ws.path / "embeddings" / "sat.tif", "w", **profile) as dst:
        dst.write(np.stack([bio / 5, rng.normal(size=bio.shape), rng.normal(size=bio.shape)]).astype(np.float32))
    board = Dashboard(ws.path)
    assert "Satellite" in board.groups() and "sat" not in board.plot_level()
    species = board.species[0]
    groups = list(board.groups())
    with_sat = board.probability(species, board.visible(groups))
    without = board.probability(species, board.visible([g for g in groups if g != "Satellite"]))
    assert np.nanmax(np.abs(with_sat - without)) > 1e-3
    lon, lat = board.cell_lonlat()
    local = board.local(species, board.place(lon[0], lat[0]), board.visible(groups))
    assert "Satellite" in local.players and local.efficiency_gap() < 1e-9


# --- a future climate ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def future_rasters(map_workspace, tmp_path_factory):
    from masksdm.sim.scenario import write_future_rasters

    rasters = Path(map_workspace.meta["rasters"]["bio_1"]).parents[1]
    return write_future_rasters(rasters, tmp_path_factory.mktemp("future") / "rasters", warming=3.0, rain_change=-0.2)


def test_the_future_climate_changes_maps_range_and_novelty(map_workspace, future_rasters):
    board = Dashboard(map_workspace.path, future=[future_rasters])
    assert board.scenarios == ["current", "future"]
    visible = board.visible(list(board.groups()))
    species = board.species[0]
    now, then = board.probability(species, visible), board.probability(species, visible, "future")
    land = ~np.isnan(now)
    assert np.abs(now - then)[land].max() > 0.05  # warmer and drier: another map
    change = board.change(species, visible, 0.3)
    np.testing.assert_array_equal(change[land], np.where(now >= 0.3, np.where(then >= 0.3, -1, -2),
                                                         np.where(then >= 0.3, 1, 0))[land])
    assert np.isnan(change[~land]).all()
    mess_now, out_now = board.novelty(visible)
    mess_then, out_then = board.novelty(visible, "future")
    # the training plots sit in the current climate: the future lies outside their range more often
    assert (mess_then[land] < 0).mean() > (mess_now[land] < 0).mean()
    assert np.nanmean(out_then) > np.nanmean(out_now)
    # without future rasters the future is a clear error
    with pytest.raises(DataError, match="future"):
        Dashboard(map_workspace.path).probability(species, visible, "future")


def test_future_rasters_on_another_grid_or_with_other_names_are_errors(map_workspace, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    with rasterio.open(bad / "bio_1.tif", "w", driver="GTiff", width=4, height=3, count=1, dtype="float32",
                       crs="EPSG:4326", transform=rasterio.transform.from_origin(0, 50, 1, 1)) as dst:
        dst.write(np.ones((1, 3, 4), dtype="float32"))
    with pytest.raises(DataError, match="another grid"):
        Dashboard(map_workspace.path, future=[bad])
    (bad / "bio_1.tif").rename(bad / "tas_2050.tif")
    with pytest.raises(DataError, match="no predictor raster"):
        Dashboard(map_workspace.path, future=[bad])


def test_the_page_switches_climate_and_shows_change_and_novelty(map_workspace, future_rasters, monkeypatch):
    monkeypatch.setenv("MASKSDM_WORKSPACE", str(map_workspace.path))
    monkeypatch.setenv("MASKSDM_FUTURE", str(future_rasters))
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, at.exception
    current = _map_image(at)
    at.sidebar.radio(key="scenario").set_value("future").run()
    assert not at.exception and _map_image(at) != current
    assert "future climate" in " ".join(c.value for c in at.caption)
    assert "Range change" in at.sidebar.radio(key="layer").options
    at.sidebar.radio(key="layer").set_value("Range change").run()
    change = _map_image(at)
    assert not at.exception and change != current
    at.sidebar.checkbox(key="hide_novel").check().run()
    assert not at.exception and _map_image(at) != change  # cells outside the training range hidden
    at.sidebar.radio(key="layer").set_value("Novelty (MESS)").run()
    assert not at.exception and len(at.get("deck_gl_json_chart")) == 1


def test_the_threshold_stored_in_the_model_is_a_rule(app, board):
    app.sidebar.radio(key="layer").set_value("Binary range").run()
    app.sidebar.selectbox(key="rule").select("stored in the model").run()
    stored = board.card.thresholds[board.species.index(board.species[0])]
    assert not app.exception and f"threshold {stored:.3f} (stored in the model)" in app.caption[1].value
