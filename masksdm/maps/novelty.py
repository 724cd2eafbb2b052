"""How far a map's environment lies from the training plots: MESS, out-of-range counts, clamping.

A model projected onto another place or time (a future climate) meets combinations of predictors
that no training plot had, and its answer there is an extrapolation. Two maps show where:

* the **multivariate environmental similarity surface** (MESS; Elith, Kearney & Phillips 2010,
  Methods Ecol. Evol. 1:330-342). For predictor ``i`` with training minimum ``min_i``, maximum
  ``max_i`` and ``f_i`` the percentage of training plots whose value is below the cell's ``p_i``,
  the similarity is ``100 (p_i - min_i) / (max_i - min_i)`` when ``f_i = 0``, ``2 f_i`` when
  ``0 < f_i <= 50``, ``2 (100 - f_i)`` when ``50 <= f_i < 100`` and ``100 (max_i - p_i) /
  (max_i - min_i)`` when ``f_i = 100``. A cell's MESS is the least similarity over its
  predictors: negative where at least one predictor is outside its training range, 100 at most.
  The predictor that sets it is the *most dissimilar variable* (MoD);
* the **out-of-range count**: how many predictors lie outside their training range at the cell
  (biomod2's clamping mask).

The reference is the workspace's training plots, over the continuous raster predictors the map
uses (plot coordinates, categorical predictors and embeddings are left out: MESS compares values
on a scale). A predictor missing at a cell is left out of that cell's MESS. Tables of more than
:data:`MAX_REFERENCE` training plots keep that many evenly spaced order statistics per predictor,
so that the reference travels cheaply to dask workers; ``f_i`` is then exact to 0.005 %.

:func:`clamp_to_range` moves values outside the training range onto its nearest end before
prediction (``masksdm predict --clamp``), as Maxent's clamping does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from masksdm.data.grid import COMPUTED_PREDICTORS
from masksdm.data.predictors import input_widths
from masksdm.errors import ConfigError, DataError
from masksdm.model.checkpoint import ModelCard, check_training_plots

__all__ = [
    "MAX_REFERENCE", "NOVELTY_BANDS", "Reference", "clamp_to_range", "mess", "novelty_predictors", "training_reference",
]

#: Order statistics kept per predictor at most (see the module docstring).
MAX_REFERENCE = 20_000
#: Bands of ``novelty.tif``.
NOVELTY_BANDS = ("mess", "n_outside_range", "most_dissimilar")


@dataclass(frozen=True)
class Reference:
    """The training plots' values of the predictors novelty is measured on.

    Attributes:
        names: the predictors, in the model's order.
        columns: their columns in the model's raw input (``card.n_columns`` wide).
        values: per predictor, its training values sorted (NaN dropped), float64.
        n_plots: training plots the reference was taken from.
    """

    names: tuple[str, ...]
    columns: tuple[int, ...]
    values: tuple[np.ndarray, ...] = field(repr=False, compare=False)
    n_plots: int = 0

    @property
    def low(self) -> np.ndarray:
        return np.array([v[0] for v in self.values])

    @property
    def high(self) -> np.ndarray:
        return np.array([v[-1] for v in self.values])

    @property
    def digest(self) -> str:
        """Identifies the reference (for resuming an interrupted map run)."""
        h = hashlib.sha256(",".join(self.names).encode())
        for v in self.values:
            h.update(np.ascontiguousarray(v).tobytes())
        return h.hexdigest()[:16]


def novelty_predictors(card: ModelCard, read_names: Sequence[str]) -> list[str]:
    """The predictors among ``read_names`` that novelty is measured on (continuous rasters)."""
    kinds = {p.name: p for p in card.predictors}
    return [n for n in read_names
            if n not in COMPUTED_PREDICTORS and not kinds[n].is_embedding and not kinds[n].categorical]


def training_reference(card: ModelCard, workspace: Any, names: Sequence[str]) -> Reference:
    """The :class:`Reference` of ``names`` from the workspace's training plots.

    Raises:
        ConfigError: no workspace, or no predictor to measure novelty on.
        DataError: a predictor has no value in any training plot.
    """
    if workspace is None:
        raise ConfigError("novelty and clamping compare with the training plots: give --workspace DIR")
    if not names:
        raise ConfigError("novelty and clamping need at least one continuous raster predictor on the map")
    check_training_plots(card, workspace)
    raw = workspace.raw_predictors("train", list(names))
    widths = input_widths(card.predictors)
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    values = []
    for j, name in enumerate(names):
        v = np.sort(raw[:, j][~np.isnan(raw[:, j])])
        if not len(v):
            raise DataError(f"predictor {name!r} has no value in the training plots: mask it (--mask {name})")
        if len(v) > MAX_REFERENCE:
            v = v[np.linspace(0, len(v) - 1, MAX_REFERENCE).round().astype(np.int64)]
        values.append(v)
    columns = tuple(int(starts[card.predictor_names.index(n)]) for n in names)
    return Reference(tuple(names), columns, tuple(values), n_plots=len(raw))


def mess(raw: np.ndarray, reference: Reference) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MESS, out-of-range count and most dissimilar predictor of each cell.

    Args:
        raw: (cells, n_columns) raw predictor values in the model's column order (NaN = missing).
        reference: from :func:`training_reference`.

    Returns:
        ``(mess, n_outside, most_dissimilar)``, each (cells,) float32: MESS in percent (NaN where
        every reference predictor is missing), the number of predictors outside their training
        range, and the 1-based position in ``reference.names`` of the predictor that sets MESS
        (NaN where MESS is).

    Example:
        >>> ref = Reference(("t",), (0,), (np.arange(0.0, 101.0),), 101)
        >>> [round(float(m), 2) for m in mess(np.array([[50.0], [-10.0], [90.0]]), ref)[0]]
        [99.01, -10.0, 21.78]
    """
    n = len(raw)
    best = np.full(n, np.inf)
    which = np.zeros(n, dtype=np.float32)
    outside = np.zeros(n, dtype=np.float32)
    for j, (col, ref) in enumerate(zip(reference.columns, reference.values, strict=True)):
        p = raw[:, col].astype(np.float64)
        low, high = ref[0], ref[-1]
        f = 100.0 * np.searchsorted(ref, p, side="left") / len(ref)
        span = high - low if high > low else 1.0
        with np.errstate(invalid="ignore"):
            s = np.where(f <= 50, 2 * f, 2 * (100 - f))
            s = np.where(f == 0, 100 * (p - low) / span, s)
            s = np.where(f == 100, 100 * (high - p) / span, s)
            s = np.where(np.isnan(p), np.inf, s)
            outside += (p < low) | (p > high)
        lower = s < best
        best = np.where(lower, s, best)
        which = np.where(lower, np.float32(j + 1), which)
    missing = np.isinf(best)
    out = best.astype(np.float32)
    out[missing] = np.nan
    which[missing] = np.nan
    return out, outside, which


def clamp_to_range(raw: np.ndarray, reference: Reference) -> np.ndarray:
    """``raw`` (cells, n_columns) with the reference predictors clipped to their training range
    (NaN stays NaN); a new array."""
    out = raw.copy()
    cols = list(reference.columns)
    out[:, cols] = np.clip(out[:, cols], reference.low, reference.high)
    return out
