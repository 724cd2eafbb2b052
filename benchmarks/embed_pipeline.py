"""Throughput of the plot-embedding pipeline on real Sentinel-2 patches: ours against a plain loop.

Data: the six real BigEarthNet Sentinel-2 L2A patches shipped by ``bigearthnet-common``
(12 per-band GeoTIFFs each, three UTM zones), ``--plots`` random plots inside them, 64 px windows. Encoder: a
randomly initialised SMARTIES (``--variant``; the tiny one makes the run read-bound, which is what a
GPU run is). Both ways produce the same vectors (checked):

* plain: one plot at a time; open each band file, read the window resampled to 10 m with
  rasterio, normalise, resize, encode a batch of one;
* ours: :func:`masksdm.satellite.embed_locations`: plots grouped by scene, files kept
  open, ``--workers`` reader threads filling batches of ``--batch`` while the encoder runs.

    python benchmarks/embed_pipeline.py                      # tiny encoder, CPU: reading speed
    python benchmarks/embed_pipeline.py --variant smarties-vitb --device cuda --plots 2000
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from foundation_encoders.discovery import find_scenes
from foundation_encoders.imagery import locate
from foundation_encoders.smarties import build_smarties
from foundation_encoders.spectrum import normalise
from masksdm.satellite import embed_locations

WINDOW = 64  # pixels of 10 m: 640 m windows fit inside the 1.2 km patches


def extract(folder: Path) -> Path:
    dist = importlib.metadata.distribution("bigearthnet-common")
    archive = Path(str(dist.locate_file("bigearthnet_common/BigEarthNet-S2-Example.tar.bz2")))
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder / "BigEarthNet-S2-Example"


@torch.inference_mode()
def plain(encoder, scenes, scene_of, x, y, device) -> np.ndarray:
    out = np.full((len(x), encoder.embed_dim), np.nan, dtype=np.float32)
    half = WINDOW / 2 * 10.0
    for i in np.flatnonzero(scene_of >= 0):
        scene = scenes[scene_of[i]]
        bands = []
        for name in scene.band_names:
            path, index = scene.bands[name]
            with rasterio.open(path) as src:
                window = from_bounds(x[i] - half, y[i] - half, x[i] + half, y[i] + half, src.transform)
                bands.append(src.read(index, window=window, out_shape=(WINDOW, WINDOW), boundless=True, fill_value=0,
                                      resampling=Resampling.bilinear).astype(np.float32))
        raw = np.stack(bands)
        image = torch.from_numpy(normalise(raw, scene.band_names, raw.min(axis=0) > 0))[None].to(device)
        image = F.interpolate(image, size=(encoder.img_size,) * 2, mode="bicubic", align_corners=False)
        out[i] = encoder(image, scene.band_names).float().cpu().numpy()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="smarties-tiny", choices=["smarties-tiny", "smarties-vitb", "smarties-vitl"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--plots", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="ours (the plain way is fp32)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder = build_smarties(args.variant).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        scenes = find_scenes(extract(Path(tmp)))
        rng = np.random.default_rng(0)
        lon, lat = [], []
        for k, scene in enumerate(scenes):
            n = args.plots // len(scenes) + (k < args.plots % len(scenes))
            left, bottom, right, top = scene.bounds
            inside = WINDOW / 2 * 10.0 + 10  # whole windows inside the patch: no edge effects
            xs, ys = rng.uniform(left + inside, right - inside, n), rng.uniform(bottom + inside, top - inside, n)
            a, b = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
            lon += list(a)
            lat += list(b)
        lon_a, lat_a = np.array(lon), np.array(lat)
        scene_of, x, y = locate(lon_a, lat_a, scenes, size_px=WINDOW)
        name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        print(f"{args.variant} on {name}, {len(lon_a)} plots in {len(scenes)} real Sentinel-2 patches, "
              f"{torch.get_num_threads()} torch threads, {args.workers} reader threads, batch {args.batch}")
        t = time.perf_counter()
        reference = plain(encoder, scenes, scene_of, x, y, device)
        t_plain = time.perf_counter() - t
        t = time.perf_counter()
        ours = embed_locations(encoder, scenes, lon_a, lat_a, window=WINDOW, batch_size=args.batch, workers=args.workers,
                               device=args.device, precision=args.precision, progress=False)
        t_ours = time.perf_counter() - t
    gap = float(np.nanmax(np.abs(ours.vectors - reference)))
    print(f"plain: {len(lon_a) / t_plain:8.1f} plots/s   ours: {len(lon_a) / t_ours:8.1f} plots/s   "
          f"ratio {t_plain / t_ours:.1f}x   max |difference| {gap:.1e}")


if __name__ == "__main__":
    main()
