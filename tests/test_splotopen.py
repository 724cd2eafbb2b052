"""Tests of masksdm.data.splotopen on tiny generated files and, when present, 17 real Greek plots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.splotopen import PLOT_IDS, default_records, write_splotopen

from masksdm.data.plotdata import PlotData
from masksdm.data.splotopen import default_table_predictors, load_splotopen
from masksdm.errors import DataError


def _greece_dir() -> Path:
    shared = os.environ.get("MASKSDM_SHARED_DATA")
    if shared:
        return Path(shared) / "splotopen_greece"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "splotopen_greece"


def test_default_predictors_are_the_table_ones():
    names = default_table_predictors()
    assert names[:4] == ["Longitude", "Latitude", "Location_uncertainty", "Releve_area"]
    assert len(names) == 22
    assert sum(n.startswith("Cover_") for n in names) == 11
    assert sum(n.startswith("Height_") for n in names) == 7


def test_load_contract(tmp_path):
    write_splotopen(tmp_path)
    data = load_splotopen(tmp_path)
    assert isinstance(data, PlotData)
    plots = data.plots
    assert list(plots.columns) == ["plot_id", "lon", "lat", *default_table_predictors()]
    assert plots["plot_id"].dtype == np.int64
    assert plots["plot_id"].tolist() == list(PLOT_IDS)
    assert (plots.drop(columns="plot_id").dtypes == np.float64).all()
    assert plots["Cover_algae_layer"].isna().all()
    assert plots["Cover_lichen_layer"].iloc[-1] == 5.5
    assert plots["Cover_shrub_layer"].iloc[0] == 3.5
    np.testing.assert_array_equal(plots["Longitude"], plots["lon"])
    np.testing.assert_array_equal(plots["Latitude"], plots["lat"])
    assert plots["lon"].iloc[1] == pytest.approx(22.1)
    assert plots["lat"].iloc[1] == pytest.approx(40.05)
    assert np.isnan(plots["Releve_area"].iloc[3])
    # min_plots=20: only Fagus (25 plots); Abies (exactly 20 plots) and Quercus (5) are dropped
    occ = data.occurrences
    assert list(occ.columns) == ["plot_id", "species"]
    assert occ["species"].unique().tolist() == ["Fagus sylvatica"]
    assert len(occ) == 25
    assert occ["plot_id"].dtype == np.int64
    assert pd.api.types.is_string_dtype(occ["species"])
    assert "sPlotOpen" in data.source


def test_min_plots_counts_plots_not_rows(tmp_path):
    write_splotopen(tmp_path)
    data = load_splotopen(tmp_path, min_plots=19)
    assert set(data.occurrences["species"]) == {"Fagus sylvatica", "Abies alba"}
    # Quercus: 50 rows in 5 plots, kept above 4 plots as 5 unique pairs
    data = load_splotopen(tmp_path, min_plots=4)
    quercus = data.occurrences[data.occurrences["species"] == "Quercus ilex"]
    assert len(quercus) == 5
    assert not data.occurrences.duplicated().any()
    assert data.occurrences["species"].notna().all()
    assert len(data.occurrences) == 25 + 20 + 5


def test_download_suffix_names(tmp_path):
    write_splotopen(tmp_path, header_name="sPlotOpen_header(2).txt", dt_name="sPlotOpen_DT(1).txt")
    (tmp_path / "sPlotOpen_CWM_CWV(1).txt").write_text("PlotObservationID\n", encoding="utf-8")
    data = load_splotopen(tmp_path)
    assert data.n_plots == 30
    assert "sPlotOpen_header(2).txt" in data.source


@pytest.mark.parametrize(
    ("header_name", "dt_name", "pattern"),
    [
        ("", "sPlotOpen_DT.txt", r"sPlotOpen_header\*\.txt"),
        ("sPlotOpen_header.txt", "", r"sPlotOpen_DT\*\.txt"),
    ],
)
def test_missing_file(tmp_path, header_name, dt_name, pattern):
    write_splotopen(tmp_path, header_name=header_name, dt_name=dt_name)
    with pytest.raises(DataError, match=pattern) as info:
        load_splotopen(tmp_path)
    assert "--splotopen" in str(info.value)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="--splotopen"):
        load_splotopen(tmp_path / "nope")


def test_several_header_files(tmp_path):
    write_splotopen(tmp_path)
    write_splotopen(tmp_path, header_name="sPlotOpen_header(3).txt", dt_name="")
    with pytest.raises(DataError, match=r"keep only one") as info:
        load_splotopen(tmp_path)
    assert "sPlotOpen_header(3).txt" in str(info.value)
    assert "'sPlotOpen_header.txt'" in str(info.value)


def test_missing_required_column(tmp_path):
    write_splotopen(tmp_path, drop_header_columns=["Latitude"])
    with pytest.raises(DataError, match=r"Latitude.*sPlotOpen|sPlotOpen.*Latitude") as info:
        load_splotopen(tmp_path)
    assert "sPlotOpen_header.txt" in str(info.value)


def test_missing_dt_column(tmp_path):
    write_splotopen(tmp_path)
    (tmp_path / "sPlotOpen_DT.txt").write_text(
        "PlotObservationID\tName\n1001\tx\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"'Species'.*sPlotOpen_DT|sPlotOpen_DT.*'Species'"):
        load_splotopen(tmp_path)


def test_missing_optional_predictor_is_nan(tmp_path, caplog):
    write_splotopen(tmp_path, drop_header_columns=["Cover_total", "Height_herbs_lowest"])
    with caplog.at_level(logging.INFO, logger="masksdm.data.splotopen"):
        data = load_splotopen(tmp_path)
    assert data.plots["Cover_total"].isna().all()
    assert data.plots["Height_herbs_lowest"].dtype == np.float64
    assert any(
        "Cover_total" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records
    )


def test_custom_predictors(tmp_path):
    write_splotopen(tmp_path)
    data = load_splotopen(tmp_path, predictor_columns=["Elevation", "is_forest", "SoilClim_PC1"])
    assert list(data.plots.columns) == [
        "plot_id",
        "lon",
        "lat",
        "Elevation",
        "is_forest",
        "SoilClim_PC1",
    ]
    assert data.plots["is_forest"].tolist()[:3] == [1.0, 0.0, 1.0]
    assert data.plots["Elevation"].iloc[2] == 520.0


def test_non_numeric_predictor(tmp_path):
    write_splotopen(tmp_path)
    with pytest.raises(DataError, match="Naturalness"):
        load_splotopen(tmp_path, predictor_columns=["Naturalness"])


def test_duplicated_plot_ids(tmp_path):
    write_splotopen(tmp_path, plot_ids=[*PLOT_IDS, 1003])
    with pytest.raises(DataError, match=r"duplicated.*1003"):
        load_splotopen(tmp_path)


def test_dt_plot_not_in_header(tmp_path):
    write_splotopen(
        tmp_path, records=[*default_records(), (5, "Fagus sylvatica"), (6, "Abies alba")]
    )
    with pytest.raises(DataError, match=r"^2 plots of 'sPlotOpen_DT.txt' are not in"):
        load_splotopen(tmp_path)


def test_nothing_passes_filter(tmp_path):
    write_splotopen(tmp_path)
    with pytest.raises(DataError, match="--min-plots"):
        load_splotopen(tmp_path, min_plots=1000)


def test_bad_coordinates(tmp_path):
    write_splotopen(tmp_path, overrides={(2, "Latitude"): None})
    with pytest.raises(DataError, match="coordinates"):
        load_splotopen(tmp_path)


def test_bad_number(tmp_path):
    write_splotopen(tmp_path, overrides={(4, "Releve_area"): "large"})
    with pytest.raises(DataError, match="Releve_area"):
        load_splotopen(tmp_path)


def test_real_greece_plots():
    folder = _greece_dir()
    if not folder.is_dir():
        pytest.skip(f"real sPlotOpen sample not found at {folder} (set MASKSDM_SHARED_DATA)")
    data = load_splotopen(folder, min_plots=0)
    assert data.n_plots == 17
    plot = data.plots.set_index("plot_id").loc[790150]
    assert plot["lat"] == pytest.approx(41.45)
    assert plot["lon"] == pytest.approx(24.341667)
    assert plot["Releve_area"] == 300.0
    species = set(data.occurrences.loc[data.occurrences["plot_id"] == 790150, "species"])
    assert "Fagus sylvatica" in species
    dt_rows = len((folder / "sPlotOpen_DT.txt").read_text(encoding="utf-8").splitlines()) - 1
    assert 0 < len(data.occurrences) <= dt_rows <= 385
    assert not data.occurrences.duplicated().any()
    assert set(data.occurrences["plot_id"]) <= set(data.plots["plot_id"])


def test_species_names_are_cleaned_and_case_merged(tmp_path, caplog):
    """Spaces, Unicode form (NFC/NFD) and case do not make separate species."""
    records = default_records()
    records += [(pid, "Fagus sylvatica ") for pid in PLOT_IDS[25:27]]  # trailing space
    records += [(pid, "fagus  sylvatica") for pid in PLOT_IDS[27:28]]  # case, two spaces
    records += [(PLOT_IDS[0], "Abie\u0301s x"), (PLOT_IDS[1], "Abi\u00e9s x")]  # NFD, NFC
    records += [(PLOT_IDS[2], "   ")]  # blank: an unresolved name
    write_splotopen(tmp_path, records=records)
    with caplog.at_level(logging.INFO, logger="masksdm.data.plotdata"):
        data = load_splotopen(tmp_path, min_plots=0)
    occ = data.occurrences
    assert set(occ["species"]) == {"Fagus sylvatica", "Abies alba", "Quercus ilex", "Abi\u00e9s x"}
    assert (occ["species"] == "Fagus sylvatica").sum() == 28
    assert set(occ.loc[occ["species"] == "Abi\u00e9s x", "plot_id"]) == set(PLOT_IDS[:2])
    assert pd.api.types.is_string_dtype(occ["species"])
    merges = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(merges) == 1 and "'fagus sylvatica' (1) -> 'Fagus sylvatica' (27)" in merges[0]
