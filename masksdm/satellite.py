"""Embed Sentinel imagery around plots or map cells with a foundation encoder, resumably.

For every location (WGS84 lon/lat) the pipeline finds the image that covers it, reads a square
window centred on it in the image's own CRS with every band resampled to 10 m (bilinear), scales
each band with the encoder's pretraining statistics (nodata set to the band mean), resizes to the
encoder's input size (bicubic) and keeps the encoder's embedding (the SMARTIES CLS token).
Locations without usable imagery are flagged unavailable with the reason; MaskSDM masks their
token. Reader threads prepare the next batches while the encoder runs (on the GPU, in bf16, when
there is one). Finished batches are saved to ``<output>.partial/`` so an interrupted run resumes where it
stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from foundation_encoders.imagery import Scene, locate
from foundation_encoders.spectrum import (
    SENTINEL1_BANDS,
    SENTINEL2_L2A_BANDS,
    canonical_band,
    normalise,
    projection_indices,
)

__all__ = ["EmbedResult", "default_bands", "embed_cells", "embed_locations", "embed_plots"]

#: Metres per pixel of the window every band is resampled to (Sentinel-2's finest bands).
RESOLUTION = 10.0


@dataclass
class EmbedResult:
    """Embeddings of N locations.

    Attributes:
        vectors: (N, D) float32, NaN where not available.
        available: (N,) bool.
        status: (N,) ``"ok"`` or why the location has no embedding.
        settings: what produced them (encoder, bands, window, ...), stored with the vectors.
    """

    vectors: np.ndarray
    available: np.ndarray
    status: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.Series:
        """Number of locations per status."""
        return pd.Series(self.status).value_counts()


def default_bands(sensor: str) -> tuple[str, ...]:
    """Every band SMARTIES was pretrained on for ``"S2"`` (12 L2A bands, no B10) or ``"S1"``."""
    if sensor not in ("S2", "S1"):
        raise ValueError(f"unknown sensor {sensor!r}: use 'S2' (Sentinel-2 L2A) or 'S1' (Sentinel-1 GRD)")
    return SENTINEL2_L2A_BANDS if sensor == "S2" else SENTINEL1_BANDS


class _Partial:
    """Finished batches of an interrupted run: ``<folder>/part-*.npz`` plus the run's settings."""

    def __init__(self, folder: Path, settings: dict[str, Any], *, resume: bool, every: float = 30.0) -> None:
        self.folder = folder
        self.settings, self.every = settings, every
        saved = folder / "settings.json"
        if folder.exists() and not resume:
            shutil.rmtree(folder)
        if saved.is_file() and json.loads(saved.read_text()) != settings:
            raise ValueError(
                f"'{folder}' holds an interrupted run with other settings ({saved}): rerun with the same "
                "options, or with --force to start over"
            )
        folder.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(settings, indent=1))
        self._rows: list[np.ndarray] = []
        self._vectors: list[np.ndarray] = []
        self._status: list[str] = []
        self._saved_at = time.monotonic()

    def done(self) -> dict[int, tuple[np.ndarray, str]]:
        """Row index -> (vector, status) of every location finished by an earlier run."""
        out: dict[int, tuple[np.ndarray, str]] = {}
        for part in sorted(self.folder.glob("part-*.npz")):
            with np.load(part) as data:
                for row, vector, status in zip(data["rows"], data["vectors"], data["status"], strict=True):
                    out[int(row)] = (vector, str(status))
        return out

    def add(self, rows: np.ndarray, vectors: np.ndarray, status: Sequence[str]) -> None:
        self._rows.append(rows)
        self._vectors.append(vectors)
        self._status.extend(status)
        if time.monotonic() - self._saved_at >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        n = len(list(self.folder.glob("part-*.npz")))
        tmp = self.folder / f"tmp-{n:05d}.npz"
        np.savez(tmp, rows=np.concatenate(self._rows), vectors=np.concatenate(self._vectors),
                 status=np.array(self._status))
        tmp.replace(self.folder / f"part-{n:05d}.npz")
        self._rows, self._vectors, self._status = [], [], []
        self._saved_at = time.monotonic()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _batches(rows: np.ndarray, scene_of: np.ndarray, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Batches of rows that share one scene (so one band list), scene by scene."""
    for scene in np.unique(scene_of[rows]):
        of_scene = rows[scene_of[rows] == scene]
        for start in range(0, len(of_scene), batch_size):
            yield int(scene), of_scene[start : start + batch_size]


def _read_batch(
    scene: Scene, rows: np.ndarray, x: np.ndarray, y: np.ndarray, bands: Sequence[str], window: int, min_valid: float
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Normalised windows (n, C, window, window) of the rows whose imagery is usable, their row
    indices, and the status of every row of the batch (in order)."""
    images, ok_rows, status = [], [], []
    for row in rows:
        try:
            raw, valid = scene.read(float(x[row]), float(y[row]), size_px=window, resolution=RESOLUTION, bands=list(bands))
        except Exception as err:  # noqa: BLE001 - one unreadable window must not stop the run
            status.append(f"read error in {scene.name}: {err}")
            continue
        share = float(valid.mean())
        if share < min_valid:
            status.append(f"nodata: {share:.0%} valid pixels in {scene.name}")
            continue
        images.append(normalise(raw, bands, valid))
        ok_rows.append(row)
        status.append("ok")
    stacked = np.stack(images).astype(np.float32) if images else np.empty((0, len(bands), window, window), np.float32)
    return stacked, np.array(ok_rows, dtype=np.int64), status


class _Readers:
    """Each reader thread's own copy of the scene it reads (a scene's open files are not
    thread-safe); batches come scene by scene, so a thread keeps one scene open at a time."""

    def __init__(self, scenes: Sequence[Scene]) -> None:
        self._scenes = scenes
        self._local = threading.local()
        self._lock = threading.Lock()
        self._copies: list[Scene] = []

    def scene(self, index: int) -> Scene:
        held: tuple[int, Scene] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == index:
            return held[1]
        if held is not None:
            held[1].close()
        copy = dataclasses.replace(self._scenes[index])  # same bands, no open files
        with self._lock:
            self._copies.append(copy)
        self._local.held = (index, copy)
        return copy

    def close(self) -> None:
        with self._lock:
            for copy in self._copies:
                copy.close()
            self._copies.clear()


def embed_locations(
    encoder: torch.nn.Module,
    scenes: Sequence[Scene],
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    bands: Sequence[str] | None = None,
    window: int = 120,
    min_valid: float = 0.5,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    partial: str | Path | None = None,
    resume: bool = True,
    checkpoint_seconds: float = 30.0,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
) -> EmbedResult:
    """Embed the imagery around each location.

    Args:
        encoder: e.g. ``foundation_encoders.get_encoder("smarties-vitb", weights=...)``; called as
            ``encoder(images, bands)`` on (B, C, img_size, img_size) normalised images.
        scenes: images from :func:`foundation_encoders.discovery.find_scenes`.
        lon, lat: (N,) WGS84 degrees.
        bands: band names to use (default: every pretraining band of the scenes' sensor). A scene
            lacking one of them leaves its locations unavailable.
        window: window side in 10 m pixels (120 = 1.2 km, as BigEarthNet patches).
        min_valid: least share of valid (not nodata) pixels for an embedding.
        batch_size: images per encoder call.
        workers: reader threads (default: one per CPU core, up to 8).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        precision: ``"auto"`` (bf16 on CUDA, fp32 on CPU), ``"bf16"`` or ``"fp32"``.
        partial: folder for finished batches (resume state); None keeps nothing.
        resume: reuse the finished batches in ``partial`` (same settings only).
        checkpoint_seconds: save the finished batches to ``partial`` at most this often (a crash
            loses about this much work; 0: after every batch).
        settings: extra settings recorded with the run (e.g. the weights' sha256).
        progress: show a progress bar.
    """
    from masksdm.model.inference import autocast, resolve_device

    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    if not scenes:
        raise ValueError("no imagery: pass folders or files holding Sentinel-2/Sentinel-1 GeoTIFFs")
    sensors = {s.sensor for s in scenes}
    if bands is None:
        if len(sensors) > 1:
            raise ValueError(
                f"the imagery mixes sensors {sorted(sensors)}: embed each sensor on its own (--sensor S2 / S1) "
                "so each gets its own token"
            )
        bands = default_bands(next(iter(sensors)))
    projection_indices(bands)  # wrong names fail here, before any reading
    bands = tuple(canonical_band(b) for b in bands)  # "b4", "B08A" -> the scenes' names B04, B8A
    described: Any = encoder  # an Encoder: embed_dim, img_size and name besides the nn.Module
    img_size, dim = int(described.img_size), int(described.embed_dim)
    dev = resolve_device(device)
    encoder = encoder.to(dev).eval()
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    run_settings = {
        "encoder": str(described.name), "bands": list(bands), "window": window,
        "resolution": RESOLUTION, "img_size": img_size, "min_valid": min_valid, "n": len(lon),
        "locations": hashlib.sha256(np.stack([lon, lat]).tobytes()).hexdigest()[:16], **(settings or {}),
    }
    n = len(lon)
    vectors = np.full((n, dim), np.nan, dtype=np.float32)
    status = ["not covered by any image"] * n
    scene_of, x, y = locate(lon, lat, list(scenes), size_px=window, resolution=RESOLUTION)
    state = _Partial(Path(partial), run_settings, resume=resume, every=checkpoint_seconds) if partial is not None else None
    done = state.done() if state is not None else {}
    for row, (vector, said) in done.items():
        vectors[row], status[row] = vector, said
    for i, scene in enumerate(scenes):
        lacking = [b for b in bands if b not in scene.band_names]
        if lacking:
            for r in np.flatnonzero(scene_of == i):
                status[r] = f"image {scene.name} lacks bands {lacking}"
            scene_of[scene_of == i] = -1
    todo = np.array([r for r in np.flatnonzero(scene_of >= 0) if r not in done], dtype=np.int64)
    batches = list(_batches(todo, scene_of, batch_size))
    bar = tqdm(total=len(todo), desc=f"embed {run_settings['encoder']}", unit="img", disable=not progress)

    readers = _Readers(scenes)

    def read(item: tuple[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        scene, rows = item
        images, ok_rows, said = _read_batch(readers.scene(scene), rows, x, y, bands, window, min_valid)
        return rows, images, ok_rows, said

    # reader threads fill the batches ahead (GDAL reads release the GIL) while the encoder runs
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            ahead: deque[Future] = deque()
            queue = iter(batches)
            for item in itertools.islice(queue, 2 * workers):
                ahead.append(pool.submit(read, item))
            while ahead:
                rows, images, ok_rows, said = ahead.popleft().result()
                for item in itertools.islice(queue, 1):
                    ahead.append(pool.submit(read, item))
                out = np.full((len(rows), dim), np.nan, dtype=np.float32)
                if len(ok_rows):
                    batch = torch.from_numpy(images).to(dev, non_blocking=True)
                    batch = F.interpolate(batch, size=(img_size, img_size), mode="bicubic", align_corners=False)
                    with torch.inference_mode(), autocast(dev, precision):
                        emb = encoder(batch, bands).float().cpu().numpy()
                    out[np.searchsorted(rows, ok_rows)] = emb  # rows are increasing within a batch
                for j, row in enumerate(rows):
                    vectors[row], status[row] = out[j], said[j]
                if state is not None:
                    state.add(rows, out, said)
                bar.update(len(rows))
    finally:  # an interrupted run keeps every finished batch
        bar.close()
        if state is not None:
            state.flush()
        readers.close()
    available = np.array([s == "ok" for s in status])
    vectors[~available] = np.nan
    return EmbedResult(vectors=vectors, available=available, status=status, settings=run_settings)


def _output(path: Path, *, resume: bool, force: bool) -> Path:
    """The ``.partial`` folder of ``path``, after checking ``path`` may be written."""
    from masksdm._io import check_writable
    from masksdm.errors import OutputExistsError

    check_writable(path, force=force)
    partial = path.with_name(path.name + ".partial")
    if partial.exists() and not resume and not force:
        raise OutputExistsError(
            f"'{partial}' holds an interrupted run: pass --resume to finish it or --force to start over"
        )
    return partial


def embed_plots(
    workspace: Any,
    encoder: torch.nn.Module,
    scenes: Sequence[Scene],
    *,
    name: str,
    group: str = "Satellite",
    resume: bool = False,
    force: bool = False,
    **options: Any,
) -> EmbedResult:
    """Embed the imagery around every plot of a workspace into ``embeddings/<name>.parquet`` and
    list ``name`` among the workspace's predictors (one token of group ``group``).

    ``options`` go to :func:`embed_locations` (bands, window, batch_size, device, ...).
    """
    from masksdm._io import safe_name
    from masksdm.data.embeddings import embedding_path, write_embeddings
    from masksdm.data.predictors import EMBEDDING, Predictor
    from masksdm.errors import ConfigError
    from masksdm.workspace import Workspace

    if safe_name(name) != name:  # a predictor name, and the stem of its map raster
        raise ConfigError(f"embedding name {name!r} is not a plain file name: try {safe_name(name)!r}")
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    out = embedding_path(ws.path, name)
    partial = _output(out, resume=resume, force=force)
    plots = ws.plots
    result = embed_locations(encoder, scenes, plots["lon"].to_numpy(), plots["lat"].to_numpy(),
                             partial=partial, resume=resume, **options)
    meta = {"settings": json.dumps(result.settings)}
    write_embeddings(out, plots["plot_id"].to_numpy(), result.vectors, result.available, result.status, metadata=meta)
    ws.add_embedding(Predictor(name, group, EMBEDDING, "", width=result.vectors.shape[1]))
    shutil.rmtree(partial, ignore_errors=True)
    return result


def embed_cells(
    encoder: torch.nn.Module,
    scenes: Sequence[Scene],
    like: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    **options: Any,
) -> EmbedResult:
    """Embed the imagery around the centre of every cell of the grid of raster ``like`` into a
    GeoTIFF ``out`` with one band per embedding value (NaN where no imagery): name it
    ``<name>.tif`` and add its folder to the rasters of ``masksdm predict`` / ``shapley map``.

    Only the cells an image covers are embedded, and the raster is written strip by strip, so
    memory holds their vectors plus one strip of the grid; ``options`` go to
    :func:`embed_locations`.
    """
    from masksdm.data.grid import GeoTIFFWriter, RasterStack

    out = Path(out)
    partial = _output(out, resume=resume, force=force)
    with RasterStack([Path(like)], like=like) as grid:
        lon, lat = grid.lonlat()
        scene_of, _, _ = locate(lon, lat, list(scenes), size_px=options.get("window", 120), resolution=RESOLUTION)
        cells = np.flatnonzero(scene_of >= 0)  # increasing: row-major cell indices
        result = embed_locations(encoder, scenes, lon[cells], lat[cells], partial=partial, resume=resume, **options)
        dim, width = result.vectors.shape[1], grid.width
        with GeoTIFFWriter(out, grid, descriptions=[f"e{i}" for i in range(dim)], force=force) as writer:
            for window in grid.windows():
                first, size = window.row_off * width, window.height * width
                inside = slice(*np.searchsorted(cells, [first, first + size]))
                block = np.full((dim, size), np.nan, dtype=np.float32)
                block[:, cells[inside] - first] = result.vectors[inside].T
                writer.write(window, block.reshape(dim, window.height, width))
    shutil.rmtree(partial, ignore_errors=True)
    return result
