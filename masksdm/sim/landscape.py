"""The virtual landscape: environmental rasters over the real land mask, with known values.

The virtual world of :mod:`masksdm.sim.simulate` lives on a landscape of spatially autocorrelated
random fields (smoothed white noise, summed over several length scales), built deterministically
from a seed on a regular WGS84 grid. The fields are turned into predictors in real units, named and
grouped as the real sources that masksdm reads:

* WorldClim 2.1 (Fick & Hijmans 2017): the bioclimatic variables ``bio_1`` .. ``bio_19``, derived
  from latent temperature, continentality and rain fields with a latitude gradient, a lapse rate
  and a seasonal rain cycle, so that they keep their definitions (``bio_7 = bio_5 - bio_6``, ...);
* SoilGrids (Hengl et al. 2017): ``ORCDRC``, ``PHIHOX``, ``CECSOL``, ``BDTICM``, ``CLYPPT``,
  ``SLTPPT``, ``SNDPPT`` and ``BLDFIE``, tied to climate, elevation and texture latents;
* topography: ``Elevation`` (lowlands and ridged mountain belts), with ``Slope`` and ``Aspect``
  computed from it;
* the human footprint (Venter et al. 2016): its eight pressures and their sum ``HFP2009``,
  reprojected to Mollweide (ESRI:54009) as the real layers are distributed.

Sea cells are nodata: the land mask is that of the ``global-land-mask`` package, so coasts sit where
the real ones do. :func:`write_rasters` writes every predictor as a tiled, deflate-compressed
GeoTIFF in the data type and nodata value of its real source::

    rasters/worldclim/bio_1.tif .. bio_19.tif        float32, EPSG:4326, nodata -3.4e38
    rasters/soilgrids/ORCDRC.tif .. BLDFIE.tif       int16 (nodata -32768) or uint8 (nodata 255)
    rasters/topography/Elevation|Slope|Aspect.tif    float32, EPSG:4326, nodata -3.4e38
    rasters/human_footprint/HFP2009.tif .. Roads.tif float32, ESRI:54009 (Mollweide), -3.4e38

and returns the values exactly as written (:class:`LandscapeRasters`), so that the simulation reads
a plot's predictors as any loader of the files would. Random streams are derived per named part
(:func:`make_rng`), so changing one field never shifts another.

The data are simulated and hold no real observation; only the names, units, data types and
projections imitate the real sources.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject, transform_bounds
from scipy import ndimage, special

from masksdm._io import atomic_path
from masksdm.data.predictors import default_predictors

__all__ = [
    "RASTER_PREDICTORS",
    "Grid",
    "LandscapeRasters",
    "containing_cells",
    "is_land",
    "make_rng",
    "mollweide_crs",
    "write_rasters",
]

#: (name, group) of every raster predictor, in the order of
#: :func:`~masksdm.data.predictors.default_predictors`.
RASTER_PREDICTORS: list[tuple[str, str]] = [
    (p.name, p.group) for p in default_predictors() if p.source == "raster"
]

_FOLDERS = {"WorldClim": "worldclim", "SoilGrids": "soilgrids", "Topography": "topography",
            "Human": "human_footprint"}
_FLOAT_NODATA = -3.4e38
_INT_SOIL = {"ORCDRC", "CECSOL", "BDTICM", "BLDFIE"}  # int16, the rest of SoilGrids is uint8
_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Grid:
    """A regular WGS84 grid, rows running southwards from ``north``.

    Attributes:
        west: western edge in degrees.
        north: northern edge in degrees.
        res: cell size in degrees.
        height: number of rows.
        width: number of columns.
    """

    west: float
    north: float
    res: float
    height: int
    width: int

    @property
    def transform(self) -> Affine:
        """The affine transform from (column, row) to (longitude, latitude)."""
        return Affine(self.res, 0.0, self.west, 0.0, -self.res, self.north)

    @property
    def lon(self) -> np.ndarray:
        """Longitudes of the column centres, west to east."""
        return self.west + (np.arange(self.width) + 0.5) * self.res

    @property
    def lat(self) -> np.ndarray:
        """Latitudes of the row centres, north to south."""
        return self.north - (np.arange(self.height) + 0.5) * self.res


def make_rng(seed: int, *keys: str) -> np.random.Generator:
    """An independent generator per named part, so changing one part never shifts another.

    Args:
        seed: the world's non-negative seed.
        *keys: names of the part, e.g. ``("field", "temp")``; each is hashed with CRC-32.

    Returns:
        A generator seeded by ``seed`` with the keys as spawn key.
    """
    spawn_key = tuple(zlib.crc32(k.encode()) for k in keys)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=spawn_key))


def is_land(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Whether each point is on land, after the ``global-land-mask`` package.

    Args:
        lat: latitudes in degrees.
        lon: longitudes in degrees, of the same shape.

    Returns:
        A boolean array of that shape.
    """
    # Imported here: global-land-mask loads a 1 km global mask (~0.9 GB, ~3 s) on import.
    from global_land_mask import globe

    return np.asarray(globe.is_land(lat, lon), dtype=bool)


def _noise(seed: int, name: str, grid: Grid, sigma_deg: float) -> np.ndarray:
    """Standardised white noise smoothed at ``sigma_deg`` (broad scales on a coarser grid)."""
    step = max(1, int(sigma_deg / grid.res / 3))
    shape = (grid.height // step + 2, grid.width // step + 2)
    white = make_rng(seed, "field", name).standard_normal(shape)
    smooth = ndimage.gaussian_filter(white, sigma_deg / (grid.res * step))
    rows, cols = np.meshgrid((np.arange(grid.height) + 0.5) / step,
                             (np.arange(grid.width) + 0.5) / step, indexing="ij")
    out = ndimage.map_coordinates(smooth, [rows, cols], order=1, mode="nearest")
    return (out - out.mean()) / max(float(out.std()), 1e-12)


def _fractal(seed: int, name: str, grid: Grid, scales: tuple[tuple[float, float], ...]
             ) -> np.ndarray:
    total = np.sum([w * _noise(seed, f"{name}{s}", grid, s) for s, w in scales], axis=0)
    return (total - total.mean()) / max(float(total.std()), 1e-12)


def _standardise(x: np.ndarray, land: np.ndarray) -> np.ndarray:
    return (x - x[land].mean()) / max(float(x[land].std()), 1e-12)


def _environment(seed: int, grid: Grid, land: np.ndarray) -> dict[str, np.ndarray]:
    """All raster predictors in real units on the WGS84 grid (float64, sea included)."""
    lat = np.broadcast_to(grid.lat[:, None], land.shape)
    alat = np.abs(lat)
    # Distance to the sea (degrees) drives continentality, rain and coastal plains.
    dist = np.full(land.shape, 10.0)
    if (~land).any():
        dist = np.clip((ndimage.distance_transform_edt(land) - 0.5) * grid.res, 0.0, None)
    # Elevation: lowland undulation plus ridged mountain belts, flattened towards the coast.
    e1, e2, e3, e4 = (_noise(seed, f"elev{s}", grid, s) for s in (6.0, 2.0, 0.6, 0.2))
    ridge = (1.0 - np.abs(e2)) ** 2 * 2.0
    mountains = special.expit(3.0 * (e1 - 0.9))
    elev = 300 + 200 * e1 + 100 * e3 + 40 * e4 + mountains * (1200 + 1300 * ridge + 500 * e3)
    elev = np.clip(elev * (1.0 - np.exp(-dist / 0.4)), -30.0, 6500.0)
    # Slope and aspect from the elevation field, with metres per degree as spacing.
    dz_dx = np.gradient(elev, axis=1) / (grid.res * _M_PER_DEG * np.cos(np.radians(lat)))
    dz_dn = -np.gradient(elev, axis=0) / (grid.res * _M_PER_DEG)  # rows run southwards
    slope = np.degrees(np.arctan(np.hypot(dz_dx, dz_dn)))
    aspect = np.degrees(np.arctan2(-dz_dx, -dz_dn)) % 360.0  # direction the downslope faces
    # Climate latents: temperature anomaly, continentality, rain, rain seasonality, rain phase.
    n_t, n_s, n_p, n_ps = (_fractal(seed, k, grid, ((8.0, 1.0), (2.0, 0.5), (0.5, 0.2)))
                           for k in ("temp", "seas", "prec", "pseas"))
    n_ph = _noise(seed, "phase", grid, 8.0)
    temp = 27.5 - 0.0068 * lat**2 - 0.0065 * elev + 1.8 * n_t
    sd = np.clip(0.6 + 0.12 * alat + 0.5 * np.sqrt(dist) + 0.6 * n_s, 0.3, 20.0)
    eq, sub = np.exp(-((lat / 12) ** 2)), np.exp(-(((alat - 24) / 8) ** 2))
    mid = np.exp(-(((alat - 52) / 12) ** 2))
    logp = 6.4 + 1.2 * eq - 1.0 * sub + 0.25 * mid - 0.05 * np.minimum(dist, 30)
    logp = logp + 0.25 * elev / 1000 + 0.45 * n_p
    prec = np.clip(np.exp(logp), 5.0, 9000.0)
    cv = np.clip(30 + 40 * sub + 25 * eq + 10 * n_ps - 12 * (logp - 6.4), 5.0, 200.0)
    # Negative phase = winter rain, as around 37 degrees on western coasts (Mediterranean climates).
    phase = np.tanh(0.8 * n_ph + 1.0 - 1.5 * np.exp(-(((alat - 37) / 6) ** 2)))
    amp = 1.414 * cv / 100  # amplitude of a sinusoidal monthly rain cycle with this CV
    bio2 = np.clip(7 + 0.25 * sd + 3.0 * (6.6 - logp) + 0.8 * n_s, 2.0, 22.0)
    bio5, bio6 = temp + 1.41 * sd + bio2 / 2, temp - 1.41 * sd - bio2 / 2
    out = {
        "bio_1": temp, "bio_2": bio2, "bio_3": 100 * bio2 / (bio5 - bio6), "bio_4": 100 * sd,
        "bio_5": bio5, "bio_6": bio6, "bio_7": bio5 - bio6, "bio_8": temp + 1.2 * sd * phase,
        "bio_9": temp - 1.2 * sd * phase, "bio_10": temp + 1.2 * sd, "bio_11": temp - 1.2 * sd,
        "bio_12": prec, "bio_13": prec / 12 * (1 + amp),
        "bio_14": prec / 12 * np.clip(1 - amp, 0, None),
        "bio_15": cv, "bio_16": prec / 4 * (1 + 0.95 * amp),
        "bio_17": prec / 4 * np.clip(1 - 0.95 * amp, 0, None),
        "bio_18": prec / 4 * np.clip(1 + 0.95 * amp * phase, 0, None),
        "bio_19": prec / 4 * np.clip(1 - 0.95 * amp * phase, 0, None),
    }
    # Soils: organic carbon in cold wet places, acid where wet, texture from two latents.
    wet, warm = _standardise(logp, land), _standardise(temp, land)
    n_org, n_ph2, n_c, n_si, n_d, n_bd = (_noise(seed, k, grid, 1.5)
                                          for k in ("org", "ph", "clay", "silt", "depth", "bd"))
    orc = np.clip(np.exp(2.6 - 0.5 * warm + 0.35 * wet + 0.4 * n_org + 0.3 * elev / 1000), 1, 600)
    tex = np.stack([np.log(20) + 0.4 * n_c + 0.15 * warm, np.log(35) + 0.4 * n_si + 0.1 * wet,
                    np.log(45) + 0.3 * (n_c * -0.5 - wet)])
    tex = 100 * special.softmax(tex, axis=0)
    clay, silt = np.round(tex[0]), np.round(tex[1])
    out |= {
        "ORCDRC": orc,
        "PHIHOX": 10 * np.clip(6.3 - 0.8 * wet + 0.3 * warm + 0.45 * n_ph2, 3.5, 9.5),
        "CECSOL": np.clip(3 + 0.5 * clay + 0.15 * orc + 2 * n_org, 1, 150),
        "BDTICM": np.clip(np.exp(7.0 - 0.6 * elev / 1000 - 0.08 * slope + 0.5 * n_d), 10, 30000),
        "CLYPPT": clay, "SLTPPT": silt, "SNDPPT": 100 - clay - silt,
        "BLDFIE": np.clip(1500 - 4 * orc + 2 * (100 - clay - silt) - 90 + 60 * n_bd, 700, 1900),
        "Elevation": elev, "Slope": slope, "Aspect": aspect,
    }
    # Human footprint (Venter et al. 2016 scores): pressure is high in warm-temperate lowlands.
    n_h1, n_h2 = _noise(seed, "human", grid, 3.0), _noise(seed, "human_local", grid, 0.5)
    n_city, n_crop = _noise(seed, "city", grid, 0.2), _noise(seed, "crop", grid, 0.8)
    suit = n_h1 + 0.5 * n_h2 - 0.8 * elev / 1000 - 0.1 * np.abs(temp - 13) + 0.4 * (dist < 2)
    suit = suit + 0.3 * wet
    h = special.expit(suit)
    pop = np.clip(10 * h**1.5 + 1.5 * n_city, 0, 10)
    crop = np.where(0.7 * n_crop + 2.5 * h - 0.2 * slope > 1.6, 7.0,
                    np.where(0.7 * n_crop + 2.5 * h > 1.0, 4.0, 0.0))
    hum = {
        "Built2009": np.where(n_city + 2 * h > 3.0, 10.0, 0.0), "Croplands2005": crop,
        "Lights2009": np.clip(np.round(0.8 * pop + 2 * (n_city > 1.5)), 0, 10),
        "Navwater2009": np.clip(4 * np.exp(-dist / 0.3) * (0.5 + h), 0, 4),
        "Pasture2009": np.where(crop == 7, 0.0, np.clip(4 * special.expit(n_crop - 0.5 + h), 0, 4)),
        "Popdensity2010": pop,
        "Railways": np.where(0.5 * n_city + 2.5 * h + 0.5 * n_h2 > 2.3, 8.0, 0.0),
        "Roads": np.clip(10 * h + 1.5 * n_h2 - 1, 0, 8),
    }
    out |= {"HFP2009": np.minimum(sum(hum.values()), 50.0)} | hum
    out["_phase"] = phase
    return out


def mollweide_crs() -> CRS:
    """The Mollweide projection of the human footprint (ESRI:54009, or its PROJ string)."""
    try:
        return CRS.from_string("ESRI:54009")
    except Exception:  # pragma: no cover - older PROJ databases
        return CRS.from_proj4("+proj=moll +lon_0=0 +datum=WGS84 +units=m +no_defs")


def _write_raster(path: Path, values: np.ndarray, crs: CRS, transform: Affine, group: str) -> None:
    """Write one band (NaN = nodata) as a tiled deflate GeoTIFF in the real source's data type."""
    dtype, nodata = "float32", _FLOAT_NODATA
    if group == "SoilGrids":
        dtype, nodata = ("int16", -32768) if path.stem in _INT_SOIL else ("uint8", 255)
    height, width = values.shape
    tiles = {}
    if min(height, width) >= 16:
        tiles = dict(tiled=True, blockxsize=min(256, width // 16 * 16),
                     blockysize=min(256, height // 16 * 16))
    with atomic_path(path) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", height=height, width=width, count=1, dtype=dtype, crs=crs,
        transform=transform, nodata=nodata, compress="deflate", **tiles,
    ) as dst:
        dst.write(np.where(np.isnan(values), nodata, values).astype(dtype), 1)


def containing_cells(x: np.ndarray, y: np.ndarray, transform: Affine, shape: tuple[int, ...]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column of the cell containing each point; whether it is inside and off any edge.

    Args:
        x: point x coordinates in the raster's CRS.
        y: point y coordinates, of the same shape.
        transform: the raster's affine transform.
        shape: the raster's (height, width).

    Returns:
        Rows and columns (clipped into the raster), and whether each point lies inside it and
        farther than 1e-6 cell from any cell edge.
    """
    fc, fr = (x - transform.c) / transform.a, (y - transform.f) / transform.e
    row, col = np.floor(fr).astype(np.int64), np.floor(fc).astype(np.int64)
    # Points within 1e-6 cell of an edge are refused, so no loader can round them to a neighbour.
    off_edge = (np.abs(fr - np.round(fr)) > 1e-6) & (np.abs(fc - np.round(fc)) > 1e-6)
    inside = (row >= 0) & (row < shape[0]) & (col >= 0) & (col < shape[1]) & off_edge
    return np.clip(row, 0, shape[0] - 1), np.clip(col, 0, shape[1] - 1), inside


@dataclass
class LandscapeRasters:
    """The rasters exactly as written (NaN = nodata) and how to find a point's cell.

    Attributes:
        values: each raster predictor's values as written; the human footprint on its
            Mollweide grid, the rest on ``grid``.
        grid: the WGS84 grid.
        moll_transform: the affine transform of the Mollweide grid.
        to_moll: transformer from (longitude, latitude) to Mollweide (x, y).
    """

    values: dict[str, np.ndarray]
    grid: Grid
    moll_transform: Affine
    to_moll: Transformer

    def cell_values(self, lon: np.ndarray, lat: np.ndarray
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each raster at the cell containing each point; whether every raster is valid there.

        Args:
            lon: longitudes in degrees.
            lat: latitudes in degrees, of the same shape.

        Returns:
            The value of each raster predictor at each point (the human footprint at the
            Mollweide cell containing the projected point), and whether the point lies off every
            cell edge, inside both grids and on valid ``bio_1`` and ``HFP2009`` cells.
        """
        row, col, ok = containing_cells(lon, lat, self.grid.transform,
                                        (self.grid.height, self.grid.width))
        mx, my = self.to_moll.transform(lon, lat)
        shape = self.values["HFP2009"].shape
        mrow, mcol, mok = containing_cells(np.asarray(mx), np.asarray(my), self.moll_transform,
                                           shape)
        out = {name: self.values[name][(mrow, mcol) if group == "Human" else (row, col)]
               for name, group in RASTER_PREDICTORS}
        return out, ok & mok & np.isfinite(out["bio_1"]) & np.isfinite(out["HFP2009"])


def write_rasters(seed: int, grid: Grid, land: np.ndarray, folder: Path
                  ) -> tuple[LandscapeRasters, np.ndarray]:
    """Write every raster predictor under ``folder``; return them as written.

    Args:
        seed: the world's non-negative seed.
        grid: the WGS84 grid.
        land: boolean land mask on ``grid``; sea cells are written as nodata.
        folder: the ``rasters`` folder; one sub-folder per predictor group is written in it.

    Returns:
        The rasters as written, and the phase of the rain cycle on ``grid`` (negative where rain
        falls in winter), which is no raster but shapes the plots' biomes.
    """
    env = _environment(seed, grid, land)
    geo, moll = CRS.from_epsg(4326), mollweide_crs()
    values = {}
    for name, group in RASTER_PREDICTORS:
        field = np.where(land, env[name], np.nan)
        # Keep the values exactly as written: integers for SoilGrids, float32 for the rest.
        values[name] = np.round(field) if group == "SoilGrids" else field.astype(np.float32) + 0.0
    # The human footprint comes in Mollweide, as Venter et al. (2016) distribute it.
    px = grid.res * 100_000.0
    south, east = grid.north - grid.height * grid.res, grid.west + grid.width * grid.res
    b = transform_bounds(geo, moll, grid.west, south, east, grid.north, densify_pts=101)
    x0, y0 = np.floor(b[0] / px), np.floor(b[1] / px)
    x1, y1 = np.ceil(b[2] / px), np.ceil(b[3] / px)
    moll_transform = Affine(px, 0.0, float(x0 * px), 0.0, -px, float(y1 * px))
    human = [name for name, group in RASTER_PREDICTORS if group == "Human"]
    projected = np.full((len(human), int(y1 - y0), int(x1 - x0)), np.nan, dtype=np.float32)
    reproject(np.stack([values[n] for n in human]).astype(np.float32), projected,
              src_transform=grid.transform, src_crs=geo, src_nodata=np.nan,
              dst_transform=moll_transform, dst_crs=moll, dst_nodata=np.nan,
              resampling=Resampling.nearest)
    values |= {name: band.astype(float) for name, band in zip(human, projected, strict=True)}
    for name, group in RASTER_PREDICTORS:
        crs, transform = (moll, moll_transform) if group == "Human" else (geo, grid.transform)
        _write_raster(folder / _FOLDERS[group] / f"{name}.tif", values[name], crs, transform, group)
    to_moll = Transformer.from_crs(geo, moll, always_xy=True)
    return LandscapeRasters(values, grid, moll_transform, to_moll), env["_phase"]
