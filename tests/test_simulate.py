"""Tests of the virtual world: real formats, determinism, land, and a truth the files reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from global_land_mask import globe
from pyproj import Transformer
from scipy import special, stats

from masksdm.data.splotopen import DT_COLUMNS, HEADER_COLUMNS
from masksdm.errors import ConfigError, OutputExistsError
from masksdm.sim import simulate
from masksdm.sim.simulate import SCALES, WorldPaths, simulate_world

TINY = dict(n_plots=300, n_species=20, resolution=0.5, progress=False)

# Written out, not imported, so a typo in the module cannot hide (format reference, sec. 3).
SPLOT_HEADER = (
    "PlotObservationID GIVD_ID Dataset Continent Country Biome Date_of_recording Latitude "
    "Longitude Location_uncertainty Releve_area Plant_recorded Elevation Aspect Slope "
    "is_forest ESY Naturalness Forest Shrubland Grassland Wetland Sparse_vegetation "
    "Cover_total Cover_tree_layer Cover_shrub_layer Cover_herb_layer Cover_moss_layer "
    "Cover_lichen_layer Cover_algae_layer Cover_litter_layer Cover_bare_rocks "
    "Cover_cryptogams Cover_bare_soil Height_trees_highest Height_trees_lowest "
    "Height_shrubs_highest Height_shrubs_lowest Height_herbs_average Height_herbs_lowest "
    "Height_herbs_highest SoilClim_PC1 SoilClim_PC2 Resample_1 Resample_2 Resample_3 "
    "Resample_1_consensus"
).split()
SPLOT_DT = (
    "PlotObservationID Species Original_species Original_abundance Abundance_scale Relative_cover"
).split()
GROUP_FILES = {
    "worldclim": [f"bio_{i}" for i in range(1, 20)],
    "soilgrids": ["ORCDRC", "PHIHOX", "CECSOL", "BDTICM", "CLYPPT", "SLTPPT", "SNDPPT", "BLDFIE"],
    "topography": ["Elevation", "Slope", "Aspect"],
    "human_footprint": [
        "HFP2009",
        "Built2009",
        "Croplands2005",
        "Lights2009",
        "Navwater2009",
        "Pasture2009",
        "Popdensity2010",
        "Railways",
        "Roads",
    ],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldPaths:
    return simulate_world(tmp_path_factory.mktemp("world"), seed=3, **TINY)


@pytest.fixture(scope="module")
def tables(world: WorldPaths) -> dict[str, pd.DataFrame]:
    return {
        "header": pd.read_csv(world.splotopen_dir / "sPlotOpen_header.txt", sep="\t"),
        "dt": pd.read_csv(world.splotopen_dir / "sPlotOpen_DT.txt", sep="\t"),
        "species": pd.read_csv(world.truth_dir / "species.csv"),
        "prob": pd.read_parquet(world.truth_dir / "probability.parquet"),
    }


def _raster_at(path: Path, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Values of the cell containing each point, as GDAL samples them (NaN at nodata)."""
    with rasterio.open(path) as ds:
        x, y = lon, lat
        if ds.crs.to_epsg() != 4326:
            x, y = Transformer.from_crs("EPSG:4326", ds.crs, always_xy=True).transform(lon, lat)
        values = np.array([v[0] for v in ds.sample(zip(x, y, strict=True))])
        nodata = np.array(ds.nodata).astype(ds.dtypes[0])  # -3.4e38 is compared as float32
    return np.where(values == nodata, np.nan, values.astype(float))


def test_scales_and_column_constants() -> None:
    assert list(HEADER_COLUMNS) == SPLOT_HEADER and len(SPLOT_HEADER) == 47
    assert list(DT_COLUMNS) == SPLOT_DT
    assert SCALES["demo"]["n_plots"] == 5000 and SCALES["splotopen"]["n_species"] == 12_738


REAL_SPLOTOPEN = Path(__file__).resolve().parents[2] / "shared" / "data" / "splotopen_greece"


@pytest.mark.skipif(not REAL_SPLOTOPEN.is_dir(), reason="no real sPlotOpen sample here")
def test_header_lines_equal_the_real_files(world: WorldPaths) -> None:
    for name in ["sPlotOpen_header.txt", "sPlotOpen_DT.txt"]:
        with open(REAL_SPLOTOPEN / name, encoding="utf-8") as real, \
                open(world.splotopen_dir / name, encoding="utf-8") as ours:
            assert ours.readline() == real.readline()


def test_files_and_columns(world: WorldPaths, tables: dict[str, pd.DataFrame]) -> None:
    for folder, names in GROUP_FILES.items():
        for name in names:
            assert (world.rasters_dir / folder / f"{name}.tif").is_file()
    header_text = (world.splotopen_dir / "sPlotOpen_header.txt").read_text(encoding="utf-8")
    dt_text = (world.splotopen_dir / "sPlotOpen_DT.txt").read_text(encoding="utf-8")
    assert header_text.splitlines()[0].split("\t") == SPLOT_HEADER
    assert dt_text.splitlines()[0].split("\t") == SPLOT_DT
    assert "\r" not in header_text and "\tNA\t" in header_text
    assert len(tables["header"]) == TINY["n_plots"]
    assert list(tables["species"].columns) == [
        "species",
        "prevalence",
        "n_presences",
        "drivers",
        "driver_groups",
        "params",
    ]
    assert len(tables["species"]) == TINY["n_species"]
    assert tables["species"]["species"].is_unique
    assert list(tables["prob"].columns) == ["PlotObservationID", *tables["species"]["species"]]
    assert all(tables["prob"][c].dtype == np.float32 for c in tables["prob"].columns[1:])
    meta = json.loads((world.truth_dir / "world.json").read_text())
    assert (
        meta["seed"] == 3 and meta["n_plots"] == 300 and "simulated" in meta["description"].lower()
    )
    assert meta["probability_file"] == "probability.parquet"
    # Leftover temporary files would mean a write was not atomic.
    assert not [p for p in world.root.rglob("*") if p.name.endswith(".tmp")]


def test_values_follow_splotopen_conventions(tables: dict[str, pd.DataFrame]) -> None:
    header, dt = tables["header"], tables["dt"]
    ids = header["PlotObservationID"]
    assert ids.is_unique and ids.is_monotonic_increasing
    assert not np.array_equal(ids.to_numpy(), np.arange(len(ids)))
    for col in ["is_forest", "Forest", "Resample_1", "Resample_1_consensus"]:
        assert set(header[col].dropna().astype(str)) <= {"True", "False"}
    dates = header["Date_of_recording"].dropna()
    assert dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    pd.to_datetime(dates, format="%Y-%m-%d")
    area = header["Releve_area"]
    assert 0.05 < area.isna().mean() < 0.7 and area.min() >= 0.03 and area.max() <= 40_000
    unc = header["Location_uncertainty"]
    assert unc.isna().sum() >= 1 and unc.min() >= 1 and unc.max() <= 2750
    # Cover_algae_layer: a handful of values, none in the first rows (the real dtype trap).
    algae = header["Cover_algae_layer"]
    assert 1 <= algae.notna().sum() <= 6 and algae.iloc[:100].isna().all()
    for col in [c for c in SPLOT_HEADER if c.startswith(("Cover_", "Height_"))]:
        assert header[col].isna().mean() > 0.5, col
    assert set(dt["Abundance_scale"]) <= {"CoverPerc", "pa"}
    assert (dt["Abundance_scale"] == "CoverPerc").mean() > 0.5
    assert set(dt["PlotObservationID"]) <= set(ids)
    assert not dt.duplicated(["PlotObservationID", "Species"]).any()
    np.testing.assert_allclose(dt.groupby("PlotObservationID")["Relative_cover"].sum(), 1.0)
    assert set(dt["Species"]) <= set(tables["species"]["species"])


def test_same_seed_same_bytes_other_seed_differs(world: WorldPaths, tmp_path: Path) -> None:
    again = simulate_world(tmp_path / "again", seed=3, **TINY)
    other = simulate_world(tmp_path / "other", seed=4, **TINY)
    for rel in [
        "splotopen/sPlotOpen_header.txt",
        "splotopen/sPlotOpen_DT.txt",
        "truth/species.csv",
    ]:
        assert (again.root / rel).read_bytes() == (world.root / rel).read_bytes(), rel
        assert (other.root / rel).read_bytes() != (world.root / rel).read_bytes(), rel
    with (
        rasterio.open(world.rasters_dir / "worldclim/bio_1.tif") as a,
        rasterio.open(again.rasters_dir / "worldclim/bio_1.tif") as b,
    ):
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_plots_are_on_land(tables: dict[str, pd.DataFrame]) -> None:
    header = tables["header"]
    lat, lon = header["Latitude"].to_numpy(), header["Longitude"].to_numpy()
    assert globe.is_land(lat, lon).all()
    west, south, east, north = SCALES["demo"]["extent"]
    assert ((lon > west) & (lon < east) & (lat > south) & (lat < north)).all()
    # Clustered like survey data: far fewer distinct 1-degree cells than plots.
    cells = set(zip(np.floor(lon), np.floor(lat), strict=True))
    assert len(cells) < len(header) / 2


@pytest.mark.parametrize(
    ("folder", "name", "dtype", "nodata", "epsg"),
    [
        ("worldclim", "bio_12", "float32", -3.4e38, 4326),
        ("soilgrids", "ORCDRC", "int16", -32768, 4326),
        ("soilgrids", "PHIHOX", "uint8", 255, 4326),
        ("soilgrids", "BLDFIE", "int16", -32768, 4326),
        ("topography", "Slope", "float32", -3.4e38, 4326),
        ("human_footprint", "HFP2009", "float32", -3.4e38, None),
    ],
)
def test_raster_formats(
    world: WorldPaths, folder: str, name: str, dtype: str, nodata: float, epsg: int | None
) -> None:
    path = world.rasters_dir / folder / f"{name}.tif"
    with rasterio.open(path) as ds:
        assert ds.count == 1 and ds.dtypes[0] == dtype
        assert ds.nodata == pytest.approx(nodata, rel=1e-6)
        assert ds.compression is not None and ds.compression.value.lower() == "deflate"
        if epsg is None:
            assert ds.crs.to_epsg() != 4326 and "mollweide" in ds.crs.to_wkt().lower()
        else:
            assert ds.crs.to_epsg() == epsg
        band = ds.read(1, masked=True)
    assert 0.2 < np.ma.getmaskarray(band).mean() < 0.8  # land and sea in the European extent
    # Bay of Biscay and the Tyrrhenian Sea are nodata, inland France and Poland are not.
    values = _raster_at(path, np.array([-6.0, 11.5, 2.5, 19.0]), np.array([45.5, 40.0, 47.0, 52.0]))
    assert np.isnan(values[:2]).all() and np.isfinite(values[2:]).all()


def test_land_mask_is_the_real_one(world: WorldPaths) -> None:
    with rasterio.open(world.rasters_dir / "worldclim" / "bio_1.tif") as ds:
        valid = ~np.ma.getmaskarray(ds.read(1, masked=True))
        t = ds.transform
        lon = t.c + (np.arange(ds.width) + 0.5) * t.a
        lat = t.f + (np.arange(ds.height) + 0.5) * t.e
    lon2, lat2 = np.meshgrid(lon, lat)
    np.testing.assert_array_equal(valid, globe.is_land(lat2, lon2))


def test_plausible_climate(world: WorldPaths) -> None:
    def band(name: str) -> np.ndarray:
        with rasterio.open(world.rasters_dir / "worldclim" / f"{name}.tif") as ds:
            return ds.read(1, masked=True).filled(np.nan).astype(float)

    bio1, bio5, bio6, bio12 = band("bio_1"), band("bio_5"), band("bio_6"), band("bio_12")
    land = np.isfinite(bio1)
    assert -30 < np.nanmedian(bio1) < 25 and 100 < np.nanmedian(bio12) < 3000
    assert (bio5[land] > bio1[land]).all() and (bio6[land] < bio1[land]).all()
    # Colder to the north.
    north, south = np.nanmean(bio1[: bio1.shape[0] // 3]), np.nanmean(bio1[-bio1.shape[0] // 3 :])
    assert north < south - 3
    # Spatially autocorrelated: neighbouring cells are alike.
    pairs = land[:, 1:] & land[:, :-1]
    assert np.corrcoef(bio12[:, 1:][pairs], bio12[:, :-1][pairs])[0, 1] > 0.7


def test_prevalence_matches_observed_frequency(tables: dict[str, pd.DataFrame]) -> None:
    species, dt, n = tables["species"], tables["dt"], TINY["n_plots"]
    observed = dt.groupby("Species").size().reindex(species["species"], fill_value=0).to_numpy()
    assert (observed == species["n_presences"].to_numpy()).all()
    prev = species["prevalence"].to_numpy()
    np.testing.assert_allclose(prev, tables["prob"].iloc[:, 1:].mean().to_numpy(), rtol=1e-5)
    assert ((prev > 0.005) & (prev < 0.3)).all()
    sd = np.sqrt(prev * (1 - prev) / n)
    assert (np.abs(observed / n - prev) <= 4 * sd + 2 / n).all()
    assert abs(observed.sum() / n - prev.sum()) < 0.1 * prev.sum()


def test_truth_is_reproduced_from_the_files(
    world: WorldPaths, tables: dict[str, pd.DataFrame]
) -> None:
    """p from species.csv params and raster values sampled by GDAL equals probability.parquet."""
    header, prob = tables["header"], tables["prob"].set_index("PlotObservationID")
    lon, lat = header["Longitude"].to_numpy(), header["Latitude"].to_numpy()
    folders = {name: folder for folder, names in GROUP_FILES.items() for name in names}
    cache: dict[str, np.ndarray] = {"Longitude": lon, "Latitude": lat}
    area = header["Releve_area"].to_numpy()
    for _, row in tables["species"].iterrows():
        params = json.loads(row["params"])
        area_term = params["area_coef"] * np.log(
            np.nan_to_num(area, nan=params["area_reference"]) / params["area_reference"]
        )
        logit = params["intercept"] + area_term
        for term in params["terms"]:
            name = term["predictor"]
            if name not in cache:
                cache[name] = _raster_at(
                    world.rasters_dir / folders[name] / f"{name}.tif", lon, lat
                )
            z = (cache[name] - term["center"]) / term["scale"]
            shape = (
                -0.5 * ((z - term["mu"]) / term["sigma"]) ** 2
                if term["shape"] == "gaussian"
                else term["beta"] * z
            )
            logit = logit + term["strength"] * shape
        expected = prob.loc[header["PlotObservationID"], row["species"]].to_numpy()
        np.testing.assert_allclose(
            special.expit(logit), expected, atol=2e-4, err_msg=row["species"]
        )
        assert row["drivers"].split(";") == [t["predictor"] for t in params["terms"]]
        assert row["driver_groups"].split(";")[0] == params["terms"][0]["group"]


def test_single_worldclim_driver_drives_probability(
    world: WorldPaths, tables: dict[str, pd.DataFrame]
) -> None:
    header, prob = tables["header"], tables["prob"]
    lon, lat = header["Longitude"].to_numpy(), header["Latitude"].to_numpy()
    area = np.nan_to_num(header["Releve_area"].to_numpy(), nan=100.0)
    single = tables["species"][
        ~tables["species"]["drivers"].str.contains(";")
        & (tables["species"]["driver_groups"] == "WorldClim")
    ]
    assert len(single) >= 1
    for _, row in single.iterrows():
        term = json.loads(row["params"])["terms"][0]
        value = _raster_at(world.rasters_dir / "worldclim" / f"{row['drivers']}.tif", lon, lat)
        signal = special.logit(prob[row["species"]].to_numpy(np.float64)) - 0.3 * np.log(area / 100)
        if term["shape"] == "linear":
            rho = stats.spearmanr(value, signal).statistic * np.sign(term["beta"])
        else:
            optimum = term["center"] + term["mu"] * term["scale"]
            rho = stats.spearmanr(-np.abs(value - optimum), signal).statistic
        assert rho > 0.99, row["species"]


def test_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        simulate_world(tmp_path, **TINY)
    paths = simulate_world(tmp_path, force=True, **TINY)
    assert (paths.splotopen_dir / "sPlotOpen_DT.txt").is_file()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_large_worlds_skip_the_probability_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulate, "_MAX_PROBABILITY_CELLS", 100)
    paths = simulate_world(tmp_path, n_plots=50, n_species=5, resolution=1.0, progress=False)
    meta = json.loads((paths.truth_dir / "world.json").read_text())
    assert meta["probability_file"] is None and "not written" in meta["probability_note"]
    assert not (paths.truth_dir / "probability.parquet").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scale="planet"),
        dict(n_plots=0),
        dict(seed=-1),
        dict(resolution=0.0),
        dict(extent=(10.0, 0.0, 5.0, 10.0)),
        dict(extent=(-40.0, -40.0, -30.0, -30.0)),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        simulate_world(tmp_path / "w", **{**TINY, **kwargs})
