"""A model meets its workspace by name, and refuses one whose split is no longer its own.

Found on a rebuilt workspace: thresholds read from label columns in the model's species order
(a species one place further on in the new table got another species' threshold), and a model
evaluated on a workspace re-split with another seed, its test plots partly its training plots.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import make_plot_data, tiny_config

from masksdm.data.plotdata import PlotData
from masksdm.errors import CheckpointError, DataError
from masksdm.evaluation.subsets import evaluate
from masksdm.maps.plan import resolve_threshold
from masksdm.model.checkpoint import load_checkpoint, split_arrays
from masksdm.model.training import ensure_trained, train
from masksdm.workspace import prepare_workspace


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    # not stratified: a stratified split depends on the species, and the rebuild below adds one
    ws = prepare_workspace(make_plot_data(n_plots=400, n_species=5), root / "ws", block_size=2.0, seed=0,
                           stratify=False, progress=False)
    run = ws.run_dir("main")
    train(ws, run, config=tiny_config(epochs=3), progress=False)
    return root, ws, run


def _with_extra_species(data: PlotData) -> PlotData:
    """The same plots with one more species whose name sorts first: every other species moves up
    one column in the rebuilt workspace."""
    plots = data.plots
    extra = pd.DataFrame({"plot_id": plots["plot_id"].iloc[::3], "species": "Aaa newcomer"})
    return PlotData(plots=plots, occurrences=pd.concat([data.occurrences, extra], ignore_index=True),
                    source=data.source)


def test_thresholds_and_labels_follow_species_names_after_a_rebuild(trained):
    root, ws, run = trained
    model, card = load_checkpoint(run)
    rebuilt = prepare_workspace(_with_extra_species(make_plot_data(n_plots=400, n_species=5)), root / "rebuilt",
                                block_size=2.0, seed=0, stratify=False, progress=False)
    assert rebuilt.species_names[0] == "Aaa newcomer" and rebuilt.species_names[1:] == card.species
    visible = np.ones(card.n_columns, dtype=bool)
    index = np.arange(len(card.species))
    before = resolve_threshold("max_tss", model, card, index, visible, workspace=ws)
    after = resolve_threshold("max_tss", model, card, index, visible, workspace=rebuilt)
    np.testing.assert_allclose(after, before)
    x, y = split_arrays(card, rebuilt, "test")
    x0, y0 = split_arrays(card, ws, "test")
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(x, x0)
    a = evaluate(model, card, ws).summary["mean_auc"].to_numpy()
    b = evaluate(model, card, rebuilt).summary["mean_auc"].to_numpy()
    np.testing.assert_allclose(a, b)


def test_a_workspace_split_again_is_refused_for_scores(trained):
    root, _, run = trained
    model, card = load_checkpoint(run)
    assert card.data["n_train"] > 0 and len(card.data["train_plots"]) == 64
    resplit = prepare_workspace(make_plot_data(n_plots=400, n_species=5), root / "resplit", block_size=2.0,
                                seed=7, progress=False)
    with pytest.raises(DataError, match="rebuilt after training"):
        evaluate(model, card, resplit)
    with pytest.raises(DataError, match="rebuilt after training"):
        resolve_threshold("max_tss", model, card, [0], np.ones(card.n_columns, bool), workspace=resplit)


def test_ensure_trained_trains_again_on_a_new_split(trained):
    root, _, run = trained
    resplit = prepare_workspace(make_plot_data(n_plots=400, n_species=5), root / "resplit2", block_size=2.0,
                                seed=7, progress=False)
    copied = resplit.run_dir("main")
    shutil.copytree(run, copied)
    _, card = load_checkpoint(run)
    ensure_trained(resplit, copied, card.config, progress=False)
    _, fresh = load_checkpoint(copied)
    assert fresh.data != card.data
    split_arrays(fresh, resplit, "test")  # its own split now: no error


@pytest.mark.parametrize(
    "edit",
    [
        lambda card: card["species"].reverse(),
        lambda card: card["thresholds"].__setitem__(0, 0.99),
        lambda card: card["normalisation"]["bio_1"].__setitem__("mean", 0.0),
    ],
    ids=["species renamed", "threshold changed", "normalisation changed"],
)
def test_an_edited_model_card_is_found(trained, tmp_path, edit):
    _, _, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    load_checkpoint(copy)  # as trained: loads
    card = json.loads((copy / "model.json").read_text())
    edit(card)
    (copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="edited after training"):
        load_checkpoint(copy)
