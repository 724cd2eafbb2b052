"""Projection to a future climate at 4 million cells: what novelty and range-change maps add.

Setup (not timed): the demo world's map predictor rasters (``masksdm demo`` first) resampled to
the 2,500 x 1,600 grid of ``benchmarks/predict.py`` (4.0 million cells), and the same stack in the
demo's future climate (+2 degrees C, 10 % less rain: :func:`masksdm.sim.scenario.write_future_rasters`).

The two projections: ``masksdm predict`` of the demo model's species on each stack (uint8 COGs,
thresholds stored in the tags). What comes on top of them, measured in this run both ways:

* ours: novelty (MESS and out-of-range count) computed in the projections' own pass over strips
  (``--write probability novelty``: the extra time is the difference to the plain projections),
  then ``masksdm change`` in one pass over strips of the written maps;
* the plain way, afterwards from the written files: read every predictor raster whole, compute
  MESS against the training plots (vectorised NumPy, the same definition) and write it, for each
  stack; then, per species, read both probability maps whole, threshold them at their tags, write
  the change map (deflate GeoTIFF) and count the cells.

Both ways write the same maps (checked at the end). Each number is a wall-clock time on this
machine in this run; the overheads in percent of the two projections are what to quote.

    python benchmarks/projection.py --demo masksdm-demo [--species 100] [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import HEIGHT, WIDTH, make_stack  # noqa: E402  (the 4-million-cell grid of the map benchmark)

from masksdm.maps.change import range_change  # noqa: E402
from masksdm.maps.novelty import mess, novelty_predictors, training_reference  # noqa: E402
from masksdm.maps.predict import predict_maps  # noqa: E402
from masksdm.model.checkpoint import load_checkpoint  # noqa: E402
from masksdm.sim.scenario import write_future_rasters  # noqa: E402
from masksdm.workspace import Workspace  # noqa: E402


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def plain_novelty(card, workspace, rasters: Path, names: list[str], out: Path) -> None:
    """MESS and out-of-range count from the whole rasters, written as one GeoTIFF."""
    reference = training_reference(card, workspace, names)
    with rasterio.open(rasters / "bio_1.tif") as ref:
        profile = ref.profile
        height, width = ref.height, ref.width
    columns = np.full((height * width, card.n_columns), np.nan, dtype=np.float32)
    for name, col in zip(names, reference.columns, strict=True):
        with rasterio.open(rasters / f"{name}.tif") as src:
            columns[:, col] = src.read(1, masked=True).astype(np.float32).filled(np.nan).ravel()
    similarity, outside, _ = mess(columns, reference)
    land = ~np.isnan(columns[:, list(reference.columns)]).all(axis=1)
    similarity[~land] = outside[~land] = np.nan
    profile.update(count=2, dtype="float32", nodata=np.nan, compress="deflate", tiled=True)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.stack([similarity, outside]).reshape(2, height, width))


def plain_change(species: list[str], now: Path, future: Path, out: Path) -> dict[str, np.ndarray]:
    """Per species: both probability maps read whole, thresholded at their tags, the change written."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for s in species:
        stem = s.replace(" ", "_")
        present, valid = [], None
        for folder in (now, future):
            with rasterio.open(folder / "probability" / f"{stem}.tif") as src:
                p = src.read(1, masked=True)
                threshold = float(src.tags()["threshold"])
                present.append(np.ma.filled(p.astype(np.float64) * src.scales[0] >= threshold, False))
                valid = ~np.ma.getmaskarray(p) if valid is None else valid & ~np.ma.getmaskarray(p)
                profile = src.profile
        a, b = present
        code = np.where(a & b, -1, np.where(a, -2, np.where(b, 1, 0))).astype(np.int8)
        code[~valid] = -128
        counts[s] = np.bincount((code[valid] + 2).ravel(), minlength=4)
        profile.update(driver="GTiff", dtype="int8", nodata=-128, compress="deflate", tiled=True, blockxsize=512,
                       blockysize=512)
        with rasterio.open(out / f"{stem}.tif", "w", **profile) as dst:
            dst.write(code[None])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("masksdm-demo"), help="output of `masksdm demo`")
    parser.add_argument("--species", type=int, help="map only the first N species (default: all)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work", type=Path, help="folder for rasters and outputs (default: a temp folder)")
    parser.add_argument("--rows", type=int, default=HEIGHT, help=f"grid rows ({HEIGHT}; fewer for a quick check)")
    args = parser.parse_args()
    run = args.demo / "workspace" / "models" / "main"
    if not (run / "model.json").exists():
        sys.exit(f"no demo model at {run}: run `masksdm demo --out {args.demo}` first")
    work = args.work or Path(tempfile.mkdtemp(prefix="masksdm-projection-"))
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"device: {args.device} ({name}), {torch.get_num_threads()} threads, torch {torch.__version__}")
    now_rasters = make_stack(args.demo / "world" / "rasters", work / "rasters", height=args.rows)
    cells = WIDTH * args.rows
    future_rasters = work / "future"
    if not (future_rasters / "bio_1.tif").exists():
        write_future_rasters(now_rasters, future_rasters, warming=2.0, rain_change=-0.1, force=True)
    print(f"grid: {WIDTH} x {args.rows} = {cells:,} cells; current rasters {now_rasters}, future {future_rasters}")

    model, card = load_checkpoint(run, device=args.device)
    ws = Workspace(args.demo / "workspace")
    species = card.species[: args.species] if args.species else list(card.species)
    common = dict(species=species, threshold="model", workspace=ws, run_dir=run, force=True, progress=False)
    times: dict[str, float] = {}
    maps = {}
    for label, rasters in (("current", now_rasters), ("future", future_rasters)):  # interleaved: drift hits both
        maps[label], times[f"{label} projection"] = _timed(predict_maps, model, card, rasters, work / f"maps-{label}",
                                                           **common)
        _, times[f"{label} projection + novelty"] = _timed(
            predict_maps, model, card, rasters, work / f"maps-{label}-novelty", outputs=["probability", "novelty"],
            **common)
        print(f"  {label}: projection {times[f'{label} projection']:.1f} s, with novelty "
              f"{times[f'{label} projection + novelty']:.1f} s")
    ours_change, times["change (ours)"] = _timed(range_change, work / "maps-current", work / "maps-future",
                                                 work / "change", force=True, progress=False)
    names = novelty_predictors(card, maps["current"].plan.read_names)
    for label, rasters in (("current", now_rasters), ("future", future_rasters)):
        _, times[f"{label} novelty (plain)"] = _timed(plain_novelty, card, ws, rasters, names, work / f"{label}-mess.tif")
    counts, times["change (plain)"] = _timed(plain_change, species, work / "maps-current", work / "maps-future",
                                             work / "change-plain")

    # the same answers both ways
    for j, s in enumerate(species):
        assert (counts[s] == ours_change.table.iloc[j][["lost", "stable_present", "stable_absent", "gained"]]
                .to_numpy(dtype=np.int64)).all(), s
    with rasterio.open(work / "maps-future-novelty" / "novelty.tif") as a, rasterio.open(work / "future-mess.tif") as b:
        np.testing.assert_allclose(a.read(1), b.read(1), equal_nan=True, rtol=1e-6)

    projections = times["current projection"] + times["future projection"]
    fused = times["current projection + novelty"] + times["future projection + novelty"] - projections
    ours = fused + times["change (ours)"]
    plain = times["current novelty (plain)"] + times["future novelty (plain)"] + times["change (plain)"]
    print(f"\n{len(species)} species x {cells:,} cells, two projections: {projections:.1f} s")
    print("| what | ours | plain way |\n|---|---|---|")
    print(f"| novelty of both projections | {fused:.1f} s (in their pass) | "
          f"{times['current novelty (plain)'] + times['future novelty (plain)']:.1f} s (afterwards, from the rasters) |")
    print(f"| range change (maps, table) | {times['change (ours)']:.1f} s (one pass over strips) | "
          f"{times['change (plain)']:.1f} s (whole maps per species) |")
    print(f"| added to the two projections | {ours:.1f} s = {100 * ours / projections:.1f} % | "
          f"{plain:.1f} s = {100 * plain / projections:.1f} % |")


if __name__ == "__main__":
    main()
