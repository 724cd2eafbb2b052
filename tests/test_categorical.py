"""Categorical predictors: class codes get one learnt token per class, masked like any predictor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_plot_data, tiny_config

from masksdm.cli.main import build_parser
from masksdm.data.plotdata import PlotData
from masksdm.data.predictors import Predictor, level_codes
from masksdm.errors import DataError
from masksdm.metrics import roc_auc
from masksdm.model.checkpoint import load_checkpoint, split_arrays
from masksdm.model.inference import predict_logits
from masksdm.model.network import MaskSDM
from masksdm.model.training import train
from masksdm.workspace import MAX_LEVELS, Workspace, prepare_workspace

CODES = np.arange(100.0, 4100.0, 100.0)  # 40 ecoregion codes


def _data(seed: int = 0) -> PlotData:
    """The fixture plots with an ``ecoregion`` code, and a species found in a random half of the
    40 classes: no smooth function of the code's number separates them."""
    data = make_plot_data(n_plots=800, n_species=3, seed=seed)
    rng = np.random.default_rng(seed)
    favoured = rng.choice(CODES, 20, replace=False)
    plots = data.plots.assign(ecoregion=rng.choice(CODES, len(data.plots)))
    present = plots["ecoregion"].isin(favoured) & (rng.random(len(plots)) < 0.8)
    extra = pd.DataFrame({"plot_id": plots.loc[present, "plot_id"], "species": "Half the ecoregions"})
    return PlotData(plots=plots, occurrences=pd.concat([data.occurrences, extra], ignore_index=True),
                    source="categorical fixture")


def _ecoregion_auc(ws: Workspace, run: str) -> float:
    model, card = load_checkpoint(ws.run_dir(run))
    x, y = split_arrays(card, ws, "test")
    only = np.array([p.name == "ecoregion" for p in card.predictors])
    j = card.species.index("Half the ecoregions")
    return float(roc_auc(predict_logits(model, x, only)[:, j : j + 1], y[:, j : j + 1])[0])


@pytest.fixture(scope="module")
def categorical_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("categorical")
    ws = prepare_workspace(_data(), root / "ws", block_size=2.0, categorical=["ecoregion"], progress=False)
    train(ws, ws.run_dir("main"), config=tiny_config(epochs=15, lr=1e-2), progress=False)
    return ws, *load_checkpoint(ws.run_dir("main"))


def test_level_codes_index_the_training_classes():
    codes = level_codes(np.array([4000.0, 100.0, np.nan, 150.0, 300.0]), CODES)
    np.testing.assert_array_equal(codes, [39, 0, np.nan, np.nan, 2])
    assert np.isnan(level_codes(np.array([1.0]), [])).all()


def test_the_workspace_records_classes_from_the_training_plots(categorical_run):
    ws, _, card = categorical_run
    (eco,) = [p for p in Workspace(ws.path).predictors if p.name == "ecoregion"]
    train_codes = np.unique(ws.plots.loc[ws.split_mask("train"), "ecoregion"])
    assert eco.categorical and eco.levels == tuple(train_codes)
    assert "levels" not in next(p for p in ws.predictors if p.name == "bio_1").to_dict()  # continuous: as before
    (in_card,) = [p for p in card.predictors if p.name == "ecoregion"]
    assert in_card == eco


def test_class_tokens_learn_what_the_code_as_a_number_cannot(categorical_run, tmp_path):
    ws, model, _ = categorical_run
    assert isinstance(model, MaskSDM) and model.class_tokens is not None
    assert model.class_tokens.num_embeddings == len(np.unique(ws.plots.loc[ws.split_mask("train"), "ecoregion"]))
    as_number = prepare_workspace(_data(), tmp_path / "numeric", block_size=2.0, progress=False)
    train(as_number, as_number.run_dir("main"), config=tiny_config(epochs=15, lr=1e-2), progress=False)
    categorical, numeric = _ecoregion_auc(ws, "main"), _ecoregion_auc(as_number, "main")
    assert categorical > 0.8 and categorical > numeric + 0.1, (categorical, numeric)


def test_a_masked_or_unseen_class_is_the_mask_token(categorical_run):
    ws, model, card = categorical_run
    raw = ws.raw_predictors("test", card.predictor_names)[:20]
    column = card.predictor_names.index("ecoregion")
    unseen = raw.copy()
    unseen[:, column] = 999.0  # a class the training plots never had
    missing = raw.copy()
    missing[:, column] = np.nan
    np.testing.assert_allclose(predict_logits(model, card.features(unseen)), predict_logits(model, card.features(missing)),
                               atol=1e-6)
    keep = np.array([p.name != "ecoregion" for p in card.predictors])
    np.testing.assert_allclose(predict_logits(model, card.features(raw), keep),
                               predict_logits(model, card.features(missing)), atol=1e-6)
    changed = raw.copy()
    changed[:, column] = np.where(raw[:, column] == 100.0, 200.0, 100.0)
    assert not np.allclose(predict_logits(model, card.features(raw)), predict_logits(model, card.features(changed)))


def test_collapsed_and_full_sequences_agree_with_class_tokens():
    model = MaskSDM(n_predictors=3, n_species=2, d_token=8, n_blocks=1, n_heads=2, dropout=0.0,
                    n_levels=[0, 4, 0]).eval()
    x = torch.tensor([[0.3, 2.0, -1.0], [1.0, 0.0, float("nan")], [0.1, 3.0, 0.5]])
    keep = torch.tensor([False, True, True])
    with torch.no_grad():
        torch.testing.assert_close(model(x, keep, collapse=True), model(x, keep, collapse=False))
        other_class = x.clone()
        other_class[:, 1] = 1.0
        assert not torch.allclose(model(x), model(other_class))


def test_bad_categorical_requests_are_named(tmp_path):
    with pytest.raises(DataError, match="not predictors"):
        prepare_workspace(_data(), tmp_path / "a", categorical=["biome"], progress=False)
    data = make_plot_data(n_plots=1600, n_species=2)  # over MAX_LEVELS training plots, a code each
    ids = PlotData(plots=data.plots.assign(code=np.arange(1600.0)), occurrences=data.occurrences, source="ids")
    assert 0.7 * 1600 > MAX_LEVELS
    with pytest.raises(DataError, match="continuous"):
        prepare_workspace(ids, tmp_path / "b", categorical=["code"], progress=False)
    with pytest.raises(DataError, match="not categorical"):
        Predictor("x", "Other", levels=(1.0,))


def test_the_cli_takes_categorical_columns():
    args = build_parser().parse_args(["prepare", "--workspace", "ws", "--table", "t.csv", "--categorical",
                                      "ecoregion,landcover"])
    assert args.categorical == "ecoregion,landcover"
