"""``predict``: probability, binary, richness, uncertainty and novelty maps from rasters;
``change``: range change between two projections."""

from __future__ import annotations

import argparse
from pathlib import Path

from masksdm.cli._common import add_common, add_device, csv_list, load_model
from masksdm.errors import MaskSDMError

__all__ = ["OUTPUTS", "add_change", "add_predict", "cmd_change", "cmd_predict"]

#: The outputs of ``predict --write``: :data:`masksdm.maps.plan.OUTPUTS`, spelt out here because
#: building the parser must not import torch (a test keeps the two equal).
OUTPUTS = ("probability", "binary", "richness", "uncertainty", "novelty")


def cmd_predict(args: argparse.Namespace) -> int:
    from masksdm.maps.predict import predict_maps
    from masksdm.workspace import Workspace

    species = None if args.species in (None, ["all"]) else list(args.species)
    if args.species_file:
        species = [line.strip() for line in args.species_file.read_text().splitlines() if line.strip()]
        if not species:
            raise MaskSDMError(f"'{args.species_file}' names no species: write one species name per line")
    if species is None and args.species is None:
        raise MaskSDMError("choose species: --species NAME [NAME ...], --species all, or --species-file FILE")
    model, card = load_model(args)
    run_dir = args.checkpoint or Workspace(args.workspace).run_dir(args.run)
    ws = Workspace(args.workspace) if args.workspace else None
    result = predict_maps(
        model, card, args.rasters, args.out, species=species, use=csv_list(args.use) if args.use else None,
        mask=csv_list(args.mask) if args.mask else None, outputs=args.write, dtype=args.dtype, layout=args.layout,
        threshold=args.threshold, workspace=ws, clamp=args.clamp, like=args.like, align=args.align, memory_mb=args.memory_mb,
        block_rows=args.block_rows, precision=args.precision, workers=args.workers, scheduler=args.scheduler,
        run_dir=run_dir, resume=args.resume, checkpoint_seconds=args.checkpoint_every, force=args.force,
        progress=not args.quiet,
    )
    rate = result.n_cells * len(result.plan.species) / result.seconds
    print(f"{len(result.files)} file(s) in {result.out_dir} ({result.n_cells:,} cells x {len(result.plan.species)} "
          f"species in {result.seconds:.0f} s, {rate:,.0f} cell-species/s)")
    if result.removed:
        print(f"removed {len(result.removed)} map(s) of an earlier run in {result.out_dir} that this run did not "
              "rewrite (--force)")
    if result.plan.threshold_rule:
        print(f"threshold rule {result.plan.threshold_rule}: thresholds in each file's tags")
    hidden = [p for p, v in zip(card.predictors, result.plan.visible, strict=True) if not v]
    if hidden:
        print(f"masked on these maps: {', '.join(p.name for p in hidden)}")
    if any(p.is_embedding for p in hidden):
        print("  an embedding needs its <name>.tif among --rasters: `masksdm embed cells` writes it")
    return 0


def add_predict(sub) -> None:
    """The ``predict`` command."""
    p = sub.add_parser("predict", help="probability, binary and richness maps (Cloud-Optimized GeoTIFFs) from rasters")
    p.add_argument("--workspace", type=Path, help="workspace (model under models/<run>; validation plots for thresholds)")
    p.add_argument("--run", default="main", help="model run in the workspace (default main)")
    p.add_argument("--checkpoint", type=Path, help="a run folder instead of --workspace/--run")
    p.add_argument("--rasters", nargs="+", type=Path, required=True, help="predictor raster files or folders")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--species", nargs="+", help="species names, or 'all'")
    p.add_argument("--species-file", type=Path, help="a text file with one species name per line")
    p.add_argument("--use", help="only these predictors/groups (comma-separated); default: all a map can have")
    p.add_argument("--mask", help="leave these predictors/groups out (comma-separated)")
    p.add_argument("--write", nargs="+", default=["probability"], choices=list(OUTPUTS),
                   help="outputs (default probability); richness alone writes no per-species raster; uncertainty: "
                        "an ensemble's spread; novelty: MESS and out-of-range count against the training plots "
                        "(needs --workspace)")
    p.add_argument("--threshold", help="binary maps and richness count: model (the thresholds stored in the model), "
                                       "max_tss, sensitivity:0.9, or a number")
    p.add_argument("--clamp", action="store_true",
                   help="move predictor values outside the training plots' range onto its ends (needs --workspace)")
    p.add_argument("--dtype", default="uint8", choices=["uint8", "uint16", "float32"],
                   help="probability maps: uint8 (scale 1/254, default), uint16 (1/65534) or float32")
    p.add_argument("--layout", default="per-species", choices=["per-species", "multiband"])
    p.add_argument("--like", type=Path, help="template raster of the output grid (default: bio_1)")
    p.add_argument("--align", action="store_true", help="warp rasters on other grids onto the template grid")
    p.add_argument("--memory-mb", type=float, default=256, help="target memory of one strip of cells (256)")
    p.add_argument("--block-rows", type=int, help="strip height in rows (instead of --memory-mb)")
    p.add_argument("--workers", type=int, help="predict on a dask LocalCluster of N worker processes")
    p.add_argument("--scheduler", help="predict on the dask cluster at this address (tcp://host:8786)")
    add_device(p)
    p.add_argument("--resume", action="store_true", help="finish an interrupted run in --out")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="record finished strips at most this often (30; a crash loses about this much work)")
    p.add_argument("--force", action="store_true",
                   help="overwrite maps in --out; maps of an earlier run there that this run does not rewrite are "
                        "removed (only maps masksdm wrote; other files are kept)")
    add_common(p)
    p.set_defaults(func=cmd_predict)


def cmd_change(args: argparse.Namespace) -> int:
    from masksdm.maps.change import range_change

    thresholds: float | dict[str, float] | None = None
    if args.threshold == "model":
        from masksdm.model.checkpoint import read_card
        from masksdm.workspace import Workspace

        if not (args.checkpoint or args.workspace):
            raise MaskSDMError("--threshold model reads the model's thresholds: give --workspace DIR or --checkpoint RUN")
        card, _ = read_card(args.checkpoint or Workspace(args.workspace).run_dir(args.run))
        thresholds = {s: t for s, t in zip(card.species, card.thresholds or [], strict=False) if t is not None}
        if not thresholds:
            raise MaskSDMError("the model stores no thresholds (it was trained without validation plots): give "
                               "--threshold NUMBER, or predict both folders with --threshold max_tss")
    elif args.threshold is not None:
        try:
            thresholds = float(args.threshold)
        except ValueError:
            raise MaskSDMError(f"--threshold must be a number in (0, 1) or 'model', got {args.threshold!r}") from None
        if not 0 < thresholds < 1:
            raise MaskSDMError(f"--threshold must be in (0, 1), got {thresholds}")
    result = range_change(args.current, args.future, args.out, species=args.species, thresholds=thresholds,
                          layout=args.layout, memory_mb=args.memory_mb, force=args.force, progress=not args.quiet)
    table = result.table
    print(f"{len(table)} species compared over {result.n_cells:,} cells in {result.seconds:.0f} s: "
          f"{int((table['range_change'] < 0).sum())} lose range, {int((table['range_change'] > 0).sum())} gain")
    print(f"median range change {table['range_change'].median():+.1f} % (percent gained - percent lost)")
    print(f"maps and range_change.csv in {result.out_dir}")
    return 0


def add_change(sub) -> None:
    """The ``change`` command."""
    p = sub.add_parser("change", help="range change between two projections: lost, kept and gained cells per species")
    p.add_argument("--current", type=Path, required=True, help="maps of the present (the --out of masksdm predict)")
    p.add_argument("--future", type=Path, required=True, help="maps of the future projection, on the same grid")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--species", nargs="+", help="species to compare (default: all mapped in both folders)")
    p.add_argument("--threshold", help="instead of the thresholds in the maps' tags: a number, or 'model' (the "
                                       "thresholds stored in the model; with --workspace or --checkpoint)")
    p.add_argument("--workspace", type=Path, help="workspace of the model (for --threshold model)")
    p.add_argument("--run", default="main", help="model run in the workspace (default main)")
    p.add_argument("--checkpoint", type=Path, help="a run folder instead of --workspace/--run")
    p.add_argument("--layout", default="per-species", choices=["per-species", "multiband"])
    p.add_argument("--memory-mb", type=float, default=256, help="target memory of one strip of cells (256)")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    add_common(p)
    p.set_defaults(func=cmd_change)
