"""Range maps over a raster of 4 million cells: our streaming prediction against the plain way.

Setup (not timed): the demo world's 41 map predictor rasters (``masksdm demo`` first) are resampled
to a 2,500 x 1,600 grid (4.0 million cells, about 0.017 degrees) and written as GeoTIFFs.

(1) the demo model (all its species):
    plain way: read every raster whole, build the (cells x predictors) matrix, predict in batches
    with the full token sequence in fp32, ``numpy.save`` the float32 probabilities;
    ours: ``masksdm predict --species all`` (strips of cells, masked tokens collapsed, uint8
    Cloud-Optimized GeoTIFFs, one per species).
(2) a paper-size model (12,738 species, random weights), richness map only, on the first rows of
    the same grid (``--rows``); both ways extrapolated to the full grid.

Each way runs in its own process, so peak memory (max RSS) is its own. Both are measured in this
run on this machine; the ratios are what to quote.

    python benchmarks/predict.py --demo masksdm-demo            # CPU
    python benchmarks/predict.py --demo masksdm-demo --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.warp import Resampling, reproject

WIDTH, HEIGHT = 2500, 1600
WEST, NORTH, EAST, SOUTH = -5.0, 60.0, 38.0, 34.0


def make_stack(demo_rasters: Path, out: Path, height: int = HEIGHT) -> Path:
    """The demo rasters resampled (bilinear) onto the benchmark grid, one GeoTIFF per predictor."""
    out.mkdir(parents=True, exist_ok=True)
    transform = Affine((EAST - WEST) / WIDTH, 0, WEST, 0, -(NORTH - SOUTH) / HEIGHT, NORTH)
    for path in sorted(demo_rasters.rglob("*.tif")):
        target = out / path.name
        if target.exists():
            continue
        with rasterio.open(path) as src:
            data = np.full((height, WIDTH), np.nan, dtype=np.float32)
            reproject(rasterio.band(src, 1), data, dst_transform=transform, dst_crs="EPSG:4326",
                      dst_nodata=np.nan, resampling=Resampling.bilinear)
        with rasterio.open(target, "w", driver="GTiff", width=WIDTH, height=height, count=1, dtype="float32",
                           crs="EPSG:4326", transform=transform, nodata=np.nan, tiled=True, compress="deflate") as dst:
            dst.write(data, 1)
    return out


def plain(run_dir: str, rasters: str, out: str, device: str, richness: bool) -> dict:
    from masksdm.model.checkpoint import load_checkpoint

    model, card = load_checkpoint(run_dir, device=device)
    start = time.perf_counter()
    columns, from_file = [], []
    with rasterio.open(Path(rasters) / "bio_1.tif") as ref:
        height, width, transform = ref.height, ref.width, ref.transform
    rows, cols = np.mgrid[0:height, 0:width]
    lon, lat = transform.c + (cols + 0.5) * transform.a, transform.f + (rows + 0.5) * transform.e
    for j, p in enumerate(card.predictors):
        path = Path(rasters) / f"{p.name}.tif"
        if p.name == "Longitude":
            columns.append(lon.ravel().astype(np.float32))
        elif p.name == "Latitude":
            columns.append(lat.ravel().astype(np.float32))
        elif path.exists():
            with rasterio.open(path) as src:
                columns.append(src.read(1).ravel())
            from_file.append(j)
        else:
            columns.append(np.full(height * width, np.nan, dtype=np.float32))
    x = card.features(np.stack(columns, axis=1))
    valid = ~np.isnan(x[:, from_file]).all(axis=1)
    out_array = np.full((len(x), 1 if richness else len(card.species)), np.nan, dtype=np.float32)
    with torch.no_grad():
        for s in range(0, len(x), 2048):
            xb = torch.as_tensor(x[s : s + 2048]).to(device)
            p = torch.sigmoid(model(xb, collapse=False)).cpu().numpy()
            out_array[s : s + 2048] = p.sum(1, keepdims=True) if richness else p
    out_array[~valid] = np.nan
    np.save(out, out_array)
    return {"seconds": time.perf_counter() - start, "cells": len(x), "species": len(card.species)}


def ours(run_dir: str, rasters: str, out: str, device: str, richness: bool) -> dict:
    from masksdm.maps.predict import predict_maps
    from masksdm.model.checkpoint import load_checkpoint

    model, card = load_checkpoint(run_dir, device=device)
    start = time.perf_counter()
    result = predict_maps(model, card, rasters, out, outputs=["richness"] if richness else ["probability"],
                          run_dir=run_dir, force=True, progress=False)
    return {"seconds": time.perf_counter() - start, "cells": result.n_cells, "species": len(card.species)}


def paper_size_run(out: Path) -> Path:
    """A checkpoint of the paper-size model (random weights, 12,738 species) for the richness run."""
    from masksdm.data.predictors import default_predictors
    from masksdm.model.checkpoint import ModelCard, build_model, save_checkpoint
    from masksdm.model.config import preset

    run = out / "paper-size"
    if (run / "model.json").exists():
        return run
    predictors = default_predictors()
    card = ModelCard(config=preset("paper"), predictors=predictors,
                     species=[f"Species {i:05d}" for i in range(12_738)],
                     normalisation={p.name: {"mean": 0.0, "std": 1.0} for p in predictors})
    torch.manual_seed(0)
    save_checkpoint(run, build_model(card), card)
    return run


def child(args: list[str]) -> dict:
    """Run one way in a fresh process; its result plus its peak memory."""
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("masksdm-demo"), help="output of `masksdm demo`")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work", type=Path, help="folder for rasters and outputs (default: a temp folder)")
    parser.add_argument("--rows", type=int, default=8, help="grid rows for the paper-size richness run (8)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        way, run_dir, rasters, out, device, richness = args.child
        rich = richness == "1"
        way_fn = plain if way == "plain" else ours
        info = way_fn(run_dir, rasters, out, device, rich)
        info["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(info))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="masksdm-bench-"))
    demo_run = args.demo / "workspace" / "models" / "main"
    if not (demo_run / "model.json").exists():
        sys.exit(f"no demo model at {demo_run}: run `masksdm demo --out {args.demo}` first")
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"device: {args.device} ({name}), {torch.get_num_threads()} threads, torch {torch.__version__}")
    rasters = make_stack(args.demo / "world" / "rasters", work / "rasters")
    print(f"grid: {WIDTH} x {HEIGHT} = {WIDTH * HEIGHT:,} cells, rasters in {rasters}\n")

    print("(1) demo model, probability maps of all its species")
    results = {}
    for way in ("plain", "ours"):
        out = work / ("plain.npy" if way == "plain" else "maps")
        results[way] = child([way, str(demo_run), str(rasters), str(out), args.device, "0"])
        r = results[way]
        rate = r["cells"] * r["species"] / r["seconds"]
        print(f"  {way:<6} {r['seconds']:8.1f} s  {rate / 1e6:7.2f} M cell-species/s  peak memory {r['max_rss_mb']:7.0f} MB")
    print(f"  ratio: {results['plain']['seconds'] / results['ours']['seconds']:.1f}x faster, "
          f"{results['plain']['max_rss_mb'] / results['ours']['max_rss_mb']:.1f}x less memory")

    print(f"\n(2) paper-size model (12,738 species), richness only, first {args.rows} rows "
          f"({args.rows * WIDTH:,} cells)")
    crop = make_stack(args.demo / "world" / "rasters", work / f"rasters-{args.rows}rows", height=args.rows)
    paper = paper_size_run(work)
    rich = {}
    for way in ("plain", "ours"):
        out = work / ("plain-richness.npy" if way == "plain" else "richness")
        rich[way] = child([way, str(paper), str(crop), str(out), args.device, "1"])
        r = rich[way]
        full = r["seconds"] * (WIDTH * HEIGHT) / r["cells"]
        print(f"  {way:<6} {r['seconds']:8.1f} s  {r['cells'] * r['species'] / r['seconds'] / 1e6:7.2f} M cell-species/s"
              f"  peak memory {r['max_rss_mb']:7.0f} MB  (full grid: about {full / 3600:.1f} h)")
    print(f"  ratio: {rich['plain']['seconds'] / rich['ours']['seconds']:.1f}x faster")


if __name__ == "__main__":
    main()
