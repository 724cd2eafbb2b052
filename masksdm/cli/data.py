"""Commands that write data: ``simulate`` (a virtual world), ``prepare`` (a workspace), ``info``."""

from __future__ import annotations

import argparse
from pathlib import Path

from masksdm.cli._common import MIN_CLASS, add_common, csv_list
from masksdm.errors import MaskSDMError

__all__ = ["add_info", "add_prepare", "add_simulate", "cmd_info", "cmd_prepare", "cmd_simulate"]


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.future_of:
        from masksdm.sim.scenario import write_future_rasters

        out = write_future_rasters(args.future_of, args.out, warming=args.warming, rain_change=args.rain_change / 100,
                                   force=args.force)
        print(f"future rasters ({args.warming:+g} degC, {args.rain_change:+g} % rain): {out}\n"
              f"project onto them with `masksdm predict --rasters {out} ...`")
        return 0
    from masksdm.sim.simulate import simulate_world

    paths = simulate_world(args.out, scale=args.scale, seed=args.seed, n_plots=args.plots, n_species=args.species,
                           resolution=args.resolution, force=args.force, progress=not args.quiet)
    print(f"sPlotOpen files: {paths.splotopen_dir}\nrasters:         {paths.rasters_dir}\ntruth:           {paths.truth_dir}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from masksdm.data.predictors import predictor_groups
    from masksdm.data.rasters import find_rasters
    from masksdm.workspace import prepare_workspace

    if sum(map(bool, (args.splotopen, args.table, args.occurrences))) != 1:
        raise MaskSDMError("give exactly one source: --splotopen DIR, --table FILE or --occurrences FILE")
    if args.occurrences:
        return _prepare_occurrences(args)
    if args.splotopen:
        from masksdm.data.splotopen import load_splotopen

        data = load_splotopen(args.splotopen, min_plots=args.min_plots)
    else:
        from masksdm.data.tables import load_presence_table

        data = load_presence_table(
            args.table, layout=args.layout, plot_column=args.plot_column, species_column=args.species_column,
            lon_column=args.lon_column, lat_column=args.lat_column, presence_column=args.presence_column,
            predictor_columns=csv_list(args.predictor_columns) if args.predictor_columns else None,
            info_columns=_info_columns(args), min_plots=args.min_plots, sep=args.sep,
        )
    rasters = find_rasters(args.rasters) if args.rasters else None
    ws = prepare_workspace(data, args.workspace, rasters=rasters, groups=_groups(args), block_size=args.block_size,
                           test_fraction=args.test_fraction, val_fraction=args.val_fraction, seed=args.seed,
                           split_column=args.split_column, test_where=args.test_where,
                           categorical=csv_list(args.categorical) if args.categorical else (),
                           stratify=not args.no_stratify, force=args.force, progress=not args.quiet)
    split = ws.meta["split"]
    print(f"workspace {ws.path}: {ws.meta['n_plots']} plots, {ws.meta['n_species']} species, "
          f"{ws.meta['n_predictors']} predictors; train/val/test = {split['n_train']}/{split['n_val']}/{split['n_test']}")
    renamed = ws.meta.get("renamed") or {}
    if renamed:
        print("catalogue names: " + ", ".join(f"{old} -> {new}" for old, new in renamed.items()))
    print("predictor groups (set them with --groups NAME=GROUP,...):")
    for group, names in predictor_groups(ws.predictors).items():
        print(f"  {group}: {', '.join(names)}")
    print_split_report(ws, min_class=args.min_presences)
    return 0


def _prepare_occurrences(args: argparse.Namespace) -> int:
    from masksdm.workspace import prepare_occurrences

    if not args.rasters:
        raise MaskSDMError("--occurrences needs --rasters: the predictors, and the grid that records are cleaned, "
                           "thinned and background points drawn on")
    if args.split_column or args.test_where:
        raise MaskSDMError("--split-column and --test-where take a plot table: occurrence records are split by "
                           "spatial blocks (--block-size)")
    centroids = None
    if args.centroids:
        from masksdm.data.tables import read_table

        centroids = read_table(args.centroids)
        if not {"lon", "lat"} <= set(centroids.columns):
            raise MaskSDMError(f"--centroids '{args.centroids}' needs columns lon and lat (WGS84 degrees), "
                               f"it has {list(centroids.columns)}")
    ws = prepare_occurrences(
        args.occurrences, args.workspace, rasters=args.rasters, background=args.background,
        background_method=args.background_method, bias=args.bias_raster, buffer_km=args.buffer_km,
        max_uncertainty_m=args.max_uncertainty or None, centroids=centroids, min_records=args.min_records,
        species_column=None if args.species_column == "species" else args.species_column,
        lon_column=None if args.lon_column == "lon" else args.lon_column,
        lat_column=None if args.lat_column == "lat" else args.lat_column, sep=args.sep, groups=_groups(args),
        block_size=args.block_size, test_fraction=args.test_fraction, val_fraction=args.val_fraction,
        seed=args.seed, stratify=not args.no_stratify, force=args.force, progress=not args.quiet,
    )
    po = ws.meta["presence_only"]
    print(f"{po['records']} records read; each removed by the first check it fails:")
    for flag, n in po["cleaning"].items():
        if n or flag == "kept":
            print(f"  {flag:<40} {n:>8}")
    bg = po["background"]
    split = ws.meta["split"]
    buffers = f", {bg['buffer_km']} km buffers" if bg["buffer_km"] else ""
    print(f"workspace {ws.path}: {po['sites']} record sites (raster cells), {bg['n']} background points "
          f"({bg['method']}{buffers}), "
          f"{ws.meta['n_species']} species, {ws.meta['n_predictors']} predictors; "
          f"train/val/test = {split['n_train']}/{split['n_val']}/{split['n_test']}")
    if po["absence_records"]:
        print(f"{po['absence_records']} absence records kept apart in absence_records.parquet")
    print_split_report(ws, min_class=args.min_presences)
    return 0


def print_split_report(ws, *, min_class: int) -> None:
    """How each species' presences fell into the splits, and the species too thin to score."""
    import numpy as np

    shares = ws.split_shares()
    how = "stratified by species" if ws.meta["split"].get("stratified") else "not stratified (--no-stratify)"
    parts = []
    for s in ("train", "val", "test"):
        q = np.nanpercentile(shares[f"share_{s}"].to_numpy(dtype=float), [50, 5, 95])
        parts.append(f"{s} {q[0]:.0%} ({q[1]:.0%}-{q[2]:.0%})")
    print(f"each species' share of its presences, median (5-95 % of species), {how}: {', '.join(parts)}")
    thin = ws.thin_species(min_class)
    if thin.empty:
        return
    names = thin["species"].tolist()
    shown = ", ".join(names[:8]) + (f", ... (+{len(names) - 8})" if len(names) > 8 else "")
    print(f"{len(names)} of {len(shares)} species have fewer than {min_class} presences or absences in validation or "
          f"test; evaluate leaves them out of mean scores (--keep-thin keeps them): {shown}")
    if len(names) == len(shares):
        print("every species is that thin: use smaller blocks (--block-size), or score by k-fold cross-validation "
              "(masksdm cv), where every plot is a test plot once")


def _groups(args: argparse.Namespace) -> dict[str, str] | None:
    """--groups-file (a TOML table of name = "group"), then the --groups NAME=GROUP entries over it."""
    out: dict[str, str] = {}
    if args.groups_file:
        import tomllib

        path = args.groups_file
        try:
            table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise MaskSDMError(f"cannot read --groups-file '{path}': {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise MaskSDMError(f"--groups-file '{path}' is not TOML ({exc}): write one line per predictor, "
                               'name = "Group"') from None
        for name, group in table.items():
            if not isinstance(group, str):
                raise MaskSDMError(f"--groups-file '{path}': {name} = {group!r} is not a group name: write "
                                   f'{name} = "Group" (quote names with dots: "wc2.1_bio_1" = "Group")')
            out[name] = group
    for item in csv_list(args.groups or ""):
        name, sep, group = item.partition("=")
        if not sep or not name.strip() or not group.strip():
            raise MaskSDMError(f"--groups entry {item!r} is not NAME=GROUP: e.g. --groups bio3=WorldClim,ph=Soil")
        out[name.strip()] = group.strip()
    return out or None


def _info_columns(args: argparse.Namespace) -> list[str] | None:
    """--info-columns, plus the --split-column (it must be read from the table too)."""
    names = csv_list(args.info_columns) if args.info_columns else []
    if args.split_column and args.split_column not in names:
        names.append(args.split_column)
    return names or None


def _describe_split(split: dict) -> str:
    method = split.get("method", "spatial blocks")
    if method == "spatial blocks":
        return f"{split['block_size']} degree blocks"
    if method == "column":
        return f"column '{split['column']}' (validation blocks of {split['block_size']} degrees where it had none)"
    if method == "rule":
        return f"test where {split['test_where']} (validation blocks of {split['block_size']} degrees)"
    return str(method)


def cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    from masksdm.data.predictors import predictor_groups
    from masksdm.model.checkpoint import read_card
    from masksdm.workspace import Workspace

    if args.workspace:
        ws = Workspace(args.workspace)
        meta = ws.meta
        print(f"workspace {ws.path} (masksdm {meta['masksdm_version']}, {meta['created']})")
        print(f"  source: {meta['source']}")
        print(f"  {meta['n_plots']} plots, {meta['n_species']} species, {len(ws.predictors)} predictors")
        s = meta["split"]
        print(f"  split: {_describe_split(s)}, train/val/test = {s['n_train']}/{s['n_val']}/{s['n_test']}")
        for group, names in predictor_groups(ws.predictors).items():
            print(f"  {group} ({len(names)}): {', '.join(names)}")
        for p in ws.predictors:
            if p.is_embedding:
                n = int((~np.isnan(ws.embedding(p.name)).any(axis=1)).sum())
                print(f"  embedding {p.name}: {p.width} values, for {n} of {meta['n_plots']} plots")
        runs = sorted(p.parent.name for p in ws.models_dir().glob("*/model.json"))
        print(f"  models: {', '.join(runs) if runs else 'none yet (masksdm train)'}")
    run_dir = args.checkpoint
    if run_dir is None and args.workspace and (ws.run_dir(args.run) / "model.json").exists():
        run_dir = ws.run_dir(args.run)
    if run_dir:
        card, raw = read_card(run_dir)
        m = card.metrics
        print(f"model {run_dir} (masksdm {card.masksdm_version}, {card.created})")
        print(f"  preset {card.config.preset}, masking {card.config.train.masking}, "
              f"{len(card.predictors)} predictors, {len(card.species)} species")
        if m:
            print(f"  best epoch {m.get('best_epoch')}, validation mean AUC {m.get('val_mean_auc', float('nan')):.4f}, "
                  f"complete: {m.get('complete')}")
        shown = card.species if args.list_species else card.species[:5]
        more = "" if len(shown) == len(card.species) else f", ... ({len(card.species)} in all; --list-species)"
        print(f"  species: {', '.join(shown)}{more}")
    if not args.workspace and not run_dir:
        raise MaskSDMError("give --workspace DIR and/or --checkpoint RUN_DIR")
    return 0


def add_simulate(sub) -> None:
    """The ``simulate`` command."""
    p = sub.add_parser("simulate", help="write a virtual world: sPlotOpen-format plots, rasters, and the truth")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--scale", choices=["demo", "splotopen"], default="demo",
                   help="demo: 5,000 plots x 300 species over Europe; splotopen: 95,104 x 12,738, global")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plots", type=int, help="override the number of plots")
    p.add_argument("--species", type=int, help="override the number of species")
    p.add_argument("--resolution", type=float, help="raster resolution in degrees")
    p.add_argument("--future-of", type=Path, metavar="RASTERS",
                   help="instead of a world: a future climate for this raster folder (the delta method: "
                        "--warming on the temperatures, --rain-change on the precipitation, other rasters kept)")
    p.add_argument("--warming", type=float, default=2.0, help="--future-of: degrees C added (2)")
    p.add_argument("--rain-change", type=float, default=-10.0, help="--future-of: percent change of rain (-10)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    add_common(p)
    p.set_defaults(func=cmd_simulate)


def add_prepare(sub) -> None:
    """The ``prepare`` command."""
    p = sub.add_parser("prepare", help="build a workspace from plots (sPlotOpen or any table) or occurrence "
                       "records (GBIF) and rasters")
    p.add_argument("--workspace", type=Path, required=True, help="workspace folder to create")
    p.add_argument("--splotopen", type=Path, help="folder with sPlotOpen_header*.txt and sPlotOpen_DT*.txt")
    p.add_argument("--table", type=Path, help="presence/absence table (CSV, TSV or Parquet)")
    p.add_argument("--occurrences", type=Path, help="presence-only records: a GBIF download (Darwin Core Archive "
                   ".zip or simple CSV) or any CSV of species and coordinates (with --rasters)")
    p.add_argument("--background", type=int, default=10_000, help="--occurrences: background points (10000)")
    p.add_argument("--background-method", choices=["uniform", "target-group", "bias"], default="uniform",
                   help="--occurrences: background uniform over valid cells, at the cells of all records "
                   "(target-group), or weighted by --bias-raster")
    p.add_argument("--bias-raster", type=Path, help="--occurrences: a raster on the rasters' grid weighing the "
                   "background draw (e.g. sampling effort)")
    p.add_argument("--buffer-km", type=float, default=0.0, help="--occurrences: no background point within this "
                   "distance of a record (0: none)")
    p.add_argument("--max-uncertainty", type=float, default=10_000.0, help="--occurrences: drop records whose "
                   "coordinate uncertainty exceeds this many metres (10000; 0: keep all)")
    p.add_argument("--centroids", type=Path, help="--occurrences: a table (lon, lat) of country centroids and "
                   "capitals; records within 1 km of one are dropped")
    p.add_argument("--min-records", type=int, default=10, help="--occurrences: keep species with at least this "
                   "many records after cleaning (10)")
    p.add_argument("--layout", choices=["long", "wide"], default="long",
                   help="long: one row per (plot, species); wide: one column per species")
    p.add_argument("--sep", help="field separator of a text --table, e.g. ';' or tab (default: from the extension; "
                   ".txt: detected)")
    p.add_argument("--plot-column", default="plot_id")
    p.add_argument("--species-column", default="species")
    p.add_argument("--lon-column", default="lon")
    p.add_argument("--lat-column", default="lat")
    p.add_argument("--presence-column", help="long layout: column of 0/1 or counts (0 = absent)")
    p.add_argument("--predictor-columns", help="comma-separated predictor columns already in the table")
    p.add_argument("--info-columns", help="comma-separated table columns to keep that are not predictors (e.g. year)")
    p.add_argument("--rasters", nargs="+", type=Path, help="raster files or folders (GeoTIFF, .asc, .grd, ...); "
                   "a multiband raster gives one predictor per band, named by its band description")
    p.add_argument("--groups", help="predictor groups, e.g. bio3=WorldClim,ph=Soil (default: the catalogue's group, "
                   "else a raster's folder name, else Other)")
    p.add_argument("--groups-file", type=Path, help='a TOML file of predictor groups, one line each: ph = "Soil" '
                   "(--groups entries win)")
    p.add_argument("--categorical", help="comma-separated predictors whose values are class codes (e.g. "
                   "ecoregion,landcover): one learnt token per class instead of a number")
    p.add_argument("--min-plots", type=int, default=20, help="keep species seen in more than this many plots (20)")
    p.add_argument("--block-size", type=float, default=1.0, help="spatial block size in degrees (1)")
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=42, help="split seed (42)")
    p.add_argument("--split-column", help="your own split: a table column of train/val/test labels "
                   "(without val labels, validation blocks are drawn from the training plots)")
    p.add_argument("--test-where", help="test plots by a rule over plot columns, e.g. \"year >= 2012\" (keep the "
                   "column with --info-columns); validation blocks are drawn from the others")
    p.add_argument("--no-stratify", action="store_true", help="deal the spatial blocks at random, not so that each "
                   "species' presences are split in proportion")
    p.add_argument("--min-presences", type=int, default=MIN_CLASS, help="list species with fewer presences or absences "
                   f"than this in validation or test ({MIN_CLASS})")
    p.add_argument("--force", action="store_true", help="overwrite an existing workspace")
    add_common(p)
    p.set_defaults(func=cmd_prepare)


def add_info(sub) -> None:
    """The ``info`` command."""
    p = sub.add_parser("info", help="describe a workspace and/or a trained model")
    p.add_argument("--workspace", type=Path)
    p.add_argument("--run", default="main")
    p.add_argument("--checkpoint", type=Path, help="a run folder (model.json + model.safetensors)")
    p.add_argument("--list-species", action="store_true", help="print every species the model predicts")
    p.set_defaults(func=cmd_info)
