"""Shapley values of a trained MaskSDM: agreement with brute force on the plain forward, with the
shap library, the axioms on constructed models, and the known truth of a constructed world."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from masksdm.data.plotdata import PlotData
from masksdm.errors import ConfigError, DataError
from masksdm.explain.games import (
    LocalGame,
    estimate_shapley,
    global_shapley,
    local_shapley,
    resolve_players,
)
from masksdm.model.checkpoint import load_checkpoint
from masksdm.model.config import ModelConfig, RunConfig, TrainConfig
from masksdm.model.network import MaskSDM


@pytest.fixture(scope="module")
def tiny(tiny_run, tiny_workspace):
    model, card = load_checkpoint(tiny_run)
    return model, card, tiny_workspace


def _brute_force(value, k):
    """Shapley values from the textbook formula, one subset pair at a time."""
    phi = np.zeros(k)
    for j in range(k):
        others = [i for i in range(k) if i != j]
        for size in range(k):
            for subset in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                phi[j] += w * (value(set(subset) | {j}) - value(set(subset)))
    return phi


def test_exact_local_values_match_brute_force_on_the_full_sequence(tiny):
    model, card, ws = tiny
    x = ws.features("test")[:3]
    masks = resolve_players("groups", card.predictors)
    groups = list(masks)
    result = local_shapley(model, card, x, ["Species 00", "Species 03"], method="exact")
    for site in range(3):
        for j, species in enumerate([0, 3]):
            def value(players, site=site, species=species):
                keep = np.zeros(len(card.predictors), dtype=bool)
                for g in players:
                    keep |= masks[groups[g]]
                with torch.no_grad():  # the plain forward: every masked token in the sequence
                    logit = model(torch.as_tensor(x[site : site + 1]), torch.as_tensor(keep)[None], collapse=False)
                return float(torch.sigmoid(logit[0, species]))

            np.testing.assert_allclose(result.values[site, j], _brute_force(value, len(groups)), atol=2e-6)
    assert result.efficiency_gap() < 1e-12
    np.testing.assert_allclose(result.full_value + 0, result.base_value + result.values.sum(-1), atol=1e-12)


def test_global_values_sum_to_auc_gain_and_per_species_average_to_the_mean(tiny):
    model, card, ws = tiny
    x, y = ws.features("test"), ws.labels("test")
    mean, species = global_shapley(model, card, x, y)
    per, same = global_shapley(model, card, x, y, per_species=True)
    assert species == same and len(species) == len(card.species)
    assert float(mean.base_value) == pytest.approx(50.0)  # no predictor: one score for all sites
    assert mean.efficiency_gap() < 1e-9 and per.efficiency_gap() < 1e-9
    np.testing.assert_allclose(per.values.mean(axis=0), mean.values, atol=1e-9)
    # the species respond to bio_1 (even) or PHIHOX (odd): soil matters for the odd ones
    soil = mean.players.index("SoilGrids")
    assert per.values[1::2, soil].mean() > per.values[0::2, soil].mean() + 5


def test_probability_metric_is_the_mean_of_local_values(tiny):
    model, card, ws = tiny
    x = ws.features("test")
    glob, _ = global_shapley(model, card, x, metric="probability", species=["Species 02"])
    loc = local_shapley(model, card, x, "Species 02")
    np.testing.assert_allclose(glob.values, loc.values[:, 0].mean(axis=0), atol=1e-9)


def test_agrees_with_shap_exact_explainer_when_shap_masks_with_nan(tiny):
    shap = pytest.importorskip("shap")
    model, card, ws = tiny
    x = ws.features("test")[:2].copy()
    x[np.isnan(x)] = 0.0  # shap's masker hides features by writing NaN, which the model masks

    def f(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(model(torch.as_tensor(rows, dtype=torch.float32))[:, 1]).numpy()

    def masker(mask, row):
        return np.where(mask, row, np.nan)[None, :]

    masker.shape = (1, x.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap's own deprecation and progress warnings
        explanation = shap.explainers.Exact(f, masker)(x)
    ours = local_shapley(model, card, x, "Species 01", players="predictors", method="exact")
    np.testing.assert_allclose(explanation.values, ours.values[:, 0], atol=1e-5)
    np.testing.assert_allclose(explanation.base_values, ours.base_value[:, 0], atol=1e-6)


def _constructed_model(n_predictors=5):
    torch.manual_seed(0)
    model = MaskSDM(n_predictors=n_predictors, n_species=3, d_token=16, n_blocks=2, n_heads=2, n_frequencies=4).eval()
    with torch.no_grad():
        model.mask_token.abs_()  # a ReLU token can equal it
        # predictor 0 is a dummy: its token is the mask token whatever its value
        model.tokenizer.weight[0].zero_()
        model.tokenizer.bias[0].copy_(model.mask_token)
        # predictors 1 and 2 are interchangeable: same parameters (values set equal below)
        model.tokenizer.frequencies[2].copy_(model.tokenizer.frequencies[1])
        model.tokenizer.weight[2].copy_(model.tokenizer.weight[1])
        model.tokenizer.bias[2].copy_(model.tokenizer.bias[1])
    return model


def test_dummy_and_symmetry_on_a_constructed_model():
    model = _constructed_model()
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    x[:, 2] = x[:, 1]
    masks = np.eye(5, dtype=bool)
    game = LocalGame(model, x, masks, np.arange(3))
    from masksdm.explain.core import exact_shapley

    result = exact_shapley(game, [f"p{i}" for i in range(5)])
    assert np.abs(result.values[..., 0]).max() < 1e-6  # dummy
    np.testing.assert_allclose(result.values[..., 1], result.values[..., 2], atol=1e-6)  # symmetry
    assert np.abs(result.values[..., 3]).max() > 1e-3  # and a real predictor does matter


def test_players_are_checked(tiny):
    model, card, ws = tiny
    x = ws.features("test")[:2]
    with pytest.raises(DataError, match="did you mean 'WorldClim'"):
        local_shapley(model, card, x, "Species 00", players=["WorldClm"])
    with pytest.raises(ConfigError, match="several players"):
        local_shapley(model, card, x, "Species 00", players=["WorldClim", "bio_1"])
    with pytest.raises(DataError, match="did you mean 'Species 00'"):
        local_shapley(model, card, x, "Specis 00")
    masks = np.zeros((20, len(card.predictors)), dtype=bool)
    with pytest.raises(ConfigError, match="sampled_shapley"):
        estimate_shapley(LocalGame(model, x, masks, np.arange(1)), [f"p{i}" for i in range(20)], method="exact")
    with pytest.raises(DataError, match="expected"):
        local_shapley(model, card, x[:, :3], "Species 00")


def test_sampled_estimators_on_single_predictors_converge_to_exact(tiny):
    model, card, ws = tiny
    x = ws.features("test")[:5]
    exact = local_shapley(model, card, x, "Species 04", players="predictors", method="exact")
    for method in ("permutation", "kernel"):
        est = local_shapley(model, card, x, "Species 04", players="predictors", method=method,
                            max_evaluations=4000, seed=1)
        assert est.std_errors is not None and est.efficiency_gap() < 1e-9
        z = np.abs(est.values - exact.values) / np.maximum(est.std_errors, 1e-12)
        assert z.max() < 4.5, (method, z.max())


# --- known truth ------------------------------------------------------------------------------

def _independent_world(n_plots=2000, seed=0) -> tuple[PlotData, dict[str, str]]:
    """Independent predictors in three groups; each species responds to one group only."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-5, 25, n_plots), rng.uniform(38, 58, n_plots)
    plots = pd.DataFrame({
        "plot_id": np.arange(n_plots), "lon": lon, "lat": lat,
        "bio_1": rng.normal(10, 4, n_plots), "bio_12": rng.normal(800, 200, n_plots),
        "PHIHOX": rng.normal(60, 10, n_plots), "Elevation": rng.normal(500, 300, n_plots),
    })
    z = {c: (plots[c] - plots[c].mean()) / plots[c].std() for c in ["bio_1", "bio_12", "PHIHOX", "Elevation"]}
    drivers = {"bio_1": "WorldClim", "PHIHOX": "SoilGrids", "Elevation": "Topography"}
    records, truth = [], {}
    for s in range(12):
        column = list(drivers)[s % 3]
        opt = (-1) ** s * 0.5
        logit = 1.0 - 3.0 * (z[column] - opt) ** 2
        present = rng.random(n_plots) < 1 / (1 + np.exp(-logit))
        name = f"Species {s:02d}"
        truth[name] = drivers[column]
        records.append(pd.DataFrame({"plot_id": plots["plot_id"][present], "species": name}))
    return PlotData(plots=plots, occurrences=pd.concat(records), source="independent world"), truth


@pytest.fixture(scope="module")
def truth_run(tmp_path_factory):
    from masksdm.model.training import train
    from masksdm.workspace import prepare_workspace

    data, truth = _independent_world()
    ws = prepare_workspace(data, tmp_path_factory.mktemp("truth") / "ws", block_size=2.0, seed=0, progress=False)
    config = RunConfig(
        model=ModelConfig(d_token=16, n_blocks=1, n_heads=2, n_frequencies=8, frequency_init_scale=0.3, dropout=0.0),
        train=TrainConfig(epochs=25, batch_size=128, lr=5e-3, warmup_steps=5, patience=0, seed=0, device="cpu",
                          group_masking=0.5),
        preset="cpu",
    )
    train(ws, ws.models_dir() / "m", config=config, progress=False)
    model, card = load_checkpoint(ws.models_dir() / "m")
    return model, card, ws, truth


def test_the_true_driver_gets_the_largest_global_and_local_values(truth_run):
    model, card, ws, truth = truth_run
    x, y = ws.features("test"), ws.labels("test")
    result, species = global_shapley(model, card, x, y, per_species=True)
    top = np.array(result.players)[result.values.argmax(axis=1)]
    expected = np.array([truth[s] for s in species])
    assert (top == expected).mean() >= 0.9, list(zip(species, top, strict=True))
    local = local_shapley(model, card, x, card.species)
    top_local = np.array(local.players)[np.abs(local.values).argmax(axis=2)]  # (sites, species)
    assert (top_local == np.array([truth[s] for s in card.species])[None, :]).mean() >= 0.7
