"""Find Sentinel-2 / Sentinel-1 scenes on disk: group per-band files and multi-band GeoTIFFs into
:class:`~foundation_encoders.imagery.Scene` objects, and detect the L2A DN offset of each.

The file layouts and band names are described in :mod:`foundation_encoders.imagery`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError

from foundation_encoders.imagery import (
    S1_BANDS,
    S2_BANDS,
    SKIPPED_BANDS,
    ImageryError,
    Scene,
    SceneList,
    esa_band_name,
)

__all__ = ["find_scenes"]

_PER_BAND_RE = re.compile(r"^(?P<prefix>.+)_(?P<band>[^_]+)$")
_BASELINE_RE = re.compile(r"_N(\d{4})(?=[_.]|$)")
_DATE_RE = re.compile(r"(?<!\d)(20\d{6})(?!\d)")
_OFFSET_DATE = dt.date(2022, 1, 25)
_ASSUMED = (
    "assumed (no processing baseline or date found; pass --l2a-offset 1000 for products of baseline 04.00+)"
)
_EXPECTED = (
    "expected per-band GeoTIFFs named <prefix>_<BAND>.tif or .tiff "
    "(e.g. S2A_MSIL2A_20171221T112501_56_35_B04.tif, <prefix>_VV.tif) or multi-band GeoTIFF/COG "
    "files whose band descriptions are band names (B01..B12, B8A, VV, VH)"
)


@dataclass
class _File:
    """What discovery needs from one GeoTIFF (read once, then closed)."""

    path: Path
    context: tuple[str, ...]  # folder names between the search root (included) and the file
    crs: CRS | None
    bounds: tuple[float, float, float, float]
    count: int
    descriptions: tuple[str | None, ...]
    nodata: float | None
    tags: dict[str, str]


_Members = list[tuple[str, _File, int]]  # (canonical band, file, 1-based band index)


def _inspect(path: Path, context: tuple[str, ...]) -> _File:
    with rasterio.open(path) as src:
        tags = {key.upper(): value for key, value in src.tags().items()}
        for index in src.indexes:
            tags.update({key.upper(): value for key, value in src.tags(index).items()})
        return _File(
            path, context, src.crs, tuple(src.bounds), src.count, tuple(src.descriptions), src.nodata, tags
        )


def find_scenes(
    paths: str | Path | Iterable[str | Path],
    *,
    bands: Sequence[str] | None = None,
    l2a_offset: str | int = "auto",
) -> SceneList:
    """Find Sentinel-2 / Sentinel-1 scenes in folders (searched recursively) and files.

    Per-band GeoTIFFs (``<prefix>_<BAND>.tif``, one band each) are grouped by folder and prefix;
    any other GeoTIFF is a multi-band scene named by its band descriptions or by ``bands``. The
    sensor follows from the band names (VV/VH: ``"S1"``). B10 and unrecognised descriptions are
    left out and listed in :attr:`Scene.skipped`.

    ``l2a_offset="auto"`` decides each Sentinel-2 scene's offset from, in order: a
    ``BOA_ADD_OFFSET*``/``RADIO_ADD_OFFSET*`` GDAL metadata tag; a ``PROCESSING_BASELINE`` tag;
    a processing baseline ``_N0400_`` in file/folder names or tag values; the ``tile_source`` of a
    BigEarthNet ``<prefix>_labels_metadata.json`` sidecar (baseline 04.00 or later: 1000, else
    0); the acquisition date in the names (2022-01-25 or later: 1000; reprocessed older products
    are missed, hence the baseline first); else 0, marked as assumed. Sentinel-1 is never offset.

    Args:
        paths: Folders and/or GeoTIFF files (one path or several).
        bands: Band names of every multi-band file, in file order (overrides its descriptions);
            the count must match each file's band count. Per-band files ignore it.
        l2a_offset: ``"auto"``, ``0`` or ``1000`` (the last two force the Sentinel-2 offset).

    Returns:
        The usable scenes, in discovery order, as a :class:`SceneList` (a ``list[Scene]``) whose
        ``problems`` lists the scenes and files left out and why.

    Raises:
        ImageryError: If a path does not exist, ``bands``/``l2a_offset`` is invalid, or no usable
            scene is found (the message lists every problem).
    """
    offset_choice = _check_offset(l2a_offset)
    names = _check_band_list(bands)
    roots = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    problems: list[str] = []
    files: list[tuple[Path, tuple[str, ...]]] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.exists():
            raise ImageryError(f"imagery path '{root}' does not exist")
        if root.is_dir():
            found = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".tif", ".tiff"} and p.is_file())
            if not found:
                problems.append(f"no imagery found under '{root}': {_EXPECTED}")
            listed = [(p, (root.name, *p.relative_to(root).parent.parts)) for p in found]
        else:
            listed = [(root, (root.parent.name,))]
        for path, context in listed:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                files.append((path, context))

    groups: dict[tuple[Path, str], _Members] = {}
    singles: list[tuple[str, Path, _Members, list[str]]] = []
    for path, context in files:
        try:
            info = _inspect(path, context)
        except RasterioIOError as err:
            problems.append(f"'{path}': cannot be opened as a raster ({err})")
            continue
        m = _PER_BAND_RE.match(path.stem)
        band = esa_band_name(m["band"]) if m else None
        if m and band and info.count == 1:
            groups.setdefault((path.parent, m["prefix"]), []).append((band, info, 1))
            continue
        try:
            members, notes = _multiband_members(info, names)
        except ImageryError as err:
            problems.append(str(err))
            continue
        singles.append((path.stem, path, members, notes))

    candidates: list[tuple[str, Path, _Members, list[str]]]
    candidates = [(prefix, folder / f"{prefix}_labels_metadata.json", members, [])
                  for (folder, prefix), members in groups.items()]
    candidates += [(stem, path.with_name(f"{stem}_labels_metadata.json"), members, notes)
                   for stem, path, members, notes in singles]
    scenes = []
    for name, sidecar, members, notes in candidates:
        try:
            scenes.append(_build_scene(name, members, notes, sidecar, offset_choice))
        except ImageryError as err:
            problems.append(str(err))
    if not scenes:
        where = ", ".join(f"'{root}'" for root in roots)
        details = "".join(f"\n  - {p}" for p in problems)
        raise ImageryError(f"no usable Sentinel-2/Sentinel-1 scene in {where}:{details or ' ' + _EXPECTED}")
    return SceneList(scenes, problems)


def _check_offset(l2a_offset: str | int) -> float | None:
    if isinstance(l2a_offset, str) and l2a_offset.strip().lower() == "auto":
        return None
    try:
        value = float(l2a_offset)
    except (TypeError, ValueError):
        value = math.nan
    if value not in (0.0, 1000.0):
        raise ImageryError(f"l2a_offset must be 'auto', 0 or 1000, got {l2a_offset=}")
    return value


def _check_band_list(bands: Sequence[str] | None) -> list[str] | None:
    if bands is None:
        return None
    if isinstance(bands, str):
        raise ImageryError(f"bands must be a list of names, got the string {bands!r}")
    names = [esa_band_name(b) for b in bands]
    bad = [b for b, n in zip(bands, names, strict=True) if n is None]
    if bad:
        known = ", ".join(S2_BANDS + S1_BANDS)
        raise ImageryError(f"unknown band names {bad} in bands=; use {known} (or B10)")
    return [n for n in names if n is not None]


def _multiband_members(info: _File, names: list[str] | None) -> tuple[_Members, list[str]]:
    """Band name of each band of a multi-band file, from ``names`` or the descriptions."""
    if names is not None and len(names) != info.count:
        raise ImageryError(
            f"'{info.path}' has {info.count} bands but bands= names {len(names)}: {names}; "
            "give one name per band"
        )
    if names is None and not any(info.descriptions):
        raise ImageryError(
            f"'{info.path}': no band names (no band descriptions, and not named <prefix>_<BAND>.tif); "
            "pass bands=[...] (e.g. --bands B02,B03,B04,B08) in file order"
        )
    members, notes = [], []
    for index, label in enumerate(names or info.descriptions, start=1):
        band = esa_band_name(label) if label else None
        if band is None:
            notes.append(f"band {index} of {info.path.name} ({label!r}: not a Sentinel-2/-1 band name)")
        else:
            members.append((band, info, index))
    return members, notes


def _build_scene(
    name: str, members: _Members, notes: list[str], sidecar: Path, offset_choice: float | None
) -> Scene:
    skipped = list(notes)
    bands: dict[str, tuple[str, int]] = {}
    infos: dict[Path, _File] = {}
    for band, info, index in members:
        if band in SKIPPED_BANDS:
            skipped.append(f"{SKIPPED_BANDS[band]}: {info.path.name}")
        elif band in bands:
            skipped.append(f"{band} again in {info.path.name} (kept {Path(bands[band][0]).name})")
        else:
            bands[band] = (str(info.path), index)
            infos[info.path] = info
    if not bands:
        raise ImageryError(f"scene {name!r}: no usable band ({'; '.join(skipped)})")
    sensors = {"S1" if band in S1_BANDS else "S2" for band in bands}
    if len(sensors) > 1:
        raise ImageryError(
            f"scene {name!r} mixes Sentinel-2 and Sentinel-1 bands {sorted(bands)}; keep them apart"
        )
    sensor = sensors.pop()
    found = _find_sidecar(sidecar)
    first = next(iter(infos.values()))
    if first.crs is None or any(i.crs is None or i.crs != first.crs for i in infos.values()):
        listing = ", ".join(f"{p.name} ({i.crs.to_string() if i.crs else 'no CRS'})" for p, i in infos.items())
        raise ImageryError(
            f"scene {name!r}: bands in different CRSs or without one: {listing}; reproject them to one CRS"
        )
    left, bottom, right, top = (
        max(i.bounds[0] for i in infos.values()), max(i.bounds[1] for i in infos.values()),
        min(i.bounds[2] for i in infos.values()), min(i.bounds[3] for i in infos.values()),
    )
    if not (left < right and bottom < top):
        raise ImageryError(f"scene {name!r}: its bands do not overlap ({', '.join(p.name for p in infos)})")
    declared = {i.nodata for i in infos.values()}
    default = 0.0 if sensor == "S2" else None  # ESA's NO_DATA for Sentinel-2 DN
    nodata = declared.pop() if len(declared) == 1 and None not in declared else default
    if sensor == "S1":
        offset, source = 0.0, "Sentinel-1: no offset"
    elif offset_choice is not None:
        offset, source = offset_choice, f"given (l2a_offset={offset_choice:g})"
    else:
        offset, source = _detect_offset(name, list(infos.values()), found)
    return Scene(name=name, sensor=sensor, crs=first.crs, bounds=(left, bottom, right, top), bands=bands,
                 nodata=nodata, offset=offset, offset_source=source, skipped=tuple(skipped), sidecar=found)


def _baseline_offset(baseline: str, where: str) -> tuple[float, str]:
    number = int(baseline)
    label = f"{number // 100:02d}.{number % 100:02d}"
    return (1000.0 if number >= 400 else 0.0), f"processing baseline {label} in {where}"


def _find_sidecar(expected: Path) -> Path | None:
    """The scene's sidecar: the expected file, else the only ``*_labels_metadata.json`` beside it."""
    if expected.is_file():
        return expected
    jsons = sorted(expected.parent.glob("*_labels_metadata.json"))
    return jsons[0] if len(jsons) == 1 else None


def _detect_offset(name: str, infos: list[_File], sidecar: Path | None) -> tuple[float, str]:
    """Sentinel-2 DN offset and how it was found (see :func:`find_scenes`)."""
    for info in infos:
        for key, value in info.tags.items():
            if key.startswith(("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")):
                try:
                    return abs(float(value)), f"{key}={value} in the GDAL metadata of {info.path.name}"
                except ValueError:
                    continue
    for info in infos:
        m = re.search(r"(\d{2})\.?(\d{2})", info.tags.get("PROCESSING_BASELINE", ""))
        if m:
            return _baseline_offset(m[1] + m[2], f"the PROCESSING_BASELINE tag of {info.path.name}")
    names = [name, *(i.path.name for i in infos), *dict.fromkeys(part for i in infos for part in i.context)]
    for text in names + [value for i in infos for value in i.tags.values()]:
        if m := _BASELINE_RE.search(text):
            return _baseline_offset(m[1], repr(text))
    if sidecar is not None:
        try:
            tile_source = str(json.loads(sidecar.read_text()).get("tile_source", ""))
        except (OSError, ValueError, AttributeError):
            tile_source = ""
        if m := _BASELINE_RE.search(tile_source):
            return _baseline_offset(m[1], f"{sidecar.name} (tile_source {tile_source})")
    for text in names:
        for digits in _DATE_RE.findall(text):
            try:
                date = dt.datetime.strptime(digits, "%Y%m%d").date()
            except ValueError:
                continue
            after = date >= _OFFSET_DATE
            return (1000.0 if after else 0.0), (
                f"acquisition date {date} in {text!r} ({'on or after' if after else 'before'} 2022-01-25, "
                "when baseline 04.00 started)"
            )
    return 0.0, _ASSUMED
