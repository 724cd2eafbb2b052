"""Background points (pseudo-absences) for presence-only data, drawn on a raster stack's grid.

A presence-only model (MaxEnt and its kin) contrasts the presences with a sample of the
environment available to the species: **background points**, one per grid cell, drawn without
replacement among the cells where every predictor has a value. :func:`sample_background` draws
them in one of three ways (:data:`METHODS`):

* ``"uniform"``: every valid cell equally likely (Phillips, Anderson & Schapire 2006, Ecol Model
  190:231).
* ``"target-group"``: cells in proportion to the records of a *target group* (e.g. all species
  recorded with the same methods) they hold, so the background carries the same sampling bias as
  the presences (Phillips et al. 2009, Ecol Appl 19:181). It can only draw cells holding group
  records.
* ``"bias"``: cells in proportion to a bias raster on the stack's grid (e.g. a kernel density of
  records, or of distance to roads), the ``biasfile`` of MaxEnt (Phillips et al. 2009).

Cells within ``buffer_km`` of a presence can be removed first (exclusion buffers: background
points are then unlikely to be unrecorded presences; VanDerWal et al. 2009, Ecol Model 220:589).
Distances are great-circle (haversine) distances between cell centres and presences.

Each point is a cell centre in WGS84 degrees; the same ``seed`` gives the same points.

Example:
    >>> import tempfile
    >>> import rasterio
    >>> from affine import Affine
    >>> tmp = tempfile.TemporaryDirectory()
    >>> values = np.arange(12, dtype="float32").reshape(1, 3, 4)
    >>> values[0, 0, :2] = np.nan  # two "sea" cells
    >>> with rasterio.open(Path(tmp.name) / "bio_1.tif", "w", driver="GTiff", height=3, width=4,
    ...                    count=1, dtype="float32", nodata=np.nan, crs="EPSG:4326",
    ...                    transform=Affine(1.0, 0.0, 5.0, 0.0, -1.0, 47.0)) as dst:
    ...     dst.write(values)
    >>> with RasterStack(tmp.name) as stack:
    ...     points = sample_background(stack, 3, seed=1)
    >>> list(points.columns), len(points), bool(points["cell"].isin([0, 1]).any())
    (['lon', 'lat', 'cell'], 3, False)
    >>> tmp.cleanup()
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd

from masksdm.data.grid import RasterStack
from masksdm.data.rasters import nodata_mask, open_raster
from masksdm.errors import DataError, RasterError

__all__ = ["EARTH_RADIUS_KM", "METHODS", "sample_background"]

logger = logging.getLogger(__name__)

#: Ways of drawing background cells (see the module docstring).
METHODS: tuple[str, ...] = ("uniform", "target-group", "bias")

#: Mean Earth radius (IUGG), for haversine distances.
EARTH_RADIUS_KM = 6371.0088

_QUERY_CHUNK = 1_000_000  # cells per BallTree query, to bound memory on continental grids

#: WGS84 points: a (lon, lat) pair of arrays, or a frame with ``lon`` and ``lat`` columns.
Points: TypeAlias = tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray] | pd.DataFrame


def _lonlat(points: Points, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Finite (lon, lat) float64 arrays of ``points``: a (lon, lat) pair, or a frame with ``lon``
    and ``lat`` columns."""
    if isinstance(points, pd.DataFrame):
        missing = [c for c in ("lon", "lat") if c not in points.columns]
        if missing:
            raise DataError(
                f"{what} table has no column(s) {missing} (columns: {list(points.columns)}): "
                "pass a frame with 'lon' and 'lat' in WGS84 degrees, or a (lon, lat) pair of arrays"
            )
        lon, lat = points["lon"], points["lat"]
    else:
        try:
            lon, lat = points
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{what} must be a (lon, lat) pair of arrays in WGS84 degrees: got {type(points).__name__}"
            ) from exc
    lon_arr = np.asarray(lon, dtype=np.float64).ravel()
    lat_arr = np.asarray(lat, dtype=np.float64).ravel()
    if lon_arr.shape != lat_arr.shape:
        raise DataError(
            f"{what}: {len(lon_arr)} longitudes but {len(lat_arr)} latitudes: pass one of each per point"
        )
    keep = np.isfinite(lon_arr) & np.isfinite(lat_arr)
    if not keep.all():
        logger.warning("%s: %d of %d points without finite coordinates are ignored",
                       what, int((~keep).sum()), len(keep))
    return lon_arr[keep], lat_arr[keep]


def _valid_mask(stack: RasterStack, valid: np.ndarray | None) -> np.ndarray:
    n_cells = stack.height * stack.width
    if valid is None:
        return stack.valid_cells()
    mask = np.asarray(valid)
    if mask.dtype != bool or mask.size != n_cells:
        raise DataError(
            f"valid must be a boolean array of the {stack.height} x {stack.width} = {n_cells} grid "
            f"cells (row-major, as RasterStack.valid_cells() returns), got dtype {mask.dtype} and "
            f"shape {mask.shape}"
        )
    return mask.ravel()


def _outside_buffers(
    stack: RasterStack, cells: np.ndarray, exclude: Points, buffer_km: float
) -> np.ndarray:
    """Boolean mask of ``cells`` whose centre is farther than ``buffer_km`` from every presence."""
    from sklearn.neighbors import BallTree

    lon, lat = _lonlat(exclude, "exclude")
    if len(lon) == 0:
        return np.ones(len(cells), dtype=bool)
    tree = BallTree(np.radians(np.column_stack([lat, lon])), metric="haversine")
    radius = buffer_km / EARTH_RADIUS_KM
    keep = np.zeros(len(cells), dtype=bool)
    for start in range(0, len(cells), _QUERY_CHUNK):
        part = cells[start : start + _QUERY_CHUNK]
        c_lon, c_lat = stack.cell_lonlat(part)
        finite = np.isfinite(c_lon) & np.isfinite(c_lat)  # a cell the CRS cannot place is dropped
        counts = np.zeros(len(part), dtype=np.int64)
        if finite.any():
            query = np.radians(np.column_stack([c_lat[finite], c_lon[finite]]))
            counts[finite] = tree.query_radius(query, r=radius, count_only=True)
        keep[start : start + _QUERY_CHUNK] = finite & (counts == 0)
    return keep


def _group_weights(stack: RasterStack, group: Points) -> np.ndarray:
    """(height * width,) number of target-group records in each cell."""
    lon, lat = _lonlat(group, "group")
    cells = stack.cell_index(lon, lat)
    n_out = int((cells < 0).sum())
    if n_out:
        logger.info("target-group background: %d of %d group records fall outside the grid (%s)",
                    n_out, len(cells), stack.describe())
    return np.bincount(cells[cells >= 0], minlength=stack.height * stack.width).astype(np.float64)


def _bias_weights(stack: RasterStack, bias: str | Path) -> np.ndarray:
    """(height * width,) bias raster values; nodata, NaN and negative values read as 0."""
    path = Path(bias)
    with open_raster(path) as src:
        if not stack.on_grid(src):
            t = stack.transform
            left, top = t.c, t.f
            right, bottom = left + stack.width * t.a, top + stack.height * t.e
            raise RasterError(
                f"bias raster '{path}' ({src.crs}, {src.width} x {src.height} cells of "
                f"{abs(src.transform.a):.6g} x {abs(src.transform.e):.6g}) is not on the stack's grid "
                f"({stack.describe()}): warp it onto that grid first, e.g. `gdalwarp -t_srs "
                f"'{stack.crs}' -te {min(left, right):.10g} {min(top, bottom):.10g} "
                f"{max(left, right):.10g} {max(top, bottom):.10g} -tr {abs(t.a):.10g} {abs(t.e):.10g} "
                f"'{path}' bias_on_grid.tif`, or rioxarray's da.rio.reproject_match(template)"
            )
        weights = np.zeros(stack.height * stack.width, dtype=np.float64)
        scale, offset = src.scales[0] or 1.0, src.offsets[0] or 0.0
        for window in stack.windows():
            raw = src.read(1, window=window)
            invalid = nodata_mask(raw, src.nodata) | (src.read_masks(1, window=window) == 0)
            values = raw.astype(np.float64) * scale + offset
            values[invalid | ~np.isfinite(values) | (values < 0)] = 0.0
            start = int(window.row_off) * stack.width
            weights[start : start + values.size] = values.ravel()
    return weights


def _draw(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` distinct items, with probability proportional to ``weights`` (all > 0)."""
    # Efraimidis & Spirakis (2006, Inf Process Lett 97:181) keys: the n largest -E/w, E ~ Exp(1),
    # are a weighted draw without replacement (successive sampling), in one O(N) pass.
    keys = -rng.exponential(size=len(weights)) / weights
    if n >= len(weights):
        return np.arange(len(weights))
    return np.argpartition(keys, len(weights) - n)[len(weights) - n :]


def sample_background(
    stack: RasterStack,
    n: int,
    *,
    method: str = "uniform",
    seed: int = 42,
    group: Points | None = None,
    bias: str | Path | None = None,
    exclude: Points | None = None,
    buffer_km: float = 0.0,
    valid: np.ndarray | None = None,
) -> pd.DataFrame:
    """Draw ``n`` background cells of ``stack``'s grid, without replacement.

    Args:
        stack: the predictor rasters; background cells are cells of its template grid.
        n: number of background points.
        method: one of :data:`METHODS` (see the module docstring).
        seed: seed of :func:`numpy.random.default_rng`; the same seed gives the same points.
        group: for ``"target-group"``: (lon, lat) arrays (or a frame with ``lon``/``lat``) of
            every record of the target group, WGS84 degrees.
        bias: for ``"bias"``: path of a raster on the stack's grid (same CRS, transform, width
            and height); cells are drawn in proportion to its values (nodata, NaN and negative
            values count as 0).
        exclude: (lon, lat) of the presences (or a frame with ``lon``/``lat``), for the buffers.
        buffer_km: cells whose centre lies within this great-circle distance of a presence in
            ``exclude`` are never drawn; 0: no buffer.
        valid: (height * width,) bool of the cells that may be drawn; default
            :meth:`RasterStack.valid_cells` (every raster has a value).

    Returns:
        ``lon``, ``lat`` (cell centres, WGS84 degrees) and ``cell`` (int64 ``row * width +
        col``), one row per distinct cell, sorted by ``cell``. ``n`` rows, except for
        ``"target-group"`` when fewer than ``n`` cells hold group records: then every such cell,
        with a WARNING.

    Raises:
        DataError: ``n < 1``, an unknown ``method``, ``group``/``bias`` missing for their method,
            a negative ``buffer_km`` or one without ``exclude``, a bad ``valid`` mask, fewer than
            ``n`` cells to draw from (``"uniform"``, ``"bias"``), a bias raster that is zero at
            every available cell, or no group record on an available cell.
        RasterError: the bias raster cannot be read or is not on the stack's grid.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise DataError(f"the number of background points must be a positive integer, got {n=}")
    n = int(n)
    if method not in METHODS:
        raise DataError(f"unknown background method={method!r}: use one of {', '.join(METHODS)}")
    if method == "target-group" and group is None:
        raise DataError(
            "method='target-group' needs group=(lon, lat) of the target group's records (e.g. every "
            "record of the species surveyed the same way): pass group, or use method='uniform'"
        )
    if method == "bias" and bias is None:
        raise DataError(
            "method='bias' needs bias=<path of a raster on the stack's grid> (e.g. a density of "
            "records): pass bias, or use method='uniform'"
        )
    if not np.isfinite(buffer_km) or buffer_km < 0:
        raise DataError(f"buffer_km must be a distance >= 0 in km, got {buffer_km=}")
    if buffer_km > 0 and exclude is None:
        raise DataError(
            f"buffer_km={buffer_km} needs exclude=(lon, lat) of the presences to buffer: pass "
            "exclude, or buffer_km=0"
        )

    mask = _valid_mask(stack, valid)
    cells = np.flatnonzero(mask).astype(np.int64)
    n_valid = len(cells)
    where = f"{n_valid} valid cells on the {stack.height} x {stack.width} grid"
    if buffer_km > 0 and exclude is not None:
        cells = cells[_outside_buffers(stack, cells, exclude, buffer_km)]
        where += f", {n_valid - len(cells)} of them within buffer_km={buffer_km:g} of a presence"

    weights: np.ndarray | None = None
    if method == "target-group":
        assert group is not None
        weights = _group_weights(stack, group)[cells]
    elif method == "bias":
        assert bias is not None
        weights = _bias_weights(stack, bias)[cells]
    if weights is not None:
        positive = weights > 0
        cells, weights = cells[positive], weights[positive]

    if method == "target-group" and len(cells) == 0:
        raise DataError(
            f"no target-group record falls on a cell that may be drawn ({where}): check the group's "
            "coordinates (WGS84 lon, lat) and the rasters' extent, or use method='uniform'"
        )
    if method == "bias" and len(cells) == 0:
        raise DataError(
            f"bias raster '{bias}' is zero, negative or nodata at every cell that may be drawn "
            f"({where}): use a bias raster with positive values over the study area"
        )
    if method == "target-group" and n > len(cells):
        logger.warning(
            "target-group background: %d points asked for, but the group's records fall in only %d "
            "cells that may be drawn (%s): returning those %d (a target-group background is limited "
            "by the records; use method='bias' or 'uniform' for more)", n, len(cells), where, len(cells),
        )
        n = len(cells)
    elif n > len(cells):
        what = "with a positive bias value" if method == "bias" else "to draw from"
        raise DataError(
            f"{n} background points asked for, but only {len(cells)} cells {what} remain ({where}): "
            "ask for fewer points, use a smaller buffer_km, or rasters covering a larger area"
        )

    rng = np.random.default_rng(seed)
    if weights is None:
        chosen = rng.choice(len(cells), size=n, replace=False)
    else:
        chosen = _draw(rng, weights, n)
    drawn = np.sort(cells[chosen])
    lon, lat = stack.cell_lonlat(drawn)
    return pd.DataFrame({"lon": lon, "lat": lat, "cell": drawn.astype(np.int64)})
