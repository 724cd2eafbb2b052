"""The notebooks: each runs top to bottom at a small size set through its parameters cell (as
papermill does), and is kept in git without outputs, citing its data, calling only the library."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]

# Small sizes: the whole set runs in a few minutes on 2 cores.
WORLD = {"N_PLOTS": 800, "N_SPECIES": 25, "RESOLUTION": 0.5, "EPOCHS": 8}
SMALL = {
    "01_getting_started": WORLD,
    "02_shapley_analysis": {**WORLD, "N_SITES": 40, "MAX_EVALUATIONS": 300, "N_COMPARE_SITES": 8, "BUDGETS": [40, 160]},
    "03_range_maps": {**WORLD, "N_MAPPED": 2, "DASK_WORKERS": 2},
    "04_satellite_embeddings": {**WORLD, "N_PLOTS": 400, "N_SPECIES": 15, "PLOTS_PER_IMAGE": 10, "WINDOW": 32},
    "05_presence_only": {**WORLD, "N_RECORD_SPECIES": 4, "BACKGROUND": 2000},
}


def test_every_notebook_has_small_parameters():
    assert NAMES == list(SMALL), "a notebook was added or renamed: give it small parameters here"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebooks_are_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), f"{path.name}: strip the outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters', for papermill and CI"
    names = set(re.findall(r"^([A-Z_]+) = ", tagged[0].source, flags=re.M))
    assert set(SMALL[path.stem]) <= names, f"parameters {set(SMALL[path.stem]) - names} are not in the parameters cell"
    source = "\n".join(c.source for c in code)
    assert not re.search(r"^\s*(def|class) ", source, flags=re.M), "logic goes into the library, with a test"
    assert not re.search(r"(/home/|/work/|/tmp/|/Users/|[A-Z]:\\\\)", source), "paths are relative"
    intro = nb.cells[0].source
    assert nb.cells[0].cell_type == "markdown" and "cite" in intro.lower() and "MaskSDM" in intro


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, monkeypatch_module):
    """One folder for the whole set (notebooks 2 and 3 share the demo model), and a Jupyter kernel
    running this interpreter."""
    root = tmp_path_factory.mktemp("notebooks")
    kernel = root / "jupyter" / "kernels" / "masksdm-test"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "masksdm tests", "language": "python",
    }))
    monkeypatch_module.setenv("JUPYTER_PATH", str(root / "jupyter"))
    monkeypatch_module.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch_module.delenv("MASKSDM_SMARTIES_WEIGHTS", raising=False)
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_runs_top_to_bottom(path, workdir):
    papermill = pytest.importorskip("papermill")
    if path.stem == "04_satellite_embeddings":
        pytest.importorskip("bigearthnet_common", reason="the example patches come with bigearthnet-common")
    out = workdir / f"{path.stem}.ipynb"
    papermill.execute_notebook(
        str(path), str(out), parameters=SMALL[path.stem], cwd=str(workdir), kernel_name="masksdm-test",
        progress_bar=False, execution_timeout=600,
    )
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 3, f"{path.name} drew {images} figures"
    assert (workdir / "masksdm-notebooks").is_dir()  # outputs went under WORKDIR, relative to the notebook's folder
