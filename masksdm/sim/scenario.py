"""A future climate for a raster stack: the delta method on the bioclimatic variables.

:func:`write_future_rasters` turns a folder of predictor rasters (the virtual world's, or any with
WorldClim names) into a complete stack for a warmer climate, the way downscaled projections such as
WorldClim's CMIP6 layers are made from the present ones: every temperature variable (``bio_1``,
``bio_5``, ``bio_6``, ``bio_8`` .. ``bio_11``, degrees C) shifted by ``warming``; every
precipitation amount (``bio_12`` .. ``bio_14``, ``bio_16`` .. ``bio_19``, mm) scaled by ``1 +
rain_change``; the ranges and seasonality indices (``bio_2``, ``bio_3``, ``bio_4``, ``bio_7``,
``bio_15``) unchanged, as a uniform shift leaves them. The other predictors (soils, topography, the
human footprint) are kept as they are (hard links where the file system allows, else copies), so
``masksdm predict --rasters OUT`` projects onto the future with the same grid and names.

This is a scenario for trying the tool (the demo's future), not a climate projection: for a real
one, fetch WorldClim's CMIP6 layers (``masksdm fetch worldclim-future``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import rasterio

from masksdm._io import atomic_path
from masksdm.data.rasters import find_rasters
from masksdm.errors import ConfigError, DataError, OutputExistsError

__all__ = ["PRECIPITATION", "TEMPERATURE", "write_future_rasters"]

#: Bioclimatic temperatures (degrees C) that a warming shifts.
TEMPERATURE = ("bio_1", "bio_5", "bio_6", "bio_8", "bio_9", "bio_10", "bio_11")
#: Bioclimatic precipitation amounts (mm) that a rain change scales.
PRECIPITATION = ("bio_12", "bio_13", "bio_14", "bio_16", "bio_17", "bio_18", "bio_19")


def _changed(path: Path, out: Path, *, add: float = 0.0, scale: float = 1.0) -> None:
    with rasterio.open(path) as src:
        profile = src.profile
        values = src.read(masked=True).astype(np.float64)
        tags, descriptions = src.tags(), src.descriptions
    shifted = np.ma.filled(values * scale + add, np.nan)
    nodata = profile.get("nodata")
    if nodata is not None and not np.isnan(nodata):
        shifted = np.where(np.isnan(shifted), nodata, shifted)
    with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(shifted.astype(profile["dtype"]))
        dst.update_tags(**tags, scenario=f"delta method: {add:+g} degC, x{scale:g} precipitation")
        dst.descriptions = descriptions


def _kept(path: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    try:
        os.link(path, out)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copy2(path, out)


def write_future_rasters(
    rasters: str | Path, out_dir: str | Path, *, warming: float = 2.0, rain_change: float = -0.1, force: bool = False
) -> Path:
    """Write the future stack of ``rasters`` into ``out_dir`` (same sub-folders and file names).

    Args:
        rasters: folder of predictor rasters, with the WorldClim ``bio_*`` among them.
        out_dir: output folder (refused when not empty, unless ``force``).
        warming: degrees C added to the temperature variables.
        rain_change: relative change of the precipitation amounts (-0.1: 10 % drier).

    Returns:
        ``out_dir``.

    Raises:
        DataError: no bioclimatic raster among ``rasters``; ConfigError: ``rain_change <= -1``.
    """
    rasters, out_dir = Path(rasters), Path(out_dir)
    if rain_change <= -1:
        raise ConfigError(f"rain_change is a relative change above -1 (-0.1 = 10 % less rain), got {rain_change}")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise OutputExistsError(f"'{out_dir}' is not empty: pass --force to overwrite, or choose another --out")
    found = find_rasters(rasters)
    if not any(name in TEMPERATURE + PRECIPITATION for name in found):
        raise DataError(f"no bioclimatic raster (bio_1 .. bio_19) among the rasters of '{rasters}'")
    for name, path in found.items():
        target = out_dir / path.relative_to(rasters) if path.is_relative_to(rasters) else out_dir / path.name
        if name in TEMPERATURE:
            _changed(path, target, add=warming)
        elif name in PRECIPITATION:
            _changed(path, target, scale=1.0 + rain_change)
        else:
            _kept(path, target)
    return out_dir
