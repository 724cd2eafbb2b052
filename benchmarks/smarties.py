"""Throughput of the SMARTIES encoder: our one-matmul projection against the official loop.

Model: a SMARTIES ViT (default ViT-B, 88.6 M parameters) with random weights, 224 px images of
``--bands`` Sentinel-2/1 bands. Three measurements in the same run on the same machine:

* plain: the official-style projection (patchify, a (B, 14, 14, C, D) buffer, one ``Linear`` per
  projection index over boolean masks, 12 x mean) followed by the trunk;
* ours: one matrix product of each patch's C x 256 pixels with the bands' stacked projections,
  followed by the same trunk;
* trunk only: tokens already projected, to show what the projection itself costs;
* projection alone, in the three forms (plain loop, ours, the same map as one ``conv2d``).

fp32 on CPU; bf16 autocast (and TF32 matmuls) on CUDA. The printed ratio ours/plain is what to
quote, with the device line.

    python benchmarks/smarties.py                          # CPU, batch 4 (about a minute on 2 cores)
    python benchmarks/smarties.py --device cuda --batch 256 --compile
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Callable

import torch

from foundation_encoders.smarties import build_smarties
from foundation_encoders.spectrum import SENTINEL1_BANDS, SENTINEL2_L2A_BANDS, projection_indices


def compare(
    fns: dict[str, Callable[[], object]], *, batch: int, seconds: float, device: torch.device, warmup: int = 2
) -> dict[str, float]:
    """Images per second of each ``fn`` (one batch per call), from the median call time.

    The functions take turns call by call, so a load change on a shared machine hits all alike.
    """
    cuda = device.type == "cuda"
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {label: [] for label in fns}
    start = time.perf_counter()
    while len(next(iter(times.values()))) < 3 or time.perf_counter() - start < seconds * len(fns):
        for label, fn in fns.items():
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times[label].append(time.perf_counter() - t0)
    return {label: batch / statistics.median(t) for label, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variant", default="smarties-vitb", choices=("smarties-vitb", "smarties-vitl"))
    parser.add_argument("--batch", type=int, help="images per batch (4 on CPU, 128 on CUDA)")
    parser.add_argument("--bands", type=int, default=12, help="bands per image: 1..12 Sentinel-2, 13-14 add S1")
    parser.add_argument("--seconds", type=float, help="seconds per measured form (3 on CPU, 5 on CUDA)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile of our forward")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (128 if cuda else 4)
    seconds = args.seconds if args.seconds is not None else (5.0 if cuda else 3.0)
    all_bands = [*SENTINEL2_L2A_BANDS, *SENTINEL1_BANDS]
    if not 1 <= args.bands <= len(all_bands):
        parser.error(f"--bands must be in 1..{len(all_bands)}, got {args.bands}")
    bands = all_bands[: args.bands]
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine() or "cpu"

    torch.manual_seed(0)
    model = build_smarties(args.variant).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"device: {name}, torch {torch.__version__}, threads {torch.get_num_threads()}, {args.variant} "
        f"({n_params:,} params), batch {batch}, {len(bands)} bands, {'bf16 autocast' if cuda else 'fp32'}"
    )
    x = torch.randn(batch, len(bands), model.img_size, model.img_size, device=device)
    indices = projection_indices(bands)

    def autocast() -> contextlib.AbstractContextManager[object]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    with torch.inference_mode(), autocast():
        tokens = model.project(x, indices)
        plain = model.forward_reference(x, bands)
        ours = model(x, bands)
    print(f"max |ours - plain| on this batch: {(ours.float() - plain.float()).abs().max().item():.2e}")

    def run(fn: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode(), autocast():
                return fn()

        return call

    fns = {
        "plain (official loop)": run(lambda: model.forward_reference(x, bands)),
        "ours (one matmul)": run(lambda: model(x, bands)),
    }
    if args.compile:
        compiled = torch.compile(model.forward)
        fns["ours + torch.compile"] = run(lambda: compiled(x, bands))
    fns["trunk only (tokens given)"] = run(lambda: model.forward_tokens(tokens))
    fns["projection only, plain"] = run(lambda: model.project_reference(x, indices))
    fns["projection only, ours"] = run(lambda: model.project(x, indices))
    fns["projection only, one conv"] = run(lambda: model.project_conv(x, indices))
    rates = compare(fns, batch=batch, seconds=seconds, device=device, warmup=3 if args.compile else 2)

    plain_rate = rates["plain (official loop)"]
    print(f"\n{'':28s}{'images/s':>10s}{'x plain':>10s}")
    for label, rate in rates.items():
        ratio = f"{rate / plain_rate:10.2f}" if not label.startswith("projection") else ""
        print(f"{label:28s}{rate:10.1f}{ratio}")
    proj = rates["projection only, plain"], rates["projection only, ours"]
    print(f"projection alone: ours is {proj[1] / proj[0]:.1f}x the plain loop")

if __name__ == "__main__":
    main()
