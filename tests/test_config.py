"""Run configs: presets, TOML round trip, unknown keys and ill-typed values rejected by name."""

import numpy as np
import pytest

from masksdm.errors import ConfigError
from masksdm.model.config import PRESETS, ModelConfig, RunConfig, TrainConfig, load_config, preset


def test_toml_round_trip(tmp_path):
    config = preset("cpu").replace_train(epochs=7, use=("WorldClim",))
    path = tmp_path / "run.toml"
    path.write_text(config.to_toml())
    assert load_config(path) == config


def test_preset_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "cpu"\n[model]\nn_blocks = 3\n[train]\nloss = "bce"\n')
    config = load_config(path)
    assert config.model.n_blocks == 3 and config.model.d_token == preset("cpu").model.d_token
    assert config.train.loss == "bce"


@pytest.mark.parametrize(
    "text, match",
    [
        ("[model]\nn_block = 3\n", "n_block"),
        ("[training]\nepochs = 3\n", "training"),
        ('[train]\nloss = "focal"\n', "loss"),
        ('preset = "huge"\n', "huge"),
        ("[model]\nd_token = 10\nn_heads = 3\n", "divisible"),
        ("[train\n", "TOML"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_paper_preset_is_the_paper_model():
    config = RunConfig()
    assert (config.model.d_token, config.model.n_blocks, config.model.n_heads) == (192, 7, 8)
    assert (config.train.batch_size, config.train.lr, config.train.weight_decay) == (256, 1e-3, 0.01)


@pytest.mark.parametrize(
    "text, key",
    [
        ('[train]\nepochs = "ten"\n', r"train.epochs must be a positive integer, got 'ten' \(str\)"),
        ("[train]\nepochs = 2.5\n", "train.epochs"),
        ("[train]\nepochs = 3.0\n", "train.epochs"),  # a float, even a whole one, is not an integer
        ("[train]\nepochs = true\n", "train.epochs"),  # bool is an int subclass: not 1 epoch
        ('[train]\nseed = "abc"\n', "train.seed"),
        ("[train]\nthreads = -4\n", "train.threads"),
        ("[train]\nlr = nan\n", "train.lr"),
        ('[train]\nuse = "WorldClim"\n', 'train.use .*use = \\["WorldClim"\\]'),
        ("[train]\nuse = [1, 2]\n", "train.use"),
        ("[train]\nloss = 1\n", "train.loss"),
        ('[model]\nd_token = "64"\n', "model.d_token"),
        ('[model]\ndropout = "0.1"\n', "model.dropout"),
        ("[model]\nfrequency_init_scale = 0\n", "model.frequency_init_scale"),
        ("model = 3\n", "model must be a table"),
        ('train = "fast"\n', "train must be a table"),
        ("preset = 3\n", "preset must be a string"),
    ],
)
def test_ill_typed_values_name_the_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key) as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"train": {"epochs": "ten"}}, "train.epochs"),
        ({"train": {"use": "WorldClim"}}, "train.use"),
        ({"model": [3]}, "model must be a table"),
        ({"preset": ["cpu"]}, "preset must be a string"),
    ],
)
def test_from_dict_checks_types(data, key):
    with pytest.raises(ConfigError, match=key):
        RunConfig.from_dict(data)


@pytest.mark.parametrize(
    "cls, changes, key",
    [
        (TrainConfig, {"epochs": "ten"}, "train.epochs"),
        (TrainConfig, {"epochs": 2.5}, "train.epochs"),
        (TrainConfig, {"epochs": True}, "train.epochs"),
        (TrainConfig, {"seed": "abc"}, "train.seed"),
        (TrainConfig, {"seed": -1}, "train.seed"),
        (TrainConfig, {"threads": -4}, "train.threads"),
        (TrainConfig, {"use": "WorldClim"}, "train.use"),
        (TrainConfig, {"batch_size": 0}, "train.batch_size"),
        (TrainConfig, {"weight_decay": -0.1}, "train.weight_decay"),
        (TrainConfig, {"lr": np.bool_(True)}, "train.lr"),
        (ModelConfig, {"ensemble": 1.5}, "model.ensemble"),
        (ModelConfig, {"ffn_factor": 0}, "model.ffn_factor"),
        (ModelConfig, {"location_frequency_scale": -1.0}, "model.location_frequency_scale"),
        (RunConfig, {"model": {"d_token": 64}}, "model must be a ModelConfig"),
        (RunConfig, {"preset": None}, "preset must be a string"),
    ],
)
def test_dataclasses_check_types(cls, changes, key):
    with pytest.raises(ConfigError, match=key):
        cls(**changes)


def test_values_are_normalised():
    tc = TrainConfig(epochs=np.int64(5), lr=1, group_masking=np.float32(0.5), use=["WorldClim"])
    assert (tc.epochs, tc.lr, tc.group_masking, tc.use) == (5, 1.0, 0.5, ("WorldClim",))
    assert type(tc.epochs) is int and type(tc.lr) is float and type(tc.group_masking) is float
    assert RunConfig(train=tc).to_toml()  # numpy values would not serialise


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips(tmp_path, name):
    config = preset(name)
    path = tmp_path / "run.toml"
    path.write_text(config.to_toml())
    assert load_config(path) == config
    assert RunConfig.from_dict(config.to_dict()) == config
    edited = config.replace_train(use=("WorldClim", "Soil"), threads=2).replace_model(ensemble=3)
    path.write_text(edited.to_toml())
    assert load_config(path) == edited
