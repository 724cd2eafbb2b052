"""The public API: `import masksdm` gives the names a user needs, without loading torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import masksdm


def test_every_public_name_resolves_to_its_definition():
    import importlib

    for name in masksdm.__all__:
        value = getattr(masksdm, name)
        if name == "__version__":
            assert value == masksdm._version.__version__
            continue
        module = importlib.import_module(masksdm._API[name])
        assert value is getattr(module, name), name
        assert name in module.__all__, f"{name} is not documented in {module.__name__}.__all__"
    assert set(masksdm.__all__) == {"__version__", *masksdm._API}
    assert set(masksdm.__all__) <= set(dir(masksdm))


def test_the_user_facing_names_are_there():
    expected = {
        "Workspace", "prepare_workspace", "load_splotopen", "load_presence_table", "simulate_world", "train",
        "load_checkpoint", "predict_proba", "evaluate", "compare_subsets", "predict_maps", "global_shapley",
        "local_shapley", "shapley_map", "MaskSDMClassifier", "open_demo", "MaskSDMError",
    }
    assert expected <= set(masksdm.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'predict_everything'"):
        masksdm.predict_everything  # noqa: B018


def test_import_masksdm_and_the_cli_parser_do_not_load_torch():
    code = (
        "import sys, masksdm, masksdm.cli; masksdm.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'rasterio', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
