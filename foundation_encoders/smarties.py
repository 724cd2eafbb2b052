"""The SMARTIES encoder: a plain ViT whose patch embedding is spectrum-aware.

Every band of every 16x16 patch is embedded by the ``Linear(256 -> D)`` of its spectral range
(:mod:`foundation_encoders.spectrum`, 17 projections); the patch token is ``12 x mean`` of those
embeddings over the C input bands, so any subset, order or count of bands works. Then: prepend the
CLS token, add the fixed 2-D sin-cos position embedding, pre-norm transformer blocks, final
LayerNorm, and return the CLS row (the feature the official code uses for kNN and linear probes).

Module and parameter names mirror the official checkpoint keys (``cls_token``, ``pos_embed``,
``spectrum_projection.spectrum_embeds.{k}.proj.*``, ``blocks.{i}.attn.qkv.*``, ``norm.*``), so a
strict load of ``smarties-v1-vitb.safetensors`` proves the architecture matches.

Shapes: input (B, C, S, S) normalised (:func:`foundation_encoders.spectrum.normalise`) with
S = ``img_size`` (224 for the released weights); tokens (B, (S/16)^2, D); output (B, D).

NOTE[DIFF]: the official code patchifies into a (B, h, w, C, D) buffer and loops over projection
indices (:meth:`SmartiesEncoder.project_reference`). :meth:`SmartiesEncoder.project` stacks the
bands' projections into one (D, C*256) weight and applies it to each patch's C*256 pixels in one
matrix product: the same linear map without the buffer. :meth:`SmartiesEncoder.project_conv` is the
same map as one stride-16 convolution; the matrix product measured faster on CPU and GPU.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foundation_encoders.spectrum import projection_indices
from foundation_encoders.vit import Block, SpectrumEmbed, SpectrumProjection, sincos_pos_embed

__all__ = [
    "IGNORED_PREFIXES",
    "PROJECTION_SCALE",
    "TINY_CONFIG",
    "VARIANTS",
    "LoadResult",
    "SmartiesConfig",
    "SmartiesEncoder",
    "WeightsError",
    "WeightsNotFoundError",
    "build_smarties",
    "detect_variant",
    "load_smarties_weights",
    "smarties_config",
]

logger = logging.getLogger(__name__)

#: Largest number of bands per token in pretraining: the token is ``PROJECTION_SCALE x mean``.
PROJECTION_SCALE = 12

#: Released variants: name -> (embed_dim, depth, num_heads).
VARIANTS: dict[str, tuple[int, int, int]] = {
    "smarties-vitb": (768, 12, 12),
    "smarties-vitl": (1024, 24, 16),
}

#: Checkpoint keys the encoder does not use (MAE decoder, classification heads): skipped on load.
IGNORED_PREFIXES = ("decoder_", "mask_token", "head.", "fc_norm.")
_WRAPPER_PREFIXES = ("module.", "model.", "encoder.")
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.")
_HASH_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt, tampered with, or does not fit the encoder."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The weights file does not exist."""


@dataclass(frozen=True)
class SmartiesConfig:
    """Architecture of a SMARTIES encoder.

    Attributes:
        name: variant name, e.g. ``"smarties-vitb"``.
        embed_dim: token width D (a multiple of 4 and of ``num_heads``).
        depth: number of transformer blocks.
        num_heads: attention heads (64-wide for the released variants).
        mlp_ratio: MLP hidden width / D.
        patch_size: patch side in pixels; each projection maps ``patch_size**2`` values.
        img_size: input side in pixels (a multiple of ``patch_size``).
    """

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: int = 224

    def __post_init__(self) -> None:
        for field in ("embed_dim", "depth", "num_heads", "patch_size", "img_size"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be positive, got {getattr(self, field)}")
        if self.embed_dim % 4 or self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim must be a multiple of 4 and of num_heads, got {self.embed_dim=}, {self.num_heads=}"
            )
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size must be a multiple of patch_size, got {self.img_size=}, {self.patch_size=}")

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.img_size // self.patch_size


#: A tiny encoder with the real key names, for tests: D=32, 2 blocks, 4 heads, 64 px (4x4 grid).
TINY_CONFIG = SmartiesConfig("smarties-tiny", embed_dim=32, depth=2, num_heads=4, img_size=64)


def smarties_config(name: str = "smarties-vitb", **overrides: Any) -> SmartiesConfig:
    """Configuration of a named variant (``VARIANTS`` or ``"smarties-tiny"``), fields overridable.

    Raises:
        ValueError: for an unknown name.
    """
    if name == TINY_CONFIG.name:
        return replace(TINY_CONFIG, **overrides)
    if name not in VARIANTS:
        raise ValueError(f"unknown SMARTIES variant {name!r}: choose one of {[*VARIANTS, TINY_CONFIG.name]}")
    embed_dim, depth, num_heads = VARIANTS[name]
    fields: dict[str, Any] = {"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads} | overrides
    return SmartiesConfig(name, **fields)


@dataclass(frozen=True)
class LoadResult:
    """What :func:`load_smarties_weights` did.

    Attributes:
        n_loaded: tensors copied into the encoder.
        ignored: checkpoint keys skipped on purpose (decoder, mask token, heads).
        missing: encoder keys absent from the file (only non-empty with ``strict=False``).
        unexpected: other file keys not used (only non-empty with ``strict=False``).
        pos_embed_regenerated: the file's ``pos_embed`` was for another grid (or absent) and the
            fixed sin-cos formula was used instead.
    """

    n_loaded: int
    ignored: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    pos_embed_regenerated: bool


class SmartiesEncoder(nn.Module):
    """SMARTIES vision transformer returning the CLS embedding.

    Args:
        config: the architecture (:func:`smarties_config`).

    Shapes:
        ``forward(x, bands)``: x (B, C, img_size, img_size) normalised, C band names -> (B, D).

    Example:
        >>> enc = SmartiesEncoder(TINY_CONFIG).eval()
        >>> enc(torch.zeros(2, 3, 64, 64), ["B04", "B03", "B02"]).shape
        torch.Size([2, 32])
    """

    def __init__(self, config: SmartiesConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        # Fixed, but a Parameter (not a buffer) as in the official model: it is in the checkpoint.
        self.pos_embed = nn.Parameter(sincos_pos_embed(d, config.grid), requires_grad=False)
        self.spectrum_projection = SpectrumProjection(config.patch_size**2, d)
        self.blocks = nn.ModuleList(Block(d, config.num_heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self._init_weights()

    @property
    def name(self) -> str:
        """Variant name."""
        return self.config.name

    @property
    def embed_dim(self) -> int:
        """Width D of the embedding."""
        return self.config.embed_dim

    @property
    def img_size(self) -> int:
        """Input side in pixels."""
        return self.config.img_size

    def _init_weights(self) -> None:
        # MAE-style random init; only meaningful without pretrained weights (tests, benchmarks).
        nn.init.normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def _projection(self, k: int) -> nn.Linear:
        embed = self.spectrum_projection.spectrum_embeds[k]
        assert isinstance(embed, SpectrumEmbed)
        return embed.proj

    def _check_input(self, x: Tensor, n_bands: int) -> None:
        if x.ndim != 4:
            raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != n_bands:
            raise ValueError(f"x has {x.shape[1]} channels but {n_bands} bands were given")
        s = self.config.img_size
        if x.shape[-2:] != (s, s):
            raise ValueError(
                f"image is {x.shape[-2]}x{x.shape[-1]} px but {self.name} expects {s}x{s}: resize it to "
                f"img_size={s} (bicubic, after normalising), or build the encoder with img_size={x.shape[-1]}"
                f" (a multiple of {self.config.patch_size}; the position embedding is regenerated)"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must be a normalised float tensor, got dtype {x.dtype}")

    def _stacked(self, indices: Sequence[int], n_channels: int) -> tuple[Tensor, Tensor]:
        """The C bands' projections side by side, (D, C * p * p), and their summed bias, both x 12/C."""
        if n_channels != len(indices):
            raise ValueError(f"x has {n_channels} channels but {len(indices)} projection indices were given")
        layers = [self._projection(k) for k in indices]
        scale = PROJECTION_SCALE / len(indices)
        weight = torch.cat([lin.weight for lin in layers], dim=1) * scale
        return weight, torch.stack([lin.bias for lin in layers]).sum(0) * scale

    def project(self, x: Tensor, indices: Sequence[int]) -> Tensor:
        """Patch tokens ``(12 / C) * sum_b (W_kb p_b + b_kb)`` as one matrix product per patch.

        Args:
            x: (B, C, H, W) normalised image, H and W multiples of the patch size.
            indices: the projection index (0..16) of each of the C channels.

        Returns:
            (B, (H/p) * (W/p), D) tokens, row-major over the patch grid.
        """
        b, c, height, width = x.shape
        p = self.config.patch_size
        weight, bias = self._stacked(indices, c)
        h, w = height // p, width // p
        # each patch flattened band by band, pixels row-major (r * p + c): the layout of W_k's columns
        patches = x.reshape(b, c, h, p, w, p).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w, c * p * p)
        return F.linear(patches, weight, bias)

    def project_conv(self, x: Tensor, indices: Sequence[int]) -> Tensor:
        """:meth:`project` as one stride-p convolution whose (D, C, p, p) kernel stacks the bands'
        projections (``W_k`` acts on row-major pixels, the kernel's (kh, kw) layout)."""
        p, d = self.config.patch_size, self.config.embed_dim
        weight, bias = self._stacked(indices, x.shape[1])
        kernel = weight.view(d, len(indices), p, p)
        return F.conv2d(x, kernel, bias, stride=p).flatten(2).transpose(1, 2)

    def project_reference(self, x: Tensor, indices: Sequence[int]) -> Tensor:
        """Patch tokens the official way: per-band ``Linear`` into a (B, h, w, C, D) buffer, then mean.

        Slow and memory-hungry; kept for tests and the benchmark. Same arguments and result as
        :meth:`project`.
        """
        b, c, height, width = x.shape
        p, d = self.config.patch_size, self.config.embed_dim
        if c != len(indices):
            raise ValueError(f"x has {c} channels but {len(indices)} projection indices were given")
        h, w = height // p, width // p
        patches = x.reshape(b, c, h, p, w, p).permute(0, 2, 4, 1, 3, 5).reshape(b, h, w, c, p * p)
        proj_idx = torch.as_tensor(list(indices), device=x.device).expand(b, h, w, c)
        tokens = torch.zeros(b, h, w, c, d, dtype=torch.float32, device=x.device)
        for k in torch.unique(proj_idx).tolist():
            mask = proj_idx == k
            tokens[mask] = self._projection(int(k))(patches[mask]).to(tokens.dtype)
        return (PROJECTION_SCALE * tokens.mean(dim=3)).reshape(b, h * w, d)

    def forward_tokens(self, tokens: Tensor) -> Tensor:
        """The trunk: CLS + position embedding, blocks, final norm; (B, N, D) tokens -> (B, D) CLS."""
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]

    def forward(self, x: Tensor, bands: Sequence[str | int], *, reference: bool = False) -> Tensor:
        """CLS embedding after the final LayerNorm.

        Args:
            x: (B, C, img_size, img_size) normalised image.
            bands: the C channels' band names or projection indices, in channel order.
            reference: use the official-style projection (:meth:`project_reference`).

        Returns:
            (B, D) embeddings.
        """
        indices = projection_indices(bands)
        self._check_input(x, len(indices))
        tokens = self.project_reference(x, indices) if reference else self.project(x, indices)
        return self.forward_tokens(tokens)

    def forward_reference(self, x: Tensor, bands: Sequence[str | int]) -> Tensor:
        """:meth:`forward` with the official-style projection."""
        return self.forward(x, bands, reference=True)

    def load_weights(self, path: str | Path, *, sha256: str | None = None, strict: bool = True) -> LoadResult:
        """Load a SMARTIES safetensors file (see :func:`load_smarties_weights`)."""
        return load_smarties_weights(self, path, sha256=sha256, strict=strict)


def _strip(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


def _layout(shapes: dict[str, tuple[int, ...]]) -> tuple[int | None, int]:
    """(D from cls_token or None, number of blocks) of a state dict's shapes."""
    dim = shapes["cls_token"][-1] if "cls_token" in shapes else None
    blocks = [int(m.group(1)) for k in shapes if (m := _BLOCK_KEY.match(k))]
    return dim, max(blocks, default=-1) + 1


def _variant_name(dim: int | None, depth: int) -> str | None:
    for name, (d, n, _) in VARIANTS.items():
        if (d, n) == (dim, depth):
            return name
    return None


def _describe(dim: int | None, depth: int) -> str:
    label = {"smarties-vitb": "ViT-B", "smarties-vitl": "ViT-L"}.get(_variant_name(dim, depth) or "", "ViT")
    return f"{label} (D={dim}, {depth} blocks)"


def _listing(keys: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else f"{shown} ({len(keys)})"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read(path: Path) -> dict[str, Tensor]:
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as exc:  # safetensors raises several types on bad headers or short files
        raise WeightsError(f"cannot read weights file '{path}': truncated or not a safetensors file ({exc})") from exc


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"no weights file '{path}': download smarties-v1-vitb.safetensors (Hugging Face "
            "gsumbul/SMARTIES-v1-ViT-B) or smarties-v1-vitl.safetensors (gsumbul/SMARTIES-v1-ViT-L) once"
        )
    return path


def load_smarties_weights(
    model: SmartiesEncoder, path: str | Path, *, sha256: str | None = None, strict: bool = True
) -> LoadResult:
    """Load a SMARTIES checkpoint into ``model``, checking keys, shapes and (optionally) the hash.

    ``module.``/``model.``/``encoder.`` prefixes are stripped; MAE-decoder and head keys
    (``decoder_*``, ``mask_token``, ``head.*``, ``fc_norm.*``) are ignored on purpose. A
    ``pos_embed`` for another grid is replaced by the sin-cos formula (it is fixed, not learned).

    Args:
        model: the encoder to fill.
        path: a ``.safetensors`` file, e.g. ``smarties-v1-vitb.safetensors``.
        sha256: expected hex digest of the file, checked before reading.
        strict: raise on missing or unexpected keys (shape mismatches always raise).

    Returns:
        What was loaded and ignored.

    Raises:
        WeightsError: unreadable file, hash mismatch, another variant, missing/unexpected keys or
            mismatched shapes; the message names the keys or the variant to use.
    """
    path = _check_path(path)
    if sha256 is not None:
        actual = _sha256(path)
        if actual != sha256.strip().lower():
            raise WeightsError(f"sha256 of '{path}' is {actual}, expected {sha256}: the file is corrupt or another one")
    state: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in _read(path).items():
        key = _strip(key)
        if key.startswith(IGNORED_PREFIXES):
            ignored.append(key)
        else:
            state[key] = value
    own = model.state_dict()
    cfg = model.config
    dim, depth = _layout({k: tuple(v.shape) for k, v in state.items()})
    if dim is not None and (dim, depth) != (cfg.embed_dim, cfg.depth):
        fit = _variant_name(dim, depth)
        fix = f"use --encoder {fit}" if fit else "it is not a released SMARTIES variant"
        raise WeightsError(
            f"the file '{path.name}' holds a {_describe(dim, depth)} but the encoder is {cfg.name} "
            f"(D={cfg.embed_dim}, {cfg.depth} blocks): {fix}"
        )
    regenerated = False
    if "pos_embed" not in state or state["pos_embed"].shape != own["pos_embed"].shape:
        # Fixed sin-cos: another grid (or none in the file) is regenerated, not interpolated.
        state["pos_embed"] = sincos_pos_embed(cfg.embed_dim, cfg.grid)
        regenerated = True
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        parts = [f"missing keys: {_listing(missing)}"] if missing else []
        parts += [f"unexpected keys: {_listing(unexpected)}"] if unexpected else []
        raise WeightsError(f"'{path.name}' does not fit {cfg.name}: " + "; ".join(parts))
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if wrong:
        raise WeightsError(f"'{path.name}' has tensors of the wrong shape for {cfg.name} (file != encoder): {_listing(wrong)}")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    if ignored:
        logger.info("%s: ignored %d decoder/head tensors", path.name, len(ignored))
    return LoadResult(
        n_loaded=len(set(own) & set(state)),
        ignored=tuple(ignored),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        pos_embed_regenerated=regenerated,
    )


def detect_variant(path: str | Path) -> str | None:
    """Which released variant a weights file holds, from its header only.

    Returns:
        ``"smarties-vitb"``, ``"smarties-vitl"``, or None for any other layout.

    Raises:
        WeightsError: the file is missing or not a safetensors file.
    """
    path = _check_path(path)
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            shapes = {_strip(k): tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types on bad headers
        raise WeightsError(f"cannot read weights file '{path}': truncated or not a safetensors file ({exc})") from exc
    return _variant_name(*_layout(shapes))


def build_smarties(
    name: str = "smarties-vitb", weights: str | Path | None = None, sha256: str | None = None, **overrides: Any
) -> SmartiesEncoder:
    """Build a SMARTIES encoder in eval mode, with random weights or loaded from a file.

    Args:
        name: ``"smarties-vitb"``, ``"smarties-vitl"`` or ``"smarties-tiny"`` (tests).
        weights: optional safetensors file (strict load).
        sha256: optional expected digest of ``weights``.
        **overrides: :class:`SmartiesConfig` fields, e.g. ``img_size=128``.

    Example:
        >>> build_smarties("smarties-tiny", img_size=32).pos_embed.shape
        torch.Size([1, 5, 32])
    """
    model = SmartiesEncoder(smarties_config(name, **overrides))
    if weights is not None:
        model.load_weights(weights, sha256=sha256)
    return model.eval()

