"""Checked, resumable downloads into a cache, and output folders that appear whole or not at all.

What ``masksdm fetch`` downloads goes to ``<cache>/downloads/<file>`` (the cache is
:func:`cache_dir`). A download is written to ``<file>.part`` and resumed with an HTTP ``Range``
request after an interruption (with ``If-Range``, so a file changed on the server since is
downloaded whole again; a server that answers ``200`` instead of ``206`` is read from the start).
Before anything uses a file, its size and sha256 are checked: against the checksum the catalogue
publishes (``data/sources.toml``) where there is one, else against the one recorded in
``<cache>/checksums.json`` at its first successful download (trust on first use). A file that fails
the check is moved aside to ``<file>.bad-<first 8 hex digits of its sha256>`` and never used.

Outputs (the rasters laid out under the workspace's predictor names) are built in a hidden
temporary folder next to the output and renamed into place when complete (:func:`atomic_folder`),
with a marker file (:data:`MARKER`) saying what they hold; a killed run leaves only the hidden
folder, which the next run removes. Two fetches of one file or one output folder do not run at once
(:mod:`masksdm.locks`).

Every failure is one :class:`~masksdm.errors.FetchError` naming the URL: not found, no network (with
the file to download by hand and where to put it so that a rerun uses it), a response cut short
(rerun to resume), a file that is not what it should be.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock
from tqdm import tqdm

from masksdm._io import path_inside, write_json
from masksdm._version import __version__
from masksdm.errors import ChecksumError, DiskFullError, FetchError
from masksdm.locks import locked

__all__ = [
    "CACHE_ENV",
    "CHECKSUMS",
    "MARKER",
    "Checksums",
    "Download",
    "Downloaded",
    "atomic_folder",
    "cache_dir",
    "download",
    "file_digest",
    "output_state",
    "write_marker",
]

#: Environment variable naming the cache folder.
CACHE_ENV = "MASKSDM_CACHE"
#: File of the cache recording each download's size and sha256 at its first successful download.
CHECKSUMS = "checksums.json"
#: The file in an output folder saying what a fetch laid out there; written last.
MARKER = ".masksdm-fetch.json"

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def cache_dir(cache: str | Path | None = None) -> Path:
    """The cache folder: ``cache``, else ``$MASKSDM_CACHE``, else ``$XDG_CACHE_HOME/masksdm``, else
    ``~/.cache/masksdm``."""
    if cache:
        return Path(cache).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "masksdm"
    return Path.home() / ".cache" / "masksdm"


@dataclass(frozen=True)
class Download:
    """One file to download.

    Attributes:
        url: where it is.
        name: its file name in ``<cache>/downloads``.
        what: what it is, for messages (``"the WorldClim 2.1 10m bio archive"``).
        sha256: its published sha256 (hex), if its publisher gives one.
        size: its published size in bytes, if its publisher gives one.
        hint: what to check when it is not found (the options, a landing page).
    """

    url: str
    name: str
    what: str = "the file"
    sha256: str | None = None
    size: int | None = None
    hint: str = ""


@dataclass(frozen=True)
class Downloaded:
    """A downloaded file that passed its checks: its path, size and sha256."""

    path: Path
    size: int
    sha256: str
    url: str


def file_digest(path: str | Path) -> tuple[int, str]:
    """``(size in bytes, sha256 hex)`` of a file, read in chunks."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return Path(path).stat().st_size, digest


class Checksums:
    """The sizes and sha256 of downloads recorded at their first success, in ``<cache>/checksums.json``
    (a JSON object: URL -> ``{"name", "size", "sha256", "recorded"}``)."""

    def __init__(self, cache: Path) -> None:
        self.path = cache / CHECKSUMS

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise FetchError(
                f"cannot read the recorded checksums '{self.path}' ({exc}): fix or delete the file "
                "(deleting it forgets every recorded checksum; the next downloads record them again)"
            ) from None
        return data if isinstance(data, dict) else {}

    def get(self, url: str) -> dict[str, Any] | None:
        """The record of ``url``, or None."""
        entry = self._read().get(url)
        return entry if isinstance(entry, dict) else None

    def record(self, url: str, name: str, size: int, sha256: str) -> None:
        """Record ``url``'s size and sha256; concurrent fetches of other files keep their records."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a blocking lock: fetches of different files may finish together, each adding its entry
        with filelock.FileLock(str(self.path) + ".lock", timeout=60):
            data = self._read()
            data[url] = {"name": name, "size": size, "sha256": sha256,
                         "recorded": datetime.now(UTC).isoformat(timespec="seconds")}
            write_json(self.path, data)


def _expected(item: Download, checks: Checksums) -> tuple[int | None, str | None, str] | None:
    """(size, sha256, where from) the file must have, or None when nothing is known yet."""
    if item.sha256 or item.size is not None:
        return item.size, item.sha256.lower() if item.sha256 else None, "published in sources.toml"
    entry = checks.get(item.url)
    if entry is None:
        return None
    return (int(entry["size"]), str(entry["sha256"]),
            f"recorded at its first download ({entry.get('recorded', '?')}) in '{checks.path}'")


def _aside(path: Path, name: str, sha256: str) -> Path:
    bad = path.with_name(f"{name}.bad-{sha256[:8]}")
    os.replace(path, bad)
    return bad


def _check(path: Path, item: Download, checks: Checksums,
           validate: Callable[[Path], None] | None) -> Downloaded:
    """Check ``path`` (the download of ``item``) against what is expected, then ``validate`` it; a
    file that fails is moved aside and never used. A file with nothing expected yet is recorded."""
    expected = _expected(item, checks)
    size, sha = file_digest(path)
    if expected is not None:
        want_size, want_sha, where = expected
        if (want_size is not None and size != want_size) or (want_sha is not None and sha != want_sha):
            bad = _aside(path, item.name, sha)
            raise ChecksumError(
                f"{item.what} from {item.url} is not the file expected: found {size} bytes, sha256 "
                f"{sha}; expected {want_size if want_size is not None else '?'} bytes, sha256 "
                f"{want_sha or '?'} ({where}). It was moved aside to '{bad}' and is not used. Rerun to "
                "download it again; if it differs again, the file on the server has changed: if you "
                f"trust the change, delete its entry ({item.url}) from '{checks.path}' (or its "
                "checksum from sources.toml) and rerun"
            )
    if validate is not None:
        try:
            validate(path)
        except FetchError as err:
            bad = _aside(path, item.name, sha)
            raise FetchError(
                f"{item.what} from {item.url} is not usable: {err}. It was moved aside to '{bad}'; "
                "rerun to download it again"
            ) from None
    if expected is None:
        checks.record(item.url, item.name, size, sha)
    return Downloaded(path=path, size=size, sha256=sha, url=item.url)


def download(item: Download, cache: Path, *, validate: Callable[[Path], None] | None = None,
             progress: bool = True) -> Downloaded:
    """Download ``item`` into ``<cache>/downloads`` (resuming a ``.part`` left by an interrupted
    run), check it, and return it; a copy already there that passes the checks is used as it is
    (also one put there by hand).

    Args:
        item: what to download.
        cache: the cache folder (:func:`cache_dir`).
        validate: raises :class:`~masksdm.errors.FetchError` when the file cannot be what it should
            be (e.g. an archive that does not open); run after the checksum check, before the file
            is recorded or used.
        progress: show a progress bar.

    Raises:
        ChecksumError: the file's size or sha256 is not the one expected; it was moved aside.
        FetchError: not found, no network, cut short, not valid.
        BusyError: another fetch is downloading the same file.
    """
    folder = cache / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    dest = path_inside(folder, item.name)
    checks = Checksums(cache)
    with locked(dest, what="download"):
        if dest.is_file():
            return _check(dest, item, checks, validate)
        part = dest.with_name(dest.name + ".part")
        try:
            _transfer(item, part, dest, progress=progress)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(
                    f"the disk of '{part}' is full ({shutil.disk_usage(folder).free} bytes free) while "
                    f"downloading {item.url}: free space or pass another --cache, then rerun to resume"
                ) from None
            raise
        try:
            checked = _check(part, item, checks, validate)
        finally:
            if not part.exists():  # moved aside: its resume state goes with it
                _sidecar(part).unlink(missing_ok=True)
        os.replace(part, dest)
        _sidecar(part).unlink(missing_ok=True)
        return Downloaded(path=dest, size=checked.size, sha256=checked.sha256, url=item.url)


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _open(item: Download, dest: Path, headers: Mapping[str, str]) -> http.client.HTTPResponse:
    request = urllib.request.Request(item.url, headers={"User-Agent": f"masksdm/{__version__}", **headers})
    try:
        return urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416:
            raise
        if err.code == 404:
            hint = f": {item.hint}" if item.hint else ": check the options, or whether the source has moved"
            raise FetchError(f"{item.what} was not found at {item.url} (HTTP 404){hint}") from None
        raise FetchError(
            f"the server answered HTTP {err.code} ({err.reason}) for {item.url}: retry later; if it "
            f"persists, download it by hand and save it as '{dest}', then rerun"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise FetchError(
            f"cannot reach {urllib.parse.urlsplit(item.url).netloc} for {item.url} ({reason}): no network, "
            f"or the server is down. Download it by hand (a browser, or: curl -L -o '{dest}' '{item.url}') "
            f"and save it as '{dest}', then rerun the same command: it checks that file and uses it"
        ) from None


def _transfer(item: Download, part: Path, dest: Path, *, progress: bool) -> None:
    """Bring ``part`` to the whole file at ``item.url``, from where an earlier run stopped."""
    sidecar = _sidecar(part)
    for attempt in range(2):  # a second time from the start when the resume cannot be used
        offset = part.stat().st_size if part.is_file() else 0
        state: dict[str, Any] = {}
        if offset:
            try:
                state = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                state = {}
            if state.get("url") != item.url:  # a .part of something else: no use resuming it
                offset = 0
        headers: dict[str, str] = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if state.get("validator"):  # the server sends the whole file if it changed since
                headers["If-Range"] = state["validator"]
        try:
            response = _open(item, dest, headers)
        except urllib.error.HTTPError as err:  # 416: nothing is left after offset
            if _total(err.headers.get("Content-Range", "")) == offset:
                return
            part.unlink(missing_ok=True)
            continue
        with response:
            resumed = response.status == 206
            if resumed and _range_start(response.headers.get("Content-Range", "")) != offset and attempt == 0:
                part.unlink(missing_ok=True)  # not the range asked for: read the whole file instead
                continue
            start = offset if resumed else 0
            total = _total(response.headers.get("Content-Range", "")) if resumed else None
            if total is None and response.headers.get("Content-Length"):
                total = start + int(response.headers["Content-Length"])
            if start == 0:
                write_json(sidecar, {"url": item.url, "validator": _validator(response.headers)})
            cut = _stream(response, part, start, total, item.name, progress=progress)
        received = part.stat().st_size
        if cut is not None or (total is not None and received < total):
            why = f" ({type(cut).__name__}: {cut})" if cut is not None else ""
            of = f" of {total}" if total is not None else ""
            raise FetchError(
                f"the download of {item.url} was cut short at {received}{of} bytes{why}: rerun the same "
                f"command to resume it (kept in '{part}')"
            )
        if total is not None and received > total:
            part.unlink()
            raise FetchError(f"the server sent more than the {total} bytes it announced for {item.url}: rerun")
        return
    raise FetchError(f"the server of {item.url} does not answer the range asked for: rerun later")


def _validator(headers: http.client.HTTPMessage) -> str | None:
    """What ``If-Range`` may send back: a strong ETag, else the Last-Modified date."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _stream(response: http.client.HTTPResponse, part: Path, start: int, total: int | None, name: str, *,
            progress: bool) -> BaseException | None:
    """Append the response body to ``part`` (from ``start``); the error that cut it, if any."""
    with open(part, "ab" if start else "wb") as out, tqdm(
        total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
        disable=not progress, leave=False,
    ) as bar:
        cut: BaseException | None = None
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as err:  # the connection dropped
                cut = err
                break
            if not chunk:
                break
            out.write(chunk)
            bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    return cut


def _range_start(content_range: str) -> int | None:
    """The first byte of ``Content-Range: bytes 100-199/1000``."""
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total(content_range: str) -> int | None:
    """The whole size of ``Content-Range: bytes 100-199/1000`` (or ``bytes */1000``)."""
    tail = content_range.rpartition("/")[2].strip()
    return int(tail) if tail.isdigit() else None


# --- output folders ----------------------------------------------------------------------------------

def output_state(folder: Path, request: Mapping[str, Any], *, force: bool = False) -> dict[str, Any] | None:
    """The marker of ``folder`` when it already holds what ``request`` asks for (nothing to do),
    None when the fetch may (re)build it.

    Raises:
        FetchError: ``folder`` holds other files, or another fetch's output and ``force`` is false.
    """
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise FetchError(f"--out '{folder}' is a file: give a folder (it is created)")
    marker_path = folder / MARKER
    if not marker_path.is_file():
        if any(folder.iterdir()):
            raise FetchError(
                f"--out '{folder}' already holds other files: give a new folder (each fetch lays its files "
                "out in a folder of its own; --rasters takes several folders, or their parent)"
            )
        return None
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = {}
    same = marker.get("request") == dict(request)
    whole = all((folder / name).is_file() for name in marker.get("files", []))
    if same and whole and not force:
        return marker
    if not same and not force:
        raise FetchError(
            f"'{folder}' holds an earlier fetch ({marker.get('request')}): pass --force to replace it, "
            "or give another --out"
        )
    return None


def write_marker(folder: Path, request: Mapping[str, Any], files: Sequence[str],
                 downloads: Sequence[Downloaded], extra: Mapping[str, Any] | None = None) -> None:
    """Write the marker saying that ``folder`` holds ``files``, made by ``request`` from ``downloads``."""
    write_json(folder / MARKER, {
        "masksdm_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "request": dict(request),
        "files": list(files),
        "downloads": [{"url": d.url, "size": d.size, "sha256": d.sha256} for d in downloads],
        **(extra or {}),
    })


@contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield an empty hidden folder next to ``folder``; when the block succeeds it becomes
    ``folder`` (replacing an older one), else it is removed. Hold ``folder``'s lock around it."""
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in [*parent.glob(f".{folder.name}.partial-*"), *parent.glob(f".{folder.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run (we hold the lock)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes owner-only folders; outputs are shared data
    try:
        yield tmp
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=parent))
            os.replace(folder, old / folder.name)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
