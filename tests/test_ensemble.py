"""The ensemble of MaskSDM networks: averaged logits, members trained apart, saved and loaded."""

import numpy as np
import pytest
import torch
from conftest import tiny_config

from masksdm.errors import ConfigError
from masksdm.model.checkpoint import load_checkpoint
from masksdm.model.network import MaskSDMEnsemble
from masksdm.model.training import train


def _ensemble(k=3):
    torch.manual_seed(0)
    return MaskSDMEnsemble(k, n_predictors=4, n_species=5, d_embeddings=(3,), d_token=8, n_blocks=1, n_heads=2,
                           dropout=0.0).eval()


def test_ensemble_logits_are_the_mean_of_its_members():
    ens = _ensemble()
    x = torch.randn(6, 7)
    x[0, 1] = float("nan")
    keep = torch.rand(6, 5) < 0.6
    members = torch.stack([m(x, keep) for m in ens.members])
    torch.testing.assert_close(ens(x, keep), members.mean(0))
    torch.testing.assert_close(ens.member_logits(x, keep), members)
    # cached pooled features (as the dashboard does) give the same logits, also for chosen species
    species = torch.tensor([4, 1])
    torch.testing.assert_close(ens.head_logits(ens.encode(x, keep), species), members.mean(0)[:, species])
    # members start apart, so they disagree
    assert members.std(0).mean() > 1e-3


def test_ensemble_needs_two_members():
    with pytest.raises(ValueError, match="at least 2"):
        MaskSDMEnsemble(1, n_predictors=2, n_species=2)
    with pytest.raises(ConfigError, match="ensemble"):
        tiny_config().replace_model(ensemble=-1)


def test_trained_ensemble_saves_loads_and_trains_each_member(tiny_workspace, tmp_path):
    config = tiny_config(epochs=3).replace_model(ensemble=3)
    result = train(tiny_workspace, tmp_path / "ens", config=config, progress=False)
    model, card = load_checkpoint(result.run_dir)
    assert isinstance(model, MaskSDMEnsemble) and model.n_members == 3 and card.config.model.ensemble == 3
    x = torch.from_numpy(tiny_workspace.features("test"))
    with torch.no_grad():
        members = model.member_logits(x)
        np.testing.assert_allclose(model(x).numpy(), members.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    # every member learned: its validation AUC is well above chance, and the members differ
    from masksdm.metrics import mean_auc

    x_val = torch.from_numpy(tiny_workspace.features("val"))
    y_val = tiny_workspace.labels("val", card.species)
    with torch.no_grad():
        for member_logits in model.member_logits(x_val):
            assert mean_auc(member_logits.numpy(), y_val) > 0.57
    heads = [m.head.weight.detach() for m in model.members]
    assert not torch.allclose(heads[0], heads[1])


def test_auto_ensemble_follows_the_table_size(tiny_workspace, tmp_path):
    from masksdm.model.config import AUTO_ENSEMBLE, AUTO_ENSEMBLE_MAX_ROWS, for_table, preset

    auto = preset("cpu")
    assert auto.model.ensemble == 0 and preset("paper").model.ensemble == 1
    assert for_table(auto, AUTO_ENSEMBLE_MAX_ROWS - 1).model.ensemble == AUTO_ENSEMBLE
    assert for_table(auto, AUTO_ENSEMBLE_MAX_ROWS).model.ensemble == 1
    assert for_table(auto.replace_model(ensemble=2), 10).model.ensemble == 2  # a number given stays
    # a small workspace trains the ensemble, its card records the concrete count, and a rerun reuses it
    from masksdm.model.training import ensure_trained

    config = tiny_config(epochs=2).replace_model(ensemble=0)
    run = tmp_path / "auto"
    ensure_trained(tiny_workspace, run, config, progress=False)
    model, card = load_checkpoint(run)
    assert isinstance(model, MaskSDMEnsemble) and card.config.model.ensemble == AUTO_ENSEMBLE
    stamp = (run / "model.safetensors").stat().st_mtime_ns
    ensure_trained(tiny_workspace, run, config, progress=False)
    assert (run / "model.safetensors").stat().st_mtime_ns == stamp
