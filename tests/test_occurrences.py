"""Tests of masksdm.data.occurrences: GBIF downloads and CSVs read, records flagged, thinned.

Fixtures are made here in the real formats: GeoTIFFs in EPSG:4326 (20 x 20 cells of 0.5 degree,
lon 0..10, lat 40..50, a NaN "sea" corner), GBIF Darwin Core Archives laid out as GBIF writes them
(meta.xml, tab-separated occurrence.txt with gbifID first, no quoting, eml.xml) and GBIF simple
CSV downloads (one tab-separated ``<key>.csv`` in a zip).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from masksdm.data.grid import RasterStack
from masksdm.data.occurrences import (
    FLAGS,
    RECORD_COLUMNS,
    CleanedOccurrences,
    clean_occurrences,
    read_occurrences,
)
from masksdm.errors import DataError

WEST, NORTH, RES, SIZE = 0.0, 50.0, 0.5, 20
SEA = 5  # rows and columns 0..4 (lon 0..2.5, lat 47.5..50) are NaN in every raster
GAP = (19, 19)  # NaN in bio_2 only (lon 9.5..10, lat 40..40.5)

DWC = "http://rs.tdwg.org/dwc/terms/"
TERMS = [  # the order GBIF writes them in, gbifID first (a subset of the ~250 columns)
    "http://rs.gbif.org/terms/1.0/gbifID", "http://purl.org/dc/terms/license", DWC + "basisOfRecord",
    DWC + "occurrenceStatus", DWC + "locality", DWC + "eventDate", DWC + "year",
    DWC + "decimalLatitude", DWC + "decimalLongitude", DWC + "coordinateUncertaintyInMeters",
    DWC + "scientificName", DWC + "taxonRank", DWC + "species",
]  # fmt: skip
HEADER = [t.rsplit("/", 1)[-1] for t in TERMS]
HUMAN = "HUMAN_OBSERVATION"

# species, lon, lat, uncertainty, basis, status, scientificName: one planted problem per record
RECORDS = [
    ("Abies alba", "5.1", "45.1", "30", HUMAN, "PRESENT", "Abies alba Mill."),  # 0 kept
    ("Abies alba", "5.2", "45.2", "", HUMAN, "PRESENT", "Abies alba Mill."),  # 1 same cell as 0
    ("Abies alba", "6.3", "44.3", "", "PRESERVED_SPECIMEN", "PRESENT", "Abies alba Mill."),  # 2 kept
    ("Abies alba", "0", "0", "", HUMAN, "PRESENT", "Abies alba Mill."),  # 3 zero
    ("Abies alba", "45.6", "5.6", "", HUMAN, "PRESENT", "Abies alba Mill."),  # 4 swapped
    ("Abies alba", "200", "45", "", HUMAN, "PRESENT", "Abies alba Mill."),  # 5 invalid
    ("Abies alba", "", "45", "", HUMAN, "PRESENT", "Abies alba Mill."),  # 6 missing
    ("Abies alba", "7.1", "46.1", "50000", HUMAN, "PRESENT", "Abies alba Mill."),  # 7 uncertain
    ("Abies alba", "7.6", "46.6", "", "FOSSIL_SPECIMEN", "PRESENT", "Abies alba Mill."),  # 8 fossil
    ("Abies alba", "1.1", "49.1", "", HUMAN, "PRESENT", "Abies alba Mill."),  # 9 sea
    ("Abies alba", "12.0", "45.0", "", HUMAN, "PRESENT", "Abies alba Mill."),  # 10 off the rasters
    ("Abies alba", "8.1", "41.1", "", HUMAN, "ABSENT", "Abies alba Mill."),  # 11 absence
    ("Fagus sylvatica", "8.5005", "42.5003", "", HUMAN, "PRESENT", "Fagus sylvatica L."),  # 12 centroid
    ("", "6.1", "43.1", "", HUMAN, "PRESENT", ""),  # 13 no name at all
    ("", "3.7", "41.7", "", HUMAN, "present", "Quercus robur L."),  # 14 kept, name from scientificName
    ("Fagus sylvatica", "9.2", "43.2", "", HUMAN, "PRESENT", "Fagus sylvatica L."),  # 15 kept
    ("Fagus sylvatica", "9.3", "43.3", "", HUMAN, "PRESENT", "Fagus sylvatica L."),  # 16 same cell as 15
    ("Fagus sylvatica", "5.3", "45.3", "", HUMAN, "PRESENT", "Fagus sylvatica L."),  # 17 kept (A's cell)
    ("Fagus sylvatica", "4.4", "42.4", "", "living_specimen", "PRESENT", "Fagus sylvatica L."),  # 18 living
    ("Abies alba", "3.1", "42.9", "10000", HUMAN, "PRESENT", "Abies alba Mill."),  # 19 kept (= limit)
    ("Abies alba", "9.7", "40.2", "", HUMAN, "PRESENT", "Abies alba Mill."),  # 20 bio_2 nodata
]
KEPT = [0, 2, 14, 15, 17, 19]
EXPECTED = {
    "no species name": 1, "absence record": 1, "missing coordinates": 1, "invalid coordinates": 1,
    "zero coordinates": 1, "swapped coordinates": 1, "country or capital centroid": 1,
    "uncertainty above the limit": 1, "basis of record excluded": 2, "off the rasters": 1,
    "on cells without values (sea, nodata)": 2, "duplicate in a cell": 2,
    "species with too few records": 0, "kept": len(KEPT),
}  # fmt: skip
CENTROIDS = pd.DataFrame({"name": ["a capital", "a country"], "lon": [8.5, 120.0], "lat": [42.5, 30.0]})


def _write_raster(path: Path, values: np.ndarray) -> None:
    profile = dict(
        driver="GTiff", height=SIZE, width=SIZE, count=1, dtype="float32", crs="EPSG:4326",
        transform=Affine(RES, 0.0, WEST, 0.0, -RES, NORTH), nodata=np.nan,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values.astype("float32"), 1)


@pytest.fixture
def stack(tmp_path):
    folder = tmp_path / "rasters"
    folder.mkdir()
    values = np.arange(SIZE * SIZE, dtype="float32").reshape(SIZE, SIZE)
    values[:SEA, :SEA] = np.nan
    _write_raster(folder / "bio_1.tif", values)
    values = values.copy()
    values[GAP] = np.nan
    _write_raster(folder / "bio_2.tif", values)
    with RasterStack(folder) as stack:
        yield stack


def _rows(records=RECORDS) -> list[list[str]]:
    """occurrence.txt rows in HEADER order."""
    rows = []
    for i, (species, lon, lat, unc, basis, status, name) in enumerate(records):
        rank = "SPECIES" if species else "GENUS"
        rows.append([
            str(4000000000 + i), "CC_BY_4_0", basis, status, f'5 km N of "Le Mont", row {i}' if i % 2 else '"Bois de la Pie',
            f"{2000 + i}-06-01", str(2000 + i), lat, lon, unc, name, rank, species,
        ])  # fmt: skip
    return rows


def _tsv(header: list[str], rows: list[list[str]]) -> str:
    return "".join("\t".join(r) + "\n" for r in [header, *rows])


def _meta(terms=TERMS, row_type=DWC + "Occurrence", location="occurrence.txt") -> str:
    fields = "\n".join(f'    <field index="{i}" term="{t}"/>' for i, t in enumerate(terms))
    return f"""<?xml version="1.0" encoding="utf-8"?>
<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="eml.xml">
  <core encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1" rowType="{row_type}">
    <files>
      <location>{location}</location>
    </files>
    <id index="0"/>
{fields}
  </core>
</archive>
"""


def write_dwca(path: Path, records=RECORDS, *, meta: str | None = None, with_meta: bool = True) -> Path:
    """A GBIF Darwin Core Archive download."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("occurrence.txt", _tsv(HEADER, _rows(records)))
        archive.writestr("verbatim.txt", _tsv(["gbifID", "verbatimLocality"], [["1", "x"]]))
        archive.writestr("eml.xml", '<?xml version="1.0" encoding="utf-8"?>\n<eml:eml/>\n')
        if with_meta:
            archive.writestr("meta.xml", meta if meta is not None else _meta())
    return path


SIMPLE_HEADER = [  # GBIF simple CSV download columns (a subset, in GBIF's order)
    "gbifID", "datasetKey", "species", "infraspecificEpithet", "taxonRank", "scientificName",
    "countryCode", "locality", "occurrenceStatus", "decimalLatitude", "decimalLongitude",
    "coordinateUncertaintyInMeters", "eventDate", "year", "basisOfRecord",
]  # fmt: skip


def _simple_text(records=RECORDS) -> str:
    rows = [
        [str(i), "k", sp, "", "SPECIES", name, "FR", f'"quoted" place {i}' if i % 2 else '"unbalanced', status, lat, lon, unc,
         f"{1990 + i}-01-01", str(1990 + i), basis]
        for i, (sp, lon, lat, unc, basis, status, name) in enumerate(records)
    ]  # fmt: skip
    return _tsv(SIMPLE_HEADER, rows)


def write_simple_zip(path: Path, records=RECORDS) -> Path:
    """A GBIF simple CSV download: a zip with one tab-separated ``<key>.csv``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("0012345-240101120000000.csv", _simple_text(records))
    return path


# --- reading ------------------------------------------------------------------------------------


def test_darwin_core_archive_read_by_meta_xml(tmp_path):
    records = read_occurrences(write_dwca(tmp_path / "0012345-240101120000000.zip"))
    assert list(records.columns) == [*RECORD_COLUMNS, "record"]
    assert len(records) == len(RECORDS)
    assert records["record"].dtype == np.int64
    np.testing.assert_array_equal(records["record"], np.arange(len(RECORDS)))
    for column in ("lon", "lat", "uncertainty_m", "year"):
        assert records[column].dtype == np.float64, column
    assert records.loc[0, "species"] == "Abies alba"
    assert (records.loc[0, "lon"], records.loc[0, "lat"]) == (5.1, 45.1)
    assert records.loc[0, "uncertainty_m"] == 30.0 and np.isnan(records.loc[1, "uncertainty_m"])
    assert records.loc[6, "lat"] == 45.0 and np.isnan(records.loc[6, "lon"])
    assert records.loc[8, "basis"] == "FOSSIL_SPECIMEN"
    assert records.loc[3, "year"] == 2003.0
    assert records.loc[11, "status"] == "ABSENT" and records.loc[14, "status"] == "PRESENT"
    # an empty species falls back to scientificName; none at all stays missing
    assert records.loc[14, "species"] == "Quercus robur L."
    assert pd.isna(records.loc[13, "species"])


def test_darwin_core_archive_uses_meta_xml_not_the_header(tmp_path):
    # meta.xml is the authority: the header line is skipped (ignoreHeaderLines) whatever it says
    rows = _rows()
    with zipfile.ZipFile(tmp_path / "dwca.zip", "w") as archive:
        archive.writestr("meta.xml", _meta(location="data/records.tsv").replace(
            'ignoreHeaderLines="1"', 'ignoreHeaderLines="2"'))
        archive.writestr("data/records.tsv", _tsv([f"c{i}" for i in range(len(HEADER))],
                                                  [["junk"] * len(HEADER), *rows]))
    records = read_occurrences(tmp_path / "dwca.zip")
    assert len(records) == len(RECORDS) and records.loc[0, "lon"] == 5.1


def test_archive_without_meta_xml_reads_occurrence_txt_by_header(tmp_path):
    records = read_occurrences(write_dwca(tmp_path / "dwca.zip", with_meta=False))
    assert len(records) == len(RECORDS)
    assert records.loc[2, "basis"] == "PRESERVED_SPECIMEN" and records.loc[7, "uncertainty_m"] == 50000


def test_gbif_simple_csv_zip_and_plain(tmp_path):
    zipped = read_occurrences(write_simple_zip(tmp_path / "0012345-240101120000000.zip"))
    plain_path = tmp_path / "0012345-240101120000000.csv"
    plain_path.write_text(_simple_text())  # tab-separated despite the .csv name
    plain = read_occurrences(plain_path)
    pd.testing.assert_frame_equal(zipped, plain)
    assert len(plain) == len(RECORDS)
    assert plain.loc[4, "lon"] == 45.6 and plain.loc[4, "lat"] == 5.6
    assert plain.loc[5, "year"] == 1995.0 and plain.loc[11, "status"] == "ABSENT"
    assert plain.loc[14, "species"] == "Quercus robur L."


def test_generic_comma_csv_with_named_columns(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        'Taxon name,X_coord,Y_coord,note\n"Abies alba",5.1,45.1,"a, quoted note"\n'
        "Fagus sylvatica,abc,45.2,\n"
    )
    records = read_occurrences(path, species_column="taxon name", lon_column="X_coord",
                               lat_column="Y_coord")
    assert records["species"].tolist() == ["Abies alba", "Fagus sylvatica"]
    assert records.loc[0, "lon"] == 5.1 and np.isnan(records.loc[1, "lon"])  # unparseable -> NaN
    assert records["uncertainty_m"].isna().all() and records["year"].isna().all()
    assert records["basis"].isna().all() and records["status"].isna().all()


@pytest.mark.parametrize(
    ("header", "sep"),
    [
        (("longitude", "latitude", "scientific_name"), ","),
        (("x", "y", "taxon"), ","),
        (("LON", "LAT", "scientificName"), ";"),
        (("DecimalLongitude", "DECIMALLATITUDE", "Species"), "\t"),
    ],
)
def test_aliases_and_case(tmp_path, header, sep):
    path = tmp_path / "records.txt"
    value = "5,1" if sep == ";" else "5.1"  # decimal commas in a semicolon file
    path.write_text(sep.join(header) + "\n" + sep.join([value, "45.5", "Abies alba"]) + "\n")
    records = read_occurrences(path)
    assert records.loc[0, "species"] == "Abies alba"
    assert (records.loc[0, "lon"], records.loc[0, "lat"]) == (5.1, 45.5)


def test_compressed_csv_and_tab_option(tmp_path):
    import gzip

    path = tmp_path / "records.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\ufeffspecies\tlon\tlat\nAbiés alba\t5.1\t45.1\n")  # BOM, UTF-8 name
    records = read_occurrences(path, sep="tab")
    assert records.loc[0, "species"] == "Abiés alba" and records.loc[0, "lat"] == 45.1


def test_year_from_event_date_and_separator_option(tmp_path):
    path = tmp_path / "records.txt"
    path.write_text("species|lon|lat|eventDate\nAbies alba|5|45|2019-05-04T10:00\n")
    records = read_occurrences(path, sep="|")
    assert records.loc[0, "year"] == 2019.0


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist: check the path"):
        read_occurrences(tmp_path / "nope.zip")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_occurrences(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("species,lon,lat\n")
    with pytest.raises(DataError, match="no records"):
        read_occurrences(header_only)
    no_coords = tmp_path / "nocoords.csv"
    no_coords.write_text("species,east,north\nAbies alba,5,45\n")
    with pytest.raises(DataError, match=r"no longitude and latitude column.*\['species', 'east', "
                       r"'north'\].*--lon-column/--lat-column"):
        read_occurrences(no_coords)
    no_species = tmp_path / "nospecies.csv"
    no_species.write_text("name,lon,lat\nAbies alba,5,45\n")
    with pytest.raises(DataError, match="no species column.*--species-column"):
        read_occurrences(no_species)
    with pytest.raises(DataError, match=r"no column 'easting' \(lon_column\).*--lon-column"):
        read_occurrences(no_species, species_column="name", lon_column="easting")
    with pytest.raises(DataError, match="single column.*--sep"):
        read_occurrences(no_species, sep=";")


def test_archive_errors(tmp_path):
    event = write_dwca(tmp_path / "event.zip", meta=_meta(row_type=DWC + "Event"))
    with pytest.raises(DataError, match="without an occurrence core.*Event"):
        read_occurrences(event)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("a.csv", "x\n")
        archive.writestr("b.csv", "y\n")
    with pytest.raises(DataError, match="no occurrence archive"):
        read_occurrences(other)
    lacking = write_dwca(tmp_path / "lacking.zip", meta=_meta(location="missing.txt"))
    with pytest.raises(DataError, match="lacks"):
        read_occurrences(lacking)
    empty_core = tmp_path / "empty_core.zip"
    with zipfile.ZipFile(empty_core, "w") as archive:
        archive.writestr("meta.xml", _meta())
        archive.writestr("occurrence.txt", "")
    with pytest.raises(DataError, match="is empty"):
        read_occurrences(empty_core)
    zipped_csv = tmp_path / "0012345-240101120000000.zip"
    with zipfile.ZipFile(zipped_csv, "w") as archive:
        archive.writestr("0012345-240101120000000.csv", "gbifID\tspecies\tlocality\n1\tAbies alba\tx\n")
    with pytest.raises(DataError, match=r"'0012345-240101120000000.csv' in .* no longitude and "
                       r"latitude column.*\['gbifID', 'species', 'locality'\]"):
        read_occurrences(zipped_csv)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_occurrences(broken)


# --- cleaning -----------------------------------------------------------------------------------


def _counts(cleaned: CleanedOccurrences) -> dict[str, int]:
    return dict(zip(cleaned.report["flag"], cleaned.report["records"].astype(int), strict=True))


def test_every_flag_counted_and_the_right_records_kept(tmp_path, stack):
    records = read_occurrences(write_dwca(tmp_path / "dwca.zip"))
    cleaned = clean_occurrences(records, stack, centroids=CENTROIDS)
    report = cleaned.report
    assert list(report.columns) == ["flag", "records", "note"]
    assert report["flag"].tolist() == [*FLAGS, "species with too few records", "kept"]
    assert _counts(cleaned) == EXPECTED
    assert report["records"].sum() == len(records)
    presences = cleaned.presences
    assert list(presences.columns) == [*RECORD_COLUMNS, "record", "cell"]
    assert presences["record"].tolist() == KEPT
    assert presences["species"].tolist() == [
        "Abies alba", "Abies alba", "Quercus robur L.", "Fagus sylvatica", "Fagus sylvatica",
        "Abies alba",
    ]  # fmt: skip
    # cells are row * width + col of the template grid
    expected_cells = [int((NORTH - lat) / RES) * SIZE + int((lon - WEST) / RES)
                      for lon, lat in zip(presences["lon"], presences["lat"], strict=True)]
    assert presences["cell"].dtype == np.int64
    assert presences["cell"].tolist() == expected_cells
    assert not presences.duplicated(["species", "cell"]).any()
    assert cleaned.absences["record"].tolist() == [11]
    assert cleaned.absences.loc[0, "cell"] == 17 * SIZE + 16 and cleaned.absences.loc[0, "status"] == "ABSENT"


def test_counts_add_up_with_checks_off(tmp_path, stack):
    records = read_occurrences(write_dwca(tmp_path / "dwca.zip"))
    cleaned = clean_occurrences(records, stack, max_uncertainty_m=None, thin=False, exclude_basis=())
    counts = _counts(cleaned)
    assert counts["country or capital centroid"] == 0  # no centroids: not checked
    assert counts["uncertainty above the limit"] == 0 and counts["basis of record excluded"] == 0
    assert counts["duplicate in a cell"] == 0
    assert sorted(cleaned.presences["record"]) == sorted([*KEPT, 1, 7, 8, 12, 16, 18])
    assert sum(counts.values()) == len(records)


def test_min_records_drops_rare_species(tmp_path, stack):
    records = read_occurrences(write_dwca(tmp_path / "dwca.zip"))
    cleaned = clean_occurrences(records, stack, centroids=CENTROIDS, min_records=2)
    counts = _counts(cleaned)
    assert counts["species with too few records"] == 1 and counts["kept"] == len(KEPT) - 1
    assert "Quercus robur L." not in set(cleaned.presences["species"])
    assert sum(counts.values()) == len(records)
    lines = cleaned.describe().splitlines()
    assert len(lines) == len(FLAGS) + 2
    assert lines[-1].startswith("kept ") and lines[-2].startswith("species with too few records")
    ends = {line.index(str(n)) + len(str(n)) for line, n in zip(lines, counts.values(), strict=True)}
    assert len(ends) == 1  # counts right-aligned in one column


def test_swapped_flagged_not_fixed_and_zero_near_zero(stack):
    # the last record exchanged would fall in the sea: off the rasters, not swapped
    records = pd.DataFrame({
        "species": ["A", "A", "A", "A"], "lon": [45.1, 1e-7, 5.1, 49.1], "lat": [5.1, -1e-7, 45.1, 1.1],
    })  # fmt: skip
    cleaned = clean_occurrences(records, stack)
    counts = _counts(cleaned)
    assert counts["swapped coordinates"] == 1 and counts["zero coordinates"] == 1
    assert counts["off the rasters"] == 1
    assert cleaned.presences["record"].tolist() == [2]
    assert cleaned.presences.loc[0, "lon"] == 5.1  # given as is


def test_thinning_keeps_the_first_kept_record_of_a_cell(stack):
    # record 0 (a fossil) and record 3 (in another cell) do not make records 1, 4 duplicates
    records = pd.DataFrame({
        "species": ["A", "A", "A", "B", "B"], "lon": [5.1, 5.2, 5.3, 6.1, 5.4],
        "lat": [45.1, 45.2, 45.3, 44.1, 45.4], "basis": ["FOSSIL_SPECIMEN", None, None, None, None],
    })  # fmt: skip
    cleaned = clean_occurrences(records, stack)
    assert cleaned.presences["record"].tolist() == [1, 3, 4]
    assert _counts(cleaned)["duplicate in a cell"] == 1


def test_centroid_radius_is_metres_on_the_sphere(stack):
    # 0.01 degree of latitude is about 1112 m: outside 1000 m, inside 2000 m
    records = pd.DataFrame({"species": ["A", "A"], "lon": [8.5, 6.1], "lat": [42.51, 44.1]})
    assert _counts(clean_occurrences(records, stack, centroids=CENTROIDS))["country or capital centroid"] == 0
    near = clean_occurrences(records, stack, centroids=CENTROIDS, centroid_radius_m=2000)
    assert _counts(near)["country or capital centroid"] == 1 and near.presences["record"].tolist() == [1]
    with pytest.raises(DataError, match="'lon' and 'lat' columns"):
        clean_occurrences(records, stack, centroids=pd.DataFrame({"x": [1.0], "y": [2.0]}))


def test_valid_cells_read_once(tmp_path, stack, monkeypatch):
    calls = []
    original = RasterStack.valid_cells

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RasterStack, "valid_cells", counted)
    clean_occurrences(read_occurrences(write_dwca(tmp_path / "dwca.zip")), stack)
    assert len(calls) == 1


def test_single_record_species_kept(stack):
    records = pd.DataFrame({"species": ["A", "B", "B"], "lon": [5.1, 6.1, 7.1], "lat": [45.1, 45.1, 45.1]})
    cleaned = clean_occurrences(records, stack)
    assert cleaned.presences["species"].tolist() == ["A", "B", "B"]
    assert clean_occurrences(records, stack, min_records=2).presences["species"].tolist() == ["B", "B"]


def test_clean_errors(stack):
    outside = pd.DataFrame({"species": ["A", "B"], "lon": [100.0, 1.1], "lat": [10.0, 49.1]})
    with pytest.raises(DataError, match="extent and CRS.*WGS84 degrees"):
        clean_occurrences(outside, stack)
    fossils = pd.DataFrame({"species": ["A"] * 3, "lon": [5.1, 6.1, 7.1], "lat": [45.1] * 3,
                            "basis": ["FOSSIL_SPECIMEN", "fossil_specimen", "FossilSpecimen"]})
    with pytest.raises(DataError, match="no record left.*'basis of record excluded' \\(3 records\\)"):
        clean_occurrences(fossils, stack)
    singles = pd.DataFrame({"species": ["A", "B", "A"], "lon": [5.1, 6.1, 5.2], "lat": [45.1, 45.1, 45.2]})
    with pytest.raises(DataError, match="every species has a single record.*min_records=3"):
        clean_occurrences(singles, stack, min_records=3)
    with pytest.raises(DataError, match="no column"):
        clean_occurrences(pd.DataFrame({"species": ["A"]}), stack)
