"""Presence-only records of the virtual world, written as a GBIF Darwin Core Archive.

A GBIF download is where most species distribution models start. So that the presence-only path
(``masksdm prepare --occurrences``) can be tried, tested and shown without a download,
:func:`write_occurrence_archive` turns the presences of a simulated world's plots into occurrence
records and writes them in GBIF's layout: a ``.zip`` holding ``meta.xml`` (the Darwin Core text
descriptor), ``occurrence.txt`` (tab-separated, one record per row, GBIF's column names) and
``eml.xml``. Records sit where the plots are, so they carry the plots' sampling bias, as real
records do; coordinates are jittered within their stated uncertainty. A few records of the usual
kinds of error (zero, swapped and sea coordinates, fossils, a huge uncertainty, an absence record)
are planted, so that the cleaning report has something to count. It is simulated data: no real
observation is in it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from masksdm._io import atomic_path, check_writable
from masksdm.data.splotopen import load_splotopen

__all__ = ["DWC_TERMS", "write_occurrence_archive"]

#: The Darwin Core terms written, in column order after ``gbifID``.
DWC_TERMS = ("species", "decimalLongitude", "decimalLatitude", "coordinateUncertaintyInMeters", "basisOfRecord",
             "year", "occurrenceStatus", "countryCode")

_DWC = "http://rs.tdwg.org/dwc/terms/"


def _meta_xml() -> str:
    fields = "\n".join(f'    <field index="{i + 1}" term="{_DWC}{t}"/>' for i, t in enumerate(DWC_TERMS))
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="eml.xml">\n'
        '  <core encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" '
        f'ignoreHeaderLines="1" rowType="{_DWC}Occurrence">\n'
        "    <files><location>occurrence.txt</location></files>\n"
        '    <id index="0"/>\n'
        f"{fields}\n  </core>\n</archive>\n"
    )


def write_occurrence_archive(
    splotopen_dir: str | Path,
    out: str | Path,
    *,
    n_species: int = 10,
    max_records: int = 400,
    seed: int = 0,
    planted: bool = True,
    force: bool = False,
) -> Path:
    """Write the presences of a simulated world as a GBIF Darwin Core Archive (module docstring).

    Args:
        splotopen_dir: the world's sPlotOpen folder (``WorldPaths.splotopen_dir``).
        out: the ``.zip`` to write.
        n_species: the most frequent species of the world become the records' species.
        max_records: at most this many records per species (a seeded sample of its plots).
        seed: seed of the sample, the jitter and the planted records.
        planted: add records of the usual errors (zero, swapped and sea coordinates, a fossil,
            a large uncertainty, an absence record).
        force: overwrite ``out``.

    Returns:
        The archive's path.
    """
    out = check_writable(Path(out), force=force)
    data = load_splotopen(splotopen_dir, min_plots=0)
    plots = data.plots.set_index("plot_id")
    counts = data.occurrences["species"].value_counts()
    chosen = counts.index[: max(1, n_species)]
    rng = np.random.default_rng(seed)
    frames = []
    for name in chosen:
        ids = data.occurrences.loc[data.occurrences["species"] == name, "plot_id"].to_numpy()
        ids = rng.choice(ids, size=min(len(ids), max_records), replace=False)
        n = len(ids)
        uncertainty = rng.choice([10.0, 30.0, 100.0, 250.0, np.nan], n)
        shift = np.nan_to_num(uncertainty, nan=50.0) / 111_320.0 * rng.uniform(-0.7, 0.7, (2, n))
        frames.append(pd.DataFrame({
            "species": name, "decimalLongitude": plots.loc[ids, "lon"].to_numpy() + shift[0],
            "decimalLatitude": plots.loc[ids, "lat"].to_numpy() + shift[1],
            "coordinateUncertaintyInMeters": uncertainty,
            "basisOfRecord": rng.choice(["HUMAN_OBSERVATION", "PRESERVED_SPECIMEN", "OBSERVATION"], n, p=[0.7, 0.2, 0.1]),
            "year": rng.integers(1970, 2025, n), "occurrenceStatus": "PRESENT", "countryCode": "",
        }))
    records = pd.concat(frames, ignore_index=True)
    if planted:
        first = records.iloc[0]
        lon, lat = float(first["decimalLongitude"]), float(first["decimalLatitude"])
        bad = pd.DataFrame({
            "species": chosen[0],
            "decimalLongitude": [0.0, lat, lon, -30.0, lon, lon],
            "decimalLatitude": [0.0, lon, lat, 45.0, lat, lat],
            "coordinateUncertaintyInMeters": [10.0, 10.0, 10.0, 10.0, 80_000.0, 10.0],
            "basisOfRecord": ["HUMAN_OBSERVATION"] * 2 + ["FOSSIL_SPECIMEN"] + ["HUMAN_OBSERVATION"] * 3,
            "year": 2000, "occurrenceStatus": ["PRESENT"] * 5 + ["ABSENT"], "countryCode": "",
        })
        records = pd.concat([records, bad], ignore_index=True)
    records = records.iloc[rng.permutation(len(records))].reset_index(drop=True)
    records.insert(0, "gbifID", 1_000_000_000 + np.arange(len(records)))
    text = records.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6f", na_rep="")
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.xml", _meta_xml())
        archive.writestr("occurrence.txt", text)
        archive.writestr("eml.xml", "<eml:eml xmlns:eml=\"eml://ecoinformatics.org/eml-2.1.1\"><dataset><title>"
                         "Simulated records of the masksdm virtual world (no real observation)</title></dataset>"
                         "</eml:eml>\n")
    return out
