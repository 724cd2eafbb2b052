"""What the dashboard shows, computed from a workspace, its model and its rasters.

The Streamlit page (:mod:`masksdm.dashboard.page`) only lays out widgets; everything it displays
comes from :class:`Dashboard`, so it is tested without a browser. Maps are fast because the
transformer's pooled features of every map cell are cached per predictor subset: switching species,
threshold or layer reuses them (only the head runs), and a new subset costs one pass over the grid
with the masked tokens collapsed.
"""

from __future__ import annotations

import difflib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from affine import Affine

from masksdm.data.embeddings import embedding_path
from masksdm.data.grid import RasterStack, apply_transform
from masksdm.data.predictors import normalise, predictor_groups
from masksdm.data.rasters import find_rasters
from masksdm.errors import DataError
from masksdm.explain.core import ShapleyResult, coalition_matrix, exact_shapley
from masksdm.explain.games import local_shapley, resolve_players
from masksdm.maps.novelty import Reference, mess, novelty_predictors, training_reference
from masksdm.maps.plan import mappable_predictors, missing_rasters, read_cells, resolve_threshold
from masksdm.metrics import auc_interval, roc_auc
from masksdm.model.checkpoint import CARD, ModelCard, load_checkpoint, split_arrays
from masksdm.model.network import Network
from masksdm.workspace import Workspace

__all__ = ["Dashboard", "Place", "search_species"]

_CACHED_SUBSETS = 8
_BATCH = 512  # cells per pass: larger batches are slower on a CPU


def search_species(query: str, names: Sequence[str], limit: int = 50) -> list[str]:
    """Species whose name contains every word of ``query`` (case-insensitive), names starting with
    the query first; close spellings when nothing contains it.

    >>> search_species("fag sylv", ["Fagus sylvatica", "Abies alba", "Fagus orientalis"])
    ['Fagus sylvatica']
    """
    words = query.lower().split()
    if not words:
        return list(names[:limit])
    lowered = [n.lower() for n in names]
    hits = [n for n, low in zip(names, lowered, strict=True) if all(w in low for w in words)]
    if hits:
        whole = query.lower().strip()

        def rank(name: str) -> tuple[int, str]:  # the name, then names starting so, then a whole word
            low = name.lower()
            return (0 if low == whole else 1 if low.startswith(whole) else 2 if whole in low.split() else 3, name)

        return sorted(hits, key=rank)[:limit]
    close = difflib.get_close_matches(query.lower(), lowered, n=min(limit, 5), cutoff=0.6)
    index = {low: n for n, low in zip(names, lowered, strict=True)}
    return [index[c] for c in close]


@dataclass(frozen=True)
class Place:
    """A clicked or typed location and the map cell it falls in."""

    lon: float
    lat: float
    row: int
    col: int


class Dashboard:
    """A trained model, its workspace and the map grid, with cached per-subset map features.

    Args:
        workspace: the workspace folder (its model under ``models/<run>``).
        run: the model run.
        rasters: predictor rasters for the maps (default: those the workspace was prepared from);
            the workspace's ``embeddings/<name>.tif`` rasters of the model's embeddings are added.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        max_cells: show every k-th cell of the raster grid so that at most about this many land
            cells are predicted per subset (None: every cell). Downloads are at the shown grid.
        future: rasters of a future climate (e.g. ``masksdm fetch worldclim-future``) on the same
            grid; they replace the current rasters of the same names, the others are kept. The
            maps then switch between ``scenario="current"`` and ``"future"``, and show the range
            change between them.

    Raises:
        DataError / CheckpointError / RasterError: with a message for the page.
    """

    def __init__(
        self, workspace: str | Path, run: str = "main", *, rasters: Sequence[str | Path] | None = None,
        device: str = "cpu", max_cells: int | None = 15_000, future: Sequence[str | Path] | None = None,
    ) -> None:
        self.workspace = Workspace(workspace)
        run_dir = self.workspace.run_dir(run)
        if not (run_dir / CARD).is_file():
            trained = sorted(p.parent.name for p in self.workspace.models_dir().glob("*/model.json"))
            raise DataError(
                f"the workspace has no model '{run}'"
                + (f" (it has {', '.join(trained)})" if trained else ": train one with `masksdm train`")
            )
        from masksdm.model.inference import resolve_device

        self.device = resolve_device(device)
        self.model: Network
        self.card: ModelCard
        self.model, self.card = load_checkpoint(run_dir, device=self.device)
        sources = list(rasters) if rasters else list(self.workspace.meta.get("rasters", {}).values())
        if not sources:
            raise DataError("the workspace was prepared without rasters: maps need the predictor rasters")
        # embedding rasters of the model's embeddings (`masksdm embed cells`), e.g. the Satellite token
        sources += [tif for p in self.card.predictors if p.is_embedding
                    and (tif := embedding_path(self.workspace.path, p.name, ".tif")).is_file()]
        self.stack = RasterStack(sources)
        self.mappable = mappable_predictors(self.card, self.stack)
        missing = set(missing_rasters(self.card, self.stack, self.mappable))
        self.mappable &= np.array([p.name not in missing for p in self.card.predictors]) & self.card.allowed
        if not self.mappable.any():
            raise DataError(
                f"none of the model's predictors has a raster among {self.stack.names[:5]}...: "
                "give the rasters the model was trained with"
            )
        names = [p.name for p, m in zip(self.card.predictors, self.mappable, strict=True) if m]
        raw, has_data = read_cells(self.card, self.stack, names, None)
        # the displayed grid: every stride-th cell, so that a new predictor subset stays quick
        height, width = self.stack.shape
        self.stride = 1 if not max_cells else max(1, math.ceil(math.sqrt(has_data.sum() / max_cells)))
        offset = self.stride // 2
        rows, cols = np.arange(offset, height, self.stride), np.arange(offset, width, self.stride)
        sampled = (rows[:, None] * width + cols[None, :]).ravel()
        self.shape = (len(rows), len(cols))
        t, k = self.stack.transform, self.stride
        self.transform = Affine(t.a * k, t.b * k, t.c, t.d * k, t.e * k, t.f)  # cells k times larger
        self.cells = np.flatnonzero(has_data[sampled])  # indices in the displayed grid
        self._raw = {"current": raw[sampled[self.cells]]}
        if future:
            with self._future_stack(future) as future_stack:  # read once: only its values are kept
                self._raw["future"] = read_cells(self.card, future_stack, names, None)[0][sampled[self.cells]]
        self._x = {k: torch.as_tensor(self.card.features(v)) for k, v in self._raw.items()}
        self._pooled: OrderedDict[tuple[str, bytes], torch.Tensor] = OrderedDict()
        self._references: dict[tuple[str, ...], Reference] = {}
        self._coalitions: tuple[list[str], np.ndarray, torch.Tensor, np.ndarray] | None = None
        self._thresholds: dict[tuple[str, str, bytes], float] = {}
        self._curves: dict[tuple[str, str, str, int], pd.DataFrame] = {}
        self._species_index = {s: i for i, s in enumerate(self.card.species)}

    def _future_stack(self, future: Sequence[str | Path]) -> RasterStack:
        """The current stack with the future rasters in place of those of the same names."""
        replaced = find_rasters(future)
        unknown = [n for n in replaced if n not in self.stack.paths]
        if unknown:
            raise DataError(f"the future rasters {unknown[:5]} are no predictor raster of the current maps "
                            f"({', '.join(self.stack.names[:5])} ...): name them as the current ones")
        stack = RasterStack(list({**self.stack.paths, **replaced}.values()), like=self.stack.template)
        off = {n: g for n, g in stack.off_grid.items() if n in replaced and n not in self.stack.off_grid}
        if off:
            stack.close()
            raise DataError(f"the future rasters are on another grid than the current ones ({self.stack.describe()}): "
                            + "; ".join(f"{n}: {g}" for n, g in off.items()))
        return stack

    # --- what there is ------------------------------------------------------------------------

    @property
    def scenarios(self) -> list[str]:
        """``["current"]``, and ``"future"`` when the dashboard has future rasters."""
        return list(self._x)

    @property
    def species(self) -> list[str]:
        return self.card.species

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the displayed grid in its CRS."""
        t, (h, w) = self.transform, self.shape
        xs, ys = (t.c, t.c + t.a * w), (t.f, t.f + t.e * h)
        return min(xs), min(ys), max(xs), max(ys)

    def cell_lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitude and latitude of the centres of the displayed land cells."""
        from pyproj import Transformer

        rows, cols = np.divmod(self.cells, self.shape[1])
        x, y = apply_transform(self.transform, cols + 0.5, rows + 0.5)
        if self.stack.crs is not None and self.stack.crs.to_epsg() != 4326:
            x, y = Transformer.from_crs(self.stack.crs, "EPSG:4326", always_xy=True).transform(x, y)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def web_mercator(self, grid: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """``grid`` warped to Web Mercator (nearest cell), and its (west, south, east, north) in
        WGS84 degrees: what a web map's image layer needs to sit in the right place."""
        from rasterio.warp import (
            Resampling,
            calculate_default_transform,
            reproject,
            transform_bounds,
        )

        h, w = grid.shape
        src_crs = self.stack.crs or "EPSG:4326"
        transform, width, height = calculate_default_transform(src_crs, "EPSG:3857", w, h, *self.bounds)
        # twice the cells across, so that no displayed cell is lost to the warp
        transform, width, height = calculate_default_transform(
            src_crs, "EPSG:3857", w, h, *self.bounds, resolution=abs(transform.a) * width / (2 * w)
        )
        out = np.full((height, width), np.nan, dtype=np.float32)
        reproject(np.asarray(grid, dtype=np.float32), out, src_transform=self.transform, src_crs=src_crs,
                  dst_transform=transform, dst_crs="EPSG:3857", resampling=Resampling.nearest,
                  src_nodata=np.nan, dst_nodata=np.nan)
        (west, east), (north, south) = apply_transform(transform, np.array([0, width]), np.array([0, height]))
        return out, transform_bounds("EPSG:3857", "EPSG:4326", west, south, east, north)

    def groups(self) -> dict[str, list[str]]:
        """Predictor groups a map can use, each with its predictors."""
        usable = [p for p, m in zip(self.card.predictors, self.mappable, strict=True) if m]
        return predictor_groups(usable)

    def plot_level(self) -> list[str]:
        """Predictors the model has but maps cannot (plot-level fields, missing rasters) or the
        model does not use (``train.use``)."""
        return [p.name for p, m in zip(self.card.predictors, self.mappable, strict=True) if not m]

    def visible(self, groups: Sequence[str], *, exclude: Sequence[str] = ()) -> np.ndarray:
        """(T,) predictors of the chosen groups that a map has, minus ``exclude``."""
        usable = self.groups()
        chosen = {name for g in groups for name in usable.get(g, [])} - set(exclude)
        return np.array([p.name in chosen for p in self.card.predictors])

    def species_summary(self, species: str) -> dict[str, object]:
        """Plots with the species, prevalence and the model's validation threshold."""
        table = self.workspace.species.set_index("species")
        row = table.loc[species] if species in table.index else None
        i = self._species_index[species]
        threshold = None if not self.card.thresholds else self.card.thresholds[i]
        return {
            "plots": int(row["n_plots"]) if row is not None else None,
            "prevalence": float(row["n_plots"]) / len(self.workspace.plots) if row is not None else None,
            "threshold_max_tss": threshold,
        }

    # --- maps ---------------------------------------------------------------------------------

    @torch.inference_mode()
    def _features(self, visible: np.ndarray, scenario: str = "current") -> torch.Tensor:
        """Pooled features (cells, d) of every map cell with these predictors (cached)."""
        key = (scenario, np.asarray(visible, dtype=bool).tobytes())
        if key in self._pooled:
            self._pooled.move_to_end(key)
            return self._pooled[key]
        x = self._inputs(scenario)
        keep = torch.as_tensor(np.asarray(visible, dtype=bool), device=self.device)
        self.model.eval()
        parts = [self.model.encode(x[s : s + _BATCH].to(self.device), keep) for s in range(0, len(x), _BATCH)]
        pooled = torch.cat(parts) if parts else torch.empty((0, self.model.d_pooled))
        self._pooled[key] = pooled
        if len(self._pooled) > _CACHED_SUBSETS:
            self._pooled.popitem(last=False)
        return pooled

    def _inputs(self, scenario: str) -> torch.Tensor:
        if scenario not in self._x:
            raise DataError(f"no {scenario!r} rasters: the dashboard has {self.scenarios} (future: --future DIR)")
        return self._x[scenario]

    def _grid(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.shape[0] * self.shape[1], np.nan, dtype=np.float32)
        out[self.cells] = values
        return out.reshape(self.shape)

    @torch.inference_mode()
    def probability(self, species: str, visible: np.ndarray, scenario: str = "current") -> np.ndarray:
        """Presence probability (H, W) of ``species`` from the ``visible`` predictors; NaN off land."""
        self._require(visible)
        pooled = self._features(visible, scenario)
        index = torch.tensor([self._species_index[species]], device=self.device)
        logits = self.model.head_logits(pooled, index)[:, 0]
        return self._grid(torch.sigmoid(logits).float().cpu().numpy())

    @torch.inference_mode()
    def richness(self, visible: np.ndarray, scenario: str = "current") -> np.ndarray:
        """Expected number of species (sum of probabilities) per cell."""
        self._require(visible)
        pooled = self._features(visible, scenario)
        total = torch.zeros(len(pooled), device=self.device)
        for start in range(0, self.model.n_species, 2048):
            index = torch.arange(start, min(start + 2048, self.model.n_species), device=self.device)
            p = torch.sigmoid(self.model.head_logits(pooled, index).float())
            total += p.sum(dim=1)
        return self._grid(total.cpu().numpy())

    def threshold(self, species: str, rule: str, visible: np.ndarray) -> float:
        """Threshold of a rule (``max_tss``, ``sensitivity:0.9``, ``model``: the one stored in the
        model, or a number) for this species and subset, on the validation plots."""
        key = (species, rule, np.asarray(visible, dtype=bool).tobytes())
        if key not in self._thresholds:
            i = self._species_index[species]
            value = resolve_threshold(rule, self.model, self.card, [i], visible, self.workspace)[0]
            self._thresholds[key] = float(value) if np.isfinite(value) else 0.5
        return self._thresholds[key]

    def change(self, species: str, visible: np.ndarray, threshold: float) -> np.ndarray:
        """Range change (H, W) from the current to the future climate at ``threshold``, in the codes
        of ``masksdm change`` (:data:`~masksdm.maps.change.CHANGE_CODES`): -2 lost, -1 kept, 0
        absent in both, 1 gained; NaN off land."""
        now = self.probability(species, visible)
        then = self.probability(species, visible, "future") >= threshold
        codes = (then.astype(np.float32) - 2 * (now >= threshold)).astype(np.float32)  # as masksdm change
        codes[np.isnan(now)] = np.nan
        return codes

    def novelty(self, visible: np.ndarray, scenario: str = "current") -> tuple[np.ndarray, np.ndarray]:
        """MESS (H, W) against the training plots and the number of predictors outside their
        training range, over the visible continuous raster predictors (:mod:`masksdm.maps.novelty`)."""
        self._require(visible)
        names = tuple(novelty_predictors(self.card, [p.name for p, v in zip(self.card.predictors, visible, strict=True)
                                                     if v and p.name in self.stack.paths]))
        if not names:
            raise DataError("no continuous raster predictor is switched on: novelty compares their values")
        if names not in self._references:
            self._references[names] = training_reference(self.card, self.workspace, names)
        self._inputs(scenario)  # a clear error for a scenario the dashboard lacks
        similarity, outside, _ = mess(self._raw[scenario], self._references[names])
        return self._grid(similarity), self._grid(outside)

    def _require(self, visible: np.ndarray) -> None:
        if not np.asarray(visible).any():
            raise DataError("no predictor is switched on: switch at least one group on")

    # --- places and explanations --------------------------------------------------------------

    def place(self, lon: float, lat: float) -> Place | None:
        """The map cell at a WGS84 location, or None outside the grid, off land or not a place on
        Earth (a typed 1e308, NaN, a latitude beyond 90)."""
        from pyproj import Transformer

        if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
            return None
        x, y = lon, lat
        if self.stack.crs is not None and self.stack.crs.to_epsg() != 4326:
            x, y = Transformer.from_crs("EPSG:4326", self.stack.crs, always_xy=True).transform(lon, lat)
        fcol, frow = apply_transform(~self.transform, np.array([x]), np.array([y]))
        if not (np.isfinite(fcol[0]) and np.isfinite(frow[0])):  # outside the projection's domain
            return None
        row, col = int(np.floor(frow[0])), int(np.floor(fcol[0]))
        if not (0 <= row < self.shape[0] and 0 <= col < self.shape[1]):
            return None
        if not np.isin(row * self.shape[1] + col, self.cells):
            return None
        return Place(lon, lat, row, col)

    def local(self, species: str, place: Place, visible: np.ndarray, scenario: str = "current") -> ShapleyResult:
        """Exact Shapley values of the visible predictor groups for the probability at one place."""
        self._require(visible)
        position = int(np.searchsorted(self.cells, place.row * self.shape[1] + place.col))
        on = {p.name for p, v in zip(self.card.predictors, visible, strict=True) if v}
        players = {g: [n for n in names if n in on] for g, names in self.groups().items()}
        # predictors of no player (switched off) stay masked in every coalition
        players = {g: names for g, names in players.items() if names}
        x = self._inputs(scenario)
        return local_shapley(self.model, self.card, x[position : position + 1].numpy(), species,
                             players=players, precision="fp32")

    @cached_property
    def test_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The workspace's test plots as the model sees them: inputs and labels (see split_arrays)."""
        return split_arrays(self.card, self.workspace, "test")

    @torch.inference_mode()
    def _test_coalitions(self) -> tuple[list[str], np.ndarray, torch.Tensor, np.ndarray]:
        """Players (all groups), their coalitions, the pooled features (C, N, d) of the test plots
        under each coalition, and the test labels: computed once, then any species costs a head."""
        if self._coalitions is None:
            masks = resolve_players("groups", self.card.predictors, self.card.allowed)
            players, member = list(masks), np.stack(list(masks.values()))
            coalitions = coalition_matrix(len(players))
            x_test, y_test = self.test_arrays
            x = torch.as_tensor(x_test).to(self.device)
            pooled = torch.stack([
                self.model.encode(x, torch.as_tensor((c[:, None] & member).any(axis=0), device=self.device))
                for c in coalitions
            ])
            self._coalitions = (players, coalitions, pooled, y_test)
        return self._coalitions

    def _scored_rows(self, labels: np.ndarray, i: int) -> np.ndarray:
        """The test rows species ``i`` is scored on: all plots, or on a presence-only workspace its
        presences and the background points (:mod:`masksdm.scoring`)."""
        background = self.workspace.background_mask("test")
        if not background.any():
            return np.ones(len(labels), dtype=bool)
        return labels[:, i] | background

    @torch.inference_mode()
    def global_values(self, species: str) -> ShapleyResult:
        """Exact Shapley values of all predictor groups on this species' test AUC (x100; on
        presence-only data, presences against background)."""
        players, coalitions, pooled, labels = self._test_coalitions()
        i = self._species_index[species]
        index = torch.tensor([i], device=self.device)
        row = {c.tobytes(): k for k, c in enumerate(coalitions)}
        rows = self._scored_rows(labels, i)
        y = labels[rows, i : i + 1]

        def game(chosen: np.ndarray) -> np.ndarray:
            logits = self.model.head_logits(pooled[[row[c.tobytes()] for c in chosen]], index)[..., 0]
            return np.array([100 * roc_auc(scores[rows][:, None], y)[0] for scores in logits.cpu().numpy()])

        return exact_shapley(game, players)

    @torch.inference_mode()
    def test_auc(self, species: str) -> tuple[float, float, float, int]:
        """This species' test AUC with all groups (on presence-only data against background), its
        DeLong 95 % interval, and its test presences."""
        players, coalitions, pooled, labels = self._test_coalitions()
        i = self._species_index[species]
        full = next(k for k, c in enumerate(coalitions) if c.all())
        logits = self.model.head_logits(pooled[[full]], torch.tensor([i], device=self.device))[0, :, 0]
        rows = self._scored_rows(labels, i)
        auc, low, high = auc_interval(logits.cpu().numpy()[rows][:, None], labels[rows, i : i + 1])
        return float(auc[0]), float(low[0]), float(high[0]), int(labels[:, i].sum())

    @torch.inference_mode()
    def response(self, species: str, predictor: str, *, mode: str = "alone", n: int = 60) -> pd.DataFrame:
        """Response curve: probability against ``predictor`` over its training range.

        ``mode="alone"``: every other predictor masked (what the model learnt from this one).
        ``mode="others"``: the others at their values in up to 200 test plots, averaged
        (a partial dependence curve).
        """
        if mode not in ("alone", "others"):
            raise ValueError(f"mode must be 'alone' or 'others', got {mode!r}")
        key = (species, predictor, mode, n)
        if key not in self._curves:
            self._curves[key] = self._response(species, predictor, mode, n)
        return self._curves[key]

    def _response(self, species: str, predictor: str, mode: str, n: int) -> pd.DataFrame:
        j = self.card.predictor_names.index(predictor)
        if self.card.predictors[j].is_embedding:
            raise DataError(f"{predictor} is an embedding: it has no single value to vary")
        stats = self.card.normalisation[predictor]
        column = sum(p.width for p in self.card.predictors[:j])
        if self.card.predictors[j].categorical:  # one point per class
            values = np.array(self.card.predictors[j].levels)
            z = np.arange(len(values), dtype=np.float32)
            n = len(values)
        else:
            raw = self.workspace.raw_predictors("train", [predictor])[:, 0]
            lo, hi = np.nanquantile(raw, [0.01, 0.99]) if np.isfinite(raw).any() else (stats["mean"] - 2, stats["mean"] + 2)
            values = np.linspace(lo, hi, n)
            z = normalise(values[:, None], [predictor], self.card.normalisation)[:, 0]
        i = torch.tensor([self._species_index[species]], device=self.device)
        if mode == "alone":
            x = torch.full((n, self.card.n_columns), float("nan"))
            x[:, column] = torch.as_tensor(z)
            p = torch.sigmoid(self.model(x.to(self.device), species=i)[:, 0]).cpu().numpy()
        else:
            base = torch.as_tensor(self.test_arrays[0][:200])
            rows = base.repeat(n, 1)
            rows[:, column] = torch.as_tensor(np.repeat(z, len(base)))
            logits = self.model(rows.to(self.device), species=i)[:, 0]
            p = torch.sigmoid(logits).view(n, len(base)).mean(dim=1).cpu().numpy()
        return pd.DataFrame({predictor: values, "probability": p})
