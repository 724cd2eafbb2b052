"""How long the dashboard takes to redraw a map, against the plain way, on the demo workspace.

Both ways draw the same shown grid (every k-th raster cell, at most about 15,000 land cells).
Plain way: every redraw predicts those cells for the species shown from scratch, with the full
token sequence (masked predictors as mask tokens), in batches of 2,048. Ours
(:class:`masksdm.dashboard.view.Dashboard`): masked tokens collapsed and the pooled features cached per
predictor subset, so that a new species, threshold or layer only runs the head.

    masksdm demo                      # once: builds masksdm-demo/
    python benchmarks/dashboard.py [--workspace masksdm-demo/workspace]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from masksdm.dashboard.view import Dashboard


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.inference_mode()
def plain_map(board: Dashboard, species: str, visible: np.ndarray) -> np.ndarray:
    """The same shown cells, predicted from scratch: full token sequence, nothing cached."""
    keep = torch.as_tensor(visible)
    index = torch.tensor(board.card.species_indices([species]))
    out = [torch.sigmoid(board.model(xb, keep.expand(len(xb), -1), index, collapse=False))
           for xb in torch.split(board.x, 2048)]
    return torch.cat(out).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default="masksdm-demo/workspace")
    args = parser.parse_args()
    torch.manual_seed(0)
    open_time = time.perf_counter()
    board = Dashboard(args.workspace)
    open_time = time.perf_counter() - open_time
    groups = list(board.groups())
    every, fewer = board.visible(groups), board.visible(groups[1:])
    a, b = board.species[0], board.species[1]
    print(f"{args.workspace}: {board.stack.shape[0]} x {board.stack.shape[1]} raster cells, shown "
          f"{board.shape[0]} x {board.shape[1]} ({len(board.cells):,} land cells), {len(board.species)} species, "
          f"{torch.get_num_threads()} threads; opening took {open_time:.1f} s")
    rows = [
        ("first map (all groups)", timed(lambda: plain_map(board, a, every)), timed(lambda: board.probability(a, every))),
        ("another species", timed(lambda: plain_map(board, b, every)), timed(lambda: board.probability(b, every))),
        ("a group switched off", timed(lambda: plain_map(board, b, fewer)), timed(lambda: board.probability(b, fewer))),
        ("switched back on", timed(lambda: plain_map(board, b, every)), timed(lambda: board.probability(b, every))),
        ("richness map", float("nan"), timed(lambda: board.richness(every))),
        ("global Shapley, first species", float("nan"), timed(lambda: board.global_values(a))),
        ("global Shapley, next species", float("nan"), timed(lambda: board.global_values(b))),
    ]
    print(f"\n{'redraw':32s}{'plain, s':>10s}{'ours, s':>10s}{'ratio':>8s}")
    for label, plain, ours in rows:
        ratio = f"{plain / ours:7.0f}x" if np.isfinite(plain) else ""
        plain_text = f"{plain:10.2f}" if np.isfinite(plain) else f"{'':>10s}"
        print(f"{label:32s}{plain_text}{ours:10.3f}{ratio}")


if __name__ == "__main__":
    main()
