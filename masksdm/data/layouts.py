"""Downloaded files laid out under the names the workspace expects, and the checks that a download
is the kind of file it should be.

The layouts (:mod:`masksdm.data.sources` calls them on checked downloads, writing into a folder
that becomes the output only when complete):

* :func:`worldclim_layout`: the members ``wc2.1_<res>_bio_<n>.tif`` of a WorldClim 2.1 archive as
  ``bio_<n>.tif``, bytes unchanged;
* :func:`split_bands`: a multiband GeoTIFF (the 19 bands of a WorldClim CMIP6 ``bioc`` file) as one
  single-band GeoTIFF per band, keeping data type, CRS, transform and nodata;
* :func:`soil_layer`: a SoilGrids 2.0 layer rescaled to its legacy unit, as float32;
* :func:`splotopen_layout`: the sPlotOpen tables ``sPlotOpen_header*.txt`` and
  ``sPlotOpen_DT*.txt`` out of an archive (or copied), as
  :func:`masksdm.data.splotopen.load_splotopen` reads them.

The checks (:func:`check_zip`, :func:`check_geotiff`, :func:`check_safetensors`) raise
:class:`~masksdm.errors.FetchError` saying what is wrong, e.g. a truncated archive, or a server's
error message where a GeoTIFF was expected.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from rasterio.windows import Window

from masksdm._io import path_inside
from masksdm.data.grid import gtiff_profile
from masksdm.data.splotopen import DT_PATTERN, HEADER_PATTERN
from masksdm.errors import FetchError

__all__ = [
    "check_geotiff",
    "check_safetensors",
    "check_zip",
    "soil_layer",
    "split_bands",
    "splotopen_layout",
    "worldclim_layout",
]

_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)
# rows copied at a time: a band of the 30 arc-second rasters is 3.7 GB as float32
_STRIP_BYTES = 64 << 20


def check_zip(path: Path) -> None:
    """A whole zip archive: its directory reads and every member's CRC-32 matches."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except _ZIP_ERRORS as exc:
        raise FetchError(f"it is not a whole zip archive ({type(exc).__name__}: {exc}): truncated or damaged") from None
    if damaged is not None:
        raise FetchError(f"its member {damaged} is damaged (CRC-32 mismatch)")


def check_geotiff(path: Path) -> None:
    """A raster GDAL opens (not, e.g., the XML message a web service sends back instead)."""
    try:
        with rasterio.open(path) as src:
            if src.count < 1 or src.crs is None:
                raise FetchError(f"the raster has {src.count} bands and CRS {src.crs}: not a georeferenced raster")
    except rasterio.errors.RasterioIOError as exc:
        with open(path, "rb") as handle:
            head = handle.read(600).decode("utf-8", "replace")
        if head.lstrip().startswith("<"):
            text = " ".join(re.sub(r"<[^>]*>", " ", head).split())
            raise FetchError(f"the server answered with a message instead of a GeoTIFF: {text[:300]!r}") from None
        raise FetchError(f"it is not a raster GDAL reads ({exc})") from None


def check_safetensors(path: Path) -> None:
    """A whole ``.safetensors`` file: its header parses and its tensors end where the file ends."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                raise ValueError(f"a header of {length} bytes in a file of {size}")
            header = json.loads(handle.read(length))
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise FetchError(f"it is not a safetensors file ({exc})") from None
    if 8 + length + max(ends, default=0) != size:
        raise FetchError(f"it is not a whole safetensors file: its tensors need {8 + length + max(ends, default=0)} "
                         f"bytes, it has {size} (truncated?)")


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, where: Path) -> None:
    try:
        with archive.open(member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise FetchError(
            f"the archive '{where}' is damaged at {member.filename} ({exc}): delete it and rerun to download it again"
        ) from None


def worldclim_layout(archive_path: Path, folder: Path, resolution: str, variables: str = "bio") -> list[str]:
    """Extract ``wc2.1_<resolution>_<variables>_<n>.tif`` (n = 1..19, at any depth in the archive) as
    ``bio_<n>.tif``; the file names written."""
    pattern = re.compile(rf"wc2\.1_{re.escape(resolution)}_{re.escape(variables)}_0*([0-9]+)\.tif", re.IGNORECASE)
    try:
        archive = zipfile.ZipFile(archive_path)
    except _ZIP_ERRORS as exc:
        raise FetchError(f"'{archive_path}' is not a whole zip archive ({exc}): delete it and rerun") from None
    with archive:
        members: dict[int, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            match = pattern.fullmatch(PurePosixPath(info.filename).name)
            if match and 1 <= int(match.group(1)) <= 19:
                members[int(match.group(1))] = info
        missing = [n for n in range(1, 20) if n not in members]
        if missing:
            raise FetchError(
                f"the archive '{archive_path}' lacks wc2.1_{resolution}_{variables}_N.tif for N = {missing}: it is "
                "not a WorldClim 2.1 bioclimatic archive; delete it and rerun"
            )
        names = []
        for n, info in sorted(members.items()):
            name = f"bio_{n}.tif"
            _extract(archive, info, folder / name, archive_path)
            check_geotiff(folder / name)
            names.append(name)
    return names


def _profile(src: Any, dtype: str, nodata: float | None) -> dict[str, Any]:
    """A one-band tiled, deflated GeoTIFF on the grid of the open raster ``src``."""
    return gtiff_profile((src.crs, src.transform, src.width, src.height), 1, dtype, nodata)


def _strips(width: int, height: int, itemsize: int) -> list[Window]:
    rows = max(1, _STRIP_BYTES // max(1, width * itemsize))
    return [Window(0, r, width, min(rows, height - r)) for r in range(0, height, rows)]


def split_bands(path: Path, folder: Path, names: Sequence[str]) -> list[str]:
    """Write band ``i`` of the raster ``path`` as ``<names[i]>.tif`` in ``folder``, one single-band
    GeoTIFF each with the source's data type, CRS, transform and nodata; the file names written.

    Raises:
        FetchError: the raster has another number of bands than ``names``.
    """
    written = []
    with rasterio.open(path) as src:
        if src.count != len(names):
            raise FetchError(f"'{path}' has {src.count} bands, expected {len(names)} ({names[0]} .. {names[-1]})")
        for band, name in enumerate(names, start=1):
            dtype = src.dtypes[band - 1]
            target = path_inside(folder, f"{name}.tif")
            with rasterio.open(target, "w", **_profile(src, dtype, src.nodatavals[band - 1])) as dst:
                for window in _strips(src.width, src.height, np.dtype(dtype).itemsize):
                    dst.write(src.read(band, window=window), 1, window=window)
                dst.set_band_description(1, name)
            written.append(target.name)
    return written


def soil_layer(path: Path, target: Path, *, factor: float, name: str, nodata_in: float,
               nodata_out: float) -> None:
    """Write band 1 of the SoilGrids 2.0 raster ``path`` times ``factor`` as a float32 GeoTIFF
    ``target`` (its legacy unit), nodata ``nodata_out`` where the source has ``nodata_in`` (or its
    own nodata)."""
    with rasterio.open(path) as src:
        missing = {float(nodata_in)} | ({float(src.nodata)} if src.nodata is not None else set())
        with rasterio.open(target, "w", **_profile(src, "float32", nodata_out)) as dst:
            for window in _strips(src.width, src.height, 8):
                raw = src.read(1, window=window).astype(np.float64)
                out = raw * factor
                out[np.isin(raw, list(missing)) | np.isnan(raw)] = nodata_out
                dst.write(out.astype(np.float32), 1, window=window)
            dst.set_band_description(1, name)


def _is_table(name: str) -> bool:
    return fnmatch.fnmatchcase(name, HEADER_PATTERN) or fnmatch.fnmatchcase(name, DT_PATTERN)


def splotopen_layout(sources: Sequence[Path], folder: Path) -> list[str]:
    """The sPlotOpen tables (``sPlotOpen_header*.txt``, ``sPlotOpen_DT*.txt``) of ``sources`` (zip
    archives, holding them at any depth, or the table files themselves) copied into ``folder``;
    the file names written.

    Raises:
        FetchError: a damaged archive, or no header or no DT table among the sources.
    """
    written: list[str] = []
    for source in sources:
        if source.suffix.lower() == ".zip":
            try:
                archive = zipfile.ZipFile(source)
            except _ZIP_ERRORS as exc:
                raise FetchError(f"'{source}' is not a whole zip archive ({exc}): download it again") from None
            with archive:
                for info in archive.infolist():
                    name = PurePosixPath(info.filename).name
                    if not info.is_dir() and _is_table(name) and name not in written:
                        _extract(archive, info, path_inside(folder, name), source)
                        written.append(name)
        elif _is_table(source.name) and source.name not in written:
            shutil.copyfile(source, path_inside(folder, source.name))
            written.append(source.name)
    for pattern in (HEADER_PATTERN, DT_PATTERN):
        if not any(fnmatch.fnmatchcase(n, pattern) for n in written):
            shown = ", ".join(f"'{s}'" for s in sources) or "nothing"
            raise FetchError(
                f"no {pattern} in {shown}: sPlotOpen's plot table ({HEADER_PATTERN}) and species table "
                f"({DT_PATTERN}) are needed; extract the archive by hand and pass the folder holding them to "
                "masksdm prepare --splotopen"
            )
    return written
