"""How plots are split into training, validation and test plots.

* :func:`spatial_block_split` (the default, as in the MaskSDM paper): whole spatial blocks of
  ``block_size`` degrees go to one split, so test plots are spatially separated from training plots.
* :func:`split_from_column`: the user's own labels (``train`` / ``val`` / ``test``), e.g. a
  temporal split; without ``val`` labels, validation blocks are drawn from the training plots.
* :func:`split_from_rule`: a rule such as ``"year >= 2012"`` marks the test plots; validation
  blocks are drawn from the others.
* :func:`spatial_folds`: spatial blocks dealt into k folds of about equal size, for
  cross-validation (each fold is the test split once).

Given the plots' species (``labels``), block splits and folds are **stratified**: whole blocks are
dealt so that each species' presences (and, for a species in most plots, its absences) are shared
between the splits in proportion, as far as blocks allow (:func:`stratified_blocks`). Without
it, a species whose records cluster in a few blocks can land with one presence in validation and
none in test. :func:`split_balance` reports the shares reached.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from masksdm.errors import DataError

__all__ = [
    "SPLITS", "fold_split", "presence_matrix", "spatial_block_split", "spatial_folds", "split_balance", "split_from_column",
    "split_from_rule", "stratified_blocks",
]

SPLITS = ("train", "val", "test")
_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
            "test": "test", "testing": "test"}


def _blocks(lon: np.ndarray, lat: np.ndarray, block_size: float) -> tuple[int, np.ndarray]:
    """Number of occupied blocks and the block index of each point."""
    if block_size <= 0:
        raise DataError(f"block_size must be positive, got {block_size=}")
    bx = np.floor(np.asarray(lon) / block_size).astype(np.int64)
    by = np.floor(np.asarray(lat) / block_size).astype(np.int64)
    blocks, block_of = np.unique(np.stack([bx, by], axis=1), axis=0, return_inverse=True)
    return len(blocks), block_of.ravel()


def presence_matrix(plot_ids: Any, occurrences: pd.DataFrame, *, column: str = "species") -> sparse.csr_matrix:
    """Sparse (plots, species) presence matrix: one row per entry of ``plot_ids``, one column per
    distinct value of ``occurrences[column]`` (in sorted order), from its (``plot_id``, ``column``) rows."""
    index = pd.Index(pd.Series(np.asarray(plot_ids)).astype(str))
    rows = index.get_indexer(occurrences["plot_id"].astype(str))
    codes, uniques = pd.factorize(occurrences[column], sort=True)
    keep = rows >= 0
    data = np.ones(int(keep.sum()), dtype=np.int8)
    out = sparse.csr_matrix((data, (rows[keep], codes[keep])), shape=(len(plot_ids), len(uniques)))
    out.data[:] = 1  # duplicated (plot, species) rows are one presence
    return out


def _as_sparse(labels: Any, n: int) -> sparse.csr_matrix:
    matrix = sparse.csr_matrix(labels, dtype=np.int64)
    if matrix.shape[0] != n:
        raise DataError(f"labels has {matrix.shape[0]} rows for {n} plots: give one row per plot")
    matrix.data = (matrix.data != 0).astype(np.int64)
    return matrix


def stratified_blocks(block_of: np.ndarray, labels: Any, shares: np.ndarray, *, seed: int = 42) -> np.ndarray:
    """Part index (0 .. len(shares) - 1) of each block, dealing whole blocks so that every species'
    presences are shared between the parts as ``shares`` says, as far as blocks allow.

    This is iterative stratification (Sechidis, Tsoumakas & Vlahavas 2011) with blocks as the
    items: the species with the fewest presences in blocks not yet dealt goes first, and each of
    its blocks (in seeded random order) goes to the part that still wants most of that species'
    presences, then most plots, then at random. Each species is stratified on its rarer class, so a
    species present in most plots has its absences shared out. Blocks without any species go to
    the part that wants most plots.

    Args:
        block_of: block index (0 .. B - 1) of each plot.
        labels: (plots, species) presences, dense or scipy sparse.
        shares: wanted share of the plots (and of each species) in each part; sums to 1.
        seed: seed of the block order and of ties.
    """
    shares = np.asarray(shares, dtype=np.float64)
    n_blocks = int(block_of.max()) + 1
    to_block = sparse.csr_matrix((np.ones(len(block_of)), (block_of, np.arange(len(block_of)))),
                                 shape=(n_blocks, len(block_of)))
    size = np.asarray(to_block.sum(axis=1)).ravel()
    present = (to_block @ _as_sparse(labels, len(block_of))).tocsc()  # (B, S) presences per block
    totals = np.asarray(present.sum(axis=0)).ravel()
    common = np.flatnonzero(totals > len(block_of) / 2)
    if len(common):  # stratify these species on their absences
        absent = size[:, None] - present[:, common].toarray()
        present = present[:, np.setdiff1d(np.arange(present.shape[1]), common)]
        present = sparse.hstack([present, sparse.csc_matrix(absent)], format="csc")
    counts_csc = present
    counts_csr = present.tocsr()
    rng = np.random.default_rng(seed)
    want = shares[:, None] * np.asarray(counts_csc.sum(axis=0)).ravel()[None, :]  # (K, L)
    want_plots = shares * len(block_of)
    left = np.asarray(counts_csc.sum(axis=0), dtype=np.float64).ravel()  # presences in blocks not dealt
    part_of = np.full(n_blocks, -1, dtype=np.int64)
    tie = rng.random((n_blocks, len(shares))) * 1e-9  # random tie-break, below any count difference

    closed = np.where(shares > 0, 0.0, -np.inf)  # a part wanting no share gets no block

    def deal(block: int, score: np.ndarray) -> None:
        part = int(np.argmax(score + tie[block] + closed))
        part_of[block] = part
        row = slice(counts_csr.indptr[block], counts_csr.indptr[block + 1])
        cols, vals = counts_csr.indices[row], counts_csr.data[row]
        want[part, cols] -= vals
        left[cols] -= vals
        want_plots[part] -= size[block]

    while True:
        open_labels = np.flatnonzero(left > 0)
        if not len(open_labels):
            break
        label = int(open_labels[np.argmin(left[open_labels])])
        column = slice(counts_csc.indptr[label], counts_csc.indptr[label + 1])
        blocks = counts_csc.indices[column][counts_csc.data[column] > 0]
        for block in rng.permutation(blocks):
            if part_of[block] < 0:
                # the species' want first; the plots' want only breaks ties
                deal(int(block), want[:, label] + 1e-6 * want_plots / max(len(block_of), 1))
    for block in rng.permutation(np.flatnonzero(part_of < 0)):
        deal(int(block), want_plots.copy())
    return _refine(part_of, counts_csr, size, shares, rng)


def _refine(part_of: np.ndarray, counts: sparse.csr_matrix, size: np.ndarray, shares: np.ndarray,
            rng: np.random.Generator, passes: int = 3) -> np.ndarray:
    """Move single blocks to another part while that brings the parts closer to ``shares``: the
    sum over species of the squared gap between each part's share of the species and its wanted
    share, plus the same for the plots."""
    totals = np.maximum(np.asarray(counts.sum(axis=0), dtype=np.float64).ravel(), 1.0)
    n_parts = len(shares)
    have = np.zeros((n_parts, counts.shape[1]))
    for k in range(n_parts):
        have[k] = np.asarray(counts[part_of == k].sum(axis=0)).ravel()
    plots = np.bincount(part_of, weights=size, minlength=n_parts)
    target, n_plots = shares[:, None] * totals[None, :], size.sum()
    open_parts = shares > 0
    for _ in range(passes):
        moved = 0
        for block in rng.permutation(len(part_of)):
            row = slice(counts.indptr[block], counts.indptr[block + 1])
            cols, vals = counts.indices[row], counts.data[row].astype(np.float64)
            a = part_of[block]
            gap = (have[:, cols] - target[:, cols]) / totals[cols]  # (K, nnz) relative gaps now
            step = vals / totals[cols]
            out_gain = ((gap[a] - step) ** 2 - gap[a] ** 2).sum()  # cost change of leaving a
            in_gain = ((gap + step) ** 2 - gap**2).sum(axis=1)  # cost change of joining each part
            pgap = (plots - shares * n_plots) / n_plots
            pstep = size[block] / n_plots
            delta = out_gain + in_gain + ((pgap[a] - pstep) ** 2 - pgap[a] ** 2) + ((pgap + pstep) ** 2 - pgap**2)
            delta[a], delta[~open_parts] = 0.0, np.inf
            c = int(np.argmin(delta))
            if delta[c] < -1e-12:
                have[a, cols] -= vals
                have[c, cols] += vals
                plots[a] -= size[block]
                plots[c] += size[block]
                part_of[block] = c
                moved += 1
        if not moved:
            break
    return part_of


def split_balance(split: np.ndarray, labels: Any, species: Any = None) -> pd.DataFrame:
    """Per species: presences and absences in each split, and the share of its presences each
    split holds (``share_train`` ...): how even a split is for each species."""
    split = np.asarray(split)
    matrix = _as_sparse(labels, len(split))
    out = pd.DataFrame(index=pd.Index(species if species is not None else np.arange(matrix.shape[1]), name="species"))
    total = np.asarray(matrix.sum(axis=0)).ravel()
    for s in SPLITS:
        rows = split == s
        n_pres = np.asarray(matrix[rows].sum(axis=0)).ravel()
        out[f"presences_{s}"] = n_pres
        out[f"absences_{s}"] = int(rows.sum()) - n_pres
    for s in SPLITS:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"share_{s}"] = out[f"presences_{s}"].to_numpy() / total
    return out.reset_index()


def spatial_block_split(
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    block_size: float = 1.0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    seed: int = 42,
    labels: Any = None,
) -> np.ndarray:
    """Assign each point to ``"train"``, ``"val"`` or ``"test"`` by whole spatial blocks.

    Blocks of ``block_size`` degrees are shuffled with ``seed``; blocks go to test until it holds
    ``test_fraction`` of the points, then to validation until it holds ``val_fraction``, the rest to
    train. Every block lies entirely in one split. With ``labels`` ((points, species) presences),
    the blocks are dealt by :func:`stratified_blocks` instead, so that each species' presences are
    split in these proportions too.

    >>> split = spatial_block_split(np.arange(100.0) % 10, np.zeros(100), block_size=1, seed=0)
    >>> sorted(set(split.tolist())), int((split == "test").sum())
    (['test', 'train', 'val'], 20)
    """
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise DataError(f"need 0 < test_fraction, 0 <= val_fraction and a sum < 1, got {test_fraction=}, {val_fraction=}")
    n_blocks, block_of = _blocks(lon, lat, block_size)
    if n_blocks < 3:
        raise DataError(
            f"only {n_blocks} spatial block(s) of {block_size} degrees hold plots, too few for a "
            "train/validation/test split: pass a smaller --block-size"
        )
    if labels is not None:
        part = stratified_blocks(block_of, labels, np.array([test_fraction, val_fraction, 1 - test_fraction - val_fraction]),
                                 seed=seed)
        return _nonempty_parts(np.array(["test", "val", "train"])[part[block_of]], block_of, ("test", "val", "train")
                               if val_fraction > 0 else ("test", "train"))
    counts = np.bincount(block_of, minlength=n_blocks)
    order = np.random.default_rng(seed).permutation(n_blocks)
    cumulative = np.cumsum(counts[order]) / counts.sum()
    start = np.concatenate([[0.0], cumulative[:-1]])  # share of points before each block
    assigned = np.where(start < test_fraction, 0, np.where(start < test_fraction + val_fraction, 1, 2))
    assigned[-1] = 2  # the last block always trains, so train is never empty
    split_of_block = np.empty(n_blocks, dtype=np.int64)
    split_of_block[order] = assigned
    return np.array(["test", "val", "train"])[split_of_block[block_of]]


def _nonempty_parts(split: np.ndarray, block_of: np.ndarray, parts: tuple[Any, ...]) -> np.ndarray:
    """``split`` where every part in ``parts`` holds a block: an empty part takes the smallest
    block of the part with the most blocks."""
    split = split.copy()
    for part in parts:
        if (split == part).any():
            continue
        blocks_in = {p: np.unique(block_of[split == p]) for p in parts}
        donor = max(blocks_in, key=lambda p: len(blocks_in[p]))
        sizes = np.bincount(block_of[split == donor])
        smallest = blocks_in[donor][np.argmin(sizes[blocks_in[donor]])]
        split[block_of == smallest] = part
    return split


def _validation_from(train: np.ndarray, lon: np.ndarray, lat: np.ndarray, split: np.ndarray, *,
                     block_size: float, val_fraction: float, seed: int, labels: Any = None) -> np.ndarray:
    """``split`` with ``val_fraction`` of the ``train`` points moved to validation, by whole blocks
    (stratified over species given ``labels``)."""
    if not 0 < val_fraction < 1:
        raise DataError(f"validation plots are drawn from the training plots: need 0 < val_fraction < 1, got {val_fraction}")
    inner_labels = None if labels is None else _as_sparse(labels, len(train))[np.flatnonzero(train)]
    inner = spatial_block_split(lon[train], lat[train], block_size=block_size, test_fraction=val_fraction,
                                val_fraction=0.0, seed=seed, labels=inner_labels)
    out = split.copy()
    out[np.flatnonzero(train)[inner == "test"]] = "val"
    return out


def _check_nonempty(split: np.ndarray, how: str) -> np.ndarray:
    counts = {s: int((split == s).sum()) for s in SPLITS}
    empty = [s for s, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"{how} leaves the {' and '.join(empty)} split empty ({counts}): every split needs plots")
    return split


def split_from_column(
    values: pd.Series | np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    block_size: float = 1.0,
    val_fraction: float = 0.15,
    seed: int = 42,
    labels: Any = None,
) -> np.ndarray:
    """The user's split labels, one per point: ``train``, ``val`` or ``test`` (also ``training``,
    ``validation``, ``testing``, any case). Without any ``val`` label, ``val_fraction`` of the
    training points become validation points, by whole spatial blocks.

    >>> split = split_from_column(["train"] * 8 + ["Test"] * 2, np.arange(10.0), np.zeros(10), val_fraction=0.25)
    >>> [int((split == s).sum()) for s in SPLITS], split[-2:].tolist()
    ([6, 2, 2], ['test', 'test'])
    """
    text = pd.Series(np.asarray(values, dtype=object)).astype("string").str.strip().str.lower()
    named = text.map(_ALIASES)
    bad = named.isna()
    if bad.any():
        shown = sorted(set(text[bad].fillna("<missing>").tolist()))[:5]
        raise DataError(
            f"{int(bad.sum())} plots have a split label other than train / val / test (e.g. {shown}): "
            "give every plot one of these labels"
        )
    split = named.to_numpy(dtype="<U5")
    if not (split == "val").any():
        split = _validation_from(split == "train", np.asarray(lon), np.asarray(lat), split,
                                 block_size=block_size, val_fraction=val_fraction, seed=seed, labels=labels)
    return _check_nonempty(split, "the split column")


def split_from_rule(
    plots: pd.DataFrame,
    rule: str,
    *,
    block_size: float = 1.0,
    val_fraction: float = 0.15,
    seed: int = 42,
    labels: Any = None,
) -> np.ndarray:
    """Test points where ``rule`` holds (a pandas expression over the columns of ``plots``, e.g.
    ``"year >= 2012"`` or ``"country == 'Greece'"``); ``val_fraction`` of the others become
    validation points by whole spatial blocks, the rest train.

    >>> plots = pd.DataFrame({"lon": np.arange(10.0), "lat": 0.0, "year": np.arange(2005, 2015)})
    >>> split_from_rule(plots, "year >= 2012", val_fraction=0.3, seed=0).tolist()[-4:]
    ['train', 'test', 'test', 'test']
    """
    try:
        test = plots.eval(rule)
    except Exception as err:  # noqa: BLE001 - pandas raises many kinds for a bad expression
        raise DataError(
            f"cannot evaluate the test rule {rule!r} ({type(err).__name__}: {err}); it may use the plot columns "
            f"{sorted(map(str, plots.columns))[:12]} (a table column must be kept with --info-columns)"
        ) from None
    test = np.asarray(test)
    if test.shape != (len(plots),) or test.dtype != bool:
        raise DataError(f"the test rule {rule!r} must give True or False for each plot, e.g. \"year >= 2012\"")
    split = np.where(test, "test", "train").astype("<U5")
    split = _validation_from(~test, plots["lon"].to_numpy(), plots["lat"].to_numpy(), split,
                             block_size=block_size, val_fraction=val_fraction, seed=seed, labels=labels)
    return _check_nonempty(split, f"the test rule {rule!r}")


def spatial_folds(
    lon: np.ndarray, lat: np.ndarray, *, n_folds: int = 5, block_size: float = 1.0, seed: int = 42, labels: Any = None,
) -> np.ndarray:
    """Fold index (0 .. n_folds - 1) of each point: shuffled spatial blocks dealt, largest first,
    to the fold that holds the fewest points so far, so folds are of about equal size and every
    block lies in one fold. With ``labels`` ((points, species) presences), the blocks are dealt by
    :func:`stratified_blocks` instead, so each species' presences are shared evenly between folds.

    >>> folds = spatial_folds(np.arange(100.0) % 10, np.zeros(100), n_folds=5, seed=0)
    >>> np.bincount(folds).tolist()
    [20, 20, 20, 20, 20]
    """
    if n_folds < 2:
        raise DataError(f"cross-validation needs at least 2 folds, got {n_folds=}")
    n_blocks, block_of = _blocks(lon, lat, block_size)
    if n_blocks < n_folds:
        raise DataError(
            f"only {n_blocks} spatial block(s) of {block_size} degrees hold plots, fewer than {n_folds} folds: "
            "pass a smaller --block-size or fewer --folds"
        )
    if labels is not None:
        fold_names = np.arange(n_folds)
        part = stratified_blocks(block_of, labels, np.full(n_folds, 1 / n_folds), seed=seed)
        return _nonempty_parts(fold_names[part[block_of]], block_of, tuple(fold_names.tolist()))
    counts = np.bincount(block_of, minlength=n_blocks)
    order = np.random.default_rng(seed).permutation(n_blocks)
    order = order[np.argsort(-counts[order], kind="stable")]  # largest first; ties in shuffled order
    size = np.zeros(n_folds, dtype=np.int64)
    fold_of_block = np.empty(n_blocks, dtype=np.int64)
    for block in order:
        fold = int(np.argmin(size))
        fold_of_block[block] = fold
        size[fold] += counts[block]
    return fold_of_block[block_of]


def fold_split(
    folds: np.ndarray,
    k: int,
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    block_size: float = 1.0,
    val_fraction: float = 0.15,
    seed: int = 42,
    labels: Any = None,
) -> np.ndarray:
    """The split of cross-validation fold ``k``: its points test, ``val_fraction`` of the others
    validation (by whole spatial blocks), the rest train.

    >>> folds = spatial_folds(np.arange(100.0) % 10, np.zeros(100), n_folds=5, seed=0)
    >>> split = fold_split(folds, 0, np.arange(100.0) % 10, np.zeros(100), val_fraction=0.25)
    >>> [int((split == s).sum()) for s in SPLITS]
    [60, 20, 20]
    """
    folds = np.asarray(folds)
    if not 0 <= k <= int(folds.max()):
        raise DataError(f"fold {k} does not exist: folds are 0 to {int(folds.max())}")
    test = folds == k
    split = np.where(test, "test", "train").astype("<U5")
    split = _validation_from(~test, np.asarray(lon), np.asarray(lat), split, block_size=block_size,
                             val_fraction=val_fraction, seed=seed, labels=labels)
    return _check_nonempty(split, f"fold {k}")
