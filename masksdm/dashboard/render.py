"""Rendering for the dashboard page: grids to RGBA overlays, PNG and GeoTIFF file contents."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from masksdm.plots import RANGE_COLORS

if TYPE_CHECKING:
    from masksdm.dashboard.view import Dashboard

__all__ = ["colorize", "geotiff_bytes", "png_bytes"]


def colorize(grid: np.ndarray, *, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "viridis",
             opacity: float = 0.8, colors: Sequence[str] | None = None) -> np.ndarray:
    """RGBA uint8 (H, W, 4) of a grid through a matplotlib colormap (or ``"range"``: 0 absent,
    1 present in :data:`RANGE_COLORS`; or ``colors``: one colour per class from ``vmin`` to
    ``vmax``); NaN transparent."""
    import matplotlib
    from matplotlib.colors import Colormap, ListedColormap

    colormap: Colormap
    if colors is not None:
        colormap = ListedColormap(list(colors))
    else:
        colormap = ListedColormap(list(RANGE_COLORS)) if cmap == "range" else matplotlib.colormaps[cmap]
    scaled = (np.asarray(grid, dtype=np.float64) - vmin) / ((vmax - vmin) or 1.0)
    rgba = colormap(np.clip(np.nan_to_num(scaled, nan=0.0), 0, 1))
    rgba[..., 3] = np.where(np.isnan(grid), 0.0, opacity)
    return (rgba * 255).round().astype(np.uint8)


def png_bytes(rgba: np.ndarray) -> bytes:
    """PNG file contents of an RGBA image."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    plt.imsave(buffer, rgba, format="png")
    return buffer.getvalue()


def geotiff_bytes(grid: np.ndarray, board: Dashboard, *, description: str) -> bytes:
    """A one-band float32 GeoTIFF of a displayed ``grid``, georeferenced, as file contents."""
    from rasterio.io import MemoryFile

    profile = board.stack.profile(count=1)
    profile.update(height=board.shape[0], width=board.shape[1], transform=board.transform)
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(np.asarray(grid, dtype=np.float32), 1)
            dst.set_band_description(1, description)
        return bytes(memory.read())
