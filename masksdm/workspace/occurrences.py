"""A presence-only workspace from occurrence records: GBIF downloads or any table of records.

:func:`prepare_occurrences` reads the records (:mod:`masksdm.data.occurrences`), cleans and thins
them on the rasters' grid, draws background points (:mod:`masksdm.data.background`) and writes a
workspace (:func:`~masksdm.workspace.core.prepare_workspace`) whose plots are the record sites and
the background points, the latter marked in the ``background`` column.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from masksdm._io import write_parquet
from masksdm.data.plotdata import PlotData
from masksdm.errors import OutputExistsError
from masksdm.workspace.core import BACKGROUND, Workspace, prepare_workspace

if TYPE_CHECKING:
    from masksdm.data.rasters import Sources

__all__ = ["prepare_occurrences"]


def prepare_occurrences(
    occurrences: str | Path | pd.DataFrame,
    out_dir: str | Path,
    *,
    rasters: Sources,
    background: int = 10_000,
    background_method: str = "uniform",
    bias: str | Path | None = None,
    buffer_km: float = 0.0,
    max_uncertainty_m: float | None = 10_000.0,
    centroids: pd.DataFrame | None = None,
    min_records: int = 10,
    species_column: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    sep: str | None = None,
    groups: Mapping[str, str] | None = None,
    add_location: bool = True,
    block_size: float = 1.0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    seed: int = 42,
    stratify: bool = True,
    force: bool = False,
    progress: bool = True,
) -> Workspace:
    """Build a presence-only workspace from occurrence records (a GBIF download, any CSV) and rasters.

    The records are read (:func:`~masksdm.data.occurrences.read_occurrences`), cleaned and thinned
    to one per raster cell and species (:func:`~masksdm.data.occurrences.clean_occurrences`; the
    count of every flag goes to ``workspace.json`` under ``presence_only.cleaning``), and
    ``background`` points are drawn on the rasters' valid cells
    (:func:`~masksdm.data.background.sample_background`, seeded with ``seed``). Each raster cell
    with records becomes a *site* (``plot_id`` ``site-<cell>``; the species recorded there are its
    presences, the other species target-group pseudo-absences), each background point a row with
    ``background`` True (``background-<cell>``), both at their cell's centre. From there it is a
    workspace like any other (spatial block split of sites and background together, stratified by
    species), so training, prediction, Shapley values and the dashboard work unchanged; training
    uses the full weighted loss and evaluation scores presences against background
    (:mod:`masksdm.scoring`).

    Args:
        occurrences: the records file (a GBIF Darwin Core Archive ``.zip``, GBIF's simple CSV, any
            CSV/TSV), or a frame with :data:`~masksdm.data.occurrences.RECORD_COLUMNS`.
        out_dir: workspace folder to create.
        rasters: raster files and/or folders (:func:`~masksdm.data.rasters.find_rasters`).
        background: number of background points.
        background_method: ``"uniform"``, ``"target-group"`` (cells of all the records) or
            ``"bias"`` (probabilities from the ``bias`` raster).
        bias: a raster on the rasters' grid whose values weigh the background draw.
        buffer_km: no background point within this distance of a record (exclusion buffers).
        max_uncertainty_m, centroids, min_records: cleaning (see ``clean_occurrences``).
        species_column, lon_column, lat_column, sep: how to read a CSV that does not use GBIF's names.
        groups, add_location, block_size, test_fraction, val_fraction, stratify, force, progress:
            as :func:`prepare_workspace`.
    """
    from masksdm.data.background import sample_background
    from masksdm.data.grid import RasterStack
    from masksdm.data.occurrences import clean_occurrences, read_occurrences

    out_dir = Path(out_dir)
    if (out_dir / "workspace.json").exists() and not force:
        raise OutputExistsError(f"a workspace already exists in '{out_dir}': pass --force to rebuild it")
    if isinstance(occurrences, pd.DataFrame):
        records, source = occurrences, "occurrence records (a table)"
    else:
        records = read_occurrences(occurrences, species_column=species_column, lon_column=lon_column,
                                   lat_column=lat_column, sep=sep)
        source = f"occurrence records from {Path(occurrences).name}"
    with RasterStack(rasters) as stack:
        valid = stack.valid_cells()  # one read of the grid for cleaning and background
        cleaned = clean_occurrences(records, stack, max_uncertainty_m=max_uncertainty_m, centroids=centroids,
                                    min_records=min_records, valid=valid)
        presences = cleaned.presences
        lon_p, lat_p = presences["lon"].to_numpy(), presences["lat"].to_numpy()
        points = sample_background(
            stack, background, method=background_method, seed=seed, group=(lon_p, lat_p), bias=bias,
            exclude=(lon_p, lat_p) if buffer_km > 0 else None, buffer_km=buffer_km, valid=valid,
        )
        cells = np.unique(presences["cell"].to_numpy())
        site_lon, site_lat = stack.cell_lonlat(cells)
        paths = dict(stack.paths)
    sites = pd.DataFrame({"plot_id": [f"site-{c}" for c in cells], "lon": site_lon, "lat": site_lat,
                          BACKGROUND: False})
    back = pd.DataFrame({"plot_id": [f"background-{c}" for c in points["cell"]], "lon": points["lon"].to_numpy(),
                         "lat": points["lat"].to_numpy(), BACKGROUND: True})
    occ = pd.DataFrame({"plot_id": "site-" + presences["cell"].astype(str), "species": presences["species"]})
    data = PlotData(plots=pd.concat([sites, back], ignore_index=True), occurrences=occ.drop_duplicates(),
                    source=source, info_columns=(BACKGROUND,))
    report = cleaned.report
    meta = {"presence_only": {
        "records": int(len(records)), "kept": int(len(presences)), "sites": int(len(cells)),
        "absence_records": int(len(cleaned.absences)),
        "cleaning": {str(f): int(n) for f, n in zip(report["flag"], report["records"], strict=True)},
        "background": {"method": background_method, "n": int(len(points)), "seed": seed, "buffer_km": buffer_km,
                       "bias": str(Path(bias).resolve()) if bias is not None else None},
    }}
    ws = prepare_workspace(data, out_dir, rasters=paths, groups=groups, add_location=add_location,
                           block_size=block_size, test_fraction=test_fraction, val_fraction=val_fraction,
                           seed=seed, stratify=stratify, force=force, progress=progress, meta=meta)
    if len(cleaned.absences):
        write_parquet(ws.path / "absence_records.parquet", cleaned.absences)
    return ws
