"""Figures for notebooks and reports: where the plots are, how training went, how subsets compare,
and maps side by side. Every function returns a matplotlib Figure (shown inline in Jupyter; write
it with :func:`masksdm.explain.report.save_figure`). Shapley figures are in
:mod:`masksdm.explain.report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from masksdm.data.rasters import read_map

__all__ = [
    "CHANGE_COLORS", "RANGE_COLORS", "SPLIT_COLORS", "embedding_figure", "estimator_figure", "locations_figure", "maps_figure", "read_map",
    "reliability_figure",
    "scenes_figure", "subsets_figure", "training_figure",
]

#: Colours of a binary range map: absent, present.
RANGE_COLORS = ("#d9d9d9", "#1b7837")
#: Colours of a range-change map's codes -2 lost, -1 kept, 0 absent in both, 1 gained (``masksdm change``).
CHANGE_COLORS = ("#b2182b", "#1b7837", "#d9d9d9", "#2166ac")
_CHANGE_NAMES = ("lost", "kept", "absent in both", "gained")

#: Colours of the train / validation / test plots.
SPLIT_COLORS = {"train": "#9ecae1", "val": "#fdae6b", "test": "#d62728"}


def maps_figure(
    paths: Sequence[str | Path],
    titles: Sequence[str] | None = None,
    *,
    band: int = 1,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    label: str = "",
    n_cols: int = 3,
    points: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Rasters side by side on ONE colour scale (so they compare), e.g. a species mapped from
    different predictor subsets. ``cmap="range"`` draws 0/1 maps as absent/present,
    ``cmap="change"`` the codes of ``masksdm change`` maps as lost/kept/absent/gained;
    ``points=(lon, lat)`` marks places (e.g. the plots where the species was found)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Colormap, ListedColormap

    if not paths:
        raise ValueError("no rasters to show")
    grids = [read_map(p, band=band) for p in paths]
    finite = np.concatenate([g[np.isfinite(g)] for g, _ in grids]) if grids else np.empty(0)
    classes = {"range": (RANGE_COLORS, ("absent", "present"), -0.5), "change": (CHANGE_COLORS, _CHANGE_NAMES, -2.5)}
    categorical = cmap in classes
    colormap: Colormap
    if categorical:
        colors, names, low = classes[cmap]
        vmin, vmax = low, low + len(colors)
        colormap = ListedColormap(list(colors))
    else:
        if finite.size:
            vmin = float(finite.min()) if vmin is None else vmin
            vmax = float(finite.max()) if vmax is None else vmax
        colormap = plt.get_cmap(cmap)
    n_cols = min(n_cols, len(paths))
    n_rows = -(-len(paths) // n_cols)
    left, right, bottom, top = grids[0][1]
    aspect = (top - bottom) / max(right - left, 1e-12)
    width = {1: 7.0, 2: 5.2}.get(n_cols, 4.2)  # inches per panel
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols + 0.8, width * aspect * n_rows + 0.9), squeeze=False,
                             layout="constrained")
    image = None
    for i, ax in enumerate(axes.ravel()):
        if i >= len(paths):
            ax.axis("off")
            continue
        values, extent = grids[i]
        image = ax.imshow(values, extent=extent, cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if points is not None:
            ax.scatter(points[0], points[1], s=3, c="black", linewidths=0)
        ax.set_title(titles[i] if titles is not None else Path(paths[i]).stem, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if categorical:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(colors, names, strict=True)],
                   loc="outside lower center", ncol=len(colors), frameon=False)
    elif image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=label)
    return fig


def locations_figure(plots: pd.DataFrame, *, background: str | Path | None = None, title: str = ""):
    """The plots on a map, coloured by split (``split`` column: the spatial blocks held out for
    validation and test), over a raster when ``background`` is given."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    if background is not None:
        values, extent = read_map(background)
        ax.imshow(values, extent=extent, cmap="Greys", alpha=0.35, interpolation="nearest")
    for split, colour in SPLIT_COLORS.items():
        chosen = plots["split"] == split if "split" in plots else np.zeros(len(plots), bool)
        if np.any(chosen):
            ax.scatter(plots["lon"][chosen], plots["lat"][chosen], s=4, c=colour, label=f"{split} ({int(np.sum(chosen))})")
    if "split" not in plots:
        ax.scatter(plots["lon"], plots["lat"], s=4, c="black", label=f"plots ({len(plots)})")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect(1 / np.cos(np.radians(float(np.nanmean(plots["lat"])))))
    ax.legend(loc="lower left", markerscale=3, fontsize=9)
    ax.set_title(title or f"{len(plots):,} plots", fontsize=11)
    fig.tight_layout()
    return fig


def training_figure(run_dir: str | Path):
    """Training loss and validation mean AUC per epoch (``metrics.csv`` of a run), with the kept
    epoch (best validation AUC) marked."""
    import matplotlib.pyplot as plt

    history = pd.read_csv(Path(run_dir) / "metrics.csv")
    best = history.loc[history["val_mean_auc"].idxmax()]
    fig, (loss, auc) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss.plot(history["epoch"], history["train_loss"], color="#2b8cbe")
    loss.set_xlabel("epoch")
    loss.set_ylabel("training loss")
    auc.plot(history["epoch"], history["val_mean_auc"], color="#d62728")
    auc.axvline(best["epoch"], color="grey", linestyle=":")
    auc.set_xlabel("epoch")
    auc.set_ylabel("validation mean AUC")
    auc.set_title(f"kept: epoch {int(best['epoch'])}, AUC {best['val_mean_auc']:.3f}", fontsize=10)
    for ax in (loss, auc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def subsets_figure(table: pd.DataFrame, *, scale: float = 100.0, title: str = "", reference: str | None = None):
    """Grouped bars of mean AUC per predictor subset (columns) and method (rows), as the table of
    :func:`masksdm.evaluation.compare.compare_subsets`; ``reference`` (a row, e.g. ``"oracle"``) is drawn as
    black ticks instead of bars."""
    import matplotlib.pyplot as plt

    methods = [m for m in table.index if m != reference]
    n, width = len(methods), 0.8 / max(len(methods), 1)
    positions = np.arange(len(table.columns))
    fig, ax = plt.subplots(figsize=(1.3 * len(positions) + 3, 4.2))
    colours = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        ax.bar(positions + (i - (n - 1) / 2) * width, scale * table.loc[method].to_numpy(dtype=float), width,
               label=method, color=colours(i))
    if reference is not None and reference in table.index:
        ax.hlines(scale * table.loc[reference].to_numpy(dtype=float), positions - 0.45, positions + 0.45,
                  color="black", linewidth=2, label=reference)
    values = scale * table.to_numpy(dtype=float)
    low = np.nanmin(values)
    ax.set_ylim(max(0.0, low - (np.nanmax(values) - low) * 0.3 - 1), None)
    ax.set_xticks(positions, list(table.columns))
    ax.set_ylabel(f"mean AUC{' x 100' if scale == 100 else ''}")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig


def reliability_figure(curves: Mapping[str, pd.DataFrame], *, title: str = ""):
    """Calibration: observed share of presences against predicted probability, one line per curve
    (e.g. per predictor subset or species, from :func:`masksdm.metrics.reliability_curve`), marker
    area growing with the number of predictions in the bin, and the diagonal a calibrated model
    would follow."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="calibrated")
    colours = plt.get_cmap("tab10")
    for i, (name, curve) in enumerate(curves.items()):
        n = curve["n"].to_numpy(dtype=float)
        ax.plot(curve["mean_predicted"], curve["observed"], color=colours(i % 10), linewidth=1.5, label=str(name))
        ax.scatter(curve["mean_predicted"], curve["observed"], s=10 + 140 * np.sqrt(n / max(n.max(), 1.0)),
                   color=colours(i % 10), alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed share of presences")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def estimator_figure(runs: pd.DataFrame):
    """Error and time of sampled Shapley estimators against the coalitions they used, from
    :func:`masksdm.explain.games.compare_estimators` (mean over repeats); the exact values' cost is the
    dotted line."""
    import matplotlib.pyplot as plt

    exact = runs[runs["method"] == "exact"].iloc[0]
    sampled = runs[runs["method"] != "exact"].groupby(["method", "budget"], as_index=False)[
        ["n_evaluations", "seconds", "rmse", "mean_se"]].mean()
    fig, (error, seconds) = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, rows in sampled.groupby("method"):
        error.plot(rows["n_evaluations"], rows["rmse"], marker="o", label=f"{method}: error")
        error.plot(rows["n_evaluations"], rows["mean_se"], linestyle="--", color=error.lines[-1].get_color(),
                   label=f"{method}: its reported SE")
        seconds.plot(rows["n_evaluations"], rows["seconds"], marker="o", label=method)
    for ax in (error, seconds):
        ax.axvline(exact["n_evaluations"], color="black", linestyle=":", label=f"exact ({int(exact['n_evaluations'])})")
        ax.set_xscale("log")
        ax.set_xlabel("coalitions evaluated")
        ax.grid(alpha=0.3)
    error.set_yscale("log")
    error.set_ylabel("RMSE vs exact (probability)")
    seconds.axhline(exact["seconds"], color="black", linewidth=0.8)
    seconds.set_ylabel(f"seconds (exact: {exact['seconds']:.2f} s)")
    error.legend(fontsize=8)
    seconds.legend(fontsize=8)
    fig.tight_layout()
    return fig


def scenes_figure(scenes: Sequence, titles: Sequence[str] | None = None, *,
                  places: tuple[np.ndarray, np.ndarray] | None = None, window: int | None = None):
    """True-colour quick looks (B04, B03, B02, 2-98 % stretch) of Sentinel-2 scenes, with the
    ``places`` ``(lon, lat)`` inside them and, with ``window`` (pixels of 10 m), the square around
    each that its embedding sees."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from foundation_encoders.imagery import locate

    where = locate(*places, list(scenes)) if places is not None else None
    n_cols = min(3, len(scenes))
    n_rows = -(-len(scenes) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.0 * n_cols, 4.2 * n_rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= len(scenes):
            ax.axis("off")
            continue
        scene = scenes[i]
        left, bottom, right, top = scene.bounds
        size = int(round((right - left) / 10))
        data, _ = scene.read((left + right) / 2, (bottom + top) / 2, size_px=size, bands=["B04", "B03", "B02"])
        low, high = np.nanpercentile(data, [2, 98])
        rgb = np.clip((np.moveaxis(data, 0, -1) - low) / max(high - low, 1e-6), 0, 1)
        ax.imshow(np.nan_to_num(rgb), extent=(left, left + 10 * size, top - 10 * size, top))
        if where is not None:
            inside = where[0] == i
            x, y = where[1][inside], where[2][inside]
            ax.scatter(x, y, s=12, c="yellow", edgecolors="black", linewidths=0.5)
            if window is not None:
                half = window * 10 / 2
                for px, py in zip(x, y, strict=True):
                    ax.add_patch(Rectangle((px - half, py - half), 2 * half, 2 * half, fill=False,
                                           edgecolor="yellow", linewidth=0.5))
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        ax.set_title(titles[i] if titles is not None else scene.name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def embedding_figure(vectors: np.ndarray, labels: Sequence[str], *, title: str = ""):
    """The first two principal components of embedding vectors (rows; NaN rows skipped), coloured
    by ``labels`` (e.g. the image each place lies in): do different landscapes get different
    vectors?"""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    vectors = np.asarray(vectors, dtype=np.float64)
    keep = np.isfinite(vectors).all(axis=1)
    labels = np.asarray(labels)[keep]
    pca = PCA(n_components=2).fit(vectors[keep])
    xy = pca.transform(vectors[keep])
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for i, label in enumerate(dict.fromkeys(labels)):
        chosen = labels == label
        shown = str(label).lstrip("_") or "?"  # matplotlib hides labels that start with "_"
        ax.scatter(xy[chosen, 0], xy[chosen, 1], s=14, color=plt.get_cmap("tab10")(i % 10), label=shown)
    share = 100 * pca.explained_variance_ratio_
    ax.set_xlabel(f"PC 1 ({share[0]:.0f} % of variance)")
    ax.set_ylabel(f"PC 2 ({share[1]:.0f} %)")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
