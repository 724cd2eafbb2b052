"""Workspace preparation: spatial block split, train-only normalisation, errors."""

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import make_plot_data
from fixtures.rasters import write_position_tif

from masksdm.data.plotdata import PlotData, check_coordinates
from masksdm.data.splits import spatial_block_split
from masksdm.errors import DataError, OutputExistsError
from masksdm.workspace import Workspace, prepare_workspace


def test_block_split_keeps_blocks_whole_and_hits_fractions():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(0, 20, 5000), rng.uniform(40, 60, 5000)
    split = spatial_block_split(lon, lat, block_size=1.0, seed=3)
    blocks = pd.DataFrame({"b": np.floor(lon).astype(int) * 1000 + np.floor(lat).astype(int), "s": split})
    assert (blocks.groupby("b")["s"].nunique() == 1).all()
    shares = pd.Series(split).value_counts(normalize=True)
    assert 0.15 <= shares["test"] < 0.2 and 0.15 <= shares["val"] < 0.2
    assert not np.array_equal(split, spatial_block_split(lon, lat, block_size=1.0, seed=4))
    np.testing.assert_array_equal(split, spatial_block_split(lon, lat, block_size=1.0, seed=3))


def test_block_split_needs_blocks():
    with pytest.raises(DataError, match="block-size"):
        spatial_block_split(np.zeros(10), np.zeros(10), block_size=1.0)


def test_workspace_contents(tiny_workspace):
    ws = tiny_workspace
    assert ws.predictor_names[:2] == ["bio_1", "PHIHOX"]  # paper order first
    assert {p.name: p.group for p in ws.predictors}["noise"] == "Other"
    assert {p.name: p.group for p in ws.predictors}["Longitude"] == "Location"
    train = ws.raw_predictors("train")
    norm = ws.normalisation
    assert np.isclose(norm["bio_1"]["mean"], np.nanmean(train[:, 0]))
    assert not np.isclose(norm["bio_1"]["mean"], np.nanmean(ws.raw_predictors(None)[:, 0]))
    x = ws.features("train")
    assert abs(np.nanmean(x[:, 0])) < 1e-5 and x.dtype == np.float32
    assert np.isnan(x[:, ws.predictor_names.index("Releve_area")]).any()  # NaN kept for masking
    y = ws.labels()
    occ = ws.occurrences
    assert y.sum() == len(occ)
    counts = ws.species.set_index("species_id")
    assert (counts["n_train"] + counts["n_val"] + counts["n_test"] == counts["n_plots"]).all()


def test_existing_workspace_needs_force(tiny_workspace):
    with pytest.raises(OutputExistsError, match="--force"):
        prepare_workspace(make_plot_data(), tiny_workspace.path, progress=False)


def test_incomplete_workspace_is_refused(tmp_path):
    with pytest.raises(DataError, match="masksdm prepare"):
        Workspace(tmp_path)


def test_infinite_predictor_values_are_refused(tmp_path):
    data = make_plot_data(200)
    data.plots.loc[3, "noise"] = np.inf
    with pytest.raises(DataError, match="'noise' has 1 infinite"):
        prepare_workspace(data, tmp_path / "ws", block_size=2.0, progress=False)


def test_swapped_coordinates_are_refused(tmp_path):
    data = make_plot_data(200)
    data.plots["lon"] += 110  # East Asia: longitudes beyond 90 make a swap detectable
    plots = data.plots.rename(columns={"lon": "lat", "lat": "lon"})
    with pytest.raises(DataError, match="swapped"):
        prepare_workspace(PlotData(plots, data.occurrences), tmp_path / "ws", progress=False)


def test_one_latitude_out_of_range_is_named_not_called_a_swap(tmp_path):
    data = make_plot_data(1000)
    data.plots.loc[417, "lat"] = 95.0
    with pytest.raises(DataError) as info:
        prepare_workspace(data, tmp_path / "ws", progress=False)
    message = str(info.value)
    assert "swapped" not in message
    assert "1 of 1000 plots have latitude outside [-90, 90]: plot 1417 (lat 95)" in message


def test_out_of_range_rows_are_listed_first_few():
    lon = np.linspace(-5, 25, 40)
    lat = np.full(40, 45.0)
    lat[[3, 9, 10, 11, 20, 33]] = [91, -92, 93, 94, 95, 96]
    with pytest.raises(DataError, match=r"6 of 40 points have latitude outside \[-90, 90\]: row 3 \(lat 91\), "
                       r"row 9 \(lat -92\), row 10 \(lat 93\), row 11 \(lat 94\), row 20 \(lat 95\), \.\.\.;"):
        check_coordinates(lon, lat, what="points")
    lon[5] = 200.0
    lat[:] = 45.0
    with pytest.raises(DataError, match=r"1 of 40 points have longitude outside \[-180, 180\]: row 5 \(lon 200\)"):
        check_coordinates(pd.Series(lon), pd.Series(lat), what="points")
    lat[7] = np.nan
    with pytest.raises(DataError, match=r"1 points have missing .* \(row 7 \(lon .*, lat nan\)\)"):
        check_coordinates(lon, lat, what="points")


def test_swapped_columns_are_said_swapped_only_when_a_swap_fixes_them():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(100, 140, 500), rng.uniform(20, 50, 500)  # East Asia
    with pytest.raises(DataError, match="look swapped"):
        check_coordinates(lat, lon)
    # a quarter of the rows beyond 90: not most of them, so named rows rather than a swap
    mixed_lat = np.where(np.arange(500) < 125, lon, lat)
    with pytest.raises(DataError, match=r"125 of 500 plots have latitude outside") as info:
        check_coordinates(np.full(500, 10.0), mixed_lat)
    assert "swapped" not in str(info.value)
    # most latitudes beyond 90, but a swap would leave longitudes beyond 90 as latitudes
    with pytest.raises(DataError, match=r"latitude outside") as info:
        check_coordinates(np.full(500, 120.0), lon)
    assert "swapped" not in str(info.value)


def _plots_over(n: int, seed: int = 0) -> PlotData:
    data = make_plot_data(n, seed=seed)
    plots = data.plots.drop(columns=["bio_1"])
    return PlotData(plots, data.occurrences, data.source)


def test_a_raster_covering_three_quarters_of_the_plots_is_a_warning(tmp_path, caplog):
    data = _plots_over(400)  # lon -5..25, lat 38..58
    # lon -5..17.5: about three quarters of the plots
    raster = write_position_tif(tmp_path / "bio_1.tif", west=-5.0, north=58.0, res=0.75, height=27, width=30)
    with caplog.at_level(logging.WARNING):
        ws = prepare_workspace(data, tmp_path / "ws", rasters={"bio_1": raster}, block_size=2.0, progress=False)
    missing = ws.plots["bio_1"].isna().mean()
    assert 0.15 < missing < 0.35
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage().startswith(f"raster 'bio_1' has no value at {ws.plots['bio_1'].isna().sum()} of 400")
    assert f"({missing:.0%}" in record.getMessage()


def test_an_all_nodata_raster_is_an_error(tmp_path):
    data = _plots_over(200)
    everywhere = tuple((r, c) for r in range(20) for c in range(30))
    raster = write_position_tif(tmp_path / "bio_1.tif", west=-5.0, north=58.0, res=1.0, nodata=-9999.0,
                                nodata_pixels=everywhere)
    with pytest.raises(DataError, match=r"raster 'bio_1' .*has no value at any of the 200 points.*CRS, extent"):
        prepare_workspace(data, tmp_path / "ws", rasters={"bio_1": raster}, progress=False)
    assert not (tmp_path / "ws" / "workspace.json").exists()


def test_labels_in_the_order_of_given_species(tiny_workspace):
    ws = tiny_workspace
    names = ws.species_names
    picked = [names[2], "Not a species", names[0]]
    y = ws.labels("test", picked)
    full = ws.labels("test")
    assert y.shape == (len(full), 3)
    np.testing.assert_array_equal(y[:, 0], full[:, 2])
    np.testing.assert_array_equal(y[:, 2], full[:, 0])
    assert not y[:, 1].any()


# --- predictor groups and catalogue spellings -----------------------------------------------------

def _renamed(data: PlotData, **names: str) -> PlotData:
    return PlotData(data.plots.rename(columns=names), data.occurrences, data.source)


def test_groups_set_by_the_user_and_catalogue_spellings_of_columns(tmp_path, caplog):
    data = _renamed(make_plot_data(300), bio_1="BIO_01", PHIHOX="ph")
    with caplog.at_level(logging.INFO, logger="masksdm.workspace"):
        ws = prepare_workspace(data, tmp_path / "ws", groups={"ph": "Soil", "noise": "Noise", "Releve_area": "Survey"},
                               block_size=2.0, progress=False)
    groups = {p.name: p.group for p in ws.predictors}
    assert groups == {"bio_1": "WorldClim", "Longitude": "Location", "Latitude": "Location", "Releve_area": "Survey",
                      "noise": "Noise", "ph": "Soil"}
    assert next(p for p in ws.predictors if p.name == "bio_1").unit == "degC"  # the catalogue's entry
    assert "bio_1" in ws.plots.columns and "BIO_01" not in ws.plots.columns
    assert ws.meta["renamed"] == {"BIO_01": "bio_1"}
    assert any("BIO_01" in r.getMessage() and "bio_1" in r.getMessage() for r in caplog.records)
    # a group key may use any spelling of a catalogue name; without groups a column is Other
    ws = prepare_workspace(data, tmp_path / "ws2", groups={"bio1": "Climate"}, block_size=2.0, progress=False)
    assert {p.name: p.group for p in ws.predictors}["bio_1"] == "Climate"
    assert {p.name: p.group for p in ws.predictors}["ph"] == "Other"


def test_a_group_for_an_unknown_predictor_is_an_error_listing_the_known_ones(tmp_path):
    data = _renamed(make_plot_data(100), PHIHOX="ph")
    with pytest.raises(DataError, match=r"'pH', which is not a predictor of this data: choose among \[.*'ph'"):
        prepare_workspace(data, tmp_path / "ws", groups={"pH": "Soil"}, progress=False)
    with pytest.raises(DataError, match="'ph' must be a name"):
        prepare_workspace(data, tmp_path / "ws", groups={"ph": " "}, progress=False)
    assert not (tmp_path / "ws" / "workspace.json").exists()


def test_two_spellings_of_one_catalogue_name_are_an_error(tmp_path):
    data = make_plot_data(100)
    plots = data.plots.assign(bio1=data.plots["bio_1"])
    with pytest.raises(DataError, match=r"\['bio_1', 'bio1'\] all name the predictor 'bio_1'"):
        prepare_workspace(PlotData(plots, data.occurrences, "t"), tmp_path / "ws", progress=False)


def test_a_raster_group_comes_from_its_folder_as_given(tmp_path):
    from masksdm.data.rasters import find_rasters

    data = _plots_over(200)
    write_position_tif(tmp_path / "store" / "a1b2" / "frost_days.tif", west=-6.0, north=59.0, res=1.0, height=22, width=32)
    write_position_tif(tmp_path / "store" / "a1b2" / "wc2.1_10m_bio_1.tif", west=-6.0, north=59.0, res=1.0,
                       height=22, width=32)
    (tmp_path / "Frost").symlink_to(tmp_path / "store" / "a1b2", target_is_directory=True)
    ws = prepare_workspace(data, tmp_path / "ws", rasters=find_rasters(tmp_path / "Frost"), block_size=2.0,
                           progress=False)
    assert {p.name: p.group for p in ws.predictors if p.source == "raster"} == {"bio_1": "WorldClim", "frost_days": "Frost"}
