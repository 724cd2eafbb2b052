"""Evaluation under predictor subsets, imputation baselines and the comparison table."""

import numpy as np
import pytest

from masksdm.errors import DataError
from masksdm.evaluation.compare import compare_subsets, format_table
from masksdm.evaluation.imputation import KNNImputer, make_imputer
from masksdm.evaluation.subsets import default_subsets, evaluate
from masksdm.model.checkpoint import load_checkpoint


def test_evaluate_every_group_and_all(tiny_run, tiny_workspace):
    model, card = load_checkpoint(tiny_run)
    result = evaluate(model, card, tiny_workspace)
    summary = result.summary.set_index("subset")
    assert list(summary.index) == ["WorldClim", "SoilGrids", "Location", "Metadata", "Other", "all"]
    assert summary.loc["all", "n_predictors"] == len(card.predictors)
    assert summary.loc["Location", "n_predictors"] == 2
    # species respond to bio_1 and PHIHOX only: pure noise must do worse than everything together
    assert summary.loc["all", "mean_auc"] > summary.loc["Other", "mean_auc"] + 0.05
    assert summary["mean_auc"].between(0, 1).all() and summary["mean_tss"].between(-1, 1).all()
    assert len(result.per_species) == len(summary) * len(card.species)


def test_evaluate_named_subsets(tiny_run, tiny_workspace):
    model, card = load_checkpoint(tiny_run)
    result = evaluate(model, card, tiny_workspace, subsets={"climate+soil": ["bio_1", "SoilGrids"]})
    assert result.summary.loc[0, "n_predictors"] == 2
    with pytest.raises(DataError, match="unknown predictor or group"):
        evaluate(model, card, tiny_workspace, subsets={"x": ["Climate"]})


def test_imputers_fill_hidden_only():
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(50, 3)).astype(np.float32)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    x[0, 0] = np.nan
    visible = np.array([True, True, False])
    mean = make_imputer("mean", x_train).impute(x, visible)
    assert mean.shape == (1, 4, 3) and (mean[0, :, 2] == 0).all() and mean[0, 0, 0] == 0
    np.testing.assert_array_equal(mean[0, 1:, :2], x[1:, :2])
    median = make_imputer("median", x_train).impute(x, visible)
    assert np.allclose(median[0, :, 2], np.median(x_train[:, 2]))
    knn = KNNImputer(k=3).fit(x_train).impute(x, visible)
    assert knn.shape == (3, 4, 3)
    # donors are real training rows nearest in the visible columns
    d = ((x_train[:, :2] - x[1, :2]) ** 2).sum(1)
    assert knn[0, 1, 2] == x_train[np.argmin(d), 2]


def test_compare_table(tiny_run, tiny_workspace):
    subsets = {"WorldClim": ["WorldClim"], "all": None}
    table = compare_subsets(tiny_workspace, "tiny", subsets=subsets, progress=False)
    assert list(table.index) == ["MaskSDM", "mean imputation", "median imputation", "knn imputation", "oracle"]
    assert list(table.columns) == ["WorldClim", "all"]
    assert table.to_numpy().min() > 0.4 and table.to_numpy().max() <= 1
    low, high = table.attrs["auc_low"], table.attrs["auc_high"]  # each mean's interval over species
    assert low.shape == high.shape == table.shape
    assert (low.to_numpy() < table.to_numpy()).all() and (table.to_numpy() < high.to_numpy()).all()
    models = tiny_workspace.models_dir()
    assert (models / "tiny-unmasked" / "model.json").exists()
    assert (models / "tiny-oracle-WorldClim" / "model.json").exists()
    stamp = (models / "tiny-unmasked" / "model.safetensors").stat().st_mtime_ns
    compare_subsets(tiny_workspace, "tiny", subsets=subsets, progress=False)  # reuses finished baselines
    assert (models / "tiny-unmasked" / "model.safetensors").stat().st_mtime_ns == stamp
    markdown = format_table(table)
    assert markdown.count("\n") == 6 and "**" in markdown
    assert f"({100 * low.loc['oracle', 'all']:.1f}-{100 * high.loc['oracle', 'all']:.1f})" in markdown


def test_default_subsets(tiny_run):
    _, card = load_checkpoint(tiny_run)
    subsets = default_subsets(card)
    assert subsets["all"] is None and subsets["WorldClim"] == ["WorldClim"]
    assert sorted(subsets) == sorted({p.group for p in card.predictors} | {"all"})
