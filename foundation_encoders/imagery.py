"""Sentinel-2 / Sentinel-1 imagery: scenes, their bands, and windows around points.

Data format. A *scene* is a set of co-registered bands in one CRS, stored either

* as per-band GeoTIFFs named ``<prefix>_<BAND>.tif`` (or ``.tiff``), grouped by prefix within a
  folder, as in BigEarthNet v1 (``S2A_MSIL2A_20171221T112501_56_35/..._56_35_B04.tif``, with an
  optional ``<prefix>_labels_metadata.json`` sidecar); or
* as one multi-band GeoTIFF / COG whose band descriptions are band names (or whose names are
  given with ``find_scenes(..., bands=[...])``).

Band names follow the ESA Copernicus products: Sentinel-2 L2A bands ``B01``-``B12`` and ``B8A``
(10 m: B02 B03 B04 B08; 20 m: B05 B06 B07 B8A B11 B12; 60 m: B01 B09; the L1C-only cirrus band
``B10`` is skipped) as reflectance x 10 000 in uint16 with 0 = NO_DATA, and Sentinel-1 GRD
backscatter ``VV`` and ``VH`` as float32 dB. ``B1``, ``B08A`` and lower case are accepted.
The layout and the reading recipe follow BigEarthNet (Sumbul et al., "BigEarthNet: A Large-Scale
Benchmark Archive for Remote Sensing Image Understanding", IGARSS 2019) and BigEarthNet-MM
(Sumbul et al., "BigEarthNet-MM: A Large-Scale, Multimodal, Multilabel Benchmark Archive for
Remote Sensing Image Classification and Retrieval", IEEE GRSM 2021), which SMARTIES was evaluated
on: every band is resampled bilinearly onto one 10 m grid, 120 x 120 px (1.2 km) per patch.

Processing baseline 04.00 (products since 2022-01-25) adds 1000 to every Sentinel-2 DN
(``BOA_ADD_OFFSET = -1000``). :attr:`Scene.offset` is subtracted on read so values match the
offset-free BigEarthNet statistics SMARTIES normalises with; see :func:`~foundation_encoders.discovery.find_scenes` for how it is
detected. Each scene keeps its own CRS (BigEarthNet spans several UTM zones); :func:`locate`
projects WGS84 points into each one.

Example:
    >>> from rasterio.crs import CRS
    >>> scene = Scene(name="p", sensor="S1", crs=CRS.from_epsg(32633), bounds=(0.0, 0.0, 1.2e3, 1.2e3),
    ...               bands={"VH": ("p_VH.tif", 1), "VV": ("p_VV.tif", 1)}, nodata=None,
    ...               offset=0.0, offset_source="Sentinel-1: no offset")
    >>> scene.band_names
    ('VV', 'VH')
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import ArrayLike
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from foundation_encoders.spectrum import SENTINEL1_BANDS, SENTINEL2_L2A_BANDS

__all__ = [
    "S1_BANDS", "S2_BANDS", "SKIPPED_BANDS", "ImageryError", "Scene", "SceneList", "esa_band_name", "locate",
    "sample_locations",
]

#: Sentinel-2 bands in SMARTIES / BigEarthNet order (no B10), and Sentinel-1 bands.
S2_BANDS: tuple[str, ...] = SENTINEL2_L2A_BANDS
S1_BANDS: tuple[str, ...] = SENTINEL1_BANDS

#: Bands SMARTIES does not take, with the reason given when a scene holds one.
SKIPPED_BANDS = {"B10": "B10 (cirrus, L1C only; SMARTIES' Sentinel-2 band set has no B10)"}
_ORDER = {name: i for i, name in enumerate(S2_BANDS + S1_BANDS)}
_BAND_RE = re.compile(r"^(?:B0?(\d{1,2})(A?)|(VV|VH))$", re.IGNORECASE)


class ImageryError(ValueError):
    """Imagery that cannot be found, grouped or read as asked."""


def esa_band_name(token: str) -> str | None:
    """Canonical band name (``'B08A'`` -> ``'B8A'``, ``'B1'`` -> ``'B01'``, ``'vv'`` -> ``'VV'``) or None."""
    m = _BAND_RE.match(token.strip())
    if m is None:
        return None
    if m[3]:
        return m[3].upper()
    number = int(m[1])
    if m[2]:
        return "B8A" if number == 8 else None
    return f"B{number:02d}" if 1 <= number <= 12 else None


@dataclass(eq=False)
class Scene:
    """Co-registered bands of one Sentinel-2 or Sentinel-1 acquisition (or composite).

    Attributes:
        name: Scene name (the per-band file prefix, or the multi-band file stem).
        sensor: ``"S2"`` or ``"S1"``.
        crs: CRS of every band (a rasterio CRS).
        bounds: ``(left, bottom, right, top)`` in ``crs``: the intersection of the bands' bounds.
        bands: Canonical band name -> ``(file path, 1-based band index in that file)``.
        nodata: Nodata value for integer files that declare none (Sentinel-2: 0, ESA's
            NO_DATA; Sentinel-1: None). Files that declare one use their own; float files
            without one use NaN.
        offset: Subtracted from raw DN on read: 1000 for Sentinel-2 of processing baseline
            04.00+, else 0.
        offset_source: How ``offset`` was decided, human readable.
        skipped: Bands found but left out, with the reason (e.g. B10, unrecognised descriptions).
        sidecar: The scene's BigEarthNet ``*_labels_metadata.json`` (land-cover labels, tile
            source), or None.

    Opened datasets are cached on the scene by :meth:`read`; call :meth:`close` (or use the scene
    as a context manager) when done with it. A scene is not thread-safe.
    """

    name: str
    sensor: str
    crs: CRS
    bounds: tuple[float, float, float, float]
    bands: dict[str, tuple[str, int]]
    nodata: float | None
    offset: float
    offset_source: str
    skipped: tuple[str, ...] = ()
    sidecar: Path | None = None
    _datasets: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def band_names(self) -> tuple[str, ...]:
        """Band names in canonical order (S2: B01 ... B8A B09 B11 B12; S1: VV VH)."""
        return tuple(sorted(self.bands, key=_ORDER.__getitem__))

    def read(
        self,
        x: float,
        y: float,
        *,
        size_px: int = 120,
        resolution: float = 10.0,
        bands: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read the square window of ``size_px * resolution`` metres centred on ``(x, y)``.

        Every band is warped onto the window's grid (``size_px`` x ``size_px`` pixels of
        ``resolution`` in the scene CRS) with bilinear resampling, so 20 m and 60 m bands are
        upsampled as BigEarthNet's readers do: on the patch's own 10 m grid the 10 m and 20 m
        bands equal rasterio's ``read(out_shape=..., resampling=bilinear)``. NOTE[DIFF]: the 60 m
        bands can differ by 1 DN where the bilinear value is an exact .5, which GDAL's warper
        and its RasterIO resampler round apart; the warper is used because it keeps nodata out of
        the interpolation and marks pixels outside the image. Those pixels, and pixels on source
        nodata, are NaN.

        Args:
            x: Window centre in the scene CRS.
            y: Window centre in the scene CRS.
            size_px: Window width and height in pixels.
            resolution: Pixel size in CRS units (metres for UTM).
            bands: Band names to read, in the order wanted (any accepted spelling); default all,
                in canonical order (:attr:`band_names`).

        Returns:
            ``(data, valid)``: ``data`` float32 ``(C, size_px, size_px)`` of raw values minus
            :attr:`offset` (Sentinel-2 DN, Sentinel-1 dB), NaN where invalid; ``valid`` bool
            ``(size_px, size_px)``, False where any band is nodata, NaN or outside the image.

        Raises:
            ImageryError: On an unknown or absent band, B10, a non-finite centre or a bad size.
        """
        names = self._resolve(bands)
        if not (isinstance(size_px, int | np.integer) and size_px > 0):
            raise ImageryError(f"size_px must be a positive integer, got {size_px=}")
        if not (math.isfinite(resolution) and resolution > 0):
            raise ImageryError(f"resolution must be positive, got {resolution=}")
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ImageryError(f"window centre must be finite, got {x=}, {y=} (see locate's -1)")
        half = size_px * resolution / 2
        left = self._snap(x - half, self.bounds[0], resolution)
        top = self._snap(y + half, self.bounds[3], resolution)
        transform = Affine(resolution, 0.0, left, 0.0, -resolution, top)
        by_file: dict[str, list[tuple[int, int]]] = {}
        for position, name in enumerate(names):
            path, index = self.bands[name]
            by_file.setdefault(path, []).append((position, index))
        data = np.empty((len(names), size_px, size_px), np.float32)
        invalid = np.zeros((len(names), size_px, size_px), bool)
        for path, members in by_file.items():
            src = self._dataset(path)
            src_nodata, dst_nodata, dtype = self._nodata_plan(src)
            options: dict[str, Any] = {"nodata": dst_nodata, "dtype": dtype}
            if src_nodata is not None:
                options["src_nodata"] = src_nodata
            with WarpedVRT(src, crs=src.crs, transform=transform, width=size_px, height=size_px,
                           resampling=Resampling.bilinear, **options) as vrt:
                block = vrt.read([index for _, index in members])
            positions = [position for position, _ in members]
            bad = np.isnan(block) if block.dtype.kind == "f" else np.zeros(block.shape, bool)
            if not math.isnan(dst_nodata):
                bad |= block == dst_nodata
            data[positions] = block
            invalid[positions] = bad
        if self.offset:
            data -= np.float32(self.offset)
        data[invalid] = np.nan
        valid = np.logical_not(invalid.any(axis=0))
        return data, valid

    def close(self) -> None:
        """Close the datasets :meth:`read` opened."""
        for src in self._datasets.values():
            src.close()
        self._datasets.clear()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Open datasets do not pickle; a copy (e.g. on a dask worker) reopens lazily.
        return {**self.__dict__, "_datasets": {}}

    def _resolve(self, bands: Sequence[str] | None) -> list[str]:
        if bands is None:
            return list(self.band_names)
        if isinstance(bands, str):
            raise ImageryError(f"bands must be a list of names, got the string {bands!r}")
        names = []
        for token in bands:
            name = esa_band_name(token)
            if name in SKIPPED_BANDS:
                raise ImageryError(
                    f"{SKIPPED_BANDS[name]} is not read; scene {self.name!r} has {self.band_names}"
                )
            if name is None or name not in self.bands:
                raise ImageryError(f"scene {self.name!r} has no band {token!r}; it has {self.band_names}")
            names.append(name)
        return names

    def _dataset(self, path: str) -> Any:
        if path not in self._datasets:
            self._datasets[path] = rasterio.open(path)
        return self._datasets[path]

    def _nodata_plan(self, src: Any) -> tuple[float | None, float, str]:
        """(source nodata to leave out, destination nodata, working dtype) for one file."""
        dtype = src.dtypes[0]
        if src.nodata is not None:
            return src.nodata, src.nodata, dtype
        if np.dtype(dtype).kind == "f":
            return math.nan, math.nan, dtype
        if self.nodata is not None:
            return self.nodata, self.nodata, dtype
        # An integer file without any nodata value: warp to float so outside can be NaN.
        return None, math.nan, "float32"

    @staticmethod
    def _snap(value: float, origin: float, resolution: float) -> float:
        # A lon/lat round trip moves the centre by ~1e-9 m, which would flip the rounding of exact
        # .5 bilinear values; windows that sit on the scene grid to 1e-6 px are put back on it.
        steps = (value - origin) / resolution
        return origin + round(steps) * resolution if abs(steps - round(steps)) < 1e-6 else value


class SceneList(list[Scene]):
    """The scenes :func:`find_scenes` found, plus ``problems``: what it dropped and why.

    Attributes:
        problems: One message per dropped scene or file (e.g. bands in different CRSs, a file
            without band names, a folder without imagery), naming the files involved.
    """

    def __init__(self, scenes: Iterable[Scene] = (), problems: Iterable[str] = ()) -> None:
        super().__init__(scenes)
        self.problems: list[str] = list(problems)


@functools.lru_cache(maxsize=64)
def _transformer(crs_wkt: str) -> Transformer:
    return Transformer.from_crs("EPSG:4326", crs_wkt, always_xy=True)


def locate(
    lon: ArrayLike,
    lat: ArrayLike,
    scenes: Sequence[Scene],
    *,
    size_px: int = 120,
    resolution: float = 10.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick, for each point, the scene that best covers its window.

    A scene is a candidate when its bounds contain the point; among candidates the one holding
    the largest share of the ``size_px * resolution`` window wins (ties: the earlier scene).

    Args:
        lon: Longitudes in WGS84 degrees, shape ``(N,)`` (or scalar).
        lat: Latitudes in WGS84 degrees, same shape.
        scenes: Scenes to choose from, in any mix of CRSs.
        size_px: Window width in pixels.
        resolution: Pixel size in CRS units.

    Returns:
        ``(index, x, y)``: int64 ``(N,)`` scene index (-1 where no scene contains the point) and
        float64 ``(N,)`` point coordinates in that scene's CRS (NaN where -1).

    Raises:
        ImageryError: If ``lon`` and ``lat`` differ in shape.
    """
    if not (size_px > 0 and resolution > 0):
        raise ImageryError(f"size_px and resolution must be positive, got {size_px=}, {resolution=}")
    lon_arr = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    lat_arr = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    if lon_arr.shape != lat_arr.shape or lon_arr.ndim != 1:
        raise ImageryError(
            f"lon and lat must be 1-D of one length, got shapes {lon_arr.shape} and {lat_arr.shape}"
        )
    n_points = lon_arr.shape[0]
    index = np.full(n_points, -1, np.int64)
    x_out = np.full(n_points, np.nan)
    y_out = np.full(n_points, np.nan)
    best = np.full(n_points, -1.0)
    half = size_px * resolution / 2
    by_crs: dict[str, list[int]] = {}
    for i, scene in enumerate(scenes):
        by_crs.setdefault(scene.crs.to_wkt(), []).append(i)
    for wkt, members in by_crs.items():
        xs, ys = _transformer(wkt).transform(lon_arr, lat_arr)
        xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        for i in members:
            left, bottom, right, top = scenes[i].bounds
            with np.errstate(invalid="ignore"):
                inside = (xs >= left) & (xs <= right) & (ys >= bottom) & (ys <= top)
                width = np.clip(np.minimum(xs + half, right) - np.maximum(xs - half, left), 0, None)
                height = np.clip(np.minimum(ys + half, top) - np.maximum(ys - half, bottom), 0, None)
            share = np.where(inside, width * height / (2 * half) ** 2, -1.0)
            better = share > best
            best[better] = share[better]
            index[better] = i
            x_out[better] = xs[better]
            y_out[better] = ys[better]
    return index, x_out, y_out


def sample_locations(
    scenes: Sequence[Scene],
    n_per_scene: int,
    *,
    size_px: int = 120,
    resolution: float = 10.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random places whose whole ``size_px`` window lies inside each scene, e.g. to put plots
    where the imagery is.

    Args:
        scenes: Scenes to sample in.
        n_per_scene: Places per scene.
        size_px: Window width in pixels that must fit inside the scene around each place.
        resolution: Pixel size in CRS units.
        seed: Random seed.

    Returns:
        ``(lon, lat, scene)``: WGS84 degrees, float64 ``(len(scenes) * n_per_scene,)``, and the
        index of each place's scene.

    Raises:
        ImageryError: If a scene is smaller than the window, or ``n_per_scene`` is negative.
    """
    if n_per_scene < 0:
        raise ImageryError(f"n_per_scene must be non-negative, got {n_per_scene}")
    rng = np.random.default_rng(seed)
    half = size_px * resolution / 2
    lon, lat = [], []
    for scene in scenes:
        left, bottom, right, top = scene.bounds
        if right - left < 2 * half or top - bottom < 2 * half:
            raise ImageryError(
                f"{scene.name} ({(right - left) / resolution:.0f} x {(top - bottom) / resolution:.0f} pixels) is "
                f"smaller than a {size_px}-pixel window: choose a smaller size_px"
            )
        x = rng.uniform(left + half, right - half, n_per_scene)
        y = rng.uniform(bottom + half, top - half, n_per_scene)
        to_wgs84 = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
        px, py = to_wgs84.transform(x, y)
        lon.append(np.asarray(px, np.float64))
        lat.append(np.asarray(py, np.float64))
    index = np.repeat(np.arange(len(scenes)), n_per_scene)
    if not scenes:
        return np.empty(0), np.empty(0), index
    return np.concatenate(lon), np.concatenate(lat), index
