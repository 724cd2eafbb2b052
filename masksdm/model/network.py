"""The MaskSDM network: a transformer over one token per predictor, trained with masking.

Architecture (Zbinden et al. 2025, "MaskSDM with Shapley values to improve flexibility, robustness
and explainability in species distribution modelling", Methods in Ecology and Evolution,
doi 10.1111/2041-210x.70200), itself built on the FT-Transformer and periodic (PLR) embeddings of
Gorishniy et al. (2021, 2022):

* each tabular predictor j gets a token ``ReLU(W_j [cos(2 pi c_j x_j), sin(2 pi c_j x_j)] + b_j)``
  with its own learnable frequencies ``c_j`` and its own linear map;
* a categorical predictor (class codes: an ecoregion, a land-cover class) instead gets a learnt
  token per class, looked up by the class's index (``n_levels``);
* each embedding source (e.g. a satellite embedding vector) gets one token through a linear map;
* ONE learned mask token replaces the token of every masked predictor or embedding, and of every
  NaN value; there is no positional embedding, so a masked token carries no identity;
* pre-norm transformer blocks, mean pooling over all tokens (masked ones included), and a head
  ``LayerNorm -> ReLU -> Linear(n_species)`` giving one logit per species.

Collapsed mask tokens (inference): masked tokens are identical and carry no position, so they stay
identical through every block. ``m`` of them are therefore exactly one token whose attention logit
is raised by ``log m`` (softmax sums ``m`` equal terms) and whose pooling weight is ``m``. In eval
mode the network runs on the visible tokens plus that one token, so a site with 10 of 61 predictors
visible costs 11 tokens, not 61. In training mode it is exact too when there is no dropout;
with dropout it is another objective (one dropout draw for all the masked tokens), so training
collapses only when asked (``collapse=True``; see ``train.collapse``).

Inputs: ``x`` (B, P + sum(D_e)) float: the P z-scored tabular predictors (a categorical one as
its class index 0 .. n_levels - 1), then each embedding
source's D_e values, NaN allowed (a NaN predictor, or any NaN in an embedding, masks that token).
``x`` may also stop after the P predictors: the embedding tokens are then masked. ``keep`` is per
TOKEN, (B, T) or (T,) bool with T = P + number of embedding sources (True = use the value); a keep
of length P leaves the embeddings to their NaN test. Output (B, S) logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MaskSDM", "MaskSDMEnsemble", "Network", "PeriodicTokenizer", "TransformerBlock", "count_parameters"]


class PeriodicTokenizer(nn.Module):
    """Per-predictor periodic embedding followed by a per-predictor linear map and ReLU.

    Input (B, P) -> output (B, P, d_token).
    """

    def __init__(
        self, *, n_predictors: int, d_token: int, n_frequencies: int, frequency_init_scale: float | Sequence[float]
    ) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.empty(n_predictors, n_frequencies))
        self.weight = nn.Parameter(torch.empty(n_predictors, 2 * n_frequencies, d_token))
        self.bias = nn.Parameter(torch.empty(n_predictors, d_token))
        scales = [float(frequency_init_scale)] * n_predictors if isinstance(frequency_init_scale, int | float) \
            else [float(v) for v in frequency_init_scale]
        if len(scales) != n_predictors:
            raise ValueError(f"got {len(scales)} frequency init scales for {n_predictors} predictors")
        self.frequency_init_scales = scales
        self.reset_parameters()

    def reset_parameters(self) -> None:
        scales = self.frequency_init_scales
        rows = [self.frequencies.data] if len(set(scales)) == 1 else list(self.frequencies.data)
        for row, s in zip(rows, scales, strict=False):  # one scale: one draw for the whole matrix
            nn.init.trunc_normal_(row, 0.0, s, a=-3 * s, b=3 * s)
        bound = 1 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, columns: Tensor | None = None) -> Tensor:
        """Tokens of ``x`` (B, P), or of the predictors ``columns`` only when ``x`` is (B, len(columns))."""
        frequencies: Tensor = self.frequencies
        weight: Tensor = self.weight
        bias: Tensor = self.bias
        if columns is not None:
            frequencies, weight, bias = frequencies[columns], weight[columns], bias[columns]
        angles = 2 * math.pi * frequencies * x[..., None]  # (B, P, F)
        periodic = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (B, P, 2F)
        tokens = torch.einsum("bpf,pfd->bpd", periodic, weight) + bias
        return F.relu(tokens)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Drop(MHA(LN(x))), then x + Drop(FFN(LN(x))). Input/output (B, T, d)."""

    def __init__(self, *, d_token: int, n_heads: int, d_ffn: int, dropout: float) -> None:
        super().__init__()
        if d_token % n_heads:
            raise ValueError(f"d_token must be divisible by n_heads, got {d_token=} and {n_heads=}")
        self.n_heads = n_heads
        self.attention_norm = nn.LayerNorm(d_token)
        self.qkv = nn.Linear(d_token, 3 * d_token)
        self.out = nn.Linear(d_token, d_token)
        self.ffn_norm = nn.LayerNorm(d_token)
        self.ffn_in = nn.Linear(d_token, d_ffn)
        self.ffn_out = nn.Linear(d_ffn, d_token)
        self.dropout = dropout
        nn.init.zeros_(self.qkv.bias)

    def attention(self, x: Tensor, attn_bias: Tensor | None = None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        if attn_bias is not None:
            attn_bias = attn_bias.to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: Tensor, attn_bias: Tensor | None = None) -> Tensor:
        x = x + F.dropout(self.attention(self.attention_norm(x), attn_bias), self.dropout, self.training)
        h = F.dropout(F.relu(self.ffn_in(self.ffn_norm(x))), self.dropout, self.training)
        return x + F.dropout(self.ffn_out(h), self.dropout, self.training)


class MaskSDM(nn.Module):
    """Multi-species presence model over any subset of predictors.

    Args:
        n_predictors: number of tabular predictors P.
        n_species: number of output species S.
        d_embeddings: input width of each embedding source (one token each), e.g. ``(256,)``.
        d_token: token width (paper: 192).
        n_blocks: transformer blocks (paper: 7).
        n_heads: attention heads (paper: 8).
        ffn_factor: FFN hidden width as a multiple of d_token (paper: 4/3).
        dropout: dropout on attention probabilities, FFN hidden units and residual branches.
        n_frequencies: learnable frequencies per predictor (paper: 48).
        frequency_init_scale: std of the truncated-normal frequency init (paper: 0.01), one for
            all predictors or one per predictor.

    Example:
        >>> model = MaskSDM(n_predictors=3, n_species=5, d_token=16, n_blocks=1, n_heads=2)
        >>> x = torch.tensor([[0.1, float("nan"), -1.0]])
        >>> model(x).shape
        torch.Size([1, 5])
    """

    allowed: Tensor  # (T,) bool buffer, see restrict
    class_offsets: Tensor  # (P,) long: where each predictor's classes start in class_tokens
    class_sizes: Tensor  # (P,) long: its number of classes, 0 for a continuous predictor

    def __init__(
        self,
        *,
        n_predictors: int,
        n_species: int,
        d_embeddings: Sequence[int] = (),
        d_token: int = 192,
        n_blocks: int = 7,
        n_heads: int = 8,
        ffn_factor: float = 4 / 3,
        dropout: float = 0.1,
        n_frequencies: int = 48,
        frequency_init_scale: float | Sequence[float] = 0.01,
        n_levels: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if n_predictors < 1 or n_species < 1 or n_blocks < 1:
            raise ValueError(
                f"n_predictors, n_species and n_blocks must be positive, got {n_predictors=}, "
                f"{n_species=}, {n_blocks=}"
            )
        self.n_predictors = n_predictors
        self.n_species = n_species
        self.d_embeddings = tuple(int(d) for d in d_embeddings)
        self.tokenizer = PeriodicTokenizer(
            n_predictors=n_predictors,
            d_token=d_token,
            n_frequencies=n_frequencies,
            frequency_init_scale=frequency_init_scale,
        )
        self.embedding_projections = nn.ModuleList(nn.Linear(d, d_token) for d in self.d_embeddings)
        self.n_levels = tuple(int(n) for n in n_levels) or (0,) * n_predictors
        if len(self.n_levels) != n_predictors or min(self.n_levels) < 0:
            raise ValueError(f"n_levels needs one count >= 0 per predictor (0: continuous), got {n_levels}")
        # categorical predictors: one learnt token per class, all in one table (only when there are some)
        self.class_tokens = nn.Embedding(sum(self.n_levels), d_token) if any(self.n_levels) else None
        offsets = [sum(self.n_levels[:j]) for j in range(n_predictors)]
        self.register_buffer("class_offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.register_buffer("class_sizes", torch.tensor(self.n_levels, dtype=torch.long), persistent=False)
        self.mask_token = nn.Parameter(torch.empty(d_token))
        bound = 1 / math.sqrt(d_token)
        nn.init.uniform_(self.mask_token, -bound, bound)
        d_ffn = int(d_token * ffn_factor)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_token=d_token, n_heads=n_heads, d_ffn=d_ffn, dropout=dropout)
            for _ in range(n_blocks)
        )
        self.head_norm = nn.LayerNorm(d_token)
        self.head = nn.Linear(d_token, n_species)
        # tokens the model may use (train.use): the others are masked on every path; not saved
        # with the weights, the card sets it (see restrict)
        self.register_buffer("allowed", torch.ones(self.n_tokens, dtype=torch.bool), persistent=False)
        self.restricted = False

    def restrict(self, allowed: Tensor | Sequence[bool]) -> None:
        """Mask the tokens outside ``allowed`` (T,) bool in every call, whatever ``keep`` says:
        a model trained on a predictor subset (``train.use``) never sees the other predictors."""
        mask = torch.as_tensor(allowed, dtype=torch.bool, device="cpu")  # read here: the model may be on "meta"
        if mask.shape != (self.n_tokens,):
            raise ValueError(f"allowed has shape {tuple(mask.shape)}, expected ({self.n_tokens},): one per token")
        self.allowed.copy_(mask)
        self.restricted = not bool(mask.all())

    @property
    def n_tokens(self) -> int:
        """T: one token per tabular predictor and per embedding source."""
        return self.n_predictors + len(self.d_embeddings)

    @property
    def n_inputs(self) -> int:
        """Width of ``x``: the predictors, then every embedding source's values."""
        return self.n_predictors + sum(self.d_embeddings)

    @property
    def d_pooled(self) -> int:
        """Width of :meth:`encode`'s pooled features."""
        return self.head.in_features

    def _check_inputs(self, x: Tensor, keep: Tensor | None) -> Tensor | None:
        if x.ndim != 2 or x.shape[1] not in (self.n_predictors, self.n_inputs):
            raise ValueError(
                f"x has shape {tuple(x.shape)}, expected (batch, {self.n_inputs}): {self.n_predictors} "
                f"predictors then the embedding values {list(self.d_embeddings)}"
            )
        if keep is None:
            return self.allowed if self.restricted else None
        if keep.shape[-1] == self.n_predictors and self.n_predictors != self.n_tokens:
            # the embeddings follow their NaN test alone
            pad = torch.ones((*keep.shape[:-1], len(self.d_embeddings)), dtype=torch.bool, device=keep.device)
            keep = torch.cat([keep, pad], dim=-1)
        if keep.shape[-1] != self.n_tokens:
            raise ValueError(f"keep has {keep.shape[-1]} entries per row, expected one per token ({self.n_tokens})")
        return keep & self.allowed if self.restricted else keep

    def tokenize(
        self, x: Tensor, keep: Tensor | None = None, *, columns: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Tokens (B, K, d_token) with masked and NaN entries set to the mask token, and the
        visibility (B, K) bool of each token (False = mask token).

        ``x`` is the full input (B, P + sum(D_e)) (or (B, P)); ``keep`` (B, T), (T,) or None.
        With ``columns`` (token indices, increasing), only those tokens are made (K = len(columns))
        and ``keep`` is ignored: they are visible unless NaN.
        """
        p = self.n_predictors
        values = x[:, :p]
        if columns is None:
            sources = list(range(len(self.d_embeddings)))
            scalar_keep = None if keep is None else keep[..., :p]
        else:
            scalar_columns = columns[columns < p]
            values = values[:, scalar_columns]
            sources = (columns[columns >= p] - p).tolist()
            scalar_keep = keep = None
        valid = ~torch.isnan(values)
        visible = valid if scalar_keep is None else scalar_keep & valid
        tokens = self.tokenizer(torch.nan_to_num(values, nan=0.0), None if columns is None else scalar_columns)
        if self.class_tokens is not None:
            tokens = self._with_class_tokens(tokens, values, None if columns is None else scalar_columns)
        mask_token = self.mask_token.to(tokens.dtype)
        tokens = torch.where(visible[..., None], tokens, mask_token)
        if not sources:
            return tokens, visible
        b = x.shape[0]
        starts = [p + sum(self.d_embeddings[:i]) for i in range(len(self.d_embeddings))]
        extra, extra_visible = [], []
        for i in sources:
            if x.shape[1] == p:  # no embedding values given: masked
                extra.append(mask_token.expand(b, -1))
                extra_visible.append(torch.zeros(b, dtype=torch.bool, device=x.device))
                continue
            e = x[:, starts[i] : starts[i] + self.d_embeddings[i]]
            e_visible = ~torch.isnan(e).any(dim=-1)
            if keep is not None:
                e_visible = e_visible & keep[..., p + i]
            token = self.embedding_projections[i](torch.nan_to_num(e, nan=0.0))
            extra.append(torch.where(e_visible[:, None], token, mask_token.to(token.dtype)))
            extra_visible.append(e_visible)
        tokens = torch.cat([tokens, torch.stack(extra, dim=1).to(tokens.dtype)], dim=1)
        return tokens, torch.cat([visible.expand(b, -1), torch.stack(extra_visible, dim=1)], dim=1)

    def _with_class_tokens(self, tokens: Tensor, values: Tensor, columns: Tensor | None) -> Tensor:
        """``tokens`` (B, K, d) with the categorical predictors' tokens looked up by class index."""
        assert self.class_tokens is not None
        offsets, sizes = self.class_offsets, self.class_sizes
        if columns is not None:
            offsets, sizes = offsets[columns], sizes[columns]
        which = torch.nonzero(sizes > 0).squeeze(1)
        if len(which) == 0:
            return tokens
        index = torch.nan_to_num(values[:, which], nan=0.0).long()  # NaN: masked after this anyway
        index = torch.minimum(index.clamp(min=0), sizes[which] - 1) + offsets[which]
        return tokens.index_copy(1, which, self.class_tokens(index).to(tokens.dtype))

    def trunk(self, tokens: Tensor) -> Tensor:
        """Transformer blocks and mean pooling over the full sequence: (B, T, d) -> (B, d)."""
        for block in self.blocks:
            tokens = block(tokens)
        return tokens.mean(dim=1)

    def collapsed_trunk(self, tokens: Tensor, visible: Tensor, *, n_tokens: int | None = None) -> Tensor:
        """Same output as :meth:`trunk` without dropout, on visible tokens plus one mask token.

        ``tokens`` (B, K, d) and ``visible`` (B, K) hold some or all of the sequence's ``n_tokens``
        tokens (default K); every token not visible here counts as masked. Rows are padded to the
        largest visible count in the batch; padding gets attention logit -inf and pooling weight
        0, the single mask token ``log m`` and ``m`` (m = masked count). Exact in eval mode, up
        to float rounding.
        """
        b, width, d = tokens.shape
        t = width if n_tokens is None else n_tokens
        if bool(visible.all()):  # e.g. one predictor subset for every row: no padding
            k = width
            weight = torch.ones(1, k + 1, device=tokens.device)
            weight[0, k] = t - k
        else:
            n_visible = visible.sum(dim=1)
            k = int(n_visible.max())
            # visible tokens first, in their original order, then cut to the longest row
            order = torch.argsort((~visible).to(torch.int8), dim=1, stable=True)[:, :k]
            tokens = torch.gather(tokens, 1, order[..., None].expand(-1, -1, d))
            slot = torch.arange(k, device=tokens.device) < n_visible[:, None]  # (B, k) real, not padding
            n_masked = (t - n_visible).to(torch.float32)
            weight = torch.cat([slot.to(torch.float32), n_masked[:, None]], dim=1)  # (B, k + 1)
        tokens = torch.cat([tokens, self.mask_token.to(tokens.dtype).expand(b, 1, d)], dim=1)
        # log 0 = -inf removes padding (and the mask token when nothing is masked) from attention
        bias = torch.log(weight)[:, None, None, :]
        for block in self.blocks:
            tokens = block(tokens, bias)
        return (tokens * weight[..., None].to(tokens.dtype)).sum(dim=1) / t

    def encode(self, x: Tensor, keep: Tensor | None = None, *, collapse: bool | None = None) -> Tensor:
        """Pooled features (B, d_token) before the head.

        ``keep`` is (B, T), or (T,) for one token subset shared by every row. ``collapse``
        (default: in eval mode) runs :meth:`collapsed_trunk`; it is exact without dropout, so it
        is skipped in training mode unless asked for. With a shared subset only its tokens are
        made.
        """
        keep = self._check_inputs(x, keep)
        if collapse is None:
            collapse = not self.training
        if collapse and keep is not None and keep.ndim == 1:
            tokens, visible = self.tokenize(x, columns=torch.nonzero(keep).squeeze(1))
            return self.collapsed_trunk(tokens, visible, n_tokens=self.n_tokens)
        tokens, visible = self.tokenize(x, keep)
        if collapse and not bool(visible.all()):
            return self.collapsed_trunk(tokens, visible)
        return self.trunk(tokens)

    def head_logits(self, pooled: Tensor, species: Tensor | None = None) -> Tensor:
        """Head on pooled features (B, d) -> (B, S), or only the species indexed by ``species``."""
        h = F.relu(self.head_norm(pooled))
        if species is None:
            return self.head(h)
        return F.linear(h, self.head.weight[species], self.head.bias[species])

    def forward(
        self, x: Tensor, keep: Tensor | None = None, species: Tensor | None = None, *, collapse: bool | None = None
    ) -> Tensor:
        """Logits (B, S), or (B, len(species)) for the species indexed by ``species``."""
        return self.head_logits(self.encode(x, keep, collapse=collapse), species)


class MaskSDMEnsemble(nn.Module):
    """``k`` MaskSDM networks of the same sizes, initialised apart, whose logits are averaged.

    The members are trained side by side on the same batches and masks, each by its own loss (the
    parameters are disjoint, so the summed loss trains each as if alone); the ensemble selects its
    epoch on the averaged logits. It has the interface of :class:`MaskSDM`: ``encode`` returns
    the members' pooled features side by side, (B, k * d_token), which ``head_logits`` turns into
    the mean of the members' logits, so code that caches pooled features works unchanged.
    :meth:`member_logits` gives every member's logits, whose spread is the ensemble's uncertainty.

    Example:
        >>> ens = MaskSDMEnsemble(3, n_predictors=2, n_species=4, d_token=8, n_blocks=1, n_heads=2)
        >>> ens(torch.zeros(5, 2)).shape, ens.member_logits(torch.zeros(5, 2)).shape
        (torch.Size([5, 4]), torch.Size([3, 5, 4]))
    """

    def __init__(self, n_members: int, **sizes: Any) -> None:
        super().__init__()
        if n_members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {n_members}")
        members = [MaskSDM(**sizes) for _ in range(n_members)]
        self.members = nn.ModuleList(members)
        self.n_predictors, self.n_species = members[0].n_predictors, members[0].n_species
        self.d_embeddings = members[0].d_embeddings

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def n_tokens(self) -> int:
        return self._members()[0].n_tokens

    @property
    def n_inputs(self) -> int:
        return self._members()[0].n_inputs

    @property
    def d_pooled(self) -> int:
        """Width of :meth:`encode`'s features: every member's side by side."""
        return sum(m.d_pooled for m in self._members())

    def _members(self) -> list[MaskSDM]:
        return [m for m in self.members if isinstance(m, MaskSDM)]

    def restrict(self, allowed: Tensor | Sequence[bool]) -> None:
        """As :meth:`MaskSDM.restrict`, for every member."""
        for m in self._members():
            m.restrict(allowed)

    def encode(self, x: Tensor, keep: Tensor | None = None, *, collapse: bool | None = None) -> Tensor:
        """The members' pooled features side by side: (B, k * d_token)."""
        return torch.cat([m.encode(x, keep, collapse=collapse) for m in self._members()], dim=-1)

    def _member_head_logits(self, pooled: Tensor, species: Tensor | None) -> Tensor:
        parts = pooled.chunk(self.n_members, dim=-1)
        return torch.stack([m.head_logits(p, species) for m, p in zip(self._members(), parts, strict=True)])

    def head_logits(self, pooled: Tensor, species: Tensor | None = None) -> Tensor:
        """Mean member logits (B, S) from :meth:`encode`'s features."""
        return self._member_head_logits(pooled, species).mean(dim=0)

    def member_logits(
        self, x: Tensor, keep: Tensor | None = None, species: Tensor | None = None, *, collapse: bool | None = None
    ) -> Tensor:
        """Every member's logits: (k, B, S)."""
        return self._member_head_logits(self.encode(x, keep, collapse=collapse), species)

    def forward(
        self, x: Tensor, keep: Tensor | None = None, species: Tensor | None = None, *, collapse: bool | None = None
    ) -> Tensor:
        """Mean member logits (B, S), or (B, len(species))."""
        return self.head_logits(self.encode(x, keep, collapse=collapse), species)


#: What a checkpoint holds: one network or an ensemble of them (the same interface).
Network = MaskSDM | MaskSDMEnsemble


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
