"""Load a presence/absence table (CSV, TSV or Parquet) as :class:`~masksdm.data.plotdata.PlotData`.

Two layouts are accepted:

``long`` (default): one row per (plot, species) record.
    Columns ``plot_id``, ``species``, ``lon``, ``lat`` (names configurable) and, optionally, a
    presence column and plot-level predictor columns. Coordinates and predictors are repeated on
    every row of a plot and must agree within a plot. A row whose species is empty lists a plot
    without species; with a presence column, rows with 0 are absences (the plot is kept, the
    species is not recorded as present there).

``wide``: one row per plot.
    Columns ``plot_id``, ``lon``, ``lat``, the predictor and info columns, and one column per
    species holding counts, cover or 0/1 (a value > 0 is a presence; 0 or empty is an absence).
    Every column not declared as plot, coordinate, predictor (``predictor_columns``,
    ``--predictor-columns``) or info column (``info_columns``, ``--info-columns``) is a species
    column, and must look like one, else the load is refused naming the column:

    * it has a name: an empty header, which pandas reads as ``Unnamed: N`` (usually a DataFrame
      index written with the table), is refused; drop it or name and declare it;
    * its values are booleans or numbers (text, dates and times are refused), none negative or
      infinite, and either whole numbers (counts, 0/1) or all within 0..100 (percent cover, 0-1
      fractions);
    * a column present (> 0) in at least 99 % of at least 20 plots is kept but logged as a
      WARNING: it looks like an id or a predictor, not a species.

    The columns that became species are logged at INFO (the list is cut after 10 names).

Species names (both layouts) are cleaned: Unicode NFC form, surrounding whitespace stripped,
inner runs of whitespace as one space; names that then differ only by case are merged under the
spelling with the most records, logged as a WARNING
(:func:`~masksdm.data.plotdata.canonical_species`); wide columns that get the same name are
merged (a presence in either is a presence). Plot ids are stripped, and integral decimals
(``"1.0"``) are the integer (``"1"``): ids ``1`` and ``1.0`` are one plot.

Files: ``.csv`` (comma), ``.tsv``/``.tab`` (tab), ``.txt`` (tab, semicolon or comma, sniffed
from the first line), optionally compressed (``.gz``, ``.bz2``, ``.zip``, ``.xz``, and ``.zst``
when the ``zstandard`` package is installed), or ``.parquet``/``.pq``. Text files are UTF-8 with a
header row; empty cells, ``NA`` and ``NaN`` are missing. Two columns with the same header are
refused (which one is meant would be a guess); so is a truncated or corrupt compressed file. Coordinates are WGS84 longitude/latitude in degrees (EPSG:4326). Predictor values must
be numeric; they are returned as float64, with missing and infinite values as NaN (MaskSDM masks
them). Cite the data set you load as its authors ask.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from masksdm._io import (
    COMPRESSION,
    CORRUPT_ERRORS,
    corrupt_error,
    open_text,
    require_zstandard,
    text_read_errors,
)
from masksdm.data.plotdata import (
    PlotData,
    canonical_species,
    check_coordinates,
    filter_species,
    normalise_species,
)
from masksdm.errors import DataError

__all__ = ["LAYOUTS", "load_presence_table", "read_table", "sniff_separator"]

logger = logging.getLogger(__name__)

#: Accepted values of ``layout``.
LAYOUTS: tuple[str, ...] = ("long", "wide")

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_PARQUET = {".parquet", ".pq"}
#: Separator names accepted besides one character (``--sep tab``).
_SEP_NAMES = {"tab": "\t", "\\t": "\t"}
_DECLARE = (
    "declare predictors with --predictor-columns (predictor_columns=...) and plot descriptions "
    "with --info-columns (info_columns=...)"
)


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _header_line(path: Path) -> str:
    """The first non-blank line of a text table."""
    with text_read_errors(path, "a text table"), open_text(path) as handle:
        for line in handle:
            if line.strip():
                return line.rstrip("\r\n")
    raise DataError(f"'{path}' is empty: it must have a header row and at least one plot")


def sniff_separator(first: str) -> str:
    """Tab, semicolon or comma, whichever the header line uses (tab first)."""
    for sep in ("\t", ";", ","):
        if sep in first:
            return sep
    return ","


def _check_unique(names: Sequence[object], path: Path) -> None:
    """Refuse a header naming two columns the same (empty names are left to the layouts)."""
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        key = str(name)
        if key.strip() and key in seen:
            raise DataError(
                f"columns {seen[key]} and {number} of '{path}' are both named {key!r}: rename "
                "one of them, or merge them into one column"
            )
        seen.setdefault(key, number)


def read_table(
    path: str | Path, *, sep: str | None = None, text_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Read a CSV/TSV/text or Parquet table.

    Text files: ``text_columns`` are read as text, other column types are inferred; ``sep`` is
    one character or ``"tab"``, ``None`` takes it from the extension (``.txt``: sniffed). Parquet
    files keep their stored types.

    Raises:
        DataError: when the file is missing, of an unknown type, truncated or corrupt, has two
            columns of the same name, or cannot be parsed.
        DependencyNotFoundError: a ``.zst`` file without the ``zstandard`` package.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"table '{path}' does not exist: check the path you passed")
    if path.suffix.lower() == ".zst":
        require_zstandard(path)
    suffix = _suffix(path)
    if suffix in _PARQUET:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DataError(f"cannot read Parquet file '{path}' ({exc}): write it again") from exc
        _check_unique(list(frame.columns), path)
        return frame
    sep = _SEP_NAMES.get(sep, sep) if sep is not None else None
    if sep is not None and len(sep) != 1:
        raise DataError(f"separator {sep!r} for '{path}' is not one character: pass one, such as ',' ';' '|' or 'tab' (--sep, sep=...)")
    if sep is None and suffix not in _SEPARATORS and suffix != ".txt":
        raise DataError(
            f"unknown table type '{suffix or path.name}' of '{path}': use .csv, .tsv, .txt or "
            ".parquet, or give the separator (--sep, sep=...)"
        )
    first = _header_line(path)
    if sep is None:
        sep = _SEPARATORS[suffix] if suffix in _SEPARATORS else sniff_separator(first)
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            dtype={c: "str" for c in text_columns},
            encoding="utf-8-sig",
            keep_default_na=False,
            na_values=["", "NA", "NaN", "nan", "N/A", "NULL"],
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"cannot parse '{path}' as a table separated by {sep!r} ({exc}): check the separator "
            "(--sep, sep=...) and that the file is UTF-8 text"
        ) from exc
    except CORRUPT_ERRORS as exc:
        if path.suffix.lower() in COMPRESSION:
            raise corrupt_error(path, exc) from exc
        raise DataError(f"cannot read '{path}' ({exc}): check the file and its permissions") from exc
    if len(sep) == 1:
        header = next(csv.reader([first], delimiter=sep), [])
        if len(header) == len(frame.columns):
            _check_unique(header, path)
    return frame


def _check_columns(frame: pd.DataFrame, needed: Sequence[str], path: Path) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        available = [str(c) for c in frame.columns]
        shown = available[:30] + (["..."] if len(available) > 30 else [])
        if len(available) == 1:
            for sep in (";", "\t", ",", "|"):
                if sep in available[0]:
                    raise DataError(
                        f"'{path}' was read as a single column {available[0]!r}: its fields look "
                        f"separated by {sep!r}: pass --sep {'tab' if sep == chr(9) else repr(sep)} "
                        f"(in Python: sep={sep!r})"
                    )
        raise DataError(
            f"'{path}' has no column(s) {missing}; available columns: {shown}: pass the right "
            "column names (--plot-column, --species-column, --lon-column, --lat-column, "
            "--predictor-columns, --presence-column)"
        )


def _plot_ids(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Plot ids as int64 when every id is a plain integer, else as text.

    Text ids are stripped and integral decimals lose their decimals (``"1.0"`` is ``"1"``).
    """
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        text = values.astype("str").str.strip()
        values = text.where(values.notna() & (text != ""))
    if values.isna().any():
        raise DataError(
            f"{int(values.isna().sum())} rows of '{path}' have an empty plot id ('{column}'): "
            "fill them or drop those rows"
        )
    if pd.api.types.is_integer_dtype(values):
        return values.astype(np.int64)
    if pd.api.types.is_float_dtype(values):
        if (values != np.round(values)).any():
            raise DataError(
                f"plot ids in '{column}' of '{path}' are not integers: use integer or text ids"
            )
        return values.astype(np.int64)
    text = values.astype("str").str.replace(r"^(-?(?:0|[1-9][0-9]*))\.0*$", r"\1", regex=True)
    if text.str.fullmatch(r"-?(0|[1-9][0-9]{0,17})").all():
        return text.astype(np.int64)
    return text


def _numeric(values: pd.Series, column: str, path: Path, what: str, hint: str = "") -> np.ndarray:
    """A column as float64; DataError naming a non-numeric value."""
    if pd.api.types.is_bool_dtype(values):
        return np.array(values, dtype=np.float64)
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & values.notna()
    if bad.any():
        example = values[bad].iloc[0]
        raise DataError(
            f"{what} column '{column}' of '{path}' is not numeric (e.g. {example!r}): "
            f"{hint or 'convert it to numbers, or leave it out'}"
        )
    return np.array(converted.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)


def _predictors(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> pd.DataFrame:
    out = {}
    for column in columns:
        values = _numeric(frame[column], column, path, "predictor")
        infinite = np.isinf(values)
        if infinite.any():
            logger.info(
                "predictor '%s' of '%s': %d infinite values set to NaN (missing)",
                column,
                path.name,
                int(infinite.sum()),
            )
            values[infinite] = np.nan
        out[column] = values
    return pd.DataFrame(out, index=frame.index)


def _check_constant(
    table: pd.DataFrame, codes: np.ndarray, columns: list[str], path: Path
) -> np.ndarray:
    """Every plot must have one value per column (NaN counts as a value).

    Args:
        codes: plot index of each row (0..n_plots-1, in order of first appearance).

    Returns:
        The row index of each plot's first row.
    """
    first = np.unique(codes, return_index=True)[1]
    for column in columns:
        values = table[column].to_numpy()
        reference = values[first[codes]]
        differ = (values != reference) & ~(np.isnan(values) & np.isnan(reference))
        if differ.any():
            plots = pd.unique(table["plot_id"].to_numpy()[differ])
            raise DataError(
                f"{len(plots)} plots of '{path}' have different '{column}' values on different "
                f"rows (e.g. plot {plots.tolist()[0]!r}): in a long table each plot's coordinates "
                "and predictors must be the same on all its rows; fix them or aggregate per plot "
                "first"
            )
    return first


_UNNAMED = re.compile(r"\s*|Unnamed: \d+(_level_\d+)?")


def _presence(values: pd.Series, column: str, path: Path, hint: str) -> np.ndarray:
    """Rows where a wide-layout species column is > 0 (NaN is absent).

    DataError for a column that holds no species values (see the module docstring's rule).
    """
    if pd.api.types.is_bool_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        return np.flatnonzero(values.fillna(False).to_numpy(dtype=bool))
    dtype = values.dtype
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    ):
        raise DataError(
            f"column '{column}' of wide table '{path}' holds dates or times ({dtype}), not "
            f"species values: {hint}"
        )
    if pd.api.types.is_numeric_dtype(values):
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        array = _numeric(values, column, path, "species", hint)
    known = array[~np.isnan(array)]
    bad = known[(known < 0) | np.isinf(known)]
    if len(bad):
        raise DataError(
            f"column '{column}' of wide table '{path}' has {len(bad)} negative or infinite values "
            f"(e.g. {bad[0]:g}): a species value is a count, a cover or 0/1, never below 0; {hint}"
        )
    fractional = known != np.floor(known)
    if fractional.any() and known.max() > 100:
        raise DataError(
            f"column '{column}' of wide table '{path}' has decimals (e.g. "
            f"{known[fractional][0]:g}) and values above 100 (up to {known.max():g}): it is "
            f"neither counts (whole numbers) nor a cover (0-100 %, or 0-1); {hint}"
        )
    return np.flatnonzero(array > 0)


def _wide_species(frame: pd.DataFrame, columns: list[str], n_plots: int, path: Path
                  ) -> tuple[list[np.ndarray], list[str]]:
    """The rows where each species column is present, and each column's species name."""
    unnamed = [c for c in columns if _UNNAMED.fullmatch(c)]
    if unnamed:
        where = ", ".join(f"{frame.columns.get_loc(c) + 1} ({c!r})" for c in unnamed[:5])
        raise DataError(
            f"wide table '{path}' has unnamed columns (number {where}), which would become species; "
            "an 'Unnamed: 0' column is usually a pandas index written with the table: drop it "
            "(write the table with index=False), or name it and declare it with --info-columns "
            f"(info_columns=[{unnamed[0]!r}]) or --predictor-columns"
        )
    hint = (
        "in the wide layout every column not declared as plot, coordinate, predictor or info "
        "column is a species column of counts, cover or 0/1; if it is a predictor, name it in "
        "predictor_columns / --predictor-columns (it must then be numeric), if it describes plots "
        "(a date, a name, a label) in info_columns / --info-columns, otherwise drop it from the "
        "table"
    )
    # one pass per species column (never a plots x species float matrix)
    hits = [_presence(frame[c], c, path, hint) for c in columns]
    names = canonical_species(columns, [len(h) for h in hits], what=f"columns of '{path.name}'")
    if n_plots >= 20:
        everywhere = [c for c, h in zip(columns, hits, strict=True) if len(h) >= 0.99 * n_plots]
        if everywhere:
            logger.warning(
                "wide table '%s': column(s) %s are > 0 in at least 99%% of the %d plots: they look like "
                "an id or a predictor, not species; if so, %s", path.name, _cut(everywhere), n_plots,
                _DECLARE,
            )
    logger.info("wide table '%s': %d columns became species: %s (%s)", path.name, len(columns),
                _cut(columns), _DECLARE)
    return hits, [str(n) for n in names]


def _cut(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _occurrences(
    plot_ids: np.ndarray, plot_index: np.ndarray, species: np.ndarray | pd.Series
) -> pd.DataFrame:
    """Unique (plot, species) pairs ordered by plot (``plot_index``) then species name."""
    codes, names = pd.factorize(pd.Series(species, dtype="str"), sort=True)
    key = np.sort(plot_index.astype(np.int64) * max(len(names), 1) + codes)
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key  # sorted unique, fast
    categories = pd.Index(names, dtype="str")
    return pd.DataFrame(
        {
            "plot_id": plot_ids[key // max(len(names), 1)],
            "species": pd.Categorical.from_codes(key % max(len(names), 1), categories=categories),
        }
    ).astype({"species": "str"})


def load_presence_table(
    path: str | Path,
    *,
    layout: str = "long",
    plot_column: str = "plot_id",
    species_column: str = "species",
    lon_column: str = "lon",
    lat_column: str = "lat",
    predictor_columns: Sequence[str] | None = None,
    info_columns: Sequence[str] | None = None,
    presence_column: str | None = None,
    min_plots: int = 20,
    sep: str | None = None,
) -> PlotData:
    """Load a presence/absence table in the long or wide layout (see the module docstring).

    Args:
        path: ``.csv``, ``.tsv``, ``.txt`` (optionally compressed) or ``.parquet`` file.
        layout: ``"long"`` (one row per plot and species) or ``"wide"`` (one row per plot, one
            column per species).
        plot_column: plot id column; ids are kept as given (int64 when every id is an integer,
            else text).
        species_column: species name column (long layout only).
        lon_column: WGS84 longitude column (degrees).
        lat_column: WGS84 latitude column (degrees).
        predictor_columns: numeric plot-level predictor columns to keep (float64; infinite
            values become NaN). ``None``: none.
        info_columns: columns describing plots that are not predictors (a split label, a year,
            a survey name), kept as they are in ``plots`` and listed in ``info_columns``; usable
            by the workspace's split options. ``None``: none.
        presence_column: long layout only: column of 0/1 or counts; rows with 0 are absences.
            ``None``: every row is a presence.
        min_plots: keep species present in MORE than this many distinct plots.
        sep: field separator of a text file (one character, or ``"tab"``); ``None`` takes it
            from the extension (``.txt``: sniffed from the header line).

    Returns:
        PlotData with ``plots`` (``plot_id``, ``lon``, ``lat``, predictors; one row per plot in
        order of first appearance) and ``occurrences`` (unique ``plot_id``/``species`` presences,
        ordered by plot then species name).

    Raises:
        DataError: unreadable, truncated or corrupt file, unknown layout, duplicated column
            names, missing or non-numeric columns, plots whose rows disagree, invalid or swapped
            coordinates, wide columns that are no species (module docstring), no species passing
            ``min_plots``.
        DependencyNotFoundError: a ``.zst`` file without the ``zstandard`` package.
    """
    path = Path(path)
    if layout not in LAYOUTS:
        raise DataError(f"unknown table layout {layout!r}: choose one of {list(LAYOUTS)}")
    predictors = [] if predictor_columns is None else list(predictor_columns)
    if len(set(predictors)) != len(predictors):
        dupes = sorted({p for p in predictors if predictors.count(p) > 1})
        raise DataError(f"predictor column(s) {dupes} named twice: name each column once")
    info = [] if info_columns is None else list(dict.fromkeys(info_columns))
    both = sorted(set(info) & set(predictors))
    if both:
        raise DataError(f"column(s) {both} are named as predictor and as info columns: a column is one or the other")
    for name, role in ((plot_column, "plot_id"), (lon_column, "lon"), (lat_column, "lat")):
        if role in predictors or (role == "plot_id" and name in predictors):
            raise DataError(
                f"predictor column '{role}' would clash with the output's '{role}' column: "
                "rename it"
            )
    if layout == "wide" and presence_column is not None:
        raise DataError(
            "presence_column applies to the long layout only: leave it out for wide tables"
        )

    text_columns = [plot_column] + ([species_column] if layout == "long" else [])
    frame = read_table(path, sep=sep, text_columns=text_columns)
    frame.columns = [str(c) for c in frame.columns]
    _check_unique(list(frame.columns), path)
    base = [plot_column, lon_column, lat_column]
    if layout == "long":
        needed = (
            base + [species_column] + ([presence_column] if presence_column else []) + predictors + info
        )
    else:
        needed = base + predictors + info
    _check_columns(frame, list(dict.fromkeys(needed)), path)
    if frame.empty:
        raise DataError(f"'{path}' has no rows: it must list at least one plot")

    table = pd.DataFrame(
        {
            "plot_id": _plot_ids(frame[plot_column], path, plot_column),
            "lon": _numeric(frame[lon_column], lon_column, path, "longitude"),
            "lat": _numeric(frame[lat_column], lat_column, path, "latitude"),
        }
    )
    table = pd.concat([table, _predictors(frame, predictors, path), frame[info]], axis=1)
    check_coordinates(table["lon"], table["lat"], what=f"rows of '{path.name}'")

    if layout == "long":
        codes = pd.factorize(table["plot_id"])[0]
        first = _check_constant(table, codes, ["lon", "lat", *predictors], path)
        for column in info:
            varying = table.groupby(codes)[column].nunique(dropna=False) > 1
            if varying.any():
                plot = table["plot_id"].iloc[first[np.flatnonzero(varying.to_numpy())[0]]]
                raise DataError(
                    f"{int(varying.sum())} plots of '{path}' have different '{column}' values on different "
                    f"rows (e.g. plot {plot!r}): an info column must hold one value per plot"
                )
        plots = table.iloc[first].reset_index(drop=True)
        species = normalise_species(frame[species_column], what=f"'{path.name}'")
        present = np.array(species.notna(), dtype=bool)
        if presence_column is not None:
            amount = _numeric(frame[presence_column], presence_column, path, "presence")
            if np.isnan(amount).any() or (amount < 0).any():
                n_bad = int((np.isnan(amount) | (amount < 0)).sum())
                raise DataError(
                    f"{n_bad} rows of '{path}' have an empty or negative '{presence_column}': "
                    "presence values must be 0 (absent), 1 or a count"
                )
            present &= amount > 0
        occurrences = _occurrences(
            plots["plot_id"].to_numpy(), codes[present], species.to_numpy()[present]
        )
    else:
        duplicated = table["plot_id"].duplicated()
        if duplicated.any():
            raise DataError(
                f"{int(duplicated.sum())} plot ids of wide table '{path}' appear on several rows "
                f"(e.g. {table.loc[duplicated, 'plot_id'].tolist()[0]!r}): a wide table has one "
                "row per plot; merge them, or use layout='long'"
            )
        plots = table.reset_index(drop=True)
        species_columns = [c for c in frame.columns if c not in set(base) | set(predictors) | set(info)]
        if not species_columns:
            raise DataError(
                f"wide table '{path}' has no species columns (every column is a plot, coordinate "
                "or predictor column): add one column per species, or use layout='long'"
            )
        hits, species_names = _wide_species(frame, species_columns, len(plots), path)
        rows = np.concatenate(hits) if hits else np.empty(0, dtype=np.int64)
        names = np.repeat(np.asarray(species_names, dtype=object), [len(h) for h in hits])
        occurrences = _occurrences(plots["plot_id"].to_numpy(), rows, names)

    occurrences = filter_species(occurrences, min_plots=min_plots)
    logger.info(
        "%s: %d plots, %d species in more than %d plots, %d presences",
        path.name,
        len(plots),
        occurrences["species"].nunique(),
        min_plots,
        len(occurrences),
    )
    return PlotData(plots=plots, occurrences=occurrences, source=f"{layout} table '{path}'",
                    info_columns=tuple(info))
