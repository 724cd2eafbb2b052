"""Tables and bar plots of Shapley values, for people who would rather look than read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from masksdm._io import atomic_path
from masksdm.explain.core import ShapleyResult

__all__ = [
    "global_figure", "global_table", "local_figure", "local_table", "map_figure", "mean_over_species", "plot_global",
    "plot_local", "plot_map", "save_figure", "site_figure",
]


def _std_errors(result: ShapleyResult) -> np.ndarray:
    return np.full_like(result.values, np.nan) if result.std_errors is None else result.std_errors


def global_table(result: ShapleyResult, species: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per player (and per species when ``result`` is per species).

    Columns: [``species``], ``player``, ``value``, ``std_error`` (NaN when exact), ``base_value``
    (v of the empty coalition), ``full_value`` (v with every player), ``method``.
    """
    values, se = np.atleast_2d(result.values), np.atleast_2d(_std_errors(result))
    k = len(result.players)
    frame = pd.DataFrame({
        "player": np.tile(result.players, len(values)),
        "value": values.ravel(),
        "std_error": se.ravel(),
        "base_value": np.repeat(np.atleast_1d(result.base_value), k),
        "full_value": np.repeat(np.atleast_1d(result.full_value), k),
        "method": result.method,
    })
    if species is not None:
        frame.insert(0, "species", np.repeat(list(species), k))
    return frame


def local_table(result: ShapleyResult, sites: Sequence, species: Sequence[str]) -> pd.DataFrame:
    """Long table of local values (N, n_species, k): one row per site, species and player.

    Columns: ``site``, ``species``, ``player``, ``value``, ``std_error``, ``base_value`` and
    ``prediction`` (the value with every player; base + sum of values).
    """
    n, n_species, k = result.values.shape
    return pd.DataFrame({
        "site": np.repeat(np.asarray(sites), n_species * k),
        "species": np.tile(np.repeat(list(species), k), n),
        "player": np.tile(result.players, n * n_species),
        "value": result.values.ravel(),
        "std_error": _std_errors(result).ravel(),
        "base_value": np.repeat(result.base_value.ravel(), k),
        "prediction": np.repeat(result.full_value.ravel(), k),
    })


def mean_over_species(result: ShapleyResult, species: Sequence[str] | None = None) -> ShapleyResult:
    """Global values of the mean over species, from per-species values (n_species, k), with the
    standard error of that mean over the species as ``std_errors``.

    For a metric averaged over species (mean AUC, mean probability), Shapley values are linear in
    the game, so the mean of the per-species values IS the global value of the mean (exactly what
    ``global_shapley(..., per_species=False)`` returns). The standard error, std / sqrt(n) over
    species, says how much it would move with another draw of species like these; it includes the
    sampling error of per-species estimates.

    Raises:
        ValueError: ``result`` is not per species (2-D values) or has fewer than two rows.
    """
    values = np.asarray(result.values, dtype=float)
    if values.ndim != 2 or len(values) < 2:
        raise ValueError(f"need per-species values (n_species >= 2, k), got shape {values.shape}: "
                         "call global_shapley(..., per_species=True)")
    if species is not None and len(species) != len(values):
        raise ValueError(f"{len(species)} species names for {len(values)} rows of values")
    n = len(values)
    return ShapleyResult(
        players=list(result.players),
        values=values.mean(axis=0),
        base_value=np.asarray(np.mean(result.base_value)),
        full_value=np.asarray(np.mean(result.full_value)),
        std_errors=values.std(axis=0, ddof=1) / np.sqrt(n),
        method=f"{result.method}, mean of {n} species",
        n_evaluations=result.n_evaluations,
        n_samples=result.n_samples,
        converged=result.converged,
    )


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure as PNG (150 dpi) atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def global_figure(result: ShapleyResult, *, title: str = "", unit: str = "", top: int | None = None):
    """Horizontal bars of global values (k,), largest on top, with 2-SE error bars when the result
    has standard errors; ``top`` keeps the players of largest absolute value. Returns the Figure."""
    import matplotlib.pyplot as plt

    values = np.asarray(result.values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"need one value per player, got shape {values.shape}: see mean_over_species")
    order = np.argsort(values)
    if top is not None and top < len(order):
        order = np.sort(np.argsort(np.abs(values))[-top:])
        order = order[np.argsort(values[order])]
    se = None if result.std_errors is None else 2 * np.asarray(result.std_errors)[order]
    fig, ax = plt.subplots(figsize=(6.4, 0.4 * len(order) + 1.6))
    colours = np.where(values[order] >= 0, "#2b8cbe", "#e34a33")
    ax.barh(np.array(result.players)[order], values[order], xerr=se, color=colours, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"Shapley value{f' ({unit})' if unit else ''}")
    base, full = float(np.asarray(result.base_value)), float(np.asarray(result.full_value))
    shown = f", top {len(order)} of {len(values)}" if len(order) < len(values) else ""
    ax.set_title(
        f"{title}\nno predictor: {base:.3g}, all: {full:.3g} ({result.method}"
        f"{', error bars 2 SE' if se is not None else ''}{shown})",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_global(result: ShapleyResult, path: str | Path, *, title: str = "", unit: str = "") -> Path:
    """:func:`global_figure` written to a PNG file."""
    return save_figure(global_figure(result, title=title, unit=unit), path)


def local_figure(result: ShapleyResult, *, species: str, unit: str = ""):
    """Two panels for local values of one species: the spread over sites per player (box plot),
    and the mean absolute value per player (bar plot). Returns the Figure."""
    import matplotlib.pyplot as plt

    values = np.asarray(result.values)[:, 0, :] if np.ndim(result.values) == 3 else np.asarray(result.values)
    strength = np.abs(values).mean(axis=0)
    order = np.argsort(strength)
    names = np.array(result.players)[order]
    rows = np.arange(len(names))  # one row per player on both panels
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * len(names) + 1.8), sharey=True)
    left.boxplot(values[:, order], positions=rows, orientation="horizontal", showfliers=False)
    left.set_yticks(rows, names)
    left.axvline(0, color="black", linewidth=0.8)
    left.set_xlabel(f"Shapley value per site{f' ({unit})' if unit else ''}")
    right.barh(rows, strength[order], color="#2b8cbe")
    right.set_xlabel("mean |Shapley value|")
    fig.suptitle(f"{species}: what drives the prediction at {len(values)} sites", fontsize=11)
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    return fig


def plot_local(result: ShapleyResult, path: str | Path, *, species: str, unit: str = "") -> Path:
    """:func:`local_figure` written to a PNG file."""
    return save_figure(local_figure(result, species=species, unit=unit), path)


def site_figure(result: ShapleyResult, site: int = 0, species: int = 0, *, title: str = "", unit: str = "probability"):
    """Waterfall of the local values at one site for one species: from the value with no
    predictor (the base), each player's value in turn (largest |value| first) up to the
    prediction with all of them. Returns the Figure."""
    import matplotlib.pyplot as plt

    values = np.asarray(result.values, dtype=float)
    if values.ndim != 3:
        raise ValueError(f"need local values (sites, species, k), got shape {values.shape}")
    phi = values[site, species]
    base = float(np.asarray(result.base_value)[site, species])
    full = float(np.asarray(result.full_value)[site, species])
    order = np.argsort(-np.abs(phi))
    starts = base + np.concatenate([[0.0], np.cumsum(phi[order])[:-1]])
    fig, ax = plt.subplots(figsize=(6.4, 0.4 * len(phi) + 1.8))
    rows = np.arange(len(phi))[::-1]
    ax.barh(rows, phi[order], left=starts, color=np.where(phi[order] >= 0, "#2b8cbe", "#e34a33"))
    for row, start, value in zip(rows, starts, phi[order], strict=True):
        ax.text(start + value, row, f" {value:+.3f}", va="center", ha="left" if value >= 0 else "right", fontsize=8)
    ax.set_yticks(rows, np.array(result.players)[order])
    ax.axvline(base, color="grey", linestyle=":", linewidth=1)
    ax.axvline(full, color="black", linewidth=1)
    ax.set_xlabel(unit)
    ax.set_title(f"{title}\nno predictor {base:.3f} (dotted) -> all {full:.3f} (solid)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def map_figure(tif: str | Path, *, max_pixels: int = 600):
    """Panels of a Shapley map GeoTIFF: prediction and base value, then one diverging panel per
    player (blue raises the prediction, red lowers it), all players on one colour scale. Returns
    the Figure."""
    import matplotlib.pyplot as plt
    import rasterio

    from masksdm.data.rasters import read_map

    bands, extent = read_map(tif, band=None, max_pixels=max_pixels)
    with rasterio.open(tif) as src:
        names = list(src.descriptions)
    players = bands[1:-1]
    limit = float(np.nanpercentile(np.abs(players), 99)) if np.isfinite(players).any() else 1.0
    order = [len(names) - 1, 0, *range(1, len(names) - 1)]
    n_cols = min(4, len(order))
    n_rows = -(-len(order) // n_cols)
    aspect = bands.shape[1] / bands.shape[2]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, (3.2 * aspect + 0.6) * n_rows), squeeze=False)
    for ax, i in zip(axes.ravel(), order, strict=False):
        player = 0 < i < len(names) - 1
        image = ax.imshow(
            bands[i], extent=extent, cmap="RdBu" if player else "viridis",
            vmin=-limit if player else None, vmax=limit if player else None, interpolation="nearest",
        )
        ax.set_title(names[i] or f"band {i + 1}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8)
    for ax in axes.ravel()[len(order):]:
        ax.axis("off")
    return fig


def plot_map(tif: str | Path, path: str | Path, *, max_pixels: int = 600) -> Path:
    """:func:`map_figure` written to a PNG file."""
    return save_figure(map_figure(tif, max_pixels=max_pixels), path)
