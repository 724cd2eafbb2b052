"""The predictor catalogue: names, groups, units and sources of MaskSDM's predictors.

The default set is the 61 tabular predictors of the MaskSDM paper (Zbinden et al. 2025), in the
paper's input order and grouped as in its Shapley analysis:

============  =====================================================================  ==========
group         predictors                                                              source
============  =====================================================================  ==========
WorldClim     ``bio_1`` .. ``bio_19``                                                  raster
SoilGrids     ``ORCDRC PHIHOX CECSOL BDTICM CLYPPT SLTPPT SNDPPT BLDFIE``              raster
Location      ``Longitude Latitude``                                                   plot table
Topography    ``Elevation Slope Aspect``                                               raster
Metadata      ``Location_uncertainty Releve_area`` + 11 ``Cover_*`` + 7 ``Height_*``   plot table
Human         ``HFP2009 Built2009 Croplands2005 Lights2009 Navwater2009 Pasture2009``  raster
              ``Popdensity2010 Railways Roads``
============  =====================================================================  ==========

Rasters are matched to predictors by file stem (``bio_1.tif`` is ``bio_1``) or band description; a
raster whose name is not in the catalogue becomes a predictor of the group named by its parent folder.
Names are matched to the catalogue tolerantly (:func:`catalogue_name`): ``bio3``, ``BIO_03`` and
``wc2.1_10m_bio_3`` are all ``bio_3``, ``phihox`` is ``PHIHOX``.

Data sources to cite: WorldClim 2.1 (Fick & Hijmans 2017, Int. J. Climatol. 37:4302-4315);
SoilGrids 250 m (Hengl et al. 2017, PLoS ONE 12:e0169748); SRTM topography; the global human
footprint (Venter et al. 2016, Sci. Data 3:160067); sPlotOpen plot metadata (Sabatini et al. 2021,
Global Ecol. Biogeogr. 30:1740-1764).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from masksdm.errors import DataError

__all__ = [
    "normalise",
    "normalise_inputs",
    "EMBEDDING",
    "GROUPS",
    "Predictor",
    "UNGROUPED",
    "catalogue_entry",
    "catalogue_name",
    "check_input_order",
    "column_mask",
    "input_widths",
    "level_codes",
    "default_predictors",
    "group_of",
    "predictor_groups",
    "resolve_subset",
    "subset_mask",
]


@dataclass(frozen=True)
class Predictor:
    """One model input: a tabular predictor, or an embedding vector (one token of ``width`` values).

    Attributes:
        name: column name in the workspace and, for rasters, the raster file stem.
        group: predictor group used for subsets and Shapley values.
        source: ``"raster"`` (extracted at plot coordinates), ``"table"`` (a plot-table column) or
            ``"embedding"`` (a vector per plot in ``embeddings/<name>.parquet``, per map cell in a
            ``<name>.tif`` raster of ``width`` bands).
        unit: physical unit, for documentation and plots.
        width: number of values: 1 for a tabular predictor, the vector length for an embedding.
        categorical: the values are class codes (an ecoregion, a land-cover class): the model
            gives each class its own learnt token instead of reading the value as a number.
        levels: the class codes seen in the training plots, sorted (set by the workspace); a
            code outside them is unknown and masked like a missing value (:func:`level_codes`).
    """

    name: str
    group: str
    source: str = "raster"
    unit: str = ""
    width: int = 1
    categorical: bool = False
    levels: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(float(v) for v in self.levels))  # a JSON list too
        if self.levels and not self.categorical:
            raise DataError(f"predictor {self.name!r} has levels but is not categorical")

    @property
    def is_embedding(self) -> bool:
        return self.source == EMBEDDING

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.categorical:  # the files of continuous predictors stay as they were
            del out["categorical"], out["levels"]
        return out


#: ``Predictor.source`` of embedding inputs; they always follow the tabular predictors.
EMBEDDING = "embedding"


def input_widths(predictors: Sequence[Predictor]) -> np.ndarray:
    """(T,) number of input columns of each predictor (1, or an embedding's width)."""
    return np.array([p.width for p in predictors], dtype=np.int64)


def column_mask(mask: np.ndarray, predictors: Sequence[Predictor]) -> np.ndarray:
    """Expand a per-predictor mask (..., T) to the input columns (..., sum of widths).

    >>> ps = [Predictor("bio_1", "WorldClim"), Predictor("s2", "Satellite", "embedding", width=3)]
    >>> column_mask(np.array([False, True]), ps)
    array([False,  True,  True,  True])
    """
    return np.repeat(np.asarray(mask), input_widths(predictors), axis=-1)


def check_input_order(predictors: Sequence[Predictor]) -> None:
    """Embeddings must follow every tabular predictor (the model's token order)."""
    kinds = [p.is_embedding for p in predictors]
    if kinds != sorted(kinds):
        raise DataError(
            "embedding inputs must come after every tabular predictor, got the order "
            f"{[p.name for p in predictors]}"
        )


_BIO_UNITS = {
    1: "degC", 2: "degC", 3: "%", 4: "degC*100", 5: "degC", 6: "degC", 7: "degC", 8: "degC",
    9: "degC", 10: "degC", 11: "degC", 12: "mm", 13: "mm", 14: "mm", 15: "%", 16: "mm",
    17: "mm", 18: "mm", 19: "mm",
}
_SOIL = {
    "ORCDRC": "g/kg", "PHIHOX": "pH*10", "CECSOL": "cmol/kg", "BDTICM": "cm",
    "CLYPPT": "%", "SLTPPT": "%", "SNDPPT": "%", "BLDFIE": "kg/m3",
}
_COVER = [
    "Cover_total", "Cover_tree_layer", "Cover_shrub_layer", "Cover_herb_layer", "Cover_moss_layer",
    "Cover_lichen_layer", "Cover_algae_layer", "Cover_litter_layer", "Cover_bare_rocks",
    "Cover_cryptogams", "Cover_bare_soil",
]
_HEIGHT = [
    "Height_trees_highest", "Height_trees_lowest", "Height_shrubs_highest", "Height_shrubs_lowest",
    "Height_herbs_average", "Height_herbs_lowest", "Height_herbs_highest",
]
_HUMAN = [
    "HFP2009", "Built2009", "Croplands2005", "Lights2009", "Navwater2009", "Pasture2009",
    "Popdensity2010", "Railways", "Roads",
]

#: Predictor groups in the paper's order.
GROUPS: tuple[str, ...] = ("WorldClim", "SoilGrids", "Location", "Topography", "Metadata", "Human")


def default_predictors() -> list[Predictor]:
    """The 61 predictors of the MaskSDM paper, in its input order."""
    out = [Predictor(f"bio_{i}", "WorldClim", "raster", _BIO_UNITS[i]) for i in range(1, 20)]
    out += [Predictor(name, "SoilGrids", "raster", unit) for name, unit in _SOIL.items()]
    out += [Predictor("Longitude", "Location", "table", "deg"), Predictor("Latitude", "Location", "table", "deg")]
    out += [
        Predictor("Elevation", "Topography", "raster", "m"),
        Predictor("Slope", "Topography", "raster", "deg"),
        Predictor("Aspect", "Topography", "raster", "deg"),
    ]
    out += [
        Predictor("Location_uncertainty", "Metadata", "table", "m"),
        Predictor("Releve_area", "Metadata", "table", "m2"),
    ]
    out += [Predictor(name, "Metadata", "table", "%") for name in _COVER]
    out += [Predictor(name, "Metadata", "table", "m" if "herbs" not in name else "cm") for name in _HEIGHT]
    out += [Predictor(name, "Human", "raster", "") for name in _HUMAN]
    return out


_CATALOGUE = {p.name: p for p in default_predictors()}

#: Group of a table column that no catalogue or user names a group for.
UNGROUPED = "Other"


# Catalogue names by their spelling key (lower case, separators ``-``, ``.`` and spaces as ``_``).
_CATALOGUE_KEYS = {re.sub(r"[\s.\-]", "_", name).lower(): name for name in _CATALOGUE}
# A WorldClim bioclimatic variable 1..19 at the end of a name, after its start or a separator.
_BIOCLIM = re.compile(r"(?:.*[\s_.\-])?bio[\s_.\-]?0*([1-9]|1[0-9])", re.IGNORECASE)


def catalogue_name(name: str) -> str | None:
    """The catalogue predictor that ``name`` spells, or None.

    The rule, first match wins: the exact name; the same name ignoring case, with ``-``, ``.`` and
    spaces read as ``_`` (``phihox``, ``Releve area``); a WorldClim bioclimatic variable: ``bio``,
    an optional separator, then 1..19 with optional leading zeros, at the start of the name or
    after a separator (``bio3``, ``BIO_03``, ``wc2.1_10m_bio_3``, ``CHELSA_bio3`` are ``bio_3``).

    >>> [catalogue_name(n) for n in ("bio_3", "bio3", "BIO_03", "wc2.1_10m_bio_3", "phihox", "bio_20", "ph")]
    ['bio_3', 'bio_3', 'bio_3', 'bio_3', 'PHIHOX', None, None]
    """
    if name in _CATALOGUE:
        return name
    key = re.sub(r"[\s.\-]", "_", name.strip()).lower()
    if key in _CATALOGUE_KEYS:
        return _CATALOGUE_KEYS[key]
    match = _BIOCLIM.fullmatch(name.strip())
    return f"bio_{int(match.group(1))}" if match else None


def group_of(name: str, *, fallback: str = UNGROUPED) -> str:
    """Group of a predictor name from the catalogue (:func:`catalogue_name`), or ``fallback``."""
    known = catalogue_entry(name)
    return known.group if known else fallback


def catalogue_entry(name: str) -> Predictor | None:
    """The catalogue's entry for ``name`` or a spelling of it (:func:`catalogue_name`), if any."""
    known = catalogue_name(name)
    return None if known is None else _CATALOGUE[known]


def predictor_groups(predictors: Sequence[Predictor]) -> dict[str, list[str]]:
    """Map each group to its predictor names, groups in first-seen order."""
    groups: dict[str, list[str]] = {}
    for p in predictors:
        groups.setdefault(p.group, []).append(p.name)
    return groups


def resolve_subset(names: Iterable[str] | None, predictors: Sequence[Predictor]) -> list[int]:
    """Indices of the predictors named by ``names`` (predictor or group names, or ``"all"``).

    ``None`` and ``["all"]`` select every predictor; ``["none"]`` selects none.

    >>> ps = [Predictor("bio_1", "WorldClim"), Predictor("Elevation", "Topography")]
    >>> resolve_subset(["Topography"], ps)
    [1]
    >>> resolve_subset(["bio_1", "Elevation"], ps)
    [0, 1]
    """
    if names is None:
        return list(range(len(predictors)))
    names = list(names)
    if names == ["all"]:
        return list(range(len(predictors)))
    if names in (["none"], []):
        return []
    index = {p.name: i for i, p in enumerate(predictors)}
    groups = predictor_groups(predictors)
    chosen: set[int] = set()
    for name in names:
        if name in index:
            chosen.add(index[name])
        elif name in groups:
            chosen.update(index[n] for n in groups[name])
        else:
            close = difflib.get_close_matches(name, [*groups, *index], n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise DataError(
                f"unknown predictor or group {name!r}{hint}: choose among groups {sorted(groups)} "
                f"or predictors such as {list(index)[:5]}"
            )
    return sorted(chosen)


def subset_mask(names: Iterable[str] | None, predictors: Sequence[Predictor]) -> np.ndarray:
    """Boolean (P,) mask of the predictors named by ``names`` (see :func:`resolve_subset`).

    >>> subset_mask(["WorldClim"], [Predictor("bio_1", "WorldClim"), Predictor("Slope", "Topography")])
    array([ True, False])
    """
    mask = np.zeros(len(predictors), dtype=bool)
    mask[resolve_subset(names, predictors)] = True
    return mask


_NORM_EPS = 1e-4  # as in the paper's z-scoring: (x - mean) / (std + 1e-4)


def normalise(x: np.ndarray, names: Sequence[str], stats: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """Z-score predictor columns ``names`` of ``x`` with training ``stats`` (name -> mean, std);
    NaN stays NaN (masked by the model)."""
    mean = np.array([stats[n]["mean"] for n in names])
    std = np.array([stats[n]["std"] for n in names])
    return ((np.asarray(x, dtype=np.float64) - mean) / (std + _NORM_EPS)).astype(np.float32)


def normalise_inputs(
    raw: np.ndarray, predictors: Sequence[Predictor], stats: Mapping[str, Mapping[str, float]]
) -> np.ndarray:
    """Model inputs (N, sum of widths) float32 from raw values: tabular predictors z-scored with
    ``stats``, categorical ones as their level index (:func:`level_codes`), embedding vectors as
    they are."""
    raw = np.asarray(raw)
    widths = input_widths(predictors)
    if raw.ndim != 2 or raw.shape[1] != widths.sum():
        raise DataError(
            f"raw inputs have shape {raw.shape}, expected (rows, {int(widths.sum())}): "
            f"{', '.join(p.name for p in predictors[:4])}, ... in this order"
        )
    scalar = np.repeat([not p.is_embedding for p in predictors], widths)
    if scalar.all():
        out = normalise(raw, [p.name for p in predictors], stats)
    else:
        out = raw.astype(np.float32)
        names = [p.name for p in predictors if not p.is_embedding]
        out[:, scalar] = normalise(raw[:, scalar], names, stats)
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    for p, start in zip(predictors, starts, strict=True):
        if p.categorical:  # class codes -> their index among the training levels
            out[:, start] = level_codes(raw[:, start], p.levels)
    return out


def level_codes(values: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Index (float32) of each value among the sorted ``levels``; NaN for a missing value or a
    class the training plots did not have (masked by the model).

    >>> level_codes(np.array([3.0, 12.0, np.nan, 5.0]), [3.0, 12.0])
    array([ 0.,  1., nan, nan], dtype=float32)
    """
    known = np.asarray(levels, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(known) == 0:
        return np.full(values.shape, np.nan, dtype=np.float32)
    index = np.clip(np.searchsorted(known, values), 0, len(known) - 1)
    return np.where(known[index] == values, index, np.nan).astype(np.float32)
