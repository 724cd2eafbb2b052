"""Exact Shapley values of a paper-size MaskSDM: our way against the plain way, in one run.

(a) global: exact Shapley values of 6 predictor groups on the mean test AUC over 14,189 plots
    (64 coalitions, each a pass over every plot, AUC per species);
(b) local: exact Shapley values of 5 groups for one species at 65,117 map cells (32 coalitions;
    the 20 plot-level predictors are missing on maps, so they are masked throughout).

Model: 61 predictors + 1 embedding token (masked throughout, as the MaskSDM paper does for SatCLIP),
12,738 species, 7 blocks, d_token 192 (5,381,554 parameters). Data: random rows of that shape.

The plain way, as in the MaskSDM reference code: for each coalition one fp32 forward over the full
token sequence (every masked token included) and all 12,738 species, batches of 2,000; then a
Python loop over sites, players and subsets combines the coalition values. Both ways use the same
AUC routine, so (a) compares the Shapley machinery, not the metric.

Our way: masked tokens collapsed into one (a coalition of 10 visible predictors runs 11 tokens,
not 62), only the species asked for through the head, and the combination as one matrix product
with the Shapley weight matrix (``masksdm.explain.core``), bf16 autocast on CUDA.

On a 2-core CPU the plain way needs hours at full size, so ``--scale`` runs a fraction of the rows
(and cells) for both ways; the ratio does not depend on it and the full-size times are extrapolated
linearly (printed as such).

    python benchmarks/shapley.py --scale 0.02          # CPU
    python benchmarks/shapley.py --device cuda         # GPU, full size
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import time

import numpy as np
import torch

from masksdm.data.predictors import default_predictors, predictor_groups
from masksdm.explain.core import exact_shapley
from masksdm.explain.games import LocalGame, MetricGame
from masksdm.metrics import roc_auc
from masksdm.model.network import MaskSDM, count_parameters

N_SPECIES, D_EMBEDDING = 12_738, 256
N_TEST, N_CELLS = 14_189, 65_117


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def player_masks(names: list[str]) -> np.ndarray:
    groups = predictor_groups(default_predictors())
    index = {p.name: i for i, p in enumerate(default_predictors())}
    masks = np.zeros((len(names), len(index)), dtype=bool)
    for j, group in enumerate(names):
        masks[j, [index[n] for n in groups[group]]] = True
    return masks


@torch.no_grad()
def plain_values(model, x, masks, *, species: int | None, labels=None, batch_size=2000) -> dict[frozenset, np.ndarray]:
    """v(S) for every coalition S: one fp32 forward per coalition over the full sequence, all species."""
    device = next(model.parameters()).device
    k = len(masks)
    values = {}
    for size in range(k + 1):
        for subset in itertools.combinations(range(k), size):
            keep = torch.as_tensor(masks[list(subset)].any(axis=0), device=device)
            logits = []
            for start in range(0, len(x), batch_size):
                xb = x[start : start + batch_size]
                logits.append(model(xb, keep.expand(len(xb), -1), collapse=False))
            out = torch.cat(logits)
            if species is None:
                values[frozenset(subset)] = np.nanmean(100 * roc_auc(out, labels))
            else:
                values[frozenset(subset)] = torch.sigmoid(out[:, species]).cpu().numpy()
    return values


def plain_combination(values: dict[frozenset, np.ndarray], k: int) -> np.ndarray:
    """phi_j = sum over S without j of |S|!(k-|S|-1)!/k! (v(S u j) - v(S)), site by site in Python."""
    first = np.atleast_1d(next(iter(values.values())))
    phi = np.zeros((len(first), k))
    table = {s: np.atleast_1d(v) for s, v in values.items()}
    for site in range(len(first)):
        for j in range(k):
            for subset, v in table.items():
                if j in subset:
                    continue
                w = math.factorial(len(subset)) * math.factorial(k - len(subset) - 1) / math.factorial(k)
                phi[site, j] += w * (table[subset | {j}][site] - v[site])
    return phi


def run(label: str, plain, ours, device) -> tuple[float, float, np.ndarray, np.ndarray]:
    _sync(device)
    t = time.perf_counter()
    reference = plain()
    _sync(device)
    t_plain = time.perf_counter() - t
    t = time.perf_counter()
    result = ours()
    _sync(device)
    t_ours = time.perf_counter() - t
    return t_plain, t_ours, reference, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 14,189 plots and 65,117 cells")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="ours: auto = bf16 on CUDA, fp32 on CPU (the plain way is always fp32)")
    parser.add_argument("--batch-size", type=int, help="ours: rows per pass (default 16384 on CUDA, 512 on CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    batch = args.batch_size or (16_384 if device.type == "cuda" else 512)
    torch.manual_seed(0)
    model = MaskSDM(n_predictors=61, n_species=N_SPECIES, d_embeddings=(D_EMBEDDING,)).to(device).eval()
    n_test, n_cells = max(2, round(N_TEST * args.scale)), max(2, round(N_CELLS * args.scale))
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), {torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"model: {count_parameters(model):,} parameters; ours in precision {args.precision}, batch {batch}")
    print(f"rows: {n_test:,} test plots (of {N_TEST:,}) and {n_cells:,} map cells (of {N_CELLS:,})\n")
    g = torch.Generator().manual_seed(0)

    # (a) global, 6 groups, mean AUC over the species with presences and absences
    groups6 = ["WorldClim", "SoilGrids", "Location", "Topography", "Metadata", "Human"]
    masks6 = player_masks(groups6)
    x = torch.randn(n_test, 61, generator=g).to(device)
    prevalence = torch.exp(torch.empty(N_SPECIES).uniform_(math.log(2e-4), math.log(0.2), generator=g))
    labels = (torch.rand(n_test, N_SPECIES, generator=g) < prevalence).to(device)
    keep = labels.any(0) & ~labels.all(0)
    species = torch.nonzero(keep).squeeze(1).cpu().numpy()
    print(f"(a) global, 6 groups, {len(species):,} evaluable species")
    t_plain, t_ours, ref, res = run(
        "global",
        lambda: plain_combination(plain_values(model, x, masks6, species=None, labels=labels), 6)[0],
        lambda: exact_shapley(MetricGame(model, x.cpu().numpy(), masks6, species, labels[:, species].cpu().numpy(),
                                         batch_size=batch, precision=args.precision), groups6).values,
        device,
    )
    report(t_plain, t_ours, ref, res, args.scale)

    # (b) local, 5 groups (no plot metadata on maps), one species
    groups5 = ["WorldClim", "SoilGrids", "Location", "Topography", "Human"]
    masks5 = player_masks(groups5)
    cells = torch.randn(n_cells, 61, generator=g)
    cells[:, player_masks(["Metadata"])[0]] = float("nan")
    cells = cells.to(device)
    print(f"\n(b) local, 5 groups, 1 species, {n_cells:,} cells")
    t_plain, t_ours, ref, res = run(
        "local",
        lambda: plain_combination(plain_values(model, cells, masks5, species=7), 5),
        lambda: exact_shapley(LocalGame(model, cells.cpu().numpy(), masks5, np.array([7]), batch_size=batch,
                                        precision=args.precision), groups5).values[:, 0],
        device,
    )
    report(t_plain, t_ours, ref, res, args.scale)


def report(t_plain: float, t_ours: float, reference: np.ndarray, result: np.ndarray, scale: float) -> None:
    diff = float(np.abs(np.asarray(reference) - np.asarray(result)).max())
    print(f"  plain way {t_plain:9.1f} s   ours {t_ours:8.1f} s   ratio {t_plain / t_ours:5.1f}x   "
          f"max |difference| {diff:.2g}")
    if scale < 1:
        print(f"  extrapolated to full size: plain {t_plain / scale / 60:.0f} min, ours {t_ours / scale / 60:.1f} min")


if __name__ == "__main__":
    main()
