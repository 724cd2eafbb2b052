"""Checkpoints: exact round trip, and a clear error for every way they can go wrong."""

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from masksdm.errors import CheckpointError
from masksdm.model.checkpoint import check_predictors, load_checkpoint, sha256_file
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
    with pytest.raises(CheckpointError, match="edited after training"):  # the digest saved with the weights
        load_checkpoint(run_copy)
    # a checkpoint without that digest (written before it was recorded): the shapes tell, before any
    # tensor of the card's size is allocated (d_token 2**20 would ask for terabytes)
    weights = run_copy / "model.safetensors"
    save_file(load_file(str(weights)), str(weights))
    card["weights"].update(bytes=weights.stat().st_size, sha256=sha256_file(weights))
    for d_token in (card["config"]["model"]["d_token"], 2**20):
        card["config"]["model"]["d_token"] = d_token
        path.write_text(json.dumps(card))
        with pytest.raises(CheckpointError, match="does not fit the config"):
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


def _edit_card(run_dir, change):
    path = run_dir / "model.json"
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card))


SCHEMA_BREAKS = {
    "species is not a list": (lambda c: c.update(species="Abies alba"), "at species: 'Abies alba' is not of type 'array'"),
    "a species named twice": (lambda c: c["species"].__setitem__(1, c["species"][0]), "at species"),
    "a width as text": (lambda c: c["predictors"][0].update(width="1"), "at predictors/0/width"),
    "an unknown predictor key": (lambda c: c["predictors"][0].update(colour="red"), "at predictors/0"),
    "no std": (lambda c: c["normalisation"]["bio_1"].pop("std"), "at normalisation/bio_1: 'std' is a required"),
    "a threshold above 1": (lambda c: c["thresholds"].__setitem__(0, 7.0), "at thresholds/0"),
    "weights read from elsewhere": (lambda c: c["weights"].update(file="../../secret.safetensors"), "at weights/file"),
    "no weights entry": (lambda c: c.pop("weights"), "at the top level: 'weights' is a required property"),
    "a model table as a list": (lambda c: c["config"].update(model=[1]), "at config/model: [1] is not of type 'object'"),
}


@pytest.mark.parametrize("broken", SCHEMA_BREAKS)
def test_a_card_against_its_schema_is_refused_before_anything_is_built(run_copy, broken, monkeypatch):
    from masksdm.model import checkpoint

    change, where = SCHEMA_BREAKS[broken]
    _edit_card(run_copy, change)
    monkeypatch.setattr(checkpoint, "build_model", lambda card: pytest.fail("built from a card that breaks the schema"))
    with pytest.raises(CheckpointError, match="does not follow the checkpoint card schema") as info:
        load_checkpoint(run_copy)
    assert where in str(info.value) and "restore it or retrain" in str(info.value)


def test_a_card_that_is_not_an_object_is_refused(run_copy):
    (run_copy / "model.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="at the top level: \\[1, 2\\] is not of type 'object'"):
        load_checkpoint(run_copy)


def test_a_card_whose_thresholds_do_not_match_its_species_is_refused(run_copy):
    _edit_card(run_copy, lambda c: c["thresholds"].pop())
    with pytest.raises(CheckpointError, match="7 thresholds for 8 species"):
        load_checkpoint(run_copy)


def test_every_card_written_follows_the_schema(tiny_run):
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("masksdm.model").joinpath("card.schema.json").read_text())
    jsonschema.validate(json.loads((tiny_run / "model.json").read_text()), schema)
