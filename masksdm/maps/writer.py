"""Map outputs on disk: one file per output (and species), filled strip by strip in uncompressed
GeoTIFFs under ``out_dir/.partial/`` (one TIFF strip per strip of cells), with a record of the
finished strips so that an interrupted run resumes; when every strip is done, each file is copied to
its final Cloud-Optimized GeoTIFF.

A write that fails (a full disk: ``ENOSPC``, or GDAL/libtiff reporting a write error, even one GDAL
only logs, as it does when it flushes blocks on close) ends in one :class:`DiskFullError` naming
the file, the free space and the fix; GDAL's and libtiff's messages, repeated for every block of
every file, are held back meanwhile. A failure while strips are written removes ``.partial/`` (its
files cannot be trusted); one while the COGs are copied keeps it, so ``resume`` only copies.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
import rasterio.shutil
from rasterio._err import CPLE_BaseError
from rasterio.windows import Window
from tqdm import tqdm

from masksdm._io import atomic_path, path_inside, safe_names, write_json
from masksdm.data.grid import RasterStack
from masksdm.errors import ConfigError, DiskFullError
from masksdm.maps.novelty import NOVELTY_BANDS
from masksdm.maps.plan import MapPlan

__all__ = ["PARTIAL", "PartialMaps", "Target", "allow_open_files", "plan_targets", "remove_stale_maps"]

log = logging.getLogger(__name__)

#: The folder of an unfinished run, inside ``out_dir``.
PARTIAL = ".partial"
_KINDS = ("probability", "binary", "richness", "uncertainty", "novelty")
_PER_SPECIES = ("probability", "binary", "uncertainty")
_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# how a full disk and other failed writes read in OSError, GDAL, libtiff and rasterio messages
_NO_SPACE = re.compile(r"no space left|free disk space|disk full|quota exceeded", re.IGNORECASE)
_WRITE_FAILED = re.compile(
    rf"{_NO_SPACE.pattern}|write (error|failed|failure)|errors? (occurred )?while writing|error writing"
    r"|fail(ed|ure)? (to|while) writ|(cannot|could not|unable to) write|write\w*\(\) failed",
    re.IGNORECASE,
)



@dataclass
class Target:
    """One output file: its bands and where each strip's rows go."""

    kind: str
    path: Path  # final COG
    bands: list[int]  # rows of the strip's array for this file
    descriptions: list[str]
    dtype: str
    nodata: float | None
    scale: float
    tags: dict[str, str]
    band_tags: list[dict[str, str]] = field(default_factory=list)


def plan_targets(plan: MapPlan, out_dir: Path, layout: str, model_tags: dict[str, str]) -> list[Target]:
    targets = []
    n = len(plan.species)
    for kind in _PER_SPECIES:
        if kind not in plan.outputs:
            continue
        dtype, nodata, scale = (plan.dtype, plan.nodata, plan.scale) if kind != "binary" else ("uint8", 255, 1.0)
        tags = dict(model_tags, output=kind)
        if kind == "probability":
            tags["units"] = "presence probability (value x scale + offset)"
        elif kind == "uncertainty":
            tags["units"] = "standard deviation of the ensemble members' presence probabilities (value x scale + offset)"
        if plan.threshold_rule is not None:
            tags["threshold_rule"] = plan.threshold_rule
        band_tags = [{"species": s} | ({"threshold": repr(plan.thresholds[j])} if plan.thresholds else {})
                     for j, s in enumerate(plan.species)]
        if layout == "multiband":
            targets.append(Target(kind, out_dir / f"{kind}.tif", list(range(n)), list(plan.species), dtype, nodata,
                                   scale, tags, band_tags))
        else:
            for j, (s, stem) in enumerate(zip(plan.species, safe_names(plan.species, what="species"), strict=True)):
                t = dict(tags, species=s)
                if plan.thresholds is not None:
                    t["threshold"] = repr(plan.thresholds[j])
                targets.append(Target(kind, path_inside(out_dir / kind, f"{stem}.tif"), [j], [s], dtype, nodata,
                                       scale, t, [band_tags[j]]))
    if "richness" in plan.outputs:
        descriptions = ["expected_richness"] + (["predicted_present"] if plan.thresholds is not None else [])
        tags = dict(model_tags, output="richness", n_species=str(n),
                    units="number of species: band 1 sum of probabilities, band 2 count above threshold")
        if plan.threshold_rule is not None:
            tags["threshold_rule"] = plan.threshold_rule
        targets.append(Target("richness", out_dir / "richness.tif", list(range(len(descriptions))), descriptions,
                               "float32", float("nan"), 1.0, tags))
    if "novelty" in plan.outputs:
        assert plan.reference is not None
        tags = dict(model_tags, output="novelty", novelty_predictors=",".join(plan.reference.names),
                    reference_plots=str(plan.reference.n_plots), clamped=str(plan.clamp).lower(),
                    units="band 1 MESS (percent, negative outside the training range), band 2 number of predictors "
                          "outside their training range, band 3 most dissimilar predictor (1-based position in "
                          "novelty_predictors)")
        targets.append(Target("novelty", out_dir / "novelty.tif", list(range(len(NOVELTY_BANDS))),
                              list(NOVELTY_BANDS), "float32", float("nan"), 1.0, tags))
    return targets


# --- failed writes ---------------------------------------------------------------------------------

@dataclass
class _Held:
    """What GDAL logged (through rasterio) and C code (libtiff) printed on stderr during a write."""

    gdal: list[str] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)

    def release(self) -> None:
        """Pass on what was held back, each message once (nothing failed: they may still matter)."""
        for message in self.gdal:
            log.debug("GDAL: %s", message)
        lines = list(dict.fromkeys(line for line in self.printed if line.strip()))
        if lines:
            print("\n".join(lines), file=sys.stderr)


class _Collect(logging.Filter):
    """Keeps the (distinct) records of rasterio's GDAL error logger and stops them there."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(self.messages) < 50 and message not in self.messages:
            self.messages.append(message)
        return False


def _memory_file() -> Any:
    """A file in memory where the system has one (a full disk cannot hold even the messages)."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("masksdm-stderr"), "w+b")  # closed by the caller
    return tempfile.TemporaryFile()


@contextmanager
def _held() -> Iterator[_Held]:
    """Hold back GDAL's log records and what is printed on file descriptor 2 during the block."""
    held = _Held()
    gdal_log = logging.getLogger("rasterio._err")  # where rasterio's GDAL error handler logs
    collect, level = _Collect(held.gdal), gdal_log.level
    gdal_log.addFilter(collect)
    gdal_log.setLevel(logging.DEBUG)
    store: Any = None
    try:
        sys.stderr.flush()
        store = _memory_file()
        saved = os.dup(2)
    except (OSError, ValueError):  # nowhere to keep the output, or no file descriptor 2
        if store is not None:
            store.close()
        store = None
    try:
        if store is not None:
            os.dup2(store.fileno(), 2)
        yield held
    finally:
        gdal_log.removeFilter(collect)
        gdal_log.setLevel(level)
        if store is not None:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            store.seek(0)
            held.printed.extend(store.read(65536).decode(errors="replace").splitlines())
            store.close()


def _write_failure(error: BaseException | None, held: _Held) -> str | None:
    """Why a write failed, from ``error`` (and what it was raised from) and what was held back; None
    when nothing says a write failed."""
    found: list[str] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None and error.errno in _FULL_ERRNOS:
            found.append(os.strerror(error.errno))
        elif isinstance(error, OSError | rasterio.errors.RasterioError | CPLE_BaseError) and _WRITE_FAILED.search(
            str(error)
        ):
            found.append(str(error))
        error = error.__cause__ or error.__context__
    found += [m.strip() for m in held.printed + held.gdal if _WRITE_FAILED.search(m)]
    no_space = [m for m in found if _NO_SPACE.search(m)]
    if not found:
        return None
    return re.sub(r"\.?\s*See previous exception for details\.?", "", (no_space or found)[0]).rstrip(". ")


def _free_bytes(path: Path) -> int | None:
    folder = next((f for f in (path, *path.parents) if f.exists()), None)
    try:
        return None if folder is None else shutil.disk_usage(folder).free
    except OSError:
        return None


# --- the partial files -------------------------------------------------------------------------------

class PartialMaps:
    """The GeoTIFFs being filled strip by strip, and the record of finished strips."""

    def __init__(self, out_dir: Path, targets: list[Target], stack: RasterStack, signature: str, resume: bool,
                 rows: int, checkpoint_seconds: float = 30.0):
        self.out_dir, self.dir, self.rows, self.every = out_dir, out_dir / PARTIAL, rows, checkpoint_seconds
        self.targets, self.stack, self.signature = targets, stack, signature
        self.state_path = self.dir / "state.json"
        self.done: set[int] = set()
        self.files: list[Any] = []
        self.finishing = False  # the strips are all written and flushed: copying the COGs
        self._current = out_dir  # the file being written, for the error message
        if resume and self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            if state.get("signature") != signature:
                raise ConfigError(
                    f"the unfinished run in '{self.dir}' was started with other options or data: rerun it with the "
                    "same ones, or pass --force to start over"
                )
            self.done = set(state["done"])
        elif self.dir.exists():
            shutil.rmtree(self.dir)
        with self._guard(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
        if not self.done:
            self._check_room()
        self._open(new=not self.done)
        self._last = time.monotonic()

    def _check_room(self) -> None:
        """DiskFullError before any work when the uncompressed partial files will not fit."""
        cells = self.stack.width * self.stack.height
        need = sum(cells * len(t.bands) * np.dtype(t.dtype).itemsize for t in self.targets)
        free = _free_bytes(self.dir)
        if free is not None and free < need:
            self._fail(self.dir, f"the unfinished maps need {need:,} bytes (uncompressed, until the COGs are written)", None)

    def _tmp(self, i: int) -> Path:
        return self.dir / f"{i:05d}.tif"

    @contextmanager
    def _guard(self, path: Path | None = None) -> Iterator[None]:
        """Turn a failed write of ``path`` (default: the file being written) into one DiskFullError;
        GDAL's and libtiff's messages meanwhile are held back, and checked: GDAL only logs some
        failures (a dirty block it cannot flush on close)."""
        error: Exception | None = None
        with _held() as held:
            try:
                yield
            except DiskFullError:
                raise
            except Exception as exc:
                error = exc
        reason = _write_failure(error, held)
        if reason is not None:
            self._fail(path or self._current, reason, error)
        held.release()
        if error is not None:
            raise error

    def _fail(self, path: Path, reason: str, error: Exception | None) -> None:
        free = _free_bytes(path)
        if self.finishing:
            then = (f"the predicted strips are kept in '{self.dir}': once there is room, rerun with --resume to "
                    "write the maps without predicting again")
        else:  # a failed flush leaves the partial files inconsistent with the record of finished strips
            with _held():  # closing flushes the other files too: more of the same messages
                self._close_files()
            shutil.rmtree(self.dir, ignore_errors=True)
            then = f"the unfinished files in '{self.dir}' were removed; rerun the command once there is room"
        smaller = "fewer species (--species) or outputs (--write)"
        if any(t.kind == "probability" and t.dtype != "uint8" for t in self.targets):
            smaller = f"a smaller --dtype (uint8: 1 byte per cell), {smaller}"
        shown = "an unknown number of bytes" if free is None else f"{free:,} bytes" + (
            f" ({free / 2**30:,.1f} GiB)" if free >= 2**30 else f" ({free / 2**20:.1f} MiB)" if free >= 2**20 else "")
        raise DiskFullError(
            f"cannot write '{path}': {reason}; {shown} free on the disk holding '{self.out_dir}'. "
            f"Free some space there, write the maps to another disk (--out), or make them smaller: {smaller}. "
            f"{then[0].upper()}{then[1:]}"
        ) from error

    def _open(self, *, new: bool) -> None:
        self.files = []
        for i, t in enumerate(self.targets):
            with self._guard(self._tmp(i)):
                if new:  # uncompressed, one TIFF strip per strip of cells, each in its place from the first
                    # flush on: writing a strip never moves another or rewrites the file's directory, so a
                    # process killed at any point leaves the strips recorded as finished intact
                    profile = self.stack.profile(count=len(t.bands), dtype=t.dtype, nodata=t.nodata)
                    for key in ("blockxsize", "compress", "predictor"):
                        del profile[key]
                    profile.update(tiled=False, blockysize=self.rows)
                    dst = rasterio.open(self._tmp(i), "w", **profile)
                    dst.descriptions = tuple(t.descriptions)
                    if t.scale != 1.0:
                        dst.scales = (t.scale,) * len(t.bands)
                        dst.offsets = (0.0,) * len(t.bands)
                    dst.update_tags(**t.tags)
                    for b, bt in enumerate(t.band_tags, start=1):
                        dst.update_tags(b, **bt)
                else:
                    dst = rasterio.open(self._tmp(i), "r+")
                self.files.append(dst)

    def write(self, window: Window, arrays: dict[str, np.ndarray]) -> None:
        with self._guard():
            for i, (t, dst) in enumerate(zip(self.targets, self.files, strict=True)):
                self._current = self._tmp(i)
                dst.write(arrays[t.kind][t.bands], window=window)
        self.done.add(int(window.row_off))
        if time.monotonic() - self._last >= self.every:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Flush every file to disk (close and reopen), then record the finished strips."""
        self.close()
        self.save()
        self._open(new=False)
        self._last = time.monotonic()

    def save(self) -> None:
        """Record the finished strips (unless the partial folder is gone)."""
        if self.dir.exists():
            with self._guard(self.state_path):
                write_json(self.state_path, {"signature": self.signature, "done": sorted(self.done)})

    def _close_files(self) -> None:
        files, self.files = self.files, []
        for i, dst in enumerate(files):
            self._current = self._tmp(i)
            dst.close()

    def close(self) -> None:
        """Close (and so flush) every file; a block GDAL cannot write is a DiskFullError."""
        with self._guard():
            self._close_files()

    def finish(self, *, force: bool, progress: bool = True) -> list[Path]:
        """Copy every file to a COG at its final path (atomically), then remove the partial folder."""
        self.close()
        self.finishing = True
        written = []
        bar = tqdm(self.targets, desc="writing COGs", unit="file", disable=not progress or len(self.targets) < 20)
        for i, t in enumerate(bar):
            resampling = "NEAREST" if t.kind in ("binary", "novelty", "change") else "AVERAGE"  # codes stay codes
            with self._guard(t.path):
                t.path.parent.mkdir(parents=True, exist_ok=True)
                for stale in t.path.parent.glob(f".{t.path.name}.*.tmp"):  # a copy killed midway (safe names)
                    stale.unlink()
            with atomic_path(t.path, force=force) as tmp, self._guard(t.path):  # checked before the rename
                rasterio.shutil.copy(self._tmp(i), tmp, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
                                     OVERVIEWS="IGNORE_EXISTING", OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER")
            written.append(t.path)
        # the record goes first: a crash while the folder is removed leaves nothing to resume from
        # half-deleted files (a rerun with --resume then starts over; --force is not needed)
        self.state_path.unlink(missing_ok=True)
        shutil.rmtree(self.dir)
        return written


def allow_open_files(n_files: int) -> None:
    """Raise the soft open-file limit when ``n_files`` (and some slack) would not fit under it."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: no per-process soft limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = n_files + 256  # the rasters, Python, torch and GDAL's own files
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(
            f"{n_files} files would be open at once but the open-file limit is {hard}: use --layout multiband, "
            "or raise the limit (ulimit -n)"
        )
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except (ValueError, OSError) as exc:  # e.g. macOS caps it below an infinite hard limit
        raise ConfigError(
            f"{n_files} files would be open at once and the open-file limit cannot be raised ({exc}): use "
            "--layout multiband, or raise the limit (ulimit -n)"
        ) from exc


# --- the maps of an earlier run ------------------------------------------------------------------------

def _is_written_map(path: Path, kind: str) -> bool:
    """Whether ``path`` is a ``kind`` map that this package wrote (its tags say so)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                tags = src.tags()
    except (rasterio.errors.RasterioError, CPLE_BaseError, OSError):  # not a raster GDAL reads: not ours
        return False
    return tags.get("software", "").startswith("masksdm") and tags.get("output") == kind


def remove_stale_maps(out_dir: Path, keep: Sequence[Path]) -> list[Path]:
    """Remove the maps of an earlier run in ``out_dir`` that this run did not rewrite (``keep``).

    A file goes only when it is where maps are written and its tags say this package wrote it as
    that output: ``probability/*.tif`` and ``binary/*.tif`` (per species), ``probability.tif``,
    ``binary.tif`` and ``richness.tif`` (multiband), each tagged ``software=masksdm ...`` and
    ``output=<that output>``. The temporary files of an interrupted copy (``.<map>.tif.*.tmp``) go
    too, and a per-species folder left empty. Anything else (the user's own files, rasters of other
    tools, a map renamed or moved elsewhere) is kept.

    Returns:
        The maps removed.
    """
    kept = {Path(p).resolve() for p in keep}
    candidates = [(out_dir / f"{kind}.tif", kind) for kind in _KINDS]
    for kind in _PER_SPECIES:
        candidates += [(p, kind) for p in sorted((out_dir / kind).glob("*.tif"))]
    removed = []
    for path, kind in candidates:
        if path.is_file() and path.resolve() not in kept and _is_written_map(path, kind):
            path.unlink()
            removed.append(path)
    for folder in (out_dir, *(out_dir / kind for kind in _PER_SPECIES)):
        for tmp in folder.glob(".*.tif.*.tmp"):
            tmp.unlink(missing_ok=True)
    for kind in _PER_SPECIES:
        folder = out_dir / kind
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed
