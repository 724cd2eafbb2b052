"""MaskSDMClassifier: learns from a table, masks by name and group, round-trips without pickle,
and follows scikit-learn's estimator conventions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import check_estimator

from masksdm.errors import ConfigError, DataError, OutputExistsError
from masksdm.estimator import ESTIMATOR_FILE, MaskSDMClassifier

SMALL = dict(epochs=8, batch_size=32, d_token=16, n_blocks=1, device="cpu")


def make_table(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictors in raw units (catalogue names plus one unknown column with NaN) and two species:
    ``sp_warm`` responds to ``bio_1`` only, ``sp_low`` to ``Elevation`` only."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "bio_1": rng.normal(12, 5, n),
        "bio_12": rng.normal(800, 200, n),
        "Elevation": rng.normal(600, 300, n),
        "noise": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
    })
    warm = rng.random(n) < 1 / (1 + np.exp(-(X["bio_1"] - 12) / 1.5))
    low = rng.random(n) < 1 / (1 + np.exp((X["Elevation"] - 600) / 100))
    return X, pd.DataFrame({"sp_warm": warm.astype(int), "sp_low": low.astype(int)})


@pytest.fixture(scope="module")
def table():
    X, Y = make_table()
    return X.iloc[:240], Y.iloc[:240], X.iloc[240:].reset_index(drop=True), Y.iloc[240:].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(table):
    X, Y, _, _ = table
    return MaskSDMClassifier(**SMALL).fit(X, Y)


def test_fit_learns_the_response_and_sets_sklearn_attributes(fitted, table):
    _, _, X_test, Y_test = table
    proba = fitted.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2) and proba.dtype == np.float64
    assert ((proba >= 0) & (proba <= 1)).all()
    assert roc_auc_score(Y_test["sp_warm"], proba[:, 0]) > 0.75  # held-out rows
    assert fitted.score(X_test, Y_test) > 0.65  # mean AUC over both species
    predicted = fitted.predict(X_test)
    assert predicted.shape == proba.shape and set(np.unique(predicted)) <= {0, 1}
    np.testing.assert_array_equal(fitted.predict(X_test, threshold=0.3), (proba >= 0.3).astype(int))
    assert list(fitted.classes_) == ["sp_warm", "sp_low"]
    assert fitted.n_features_in_ == 4 and list(fitted.feature_names_in_) == list(X_test.columns)
    groups = {p.name: p.group for p in fitted.card_.predictors}
    assert groups == {"bio_1": "WorldClim", "bio_12": "WorldClim", "Elevation": "Topography", "noise": "Other"}
    assert len(fitted.card_.thresholds) == 2 and fitted.card_.metrics["n_val"] == 36  # 15 % of 240 rows


def test_normalisation_is_fitted_on_the_training_rows(fitted, table):
    X, Y = table[0], table[1]
    val, train = fitted._split(Y.to_numpy().astype(bool))  # the seeded split fit() made
    assert len(train) == fitted.card_.metrics["n_train"] == 204 and not set(val) & set(train)
    for name, stats in fitted.card_.normalisation.items():
        column = X[name].to_numpy()[train]
        assert stats["mean"] == pytest.approx(np.nanmean(column), rel=1e-12)
        assert stats["std"] == pytest.approx(np.nanstd(column), rel=1e-12)
    assert fitted.card_.normalisation["bio_1"]["mean"] != pytest.approx(X["bio_1"].mean(), rel=1e-9)


def test_masking_by_name_and_group(fitted, table):
    X = table[2]
    full = fitted.predict_proba(X)
    no_temp = fitted.predict_proba(X, mask=["bio_1"])
    assert np.abs(full[:, 0] - no_temp[:, 0]).max() > 0.01
    assert np.abs(full - fitted.predict_proba(X, mask="WorldClim")).max() > 0.01
    # masking a predictor is giving it as NaN, and a hidden column may be left out
    np.testing.assert_allclose(no_temp, fitted.predict_proba(X.assign(bio_1=np.nan)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(no_temp, fitted.predict_proba(X.drop(columns="bio_1"), mask=["bio_1"]))
    # use= is masking the complement, by group or by predictor names
    np.testing.assert_array_equal(
        fitted.predict_proba(X, use=["WorldClim"]), fitted.predict_proba(X, mask=["Topography", "noise"])
    )
    np.testing.assert_array_equal(
        fitted.predict_proba(X, use=["WorldClim", "Elevation"], mask="bio_12"),
        fitted.predict_proba(X, use=["bio_1", "Elevation"]),
    )
    # nothing visible: every row gets the same prediction, as a row of NaN does
    nothing = fitted.predict_proba(X, use=[])
    np.testing.assert_allclose(nothing, np.broadcast_to(nothing[:1], nothing.shape), rtol=1e-5)
    all_nan = fitted.predict_proba(X.iloc[:3] * np.nan)
    np.testing.assert_allclose(all_nan, nothing[:3], rtol=1e-5, atol=1e-6)


def test_columns_are_matched_by_name(fitted, table):
    X = table[2]
    np.testing.assert_array_equal(fitted.predict_proba(X), fitted.predict_proba(X[X.columns[::-1]]))
    with pytest.raises(DataError, match=r"lacks the columns \['Elevation'\].*mask=\['Elevation'\]"):
        fitted.predict_proba(X.drop(columns="Elevation"))
    with pytest.raises(DataError, match="not fitted with: \\['extra'\\]"):
        fitted.predict_proba(X.assign(extra=1.0))
    with pytest.raises(DataError, match="unknown predictor or group 'Climate'"):
        fitted.predict_proba(X, use=["Climate"])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        by_position = fitted.predict_proba(X.to_numpy())
    np.testing.assert_array_equal(by_position, fitted.predict_proba(X))
    with pytest.raises(DataError, match="X has 3 features, but MaskSDMClassifier is expecting 4"), \
            pytest.warns(UserWarning, match="does not have valid feature names"):
        fitted.predict_proba(X.to_numpy()[:, :3])


def test_nan_input(fitted, table):
    X = table[2].copy()
    X.iloc[::3, 0] = np.nan
    X.iloc[1::3, 2] = np.nan
    proba = fitted.predict_proba(X)
    assert np.isfinite(proba).all()
    with pytest.raises(ValueError, match="infinity"):
        fitted.predict_proba(X.assign(bio_12=np.inf))


def test_save_and_load_round_trip(fitted, table, tmp_path):
    X = table[2]
    path = fitted.save(tmp_path / "clf")
    assert sorted(p.name for p in path.iterdir()) == sorted([ESTIMATOR_FILE, "model.json", "model.safetensors"])
    for file in path.iterdir():  # no pickle anywhere: protocol 2+ pickles start with b"\x80"
        assert not file.read_bytes().startswith(b"\x80")
    loaded = MaskSDMClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict_proba(X, mask="WorldClim"), fitted.predict_proba(X, mask="WorldClim"))
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.feature_names_in_, fitted.feature_names_in_)
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    with pytest.raises(OutputExistsError, match="force=True"):
        fitted.save(path)
    fitted.save(path, force=True)
    assert fitted.score(X, table[3][["sp_low", "sp_warm"]]) == fitted.score(X, table[3])  # species by name


def test_shapley_values_add_up(fitted, table):
    X = table[2].iloc[:5]
    result = fitted.shapley(X, species="sp_warm")
    assert result.players == ["WorldClim", "Topography", "Other"] and result.values.shape == (5, 1, 3)
    np.testing.assert_allclose(result.full_value[:, 0], fitted.predict_proba(X)[:, 0], rtol=1e-5)
    assert result.efficiency_gap() < 1e-6
    per_predictor = fitted.shapley(X, players="predictors")
    assert per_predictor.values.shape == (5, 2, 4)
    # the climate response is found: bio_1 matters most for sp_warm
    assert np.abs(per_predictor.values[:, 0]).mean(axis=0).argmax() == 0


def test_params_set_params_and_clone(fitted):
    params = fitted.get_params()
    assert params["epochs"] == 8 and params["preset"] == "cpu" and params["lr"] is None
    copy = clone(fitted)
    assert copy.get_params() == params and not hasattr(copy, "model_")
    assert copy.set_params(epochs=3, lr=1e-2) is copy and copy.epochs == 3 and fitted.epochs == 8
    config = copy.build_config()
    assert config.train.epochs == 3 and config.train.lr == 1e-2 and config.model.d_token == 16
    assert config.train.batch_size == 32 and config.model.n_heads == 4  # the rest from the preset
    assert config.train.min_steps == 0  # epochs asked for are the epochs run
    assert MaskSDMClassifier(preset="cpu").build_config().train.min_steps == 0
    with pytest.raises(NotFittedError):
        copy.predict_proba(np.zeros((2, 4)))


def test_binary_1d_target_follows_sklearn(table):
    X, Y, X_test, _ = table
    y = Y["sp_warm"].to_numpy()
    clf = MaskSDMClassifier(**SMALL).fit(X, y)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(clf.classes_) == [0, 1]
    predicted = clf.predict(X_test)
    assert predicted.shape == (len(X_test),) and set(np.unique(predicted)) <= {0, 1}
    # the same network as a one-column multi-label fit
    one_column = MaskSDMClassifier(**SMALL).fit(X, Y[["sp_warm"]])
    np.testing.assert_allclose(proba[:, 1], one_column.predict_proba(X_test)[:, 0], rtol=1e-5)
    labels = np.where(y == 1, "present", "absent")
    named = MaskSDMClassifier(**{**SMALL, "epochs": 1}).fit(X, labels)
    assert list(named.classes_) == ["absent", "present"]
    assert set(named.predict(X_test)) <= {"absent", "present"}


def test_array_input_names_columns(table):
    X, Y, X_test, _ = table
    clf = MaskSDMClassifier(**{**SMALL, "epochs": 1}, groups={"x0": "Temperature"}).fit(X.to_numpy(), Y.to_numpy())
    assert not hasattr(clf, "feature_names_in_")
    assert clf.card_.predictor_names == ["x0", "x1", "x2", "x3"] and list(clf.classes_) == ["y0", "y1"]
    assert clf.card_.predictors[0].group == "Temperature"
    np.testing.assert_array_equal(clf.predict_proba(X_test.to_numpy(), mask="Temperature"),
                                  clf.predict_proba(X_test.to_numpy(), mask="x0"))
    with pytest.warns(UserWarning, match="fitted without feature names"):
        clf.predict_proba(X_test)


def test_thresholds(table):
    X, Y, X_test, _ = table
    clf = MaskSDMClassifier(**{**SMALL, "epochs": 1}).fit(X, Y.assign(never=0))  # a species never present
    thresholds = clf.get_thresholds()
    assert clf.card_.thresholds[2] is None and thresholds[2] == 0.5
    assert thresholds[0] == clf.card_.thresholds[0]
    np.testing.assert_array_equal(clf.get_thresholds([0.1, 0.2, 0.3]), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(clf.predict(X_test, threshold=[0, 0, 1.1]).sum(axis=0), [len(X_test), len(X_test), 0])
    with pytest.raises(ConfigError, match="one per species"):
        clf.predict(X_test, threshold=[0.5, 0.5])
    with pytest.raises(ConfigError, match="'max_tss'"):
        clf.predict(X_test, threshold="youden")


def test_input_errors(table):
    X, Y, _, _ = table
    clf = MaskSDMClassifier(**{**SMALL, "epochs": 1})
    with pytest.raises(DataError, match="non-numeric columns 'site' "):
        clf.fit(X.assign(site="a"), Y)
    with pytest.raises(DataError, match="Y has 239 rows but X has 240"):
        clf.fit(X, Y.iloc[1:])
    with pytest.raises(DataError, match="got 2 samples"):
        clf.fit(X.iloc[:2], Y.iloc[:2])
    with pytest.raises(DataError, match="Only binary classification is supported"):
        clf.fit(X, np.arange(len(X)) % 3)
    with pytest.raises(DataError, match="0/1 or bool"):
        clf.fit(X, Y * 2)
    with pytest.raises(DataError, match="validation rows.*larger validation_fraction"):
        clf.fit(X, Y * 0)
    with pytest.raises(ConfigError, match="validation_fraction must be in"):
        clf.set_params(validation_fraction=1.0).fit(X, Y)
    with pytest.raises(ConfigError, match="groups names columns that X does not have: \\['temp'\\]"):
        MaskSDMClassifier(groups={"temp": "Climate"}).fit(X, Y)


#: Checks that cannot pass (reliably), with the reason.
EXPECTED_FAILED_CHECKS = {
    "check_classifiers_train": (
        "predict thresholds each species at its validation max-TSS threshold, not 0.5, so it differs "
        "from argmax(predict_proba) by design (the check passes with threshold=0.5)"
    ),
    "check_methods_sample_order_invariance": (
        "float32 transformer: reordering the rows can change the batched kernels' summation order, so "
        "for some permutations (the check draws an unseeded one) probabilities differ in the last "
        "float32 bit (~6e-8), above the check's atol=1e-9"
    ),
}


def test_sklearn_estimator_checks():
    # The whole suite (about 60 checks, each a few tiny fits) takes a few seconds on 2 CPU cores with
    # this network size, so no check is picked out.
    results = check_estimator(
        MaskSDMClassifier(epochs=2, d_token=8, n_blocks=1, device="cpu"),
        expected_failed_checks=EXPECTED_FAILED_CHECKS,
        on_skip=None,  # the array-API check skips without SCIPY_ARRAY_API; a warning would be an error here
        on_fail="raise",
    )
    status: dict[str, set[str]] = {}
    for result in results:
        status.setdefault(result["check_name"], set()).add(result["status"])
    assert status["check_classifiers_train"] == {"xfail"}
    assert status["check_methods_sample_order_invariance"] <= {"xfail", "passed"}  # the permutation decides
    unexpected = {name for name, s in status.items() if s - {"passed"} and name not in EXPECTED_FAILED_CHECKS}
    assert unexpected == {"check_array_api_input", "check_classifiers_multilabel_output_format_decision_function"}
    assert all(status[name] == {"skipped"} for name in unexpected)  # no SCIPY_ARRAY_API; no decision_function
    assert len(status) > 50
