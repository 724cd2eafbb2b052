"""The ``masksdm`` command line: ``masksdm <command> --help`` explains each command.

Typical use::

    masksdm demo                                  # everything on the built-in virtual world
    masksdm fetch worldclim --resolution 10m      # real data, checked, into the cache (fetch --list)
    masksdm prepare --splotopen DIR --rasters DIR --workspace ws
    masksdm train --workspace ws --preset cpu
    masksdm evaluate --workspace ws
    masksdm compare --workspace ws
    masksdm cv --workspace ws --folds 5             # spatial k-fold cross-validation
    masksdm embed plots --workspace ws --imagery S2_DIR --weights smarties-v1-vitb.safetensors
    masksdm predict --workspace ws --rasters DIR --species all --out maps --write probability richness
    masksdm predict --workspace ws --rasters FUTURE_DIR --species all --out maps_2050 --threshold model --write probability novelty
    masksdm change --current maps --future maps_2050 --out change   # lost, kept and gained range per species
    masksdm shapley global --workspace ws         # which predictor groups matter, on test AUC
    masksdm shapley map --workspace ws --rasters DIR --species "Fagus sylvatica" --out fagus_shapley.tif
    masksdm info --workspace ws
    masksdm app --workspace ws                    # the dashboard
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from masksdm._version import __version__
from masksdm.cli import app, data, embed, explain, fetch, maps, model
from masksdm.cli._common import workspace_lock
from masksdm.errors import MaskSDMError

__all__ = ["build_parser", "main"]

log = logging.getLogger("masksdm")

_EPILOG = """\
The workspace is a folder shared by all commands (tables, predictors, models, reports).
Start with `masksdm demo` to see the whole pipeline on simulated data in a few minutes.
"""




# the order of `masksdm --help`
_COMMANDS = (
    app.add_demo,
    fetch.add_fetch,
    data.add_simulate,
    data.add_prepare,
    model.add_train,
    model.add_evaluate,
    model.add_compare,
    model.add_cv,
    explain.add_shapley,
    embed.add_embed,
    maps.add_predict,
    maps.add_change,
    app.add_app,
    data.add_info,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="masksdm", description="MaskSDM species distribution models from any subset of predictors.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"masksdm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``masksdm`` and ``python -m masksdm``; returns the exit code."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with workspace_lock(args):  # two commands never mix their files in one workspace
            return int(args.func(args))
    except MaskSDMError as err:
        print(f"masksdm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"masksdm {args.command}: interrupted (finished work is kept; rerun with --resume where offered)",
              file=sys.stderr)
        return 130



if __name__ == "__main__":
    sys.exit(main())
