"""Range maps at any size: probability, binary and species-richness GeoTIFFs from a raster stack.

The raster stack (:class:`masksdm.data.grid.RasterStack`) is read in full-width strips of cells; each
strip is predicted in batches on the model's device (the masked predictors collapsed, only the
species asked for through the head), quantised there, and written into uncompressed GeoTIFFs. Peak
memory is therefore set by the strip, not the raster: about ``cells per strip x (4 bytes x
predictors + bytes per output value x output bands)`` plus the model, and the strip height is
chosen to keep that near ``memory_mb`` (default 256 MB). When every strip is done, each output is
copied to a Cloud-Optimized GeoTIFF (GDAL's COG driver: tiled, deflate, internal overviews).

Outputs, in ``out_dir``:

* ``probability/<species>.tif`` (one file per species) or ``probability.tif`` (one band per
  species, ``layout="multiband"``): presence probability, ``uint8`` (0-254, scale 1/254) by
  default, ``uint16`` (0-65534, scale 1/65534) or ``float32``; the scale is in the band's
  scale/offset, so rasterio (``masked=True`` and ``src.scales``), QGIS and rioxarray
  (``mask_and_scale=True``) read probabilities in [0, 1]. Nodata (255, 65535 or NaN) where no
  predictor raster has data.
* ``binary/<species>.tif`` or ``binary.tif``: 1 where the (written) probability reaches the
  species' threshold, else 0, 255 = nodata. The threshold rule and value are tags of the file.
* ``richness.tif``: band 1 the expected number of species (sum of probabilities), band 2 (with a
  threshold rule) the number of species predicted present; computed in the same pass, without
  writing any per-species raster when only richness is asked for.
* ``uncertainty/<species>.tif`` or ``uncertainty.tif`` (an ensemble, ``model.ensemble`` >= 2):
  the standard deviation of the members' presence probabilities, in the probability maps' dtype
  and scale.
* ``novelty.tif``: how far each cell lies from the training plots (:mod:`masksdm.maps.novelty`):
  band 1 MESS (percent; negative where a predictor is outside its training range), band 2 the
  number of predictors outside their training range, band 3 the most dissimilar predictor (its
  1-based position in the ``novelty_predictors`` tag). Needs the workspace (the training plots);
  ``clamp=True`` also moves values outside the training range onto its ends before prediction.

Threshold rules: ``"model"`` (the thresholds stored in the model when it was trained: max TSS on
the validation plots with every predictor), ``"max_tss"`` (the probability maximising the true
skill statistic on the validation plots), ``"sensitivity:0.9"`` (the largest threshold keeping
90 % of validation presences), or a number. Data-driven rules are computed on the workspace's validation plots with
the same predictor subset as the map (plot-level predictors such as releve area are missing on maps,
so they are masked for the thresholds too).

An interrupted run keeps its finished strips in ``out_dir/.partial/`` and ``resume=True`` goes on
from there. A full disk ends in one :class:`~masksdm.errors.DiskFullError` naming the file and the
free space (see :mod:`masksdm.maps.writer`); no file is left looking complete.

``force=True`` into a folder holding maps of an earlier run: once this run's maps are written, the
earlier maps it did not rewrite (other species, outputs or layout) are removed, so that the folder
holds one run. Only maps this package wrote go (files at the map paths, ``probability/*.tif``,
``binary/*.tif``, ``probability.tif``, ``binary.tif``, ``richness.tif``, whose tags name masksdm as
their software and that output); any other file in the folder is kept. With ``workers``/``scheduler`` the strips are predicted on a dask.distributed cluster
(a LocalCluster by default) and written by this process; the output is the same bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.windows import Window
from tqdm import tqdm

from masksdm._io import safe_names
from masksdm._version import __version__
from masksdm.data.grid import RasterStack
from masksdm.data.rasters import Sources
from masksdm.errors import ConfigError, OutputExistsError, RasterError
from masksdm.locks import exclusive
from masksdm.maps.novelty import novelty_predictors, training_reference
from masksdm.maps.plan import MapPlan, plan_maps, predict_window, resolve_threshold
from masksdm.maps.writer import (
    PARTIAL,
    PartialMaps,
    allow_open_files,
    plan_targets,
    remove_stale_maps,
)
from masksdm.model.checkpoint import WEIGHTS, ModelCard, sha256_file
from masksdm.model.network import MaskSDMEnsemble, Network

__all__ = ["MapResult", "predict_maps"]

log = logging.getLogger(__name__)

_PER_SPECIES_FILES_MAX = 1000


# --- the whole map ------------------------------------------------------------------------------

@dataclass
class MapResult:
    """What :func:`predict_maps` wrote."""

    out_dir: Path
    files: list[Path]
    plan: MapPlan
    seconds: float
    n_cells: int
    removed: list[Path] = field(default_factory=list)  # maps of an earlier run removed (``force``)

    def path(self, output: str, species: str | None = None) -> Path:
        """The file written for ``output`` (``"probability"``, ``"binary"`` or ``"richness"``) and,
        for per-species files, ``species`` (species names become safe file names).

        Raises:
            ConfigError: nothing was written for that output or species.
        """
        if output in ("richness", "novelty") or (self.out_dir / f"{output}.tif") in self.files:  # multiband layout
            path = self.out_dir / f"{output}.tif"
        elif species in self.plan.species:
            stem = safe_names(self.plan.species, what="species")[self.plan.species.index(species)]
            path = self.out_dir / output / f"{stem}.tif"
        else:
            raise ConfigError(f"no {output} map of {species!r}: mapped species are {list(self.plan.species)[:5]} ...")
        if path not in self.files:
            raise ConfigError(f"no {output} map was written (outputs: {', '.join(self.plan.outputs)})")
        return path


def _block_rows(stack: RasterStack, plan: MapPlan, memory_mb: float) -> int:
    """Strip height keeping a strip's arrays near ``memory_mb``; a multiple of 256 rows when possible."""
    n = len(plan.species)
    columns = sum(stack.widths.get(name, 1) for name in plan.read_names)  # an embedding raster has many bands
    per_cell = 4 * columns * 3 + 16  # values read, raw and normalised, richness
    for kind in ("probability", "uncertainty"):
        if kind in plan.outputs:
            per_cell += n * np.dtype(np.float32 if plan.dtype == "float32" else plan.dtype).itemsize
    if "binary" in plan.outputs:
        per_cell += n
    if "novelty" in plan.outputs:
        per_cell += 4 * 3
    rows = int(memory_mb * 2**20 // (per_cell * stack.width))
    if rows >= 256:
        return min(stack.height, rows // 256 * 256)
    return max(1, rows)


def _weights_sha(model: Network) -> str:
    """sha256 of the model's tensors (no checkpoint file needed)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _signature(plan: MapPlan, model_sha: str, stack: RasterStack, layout: str, block_rows: int) -> str:
    """Identifies a run: resuming with other options, model or rasters (path, size, mtime) is refused."""
    files = {n: [str(p), p.stat().st_size, p.stat().st_mtime_ns] for n, p in stack.paths.items()}
    reference = None if plan.reference is None else plan.reference.digest
    text = json.dumps([asdict(replace(plan, reference=None)), reference, model_sha, str(stack.crs),
                       tuple(stack.transform), stack.shape, layout, block_rows, files], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _bounded_gdal_cache(func):
    """Run ``func`` with GDAL's block cache bounded (64 MB), so that memory stays set by the strip."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with rasterio.Env(GDAL_CACHEMAX=64):
            return func(*args, **kwargs)

    return wrapper


@_bounded_gdal_cache
@exclusive("out_dir", "map folder")
def predict_maps(
    model: Network,
    card: ModelCard,
    rasters: Sources | RasterStack,
    out_dir: str | Path,
    *,
    species: Sequence[str] | None = None,
    use: Sequence[str] | None = None,
    mask: Sequence[str] | None = None,
    outputs: Sequence[str] = ("probability",),
    dtype: str = "uint8",
    layout: str = "per-species",
    threshold: str | None = None,
    workspace: Any | None = None,
    clamp: bool = False,
    like: str | Path | None = None,
    align: bool = False,
    memory_mb: float = 256,
    block_rows: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint_seconds: float = 30.0,
    force: bool = False,
    progress: bool = True,
) -> MapResult:
    """Predict maps over a raster stack; see the module docstring for the outputs.

    Args:
        model, card: from :func:`masksdm.model.checkpoint.load_checkpoint`.
        rasters: raster folder(s)/files, or an open :class:`~masksdm.data.grid.RasterStack`.
        out_dir: output folder (refused if it holds outputs, unless ``force``).
        force: write into a folder that is not empty: this run's maps replace those of the same
            name, and maps of an earlier run that this run does not rewrite are removed when it is
            done (only files this package wrote as maps, by path and tags; others are kept).
        species: species names (default: all the model's species).
        use, mask: predictor/group names to use, and to leave out.
        outputs: any of ``"probability"``, ``"binary"``, ``"richness"``, ``"uncertainty"`` (an
            ensemble) and ``"novelty"`` (needs ``workspace``).
        dtype: ``"uint8"`` (default), ``"uint16"`` or ``"float32"`` for probability maps.
        layout: ``"per-species"`` files or one ``"multiband"`` file per output.
        threshold: threshold rule (see :func:`resolve_threshold`); needed for binary maps and the
            richness count.
        workspace: a :class:`~masksdm.workspace.Workspace`, for data-driven threshold rules and
            for novelty and clamping (its training plots).
        clamp: move predictor values outside the training range onto its ends before prediction.
        like: template raster of the output grid (default: ``bio_1``, else the first raster).
        align: warp rasters on other grids onto the template; without it such rasters are an
            error that shows the mismatch.
        memory_mb: target size of one strip's arrays (sets the strip height).
        block_rows: strip height instead of ``memory_mb``.
        workers, scheduler: predict strips on dask.distributed: a LocalCluster of ``workers``
            processes, or the cluster at ``scheduler`` (e.g. ``tcp://10.0.0.1:8786``).
        run_dir: the checkpoint folder (needed with dask: workers load the model from it).
        resume: go on with the unfinished run in ``out_dir``.
        checkpoint_seconds: record the finished strips (flushing the files) at most this often: a
            crash loses at most about this much work; 0 records after every strip.
    """
    start_time = time.perf_counter()
    out_dir = Path(out_dir)
    if layout not in ("per-species", "multiband"):
        raise ConfigError(f"unknown layout {layout!r}: use per-species or multiband")
    if block_rows is not None and block_rows < 1:
        raise ConfigError(f"block_rows must be positive, got {block_rows=}")
    unfinished = (out_dir / PARTIAL).exists()
    if unfinished and not (resume or force):
        raise OutputExistsError(f"'{out_dir}' holds an unfinished run: pass --resume to finish it or --force to restart")
    # with --resume, maps beside the unfinished run are its own; without one there is nothing to resume
    if not force and not (resume and unfinished) and out_dir.exists() and any(out_dir.iterdir()):
        raise OutputExistsError(
            f"'{out_dir}' is not empty{' and holds no unfinished run to resume' if resume else ''}: pass --force "
            "to overwrite its maps, or choose another --out"
        )
    stack = rasters if isinstance(rasters, RasterStack) else RasterStack(rasters, like=like)
    try:
        if stack.off_grid and not align:
            shown = "; ".join(f"{n}: {g}" for n, g in stack.off_grid.items())
            raise RasterError(
                f"rasters on another grid than {stack.describe()}: {shown}. Pass --align to warp them onto "
                "that grid (nearest neighbour), or --like RASTER to choose the grid"
            )
        species_names = list(card.species) if species is None else list(species)
        index = card.species_indices(species_names)
        if layout == "per-species" and len(species_names) > _PER_SPECIES_FILES_MAX and (
            {"probability", "binary", "uncertainty"} & set(outputs)
        ):
            raise ConfigError(
                f"{len(species_names)} species would make {len(species_names)} files per output: use "
                "--layout multiband, or --write richness for the richness map alone"
            )
        if "binary" in outputs and threshold is None:
            raise ConfigError("binary maps need a threshold rule: --threshold model, max_tss, sensitivity:0.9 or a number")
        if "uncertainty" in outputs and not isinstance(model, MaskSDMEnsemble):
            raise ConfigError(
                "uncertainty maps are the spread of an ensemble's members, and this model is one network: train "
                "an ensemble (model.ensemble = 3 in the run config, or 0: by the table's size) or leave out uncertainty"
            )
        plan = plan_maps(card, stack, species_names, use=use, mask=mask, dtype=dtype)  # checks, and what is visible
        extra = [n for n in stack.names if n not in plan.read_names]
        if extra:
            log.warning("rasters not used by this map: %s", extra)
        thresholds = None
        if threshold is not None:
            thresholds = resolve_threshold(threshold, model, card, index, np.array(plan.visible), workspace)
        reference = None
        if "novelty" in outputs or clamp:
            reference = training_reference(card, workspace, novelty_predictors(card, plan.read_names))
        plan = plan_maps(card, stack, species_names, use=use, mask=mask, outputs=outputs, dtype=dtype,
                         thresholds=thresholds, threshold_rule=threshold, reference=reference, clamp=clamp)
        rows = block_rows or _block_rows(stack, plan, memory_mb)
        model_sha = card.metrics.get("weights_sha256", "") or _model_sha(run_dir)
        model_tags = {
            "software": f"masksdm {__version__}", "model": str(run_dir or ""), "model_sha256": model_sha,
            "predictors_used": ",".join(plan.read_names),
            "predictors_masked": ",".join(p.name for p, v in zip(card.predictors, plan.visible, strict=True) if not v),
        }
        if clamp:
            model_tags["clamped"] = ",".join(reference.names) if reference else ""
        targets = plan_targets(plan, out_dir, layout, model_tags)
        out_dir.mkdir(parents=True, exist_ok=True)
        windows = list(stack.windows(rows))
        allow_open_files(len(targets) + len(stack.names))
        signature = _signature(plan, model_sha or _weights_sha(model), stack, layout, rows)
        record = PartialMaps(out_dir, targets, stack, signature, resume, rows, checkpoint_seconds=checkpoint_seconds)
        todo = [w for w in windows if int(w.row_off) not in record.done]
        n_cells = stack.width * stack.height
        try:
            with tqdm(total=n_cells, initial=stack.width * (stack.height - sum(int(w.height) for w in todo)),
                      unit="cell", unit_scale=True, desc=f"{len(species_names)} species", disable=not progress) as bar:
                for window, arrays in _strips(model, card, stack, todo, plan, batch_size=batch_size,
                                              precision=precision, workers=workers, scheduler=scheduler,
                                              run_dir=run_dir):
                    record.write(window, arrays)
                    bar.update(int(window.width * window.height))
            record.checkpoint()
        finally:
            record.close()
            record.save()
        files = record.finish(force=True, progress=progress)
        removed = remove_stale_maps(out_dir, files) if force else []
        if removed:
            log.info("removed %d map(s) of an earlier run that this run did not rewrite", len(removed))
    finally:
        if not isinstance(rasters, RasterStack):
            stack.close()
    return MapResult(out_dir, files, plan, time.perf_counter() - start_time, n_cells, removed)


def _model_sha(run_dir: str | Path | None) -> str:
    if run_dir is None:
        return ""
    path = Path(run_dir) / WEIGHTS
    return sha256_file(path) if path.exists() else ""


def _strips(model, card, stack, windows, plan, *, batch_size, precision, workers, scheduler, run_dir
            ) -> Iterator[tuple[Window, dict[str, np.ndarray]]]:
    """(window, outputs) for each strip: here, or on a dask.distributed cluster (any order)."""
    if not workers and not scheduler:
        for window in windows:
            yield window, predict_window(model, card, stack, window, plan, batch_size=batch_size, precision=precision)
        return
    from masksdm.maps.distributed import predict_strips_distributed

    if run_dir is None:
        raise ConfigError("dask workers load the model from its checkpoint folder: give run_dir (--checkpoint)")
    sources = [str(p) for p in stack.paths.values()]
    yield from predict_strips_distributed(
        run_dir, sources, windows, plan, like=str(stack.template), workers=workers, scheduler=scheduler,
        batch_size=batch_size, precision=precision,
    )
