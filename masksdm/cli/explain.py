"""``shapley global | local | map``: Shapley values of predictors by masking."""

from __future__ import annotations

import argparse
from pathlib import Path

from masksdm.cli._common import add_common, add_device, load_model, print_table
from masksdm.errors import MaskSDMError

__all__ = ["add_shapley", "cmd_shapley_global", "cmd_shapley_local", "cmd_shapley_map"]


def _players(args: argparse.Namespace):
    if not args.players:
        return None
    return args.players[0] if args.players in (["groups"], ["predictors"]) else args.players


def _shapley_options(args: argparse.Namespace) -> dict:
    return dict(method=args.method, target_se=args.target_se, max_evaluations=args.max_evaluations,
                seed=args.seed, precision=args.precision, progress=not args.quiet)


def _print_result(result, *, unit: str) -> None:
    base, full = float(result.base_value), float(result.full_value)
    print(f"v(no predictor) = {base:.4g}, v(all players) = {full:.4g} {unit}; {result.method}, "
          f"{result.n_evaluations} coalition evaluations")
    frame = result.to_frame().sort_values("value", ascending=False)
    if result.std_errors is None:
        frame = frame.drop(columns="std_error")
    print_table(frame)


def cmd_shapley_global(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable, write_parquet, write_text
    from masksdm.explain.games import global_shapley
    from masksdm.explain.report import global_table, plot_global
    from masksdm.model.checkpoint import split_arrays
    from masksdm.workspace import Workspace

    if not args.workspace:
        raise MaskSDMError("global Shapley values need the data split: give --workspace DIR")
    ws = Workspace(args.workspace)
    stem = f"shapley_global_{args.run}_{args.split}_{args.metric}"
    paths = [check_writable(ws.report_path(stem + ext), force=args.force) for ext in (".csv", ".parquet", ".png")]
    model, card = load_model(args)
    x, labels = split_arrays(card, ws, args.split)
    result, species = global_shapley(model, card, x, labels, players=_players(args), metric=args.metric,
                                     species=args.species, per_species=args.per_species,
                                     background=ws.background_mask(args.split), **_shapley_options(args))
    unit = "AUC x100" if args.metric == "auc" else "probability"
    table = global_table(result, species if args.per_species else None)
    if args.per_species:  # the mean over species, by linearity of Shapley values
        from masksdm.explain.core import ShapleyResult

        result = ShapleyResult(result.players, result.values.mean(0), result.base_value.mean(0),
                               result.full_value.mean(0), None, result.method, result.n_evaluations)
    print(f"Global Shapley values of {'mean test AUC x100' if args.metric == 'auc' else 'mean probability'} "
          f"over {len(species)} species and {len(x)} {args.split} plots:")
    _print_result(result, unit=unit)
    write_text(paths[0], table.to_csv(index=False))
    write_parquet(paths[1], table)
    plot_global(result, paths[2], title=f"{args.run}, {args.split} split, {len(species)} species", unit=unit)
    print(f"\nwritten: {', '.join(str(p) for p in paths)}")
    return 0


def cmd_shapley_local(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable, safe_names, write_parquet, write_text
    from masksdm.explain.games import local_shapley
    from masksdm.explain.report import local_table, plot_local
    from masksdm.model.checkpoint import split_arrays
    from masksdm.workspace import Workspace

    if not args.workspace:
        raise MaskSDMError("local Shapley values on plots need their predictors: give --workspace DIR")
    ws = Workspace(args.workspace)
    stem = f"shapley_local_{args.run}_{args.split}"
    paths = [check_writable(ws.report_path(stem + ext), force=args.force) for ext in (".csv", ".parquet")]
    pngs = [check_writable(ws.report_path(f"{stem}_{s}.png"), force=args.force)
            for s in safe_names(args.species, what="species")]
    model, card = load_model(args)
    x, _ = split_arrays(card, ws, args.split)
    sites = ws.plots.loc[ws.split_mask(args.split), "plot_id"].to_numpy()
    if args.sites:
        x, sites = x[: args.sites], sites[: args.sites]
    result = local_shapley(model, card, x, args.species, players=_players(args), scale=args.scale,
                           **_shapley_options(args))
    table = local_table(result, sites, args.species)
    unit = args.scale
    for j, name in enumerate(args.species):
        print(f"\n{name}: mean |Shapley value| ({unit}) over {len(sites)} {args.split} plots")
        strength = abs(result.values[:, j, :]).mean(0)
        for player, v in sorted(zip(result.players, strength, strict=True), key=lambda t: -t[1]):
            print(f"  {player:<16} {v:.4f}")
        plot_local(_one_species(result, j), pngs[j], species=name, unit=unit)
    write_text(paths[0], table.to_csv(index=False))
    write_parquet(paths[1], table)
    print(f"\nwritten: {', '.join(str(p) for p in [*paths, *pngs])}")
    return 0


def _one_species(result, j: int):
    from dataclasses import replace

    se = None if result.std_errors is None else result.std_errors[:, j : j + 1]
    return replace(result, values=result.values[:, j : j + 1], std_errors=se,
                   base_value=result.base_value[:, j : j + 1], full_value=result.full_value[:, j : j + 1])


def cmd_shapley_map(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable
    from masksdm.explain.maps import shapley_map
    from masksdm.explain.report import plot_map

    png = check_writable(args.out.with_suffix(".png"), force=args.force)
    check_writable(args.out, force=args.force)
    model, card = load_model(args)
    path = shapley_map(model, card, args.rasters, args.species, args.out, players=_players(args), like=args.like,
                       scale=args.scale, method=args.method, target_se=args.target_se,
                       max_evaluations=args.max_evaluations, seed=args.seed, block_rows=args.block_rows,
                       precision=args.precision,
                       force=args.force, progress=not args.quiet)
    plot_map(path, png)
    print(f"written: {path} (bands: base_value, one per player, prediction) and {png}")
    return 0


def add_shapley(sub) -> None:
    """The ``shapley`` command and its kinds."""
    p = sub.add_parser("shapley", help="Shapley values of predictor groups by masking: global, local, maps")
    shap_sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    kinds = [
        ("global", cmd_shapley_global, "of a metric over a data split (mean AUC, as the MaskSDM paper)"),
        ("local", cmd_shapley_local, "per plot and species, on the probability (or logit) scale"),
        ("map", cmd_shapley_map, "a GeoTIFF for one species: one band per player, plus base and prediction"),
    ]
    for kind, func, what in kinds:
        q = shap_sub.add_parser(kind, help=what)
        q.add_argument("--workspace", type=Path, help="workspace folder (data, models, reports)")
        q.add_argument("--run", default="main", help="model run in the workspace (default main)")
        q.add_argument("--checkpoint", type=Path, help="a run folder instead of --workspace/--run")
        q.add_argument("--players", nargs="+",
                       help="'groups' (default), 'predictors' (each predictor; sampled), or group/predictor names")
        method_default = "exact" if kind == "map" else "auto"
        q.add_argument("--method", default=method_default, choices=["auto", "exact", "permutation", "kernel"],
                       help=f"auto: exact up to 12 players, else antithetic permutations (default {method_default})")
        q.add_argument("--target-se", type=float, help="sampled methods: stop at this standard error")
        q.add_argument("--max-evaluations", type=int, help="sampled methods: coalition evaluation budget")
        q.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
        add_device(q)
        q.add_argument("--force", action="store_true", help="overwrite existing outputs")
        add_common(q)
        q.set_defaults(func=func)
        if kind == "global":
            q.add_argument("--split", default="test", choices=["train", "val", "test"])
            q.add_argument("--metric", default="auc", choices=["auc", "probability"])
            q.add_argument("--species", nargs="+", help="only these species (default: all)")
            q.add_argument("--per-species", action="store_true", help="also one row of values per species")
        elif kind == "local":
            q.add_argument("--species", nargs="+", required=True, help="species names")
            q.add_argument("--split", default="test", choices=["train", "val", "test"])
            q.add_argument("--sites", type=int, help="only the first N plots of the split")
            q.add_argument("--scale", default="probability", choices=["probability", "logit"])
        else:
            q.add_argument("--species", required=True, help="one species name")
            q.add_argument("--rasters", nargs="+", type=Path, required=True, help="predictor raster files or folders")
            q.add_argument("--out", type=Path, required=True, help="output GeoTIFF (a .png quick look is written beside)")
            q.add_argument("--like", type=Path, help="template raster of the output grid (default: bio_1)")
            q.add_argument("--scale", default="probability", choices=["probability", "logit"])
            q.add_argument("--block-rows", type=int, default=256, help="grid rows per block (256)")
