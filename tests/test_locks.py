"""Two commands never write the same folder at once: a second ``train`` of a run, ``predict`` into a
folder being written, ``prepare --force`` of a workspace being read, each stop with one clear
message and leave the first command's files as they were."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_plot_data, tiny_config

from masksdm.cli import main
from masksdm.errors import BusyError
from masksdm.locks import exclusive, locked

ROOT = Path(__file__).resolve().parents[1]
PREDICTORS = "bio_1,PHIHOX,Releve_area,noise"


def _env(tmp_path):
    return {**os.environ, "MASKSDM_LOCK_DIR": str(tmp_path / "locks"), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKSDM_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path / "locks"


@pytest.fixture
def table_workspace(tmp_path, lock_dir):
    data = make_plot_data(n_plots=400)
    table = data.plots.merge(data.occurrences, on="plot_id")
    path = tmp_path / "plots.csv"
    table.to_csv(path, index=False)
    prepare = ["prepare", "--workspace", str(tmp_path / "ws"), "--table", str(path), "--predictor-columns",
               PREDICTORS, "--block-size", "2", "--min-plots", "5", "--quiet"]
    assert main(prepare) == 0
    return tmp_path / "ws", prepare


def _start_training(tmp_path, ws: Path, run: str, epochs: int = 3000) -> subprocess.Popen:
    """A ``masksdm train`` that runs for minutes, once its first epoch is written."""
    config = tmp_path / f"{run}.toml"
    config.write_text(tiny_config(epochs=epochs, patience=0).to_toml())
    child = subprocess.Popen(
        [sys.executable, "-m", "masksdm", "train", "--workspace", str(ws), "--run", run, "--config", str(config),
         "--quiet"], cwd=ROOT, env=_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    state = ws / "models" / run / "resume" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"training did not start: {child.communicate()}")
        time.sleep(0.1)
    return child


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_two_trainings_of_one_run_and_a_rebuild_under_a_reader_are_refused(table_workspace, tmp_path, capsys):
    ws, prepare = table_workspace
    first = _start_training(tmp_path, ws, "main")
    try:
        config = tmp_path / "second.toml"
        config.write_text(tiny_config(epochs=2).to_toml())
        before = _snapshot(ws)
        # the same run again, even with --force: refused while the first one writes it
        assert main(["train", "--workspace", str(ws), "--run", "main", "--config", str(config), "--force",
                     "--quiet"]) == 2
        line = _one_line_error(capsys)
        assert line.startswith("masksdm train: error: run '") and "is busy: another masksdm command is using it" in line
        # rebuilding the workspace the first training reads: refused, nothing rewritten
        assert main([*prepare, "--force"]) == 2
        line = _one_line_error(capsys)
        assert "workspace '" in line and "is busy: another masksdm command is using it" in line
        # what only reads the workspace goes on beside it, and so does another run
        assert main(["info", "--workspace", str(ws)]) == 0
        assert main(["train", "--workspace", str(ws), "--run", "other", "--config", str(config), "--quiet"]) == 0
        after = _snapshot(ws)
        changed = {k for k in before if k in after and after[k] != before[k]}
        assert not {k for k in changed if not k.startswith("models/main/")}, changed  # only the first run writes
        assert first.poll() is None  # the first training was not disturbed
    finally:
        first.kill()
        first.communicate()
    # a killed command leaves no lock behind: its run can be trained again, the workspace rebuilt
    assert main(["train", "--workspace", str(ws), "--run", "main", "--config", str(config), "--force", "--quiet"]) == 0
    assert main([*prepare, "--force"]) == 0


def test_prepare_force_waits_for_no_one_but_refuses_while_a_map_is_read_from_it(table_workspace, tmp_path, capsys):
    ws, prepare = table_workspace
    holder = subprocess.Popen(  # another process holding the workspace as a reader (e.g. an open dashboard)
        [sys.executable, "-c", "import sys, time; from masksdm.locks import locked\n"
         f"with locked({str(ws)!r}, what='workspace', shared=True):\n    print('held', flush=True); time.sleep(60)"],
        env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*prepare, "--force"]) == 2
        assert "is busy" in _one_line_error(capsys)
    finally:
        holder.kill()
        holder.communicate()
    assert main([*prepare, "--force"]) == 0


def test_two_predictions_into_one_folder(tmp_path, lock_dir, capsys, tiny_run):
    from test_filenames import _write_rasters

    rasters, out = _write_rasters(tmp_path / "rasters"), tmp_path / "maps"
    holder = subprocess.Popen(  # the same lock a running `masksdm predict --out maps` holds
        [sys.executable, "-c", "import time; from masksdm.locks import locked\n"
         f"with locked({str(out)!r}, what='map folder'):\n    print('held', flush=True); time.sleep(60)"],
        env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
    command = ["predict", "--checkpoint", str(tiny_run), "--rasters", str(rasters), "--out", str(out),
               "--species", "Species 00", "--quiet"]
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(command) == 2
        line = _one_line_error(capsys)
        assert line.startswith(f"masksdm predict: error: map folder '{out}' is busy")
        assert not out.exists()  # nothing written
    finally:
        holder.kill()
        holder.communicate()
    assert main(command) == 0 and (out / "probability" / "Species_00.tif").is_file()


def test_locks_in_one_process(tmp_path, lock_dir):
    folder = tmp_path / "run"
    with locked(folder, what="run", shared=True), locked(folder, what="run", shared=True):
        with pytest.raises(BusyError, match="is busy: another masksdm command is using it"):
            with locked(folder, what="run"):
                pass
    with locked(folder, what="run"):
        with pytest.raises(BusyError, match="is busy: another masksdm command is writing it"):
            with locked(folder, what="run", shared=True):
                pass
    with locked(folder, what="run"):  # released on leaving the block, also after an error
        pass

    @exclusive("out", "map folder")
    def write(x, *, out):
        with pytest.raises(BusyError, match=f"map folder '{out}' is busy"):
            write(x, out=out)
        return x

    assert write(3, out=tmp_path / "maps") == 3
    assert sorted(p.suffix for p in lock_dir.iterdir()) == [".lock", ".lock"]  # one file per folder, none in it
    assert not (tmp_path / "run").exists() and not (tmp_path / "maps").exists()


def test_an_unwritable_lock_folder_is_named_with_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MASKSDM_LOCK_DIR", str(blocker / "locks"))
    with pytest.raises(BusyError, match="set MASKSDM_LOCK_DIR to a writable folder"):
        with locked(tmp_path / "run", what="run"):
            pass
