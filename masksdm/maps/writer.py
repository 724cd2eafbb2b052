"""Map outputs on disk: one file per output (and species), filled strip by strip in tiled
GeoTIFFs under ``out_dir/.partial/``, with a record of the finished strips so that an interrupted
run resumes; when every strip is done, each file is copied to its final Cloud-Optimized GeoTIFF."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window
from tqdm import tqdm

from masksdm._io import atomic_path, write_json
from masksdm.data.grid import RasterStack
from masksdm.errors import ConfigError
from masksdm.maps.plan import MapPlan

__all__ = ["PARTIAL", "PartialMaps", "Target", "file_stem", "file_stems", "plan_targets"]

#: The folder of an unfinished run, inside ``out_dir``.
PARTIAL = ".partial"


def file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "species"


def file_stems(names: Sequence[str]) -> list[str]:
    """File stems of species names; names that would share a file (e.g. hybrids written with and
    without the multiplication sign, or differing only in case) get a suffix from their hash."""
    stems = [file_stem(n) for n in names]
    counts = Counter(s.lower() for s in stems)
    return [s if counts[s.lower()] == 1 else f"{s}_{hashlib.sha256(n.encode()).hexdigest()[:8]}"
            for s, n in zip(stems, names, strict=True)]


@dataclass
class Target:
    """One output file: its bands and where each strip's rows go."""

    kind: str
    path: Path  # final COG
    bands: list[int]  # rows of the strip's array for this file
    descriptions: list[str]
    dtype: str
    nodata: float | None
    scale: float
    tags: dict[str, str]
    band_tags: list[dict[str, str]] = field(default_factory=list)


def plan_targets(plan: MapPlan, out_dir: Path, layout: str, model_tags: dict[str, str]) -> list[Target]:
    targets = []
    n = len(plan.species)
    for kind in ("probability", "binary"):
        if kind not in plan.outputs:
            continue
        dtype, nodata, scale = (plan.dtype, plan.nodata, plan.scale) if kind == "probability" else ("uint8", 255, 1.0)
        tags = dict(model_tags, output=kind)
        if kind == "probability":
            tags["units"] = "presence probability (value x scale + offset)"
        if plan.threshold_rule is not None:
            tags["threshold_rule"] = plan.threshold_rule
        band_tags = [{"species": s} | ({"threshold": repr(plan.thresholds[j])} if plan.thresholds else {})
                     for j, s in enumerate(plan.species)]
        if layout == "multiband":
            targets.append(Target(kind, out_dir / f"{kind}.tif", list(range(n)), list(plan.species), dtype, nodata,
                                   scale, tags, band_tags))
        else:
            for j, (s, stem) in enumerate(zip(plan.species, file_stems(plan.species), strict=True)):
                t = dict(tags, species=s)
                if plan.thresholds is not None:
                    t["threshold"] = repr(plan.thresholds[j])
                targets.append(Target(kind, out_dir / kind / f"{stem}.tif", [j], [s], dtype, nodata,
                                       scale, t, [band_tags[j]]))
    if "richness" in plan.outputs:
        descriptions = ["expected_richness"] + (["predicted_present"] if plan.thresholds is not None else [])
        tags = dict(model_tags, output="richness", n_species=str(n),
                    units="number of species: band 1 sum of probabilities, band 2 count above threshold")
        if plan.threshold_rule is not None:
            tags["threshold_rule"] = plan.threshold_rule
        targets.append(Target("richness", out_dir / "richness.tif", list(range(len(descriptions))), descriptions,
                               "float32", float("nan"), 1.0, tags))
    return targets


class PartialMaps:
    """The tiled GeoTIFFs being filled strip by strip, and the record of finished strips."""

    def __init__(self, out_dir: Path, targets: list[Target], stack: RasterStack, signature: str, resume: bool):
        self.dir = out_dir / PARTIAL
        self.targets, self.stack, self.signature = targets, stack, signature
        self.state_path = self.dir / "state.json"
        self.done: set[int] = set()
        if resume and self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            if state.get("signature") != signature:
                raise ConfigError(
                    f"the unfinished run in '{self.dir}' was started with other options or data: rerun it with the "
                    "same ones, or pass --force to start over"
                )
            self.done = set(state["done"])
        elif self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: list[Any] = []
        self._open(new=not self.done)
        self._last = time.monotonic()

    def _tmp(self, i: int) -> Path:
        return self.dir / f"{i:05d}.tif"

    def _open(self, *, new: bool) -> None:
        self.files = []
        for i, t in enumerate(self.targets):
            if new:
                profile = self.stack.profile(count=len(t.bands), dtype=t.dtype, nodata=t.nodata)
                dst = rasterio.open(self._tmp(i), "w", **profile)
                dst.descriptions = tuple(t.descriptions)
                if t.scale != 1.0:
                    dst.scales = (t.scale,) * len(t.bands)
                    dst.offsets = (0.0,) * len(t.bands)
                dst.update_tags(**t.tags)
                for b, bt in enumerate(t.band_tags, start=1):
                    dst.update_tags(b, **bt)
            else:
                dst = rasterio.open(self._tmp(i), "r+")
            self.files.append(dst)

    def write(self, window: Window, arrays: dict[str, np.ndarray]) -> None:
        for t, dst in zip(self.targets, self.files, strict=True):
            dst.write(arrays[t.kind][t.bands], window=window)
        self.done.add(int(window.row_off))
        if time.monotonic() - self._last > 30:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Flush every file to disk (close and reopen), then record the finished strips."""
        self.close()
        write_json(self.state_path, {"signature": self.signature, "done": sorted(self.done)})
        self._open(new=False)
        self._last = time.monotonic()

    def close(self) -> None:
        for dst in self.files:
            dst.close()
        self.files = []

    def finish(self, *, force: bool, progress: bool = True) -> list[Path]:
        """Copy every file to a COG at its final path (atomically), then remove the partial folder."""
        self.close()
        written = []
        bar = tqdm(self.targets, desc="writing COGs", unit="file", disable=not progress or len(self.targets) < 20)
        for i, t in enumerate(bar):
            t.path.parent.mkdir(parents=True, exist_ok=True)
            resampling = "NEAREST" if t.kind == "binary" else "AVERAGE"
            with atomic_path(t.path, force=force) as tmp:
                rasterio.shutil.copy(self._tmp(i), tmp, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
                                     OVERVIEWS="IGNORE_EXISTING", OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER")
            written.append(t.path)
        shutil.rmtree(self.dir)
        return written
