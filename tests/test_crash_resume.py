"""Crash proofs: ``masksdm train``, ``masksdm predict`` and ``masksdm embed plots`` are killed with
SIGKILL at a random point of their work (a subprocess, nothing flushed, no handler run), then rerun
with ``--resume``; what they leave equals what an uninterrupted run leaves, bit for bit (every run
here is deterministic: CPU, one thread).

The kill lands a random share of the way through the work, drawn from ``MASKSDM_CRASH_SEED``
(default 0) and the command's name, and timed on an uninterrupted run of the same command made
first: the first record of progress (the resume state, a finished strip, a finished batch) to the
end. The seed and the delay are in every failure message.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from conftest import make_plot_data, tiny_config
from pyproj import Transformer
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

ROOT = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("MASKSDM_CRASH_SEED", "0"))
TINY = "smarties-tiny"
#: ``masksdm`` with a tiny SMARTIES registered under TINY (the real ones need downloaded weights).
TINY_CLI = (
    "import sys\n"
    "from foundation_encoders import register_encoder\n"
    "from foundation_encoders.smarties import build_smarties\n"
    f"register_encoder({TINY!r})(lambda weights=None, sha256=None, **kw: build_smarties({TINY!r}, weights=weights, "
    "sha256=sha256, **kw))\n"
    "from masksdm.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _start(tmp_path: Path, args: list[str], *, tiny_encoder: bool = False) -> subprocess.Popen:
    env = {**os.environ, "MASKSDM_LOCK_DIR": str(tmp_path / "locks"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    head = [sys.executable, "-c", TINY_CLI] if tiny_encoder else [sys.executable, "-m", "masksdm"]
    return subprocess.Popen([*head, *args, "--quiet"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(child: subprocess.Popen, started: Callable[[], bool]) -> None:
    """Until ``started()`` (the first record of progress); a child that ends first fails the test."""
    deadline = time.monotonic() + 180
    while not started():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            out, err = child.communicate()
            pytest.fail(f"the command ended (rc {child.returncode}) before its first record of progress: {out}{err}")
        time.sleep(0.01)


def _uninterrupted(tmp_path: Path, args: list[str], started: Callable[[], bool], finished: Callable[[], bool],
                  **kw) -> float:
    """Run the command to its end; the seconds from its first record of progress (``started()``)
    to its last piece of work (``finished()``): the span a kill must land in."""
    child = _start(tmp_path, args, **kw)
    _wait_for(child, started)
    begin = time.monotonic()
    while not finished() and child.poll() is None:
        time.sleep(0.005)
    span = time.monotonic() - begin
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0 and finished(), out + err
    return span


def _kill_midway(tmp_path: Path, args: list[str], started: Callable[[], bool], span: float, what: str,
                 restart: Callable[[], None], **kw) -> str:
    """Start the command and SIGKILL it a random share of ``span`` after ``started()``; a run that
    ends before the kill is started again (after ``restart()``) with a shorter delay, three times at
    most. Returns a description of the kill for failure messages."""
    rng = random.Random(f"{SEED}-{what}")
    share = rng.uniform(0.05, 0.8)
    for attempt in range(3):
        child = _start(tmp_path, args, **kw)
        _wait_for(child, started)
        delay = share * span / 2**attempt
        time.sleep(delay)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.communicate()
            assert child.returncode == -signal.SIGKILL
            return f"{what} killed {delay:.2f} s after its first progress (MASKSDM_CRASH_SEED={SEED})"
        child.communicate()
        restart()
    pytest.fail(f"{what} ended before every kill: it runs too short for this test")


def _resume(tmp_path: Path, args: list[str], why: str, **kw) -> None:
    child = _start(tmp_path, [*args, "--resume"], **kw)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, f"{why}: --resume failed: {out}{err}"


# --- train ----------------------------------------------------------------------------------------


def test_a_killed_training_resumes_to_the_same_model(map_workspace, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(map_workspace.path, ws, ignore=shutil.ignore_patterns("models"))
    config = tmp_path / "run.toml"
    config.write_text(tiny_config(epochs=10, patience=0).to_toml())

    def args(run: str) -> list[str]:
        return ["train", "--workspace", str(ws), "--run", run, "--config", str(config)]

    def state(run: str) -> Callable[[], bool]:
        return lambda: (ws / "models" / run / "resume" / "state.safetensors").exists()

    span = _uninterrupted(tmp_path, args("whole"), state("whole"), lambda: (ws / "models" / "whole" / "thresholds.parquet").exists())
    why = _kill_midway(tmp_path, args("cut"), state("cut"), span, "train",
                       restart=lambda: shutil.rmtree(ws / "models" / "cut"))  # fmt: skip
    assert not (ws / "models" / "cut" / "thresholds.parquet").exists(), why  # the run was cut short
    _resume(tmp_path, ["train", "--workspace", str(ws), "--run", "cut"], why)

    whole, cut = ws / "models" / "whole", ws / "models" / "cut"
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{why}: tensor {key} differs"
    metrics = [pd.read_csv(run / "metrics.csv").drop(columns="seconds") for run in (whole, cut)]
    pd.testing.assert_frame_equal(*metrics, check_exact=True, obj=why)
    thresholds = [pd.read_parquet(run / "thresholds.parquet") for run in (whole, cut)]
    pd.testing.assert_frame_equal(*thresholds, check_exact=True, obj=why)


# --- predict --------------------------------------------------------------------------------------


def _maps(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with rasterio.open(path) as src:
                out[str(path.relative_to(folder))] = src.read()
    return out


def test_a_killed_prediction_resumes_to_the_same_maps(map_workspace, tmp_path):
    rasters = map_workspace.path.parent / "world" / "rasters"

    def args(out: Path) -> list[str]:
        return ["predict", "--workspace", str(map_workspace.path), "--run", "main", "--rasters", str(rasters),
                "--out", str(out), "--species", "all", "--write", "probability", "binary", "richness",
                "--threshold", "max_tss", "--align", "--block-rows", "2", "--checkpoint-every", "0"]  # fmt: skip

    def strip_done(out: Path) -> Callable[[], bool]:
        return lambda: (out / ".partial" / "state.json").exists()

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    span = _uninterrupted(tmp_path, args(whole), strip_done(whole), lambda: not (whole / ".partial").exists())
    why = _kill_midway(tmp_path, args(cut), strip_done(cut), span, "predict", restart=lambda: shutil.rmtree(cut))
    assert (cut / ".partial").is_dir(), why
    _resume(tmp_path, args(cut), why)

    expected, got = _maps(whole), _maps(cut)
    assert got.keys() == expected.keys() and len(expected) > 20, why  # no .partial or temporary file left
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values, err_msg=f"{why}: {name}")


# --- embed ----------------------------------------------------------------------------------------


@pytest.fixture
def embed_workspace(ben_dir, tmp_path) -> tuple[Path, Path, Path]:
    """(workspace, imagery folder, tiny SMARTIES weights): 600 plots, 240 of them inside the six
    Sentinel-2 patches of the BigEarthNet examples (40 per patch, up to ~150 m off its centre)."""
    from foundation_encoders.discovery import find_scenes
    from foundation_encoders.smarties import build_smarties
    from masksdm.data.plotdata import PlotData
    from masksdm.workspace import prepare_workspace

    imagery = ben_dir / "BigEarthNet-S2-Example"
    rng = np.random.default_rng(0)
    lon, lat = [], []
    for scene in find_scenes(imagery):
        left, bottom, right, top = scene.bounds
        x = (left + right) / 2 + rng.uniform(-150, 150, 40)
        y = (bottom + top) / 2 + rng.uniform(-150, 150, 40)
        plon, plat = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True).transform(x, y)
        lon += list(plon)
        lat += list(plat)
    data = make_plot_data()
    plots = data.plots.copy()
    plots.loc[: len(lon) - 1, "lon"], plots.loc[: len(lon) - 1, "lat"] = lon, lat
    ws = prepare_workspace(PlotData(plots, data.occurrences, "test"), tmp_path / "ws", block_size=2.0, progress=False)
    torch.manual_seed(0)
    weights = tmp_path / "smarties-tiny.safetensors"
    save_file({k: v.contiguous() for k, v in build_smarties(TINY).state_dict().items()}, str(weights))
    return ws.path, imagery, weights


def test_a_killed_embedding_resumes_to_the_same_vectors(embed_workspace, tmp_path):
    from masksdm.data.embeddings import read_embeddings

    ws, imagery, weights = embed_workspace
    embeddings = ws / "embeddings"

    def args(name: str) -> list[str]:
        return ["embed", "plots", "--workspace", str(ws), "--imagery", str(imagery), "--weights", str(weights),
                "--encoder", TINY, "--device", "cpu", "--batch-size", "1", "--workers", "1", "--checkpoint-every", "0",
                "--name", name]  # fmt: skip

    def batch_done(name: str) -> Callable[[], bool]:
        return lambda: any((embeddings / f"{name}.parquet.partial").glob("part-*.npz"))

    span = _uninterrupted(tmp_path, args("whole"), batch_done("whole"), lambda: (embeddings / "whole.parquet").exists(),
                          tiny_encoder=True)
    why = _kill_midway(tmp_path, args("cut"), batch_done("cut"), span, "embed", tiny_encoder=True,
                       restart=lambda: shutil.rmtree(embeddings / "cut.parquet.partial", ignore_errors=True))
    assert any((embeddings / "cut.parquet.partial").glob("part-*.npz")) and not (embeddings / "cut.parquet").exists(), why
    _resume(tmp_path, args("cut"), why, tiny_encoder=True)

    assert not (embeddings / "cut.parquet.partial").exists(), why
    table_a, vectors_a, meta_a = read_embeddings(embeddings / "whole.parquet")
    table_b, vectors_b, meta_b = read_embeddings(embeddings / "cut.parquet")
    assert int(table_a["available"].sum()) >= 200, "the plots inside the patches were not embedded"
    pd.testing.assert_frame_equal(table_a, table_b, check_exact=True, obj=why)
    np.testing.assert_array_equal(vectors_a, vectors_b, err_msg=why)
    assert meta_a["settings"] == meta_b["settings"]
