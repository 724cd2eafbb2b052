"""Names from data never choose where a file goes: every writer turns them into safe file names
inside its own folder, and two names never share a file."""

from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import make_plot_data, tiny_config
from hypothesis import given, settings
from hypothesis import strategies as st

from masksdm._io import MAX_NAME, path_inside, safe_name, safe_names
from masksdm.cli import main
from masksdm.data.plotdata import PlotData
from masksdm.errors import DataError

HOSTILE = [
    "../../../evil/Gulo gulo",  # a path out of reports/
    "/etc/passwd",  # absolute
    "..\\..\\windows\\Abies",  # Windows separators
    "Carex sp",
    "Carex sp.",  # the same file name as the one before it
    "Salix \u00d7 rubens\x00\x1b[31m",  # NUL, an escape sequence
    ".hidden",
    "Q" * 300,  # longer than any file system allows
]
PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_any_text_becomes_one_plain_name_in_its_folder(tmp_path_factory, name):
    stem = safe_name(name)
    assert PLAIN.match(stem) and len(stem) <= MAX_NAME + 1
    assert ".." not in stem.split(".") and not stem.startswith(".")
    folder = tmp_path_factory.getbasetemp()
    assert path_inside(folder, stem).parent == folder


@given(st.lists(st.text(max_size=40), unique=True, max_size=30))
@settings(max_examples=300, deadline=None)
def test_distinct_names_never_share_a_file_even_ignoring_case(names):
    stems = safe_names(names)
    assert len({s.lower() for s in stems}) == len(names)
    assert all(PLAIN.match(s) for s in stems)


def test_the_rule_keeps_plain_names_and_is_stable():
    assert safe_names(["Abies alba", "Picea abies"]) == ["Abies_alba", "Picea_abies"]
    first, second = safe_names(["Carex sp", "Carex sp."])
    assert first.startswith("Carex_sp_") and second.startswith("Carex_sp_") and first != second
    assert safe_names(["Carex sp", "Carex sp."]) == [first, second]  # the same files on every run
    long = safe_name("Q" * 300 + ".tif")
    assert len(long) <= MAX_NAME and long.endswith(".tif")
    assert safe_name("Q" * 300) != safe_name("Q" * 301)


def test_a_name_given_twice_or_leading_out_is_an_error(tmp_path):
    with pytest.raises(DataError, match="'Abies alba' is given twice"):
        safe_names(["Abies alba", "Abies alba"], what="species")
    for name in ("../x", "a/b", "/abs", "..", ""):
        with pytest.raises(DataError, match="outside"):
            path_inside(tmp_path, name)
    (tmp_path / "link").symlink_to(tmp_path.parent)  # an output folder may be a link (the user chose it)
    assert path_inside(tmp_path / "link", "file") == tmp_path / "link" / "file"
    (tmp_path / "out.tif").symlink_to(tmp_path.parent / "elsewhere.tif")
    with pytest.raises(DataError, match="outside"):
        path_inside(tmp_path, "out.tif")  # an existing output linked out of its folder


@pytest.fixture(scope="module")
def hostile_workspace(tmp_path_factory):
    """A tiny workspace whose species names are the hostile ones, with a trained run whose own
    name leads out of ``models/``."""
    from masksdm.model.training import train
    from masksdm.workspace import prepare_workspace

    data = make_plot_data(n_species=len(HOSTILE))
    rename = {f"Species {i:02d}": name for i, name in enumerate(HOSTILE)}
    occurrences = data.occurrences.assign(species=data.occurrences["species"].map(rename))
    root = tmp_path_factory.mktemp("hostile")
    ws = prepare_workspace(PlotData(plots=data.plots, occurrences=occurrences, source="hostile names"),
                           root / "workspace", block_size=2.0, seed=0, progress=False)
    train(ws, ws.run_dir("../../escaped"), config=tiny_config(epochs=2), progress=False)
    return root, ws


def _all_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_run_name_cannot_leave_models(hostile_workspace):
    root, ws = hostile_workspace
    assert (ws.path / "models" / "escaped" / "model.json").is_file()
    assert not (root / "escaped").exists() and not (ws.path / "escaped").exists()
    assert sorted(ws.species_names) == sorted(HOSTILE)


def test_shapley_local_writes_every_figure_inside_reports(hostile_workspace, capsys):
    root, ws = hostile_workspace
    before = set(_all_files(root))
    species = [HOSTILE[0], HOSTILE[3], HOSTILE[4]]
    args = ["shapley", "local", "--workspace", str(ws.path), "--run", "../../escaped", "--sites", "5", "--quiet"]
    assert main([*args, "--species", *species]) == 0, capsys.readouterr().err
    written = set(_all_files(root)) - before
    assert written and all(p.parent == ws.path / "reports" for p in written)
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert len(pngs) == 3 and "shapley_local_escaped_test_evil_Gulo_gulo.png" in pngs
    assert not any(p.name == "evil" for p in root.parent.rglob("evil"))


def _write_rasters(folder):
    folder.mkdir()
    transform = Affine(1.0, 0.0, -5.0, 0.0, -1.0, 57.0)
    rows, cols = np.mgrid[0:20, 0:30].astype("float32")
    for name, values in (("bio_1", 8 + rows / 2), ("PHIHOX", 4 + cols / 10)):
        with rasterio.open(folder / f"{name}.tif", "w", driver="GTiff", height=20, width=30, count=1,
                           dtype="float32", crs="EPSG:4326", transform=transform) as dst:
            dst.write(values[None])
    return folder


def test_predict_writes_one_distinct_map_per_species_inside_out(hostile_workspace, tmp_path, capsys):
    _, ws = hostile_workspace
    rasters, out = _write_rasters(tmp_path / "rasters"), tmp_path / "maps"
    assert main(["predict", "--workspace", str(ws.path), "--run", "../../escaped", "--rasters", str(rasters),
                 "--out", str(out), "--species", "all", "--quiet"]) == 0, capsys.readouterr().err
    files = _all_files(tmp_path)
    maps = [p for p in files if p.parent == out / "probability"]
    assert len(maps) == len(HOSTILE) and len({p.name.lower() for p in maps}) == len(HOSTILE)
    assert all(p.parent.is_relative_to(out) or p.parent == rasters for p in files)
    assert all(len(p.stem) <= MAX_NAME and not p.name.startswith(".") for p in maps)
    with rasterio.open(out / "probability" / "evil_Gulo_gulo.tif") as src:  # the tag keeps the true name
        assert src.tags()["species"] == HOSTILE[0]


def test_a_report_name_from_a_test_table_stays_in_reports(hostile_workspace):
    _, ws = hostile_workspace
    path = ws.report_path("evaluation_main_../../survey 2024.csv")
    assert path.parent == ws.path / "reports" and path.name == "evaluation_main_survey_2024.csv"


def test_an_embedding_name_must_be_a_plain_file_name(hostile_workspace):
    from masksdm.data.embeddings import embedding_path
    from masksdm.errors import ConfigError
    from masksdm.satellite import embed_plots

    _, ws = hostile_workspace
    with pytest.raises(ConfigError, match="not a plain file name: try 'x_sat'"):
        embed_plots(ws, None, [], name="../x sat")  # refused before any imagery is read
    assert embedding_path(ws.path, "../x").parent == ws.path / "embeddings"
