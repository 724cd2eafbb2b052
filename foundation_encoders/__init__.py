"""Satellite foundation-model encoders that turn imagery into per-plot embedding vectors.

MaskSDM takes each embedding source as one extra token (``MaskSDM(d_embeddings=(...))``), masked
like any predictor when the embedding is missing. The SMARTIES encoder (a spectrum-aware vision
transformer accepting any subset of Sentinel-2/Sentinel-1 bands) is planned for this package; until
it lands, nothing here is importable beyond this docstring and :data:`ENCODERS`.
"""

__all__ = ["ENCODERS"]

#: Encoders this package provides, by name. Empty until the SMARTIES encoder is added.
ENCODERS: dict[str, str] = {}
