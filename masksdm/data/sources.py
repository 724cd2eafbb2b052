"""The catalogue of real data sources (``data/sources.toml``) and ``masksdm fetch``: each source
downloaded (checked, resumable: :mod:`masksdm.data.fetch`) and laid out under the names the
workspace expects (:mod:`masksdm.data.layouts`).

The catalogue is found as ``$MASKSDM_SOURCES``, else the checkout's ``data/sources.toml`` (next to
the package), else the copy installed with the wheel (``<prefix>/share/masksdm/sources.toml``).
Its ``download`` entries are URL templates: change them there (e.g. to a mirror), not here.

Each fetcher returns a :class:`Fetched` naming the folder to pass on (``masksdm prepare --rasters``,
``predict --rasters``, ``prepare --splotopen``, ``embed --weights``). A fetcher run again with the
same request finds its output complete and returns at once; its downloads stay in the cache.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masksdm._io import atomic_path, path_inside, safe_name
from masksdm.data.fetch import (
    Download,
    Downloaded,
    atomic_folder,
    cache_dir,
    download,
    file_digest,
    output_state,
    write_marker,
)
from masksdm.data.layouts import (
    check_geotiff,
    check_safetensors,
    check_zip,
    soil_layer,
    split_bands,
    splotopen_layout,
    worldclim_layout,
)
from masksdm.errors import ConfigError, FetchError
from masksdm.locks import locked

__all__ = [
    "BIO_NAMES",
    "FETCHABLE",
    "SOURCES_ENV",
    "Fetched",
    "describe_catalogue",
    "fetch_smarties_weights",
    "fetch_soilgrids",
    "fetch_splotopen",
    "fetch_worldclim",
    "fetch_worldclim_future",
    "load_catalogue",
    "parse_bounds",
    "sources_path",
]

#: Environment variable naming the catalogue file.
SOURCES_ENV = "MASKSDM_SOURCES"
#: ``masksdm fetch`` source name -> its table in the catalogue.
FETCHABLE: dict[str, str] = {
    "worldclim": "worldclim", "worldclim-future": "worldclim_future", "soilgrids": "soilgrids",
    "splotopen": "splotopen", "smarties-weights": "smarties_weights",
}
#: The WorldClim bioclimatic predictors, in band order.
BIO_NAMES: tuple[str, ...] = tuple(f"bio_{n}" for n in range(1, 20))

# a CMIP6 model name goes into a URL path: letters, digits, dashes only
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


@dataclass(frozen=True)
class Fetched:
    """What a fetch laid out.

    Attributes:
        source: the ``masksdm fetch`` source name.
        folder: the folder to pass on.
        files: the files in it.
        reused: the folder was already complete: nothing was downloaded or written.
    """

    source: str
    folder: Path
    files: tuple[Path, ...]
    reused: bool = False


def sources_path() -> Path:
    """The catalogue file: ``$MASKSDM_SOURCES``, the checkout's ``data/sources.toml``, or the copy
    installed with the package.

    Raises:
        ConfigError: none of them is a file.
    """
    env = os.environ.get(SOURCES_ENV)
    if env:
        if not Path(env).is_file():
            raise ConfigError(f"${SOURCES_ENV} is '{env}', which is no file: point it at a sources.toml")
        return Path(env)
    candidates = [Path(__file__).resolve().parents[2] / "data" / "sources.toml"]
    candidates += [Path(base) / "share" / "masksdm" / "sources.toml"
                   for base in dict.fromkeys((sys.prefix, sysconfig.get_path("data")))]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"no sources.toml in {', '.join(map(str, candidates))}: set ${SOURCES_ENV} to one "
                      "(data/sources.toml of the masksdm repository)")


def load_catalogue(path: str | Path | None = None) -> dict[str, Any]:
    """The catalogue (:func:`sources_path` unless ``path``) as a dict of source tables."""
    path = Path(path) if path else sources_path()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the sources catalogue '{path}' ({exc})") from None


def describe_catalogue(catalogue: Mapping[str, Any]) -> str:
    """The catalogue as text: each source's title, licence, citation, where it is, its size."""
    by_table = {table: name for name, table in FETCHABLE.items()}
    blocks = []
    for table, entry in catalogue.items():
        if not isinstance(entry, dict):
            continue
        name = by_table.get(table)
        lines = [f"{name or table}: {entry.get('title', '')}" + ("" if name else "  (download by hand)")]
        for key, label in (("licence", "licence"), ("cite", "cite"), ("cite_v2", "cite (v2.0)"), ("url", "page"),
                           ("landing", "download page"), ("download", "download")):
            if entry.get(key):
                lines.append(f"    {label + ':':<16}{entry[key]}")
        for size, url in (entry.get("downloads") or {}).items():
            lines.append(f"    {'download:':<16}{url} ({size})")
        for key in ("resolutions", "variables", "ssps", "periods", "models"):
            if isinstance(entry.get(key), list):
                lines.append(f"    {key + ':':<16}{', '.join(map(str, entry[key]))}")
        for legacy, v2 in (entry.get("v2") or {}).items():
            lines.append(f"    {legacy + ':':<16}{v2['property']} ({v2['v2_unit']}) x {v2['factor']:g} = {v2['unit']}")
        for legacy, url in (entry.get("legacy_only") or {}).items():
            lines.append(f"    {legacy + ':':<16}no SoilGrids 2.0 layer; legacy release: {url} (by hand)")
        sizes = entry.get("sizes_bytes")
        if isinstance(sizes, dict):
            shown = ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items())
            lines.append(f"    {'size:':<16}{shown}")
        if name:
            known = "published" if entry.get("checksums") else "none published: recorded at the first download"
            lines.append(f"    {'checksums:':<16}{known}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _entry(catalogue: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    catalogue = load_catalogue() if catalogue is None else catalogue
    entry = catalogue.get(FETCHABLE[name])
    if not isinstance(entry, dict):
        raise ConfigError(f"the sources catalogue has no [{FETCHABLE[name]}] table: use data/sources.toml of masksdm")
    return entry


def _template(entry: Mapping[str, Any], name: str, key: str = "download") -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"[{FETCHABLE[name]}] of the sources catalogue has no {key} URL template")
    return value


def _choose(value: str, allowed: Sequence[str], option: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{option} {value!r} is not one of {', '.join(allowed)}")
    return value


def _item(entry: Mapping[str, Any], url: str, name: str, what: str, hint: str) -> Download:
    published = (entry.get("checksums") or {}).get(name) or {}
    return Download(url=url, name=name, what=what, sha256=published.get("sha256"), size=published.get("size"),
                    hint=hint)


def _url_name(url: str) -> str:
    return safe_name(urllib.parse.unquote(Path(urllib.parse.urlsplit(url).path).name), fallback="download")


def _build(source: str, out: Path, request: Mapping[str, Any], items: Sequence[Download], cache: Path, *,
           validate: Callable[[Path], None], layout: Callable[[list[Downloaded], Path], list[str]],
           force: bool, progress: bool) -> Fetched:
    """Download ``items``, lay them out in ``out`` atomically (unless it is already complete)."""
    with locked(out, what="output folder"):
        marker = output_state(out, request, force=force)
        if marker is not None:
            return Fetched(source, out, tuple(out / f for f in marker["files"]), reused=True)
        got = [download(item, cache, validate=validate, progress=progress) for item in items]
        with atomic_folder(out) as tmp:
            files = layout(got, tmp)
            write_marker(tmp, request, files, got)
        return Fetched(source, out, tuple(out / f for f in files))


def fetch_worldclim(resolution: str = "10m", variables: str = "bio", *, out: str | Path | None = None,
                    cache: str | Path | None = None, force: bool = False, progress: bool = True,
                    catalogue: Mapping[str, Any] | None = None) -> Fetched:
    """Download WorldClim 2.1's bioclimatic variables (1970-2000) and lay them out as ``bio_1.tif``
    .. ``bio_19.tif`` (the archive's GeoTIFFs, bytes unchanged: EPSG:4326, float32).

    Data: Fick S.E. & Hijmans R.J. (2017) WorldClim 2: new 1-km spatial resolution climate surfaces
    for global land areas. International Journal of Climatology 37:4302-4315, doi:10.1002/joc.5086
    (free for non-commercial use: see worldclim.org).

    Args:
        resolution: ``10m``, ``5m``, ``2.5m`` (arc-minutes) or ``30s`` (arc-seconds).
        variables: ``bio`` (the 19 bioclimatic variables).
        out: the output folder; default ``<cache>/rasters/worldclim_<resolution>_<variables>``.
        cache: the cache folder (:func:`masksdm.data.fetch.cache_dir`).
        force: replace an earlier fetch in ``out``.
        progress: show progress bars.
        catalogue: the sources catalogue; default :func:`load_catalogue`.

    Raises:
        FetchError: the download failed (named URL, what to do); ChecksumError: it is not the file
        expected; ConfigError: an option the catalogue does not list.
    """
    entry = _entry(catalogue, "worldclim")
    _choose(resolution, entry.get("resolutions", ["10m", "5m", "2.5m", "30s"]), "--resolution")
    _choose(variables, entry.get("variables", ["bio"]), "--variables")
    cache_path = cache_dir(cache)
    url = _template(entry, "worldclim").format(resolution=resolution, variables=variables)
    item = _item(entry, url, _url_name(url), f"the WorldClim 2.1 {resolution} {variables} archive",
                 f"check --resolution against {entry.get('url', 'the WorldClim site')}")
    folder = Path(out) if out else cache_path / "rasters" / f"worldclim_{resolution}_{variables}"
    return _build("worldclim", folder, {"source": "worldclim", "resolution": resolution, "variables": variables},
                  [item], cache_path, validate=check_zip,
                  layout=lambda got, tmp: worldclim_layout(got[0].path, tmp, resolution, variables),
                  force=force, progress=progress)


def fetch_worldclim_future(model: str, ssp: str, period: str, resolution: str = "10m", *,
                           out: str | Path | None = None, cache: str | Path | None = None, force: bool = False,
                           progress: bool = True, catalogue: Mapping[str, Any] | None = None) -> Fetched:
    """Download a WorldClim 2.1 CMIP6 future climate (one global climate model, one SSP, one
    20-year period: one GeoTIFF of 19 bands) and split it into ``bio_1.tif`` .. ``bio_19.tif``
    (band n is bio_n), keeping data type, CRS, transform and nodata.

    Data: WorldClim 2.1 CMIP6 downscaled projections, with WorldClim 2.1 as baseline: Fick S.E. &
    Hijmans R.J. (2017) International Journal of Climatology 37:4302-4315, doi:10.1002/joc.5086;
    cite the CMIP6 model too.

    Args:
        model: the CMIP6 model, e.g. ``MPI-ESM1-2-HR`` (the catalogue lists the available ones).
        ssp: ``126``, ``245``, ``370`` or ``585``.
        period: ``2021-2040``, ``2041-2060``, ``2061-2080`` or ``2081-2100``.
        resolution: ``10m``, ``5m``, ``2.5m`` or ``30s``.
        out: the output folder; default ``<cache>/rasters/worldclim_<model>_ssp<ssp>_<period>_<resolution>``.
        cache, force, progress, catalogue: as :func:`fetch_worldclim`.

    Raises:
        As :func:`fetch_worldclim`; FetchError also when the GeoTIFF has not 19 bands.
    """
    entry = _entry(catalogue, "worldclim-future")
    ssp = str(ssp).removeprefix("ssp")
    _choose(resolution, entry.get("resolutions", ["10m", "5m", "2.5m", "30s"]), "--resolution")
    _choose(ssp, entry.get("ssps", ["126", "245", "370", "585"]), "--ssp")
    _choose(period, entry.get("periods", ["2021-2040", "2041-2060", "2061-2080", "2081-2100"]), "--period")
    if not _MODEL.fullmatch(model):
        raise ConfigError(f"--model {model!r} is not a CMIP6 model name, e.g. {', '.join(entry.get('models', [])[:4])}")
    cache_path = cache_dir(cache)
    url = _template(entry, "worldclim-future").format(resolution=resolution, model=model, ssp=ssp, period=period)
    known = entry.get("models", [])
    hint = (f"is {model} a CMIP6 model WorldClim provides ({', '.join(known)}), for ssp{ssp} {period}? See "
            f"{entry.get('url', 'the WorldClim site')}")
    item = _item(entry, url, _url_name(url), f"the WorldClim 2.1 CMIP6 {model} ssp{ssp} {period} {resolution} GeoTIFF",
                 hint)
    folder = Path(out) if out else cache_path / "rasters" / f"worldclim_{model}_ssp{ssp}_{period}_{resolution}"
    request = {"source": "worldclim-future", "model": model, "ssp": ssp, "period": period, "resolution": resolution}
    return _build("worldclim-future", folder, request, [item], cache_path, validate=check_geotiff,
                  layout=lambda got, tmp: split_bands(got[0].path, tmp, BIO_NAMES), force=force, progress=progress)


def _coordinate(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def parse_bounds(bounds: str | Sequence[float]) -> tuple[float, float, float, float]:
    """``W,S,E,N`` in degrees (EPSG:4326) as four floats, checked."""
    try:
        parts = [float(v) for v in (bounds.split(",") if isinstance(bounds, str) else bounds)]
    except ValueError:
        parts = []
    if len(parts) != 4:
        raise ConfigError(f"--bounds {bounds!r} is not W,S,E,N in degrees, e.g. --bounds 5.9,45.8,10.5,47.8")
    west, south, east, north = parts
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ConfigError(f"--bounds {bounds!r}: need -180 <= W < E <= 180 and -90 <= S < N <= 90 (degrees, W,S,E,N)")
    return west, south, east, north


def fetch_soilgrids(bounds: str | Sequence[float], variables: Sequence[str] | None = None, *,
                    out: str | Path | None = None, cache: str | Path | None = None, force: bool = False,
                    progress: bool = True, catalogue: Mapping[str, Any] | None = None) -> Fetched:
    """Download SoilGrids 2.0 layers (depth 0-5 cm, mean) over ``bounds`` by ISRIC's Web Coverage
    Service, in EPSG:4326, and write each as ``<legacy name>.tif`` in the unit of the legacy 2017
    release that the predictor catalogue (:mod:`masksdm.data.predictors`) documents: ``ORCDRC``
    (soc, g/kg), ``PHIHOX`` (phh2o, pH x 10), ``CECSOL`` (cec, cmol/kg), ``BLDFIE`` (bdod,
    kg/m3), ``CLYPPT`` ``SLTPPT`` ``SNDPPT`` (clay, silt, sand, %); float32, nodata -32768.
    ``BDTICM`` (depth to bedrock) has no SoilGrids 2.0 layer: the error says where the legacy one is.

    Data: Poggio L. et al. (2021) SoilGrids 2.0: producing soil information for the globe with
    quantified spatial uncertainty. SOIL 7:217-240, doi:10.5194/soil-7-217-2021 (CC BY 4.0); the
    legacy names and units: Hengl T. et al. (2017) SoilGrids250m: global gridded soil information
    based on machine learning. PLoS ONE 12:e0169748. Values of 2.0 are new predictions, not the
    legacy maps rescaled: a model trained on legacy SoilGrids sees a slightly different input.

    Args:
        bounds: ``W,S,E,N`` in degrees.
        variables: legacy names; default all that SoilGrids 2.0 has.
        out: the output folder; default ``<cache>/rasters/soilgrids_<W>_<S>_<E>_<N>``.
        cache, force, progress, catalogue: as :func:`fetch_worldclim`.
    """
    entry = _entry(catalogue, "soilgrids")
    table: dict[str, Any] = entry.get("v2", {})
    legacy_only: dict[str, str] = entry.get("legacy_only", {})
    names = [v.strip().upper() for v in (variables or list(table)) if v.strip()]
    for name in names:
        if name in legacy_only:
            raise FetchError(
                f"{name} has no SoilGrids 2.0 WCS layer (SoilGrids 2.0 has no depth to bedrock): leave it out of "
                f"--variables; the legacy 2017 release has it as one global GeoTIFF, {legacy_only[name]}: download "
                f"it by hand, crop it, and save it as {name}.tif (in cm) among your rasters"
            )
        if name not in table:
            raise ConfigError(f"--variables: {name!r} is not one of {', '.join([*table, *legacy_only])}")
    if not names:
        raise ConfigError("--variables is empty: give legacy names, e.g. ORCDRC,PHIHOX")
    west, south, east, north = parse_bounds(bounds)
    box = {k: _coordinate(v) for k, v in zip(("west", "south", "east", "north"), (west, south, east, north),
                                              strict=True)}
    cache_path = cache_dir(cache)
    template = _template(entry, "soilgrids")
    items = []
    for name in names:
        prop = table[name]["property"]
        url = template.format(var=prop, **box)
        file = safe_name(f"soilgrids_{prop}_0-5cm_mean_{box['west']}_{box['south']}_{box['east']}_{box['north']}.tif")
        items.append(_item(entry, url, file, f"the SoilGrids 2.0 {prop} 0-5 cm layer over {bounds}",
                           "check --bounds (W,S,E,N in degrees, on land) and the ISRIC WCS service"))
    nodata_in = float(entry.get("nodata_v2", -32768))
    nodata_out = float(entry.get("nodata_fetched", -32768.0))

    def layout(got: list[Downloaded], tmp: Path) -> list[str]:
        for name, item in zip(names, got, strict=True):
            soil_layer(item.path, path_inside(tmp, f"{name}.tif"), factor=float(table[name]["factor"]), name=name,
                       nodata_in=nodata_in, nodata_out=nodata_out)
        return [f"{name}.tif" for name in names]

    folder = Path(out) if out else cache_path / "rasters" / safe_name("soilgrids_" + "_".join(box.values()))
    request = {"source": "soilgrids", "variables": names, "bounds": list(box.values())}
    return _build("soilgrids", folder, request, items, cache_path, validate=check_geotiff, layout=layout,
                  force=force, progress=progress)


def fetch_splotopen(*, out: str | Path | None = None, cache: str | Path | None = None, force: bool = False,
                    progress: bool = True, catalogue: Mapping[str, Any] | None = None) -> Fetched:
    """Lay out sPlotOpen's plot and species tables (``sPlotOpen_header*.txt``,
    ``sPlotOpen_DT*.txt``) for :func:`masksdm.data.splotopen.load_splotopen`.

    The iDiv Data Repository (dataset 3474) asks for its data policy to be accepted before a
    download, so unless the catalogue gives a direct ``download`` URL, the archive is downloaded by
    hand into ``<cache>/downloads/splotopen/`` (the error says so step by step) and this lays it out.

    Data: Sabatini F.M. et al. (2021) sPlotOpen - An environmentally balanced, open-access, global
    dataset of vegetation plots. Global Ecology and Biogeography 30:1740-1764, doi:10.1111/geb.13346;
    data doi:10.25829/idiv.3474-bb7k72 (CC BY 4.0: cite the paper, the data set and the plot data
    sets used).

    Args:
        out: the output folder; default ``<cache>/splotopen``.
        cache, force, progress, catalogue: as :func:`fetch_worldclim`.
    """
    entry = _entry(catalogue, "splotopen")
    cache_path = cache_dir(cache)
    folder = Path(out) if out else cache_path / "splotopen"
    url = entry.get("download")
    if url:
        item = _item(entry, url, _url_name(url), "the sPlotOpen archive", f"see {entry.get('landing', entry.get('url'))}")
        return _build("splotopen", folder, {"source": "splotopen", "url": url}, [item], cache_path,
                      validate=check_zip, layout=lambda got, tmp: splotopen_layout([got[0].path], tmp),
                      force=force, progress=progress)
    by_hand = cache_path / "downloads" / "splotopen"
    found = sorted(p for p in by_hand.glob("*") if p.is_file() and not p.name.startswith("."))
    if not found:
        by_hand.mkdir(parents=True, exist_ok=True)
        raise FetchError(
            f"sPlotOpen is downloaded by hand: the iDiv Data Repository asks you to accept its data policy first. "
            f"(1) open {entry.get('landing', entry.get('url'))} and download the data set; (2) put the archive "
            f"(.zip), or its files sPlotOpen_header*.txt and sPlotOpen_DT*.txt, into '{by_hand}'; (3) rerun "
            f"masksdm fetch splotopen: it lays them out in '{folder}' for masksdm prepare --splotopen. (Or pass "
            "the folder holding the two files to masksdm prepare --splotopen directly.) Licence "
            f"{entry.get('licence', 'CC BY 4.0')}: cite {entry.get('cite', 'Sabatini et al. 2021')}"
        )
    digests = {p.name: file_digest(p)[1] for p in found}
    request = {"source": "splotopen", "by_hand": digests}
    with locked(folder, what="output folder"):
        marker = output_state(folder, request, force=force)
        if marker is not None:
            return Fetched("splotopen", folder, tuple(folder / f for f in marker["files"]), reused=True)
        with atomic_folder(folder) as tmp:
            files = splotopen_layout(found, tmp)
            write_marker(tmp, request, files, [], {"from": [str(p) for p in found]})
        return Fetched("splotopen", folder, tuple(folder / f for f in files))


def fetch_smarties_weights(size: str = "vitb", *, out: str | Path | None = None, cache: str | Path | None = None,
                           force: bool = False, progress: bool = True,
                           catalogue: Mapping[str, Any] | None = None) -> Fetched:
    """Download the SMARTIES v1 pretrained encoder weights (``smarties-v1-vitb.safetensors`` or
    ``-vitl``) from Hugging Face, checked as a whole safetensors file, for
    ``masksdm embed --weights`` (or ``$MASKSDM_SMARTIES_WEIGHTS``).

    Data: Sumbul G., Xu C., Dalsasso E. & Tuia D. (2025) SMARTIES: Spectrum-Aware Multi-Sensor
    Auto-Encoder for Remote Sensing Images. ICCV 2025, arXiv:2506.19585 (Apache-2.0).

    Args:
        size: ``vitb`` (ViT-B) or ``vitl`` (ViT-L).
        out: a folder to put the file in; default none: the cached download is the file to use.
        cache, force, progress, catalogue: as :func:`fetch_worldclim`; ``force`` replaces a
            different file in ``out``.
    """
    entry = _entry(catalogue, "smarties-weights")
    urls: dict[str, str] = entry.get("downloads", {})
    _choose(size, list(urls) or ["vitb", "vitl"], "the weights")
    cache_path = cache_dir(cache)
    name = f"smarties-v1-{size}.safetensors"
    item = _item(entry, urls[size], name, f"the SMARTIES v1 {size} weights", f"see {entry.get('url')}")
    got = download(item, cache_path, validate=check_safetensors, progress=progress)
    if not out:
        return Fetched("smarties-weights", got.path.parent, (got.path,))
    target = path_inside(Path(out), name)
    with locked(target, what="weights file"):
        if target.is_file() and file_digest(target) == (got.size, got.sha256):
            return Fetched("smarties-weights", target.parent, (target,), reused=True)
        with atomic_path(target, force=force) as tmp:
            tmp.unlink()
            try:  # the same bytes as the cached download: a second name, not a second copy
                os.link(got.path, tmp)
            except OSError:
                shutil.copyfile(got.path, tmp)
    return Fetched("smarties-weights", target.parent, (target,))
