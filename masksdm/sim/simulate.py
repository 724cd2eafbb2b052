"""The virtual world: a simulated dataset in the real file formats, with known truth.

:func:`simulate_world` builds, deterministically from a seed, environmental rasters over the real
land mask, virtual species with known niches, and vegetation plots whose species were drawn from the
true presence probabilities. The environmental rasters (the virtual landscape: WorldClim-,
SoilGrids-, topography- and human-footprint-like fields over the real land mask) are built and
written by :mod:`masksdm.sim.landscape`; this module places the plots on them and writes the plots, the
species and the truth. Everything is written in the formats of the real sources, so the real
loaders read it::

    out_dir/
      rasters/worldclim/bio_1.tif .. bio_19.tif        float32, EPSG:4326, nodata -3.4e38
      rasters/soilgrids/ORCDRC.tif .. BLDFIE.tif       int16 (nodata -32768) or uint8 (nodata 255)
      rasters/topography/Elevation|Slope|Aspect.tif    float32, EPSG:4326, nodata -3.4e38
      rasters/human_footprint/HFP2009.tif .. Roads.tif float32, ESRI:54009 (Mollweide), -3.4e38
      splotopen/sPlotOpen_header.txt                   47 columns, TAB, UTF-8, NA, TRUE/FALSE
      splotopen/sPlotOpen_DT.txt                       6 columns, one row per present species
      truth/species.csv          species, prevalence, n_presences, drivers, driver_groups, params
      truth/probability.parquet  PlotObservationID + one float32 column per species (small worlds)
      truth/world.json           seed, sizes, extent, resolution, version, description

Each species responds to 1-3 driver predictors through a Gaussian niche ``-0.5*((z-mu)/sigma)**2``
or a monotone ``beta*z`` on the z-scored predictor (``z = (x - center) / scale``, land-cell
statistics), plus a shared plot-size effect. The ``params`` JSON of ``species.csv`` holds it all::

    logit p = intercept + sum(strength * term) + area_coef * log(Releve_area / area_reference)

with a missing ``Releve_area`` adding 0. Raster drivers are read at the cell that contains the plot
(for the human footprint, the Mollweide cell that contains the projected plot), Location drivers
(``Longitude``, ``Latitude``) at the plot's own coordinates, exactly as written in the header.

Intercepts are solved so that each species' mean probability over the plots hits a target drawn
log-uniform in [0.01, 0.25] (demo) or in [lo, 10 lo] with about 20 species per plot (splotopen).
Presences are Bernoulli draws from the true probabilities; random streams are derived per part
(fields, plots, metadata, species, presences; :func:`masksdm.sim.landscape.make_rng`) so that changing
one part never shifts another.

The data are simulated and hold no real observation. Their formats imitate sPlotOpen (Sabatini
et al. 2021), WorldClim 2.1 (Fick & Hijmans 2017), SoilGrids (Hengl et al. 2017), SRTM and the
human footprint (Venter et al. 2016); the land mask is that of the ``global-land-mask`` package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from masksdm._io import atomic_path, write_json, write_parquet
from masksdm._version import __version__
from masksdm.data.splotopen import (
    HEADER_COLUMNS,
    format_decimals,
    format_logical,
    with_missing,
    write_splotopen_table,
)
from masksdm.errors import ConfigError, OutputExistsError
from masksdm.sim.landscape import (
    RASTER_PREDICTORS,
    Grid,
    LandscapeRasters,
    containing_cells,
    is_land,
    make_rng,
    mollweide_crs,
    write_rasters,
)
from masksdm.sim.species import (
    AREA_COEF,
    AREA_REF,
    CANDIDATES,
    prevalence_range,
    simulate_species,
    species_design,
    species_names,
    species_table,
)

__all__ = ["SCALES", "WorldPaths", "simulate_world"]

#: Preset sizes; ``extent`` is (west, south, east, north) in degrees.
SCALES: dict[str, dict] = {
    "demo": dict(n_plots=5000, n_species=300, extent=(-11.0, 35.0, 32.0, 61.0), resolution=0.1),
    "splotopen": dict(
        n_plots=95_104, n_species=12_738, extent=(-180.0, -56.0, 180.0, 80.0), resolution=0.25
    ),
}

_MAX_PROBABILITY_CELLS = 50_000_000


@dataclass(frozen=True)
class WorldPaths:
    """Where :func:`simulate_world` wrote the virtual world.

    Attributes:
        root: the output folder.
        splotopen_dir: folder with ``sPlotOpen_header.txt`` and ``sPlotOpen_DT.txt``.
        rasters_dir: folder with one sub-folder of GeoTIFFs per predictor group.
        truth_dir: folder with ``species.csv``, ``world.json`` and maybe ``probability.parquet``.
    """

    root: Path
    splotopen_dir: Path
    rasters_dir: Path
    truth_dir: Path

    @classmethod
    def at(cls, root: str | Path) -> WorldPaths:
        """The folders of a world written (or to be written) under ``root``."""
        root = Path(root)
        return cls(root, root / "splotopen", root / "rasters", root / "truth")


def _sample_plots(seed: int, n_plots: int, rasters: LandscapeRasters, land: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plots in clusters around land cells (drawn again when at sea), and their datasets."""
    rng, grid = make_rng(seed, "plots"), rasters.grid
    n_clusters = max(1, round(n_plots / 30))
    cells = np.flatnonzero(land)
    weight = np.cos(np.radians(grid.lat[cells // grid.width]))
    pick = rng.choice(cells, size=n_clusters, p=weight / weight.sum())
    c_lon = grid.lon[pick % grid.width] + rng.uniform(-0.5, 0.5, n_clusters) * grid.res
    c_lat = grid.lat[pick // grid.width] + rng.uniform(-0.5, 0.5, n_clusters) * grid.res
    spread = np.clip(rng.lognormal(np.log(0.25), 0.8, n_clusters), 0.02, 2.0)
    share = rng.lognormal(0.0, 1.0, n_clusters)
    parts: list[tuple[np.ndarray, ...]] = []
    need = n_plots
    for _ in range(1000):
        m = 2 * need + 64
        k = rng.choice(n_clusters, size=m, p=share / share.sum())
        lat = np.round(c_lat[k] + rng.standard_normal(m) * spread[k], 6)
        lon = c_lon[k] + rng.standard_normal(m) * spread[k] / np.cos(np.radians(c_lat[k]))
        lon = np.round(lon, 6)
        ok = (lon > -180) & (lon < 180) & (lat > -90) & (lat < 90)
        ok[ok] = rasters.cell_values(lon[ok], lat[ok])[1]
        ok[ok] = is_land(lat[ok], lon[ok])
        keep = np.flatnonzero(ok)[:need]
        parts.append((lon[keep], lat[keep], k[keep]))
        need -= len(keep)
        if need == 0:
            break
    else:
        raise ConfigError(f"could not place {n_plots} plots on land in this extent: enlarge it")
    lon, lat, cluster = (np.concatenate(p) for p in zip(*parts, strict=True))
    # A dataset is a group of nearby clusters, as a regional survey would be.
    n_sets = max(1, round(n_clusters / 8))
    dist = (c_lon[:, None] - c_lon[:n_sets]) ** 2 + (c_lat[:, None] - c_lat[:n_sets]) ** 2
    dataset = np.unique(np.argmin(dist, axis=1)[cluster], return_inverse=True)[1]
    order = np.lexsort((cluster, dataset))
    return lon[order], lat[order], cluster[order], dataset[order]


def _add_plots(plots_at: tuple[np.ndarray, np.ndarray], lon: np.ndarray, lat: np.ndarray, dataset: np.ndarray,
               rasters: LandscapeRasters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The drawn plots followed by those at given places (one more dataset)."""
    x, y = (np.round(np.atleast_1d(np.asarray(v, dtype=np.float64)), 6) for v in plots_at)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"plots_at needs two 1-D arrays of one length (lon, lat), got shapes {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    ok[ok] = rasters.cell_values(x[ok], y[ok])[1]
    ok[ok] = is_land(y[ok], x[ok])
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise ConfigError(
            f"{len(bad)} of the {len(x)} plots_at places are off land or outside the rasters "
            f"(first: lon {x[bad[0]]}, lat {y[bad[0]]}): choose places on land inside the extent"
        )
    return (np.concatenate([lon, x]), np.concatenate([lat, y]),
            np.concatenate([dataset, np.full(len(x), dataset.max() + 1)]))


def _continent(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    europe = (lon >= -25) & (lat >= 35) & (
        (lon < 26) | ((lon < 45) & (lat > 41)) | ((lon < 60) & (lat > 47)))
    maghreb = ((lon > -1.5) & (lon < 11.5) & (lat < 37.6)) | ((lon > -6) & (lon < 0) & (lat < 35.9))
    africa = (lon >= -25) & (lon < 52) & ((lat < 35) | maghreb) & ~((lon > 34) & (lat > 12))
    oceania = ((lon >= 110) & (lat < -10)) | ((lon >= 130) & (lat < 0)) | (lon >= 165)
    america = np.where(lat >= 13, "North America", "South America")
    return np.select([lon < -25, africa, europe, oceania], [america, "Africa", "Europe", "Oceania"],
                     "Asia").astype(object)


def _header(seed: int, ids: np.ndarray, lon: np.ndarray, lat: np.ndarray, dataset: np.ndarray,
            env: dict[str, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The 47 header columns, the plot areas, and whether a plot's dataset records presence only."""
    rng, n, n_sets = make_rng(seed, "metadata"), len(lon), int(dataset.max()) + 1
    z = {k: (env[k] - env[k].mean()) / max(float(env[k].std()), 1e-12)
         for k in ("bio_1", "bio_12", "Elevation", "HFP2009")}
    wet = z["bio_12"]
    # Vegetation type by Gumbel-max draws from softmax(scores): forest where wet and warm,
    # grassland where used, sparse vegetation where dry or high.
    scores = np.stack([1.2 * wet + 0.5 * z["bio_1"] - 0.6 * z["HFP2009"], -0.5 * wet,
                       0.5 * z["HFP2009"] + 0.3, -1.5 - 0.5 * z["Elevation"],
                       -1.0 * wet + 0.8 * z["Elevation"] - 0.8], axis=1)
    veg = (scores + rng.gumbel(size=scores.shape)).argmax(axis=1)
    veg_na, forest = rng.random(n) < 0.02, veg == 0
    cont = _continent(lon, lat)
    esy = np.array([["G16a", "G16b", "G17", "G3", "Y-For"], ["F31", "F32", "F4", "F5", "F31"],
                    ["E12a", "E12b", "E22", "E34a", "E35"], ["D21", "D4", "Q", "D21", "D4"],
                    ["H2", "H3", "U", "H2", "H3"]], dtype=object)[veg, rng.integers(0, 5, n)]
    # Conventions of each dataset, as in the real database.
    set_area = rng.lognormal(0.0, 0.6, n_sets)[dataset]
    set_noarea = (rng.random(n_sets) < 0.15)[dataset]
    set_pa = (rng.random(n_sets) < 0.12)[dataset]
    set_unc = rng.choice([5, 10, 20, 50, 100, 200, 1000], n_sets)[dataset]
    set_year = rng.integers(1930, 2016, n_sets)[dataset]
    recorded = np.array(["All vascular plants", "Not specified", "Woody plants",
                         "All trees & dominant understory"], dtype=object)
    set_recorded = rng.choice(recorded, n_sets, p=[0.75, 0.15, 0.05, 0.05])[dataset]
    first = np.unique(dataset, return_index=True)[1]
    code = {"Europe": "EU", "Asia": "AS", "Africa": "AF", "North America": "NA",
            "South America": "SA", "Oceania": "AU"}
    givd = np.array([f"{code[c]}-VW-{i + 1:03d}" for i, c in enumerate(cont[first])], dtype=object)
    givd[rng.random(n_sets) < 0.03] = None
    area = np.clip(rng.lognormal(np.log(np.array([400.0, 100, 25, 25, 50])[veg] * set_area), 0.5),
                   0.03, 40_000)
    area = np.where(area >= 10, np.round(area), np.round(area, 2))
    area[set_noarea | (rng.random(n) < 0.16)] = np.nan
    unc = np.clip(np.round(set_unc * rng.lognormal(0, 0.3, n)), 1, 2750)
    unc[rng.choice(n, max(1, n // 3000), replace=False)] = np.nan
    month = np.where(np.abs(lat) < 15, rng.integers(1, 13, n),
                     np.where(lat >= 0, rng.integers(5, 9, n), rng.choice([11, 12, 1, 2], n)))
    year = np.clip(set_year + rng.integers(-3, 4, n), 1925, 2019)
    dates = pd.to_datetime(pd.DataFrame({"year": year, "month": month,
                                         "day": rng.integers(1, 29, n)}))
    dates = dates.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    t, p, elev = env["bio_1"], env["bio_12"], env["Elevation"]
    biome = np.select(
        [(t < -4) | (np.abs(lat) > 66), (elev > 1800) | ((t < 3) & (elev > 1000)), t < 3,
         (t < 12) & (p > 500), t < 12, p < 300, (t < 20) & (env["_phase"] < 0), t < 20,
         env["bio_15"] > 60],
        ["Polar and subpolar zone", "Alpine", "Boreal zone", "Temperate midlatitudes",
         "Dry midlatitudes", "Dry tropics and subtropics", "Subtropics with winter rain",
         "Subtropics with year-round rain", "Tropics with summer rain"],
        "Tropics with year-round rain").astype(object)

    def sparse(share: float | np.ndarray, mean: float | np.ndarray, sd: float, lo: float, hi: float,
               decimals: int = 0) -> np.ndarray:
        values = np.clip(mean + sd * rng.standard_normal(n), lo, hi)
        return format_decimals(np.where(rng.random(n) < share, values, np.nan), decimals)

    # Cover_algae_layer: a handful of values, none in the first half of the rows (the dtype trap).
    algae = np.full(n, np.nan)
    late = np.arange(n // 2, n)
    n_algae = min(len(late), max(2, round(n * 0.0004)))
    algae[rng.choice(late, n_algae, replace=False)] = rng.integers(1, 6, n_algae)
    soil = [k for k, g in RASTER_PREDICTORS if g in ("WorldClim", "SoilGrids")]
    x = np.column_stack([env[k] for k in soil])
    x = np.clip((x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0), -3, 3)
    vt = np.linalg.svd(x, full_matrices=False)[2][:2]
    vt = vt * np.where(vt[:, :1] < 0, -1.0, 1.0)  # fixed signs: both PCs rise with bio_1
    pcs = np.zeros((n, 2))
    pcs[:, : len(vt)] = x @ vt.T
    resample = rng.random((n, 3)) < 0.5
    cols = {
        "PlotObservationID": ids, "GIVD_ID": givd[dataset],
        "Dataset": np.array([f"Virtual_{i + 1:03d}" for i in range(n_sets)], dtype=object)[dataset],
        "Continent": cont, "Country": np.full(n, None, dtype=object), "Biome": biome,
        "Date_of_recording": with_missing(dates, rng.random(n) < 0.03),
        "Latitude": format_decimals(lat, 6), "Longitude": format_decimals(lon, 6), "Location_uncertainty": format_decimals(unc, 0),
        "Releve_area": format_decimals(area, 2), "Plant_recorded": set_recorded,
        "Elevation": format_decimals(np.where(rng.random(n) < 0.1, np.nan, elev), 0),
        "Aspect": format_decimals(np.where(rng.random(n) < 0.5, np.nan, np.maximum(env["Aspect"], 1)), 0),
        "Slope": format_decimals(np.where(rng.random(n) < 0.5, np.nan, env["Slope"]), 1),
        "is_forest": format_logical(forest, veg_na),
        "ESY": with_missing(esy, (cont != "Europe") | veg_na),
        "Naturalness": with_missing(np.where(rng.random(n) < special.expit(z["HFP2009"] - 0.5),
                                         "Semi-natural", "Natural"), rng.random(n) < 0.2),
    }
    for i, name in enumerate(["Forest", "Shrubland", "Grassland", "Wetland", "Sparse_vegetation"]):
        cols[name] = format_logical(veg == i, veg_na)
    cols |= {
        "Cover_total": sparse(0.3, 80 + 5 * wet, 15, 5, 100),
        "Cover_tree_layer": sparse(0.3, np.where(forest, 65 + 8 * wet, 2), 15, 0, 100),
        "Cover_shrub_layer": sparse(0.25, np.where(veg == 1, 50, 10), 12, 0, 100),
        "Cover_herb_layer": sparse(0.35, np.where(forest, 35, 70) + 5 * wet, 20, 1, 100),
        "Cover_moss_layer": sparse(0.2, 10 + 5 * wet, 10, 0, 100),
        "Cover_lichen_layer": sparse(0.05, 3, 4, 0, 100),
        "Cover_algae_layer": format_decimals(algae, 0),
        "Cover_litter_layer": sparse(0.1, np.where(forest, 50, 15), 20, 0, 100),
        "Cover_bare_rocks": sparse(0.08, np.where(veg == 4, 40, 3), 8, 0, 100),
        "Cover_cryptogams": sparse(0.03, 10, 8, 0, 100),
        "Cover_bare_soil": sparse(0.08, np.where(veg == 4, 35, 5) - 5 * wet, 8, 0, 100),
        "Height_trees_highest": sparse(0.1 * forest, 22 + 4 * wet + 2 * z["bio_1"], 6, 3, 60),
        "Height_trees_lowest": sparse(0.03 * forest, 8, 3, 2, 20),
        "Height_shrubs_highest": sparse(0.08, 3, 1.2, 0.5, 8, 1),
        "Height_shrubs_lowest": sparse(0.03, 1, 0.4, 0.2, 3, 1),
        "Height_herbs_average": sparse(0.1, 30 + 10 * wet, 15, 2, 150),
        "Height_herbs_lowest": sparse(0.03, 8, 4, 1, 40),
        "Height_herbs_highest": sparse(0.05, 70 + 15 * wet, 25, 5, 250),
        "SoilClim_PC1": format_decimals(pcs[:, 0], 3), "SoilClim_PC2": format_decimals(pcs[:, 1], 3),
        "Resample_1": format_logical(resample[:, 0]), "Resample_2": format_logical(resample[:, 1]),
        "Resample_3": format_logical(resample[:, 2]),
        "Resample_1_consensus": format_logical(resample[:, 0] & resample[:, 1]),
    }
    return pd.DataFrame(cols, columns=list(HEADER_COLUMNS)), area, set_pa


def _write_dt(path: Path, seed: int, ids: np.ndarray, names: np.ndarray, pa: np.ndarray,
              truth: dict[str, np.ndarray]) -> None:
    """One row per present species, sorted by plot then name; covers in % or presence only."""
    rank = np.argsort(np.argsort(names))
    order = np.lexsort((rank[truth["species"]], truth["plot"]))
    plot, sp, p = truth["plot"][order], truth["species"][order], truth["p"][order]
    rng = make_rng(seed, "abundance")
    cover = np.clip(rng.lognormal(np.log(5.0) + 2.0 * (p - 0.5), 1.0), 0.1, 100)
    cover = np.where(pa[plot], 1.0, np.where(cover < 1, np.round(cover, 1), np.round(cover)))
    relative = cover / np.bincount(plot, cover, len(ids))[plot]
    original = names[sp].astype(object)
    synonym = rng.random(len(sp)) < 0.05
    authors = np.array([" L.", " (L.) Mill.", " W.D.J.Koch", " DC.", " Hook.f."], dtype=object)
    original[synonym] += authors[rng.integers(0, len(authors), int(synonym.sum()))]
    scale = np.where(pa, "pa", "CoverPerc")
    chunks = (slice(start, start + 250_000) for start in range(0, max(len(plot), 1), 250_000))
    write_splotopen_table(path, (pd.DataFrame({
        "PlotObservationID": ids[plot[c]], "Species": names[sp[c]],
        "Original_species": original[c], "Original_abundance": format_decimals(cover[c], 1),
        "Abundance_scale": scale[plot[c]], "Relative_cover": relative[c]}) for c in chunks))


def simulate_world(
    out_dir: str | Path,
    *,
    scale: str = "demo",
    seed: int = 0,
    n_plots: int | None = None,
    n_species: int | None = None,
    resolution: float | None = None,
    extent: tuple[float, float, float, float] | None = None,
    plots_at: tuple[np.ndarray, np.ndarray] | None = None,
    force: bool = False,
    progress: bool = True,
) -> WorldPaths:
    """Simulate the virtual world and write it under ``out_dir`` in the real file formats.

    Args:
        out_dir: output folder; must be empty or absent unless ``force``.
        scale: ``"demo"`` (5,000 plots, 300 species, Europe at 0.1 degrees) or ``"splotopen"``
            (95,104 plots, 12,738 species, the globe at 0.25 degrees); see :data:`SCALES`.
        seed: non-negative seed; the same seed and sizes give byte-identical text files.
        n_plots: number of plots, overriding the scale's.
        n_species: number of virtual species, overriding the scale's.
        resolution: raster cell size in degrees, overriding the scale's.
        extent: (west, south, east, north) in degrees, overriding the scale's.
        plots_at: ``(lon, lat)`` WGS84 degrees of plots to add to the ``n_plots`` drawn ones, as one
            more dataset (e.g. plots where satellite imagery is); each must lie on a land cell of
            the rasters.
        force: write into a non-empty ``out_dir``, replacing an earlier world's files.
        progress: show a progress bar over blocks of species.

    Returns:
        The folders of the world's parts.

    Raises:
        ConfigError: an unknown scale, or an invalid size, seed, resolution or extent.
        OutputExistsError: ``out_dir`` is not empty and ``force`` is false.
    """
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}: choose one of {sorted(SCALES)}")
    cfg = SCALES[scale]
    n_plots = int(cfg["n_plots"] if n_plots is None else n_plots)
    n_species = int(cfg["n_species"] if n_species is None else n_species)
    res = float(cfg["resolution"] if resolution is None else resolution)
    west, south, east, north = (float(v) for v in (cfg["extent"] if extent is None else extent))
    if n_plots < 1 or n_species < 1 or seed < 0:
        raise ConfigError(f"n_plots and n_species must be positive and seed non-negative, got "
                          f"{n_plots=}, {n_species=}, {seed=}")
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90
            and 0 < res <= min(east - west, north - south)):
        raise ConfigError(f"invalid extent {(west, south, east, north)} or {resolution=}: give "
                          "(west, south, east, north) in degrees and a smaller cell size")
    root = Path(out_dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())) and not force:
        raise OutputExistsError(f"'{root}' is not empty: pass --force (force=True) to overwrite "
                                "the world there, or choose another folder")
    paths = WorldPaths.at(root)

    grid = Grid(west, north, res, max(1, round((north - south) / res)),
                 max(1, round((east - west) / res)))
    lon2, lat2 = np.meshgrid(grid.lon, grid.lat)
    land = is_land(lat2, lon2)
    if not land.any():
        raise ConfigError(f"extent {(west, south, east, north)} holds no land: choose another")
    rasters, phase = write_rasters(seed, grid, land, paths.rasters_dir)

    lon, lat, _, dataset = _sample_plots(seed, n_plots, rasters, land)
    if plots_at is not None:
        lon, lat, dataset = _add_plots(plots_at, lon, lat, dataset, rasters)
        n_plots = len(lon)
    env, _ = rasters.cell_values(lon, lat)
    row, col, _ = containing_cells(lon, lat, grid.transform, land.shape)
    env |= {"Longitude": lon, "Latitude": lat, "_phase": phase[row, col]}
    ids = np.sort(make_rng(seed, "ids").choice(20 * n_plots + 100_000, n_plots, replace=False) + 1)
    header, area, pa = _header(seed, ids, lon, lat, dataset, env)
    write_splotopen_table(paths.splotopen_dir / "sPlotOpen_header.txt", [header])

    # Z-scores use land-cell statistics of each raster as written (Location: land-cell centres).
    stats, quantiles = [], []
    for name, group in CANDIDATES:
        if group == "Location":
            cells = (lon2 if name == "Longitude" else lat2)[land]
        else:
            cells = rasters.values[name][np.isfinite(rasters.values[name])]
        center, spread = float(cells.mean()), max(float(cells.std()), 1e-12)
        stats.append((center, spread))
        quantiles.append(np.quantile((cells - center) / spread, np.linspace(0.1, 0.9, 81)))
    z_plots = np.column_stack([(env[name] - c) / s for (name, _), (c, s)
                               in zip(CANDIDATES, stats, strict=True)]).astype(np.float32)
    design = species_design(seed, n_species, np.array(quantiles))
    names = species_names(seed, n_species)
    lo, hi = prevalence_range(scale, n_species)
    target = np.exp(make_rng(seed, "prevalence").uniform(np.log(lo), np.log(hi), n_species))
    area_term = AREA_COEF * np.log(np.nan_to_num(area, nan=AREA_REF) / AREA_REF)
    keep_prob = n_plots * n_species <= _MAX_PROBABILITY_CELLS
    truth = simulate_species(seed, z_plots, area_term, design, target, keep_prob, progress)

    _write_dt(paths.splotopen_dir / "sPlotOpen_DT.txt", seed, ids, names, pa, truth)
    species = species_table(names, design, truth, stats, target)
    with atomic_path(paths.truth_dir / "species.csv") as tmp:
        species.to_csv(tmp, index=False, lineterminator="\n")
    prob_path = paths.truth_dir / "probability.parquet"
    if truth["probability"] is not None:
        frame = pd.DataFrame(truth["probability"], columns=list(names))
        frame.insert(0, "PlotObservationID", ids)
        write_parquet(prob_path, frame)
    else:
        prob_path.unlink(missing_ok=True)  # a stale file of an earlier, smaller world
    write_json(paths.truth_dir / "world.json", {
        "description": "Simulated data (the masksdm virtual world) in the file formats of "
                       "sPlotOpen, WorldClim 2.1, SoilGrids, SRTM topography and the human "
                       "footprint. No real observation is in it.",
        "citation": "Simulated data; cite masksdm. The formats imitate sPlotOpen (Sabatini et al. "
                    "2021), WorldClim 2.1 (Fick & Hijmans 2017), SoilGrids (Hengl et al. 2017), "
                    "SRTM and the human footprint (Venter et al. 2016); the land mask is that of "
                    "the global-land-mask package.",
        "seed": seed, "scale": scale, "n_plots": n_plots, "n_species": n_species,
        "n_occurrences": int(len(truth["species"])), "extent": [west, south, east, north],
        "raster_bounds": [west, north - grid.height * res, west + grid.width * res, north],
        "resolution": res, "masksdm_version": __version__,
        "crs": {"default": "EPSG:4326", "human_footprint": mollweide_crs().to_string()},
        "model": "logit p = intercept + sum(strength * term) + area_coef * log(Releve_area / "
                 "area_reference); term = -0.5*((z-mu)/sigma)**2 (gaussian) or beta*z (linear), "
                 "z = (x - center) / scale; missing Releve_area adds 0",
        "probability_file": "probability.parquet" if truth["probability"] is not None else None,
        "probability_note": None if keep_prob else (
            f"not written: {n_plots} plots x {n_species} species exceeds "
            f"{_MAX_PROBABILITY_CELLS:,} values; recompute it from species.csv params"),
    })
    return paths
