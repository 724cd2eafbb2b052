"""Masked training: it learns, logs, selects, resumes exactly, and refuses to clobber runs."""

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config
from safetensors.torch import load_file

import masksdm.model.training as training
from masksdm.errors import CheckpointError, ConfigError, OutputExistsError
from masksdm.model.checkpoint import load_checkpoint
from masksdm.model.training import train


def test_run_folder_contents(tiny_run):
    metrics = pd.read_csv(tiny_run / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(1, 13))
    assert {"train_loss", "val_mean_auc", "lr", "seconds"} <= set(metrics.columns)
    model, card = load_checkpoint(tiny_run)
    best = int(metrics["val_mean_auc"].idxmax()) + 1
    assert card.metrics["best_epoch"] == best and card.metrics["complete"]
    assert np.isclose(card.metrics["val_mean_auc"], metrics["val_mean_auc"].max(), atol=1e-6)
    assert card.metrics["val_mean_auc"] > 0.65  # the fixture's species respond to bio_1 and PHIHOX
    assert len(card.thresholds) == len(card.species)
    assert (tiny_run / "config.toml").read_text().count("[train]") == 1
    assert (tiny_run / "thresholds.parquet").exists()


def test_training_loss_decreases(tiny_run):
    loss = pd.read_csv(tiny_run / "metrics.csv")["train_loss"]
    assert loss.iloc[-1] < loss.iloc[0]


def test_interrupted_run_resumes_to_the_same_model(tiny_workspace, tmp_path, monkeypatch):
    config = tiny_config(epochs=4)
    full = train(tiny_workspace, tmp_path / "full", config=config, progress=False)

    calls = {"n": 0}
    real = training.predict_logits_tensor

    def interrupt_on_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "predict_logits_tensor", interrupt_on_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_workspace, tmp_path / "cut", config=config, progress=False)
    monkeypatch.setattr(training, "predict_logits_tensor", real)
    assert len(pd.read_csv(tmp_path / "cut" / "metrics.csv")) == 2
    with pytest.raises(OutputExistsError, match="--resume"):
        train(tiny_workspace, tmp_path / "cut", config=config, progress=False)
    with pytest.raises(ConfigError, match="another config"):
        train(tiny_workspace, tmp_path / "cut", config=tiny_config(epochs=5), resume=True, progress=False)
    resumed = train(tiny_workspace, tmp_path / "cut", resume=True, progress=False)
    assert resumed.epochs_run == full.epochs_run == 4
    a = pd.read_csv(tmp_path / "full" / "metrics.csv")
    b = pd.read_csv(tmp_path / "cut" / "metrics.csv")
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-6)
    wa = load_file(str(tmp_path / "full" / "model.safetensors"))
    wb = load_file(str(tmp_path / "cut" / "model.safetensors"))
    for key in wa:
        np.testing.assert_allclose(wa[key].numpy(), wb[key].numpy(), rtol=1e-6, atol=1e-7)


def test_resume_without_state(tiny_workspace, tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(tiny_workspace, tmp_path / "none", resume=True, progress=False)


def test_force_restarts(tiny_workspace, tmp_path):
    config = tiny_config(epochs=1)
    train(tiny_workspace, tmp_path / "r", config=config, progress=False)
    result = train(tiny_workspace, tmp_path / "r", config=tiny_config(epochs=2), force=True, progress=False)
    assert result.epochs_run == 2 and len(pd.read_csv(tmp_path / "r" / "metrics.csv")) == 2


def test_early_stopping(tiny_workspace, tmp_path):
    result = train(tiny_workspace, tmp_path / "es", config=tiny_config(epochs=40, patience=2, lr=1e-6), progress=False)
    assert result.stopped_early and result.epochs_run < 40
    assert result.epochs_run - result.best_epoch == 2
    again = train(tiny_workspace, tmp_path / "es", resume=True, progress=False)  # nothing left to do
    assert again.stopped_early and again.epochs_run == result.epochs_run


def test_oracle_ignores_hidden_predictors(tiny_workspace, tmp_path):
    from masksdm.evaluation.subsets import subset_logits

    run = tmp_path / "oracle"
    train(tiny_workspace, run, config=tiny_config(epochs=2, masking="none", use=("WorldClim",)), progress=False)
    model, card = load_checkpoint(run)
    x = tiny_workspace.features("test")
    x2 = x.copy()
    x2[:, 1:] += 3.0  # everything but bio_1
    np.testing.assert_allclose(subset_logits(model, card, x, None), subset_logits(model, card, x2, None), rtol=1e-5)


def test_group_masking_keeps_or_drops_whole_groups():
    import torch

    from masksdm.model.training import _draw_keep

    group_of = torch.tensor([0, 0, 0, 1, 1, 2])
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        keep = _draw_keep(64, group_of, 3, 1.0, g)
        for group in range(3):
            cols = keep[:, group_of == group]
            assert (cols == cols[:, :1]).all()
    # predictor-level masking splits groups in some rows
    keep = _draw_keep(512, group_of, 3, 0.0, torch.Generator().manual_seed(1))
    cols = keep[:, group_of == 0]
    assert not (cols == cols[:, :1]).all()


def test_keep_count_is_uniform_over_subset_sizes():
    import torch

    from masksdm.model.training import _draw_keep

    g = torch.Generator().manual_seed(0)
    counts = torch.cat([_draw_keep(8, torch.arange(10), 10, 0.0, g).sum(1) for _ in range(4000)])
    share = torch.bincount(counts, minlength=11).float() / len(counts)
    assert share.min() > 0.06 and share.max() < 0.12  # p ~ U(0, 1): each of 0..10 about 1/11


# --- collapsed masked tokens in training ------------------------------------------------------------

def _grads(model, x, keep, y, *, collapse):

    from masksdm.model.losses import WeightedLoss

    model.zero_grad(set_to_none=True)
    loss = WeightedLoss(y.sum(0), len(y))(model(x, keep, collapse=collapse), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_collapsed_training_has_the_loss_and_gradients_of_the_full_sequence():
    import torch

    from masksdm.model.network import MaskSDM

    torch.manual_seed(0)
    model = MaskSDM(n_predictors=9, n_species=6, d_embeddings=(5,), d_token=16, n_blocks=2, n_heads=2,
                    n_frequencies=4, dropout=0.0).train()
    x = torch.randn(64, 14, dtype=torch.float64)
    x[torch.rand(64, 14) < 0.15] = float("nan")
    keep = torch.rand(64, 10) < torch.rand(64, 1)  # every visible count, some rows with none
    y = torch.rand(64, 6) < 0.3
    model = model.double()
    full_loss, full = _grads(model, x, keep, y, collapse=False)
    loss, collapsed = _grads(model, x, keep, y, collapse=True)
    torch.testing.assert_close(loss, full_loss, rtol=1e-6, atol=1e-8)
    assert full.keys() == collapsed.keys() and "mask_token" in full
    for name in full:
        torch.testing.assert_close(collapsed[name], full[name], rtol=1e-6, atol=1e-8, msg=name)  # the loss sums in float32
    assert full["mask_token"].abs().sum() > 0


def test_training_collapses_by_default_only_without_dropout(tiny_workspace, tmp_path, monkeypatch):
    from masksdm.model.network import MaskSDM

    calls = []
    real = MaskSDM.collapsed_trunk

    def spy(self, *args, **kwargs):
        calls.append(self.training)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MaskSDM, "collapsed_trunk", spy)
    train(tiny_workspace, tmp_path / "a", config=tiny_config(epochs=1), progress=False)
    assert any(calls)  # training batches went through the collapsed path
    calls.clear()
    dropout = tiny_config(epochs=1)
    dropout = type(dropout)(model=type(dropout.model)(**{**dropout.model.__dict__, "dropout": 0.1}),
                            train=dropout.train, preset=dropout.preset)
    train(tiny_workspace, tmp_path / "b", config=dropout, progress=False)
    assert not any(calls)  # with dropout the default keeps the full sequence in training
    train(tiny_workspace, tmp_path / "c", config=dropout.replace_train(collapse="on"), progress=False)
    assert any(calls)


def test_collapsed_and_full_training_agree(tiny_workspace, tmp_path):
    collapsed = train(tiny_workspace, tmp_path / "on", config=tiny_config(epochs=2), progress=False)
    full = train(tiny_workspace, tmp_path / "off", config=tiny_config(epochs=2, collapse="off"), progress=False)
    a = pd.read_csv(collapsed.run_dir / "metrics.csv")
    b = pd.read_csv(full.run_dir / "metrics.csv")
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-3)
    np.testing.assert_allclose(a["val_mean_auc"], b["val_mean_auc"], atol=5e-3)
    with pytest.raises(ConfigError, match="collapse"):
        tiny_config(collapse="sometimes")


# --- data-size aware step plan and masking units -----------------------------------------------------

def test_step_plan_lengthens_short_runs_and_caps_the_warm_up():
    from masksdm.model.config import TrainConfig
    from masksdm.model.training import step_plan

    tc = TrainConfig(epochs=100, patience=10, warmup_steps=100, min_steps=3000)
    assert step_plan(tc, 2) == (1500, 150, 100)  # 160 plots in batches of 128: 2 steps an epoch
    assert step_plan(tc, 200) == (100, 10, 100)  # a large table keeps the epochs given
    assert step_plan(TrainConfig(epochs=10, patience=0, warmup_steps=1000, min_steps=0), 5) == (10, 0, 5)
    with pytest.raises(ConfigError, match="min_steps"):
        TrainConfig(min_steps=-1)


def test_ungrouped_table_columns_are_masked_one_by_one():
    from masksdm.data.predictors import UNGROUPED, Predictor
    from masksdm.model.training import masking_groups

    predictors = [Predictor("elevation", UNGROUPED, "table", ""), Predictor("slope", UNGROUPED, "table", ""),
                  Predictor("bio_1", "WorldClim", "raster", ""), Predictor("bio_12", "WorldClim", "raster", ""),
                  Predictor("Longitude", "Location", "table", "")]
    assert masking_groups(predictors) == ["elevation", "slope", "WorldClim", "Location"]


def test_select_last_runs_the_whole_schedule_and_keeps_the_last_epoch(tiny_workspace, tmp_path):
    result = train(tiny_workspace, tmp_path / "last", config=tiny_config(epochs=5, patience=1, lr=1e-7, select="last"),
                   progress=False)
    assert result.epochs_run == 5 and result.best_epoch == 5 and not result.stopped_early
    _, card = load_checkpoint(result.run_dir)
    assert card.metrics["best_epoch"] == 5
    with pytest.raises(ConfigError, match="select"):
        tiny_config(select="first")


def test_location_predictors_get_their_own_frequency_scale(tiny_workspace):
    from masksdm.model.checkpoint import ModelCard, build_model

    config = tiny_config().replace_model(n_frequencies=64, frequency_init_scale=0.1, location_frequency_scale=3.0)
    card = ModelCard(config, tiny_workspace.predictors, tiny_workspace.species_names, tiny_workspace.normalisation)
    spread = build_model(card).tokenizer.frequencies.detach().std(dim=1)
    location = np.array([p.group == "Location" for p in card.predictors])
    assert location.sum() == 2
    assert (spread[location] > 1.5).all() and (spread[~location] < 0.2).all()
    plain = build_model(ModelCard(tiny_config().replace_model(n_frequencies=64, frequency_init_scale=0.1),
                                  card.predictors, card.species, card.normalisation))
    assert (plain.tokenizer.frequencies.detach().std(dim=1) < 0.2).all()
