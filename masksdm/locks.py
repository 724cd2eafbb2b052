"""Locks that keep two masksdm commands out of each other's files.

A command that writes a folder (``train`` its run folder, ``predict`` its output folder,
``prepare`` its workspace, ``embed plots`` the workspace it adds to) holds that folder's lock
alone; a command that only reads a workspace shares its lock with other readers. A second command
that would interleave files with the first stops at once with a :class:`~masksdm.errors.BusyError`
naming the folder, instead of waiting or writing.

A folder's lock is filelock's SQLite reader/writer lock on a file named after the folder's
resolved path in :func:`lock_dir` (``$MASKSDM_LOCK_DIR``, by default ``masksdm-locks`` in the
system's temporary folder), so outputs and read-only workspaces hold no lock file, and the
operating system releases a lock when its process ends in any way (a crash, ``kill -9``): a folder
is never left locked. The locks cover the commands of one machine; jobs of a cluster that share a
file system need folders of their own.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import filelock

from masksdm.errors import BusyError

__all__ = ["LOCK_DIR_ENV", "exclusive", "lock_dir", "locked"]


LOCK_DIR_ENV = "MASKSDM_LOCK_DIR"
F = TypeVar("F", bound=Callable[..., Any])


def _lock_dir_path() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "masksdm-locks")


def lock_dir() -> Path:
    """The folder of the lock files: ``$MASKSDM_LOCK_DIR``, or ``masksdm-locks`` in the temporary
    folder, shared by every account of the machine (sticky, like ``/tmp``)."""
    folder = _lock_dir_path()
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        if LOCK_DIR_ENV not in os.environ:
            folder.chmod(0o1777)
    return folder


@contextmanager
def locked(folder: str | Path, *, what: str = "folder", shared: bool = False) -> Iterator[None]:
    """Hold ``folder``'s lock for the block: alone, or ``shared`` with other readers.

    Raises:
        BusyError: another process holds the lock in a mode that conflicts, or no lock can be made.
    """
    folder = Path(folder)
    key = hashlib.sha256(str(folder.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    try:
        path = lock_dir() / f"{key}.lock"
        lock = filelock.ReadWriteLock(path, is_singleton=False)
        if path.stat().st_mode & 0o777 != 0o666:
            path.chmod(0o666)  # another account's command on the same folder takes the same lock
    except (OSError, sqlite3.Error) as err:
        raise BusyError(
            f"cannot make the lock of {what} '{folder}' in '{_lock_dir_path()}' ({err}): set {LOCK_DIR_ENV} to a "
            "writable folder"
        ) from None
    try:
        (lock.acquire_read if shared else lock.acquire_write)(blocking=False)
    except filelock.Timeout:
        lock.close()
        doing = "writing" if shared else "using"
        raise BusyError(
            f"{what} '{folder}' is busy: another masksdm command is {doing} it. Wait for it to finish "
            "(or stop it); two commands on the same folder would mix their files"
        ) from None
    try:
        yield
    finally:
        lock.release()
        lock.close()


def exclusive(param: str, what: str) -> Callable[[F], F]:
    """Decorate a function that writes the folder given as its argument ``param``: it runs holding
    that folder's lock alone (:func:`locked`)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with locked(signature.bind(*args, **kwargs).arguments[param], what=what):
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate
