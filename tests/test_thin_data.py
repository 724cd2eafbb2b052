"""Evaluation on thin data: stratified block splits and folds, species too thin to score, and the
rules around them (prepare lists them, evaluate leaves them out, training never selects on them)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import make_plot_data, tiny_config

from masksdm.cli import main
from masksdm.cli._common import MIN_CLASS as CLI_MIN_CLASS
from masksdm.data.plotdata import PlotData
from masksdm.data.splits import (
    SPLITS,
    fold_split,
    presence_matrix,
    spatial_block_split,
    spatial_folds,
    split_balance,
)
from masksdm.errors import DataError
from masksdm.evaluation.subsets import evaluate
from masksdm.metrics import MIN_CLASS
from masksdm.model.checkpoint import load_checkpoint
from masksdm.model.training import train
from masksdm.workspace import prepare_workspace


def clustered(n_plots: int = 3000, n_species: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plots over 30 x 20 one-degree blocks; each species lives in a disc of 1 to 5 degrees, so
    its presences cluster in a few blocks, as records do."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(0, 30, n_plots), rng.uniform(0, 20, n_plots)
    centre = rng.uniform([0, 0], [30, 20], (n_species, 2))
    radius = rng.uniform(1.0, 5.0, n_species)
    inside = np.hypot(lon[:, None] - centre[:, 0], lat[:, None] - centre[:, 1]) < radius
    y = inside & (rng.random((n_plots, n_species)) < rng.uniform(0.1, 0.9, n_species))
    y[:, 0] = rng.random(n_plots) < 0.85  # a species in most plots: its absences are the rare class
    return lon, lat, y


def _test_share_gap(split: np.ndarray, y: np.ndarray, want: float = 0.15) -> np.ndarray:
    shares = split_balance(split, y)["share_test"].to_numpy()
    return np.abs(shares - want)


def test_stratified_split_shares_every_species_presences_and_the_plain_one_does_not():
    lon, lat, y = clustered()
    plain = spatial_block_split(lon, lat, block_size=1.0, seed=3)
    strat = spatial_block_split(lon, lat, block_size=1.0, seed=3, labels=y)
    # the plots still split 70/15/15
    for s, want in zip(SPLITS, (0.70, 0.15, 0.15), strict=True):
        assert abs((strat == s).mean() - want) < 0.03
    gap_plain, gap_strat = _test_share_gap(plain, y), _test_share_gap(strat, y)
    assert gap_strat.mean() < 0.5 * gap_plain.mean()
    assert np.quantile(gap_strat, 0.9) < 0.08
    b = split_balance(strat, y)
    assert (b["presences_test"] > 0).all() and (b["presences_val"] > 0).all()
    # the common species is stratified on its absences
    absences = (~y[:, 0]).sum()
    assert abs(b.loc[0, "absences_test"] / absences - 0.15) < 0.05
    # seeded: same seed same split, another seed another one; blocks stay whole
    assert np.array_equal(strat, spatial_block_split(lon, lat, block_size=1.0, seed=3, labels=y))
    assert not np.array_equal(strat, spatial_block_split(lon, lat, block_size=1.0, seed=4, labels=y))
    block = np.floor(lon).astype(int) * 100 + np.floor(lat).astype(int)
    assert pd.DataFrame({"b": block, "s": strat}).groupby("b")["s"].nunique().max() == 1


def test_stratified_folds_share_presences_evenly_and_validation_is_stratified_too():
    lon, lat, y = clustered(seed=1)
    gaps = {}
    for name, labels in (("plain", None), ("strat", y)):
        folds = spatial_folds(lon, lat, n_folds=5, block_size=1.0, seed=0, labels=labels)
        assert sorted(np.unique(folds).tolist()) == [0, 1, 2, 3, 4]
        per_fold = np.stack([y[folds == k].sum(axis=0) for k in range(5)]) / y.sum(axis=0)
        gaps[name] = np.abs(per_fold - 0.2).mean()
        if labels is not None:
            assert np.abs(np.bincount(folds) / len(folds) - 0.2).max() < 0.04
            split = fold_split(folds, 2, lon, lat, block_size=1.0, val_fraction=0.2, seed=0, labels=y)
            assert np.array_equal(split == "test", folds == 2)
            train_or_val = split != "test"
            val_share = y[split == "val"].sum(axis=0) / np.maximum(y[train_or_val].sum(axis=0), 1)
            assert np.abs(val_share - 0.2).mean() < 0.06
    assert gaps["strat"] < 0.6 * gaps["plain"]


def test_presence_matrix_follows_the_plot_order_and_merges_repeats():
    occ = pd.DataFrame({"plot_id": [3, 1, 1, 3, 9], "species": ["b", "a", "a", "a", "a"]})
    m = presence_matrix([1, 2, 3], occ)  # plot 9 is not a plot: left out
    assert m.toarray().tolist() == [[1, 0], [0, 0], [1, 1]]


def _clustered_workspace(tmp_path, *, stratify: bool = True, block_size: float = 5.0):
    """A workspace where one species ('Clustered rarity') has 40 records in two small clusters."""
    data = make_plot_data(900, seed=2)
    rng = np.random.default_rng(0)
    plots = data.plots
    near = (np.hypot(plots["lon"] - 0, plots["lat"] - 45) < 2.5) | (np.hypot(plots["lon"] - 20, plots["lat"] - 55) < 2.5)
    ids = plots["plot_id"][near].to_numpy()
    rare = pd.DataFrame({"plot_id": rng.choice(ids, size=min(40, len(ids)), replace=False), "species": "Clustered rarity"})
    data = PlotData(plots=plots, occurrences=pd.concat([data.occurrences, rare], ignore_index=True), source="test")
    return prepare_workspace(data, tmp_path / f"ws-{stratify}", block_size=block_size, seed=0, stratify=stratify,
                             progress=False)


def test_prepare_stratifies_by_default_and_lists_thin_species(tmp_path, capsys):
    ws = _clustered_workspace(tmp_path)
    assert ws.meta["split"]["stratified"] is True
    assert not _clustered_workspace(tmp_path, stratify=False).meta["split"]["stratified"]
    shares = ws.split_shares().set_index("species")
    assert {"share_train", "share_val", "share_test"} <= set(shares.columns)
    thin = ws.thin_species(100)  # a high bar: every species falls under it somewhere
    assert len(thin) == ws.meta["n_species"]
    row = ws.thin_species(MIN_CLASS)
    assert set(row.columns) == {"species", "presences_val", "absences_val", "presences_test", "absences_test"}
    assert ((row.drop(columns="species") < MIN_CLASS).any(axis=1)).all()  # listed only when thin

    table = tmp_path / "t.csv"
    long = ws.occurrences.merge(ws.species, on="species_id")[["plot_id", "species"]]
    long = long.merge(ws.plots[["plot_id", "lon", "lat", "bio_1"]], on="plot_id")
    long.to_csv(table, index=False)
    capsys.readouterr()
    main(["prepare", "--workspace", str(tmp_path / "cli"), "--table", str(table), "--predictor-columns", "bio_1",
          "--block-size", "5", "--min-plots", "0", "--min-presences", "60", "--quiet"])
    out = capsys.readouterr().out
    assert "stratified by species" in out
    assert "fewer than 60 presences or absences in validation or test" in out
    assert "Clustered rarity" in out
    main(["prepare", "--workspace", str(tmp_path / "cli2"), "--table", str(table), "--predictor-columns", "bio_1",
          "--block-size", "5", "--min-plots", "0", "--no-stratify", "--quiet"])
    assert "not stratified" in capsys.readouterr().out
    assert CLI_MIN_CLASS == MIN_CLASS


def test_evaluate_leaves_thin_species_out_unless_asked(tmp_path):
    ws = _clustered_workspace(tmp_path)
    run = ws.run_dir("main")
    train(ws, run, config=tiny_config(epochs=3), progress=False)
    model, card = load_checkpoint(run)
    bar = 40  # the clustered species and others fall under it
    listed = ws.thin_species(bar)
    thin = set(listed.loc[(listed["presences_test"] < bar) | (listed["absences_test"] < bar), "species"])
    assert thin and thin != set(card.species)
    out = evaluate(model, card, ws, subsets={"all": None}, min_class=bar)
    per = out.per_species.set_index("species")
    assert per.loc[sorted(thin), "thin"].all() and not per.drop(index=sorted(thin))["thin"].any()
    scored = per[~per["thin"]]
    assert out.summary.loc[0, "n_species"] == len(scored)
    assert out.summary.loc[0, "n_thin"] == len(thin)
    assert out.summary.loc[0, "mean_auc"] == pytest.approx(scored["auc"].mean())
    kept = evaluate(model, card, ws, subsets={"all": None}, min_class=bar, keep_thin=True)
    assert kept.summary.loc[0, "mean_auc"] == pytest.approx(per["auc"].mean())
    with pytest.raises(DataError, match="smaller blocks.*masksdm cv"):
        evaluate(model, card, ws, subsets={"all": None}, min_class=10_000)


def test_training_never_selects_epochs_on_thin_validation_species(tmp_path, caplog):
    ws = _clustered_workspace(tmp_path)
    val_y = ws.labels("val")
    n_val = len(val_y)
    counts = val_y.sum(axis=0)
    scored = (counts >= MIN_CLASS) & (n_val - counts >= MIN_CLASS)
    assert scored.any() and not scored.all()
    run = ws.run_dir("best")
    train(ws, run, config=tiny_config(epochs=3, select="best"), progress=False)
    model, card = load_checkpoint(run)
    from masksdm.evaluation.subsets import subset_logits
    from masksdm.metrics import roc_auc
    from masksdm.model.checkpoint import split_arrays

    x, y = split_arrays(card, ws, "val")

    auc = roc_auc(subset_logits(model, card, x, None), y)
    assert card.metrics["val_mean_auc"] == pytest.approx(np.nanmean(auc[scored]), abs=1e-6)
    assert card.metrics["val_mean_auc"] != pytest.approx(np.nanmean(auc), abs=1e-6)

    # every species thin in validation: no epoch is chosen on them, the last one is kept, with a warning
    sparse_val = ws.with_split(np.where(ws.plots["split"] == "val", "train", ws.plots["split"]), tmp_path / "few",
                               description="few validation plots", force=True)
    split = sparse_val.plots["split"].to_numpy().copy()
    split[np.flatnonzero(split == "train")[:6]] = "val"
    few = ws.with_split(split, tmp_path / "few2", description="six validation plots", force=True)
    with caplog.at_level(logging.WARNING):
        result = train(few, few.run_dir("main"), config=tiny_config(epochs=3, select="best", patience=1), progress=False)
    assert result.best_epoch == result.epochs_run == 3
    assert "validation" in caplog.text and "last epoch" in caplog.text
