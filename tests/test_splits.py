"""Splits a user controls: their own labels, a test rule, and spatial k-fold cross-validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_plot_data, tiny_config

from masksdm.cli import main
from masksdm.data.plotdata import PlotData
from masksdm.data.splits import (
    fold_split,
    spatial_folds,
    split_from_column,
    split_from_rule,
)
from masksdm.data.tables import load_presence_table
from masksdm.errors import DataError
from masksdm.evaluation.cv import cross_validate
from masksdm.workspace import Workspace, prepare_workspace


def _with_year(n_plots: int = 600) -> PlotData:
    data = make_plot_data(n_plots)
    rng = np.random.default_rng(5)
    plots = data.plots.assign(year=rng.integers(2000, 2020, n_plots))
    plots["period"] = np.where(plots["year"] >= 2015, "test", "train")
    return PlotData(plots, data.occurrences, "fixture with years", info_columns=("year", "period"))


def _blocks(lon, lat, size):
    return [tuple(b) for b in np.floor(np.stack([lon, lat], 1) / size).astype(int)]


# --- the split functions ----------------------------------------------------------------------------

def test_split_from_column_keeps_the_labels_and_draws_validation_blocks():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(0, 10, 400), rng.uniform(40, 50, 400)
    labels = np.where(lon > 8, "Test", "training")
    split = split_from_column(labels, lon, lat, val_fraction=0.2, seed=1)
    assert (split[lon > 8] == "test").all()
    assert set(split[lon <= 8]) == {"train", "val"}
    share = (split == "val").sum() / (lon <= 8).sum()
    assert 0.1 < share < 0.3
    blocks = np.array(_blocks(lon, lat, 1.0))
    for block in {tuple(b) for b in blocks[split == "val"]}:  # whole blocks go to validation
        inside = (blocks == block).all(axis=1)
        assert set(split[inside]) == {"val"}
    given = np.where(lon > 8, "test", np.where(lon < 1, "validation", "train"))
    np.testing.assert_array_equal(split_from_column(given, lon, lat), np.where(given == "validation", "val", given))


def test_split_from_column_errors_name_the_problem():
    lon, lat = np.arange(6.0), np.zeros(6)
    with pytest.raises(DataError, match=r"other than train / val / test \(e.g. \['calibration'\]"):
        split_from_column(["train", "calibration", "test", "train", "train", "test"], lon, lat)
    with pytest.raises(DataError, match="test split empty"):
        split_from_column(["train", "val"] * 3, lon, lat)


def test_split_from_rule_marks_the_test_plots():
    data = _with_year().plots
    split = split_from_rule(data, "year >= 2015", val_fraction=0.15, seed=0)
    np.testing.assert_array_equal(split == "test", data["year"].to_numpy() >= 2015)
    assert (split == "val").any() and (split == "train").any()
    with pytest.raises(DataError, match="cannot evaluate the test rule 'altitude > 3'.*--info-columns"):
        split_from_rule(data, "altitude > 3")
    with pytest.raises(DataError, match="True or False"):
        split_from_rule(data, "year + 1")
    with pytest.raises(DataError, match="test split empty"):
        split_from_rule(data, "year > 3000")


def test_spatial_folds_partition_the_blocks_evenly():
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(0, 12, 3000), rng.uniform(40, 52, 3000)
    folds = spatial_folds(lon, lat, n_folds=5, block_size=1.0, seed=3)
    sizes = np.bincount(folds, minlength=5)
    assert sizes.sum() == 3000 and sizes.min() > 0.85 * sizes.max()
    blocks = np.array(_blocks(lon, lat, 1.0))
    for block in {tuple(b) for b in blocks}:
        assert len(set(folds[(blocks == block).all(axis=1)])) == 1
    assert not np.array_equal(folds, spatial_folds(lon, lat, n_folds=5, seed=4))
    for k in range(5):
        split = fold_split(folds, k, lon, lat, val_fraction=0.2, seed=k)
        assert ((split == "test") == (folds == k)).all()
        assert set(split[folds != k]) == {"train", "val"}
    with pytest.raises(DataError, match="fewer than 5 folds"):
        spatial_folds(np.arange(3.0), np.zeros(3), n_folds=5)
    with pytest.raises(DataError, match="at least 2 folds"):
        spatial_folds(lon, lat, n_folds=1)


# --- workspaces with the user's split ---------------------------------------------------------------

def test_prepare_with_a_split_column_or_rule_fits_normalisation_on_train_only(tmp_path):
    data = _with_year()
    ws = prepare_workspace(data, tmp_path / "col", split_column="period", block_size=2.0, progress=False)
    plots = ws.plots
    np.testing.assert_array_equal(plots["split"] == "test", plots["period"] == "test")
    assert ws.meta["split"]["method"] == "column" and "year" not in ws.predictor_names
    assert "period" in plots.columns and "year" in plots.columns  # info columns are kept
    train = plots[plots["split"] == "train"]
    assert ws.normalisation["bio_1"]["mean"] == pytest.approx(train["bio_1"].mean())
    assert ws.normalisation["bio_1"]["mean"] != pytest.approx(plots["bio_1"].mean(), abs=1e-6)

    rule = prepare_workspace(data, tmp_path / "rule", test_where="year >= 2015", block_size=2.0, progress=False)
    np.testing.assert_array_equal(rule.plots["split"] == "test", rule.plots["year"] >= 2015)
    assert rule.meta["split"]["method"] == "rule" and rule.meta["split"]["test_where"] == "year >= 2015"

    with pytest.raises(DataError, match="not both"):
        prepare_workspace(data, tmp_path / "x", split_column="period", test_where="year > 1", progress=False)
    with pytest.raises(DataError, match="not among the table's info columns"):
        prepare_workspace(data, tmp_path / "y", split_column="year2", progress=False)


def test_a_table_keeps_info_columns_and_the_cli_prepares_with_them(tmp_path, capsys):
    data = _with_year(300)
    table = data.occurrences.merge(data.plots, on="plot_id")
    path = tmp_path / "surveys.csv"
    table.to_csv(path, index=False)
    loaded = load_presence_table(path, predictor_columns=["bio_1", "PHIHOX"], info_columns=["year", "period"],
                                 min_plots=5)
    assert loaded.info_columns == ("year", "period") and loaded.plots["year"].dtype.kind == "i"
    broken = table.copy()
    broken.loc[broken.index[:2], "year"] = [1990, 1991]  # one plot with two years
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(DataError, match="different 'year' values"):
        load_presence_table(tmp_path / "broken.csv", info_columns=["year"], min_plots=5)

    common = ["prepare", "--table", str(path), "--predictor-columns", "bio_1,PHIHOX", "--min-plots", "5",
              "--block-size", "2", "--quiet"]
    assert main([*common, "--workspace", str(tmp_path / "a"), "--split-column", "period"]) == 0
    assert main([*common, "--workspace", str(tmp_path / "b"), "--info-columns", "year",
                 "--test-where", "year >= 2015"]) == 0
    ws = Workspace(tmp_path / "b")
    assert (ws.plots.loc[ws.plots["split"] == "test", "year"] >= 2015).all()
    assert main(["info", "--workspace", str(tmp_path / "b")]) == 0
    assert "split: test where year >= 2015" in capsys.readouterr().out


def test_with_split_copies_the_workspace_with_a_new_normalisation(tiny_workspace, tmp_path):
    ws = tiny_workspace
    split = np.where(ws.plots["lon"] > 15, "test", np.where(ws.plots["lon"] < 0, "val", "train"))
    copy = ws.with_split(split, tmp_path / "copy", description="by longitude")
    np.testing.assert_array_equal(copy.plots["split"], split)
    assert copy.meta["split"]["method"] == "by longitude"
    assert copy.predictor_names == ws.predictor_names and copy.species_names == ws.species_names
    np.testing.assert_array_equal(copy.labels(), ws.labels())
    expected = ws.plots.loc[split == "train", "bio_1"].mean()
    assert copy.normalisation["bio_1"]["mean"] == pytest.approx(expected)
    counts = copy.species.set_index("species")
    assert (counts["n_train"] + counts["n_val"] + counts["n_test"] == counts["n_plots"]).all()
    with pytest.raises(DataError, match="one of"):
        ws.with_split(["train"] * 3, tmp_path / "bad", description="x")


# --- cross-validation -------------------------------------------------------------------------------

def test_cross_validation_tests_every_plot_once_and_resumes(tiny_workspace, tmp_path, monkeypatch):
    config = tiny_config(epochs=6)
    cv = cross_validate(tiny_workspace, folds=3, config=config, subsets={"temp": ["bio_1"], "all": None},
                        block_size=2.0, out_dir=tmp_path / "cv", progress=False)
    assert list(cv.folds["fold"]) == [0, 0, 1, 1, 2, 2] and list(cv.summary["subset"]) == ["temp", "all"]
    assert cv.folds.groupby("subset")["n_test"].sum().eq(len(tiny_workspace.plots)).all()
    tested = [Workspace(p).plots.loc[lambda d: d["split"] == "test", "plot_id"] for p in cv.workspaces]
    assert sorted(pd.concat(tested)) == sorted(tiny_workspace.plots["plot_id"])  # each plot tested once
    for path in cv.workspaces:
        fold = Workspace(path)
        train = fold.plots[fold.plots["split"] == "train"]
        assert fold.normalisation["PHIHOX"]["mean"] == pytest.approx(train["PHIHOX"].mean())
    all_rows = cv.folds[cv.folds["subset"] == "all"]
    assert cv.summary.set_index("subset").loc["all", "mean_auc"] == pytest.approx(all_rows["mean_auc"].mean())
    assert cv.summary.set_index("subset").loc["all", "sd_auc"] == pytest.approx(all_rows["mean_auc"].std())
    assert (cv.folds["mean_auc"] > 0.5).all()
    # the interval of the mean over every scored (fold, species) pair
    pairs = cv.per_species.query("subset == 'all' and not thin")["auc"].dropna()
    row = cv.summary.set_index("subset").loc["all"]
    assert row["pooled_auc"] == pytest.approx(pairs.mean()) and row["auc_low"] < row["pooled_auc"] < row["auc_high"]
    scored = cv.per_species.dropna(subset=["auc"])
    assert (scored["auc_low"] <= scored["auc"]).all() and 0 < row["brier"] < 1

    import masksdm.model.training as training

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(training, "train", no_training)
    again = cross_validate(tiny_workspace, folds=3, config=config, subsets={"temp": ["bio_1"], "all": None},
                           block_size=2.0, out_dir=tmp_path / "cv", progress=False)
    pd.testing.assert_frame_equal(again.folds, cv.folds)


def test_the_cv_command_writes_its_reports(tiny_workspace, tmp_path, capsys):
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace.path, ws, ignore=shutil.ignore_patterns("models", "reports", "cv"))
    config = tmp_path / "run.toml"
    config.write_text('preset = "cpu"\n[model]\nd_token = 16\nn_blocks = 1\nn_heads = 2\n[train]\nepochs = 1\n'
                      'batch_size = 64\nwarmup_steps = 5\n')
    assert main(["cv", "--workspace", str(ws), "--folds", "2", "--block-size", "2", "--config", str(config),
                 "--subsets", "all", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Spatial 2-fold cross-validation" in out and "sd_auc" in out
    summary = pd.read_csv(ws / "reports" / "cv_2folds.csv")
    assert list(summary["subset"]) == ["all"] and summary["n_folds"].tolist() == [2]
    assert json.loads((ws / "cv" / "fold-1" / "workspace.json").read_text())["split"]["method"].startswith(
        "spatial fold 2 of 2")
    assert set(pd.read_csv(ws / "reports" / "cv_2folds_folds.csv")["fold"]) == {0, 1}
