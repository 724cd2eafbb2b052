"""Tests of masksdm.data.tables: long and wide presence tables."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from fixtures.tables import PLOTS, PRESENCE, SPECIES, long_frame, wide_frame, write_table

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
    frame = long_frame().assign(lon=lambda f: f["lon"] + 100)  # plots in East Asia
    frame = frame.rename(columns={"lon": "lat", "lat": "lon"})  # the headers swapped
    path = write_table(frame, tmp_path / "long.csv")
    with pytest.raises(DataError, match="swapped"):
        load_presence_table(path, min_plots=0)
    assert load_presence_table(path, lon_column="lat", lat_column="lon", min_plots=0).n_plots == 6


def test_one_bad_latitude_is_named_not_called_swapped(tmp_path):
    frame = long_frame()
    frame.loc[frame["plot_id"] == 16, "lat"] = 95.0
    path = write_table(frame, tmp_path / "long.csv")
    with pytest.raises(DataError, match="latitude outside") as err:
        load_presence_table(path, min_plots=0)
    assert "swapped" not in str(err.value) and "95" in str(err.value)


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


# --- wide tables: which columns become species ----------------------------------------------


def _wide_plots(n: int) -> pd.DataFrame:
    """``n`` plots with a common species (every 2nd plot) and a rare one (every 5th)."""
    rng = np.arange(n)
    return pd.DataFrame(
        {
            "plot_id": 100 + rng,
            "lon": 5.0 + 0.01 * rng,
            "lat": 45.0 + 0.01 * rng,
            "Fagus sylvatica": (rng % 2 == 0).astype(int) * 3,
            "Abies alba": (rng % 5 == 0).astype(int),
        }
    )


def test_wide_duplicated_headers_are_refused(tmp_path):
    path = tmp_path / "wide.csv"
    wide_frame().to_csv(path, index=False)
    text = path.read_text(encoding="utf-8").splitlines()
    text[0] = text[0].replace("Quercus ilex", "Abies alba")  # columns 7 and 8: 'Abies alba'
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"columns 7 and 8 .*'Abies alba'.*rename"):
        load_presence_table(path, layout="wide", predictor_columns=PREDICTORS, min_plots=0)


def test_wide_written_index_is_refused_unless_declared(tmp_path):
    path = tmp_path / "wide.csv"
    wide_frame().to_csv(path)  # index=True: an unnamed first column
    with pytest.raises(DataError, match=r"number 1 \('Unnamed: 0'\).*index=False.*--info-columns"):
        load_presence_table(path, layout="wide", predictor_columns=PREDICTORS, min_plots=0)
    data = load_presence_table(path, layout="wide", predictor_columns=PREDICTORS,
                               info_columns=["Unnamed: 0"], min_plots=0)
    assert set(data.occurrences["species"]) == set(SPECIES)


def test_wide_negative_values_are_refused(tmp_path):
    frame = wide_frame()
    frame.loc[1, "Abies alba"] = -1
    path = write_table(frame, tmp_path / "wide.csv")
    with pytest.raises(DataError, match=r"'Abies alba'.*negative.*-1.*--predictor-columns"):
        load_presence_table(path, layout="wide", predictor_columns=PREDICTORS, min_plots=0)


def test_wide_decimals_above_100_are_refused_but_cover_is_kept(tmp_path):
    frame = wide_frame().drop(columns=["elev"]).assign(elev=[300.5, 250.0, 900.0, 120.0, 45.0, 1400.0])
    path = write_table(frame, tmp_path / "wide.csv")
    with pytest.raises(DataError, match=r"'elev'.*decimals.*300.5.*above 100.*--predictor-columns"):
        load_presence_table(path, layout="wide", predictor_columns=["temp"], min_plots=0)
    # percent cover with decimals, and 0-1 fractions, are species values
    cover = wide_frame().assign(**{"Fagus sylvatica": [37.5, 0.5, 0, 100, 0, 2.25],
                                   "Abies alba": [0.25, 0, 1, 0.5, 0, 0]})
    data = load_presence_table(write_table(cover, tmp_path / "cover.csv"), layout="wide",
                               predictor_columns=PREDICTORS, min_plots=0)
    fagus = data.occurrences.loc[data.occurrences["species"] == "Fagus sylvatica", "plot_id"]
    assert fagus.tolist() == [11, 12, 14, 16]


def test_wide_dates_and_text_are_refused(tmp_path):
    frame = wide_frame().assign(surveyed=pd.to_datetime(["2012-05-01"] * 6))
    path = write_table(frame, tmp_path / "wide.parquet")
    with pytest.raises(DataError, match=r"'surveyed'.*dates.*--info-columns"):
        load_presence_table(path, layout="wide", predictor_columns=PREDICTORS, min_plots=0)
    data = load_presence_table(path, layout="wide", predictor_columns=PREDICTORS,
                               info_columns=["surveyed"], min_plots=0)
    assert set(data.occurrences["species"]) == set(SPECIES)
    path = write_table(frame, tmp_path / "wide.csv")  # dates as text
    with pytest.raises(DataError, match=r"'surveyed'.*'2012-05-01'.*--info-columns"):
        load_presence_table(path, layout="wide", predictor_columns=PREDICTORS, min_plots=0)


def test_wide_logs_what_became_species_and_warns_of_ubiquitous_columns(tmp_path, caplog):
    frame = _wide_plots(40).assign(year=2012)
    path = write_table(frame, tmp_path / "wide.csv")
    with caplog.at_level(logging.INFO, logger="masksdm.data.tables"):
        data = load_presence_table(path, layout="wide", min_plots=0)
    assert "year" in set(data.occurrences["species"])  # kept, as the rule says, but flagged
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "year" in warnings[0] and "Fagus" not in warnings[0]
    assert "--predictor-columns" in warnings[0] and "--info-columns" in warnings[0]
    info = [r.getMessage() for r in caplog.records if "became species" in r.getMessage()]
    assert info and "3 columns became species: Fagus sylvatica, Abies alba, year" in info[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="masksdm.data.tables"):
        load_presence_table(path, layout="wide", info_columns=["year"], min_plots=0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- names and plot ids -----------------------------------------------------------------------


def test_species_names_are_cleaned_and_case_merged(tmp_path, caplog):
    frame = long_frame()
    abies = frame["species"] == "Abies alba"  # in plots 11, 13 and 14
    frame.loc[abies, "species"] = ["Abies alba ", "abies alba", " Abies  alba"]
    frame.loc[frame.index[-1], "species"] = "Abie\u0301s nordmanniana"  # decomposed (NFD) accent
    frame.loc[frame.index[0], "species"] = "Abi\u00e9s nordmanniana"  # composed (NFC)
    path = write_table(frame, tmp_path / "long.csv")
    with caplog.at_level(logging.INFO, logger="masksdm.data.plotdata"):
        data = load_presence_table(path, min_plots=0)
    names = set(data.occurrences["species"])
    assert names == {"Fagus sylvatica", "Abies alba", "Quercus ilex", "Abi\u00e9s nordmanniana"}
    merges = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(merges) == 1 and "'abies alba' (1) -> 'Abies alba' (2)" in merges[0]
    # the wide layout: columns that differ only by spaces or case are one species
    wide = wide_frame().rename(columns={"Abies alba": "abies alba ", "Quercus ilex": "Abies alba"})
    data = load_presence_table(write_table(wide, tmp_path / "wide.csv"), layout="wide",
                               predictor_columns=PREDICTORS, min_plots=0)
    abies_plots = data.occurrences.loc[data.occurrences["species"] == "Abies alba", "plot_id"]
    assert abies_plots.tolist() == [11, 13, 14, 16]  # the union of both columns
    assert set(data.occurrences["species"]) == {"Fagus sylvatica", "Abies alba"}


def test_plot_ids_1_and_1_0_are_one_plot(tmp_path):
    frame = long_frame()
    frame["plot_id"] = frame["plot_id"].astype(str)
    frame.loc[frame.index[1], "plot_id"] = frame.loc[frame.index[1], "plot_id"] + ".0"  # "11.0"
    frame.loc[frame.index[2], "plot_id"] = " 12 "
    data = load_presence_table(write_table(frame, tmp_path / "long.csv"), min_plots=0)
    assert data.plots["plot_id"].tolist() == PLOTS["plot_id"].tolist()
    assert data.plots["plot_id"].dtype == np.int64
    frame.loc[frame.index[0], "plot_id"] = "A"  # text ids: "11.0" is still "11"
    data = load_presence_table(write_table(frame, tmp_path / "long.csv"), min_plots=0)
    assert data.plots["plot_id"].tolist()[:3] == ["A", "11", "12"]


# --- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_truncated_compressed_file(tmp_path, suffix):
    rows = pd.concat([long_frame()] * 400, ignore_index=True)
    path = tmp_path / f"long.csv{suffix}"
    rows.to_csv(path, index=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"long\.csv.*truncated or corrupt.*download it again"):
        load_presence_table(path, min_plots=0)


def test_zst_without_zstandard(tmp_path, monkeypatch):
    import sys

    from masksdm.errors import DependencyNotFoundError

    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed
    path = tmp_path / "long.csv.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(DependencyNotFoundError, match=r"long\.csv\.zst.*pip install zstandard"):
        load_presence_table(path, min_plots=0)


def test_semicolon_file_from_the_command_line(tmp_path, capsys):
    from masksdm.cli import main

    path = write_table(long_frame(), tmp_path / "long.csv", sep=";")
    with pytest.raises(DataError, match=r"pass --sep ';'"):
        load_presence_table(path, min_plots=0)
    parsed = main.__globals__["build_parser"]().parse_args(
        ["prepare", "--workspace", str(tmp_path / "ws"), "--table", str(path), "--sep", ";"])
    assert parsed.sep == ";"
    assert load_presence_table(path, min_plots=0, sep=parsed.sep).n_plots == 6
    tsv = write_table(long_frame(), tmp_path / "long.dat", sep="\t")
    assert load_presence_table(tsv, min_plots=0, sep="tab").n_plots == 6


def test_min_plots_names_the_species_it_leaves_out(tmp_path, caplog):
    path = write_table(long_frame(), tmp_path / "long.csv")
    counts = long_frame().dropna(subset=["species"]).groupby("species")["plot_id"].nunique()
    cut = int(counts.min())
    with caplog.at_level("WARNING", logger="masksdm.data.plotdata"):
        data = load_presence_table(path, min_plots=cut)
    dropped = sorted(counts.index[counts <= cut])
    assert dropped and not set(dropped) & set(data.occurrences["species"])
    assert f"{len(dropped)} species seen in {cut} plots or fewer" in caplog.text
    assert all(name in caplog.text for name in dropped)
