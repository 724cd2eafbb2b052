"""The ``masksdm`` command line: ``masksdm <command> --help`` explains each command.

Typical use::

    masksdm demo                                  # everything on the built-in virtual world
    masksdm prepare --splotopen DIR --rasters DIR --workspace ws
    masksdm train --workspace ws --preset cpu
    masksdm evaluate --workspace ws
    masksdm compare --workspace ws
    masksdm embed plots --workspace ws --imagery S2_DIR --weights smarties-v1-vitb.safetensors
    masksdm predict --workspace ws --rasters DIR --species all --out maps --write probability richness
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
from pathlib import Path

from masksdm._version import __version__
from masksdm.errors import MaskSDMError

__all__ = ["main"]

log = logging.getLogger("masksdm")

_EPILOG = """\
The workspace is a folder shared by all commands (tables, predictors, models, reports).
Start with `masksdm demo` to see the whole pipeline on simulated data in a few minutes.
"""


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_device(p: argparse.ArgumentParser) -> None:
    """Where a model runs, and in which precision (the commands that run a trained model)."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when there is a GPU")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="auto: bf16 on CUDA, fp32 on CPU")


def _run_config(args: argparse.Namespace):
    from masksdm.model.config import load_config, preset

    config = load_config(args.config) if args.config else preset(args.preset)
    changes = {}
    for key in ("epochs", "device", "masking", "seed", "batch_size"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    if getattr(args, "use", None):
        changes["use"] = tuple(_csv(args.use))
    return config.replace_train(**changes) if changes else config


def _add_train_options(p: argparse.ArgumentParser, *, default_preset: str) -> None:
    p.add_argument("--config", type=Path, help="TOML run config (preset + [model] + [train] overrides)")
    p.add_argument("--preset", default=default_preset, choices=["cpu", "paper"],
                   help=f"model/training preset when no --config is given (default: {default_preset})")
    p.add_argument("--epochs", type=int, help="maximum epochs (overrides the config)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="training batch size")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default: auto)")
    p.add_argument("--seed", type=int, help="training seed")


def _print_table(frame, *, digits: int = 3) -> None:
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}"))


# --- commands -------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from masksdm.demo import run_demo
    from masksdm.model.config import preset

    config = preset("cpu")
    if args.epochs:
        config = config.replace_train(epochs=args.epochs)
    result = run_demo(args.out, seed=args.seed, n_plots=args.plots, n_species=args.species, config=config,
                      force=args.force, progress=not args.quiet)
    table = result.table.rename(columns={"mean_auc": "MaskSDM_AUC", "bayes_auc": "Bayes_AUC", "mean_tss": "MaskSDM_TSS"})
    print("\nMaskSDM on the virtual world, test split (mean over species; Bayes_AUC: the truth's own AUC,")
    print("estimated as E[p | group] by k-NN for single groups):\n")
    _print_table(table)
    sh = result.shapley
    print(f"\nExact Shapley values of the predictor groups vs the true drivers (chance {sh['chance']:.0%}):")
    print(f"  global (test AUC per species): top group is the strongest driver for {sh['global_top_is_strongest']:.0%} "
          f"of species, one of its drivers for {sh['global_top_is_a_driver']:.0%}")
    print(f"  local (probability per plot):  top |value| is the strongest driver for {sh['local_top_is_strongest']:.0%} "
          f"of plot x species, one of its drivers for {sh['local_top_is_a_driver']:.0%}")
    print(f"\nworld (sPlotOpen files, rasters, truth): {result.root / 'world'}")
    print(f"workspace:                               {result.workspace}")
    print(f"model:                                   {result.run_dir}")
    print(f"reports:                                 {result.workspace / 'reports'}")
    print(f"done in {result.seconds:.0f} s")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from masksdm.sim.simulate import simulate_world

    paths = simulate_world(args.out, scale=args.scale, seed=args.seed, n_plots=args.plots, n_species=args.species,
                           resolution=args.resolution, force=args.force, progress=not args.quiet)
    print(f"sPlotOpen files: {paths.splotopen_dir}\nrasters:         {paths.rasters_dir}\ntruth:           {paths.truth_dir}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from masksdm.data.rasters import find_rasters
    from masksdm.workspace import prepare_workspace

    if bool(args.splotopen) == bool(args.table):
        raise MaskSDMError("give exactly one source: --splotopen DIR or --table FILE")
    if args.splotopen:
        from masksdm.data.splotopen import load_splotopen

        data = load_splotopen(args.splotopen, min_plots=args.min_plots)
    else:
        from masksdm.data.tables import load_presence_table

        data = load_presence_table(
            args.table, layout=args.layout, plot_column=args.plot_column, species_column=args.species_column,
            lon_column=args.lon_column, lat_column=args.lat_column, presence_column=args.presence_column,
            predictor_columns=_csv(args.predictor_columns) if args.predictor_columns else None,
            min_plots=args.min_plots,
        )
    rasters = find_rasters(args.rasters) if args.rasters else None
    ws = prepare_workspace(data, args.workspace, rasters=rasters, block_size=args.block_size,
                           test_fraction=args.test_fraction, val_fraction=args.val_fraction, seed=args.seed,
                           force=args.force, progress=not args.quiet)
    split = ws.meta["split"]
    print(f"workspace {ws.path}: {ws.meta['n_plots']} plots, {ws.meta['n_species']} species, "
          f"{ws.meta['n_predictors']} predictors; train/val/test = {split['n_train']}/{split['n_val']}/{split['n_test']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from masksdm.model.training import train
    from masksdm.workspace import Workspace

    ws = Workspace(args.workspace)
    config = None if (args.resume and not args.config and not _explicit_train_options(args)) else _run_config(args)
    result = train(ws, ws.models_dir() / args.run, config=config, resume=args.resume, force=args.force,
                   progress=not args.quiet)
    print(f"best epoch {result.best_epoch} of {result.epochs_run}: validation mean AUC {result.best_val_auc:.4f} "
          f"({result.samples_per_second:.0f} samples/s, {result.seconds:.0f} s)\nmodel: {result.run_dir}")
    return 0


def _explicit_train_options(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) is not None for k in ("epochs", "device", "masking", "seed", "batch_size", "use"))


def _subsets_from_args(args: argparse.Namespace, card):
    from masksdm.evaluation.subsets import default_subsets

    if not args.subsets:
        return default_subsets(card)
    out = {}
    for item in args.subsets:
        out[item] = None if item == "all" else _csv(item.replace("+", ","))
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable, write_parquet, write_text
    from masksdm.evaluation.subsets import evaluate
    from masksdm.model.checkpoint import load_checkpoint
    from masksdm.workspace import Workspace

    ws = Workspace(args.workspace)
    reports = ws.path / "reports"
    summary_path = check_writable(reports / f"evaluation_{args.run}_{args.split}.csv", force=args.force)
    species_path = check_writable(reports / f"evaluation_{args.run}_{args.split}_per_species.parquet", force=args.force)
    model, card = load_checkpoint(ws.models_dir() / args.run)
    result = evaluate(model, card, ws, split=args.split, subsets=_subsets_from_args(args, card))
    _print_table(result.summary)
    write_text(summary_path, result.summary.to_csv(index=False))
    write_parquet(species_path, result.per_species)
    print(f"\nwritten to {reports}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable, write_text
    from masksdm.evaluation.compare import compare_subsets, format_table
    from masksdm.model.checkpoint import read_card
    from masksdm.workspace import Workspace

    ws = Workspace(args.workspace)
    reports = ws.path / "reports"
    csv_path = check_writable(reports / f"compare_{args.run}.csv", force=args.force)
    md_path = check_writable(reports / f"compare_{args.run}.md", force=args.force)
    card, _ = read_card(ws.models_dir() / args.run)
    table = compare_subsets(ws, args.run, subsets=_subsets_from_args(args, card), progress=not args.quiet)
    markdown = format_table(table)
    print("\nTest mean AUC x100 (best non-oracle value in bold):\n")
    print(markdown)
    write_text(csv_path, table.to_csv())
    write_text(md_path, markdown + "\n")
    print(f"\nwritten to {md_path}")
    return 0


def _load_model(args: argparse.Namespace):
    """The model named by --checkpoint, or by --workspace and --run."""
    from masksdm.model.checkpoint import load_checkpoint
    from masksdm.model.inference import resolve_device
    from masksdm.workspace import Workspace

    if args.checkpoint:
        run_dir = args.checkpoint
    elif args.workspace:
        run_dir = Workspace(args.workspace).models_dir() / args.run
    else:
        raise MaskSDMError("give the model: --workspace DIR [--run NAME] or --checkpoint RUN_DIR")
    return load_checkpoint(run_dir, device=resolve_device(args.device))


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
    _print_table(frame)


def cmd_shapley_global(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable, write_parquet, write_text
    from masksdm.explain.games import global_shapley
    from masksdm.explain.report import global_table, plot_global
    from masksdm.workspace import Workspace

    if not args.workspace:
        raise MaskSDMError("global Shapley values need the data split: give --workspace DIR")
    ws = Workspace(args.workspace)
    stem = ws.path / "reports" / f"shapley_global_{args.run}_{args.split}_{args.metric}"
    paths = [check_writable(stem.with_suffix(ext), force=args.force) for ext in (".csv", ".parquet", ".png")]
    model, card = _load_model(args)
    x, labels = ws.features(args.split), ws.labels(args.split)
    result, species = global_shapley(model, card, x, labels, players=_players(args), metric=args.metric,
                                     species=args.species, per_species=args.per_species, **_shapley_options(args))
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
    from masksdm._io import check_writable, write_parquet, write_text
    from masksdm.explain.games import local_shapley
    from masksdm.explain.report import local_table, plot_local
    from masksdm.workspace import Workspace

    if not args.workspace:
        raise MaskSDMError("local Shapley values on plots need their predictors: give --workspace DIR")
    ws = Workspace(args.workspace)
    stem = ws.path / "reports" / f"shapley_local_{args.run}_{args.split}"
    paths = [check_writable(stem.with_suffix(ext), force=args.force) for ext in (".csv", ".parquet")]
    pngs = [check_writable(stem.parent / f"{stem.name}_{s.replace(' ', '_')}.png", force=args.force)
            for s in args.species]
    model, card = _load_model(args)
    x = ws.features(args.split)
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


WEIGHTS_ENV = "MASKSDM_SMARTIES_WEIGHTS"  # foundation_encoders.WEIGHTS_ENV, spelt out to keep torch out of start-up


def cmd_embed(args: argparse.Namespace) -> int:
    import foundation_encoders
    from foundation_encoders.discovery import find_scenes
    from foundation_encoders.imagery import ImageryError
    from foundation_encoders.smarties import WeightsError
    from foundation_encoders.spectrum import BandError
    from masksdm.data.embeddings import EMBEDDINGS_DIR
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
    options = {
        "bands": args.bands, "window": args.window, "min_valid": args.min_valid, "batch_size": args.batch_size, "workers": args.workers,
        "device": args.device, "precision": args.precision, "progress": not args.quiet,
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
            where = ws.path / EMBEDDINGS_DIR / f"{name}.parquet"
        else:
            like = args.like or _workspace_template(ws)
            where = args.out or ws.path / EMBEDDINGS_DIR / f"{name}.tif"
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


def cmd_shapley_map(args: argparse.Namespace) -> int:
    from masksdm._io import check_writable
    from masksdm.explain.maps import shapley_map
    from masksdm.explain.report import plot_map

    png = check_writable(args.out.with_suffix(".png"), force=args.force)
    check_writable(args.out, force=args.force)
    model, card = _load_model(args)
    path = shapley_map(model, card, args.rasters, args.species, args.out, players=_players(args), like=args.like,
                       scale=args.scale, method=args.method, target_se=args.target_se,
                       max_evaluations=args.max_evaluations, seed=args.seed, block_rows=args.block_rows,
                       precision=args.precision,
                       force=args.force, progress=not args.quiet)
    plot_map(path, png)
    print(f"written: {path} (bands: base_value, one per player, prediction) and {png}")
    return 0


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
    model, card = _load_model(args)
    run_dir = args.checkpoint or Workspace(args.workspace).models_dir() / args.run
    ws = Workspace(args.workspace) if args.workspace else None
    result = predict_maps(
        model, card, args.rasters, args.out, species=species, use=_csv(args.use) if args.use else None,
        mask=_csv(args.mask) if args.mask else None, outputs=args.write, dtype=args.dtype, layout=args.layout,
        threshold=args.threshold, workspace=ws, like=args.like, align=args.align, memory_mb=args.memory_mb,
        block_rows=args.block_rows, precision=args.precision, workers=args.workers, scheduler=args.scheduler,
        run_dir=run_dir, resume=args.resume, force=args.force, progress=not args.quiet,
    )
    rate = result.n_cells * len(result.plan.species) / result.seconds
    print(f"{len(result.files)} file(s) in {result.out_dir} ({result.n_cells:,} cells x {len(result.plan.species)} "
          f"species in {result.seconds:.0f} s, {rate:,.0f} cell-species/s)")
    if result.plan.threshold_rule:
        print(f"threshold rule {result.plan.threshold_rule}: thresholds in each file's tags")
    hidden = [p for p, v in zip(card.predictors, result.plan.visible, strict=True) if not v]
    if hidden:
        print(f"masked on these maps: {', '.join(p.name for p in hidden)}")
    if any(p.is_embedding for p in hidden):
        print("  an embedding needs its <name>.tif among --rasters: `masksdm embed cells` writes it")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    import subprocess

    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise MaskSDMError("the dashboard needs Streamlit: pip install 'masksdm[app]'") from None
    from masksdm.dashboard import page as dashboard_page
    from masksdm.workspace import Workspace

    workspace = args.workspace
    if workspace is None:
        workspace = Path("masksdm-demo") / "workspace"
        if not (workspace / "models" / args.run / "model.json").is_file():
            print(f"no demo workspace in {workspace.parent.resolve()}: building it first (about 2 minutes) ...")
            from masksdm.demo import run_demo

            run_demo(workspace.parent, progress=not args.quiet)
    Workspace(workspace)  # a clear error now rather than in the page
    env = {**os.environ, dashboard_page.WORKSPACE_ENV: str(Path(workspace).resolve()), dashboard_page.RUN_ENV: args.run}
    command = [sys.executable, "-m", "streamlit", "run", dashboard_page.__file__, "--server.port", str(args.port),
               "--server.headless", str(args.headless).lower(), "--browser.gatherUsageStats", "false"]
    print(f"MaskSDM dashboard on http://localhost:{args.port} (workspace {workspace}); Ctrl-C stops it")
    return subprocess.call(command, env=env)


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
        print(f"  split: {s['block_size']} degree blocks, train/val/test = {s['n_train']}/{s['n_val']}/{s['n_test']}")
        for group, names in predictor_groups(ws.predictors).items():
            print(f"  {group} ({len(names)}): {', '.join(names)}")
        for p in ws.predictors:
            if p.is_embedding:
                n = int((~np.isnan(ws.embedding(p.name)).any(axis=1)).sum())
                print(f"  embedding {p.name}: {p.width} values, for {n} of {meta['n_plots']} plots")
        runs = sorted(p.parent.name for p in ws.models_dir().glob("*/model.json"))
        print(f"  models: {', '.join(runs) if runs else 'none yet (masksdm train)'}")
    run_dir = args.checkpoint
    if run_dir is None and args.workspace and (Path(args.workspace) / "models" / args.run / "model.json").exists():
        run_dir = Path(args.workspace) / "models" / args.run
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


# --- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="masksdm", description="MaskSDM species distribution models from any subset of predictors.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"masksdm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="simulate a virtual world, train and evaluate MaskSDM (a few minutes)")
    p.add_argument("--out", type=Path, default=Path("masksdm-demo"), help="output folder (default: ./masksdm-demo)")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--plots", type=int, help="number of plots (default 5000)")
    p.add_argument("--species", type=int, help="number of virtual species (default 300)")
    p.add_argument("--epochs", type=int, help="maximum training epochs (default: the cpu preset's)")
    p.add_argument("--force", action="store_true", help="rebuild into a non-empty --out")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="write a virtual world: sPlotOpen-format plots, rasters, and the truth")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--scale", choices=["demo", "splotopen"], default="demo",
                   help="demo: 5,000 plots x 300 species over Europe; splotopen: 95,104 x 12,738, global")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plots", type=int, help="override the number of plots")
    p.add_argument("--species", type=int, help="override the number of species")
    p.add_argument("--resolution", type=float, help="raster resolution in degrees")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    _add_common(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("prepare", help="build a workspace from plots (sPlotOpen or any table) and rasters")
    p.add_argument("--workspace", type=Path, required=True, help="workspace folder to create")
    p.add_argument("--splotopen", type=Path, help="folder with sPlotOpen_header*.txt and sPlotOpen_DT*.txt")
    p.add_argument("--table", type=Path, help="presence/absence table (CSV, TSV or Parquet)")
    p.add_argument("--layout", choices=["long", "wide"], default="long",
                   help="long: one row per (plot, species); wide: one column per species")
    p.add_argument("--plot-column", default="plot_id")
    p.add_argument("--species-column", default="species")
    p.add_argument("--lon-column", default="lon")
    p.add_argument("--lat-column", default="lat")
    p.add_argument("--presence-column", help="long layout: column of 0/1 or counts (0 = absent)")
    p.add_argument("--predictor-columns", help="comma-separated predictor columns already in the table")
    p.add_argument("--rasters", nargs="+", type=Path, help="raster files or folders (GeoTIFF, .asc, .grd, ...)")
    p.add_argument("--min-plots", type=int, default=20, help="keep species seen in more than this many plots (20)")
    p.add_argument("--block-size", type=float, default=1.0, help="spatial block size in degrees (1)")
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=42, help="split seed (42)")
    p.add_argument("--force", action="store_true", help="overwrite an existing workspace")
    _add_common(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train MaskSDM on a workspace (resumable)")
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--run", default="main", help="run name: models/<run>/ (default main)")
    _add_train_options(p, default_preset="cpu")
    p.add_argument("--masking", choices=["random", "none"], help="random = MaskSDM; none = unmasked baseline")
    p.add_argument("--use", help="only these predictors/groups (comma-separated), e.g. an oracle")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="overwrite an existing run")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    subsets_help = ("subsets to evaluate: group or predictor names, '+' to combine (WorldClim+SoilGrids), "
                    "'all'; default: each group alone and all")
    p = sub.add_parser("evaluate", help="AUC and TSS of a model under predictor subsets")
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--run", default="main")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--subsets", nargs="+", help=subsets_help)
    p.add_argument("--force", action="store_true", help="overwrite existing reports")
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="MaskSDM vs imputation baselines vs retrained oracles, per subset (slow)")
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--run", default="main", help="the MaskSDM run to compare")
    p.add_argument("--subsets", nargs="+", help=subsets_help)
    p.add_argument("--force", action="store_true", help="overwrite existing reports")
    _add_common(p)
    p.set_defaults(func=cmd_compare)

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
        _add_device(q)
        q.add_argument("--force", action="store_true", help="overwrite existing outputs")
        _add_common(q)
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
        _add_device(q)
        if kind == "cells":
            q.add_argument("--like", type=Path, help="template raster of the map grid (default: the workspace's bio_1)")
            q.add_argument("--out", type=Path, help="output GeoTIFF (default WORKSPACE/embeddings/<name>.tif)")
        q.add_argument("--resume", action="store_true", help="finish an interrupted run")
        q.add_argument("--force", action="store_true", help="compute again over an existing output")
        _add_common(q)
        q.set_defaults(func=cmd_embed)

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
    p.add_argument("--write", nargs="+", default=["probability"], choices=["probability", "binary", "richness"],
                   help="outputs (default probability); richness alone writes no per-species raster")
    p.add_argument("--threshold", help="binary maps and richness count: max_tss, sensitivity:0.9, or a number")
    p.add_argument("--dtype", default="uint8", choices=["uint8", "uint16", "float32"],
                   help="probability maps: uint8 (scale 1/254, default), uint16 (1/65534) or float32")
    p.add_argument("--layout", default="per-species", choices=["per-species", "multiband"])
    p.add_argument("--like", type=Path, help="template raster of the output grid (default: bio_1)")
    p.add_argument("--align", action="store_true", help="warp rasters on other grids onto the template grid")
    p.add_argument("--memory-mb", type=float, default=256, help="target memory of one strip of cells (256)")
    p.add_argument("--block-rows", type=int, help="strip height in rows (instead of --memory-mb)")
    p.add_argument("--workers", type=int, help="predict on a dask LocalCluster of N worker processes")
    p.add_argument("--scheduler", help="predict on the dask cluster at this address (tcp://host:8786)")
    _add_device(p)
    p.add_argument("--resume", action="store_true", help="finish an interrupted run in --out")
    p.add_argument("--force", action="store_true", help="overwrite maps in --out")
    _add_common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("app", help="the dashboard: map any species from any predictors, and see why")
    p.add_argument("--workspace", type=Path, help="workspace with a trained model (default: the demo, built if missing)")
    p.add_argument("--run", default="main", help="model run in the workspace (default main)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    _add_common(p)
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("info", help="describe a workspace and/or a trained model")
    p.add_argument("--workspace", type=Path)
    p.add_argument("--run", default="main")
    p.add_argument("--checkpoint", type=Path, help="a run folder (model.json + model.safetensors)")
    p.add_argument("--list-species", action="store_true", help="print every species the model predicts")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``masksdm`` and ``python -m masksdm``; returns the exit code."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
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
