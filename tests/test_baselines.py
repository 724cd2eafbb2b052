"""Per-species baselines (GLM, random forest, gradient boosting, Maxent), their comparison with
MaskSDM on the same split, and the paired test over species."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from masksdm.data.plotdata import PlotData
from masksdm.errors import DataError
from masksdm.evaluation.baselines import (
    BASELINES,
    compare_baselines,
    fit_baseline,
    format_comparison,
    impute_withheld,
)
from masksdm.evaluation.imputation import make_imputer
from masksdm.evaluation.paired import paired_test
from masksdm.evaluation.subsets import evaluate
from masksdm.metrics import roc_auc
from masksdm.model.checkpoint import load_checkpoint

WITHHELD = ["WorldClim", "noise"]  # a group and a single predictor
SETTINGS = ["all", "without WorldClim", "without noise"]


@pytest.fixture(scope="module")
def strong_workspace(tmp_path_factory):
    """400 plots where "Species strong" is present mostly where bio_1 is high (and near nothing else)."""
    from masksdm.workspace import prepare_workspace

    rng = np.random.default_rng(3)
    n = 400
    plots = pd.DataFrame({"plot_id": np.arange(n), "lon": rng.uniform(0, 12, n), "lat": rng.uniform(40, 52, n),
                          "bio_1": rng.normal(10, 3, n), "PHIHOX": rng.normal(6, 1, n), "noise": rng.normal(0, 1, n)})
    plots.loc[rng.random(n) < 0.1, "PHIHOX"] = np.nan  # NaN reaches every baseline
    logit = 3 * (plots["bio_1"] - 10) / 3
    present = rng.random(n) < 1 / (1 + np.exp(-logit))
    occ = pd.DataFrame({"plot_id": plots["plot_id"][present], "species": "Species strong"})
    data = PlotData(plots=plots, occurrences=occ, source="baseline test")
    return prepare_workspace(data, tmp_path_factory.mktemp("strong") / "ws", block_size=2.0, seed=0, progress=False)


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_learns_a_strong_response(strong_workspace, name):
    ws = strong_workspace
    y_train, y_test = ws.labels("train")[:, 0], ws.labels("test")[:, 0]
    model = fit_baseline(name, ws.features("train"), y_train, seed=0)
    p = model.predict(ws.features("test"))
    assert p.shape == (len(y_test),) and np.all((p >= 0) & (p <= 1))
    assert roc_auc(p[:, None], y_test[:, None])[0] > 0.82


@pytest.mark.parametrize("name", ["glm", "gbm"])
def test_retrained_model_never_reads_withheld_columns(strong_workspace, name):
    x = strong_workspace.features("train")
    y = strong_workspace.labels("train")[:, 0]
    columns = np.array(strong_workspace.predictor_names) != "bio_1"
    refit = fit_baseline(name, x, y, columns=columns)
    full = fit_baseline(name, x, y)
    changed = x.copy()
    changed[:, ~columns] = np.random.default_rng(1).normal(0, 5, size=(len(x), int((~columns).sum())))
    np.testing.assert_array_equal(refit.predict(changed), refit.predict(x))
    assert not np.allclose(full.predict(changed), full.predict(x))  # the full model does read bio_1


@pytest.mark.parametrize("imputation", ["mean", "knn"])
def test_imputation_replaces_exactly_the_withheld_columns(imputation):
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(60, 4)).astype(np.float32)
    x = rng.normal(3, 1, size=(5, 4)).astype(np.float32)
    x[0, 0] = x[1, 2] = np.nan
    visible = np.array([True, False, True, False])
    copies = impute_withheld(make_imputer(imputation, x_train), x, visible)
    assert copies.shape[1:] == x.shape and copies.shape[0] == (1 if imputation == "mean" else 5)
    # visible columns untouched, NaN included (each baseline treats NaN as with all predictors)
    np.testing.assert_array_equal(copies[:, :, visible], np.broadcast_to(x[:, visible], copies[:, :, visible].shape))
    hidden = copies[:, :, ~visible]
    assert np.isfinite(hidden).all() and not np.isclose(hidden, x[None][:, :, ~visible]).any()
    if imputation == "knn":  # donors are training rows
        assert np.isin(hidden[..., 0], x_train[:, 1]).all()


@pytest.fixture(scope="module")
def comparison(tiny_run, tiny_workspace):
    return compare_baselines(tiny_workspace, tiny_run.name, withheld=WITHHELD, max_species=3, progress=False)


def test_compare_returns_every_setting_and_method(comparison):
    summary = comparison.summary
    assert list(summary["setting"].unique()) == SETTINGS
    want = {("all", "MaskSDM"), *(("all", b) for b in BASELINES)}
    for setting in SETTINGS[1:]:
        want |= {(setting, "MaskSDM")}
        want |= {(setting, f"{b}{v}") for b in BASELINES for v in (" + mean", " + knn", " retrained")}
    assert set(zip(summary["setting"], summary["method"], strict=True)) == want and len(summary) == len(want)
    assert (summary["n_species"] == 3).all() and summary["mean_auc"].between(0.5, 1).all()
    assert summary["mean_tss"].between(-1, 1).all() and (summary["seconds"] > 0).all()
    assert len(comparison.per_species) == len(want) * 3
    tests = comparison.tests
    assert len(tests) == len(want) - len(SETTINGS) and (tests["n_species"] == 3).all()
    assert (tests["ci_low"] <= tests["mean_difference"]).all() and (tests["mean_difference"] <= tests["ci_high"]).all()
    assert tests["p_value"].between(0, 1).all()
    markdown = format_comparison(comparison)
    assert markdown == comparison.to_markdown()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(summary["method"].unique()) + 1 + len(tests)
    assert markdown.count("**") >= 2 * len(SETTINGS) and "| without WorldClim | rf retrained |" in markdown


def test_compare_masksdm_rows_equal_evaluate(comparison, tiny_run, tiny_workspace):
    model, card = load_checkpoint(tiny_run)
    per = comparison.per_species.query("method == 'MaskSDM'")
    species = per["species"].unique()
    visible = {"all": None, "without WorldClim": [p.name for p in card.predictors if p.group != "WorldClim"],
               "without noise": [p.name for p in card.predictors if p.name != "noise"]}
    reference = evaluate(model, card, tiny_workspace, subsets=visible).per_species.set_index(["subset", "species"])
    for setting in SETTINGS:
        ours = per[per["setting"] == setting].set_index("species")["auc"]
        np.testing.assert_allclose(ours.loc[species], reference.loc[setting].loc[species, "auc"], rtol=1e-12)


def test_compare_baseline_rows_are_the_fitted_models(comparison, tiny_run, tiny_workspace):
    """The glm rows of one species are what fit_baseline and impute_withheld give directly."""
    _, card = load_checkpoint(tiny_run)
    x = {s: card.features(tiny_workspace.raw_predictors(s, card.predictor_names)) for s in ("train", "test")}
    name = comparison.per_species["species"].iloc[0]
    j = tiny_workspace.species_names.index(name)
    y = {s: tiny_workspace.labels(s)[:, j] for s in x}
    visible = np.array([p.group != "WorldClim" for p in card.predictors])
    retrained = fit_baseline("glm", x["train"], y["train"], columns=visible).predict(x["test"])
    full = fit_baseline("glm", x["train"], y["train"])
    imputed = impute_withheld(make_imputer("mean", x["train"]), x["test"], visible)[0]
    rows = comparison.per_species.query("species == @name and setting == 'without WorldClim'").set_index("method")
    assert rows.loc["glm retrained", "auc"] == pytest.approx(roc_auc(retrained[:, None], y["test"][:, None])[0])
    assert rows.loc["glm + mean", "auc"] == pytest.approx(roc_auc(full.predict(imputed)[:, None], y["test"][:, None])[0])


def test_compare_reports_intervals_and_leaves_thin_species_out(comparison, tiny_run, tiny_workspace):
    per, summary = comparison.per_species, comparison.summary
    assert (per["auc_low"] <= per["auc"]).all() and (per["auc"] <= per["auc_high"]).all()
    assert (summary["auc_low"] < summary["mean_auc"]).all() and (summary["mean_auc"] < summary["auc_high"]).all()
    assert per["brier"].between(0, 1).all() and summary["brier"].notna().all()
    # a rule that makes the thinnest species thin: it leaves the means and the paired tests
    least = np.minimum(per["n_presences"], per["n_absences"])
    min_class = int(least.min()) + 1
    thin = set(per.loc[least < min_class, "species"])
    assert 0 < len(thin) < per["species"].nunique()
    kw = dict(baselines=["glm"], withheld={"no soil": ["PHIHOX"]}, imputations=["mean"], retrain=False,
              species=sorted(per["species"].unique()), progress=False)
    strict = compare_baselines(tiny_workspace, tiny_run.name, min_class=min_class, **kw)
    kept = compare_baselines(tiny_workspace, tiny_run.name, min_class=min_class, keep_thin=True, **kw)
    n = per["species"].nunique()
    assert (strict.summary["n_species"] == n - len(thin)).all() and (strict.summary["n_thin"] == len(thin)).all()
    assert (kept.summary["n_species"] == n).all() and (strict.tests["n_species"] == n - len(thin)).all()
    glm = strict.per_species.query("setting == 'all' and method == 'glm'")
    assert set(glm.loc[glm["thin"], "species"]) == thin
    row = strict.summary.query("setting == 'all' and method == 'glm'").iloc[0]
    assert row["mean_auc"] == pytest.approx(glm.loc[~glm["thin"], "auc"].mean())
    assert f"{len(thin)} with fewer than {min_class} presences or absences left out" in strict.to_markdown()
    with pytest.raises(DataError, match="every species has fewer than"):
        compare_baselines(tiny_workspace, tiny_run.name, min_class=10**6, **kw)


def test_compare_species_choice_and_errors(tiny_run, tiny_workspace):
    names = tiny_workspace.species_names[:2]
    result = compare_baselines(tiny_workspace, tiny_run.name, baselines=["glm"], withheld={"no soil": ["PHIHOX"]},
                               imputations=["mean"], retrain=False, species=names, progress=False)
    assert sorted(result.per_species["species"].unique()) == sorted(names)
    assert list(result.summary["method"]) == ["MaskSDM", "glm", "MaskSDM", "glm + mean"]
    assert list(result.summary["setting"].unique()) == ["all", "without no soil"]
    with pytest.raises(DataError, match="species not in the model"):
        compare_baselines(tiny_workspace, tiny_run.name, baselines=["glm"], species=["Species 99x"], progress=False)
    with pytest.raises(DataError, match="no species to evaluate"):
        compare_baselines(tiny_workspace, tiny_run.name, baselines=["glm"], min_presences=10**6, progress=False)
    with pytest.raises(ValueError, match="unknown baselines"):
        compare_baselines(tiny_workspace, tiny_run.name, baselines=["svm"], progress=False)
    with pytest.raises(DataError, match="unknown predictor or group"):
        compare_baselines(tiny_workspace, tiny_run.name, baselines=["glm"], withheld=["Climate"], progress=False)
    with pytest.raises(DataError, match="leaves no predictor"):
        compare_baselines(tiny_workspace, tiny_run.name, baselines=["glm"], withheld={"everything": ["all"]},
                          progress=False)


def test_paired_test_known_difference_and_interval():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.6, 0.8, 400)
    d = rng.normal(0.03, 0.02, 400)
    full = paired_test(b + d, b)
    assert full.mean_difference == pytest.approx(d.mean())
    assert full.ci_low < d.mean() < full.ci_high and full.n_pairs == 400
    assert full.wins == int((d > 0).sum()) and full.wins + full.losses + full.ties == 400
    few = paired_test(b[:25] + d[:25], b[:25])
    assert few.ci_low < few.mean_difference < few.ci_high
    assert full.ci_high - full.ci_low < 0.5 * (few.ci_high - few.ci_low)  # ~ 1/sqrt(n): 16x more species
    assert full.p_value < 1e-20  # a clear shift


def test_paired_test_identical_and_nan():
    a = np.array([0.7, 0.8, np.nan, 0.9])
    same = paired_test(a, a)
    assert (same.mean_difference, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert (same.n_pairs, same.ties, same.wins) == (3, 3, 0)
    b = np.array([0.6, np.nan, 0.5, 0.85])
    t = paired_test(a, b)  # only species 0 and 3 have both values
    assert t.n_pairs == 2 and t.mean_difference == pytest.approx((0.1 + 0.05) / 2) and t.wins == 2
    empty = paired_test(np.array([np.nan]), np.array([0.5]))
    assert empty.n_pairs == 0 and np.isnan(empty.mean_difference) and np.isnan(empty.p_value)
    assert paired_test(a, b, seed=1).ci_low == paired_test(a, b, seed=1).ci_low  # seeded
    with pytest.raises(ValueError, match="same length"):
        paired_test(a, b[:2])


def test_the_compare_command_runs_the_baselines(tiny_run, tiny_workspace, tmp_path, capsys):
    import shutil

    from masksdm.cli import main

    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace.path, ws, ignore=shutil.ignore_patterns("reports", "cv"))
    argv = ["compare", "--workspace", str(ws), "--run", tiny_run.name, "--baselines", "glm,gbm",
            "--withheld", "bio_1", "PHIHOX+Releave_area", "--max-species", "3", "--quiet"]
    assert main(argv) == 2  # a misspelt predictor is an error that names it
    assert "Releave_area" in capsys.readouterr().err
    argv[9] = "PHIHOX+Releve_area"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "glm retrained" in out and "without PHIHOX+Releve_area" in out
    summary = pd.read_csv(ws / "reports" / f"baselines_{tiny_run.name}.csv")
    assert set(summary["setting"]) == {"all", "without bio_1", "without PHIHOX+Releve_area"}
    assert {"MaskSDM", "glm", "gbm + knn", "gbm retrained"} <= set(summary["method"])
    assert (summary["n_species"] == 3).all()
    tests = pd.read_csv(ws / "reports" / f"baselines_{tiny_run.name}_tests.csv")
    assert {"mean_difference", "ci_low", "ci_high", "p_value"} <= set(tests.columns)
    assert "Mean TSS" in (ws / "reports" / f"baselines_{tiny_run.name}.md").read_text()
