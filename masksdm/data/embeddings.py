"""Embedding vectors per plot, as stored in a workspace.

An encoder (e.g. SMARTIES, see :mod:`foundation_encoders`) turns imagery around each plot into one
vector. A workspace keeps each source in ``embeddings/<name>.parquet``: one row per plot with
``plot_id``, ``available`` (bool), ``status`` (why a vector is missing, ``"ok"`` otherwise) and
``embedding`` (a fixed-size list of float32). ``predictors.json`` lists the source as one predictor
of ``source="embedding"`` and ``width`` = the vector length: MaskSDM gives it one token, masked
wherever the vector is missing, and Shapley values treat it as one player of its group
(``"Satellite"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from masksdm._io import atomic_path, path_inside, safe_name
from masksdm.errors import DataError

__all__ = ["EMBEDDINGS_DIR", "align_embeddings", "embedding_path", "read_embeddings", "write_embeddings"]

#: Folder of a workspace holding one ``<name>.parquet`` (plots) or ``<name>.tif`` (map cells) per source.
EMBEDDINGS_DIR = "embeddings"


def embedding_path(workspace: str | Path, name: str, suffix: str = ".parquet") -> Path:
    """The file of embedding source ``name`` in a workspace folder: ``embeddings/<safe_name(name)><suffix>``."""
    return path_inside(Path(workspace) / EMBEDDINGS_DIR, safe_name(name) + suffix)


def write_embeddings(
    path: str | Path,
    plot_id: Sequence | np.ndarray,
    vectors: np.ndarray,
    available: np.ndarray,
    status: Sequence[str] | None = None,
    *,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write one embedding per plot (NaN rows where ``available`` is False), atomically.

    Args:
        path: the parquet file, e.g. ``WORKSPACE/embeddings/smarties_s2.parquet``.
        plot_id: (N,) plot identifiers.
        vectors: (N, D) float values.
        available: (N,) bool.
        status: (N,) reasons a vector is missing (``"ok"`` where available).
        metadata: strings stored in the file's schema metadata (encoder, bands, normalisation...).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    available = np.asarray(available, dtype=bool)
    if vectors.ndim != 2 or len(vectors) != len(available) or len(available) != len(plot_id):
        raise ValueError(
            f"need (N, D) vectors with N plot ids and N flags, got {vectors.shape}, {len(plot_id)}, {len(available)}"
        )
    vectors = np.where(available[:, None], vectors, np.nan).astype(np.float32)
    status = ["ok" if a else "missing" for a in available] if status is None else list(status)
    width = vectors.shape[1]
    table = pa.table({
        "plot_id": pa.array(np.asarray(plot_id)),
        "available": pa.array(available),
        "status": pa.array(status, type=pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), width),
    })
    table = table.replace_schema_metadata({k: str(v) for k, v in (metadata or {}).items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_embeddings(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, dict[str, str]]:
    """The ``plot_id``/``available``/``status`` table, the (N, D) float32 vectors (NaN where missing)
    and the file's metadata."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no embeddings file '{path}': compute it with `masksdm embed plots`")
    table = pq.read_table(path)
    column = table.column("embedding").combine_chunks()
    width = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, width)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return table.drop_columns(["embedding"]).to_pandas(), vectors, meta


def align_embeddings(path: str | Path, plot_id: Sequence | np.ndarray) -> np.ndarray:
    """Vectors (N, D) for the plots ``plot_id`` in that order; NaN for plots without one."""
    table, vectors, _ = read_embeddings(path)
    row = pd.Series(np.arange(len(table)), index=table["plot_id"].to_numpy())
    if not row.index.is_unique:
        raise DataError(f"'{path}' has several rows for the same plot: recompute it")
    where = row.reindex(np.asarray(plot_id)).to_numpy()
    out = np.full((len(where), vectors.shape[1]), np.nan, dtype=np.float32)
    found = ~np.isnan(where)
    out[found] = vectors[where[found].astype(np.int64)]
    return out
