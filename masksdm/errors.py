"""Exceptions raised by masksdm.

Every error names the bad value and the fix, so the CLI can print it as is.
"""

from __future__ import annotations

__all__ = [
    "MaskSDMError",
    "DataError",
    "RasterError",
    "ConfigError",
    "CheckpointError",
    "OutputExistsError",
    "DiskFullError",
    "DependencyNotFoundError",
    "BusyError",
    "FetchError",
    "ChecksumError",
]


class MaskSDMError(Exception):
    """Base class of every error this package raises on purpose."""


class DataError(MaskSDMError, ValueError):
    """Input tables are missing, malformed or inconsistent."""


class RasterError(DataError):
    """A raster cannot be read, does not cover the plots, or has an unusable CRS."""


class ConfigError(MaskSDMError, ValueError):
    """A configuration file or option is invalid."""


class CheckpointError(MaskSDMError):
    """A checkpoint is missing, truncated, tampered with, or does not match the data."""


class OutputExistsError(MaskSDMError, FileExistsError):
    """An output already exists and ``force`` was not given."""


class DiskFullError(MaskSDMError, OSError):
    """An output could not be written: its disk is full (or a write failed); the message names the
    file, the free space and what to do."""


class BusyError(MaskSDMError):
    """Another masksdm command is writing the folder this one would use (or reading the workspace
    this one would rebuild): two commands there would mix their files."""


class DependencyNotFoundError(MaskSDMError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class FetchError(MaskSDMError):
    """A download of ``masksdm fetch`` failed (not found, no network, cut short, not the file
    expected); the message names the URL and how to get the file by hand."""


class ChecksumError(FetchError):
    """A downloaded file's size or sha256 differs from the one expected; the file is moved aside,
    never used."""
