"""Predictor rasters read on one template grid, block by block, and GeoTIFF outputs on that grid.

To predict a map, every predictor must be known at the same cells. :class:`RasterStack` takes the
predictor rasters found by :func:`masksdm.data.rasters.find_rasters` (one single-band file per
predictor, file stem = predictor name; or one band per predictor of a multiband raster, named by
its band description; or all the bands of an embedding raster, one predictor) and reads them on
one **template grid**: the CRS, affine
transform, width and height of the raster passed as ``like``; by default of ``bio_1``, else of the
first raster found. A raster already on that grid is read as is; any other (another CRS,
resolution or extent) is read through a GDAL warped VRT (:class:`rasterio.vrt.WarpedVRT`) onto
the template grid, nearest-neighbour unless told otherwise (with gdalwarp's default 1/8-pixel
approximation of the transformation: a cell centre within 1/8 pixel of a source pixel edge may
take the neighbour's value). Reads go window by window (:meth:`RasterStack.windows`), so a
continent at 1 km never has to fit in memory.

File formats are those of :mod:`masksdm.data.rasters`: GeoTIFF, ESRI ASCII grids (CRS in a ``.prj``),
R raster ``.grd``/``.gri``, VRT, ERDAS ``.img`` and netCDF (one variable). Each raster must
declare its CRS; nodata, masked cells and cells outside a raster's extent become NaN; a
scale/offset declared in the file is applied.

``Longitude`` and ``Latitude`` are not read from rasters: they come from the template grid (cell
centres, in WGS84 degrees, reprojected with pyproj when the grid's CRS is not WGS84).

Outputs (:func:`write_geotiff`, the streaming :class:`GeoTIFFWriter`) are float32 GeoTIFFs on the
template grid (tiled 256 x 256, deflate), one named band per output, NaN as nodata, written
atomically and never overwritten without ``force``.

Example:
    >>> import tempfile
    >>> from affine import Affine
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> grid = dict(crs="EPSG:4326", transform=Affine(1.0, 0.0, 5.0, 0.0, -1.0, 47.0))
    >>> with rasterio.open(folder / "bio_1.tif", "w", driver="GTiff", height=2, width=3,
    ...                    count=1, dtype="float32", **grid) as dst:
    ...     dst.write(np.arange(6, dtype="float32").reshape(1, 2, 3))
    >>> with RasterStack(folder) as stack:
    ...     x = stack.read(["bio_1", "Longitude", "Latitude"])
    ...     path = write_geotiff(folder / "map.tif", x.T.reshape(3, *stack.shape), stack=stack,
    ...                          descriptions=["bio_1", "lon", "lat"])
    >>> x[:, 0], x[:, 1], x[:, 2]
    (array([0., 1., 2., 3., 4., 5.], dtype=float32), array([5.5, 6.5, 7.5, 5.5, 6.5, 7.5], dtype=float32), array([46.5, 46.5, 46.5, 45.5, 45.5, 45.5], dtype=float32))
    >>> with rasterio.open(path) as out:
    ...     out.descriptions, out.transform == grid["transform"]
    (('bio_1', 'lon', 'lat'), True)
    >>> tmp.cleanup()
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
import rasterio.warp
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.enums import MaskFlags
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from masksdm._io import atomic_path, check_writable
from masksdm.data.rasters import Sources, find_rasters, nodata_mask, open_raster, predictor_bands
from masksdm.errors import ConfigError, RasterError

__all__ = ["COMPUTED_PREDICTORS", "GeoTIFFWriter", "RasterStack", "apply_transform", "gtiff_profile", "write_geotiff"]

#: Predictors computed from the template grid instead of read from a raster.
COMPUTED_PREDICTORS: tuple[str, ...] = ("Longitude", "Latitude")

_RESAMPLING = {method.name: method for method in rasterio.warp.SUPPORTED_RESAMPLING}
_WGS84 = CRS.from_epsg(4326)
_BLOCK = 256  # output tile size; strips of 256 rows write whole tiles


@dataclass
class _Layer:
    """One predictor: the open file, when off the template grid its warped view, and its bands."""

    path: Path
    src: Any  # rasterio DatasetReader
    vrt: WarpedVRT | None
    bands: tuple[int, ...]  # 1-based: one band, or every band of an embedding raster
    scale: np.ndarray  # (len(bands),) float32
    offset: np.ndarray


def _require_crs(src: Any, path: Path) -> None:
    if src.crs is None:
        raise RasterError(
            f"raster '{path}' has no CRS: assign one, e.g. rioxarray's "
            "da.rio.write_crs('EPSG:4326') or `gdal_edit.py -a_srs EPSG:4326`, or put a .prj "
            "file next to an .asc grid"
        )


def _degrees(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 ``x, y`` as float64 lon, lat: longitudes wrapped into -180..180 (0..360 grids: the
    plots' longitudes are -180..180), both NaN where not finite or beyond the poles."""
    lon, lat = np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(lon) & np.isfinite(lat)) | (np.abs(lat) > 90.0)
    lon[bad] = lat[bad] = np.nan
    far = np.abs(lon) > 180.0
    lon[far] = np.mod(lon[far] + 180.0, 360.0) - 180.0
    return lon, lat


def apply_transform(t: Affine, col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of (col, row) pixel coordinates (``t * (col, row)`` warns with affine >= 3.1)."""
    return t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f


def gtiff_profile(
    grid: tuple[Any, Affine, int, int], count: int, dtype: str, nodata: float | None
) -> dict[str, Any]:
    """Profile of a tiled, deflated GeoTIFF on ``grid`` = (crs, transform, width, height)."""
    crs, transform, width, height = grid
    if count < 1:
        raise ValueError(f"a GeoTIFF needs at least one band, got {count=}")
    kind = np.dtype(dtype).kind
    if nodata is not None and np.isnan(nodata) and kind != "f":
        raise ConfigError(f"NaN cannot be the nodata of {dtype=}: pass an integer nodata or None")
    return {
        "driver": "GTiff", "crs": crs, "transform": transform, "width": width, "height": height,
        "count": count, "dtype": np.dtype(dtype).name, "nodata": nodata,
        "tiled": True, "blockxsize": _BLOCK, "blockysize": _BLOCK, "compress": "deflate",
        "predictor": 3 if kind == "f" else 2, "BIGTIFF": "IF_SAFER",
    }  # fmt: skip


class RasterStack:
    """Predictor rasters read on one template grid (the grid of ``like``).

    Args:
        sources: raster files and/or folders, as for :func:`masksdm.data.rasters.find_rasters`.
        like: a raster whose grid (CRS, transform, width, height) the stack reads on; default:
            the raster of ``bio_1`` if present, else the first raster found.
        resampling: how rasters off the template grid are warped onto it, by
            :class:`rasterio.enums.Resampling` name (``"nearest"``, ``"bilinear"``, ...).

    Attributes:
        names: predictor names (file stems, band descriptions) in
            :func:`~masksdm.data.rasters.find_rasters` order;
            ``Longitude`` and ``Latitude`` can be read too (:data:`COMPUTED_PREDICTORS`).
        paths: ``{name: raster path}``.
        template: the raster that defines the grid.
        crs, transform, width, height: the template grid; ``shape`` is ``(height, width)``.

    Raises:
        ConfigError: unknown ``resampling``.
        DataError: no raster found (:class:`~masksdm.errors.RasterError`: a raster cannot be
            read or has no CRS).
    """

    def __init__(
        self, sources: Sources, *, like: str | Path | None = None, resampling: str = "nearest"
    ) -> None:
        if resampling not in _RESAMPLING:
            raise ConfigError(
                f"unknown resampling={resampling!r}: use one of {', '.join(_RESAMPLING)}"
            )
        self._resampling = _RESAMPLING[resampling]
        self.paths = find_rasters(sources)
        self.names = list(self.paths)
        if like is None:
            self.template = self.paths.get("bio_1", next(iter(self.paths.values())))
        elif Path(like).is_file():
            self.template = Path(like)
        else:
            raise RasterError(f"template raster like='{like}' does not exist: pass a raster file")
        with open_raster(self.template) as src:
            _require_crs(src, self.template)
            self.crs, self.transform = src.crs, src.transform
            self.width, self.height = int(src.width), int(src.height)
        crs = CRS.from_user_input(self.crs)
        self._to_wgs84 = (
            None if crs == _WGS84 else Transformer.from_crs(crs, _WGS84, always_xy=True)
        )
        self._layers: dict[str, _Layer] = {}
        try:
            for name, path in self.paths.items():
                self._layers[name] = self._open_layer(name, path)
        except BaseException:
            self.close()
            raise

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def __repr__(self) -> str:
        return f"RasterStack({len(self.names)} rasters on a {self.height}x{self.width} grid, {self.crs})"

    @property
    def off_grid(self) -> dict[str, str]:
        """Rasters not on the template grid (read warped onto it): name -> their own grid."""
        return {
            name: f"{layer.src.crs}, {layer.src.width} x {layer.src.height} cells of "
            f"{abs(layer.src.transform.a):.6g} x {abs(layer.src.transform.e):.6g}"
            for name, layer in self._layers.items()
            if layer.vrt is not None
        }

    def describe(self) -> str:
        """The template grid in words."""
        return (
            f"{self.crs}, {self.width} x {self.height} cells of {abs(self.transform.a):.6g} x "
            f"{abs(self.transform.e):.6g} (from '{self.template.name}')"
        )

    def on_grid(self, src: Any) -> bool:
        """Same CRS and the grid corners agree to 1/1000 pixel."""
        if (src.width, src.height) != (self.width, self.height) or src.crs != self.crs:
            return False
        col = np.array([0, self.width, 0, self.width], dtype=np.float64)
        row = np.array([0, 0, self.height, self.height], dtype=np.float64)
        pixel = min(abs(self.transform.a), abs(self.transform.e)) or 1.0
        dx, dy = np.subtract(apply_transform(src.transform, col, row), apply_transform(self.transform, col, row))
        return bool(np.all(np.hypot(dx, dy) < 1e-3 * pixel))

    def _open_layer(self, name: str, path: Path) -> _Layer:
        src = open_raster(path)
        try:
            _require_crs(src, path)
            bands = predictor_bands(src, path, name)
            vrt = None
            if not self.on_grid(src):
                if len(bands) == 1 and src.count > 1:
                    # GDAL's warper ignores per-band nodata of a multiband source: warp a
                    # one-band view of the predictor's band (it keeps nodata, scale and offset)
                    single = rasterio.open(f"vrt://{src.name}?bands={bands[0]}")
                    src.close()
                    src, bands = single, (1,)
                # float32 working type with NaN nodata: source nodata, masks and cells outside
                # the source all come out NaN.
                vrt = WarpedVRT(
                    src, crs=self.crs, transform=self.transform, width=self.width,
                    height=self.height, resampling=self._resampling, dtype="float32",
                    nodata=np.nan,
                )  # fmt: skip
        except BaseException:
            src.close()
            raise
        # one band: its own scale/offset; an embedding raster: band 1's, for every band (as before)
        first = bands[0] - 1 if len(bands) == 1 else 0
        scale = np.float32(1.0 if src.scales[first] is None else src.scales[first])
        offset = np.float32(src.offsets[first] or 0.0)
        return _Layer(path, src, vrt, bands, np.full(len(bands), scale), np.full(len(bands), offset))

    def close(self) -> None:
        """Close every raster (idempotent)."""
        for layer in self._layers.values():
            if layer.vrt is not None:
                layer.vrt.close()
            layer.src.close()
        self._layers = {}

    def __enter__(self) -> RasterStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def profile(
        self, *, count: int, dtype: str = "float32", nodata: float | None = float("nan")
    ) -> dict[str, Any]:
        """Rasterio profile of a ``count``-band GeoTIFF on this grid (tiled, deflate)."""
        return gtiff_profile(
            (self.crs, self.transform, self.width, self.height), count, dtype, nodata
        )

    def windows(self, block_rows: int = _BLOCK) -> Iterator[Window]:
        """Full-width strips of ``block_rows`` rows (the last one shorter) covering the grid once.

        Keep ``block_rows`` a multiple of 256 when writing GeoTIFFs: strips then hold whole tiles.
        """
        if block_rows < 1:
            raise ValueError(f"block_rows must be positive, got {block_rows=}")
        return (
            Window(0, row, self.width, min(block_rows, self.height - row))
            for row in range(0, self.height, block_rows)
        )

    def _window(self, window: Window | None) -> Window:
        if window is None:
            return Window(0, 0, self.width, self.height)
        c, r, w, h = (window.col_off, window.row_off, window.width, window.height)
        whole = all(v == int(v) for v in (c, r, w, h))
        if not whole or min(c, r) < 0 or min(w, h) < 1 or c + w > self.width or r + h > self.height:
            raise ValueError(
                f"window {window} is not a block of whole cells inside the {self.height} x "
                f"{self.width} grid: use RasterStack.windows()"
            )
        return Window(int(c), int(r), int(w), int(h))

    def lonlat(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitude and latitude of the cell centres of ``window`` (default: the grid).

        Returns:
            float64 ``(n_cells,)`` each, row-major; longitudes in -180..180; NaN where the grid's
            CRS cannot be transformed (e.g. the corners of a Mollweide grid) and beyond the poles
            (a geographic grid reaching past latitude +-90).
        """
        win = self._window(window)
        rows = win.row_off + 0.5 + np.arange(win.height)
        cols = win.col_off + 0.5 + np.arange(win.width)
        col, row = (a.ravel() for a in np.meshgrid(cols, rows))
        x, y = apply_transform(self.transform, col, row)
        if self._to_wgs84 is not None:
            x, y = self._to_wgs84.transform(x, y, errcheck=False)
        return _degrees(x, y)

    def cell_index(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """The template cell holding each WGS84 point: int64 ``row * width + col``, -1 for a point
        outside the grid (or one the grid's CRS cannot hold)."""
        x = np.asarray(lon, dtype=np.float64).ravel()
        y = np.asarray(lat, dtype=np.float64).ravel()
        crs = CRS.from_user_input(self.crs)
        if crs != _WGS84:
            x, y = Transformer.from_crs(_WGS84, crs, always_xy=True).transform(x, y, errcheck=False)
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        with np.errstate(invalid="ignore"):  # NaN and infinite points are outside
            if crs == _WGS84 and self.transform.c >= 0 and self.transform.c + self.width * self.transform.a > 180:
                x = np.mod(x, 360.0)  # a 0..360 grid
            col, row = apply_transform(~self.transform, x, y)
            inside = np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        cell = np.full(len(x), -1, dtype=np.int64)
        cell[inside] = np.floor(row[inside]).astype(np.int64) * self.width + np.floor(col[inside]).astype(np.int64)
        return cell

    def cell_lonlat(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitude and latitude of the centres of ``cells`` (``row * width + col``)."""
        cells = np.asarray(cells, dtype=np.int64).ravel()
        row, col = np.divmod(cells, self.width)
        x, y = apply_transform(self.transform, col + 0.5, row + 0.5)
        if self._to_wgs84 is not None:
            x, y = self._to_wgs84.transform(x, y, errcheck=False)
        return _degrees(x, y)

    def valid_cells(self, names: Sequence[str] | None = None, *, block_rows: int = _BLOCK) -> np.ndarray:
        """(height * width,) bool, row-major: the cells where every predictor in ``names``
        (default: every raster of the stack) has a value, read strip by strip."""
        names = [n for n in (self.names if names is None else names) if n not in COMPUTED_PREDICTORS]
        valid = np.ones(self.height * self.width, dtype=bool)
        for window in self.windows(block_rows):
            start = int(window.row_off) * self.width
            stop = start + int(window.height) * self.width
            if names:
                valid[start:stop] = np.isfinite(self.read(names, window)).all(axis=1)
        return valid

    @property
    def widths(self) -> dict[str, int]:
        """Columns of each predictor (1, or an embedding's width for an embedding raster)."""
        return {name: len(layer.bands) for name, layer in self._layers.items()}

    def _read_layer(self, layer: _Layer, window: Window) -> np.ndarray:
        """(cells, bands) float32 values of one predictor (one band, or every band of an embedding)."""
        bands, src = list(layer.bands), layer.src
        try:
            if layer.vrt is not None:
                values = layer.vrt.read(bands, window=window)
            else:
                raw = src.read(bands, window=window)
                invalid = nodata_mask(raw, src.nodatavals[bands[0] - 1])  # an embedding: band 1's
                flags = src.mask_flag_enums[bands[0] - 1]
                if not (MaskFlags.all_valid in flags or MaskFlags.nodata in flags):
                    invalid |= src.read_masks(bands, window=window) == 0
                with np.errstate(over="ignore"):  # a float64 value beyond float32's range is missing
                    values = raw.astype(np.float32)
                values[invalid | np.isinf(values)] = np.nan  # as an infinite one: MaskSDM masks them
        except rasterio.errors.RasterioError as exc:
            raise RasterError(
                f"cannot read the pixels of raster '{layer.path}' ({exc}): the file is "
                "truncated or incomplete (e.g. a .grd without its .gri); write it again"
            ) from exc
        if (layer.scale != 1.0).any() or (layer.offset != 0.0).any():
            values = values * layer.scale[:, None, None] + layer.offset[:, None, None]
        return values.reshape(len(values), -1).T

    def read(self, names: str | Sequence[str], window: Window | None = None) -> np.ndarray:
        """Predictor values of the cells of ``window`` (default: the whole grid).

        Args:
            names: predictor names (file stems, ``Longitude``, ``Latitude``), or one name.
            window: a block of the grid, e.g. from :meth:`windows`.

        Returns:
            float32 ``(n_cells, columns)``, cells in row-major order, one column per name (all
            the bands of a multiband embedding raster, see :attr:`widths`); NaN for nodata,
            masked cells and cells outside a raster. ``Longitude``/``Latitude`` always come from
            the grid (:meth:`lonlat`), even if a raster has that name.

        Raises:
            RasterError: a name has no raster in the stack, or a raster cannot be read.
        """
        names = [names] if isinstance(names, str) else list(names)
        missing = [n for n in names if n not in self._layers and n not in COMPUTED_PREDICTORS]
        if missing:
            raise RasterError(
                f"no raster for predictor(s) {missing} in the stack (available: "
                f"{self.names + list(COMPUTED_PREDICTORS)}): add '<name>.tif' files to the "
                "raster folders or predict with the available predictors only"
            )
        win = self._window(window)
        widths = [1 if n in COMPUTED_PREDICTORS else len(self._layers[n].bands) for n in names]
        out = np.empty((win.height * win.width, sum(widths)), dtype=np.float32)
        lonlat = self.lonlat(win) if set(names) & set(COMPUTED_PREDICTORS) else None
        start = 0
        for name, width in zip(names, widths, strict=True):
            if name in COMPUTED_PREDICTORS:
                assert lonlat is not None
                out[:, start] = lonlat[COMPUTED_PREDICTORS.index(name)]
            else:
                out[:, start : start + width] = self._read_layer(self._layers[name], win)
            start += width
        return out


def _as_bands(bands: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    arr = np.asarray(bands)
    if arr.ndim != 3 or arr.shape[1:] != shape:
        raise ValueError(
            f"{what} must be (n_bands, {shape[0]}, {shape[1]}), got shape {arr.shape}: reshape "
            "(n_cells, n_bands) values with values.T.reshape(n_bands, height, width)"
        )
    return arr.astype(np.float32, copy=False)


def _describe(dst: Any, descriptions: Sequence[str] | None) -> None:
    for i, text in enumerate(descriptions or (), start=1):
        dst.set_band_description(i, str(text))


def write_geotiff(
    path: str | Path,
    bands: np.ndarray,
    *,
    stack: RasterStack | None = None,
    profile: dict[str, Any] | None = None,
    descriptions: Sequence[str] | None = None,
    force: bool = False,
) -> Path:
    """Write ``bands`` as a float32 multiband GeoTIFF, atomically.

    Args:
        path: output file.
        bands: ``(n_bands, height, width)`` values on the grid.
        stack: georeference like this stack's grid; or
        profile: a rasterio profile whose ``crs``, ``transform``, ``width``, ``height`` are used.
        descriptions: band names (shown by QGIS, rioxarray's ``long_name``), one per band.
        force: overwrite an existing ``path``.

    Returns:
        ``path``.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
        ValueError: neither or both of ``stack``/``profile``, or bands/descriptions that do not
            fit the grid.
    """
    if (stack is None) == (profile is None):
        raise ValueError("pass exactly one of stack= or profile= to georeference the GeoTIFF")
    if stack is not None:
        grid = (stack.crs, stack.transform, stack.width, stack.height)
    else:
        assert profile is not None
        grid = (profile.get("crs"), profile["transform"], profile["width"], profile["height"])
    arr = _as_bands(bands, (int(grid[3]), int(grid[2])), "bands")
    if descriptions is not None and len(descriptions) != len(arr):
        raise ValueError(
            f"{len(descriptions)} descriptions for {len(arr)} bands: pass one per band"
        )
    options = gtiff_profile(grid, len(arr), "float32", np.nan)
    with atomic_path(path, force=force) as tmp, rasterio.open(tmp, "w", **options) as dst:
        dst.write(arr)
        _describe(dst, descriptions)
    return Path(path)


class GeoTIFFWriter:
    """Stream a float32 multiband GeoTIFF on a stack's grid, block by block.

    Use it as a context manager: the file is written to a temporary file and renamed into place
    when the block succeeds; on an exception it is removed, so no half-written map is left.
    Cells never written are NaN.

    Args:
        path: output file.
        stack: the grid.
        descriptions: band names, one per band.
        force: overwrite an existing ``path``.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
    """

    def __init__(
        self,
        path: str | Path,
        stack: RasterStack,
        *,
        descriptions: Sequence[str],
        force: bool = False,
    ) -> None:
        self.path = check_writable(path, force=force)
        self.descriptions = [str(d) for d in descriptions]
        self._profile = stack.profile(count=len(self.descriptions))
        self._force = force
        self._exit: ExitStack | None = None
        self._dst: Any = None

    def __enter__(self) -> GeoTIFFWriter:
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path, force=self._force))
            dst = stack.enter_context(rasterio.open(tmp, "w", **self._profile))
            _describe(dst, self.descriptions)
            self._exit, self._dst = stack.pop_all(), dst
        return self

    def __exit__(self, *exc_info: Any) -> None:
        exit_stack, self._exit, self._dst = self._exit, None, None
        if exit_stack is not None:  # closes the dataset, then renames or removes the temp file
            exit_stack.__exit__(*exc_info)

    def write(self, window: Window, bands: np.ndarray) -> None:
        """Write ``bands`` ``(n_bands, window.height, window.width)`` at ``window``."""
        if self._dst is None:
            raise ValueError(
                f"GeoTIFFWriter('{self.path}') is not open: write inside `with GeoTIFFWriter(...) as out:`"
            )
        shape = (int(window.height), int(window.width))
        arr = _as_bands(bands, shape, f"bands for window {window}")
        if len(arr) != len(self.descriptions):
            raise ValueError(
                f"{len(arr)} bands for a {len(self.descriptions)}-band GeoTIFF: pass one per description"
            )
        self._dst.write(arr, window=window)
