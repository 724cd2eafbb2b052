"""Map strips predicted on a dask.distributed cluster.

Each worker loads the model from its checkpoint folder and opens the rasters once (cached per
worker process), then predicts the strips it is given with :func:`masksdm.maps.predict.predict_window`.
The calling process writes the results as they arrive, so only a few strips are in flight at a time
and memory stays bounded. The checkpoint folder and the rasters must be readable at the same paths
on every worker (true for a LocalCluster; on a real cluster, use a shared file system).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from masksdm.errors import DependencyNotFoundError
from masksdm.maps.plan import MapPlan, predict_window
from masksdm.model.checkpoint import WEIGHTS

__all__ = ["predict_strips_distributed"]

_WORKER_CACHE: dict[tuple, Any] = {}


def _stamp(paths: Sequence[str]) -> tuple[tuple[str, int, int, int], ...]:
    """Path, inode, size and modification time of each file: changes when a file is rewritten."""
    stats = [(p, os.stat(p)) for p in paths]
    return tuple((p, st.st_ino, st.st_size, st.st_mtime_ns) for p, st in stats)


def _predict_strip(
    run_dir: str, sources: tuple[str, ...], like: str, window: tuple[int, int, int, int], plan: MapPlan,
    batch_size: int | None, precision: str,
) -> tuple[tuple[int, int, int, int], dict[str, np.ndarray]]:
    """Runs on a worker: the strip's outputs (model and rasters opened once per worker)."""
    from masksdm.data.grid import RasterStack
    from masksdm.model.checkpoint import load_checkpoint
    from masksdm.model.inference import resolve_device

    # a long-lived cluster (--scheduler) outlives a run: a retrained checkpoint or a rewritten raster
    # at the same path must not be served from the cache
    key = (run_dir, _stamp([str(Path(run_dir) / WEIGHTS), *sources, like]))
    if key not in _WORKER_CACHE:
        for old in [k for k in _WORKER_CACHE if k[0] == run_dir]:
            del _WORKER_CACHE[old]
        model, card = load_checkpoint(run_dir, device=resolve_device("auto"))
        _WORKER_CACHE[key] = (model, card, RasterStack(list(sources), like=like))
    model, card, stack = _WORKER_CACHE[key]
    arrays = predict_window(model, card, stack, Window(*window), plan, batch_size=batch_size, precision=precision)
    return window, arrays


def predict_strips_distributed(
    run_dir: str | Path,
    sources: Sequence[str],
    windows: Sequence[Window],
    plan: MapPlan,
    *,
    like: str,
    workers: int | None = None,
    scheduler: str | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
) -> Iterator[tuple[Window, dict[str, np.ndarray]]]:
    """Yield (window, outputs) for every strip, in the order they finish.

    Args:
        run_dir: checkpoint folder, read by every worker.
        sources: raster files, read by every worker.
        workers: start a LocalCluster of this many single-threaded worker processes.
        scheduler: address of a running scheduler instead (``tcp://host:8786``).
    """
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DependencyNotFoundError(
            "predicting on dask needs dask.distributed: pip install 'masksdm[dask]'"
        ) from exc
    if not logging.getLogger().isEnabledFor(logging.INFO):  # the scheduler's chatter only with --verbose
        for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core"):
            logging.getLogger(name).setLevel(logging.WARNING)
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        in_flight = 2 * max(1, len(client.scheduler_info().get("workers", {})))
        args = (str(Path(run_dir).resolve()), tuple(str(s) for s in sources), like)
        queue = [(int(w.col_off), int(w.row_off), int(w.width), int(w.height)) for w in windows]

        def submit(window):
            return client.submit(_predict_strip, *args, window, plan, batch_size, precision, pure=False)

        running = as_completed([submit(w) for w in queue[:in_flight]])
        queue = queue[in_flight:]
        for future in running:
            window, arrays = future.result()
            future.release()
            if queue:
                running.add(submit(queue.pop(0)))
            yield Window(*window), arrays
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
