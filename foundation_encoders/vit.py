"""Vision-transformer parts of SMARTIES, named as in its checkpoint: fixed sin-cos positions,
attention, MLP and pre-norm blocks (timm's layout), and the per-band spectrum projections.

Shapes: tokens (B, N, D) in and out of every block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foundation_encoders.spectrum import N_PROJECTIONS

__all__ = ["Attention", "Block", "Mlp", "SpectrumEmbed", "SpectrumProjection", "sincos_pos_embed"]


def sincos_pos_embed(dim: int, grid: int) -> Tensor:
    """Fixed 2-D sin-cos position embedding of SMARTIES (as in MAE), CLS row first.

    Patch (row r, col c), token ``1 + r * grid + c``, gets ``[sin(c w), cos(c w), sin(r w), cos(r w)]``
    with ``w_i = 10000^(-i / (dim / 4))``, i = 0..dim/4 - 1; row 0 (CLS) is zero.

    Args:
        dim: embedding width, a multiple of 4.
        grid: patches per side.

    Returns:
        float32 tensor (1, 1 + grid * grid, dim).

    Example:
        >>> sincos_pos_embed(8, 2)[0, 2].tolist()  # row 0, col 1
        [0.8414709568023682, 0.009999833069741726, 0.5403022766113281, 0.9999499917030334, 0.0, 0.0, 1.0, 1.0]
    """
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4, got {dim=}")
    quarter = dim // 4
    omega = 10000.0 ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    pos = torch.arange(grid, dtype=torch.float64)
    col = torch.outer(pos.repeat(grid), omega)  # token r*grid + c has column c
    row = torch.outer(pos.repeat_interleave(grid), omega)  # ... and row r
    patches = torch.cat([col.sin(), col.cos(), row.sin(), row.cos()], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), patches]).to(torch.float32).unsqueeze(0)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm ``Block`` without LayerScale or drop-path)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SpectrumEmbed(nn.Module):
    """One band's projection ``proj: Linear(patch_size**2 -> D)`` on row-major flattened pixels."""

    def __init__(self, n_pixels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n_pixels, dim)


class SpectrumProjection(nn.Module):
    """Holds ``spectrum_embeds``, the 17 band projections, so the keys match the checkpoint."""

    def __init__(self, n_pixels: int, dim: int) -> None:
        super().__init__()
        self.spectrum_embeds = nn.ModuleList(SpectrumEmbed(n_pixels, dim) for _ in range(N_PROJECTIONS))
