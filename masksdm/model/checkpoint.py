"""Checkpoints: safetensors weights plus a JSON card. Never pickle.

A run folder holds ``model.safetensors`` (the weights) and ``model.json`` (the card): format
version, package version, run config, predictor names/groups/units in input order, normalisation
statistics, species names in output order, thresholds, metrics, and the size and sha256 of the
weights file. The weights file's metadata holds the sha256 of the card, so an edit of
``model.json`` after training (a species renamed, a threshold changed) is found too. Loading checks
all of it and says precisely what does not match. The card is validated against the JSON schema
``card.schema.json`` (beside this module) before anything is built from it.

A model is used on a workspace's plots through :func:`split_arrays`: predictors by name in the
model's order with the model's normalisation, labels by species name, and a check that the
workspace still splits its plots as it did when the model was trained.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from masksdm._io import atomic_path, write_json
from masksdm._version import __version__
from masksdm.data.predictors import Predictor, normalise_inputs, subset_mask
from masksdm.errors import CheckpointError, DataError
from masksdm.model.config import RunConfig
from masksdm.model.network import MaskSDM, MaskSDMEnsemble, Network

if TYPE_CHECKING:
    from masksdm.workspace import Workspace

__all__ = [
    "CARD",
    "CARD_SCHEMA",
    "FORMAT",
    "WEIGHTS",
    "ModelCard",
    "build_model",
    "check_predictors",
    "check_training_plots",
    "load_checkpoint",
    "plot_digest",
    "read_card",
    "save_checkpoint",
    "sha256_file",
    "split_arrays",
    "training_plots",
]

FORMAT = "masksdm-checkpoint/1"
WEIGHTS = "model.safetensors"
CARD = "model.json"
#: The JSON schema a card must follow (package data).
CARD_SCHEMA = "card.schema.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelCard:
    """Everything needed to use a trained model on new data.

    ``data``: what the model was trained on, when it came from a workspace: ``train_plots`` and
    ``val_plots``, digests of the plot ids (:func:`plot_digest`) that :func:`check_training_plots`
    compares with a workspace's split, and ``n_train`` / ``n_val``.
    """

    config: RunConfig
    predictors: list[Predictor]
    species: list[str]
    normalisation: dict[str, dict[str, float]]
    thresholds: list[float | None] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    masksdm_version: str = __version__
    created: str = ""

    @property
    def predictor_names(self) -> list[str]:
        return [p.name for p in self.predictors]

    @property
    def allowed(self) -> np.ndarray:
        """(T,) the predictors the model may use: those of ``train.use``, or all. Every path
        masks the others (the network is restricted to them when built, :func:`build_model`)."""
        return subset_mask(self.config.train.use or None, self.predictors)

    @property
    def d_embeddings(self) -> tuple[int, ...]:
        """Width of each embedding input (they follow the tabular predictors)."""
        return tuple(p.width for p in self.predictors if p.is_embedding)

    @property
    def n_columns(self) -> int:
        """Width of the model's input: one column per tabular predictor plus every embedding's."""
        return int(sum(p.width for p in self.predictors))

    def species_indices(self, names: str | Sequence[str]) -> np.ndarray:
        """Output indices of species ``names``; an unknown name is an error that suggests close ones."""
        names = [names] if isinstance(names, str) else list(names)
        index = {s: i for i, s in enumerate(self.species)}
        unknown = [n for n in names if n not in index]
        if unknown:
            hints = {n: difflib.get_close_matches(n, self.species, n=3, cutoff=0.5) for n in unknown}
            said = "; ".join(f"{n!r}" + (f" (did you mean {', '.join(map(repr, h))}?)" if h else "") for n, h in hints.items())
            raise DataError(
                f"species not in the model: {said}. The model predicts {len(self.species)} species; "
                "list them with `masksdm info --checkpoint RUN_DIR --list-species`"
            )
        return np.array([index[n] for n in names], dtype=np.int64)

    def features(self, raw: np.ndarray) -> np.ndarray:
        """Model inputs from raw values (N, n_columns) in this model's predictor order:
        tabular predictors normalised, embeddings as they are."""
        return normalise_inputs(raw, self.predictors, self.normalisation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "masksdm_version": self.masksdm_version,
            "created": self.created or datetime.now(UTC).isoformat(timespec="seconds"),
            "config": self.config.to_dict(),
            "predictors": [p.to_dict() for p in self.predictors],
            "species": list(self.species),
            "normalisation": self.normalisation,
            "thresholds": self.thresholds,
            "metrics": self.metrics,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        return cls(
            config=RunConfig.from_dict(data["config"], where="model.json config"),
            predictors=[Predictor(**p) for p in data["predictors"]],
            species=list(data["species"]),
            normalisation=data["normalisation"],
            thresholds=data.get("thresholds"),
            metrics=data.get("metrics", {}),
            data=data.get("data", {}),
            masksdm_version=data.get("masksdm_version", ""),
            created=data.get("created", ""),
        )


def build_model(card: ModelCard) -> Network:
    """A freshly initialised network with the card's sizes (an ensemble when ``model.ensemble > 1``),
    restricted to the predictors the card allows (``train.use``)."""
    m = card.config.model
    if m.ensemble == 0:
        raise CheckpointError("model.ensemble is 0 (auto): make the config concrete with for_table(config, n_train) first")
    sizes: dict[str, Any] = dict(
        n_predictors=len(card.predictors) - len(card.d_embeddings),
        n_species=len(card.species),
        d_embeddings=card.d_embeddings,
        d_token=m.d_token,
        n_blocks=m.n_blocks,
        n_heads=m.n_heads,
        ffn_factor=m.ffn_factor,
        dropout=m.dropout,
        n_frequencies=m.n_frequencies,
        frequency_init_scale=[
            m.location_frequency_scale if m.location_frequency_scale and p.group == "Location" else m.frequency_init_scale
            for p in card.predictors if not p.is_embedding
        ],
    )
    if any(p.categorical for p in card.predictors):
        sizes["n_levels"] = [len(p.levels) for p in card.predictors if not p.is_embedding]
    model = MaskSDMEnsemble(m.ensemble, **sizes) if m.ensemble > 1 else MaskSDM(**sizes)
    model.restrict(torch.from_numpy(card.allowed))
    return model


def save_checkpoint(run_dir: str | Path, model: Network, card: ModelCard) -> Path:
    """Write ``model.safetensors`` then ``model.json`` atomically into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if len(card.predictors) != model.n_tokens or len(card.species) != model.n_species:
        raise CheckpointError(
            f"card has {len(card.predictors)} predictors and {len(card.species)} species but the model "
            f"has {model.n_tokens} and {model.n_species}"
        )
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    card_dict = card.to_dict()
    with atomic_path(run_dir / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "card_sha256": _card_digest(card_dict)})
    card_dict["weights"] = {
        "file": WEIGHTS,
        "bytes": (run_dir / WEIGHTS).stat().st_size,
        "sha256": sha256_file(run_dir / WEIGHTS),
    }
    write_json(run_dir / CARD, card_dict)
    return run_dir


def _card_digest(card_dict: dict[str, Any]) -> str:
    """sha256 of a card's content as JSON writes it (keys sorted), without its ``weights`` entry."""
    content = {k: v for k, v in card_dict.items() if k != "weights"}
    canonical = json.dumps(json.loads(json.dumps(content)), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_card(run_dir: str | Path) -> tuple[ModelCard, dict[str, Any]]:
    """Parse and validate ``model.json``; returns the card and the raw dict."""
    run_dir = Path(run_dir)
    card_path = run_dir / CARD
    if not card_path.is_file():
        raise CheckpointError(
            f"no {CARD} in '{run_dir}': pass a run folder written by `masksdm train` "
            "(e.g. WORKSPACE/models/main)"
        )
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"'{card_path}' is truncated or corrupt ({err}): retrain or restore it") from None
    if isinstance(raw, dict) and raw.get("format") != FORMAT:
        raise CheckpointError(f"'{card_path}' has format {raw.get('format')!r}, expected {FORMAT!r}: it is not "
                              "a card of this masksdm version; retrain with it")
    _check_schema(raw, card_path)
    try:
        card = ModelCard.from_dict(raw)
    except Exception as err:  # noqa: BLE001 - any malformed field is the same problem to the user
        raise CheckpointError(f"'{card_path}' is malformed: {err}") from None
    if card.thresholds is not None and len(card.thresholds) != len(card.species):
        raise CheckpointError(f"'{card_path}' has {len(card.thresholds)} thresholds for {len(card.species)} species: "
                              "retrain or restore it")
    missing_norm = [p.name for p in card.predictors if not p.is_embedding and p.name not in card.normalisation]
    if missing_norm:
        raise CheckpointError(f"'{card_path}' has no normalisation for predictors {missing_norm}")
    return card, raw


@functools.cache
def _card_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files(__package__).joinpath(CARD_SCHEMA).read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _check_schema(raw: Any, card_path: Path) -> None:
    """CheckpointError naming the first place where ``raw`` breaks the card schema."""
    error = jsonschema.exceptions.best_match(_card_validator().iter_errors(raw))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise CheckpointError(
            f"'{card_path}' does not follow the checkpoint card schema at {where}: {error.message}; "
            "the file was edited or damaged: restore it or retrain"
        )


def load_checkpoint(run_dir: str | Path, *, device: str | torch.device = "cpu") -> tuple[Network, ModelCard]:
    """Load a model and its card, checking the weights' size, hash, keys and shapes."""
    run_dir = Path(run_dir)
    card, raw = read_card(run_dir)
    weights = run_dir / raw["weights"].get("file", WEIGHTS)
    if not weights.is_file():
        raise CheckpointError(f"'{weights}' is missing: the run folder is incomplete; retrain or restore it")
    size = weights.stat().st_size
    if size != raw["weights"].get("bytes"):
        raise CheckpointError(
            f"'{weights}' has {size} bytes but model.json says {raw['weights'].get('bytes')}: the file "
            "is truncated or was replaced; retrain or restore it"
        )
    if sha256_file(weights) != raw["weights"].get("sha256"):
        raise CheckpointError(
            f"'{weights}' does not match the sha256 recorded in model.json: the weights were modified; "
            "retrain or restore them"
        )
    try:
        state = load_file(str(weights))
        with safe_open(str(weights), "pt") as f:
            recorded = (f.metadata() or {}).get("card_sha256")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"'{weights}' cannot be read as safetensors ({err}): retrain or restore it") from None
    if recorded is not None and recorded != _card_digest(raw):  # checkpoints of 0.x before the digest have none
        raise CheckpointError(
            f"'{run_dir / CARD}' was edited after training (it no longer matches the card recorded with "
            "the weights): config, species, predictors, normalisation and thresholds must stay as trained; "
            "restore model.json or retrain"
        )
    with torch.device("meta"):  # the shapes the card implies, allocating nothing (a card may ask for terabytes)
        expected = build_model(card).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing tensors {missing[:5]}")
        if unexpected:
            details.append(f"unexpected tensors {unexpected[:5]}")
        if wrong:
            details.append(
                "shape mismatches " + ", ".join(f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:5])
            )
        raise CheckpointError(f"'{weights}' does not fit the config in model.json: " + "; ".join(details))
    model = build_model(card)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return model, card


def check_predictors(card: ModelCard, available: Sequence[str]) -> None:
    """Raise when predictors the model needs are not among ``available`` columns."""
    missing = [n for n in card.predictor_names if n not in set(available)]
    if missing:
        raise CheckpointError(
            f"the model needs predictors {missing} that the data does not have: add them to the data, "
            "or use a model trained on this workspace (missing predictors may also be given as NA "
            "columns: MaskSDM masks them)"
        )


def plot_digest(plot_ids: Sequence[Any] | np.ndarray) -> str:
    """sha256 of a set of plot ids (as text, sorted): what a model records of its training plots."""
    ids = sorted(str(i) for i in np.asarray(plot_ids).tolist())
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def training_plots(workspace: Workspace) -> dict[str, Any]:
    """What a model trained on ``workspace`` records of its plots (:attr:`ModelCard.data`): the
    digests (:func:`plot_digest`) and counts of the train and val splits."""
    out: dict[str, Any] = {}
    for split in ("train", "val"):
        ids = workspace.plots.loc[workspace.split_mask(split), "plot_id"].to_numpy()
        out[f"{split}_plots"], out[f"n_{split}"] = plot_digest(ids), len(ids)
    return out


def check_training_plots(card: ModelCard, workspace: Workspace) -> None:
    """Raise when the workspace no longer has the model's training and validation plots in its
    train and val splits (rebuilt with another seed, block size or table): its test plots may then
    be plots the model was trained on, and any score an inflated one. Models trained from arrays
    record no plots and pass."""
    if not card.data:
        return
    now = training_plots(workspace)
    for split in ("train", "val"):
        recorded = card.data.get(f"{split}_plots")
        if recorded is not None and recorded != now[f"{split}_plots"]:
            raise DataError(
                f"the model was trained on other {split} plots than workspace '{workspace.path}' now "
                f"holds in its {split} split ({card.data.get(f'n_{split}', '?')} then, {now[f'n_{split}']} now): the "
                "workspace was rebuilt after training (e.g. `prepare --force` with another seed, block "
                "size or table). Scores on it would mix training and test plots: retrain on this "
                "workspace (`masksdm train --force`) or use the workspace the model was trained on"
            )


def split_arrays(card: ModelCard, workspace: Workspace, split: str | None) -> tuple[np.ndarray, np.ndarray]:
    """A workspace split as the model sees it: inputs (N, n_columns) float32 with the model's
    predictors by name, in its order, normalised with its statistics; labels (N, S) bool by
    species name in the model's output order (all False for a species the workspace lacks).

    Raises:
        CheckpointError: the workspace lacks predictors the model needs.
        DataError: the workspace's split is not the one the model was trained with
            (:func:`check_training_plots`).
    """
    check_predictors(card, workspace.predictor_names)
    check_training_plots(card, workspace)
    x = card.features(workspace.raw_predictors(split, card.predictor_names))
    return x, workspace.labels(split, card.species)
