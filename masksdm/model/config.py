"""Typed run configuration: model and training settings, presets, and TOML loading.

A config file is TOML with an optional ``preset`` and ``[model]`` / ``[train]`` tables whose keys
override the preset; unknown keys are rejected by name::

    preset = "cpu"
    [model]
    n_blocks = 3
    [train]
    epochs = 80
    loss = "bce"

Every field is checked against its annotation and range when a config is built (from TOML, from a
dict, or directly, e.g. ``TrainConfig(epochs=...)``): a bad value raises one
:class:`~masksdm.errors.ConfigError` naming its key, such as ``train.epochs must be a positive
integer, got 'ten' (str)``. Integers take ints (numpy's too) but not bools or floats; numbers take
ints and floats, finite, but not bools; strings take str; a list of names takes a list or tuple of
str but not one bare string.
"""

from __future__ import annotations

import json
import math
import numbers
import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import tomli_w

from masksdm.errors import ConfigError

__all__ = ["AUTO_ENSEMBLE", "AUTO_ENSEMBLE_MAX_ROWS", "PRESETS", "ModelConfig", "RunConfig", "TrainConfig", "for_table", "load_config", "preset"]


def _field(default: Any, interval: str = "", *, choices: tuple[str, ...] = (), note: str = "") -> Any:
    """A config field with its allowed values, checked by :func:`_check_fields`: a number in
    ``interval`` (such as ``"[0, 1)"``, ``"(0, inf)"``) or a string among ``choices``; ``note``
    follows the range in the error message."""
    return field(default=default, metadata={"interval": interval, "choices": choices, "note": note})


def _bound(text: str) -> float:
    text = text.strip()
    return float(2 ** int(text[3:])) if text.startswith("2**") else float(text)


def _inside(value: float, interval: str) -> bool:
    low, high = (_bound(t) for t in interval[1:-1].split(","))
    above = low < value if interval[0] == "(" else low <= value
    return above and (value < high if interval[-1] == ")" else value <= high)


def _describe(kind: type, interval: str, note: str) -> str:
    """What a number field takes, in words: ``a positive integer``, ``a number in [0, 1)``."""
    noun = "an integer" if kind is int else "a number"
    if interval == "(0, inf)" or (kind is int and interval == "[1, inf)"):
        what = f"a positive {noun.split()[1]}"
    elif interval.endswith(", inf)"):
        what = f"{noun} {'>' if interval[0] == '(' else '>='} {interval[1:].split(',')[0]}"
    else:
        what = f"{noun} in {interval}" if interval else noun
    return f"{what} ({note})" if note else what


_HINTS: dict[type, dict[str, Any]] = {}  # each config class's resolved field annotations


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _checked(key: str, value: Any, kind: Any, meta: Any) -> Any:
    """``value`` of config key ``key`` (annotated ``kind``) checked and normalised (int, float,
    str, tuple); ConfigError naming the key otherwise."""
    got = f"got {value!r} ({type(value).__name__})"
    if kind is int or kind is float:
        interval, note = meta.get("interval", ""), meta.get("note", "")
        ok = isinstance(value, numbers.Integral if kind is int else numbers.Real) and not isinstance(value, bool)
        if ok:  # TOML integers are 64-bit; a larger one (tomllib reads any) is no number of this config
            try:
                value = int(value) if kind is int else float(value)
            except OverflowError:  # an integer beyond any float
                value = math.inf
            ok = (abs(value) < 2**63 if kind is int else math.isfinite(value)) and (not interval or _inside(value, interval))
        if not ok:
            raise ConfigError(f"{key} must be {_describe(kind, interval, note)}, {got}")
        return value
    if kind is str:
        choices = meta.get("choices", ())
        if not isinstance(value, str) or (choices and value not in choices):
            raise ConfigError(f"{key} must be {f'one of {choices}' if choices else 'a string'}, {got}")
        return str(value)
    if get_origin(kind) is tuple and get_args(kind) == (str, ...):
        if isinstance(value, str):
            name = key.rpartition(".")[2]
            raise ConfigError(f"{key} must be a list of names, {got}: write {name} = {json.dumps([value])}")
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of names (strings), {got}")
        return tuple(str(v) for v in value)
    if isinstance(kind, type) and is_dataclass(kind):
        if not isinstance(value, kind):
            raise ConfigError(f"{key} must be a {kind.__name__}, {got}")
        return value
    raise TypeError(f"config key {key}: no check for values of type {kind!r}")  # a new kind of field


def _check_fields(config: Any, section: str) -> None:
    """Check every field of the dataclass ``config`` against its annotation and :func:`_field`
    range, normalising it in place; the ConfigError names ``section.field``."""
    hints = _hints(type(config))
    for f in fields(config):
        key = f"{section}.{f.name}" if section else f.name
        object.__setattr__(config, f.name, _checked(key, getattr(config, f.name), hints[f.name], f.metadata))


@dataclass(frozen=True)
class ModelConfig:
    """MaskSDM network sizes (defaults: the paper's model).

    ``location_frequency_scale``: frequency init scale of the Location predictors (coordinates,
    which vary over shorter distances than z-scored climate does); 0 = ``frequency_init_scale``.
    ``ensemble``: number of networks trained side by side from different initial weights, their
    logits averaged (:class:`~masksdm.model.network.MaskSDMEnsemble`); 1 = one network; 0 =
    by the table's size (:func:`for_table`): :data:`AUTO_ENSEMBLE` networks below
    :data:`AUTO_ENSEMBLE_MAX_ROWS` training rows, where they are cheap and one network's
    seed-to-seed spread is largest, else one.
    """

    d_token: int = _field(192, "[1, inf)")
    n_blocks: int = _field(7, "[1, inf)")
    n_heads: int = _field(8, "[1, inf)")
    ffn_factor: float = _field(4 / 3, "(0, inf)")
    dropout: float = _field(0.1, "[0, 1)")
    n_frequencies: int = _field(48, "[1, inf)")
    frequency_init_scale: float = _field(0.01, "(0, inf)")
    location_frequency_scale: float = _field(0.0, "[0, inf)", note="0: frequency_init_scale")
    ensemble: int = _field(1, "[0, inf)", note="0: by the table's size, else a number of networks")

    def __post_init__(self) -> None:
        _check_fields(self, "model")
        if self.d_token % self.n_heads:
            raise ConfigError(f"model.d_token ({self.d_token}) must be divisible by model.n_heads ({self.n_heads})")
        if int(self.d_token * self.ffn_factor) < 1:
            raise ConfigError(f"model.d_token * model.ffn_factor must be at least 1, got {self.d_token} * {self.ffn_factor}")


#: ``model.ensemble = 0``: this many networks for tables below :data:`AUTO_ENSEMBLE_MAX_ROWS` training rows.
AUTO_ENSEMBLE = 3
#: Below this many training rows one ``cpu`` network trains in about a minute on 2 cores.
AUTO_ENSEMBLE_MAX_ROWS = 2000


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        epochs: maximum number of passes over the training plots.
        batch_size: training batch size (paper: 256).
        eval_batch_size: batch size for validation and prediction.
        lr: AdamW learning rate (paper: 1e-3).
        weight_decay: AdamW weight decay (paper: 0.01).
        warmup_steps: linear learning-rate warm-up steps.
        schedule: learning rate after warm-up: ``"constant"`` or ``"cosine"`` (decays to 0 at the
            last epoch).
        loss: ``"weighted"`` (class-balanced loss of Zbinden et al. 2024; on presence-only data,
            whose rows include background points, its full weighted form) or ``"bce"``.
        target_group_weight: presence-only data only: lambda_2 of the full weighted loss, the
            weight of the target-group pseudo-absences (other species' record sites); the random
            background points get 1 - lambda_2 (Zbinden et al. 2024 use 0.8).
        masking: ``"random"`` (MaskSDM: keep each predictor with p ~ U(0, 1) per batch) or
            ``"none"`` (baseline: NaN mean-imputed, nothing masked).
        group_masking: share of training batches masked by whole predictor groups (each group kept
            with probability p) instead of by single predictors. 0 is the paper's scheme; a share
            makes single-group subsets, as used in Shapley values and group comparisons, frequent.
        use: predictor or group names the model may see (others always hidden); empty = all.
        patience: stop after this many epochs without validation improvement (0 = never).
        min_steps: train for at least this many optimiser steps: on a small table, where an epoch
            is a few batches, ``epochs`` and ``patience`` grow so that training lasts this many
            steps and may stop after a tenth of them without improvement (0 = epochs as given).
            Whatever the size, the warm-up lasts at most a tenth of all steps.
        select: which weights are kept: ``"best"`` (the epoch of best validation mean AUC, with
            early stopping after ``patience`` epochs) or ``"last"`` (the whole schedule runs and
            its last epoch is kept; validation only sets the thresholds), for validation sets too
            small to choose epochs by.
        seed: seed of weights, batch order and masks.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"fp32"`` or ``"bf16"``.
        threads: CPU threads for torch (0 = torch's default).
        collapse: run each training batch on its visible tokens plus one mask token standing for
            all masked ones (:meth:`~masksdm.model.network.MaskSDM.collapsed_trunk`): ``"auto"``
            does so when the model has no dropout, where loss and gradients equal the full
            sequence's; ``"on"`` also with dropout (a different, valid objective: dropout then
            drops the one mask token for all the masked ones); ``"off"`` never.
    """

    epochs: int = _field(1000, "[1, inf)")
    batch_size: int = _field(256, "[1, inf)")
    eval_batch_size: int = _field(4096, "[1, inf)")
    lr: float = _field(1e-3, "(0, inf)")
    weight_decay: float = _field(0.01, "[0, inf)")
    warmup_steps: int = _field(1000, "[0, inf)")
    schedule: str = _field("constant", choices=("constant", "cosine"))
    loss: str = _field("weighted", choices=("weighted", "bce"))
    target_group_weight: float = _field(0.8, "[0, 1]")
    masking: str = _field("random", choices=("random", "none"))
    group_masking: float = _field(0.0, "[0, 1]")
    use: tuple[str, ...] = field(default_factory=tuple)
    patience: int = _field(50, "[0, inf)", note="0: never stop early")
    min_steps: int = _field(0, "[0, inf)", note="0: epochs as given")
    select: str = _field("best", choices=("best", "last"))
    seed: int = _field(42, "[0, 2**63)")
    device: str = _field("auto", choices=("auto", "cpu", "cuda"))
    precision: str = _field("auto", choices=("auto", "fp32", "bf16"))
    threads: int = _field(0, "[0, inf)", note="0: torch's default")
    collapse: str = _field("auto", choices=("auto", "on", "off"))

    def __post_init__(self) -> None:
        _check_fields(self, "train")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run."""

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    preset: str = "paper"

    def __post_init__(self) -> None:
        _check_fields(self, "")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["train"]["use"] = list(self.train.use)
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config") -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a table of preset, [model] and [train], got {type(data).__name__}")
        data = dict(data)
        name = data.pop("preset", "paper")
        if not isinstance(name, str):
            raise ConfigError(f'in {where}: preset must be a string such as "cpu", got {name!r} ({type(name).__name__})')
        for table in ("model", "train"):
            if not isinstance(data.get(table, {}), dict):
                value = data[table]
                raise ConfigError(f"in {where}: {table} must be a table ([{table}] with keys below it), "
                                  f"got {value!r} ({type(value).__name__})")
        base = preset(name)
        model = _override(base.model, data.pop("model", {}), f"{where} [model]")
        train = _override(base.train, data.pop("train", {}), f"{where} [train]")
        if data:
            raise ConfigError(f"unknown keys in {where}: {sorted(data)} (allowed: preset, [model], [train])")
        return cls(model=model, train=train, preset=name)

    def replace_train(self, **changes: Any) -> RunConfig:
        return replace(self, train=replace(self.train, **changes))

    def with_epochs(self, epochs: int) -> RunConfig:
        """At most ``epochs`` epochs, exactly as asked: ``train.min_steps`` no longer lengthens them."""
        return self.replace_train(epochs=epochs, min_steps=0)

    def replace_model(self, **changes: Any) -> RunConfig:
        return replace(self, model=replace(self.model, **changes))


def _override(base: Any, changes: dict[str, Any], where: str) -> Any:
    allowed = {f.name for f in fields(base)}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ConfigError(f"unknown keys in {where}: {unknown}; allowed keys are {sorted(allowed)}")
    try:
        return replace(base, **changes)
    except ConfigError as err:
        raise ConfigError(f"in {where}: {err}") from None


PRESETS: dict[str, RunConfig] = {
    "paper": RunConfig(preset="paper"),
    # Small enough to train on 2 CPU cores in about two minutes on the demo world.
    # NOTE[DIFF]: no dropout (CPU dropout costs half the step time; masking already regularises),
    # frequencies initialised at 0.3 instead of 0.01, a cosine schedule, and 3/4 of the batches
    # masked by whole groups: on the demo world these converge faster and lift single-group AUC.
    # The whole cosine schedule runs and its last epoch is kept (select="last"): choosing the
    # epoch on the validation plots of a small table fits their noise (on three real surveys of
    # 70 to 212 plots, "last" scored 1.3 to 4.5 AUC points higher over three seeds; README).
    # Tables under 2,000 training plots get an ensemble of 3 (ensemble=0, see for_table).
    "cpu": RunConfig(
        model=ModelConfig(
            d_token=64, n_blocks=2, n_heads=4, n_frequencies=16, frequency_init_scale=0.3, dropout=0.0,
            ensemble=0,
        ),
        train=TrainConfig(
            epochs=100, batch_size=128, eval_batch_size=2048, lr=3e-3, warmup_steps=100,
            schedule="cosine", group_masking=0.75, patience=10, select="last",
        ),
        preset="cpu",
    ),
}


def for_table(config: RunConfig, n_train: int) -> RunConfig:
    """``config`` made concrete for a table of ``n_train`` training rows: ``model.ensemble = 0``
    becomes :data:`AUTO_ENSEMBLE` networks below :data:`AUTO_ENSEMBLE_MAX_ROWS` rows, else 1.
    The run's card records the concrete config."""
    if config.model.ensemble:
        return config
    return config.replace_model(ensemble=AUTO_ENSEMBLE if n_train < AUTO_ENSEMBLE_MAX_ROWS else 1)


def preset(name: str) -> RunConfig:
    """A named preset: ``"paper"`` (the published model) or ``"cpu"`` (small, for laptops and CI)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}") from None


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML run config; unknown keys raise ConfigError naming them."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist: pass an existing TOML file to --config")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"'{path}' is not UTF-8 text ({err}): save the config as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"'{path}' is not valid TOML: {err}") from None
    return RunConfig.from_dict(data, where=str(path))
