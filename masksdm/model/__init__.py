"""The model: the MaskSDM network (:mod:`~masksdm.model.network`), its losses, run configs,
safetensors + JSON checkpoints, inference from any predictor subset, and masked training.

Reads the workspace; knows nothing of evaluation, maps or Shapley values.
"""

from masksdm.model.checkpoint import (
    ModelCard,
    load_checkpoint,
    read_card,
    save_checkpoint,
    split_arrays,
)
from masksdm.model.config import ModelConfig, RunConfig, TrainConfig, load_config, preset
from masksdm.model.inference import predict_logits, predict_proba, resolve_device
from masksdm.model.network import MaskSDM
from masksdm.model.training import TrainResult, train

__all__ = [
    "MaskSDM",
    "ModelCard",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "load_checkpoint",
    "load_config",
    "predict_logits",
    "predict_proba",
    "preset",
    "read_card",
    "resolve_device",
    "save_checkpoint",
    "split_arrays",
    "train",
]
