"""Run configs: presets, TOML round trip, unknown keys rejected by name."""

import pytest

from masksdm.errors import ConfigError
from masksdm.model.config import RunConfig, load_config, preset


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
