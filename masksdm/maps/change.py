"""Range change between two projections: where each species is lost, kept and gained.

:func:`range_change` compares two folders of maps written by :func:`masksdm.maps.predict_maps`
on the same grid (``masksdm predict`` on the current rasters, then on a future climate), species
by species, in one pass over strips of cells. Each species is read as a binary map: its
``binary`` map where the folder has one, else its ``probability`` map at the threshold stored in
the map's tags (``predict --threshold``), or at thresholds given here. Writes, in ``out_dir``:

* ``change/<species>.tif`` (or one ``change.tif`` band per species, ``layout="multiband"``),
  int8 in the codes of biomod2's ``BIOMOD_RangeSize``: ``-2`` lost, ``-1`` kept (present in
  both), ``0`` absent in both, ``1`` gained; ``-128`` (nodata) where either map has no data;
* ``richness_change.tif``: bands ``current_present``, ``future_present`` (the number of the
  compared species predicted present) and ``change`` (future minus current), and, when both
  folders hold probability maps, ``expected_change`` (the change of the summed probabilities);
* ``range_change.csv``: per species, the cells ``lost``, ``stable_present``, ``stable_absent``
  and ``gained``, ``current_range`` (lost + stable_present), ``future_range_no_dispersal``
  (stable_present), ``future_range_full_dispersal`` (stable_present + gained), ``percent_lost``
  and ``percent_gained`` (of the current range) and ``range_change`` (percent_gained -
  percent_lost), as biomod2 reports them; and the two thresholds used. Only cells with data in
  both maps count.

The change maps are written through the same resumable, checked writer as the projections
(:mod:`masksdm.maps.writer`).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window
from tqdm import tqdm

from masksdm._io import path_inside, safe_names, write_text
from masksdm._version import __version__
from masksdm.data.grid import RasterStack
from masksdm.errors import ConfigError, DataError, OutputExistsError, RasterError
from masksdm.locks import exclusive
from masksdm.maps.plan import threshold_codes
from masksdm.maps.writer import PartialMaps, Target, allow_open_files

__all__ = ["CHANGE_CODES", "ChangeResult", "range_change"]

log = logging.getLogger(__name__)

#: The codes of a change map (biomod2's ``BIOMOD_RangeSize``) and its nodata.
CHANGE_CODES = {"lost": -2, "stable_present": -1, "stable_absent": 0, "gained": 1}
_NODATA = -128


@dataclass(frozen=True)
class _Source:
    """Where one species' map is in a folder, and how to read it as present/absent."""

    path: Path
    band: int
    kind: str  # "binary" or "probability"
    threshold: float | None
    scale: float
    dtype: str
    nodata: float | None
    grid: tuple[str, tuple[float, ...], int, int]  # CRS, transform, width, height


@dataclass
class ChangeResult:
    """What :func:`range_change` wrote."""

    out_dir: Path
    files: list[Path]
    table: pd.DataFrame  # one row per species, the columns of range_change.csv
    seconds: float
    n_cells: int


def _map_sources(folder: Path) -> dict[str, dict[str, _Source]]:
    """``{kind: {species: source}}`` of the binary and probability maps in a predict folder."""
    out: dict[str, dict[str, _Source]] = {}
    for kind in ("binary", "probability"):
        files = sorted((folder / kind).glob("*.tif")) + ([folder / f"{kind}.tif"] if (folder / f"{kind}.tif").is_file() else [])
        found: dict[str, _Source] = {}
        for path in files:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(path) as src:
                    tags = src.tags()
                    if not tags.get("software", "").startswith("masksdm") or tags.get("output") != kind:
                        continue
                    grid = (str(src.crs), tuple(round(v, 9) for v in tuple(src.transform)[:6]), src.width, src.height)
                    for band in range(1, src.count + 1):
                        band_tags = src.tags(band)
                        species = band_tags.get("species") or tags.get("species")
                        if species is None:
                            continue
                        threshold = band_tags.get("threshold") or tags.get("threshold")
                        found[species] = _Source(
                            path, band, kind, None if threshold is None else float(threshold),
                            float(src.scales[band - 1] or 1.0), src.dtypes[band - 1], src.nodatavals[band - 1], grid,
                        )
        if found:
            out[kind] = found
    return out


def _choose(sources: dict[str, dict[str, _Source]], species: str, folder: Path, threshold: float | None) -> _Source:
    """The binary map of ``species``, else its probability map with a threshold."""
    if threshold is None and species in sources.get("binary", {}):
        return sources["binary"][species]
    if species not in sources.get("probability", {}):
        if species in sources.get("binary", {}):
            return sources["binary"][species]
        raise DataError(f"'{folder}' holds no binary or probability map of {species!r}")
    source = sources["probability"][species]
    if threshold is not None:
        return replace(source, threshold=threshold)
    if source.threshold is None:
        raise ConfigError(
            f"the probability map of {species!r} in '{folder}' stores no threshold: predict it again with "
            "--threshold (model, max_tss, ...) or --write binary, or give change a --threshold"
        )
    return source


class _Reader:
    """The species' maps of one folder, read strip by strip as present (1), absent (0) or nodata."""

    def __init__(self, sources: Sequence[_Source]) -> None:
        self.sources = list(sources)
        self.files: dict[Path, rasterio.io.DatasetReader] = {}
        for s in self.sources:
            if s.path not in self.files:
                self.files[s.path] = rasterio.open(s.path)
        self.codes = [
            None if s.threshold is None else threshold_codes([s.threshold], s.dtype, s.scale)[0] for s in self.sources
        ]

    def read(self, j: int, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(present bool, valid bool, values as stored) of species ``j`` in ``window``."""
        s = self.sources[j]
        values = self.files[s.path].read(s.band, window=window)
        if s.dtype.startswith("float"):
            valid = ~np.isnan(values)
        else:
            valid = np.ones(values.shape, dtype=bool) if s.nodata is None else values != s.nodata
        present = values == 1 if s.kind == "binary" else values >= self.codes[j]
        return present, valid, values

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _block_rows(width: int, n_species: int, memory_mb: float) -> int:
    per_cell = n_species + 40  # the int8 codes of every species, the richness sums and a species' reads
    rows = int(memory_mb * 2**20 // (per_cell * width))
    for step in (512, 256):  # the maps are COGs of 512 x 512 tiles: whole tile rows decompress once
        if rows >= step:
            return rows // step * step
    return max(1, rows)


@exclusive("out_dir", "change folder")
def range_change(
    current: str | Path,
    future: str | Path,
    out_dir: str | Path,
    *,
    species: Sequence[str] | None = None,
    thresholds: float | Mapping[str, float] | None = None,
    layout: str = "per-species",
    memory_mb: float = 256,
    block_rows: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> ChangeResult:
    """Gain, loss and stability of each species between two map folders; see the module docstring.

    Args:
        current, future: folders written by ``masksdm predict`` on the same grid.
        out_dir: output folder (refused when it is not empty, unless ``force``).
        species: the species to compare (default: every species mapped in both folders).
        thresholds: one probability threshold, or one per species, for the probability maps
            (instead of the thresholds in their tags; binary maps are then not used).
        layout: ``"per-species"`` change files or one ``"multiband"`` file.
        memory_mb, block_rows: strip size (as for :func:`~masksdm.maps.predict_maps`).

    Raises:
        DataError: a folder holds no map of a species; RasterError: the folders' maps are on
        different grids; ConfigError: a probability map without a stored threshold, bad options.
    """
    start = time.perf_counter()
    current, future, out_dir = Path(current), Path(future), Path(out_dir)
    if layout not in ("per-species", "multiband"):
        raise ConfigError(f"unknown layout {layout!r}: use per-species or multiband")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise OutputExistsError(f"'{out_dir}' is not empty: pass --force to overwrite, or choose another --out")
    found = {}
    for name, folder in (("current", current), ("future", future)):
        if not folder.is_dir():
            raise DataError(f"no map folder '{folder}' ({name}): give the --out folder of a `masksdm predict` run")
        found[name] = _map_sources(folder)
        if not found[name]:
            raise DataError(f"'{folder}' holds no binary or probability map written by `masksdm predict`")
    mapped = {name: set().union(*(s.keys() for s in f.values())) for name, f in found.items()}
    names = list(species) if species is not None else sorted(mapped["current"] & mapped["future"])
    for name in ("current", "future"):
        missing = [s for s in names if s not in mapped[name]]
        if missing:
            raise DataError(f"no map of {missing[:5]} in the {name} folder '{current if name == 'current' else future}'")
    if not names:
        raise DataError(f"'{current}' and '{future}' map no species in common")
    only = sorted(mapped["current"] ^ mapped["future"])
    if only and species is None:
        log.warning("%d species are mapped in one folder only and are left out: %s", len(only), only[:5])

    def given(s: str) -> float | None:
        if thresholds is None or isinstance(thresholds, float | int):
            return None if thresholds is None else float(thresholds)
        if s not in thresholds:
            raise ConfigError(f"no threshold for {s!r} among those given (the model stores none for it): give one "
                              "threshold for every species, or predict both folders with --threshold")
        return float(thresholds[s])

    pairs = [(_choose(found["current"], s, current, given(s)), _choose(found["future"], s, future, given(s)))
             for s in names]
    grids = {p.grid for pair in pairs for p in pair}
    if len(grids) > 1:
        shown = "; ".join(f"{crs}, {w} x {h} cells, transform {t}" for crs, t, w, h in sorted(grids))
        raise RasterError(
            f"the maps of '{current}' and '{future}' are on different grids ({shown}): predict both on the same "
            "grid (predict --like RASTER --align)"
        )
    template = pairs[0][0].path
    stack = RasterStack([template], like=template)  # the grid and GeoTIFF profile of the outputs
    expected = all(p.kind == "probability" for pair in pairs for p in pair)
    targets = _targets(names, pairs, out_dir, layout, expected, current, future)
    allow_open_files(len({p.path for pair in pairs for p in pair}) + len(targets))
    out_dir.mkdir(parents=True, exist_ok=True)
    readers = [_Reader([p[0] for p in pairs]), _Reader([p[1] for p in pairs])]
    rows = block_rows or _block_rows(stack.width, len(names), memory_mb)
    counts = np.zeros((len(names), 4), dtype=np.int64)
    try:
        record = PartialMaps(out_dir, targets, stack, "range-change", False, rows)
        try:
            windows = list(stack.windows(rows))
            with tqdm(total=stack.width * stack.height, unit="cell", unit_scale=True, disable=not progress,
                      desc=f"range change, {len(names)} species") as bar:
                for window in windows:
                    record.write(window, _strip(readers, window, counts, expected))
                    bar.update(int(window.width * window.height))
        finally:
            record.close()
        files = record.finish(force=True, progress=progress)
    finally:
        for reader in readers:
            reader.close()
        stack.close()
    table = _table(names, counts, pairs)
    write_text(out_dir / "range_change.csv", table.to_csv(index=False))
    files.append(out_dir / "range_change.csv")
    return ChangeResult(out_dir, files, table, time.perf_counter() - start, stack.width * stack.height)


def _strip(readers: list[_Reader], window: Window, counts: np.ndarray, expected_change: bool
           ) -> dict[str, np.ndarray]:
    """The change codes and richness bands of one strip; adds each species' cell counts to ``counts``."""
    n = len(readers[0].sources)
    h, w = int(window.height), int(window.width)
    change = np.empty((n, h, w), dtype=np.int8)
    present = np.zeros((2, h, w), dtype=np.int32)
    sums = np.zeros((2, h, w), dtype=np.float64)  # stored values (x scale unless one scale for all)
    one_scale = [len({src.scale for src in r.sources}) == 1 for r in readers]
    both = np.ones((h, w), dtype=bool)
    for j in range(n):
        (now, valid_now, v_now), (then, valid_then, v_then) = (r.read(j, window) for r in readers)
        valid = valid_now & valid_then
        both &= valid
        now &= valid
        then &= valid
        # the codes -2 lost, -1 kept, 0 absent in both, 1 gained are then - 2 x now
        np.subtract(then.view(np.int8), 2 * now.view(np.int8), out=change[j])
        change[j][~valid] = _NODATA
        n_now, n_then, n_both = np.count_nonzero(now), np.count_nonzero(then), np.count_nonzero(now & then)
        n_valid = np.count_nonzero(valid)
        counts[j] += (n_now - n_both, n_both, n_valid - n_now - n_then + n_both, n_then - n_both)
        present[0] += now
        present[1] += then
        if expected_change:
            for k, values in enumerate((v_now, v_then)):
                stored = np.where(valid, values, 0) if values.dtype.kind == "f" else values * valid
                sums[k] += stored if one_scale[k] else stored * readers[k].sources[j].scale
    bands = [present[0], present[1], present[1] - present[0]]
    if expected_change:
        expected = [sums[k] * (readers[k].sources[0].scale if one_scale[k] else 1.0) for k in (0, 1)]
        bands.append(expected[1] - expected[0])
    richness = np.where(both, np.stack(bands).astype(np.float32), np.nan).astype(np.float32)
    return {"change": change, "richness_change": richness}


def _targets(names: list[str], pairs: list[tuple[_Source, _Source]], out_dir: Path, layout: str, expected: bool,
             current: Path, future: Path) -> list[Target]:
    codes = ", ".join(f"{v} {k}" for k, v in CHANGE_CODES.items())
    tags = {"software": f"masksdm {__version__}", "output": "change", "current": str(current), "future": str(future),
            "codes": f"{codes}; {_NODATA} nodata"}
    band_tags = [{"species": s, "threshold_current": repr(c.threshold), "threshold_future": repr(f.threshold)}
                 for s, (c, f) in zip(names, pairs, strict=True)]
    if layout == "multiband":
        targets = [Target("change", out_dir / "change.tif", list(range(len(names))), names, "int8", _NODATA, 1.0,
                          tags, band_tags)]
    else:
        targets = [
            Target("change", path_inside(out_dir / "change", f"{stem}.tif"), [j], [s], "int8", _NODATA, 1.0,
                   dict(tags, **band_tags[j]), [band_tags[j]])
            for j, (s, stem) in enumerate(zip(names, safe_names(names, what="species"), strict=True))
        ]
    descriptions = ["current_present", "future_present", "change"] + (["expected_change"] if expected else [])
    targets.append(Target(
        "richness_change", out_dir / "richness_change.tif", list(range(len(descriptions))), descriptions, "float32",
        float("nan"), 1.0, dict(tags, output="richness_change", n_species=str(len(names)),
                                units="number of species (of those compared) predicted present"),
    ))
    return targets


def _table(names: list[str], counts: np.ndarray, pairs: list[tuple[_Source, _Source]]) -> pd.DataFrame:
    lost, stable_present, stable_absent, gained = counts.T
    current_range = lost + stable_present
    with np.errstate(invalid="ignore", divide="ignore"):
        percent_lost = np.where(current_range > 0, 100 * lost / current_range, np.nan)
        percent_gained = np.where(current_range > 0, 100 * gained / current_range, np.nan)
    return pd.DataFrame({
        "species": names, "lost": lost, "stable_present": stable_present, "stable_absent": stable_absent,
        "gained": gained, "current_range": current_range, "future_range_no_dispersal": stable_present,
        "future_range_full_dispersal": stable_present + gained, "percent_lost": percent_lost,
        "percent_gained": percent_gained, "range_change": percent_gained - percent_lost,
        "threshold_current": [c.threshold for c, _ in pairs], "threshold_future": [f.threshold for _, f in pairs],
    })
