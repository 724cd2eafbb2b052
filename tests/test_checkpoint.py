"""Checkpoints: exact round trip, and a clear error for every way they can go wrong."""

import json
import shutil

import numpy as np
import pytest

from masksdm.errors import CheckpointError
from masksdm.model.checkpoint import check_predictors, load_checkpoint
from masksdm.model.inference import predict_logits


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst


def test_round_trip_predictions(tiny_run, tiny_workspace):
    m1, card1 = load_checkpoint(tiny_run)
    m2, card2 = load_checkpoint(tiny_run)
    x = card1.features(tiny_workspace.raw_predictors("test", card1.predictor_names))
    np.testing.assert_array_equal(predict_logits(m1, x), predict_logits(m2, x))
    assert card1.species == tiny_workspace.species_names
    assert card1.predictor_names == tiny_workspace.predictor_names
    assert not any(p.suffix in (".pt", ".pkl", ".pth") for p in tiny_run.rglob("*"))


def test_truncated_weights(run_copy):
    path = run_copy / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(run_copy)


def test_tampered_weights(run_copy):
    path = run_copy / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(run_copy)


def test_corrupt_card(run_copy):
    path = run_copy / "model.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(run_copy)


def test_card_that_does_not_fit_the_weights(run_copy):
    path = run_copy / "model.json"
    card = json.loads(path.read_text())
    card["config"]["model"]["n_blocks"] += 1
    path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(run_copy)


def test_missing_files(run_copy, tmp_path):
    with pytest.raises(CheckpointError, match="masksdm train"):
        load_checkpoint(tmp_path / "nowhere")
    (run_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(run_copy)


def test_predictors_missing_from_data(tiny_run):
    _, card = load_checkpoint(tiny_run)
    with pytest.raises(CheckpointError, match="bio_1"):
        check_predictors(card, [n for n in card.predictor_names if n != "bio_1"])
