"""Load sPlotOpen vegetation plots as :class:`~masksdm.data.plotdata.PlotData`.

sPlotOpen (Sabatini F.M. et al. 2021, "sPlotOpen - An environmentally balanced, open-access,
global dataset of vegetation plots", Global Ecology and Biogeography 30:1740-1764,
https://doi.org/10.1111/geb.13346) is the plot data of the MaskSDM paper. Download it from the
iDiv Data Repository (dataset 3474, data doi 10.25829/idiv.3474-bb7k72; licence CC BY 4.0: cite
the paper and the data set, and the plot data sets you use, listed in ``sPlotOpen_metadata``).

File format (the archive's own, written by ``readr::write_delim``):

* Two files in one folder, found by pattern because downloads get a suffix:
  ``sPlotOpen_header*.txt`` (e.g. ``sPlotOpen_header(3).txt``, one row per plot, 47 columns) and
  ``sPlotOpen_DT*.txt`` (e.g. ``sPlotOpen_DT(2).txt``, one row per species record, 6 columns).
* Tab-separated, UTF-8, one header row, ``NA`` for missing values, logicals written
  ``TRUE``/``FALSE``, fields double-quoted only when needed.
* Key: ``PlotObservationID`` (integer) in both files.
* Header columns read here: ``PlotObservationID``, ``Longitude`` and ``Latitude`` (WGS84 degrees,
  EPSG:4326) and the plot-table predictors ``Location_uncertainty`` (m), ``Releve_area`` (m2),
  eleven ``Cover_*`` (%), ``Height_trees_*``/``Height_shrubs_*`` (m) and ``Height_herbs_*`` (cm).
  Every predictor is read as float64 (``Cover_algae_layer`` is almost all ``NA``, so readers that
  guess types from the first rows get it wrong).
* DT columns read here: ``PlotObservationID`` and ``Species`` (the resolved name; ``NA`` when it
  could not be resolved, such records are dropped). Names are cleaned as in every loader (Unicode
  NFC, whitespace stripped and collapsed; names differing only by case merged under the spelling
  with the most records, logged as a WARNING: :func:`~masksdm.data.plotdata.canonical_species`). Abundances are ignored: MaskSDM models
  presence/absence, and a plot's unlisted species are absent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from masksdm._io import atomic_path
from masksdm.data.plotdata import PlotData, check_coordinates, filter_species, normalise_species
from masksdm.data.predictors import default_predictors
from masksdm.errors import DataError

__all__ = [
    "DT_COLUMNS",
    "DT_PATTERN",
    "HEADER_COLUMNS",
    "HEADER_PATTERN",
    "default_table_predictors",
    "find_splotopen_files",
    "format_decimals",
    "format_logical",
    "load_splotopen",
    "with_missing",
    "write_splotopen_table",
]

logger = logging.getLogger(__name__)

#: Glob pattern of the plot (header) table; downloads are named e.g. ``sPlotOpen_header(3).txt``.
HEADER_PATTERN = "sPlotOpen_header*.txt"
#: Glob pattern of the species-by-plot table; downloads are named e.g. ``sPlotOpen_DT(2).txt``.
DT_PATTERN = "sPlotOpen_DT*.txt"

#: The 47 columns of ``sPlotOpen_header*.txt``, in file order.
HEADER_COLUMNS: tuple[str, ...] = (
    "PlotObservationID", "GIVD_ID", "Dataset", "Continent", "Country", "Biome", "Date_of_recording",
    "Latitude", "Longitude", "Location_uncertainty", "Releve_area", "Plant_recorded", "Elevation",
    "Aspect", "Slope", "is_forest", "ESY", "Naturalness", "Forest", "Shrubland", "Grassland",
    "Wetland", "Sparse_vegetation", "Cover_total", "Cover_tree_layer", "Cover_shrub_layer",
    "Cover_herb_layer", "Cover_moss_layer", "Cover_lichen_layer", "Cover_algae_layer",
    "Cover_litter_layer", "Cover_bare_rocks", "Cover_cryptogams", "Cover_bare_soil",
    "Height_trees_highest", "Height_trees_lowest", "Height_shrubs_highest", "Height_shrubs_lowest",
    "Height_herbs_average", "Height_herbs_lowest", "Height_herbs_highest", "SoilClim_PC1",
    "SoilClim_PC2", "Resample_1", "Resample_2", "Resample_3", "Resample_1_consensus",
)
#: The 6 columns of ``sPlotOpen_DT*.txt``, in file order.
DT_COLUMNS: tuple[str, ...] = (
    "PlotObservationID", "Species", "Original_species", "Original_abundance", "Abundance_scale",
    "Relative_cover",
)

_ID = "PlotObservationID"
# Logical columns of the header table: read as booleans, then 0/1 if used as predictors.
_LOGICAL = {
    "is_forest",
    "Forest",
    "Shrubland",
    "Grassland",
    "Wetland",
    "Sparse_vegetation",
    "Resample_1",
    "Resample_2",
    "Resample_3",
    "Resample_1_consensus",
}
_HINT = "pass --splotopen DIR, the folder holding the sPlotOpen header and DT files"


def default_table_predictors() -> list[str]:
    """Plot-table predictors read from the header by default, in the paper's order.

    ``Longitude`` and ``Latitude`` (group "Location"), then ``Location_uncertainty``,
    ``Releve_area``, the 11 ``Cover_*`` and the 7 ``Height_*`` columns (group "Metadata").
    """
    return [p.name for p in default_predictors() if p.source == "table"]


def find_splotopen_files(directory: str | Path) -> tuple[Path, Path]:
    """Return the ``(header, DT)`` files of the sPlotOpen download in ``directory``.

    Raises:
        DataError: when ``directory`` is not a folder, or holds no file or several files
            matching :data:`HEADER_PATTERN` or :data:`DT_PATTERN`.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(
            f"sPlotOpen folder '{directory}' does not exist or is not a folder: {_HINT}"
        )
    found = []
    for what, pattern in (("header table", HEADER_PATTERN), ("DT (species) table", DT_PATTERN)):
        matches = sorted(p for p in directory.glob(pattern) if p.is_file())
        if not matches:
            raise DataError(f"no sPlotOpen {what} ({pattern}) in '{directory}': {_HINT}")
        if len(matches) > 1:
            names = ", ".join(f"'{p.name}'" for p in matches)
            raise DataError(
                f"several sPlotOpen {what}s ({pattern}) in '{directory}': {names}; keep only one "
                "of them in that folder (e.g. the newest download)"
            )
        found.append(matches[0])
    return found[0], found[1]


def _read_columns(path: Path) -> list[str]:
    """Column names of a tab-separated file (its first line)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            first = fh.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot read '{path}' ({exc}): it must be a UTF-8 sPlotOpen text file"
        ) from exc
    if not first:
        raise DataError(f"'{path}' is empty: download the sPlotOpen file again")
    return [c.strip().strip('"') for c in first.split("\t")]


def _read_table(path: Path, columns: dict[str, pa.DataType], all_columns: list[str]) -> pa.Table:
    """Read ``columns`` (name -> Arrow type) of an sPlotOpen text file with the Arrow CSV reader."""
    convert = pacsv.ConvertOptions(
        column_types=columns,
        include_columns=list(columns),
        null_values=["NA", ""],
        true_values=["TRUE"],
        false_values=["FALSE"],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    error: Exception | None = None
    # Fields with embedded newlines are legal but rare; the fast parser does not allow them,
    # so retry with them allowed only when the fast parse fails.
    for newlines in (False, True):
        parse = pacsv.ParseOptions(delimiter="\t", quote_char='"', newlines_in_values=newlines)
        read = pacsv.ReadOptions(column_names=all_columns, skip_rows=1)  # the names as _read_columns cleaned them
        try:
            return pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, pa.ArrowKeyError) as exc:
            error = exc
    message = str(error)
    match = re.search(r"CSV column #(\d+)", message)
    if match and int(match.group(1)) < len(all_columns):
        column = all_columns[int(match.group(1))]
        raise DataError(
            f"column '{column}' of '{path}' has a value that is not "
            f"{_describe(columns.get(column))} ({message.splitlines()[0]}): fix the file or drop "
            "that column from the predictors"
        ) from error
    raise DataError(
        f"cannot parse '{path}' as a tab-separated sPlotOpen table ({message.splitlines()[0]}): "
        "download it again"
    ) from error


def _describe(kind: pa.DataType | None) -> str:
    if kind is None:
        return "valid"
    if pa.types.is_integer(kind):
        return "an integer"
    if pa.types.is_floating(kind):
        return "a number or NA"
    if pa.types.is_boolean(kind):
        return "TRUE, FALSE or NA"
    return "valid text"


def _require(columns: list[str], needed: Sequence[str], path: Path) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"'{path}' lacks required column(s) {missing} (it has {columns[:12]}"
            f"{' ...' if len(columns) > 12 else ''}): it is not an sPlotOpen "
            f"{'header' if 'Longitude' in needed else 'DT'} file; {_HINT}"
        )


def load_splotopen(
    directory: str | Path,
    *,
    min_plots: int = 20,
    predictor_columns: Sequence[str] | None = None,
) -> PlotData:
    """Load the sPlotOpen plots and species in ``directory``.

    See the module docstring for the file format. Cite sPlotOpen as Sabatini F.M. et al. (2021)
    sPlotOpen - An environmentally balanced, open-access, global dataset of vegetation plots.
    Global Ecology and Biogeography 30:1740-1764; data doi 10.25829/idiv.3474-bb7k72 (CC BY 4.0).

    Args:
        directory: folder holding one ``sPlotOpen_header*.txt`` and one ``sPlotOpen_DT*.txt``.
        min_plots: keep species seen in MORE than this many distinct plots (the paper uses 20).
        predictor_columns: header columns to keep as plot-table predictors (float64; logical
            columns become 0/1). ``None`` keeps :func:`default_table_predictors`. Columns absent
            from the file are filled with NaN (MaskSDM masks missing values).

    Returns:
        PlotData whose ``plots`` has ``plot_id`` (int64, the ``PlotObservationID``), ``lon``,
        ``lat`` and one column per predictor (``Longitude``/``Latitude`` included, as copies), in
        the header's row order; ``occurrences`` holds the unique (``plot_id``, ``species``) pairs
        of the species kept by the ``min_plots`` filter. Plots without any kept species stay in
        ``plots`` (every species absent).

    Raises:
        DataError: missing, duplicated or malformed files; missing ``PlotObservationID``,
            ``Longitude``, ``Latitude`` or ``Species`` columns; duplicated plot ids; DT plots
            absent from the header; invalid coordinates; no species passing ``min_plots``.
    """
    header_path, dt_path = find_splotopen_files(directory)
    predictors = (
        default_table_predictors() if predictor_columns is None else list(predictor_columns)
    )
    if len(set(predictors)) != len(predictors):
        dupes = sorted({p for p in predictors if predictors.count(p) > 1})
        raise DataError(f"predictor column(s) {dupes} named twice: name each column once")
    reserved = [p for p in predictors if p in ("plot_id", "lon", "lat", _ID)]
    if reserved:
        raise DataError(
            f"{reserved} cannot be predictor columns (they are the plot key/coordinates): "
            "use Longitude/Latitude for the coordinates as predictors"
        )

    # --- header (plots) -------------------------------------------------------------------------
    header_columns = _read_columns(header_path)
    _require(header_columns, [_ID, "Longitude", "Latitude"], header_path)
    present = [p for p in predictors if p in header_columns]
    absent = [p for p in predictors if p not in header_columns]
    if absent:
        logger.info(
            "sPlotOpen header '%s' has no column(s) %s: those predictors are missing (NaN) for "
            "every plot",
            header_path.name,
            absent,
        )
    types: dict[str, pa.DataType] = {
        _ID: pa.int64(),
        "Longitude": pa.float64(),
        "Latitude": pa.float64(),
    }
    for name in present:
        types[name] = pa.bool_() if name in _LOGICAL else pa.float64()
    header = _read_table(header_path, types, header_columns)

    ids = header.column(_ID)
    if ids.null_count:
        raise DataError(
            f"{ids.null_count} rows of '{header_path}' have no {_ID}: every plot needs its id; "
            "download the file again"
        )
    plot_id = ids.to_numpy().astype(np.int64, copy=False)
    columns: dict[str, np.ndarray] = {
        "plot_id": plot_id,
        "lon": header.column("Longitude").to_numpy(zero_copy_only=False).astype(np.float64),
        "lat": header.column("Latitude").to_numpy(zero_copy_only=False).astype(np.float64),
    }
    for name in predictors:
        if name in header_columns:
            column = header.column(name)
            if pa.types.is_boolean(column.type):
                column = column.cast(pa.float64())
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            values[~np.isfinite(values)] = np.nan
            columns[name] = values
        else:
            columns[name] = np.full(len(plot_id), np.nan)
    plots = pd.DataFrame(columns)

    duplicated = plots["plot_id"].duplicated()
    if duplicated.any():
        examples = plots.loc[duplicated, "plot_id"].unique()[:5].tolist()
        raise DataError(
            f"{int(duplicated.sum())} {_ID} values of '{header_path}' are duplicated (e.g. "
            f"{examples}): each plot must appear once; remove the duplicated rows"
        )
    check_coordinates(plots["lon"], plots["lat"], what=f"plots of '{header_path.name}'")

    # --- DT (species records) -------------------------------------------------------------------
    dt_columns = _read_columns(dt_path)
    _require(dt_columns, [_ID, "Species"], dt_path)
    dt_types = {_ID: pa.int64(), "Species": pa.dictionary(pa.int32(), pa.string())}
    dt = _read_table(dt_path, dt_types, dt_columns)
    dt_ids = dt.column(_ID)
    if dt_ids.null_count:
        raise DataError(
            f"{dt_ids.null_count} rows of '{dt_path}' have no {_ID}: every species record needs "
            "its plot id; download the file again"
        )
    records = pd.DataFrame(
        {
            "plot_id": dt_ids.to_numpy().astype(np.int64, copy=False),
            "species": normalise_species(dt.column("Species").to_pandas(), what=f"'{dt_path.name}'"),
        }
    )
    n_unresolved = int(records["species"].isna().sum())
    if n_unresolved:
        logger.info("dropped %d sPlotOpen species records with Species = NA (or empty)", n_unresolved)
        records = records[records["species"].notna()]
    records = records.drop_duplicates(ignore_index=True)

    unknown = ~records["plot_id"].isin(plots["plot_id"])
    if unknown.any():
        missing_ids = records.loc[unknown, "plot_id"].unique()
        raise DataError(
            f"{len(missing_ids)} plots of '{dt_path.name}' are not in '{header_path.name}' (e.g. "
            f"{missing_ids[:5].tolist()}): the two files come from different sPlotOpen versions; "
            "download the header and DT files of the same version"
        )

    occurrences = filter_species(records, min_plots=min_plots)
    occurrences["species"] = occurrences["species"].astype("str")
    logger.info(
        "sPlotOpen: %d plots, %d species in more than %d plots, %d presences",
        len(plots),
        occurrences["species"].nunique(),
        min_plots,
        len(occurrences),
    )
    return PlotData(
        plots=plots,
        occurrences=occurrences,
        source=f"sPlotOpen ('{header_path.name}', '{dt_path.name}' in '{Path(directory)}')",
    )


# --- writing the format (the virtual world writes its plots this way) ---------------------------

def format_decimals(values: np.ndarray, decimals: int) -> np.ndarray:
    """Shortest fixed-point text of each value with at most ``decimals`` decimals; NaN -> None."""
    v = np.round(np.asarray(values, dtype=np.float64), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    text = np.char.mod(f"%.{decimals}f", np.nan_to_num(v))
    if decimals:
        text = np.char.rstrip(np.char.rstrip(text, "0"), ".")
    return with_missing(text, np.isnan(v))


def with_missing(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """An object array with None (written as NA) where ``missing``."""
    out = np.asarray(values).astype(object)
    out[missing] = None
    return out


def format_logical(values: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """TRUE / FALSE text of booleans, None (written as NA) where ``missing``."""
    missing = np.zeros(len(values), dtype=bool) if missing is None else missing
    return with_missing(np.where(values, "TRUE", "FALSE"), missing)


def write_splotopen_table(path: str | Path, frames: Iterable[pd.DataFrame]) -> None:
    """Write a table as sPlotOpen ships it: tab-separated UTF-8, ``NA`` for missing values, ``\\n``
    line ends, the header line once; ``frames`` are consecutive row chunks with the same columns.
    The file appears atomically (it is never seen half-written)."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        for i, frame in enumerate(frames):
            frame.to_csv(fh, sep="\t", na_rep="NA", index=False, lineterminator="\n", header=i == 0)
