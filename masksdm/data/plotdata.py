"""The in-memory form of any presence/absence source: plots and the species found in them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from masksdm.errors import DataError

__all__ = ["PlotData", "check_coordinates", "filter_species"]


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


def check_coordinates(lon: pd.Series | np.ndarray, lat: pd.Series | np.ndarray, *, what: str = "plots") -> None:
    """Raise a DataError when coordinates are missing, out of range, or look swapped."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    bad = ~np.isfinite(lon) | ~np.isfinite(lat)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} {what} have missing or non-finite coordinates: drop those rows or fill "
            "their longitude/latitude"
        )
    lat_out = np.abs(lat) > 90
    lon_out = np.abs(lon) > 180
    if lat_out.any():
        if not (np.abs(lon) > 90).any():
            raise DataError(
                f"{int(lat_out.sum())} {what} have |latitude| > 90 while every longitude is within "
                "+-90: the longitude and latitude columns look swapped; swap the column names you pass"
            )
        raise DataError(
            f"{int(lat_out.sum())} {what} have latitude outside [-90, 90] (e.g. {lat[lat_out][0]}): "
            "coordinates must be WGS84 degrees; reproject them first"
        )
    if lon_out.any():
        raise DataError(
            f"{int(lon_out.sum())} {what} have longitude outside [-180, 180] (e.g. {lon[lon_out][0]}): "
            "coordinates must be WGS84 degrees; reproject them first"
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
    return occurrences[occurrences["species"].isin(keep)].reset_index(drop=True)
