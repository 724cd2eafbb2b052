"""MaskSDM: multi-species distribution models that work with any subset of predictors.

The names a user needs are here; each is imported on first use, so ``import masksdm`` (and the
``masksdm`` command) start without loading torch::

    import masksdm

    ws = masksdm.Workspace("masksdm-demo/workspace")
    model, card = masksdm.load_checkpoint(ws.path / "models" / "main")
    print(masksdm.evaluate(model, card, ws, subsets={"climate": ["WorldClim"], "all": None}).summary)
    x, y = masksdm.split_arrays(card, ws, "test")  # the test plots as the model sees them
    values, _ = masksdm.global_shapley(model, card, x, y)

From a table, in the scikit-learn style: :class:`MaskSDMClassifier`. The package is cut along
the data flow, each layer importing only those below it: ``masksdm.data`` (sources) ->
``masksdm.workspace`` -> ``masksdm.model`` -> ``masksdm.evaluation``, ``masksdm.maps`` ->
``masksdm.explain`` -> ``masksdm.dashboard``, ``masksdm.cli`` (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from masksdm._version import __version__

if TYPE_CHECKING:
    from masksdm.data.grid import RasterStack
    from masksdm.data.plotdata import PlotData
    from masksdm.data.rasters import find_rasters
    from masksdm.data.splotopen import load_splotopen
    from masksdm.data.tables import load_presence_table
    from masksdm.demo import open_demo, run_demo
    from masksdm.errors import MaskSDMError
    from masksdm.estimator import MaskSDMClassifier
    from masksdm.evaluation.compare import compare_subsets
    from masksdm.evaluation.subsets import evaluate
    from masksdm.explain.core import ShapleyResult
    from masksdm.explain.games import global_shapley, local_shapley
    from masksdm.explain.maps import shapley_map
    from masksdm.maps.change import range_change
    from masksdm.maps.predict import predict_maps
    from masksdm.model.checkpoint import ModelCard, load_checkpoint, split_arrays
    from masksdm.model.config import RunConfig, load_config, preset
    from masksdm.model.inference import predict_proba
    from masksdm.model.network import MaskSDM
    from masksdm.model.training import train
    from masksdm.satellite import embed_cells, embed_plots
    from masksdm.sim.scenario import write_future_rasters
    from masksdm.sim.simulate import simulate_world
    from masksdm.workspace import Workspace, prepare_occurrences, prepare_workspace

#: Public name -> the module that defines it.
_API = {
    # sources and the workspace
    "PlotData": "masksdm.data.plotdata",
    "load_splotopen": "masksdm.data.splotopen",
    "load_presence_table": "masksdm.data.tables",
    "find_rasters": "masksdm.data.rasters",
    "RasterStack": "masksdm.data.grid",
    "simulate_world": "masksdm.sim.simulate",
    "write_future_rasters": "masksdm.sim.scenario",
    "Workspace": "masksdm.workspace",
    "prepare_workspace": "masksdm.workspace",
    "prepare_occurrences": "masksdm.workspace",
    "embed_plots": "masksdm.satellite",
    "embed_cells": "masksdm.satellite",
    # the model
    "MaskSDM": "masksdm.model.network",
    "RunConfig": "masksdm.model.config",
    "preset": "masksdm.model.config",
    "load_config": "masksdm.model.config",
    "train": "masksdm.model.training",
    "ModelCard": "masksdm.model.checkpoint",
    "load_checkpoint": "masksdm.model.checkpoint",
    "split_arrays": "masksdm.model.checkpoint",
    "predict_proba": "masksdm.model.inference",
    "MaskSDMClassifier": "masksdm.estimator",
    # outputs
    "evaluate": "masksdm.evaluation.subsets",
    "compare_subsets": "masksdm.evaluation.compare",
    "predict_maps": "masksdm.maps.predict",
    "range_change": "masksdm.maps.change",
    "ShapleyResult": "masksdm.explain.core",
    "global_shapley": "masksdm.explain.games",
    "local_shapley": "masksdm.explain.games",
    "shapley_map": "masksdm.explain.maps",
    "open_demo": "masksdm.demo",
    "run_demo": "masksdm.demo",
    "MaskSDMError": "masksdm.errors",
}

__all__ = [
    "__version__",
    "MaskSDM",
    "MaskSDMClassifier",
    "MaskSDMError",
    "ModelCard",
    "PlotData",
    "RasterStack",
    "RunConfig",
    "ShapleyResult",
    "Workspace",
    "compare_subsets",
    "embed_cells",
    "embed_plots",
    "evaluate",
    "find_rasters",
    "global_shapley",
    "load_checkpoint",
    "load_config",
    "load_presence_table",
    "load_splotopen",
    "local_shapley",
    "open_demo",
    "predict_maps",
    "predict_proba",
    "range_change",
    "prepare_occurrences",
    "prepare_workspace",
    "preset",
    "run_demo",
    "shapley_map",
    "simulate_world",
    "split_arrays",
    "write_future_rasters",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # found once, then an ordinary attribute
        return value
    raise AttributeError(f"module 'masksdm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
