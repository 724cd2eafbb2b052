"""Spectral facts of SMARTIES: its 17 band projections, band names, and pretraining statistics.

SMARTIES embeds every band of a patch with a projection chosen by the band's spectral range
(``config/electromagnetic_spectrum.yaml`` of the official code). Projection ``k`` is the
``spectrum_projection.spectrum_embeds.{k}`` layer of the checkpoint, k = 0..16. Bands are matched
**by name, never by position**: give the encoder each channel's name in tensor order.

Accepted band names:

* Sentinel-2 L2A: ``B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12``, case-insensitive, also
  ``B1``..``B9`` (SSL4EO-S12) and ``B08A`` (EuroSAT);
* Sentinel-1 GRD: ``VV`` and ``VH`` (also ``vv``/``vh``, as in Major-TOM);
* the SMARTIES yaml keys (``"blue_1"``, ``"microwave_1"``, ...), including the three RGB keys meant
  for 8-bit very-high-resolution imagery (``red_1``, ``green_1``, ``blue_3``);
* integer projection indices 0..16.

Sentinel-2 B10 (cirrus, yaml key ``short_wave_infrared_2``, index -1) has no projection and is
rejected: in the official code index -1 silently picks the last (Landsat blue) entry.

Normalisation (:func:`normalise`) reproduces ``ImageNormalizeStandardize`` of the official code
with the pretraining statistics (``config/pretraining_sensors.yaml``): per band
``z = (clip((raw - p1) / (p99 - p1), 0, 1) - mean) / std``, nodata set to 0 after. Sentinel-2 raw
values are L2A DN (reflectance x 10,000, **no** +1000 offset: subtract 1000 from products of
processing baseline >= 04.00); Sentinel-1 values are sigma0 in dB.

Example:
    >>> projection_indices(["B02", "b3", "B04", "B08", "VV"])
    [1, 4, 6, 9, 15]
    >>> band_sensor("vh")
    'S1'
"""

from __future__ import annotations

import difflib
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple, TypeVar

import numpy as np
import torch

__all__ = [
    "B10",
    "BandError",
    "BandStats",
    "N_PROJECTIONS",
    "NORMALISATION_STATS",
    "PROJECTIONS",
    "Projection",
    "SENTINEL1_BANDS",
    "SENTINEL2_L2A_BANDS",
    "band_sensor",
    "canonical_band",
    "normalise",
    "projection_indices",
]


class BandError(ValueError):
    """A band name or index that SMARTIES cannot embed, or bands that do not match the data."""


@dataclass(frozen=True)
class Projection:
    """One spectral projection of SMARTIES.

    Attributes:
        index: position in ``spectrum_projection.spectrum_embeds`` (-1: no projection).
        key: the yaml key, e.g. ``"blue_1"``.
        name: the display name in the yaml, e.g. ``"B02 (blue)"``.
        min_nm: lower end of the spectral range in nm (a label, not used numerically).
        max_nm: upper end of the spectral range in nm.
    """

    index: int
    key: str
    name: str
    min_nm: float
    max_nm: float


#: The 17 projections with weights, ``PROJECTIONS[k].index == k``. Index 17 and 18 of the yaml
#: (Landsat thermal and blue) are parameter-free mixtures never seen in pretraining: not offered.
PROJECTIONS: tuple[Projection, ...] = (
    Projection(0, "aerosol", "B01 (aerosol)", 422, 463),
    Projection(1, "blue_1", "B02 (blue)", 427, 558),
    Projection(2, "blue_3", "blue", 430, 545),
    Projection(3, "green_1", "green", 466, 620),
    Projection(4, "green_2", "B03 (green)", 524, 595),
    Projection(5, "red_1", "red", 590, 710),
    Projection(6, "red_2", "B04 (red)", 634, 696),
    Projection(7, "red_edge_1", "B05 (red edge 1)", 689, 719),
    Projection(8, "red_edge_2", "B06 (red edge 2)", 726, 755),
    Projection(9, "near_infrared_1", "B08 (NIR 1)", 728, 938),
    # NOTE: the yaml names B07 "NIR 2" and gives it index 10, after B08 (index 9).
    Projection(10, "near_infrared_2", "B07 (NIR 2)", 761, 802),
    Projection(11, "near_infrared_3", "B8A (NIR 3)", 843, 886),
    Projection(12, "short_wave_infrared_1", "B09 (SWIR water vapour)", 923, 964),
    Projection(13, "short_wave_infrared_3", "B11 (SWIR 1)", 1516, 1704),
    Projection(14, "short_wave_infrared_4", "B12 (SWIR 2)", 2002, 2376),
    Projection(15, "microwave_1", "VV", 5.5e7, 5.6e7),
    Projection(16, "microwave_2", "VH", 5.5e7, 5.6e7),
)

#: Sentinel-2 B10 (cirrus): in the yaml with index -1, meaning "no projection".
B10 = Projection(-1, "short_wave_infrared_2", "B10 (SWIR cirrus)", 1345, 1406)

N_PROJECTIONS = len(PROJECTIONS)

SENTINEL2_L2A_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
SENTINEL1_BANDS = ("VV", "VH")

_SENSOR_BAND_INDEX: Mapping[str, int] = MappingProxyType(
    dict(zip(SENTINEL2_L2A_BANDS, (0, 1, 4, 6, 7, 8, 10, 9, 11, 12, 13, 14), strict=True))
    | {"VV": 15, "VH": 16}
)
_KEY_INDEX: Mapping[str, int] = MappingProxyType({p.key: p.index for p in PROJECTIONS})
#: Canonical name of each projection: the Sentinel band name, or the yaml key for the RGB ones.
_INDEX_NAME: tuple[str, ...] = tuple(
    {i: n for n, i in _SENSOR_BAND_INDEX.items()}.get(p.index, p.key) for p in PROJECTIONS
)
_ACCEPTED = (*SENTINEL2_L2A_BANDS, *SENTINEL1_BANDS, *(p.key for p in PROJECTIONS))
_B10_MESSAGE = "Sentinel-2 B10 (cirrus) has no SMARTIES projection: drop it"
_LANDSAT_KEYS = ("thermal_infrared_1", "blue_2")
_S2_NAME = re.compile(r"B0*(\d{1,2})(A?)")


class BandStats(NamedTuple):
    """Pretraining statistics of one band: raw percentiles, then mean/std after min-max scaling."""

    p1: float
    p99: float
    mean: float
    std: float


def _stats(p1: Sequence[float], p99: Sequence[float], mean: Sequence[float], std: Sequence[float]) -> list[BandStats]:
    return [BandStats(*v) for v in zip(p1, p99, mean, std, strict=True)]


#: Statistics of pretraining, by canonical band name: Sentinel-2 L2A (BigEarthNet v1, DN without
#: offset) and Sentinel-1 GRD (dB). Identical to BigEarthNetS2/S1 in ``eval_datasets.yaml``.
NORMALISATION_STATS: Mapping[str, BandStats] = MappingProxyType(
    dict(
        zip(
            (*SENTINEL2_L2A_BANDS, *SENTINEL1_BANDS),
            _stats(
                p1=(1.0, 27.019, 45.059, 12.495, 5.991, 1.0, 1.079, 1.0, 1.0, 1.0, 2.318, 4.278)
                + (-29.5197, -33.4215),
                p99=(2811.45, 2604.77, 2580.36, 2829.49, 3138.51, 4338.89, 5182.99, 5529.26, 5433.89, 5170.23)
                + (4418.15, 3387.44, -3.4569, -9.9054),
                mean=(0.11505, 0.14821, 0.21661, 0.19835, 0.29585, 0.41011, 0.39859, 0.39942, 0.41560, 0.43315)
                + (0.35970, 0.29588, 0.64935, 0.60353),
                std=(0.14282, 0.14940, 0.16682, 0.19246, 0.19392, 0.23844, 0.23693, 0.24100, 0.24250, 0.24532)
                + (0.24025, 0.23555, 0.19030, 0.22883),
            ),
            strict=True,
        )
    )
)


def _unknown(band: str) -> BandError:
    lowered = {name.lower(): name for name in _ACCEPTED}
    close = difflib.get_close_matches(band.strip().lower(), list(lowered), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(lowered[c]) for c in close)}?)" if close else ""
    return BandError(
        f"unknown band {band!r}{hint}. Accepted: Sentinel-2 {', '.join(SENTINEL2_L2A_BANDS)}; "
        f"Sentinel-1 {', '.join(SENTINEL1_BANDS)}; SMARTIES keys {', '.join(p.key for p in PROJECTIONS)}; "
        f"or indices 0..{N_PROJECTIONS - 1}"
    )


def _resolve(band: str | int) -> int:
    """Projection index of one band name, yaml key or index."""
    if isinstance(band, bool):
        raise BandError(f"a band must be a name or a projection index, got {band!r}")
    if isinstance(band, numbers.Integral):
        index = int(band)
        if index == -1:
            raise BandError(f"projection index -1: {_B10_MESSAGE}")
        if not 0 <= index < N_PROJECTIONS:
            raise BandError(
                f"projection index {index} out of range: SMARTIES has projections 0..{N_PROJECTIONS - 1}"
                " (17 and 18, the Landsat mixtures, are not supported)"
            )
        return index
    if not isinstance(band, str):
        raise BandError(f"a band must be a name or a projection index, got {band!r} ({type(band).__name__})")
    text = band.strip()
    upper, lower = text.upper(), text.lower()
    if lower in _KEY_INDEX:
        return _KEY_INDEX[lower]
    if lower == B10.key:
        raise BandError(f"band {band!r}: {_B10_MESSAGE}")
    if lower in _LANDSAT_KEYS:
        raise BandError(f"band {band!r} is a Landsat mixture projection, not supported (never pretrained)")
    if upper in _SENSOR_BAND_INDEX:
        return _SENSOR_BAND_INDEX[upper]
    match = _S2_NAME.fullmatch(upper)
    if match:
        number, suffix = int(match.group(1)), match.group(2)
        name = ("B8A" if number == 8 else "") if suffix else f"B{number:02d}"
        if name == "B10":
            raise BandError(f"band {band!r}: {_B10_MESSAGE}")
        if name in _SENSOR_BAND_INDEX:
            return _SENSOR_BAND_INDEX[name]
    raise _unknown(band)


def _check_sequence(bands: Sequence[str | int]) -> None:
    if isinstance(bands, str):
        raise BandError(f"pass a list of band names, got the string {bands!r}: use [{bands!r}]")
    if len(bands) == 0:
        raise BandError("no bands given: SMARTIES needs at least one band")


def projection_indices(bands: Sequence[str | int]) -> list[int]:
    """SMARTIES projection index of each band, in the given order.

    Args:
        bands: band names (Sentinel-2/1 names or aliases, yaml keys) or indices 0..16, one per
            channel; repeats are allowed (a band repeated k times weighs k times in the mean).

    Returns:
        One index in 0..16 per band.

    Raises:
        BandError: for B10, unknown names, out-of-range indices or an empty list.

    Example:
        >>> projection_indices(SENTINEL2_L2A_BANDS)
        [0, 1, 4, 6, 7, 8, 10, 9, 11, 12, 13, 14]
    """
    _check_sequence(bands)
    return [_resolve(b) for b in bands]


def canonical_band(band: str | int) -> str:
    """Canonical name of a band: ``"B8A"`` for ``"b08a"``, ``"VV"`` for ``"microwave_1"`` or 15.

    The RGB projections (2, 3, 5) have no Sentinel name and keep their yaml key.

    Example:
        >>> canonical_band("b1"), canonical_band("near_infrared_2"), canonical_band(16)
        ('B01', 'B07', 'VH')
    """
    return _INDEX_NAME[_resolve(band)]


def band_sensor(name: str | int) -> Literal["S2", "S1"]:
    """Sensor of a band: ``"S2"`` (Sentinel-2) or ``"S1"`` (Sentinel-1).

    Raises:
        BandError: for unknown bands and for the RGB (very-high-resolution) projections.
    """
    canonical = canonical_band(name)
    if canonical in SENTINEL1_BANDS:
        return "S1"
    if canonical in SENTINEL2_L2A_BANDS:
        return "S2"
    raise BandError(f"band {name!r} is an RGB (VHR/aerial) projection, not a Sentinel band")


ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def normalise(raw: ArrayT, bands: Sequence[str | int], valid: np.ndarray | torch.Tensor | None = None) -> ArrayT:
    """Normalise raw Sentinel values as in SMARTIES pretraining.

    Per band: ``clip((x - p1) / (p99 - p1), 0, 1)``, then ``(x - mean) / std``; pixels that are NaN
    or not ``valid`` are set to 0 after standardisation (the band mean, the repo's convention).
    Resize to the encoder's size (bicubic) **after** this step.

    Args:
        raw: (..., C, H, W) Sentinel-2 L2A DN (reflectance x 10,000, no offset) or Sentinel-1 dB.
        bands: the C band names (or indices), in channel order.
        valid: optional bool mask broadcastable to (..., H, W); False marks nodata.

    Returns:
        float32 array of the same kind (numpy or torch, same device) and shape as ``raw``.

    Raises:
        BandError: for unknown bands, bands without statistics (RGB) or a channel-count mismatch.

    Example:
        >>> z = normalise(np.full((2, 1, 1), 1000.0), ["B02", "B03"])
        >>> [round(float(v), 4) for v in z[:, 0, 0]]
        [1.5344, 0.9594]
    """
    _check_sequence(bands)
    names = [canonical_band(b) for b in bands]
    missing = [n for n in names if n not in NORMALISATION_STATS]
    if missing:
        raise BandError(
            f"no pretraining statistics for band(s) {missing}: statistics exist for "
            f"{', '.join(NORMALISATION_STATS)}"
        )
    if raw.ndim < 3 or raw.shape[-3] != len(names):
        raise BandError(f"raw has shape {tuple(raw.shape)} but {len(names)} bands were named: expected (..., C, H, W)")
    table = np.array([NORMALISATION_STATS[n] for n in names], dtype=np.float64)  # (C, 4)
    p1, p99, mean, std = (table[:, i].reshape(-1, 1, 1) for i in range(4))
    if isinstance(raw, torch.Tensor):
        x = raw.to(torch.float32)

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=torch.float32, device=raw.device)

        z = (((x - t(p1)) / t(p99 - p1)).clamp(0, 1) - t(mean)) / t(std)
        bad = torch.isnan(z)
        if valid is not None:
            mask = torch.as_tensor(valid, device=raw.device)
            _check_valid(tuple(mask.shape), mask.dtype == torch.bool, tuple(raw.shape))
            bad = bad | ~mask.unsqueeze(-3)
        return z.masked_fill(bad, 0.0)
    x_np = np.asarray(raw, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        scaled_np = np.clip((x_np - p1.astype(np.float32)) / (p99 - p1).astype(np.float32), 0, 1)
    z_np = (scaled_np - mean.astype(np.float32)) / std.astype(np.float32)
    bad_np = np.isnan(z_np)
    if valid is not None:
        mask_np = np.asarray(valid)
        _check_valid(mask_np.shape, mask_np.dtype == np.bool_, x_np.shape)
        bad_np = bad_np | ~mask_np[..., None, :, :]
    return np.where(bad_np, np.float32(0), z_np).astype(np.float32)


def _check_valid(shape: tuple[int, ...], is_bool: bool, raw_shape: tuple[int, ...]) -> None:
    if not is_bool:
        raise TypeError("valid must be a bool mask (True = valid pixel)")
    target = (*raw_shape[:-3], *raw_shape[-2:])
    try:
        ok = np.broadcast_shapes(shape, target) == target
    except ValueError:
        ok = False
    if not ok or len(shape) < 2:
        raise ValueError(f"valid has shape {shape}, not broadcastable to the (..., H, W) shape {target} of raw")
