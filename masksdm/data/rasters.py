"""Find predictor rasters and extract their values at plot coordinates.

Expected sources are the global rasters of the MaskSDM paper, one single-band file per predictor,
named after it (file stem = predictor name, see :mod:`masksdm.data.predictors`), or multiband
stacks whose band descriptions name the predictors (see *Multiband rasters* below):

* WorldClim 2.1 bioclimatic variables ``bio_1`` .. ``bio_19`` (30 arc-seconds, EPSG:4326; Fick
  S.E. & Hijmans R.J. 2017, WorldClim 2: new 1-km spatial resolution climate surfaces for global
  land areas, International Journal of Climatology 37:4302-4315);
* SoilGrids 250 m soil properties ``ORCDRC PHIHOX CECSOL BDTICM CLYPPT SLTPPT SNDPPT BLDFIE``
  (Hengl T. et al. 2017, SoilGrids250m: global gridded soil information based on machine
  learning, PLoS ONE 12:e0169748);
* topography ``Elevation Slope Aspect`` (e.g. derived from SRTM);
* the global human footprint 2009 and its pressures ``HFP2009 Built2009 Croplands2005 ...``
  (Venter O. et al. 2016, Global terrestrial Human Footprint maps for 1993 and 2009, Scientific
  Data 3:160067).

Any other raster works too: its name becomes a predictor of the group named by its folder.
Names are matched to the catalogue tolerantly (:func:`~masksdm.data.predictors.catalogue_name`):
``wc2.1_10m_bio_3.tif`` and ``BIO3.tif`` are the predictor ``bio_3``.

Multiband rasters: each band is one predictor, named by its band description (GDAL's band
description, rasterio's ``src.descriptions``), matched to the catalogue like a file stem: a stack
``climate.tif`` with bands described ``bio_1``, ``bio_12`` gives the predictors ``bio_1`` and
``bio_12``. Some bands without a description, or two naming the same predictor, is an error.
Embedding rasters (``masksdm embed cells``: bands described ``e0``, ``e1``, ... or any multiband
raster in an ``embeddings`` folder) are one predictor of all their bands, named by the file stem
(:func:`predictor_bands`); so is a multiband raster without any band description, which maps read
as an embedding and :func:`extract_rasters` refuses (name its bands, or split it).

File format: anything GDAL reads as a georeferenced grid; folders are searched (recursively) for
GeoTIFF (``.tif``/``.tiff``), ESRI ASCII grids (``.asc``, with the CRS in a ``.prj`` file next to
it), R raster (``.grd`` + ``.gri``), VRT (``.vrt``), ERDAS Imagine (``.img``) and netCDF (``.nc``,
one variable). The raster must declare its CRS (any CRS: points are reprojected,
rasters never are); its nodata value (and any mask band) becomes NaN; a scale/offset declared in
the file (GDAL band scale/offset, e.g. netCDF ``scale_factor``/``add_offset``) is applied. Each
point gets the value of the pixel containing it (no interpolation).
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import rasterio.errors
import rasterio.warp
import rasterio.windows
from pyproj import CRS, Transformer
from rasterio.enums import MaskFlags, Resampling
from tqdm import tqdm

from masksdm.data.embeddings import EMBEDDINGS_DIR
from masksdm.data.plotdata import check_coordinates
from masksdm.data.predictors import UNGROUPED, catalogue_name, group_of
from masksdm.errors import DataError, RasterError

__all__ = [
    "RASTER_SUFFIXES", "extract_rasters", "find_rasters", "is_embedding_raster", "nodata_mask", "open_raster",
    "predictor_bands", "raster_group", "read_map",
]

logger = logging.getLogger(__name__)

#: File extensions searched for in raster folders.
RASTER_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".asc", ".grd", ".vrt", ".img", ".nc")

# Raster bands that decode to at most this many bytes are read in one go; larger ones are
# read block by block, only the blocks that hold points.
_READ_WHOLE_MAX_BYTES = 64 * 2**20
_WGS84 = CRS.from_epsg(4326)
# A raster giving no value at more than this share of the points is a warning (else INFO).
_MISSING_WARN_SHARE = 0.1

Sources = str | Path | Sequence[str | Path]


def find_rasters(sources: Sources) -> dict[str, Path]:
    """Map predictor names (file stems, or band descriptions of multiband rasters) to raster files.

    Names are catalogue names where a stem or description spells one (``BIO3.tif`` is ``bio_3``,
    logged); a multiband raster gives one name per band, all mapped to the same file (the band is
    found again by :func:`predictor_bands`), except an embedding raster, one name.

    Args:
        sources: a raster file, a folder (searched recursively for :data:`RASTER_SUFFIXES`; hidden
            files and folders are skipped), or a sequence of them. A file named explicitly is
            taken whatever its extension.

    Returns:
        ``{name: path}`` in sorted path order within each source (a stack: in band order), sources
        in the given order.

    Raises:
        DataError: a source does not exist, two rasters give the same name, or no raster is found.
        RasterError: a multiband raster whose bands are not described by unique names.
    """
    if isinstance(sources, str | Path):
        sources = [sources]
    found: dict[str, Path] = {}
    for source in sources:
        source = Path(source)
        if source.is_file():
            files = [source]
        elif source.is_dir():
            files = sorted(
                p
                for p in source.rglob("*")
                if p.suffix.lower() in RASTER_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(source).parts)
            )
        else:
            raise DataError(
                f"raster source '{source}' does not exist: pass raster files or folders"
            )
        for path in files:
            for name in _predictor_names(path):
                if name in found and found[name].resolve() != path.resolve():
                    raise DataError(
                        f"two rasters are named '{name}': '{found[name]}' and '{path}'; each "
                        "predictor needs one raster: rename or remove one of them"
                    )
                found[name] = path
    if not found:
        shown = ", ".join(f"'{s}'" for s in sources)
        raise DataError(
            f"no raster ({'/'.join(RASTER_SUFFIXES)}) found in {shown}: pass the folder holding "
            "your predictor rasters (--rasters DIR)"
        )
    return found


def _predictor_names(path: Path) -> list[str]:
    """The predictor names a raster file gives (its stem, or one per band of a multiband raster)."""
    try:
        src = open_raster(path)
    except RasterError:  # reported with its reason when the raster is read
        src = None
    if src is not None:
        with src:
            if not _one_predictor(src, path):
                return list(_described_bands(src, path))
    name = catalogue_name(path.stem) or path.stem
    if name != path.stem:
        logger.info("raster '%s' is the predictor '%s' (its catalogue name)", path, name)
    return [name]


def is_embedding_raster(src: rasterio.io.DatasetReader, path: str | Path) -> bool:
    """A multiband raster of embedding vectors (one predictor of all its bands): bands described
    ``e0``, ``e1``, ... as ``masksdm embed cells`` writes them, or any multiband raster in an
    ``embeddings`` folder (``WORKSPACE/embeddings/<name>.tif``)."""
    if src.count < 2:
        return False
    return Path(path).parent.name == EMBEDDINGS_DIR or tuple(src.descriptions) == tuple(
        f"e{i}" for i in range(src.count)
    )


def _one_predictor(src: rasterio.io.DatasetReader, path: str | Path) -> bool:
    """A raster read as one predictor of all its bands: one band, an embedding raster, or a
    multiband raster without any band description (maps read it as an embedding of that name;
    :func:`extract_rasters` refuses it)."""
    return src.count == 1 or is_embedding_raster(src, path) or not any(d and d.strip() for d in src.descriptions)


def _described_bands(src: rasterio.io.DatasetReader, path: Path) -> dict[str, int]:
    """Predictor name -> band of a multiband raster, from its band descriptions."""
    descriptions = [(d or "").strip() for d in src.descriptions]
    lacking = [i for i, d in enumerate(descriptions, start=1) if not d]
    names: dict[str, int] = {}
    problem = ""
    if len(lacking) == len(descriptions):
        problem = "no band description"
    elif lacking:
        problem = f"no description for band(s) {lacking}"
    else:
        for band, text in enumerate(descriptions, start=1):
            name = catalogue_name(text) or text
            if name in names:
                problem = (f"bands {names[name]} and {band} both name the predictor '{name}' "
                           f"(descriptions {descriptions[names[name] - 1]!r} and {text!r})")
                break
            names[name] = band
    if problem:
        raise RasterError(
            f"raster '{path}' has {src.count} bands and {problem}: each band of a multiband raster "
            "is one predictor, named by its band description. Describe every band with a unique "
            f"predictor name (rasterio: `with rasterio.open('{path.name}', 'r+') as dst: "
            "dst.set_band_description(1, 'bio_1')`, and so on for each band; a VRT: <Description>), "
            f"or split it into one file per predictor (`gdal_translate -b 1 {path.name} bio_1.tif`)"
        )
    renamed = {text: name for text, name in zip(descriptions, names, strict=True) if text != name}
    if renamed:
        logger.info("raster '%s': bands %s are the catalogue's predictors", path, renamed)
    return names


def predictor_bands(src: rasterio.io.DatasetReader, path: str | Path, name: str) -> tuple[int, ...]:
    """The bands (1-based) of the open raster ``src`` (file ``path``) that hold predictor ``name``:
    ``(1,)`` for a single-band raster, every band of an embedding raster
    (:func:`is_embedding_raster`) or of a multiband raster without band descriptions (an
    embedding raster written by another tool), else the band whose description names ``name``.

    Raises:
        RasterError: a multiband raster without unique band descriptions, or without ``name``.
    """
    if src.count == 1:
        return (1,)
    if _one_predictor(src, path):
        return tuple(range(1, src.count + 1))
    bands = _described_bands(src, Path(path))
    name = name if name in bands else catalogue_name(name) or name
    if name not in bands:
        raise RasterError(
            f"raster '{path}' has no band for predictor '{name}': its {src.count} bands are the "
            f"predictors {list(bands)} (band descriptions); find its rasters with find_rasters()"
        )
    return (bands[name],)


def raster_group(path: str | Path, name: str | None = None) -> str:
    """Predictor group of a raster (of its band ``name`` for a multiband raster): the catalogue
    group of the name (default: the file stem), else the name of the raster's folder as given
    (never resolved: a symlinked folder keeps its own name), else ``UNGROUPED``."""
    path = Path(path)
    group = group_of(name or path.stem, fallback="")
    folder = path.parent.name
    return group or (folder if folder not in ("", ".", "..") else UNGROUPED)


@functools.lru_cache(maxsize=64)
def _transformer(crs_wkt: str) -> Transformer:
    """Transformer from WGS84 lon/lat to ``crs_wkt`` (x, y order), cached per CRS."""
    return Transformer.from_crs(_WGS84, CRS.from_wkt(crs_wkt), always_xy=True)


def _open_georeferenced(target: str | Path, path: Path) -> rasterio.io.DatasetReader:
    """Open ``target``; RasterError when GDAL cannot, or finds no geotransform."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", rasterio.errors.NotGeoreferencedWarning)
        try:
            src = rasterio.open(target)
        except (rasterio.errors.RasterioError, OSError) as exc:
            raise RasterError(
                f"cannot read raster '{path}' ({exc}): it must be a raster file GDAL can open "
                "(GeoTIFF, ESRI ASCII .asc, .grd with its .gri, .vrt, .img, .nc)"
            ) from exc
    for warning in caught:  # re-emit unrelated warnings
        if not issubclass(warning.category, rasterio.errors.NotGeoreferencedWarning):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if src.count and any(
        issubclass(w.category, rasterio.errors.NotGeoreferencedWarning) for w in caught
    ):
        src.close()
        raise RasterError(
            f"raster '{path}' has no georeferencing (GDAL finds no geotransform): write it as a "
            "GeoTIFF with its transform and CRS (e.g. rioxarray's da.rio.to_raster); a netCDF "
            "file needs CF x/y coordinate attributes (da.rio.write_coordinate_system())"
        )
    return src


def open_raster(path: Path) -> rasterio.io.DatasetReader:
    """Open a raster; a netCDF file with a single variable opens that variable."""
    src = _open_georeferenced(path, path)
    if src.count == 0 and src.subdatasets:
        subdatasets = list(src.subdatasets)
        src.close()
        if len(subdatasets) > 1:
            names = [s.rsplit(":", 1)[-1] for s in subdatasets]
            raise RasterError(
                f"raster '{path}' holds {len(subdatasets)} variables {names}: keep one variable "
                "per file, named after the predictor (e.g. gdal_translate "
                f"'{subdatasets[0]}' {names[0]}.tif)"
            )
        src = _open_georeferenced(subdatasets[0], path)
    if src.count == 0:
        src.close()
        raise RasterError(f"raster '{path}' has no band: it must hold one band of values")
    return src


def _lonlat_bounds(src: rasterio.io.DatasetReader) -> str:
    try:
        west, south, east, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    except Exception:  # bounds outside the CRS's domain: report them as they are
        return f"{tuple(round(b, 4) for b in src.bounds)} in {src.crs}"
    return f"lon {west:.4f}..{east:.4f}, lat {south:.4f}..{north:.4f}"


def _pixel_indices(
    src: rasterio.io.DatasetReader,
    lon: np.ndarray,
    lat: np.ndarray,
    projected: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and inside-mask of each point in ``src``'s grid (points reprojected, cached)."""
    crs = CRS.from_user_input(src.crs)
    key = crs.to_wkt()
    if key not in projected:
        if crs == _WGS84:
            projected[key] = (lon, lat)
        else:
            x, y = _transformer(key).transform(lon, lat, errcheck=False)
            projected[key] = (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    x, y = projected[key]
    if crs.is_geographic and src.bounds.right > 180 and src.bounds.left >= 0:
        x = np.mod(x, 360.0)  # 0..360 longitudes (common in netCDF climate grids)
    inverse = ~src.transform
    with np.errstate(invalid="ignore"):  # a point the CRS cannot hold (inf) is NaN here: outside
        col = np.floor(inverse.a * x + inverse.b * y + inverse.c)
        row = np.floor(inverse.d * x + inverse.e * y + inverse.f)
    inside = (
        np.isfinite(col)
        & np.isfinite(row)
        & (col >= 0)
        & (col < src.width)
        & (row >= 0)
        & (row < src.height)
    )
    rows = np.where(inside, row, 0).astype(np.int64)
    cols = np.where(inside, col, 0).astype(np.int64)
    return rows, cols, inside


def nodata_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where ``values`` equal ``nodata``, compared in the band's own data type."""
    if nodata is None:
        return np.zeros(values.shape, dtype=bool)
    if np.isnan(nodata):
        return np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, dtype=bool)
    if values.dtype.kind in "iu":
        info = np.iinfo(values.dtype)
        if not (info.min <= nodata <= info.max) or nodata != int(nodata):
            return np.zeros(values.shape, dtype=bool)
    # Cast nodata to the band type: a float32 band with nodata -3.4e38 stores float32(-3.4e38).
    return values == np.asarray(nodata).astype(values.dtype)


def _sample(
    src: rasterio.io.DatasetReader, rows: np.ndarray, cols: np.ndarray, band: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``band`` and their validity (not nodata, not masked) at pixel (rows, cols)."""
    flags = src.mask_flag_enums[band - 1]
    use_mask = not (MaskFlags.all_valid in flags or MaskFlags.nodata in flags)
    dtype = np.dtype(src.dtypes[band - 1])
    values = np.empty(len(rows), dtype=dtype)
    valid = np.ones(len(rows), dtype=bool)
    if len(rows) == 0:
        return values, valid
    if src.height * src.width * dtype.itemsize <= _READ_WHOLE_MAX_BYTES:
        whole = src.read(band)
        values[:] = whole[rows, cols]
        if use_mask:
            valid[:] = src.read_masks(band)[rows, cols] > 0
        return values, valid

    # Large raster: group points by block and read, per block, the window spanning its points.
    block_h, block_w = src.block_shapes[band - 1]
    n_block_cols = -(-src.width // block_w)
    block = (rows // block_h) * n_block_cols + cols // block_w
    order = np.argsort(block, kind="stable")
    sorted_block = block[order]
    starts = np.flatnonzero(np.r_[True, sorted_block[1:] != sorted_block[:-1]])
    r_sorted, c_sorted = rows[order], cols[order]
    r0 = np.minimum.reduceat(r_sorted, starts)
    r1 = np.maximum.reduceat(r_sorted, starts) + 1
    c0 = np.minimum.reduceat(c_sorted, starts)
    c1 = np.maximum.reduceat(c_sorted, starts) + 1
    ends = np.r_[starts[1:], len(order)]
    for i in range(len(starts)):  # one read per block holding points, not per point
        window = rasterio.windows.Window(c0[i], r0[i], c1[i] - c0[i], r1[i] - r0[i])
        chunk = src.read(band, window=window)
        idx = order[starts[i] : ends[i]]
        values[idx] = chunk[rows[idx] - r0[i], cols[idx] - c0[i]]
        if use_mask:
            valid[idx] = src.read_masks(band, window=window)[rows[idx] - r0[i], cols[idx] - c0[i]] > 0
    return values, valid


def _extract_one(
    name: str,
    path: Path,
    lon: np.ndarray,
    lat: np.ndarray,
    projected: dict[str, tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    with open_raster(path) as src:
        if src.crs is None:
            raise RasterError(
                f"raster '{path}' has no CRS: assign one, e.g. "
                "rioxarray's da.rio.write_crs('EPSG:4326') or `gdal_edit.py -a_srs EPSG:4326`, "
                "or put a .prj file next to an .asc grid"
            )
        bands = predictor_bands(src, path, name)
        if len(bands) > 1 and not is_embedding_raster(src, path):
            _described_bands(src, path)  # raises: a stack of predictors needs band descriptions
        if len(bands) > 1:
            raise RasterError(
                f"raster '{path}' is an embedding raster ({src.count} bands, one vector per map cell, "
                "as `masksdm embed cells` writes): it serves maps only; give the plots their "
                "embeddings with `masksdm embed plots` and leave it out of the rasters to prepare"
            )
        band = bands[0]
        rows, cols, inside = _pixel_indices(src, lon, lat, projected)
        n_out = int((~inside).sum())
        if n_out * 2 > len(lon):
            raise RasterError(
                f"{n_out} of {len(lon)} points fall outside raster '{name}' ({path}), which covers "
                f"{_lonlat_bounds(src)} (CRS {src.crs}): check that the raster's CRS is right and "
                "that longitude and latitude are not swapped, or use a raster covering the plots"
            )
        try:
            raw, valid = _sample(src, rows[inside], cols[inside], band)
        except rasterio.errors.RasterioError as exc:
            raise RasterError(
                f"cannot read the pixels of raster '{path}' ({exc}): the file is truncated or "
                "incomplete (e.g. a .grd without its .gri); download or write it again"
            ) from exc
        values = np.full(len(lon), np.nan)
        kept = raw.astype(np.float64)
        kept[~valid | nodata_mask(raw, src.nodatavals[band - 1])] = np.nan
        scale, offset = src.scales[band - 1], src.offsets[band - 1]
        if scale not in (None, 1.0) or offset not in (None, 0.0):
            kept = kept * (1.0 if scale is None else scale) + (0.0 if offset is None else offset)
        kept[np.isinf(kept)] = np.nan  # an infinite value is missing, as in tables: MaskSDM masks it
        values[inside] = kept
        _check_coverage(name, path, src, values, n_out, lon, lat, band)
    return values


def _check_coverage(
    name: str,
    path: Path,
    src: rasterio.io.DatasetReader,
    values: np.ndarray,
    n_out: int,
    lon: np.ndarray,
    lat: np.ndarray,
    band: int = 1,
) -> None:
    """RasterError when no point gets a value; a warning when more than
    :data:`_MISSING_WARN_SHARE` of them get none (outside the raster or on nodata cells)."""
    n = len(values)
    n_missing = int(np.isnan(values).sum())
    if n == 0 or n_missing == 0:
        return
    where = f"{n_out} outside it, {n_missing - n_out} on nodata cells"
    if n_missing == n:
        raise RasterError(
            f"raster '{name}' ({path}) has no value at any of the {n} points ({where}): it covers "
            f"{_lonlat_bounds(src)} (CRS {src.crs}, nodata {src.nodatavals[band - 1]}) and the points span "
            f"lon {lon.min():.4f}..{lon.max():.4f}, lat {lat.min():.4f}..{lat.max():.4f}; check the "
            "raster's CRS, extent and nodata value, or leave this raster out"
        )
    level = logging.WARNING if n_missing > _MISSING_WARN_SHARE * n else logging.INFO
    logger.log(
        level,
        "raster '%s' has no value at %d of %d points (%.0f%%: %d outside it, which covers %s; "
        "%d on nodata cells): their %s is NaN (masked by the model)%s",
        name, n_missing, n, 100 * n_missing / n, n_out, _lonlat_bounds(src), n_missing - n_out, name,
        "; check that the raster covers the plots" if level == logging.WARNING else "",
    )


def extract_rasters(
    rasters: Mapping[str, str | Path] | Sources,
    lon: Sequence[float] | np.ndarray | pd.Series,
    lat: Sequence[float] | np.ndarray | pd.Series,
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """Values of each raster at WGS84 points (the pixel containing each point): its band, or the
    band of a multiband raster that names the predictor (:func:`predictor_bands`).

    Points are reprojected to each raster's CRS (pyproj, one transformation per CRS); pixel
    rows/columns come from the raster's affine transform; only the needed pixels are read (small
    rasters at once, large ones only the blocks holding points). See the module docstring for
    the expected sources and how to cite them.

    Args:
        rasters: ``{predictor name: raster path}`` (e.g. from :func:`find_rasters`), or raster
            files/folders passed to :func:`find_rasters`.
        lon: WGS84 longitudes (degrees), one per point.
        lat: WGS84 latitudes (degrees), one per point.
        progress: show a tqdm progress bar over the rasters.

    Returns:
        One float64 column per raster, in the given order, one row per point (RangeIndex). NaN
        for nodata, masked pixels and points outside the raster: logged as a WARNING naming the
        raster and the share of points when more than 10 % of the points get no value, at INFO
        otherwise.

    Raises:
        DataError: invalid coordinates or lon/lat of different lengths.
        RasterError: a raster cannot be read, has no CRS, is a multiband raster without a band
            described by the predictor's name or an embedding raster, more than half of the points fall
            outside it (wrong CRS or swapped coordinates), or no point gets a value from it (all
            outside or on nodata cells: wrong CRS, extent or nodata value).
    """
    if not isinstance(rasters, Mapping):
        rasters = find_rasters(rasters)
    lon_arr = np.asarray(lon, dtype=np.float64).ravel()
    lat_arr = np.asarray(lat, dtype=np.float64).ravel()
    if lon_arr.shape != lat_arr.shape:
        raise DataError(
            f"{len(lon_arr)} longitudes but {len(lat_arr)} latitudes: pass one of each per point"
        )
    check_coordinates(lon_arr, lat_arr, what="points")
    projected: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    columns: dict[str, np.ndarray] = {}
    bar = tqdm(
        rasters.items(), total=len(rasters), desc="rasters", unit="raster", disable=not progress
    )
    for name, path in bar:  # a loop over rasters; points are handled as arrays
        bar.set_postfix_str(name, refresh=False)
        columns[name] = _extract_one(name, Path(path), lon_arr, lat_arr, projected)
    return pd.DataFrame(
        columns, index=pd.RangeIndex(len(lon_arr)), columns=list(rasters), dtype=np.float64
    )


def read_map(path: str | Path, *, band: int | None = 1, max_pixels: int | None = 800) -> tuple[np.ndarray, tuple]:
    """One band of a raster (``band=None``: all of them, stacked first) as float with NaN for
    nodata and its scale/offset applied (so the probability COGs of ``masksdm predict`` read in
    [0, 1]), decimated to at most ``max_pixels`` on its long side (nearest), and its extent
    ``(left, right, bottom, top)`` for ``imshow``."""
    with rasterio.open(path) as src:
        step = 1.0 if max_pixels is None else max(1.0, max(src.height, src.width) / max_pixels)
        shape = (max(1, round(src.height / step)), max(1, round(src.width / step)))
        if band is None:
            data = src.read(out_shape=(src.count, *shape), masked=True, resampling=Resampling.nearest)
            scale, offset = np.array(src.scales)[:, None, None], np.array(src.offsets)[:, None, None]
        else:
            data = src.read(band, out_shape=shape, masked=True, resampling=Resampling.nearest)
            scale, offset = src.scales[band - 1], src.offsets[band - 1]
        bounds = src.bounds
    values = data.astype(np.float64).filled(np.nan) * scale + offset
    return values, (bounds.left, bounds.right, bounds.bottom, bounds.top)
