"""How evenly a spatial block split shares each species' presences: random blocks against
stratified blocks, on clustered species (each lives in a disc of 0.5 to 6 degrees, as records cluster).

    python benchmarks/split_balance.py

Prints, for the 70/15/15 block split and for 5 folds, the plots' shares, the spread over species
of the share of their presences in test, and how many species (of those with 20 or more presences)
get no test presence or fewer than 5.
"""

from __future__ import annotations

import time

import numpy as np

from masksdm.data.splits import spatial_block_split, spatial_folds, split_balance


def world(n_plots: int = 5000, n_species: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(0, 30, n_plots), rng.uniform(0, 20, n_plots)
    centre = rng.uniform([0, 0], [30, 20], (n_species, 2))
    radius = rng.uniform(0.5, 6, n_species)
    inside = np.hypot(lon[:, None] - centre[:, 0], lat[:, None] - centre[:, 1]) < radius
    y = inside & (rng.random((n_plots, n_species)) < rng.uniform(0.05, 0.9, n_species))
    y[:, :3] = rng.random((n_plots, 3)) < 0.8  # three species in most plots
    return lon, lat, y


def main() -> None:
    lon, lat, y = world()
    common = y.sum(axis=0) >= 20
    print(f"{len(lon)} plots, {y.shape[1]} species ({int(common.sum())} with 20 or more presences), 1-degree blocks\n")
    print("| blocks | seconds | plots train/val/test | test share of a species' presences, 5-50-95 % | "
          "no test presence | < 5 test presences | fold share gap |")
    print("|---|---:|---|---|---:|---:|---:|")
    for name, labels in (("random", None), ("stratified", y)):
        start = time.perf_counter()
        split = spatial_block_split(lon, lat, block_size=1.0, seed=1, labels=labels)
        seconds = time.perf_counter() - start
        b = split_balance(split, y)[common]
        q = np.nanpercentile(b["share_test"], [5, 50, 95])
        folds = spatial_folds(lon, lat, n_folds=5, block_size=1.0, seed=1, labels=labels)
        per_fold = np.stack([y[folds == k].sum(axis=0) for k in range(5)])[:, common] / y[:, common].sum(axis=0)
        shares = "/".join(f"{(split == s).mean():.0%}" for s in ("train", "val", "test"))
        print(f"| {name} | {seconds:.2f} | {shares} | {q[0]:.1%} - {q[1]:.1%} - {q[2]:.1%} | "
              f"{int((b['presences_test'] == 0).sum())} | {int((b['presences_test'] < 5).sum())} | "
              f"{np.abs(per_fold - 0.2).mean():.3f} |")


if __name__ == "__main__":
    main()
