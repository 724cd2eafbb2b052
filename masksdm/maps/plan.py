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
from rasterio.windows import Window

from masksdm.data.grid import COMPUTED_PREDICTORS, RasterStack
from masksdm.data.predictors import catalogue_entry, input_widths, subset_mask
from masksdm.errors import ConfigError, RasterError
from masksdm.maps.novelty import NOVELTY_BANDS, Reference, clamp_to_range, mess
from masksdm.metrics import max_tss
from masksdm.model.checkpoint import ModelCard, split_arrays
from masksdm.model.inference import predict_logits_tensor
from masksdm.model.network import Network

__all__ = [
    "DTYPES", "OUTPUTS", "MapPlan", "mappable_predictors", "missing_rasters", "plan_maps", "predict_window",
    "read_cells", "resolve_threshold", "threshold_codes",
]

log = logging.getLogger(__name__)

#: What :func:`predict_maps` can write.
OUTPUTS = ("probability", "binary", "richness", "uncertainty", "novelty")
DTYPES = {  # dtype: (largest valid code, nodata)
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
    reference: Reference | None = None  # the training plots, for novelty and clamping
    clamp: bool = False  # predictors outside the training range moved onto its ends

    @property
    def scale(self) -> float:
        top = DTYPES[self.dtype][0]
        return 1.0 if top is None else 1.0 / top

    @property
    def nodata(self) -> float:
        return DTYPES[self.dtype][1]


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
    reference: Reference | None = None,
    clamp: bool = False,
) -> MapPlan:
    """Check the request against the model and the rasters and fix what each strip computes.

    Args:
        species: names, or None for all the model's species.
        use: predictors/groups to use (default: every predictor a map can have).
        mask: predictors/groups to leave out (applied after ``use``).
        reference, clamp: the training plots' values (:func:`~masksdm.maps.novelty.training_reference`),
            needed for the ``"novelty"`` output and for ``clamp`` (values outside the training
            range moved onto its ends before prediction).

    Raises:
        RasterError: a predictor to use has no raster (the message lists them and how to mask them).
        ConfigError: unknown output or dtype, binary/richness count without thresholds.
    """
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown or not outputs:
        raise ConfigError(f"unknown outputs {unknown or list(outputs)}: choose among {list(OUTPUTS)}")
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}: use uint8 (default), uint16 or float32")
    if "binary" in outputs and thresholds is None:
        raise ConfigError("binary maps need a threshold rule: --threshold max_tss, sensitivity:0.9 or a number")
    if ("novelty" in outputs or clamp) and reference is None:
        raise ConfigError("novelty maps and clamping compare with the training plots: give --workspace DIR")
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
    unseen = [p.name for p, v, a in zip(card.predictors, visible, card.allowed, strict=True) if v and not a]
    if unseen and use:
        log.info("the model was trained without %s (train.use): they stay masked", unseen)
    visible &= mappable & card.allowed  # a model trained on a subset never sees the others
    missing = missing_rasters(card, stack, visible)
    if missing:
        raise RasterError(
            f"no raster for {len(missing)} predictor(s) the model would use: {missing}. Add '<name>.tif' "
            f"rasters to the folder, or predict without them: --mask {','.join(missing)}"
        )
    if not visible.any():
        raise ConfigError(
            "no predictor left to use: check --use and --mask"
            + (f" (the model was trained with train.use = {list(card.config.train.use)})" if card.config.train.use else "")
        )
    return MapPlan(
        species=tuple(names),
        species_index=tuple(int(i) for i in index),
        visible=tuple(bool(v) for v in visible),
        read_names=tuple(p.name for p, v in zip(card.predictors, visible, strict=True) if v),
        outputs=tuple(outputs),
        dtype=dtype,
        thresholds=None if thresholds is None else tuple(float(t) for t in thresholds),
        threshold_rule=threshold_rule,
        reference=reference,
        clamp=clamp,
    )


def resolve_threshold(
    rule: str,
    model: Network,
    card: ModelCard,
    species_index: Sequence[int] | np.ndarray,
    visible: np.ndarray,
    workspace: Any | None = None,
) -> np.ndarray:
    """Thresholds (n_species,) on the probability scale for a rule.

    ``rule``: a number in (0, 1); ``"model"`` (the thresholds stored in the model card at
    training: max TSS on the validation plots, every predictor visible); ``"max_tss"``; or
    ``"sensitivity:S"`` (the largest threshold at which a share S of the validation presences is
    predicted present). Data rules predict the workspace's validation plots with the same visible
    predictors as the map.
    """
    try:
        value = float(rule)
    except ValueError:
        value = None
    if value is not None:
        if not 0 < value < 1:
            raise ConfigError(f"a fixed threshold must be between 0 and 1, got {value}")
        return np.full(len(species_index), value)
    if rule == "model":
        stored = card.thresholds or []
        missing = [card.species[i] for i in species_index if i >= len(stored) or stored[i] is None]
        if missing:
            raise ConfigError(
                f"the model stores no threshold for {len(missing)} species ({', '.join(missing[:3])}"
                f"{' ...' if len(missing) > 3 else ''}): use --threshold max_tss with --workspace, or a number"
            )
        return np.array([stored[i] for i in species_index], dtype=np.float64)
    match = re.fullmatch(r"sensitivity:(\d*\.?\d+)", rule)
    if rule != "max_tss" and not match:
        raise ConfigError(
            f"unknown threshold rule {rule!r}: use model, max_tss, sensitivity:0.9 or a number such as 0.5"
        )
    if workspace is None:
        raise ConfigError(f"threshold rule {rule!r} is computed on the validation plots: give --workspace DIR")
    x, labels = split_arrays(card, workspace, "val")
    y = labels[:, list(species_index)]
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


# --- one strip of cells ---------------------------------------------------------------------

def _quantise(p: torch.Tensor, plan: MapPlan) -> torch.Tensor:
    """Probabilities to the output dtype, on the model's device (less to transfer)."""
    top = DTYPES[plan.dtype][0]
    if top is None:
        return p.float()
    return torch.round(p * top).to(torch.int32)


def threshold_codes(thresholds: Sequence[float] | np.ndarray, dtype: str, scale: float) -> np.ndarray:
    """(S,) the least value of a map of ``dtype`` and ``scale`` whose decoded probability
    (``value x scale``) reaches each threshold.

    Readers decode ``value x scale`` in float64 (GDAL, rasterio, rioxarray); comparing the written
    values with these codes makes binary maps agree exactly with the probability maps and the
    threshold tags, ties included, whatever the precision of the model's device.
    """
    t = np.array(thresholds, dtype=np.float64)
    if np.dtype(dtype).kind == "f":  # float32 values: the least float32 >= t
        t32 = t.astype(np.float32)
        return np.where(t32 < t, np.nextafter(t32, np.float32(np.inf)), t32)
    k = np.ceil(t / scale)  # within one code of the answer; fix the rounding either way
    k = np.where((k - 1) * scale >= t, k - 1, k)
    k = np.where(k * scale < t, k + 1, k)
    return k.astype(np.int32)


@torch.no_grad()
def predict_window(
    model: Network,
    card: ModelCard,
    stack: RasterStack,
    window: Window,
    plan: MapPlan,
    *,
    batch_size: int | None = None,
    precision: str = "auto",
) -> dict[str, np.ndarray]:
    """Outputs of one strip: ``{"probability": (S, h, w), "binary": (S, h, w), "richness": (1|2, h, w),
    "uncertainty": (S, h, w), "novelty": (3, h, w)}`` as requested by the plan, in the written
    dtypes (richness and novelty float32).

    ``uncertainty`` (an ensemble): the standard deviation of the members' probabilities, in the
    probability maps' dtype and scale; the probabilities are then the sigmoid of the members' mean
    logits, as without it. ``novelty``: MESS, out-of-range count and most dissimilar predictor
    (:func:`~masksdm.maps.novelty.mess`), from the values before any clamping.
    """
    device = next(model.parameters()).device
    batch = batch_size or (65_536 if device.type == "cuda" else 2048)
    h, w = int(window.height), int(window.width)
    raw, has_data = read_cells(card, stack, plan.read_names, window)
    cells = np.flatnonzero(has_data)
    n_species = len(plan.species)
    out_dtype = np.float32 if plan.dtype == "float32" else np.dtype(plan.dtype)
    result: dict[str, np.ndarray] = {}
    if "probability" in plan.outputs:
        result["probability"] = np.full((n_species, h * w), plan.nodata, dtype=out_dtype)
    if "binary" in plan.outputs:
        result["binary"] = np.full((n_species, h * w), 255, dtype=np.uint8)
    if "richness" in plan.outputs:
        n_bands = 2 if plan.thresholds is not None else 1
        result["richness"] = np.full((n_bands, h * w), np.nan, dtype=np.float32)
    if "uncertainty" in plan.outputs:
        result["uncertainty"] = np.full((n_species, h * w), plan.nodata, dtype=out_dtype)
    raw = raw[cells]
    if "novelty" in plan.outputs:
        assert plan.reference is not None
        result["novelty"] = np.full((len(NOVELTY_BANDS), h * w), np.nan, dtype=np.float32)
        result["novelty"][:, cells] = np.stack(mess(raw, plan.reference))
    if plan.clamp:
        assert plan.reference is not None
        raw = clamp_to_range(raw, plan.reference)
    keep = torch.as_tensor(np.array(plan.visible))
    species = np.array(plan.species_index)
    thresholds = None if plan.thresholds is None else torch.as_tensor(
        threshold_codes(plan.thresholds, plan.dtype, plan.scale), device=device)
    x = card.features(raw) if len(cells) else np.empty((0, card.n_columns), np.float32)
    members = "uncertainty" in result
    predicted = len(cells) if set(result) - {"novelty"} else 0  # novelty alone needs no model
    for start in range(0, predicted, batch):
        rows = cells[start : start + batch]
        logits = predict_logits_tensor(model, x[start : start + batch], keep, species=species,
                                       batch_size=batch, precision=precision, members=members)
        if members:  # (k, n, S): the ensemble's logits are the members' mean, as in its forward
            spread = torch.sigmoid(logits).std(dim=0, correction=0)
            result["uncertainty"][:, rows] = _quantise(spread, plan).T.cpu().numpy()
            logits = logits.mean(dim=0)
        p = torch.sigmoid(logits)
        q = _quantise(p, plan)  # (n, S) on the device
        present = None if thresholds is None else q >= thresholds
        if "probability" in result:
            result["probability"][:, rows] = q.T.cpu().numpy()
        if "binary" in result:
            assert present is not None
            result["binary"][:, rows] = present.T.to(torch.uint8).cpu().numpy()
        if "richness" in result:
            richness = [p.sum(dim=1)]
            if present is not None:
                richness.append(present.sum(dim=1).float())
            result["richness"][:, rows] = torch.stack(richness).cpu().numpy()
    return {k: v.reshape(len(v), h, w) for k, v in result.items()}
