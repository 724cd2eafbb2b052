"""Options and helpers shared by the command groups."""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from masksdm.errors import MaskSDMError
from masksdm.locks import locked

__all__ = ["MIN_CLASS", "add_common", "add_device", "add_train_options", "csv_list", "load_model", "print_table",
           "run_config", "workspace_lock"]


#: The default of --min-presences: :data:`masksdm.metrics.MIN_CLASS`, restated so the CLI starts
#: without importing torch (a test checks that the two agree).
MIN_CLASS = 5


def csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def workspace_lock(args: argparse.Namespace) -> AbstractContextManager[None]:
    """The lock a command holds on its workspace: alone for the commands that write it (``prepare``,
    ``embed plots``), shared for those that read it; none without ``--workspace``."""
    workspace = getattr(args, "workspace", None)
    if workspace is None:
        return nullcontext()
    writes = args.command == "prepare" or (args.command == "embed" and args.kind == "plots")
    return locked(workspace, what="workspace", shared=not writes)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_device(p: argparse.ArgumentParser) -> None:
    """Where a model runs, and in which precision (the commands that run a trained model)."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when there is a GPU")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="auto: bf16 on CUDA, fp32 on CPU")


def run_config(args: argparse.Namespace):
    from masksdm.model.config import load_config, preset

    config = load_config(args.config) if args.config else preset(args.preset)
    changes = {}
    for key in ("device", "masking", "seed", "batch_size"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    if getattr(args, "use", None):
        changes["use"] = tuple(csv_list(args.use))
    if getattr(args, "epochs", None) is not None:
        config = config.with_epochs(args.epochs)
    return config.replace_train(**changes) if changes else config


def add_train_options(p: argparse.ArgumentParser, *, default_preset: str) -> None:
    p.add_argument("--config", type=Path, help="TOML run config (preset + [model] + [train] overrides)")
    p.add_argument("--preset", default=default_preset, choices=["cpu", "paper"],
                   help=f"model/training preset when no --config is given (default: {default_preset})")
    p.add_argument("--epochs", type=int, help="maximum epochs (overrides the config, and its min_steps)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="training batch size")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default: auto)")
    p.add_argument("--seed", type=int, help="training seed")


def print_table(frame, *, digits: int = 3) -> None:
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}"))


def load_model(args: argparse.Namespace):
    """The model named by --checkpoint, or by --workspace and --run."""
    from masksdm.model.checkpoint import load_checkpoint
    from masksdm.model.inference import resolve_device
    from masksdm.workspace import Workspace

    if args.checkpoint:
        run_dir = args.checkpoint
    elif args.workspace:
        run_dir = Workspace(args.workspace).run_dir(args.run)
    else:
        raise MaskSDMError("give the model: --workspace DIR [--run NAME] or --checkpoint RUN_DIR")
    return load_checkpoint(run_dir, device=resolve_device(args.device))
