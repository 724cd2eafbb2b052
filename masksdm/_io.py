"""Atomic file writing and overwrite protection.

Outputs are written to a temporary file in the destination folder, then renamed, so a crash never
leaves a half-written file behind, and an existing output is only replaced when ``force`` is set.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from masksdm.errors import OutputExistsError

__all__ = ["atomic_path", "check_writable", "write_json", "write_parquet", "write_text"]


def check_writable(path: str | Path, *, force: bool = False) -> Path:
    """Return ``path`` as a Path, refusing to overwrite an existing file unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"'{path}' already exists: pass --force (force=True) to overwrite it")
    return path


@contextmanager
def atomic_path(path: str | Path, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds."""
    path = check_writable(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes owner-only files; outputs are shared data
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | Path, text: str, *, force: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path, force=force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any, *, force: bool = True) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n", force=force)


def write_parquet(path: str | Path, frame: pd.DataFrame, *, force: bool = True) -> Path:
    """Write ``frame`` to Parquet atomically (index dropped)."""
    with atomic_path(path, force=force) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)
