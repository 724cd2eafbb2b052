"""What a map run computes: the species, the predictors read and masked, the outputs and thresholds.

:func:`plan_maps` checks a request against the model and the raster stack and returns a
:class:`MapPlan`, the small picklable description that each strip's prediction (here or on a dask
worker) follows. :func:`resolve_threshold` turns a threshold rule into one threshold per species.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from masksdm.data.grid import COMPUTED_PREDICTORS, RasterStack
from masksdm.data.predictors import catalogue_entry, input_widths, subset_mask
from masksdm.errors import ConfigError, RasterError
from masksdm.metrics import max_tss
from masksdm.model.checkpoint import ModelCard
from masksdm.model.inference import predict_logits_tensor
from masksdm.model.network import MaskSDM

__all__ = ["OUTPUTS", "MapPlan", "mappable_predictors", "missing_rasters", "plan_maps", "read_cells", "resolve_threshold"]

log = logging.getLogger(__name__)

#: What :func:`predict_maps` can write.
OUTPUTS = ("probability", "binary", "richness")
_DTYPES = {  # dtype: (largest valid code, nodata)
    "uint8": (254, 255),
    "uint16": (65_534, 65_535),
    "float32": (None, float("nan")),
}


@dataclass(frozen=True)
class MapPlan:
    """Everything a worker needs to predict one strip (picklable, no open files)."""

    species: tuple[str, ...]
    species_index: tuple[int, ...]
    visible: tuple[bool, ...]  # (P,) predictors used
    read_names: tuple[str, ...]  # predictors read from the stack (in card order)
    outputs: tuple[str, ...]
    dtype: str
    thresholds: tuple[float, ...] | None
    threshold_rule: str | None

    @property
    def scale(self) -> float:
        top = _DTYPES[self.dtype][0]
        return 1.0 if top is None else 1.0 / top

    @property
    def nodata(self) -> float:
        return _DTYPES[self.dtype][1]


# --- planning ---------------------------------------------------------------------------------

def mappable_predictors(card: ModelCard, stack: RasterStack) -> np.ndarray:
    """(P,) predictors a map can have: those in the stack, the coordinates computed from the grid,
    and those the catalogue (or, for names it lacks, the model card) knows as rasters. The others
    (plot-level fields such as releve area) stay masked on maps."""
    out = []
    for p in card.predictors:
        entry = catalogue_entry(p.name)
        out.append(p.name in stack.names or p.name in COMPUTED_PREDICTORS or (entry or p).source == "raster")
    return np.array(out)


def read_cells(card: ModelCard, stack: RasterStack, names: Sequence[str], window: Any) -> tuple[np.ndarray, np.ndarray]:
    """Raw predictors (cells, P) of a window in the card's order, ``names`` read from the stack and
    the others NaN (masked), and the (cells,) mask of cells where at least one raster has data
    (the computed coordinates do not count: they exist over the sea too)."""
    values = stack.read(list(names), window)
    widths = input_widths(card.predictors)
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    raw = np.full((len(values), int(widths.sum())), np.nan, dtype=np.float32)
    has_data = np.zeros(len(values), dtype=bool)
    read, bands_of = 0, stack.widths
    for name in names:
        i = card.predictor_names.index(name)
        bands = 1 if name in COMPUTED_PREDICTORS else bands_of[name]
        if bands != widths[i]:
            raise RasterError(
                f"raster '{name}' has {bands} band(s) but the model's {name} has {widths[i]} "
                "values: write it again with `masksdm embed cells` for this model's encoder"
            )
        block = values[:, read : read + bands]
        raw[:, starts[i] : starts[i] + bands] = block
        if name not in COMPUTED_PREDICTORS:  # the computed coordinates exist over the sea too
            has_data |= ~np.isnan(block).all(axis=1)
        read += bands
    if all(n in COMPUTED_PREDICTORS for n in names):
        has_data[:] = True
    return raw, has_data


def missing_rasters(card: ModelCard, stack: RasterStack, needed: np.ndarray) -> list[str]:
    """Names of the ``needed`` (P,) predictors that the stack has no raster for."""
    available = set(stack.names) | set(COMPUTED_PREDICTORS)
    return [p.name for p, n in zip(card.predictors, needed, strict=True) if n and p.name not in available]


def plan_maps(
    card: ModelCard,
    stack: RasterStack,
    species: Sequence[str] | None,
    *,
    use: Sequence[str] | None = None,
    mask: Sequence[str] | None = None,
    outputs: Sequence[str] = ("probability",),
    dtype: str = "uint8",
    thresholds: np.ndarray | None = None,
    threshold_rule: str | None = None,
) -> MapPlan:
    """Check the request against the model and the rasters and fix what each strip computes.

    Args:
        species: names, or None for all the model's species.
        use: predictors/groups to use (default: every predictor a map can have).
        mask: predictors/groups to leave out (applied after ``use``).

    Raises:
        RasterError: a predictor to use has no raster (the message lists them and how to mask them).
        ConfigError: unknown output or dtype, binary/richness count without thresholds.
    """
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown or not outputs:
        raise ConfigError(f"unknown outputs {unknown or list(outputs)}: choose among {list(OUTPUTS)}")
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}: use uint8 (default), uint16 or float32")
    if "binary" in outputs and thresholds is None:
        raise ConfigError("binary maps need a threshold rule: --threshold max_tss, sensitivity:0.9 or a number")
    names = list(card.species) if species is None else list(species)
    index = card.species_indices(names)
    mappable = mappable_predictors(card, stack)
    visible = mappable.copy() if not use else subset_mask(use, card.predictors)
    if mask:
        visible &= ~subset_mask(mask, card.predictors)
    plot_level = [p.name for p, v, m in zip(card.predictors, visible, mappable, strict=True) if v and not m]
    if plot_level and use:
        raise ConfigError(
            f"{plot_level} are plot-level predictors with no raster: a map cannot use them; leave them out of --use"
        )
    visible &= mappable
    missing = missing_rasters(card, stack, visible)
    if missing:
        raise RasterError(
            f"no raster for {len(missing)} predictor(s) the model would use: {missing}. Add '<name>.tif' "
            f"rasters to the folder, or predict without them: --mask {','.join(missing)}"
        )
    if not visible.any():
        raise ConfigError("no predictor left to use: check --use and --mask")
    return MapPlan(
        species=tuple(names),
        species_index=tuple(int(i) for i in index),
        visible=tuple(bool(v) for v in visible),
        read_names=tuple(p.name for p, v in zip(card.predictors, visible, strict=True) if v),
        outputs=tuple(outputs),
        dtype=dtype,
        thresholds=None if thresholds is None else tuple(float(t) for t in thresholds),
        threshold_rule=threshold_rule,
    )


def resolve_threshold(
    rule: str,
    model: MaskSDM,
    card: ModelCard,
    species_index: Sequence[int] | np.ndarray,
    visible: np.ndarray,
    workspace: Any | None = None,
) -> np.ndarray:
    """Thresholds (n_species,) on the probability scale for a rule.

    ``rule``: a number in (0, 1); ``"max_tss"``; or ``"sensitivity:S"`` (the largest threshold at
    which a share S of the validation presences is predicted present). Data rules predict the
    workspace's validation plots with the same visible predictors as the map.
    """
    try:
        value = float(rule)
    except ValueError:
        value = None
    if value is not None:
        if not 0 < value < 1:
            raise ConfigError(f"a fixed threshold must be between 0 and 1, got {value}")
        return np.full(len(species_index), value)
    match = re.fullmatch(r"sensitivity:(\d*\.?\d+)", rule)
    if rule != "max_tss" and not match:
        raise ConfigError(f"unknown threshold rule {rule!r}: use max_tss, sensitivity:0.9 or a number such as 0.5")
    if workspace is None:
        raise ConfigError(f"threshold rule {rule!r} is computed on the validation plots: give --workspace DIR")
    x, y = workspace.features("val"), workspace.labels("val")[:, list(species_index)]
    logits = predict_logits_tensor(model, x, torch.as_tensor(visible), species=np.asarray(species_index))
    p = torch.sigmoid(logits).cpu().numpy().astype(np.float64)
    if match:
        target = float(match.group(1))
        if not 0 < target <= 1:
            raise ConfigError(f"the sensitivity target must be in (0, 1], got {target}")
        out = np.full(len(species_index), np.nan)
        for j in range(len(species_index)):
            presences = p[y[:, j], j]
            if len(presences):  # the largest threshold with ceil(target x n) presences at or above it
                keep = math.ceil(round(target * len(presences), 9))  # round: 0.7 x 10 is 7.000000000000001
                out[j] = np.sort(presences)[len(presences) - keep]
        thresholds = out
    else:
        thresholds = max_tss(p, y)[1]
    missing = np.isnan(thresholds)
    if missing.any():
        log.warning("%d species have no presence/absence among the validation plots: threshold 0.5", missing.sum())
    return np.where(missing, 0.5, thresholds)
