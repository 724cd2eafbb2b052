"""``embed plots | cells``: satellite embeddings (SMARTIES) of Sentinel imagery."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from masksdm.cli._common import add_common, add_device
from masksdm.errors import MaskSDMError

__all__ = ["WEIGHTS_ENV", "add_embed", "cmd_embed"]

WEIGHTS_ENV = "MASKSDM_SMARTIES_WEIGHTS"  # foundation_encoders.WEIGHTS_ENV, spelt out to keep torch out of start-up


def cmd_embed(args: argparse.Namespace) -> int:
    import foundation_encoders
    from foundation_encoders.discovery import find_scenes
    from foundation_encoders.imagery import ImageryError
    from foundation_encoders.smarties import WeightsError
    from foundation_encoders.spectrum import BandError
    from masksdm._io import safe_name
    from masksdm.data.embeddings import embedding_path
    from masksdm.satellite import embed_cells, embed_plots
    from masksdm.workspace import Workspace

    weights = args.weights or os.environ.get(WEIGHTS_ENV)
    if not weights:
        raise MaskSDMError(
            f"no encoder weights: pass --weights FILE or set {WEIGHTS_ENV} (download "
            "smarties-v1-vitb.safetensors once from huggingface.co/gsumbul/SMARTIES-v1-ViT-B)"
        )
    ws = Workspace(args.workspace)
    name = args.name or f"smarties_{args.sensor.lower()}"
    if safe_name(name) != name:  # the name is a predictor name and the stem of its raster
        raise MaskSDMError(f"embedding name {name!r} is not a plain file name: try --name {safe_name(name)}")
    options = {
        "bands": args.bands, "window": args.window, "min_valid": args.min_valid, "batch_size": args.batch_size, "workers": args.workers,
        "device": args.device, "precision": args.precision, "checkpoint_seconds": args.checkpoint_every,
        "progress": not args.quiet,
    }
    try:
        offset = args.l2a_offset if args.l2a_offset == "auto" else int(args.l2a_offset)
        found = find_scenes(args.imagery, l2a_offset=offset)
        for problem in found.problems:
            print(f"skipped: {problem}", file=sys.stderr)
        scenes = [s for s in found if s.sensor == args.sensor]
        if not scenes:
            raise MaskSDMError(
                f"none of the {len(found)} images found under {[str(p) for p in args.imagery]} is {args.sensor}: "
                "choose --sensor S1 for Sentinel-1 (VV, VH)"
            )
        encoder = foundation_encoders.get_encoder(args.encoder, weights=weights, sha256=args.sha256)
        options["settings"] = {"weights": Path(weights).name}
        if args.kind == "plots":
            result = embed_plots(ws, encoder, scenes, name=name, resume=args.resume, force=args.force, **options)
            where = embedding_path(ws.path, name)
        else:
            like = args.like or _workspace_template(ws)
            where = args.out or embedding_path(ws.path, name, ".tif")
            result = embed_cells(encoder, scenes, like, where, resume=args.resume, force=args.force, **options)
    except (BandError, ImageryError, WeightsError) as err:
        raise MaskSDMError(str(err)) from None
    what = "plots" if args.kind == "plots" else "map cells under the imagery"
    print(f"{int(result.available.sum())} of {len(result.available)} {what} embedded ({name}, "
          f"{result.vectors.shape[1]} values); by status:")
    for status, count in result.summary().items():
        print(f"  {count:>8}  {status}")
    print(f"written: {where}")
    if args.kind == "plots":
        print(f"'{name}' is now a predictor of group Satellite: `masksdm train` uses it")
    else:
        print(f"add '{Path(where).parent}' to --rasters of `masksdm predict` / `masksdm shapley map`")
    return 0


def _workspace_template(ws) -> Path:
    rasters = ws.meta.get("rasters") or {}
    if not rasters:
        raise MaskSDMError("the workspace was prepared without rasters: give the map grid with --like RASTER")
    return Path(rasters.get("bio_1", next(iter(rasters.values()))))


def add_embed(sub) -> None:
    """The ``embed`` command and its kinds."""
    p = sub.add_parser("embed", help="satellite embeddings (SMARTIES) of Sentinel imagery around plots or map cells")
    embed_sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, what in (("plots", "one embedding per workspace plot, a new predictor for training"),
                       ("cells", "one embedding per map cell: a multiband raster for predict/shapley map")):
        q = embed_sub.add_parser(kind, help=what)
        q.add_argument("--workspace", type=Path, required=True)
        q.add_argument("--imagery", nargs="+", type=Path, required=True,
                       help="folders of per-band GeoTIFFs (as BigEarthNet) or multiband GeoTIFF/COG files")
        q.add_argument("--weights", help=f"encoder weights (.safetensors); default ${WEIGHTS_ENV}")
        q.add_argument("--sha256", help="expected sha256 of the weights file")
        q.add_argument("--encoder", default="smarties", help="smarties (variant from the weights), smarties-vitb, smarties-vitl")
        q.add_argument("--sensor", default="S2", choices=["S2", "S1"], help="Sentinel-2 L2A (default) or Sentinel-1 GRD in dB")
        q.add_argument("--bands", nargs="+", help="bands to use (default: all pretraining bands of the sensor)")
        q.add_argument("--name", help="embedding name (default smarties_s2 / smarties_s1)")
        q.add_argument("--window", type=int, default=120, help="window side in 10 m pixels (120 = 1.2 km)")
        q.add_argument("--min-valid", type=float, default=0.5, help="least share of valid pixels (0.5)")
        q.add_argument("--l2a-offset", default="auto", choices=["auto", "0", "1000"],
                       help="Sentinel-2 L2A DN offset of processing baseline 04.00+ (auto: from metadata)")
        q.add_argument("--batch-size", type=int, default=32)
        q.add_argument("--workers", type=int, help="threads reading imagery (default: one per CPU core, up to 8)")
        add_device(q)
        if kind == "cells":
            q.add_argument("--like", type=Path, help="template raster of the map grid (default: the workspace's bio_1)")
            q.add_argument("--out", type=Path, help="output GeoTIFF (default WORKSPACE/embeddings/<name>.tif)")
        q.add_argument("--resume", action="store_true", help="finish an interrupted run")
        q.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                       help="save finished batches at most this often (30; a crash loses about this much work)")
        q.add_argument("--force", action="store_true", help="compute again over an existing output")
        add_common(q)
        q.set_defaults(func=cmd_embed)
