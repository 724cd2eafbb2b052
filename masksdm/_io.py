"""Atomic file writing and overwrite protection; reading (compressed) text files.

Outputs are written to a temporary file in the destination folder, then renamed, so a crash never
leaves a half-written file behind, and an existing output is only replaced when ``force`` is set.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

from masksdm.errors import DataError, DependencyNotFoundError, OutputExistsError

__all__ = [
    "text_read_errors",
    "COMPRESSION",
    "CORRUPT_ERRORS",
    "atomic_path",
    "check_writable",
    "corrupt_error",
    "open_text",
    "require_zstandard",
    "write_json",
    "write_parquet",
    "write_text",
]

#: Compression extensions a text table may carry (pandas decompresses them; ``.zst`` needs the
#: ``zstandard`` package).
COMPRESSION: frozenset[str] = frozenset({".gz", ".bz2", ".zip", ".xz", ".zst"})
#: What a truncated or damaged compressed file raises while it is read.
CORRUPT_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, OSError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
)


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


def corrupt_error(path: Path, exc: BaseException) -> DataError:
    """The error for a truncated or corrupt (compressed) file."""
    return DataError(
        f"'{path}' is truncated or corrupt ({type(exc).__name__}: {exc}): download it again, or "
        "compress the original table again"
    )


@contextmanager
def text_read_errors(path: Path, what: str = "text") -> Iterator[None]:
    """Reading errors of a (possibly compressed) text file as one DataError each: not UTF-8,
    truncated or corrupt, unreadable."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot read '{path}' ({exc}): it must be UTF-8 {what}") from exc
    except CORRUPT_ERRORS as exc:
        if path.suffix.lower() in COMPRESSION:
            raise corrupt_error(path, exc) from exc
        raise DataError(f"cannot read '{path}' ({exc}): check the file and its permissions") from exc


def require_zstandard(path: Path) -> None:
    """DependencyNotFoundError naming the fix when ``zstandard`` (for ``.zst`` files) is missing."""
    try:
        import zstandard  # noqa: F401
    except ImportError as exc:
        raise DependencyNotFoundError(
            f"reading '{path}' needs the zstandard package: install zstandard (pip install "
            "zstandard), or decompress the file (zstd -d) or compress it as .gz instead"
        ) from exc


@contextmanager
def open_text(path: Path) -> Iterator[IO[str]]:
    """``path`` as UTF-8 text, decompressed as its extension says."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if not n.endswith("/")]
            if len(members) != 1:
                raise DataError(
                    f"'{path}' holds {len(members)} files ({members[:5]}): a zipped table must "
                    "hold exactly one file"
                )
            with archive.open(members[0]) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        return
    if suffix == ".zst":
        import zstandard

        with zstandard.open(path, "rt", encoding="utf-8-sig", newline="") as handle:
            yield handle
        return
    openers: dict[str, Callable[..., IO[str]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    with openers.get(suffix, open)(path, "rt", encoding="utf-8-sig", newline="") as handle:
        yield handle
