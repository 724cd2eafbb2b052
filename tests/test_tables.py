"""Tests of masksdm.data.tables: long and wide presence tables."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from fixtures.tables import PLOTS, PRESENCE, long_frame, wide_frame, write_table

from masksdm.data.tables import load_presence_table
from masksdm.errors import DataError

PREDICTORS = ["temp", "elev"]


def _expected_pairs() -> int:
    return int((PRESENCE > 0).sum())


def test_long_and_wide_give_the_same_data(tmp_path):
    long_path = write_table(long_frame(), tmp_path / "long.csv")
    wide_path = write_table(wide_frame(), tmp_path / "wide.csv")
    a = load_presence_table(long_path, predictor_columns=PREDICTORS, min_plots=0)
    b = load_presence_table(wide_path, layout="wide", predictor_columns=PREDICTORS, min_plots=0)
    pd.testing.assert_frame_equal(a.plots, b.plots)
    pd.testing.assert_frame_equal(a.occurrences, b.occurrences)
    assert list(a.plots.columns) == ["plot_id", "lon", "lat", "temp", "elev"]
    assert a.plots["plot_id"].tolist() == PLOTS["plot_id"].tolist()
    assert a.plots["plot_id"].dtype == np.int64
    assert (a.plots[["lon", "lat", "temp", "elev"]].dtypes == np.float64).all()
    assert len(a.occurrences) == _expected_pairs()
    assert 15 in set(a.plots["plot_id"]) and 15 not in set(a.occurrences["plot_id"])
    assert pd.api.types.is_string_dtype(a.occurrences["species"])


@pytest.mark.parametrize(
    ("name", "sep"), [("t.tsv", "\t"), ("t.txt", ";"), ("t.txt", "\t"), ("t.parquet", "")]
)
def test_formats(tmp_path, name, sep):
    reference = load_presence_table(write_table(long_frame(), tmp_path / "ref.csv"), min_plots=0)
    path = write_table(long_frame(), tmp_path / name, sep=sep or ",")
    data = load_presence_table(path, min_plots=0)
    pd.testing.assert_frame_equal(data.plots, reference.plots)
    pd.testing.assert_frame_equal(data.occurrences, reference.occurrences)


def test_explicit_separator(tmp_path):
    path = write_table(long_frame(), tmp_path / "t.dat", sep="|")
    with pytest.raises(DataError, match="sep="):
        load_presence_table(path, min_plots=0)
    assert load_presence_table(path, min_plots=0, sep="|").n_plots == 6


def test_presence_column_zeros_are_absences(tmp_path):
    path = write_table(long_frame(with_absences=True), tmp_path / "long.csv")
    data = load_presence_table(path, presence_column="count", min_plots=0)
    assert data.n_plots == 6  # plot 15 kept though all its rows are zeros
    assert len(data.occurrences) == _expected_pairs()
    wide = load_presence_table(
        write_table(wide_frame(), tmp_path / "w.csv"),
        layout="wide",
        predictor_columns=PREDICTORS,
        min_plots=0,
    )
    pd.testing.assert_frame_equal(data.occurrences, wide.occurrences)
    # without the presence column every row counts as a presence
    assert len(load_presence_table(path, min_plots=0).occurrences) == PRESENCE.size


def test_min_plots(tmp_path):
    path = write_table(long_frame(), tmp_path / "long.csv")
    data = load_presence_table(path, min_plots=3)  # Fagus in 4 plots, Abies and Quercus in 3
    assert set(data.occurrences["species"]) == {"Fagus sylvatica"}
    with pytest.raises(DataError, match="min-plots"):
        load_presence_table(path, min_plots=4)


def test_swapped_coordinates(tmp_path):
    frame = long_frame().rename(columns={"lon": "lat", "lat": "lon"})
    frame.loc[frame["plot_id"] == 16, "lon"] = 95.0  # a "latitude" beyond 90 in the lon column
    path = write_table(frame, tmp_path / "long.csv")
    with pytest.raises(DataError, match="swapped"):
        load_presence_table(path, lon_column="lat", lat_column="lon", min_plots=0)


def test_missing_column_lists_available(tmp_path):
    path = write_table(long_frame(), tmp_path / "long.csv")
    with pytest.raises(DataError, match=r"\['x', 'y'\].*available columns.*'plot_id'"):
        load_presence_table(path, lon_column="x", lat_column="y")


def test_inf_becomes_nan(tmp_path, caplog):
    path = write_table(wide_frame(), tmp_path / "wide.csv")
    with caplog.at_level(logging.INFO, logger="masksdm.data.tables"):
        data = load_presence_table(path, layout="wide", predictor_columns=PREDICTORS, min_plots=0)
    temp = data.plots["temp"].to_numpy()
    assert np.isnan(temp[2]) and np.isnan(temp[4]) and temp[0] == 10.5
    assert any("infinite" in r.getMessage() for r in caplog.records)


def test_wide_non_numeric_species_column(tmp_path):
    frame = wide_frame().assign(habitat="forest")
    path = write_table(frame, tmp_path / "wide.csv")
    with pytest.raises(DataError, match=r"'habitat'.*predictor_columns"):
        load_presence_table(path, layout="wide", predictor_columns=PREDICTORS, min_plots=0)


def test_wide_without_predictors_treats_them_as_species(tmp_path):
    frame = wide_frame().drop(columns=["temp"])
    path = write_table(frame, tmp_path / "wide.csv")
    data = load_presence_table(path, layout="wide", min_plots=0)
    assert "elev" in set(data.occurrences["species"])  # as documented: unnamed columns are species


def test_non_numeric_predictor(tmp_path):
    frame = long_frame().assign(temp="warm")
    path = write_table(frame, tmp_path / "long.csv")
    with pytest.raises(DataError, match=r"predictor column 'temp'.*'warm'"):
        load_presence_table(path, predictor_columns=["temp"], min_plots=0)


def test_long_disagreeing_plot_values(tmp_path):
    frame = long_frame()
    frame.loc[frame.index[0], "elev"] = 999.0
    path = write_table(frame, tmp_path / "long.csv")
    with pytest.raises(DataError, match=r"'elev'.*plot 11"):
        load_presence_table(path, predictor_columns=PREDICTORS, min_plots=0)


def test_text_plot_ids_kept(tmp_path):
    frame = long_frame()
    frame["plot_id"] = "P" + frame["plot_id"].astype(str)
    data = load_presence_table(write_table(frame, tmp_path / "long.csv"), min_plots=0)
    assert data.plots["plot_id"].tolist()[:2] == ["P11", "P12"]
    frame["plot_id"] = "00" + frame["plot_id"].str[1:]
    data = load_presence_table(write_table(frame, tmp_path / "long.csv"), min_plots=0)
    assert data.plots["plot_id"].tolist()[:2] == ["0011", "0012"]  # leading zeros kept


def test_bad_presence_values(tmp_path):
    frame = long_frame(with_absences=True)
    frame.loc[frame.index[0], "count"] = -1
    path = write_table(frame, tmp_path / "long.csv")
    with pytest.raises(DataError, match="count"):
        load_presence_table(path, presence_column="count", min_plots=0)


def test_unknown_layout_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="layout"):
        load_presence_table(tmp_path / "x.csv", layout="matrix")
    with pytest.raises(DataError, match="does not exist"):
        load_presence_table(tmp_path / "x.csv")


def test_wrong_separator_hint(tmp_path):
    path = write_table(long_frame(), tmp_path / "long.csv", sep=";")
    with pytest.raises(DataError, match="sep=';'"):
        load_presence_table(path, min_plots=0)
