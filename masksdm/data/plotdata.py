"""The in-memory form of any presence/absence source: plots and the species found in them."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from masksdm.errors import DataError

__all__ = [
    "PlotData",
    "canonical_species",
    "check_coordinates",
    "clean_species_name",
    "filter_species",
    "normalise_species",
]

logger = logging.getLogger(__name__)


@dataclass
class PlotData:
    """Plots and their species occurrences, as every loader returns them.

    Attributes:
        plots: one row per plot. Columns ``plot_id`` (unique), ``lon``, ``lat`` (WGS84 degrees,
            float64) and any predictor columns already in the source table (float64, NaN = missing).
        occurrences: one row per (plot, species) presence. Columns ``plot_id`` and ``species``
            (str), unique pairs, every ``plot_id`` present in ``plots``. A plot absent from this
            table has every species absent.
        source: a short human-readable description of where the data came from.
        info_columns: columns of ``plots`` that describe plots without being predictors (a split
            label, a survey year, ...): kept in the workspace, usable in split rules, never
            given to the model.
    """

    plots: pd.DataFrame
    occurrences: pd.DataFrame
    source: str = ""
    info_columns: tuple[str, ...] = ()

    @property
    def n_plots(self) -> int:
        return len(self.plots)

    @property
    def n_species(self) -> int:
        return int(self.occurrences["species"].nunique())


def check_coordinates(
    lon: pd.Series | np.ndarray,
    lat: pd.Series | np.ndarray,
    *,
    what: str = "plots",
    ids: pd.Series | np.ndarray | None = None,
) -> None:
    """Raise a DataError when coordinates are missing, out of range, or look swapped.

    The error names the first few offending rows: by ``ids`` (e.g. plot ids) when given, else by
    the index of ``lon`` when it is a Series, else by position. The columns are said to look
    swapped only when swapping them would make (nearly, 99 %) every row valid and most rows
    (more than half) have a latitude beyond +-90 that is a valid longitude; a few latitudes out of
    range are reported as those rows, not as a swap.
    """
    index = pd.Series(lon).index if ids is None else None
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    labels = np.asarray(ids) if ids is not None else np.asarray(index)
    label = "plot" if ids is not None else "row"

    def examples(bad: np.ndarray, *shown: tuple[str, np.ndarray]) -> str:
        rows = np.flatnonzero(bad)[:5]
        parts = [f"{label} {labels[i]} (" + ", ".join(f"{n} {v[i]:g}" for n, v in shown) + ")" for i in rows]
        return ", ".join(parts) + (", ..." if bad.sum() > len(rows) else "")

    bad = ~np.isfinite(lon) | ~np.isfinite(lat)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} {what} have missing or non-finite coordinates ({examples(bad, ('lon', lon), ('lat', lat))})"
            ": drop those rows or fill their longitude/latitude"
        )
    lat_out = np.abs(lat) > 90
    lon_out = np.abs(lon) > 180
    if lat_out.any():
        valid_if_swapped = (np.abs(lon) <= 90) & (np.abs(lat) <= 180)
        if valid_if_swapped.mean() >= 0.99 and (lat_out & valid_if_swapped).mean() > 0.5:
            raise DataError(
                f"{int(lat_out.sum())} of {len(lat)} {what} have |latitude| > 90 while swapping longitude and "
                "latitude would make them valid: the longitude and latitude columns look swapped; swap the column "
                "names you pass"
            )
        raise DataError(
            f"{int(lat_out.sum())} of {len(lat)} {what} have latitude outside [-90, 90]: "
            f"{examples(lat_out, ('lat', lat))}; coordinates must be WGS84 degrees: fix or drop those rows, "
            "or reproject them first"
        )
    if lon_out.any():
        raise DataError(
            f"{int(lon_out.sum())} of {len(lon)} {what} have longitude outside [-180, 180]: "
            f"{examples(lon_out, ('lon', lon))}; coordinates must be WGS84 degrees: fix or drop those rows, "
            "or reproject them first"
        )


def filter_species(occurrences: pd.DataFrame, *, min_plots: int = 20) -> pd.DataFrame:
    """Keep species seen in MORE than ``min_plots`` distinct plots (the paper keeps > 20).

    Raises:
        DataError: when no species passes the filter.
    """
    counts = occurrences.groupby("species")["plot_id"].nunique()
    keep = counts.index[counts > min_plots]
    if len(keep) == 0:
        raise DataError(
            f"no species is seen in more than {min_plots} plots (the most frequent is in "
            f"{int(counts.max()) if len(counts) else 0}): lower --min-plots"
        )
    dropped = counts.index[counts <= min_plots]
    if len(dropped):
        shown = ", ".join(map(str, dropped[:10])) + (f", ... ({len(dropped) - 10} more)" if len(dropped) > 10 else "")
        logger.warning("%d species seen in %d plots or fewer are left out (--min-plots %d): %s",
                    len(dropped), min_plots, min_plots, shown)
    return occurrences[occurrences["species"].isin(keep)].reset_index(drop=True)


# --- species names ------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")


def clean_species_name(name: object) -> str | None:
    """``name`` in Unicode NFC form, stripped, inner runs of whitespace as one space.

    None when the name is missing or only whitespace. ``"Abie\u0301s  alba "`` (decomposed,
    two spaces, trailing space) becomes ``"Abiés alba"``.
    """
    if name is None or (not isinstance(name, str) and pd.isna(name)):
        return None
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", str(name))).strip()
    return text or None


def _shown(items: list[str], limit: int = 10) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def canonical_species(
    names: Sequence[object], counts: Sequence[int] | np.ndarray, *, what: str
) -> list[str | None]:
    """The name under which each of ``names`` is recorded.

    Rule: each name is cleaned (:func:`clean_species_name`: NFC, whitespace stripped and
    collapsed; an empty name becomes None), then names that differ only by case are merged under
    the spelling with the most records (``counts``, one per name; ties: the first in sorted
    order). Cleaned names are logged at INFO, case merges at WARNING, naming them; ``what`` says
    where the names come from (e.g. the file name).
    """
    cleaned = [clean_species_name(n) for n in names]
    weight: dict[str, int] = {}
    for name, count in zip(cleaned, counts, strict=True):
        if name is not None:
            weight[name] = weight.get(name, 0) + int(count)
    spellings: dict[str, list[str]] = {}
    for name in weight:
        spellings.setdefault(name.casefold(), []).append(name)
    canonical: dict[str, str] = {}
    merges = []
    for group in spellings.values():
        best = min(group, key=lambda s: (-weight[s], s))
        for name in sorted(group):
            canonical[name] = best
            if name != best:
                merges.append(f"{name!r} ({weight[name]}) -> {best!r} ({weight[best]})")
    changed = sorted({f"{n!r} -> {c!r}" for n, c in zip(names, cleaned, strict=True) if c is not None and c != n})
    if changed:
        logger.info("%s: %d species names cleaned (Unicode NFC, surrounding and repeated spaces): %s",
                    what, len(changed), _shown(changed))
    if merges:
        logger.warning("%s: %d species names differ from another only by case and were merged under the "
                       "spelling with the most records: %s", what, len(merges), _shown(merges))
    return [None if name is None else canonical[name] for name in cleaned]


def normalise_species(values: pd.Series, *, what: str) -> pd.Series:
    """``values`` (species names, one per record) by :func:`canonical_species`, as a categorical.

    Each record counts once towards the spelling that wins a case merge; missing and empty names
    are missing (NaN) in the result, which keeps the index of ``values``.
    """
    codes, uniques = pd.factorize(values)  # missing -> -1
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    names = canonical_species(list(uniques), counts, what=what)
    categories = sorted({n for n in names if n is not None})
    position = {n: i for i, n in enumerate(categories)}
    remap = np.array([-1 if n is None else position[n] for n in names] + [-1], dtype=np.int64)
    species = pd.Categorical.from_codes(remap[codes], categories=pd.Index(categories, dtype="str"))
    return pd.Series(species, index=values.index, name=values.name)
