"""Shapley maps: for one species, where each predictor group raises or lowers its predicted presence.

For every cell of a raster stack's grid the local Shapley values of the players (by default the
predictor groups a map can have: climate, soil, topography, location, human footprint) are
computed by masking (:mod:`masksdm.explain.games`) and written as a GeoTIFF on that grid with one band
per player, plus the base value (no predictor visible) first and the prediction (every player
visible) last, so that ``base_value + sum(players) = prediction`` in every cell.

Plot-level predictors (the Metadata group: releve area, cover, vegetation height) have no raster;
they stay masked on maps, as in the MaskSDM paper's local Shapley maps. Cells where every raster
predictor is missing (sea, outside the rasters) are NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from masksdm._io import check_writable
from masksdm.data.grid import COMPUTED_PREDICTORS, GeoTIFFWriter, RasterStack
from masksdm.data.rasters import Sources
from masksdm.errors import ConfigError, RasterError
from masksdm.explain.core import ShapleyResult
from masksdm.explain.games import LocalGame, Players, estimate_shapley, resolve_players
from masksdm.maps.plan import mappable_predictors, missing_rasters, read_cells
from masksdm.model.checkpoint import ModelCard
from masksdm.model.network import Network

__all__ = ["map_players", "shapley_map"]


def map_players(card: ModelCard, stack: RasterStack, players: Players | None = None) -> dict[str, np.ndarray]:
    """Players of a Shapley map and their predictor masks, checked against the raster stack.

    Default: every predictor group with a mappable predictor. A player with no mappable predictor
    (e.g. Metadata) and a raster the stack lacks are errors that name them.
    """
    mappable = mappable_predictors(card, stack)
    if players is None:
        groups = [g for g, m in resolve_players("groups", card.predictors, card.allowed).items() if (m & mappable).any()]
        players = groups
    masks = resolve_players(players, card.predictors, card.allowed)
    for name, mask in masks.items():
        if not (mask & mappable).any():
            raise ConfigError(
                f"player {name!r} has no raster: its predictors are plot-level fields, masked on maps; "
                "leave it out of --players"
            )
    missing = missing_rasters(card, stack, np.stack(list(masks.values())).any(axis=0) & mappable)
    if missing:
        raise RasterError(
            f"the raster stack lacks {len(missing)} predictor(s) the model needs for players "
            f"{list(masks)}: {missing}. Add '<name>.tif' rasters for them, or choose fewer players "
            "(--players)"
        )
    return masks


def shapley_map(
    model: Network,
    card: ModelCard,
    rasters: Sources | RasterStack,
    species: str,
    out: str | Path,
    *,
    players: Players | None = None,
    like: str | Path | None = None,
    scale: str = "probability",
    method: str = "exact",
    target_se: float | None = None,
    max_evaluations: int | None = None,
    seed: int = 0,
    block_rows: int = 256,
    batch_size: int | None = None,
    precision: str = "auto",
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Write a Shapley map of ``species`` on the grid of the raster stack.

    Args:
        model, card: from :func:`masksdm.model.checkpoint.load_checkpoint`.
        rasters: raster folder(s)/files or an open :class:`~masksdm.data.grid.RasterStack`.
        species: one species of the model.
        out: output GeoTIFF; bands ``base_value``, one per player, ``prediction``.
        players: see :func:`map_players`.
        like: template raster of the output grid (default: ``bio_1``, else the first raster).
        scale: ``"probability"`` or ``"logit"``.
        method: ``"exact"`` (default), or ``"permutation"``/``"kernel"`` for many players, with
            ``target_se``, ``max_evaluations`` and ``seed`` (per block of cells).
        block_rows: grid rows read and written at a time.

    Returns:
        The path written.
    """
    check_writable(out, force=force)
    species_index = card.species_indices(species)
    stack = rasters if isinstance(rasters, RasterStack) else RasterStack(rasters, like=like)
    try:
        masks = map_players(card, stack, players)
        player_masks = np.stack(list(masks.values()))
        readable = [p.name for p in card.predictors if p.name in stack.names or p.name in COMPUTED_PREDICTORS]
        names = ["base_value", *masks, "prediction"]
        n_cells = stack.width * stack.height
        with GeoTIFFWriter(out, stack, descriptions=names, force=force) as writer, tqdm(
            total=n_cells, unit="cell", desc=f"Shapley map {species}", disable=not progress
        ) as bar:
            for window in stack.windows(block_rows):
                raw, land = read_cells(card, stack, readable, window)
                bands = np.full((len(names), len(raw)), np.nan, dtype=np.float32)
                if land.any():
                    game = LocalGame(model, card.features(raw[land]), player_masks, species_index,
                                     scale=scale, batch_size=batch_size, precision=precision)
                    result = estimate_shapley(game, list(masks), method=method, target_se=target_se,
                                              max_evaluations=max_evaluations, seed=seed)
                    bands[:, land] = _bands(result)
                writer.write(window, bands.reshape(len(names), int(window.height), int(window.width)))
                bar.update(len(raw))
    finally:
        if not isinstance(rasters, RasterStack):
            stack.close()
    return Path(out)


def _bands(result: ShapleyResult) -> np.ndarray:
    """(k + 2, n) rows: base value, one per player, prediction (one species)."""
    return np.concatenate([
        np.asarray(result.base_value)[:, 0][None],
        np.asarray(result.values)[:, 0, :].T,
        np.asarray(result.full_value)[:, 0][None],
    ])

