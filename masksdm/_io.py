"""Atomic file writing and overwrite protection; safe file names; reading (compressed) text files.

Outputs are written to a temporary file in the destination folder, then renamed, so a crash never
leaves a half-written file behind, and an existing output is only replaced when ``force`` is set.

Every name that comes from data (species, predictor, group, run, encoder) becomes a file name through
:func:`safe_name`, and every such output is checked to stay inside its folder (:func:`path_inside`).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import tempfile
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
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
    "path_inside",
    "require_zstandard",
    "safe_name",
    "safe_names",
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


#: Longest file name :func:`safe_name` returns (characters, all ASCII); file systems allow 255 bytes.
MAX_NAME = 120
# a run of anything but letters, digits, ".", "-", together with "_" and ".." in it
_UNSAFE = re.compile(r"(?:[^A-Za-z0-9.-]|\.\.)+")
# names Windows reserves for devices, with or without an extension
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_name(name: str, *, fallback: str = "unnamed") -> str:
    """``name`` (from data: a species, predictor, run...) as a file name that stays in its folder.

    Accents are dropped (NFKD), every run of characters other than ``A-Z a-z 0-9 . -`` becomes
    one ``_`` (path separators, ``..``, NUL, control characters, spaces, underscores), leading and trailing dots,
    dashes and underscores go, and a Windows device name gets a trailing ``_``. A name with nothing
    left becomes ``<fallback>_<hash>``; one longer than :data:`MAX_NAME` is cut and ends in
    ``_<hash>`` (its extension kept), the hash being the first 8 hex digits of the name's sha256.

    >>> safe_name("Abies alba"), safe_name("../../etc/Gulo gulo"), safe_name("Cirsium × hybridum")
    ('Abies_alba', 'etc_Gulo_gulo', 'Cirsium_hybridum')
    >>> safe_name("Ranunculus ficaria ssp. bulbilifer"), safe_name("Épilobe"), safe_name("nul")
    ('Ranunculus_ficaria_ssp._bulbilifer', 'Epilobe', 'nul_')
    """
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE.sub("_", text).strip("._-")
    if not stem:
        return f"{fallback}_{_digest(str(name))}"
    if _RESERVED.match(stem):
        stem = f"{stem}_"
    if len(stem) > MAX_NAME:
        suffix = Path(stem).suffix if len(Path(stem).suffix) <= 10 else ""
        stem = f"{stem[: MAX_NAME - 9 - len(suffix)].rstrip('._-')}_{_digest(str(name))}{suffix}"
    return stem


def safe_names(names: Sequence[str], *, what: str = "name") -> list[str]:
    """File names of ``names`` by :func:`safe_name`, one per name, never two alike.

    Names that would share a file name (also when they differ only in case, for file systems that
    ignore case: e.g. a hybrid written with and without ``×``) each get ``_<hash>`` of their own
    name added. The same name given twice is an error.

    >>> safe_names(["Salix x rubens", "Salix × rubens", "Quercus robur"], what="species")
    ['Salix_x_rubens', 'Salix_rubens', 'Quercus_robur']
    >>> safe_names(["Carex sp", "Carex sp."], what="species")
    ['Carex_sp_a2c16fe1', 'Carex_sp_10e64e94']
    """
    names = [str(n) for n in names]
    twice = [n for n, count in Counter(names).items() if count > 1]
    if twice:
        raise DataError(f"{what} {twice[0]!r} is given twice: give each {what} once")
    stems = [safe_name(n) for n in names]
    counts = Counter(s.lower() for s in stems)
    out = [s if counts[s.lower()] == 1 else _with_digest(s, n) for s, n in zip(stems, names, strict=True)]
    first: dict[str, str] = {}
    for stem, n in zip(out, names, strict=True):
        other = first.setdefault(stem.lower(), n)
        if other != n:  # a hash collision: never seen, but never silently one file
            raise DataError(f"{what}s {other!r} and {n!r} would write the same file '{stem}': rename one")
    return out


def _with_digest(stem: str, name: str) -> str:
    suffix = f"_{_digest(name)}"
    return stem[: MAX_NAME - len(suffix)] + suffix


def path_inside(folder: str | Path, name: str) -> Path:
    """``folder / name``, refusing any ``name`` that would lead outside ``folder`` (a separator,
    ``..``, an absolute path, or a link out of it)."""
    folder = Path(folder)
    path = folder / name
    base = folder.resolve()
    if name in ("", ".", "..") or path.resolve().parent != base:
        raise DataError(
            f"the file name {name!r} would be written outside '{folder}': pass it through "
            "masksdm._io.safe_name first"
        )
    return path


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
