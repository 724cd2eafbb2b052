"""Training and inference throughput of the paper-size MaskSDM, against the plain way.

Training is measured with the full token sequence and with the masked tokens collapsed into one
(``train.collapse``): each row keeps a uniform share of its tokens, as in masked training.

Model: 61 tabular predictors + 1 embedding token (256-d), 12,738 species, 7 blocks, d_token 192
(5,381,554 parameters, as in the paper). Data: random rows of the right shape.

The plain way (as in the reference code): fp32, batch 256, a DataLoader over CPU arrays with a
Python loop, every batch copied to the device. Our way: data resident on the device, masks drawn
on the device, bf16 autocast (on CUDA, and on CPUs with bf16 instructions), large inference batches
on a GPU, inference_mode, and (with --compile) torch.compile.
Both are measured in the same run on the same machine; the printed ratios are what to quote.

    python benchmarks/throughput.py                 # CPU (2 cores: keep --seconds small)
    python benchmarks/throughput.py --device cuda   # GPU
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from masksdm.model.inference import autocast
from masksdm.model.losses import WeightedLoss
from masksdm.model.network import MaskSDM, count_parameters

N_PREDICTORS, D_EMBEDDING, N_SPECIES = 61, 256, 12_738


def make_data(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_PREDICTORS, generator=g)
    x[torch.rand(n, N_PREDICTORS, generator=g) < 0.2] = float("nan")
    e = torch.randn(n, D_EMBEDDING, generator=g)
    y = torch.rand(n, N_SPECIES, generator=g) < 20 / N_SPECIES
    return x, e, y


def timed(fn, *, seconds: float, device: torch.device, warmup: int = 1) -> float:
    """Rows per second of ``fn`` (which returns the rows it processed), run for about ``seconds``."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    rows, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        rows += fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--rows", type=int, default=8192, help="rows of synthetic data")
    parser.add_argument("--infer-batch", type=int, help="our inference batch size (8192 on CUDA, 256 on CPU)")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.infer_batch is None:
        # large batches pay on a GPU; on a CPU the (batch x heads x 62 x 62) attention falls out of cache
        args.infer_batch = 8192 if device.type == "cuda" else 256
    torch.manual_seed(0)
    model = MaskSDM(n_predictors=N_PREDICTORS, n_species=N_SPECIES, d_embeddings=(D_EMBEDDING,)).to(device)
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'}"
          f", torch {torch.__version__}, threads {torch.get_num_threads()}, params {count_parameters(model):,}")
    x, e, y = make_data(args.rows)
    loss_fn = WeightedLoss(y.sum(0), len(y)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    # --- training: plain way --------------------------------------------------------------
    loader = DataLoader(TensorDataset(x, e, y), batch_size=256, shuffle=True)

    def train_plain() -> int:
        rows = 0
        for xb, eb, yb in loader:
            xb, eb, yb = xb.to(device), eb.to(device), yb.to(device)
            keep = torch.rand((len(xb), model.n_tokens), device=device) < torch.rand(())
            loss = loss_fn(model(torch.cat([xb, eb], 1), keep), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rows += len(xb)
            if rows >= 2048:
                break
        return rows

    xd, ed, yd = x.to(device), e.to(device), y.to(device)

    def make_train_ours(step_model, precision: str = "auto", collapse: bool = False):
        def train_ours() -> int:
            rows = 0
            order = torch.randperm(len(xd), device=device)
            for start in range(0, 2048, 256):
                idx = order[start : start + 256]
                xb, eb, yb = xd[idx], ed[idx], yd[idx]
                keep = torch.rand((len(xb), model.n_tokens), device=device) < torch.rand((), device=device)
                with autocast(device, precision):
                    loss = loss_fn(step_model(torch.cat([xb, eb], 1), keep, collapse=collapse), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                rows += len(xb)
            return rows
        return train_ours

    model.train()
    plain_train = timed(train_plain, seconds=args.seconds, device=device)
    results = [
        ("train samples/s", plain_train, f"ours {precision}, device-resident batches",
         timed(make_train_ours(model, precision), seconds=args.seconds, device=device))
        for precision in ("fp32", "bf16")
    ]
    # masked tokens collapsed into one in training too (exact without dropout; with the paper's
    # dropout 0.1 it is another valid objective): the same loop, shorter sequences
    for precision in ("fp32", "bf16"):
        results.append(("train samples/s", plain_train, f"ours {precision}, masked tokens collapsed",
                        timed(make_train_ours(model, precision, collapse=True), seconds=args.seconds, device=device)))
    if args.compile:
        compiled = torch.compile(model)
        results.append(("train samples/s", plain_train, "ours + torch.compile",
                        timed(make_train_ours(compiled), seconds=args.seconds, device=device, warmup=3)))

    # --- inference: plain way ---------------------------------------------------------------
    model.eval()
    infer_loader = DataLoader(TensorDataset(x, e), batch_size=256)

    @torch.no_grad()
    def infer_plain() -> int:
        rows = 0
        for xb, eb in infer_loader:
            model(torch.cat([xb, eb], 1).to(device)).cpu()
            rows += len(xb)
            if rows >= 4096:
                break
        return rows

    xed = torch.cat([xd, ed], 1)

    def make_infer_ours(infer_model, precision: str):
        @torch.inference_mode()
        def infer_ours() -> int:
            rows = 0
            for start in range(0, len(xd), args.infer_batch):
                with autocast(device, precision):
                    infer_model(xed[start : start + args.infer_batch])
                rows += min(args.infer_batch, len(xd) - start)
            return rows
        return infer_ours

    plain_infer = timed(infer_plain, seconds=args.seconds, device=device)
    for precision in ("fp32", "bf16"):
        results.append(("infer rows/s", plain_infer, f"ours {precision}, batch {args.infer_batch}, inference_mode",
                        timed(make_infer_ours(model, precision), seconds=args.seconds, device=device)))
    if args.compile:
        compiled = torch.compile(model)
        results.append(("infer rows/s", plain_infer, "ours + torch.compile",
                        timed(make_infer_ours(compiled, "auto"), seconds=args.seconds, device=device, warmup=3)))

    print(f"\n{'measure':<17} {'plain (fp32, b256, loop)':>25} {'ours':>12} {'ratio':>7}  variant")
    for measure, plain, name, ours in results:
        print(f"{measure:<17} {plain:>25,.0f} {ours:>12,.0f} {ours / plain:>6.2f}x  {name}")


if __name__ == "__main__":
    main()
