"""``fetch``: real data in one command (WorldClim, SoilGrids, sPlotOpen, SMARTIES weights), checked,
into a cache, laid out under the names the workspace expects."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from masksdm.cli._common import add_common, csv_list
from masksdm.errors import MaskSDMError

__all__ = ["add_fetch", "cmd_fetch"]

_RESOLUTIONS = ["10m", "5m", "2.5m", "30s"]


def _fetch(args: argparse.Namespace, catalogue: dict):
    from masksdm.data import sources

    common = dict(out=args.out, cache=args.cache, force=args.force, progress=not args.quiet, catalogue=catalogue)
    if args.source == "worldclim":
        return sources.fetch_worldclim(args.resolution, args.variables, **common)
    if args.source == "worldclim-future":
        return sources.fetch_worldclim_future(args.model, args.ssp, args.period, args.resolution, **common)
    if args.source == "soilgrids":
        variables = csv_list(args.variables) if args.variables else None
        return sources.fetch_soilgrids(args.bounds, variables, **common)
    if args.source == "splotopen":
        return sources.fetch_splotopen(**common)
    return sources.fetch_smarties_weights(args.size, **common)


def cmd_fetch(args: argparse.Namespace) -> int:
    from masksdm.data.fetch import cache_dir
    from masksdm.data.sources import FETCHABLE, describe_catalogue, load_catalogue, sources_path

    if args.list or args.source == "list":
        print(describe_catalogue(load_catalogue()))
        print(f"\ncatalogue: {sources_path()}\ncache:     {cache_dir(getattr(args, 'cache', None))}")
        return 0
    if args.source is None:
        raise MaskSDMError(f"give a source: masksdm fetch {{{','.join(FETCHABLE)}}} ..., or masksdm fetch --list")
    catalogue = load_catalogue()
    done = _fetch(args, catalogue)
    folder = shlex.quote(str(done.folder))
    how = "already there, checked when it was laid out" if done.reused else "downloaded, checked and laid out"
    print(f"{args.source}: {len(done.files)} file(s) in {done.folder} ({how})")
    if args.source == "splotopen":
        print(f"next: masksdm prepare --splotopen {folder} --rasters RASTER_DIRS... --workspace ws")
    elif args.source == "smarties-weights":
        weights = shlex.quote(str(done.files[0]))
        print(f"weights: {done.files[0]}")
        print(f"next: masksdm embed plots --workspace ws --imagery S2_DIR --weights {weights}")
        print(f"      (or export MASKSDM_SMARTIES_WEIGHTS={weights})")
    elif args.source == "worldclim-future":
        print(f"next: masksdm predict --workspace ws --rasters {folder} OTHER_RASTER_DIRS... --out maps_future "
              "(this future climate with today's other predictors)")
    else:
        print(f"next: masksdm prepare --splotopen SPLOT_DIR --rasters {folder} [more raster folders] --workspace ws")
        print(f"      masksdm predict --workspace ws --rasters {folder} [more raster folders] --out maps")
    entry = catalogue.get(FETCHABLE[args.source], {})
    cite = entry.get("cite_v2") if args.source == "soilgrids" else entry.get("cite")
    if cite:
        print(f"licence: {entry.get('licence', 'see the source')}; cite: {cite}")
    return 0


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="output folder (default: a folder in the cache); the command prints it")
    p.add_argument("--cache", type=Path, help="cache folder of the downloads (default: $MASKSDM_CACHE, else "
                   "$XDG_CACHE_HOME/masksdm, else ~/.cache/masksdm)")
    p.add_argument("--force", action="store_true", help="replace an earlier fetch in --out")
    add_common(p)


def add_fetch(sub) -> None:
    """The ``fetch`` command."""
    p = sub.add_parser(
        "fetch", help="download real data: WorldClim, SoilGrids, sPlotOpen, SMARTIES weights (checked, resumable)",
        description="Download a source into the cache (resuming an interrupted download), check its size and "
        "sha256, and lay it out under the names the workspace expects. Sources, licences and citations: "
        "masksdm fetch --list (they are in data/sources.toml, or $MASKSDM_SOURCES).",
    )
    p.add_argument("--list", action="store_true", help="list the sources: licences, citations, sizes, URLs")
    p.set_defaults(func=cmd_fetch, source=None)
    kinds = p.add_subparsers(dest="source", metavar="SOURCE")

    w = kinds.add_parser("worldclim", help="WorldClim 2.1 bioclimatic variables as bio_1.tif .. bio_19.tif")
    w.add_argument("--resolution", default="10m", choices=_RESOLUTIONS, help="10m, 5m, 2.5m (arc-minutes) or 30s "
                   "(arc-seconds; about 10 GB) (10m)")
    w.add_argument("--variables", default="bio", choices=["bio"], help="bio: the 19 bioclimatic variables")
    _add_options(w)

    f = kinds.add_parser("worldclim-future", help="WorldClim 2.1 CMIP6 future bioclimatic variables as bio_N.tif")
    f.add_argument("--model", required=True, help="CMIP6 model, e.g. MPI-ESM1-2-HR (masksdm fetch --list)")
    f.add_argument("--ssp", required=True, help="shared socio-economic pathway: 126, 245, 370 or 585")
    f.add_argument("--period", required=True, help="2021-2040, 2041-2060, 2061-2080 or 2081-2100")
    f.add_argument("--resolution", default="10m", choices=_RESOLUTIONS, help="(10m)")
    _add_options(f)

    s = kinds.add_parser("soilgrids", help="SoilGrids 2.0 (0-5 cm) over a box, as ORCDRC.tif ... in legacy units")
    s.add_argument("--bounds", required=True, help="W,S,E,N in degrees (EPSG:4326), e.g. 5.9,45.8,10.5,47.8")
    s.add_argument("--variables", help="comma-separated legacy names (default: ORCDRC,PHIHOX,CECSOL,BLDFIE,CLYPPT,"
                   "SLTPPT,SNDPPT; BDTICM has no SoilGrids 2.0 layer)")
    _add_options(s)

    o = kinds.add_parser("splotopen", help="sPlotOpen plots (downloaded by hand from iDiv; this lays them out)")
    _add_options(o)

    m = kinds.add_parser("smarties-weights", help="SMARTIES v1 encoder weights (Hugging Face)")
    m.add_argument("size", nargs="?", default="vitb", choices=["vitb", "vitl"], help="vitb (ViT-B) or vitl (ViT-L)")
    _add_options(m)

    ls = kinds.add_parser("list", help="the sources: licences, citations, sizes, URLs (as --list)")
    ls.add_argument("--cache", type=Path, help="cache folder to show")
