"""Presence-only occurrence records (GBIF downloads, any CSV): read, clean with the usual flags,
thin to one record per raster cell and species.

:func:`read_occurrences` reads

* a GBIF **Darwin Core Archive** (``.zip``): ``meta.xml`` (``http://rs.tdwg.org/dwc/text/``) gives
  the Occurrence core's file (``<files><location>``, usually ``occurrence.txt``), separator,
  quote (GBIF: none), ``ignoreHeaderLines``, ``encoding`` and column terms
  (``<field index=".." term=".."/>``); without ``meta.xml``, ``occurrence.txt`` is read by its header;
* a GBIF **simple CSV** download (a ``.zip`` of one tab-separated ``<key>.csv``) or any CSV/TSV,
  plain, compressed or alone in a ``.zip``; the separator (tab, semicolon, comma) is sniffed from
  the header, and tab-separated files are read unquoted, as GBIF writes them.

Columns (header names, or term names in an archive) match case-insensitively: the names passed
(``species_column``, ``lon_column``, ``lat_column``), else ``decimalLongitude``,
``decimalLatitude``, ``species`` (an empty one falls back to ``scientificName``: GBIF leaves
``species`` empty above species rank), else ``lon``/``longitude``/``x``, ``lat``/``latitude``/``y``,
``scientificName``/``scientific_name``/``taxon``. Optional: ``coordinateUncertaintyInMeters``,
``basisOfRecord``, ``year`` (else from ``eventDate``), ``occurrenceStatus``. No other column is
read. Coordinates are WGS84 degrees (EPSG:4326), as Darwin Core requires.

:func:`clean_occurrences` gives each record the **first** of :data:`FLAGS` that applies, so the
report's counts add up to the number of records: 1. ``no species name`` (empty after
:func:`~masksdm.data.plotdata.clean_species_name`); 2. ``absence record`` (status ABSENT: kept
apart); 3. ``missing coordinates``; 4. ``invalid coordinates`` (beyond +-90 / +-180 degrees);
5. ``zero coordinates``; 6. ``swapped coordinates`` (on a cell with values only with lon and lat
exchanged; flagged, not fixed); 7. ``country or capital centroid`` (within ``centroid_radius_m``
of a point of ``centroids``); 8. ``uncertainty above the limit``; 9. ``basis of record excluded``
(fossils, living specimens); 10. ``off the rasters``; 11. ``on cells without values (sea,
nodata)``; 12. ``duplicate in a cell`` (thinning: one record per species and cell). Then species
with fewer than ``min_records`` records are dropped (``species with too few records``).

Formats: GBIF.org occurrence downloads (https://techdocs.gbif.org/en/data-use/download-formats),
Darwin Core text guide (https://dwc.tdwg.org/text/). The usual flags: CoordinateCleaner (Zizka A.
et al. 2019, Methods Ecol Evol 10:744-751, doi:10.1111/2041-210X.13152). Cite GBIF data by the
download's DOI.

Example:
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name) / "records.csv"
    >>> _ = path.write_text("species,decimalLongitude,decimalLatitude\\nAbies alba,7.5,46.2\\n")
    >>> read_occurrences(path)[["species", "lon", "lat", "record"]]
          species  lon   lat  record
    0  Abies alba  7.5  46.2       0
    >>> tmp.cleanup()
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from masksdm._io import (
    CORRUPT_ERRORS,
    corrupt_error,
    open_text,
    require_zstandard,
    text_read_errors,
)
from masksdm.data.grid import RasterStack
from masksdm.data.plotdata import normalise_species
from masksdm.data.tables import sniff_separator
from masksdm.errors import DataError

__all__ = ["FLAGS", "RECORD_COLUMNS", "CleanedOccurrences", "clean_occurrences", "read_occurrences"]

logger = logging.getLogger(__name__)

#: The columns of a records frame, in this order.
RECORD_COLUMNS: tuple[str, ...] = ("species", "lon", "lat", "uncertainty_m", "basis", "year", "status")

#: Cleaning flags, in the order they are tested: a record gets the first that applies.
FLAGS: tuple[str, ...] = (
    "no species name", "absence record", "missing coordinates", "invalid coordinates",
    "zero coordinates", "swapped coordinates", "country or capital centroid",
    "uncertainty above the limit", "basis of record excluded", "off the rasters",
    "on cells without values (sea, nodata)", "duplicate in a cell",
)  # fmt: skip
_TOO_FEW, _KEPT = "species with too few records", "kept"

_DWC_NS = "http://rs.tdwg.org/dwc/text/"
_OCCURRENCE = "http://rs.tdwg.org/dwc/terms/Occurrence"
_EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
_TABLE_MEMBERS = (".csv", ".tsv", ".tab", ".txt")
_OPTIONAL = {  # Darwin Core names of the optional columns
    "uncertainty_m": "coordinateUncertaintyInMeters", "basis": "basisOfRecord", "year": "year",
    "status": "occurrenceStatus",
}  # fmt: skip
_LON_NAMES = ("decimalLongitude", "lon", "longitude", "x")
_LAT_NAMES = ("decimalLatitude", "lat", "latitude", "y")
_SPECIES_ALIASES = ("scientificName", "scientific_name", "taxon")
_DECIMAL_COMMA = r"^(-?\d+),(\d+)$"  # a str, not a compiled pattern: pandas runs it in pyarrow
_READ = ("species", *_SPECIES_ALIASES, *_OPTIONAL.values(), "eventDate")
_EMPTY = "{} is empty: it must have a header row and at least one record"
_ESCAPE = re.compile(r"\\(?:[tnr\\]|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4})")  # the escapes meta.xml attributes use


# --- reading ------------------------------------------------------------------------------------


def _text(values: pd.Series) -> pd.Series:
    """Stripped text, empty cells missing (NaN)."""
    text = values.astype("str").str.strip()
    return text.where(values.notna() & (text != ""))


def _number(values: pd.Series) -> np.ndarray:
    """float64, NaN where missing or unparseable; a decimal comma (``"46,2"``) is read as a point."""
    text = _text(values).str.replace(_DECIMAL_COMMA, r"\1.\2", regex=True)
    return np.asarray(pd.to_numeric(text, errors="coerce"), dtype=np.float64)


def _read_text(
    source: IO[bytes] | IO[str], *, where: str, sep: str, quoted: bool, encoding: str = "utf-8-sig",
    header: int | None = 0, skiprows: int = 0, usecols: Sequence[int] | Sequence[str] | None = None,
    quotechar: str = '"',
) -> pd.DataFrame:
    """Every cell as text ("" for empty); DataError naming ``where`` when pandas cannot parse it."""
    fast = len(sep) == 1 and sep.isascii() and quotechar.isascii()  # what pandas' C parser takes
    try:
        return pd.read_csv(
            source, sep=sep, dtype=str, keep_default_na=False, header=header, skiprows=skiprows,
            usecols=usecols, encoding=encoding, quotechar=quotechar, engine="c" if fast else "python",
            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        )  # fmt: skip
    except pd.errors.EmptyDataError as exc:
        raise DataError(_EMPTY.format(where)) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, LookupError, ValueError) as exc:
        raise DataError(
            f"cannot parse {where} as a table separated by {sep!r} ({exc}): check the separator "
            "(--sep, sep=...) and the file's encoding"
        ) from exc


def _first_line(handle: IO[str], where: str) -> str:
    if (line := next((text for text in handle if text.strip()), None)) is None:
        raise DataError(_EMPTY.format(where))
    return line.rstrip("\r\n")


def _fields(line: str, sep: str, quoted: bool) -> list[str]:
    """The fields of one line (a header)."""
    return next(csv.reader([line], delimiter=sep), []) if quoted and len(sep) == 1 else line.split(sep)


def _find(columns: Sequence[str], *names: str) -> str | None:
    """The first of ``names`` among ``columns``, exactly or else case-insensitively."""
    folded = {str(c).strip().casefold(): c for c in reversed(columns)}
    for name in names:
        found = name if name in columns else folded.get(name.casefold())
        if found is not None:
            return found
    return None


def _records(
    frame: pd.DataFrame, where: str, header: Sequence[str], *, species_column: str | None,
    lon_column: str | None, lat_column: str | None,
) -> pd.DataFrame:
    """A records frame (:data:`RECORD_COLUMNS` + ``record``) from the text columns read of a
    table whose header is ``header``."""
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    shown = list(header[:30]) + (["..."] if len(header) > 30 else [])
    for name, option in ((species_column, "species"), (lon_column, "lon"), (lat_column, "lat")):
        if name is not None and _find(columns, name) is None:
            raise DataError(
                f"{where} has no column {name!r} ({option}_column); its columns are {shown}: "
                f"check the name you passed (--{option}-column)"
            )
    lon = _find(columns, *([lon_column] if lon_column else _LON_NAMES))
    lat = _find(columns, *([lat_column] if lat_column else _LAT_NAMES))
    if lon is None or lat is None:
        missing = " and ".join(w for w, c in (("longitude", lon), ("latitude", lat)) if c is None)
        one = len(header) == 1 and any(s in header[0] for s in "\t;,|")
        single = " (it was read as a single column: give the separator with --sep, sep=...)" if one else ""
        raise DataError(
            f"{where} has no {missing} column (looked for decimalLongitude/decimalLatitude, "
            f"lon/lat, longitude/latitude, x/y){single}; its columns are {shown}: name the "
            "coordinate columns with --lon-column/--lat-column (lon_column=..., lat_column=...)"
        )
    name = _find(columns, species_column or "species")
    fallback = None if species_column else _find(columns, *_SPECIES_ALIASES)
    if name is None and fallback is None:
        raise DataError(
            f"{where} has no species column (looked for species, scientificName, scientific_name, "
            f"taxon); its columns are {shown}: name it with --species-column (species_column=...)"
        )
    species = _text(frame[name if name is not None else fallback])
    if name is not None and fallback is not None:  # GBIF: species is empty above species rank
        species = species.fillna(_text(frame[fallback]))
    raw = {"species": species, "lon": frame[lon], "lat": frame[lat]}
    raw |= {key: frame[c] for key, term in _OPTIONAL.items() if (c := _find(columns, term)) is not None}
    if "year" not in raw and (date := _find(columns, "eventDate")) is not None:
        raw["year"] = _text(frame[date]).str.extract(r"^(\d{4})", expand=False)
    if frame.empty:
        raise DataError(f"{where} has a header but no records: download the records again")
    return _check_records(pd.DataFrame(raw))


def _read_named(handle: IO[str], *, sep: str | None, where: str, wanted: set[str]) -> tuple[pd.DataFrame, list[str]]:
    """A table with a header row: its wanted columns, and every name of its header."""
    first = _first_line(handle, where)
    handle.seek(0)
    sep = sep or sniff_separator(first)
    quoted = sep != "\t"  # tab-separated GBIF files have no quoting: a quote is text
    header = _fields(first, sep, quoted)
    # only the columns used (a GBIF simple CSV has some 50); all of them for an error message
    used = [c for c in dict.fromkeys(header) if c.strip().casefold() in wanted]
    usecols = used if len(header) > 1 and used else None
    return _read_text(handle, where=where, sep=sep, quoted=quoted, usecols=usecols), header


def _find_ns(element: ET.Element, tag: str) -> ET.Element | None:
    """A child by tag, with or without the Darwin Core text namespace."""
    return next((e for e in (element.find(f"{{{_DWC_NS}}}{tag}"), element.find(tag)) if e is not None), None)


def _meta(element: ET.Element, name: str, default: str, path: Path, want: str) -> str:
    """Attribute ``name`` of meta.xml as ``want`` says: one character (escapes \\t \\n \\r \\\\ \\xHH
    \\uHHHH decoded), or ``"count"``: 0 to 9999 (pandas allocates each skipped header row); else DataError."""
    value = element.get(name, default)
    text = value.strip() if want == "count" else _ESCAPE.sub(lambda m: codecs.decode(m.group(), "unicode_escape"), value)
    if (re.fullmatch(r"[0-9]{1,4}", text) if want == "count" else len(text) == 1 or (not text and "empty" in want)):
        return text
    raise DataError(f"meta.xml of '{path}' has {name}={value!r}, which is not {'a whole number from 0 to 9999' if want == 'count' else want}: "
                    "fix that attribute of meta.xml (https://dwc.tdwg.org/text/) or download the archive again")


def _read_dwca(
    archive: zipfile.ZipFile, meta: str, path: Path, wanted: set[str]
) -> tuple[pd.DataFrame, str, list[str]]:
    """The core of a Darwin Core Archive, columns named by the local names of their terms."""
    try:
        root = ET.fromstring(archive.read(meta))
    except ET.ParseError as exc:
        raise DataError(f"meta.xml of '{path}' is not valid XML ({exc}): download the archive again") from exc
    core = _find_ns(root, "core")
    row_type = None if core is None else core.get("rowType", "")
    if core is None or row_type != _OCCURRENCE:
        raise DataError(
            f"'{path}' is a Darwin Core Archive without an occurrence core (its core has rowType "
            f"{row_type!r}, expected {_OCCURRENCE!r}): download occurrences from GBIF as a "
            "'Darwin Core Archive' or 'Simple' download, or export the records to a CSV"
        )
    files = _find_ns(core, "files")
    location = None if files is None else _find_ns(files, "location")
    name = meta[: -len("meta.xml")] + ("" if location is None else (location.text or "").strip())
    if name not in archive.namelist():
        raise DataError(
            f"meta.xml of '{path}' names the core file {name!r} (<files><location>), which the "
            "archive lacks: download the archive again"
        )
    terms = {  # column index -> local name of its term (".../terms/decimalLatitude")
        int(_meta(f, "index", "0", path, "count")): re.split(r"[/#]", f.get("term", ""))[-1]
        for f in [*core.iter("field"), *core.iter(f"{{{_DWC_NS}}}field")] if f.get("index") is not None
    }  # fmt: skip
    encoding = re.sub(r"(?i)^utf-?8$", "utf-8-sig", core.get("encoding", "UTF-8"))  # drop a BOM
    sep = _meta(core, "fieldsTerminatedBy", ",", path, "one character")
    quote = _meta(core, "fieldsEnclosedBy", '"', path, "one character or empty")  # GBIF: "", no quoting
    where = f"'{name}' in '{path}'"
    with archive.open(name) as raw:
        first = _first_line(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), where)
    n_fields = len(_fields(first, sep, bool(quote)))
    # only the columns used: a GBIF occurrence.txt has some 250
    usecols = sorted(i for i, t in terms.items() if t.casefold() in wanted and i < n_fields)
    with archive.open(name) as raw:
        frame = _read_text(
            raw, where=where, sep=sep, quoted=bool(quote), encoding=encoding, header=None,
            skiprows=int(_meta(core, "ignoreHeaderLines", "0", path, "count")), usecols=usecols, quotechar=quote or '"',
        )  # fmt: skip
    frame = frame.set_axis([terms[int(i)] for i in frame.columns], axis=1)
    return frame.loc[:, ~frame.columns.duplicated()], where, [terms[i] for i in sorted(terms)]


def _read_archive(path: Path, *, sep: str | None, wanted: set[str]) -> tuple[pd.DataFrame, str, list[str]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            metas = sorted((n for n in names if n.rsplit("/", 1)[-1] == "meta.xml"), key=len)
            if metas:
                return _read_dwca(archive, metas[0], path, wanted)
            cores = sorted((n for n in names if n.rsplit("/", 1)[-1] == "occurrence.txt"), key=len)
            tables = [n for n in names if n.lower().endswith(_TABLE_MEMBERS)]
            if not cores and len(tables) != 1:
                raise DataError(
                    f"'{path}' is no occurrence archive: it has no meta.xml, no occurrence.txt "
                    f"and not a single table (it holds {names[:10]}): pass a GBIF download "
                    "(Darwin Core Archive or simple CSV) or a CSV of records"
                )
            member = cores[0] if cores else tables[0]
            where = f"'{member}' in '{path}'"
            with archive.open(member) as raw:
                handle = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                frame, header = _read_named(handle, sep=sep or ("\t" if cores else None), where=where, wanted=wanted)
            return frame, where, header
    except CORRUPT_ERRORS as exc:
        raise corrupt_error(path, exc) from exc


def read_occurrences(
    path: str | Path, *, species_column: str | None = None, lon_column: str | None = None,
    lat_column: str | None = None, sep: str | None = None,
) -> pd.DataFrame:
    """Read occurrence records: a GBIF download (Darwin Core Archive or simple CSV) or any CSV.

    Args:
        path: a ``.zip`` (GBIF Darwin Core Archive, or one zipped table) or a CSV/TSV/text file.
        species_column, lon_column, lat_column: column names (term names in an archive) to use
            instead of the GBIF names and aliases (module docstring).
        sep: the separator of a table (one character or ``"tab"``); default: sniffed.

    Returns:
        One row per input record: :data:`RECORD_COLUMNS` (``species`` text; ``lon``, ``lat``,
        ``uncertainty_m``, ``year`` float64 with NaN when missing or unparseable; ``basis`` text;
        ``status`` upper-case text; missing text is NA) and ``record`` (int64, the 0-based row of
        the record in the input).

    Raises:
        DataError: missing, empty, truncated, unparseable or non-UTF-8 file; no coordinate or
            species column; a named column absent; an archive without an occurrence core.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"occurrence file '{path}' does not exist: check the path (a GBIF download .zip, or a "
                        "CSV/TSV of records)")  # fmt: skip
    if path.stat().st_size == 0:  # an empty .zip would read as corrupt
        raise DataError(_EMPTY.format(f"'{path}'"))
    sep = "\t" if sep in ("tab", "\\t") else sep
    # the columns records may be read from (the others are not read), case-folded
    named = [c for c in (species_column, lon_column, lat_column) if c]
    wanted = {n.casefold() for n in [*_LON_NAMES, *_LAT_NAMES, *_READ, *named]}
    if path.suffix.lower() == ".zip":
        with text_read_errors(path, "text inside"):  # a table in the archive that is not UTF-8
            frame, where, header = _read_archive(path, sep=sep, wanted=wanted)
    else:
        where = f"'{path}'"
        if path.suffix.lower() == ".zst":
            require_zstandard(path)
        with text_read_errors(path), open_text(path) as handle:
            frame, header = _read_named(handle, sep=sep, where=where, wanted=wanted)
    names = [str(c).strip() for c in header]
    records = _records(frame, where, names, species_column=species_column, lon_column=lon_column, lat_column=lat_column)
    logger.info("%s: %d occurrence records", where, len(records))
    return records


# --- cleaning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanedOccurrences:
    """Cleaned presence records, absence records apart, and how many records each flag removed.

    Attributes:
        presences: the kept records: :data:`RECORD_COLUMNS`, ``record`` and ``cell`` (int64
            template cell ``row * width + col``); thinned, one row per (species, cell), in input order.
        absences: records whose status is ABSENT (same columns; ``cell`` -1 off the grid), not thinned.
        report: columns ``flag``, ``records``, ``note``: one row per flag of :data:`FLAGS` in that
            order, then ``species with too few records`` and ``kept``; ``records`` sums to the
            number of input records.
    """

    presences: pd.DataFrame
    absences: pd.DataFrame
    report: pd.DataFrame

    def describe(self) -> str:
        """The report as aligned lines for a terminal."""
        width = max(len(str(f)) for f in self.report["flag"])
        digits = max(len(f"{int(n):,}") for n in self.report["records"])
        rows = self.report.itertuples(index=False)
        return "\n".join(f"{flag:<{width}}  {int(n):>{digits},}  {note}".rstrip() for flag, n, note in rows)


def _basis_keys(values: pd.Series) -> pd.Series:
    """``FossilSpecimen``, ``fossil_specimen`` and ``FOSSIL_SPECIMEN`` give one key."""
    return values.astype("str").str.replace(r"[ _]", "", regex=True).str.upper()


def _near_centroids(lon: np.ndarray, lat: np.ndarray, centroids: pd.DataFrame, radius_m: float) -> np.ndarray:
    from sklearn.neighbors import BallTree

    if not {"lon", "lat"} <= set(centroids.columns):
        columns = list(centroids.columns)[:10]
        raise DataError(f"centroids have columns {columns}: pass 'lon' and 'lat' columns in WGS84 degrees")
    points = centroids[["lat", "lon"]].apply(pd.to_numeric, errors="coerce").dropna().to_numpy()
    if len(points) == 0 or len(lon) == 0:
        return np.zeros(len(lon), dtype=bool)
    tree = BallTree(np.radians(points), metric="haversine")  # (lat, lon) in radians
    query = np.radians(np.column_stack([lat, lon]))
    return np.asarray(tree.query_radius(query, r=radius_m / _EARTH_RADIUS_M, count_only=True)) > 0


def _check_records(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` as a records frame: optional columns filled, text stripped, numbers float64."""
    if not {"species", "lon", "lat"} <= set(records.columns):
        raise DataError(
            f"records have no column species, lon or lat (columns: {list(records.columns)[:10]}): "
            "pass the frame read_occurrences returns"
        )
    records = records.reset_index(drop=True)
    out = pd.DataFrame(index=records.index)
    for column in RECORD_COLUMNS:
        if column in ("lon", "lat", "uncertainty_m", "year"):
            out[column] = _number(records[column]) if column in records else np.nan
        elif column not in records:
            out[column] = pd.Series(np.nan, index=out.index, dtype="str")
        else:
            text = _text(records[column])
            out[column] = (text.str.upper() if column == "status" else text).astype("str")
    out["record"] = np.asarray(records["record"] if "record" in records else out.index, dtype=np.int64)
    return out


_HINTS = {
    "no species name": "fill the species column, or name another (--species-column)",
    "absence record": "the records are all absences: pass presence records",
    "missing coordinates": "keep only georeferenced records (GBIF: hasCoordinate=true)",
    "invalid coordinates": "coordinates must be WGS84 degrees: reproject them first",
    "swapped coordinates": "longitude and latitude look exchanged: swap --lon-column/--lat-column",
    "country or capital centroid": "pass a smaller centroid table, or none (--centroids)",
    "uncertainty above the limit": "raise --max-uncertainty (0 disables the check)",
    "basis of record excluded": "keep other kinds of record (exclude_basis in Python)",
}


def clean_occurrences(
    records: pd.DataFrame, stack: RasterStack, *, max_uncertainty_m: float | None = 10_000.0,
    centroids: pd.DataFrame | None = None, centroid_radius_m: float = 1_000.0,
    exclude_basis: Sequence[str] = ("FOSSIL_SPECIMEN", "LIVING_SPECIMEN"), min_records: int = 1,
    thin: bool = True, valid: np.ndarray | None = None,
) -> CleanedOccurrences:
    """Flag, drop and thin occurrence records on the grid of ``stack`` (module docstring).

    Args:
        records: a frame from :func:`read_occurrences` (``species``, ``lon``, ``lat`` at least).
        stack: the predictor rasters; a record is kept on a cell where every raster has a value.
        max_uncertainty_m: records with a larger ``uncertainty_m`` are dropped (a missing
            uncertainty passes); None disables the check.
        centroids: points (columns ``lon``, ``lat``, WGS84 degrees) such as country centroids and
            capitals; records within ``centroid_radius_m`` metres (great-circle) of one are
            dropped. None skips the check.
        exclude_basis: ``basisOfRecord`` values to drop (case and underscores ignored).
        min_records: species with fewer kept records (after thinning) are dropped.
        thin: keep one record per (species, cell), the first in input order.
        valid: ``stack.valid_cells()`` when the caller has it already (read once otherwise).

    Raises:
        DataError: every record left by the earlier flags is off the rasters or on cells without
            values (check their extent and CRS); no record is left; no species has ``min_records``.
    """
    if min_records < 1 or centroid_radius_m < 0:
        raise ValueError(f"need min_records >= 1 and centroid_radius_m >= 0, got {min_records=}, {centroid_radius_m=}")
    frame = _check_records(records)
    n = len(frame)
    if n == 0:
        raise DataError("no occurrence records to clean: read some with read_occurrences(path)")
    flag = np.full(n, -1, dtype=np.int64)  # index into FLAGS; -1 while none applies

    def mark(name: str, hit: np.ndarray) -> None:
        flag[(flag < 0) & hit] = FLAGS.index(name)

    species = normalise_species(frame["species"], what="occurrence records")
    frame["species"] = species.astype("str")
    lon, lat = frame["lon"].to_numpy(), frame["lat"].to_numpy()
    mark("no species name", species.isna().to_numpy())
    mark("absence record", (frame["status"] == "ABSENT").to_numpy())
    mark("missing coordinates", np.isnan(lon) | np.isnan(lat))
    with np.errstate(invalid="ignore"):
        mark("invalid coordinates", ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180)))
        mark("zero coordinates", (np.abs(lon) < 1e-6) & (np.abs(lat) < 1e-6))
    valid = stack.valid_cells() if valid is None else valid
    cell = stack.cell_index(lon, lat)
    on_values = (cell >= 0) & valid[np.maximum(cell, 0)]
    candidates = (flag < 0) & ~on_values
    swapped = np.zeros(n, dtype=bool)
    if candidates.any():
        other = stack.cell_index(lat[candidates], lon[candidates])
        swapped[candidates] = (other >= 0) & valid[np.maximum(other, 0)]
    mark("swapped coordinates", swapped)
    if centroids is not None:
        remaining, near = flag < 0, np.zeros(n, dtype=bool)
        near[remaining] = _near_centroids(lon[remaining], lat[remaining], centroids, centroid_radius_m)
        mark("country or capital centroid", near)
    if max_uncertainty_m is not None:
        with np.errstate(invalid="ignore"):
            mark("uncertainty above the limit", frame["uncertainty_m"].to_numpy() > max_uncertainty_m)
    excluded = set(_basis_keys(pd.Series(list(exclude_basis), dtype="str")))
    basis = frame["basis"]
    mark("basis of record excluded", (basis.notna() & _basis_keys(basis).isin(excluded)).to_numpy())
    on_grid = flag < 0
    mark("off the rasters", cell < 0)
    mark("on cells without values (sea, nodata)", ~on_values)
    if on_grid.any() and not (flag < 0).any():
        x, y = lon[on_grid], lat[on_grid]
        n_off = int((flag == FLAGS.index("off the rasters")).sum())
        raise DataError(
            f"none of the {int(on_grid.sum())} records left after the earlier checks (lon "
            f"{x.min():.6g}..{x.max():.6g}, lat {y.min():.6g}..{y.max():.6g}) falls on a raster "
            f"cell with values ({n_off} off the rasters, the others on cells without values): "
            f"check that the rasters ({stack.describe()}) cover the records, that their extent "
            "and CRS are right, and that the records' lon/lat are WGS84 degrees"
        )
    frame["cell"] = cell
    if thin:  # among the records still kept: a flagged record does not make a later one a duplicate
        remaining, duplicate = flag < 0, np.zeros(n, dtype=bool)
        duplicate[remaining] = frame.loc[remaining, ["species", "cell"]].duplicated().to_numpy()
        mark("duplicate in a cell", duplicate)
    counts = frame.loc[flag < 0, "species"].value_counts()
    rare = counts.index[counts < min_records]
    names = [*FLAGS, _TOO_FEW, _KEPT]
    flag[(flag < 0) & frame["species"].isin(rare).to_numpy()] = names.index(_TOO_FEW)
    flag[flag < 0] = names.index(_KEPT)
    tally = np.bincount(flag, minlength=len(names)).astype(np.int64)
    notes = {
        "absence record": "status ABSENT: kept apart as absences",
        "invalid coordinates": "|lat| > 90 or |lon| > 180",
        "zero coordinates": "lon and lat both within 1e-6 of 0",
        "swapped coordinates": "on a cell with values only with lon and lat exchanged (not fixed)",
        "country or capital centroid": "not checked (no centroids given)" if centroids is None
        else f"within {centroid_radius_m:g} m of one of {len(centroids)} points",
        "uncertainty above the limit": "not checked" if max_uncertainty_m is None else f"above {max_uncertainty_m:g} m",
        "basis of record excluded": ", ".join(exclude_basis) or "none excluded",
        "duplicate in a cell": "one record kept per species and cell" if thin else "not thinned",
        _TOO_FEW: f"{len(rare)} species with fewer than {min_records} records",
        _KEPT: f"{frame.loc[flag == names.index(_KEPT), 'species'].nunique()} species",
    }  # fmt: skip
    report = pd.DataFrame({"flag": names, "records": tally, "note": [notes.get(f, "") for f in names]})
    if tally[-1] == 0 and len(rare):
        most = "every species has a single record" if counts.max() == 1 else f"no species has more than {counts.max()} records"
        raise DataError(
            f"{most} after cleaning{' and thinning (one per cell)' if thin else ''}, fewer than "
            f"min_records={min_records}: lower min_records (--min-records), or add records"
        )
    if tally[-1] == 0:
        largest = names[int(np.argmax(tally[: len(FLAGS)]))]
        raise DataError(
            f"no record left after cleaning {n} records: the largest flag is {largest!r} "
            f"({int(tally[names.index(largest)])} records): {_HINTS.get(largest, 'check the records')}"
        )
    columns = [*RECORD_COLUMNS, "record", "cell"]
    presences = frame.loc[flag == names.index(_KEPT), columns].reset_index(drop=True)
    absences = frame.loc[flag == FLAGS.index("absence record"), columns].reset_index(drop=True)
    logger.info("occurrences: %d of %d records kept, %d species", len(presences), n, presences["species"].nunique())
    return CleanedOccurrences(presences=presences, absences=absences, report=report)
