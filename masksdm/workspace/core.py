"""The workspace: the folder of tables every command and the app share.

Layout::

    workspace.json        what was prepared, from what, with which split settings
    plots.parquet         one row per plot: plot_id, lon, lat, split, one column per predictor (raw
                          units); presence-only workspaces also ``background`` (True for a background point)
    species.parquet       species_id, species, n_plots and per-split counts
    occurrences.parquet   one row per presence: plot_id, species_id
    predictors.json       name, group, source and unit of each predictor, in model input order
    normalisation.json    mean and std of each predictor on the TRAINING split only
    embeddings/<name>.*   optional embedding vectors per plot (.parquet) and per map cell (.tif),
                          e.g. SMARTIES satellite embeddings (see masksdm.data.embeddings)
    models/<run>/         trained models (see masksdm.model.checkpoint)
    absence_records.parquet  presence-only workspaces: the records of absences, kept apart

A presence-only workspace (:func:`~masksdm.workspace.occurrences.prepare_occurrences`) holds record sites (one per raster cell
with records; the species recorded there are its presences) and background points as plots.

Plots are split into train/validation/test by spatial blocks (default 1 degree), as in the MaskSDM
paper, so that test plots are spatially separated from training plots.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from masksdm._io import path_inside, safe_name, write_json, write_parquet
from masksdm._version import __version__
from masksdm.data.embeddings import EMBEDDINGS_DIR, align_embeddings, embedding_path
from masksdm.data.plotdata import PlotData, check_coordinates
from masksdm.data.predictors import (
    UNGROUPED,
    Predictor,
    catalogue_entry,
    catalogue_name,
    check_input_order,
    default_predictors,
    normalise_inputs,
)
from masksdm.data.splits import (
    SPLITS,
    presence_matrix,
    spatial_block_split,
    split_balance,
    split_from_column,
    split_from_rule,
)
from masksdm.errors import DataError, OutputExistsError
from masksdm.metrics import MIN_CLASS

__all__ = ["BACKGROUND", "MAX_LEVELS", "SPLITS", "Workspace", "prepare_workspace"]

log = logging.getLogger(__name__)

#: The plots.parquet column that marks background points in a presence-only workspace.
BACKGROUND = "background"

_FILES = ("workspace.json", "plots.parquet", "species.parquet", "occurrences.parquet", "predictors.json", "normalisation.json")


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
                group=groups.get(name, known.group if known else UNGROUPED),
                source=sources.get(name, "table"),
                unit=known.unit if known else "",
            )
        )
    return out


def _catalogue_names(names: Sequence[str], what: str) -> dict[str, str]:
    """``{name: catalogue name}`` for the names that spell a catalogue predictor another way
    (``bio3`` -> ``bio_3``, see :func:`~masksdm.data.predictors.catalogue_name`), logged;
    DataError when two names would become one."""
    renamed = {n: known for n in names if (known := catalogue_name(n)) is not None and known != n}
    spelled: dict[str, list[str]] = {}
    for name in names:
        spelled.setdefault(renamed.get(name, name), []).append(name)
    twice = {k: v for k, v in spelled.items() if len(v) > 1}
    if twice:
        name, spellings = next(iter(twice.items()))
        raise DataError(f"{what} {spellings} all name the predictor {name!r} (catalogue spellings): keep one of them")
    if renamed:
        log.info("%s renamed to their catalogue names: %s", what, renamed)
    return renamed


def _user_groups(groups: Mapping[str, str] | None, known: Sequence[str]) -> dict[str, str]:
    """``groups`` with catalogue names as keys, checked against the ``known`` predictor names."""
    out: dict[str, str] = {}
    for name, group in (groups or {}).items():
        key = name if name in known else catalogue_name(name) or name
        if key not in known:
            raise DataError(
                f"groups (--groups) give a group to {name!r}, which is not a predictor of this data: "
                f"choose among {sorted(known)}"
            )
        if not isinstance(group, str) or not group.strip() or group.strip() in ("all", "none"):
            raise DataError(f"the group of {name!r} must be a name (not empty, 'all' or 'none'), got {group!r}")
        if out.get(key, group.strip()) != group.strip():
            raise DataError(f"{key!r} is given two groups, {out[key]!r} and {group.strip()!r}: give it one")
        out[key] = group.strip()
    return out


def prepare_workspace(
    data: PlotData,
    out_dir: str | Path,
    *,
    rasters: Mapping[str, Path] | None = None,
    groups: Mapping[str, str] | None = None,
    raster_groups: Mapping[str, str] | None = None,
    add_location: bool = True,
    block_size: float = 1.0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    seed: int = 42,
    split_column: str | None = None,
    test_where: str | None = None,
    categorical: Sequence[str] = (),
    stratify: bool = True,
    force: bool = False,
    progress: bool = True,
    meta: Mapping[str, object] | None = None,
) -> Workspace:
    """Build a workspace from plot data and raster predictors.

    Args:
        data: plots and occurrences from any loader (``load_splotopen``, ``load_presence_table``);
            its ``info_columns`` are kept in ``plots.parquet`` but are not predictors.
        out_dir: workspace folder to create.
        rasters: predictor name -> raster path, extracted at plot coordinates (from
            :func:`~masksdm.data.rasters.find_rasters`; a multiband raster's band is found by name).
        groups: predictor name -> group, for any predictor (table column or raster); by default
            a catalogue name gets the catalogue's group, another raster its folder's name (as
            given, not resolved), another table column ``UNGROUPED`` (``"Other"``). A name that
            is not a predictor of the data is an error that lists them.
        raster_groups: predictor name -> group for rasters (older form of ``groups``, which wins).
        add_location: add ``Longitude``/``Latitude`` predictors (group Location) when absent.
        block_size, test_fraction, val_fraction, seed: the spatial block split (the default).
        split_column: instead, the user's split: an info column of ``train``/``val``/``test``
            labels (see :func:`~masksdm.data.splits.split_from_column`).
        test_where: instead, a rule marking the test plots, e.g. ``"year >= 2012"`` over the plot
            columns (see :func:`~masksdm.data.splits.split_from_rule`).
        categorical: predictors whose values are class codes (e.g. an ecoregion or land-cover
            class): each class seen in the training plots gets its own token; other codes are
            masked like missing values.
        stratify: deal the spatial blocks (of the test, validation and training splits, and of the
            validation blocks drawn from a column or rule split's training plots) so that each
            species' presences are split in the same proportions as the plots, as far as blocks
            allow (:func:`~masksdm.data.splits.stratified_blocks`); ``False`` deals them at random.
        force: overwrite an existing workspace.
        progress: show progress bars.
        meta: more entries for ``workspace.json`` (e.g. how occurrence records were cleaned).

    Names that spell a catalogue predictor another way (table columns, raster names, ``groups``
    keys: ``bio3``, ``BIO_03``, ``wc2.1_10m_bio_3``) become the catalogue's name (``bio_3``),
    logged and recorded in ``workspace.json`` (``renamed``). Whatever the split, the
    normalisation is fitted on the training plots only.
    """
    out_dir = Path(out_dir)
    if (out_dir / "workspace.json").exists() and not force:
        raise OutputExistsError(f"a workspace already exists in '{out_dir}': pass --force to rebuild it")
    if split_column is not None and test_where is not None:
        raise DataError("give one split: a split column (--split-column) or a test rule (--test-where), not both")
    plots = data.plots.reset_index(drop=True).copy()
    check_coordinates(plots["lon"], plots["lat"], ids=plots["plot_id"])
    if plots["plot_id"].duplicated().any():
        raise DataError(f"{int(plots['plot_id'].duplicated().sum())} duplicated plot ids: plot ids must be unique")
    info = list(data.info_columns)
    reserved = sorted(set(info) & {"plot_id", "lon", "lat"})
    if reserved:
        raise DataError(f"info column(s) {reserved} clash with the workspace's own plot columns: rename them")
    if split_column is not None and split_column not in info:
        raise DataError(
            f"split column {split_column!r} is not among the table's info columns {info}: keep it with "
            "--info-columns (the loaders' info_columns)"
        )
    renamed = _catalogue_names([c for c in plots.columns if c not in ("plot_id", "lon", "lat", *info)], "table columns")
    if set(renamed.values()) & set(info):
        raise DataError(f"info columns {sorted(set(renamed.values()) & set(info))} are predictor names: rename them")
    plots = plots.rename(columns=renamed)
    if add_location:
        plots["Longitude"] = plots.get("Longitude", plots["lon"])
        plots["Latitude"] = plots.get("Latitude", plots["lat"])
    sources = {c: "table" for c in plots.columns if c not in ("plot_id", "lon", "lat", *info)}
    raster_names = _catalogue_names(list(rasters or {}), "rasters")
    rasters = {raster_names.get(k, k): Path(v) for k, v in (rasters or {}).items()}
    renamed.update(raster_names)
    chosen = _user_groups(groups, [*sources, *rasters])
    if rasters:
        from masksdm.data.rasters import extract_rasters, raster_group

        clash = sorted(set(rasters) & (set(sources) | set(info)))
        if clash:
            raise DataError(f"predictors {clash} come both from the plot table and from rasters: rename or drop one")
        values = extract_rasters(rasters, plots["lon"].to_numpy(), plots["lat"].to_numpy(), progress=progress)
        old = {catalogue_name(k) or k: g for k, g in (raster_groups or {}).items()}
        for name in rasters:
            plots[name] = values[name].to_numpy()
            sources[name] = "raster"
            chosen.setdefault(name, old.get(name) or raster_group(rasters[name], name))
    groups = chosen
    for name in sources:
        plots[name] = pd.to_numeric(plots[name], errors="raise").astype(np.float64)
        n_inf = int(np.isinf(plots[name]).sum())
        if n_inf:
            raise DataError(
                f"predictor {name!r} has {n_inf} infinite values: declare the raster's nodata value or "
                "replace them by NA in the table (missing values are fine: MaskSDM masks them)"
            )
    lon, lat = plots["lon"].to_numpy(), plots["lat"].to_numpy()
    labels = presence_matrix(plots["plot_id"], data.occurrences) if stratify else None
    how: dict[str, object]
    if split_column is not None:
        plots["split"] = split_from_column(plots[split_column], lon, lat, block_size=block_size,
                                           val_fraction=val_fraction, seed=seed, labels=labels)
        how = {"method": "column", "column": split_column}
    elif test_where is not None:
        plots["split"] = split_from_rule(plots, test_where, block_size=block_size, val_fraction=val_fraction,
                                         seed=seed, labels=labels)
        how = {"method": "rule", "test_where": test_where}
    else:
        plots["split"] = spatial_block_split(lon, lat, block_size=block_size, test_fraction=test_fraction,
                                             val_fraction=val_fraction, seed=seed, labels=labels)
        how = {"method": "spatial blocks", "test_fraction": test_fraction}
    how["stratified"] = stratify
    info = [c for c in info if c not in ("split", BACKGROUND)]  # a column named split becomes the workspace's own split
    meta = {
        **(meta or {}),
        "source": data.source,
        "split": {**how, "block_size": block_size, "val_fraction": val_fraction, "seed": seed},
        "rasters": {k: str(Path(v).resolve()) for k, v in rasters.items()},
        "info_columns": info,
        "renamed": renamed,
    }
    occurrences = data.occurrences[["plot_id", "species"]]
    unknown = sorted(set(categorical) - set(sources))
    if unknown:
        raise DataError(f"categorical predictors {unknown} are not predictors of this data: choose among {sorted(sources)}")
    predictors = [replace(p, categorical=True) if p.name in set(categorical) else p
                  for p in _order_predictors(list(sources), groups, sources)]
    return _write_workspace(out_dir, plots, predictors, occurrences, meta)


#: More classes than this in a categorical predictor's training plots is an error (a continuous
#: predictor given as categorical, or plot ids).
MAX_LEVELS = 1000


def _with_levels(predictor: Predictor, train_values: pd.Series) -> Predictor:
    """A categorical predictor with the class codes of its training values as levels."""
    levels = np.unique(train_values.dropna().to_numpy(dtype=np.float64))
    if len(levels) > MAX_LEVELS:
        raise DataError(
            f"categorical predictor {predictor.name!r} has {len(levels)} classes in the training plots (at most "
            f"{MAX_LEVELS}): is it a continuous predictor? Leave it out of --categorical"
        )
    return replace(predictor, levels=tuple(levels))


def _write_workspace(
    out_dir: Path, plots: pd.DataFrame, predictors: list[Predictor], occurrences: pd.DataFrame, meta: dict
) -> Workspace:
    """Write the workspace files from ``plots`` (with ``split``, the predictor and info columns),
    the predictors in input order and the (plot_id, species) presences: tabular predictors without
    any training value are dropped, the normalisation is fitted on the training plots."""
    train = plots["split"] == "train"
    empty = [p.name for p in predictors if not p.is_embedding and plots.loc[train, p.name].notna().sum() == 0]
    if empty:
        log.info("dropping predictors without any value in the training split: %s", empty)
        predictors = [p for p in predictors if p.name not in empty]
    if not predictors:
        raise DataError("no predictor left: give rasters (--rasters) or predictor columns in the plot table")
    predictors = [_with_levels(p, plots.loc[train, p.name]) if p.categorical else p for p in predictors]
    names = [p.name for p in predictors if not p.is_embedding]
    stats = {}
    for name in names:
        col = plots.loc[train, name]
        std = float(col.std(ddof=0))
        stats[name] = {"mean": float(col.mean()), "std": std if np.isfinite(std) else 0.0}

    species_names = np.sort(occurrences["species"].astype(str).unique())
    if len(species_names) == 0:
        raise DataError("no species occurrences: check the species filter (--min-plots) and the input table")
    species_id = pd.Series(np.arange(len(species_names)), index=species_names)
    occ = pd.DataFrame(
        {"plot_id": occurrences["plot_id"].to_numpy(),
         "species_id": species_id.loc[occurrences["species"].astype(str)].to_numpy()}
    ).drop_duplicates()
    unknown = ~occ["plot_id"].isin(plots["plot_id"])
    if unknown.any():
        raise DataError(f"{int(unknown.sum())} occurrences refer to plots missing from the plot table")
    occ_split = plots.set_index("plot_id")["split"].loc[occ["plot_id"]].to_numpy()
    species = pd.DataFrame({"species_id": np.arange(len(species_names)), "species": species_names})
    species["n_plots"] = np.bincount(occ["species_id"], minlength=len(species)).astype(np.int64)
    for split in SPLITS:
        ids = occ["species_id"].to_numpy()[occ_split == split]
        species[f"n_{split}"] = np.bincount(ids, minlength=len(species)).astype(np.int64)

    out_dir.mkdir(parents=True, exist_ok=True)
    info = [c for c in meta.get("info_columns", []) if c != BACKGROUND]
    own = [BACKGROUND] if BACKGROUND in plots.columns else []  # presence-only: the background rows
    write_parquet(out_dir / "plots.parquet", plots[["plot_id", "lon", "lat", "split", *own, *names, *info]])
    write_parquet(out_dir / "species.parquet", species)
    write_parquet(out_dir / "occurrences.parquet", occ.reset_index(drop=True))
    write_json(out_dir / "predictors.json", [p.to_dict() for p in predictors])
    write_json(out_dir / "normalisation.json", stats)
    counts = plots["split"].value_counts()
    meta = {
        "masksdm_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **meta,
        "n_plots": len(plots),
        "n_species": len(species),
        "n_predictors": len(predictors),
    }
    meta["split"] = {**meta["split"], **{f"n_{s}": int(counts.get(s, 0)) for s in SPLITS}}
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
        """The folder of trained model ``run``: ``models/<safe_name(run)>/``, always inside ``models/``."""
        return path_inside(self.models_dir(), safe_name(run))

    def report_path(self, name: str) -> Path:
        """Where report ``name`` (a file name, made safe) goes: ``reports/<safe_name(name)>``."""
        return path_inside(self.path / "reports", safe_name(name))

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
            path = embedding_path(self.path, name)
            cache[name] = align_embeddings(path, self.plots["plot_id"].to_numpy())
        return cache[name]

    def features(self, split: str | None = None) -> np.ndarray:
        """Model inputs (N, sum of widths) float32: predictors normalised, NaN where missing."""
        return normalise_inputs(self.raw_predictors(split), self.predictors, self.normalisation)

    def with_split(self, split: Sequence[str] | np.ndarray, out_dir: str | Path, *, description: str,
                   force: bool = False) -> Workspace:
        """A copy of this workspace in ``out_dir`` with another split (``train``/``val``/``test``
        per plot, in ``plots.parquet`` order) and its normalisation fitted on the new training
        plots; embeddings are copied, models and reports are not. Used by cross-validation.

        Args:
            split: the new split label of every plot.
            out_dir: the new workspace folder.
            description: how the split was made, recorded in ``workspace.json`` (e.g. ``"fold 2 of 5"``).
            force: overwrite an existing workspace there.
        """
        import shutil

        out_dir = Path(out_dir)
        if (out_dir / "workspace.json").exists() and not force:
            raise OutputExistsError(f"a workspace already exists in '{out_dir}': pass --force to rebuild it")
        labels = np.asarray(split, dtype="<U5")
        if labels.shape != (len(self.plots),) or not np.isin(labels, SPLITS).all():
            raise DataError(f"a split needs one of {SPLITS} for each of the {len(self.plots)} plots")
        plots = self.plots.copy()
        plots["split"] = labels
        occurrences = pd.DataFrame({
            "plot_id": self.occurrences["plot_id"].to_numpy(),
            "species": self.species.set_index("species_id")["species"].loc[self.occurrences["species_id"]].to_numpy(),
        })
        meta = {k: v for k, v in self.meta.items() if k in ("source", "rasters", "info_columns", "presence_only")}
        meta["split"] = {"method": description, "parent": str(self.path.resolve())}
        if (self.path / EMBEDDINGS_DIR).is_dir():
            shutil.copytree(self.path / EMBEDDINGS_DIR, out_dir / EMBEDDINGS_DIR, dirs_exist_ok=True)
        return _write_workspace(out_dir, plots, list(self.predictors), occurrences, meta)

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

    def presences(self) -> sparse.csr_matrix:
        """Sparse (plots, species) presence matrix, rows in plots.parquet order, columns by species_id."""
        occ = self.occurrences
        rows = pd.Index(self.plots["plot_id"].astype(str)).get_indexer(occ["plot_id"].astype(str))
        data = np.ones(len(occ), dtype=np.int8)
        return sparse.csr_matrix((data, (rows, occ["species_id"].to_numpy())),
                                 shape=(len(self.plots), len(self.species)))

    def thin_species(self, min_class: int = MIN_CLASS) -> pd.DataFrame:
        """Species with fewer than ``min_class`` presences or absences in the validation or the
        test split: their scores there rest on too few plots to mean much. Columns ``species``,
        ``presences_val``, ``absences_val``, ``presences_test``, ``absences_test``."""
        sp = self.species
        out = pd.DataFrame({"species": sp["species"].astype(str)})
        thin = np.zeros(len(sp), dtype=bool)
        for s in ("val", "test"):
            n_plots = int(self.split_mask(s).sum())
            out[f"presences_{s}"] = sp[f"n_{s}"].to_numpy()
            out[f"absences_{s}"] = n_plots - sp[f"n_{s}"].to_numpy()
            thin |= (out[f"presences_{s}"] < min_class).to_numpy() | (out[f"absences_{s}"] < min_class).to_numpy()
        return out[thin].reset_index(drop=True)

    def split_shares(self) -> pd.DataFrame:
        """Per species: the share of its presences in each split (``share_train`` ...), and the
        counts (:func:`~masksdm.data.splits.split_balance`)."""
        return split_balance(self.plots["split"].to_numpy(), self.presences(), self.species_names)

    def labels(self, split: str | None = None, species: Sequence[str] | None = None) -> np.ndarray:
        """Presence matrix (N, S) bool, rows in plots.parquet order, columns by species_id; with
        ``species`` (e.g. a model's species), one column per name in that order, all False for a
        name the workspace does not know."""
        if species is not None:
            y = self.labels(split)
            index = {s: i for i, s in enumerate(self.species_names)}
            out = np.zeros((len(y), len(species)), dtype=bool)
            known = [j for j, s in enumerate(species) if s in index]
            out[:, known] = y[:, [index[species[j]] for j in known]]
            return out
        mask = self.split_mask(split)
        row_of = pd.Series(-1, index=self.plots["plot_id"].to_numpy())
        row_of[mask] = np.arange(int(mask.sum()))
        occ = self.occurrences
        rows = row_of.loc[occ["plot_id"].to_numpy()].to_numpy()
        inside = rows >= 0
        y = np.zeros((int(mask.sum()), len(self.species)), dtype=bool)
        y[rows[inside], occ["species_id"].to_numpy()[inside]] = True
        return y

    @property
    def presence_only(self) -> bool:
        """True for a workspace built from occurrence records: its rows are record sites and
        background points (:meth:`background_mask`)."""
        return BACKGROUND in self.plots.columns and bool(self.plots[BACKGROUND].any())

    def background_mask(self, split: str | None = None) -> np.ndarray:
        """(N,) bool of a split's rows: True for a background point (presence-only workspaces;
        all False otherwise)."""
        mask = self.split_mask(split)
        if BACKGROUND not in self.plots.columns:
            return np.zeros(int(mask.sum()), dtype=bool)
        return self.plots.loc[mask, BACKGROUND].to_numpy(dtype=bool)

    def arrays(self, split: str | None = None) -> dict[str, np.ndarray]:
        """Model-ready arrays of a split: ``x`` (N, P) float32 normalised, ``y`` (N, S) bool,
        ``background`` (N,) bool (:meth:`background_mask`), ``plot_id``, ``lon``, ``lat`` (N,)."""
        mask = self.split_mask(split)
        plots = self.plots.loc[mask]
        return {
            "x": self.features(split),
            "y": self.labels(split),
            "background": self.background_mask(split),
            "plot_id": plots["plot_id"].to_numpy(),
            "lon": plots["lon"].to_numpy(),
            "lat": plots["lat"].to_numpy(),
        }
