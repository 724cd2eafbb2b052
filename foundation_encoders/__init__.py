"""Satellite foundation-model encoders that turn imagery into per-plot embedding vectors.

MaskSDM takes each embedding source as one extra token (``MaskSDM(d_embeddings=(...))``), masked
like any predictor when the embedding is missing. Encoders are looked up by name in
:data:`ENCODERS`; each is an ``nn.Module`` exposing ``name``, ``embed_dim`` and ``img_size``. To add
one (SatCLIP, CSMAE, ...), write a module with a factory decorated by :func:`register_encoder` and
import it at the end of this file.

SMARTIES (:mod:`foundation_encoders.smarties`): Sumbul, Xu, Dalsasso & Tuia, "SMARTIES:
Spectrum-Aware Multi-Sensor Auto-Encoder for Remote Sensing Images", ICCV 2025, arXiv:2506.19585.
Code and weights are Apache-2.0 (github.com/gsumbul/SMARTIES); the weights are on Hugging Face,
``gsumbul/SMARTIES-v1-ViT-B`` (``smarties-v1-vitb.safetensors``) and ``gsumbul/SMARTIES-v1-ViT-L``
(``smarties-v1-vitl.safetensors``), downloaded once by the user; nothing here downloads them.

Example:
    >>> enc = get_encoder("smarties-vitb", embed_dim=32, depth=1, num_heads=2, img_size=32)
    >>> enc.name, enc.embed_dim, enc.img_size
    ('smarties-vitb', 32, 32)
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from foundation_encoders.smarties import (
    VARIANTS,
    SmartiesConfig,
    SmartiesEncoder,
    WeightsError,
    WeightsNotFoundError,
    build_smarties,
    detect_variant,
    load_smarties_weights,
)
from foundation_encoders.spectrum import (
    SENTINEL1_BANDS,
    SENTINEL2_L2A_BANDS,
    BandError,
    band_sensor,
    canonical_band,
    normalise,
    projection_indices,
)
from foundation_encoders.vit import sincos_pos_embed

__all__ = [
    "ENCODERS",
    "SENTINEL1_BANDS",
    "SENTINEL2_L2A_BANDS",
    "BandError",
    "WEIGHTS_ENV",
    "Encoder",
    "EncoderFactory",
    "SmartiesConfig",
    "SmartiesEncoder",
    "WeightsError",
    "WeightsNotFoundError",
    "band_sensor",
    "build_smarties",
    "canonical_band",
    "detect_variant",
    "get_encoder",
    "load_smarties_weights",
    "normalise",
    "projection_indices",
    "register_encoder",
    "sincos_pos_embed",
    "smarties_or_tiny",
]

#: Environment variable naming the SMARTIES weights file, when no path is given.
WEIGHTS_ENV = "MASKSDM_SMARTIES_WEIGHTS"


@runtime_checkable
class Encoder(Protocol):
    """What every registered encoder exposes besides being an ``nn.Module``."""

    @property
    def name(self) -> str: ...

    @property
    def embed_dim(self) -> int: ...

    @property
    def img_size(self) -> int: ...


#: Builds an encoder: ``factory(weights=None, sha256=None, **kwargs) -> nn.Module``.
EncoderFactory = Callable[..., nn.Module]
FactoryT = TypeVar("FactoryT", bound=EncoderFactory)

#: Encoders this package provides, by name.
ENCODERS: dict[str, EncoderFactory] = {}


def register_encoder(name: str) -> Callable[[FactoryT], FactoryT]:
    """Decorator registering an encoder factory under ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def decorate(factory: FactoryT) -> FactoryT:
        if name in ENCODERS:
            raise ValueError(f"encoder {name!r} is already registered")
        ENCODERS[name] = factory
        return factory

    return decorate


def get_encoder(name: str, weights: str | Path | None = None, sha256: str | None = None, **kwargs: Any) -> nn.Module:
    """Build the encoder registered as ``name`` (random weights unless ``weights`` is given).

    Args:
        name: a key of :data:`ENCODERS`.
        weights: optional weights file.
        sha256: optional expected digest of ``weights``.
        **kwargs: passed to the factory (for SMARTIES: config overrides such as ``img_size``).

    Raises:
        ValueError: for an unknown name; the message lists the available ones.
    """
    if name not in ENCODERS:
        lowered = {n.lower(): n for n in ENCODERS}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1)
        hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
        raise ValueError(f"unknown encoder {name!r}{hint}; available: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name](weights=weights, sha256=sha256, **kwargs)


def _register_smarties_variant(variant: str) -> None:
    @register_encoder(variant)
    def factory(weights: str | Path | None = None, sha256: str | None = None, **kwargs: Any) -> SmartiesEncoder:
        return build_smarties(variant, weights=weights, sha256=sha256, **kwargs)


for _variant in VARIANTS:
    _register_smarties_variant(_variant)


@register_encoder("smarties")
def _smarties_auto(weights: str | Path | None = None, sha256: str | None = None, **kwargs: Any) -> SmartiesEncoder:
    """SMARTIES of the variant the weights file holds (its header decides), ViT-B by default."""
    variant = (detect_variant(weights) if weights is not None else None) or "smarties-vitb"
    return build_smarties(variant, weights=weights, sha256=sha256, **kwargs)


def smarties_or_tiny(weights: str | Path | None = None, *, seed: int = 0) -> tuple[SmartiesEncoder, str]:
    """SMARTIES with the official weights when there is a file, else a tiny random one to try the
    pipeline with; and a sentence saying which it is.

    Args:
        weights: the weights file; default ``$MASKSDM_SMARTIES_WEIGHTS``.
        seed: seed of the random weights (without a file).

    Returns:
        ``(encoder, note)``. Without a weights file the encoder is ``smarties-tiny`` (32-d, random):
        its embeddings are random features of the images, NOT what SMARTIES has learnt, and the
        note says so.

    Raises:
        WeightsNotFoundError: ``weights`` (or the environment variable) names a file that is not there.
    """
    path = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
    if path is not None:
        encoder = get_encoder("smarties", weights=path)
        assert isinstance(encoder, SmartiesEncoder)
        return encoder, f"{encoder.name} with the official pretrained weights from {Path(path).name}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_smarties("smarties-tiny")
    return encoder, (
        f"a tiny SMARTIES with RANDOM weights ({encoder.embed_dim}-d; no weights file: set {WEIGHTS_ENV} or pass "
        "weights=): its embeddings are random features of the images, not what SMARTIES learnt"
    )
