"""A fuzzed input surface: property-based tests (hypothesis) of every loader of user files.

Each property feeds a loader malformed input (random bytes, wrong separators, missing or duplicated
columns, non-numeric or non-finite values, BOMs, truncated archives, mutated cards...) and checks
that it either returns a result consistent with its input or raises one of the package's own
exceptions (:class:`masksdm.errors.MaskSDMError`) with a message; any other exception, or a result
that contradicts the input, is a failure that hypothesis shrinks to a minimal example.

Profiles: ``ci`` (the default) tries a bounded number of inputs per property; ``campaign``
(``MASKSDM_FUZZ_PROFILE=campaign``, ``MASKSDM_FUZZ_EXAMPLES`` inputs per property, default 2,000)
is the long campaign that ``python benchmarks/fuzz_campaign.py`` runs and reports.

The plain tests at the end are regressions: the minimal inputs the campaign found, each fixed.
"""

from __future__ import annotations

import bz2
import collections
import copy
import functools
import gzip
import io
import json
import lzma
import math
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.errors
from affine import Affine
from fixtures.splotopen import write_splotopen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masksdm.errors import CheckpointError, ConfigError, DataError, MaskSDMError, RasterError

settings.register_profile(
    "ci", max_examples=30, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)  # fmt: skip
settings.register_profile(
    "campaign", max_examples=int(os.environ.get("MASKSDM_FUZZ_EXAMPLES", "2000")), deadline=None,
    database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)  # fmt: skip
#: The profile of every property here (only these tests: other files keep hypothesis' defaults).
PROFILE = os.environ.get("MASKSDM_FUZZ_PROFILE", "ci")
FUZZ = settings(settings.get_profile(PROFILE))

#: Inputs tried per loader in this process, and how each ended ("ok" or the error class's name),
#: read by benchmarks/fuzz_campaign.py.
TRIED: collections.Counter[str] = collections.Counter()
OUTCOMES: collections.Counter[tuple[str, str]] = collections.Counter()
#: Where to write TRIED and OUTCOMES as JSON when the module's tests end (the campaign sets it).
REPORT_ENV = "MASKSDM_FUZZ_REPORT"


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    yield
    if target := os.environ.get(REPORT_ENV):
        outcomes = collections.defaultdict(dict)
        for (loader, outcome), n in OUTCOMES.items():
            outcomes[loader][outcome] = n
        Path(target).write_text(json.dumps({"tried": dict(TRIED), "outcomes": outcomes}), encoding="utf-8")


@contextmanager
def _workdir() -> Iterator[Path]:
    folder = tempfile.mkdtemp(prefix="masksdm-fuzz-")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _attempt(target: str, call: Callable[[], Any]) -> Any:
    """``call()``'s result, or None when it raised a MaskSDMError with a message that says what to
    do; any other exception propagates (a failure)."""
    TRIED[target] += 1
    try:
        result = call()
    except MaskSDMError as exc:
        OUTCOMES[target, type(exc).__name__] += 1
        message = str(exc)
        assert len(message.strip()) >= 20, f"{type(exc).__name__} with a bare message {message!r}"
        return None
    OUTCOMES[target, "ok"] += 1
    return result


# --- text building blocks -------------------------------------------------------------------------

NASTY = [
    "", "NA", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e-400", "0", "-0", "1.5",
    "1,5", "abc", " 12 ", "TRUE", "false", "99999999999999999999999", "-9223372036854775809", "0x1A",
    "1_000", '"', '""', "'", "\n", "\r", "\t", ";", ",", "|", "\x00", "\ufeff", "é", "1.0", "2e3",
    "NULL", "N/A", "None", "#", "2020-01-01", "Unnamed: 0", "  ", "180.0000001", "-90.5", "45",
    "Abies alba", "abies  alba", "ABIES ALBA",
]  # fmt: skip
_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(-200, 200).map(lambda v: f"{v:.3f}"),
)
CELL = st.one_of(st.sampled_from(NASTY), _number, st.text(max_size=6))


@st.composite
def delimited_text(draw: st.DrawFn, columns: list[str]) -> str:
    """A header of known and random column names and rows of nasty cells, in a random dialect."""
    names = draw(st.lists(st.one_of(st.sampled_from(columns), CELL), max_size=9))
    sep = draw(st.sampled_from([",", ";", "\t", "|", " "]))
    n_rows = draw(st.integers(0, 10))
    rows = [draw(st.lists(CELL, min_size=max(0, len(names) - 1), max_size=len(names) + 1)) for _ in range(n_rows)]
    if draw(st.booleans()):
        rows = [[f'"{c}"' for c in row] for row in rows]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    bom = "\ufeff" if draw(st.booleans()) else ""
    return bom + newline.join(sep.join(r) for r in [names, *rows]) + draw(st.sampled_from(["", newline]))


def _last(suffix: str) -> str:
    """The last suffix of a file name's suffixes: ".gz" of ".csv.gz", ".zip" of ".zip"."""
    return "." + suffix.rsplit(".", 1)[-1]


def _compress(data: bytes, suffix: str) -> bytes:
    if suffix == ".gz":
        return gzip.compress(data)
    if suffix == ".bz2":
        return bz2.compress(data)
    if suffix == ".xz":
        return lzma.compress(data)
    if suffix == ".zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("table.csv", data)
        return buffer.getvalue()
    return data


@st.composite
def file_bytes(draw: st.DrawFn, text: st.SearchStrategy[str], suffixes: list[str]) -> tuple[str, bytes]:
    """(file name suffix, content): text encoded (UTF-8, Latin-1 or random bytes), maybe
    compressed, maybe truncated."""
    suffix = draw(st.sampled_from(suffixes))
    kind = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "bytes"]))
    data = draw(st.binary(max_size=300)) if kind == "bytes" else draw(text).encode(kind, errors="replace")
    data = _compress(data, _last(suffix))
    if draw(st.integers(0, 4)) == 0 and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return suffix, data


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True once in ``one_in`` draws (never for 0)."""
    return one_in > 0 and draw(st.integers(0, one_in - 1)) == 0


SEPARATORS = [",", ";", "\t", "|", " "]


@st.composite
def mutated_text(draw: st.DrawFn, header: list[str], rows: list[list[str]], sep: str) -> str:
    """``header`` and ``rows`` as delimited text, maybe mutated: nasty cells, columns dropped,
    duplicated or renamed, ragged rows, another separator, quotes, a BOM, CR line ends."""
    rate = draw(st.sampled_from([0, 0, 30, 8, 2]))  # one cell in ``rate`` becomes nasty (0: none)
    header, rows = list(header), [list(r) for r in rows]
    for _ in range(draw(st.integers(0, 2)) if rate else 0):  # header edits
        at = draw(st.integers(0, len(header)))
        edit = draw(st.sampled_from(["drop", "duplicate", "rename", "insert"]))
        if edit == "insert" or not header:
            header.insert(at, draw(CELL))
        elif edit == "drop":
            del header[min(at, len(header) - 1)]
        elif edit == "duplicate":
            header.insert(at, draw(st.sampled_from(header)))
        else:
            header[min(at, len(header) - 1)] = draw(CELL)
    for row in rows:
        for i in range(len(row)):
            if _rarely(draw, rate):
                row[i] = draw(CELL)
        if _rarely(draw, rate and rate * 2):
            del row[-1:]
    sep = draw(st.sampled_from(SEPARATORS)) if _rarely(draw, rate and 4) else sep
    if _rarely(draw, 4):
        rows = [[f'"{c}"' for c in row] for row in rows]
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    bom = "\ufeff" if _rarely(draw, 5) else ""
    return bom + newline.join(sep.join(r) for r in [header, *rows]) + newline


def _encode(draw: st.DrawFn, text: str, suffix: str) -> bytes:
    """``text`` as file content for ``suffix``: UTF-8 (rarely Latin-1), compressed as the suffix
    says, rarely truncated."""
    data = text.encode("latin-1" if _rarely(draw, 8) else "utf-8", errors="replace")
    data = _compress(data, _last(suffix))
    if _rarely(draw, 8) and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


def _cells(draw: st.DrawFn, strategies: dict[str, st.SearchStrategy[str]], n: int) -> list[list[str]]:
    return [[draw(v) for v in strategies.values()] for _ in range(n)]


# --- presence tables --------------------------------------------------------------------------------

TABLE_COLUMNS = ["plot_id", "species", "lon", "lat", "temp", "count", "site"]
TABLE_SUFFIXES = [".csv", ".tsv", ".txt", ".dat", ".csv.gz", ".csv.bz2", ".txt.xz", ".csv.zip", ".parquet"]
_SUFFIX_SEP = {".csv": ",", ".tsv": "\t", ".dat": "|"}  # .txt: any (sniffed); .dat: passed as sep=
_SPECIES = st.sampled_from(["Abies alba", "Fagus sylvatica", "Quercus ilex", " quercus  ilex", "ABIES ALBA", "", "Carex sp."])


def _decimal(low: float, high: float) -> st.SearchStrategy[str]:
    return st.one_of(st.floats(low, high).map(repr), st.integers(int(low), int(high)).map(str))


@st.composite
def presence_files(draw: st.DrawFn) -> tuple[str, str, bytes, str | None]:
    """(layout, file suffix, content, sep= argument): a long or wide table, usually well-formed
    and mutated (:func:`mutated_text`), now and then random text or bytes."""
    layout = draw(st.sampled_from(["long", "wide"]))
    suffix = draw(st.sampled_from(TABLE_SUFFIXES))
    base = "." + suffix.split(".")[1]  # the table's type: .csv of .csv.gz
    sep = _SUFFIX_SEP.get(base) or draw(st.sampled_from(["\t", ";", ","]))
    plots = {
        "plot_id": st.one_of(st.integers(1, 6).map(str), st.sampled_from(["P1", "P2", " 3 ", "3.0", "-4", "07"])),
        "lon": _decimal(-180, 180), "lat": _decimal(-90, 90), "temp": _decimal(-50, 50) | st.sampled_from(["NA", "inf"]),
        "site": st.sampled_from(["a", "b", "NA", ""]),
    }  # fmt: skip
    table = {k: draw(v) for k, v in plots.items()}  # one plot's values, repeated on its rows
    by_plot = {table["plot_id"]: table}
    for _ in range(draw(st.integers(0, 5))):
        more = {k: draw(v) for k, v in plots.items()}
        by_plot.setdefault(more["plot_id"], more)
    if layout == "long":
        header = ["plot_id", "species", "count", "lon", "lat", "temp", "site"]
        rows = [[p, draw(_SPECIES), draw(st.sampled_from(["0", "1", "3", "", "-1", "2.5"])), *(v[k] for k in header[3:])]
                for p, v in by_plot.items() for _ in range(draw(st.integers(1, 3)))]  # fmt: skip
    else:
        species = draw(st.lists(_SPECIES, min_size=1, max_size=4))
        header = ["plot_id", "lon", "lat", "temp", "site", *species]
        counts = st.sampled_from(["0", "1", "5", "", "0.5", "12.5", "101.5", "-1", "TRUE"])
        rows = [[p, *(v[k] for k in header[1:5]), *(draw(counts) for _ in species)] for p, v in by_plot.items()]
    rows = draw(st.permutations(rows))
    if base == ".parquet":
        frame = pd.DataFrame(rows, columns=header) if len(set(header)) == len(header) else pd.DataFrame()
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()
        return layout, suffix, data[: draw(st.integers(0, len(data)))] if _rarely(draw, 8) else data, None
    text = draw(delimited_text(TABLE_COLUMNS)) if _rarely(draw, 6) else draw(mutated_text(header, rows, sep))
    data = draw(st.binary(max_size=300)) if _rarely(draw, 12) else _encode(draw, text, suffix)
    arg = draw(st.sampled_from([None, ";", "tab", "|", "", "::"])) if _rarely(draw, 6) else ("|" if base == ".dat" else None)
    return layout, suffix, data, arg


def _check_plot_data(data: Any) -> None:
    """What every PlotData promises (masksdm.data.plotdata.PlotData)."""
    plots, occ = data.plots, data.occurrences
    assert list(plots.columns[:3]) == ["plot_id", "lon", "lat"]
    assert plots["plot_id"].is_unique
    lon, lat = plots["lon"].to_numpy(np.float64), plots["lat"].to_numpy(np.float64)
    assert np.isfinite(lon).all() and np.isfinite(lat).all()
    assert (np.abs(lon) <= 180).all() and (np.abs(lat) <= 90).all()
    assert list(occ.columns) == ["plot_id", "species"]
    assert set(occ["plot_id"]) <= set(plots["plot_id"])
    assert not occ.duplicated().any()
    assert all(isinstance(s, str) and s and s == s.strip() for s in occ["species"])


@FUZZ
@given(
    content=presence_files(),
    predictors=st.sampled_from([None, ["temp"]]),
    presence=st.sampled_from([None, "count"]),
    info=st.sampled_from([None, ["site"]]),
)
def test_fuzz_presence_table(content, predictors, presence, info):
    from masksdm.data.tables import load_presence_table

    layout, suffix, data, sep = content
    with _workdir() as folder:
        path = folder / f"table{suffix}"
        path.write_bytes(data)
        result = _attempt("presence table", lambda: load_presence_table(
            path, layout=layout, predictor_columns=predictors, info_columns=info,
            presence_column=presence if layout == "long" else None, min_plots=0, sep=sep,
        ))  # fmt: skip
    if result is not None:
        _check_plot_data(result)
        assert len(result.plots) <= data.count(b"\n") + data.count(b"\r") or Path(suffix).suffix in (
            ".gz", ".bz2", ".xz", ".zip", ".parquet")
        if predictors:
            assert result.plots["temp"].dtype == np.float64 and not np.isinf(result.plots["temp"]).any()


_GENERA = ["Abies", "Fagus", "Quercus", "Pinus", "Carex", "Salix", "Betula", "Picea"]


@st.composite
def valid_tables(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[Any, tuple[float, float]], set[tuple[Any, str]]]:
    """A well-formed long table, its plots' coordinates and its (plot, species) presences."""
    n_plots = draw(st.integers(1, 8))
    text_ids = draw(st.booleans())
    numbers = draw(st.lists(st.integers(-(10**12), 10**12), min_size=n_plots, max_size=n_plots, unique=True))
    ids = [f"P{n}" for n in numbers] if text_ids else numbers
    coordinate = st.floats(-90, 90, allow_subnormal=False)
    coords = {i: (draw(st.floats(-180, 180, allow_subnormal=False)), draw(coordinate)) for i in ids}
    species = [f"{g} sp{k}" for k, g in enumerate(_GENERA)]
    present = draw(st.sets(st.tuples(st.sampled_from(ids), st.sampled_from(species)), min_size=1, max_size=30))
    rows = [{"plot_id": p, "species": s, "lon": coords[p][0], "lat": coords[p][1]} for p, s in sorted(present, key=str)]
    frame = pd.DataFrame(rows)
    # mutations that keep the table's meaning: padded names, shuffled rows and columns
    if draw(st.booleans()):
        frame["species"] = [f"  {s} " for s in frame["species"]]
    frame = frame.sample(frac=1.0, random_state=draw(st.integers(0, 2**31))).reset_index(drop=True)
    return frame[draw(st.permutations(list(frame.columns)))], coords, present


@FUZZ
@given(table=valid_tables(), name=st.sampled_from(["t.csv", "t.tsv", "t.txt", "t.csv.gz", "t.parquet"]))
def test_fuzz_presence_table_valid_input_is_read_exactly(table, name):
    from masksdm.data.tables import load_presence_table

    frame, coords, present = table
    with _workdir() as folder:
        path = folder / name
        if name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, sep="\t" if ".tsv" in name or ".txt" in name else ",", index=False)
        data = _attempt("presence table (valid)", lambda: load_presence_table(path, min_plots=0))
    assert data is not None, "a well-formed table was refused"
    _check_plot_data(data)
    got = {(p, s) for p, s in data.occurrences.itertuples(index=False)}
    assert got == {(p, s) for p, s in present}
    plots = data.plots.set_index("plot_id")
    assert set(plots.index) == {p for p, _ in present}
    for plot, (lon, lat) in coords.items():
        if plot in plots.index:
            assert (plots.at[plot, "lon"], plots.at[plot, "lat"]) == (lon, lat)


# --- sPlotOpen ----------------------------------------------------------------------------------------

_SPLOT_VALUES = st.one_of(st.sampled_from(NASTY), _number, st.none(), st.booleans())


@st.composite
def splotopen_folders(draw: st.DrawFn) -> dict[str, Any]:
    """Arguments of fixtures.splotopen.write_splotopen with mutations, and byte edits of the files."""
    ids = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([1001, 1002, 1003]) if _rarely(draw, 4) else st.integers(1, 10**6)
    plot_ids = draw(st.lists(ids, min_size=0 if _rarely(draw, 8) else 1, max_size=6, unique=not _rarely(draw, 6)))
    plots = st.sampled_from([*plot_ids, 1001, -1, 2**62]) if _rarely(draw, 4) or not plot_ids else st.sampled_from(plot_ids)
    names = st.sampled_from([None, "Abies alba", "abies alba", " ", "NA", "x\ty", 'a"b']) if _rarely(draw, 3) else _SPECIES
    records = draw(st.lists(st.tuples(plots, names), max_size=12))
    # each kind of damage in some folders only, so that many folders are read and their content checked
    overrides = draw(st.dictionaries(
        st.tuples(st.integers(0, 5), st.sampled_from(["Latitude", "Longitude", "Releve_area", "Cover_total",
                                                         "is_forest", "PlotObservationID", "Forest"])),
        _SPLOT_VALUES, max_size=4)) if _rarely(draw, 2) else {}  # fmt: skip
    drop = draw(st.lists(st.sampled_from(["Latitude", "Longitude", "PlotObservationID", "Releve_area", "Forest"]),
                         max_size=2)) if _rarely(draw, 4) else []  # fmt: skip
    edits = draw(st.lists(st.tuples(st.sampled_from(["header", "dt"]), st.integers(0, 4000), st.binary(max_size=4),
                                    st.integers(0, 8)), max_size=3)) if _rarely(draw, 3) else []  # fmt: skip
    predictors = draw(st.sampled_from([None, ["Releve_area", "Forest"], ["Cover_total"], []]))
    return dict(plot_ids=plot_ids, records=records, overrides=overrides, drop=drop, edits=edits, predictors=predictors)


@FUZZ
@given(case=splotopen_folders())
def test_fuzz_splotopen(case):
    from masksdm.data.splotopen import load_splotopen

    with _workdir() as folder:
        header, dt = write_splotopen(folder, plot_ids=case["plot_ids"], records=case["records"],
                                     overrides=case["overrides"], drop_header_columns=case["drop"])  # fmt: skip
        for which, at, insert, cut in case["edits"]:
            path = header if which == "header" else dt
            raw = path.read_bytes()
            at = min(at, len(raw))
            path.write_bytes(raw[:at] + insert + raw[at + cut :])
        result = _attempt("sPlotOpen", lambda: load_splotopen(folder, min_plots=0, predictor_columns=case["predictors"]))
    if result is not None:
        _check_plot_data(result)
        assert result.plots["plot_id"].dtype == np.int64
        assert len(result.plots) <= len(case["plot_ids"]) + 3  # byte edits may split or add a line


# --- occurrences --------------------------------------------------------------------------------------

OCC_COLUMNS = ["species", "decimalLongitude", "decimalLatitude", "coordinateUncertaintyInMeters", "basisOfRecord",
               "year", "eventDate", "occurrenceStatus", "scientificName", "lon", "lat", "gbifID"]  # fmt: skip
_DWC = "http://rs.tdwg.org/dwc/terms/"
_ATTRIBUTE = st.one_of(st.sampled_from(["\\t", ",", ";", "", "\\x", "\\", '"', "'", "ab", "\\u12", "\\n", "|"]), st.text(max_size=3))


@st.composite
def dwca_archives(draw: st.DrawFn) -> bytes:
    """A Darwin Core Archive (.zip) with a mutated meta.xml and a random occurrence core."""
    n_fields = draw(st.integers(0, 6))
    terms = draw(st.lists(st.sampled_from(OCC_COLUMNS) | st.text(max_size=5), min_size=n_fields, max_size=n_fields))
    index = st.one_of(st.integers(-2, 8).map(str), st.sampled_from(["", "abc", "1.5", "99999999999999999999"]))
    fields = "".join(f'<field index="{draw(index)}" term="{_DWC}{t}"/>' for t in terms)
    attributes = {
        "encoding": draw(st.sampled_from(["UTF-8", "utf8", "latin-1", "bogus", "", "UTF-16"])),
        "fieldsTerminatedBy": draw(_ATTRIBUTE),
        "fieldsEnclosedBy": draw(_ATTRIBUTE),
        "ignoreHeaderLines": draw(st.sampled_from(["0", "1", "2", "-1", "abc", "", "1e3", "99999999999999999999"])),
        "rowType": draw(st.sampled_from([_DWC + "Occurrence", _DWC + "Taxon", ""])),
    }
    escaped = {k: v.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;") for k, v in attributes.items()}
    location = draw(st.sampled_from(["occurrence.txt", "data/occ.txt", "", "missing.txt"]))
    meta = ('<?xml version="1.0" encoding="utf-8"?><archive xmlns="http://rs.tdwg.org/dwc/text/"><core '
            + " ".join(f'{k}="{v}"' for k, v in escaped.items())
            + f"><files><location>{location}</location></files>{fields}</core></archive>")  # fmt: skip
    if draw(st.integers(0, 5)) == 0:
        meta = meta[: draw(st.integers(0, len(meta)))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("meta.xml", meta)
        archive.writestr(location or "occurrence.txt", draw(delimited_text(OCC_COLUMNS)).encode("utf-8", "replace"))
    return buffer.getvalue()


_GBIF = ["gbifID", "species", "decimalLongitude", "decimalLatitude", "coordinateUncertaintyInMeters",
         "basisOfRecord", "year", "occurrenceStatus"]  # fmt: skip


@st.composite
def occurrence_tables(draw: st.DrawFn) -> tuple[str, bytes]:
    """A GBIF simple CSV of records around the test grid (lon 0..6, lat 40..44), usually
    well-formed, mutated by :func:`mutated_text`."""
    values = {
        "species": _SPECIES, "lon": _decimal(-1, 7), "lat": _decimal(39, 45),
        "uncertainty": st.sampled_from(["", "10", "5000", "NA", "-1", "1e9", "250,5"]),
        "basis": st.sampled_from(["HUMAN_OBSERVATION", "PRESERVED_SPECIMEN", "FOSSIL_SPECIMEN", "LIVING_SPECIMEN", ""]),
        "year": st.sampled_from(["", "1990", "2021", "1700", "abc"]), "status": st.sampled_from(["PRESENT", "ABSENT", ""]),
    }  # fmt: skip
    rows = [[str(i), *row] for i, row in enumerate(_cells(draw, values, draw(st.integers(1, 12))))]
    suffix = draw(st.sampled_from([".csv", ".txt", ".tsv", ".csv.gz", ".zip"]))
    text = draw(mutated_text(_GBIF, rows, draw(st.sampled_from(["\t", ","]))))
    return suffix, _encode(draw, text, suffix)


OCC_FILES = st.one_of(
    occurrence_tables(), occurrence_tables(),
    file_bytes(delimited_text(OCC_COLUMNS), [".csv", ".txt", ".tsv", ".csv.gz", ".zip", ".csv.bz2"]),
    st.tuples(st.just(".zip"), dwca_archives()),
)


@functools.cache
def _occurrence_stack() -> Any:
    """A 4 x 6 EPSG:4326 raster (lon 0..6, lat 40..44) with one NaN cell, opened once."""
    from masksdm.data.grid import RasterStack

    folder = Path(tempfile.mkdtemp(prefix="masksdm-fuzz-stack-"))
    values = np.arange(24, dtype="float32").reshape(4, 6)
    values[0, 0] = np.nan
    with rasterio.open(folder / "bio_1.tif", "w", driver="GTiff", height=4, width=6, count=1, dtype="float32",
                       crs="EPSG:4326", transform=Affine(1.0, 0, 0.0, 0, -1.0, 44.0), nodata=np.nan) as dst:
        dst.write(values, 1)  # fmt: skip
    return RasterStack(folder)


@FUZZ
@given(content=OCC_FILES, sep=st.sampled_from([None, None, ",", "tab", ";"]),
       columns=st.sampled_from([(None, None, None), ("species", "lon", "lat"), ("taxon", None, "y")]),
       thin=st.booleans(), max_uncertainty=st.sampled_from([None, 10_000.0, 0.0]))  # fmt: skip
def test_fuzz_occurrences(content, sep, columns, thin, max_uncertainty):
    from masksdm.data.occurrences import FLAGS, RECORD_COLUMNS, clean_occurrences, read_occurrences

    suffix, data = content
    species, lon, lat = columns
    with _workdir() as folder:
        path = folder / f"records{suffix}"
        path.write_bytes(data)
        records = _attempt("occurrences (read)", lambda: read_occurrences(
            path, species_column=species, lon_column=lon, lat_column=lat, sep=sep))  # fmt: skip
    if records is None:
        return
    assert list(records.columns) == [*RECORD_COLUMNS, "record"] and len(records) > 0
    for column in ("lon", "lat", "uncertainty_m", "year"):
        assert records[column].dtype == np.float64
    np.testing.assert_array_equal(records["record"], np.arange(len(records)))
    cleaned = _attempt("occurrences (clean)", lambda: clean_occurrences(
        records, _occurrence_stack(), thin=thin, max_uncertainty_m=max_uncertainty))  # fmt: skip
    if cleaned is not None:
        assert int(cleaned.report["records"].sum()) == len(records)
        assert list(cleaned.report["flag"][: len(FLAGS)]) == list(FLAGS)
        kept = cleaned.presences
        assert len(kept) == int(cleaned.report["records"].iloc[-1]) > 0
        assert ((kept["cell"] >= 0) & (kept["cell"] < 24)).all() and (kept["cell"] != 0).all()
        assert kept["lon"].between(0, 6).all() and kept["lat"].between(40, 44).all()
        if thin:
            assert not kept[["species", "cell"]].duplicated().any()


# --- config -----------------------------------------------------------------------------------------

_KEYS = {
    "model": ["d_token", "n_blocks", "n_heads", "ffn_factor", "dropout", "n_frequencies", "frequency_init_scale",
              "location_frequency_scale", "ensemble"],
    "train": ["epochs", "batch_size", "eval_batch_size", "lr", "weight_decay", "warmup_steps", "schedule", "loss",
              "target_group_weight", "masking", "group_masking", "use", "patience", "min_steps", "select", "seed",
              "device", "precision", "threads", "collapse"],
}  # fmt: skip
_SCALAR = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64), st.sampled_from([10**400, -(10**400), 2**63, 2**63 - 1, 0, 1, 2, 4]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=8),
    st.sampled_from(["cpu", "paper", "cosine", "bce", "best", "last", "auto", "fp32", "on", "random"]),
    st.datetimes(), st.dates(),
)  # fmt: skip
_VALUE = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)


@st.composite
def config_documents(draw: st.DrawFn) -> bytes:
    """TOML (mostly well-formed, with real and random keys and values of any type) or garbage."""
    import tomli_w

    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200))
    document: dict[str, Any] = {}
    if draw(st.booleans()):
        document["preset"] = draw(st.sampled_from(["cpu", "paper", "huge", 3, True]) | _VALUE)
    for table, keys in _KEYS.items():
        if draw(st.booleans()):
            document[table] = draw(st.dictionaries(st.sampled_from(keys) | st.text(max_size=5), _VALUE, max_size=4))
    if draw(st.integers(0, 5)) == 0:
        document[draw(st.text(max_size=6))] = draw(_VALUE)
    text = tomli_w.dumps(document)
    if kind == 1:  # a text edit
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=5)) + text[at + draw(st.integers(0, 5)) :]
    return text.encode("utf-8", "surrogatepass") if kind != 2 else text.encode("utf-16")


@FUZZ
@given(document=config_documents())
def test_fuzz_config(document):
    from masksdm.model.config import RunConfig, load_config

    with _workdir() as folder:
        path = folder / "run.toml"
        path.write_bytes(document)
        config = _attempt("config", lambda: load_config(path))
        if config is None:
            return
        assert isinstance(config, RunConfig)
        # every value passed its check: the config survives its own TOML round trip
        path.write_text(config.to_toml(), encoding="utf-8")
        assert load_config(path) == config
    model, train = config.model, config.train
    assert model.d_token % model.n_heads == 0 and 0 <= model.dropout < 1
    assert all(math.isfinite(v) for v in (model.ffn_factor, train.lr, train.weight_decay))


# --- raster extraction --------------------------------------------------------------------------------

_CRS = ["EPSG:4326", "EPSG:3857", "EPSG:32633", "EPSG:3035", "ESRI:54009", "+proj=longlat +lon_0=180 +datum=WGS84", None]
_DTYPES = ["uint8", "int16", "uint16", "int32", "float32", "float64"]


@st.composite
def rasters(draw: st.DrawFn) -> dict[str, Any]:
    """A small single-band GeoTIFF: random CRS, transform, dtype, nodata and values (NaN too)."""
    dtype = draw(st.sampled_from(_DTYPES))
    height, width = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    crs = draw(st.sampled_from(_CRS))
    projected = crs not in (None, "EPSG:4326") and "longlat" not in crs
    scale = 1e5 if projected else 1.0
    res_x = draw(st.sampled_from([1.0, 0.5, 30.0, 1e-6, -1.0, 360.0])) * scale
    res_y = draw(st.sampled_from([-1.0, -0.5, -30.0, 1.0, -1e-6])) * scale
    west = draw(st.floats(-200, 200)) * scale
    north = draw(st.floats(-100, 100)) * scale
    info = np.finfo(dtype) if dtype.startswith("float") else np.iinfo(dtype)
    scale, offset = draw(st.sampled_from([None, 0.1, -1.0, 2.0])), draw(st.sampled_from([None, -273.15, 1000.0]))
    low, high = (-(2.0**100), 2.0**100) if scale or offset else (float(info.min), float(info.max))  # a scaled value stays finite
    values = np.array(draw(st.lists(st.floats(low, high, width=int(info.bits)) if dtype.startswith("float")
                                    else st.integers(int(info.min), int(info.max)),
                                    min_size=height * width, max_size=height * width)), dtype=dtype)  # fmt: skip
    nodata = draw(st.sampled_from([None, "first", "nan", "min"]))
    if dtype.startswith("float") and draw(st.booleans()):
        values[draw(st.integers(0, values.size - 1))] = np.nan
    nodata_value = {None: None, "first": float(values[0]), "nan": float("nan") if dtype.startswith("float") else None,
                    "min": float(info.min)}[nodata]  # fmt: skip
    return dict(dtype=dtype, height=height, width=width, crs=crs, values=values.reshape(height, width),
                transform=Affine(res_x, 0.0, west, 0.0, res_y, north), nodata=nodata_value, scale=scale, offset=offset)  # fmt: skip


_POINT = st.one_of(st.floats(-200, 200), st.sampled_from([np.nan, np.inf, -np.inf, 180.0, -180.0, 90.0, -90.0, 0.0]))
POINTS = st.lists(st.tuples(_POINT, _POINT), max_size=8)


def _write_raster(path: Path, raster: dict[str, Any]) -> None:
    profile = dict(driver="GTiff", height=raster["height"], width=raster["width"], count=1, dtype=raster["dtype"],
                   transform=raster["transform"], nodata=raster["nodata"])  # fmt: skip
    if raster["crs"] is not None:
        profile["crs"] = raster["crs"]
    with warnings.catch_warnings():  # an identity transform is written as none: read as not georeferenced
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(raster["values"], 1)
            if raster["scale"] is not None or raster["offset"] is not None:
                dst.scales, dst.offsets = (raster["scale"] or 1.0,), (raster["offset"] or 0.0,)


@FUZZ
@given(raster=rasters(), points=POINTS, cut=st.one_of(st.none(), st.integers(0, 2000)))
def test_fuzz_raster_extraction(raster, points, cut):
    from masksdm.data.rasters import extract_rasters

    lon = np.array([p[0] for p in points], dtype=np.float64)
    lat = np.array([p[1] for p in points], dtype=np.float64)
    with _workdir() as folder:
        path = folder / "bio_1.tif"
        _write_raster(path, raster)
        if cut is not None:
            path.write_bytes(path.read_bytes()[:cut])
        frame = _attempt("raster extraction", lambda: extract_rasters({"bio_1": path}, lon, lat, progress=False))
        if frame is None:
            return
        assert list(frame.columns) == ["bio_1"] and len(frame) == len(points) and frame["bio_1"].dtype == np.float64
        assert len(points) == 0 or frame["bio_1"].notna().any()
        if raster["crs"] == "EPSG:4326":  # a truncated file too: its values must be the written ones
            _check_pixels(frame["bio_1"].to_numpy(), raster, lon, lat)


def _check_pixels(got: np.ndarray, raster: dict[str, Any], lon: np.ndarray, lat: np.ndarray) -> None:
    """The value at each point is its pixel's (computed here independently), or NaN for nodata."""
    t, values, nodata = raster["transform"], raster["values"], raster["nodata"]
    left, right = t.c, t.c + t.a * raster["width"]  # as rasterio gives a dataset's bounds
    for i, (x, y) in enumerate(zip(lon, lat, strict=True)):
        if right > 180 and left >= 0:  # a 0..360 grid: longitudes are wrapped into it (documented)
            x = x % 360.0
        col, row = (x - t.c) / t.a, (y - t.f) / t.e
        if min(abs(col - round(col)), abs(row - round(row))) < 1e-6:
            continue  # on a pixel edge: either neighbour is right
        r, c = math.floor(row), math.floor(col)
        if not (0 <= r < raster["height"] and 0 <= c < raster["width"]):
            assert np.isnan(got[i])
            continue
        value = values[r, c]
        missing = nodata is not None and (value == np.asarray(nodata).astype(values.dtype) or (np.isnan(nodata) and np.isnan(value)))
        if missing or (values.dtype.kind == "f" and np.isnan(value)):
            assert np.isnan(got[i]), (i, value, got[i])
        else:
            expected = float(value) * (raster["scale"] or 1.0) + (raster["offset"] or 0.0)
            assert got[i] == expected, (i, value, got[i], expected)


@FUZZ
@given(raster=rasters(), points=POINTS)
def test_fuzz_raster_stack(raster, points):
    from masksdm.data.grid import RasterStack

    lon = np.array([p[0] for p in points], dtype=np.float64)
    lat = np.array([p[1] for p in points], dtype=np.float64)
    with _workdir() as folder:
        _write_raster(folder / "bio_1.tif", raster)
        stack = _attempt("raster stack", lambda: RasterStack(folder))
        if stack is None:
            return
        with stack:
            cells = stack.cell_index(lon, lat)
            assert cells.dtype == np.int64 and len(cells) == len(points)
            assert ((cells >= -1) & (cells < stack.width * stack.height)).all()
            assert (cells[~(np.isfinite(lon) & np.isfinite(lat))] == -1).all()
            values = stack.read(["bio_1", "Longitude", "Latitude"])
            assert values.shape == (raster["height"] * raster["width"], 3)
            valid = stack.valid_cells()
            assert valid.shape == (raster["height"] * raster["width"],)
            np.testing.assert_array_equal(valid, np.isfinite(values[:, 0]))
            lon_c, lat_c = stack.lonlat()
            assert (np.isnan(lat_c) | (np.abs(lat_c) <= 90)).all() and (np.isnan(lon_c) | (np.abs(lon_c) <= 180)).all()
            np.testing.assert_array_equal(np.isnan(lon_c), np.isnan(lat_c))


# --- checkpoints --------------------------------------------------------------------------------------


@functools.cache
def _tiny_run() -> Path:
    """A run folder (model.json + model.safetensors) of an untrained 3-predictor, 2-species model."""
    from conftest import tiny_config

    from masksdm.data.predictors import Predictor
    from masksdm.model.checkpoint import ModelCard, build_model, save_checkpoint

    predictors = [Predictor("bio_1", "WorldClim"), Predictor("bio_12", "WorldClim"), Predictor("Releve_area", "Metadata", "table")]
    config = tiny_config().replace_model(d_token=8, n_heads=2, n_frequencies=2, ensemble=1)
    card = ModelCard(config=config, predictors=predictors, species=["Abies alba", "Fagus sylvatica"],
                     normalisation={p.name: {"mean": 1.0, "std": 2.0} for p in predictors}, thresholds=[0.5, 0.25])  # fmt: skip
    run = Path(tempfile.mkdtemp(prefix="masksdm-fuzz-run-")) / "run"
    save_checkpoint(run, build_model(card), card)
    return run


_GARBAGE = st.one_of(
    st.none(), st.booleans(), st.sampled_from([-1, 0, 1, 3, 2**31, 2**63, 10**40, -(10**40)]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.just([]), st.just({}), st.just([1, "a"]),
    st.just({"name": "x"}), st.just("../../etc/passwd"), st.just("0" * 64),
)  # fmt: skip


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and list indices) into a JSON value."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def card_mutations(draw: st.DrawFn) -> tuple[list[tuple[str, tuple, Any]], list[tuple[int, int]], int | None]:
    card = json.loads((_tiny_run() / "model.json").read_text())
    places = _paths(card)
    edits = draw(st.lists(st.tuples(st.sampled_from(["delete", "set"]), st.sampled_from(places), _GARBAGE), max_size=3))
    flips = draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=2))
    cut = draw(st.one_of(st.none(), st.integers(0, 10**6)))
    return edits, flips, cut


def _mutate(card: Any, edits: list[tuple[str, tuple, Any]]) -> Any:
    for action, path, value in edits:
        value = copy.deepcopy(value)  # a fresh one each time: st.just() gives one object, which may be set inside itself
        if not path:
            card = value if action == "set" else {}
            continue
        parent = card
        for key in path[:-1]:
            try:
                parent = parent[key]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = path[-1]
        if (isinstance(parent, dict) and (action == "set" or last in parent)) or (
            isinstance(parent, list) and isinstance(last, int) and last < len(parent)
        ):
            if action == "delete":
                del parent[last]
            else:
                parent[last] = value
    return card


@FUZZ
@given(mutation=card_mutations())
def test_fuzz_checkpoint(mutation):
    from masksdm.model.checkpoint import load_checkpoint

    edits, flips, cut = mutation
    original = json.loads((_tiny_run() / "model.json").read_text())
    with _workdir() as folder:
        run = folder / "run"
        shutil.copytree(_tiny_run(), run)
        card = _mutate(json.loads(json.dumps(original)), edits)
        (run / "model.json").write_text(json.dumps(card), encoding="utf-8")
        weights = run / "model.safetensors"
        raw = bytearray(weights.read_bytes())
        for at, bits in flips:
            raw[at % len(raw)] ^= bits
        weights.write_bytes(bytes(raw[:cut] if cut is not None else raw))
        loaded = _attempt("checkpoint", lambda: load_checkpoint(run))
    if loaded is not None:  # only an edit that changes nothing that matters may load
        strip = {k: v for k, v in original.items() if k != "weights"}
        assert {k: v for k, v in card.items() if k != "weights"} == strip
        assert bytes(raw[:cut] if cut is not None else raw) == (_tiny_run() / "model.safetensors").read_bytes()


# --- regressions: the minimal inputs the fuzzing found ---------------------------------------------


def _dwca(path: Path, core: str, fields: str, table: str) -> Path:
    """A Darwin Core Archive with ``core`` attributes and ``fields`` in meta.xml, and ``table``."""
    meta = (f'<?xml version="1.0" encoding="utf-8"?><archive xmlns="http://rs.tdwg.org/dwc/text/"><core {core} '
            f'rowType="{_DWC}Occurrence"><files><location>occurrence.txt</location></files>{fields}</core></archive>')
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.xml", meta)
        archive.writestr("occurrence.txt", table)
    return path


_FIELDS = "".join(f'<field index="{i}" term="{_DWC}{t}"/>' for i, t in enumerate(["species", "decimalLongitude", "decimalLatitude"]))
_ROWS = "species\tdecimalLongitude\tdecimalLatitude\nAbies alba\t1.5\t42.5\n"


@pytest.mark.parametrize(("core", "fields", "names"), [
    ('fieldsTerminatedBy="\\t" ignoreHeaderLines="1"', _FIELDS + f'<field index="" term="{_DWC}year"/>', "index=''"),
    ('fieldsTerminatedBy="" ignoreHeaderLines="1"', _FIELDS, "fieldsTerminatedBy=''"),
    ('fieldsTerminatedBy="\\t" fieldsEnclosedBy="ab" ignoreHeaderLines="1"', _FIELDS, "fieldsEnclosedBy='ab'"),
    ('fieldsTerminatedBy="\\x" ignoreHeaderLines="1"', _FIELDS, "fieldsTerminatedBy='\\\\x'"),
    # found by the campaign: pandas allocated every skipped row (24 GB, the machine's memory)
    ('fieldsTerminatedBy="\\t" ignoreHeaderLines="99999999999999999999"', _FIELDS, "ignoreHeaderLines="),
])  # fmt: skip
def test_a_broken_meta_xml_is_refused_naming_the_attribute(tmp_path, core, fields, names):
    from masksdm.data.occurrences import read_occurrences

    path = _dwca(tmp_path / "gbif.zip", core, fields, _ROWS)
    with pytest.raises(DataError, match="meta.xml") as caught:
        read_occurrences(path)
    assert names in str(caught.value) and "fix that attribute" in str(caught.value)


def test_a_non_ascii_quote_character_in_meta_xml_is_read():
    """pandas' C parser takes ASCII separators and quotes only: the python one reads the others."""
    from masksdm.data.occurrences import read_occurrences

    with _workdir() as folder:
        path = _dwca(folder / "gbif.zip", 'fieldsTerminatedBy="\\t" fieldsEnclosedBy="\u00ab" ignoreHeaderLines="1"',
                     _FIELDS, "species\tdecimalLongitude\tdecimalLatitude\n\u00abAbies alba\u00ab\t1.5\t42.5\n")
        records = read_occurrences(path)
    assert records["species"].tolist() == ["Abies alba"] and records["lon"].tolist() == [1.5]


def test_a_zipped_table_that_is_not_utf8_is_refused(tmp_path):
    """Found by the campaign: a bare UnicodeDecodeError from a zipped CSV (not an archive)."""
    from masksdm.data.occurrences import read_occurrences

    path = tmp_path / "records.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("table.csv", b"species,decimalLongitude,decimalLatitude\nAbies alba,1.5,42.5\n" + b"\x80,1,2\n")
    with pytest.raises(DataError, match="must be UTF-8"):
        read_occurrences(path)


def test_a_separator_of_two_characters_is_refused(tmp_path):
    from masksdm.data.tables import load_presence_table

    path = tmp_path / "plots.csv"
    path.write_text("plot_id,species,lon,lat\n1,Abies alba,0.0,0.0\n")
    with pytest.raises(DataError, match="not one character"):
        load_presence_table(path, sep="::", min_plots=0)


@pytest.mark.parametrize(("content", "match"), [
    (b"\x80", "not UTF-8"),
    (b"[model]\nd_token = " + b"1" * 400 + b"\n", "model.d_token must be"),
    (b"[model]\nffn_factor = " + b"1" * 400 + b"\n", "model.ffn_factor must be"),
])  # fmt: skip
def test_config_that_is_no_text_or_too_large_a_number_is_refused(tmp_path, content, match):
    from masksdm.model.config import load_config

    path = tmp_path / "run.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_points_beyond_the_poles_are_outside_a_mercator_grid(tmp_path):
    from masksdm.data.grid import RasterStack

    raster = dict(dtype="uint8", height=2, width=3, crs="EPSG:3857", values=np.zeros((2, 3), dtype="uint8"),
                  transform=Affine(1e5, 0.0, 0.0, 0.0, -1e5, 0.0), nodata=None, scale=None, offset=None)  # fmt: skip
    _write_raster(tmp_path / "bio_1.tif", raster)
    with RasterStack(tmp_path) as stack:
        assert stack.cell_index(np.array([0.0, 0.5, np.nan]), np.array([91.0, -0.5, 0.0])).tolist() == [-1, 0, -1]


def test_a_point_a_projected_crs_cannot_hold_is_outside_its_raster(tmp_path):
    """Found by the campaign: 96 degrees east has no UTM 33N coordinates (inf), and 0 * inf in the
    pixel arithmetic raised numpy's invalid-value warning."""
    from masksdm.data.rasters import extract_rasters

    raster = dict(dtype="uint8", height=1, width=1, crs="EPSG:32633", values=np.zeros((1, 1), dtype="uint8"),
                  transform=Affine(1e5, 0.0, 0.0, 0.0, -1e5, 0.0), nodata=None, scale=None, offset=None)  # fmt: skip
    _write_raster(tmp_path / "bio_1.tif", raster)
    frame = extract_rasters({"bio_1": tmp_path / "bio_1.tif"}, np.array([96.0, 11.0]), np.array([0.0, -0.5]),
                            progress=False)  # fmt: skip
    assert np.isnan(frame["bio_1"].iloc[0]) and frame["bio_1"].iloc[1] == 0.0


def test_a_geographic_grid_past_the_poles_has_no_coordinates_there(tmp_path):
    from masksdm.data.grid import RasterStack

    raster = dict(dtype="float32", height=3, width=2, crs="EPSG:4326", values=np.ones((3, 2), dtype="float32"),
                  transform=Affine(1.0, 0.0, 190.0, 0.0, -1.0, 91.0), nodata=None, scale=None, offset=None)  # fmt: skip
    _write_raster(tmp_path / "bio_1.tif", raster)
    with RasterStack(tmp_path) as stack:
        lon, lat = stack.lonlat()
    assert np.isnan(lat[:2]).all() and lat[2:].tolist() == [89.5, 89.5, 88.5, 88.5]
    assert lon[2:].tolist() == [-169.5, -168.5, -169.5, -168.5]  # 190.5 and 191.5 wrapped into -180..180


def test_an_splotopen_header_starting_with_a_control_character_is_read_by_its_names(tmp_path):
    """Found by the campaign: the header's names were cleaned (a vertical tab stripped) for the
    checks but not for pyarrow, which then lacked 'PlotObservationID' (a bare ArrowKeyError)."""
    from masksdm.data.splotopen import load_splotopen

    write_splotopen(tmp_path / "plain")
    header, _ = write_splotopen(tmp_path / "edited")
    header.write_bytes(b"\x0b" + header.read_bytes())
    plain, edited = (load_splotopen(tmp_path / name, min_plots=0) for name in ("plain", "edited"))
    pd.testing.assert_frame_equal(edited.plots, plain.plots)
    pd.testing.assert_frame_equal(edited.occurrences, plain.occurrences)


def test_a_float64_value_beyond_float32_or_infinite_is_missing(tmp_path):
    """An infinite predictor would reach the model as NaN logits; a missing one is masked."""
    from masksdm.data.grid import RasterStack
    from masksdm.data.rasters import extract_rasters

    values = np.array([[1.5, 1e300, -1e300, np.inf]], dtype="float64")
    raster = dict(dtype="float64", height=1, width=4, crs="EPSG:4326", values=values,
                  transform=Affine(1.0, 0.0, 0.0, 0.0, -1.0, 1.0), nodata=None, scale=None, offset=None)  # fmt: skip
    _write_raster(tmp_path / "bio_1.tif", raster)
    with RasterStack(tmp_path) as stack:
        got = stack.read(["bio_1"])[:, 0]
    assert got[0] == 1.5 and np.isnan(got[1:]).all()
    sampled = extract_rasters({"bio_1": tmp_path / "bio_1.tif"}, np.array([0.5, 3.5]), np.array([0.5, 0.5]), progress=False)
    assert sampled["bio_1"].iloc[0] == 1.5 and np.isnan(sampled["bio_1"].iloc[1])


def test_error_classes_are_the_packages():
    assert issubclass(RasterError, DataError) and issubclass(DataError, MaskSDMError)
    assert issubclass(ConfigError, MaskSDMError) and issubclass(CheckpointError, MaskSDMError)
