"""``masksdm fetch`` against a local HTTP server serving each source in its real layout.

The catalogue used is data/sources.toml with its hosts pointed at a server on 127.0.0.1
($MASKSDM_SOURCES): the URL templates are the real ones, and nothing reaches the internet. The
server honours ``Range`` (and ``If-Range``), and can be told to cut a response short, to ignore
ranges, or to serve another body.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import tomllib
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import rasterio
import safetensors.numpy
import tomli_w
from affine import Affine
from fixtures.splotopen import write_splotopen

from masksdm.cli import main
from masksdm.data import sources
from masksdm.data.fetch import CHECKSUMS, MARKER, atomic_folder, cache_dir
from masksdm.data.layouts import check_safetensors
from masksdm.data.splotopen import load_splotopen
from masksdm.errors import BusyError, ConfigError
from masksdm.locks import locked

ROOT = Path(__file__).resolve().parents[1]
HOSTS = ("https://geodata.ucdavis.edu", "https://maps.isric.org", "https://huggingface.co")
TRANSFORM = Affine(0.5, 0.0, 5.0, 0.0, -0.5, 48.0)
WC_URL = "/climate/worldclim/2_1/base/wc2.1_10m_bio.zip"
FUTURE_URL = "/cmip6/10m/MPI-ESM1-2-HR/ssp585/wc2.1_10m_bioc_MPI-ESM1-2-HR_ssp585_2041-2060.tif"
VITB_URL = "/gsumbul/SMARTIES-v1-ViT-B/resolve/main/smarties-v1-vitb.safetensors"


# --- the server ---------------------------------------------------------------------------------------

class State:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # URL path -> body
        self.coverages: dict[str, bytes] = {}  # WCS COVERAGEID -> GeoTIFF
        self.cut: dict[str, int] = {}  # URL path -> bytes sent before the connection drops (once)
        self.no_range: set[str] = set()
        self.requests: list[tuple[str, dict[str, str]]] = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        state: State = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.path, dict(self.headers)))
        url = urlsplit(self.path)
        if url.path == "/mapserv":
            body = state.coverages.get(parse_qs(url.query).get("COVERAGEID", [""])[0])
        else:
            body = state.files.get(url.path)
        if body is None:
            self.send_error(404)
            return
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        start = 0
        ranged = self.headers.get("Range")
        if ranged and url.path not in state.no_range and self.headers.get("If-Range", etag) == etag:
            start = int(ranged.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", etag)
        self.end_headers()
        cut = state.cut.pop(url.path, None)
        self.wfile.write(body[start:] if cut is None else body[start:start + cut])


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = State()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _catalogue(base: str, path: Path, **changes: dict) -> Path:
    text = (ROOT / "data" / "sources.toml").read_text()
    for host in HOSTS:
        text = text.replace(host, base)
    catalogue = tomllib.loads(text)
    for table, values in changes.items():
        catalogue[table].update(values)
    path.write_text(tomli_w.dumps(catalogue))
    return path


@pytest.fixture
def env(server, tmp_path, monkeypatch):
    """A fresh server state, cache and lock folder; the catalogue pointed at the server."""
    server.state = State()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MASKSDM_SOURCES", str(_catalogue(base, tmp_path / "sources.toml")))
    monkeypatch.setenv("MASKSDM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MASKSDM_LOCK_DIR", str(tmp_path / "locks"))
    return server.state, base, tmp_path


# --- files in each source's real layout --------------------------------------------------------------

def _tif(values: np.ndarray, *, nodata: float | None, crs: str = "EPSG:4326") -> bytes:
    values = values if values.ndim == 3 else values[None]
    buffer = io.BytesIO()
    with rasterio.MemoryFile() as memory:
        with memory.open(driver="GTiff", width=values.shape[2], height=values.shape[1], count=values.shape[0],
                         dtype=values.dtype, crs=crs, transform=TRANSFORM, nodata=nodata) as dst:
            dst.write(values)
        buffer.write(memory.read())
    return buffer.getvalue()


def _grid(offset: float, dtype: str = "float32") -> np.ndarray:
    return (offset + np.arange(12).reshape(3, 4)).astype(dtype)


def _worldclim_zip(members: range = range(1, 20), *, resolution: str = "10m") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in members:  # as in the real archive: flat, wc2.1_10m_bio_1.tif ... _19.tif
            archive.writestr(f"wc2.1_{resolution}_bio_{n}.tif", _tif(_grid(100 * n), nodata=-3.4e38))
    return buffer.getvalue()


def _weights(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return safetensors.numpy.save({"patch_embed.weight": rng.normal(size=(8, 4)).astype(np.float32)})


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _fetch(*argv: str) -> int:
    return main(["fetch", *argv, "--quiet"])


# --- the sources, laid out ---------------------------------------------------------------------------

def test_worldclim_is_laid_out_as_bio_n(env, capsys):
    state, _, tmp = env
    body = _worldclim_zip()
    state.files[WC_URL] = body
    out = tmp / "rasters" / "worldclim"
    assert _fetch("worldclim", "--resolution", "10m", "--variables", "bio", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert f"--rasters {out}" in printed and "Fick" in printed
    assert sorted(p.name for p in out.glob("*.tif")) == sorted(f"bio_{n}.tif" for n in range(1, 20))
    for n in (1, 12, 19):
        with rasterio.open(out / f"bio_{n}.tif") as src:
            assert src.crs.to_epsg() == 4326 and src.transform == TRANSFORM
            np.testing.assert_array_equal(src.read(1), _grid(100 * n))
    recorded = json.loads((tmp / "cache" / CHECKSUMS).read_text())
    (url, entry), = recorded.items()
    assert url.endswith(WC_URL)
    assert entry["sha256"] == _sha(body) and entry["size"] == len(body)
    assert (tmp / "cache" / "downloads" / "wc2.1_10m_bio.zip").read_bytes() == body
    # a second run finds the output complete: no request, nothing rewritten
    n_requests = len(state.requests)
    assert _fetch("worldclim", "--out", str(out)) == 0
    assert "already there" in capsys.readouterr().out and len(state.requests) == n_requests


def test_worldclim_default_folder_is_in_the_cache(env, capsys):
    state, _, tmp = env
    state.files[WC_URL] = _worldclim_zip()
    assert _fetch("worldclim") == 0
    folder = tmp / "cache" / "rasters" / "worldclim_10m_bio"
    assert (folder / "bio_7.tif").is_file() and (folder / MARKER).is_file()
    assert str(folder) in capsys.readouterr().out


def test_future_geotiff_is_split_into_19_rasters(env):
    state, _, tmp = env
    bands = np.stack([_grid(1000 * b) for b in range(1, 20)])
    bands[:, 0, 0] = -3.4e38
    state.files[FUTURE_URL] = _tif(bands, nodata=-3.4e38)
    out = tmp / "future"
    argv = ["worldclim-future", "--model", "MPI-ESM1-2-HR", "--ssp", "585", "--period", "2041-2060"]
    assert _fetch(*argv, "--resolution", "10m", "--out", str(out)) == 0
    for b in (1, 10, 19):
        with rasterio.open(out / f"bio_{b}.tif") as src:
            assert src.count == 1 and src.dtypes[0] == "float32"
            assert src.crs.to_epsg() == 4326 and src.transform == TRANSFORM
            assert src.nodata == pytest.approx(-3.4e38) and src.descriptions == (f"bio_{b}",)
            np.testing.assert_array_equal(src.read(1), bands[b - 1])


def test_soilgrids_wcs_layers_in_legacy_names_and_units(env):
    state, _, tmp = env
    raw = {"soc": 123, "phh2o": 65, "bdod": 130, "clay": 250}
    for prop, value in raw.items():
        grid = np.full((3, 4), value, dtype="int16")
        grid[2, 3] = -32768
        state.coverages[f"{prop}_0-5cm_mean"] = _tif(grid, nodata=-32768)
    out = tmp / "soil"
    assert _fetch("soilgrids", "--variables", "ORCDRC,PHIHOX,BLDFIE,CLYPPT", "--bounds", "5,46.5,7,48",
                  "--out", str(out)) == 0
    expected = {"ORCDRC": 12.3, "PHIHOX": 65.0, "BLDFIE": 1300.0, "CLYPPT": 25.0}
    for name, value in expected.items():
        with rasterio.open(out / f"{name}.tif") as src:
            assert src.crs.to_epsg() == 4326 and src.nodata == -32768 and src.dtypes[0] == "float32"
            values = src.read(1)
            assert values[2, 3] == -32768
            assert values[0, 0] == pytest.approx(value)
    query = parse_qs(urlsplit(state.requests[0][0]).query)
    assert query["COVERAGEID"] == ["soc_0-5cm_mean"] and query["REQUEST"] == ["GetCoverage"]
    assert query["SUBSET"] == ["long(5,7)", "lat(46.5,48)"]
    assert query["SUBSETTINGCRS"] == ["http://www.opengis.net/def/crs/EPSG/0/4326"]


def test_soilgrids_says_bdticm_has_no_v2_layer(env, capsys):
    state, _, tmp = env
    assert _fetch("soilgrids", "--variables", "ORCDRC,BDTICM", "--bounds", "5,46,7,48") == 2
    err = capsys.readouterr().err
    assert "BDTICM has no SoilGrids 2.0 WCS layer" in err and "BDTICM_M_250m_ll.tif" in err
    assert state.requests == []


def test_soilgrids_answer_that_is_no_geotiff(env, capsys):
    state, _, _ = env
    state.coverages["soc_0-5cm_mean"] = b'<?xml version="1.0"?><ows:ExceptionReport><ows:ExceptionText>too large' \
                                        b"</ows:ExceptionText></ows:ExceptionReport>"
    assert _fetch("soilgrids", "--variables", "ORCDRC", "--bounds", "5,46,7,48") == 2
    err = capsys.readouterr().err
    assert "instead of a GeoTIFF" in err and "too large" in err and "/mapserv?map=/map/soc.map" in err


def test_splotopen_archive_is_laid_out_for_the_loader(env, server, tmp_path, monkeypatch):
    state, base, tmp = env
    tables = tmp / "tables"
    write_splotopen(tables, header_name="sPlotOpen_header(3).txt", dt_name="sPlotOpen_DT(2).txt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in tables.iterdir():
            archive.write(path, f"3474_76_sPlotOpen/{path.name}")
        archive.writestr("3474_76_sPlotOpen/sPlotOpen_metadata.txt", "metadata")
    state.files["/sPlotOpen.zip"] = buffer.getvalue()
    monkeypatch.setenv("MASKSDM_SOURCES", str(_catalogue(base, tmp_path / "s.toml",
                                                          splotopen={"download": f"{base}/sPlotOpen.zip"})))
    out = tmp / "splot"
    assert _fetch("splotopen", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "sPlotOpen_DT(2).txt", "sPlotOpen_header(3).txt"]
    data = load_splotopen(out, min_plots=4)
    assert set(data.occurrences["species"]) == {"Fagus sylvatica", "Abies alba", "Quercus ilex"}


def test_splotopen_by_hand_instructions_then_layout(env, capsys):
    _, _, tmp = env
    out = tmp / "splot"
    assert _fetch("splotopen", "--out", str(out)) == 2
    err = capsys.readouterr().err
    by_hand = tmp / "cache" / "downloads" / "splotopen"
    assert "idata.idiv.de/ddm/Data/ShowData/3474" in err and str(by_hand) in err and not out.exists()
    write_splotopen(by_hand)
    assert _fetch("splotopen", "--out", str(out)) == 0
    assert f"--splotopen {out}" in capsys.readouterr().out
    assert len(load_splotopen(out, min_plots=4).plots) == 30


def test_weights_into_a_folder(env, capsys):
    state, _, tmp = env
    body = _weights()
    state.files[VITB_URL] = body
    assert _fetch("smarties-weights", "vitb", "--out", str(tmp / "w")) == 0
    target = tmp / "w" / "smarties-v1-vitb.safetensors"
    assert target.read_bytes() == body
    check_safetensors(target)
    assert f"--weights {target}" in capsys.readouterr().out
    assert _fetch("smarties-weights") == 0  # default: the cached download is the file to use
    assert str(tmp / "cache" / "downloads" / "smarties-v1-vitb.safetensors") in capsys.readouterr().out


# --- interruptions and bad files -------------------------------------------------------------------

def test_an_interrupted_download_resumes_with_range(env, capsys):
    state, _, tmp = env
    body = _weights()
    state.files[VITB_URL] = body
    state.cut[VITB_URL] = len(body) // 2
    assert _fetch("smarties-weights", "vitb") == 2
    err = capsys.readouterr().err
    part = tmp / "cache" / "downloads" / "smarties-v1-vitb.safetensors.part"
    assert "cut short" in err and "resume" in err and part.stat().st_size == len(body) // 2
    assert _fetch("smarties-weights", "vitb") == 0
    assert state.requests[1][1]["Range"] == f"bytes={len(body) // 2}-"
    assert state.requests[1][1]["If-Range"].startswith('"')
    done = tmp / "cache" / "downloads" / "smarties-v1-vitb.safetensors"
    assert _sha(done.read_bytes()) == _sha(body) and not part.exists()


def test_a_whole_part_left_unchecked_is_finished_without_downloading_again(env):
    state, base, tmp = env
    body = _weights()
    state.files[VITB_URL] = body
    assert _fetch("smarties-weights") == 0
    downloads = tmp / "cache" / "downloads"
    part = downloads / "smarties-v1-vitb.safetensors.part"  # as a run killed before its check leaves it
    (downloads / "smarties-v1-vitb.safetensors").rename(part)
    (downloads / "smarties-v1-vitb.safetensors.part.json").write_text(json.dumps({"url": base + VITB_URL}))
    assert _fetch("smarties-weights") == 0
    assert state.requests[-1][1]["Range"] == f"bytes={len(body)}-"  # answered 416: nothing is left
    assert (downloads / "smarties-v1-vitb.safetensors").read_bytes() == body and not part.exists()


def test_a_server_ignoring_range_is_read_from_the_start(env):
    state, _, tmp = env
    body = _worldclim_zip()
    state.files[WC_URL] = body
    state.cut[WC_URL] = 1000
    state.no_range.add(WC_URL)
    assert _fetch("worldclim") == 2
    assert _fetch("worldclim") == 0
    assert "Range" in state.requests[1][1]  # asked for the rest, got 200 and the whole file
    assert (tmp / "cache" / "downloads" / "wc2.1_10m_bio.zip").read_bytes() == body


def test_a_wrong_checksum_is_kept_aside_and_never_used(env, tmp_path, monkeypatch, capsys):
    state, base, tmp = env
    published, served = _weights(0), _weights(1)
    state.files[VITB_URL] = served
    checksums = {"smarties-v1-vitb.safetensors": {"sha256": _sha(published), "size": len(published)}}
    monkeypatch.setenv("MASKSDM_SOURCES", str(_catalogue(base, tmp_path / "s.toml",
                                                          smarties_weights={"checksums": checksums})))
    out = tmp / "w"
    assert _fetch("smarties-weights", "vitb", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert _sha(served) in err and _sha(published) in err and "published in sources.toml" in err
    bad = tmp / "cache" / "downloads" / f"smarties-v1-vitb.safetensors.bad-{_sha(served)[:8]}"
    assert bad.read_bytes() == served and str(bad) in err
    assert not (tmp / "cache" / "downloads" / "smarties-v1-vitb.safetensors").exists() and not out.exists()
    assert not (tmp / "cache" / CHECKSUMS).exists()


def test_a_recorded_checksum_catches_a_later_change(env, capsys):
    state, _, tmp = env
    state.files[VITB_URL] = first = _weights(0)
    assert _fetch("smarties-weights") == 0
    (tmp / "cache" / "downloads" / "smarties-v1-vitb.safetensors").unlink()
    state.files[VITB_URL] = changed = _weights(1)
    assert _fetch("smarties-weights") == 2
    err = capsys.readouterr().err
    assert _sha(changed) in err and _sha(first) in err and "recorded at its first download" in err
    assert str(tmp / "cache" / CHECKSUMS) in err
    assert (tmp / "cache" / "downloads" / f"smarties-v1-vitb.safetensors.bad-{_sha(changed)[:8]}").is_file()
    assert not (tmp / "cache" / "downloads" / "smarties-v1-vitb.safetensors").exists()


def test_not_found_names_the_url(env, capsys):
    _, base, _ = env
    assert _fetch("worldclim-future", "--model", "NO-SUCH-MODEL", "--ssp", "245", "--period", "2041-2060") == 2
    err = capsys.readouterr().err
    assert "HTTP 404" in err and f"{base}/cmip6/10m/NO-SUCH-MODEL/ssp245/" in err and "MPI-ESM1-2-HR" in err


def test_a_truncated_archive_is_one_clear_error(env, capsys):
    state, base, tmp = env
    body = _worldclim_zip()
    state.files[WC_URL] = body[: len(body) // 2]  # whole as a response, a truncated zip
    out = tmp / "wc"
    assert _fetch("worldclim", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "not a whole zip archive" in err and f"{base}{WC_URL}" in err and "moved aside" in err
    assert not out.exists() and not (tmp / "cache" / CHECKSUMS).exists()
    state.files[WC_URL] = body  # a rerun downloads it again
    assert _fetch("worldclim", "--out", str(out)) == 0


def test_no_network_names_the_url_and_where_to_put_the_file(env, tmp_path, monkeypatch, capsys):
    _, _, tmp = env
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("MASKSDM_SOURCES", str(_catalogue(closed, tmp_path / "offline.toml")))
    assert _fetch("worldclim", "--resolution", "5m") == 2
    err = capsys.readouterr().err
    url = f"{closed}/climate/worldclim/2_1/base/wc2.1_5m_bio.zip"
    path = tmp / "cache" / "downloads" / "wc2.1_5m_bio.zip"
    assert "cannot reach" in err and url in err and str(path) in err and "rerun" in err
    path.write_bytes(_worldclim_zip(resolution="5m"))  # downloaded by hand
    assert _fetch("worldclim", "--resolution", "5m") == 0
    assert (tmp / "cache" / "rasters" / "worldclim_5m_bio" / "bio_19.tif").is_file()


def test_a_failed_layout_leaves_no_output(env, capsys):
    state, _, tmp = env
    state.files[WC_URL] = _worldclim_zip(range(1, 19))  # bio_19 missing
    out = tmp / "rasters" / "wc"
    assert _fetch("worldclim", "--out", str(out)) == 2
    assert "lacks wc2.1_10m_bio_N.tif for N = [19]" in capsys.readouterr().err
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_a_killed_unpack_never_looks_complete(tmp_path):
    out = tmp_path / "rasters" / "wc"
    with pytest.raises(KeyboardInterrupt), atomic_folder(out) as tmp:
        (tmp / "bio_1.tif").write_bytes(b"half")
        raise KeyboardInterrupt
    assert not out.exists() and list(out.parent.iterdir()) == []
    stale = out.parent / ".wc.partial-killed"  # as a kill -9 leaves it: hidden, removed by the next run
    stale.mkdir()
    with atomic_folder(out) as tmp:
        (tmp / "bio_1.tif").write_bytes(b"whole")
    assert [p.name for p in out.parent.iterdir()] == ["wc"] and (out / "bio_1.tif").read_bytes() == b"whole"


def test_an_earlier_fetch_is_replaced_only_with_force(env, capsys):
    state, _, tmp = env
    state.files[WC_URL] = _worldclim_zip()
    state.files[WC_URL.replace("10m", "5m")] = _worldclim_zip(resolution="5m")
    out = tmp / "wc"
    assert _fetch("worldclim", "--out", str(out)) == 0
    assert _fetch("worldclim", "--resolution", "5m", "--out", str(out)) == 2
    assert "--force" in capsys.readouterr().err
    assert _fetch("worldclim", "--resolution", "5m", "--out", str(out), "--force") == 0
    assert json.loads((out / MARKER).read_text())["request"]["resolution"] == "5m"
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("mine")
    assert _fetch("worldclim", "--out", str(tmp / "mine"), "--force") == 2
    assert (tmp / "mine" / "notes.txt").read_text() == "mine"


def test_two_fetches_of_one_folder_do_not_collide(env, capsys):
    state, _, tmp = env
    out = tmp / "wc"
    with locked(out, what="output folder"):
        with pytest.raises(BusyError):
            sources.fetch_worldclim(out=out, progress=False)
    assert state.requests == []


# --- the catalogue ------------------------------------------------------------------------------------

def test_list_prints_sources_licences_citations(env, capsys):
    assert main(["fetch", "--list"]) == 0
    listed = capsys.readouterr().out
    for text in ("worldclim:", "worldclim-future:", "soilgrids:", "splotopen:", "smarties-weights:", "CC BY 4.0",
                 "Poggio", "Hengl", "Sabatini", "Sumbul", "Fick", "header 25 MB"):
        assert text in listed
    assert main(["fetch", "list"]) == 0 and "Apache-2.0" in capsys.readouterr().out


def test_catalogue_is_found_in_the_checkout_then_the_installed_copy(tmp_path, monkeypatch):
    monkeypatch.delenv("MASKSDM_SOURCES", raising=False)
    assert sources.sources_path() == ROOT / "data" / "sources.toml"
    installed = tmp_path / "prefix" / "share" / "masksdm" / "sources.toml"
    installed.parent.mkdir(parents=True)
    installed.write_text("[worldclim]\n")
    monkeypatch.setattr(sources, "__file__", str(tmp_path / "site" / "masksdm" / "data" / "sources.py"))
    monkeypatch.setattr("sys.prefix", str(tmp_path / "prefix"))
    assert sources.sources_path() == installed
    monkeypatch.setenv("MASKSDM_SOURCES", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="MASKSDM_SOURCES"):
        sources.sources_path()


def test_the_wheel_installs_the_catalogue():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "data/sources.toml" in pyproject["tool"]["setuptools"]["data-files"]["share/masksdm"]


def test_the_catalogue_keeps_what_the_readme_relies_on():
    catalogue = tomllib.loads((ROOT / "data" / "sources.toml").read_text())
    for table in ("splotopen", "worldclim", "soilgrids", "topography", "human_footprint", "smarties_weights",
                  "sentinel", "masksdm"):
        assert catalogue[table]["title"] and catalogue[table]["cite"]
    for table, entry in catalogue.items():  # no checksum is made up: none is published for these files
        assert "checksums" not in entry, table
    assert {f"{name}.tif" for name in [*catalogue["soilgrids"]["v2"], *catalogue["soilgrids"]["legacy_only"]]} == set(
        catalogue["soilgrids"]["files"])


def test_cache_folder_lookup(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKSDM_CACHE", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a" and cache_dir(tmp_path / "b") == tmp_path / "b"
    monkeypatch.delenv("MASKSDM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "masksdm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "masksdm"


def test_bad_options_are_one_clear_error(env, capsys):
    assert _fetch("soilgrids", "--bounds", "7,46,5,48") == 2
    assert "W < E" in capsys.readouterr().err
    assert _fetch("worldclim-future", "--model", "MPI-ESM1-2-HR", "--ssp", "999", "--period", "2041-2060") == 2
    assert "--ssp '999' is not one of 126, 245, 370, 585" in capsys.readouterr().err
    assert _fetch("worldclim-future", "--model", "../etc", "--ssp", "245", "--period", "2041-2060") == 2
    assert main(["fetch"]) == 2 and "--list" in capsys.readouterr().err
