"""The workspace: the folder of tables every command and the app share.

Layout::

    workspace.json        what was prepared, from what, with which split settings
    plots.parquet         one row per plot: plot_id, lon, lat, split, one column per predictor (raw units)
    species.parquet       species_id, species, n_plots and per-split counts
    occurrences.parquet   one row per presence: plot_id, species_id
    predictors.json       name, group, source and unit of each predictor, in model input order
    normalisation.json    mean and std of each predictor on the TRAINING split only
    embeddings/<name>.*   optional embedding vectors per plot (.parquet) and per map cell (.tif),
                          e.g. SMARTIES satellite embeddings (see masksdm.data.embeddings)
    models/<run>/         trained models (see masksdm.model.checkpoint)

Plots are split into train/validation/test by spatial blocks (default 1 degree), as in the MaskSDM
paper, so that test plots are spatially separated from training plots.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from masksdm._io import write_json, write_parquet
from masksdm._version import __version__
from masksdm.data.embeddings import EMBEDDINGS_DIR, align_embeddings
from masksdm.data.plotdata import PlotData, check_coordinates
from masksdm.data.predictors import (
    Predictor,
    catalogue_entry,
    check_input_order,
    default_predictors,
    normalise_inputs,
)
from masksdm.errors import DataError, OutputExistsError

__all__ = ["SPLITS", "Workspace", "prepare_workspace", "spatial_block_split"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_FILES = ("workspace.json", "plots.parquet", "species.parquet", "occurrences.parquet", "predictors.json", "normalisation.json")


def spatial_block_split(
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    block_size: float = 1.0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    seed: int = 42,
) -> np.ndarray:
    """Assign each point to ``"train"``, ``"val"`` or ``"test"`` by whole spatial blocks.

    Blocks of ``block_size`` degrees are shuffled with ``seed``; blocks go to test until it holds
    ``test_fraction`` of the points, then to validation until it holds ``val_fraction``, the rest to
    train. Every block lies entirely in one split.

    >>> split = spatial_block_split(np.arange(100.0) % 10, np.zeros(100), block_size=1, seed=0)
    >>> sorted(set(split.tolist())), int((split == "test").sum())
    (['test', 'train', 'val'], 20)
    """
    if block_size <= 0:
        raise DataError(f"block_size must be positive, got {block_size=}")
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise DataError(f"need 0 < test_fraction, 0 <= val_fraction and a sum < 1, got {test_fraction=}, {val_fraction=}")
    bx = np.floor(np.asarray(lon) / block_size).astype(np.int64)
    by = np.floor(np.asarray(lat) / block_size).astype(np.int64)
    blocks, block_of = np.unique(np.stack([bx, by], axis=1), axis=0, return_inverse=True)
    block_of = block_of.ravel()
    if len(blocks) < 3:
        raise DataError(
            f"only {len(blocks)} spatial block(s) of {block_size} degrees hold plots, too few for a "
            "train/validation/test split: pass a smaller --block-size"
        )
    counts = np.bincount(block_of, minlength=len(blocks))
    order = np.random.default_rng(seed).permutation(len(blocks))
    cumulative = np.cumsum(counts[order]) / counts.sum()
    start = np.concatenate([[0.0], cumulative[:-1]])  # share of points before each block
    assigned = np.where(start < test_fraction, 0, np.where(start < test_fraction + val_fraction, 1, 2))
    assigned[-1] = 2  # the last block always trains, so train is never empty
    split_of_block = np.empty(len(blocks), dtype=np.int64)
    split_of_block[order] = assigned
    return np.array(["test", "val", "train"])[split_of_block[block_of]]


def _order_predictors(names: Sequence[str], groups: Mapping[str, str], sources: Mapping[str, str]) -> list[Predictor]:
    """Catalogue predictors in the paper's order first, then the others by name."""
    position = {p.name: i for i, p in enumerate(default_predictors())}
    ordered = sorted(names, key=lambda n: (position.get(n, len(position)), n))
    out = []
    for name in ordered:
        known = catalogue_entry(name)
        out.append(
            Predictor(
                name=name,
                group=groups.get(name, known.group if known else "Other"),
                source=sources.get(name, "table"),
                unit=known.unit if known else "",
            )
        )
    return out


def prepare_workspace(
    data: PlotData,
    out_dir: str | Path,
    *,
    rasters: Mapping[str, Path] | None = None,
    raster_groups: Mapping[str, str] | None = None,
    add_location: bool = True,
    block_size: float = 1.0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    seed: int = 42,
    force: bool = False,
    progress: bool = True,
) -> Workspace:
    """Build a workspace from plot data and raster predictors.

    Args:
        data: plots and occurrences from any loader (``load_splotopen``, ``load_presence_table``).
        out_dir: workspace folder to create.
        rasters: predictor name -> raster path, extracted at plot coordinates.
        raster_groups: predictor name -> group for rasters (default: the catalogue's group).
        add_location: add ``Longitude``/``Latitude`` predictors (group Location) when absent.
        block_size, test_fraction, val_fraction, seed: the spatial block split.
        force: overwrite an existing workspace.
        progress: show progress bars.
    """
    out_dir = Path(out_dir)
    if (out_dir / "workspace.json").exists() and not force:
        raise OutputExistsError(f"a workspace already exists in '{out_dir}': pass --force to rebuild it")
    plots = data.plots.reset_index(drop=True).copy()
    check_coordinates(plots["lon"], plots["lat"])
    if plots["plot_id"].duplicated().any():
        raise DataError(f"{int(plots['plot_id'].duplicated().sum())} duplicated plot ids: plot ids must be unique")
    if add_location:
        plots["Longitude"] = plots.get("Longitude", plots["lon"])
        plots["Latitude"] = plots.get("Latitude", plots["lat"])
    sources = {c: "table" for c in plots.columns if c not in ("plot_id", "lon", "lat")}
    groups: dict[str, str] = {}
    if rasters:
        from masksdm.data.rasters import extract_rasters, raster_group

        clash = sorted(set(rasters) & set(sources))
        if clash:
            raise DataError(f"predictors {clash} come both from the plot table and from rasters: rename or drop one")
        values = extract_rasters(rasters, plots["lon"].to_numpy(), plots["lat"].to_numpy(), progress=progress)
        for name in rasters:
            plots[name] = values[name].to_numpy()
            sources[name] = "raster"
            groups[name] = (raster_groups or {}).get(name) or raster_group(Path(rasters[name]))
    names = list(sources)
    for name in names:
        plots[name] = pd.to_numeric(plots[name], errors="raise").astype(np.float64)
        n_inf = int(np.isinf(plots[name]).sum())
        if n_inf:
            raise DataError(
                f"predictor {name!r} has {n_inf} infinite values: declare the raster's nodata value or "
                "replace them by NA in the table (missing values are fine: MaskSDM masks them)"
            )
    plots["split"] = spatial_block_split(
        plots["lon"].to_numpy(), plots["lat"].to_numpy(), block_size=block_size,
        test_fraction=test_fraction, val_fraction=val_fraction, seed=seed,
    )
    train = plots["split"] == "train"
    empty = [n for n in names if plots.loc[train, n].notna().sum() == 0]
    if empty:
        log.info("dropping predictors without any value in the training split: %s", empty)
        names = [n for n in names if n not in empty]
    predictors = _order_predictors(names, groups, sources)
    names = [p.name for p in predictors]
    if not names:
        raise DataError("no predictor left: give rasters (--rasters) or predictor columns in the plot table")

    stats = {}
    for name in names:
        col = plots.loc[train, name]
        std = float(col.std(ddof=0))
        stats[name] = {"mean": float(col.mean()), "std": std if np.isfinite(std) else 0.0}

    occ = data.occurrences
    species_names = np.sort(occ["species"].astype(str).unique())
    if len(species_names) == 0:
        raise DataError("no species occurrences: check the species filter (--min-plots) and the input table")
    species_id = pd.Series(np.arange(len(species_names)), index=species_names)
    occurrences = pd.DataFrame(
        {"plot_id": occ["plot_id"].to_numpy(), "species_id": species_id.loc[occ["species"].astype(str)].to_numpy()}
    ).drop_duplicates()
    unknown = ~occurrences["plot_id"].isin(plots["plot_id"])
    if unknown.any():
        raise DataError(f"{int(unknown.sum())} occurrences refer to plots missing from the plot table")
    split_of = plots.set_index("plot_id")["split"]
    occ_split = split_of.loc[occurrences["plot_id"]].to_numpy()
    species = pd.DataFrame({"species_id": np.arange(len(species_names)), "species": species_names})
    species["n_plots"] = np.bincount(occurrences["species_id"], minlength=len(species)).astype(np.int64)
    for split in SPLITS:
        ids = occurrences["species_id"].to_numpy()[occ_split == split]
        species[f"n_{split}"] = np.bincount(ids, minlength=len(species)).astype(np.int64)

    out_dir.mkdir(parents=True, exist_ok=True)
    table = plots[["plot_id", "lon", "lat", "split", *names]]
    write_parquet(out_dir / "plots.parquet", table)
    write_parquet(out_dir / "species.parquet", species)
    write_parquet(out_dir / "occurrences.parquet", occurrences.reset_index(drop=True))
    write_json(out_dir / "predictors.json", [p.to_dict() for p in predictors])
    write_json(out_dir / "normalisation.json", stats)
    counts = plots["split"].value_counts()
    meta = {
        "masksdm_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": data.source,
        "n_plots": len(plots),
        "n_species": len(species),
        "n_predictors": len(names),
        "split": {
            "block_size": block_size, "test_fraction": test_fraction, "val_fraction": val_fraction,
            "seed": seed, **{f"n_{s}": int(counts.get(s, 0)) for s in SPLITS},
        },
        "rasters": {k: str(Path(v).resolve()) for k, v in (rasters or {}).items()},
    }
    write_json(out_dir / "workspace.json", meta)  # written last: marks the workspace complete
    return Workspace(out_dir)


@dataclass
class Workspace:
    """A prepared workspace folder (see the module docstring for its files)."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        missing = [f for f in _FILES if not (self.path / f).is_file()]
        if missing:
            raise DataError(
                f"'{self.path}' is not a complete workspace (missing {missing}): build it with "
                "`masksdm prepare` (or `masksdm demo`)"
            )

    @cached_property
    def meta(self) -> dict:
        return json.loads((self.path / "workspace.json").read_text())

    @cached_property
    def plots(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "plots.parquet")

    @cached_property
    def species(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "species.parquet")

    @cached_property
    def occurrences(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "occurrences.parquet")

    @cached_property
    def predictors(self) -> list[Predictor]:
        return [Predictor(**p) for p in json.loads((self.path / "predictors.json").read_text())]

    @cached_property
    def normalisation(self) -> dict[str, dict[str, float]]:
        return json.loads((self.path / "normalisation.json").read_text())

    @property
    def predictor_names(self) -> list[str]:
        return [p.name for p in self.predictors]

    @property
    def species_names(self) -> list[str]:
        return self.species["species"].astype(str).tolist()

    def models_dir(self) -> Path:
        return self.path / "models"

    def run_dir(self, run: str = "main") -> Path:
        """The folder of trained model ``run`` (``models/<run>/``)."""
        return self.models_dir() / run

    def report_path(self, name: str) -> Path:
        """Where report ``name`` (a file name) goes: ``reports/<name>``."""
        return self.path / "reports" / name

    def split_mask(self, split: str | None) -> np.ndarray:
        if split is None:
            return np.ones(len(self.plots), dtype=bool)
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}: choose one of {SPLITS}")
        return (self.plots["split"] == split).to_numpy()

    def raw_predictors(self, split: str | None = None, names: Sequence[str] | None = None) -> np.ndarray:
        """Predictor values in raw units, (N, sum of widths) float64 with NaN for missing; an
        embedding contributes its whole vector."""
        names = list(names) if names is not None else self.predictor_names
        mask = self.split_mask(split)
        kind = {p.name: p for p in self.predictors}
        blocks: list[np.ndarray] = []
        tabular: list[str] = []
        for name in names:
            if name in kind and kind[name].is_embedding:
                if tabular:
                    blocks.append(self.plots.loc[mask, tabular].to_numpy(dtype=np.float64))
                    tabular = []
                blocks.append(self.embedding(name)[mask].astype(np.float64))
            else:
                tabular.append(name)
        if tabular or not blocks:
            blocks.append(self.plots.loc[mask, tabular].to_numpy(dtype=np.float64))
        return np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]

    def embedding(self, name: str) -> np.ndarray:
        """Vectors (N_plots, D) float32 of embedding source ``name``, NaN where missing (read once)."""
        cache = self.__dict__.setdefault("_embeddings", {})
        if name not in cache:
            path = self.path / EMBEDDINGS_DIR / f"{name}.parquet"
            cache[name] = align_embeddings(path, self.plots["plot_id"].to_numpy())
        return cache[name]

    def features(self, split: str | None = None) -> np.ndarray:
        """Model inputs (N, sum of widths) float32: predictors normalised, NaN where missing."""
        return normalise_inputs(self.raw_predictors(split), self.predictors, self.normalisation)

    def add_embedding(self, predictor: Predictor) -> None:
        """List an embedding source (its ``embeddings/<name>.parquet`` already written) among the
        predictors, after the tabular ones; a source of the same name is replaced."""
        if not predictor.is_embedding:
            raise ValueError(f"{predictor.name!r} is not an embedding (source={predictor.source!r})")
        if (clash := catalogue_entry(predictor.name)) is not None or predictor.name in self.plots.columns:
            raise DataError(f"embedding name {predictor.name!r} is already a predictor name ({clash or 'plot column'})")
        kept = [p for p in self.predictors if p.name != predictor.name]
        predictors = [*kept, predictor]
        check_input_order(predictors)
        write_json(self.path / "predictors.json", [p.to_dict() for p in predictors])
        self.__dict__.pop("predictors", None)
        self.__dict__.get("_embeddings", {}).pop(predictor.name, None)

    def labels(self, split: str | None = None) -> np.ndarray:
        """Presence matrix (N, S) bool, rows in plots.parquet order, columns by species_id."""
        mask = self.split_mask(split)
        row_of = pd.Series(-1, index=self.plots["plot_id"].to_numpy())
        row_of[mask] = np.arange(int(mask.sum()))
        occ = self.occurrences
        rows = row_of.loc[occ["plot_id"].to_numpy()].to_numpy()
        inside = rows >= 0
        y = np.zeros((int(mask.sum()), len(self.species)), dtype=bool)
        y[rows[inside], occ["species_id"].to_numpy()[inside]] = True
        return y

    def arrays(self, split: str | None = None) -> dict[str, np.ndarray]:
        """Model-ready arrays of a split: ``x`` (N, P) float32 normalised, ``y`` (N, S) bool,
        ``plot_id``, ``lon``, ``lat`` (N,)."""
        mask = self.split_mask(split)
        plots = self.plots.loc[mask]
        return {
            "x": self.features(split),
            "y": self.labels(split),
            "plot_id": plots["plot_id"].to_numpy(),
            "lon": plots["lon"].to_numpy(),
            "lat": plots["lat"].to_numpy(),
        }
