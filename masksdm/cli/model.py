"""Commands that train and score models: ``train``, ``evaluate``, ``compare``."""

from __future__ import annotations

import argparse
from pathlib import Path

from masksdm.cli._common import (
    MIN_CLASS,
    add_common,
    add_train_options,
    csv_list,
    print_table,
    run_config,
)

__all__ = ["add_compare", "add_cv", "add_evaluate", "add_train", "cmd_compare", "cmd_cv", "cmd_evaluate", "cmd_train"]

_SUBSETS_HELP = ("subsets to evaluate: group or predictor names, '+' to combine (WorldClim+SoilGrids), "
                 "'all'; default: each group alone and all")


def cmd_train(args: argparse.Namespace) -> int:
    from masksdm.model.training import train
    from masksdm.workspace import Workspace

    ws = Workspace(args.workspace)
    config = None if (args.resume and not args.config and not _explicit_train_options(args)) else run_config(args)
    result = train(ws, ws.run_dir(args.run), config=config, resume=args.resume, force=args.force,
                   progress=not args.quiet)
    print(f"best epoch {result.best_epoch} of {result.epochs_run}: validation mean AUC {result.best_val_auc:.4f} "
          f"({result.samples_per_second:.0f} samples/s, {result.seconds:.0f} s)\nmodel: {result.run_dir}")
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable, write_parquet, write_text
    from masksdm.evaluation.cv import cross_validate
    from masksdm.workspace import Workspace

    ws = Workspace(args.workspace)
    paths = [check_writable(ws.report_path(f"cv_{args.folds}folds{suffix}"), force=args.force)
             for suffix in (".csv", "_folds.csv", "_per_species.parquet")]
    subsets = _subsets_from_args(args, None) if args.subsets else None
    result = cross_validate(ws, folds=args.folds, config=run_config(args), subsets=subsets, block_size=args.block_size,
                            seed=args.split_seed, out_dir=args.out, stratify=not args.no_stratify,
                            min_class=args.min_presences, keep_thin=args.keep_thin, progress=not args.quiet)
    print(f"\nSpatial {args.folds}-fold cross-validation, test mean over species per fold:\n")
    print_table(result.folds)
    print("\nMean and standard deviation over folds, and the interval of the mean over (fold, species) pairs:\n")
    print_table(result.summary)
    _print_thin(result.per_species, args.min_presences, args.keep_thin)
    write_text(paths[0], result.summary.to_csv(index=False))
    write_text(paths[1], result.folds.to_csv(index=False))
    write_parquet(paths[2], result.per_species)
    print(f"\nwritten: {', '.join(str(p) for p in paths)}; fold workspaces under {result.workspaces[0].parent}")
    return 0


def _explicit_train_options(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) is not None for k in ("epochs", "device", "masking", "seed", "batch_size", "use"))


def _subsets_from_args(args: argparse.Namespace, card):
    from masksdm.evaluation.subsets import default_subsets

    if not args.subsets:
        return default_subsets(card)
    out = {}
    for item in args.subsets:
        out[item] = None if item == "all" else csv_list(item.replace("+", ","))
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable, write_parquet, write_text
    from masksdm.evaluation.subsets import evaluate
    from masksdm.model.checkpoint import load_checkpoint
    from masksdm.workspace import Workspace

    ws = Workspace(args.workspace)
    if args.test_table:
        return _evaluate_table(args, ws, *load_checkpoint(ws.run_dir(args.run)))
    summary_path = check_writable(ws.report_path(f"evaluation_{args.run}_{args.split}.csv"), force=args.force)
    species_path = check_writable(ws.report_path(f"evaluation_{args.run}_{args.split}_per_species.parquet"),
                                  force=args.force)
    curve_path = check_writable(ws.report_path(f"evaluation_{args.run}_{args.split}_reliability.parquet"),
                                force=args.force)
    figure_path = check_writable(ws.report_path(f"evaluation_{args.run}_{args.split}_reliability.png"), force=args.force)
    model, card = load_checkpoint(ws.run_dir(args.run))
    result = evaluate(model, card, ws, split=args.split, subsets=_subsets_from_args(args, card),
                      min_class=args.min_presences, keep_thin=args.keep_thin)
    print_table(result.summary)
    if ws.presence_only:
        print(f"(presence-only data: AUC of presences against background points; auc_low, auc_high: "
              f"{result.level:.0%} interval of the mean over species; boyce: mean continuous Boyce index)")
    else:
        print(f"(auc_low, auc_high: {result.level:.0%} interval of the mean over species; brier: mean Brier score)")
    _print_thin(result.per_species, args.min_presences, args.keep_thin)
    write_text(summary_path, result.summary.to_csv(index=False))
    write_parquet(species_path, result.per_species)
    if result.reliability is None:  # presence-only: no absences to calibrate against
        print(f"\nwritten to {summary_path.parent}")
        return 0
    write_parquet(curve_path, result.reliability)
    _reliability_figure(result.reliability, figure_path, f"{args.run}, {args.split} plots")
    print(f"\nwritten to {summary_path.parent} (reliability curves: {figure_path.name})")
    return 0


def _evaluate_table(args: argparse.Namespace, ws, model, card) -> int:
    """``evaluate --test-table``: a presence/absence table scored by a model of the workspace (e.g.
    one trained on presence-only records), predictors read from the workspace's rasters."""
    from masksdm._io import check_writable, write_parquet, write_text
    from masksdm.data.tables import load_presence_table
    from masksdm.evaluation.subsets import evaluate_plots

    stem = f"evaluation_{args.run}_{Path(args.test_table).stem}"
    summary_path = check_writable(ws.report_path(f"{stem}.csv"), force=args.force)
    species_path = check_writable(ws.report_path(f"{stem}_per_species.parquet"), force=args.force)
    data = load_presence_table(args.test_table, presence_column=args.test_presence_column, min_plots=0)
    result = evaluate_plots(model, card, data, rasters=ws.meta.get("rasters", {}),
                            subsets=_subsets_from_args(args, card), min_class=args.min_presences,
                            keep_thin=args.keep_thin)
    print(f"{data.n_plots} plots of {args.test_table}, presences against absences:")
    print_table(result.summary)
    _print_thin(result.per_species, args.min_presences, args.keep_thin)
    write_text(summary_path, result.summary.to_csv(index=False))
    write_parquet(species_path, result.per_species)
    print(f"\nwritten to {summary_path}")
    return 0


def _print_thin(per_species, min_class: int, kept: bool) -> None:
    thin = per_species.loc[per_species["thin"], "species"].drop_duplicates().tolist()
    if thin:
        shown = ", ".join(thin[:8]) + (f", ... (+{len(thin) - 8})" if len(thin) > 8 else "")
        what = "kept in the means (--keep-thin)" if kept else "left out of the means (--keep-thin keeps them)"
        print(f"{len(thin)} species with fewer than {min_class} presences or absences here, {what}: {shown}")


def _reliability_figure(curves, path: Path, title: str) -> None:
    from masksdm.evaluation.subsets import POOLED
    from masksdm.explain.report import save_figure
    from masksdm.plots import reliability_figure

    pooled = curves[curves["species"] == POOLED]
    save_figure(reliability_figure({s: g for s, g in pooled.groupby("subset", sort=False)},
                                   title=f"Calibration, pooled over species ({title})"), path)


def cmd_compare(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable, write_parquet, write_text
    from masksdm.model.checkpoint import read_card
    from masksdm.workspace import Workspace

    ws = Workspace(args.workspace)
    if args.baselines:
        from masksdm.evaluation.baselines import compare_baselines

        stem = f"baselines_{args.run}"
        paths = [check_writable(ws.report_path(stem + suffix), force=args.force)
                 for suffix in (".csv", ".md", "_per_species.parquet", "_tests.csv")]
        result = compare_baselines(ws, args.run, baselines=csv_list(args.baselines),
                                   withheld=[csv_list(w.replace("+", ",")) for w in args.withheld] if args.withheld else None,
                                   retrain=not args.no_retrain, max_species=args.max_species, seed=args.seed,
                                   min_class=args.min_presences, keep_thin=args.keep_thin, progress=not args.quiet)
        markdown = result.to_markdown()
        print("\nTest mean AUC x100 per species model (best per column in bold), then MaskSDM's paired tests:\n")
        print(markdown)
        _print_thin(result.per_species, args.min_presences, args.keep_thin)
        write_text(paths[0], result.summary.to_csv(index=False))
        write_text(paths[1], markdown + "\n\nMean TSS x100:\n\n" + result.to_markdown(metric="tss") + "\n")
        write_parquet(paths[2], result.per_species)
        write_text(paths[3], result.tests.to_csv(index=False))
        print(f"\nwritten: {', '.join(str(p) for p in paths)}")
        return 0

    from masksdm.evaluation.compare import compare_subsets, format_table

    csv_path = check_writable(ws.report_path(f"compare_{args.run}.csv"), force=args.force)
    md_path = check_writable(ws.report_path(f"compare_{args.run}.md"), force=args.force)
    card, _ = read_card(ws.run_dir(args.run))
    table = compare_subsets(ws, args.run, subsets=_subsets_from_args(args, card), min_class=args.min_presences,
                            keep_thin=args.keep_thin, progress=not args.quiet)
    markdown = format_table(table)
    print(f"\nTest mean AUC x100 over {table.attrs['n_species']} species, its bootstrap 95 % interval over species "
          "in brackets (best non-oracle value in bold):\n")
    print(markdown)
    long = table.rename_axis(index="method", columns="subset").stack().rename("mean_auc").to_frame()
    for bound in ("auc_low", "auc_high"):
        long[bound] = table.attrs[bound].rename_axis(index="method", columns="subset").stack()
    write_text(csv_path, long.reset_index().to_csv(index=False))
    write_text(md_path, markdown + "\n")
    print(f"\nwritten to {md_path}")
    return 0


def add_train(sub) -> None:
    """The ``train`` command."""
    p = sub.add_parser("train", help="train MaskSDM on a workspace (resumable)")
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--run", default="main", help="run name: models/<run>/ (default main)")
    add_train_options(p, default_preset="cpu")
    p.add_argument("--masking", choices=["random", "none"], help="random = MaskSDM; none = unmasked baseline")
    p.add_argument("--use", help="only these predictors/groups (comma-separated), e.g. an oracle")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="overwrite an existing run")
    add_common(p)
    p.set_defaults(func=cmd_train)


def add_evaluate(sub) -> None:
    """The ``evaluate`` command."""
    p = sub.add_parser("evaluate", help="AUC and TSS of a model under predictor subsets")
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--run", default="main")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--test-table", type=Path, help="score a presence/absence table instead of a split (long layout: "
                   "plot_id, species, lon, lat), e.g. a survey to test a model trained on presence-only records")
    p.add_argument("--test-presence-column", help="--test-table: column of 0/1 or counts (0 = absent)")
    p.add_argument("--subsets", nargs="+", help=_SUBSETS_HELP)
    _add_thin_options(p)
    p.add_argument("--force", action="store_true", help="overwrite existing reports")
    add_common(p)
    p.set_defaults(func=cmd_evaluate)


def _add_thin_options(p) -> None:
    p.add_argument("--min-presences", type=int, default=MIN_CLASS, help="a species with fewer presences or absences "
                   f"than this among the scored plots is thin: left out of the means ({MIN_CLASS})")
    p.add_argument("--keep-thin", action="store_true", help="keep thin species in the means")


def add_compare(sub) -> None:
    """The ``compare`` command."""
    p = sub.add_parser("compare", help="MaskSDM vs imputation baselines vs retrained oracles, per subset (slow)")
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--run", default="main", help="the MaskSDM run to compare")
    p.add_argument("--subsets", nargs="+", help=_SUBSETS_HELP)
    p.add_argument("--baselines", help="instead, per-species models on the same split: any of glm,rf,gbm,maxent "
                   "(comma-separated), with all predictors and with each group withheld (imputed and retrained)")
    p.add_argument("--withheld", nargs="+", help="with --baselines: what to withhold, one setting each (group or "
                   "predictor names, '+' to combine; default: each group)")
    p.add_argument("--max-species", type=int, help="with --baselines: a seeded random sample of species (time grows "
                   "with species)")
    p.add_argument("--no-retrain", action="store_true", help="with --baselines: skip the retrained baselines")
    p.add_argument("--seed", type=int, default=0, help="with --baselines: seed of the models and the sample (0)")
    _add_thin_options(p)
    p.add_argument("--force", action="store_true", help="overwrite existing reports")
    add_common(p)
    p.set_defaults(func=cmd_compare)


def add_cv(sub) -> None:
    """The ``cv`` command."""
    p = sub.add_parser("cv", help="spatial k-fold cross-validation: MaskSDM trained and tested on every fold")
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--folds", type=int, default=5, help="number of folds (5)")
    p.add_argument("--block-size", type=float, help="spatial block size in degrees (default: the workspace's)")
    p.add_argument("--split-seed", type=int, default=42, help="seed of the fold assignment (42)")
    p.add_argument("--out", type=Path, help="folder of the fold workspaces (default WORKSPACE/cv)")
    add_train_options(p, default_preset="cpu")
    p.add_argument("--subsets", nargs="+", help=_SUBSETS_HELP)
    p.add_argument("--no-stratify", action="store_true", help="deal blocks into folds at random, not so that each "
                   "species' presences are shared evenly")
    _add_thin_options(p)
    p.add_argument("--force", action="store_true", help="overwrite existing reports")
    add_common(p)
    p.set_defaults(func=cmd_cv)
