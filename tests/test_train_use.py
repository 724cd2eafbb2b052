"""A model trained on a predictor subset (``train.use``) never sees the others, on any path.

Found on real data: only ``evaluate`` honoured it; maps fed Location to a model trained without
it (and tagged it as used), Shapley values gave such predictors non-zero values, and the
``predict_proba`` fed them too.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from conftest import tiny_config
from test_prediction import _write_stack

from masksdm.errors import ConfigError
from masksdm.evaluation.subsets import evaluate
from masksdm.explain.games import global_shapley, local_shapley
from masksdm.maps.predict import predict_maps
from masksdm.model.checkpoint import load_checkpoint, split_arrays
from masksdm.model.inference import predict_logits, predict_proba
from masksdm.model.training import train

USE = ("bio_1", "PHIHOX")


@pytest.fixture(scope="module")
def subset_model(tiny_workspace):
    run = tiny_workspace.run_dir("use-subset")
    train(tiny_workspace, run, config=tiny_config(epochs=3).replace_train(use=USE), progress=False)
    return load_checkpoint(run)


def test_the_card_resolves_the_allowed_predictors_once(subset_model):
    model, card = subset_model
    assert [p.name for p, a in zip(card.predictors, card.allowed, strict=True) if a] == list(USE)
    assert model.restricted and model.allowed.tolist() == card.allowed.tolist()


def test_predictions_ignore_predictors_outside_use(subset_model, tiny_workspace):
    model, card = subset_model
    x, _ = split_arrays(card, tiny_workspace, "test")
    hidden = ~card.allowed  # one column per predictor here (no embeddings)
    scrambled = x.copy()
    scrambled[:, hidden] = np.random.default_rng(0).normal(0, 5, (len(x), hidden.sum()))
    np.testing.assert_allclose(predict_logits(model, x), predict_logits(model, scrambled), atol=1e-6)
    only = x.copy()
    only[:, hidden] = np.nan
    np.testing.assert_allclose(predict_logits(model, x), predict_logits(model, only), atol=1e-6)
    np.testing.assert_allclose(predict_logits(model, x, np.ones(card.n_columns, bool)), predict_logits(model, only),
                               atol=1e-6)
    np.testing.assert_allclose(predict_proba(model, scrambled), predict_proba(model, only), atol=1e-6)


def test_maps_use_and_tag_only_the_models_predictors(subset_model, tmp_path):
    model, card = subset_model
    rasters = _write_stack(tmp_path / "rasters")
    maps = {}
    for name, options in {"default": {}, "masked": dict(mask=["Location"])}.items():
        out = tmp_path / name
        predict_maps(model, card, rasters, out, dtype="float32", layout="multiband", progress=False, **options)
        with rasterio.open(out / "probability.tif") as src:
            assert src.tags()["predictors_used"] == "bio_1,PHIHOX"
            maps[name] = src.read()
    np.testing.assert_array_equal(maps["default"], maps["masked"])
    with pytest.raises(ConfigError, match="train.use"):
        predict_maps(model, card, rasters, tmp_path / "loc", use=["Location"], progress=False)


def test_shapley_values_leave_out_what_the_model_never_saw(subset_model, tiny_workspace):
    model, card = subset_model
    x, y = split_arrays(card, tiny_workspace, "test")
    result, _ = global_shapley(model, card, x, y)
    assert set(result.players) == {"WorldClim", "SoilGrids"}
    auc_all = evaluate(model, card, tiny_workspace, subsets={"all": None}).summary["mean_auc"].iloc[0]
    assert float(np.mean(result.full_value)) == pytest.approx(100 * auc_all, abs=1e-3)
    local = local_shapley(model, card, x[:5], card.species[0], players="predictors")
    assert list(local.players) == list(USE)
    with pytest.raises(ConfigError, match="train.use"):
        local_shapley(model, card, x[:5], card.species[0], players=["Location", "bio_1"])
