"""How plots are split into training, validation and test plots.

* :func:`spatial_block_split` (the default, as in the MaskSDM paper): whole spatial blocks of
  ``block_size`` degrees go to one split, so test plots are spatially separated from training plots.
* :func:`split_from_column`: the user's own labels (``train`` / ``val`` / ``test``), e.g. a
  temporal split; without ``val`` labels, validation blocks are drawn from the training plots.
* :func:`split_from_rule`: a rule such as ``"year >= 2012"`` marks the test plots; validation
  blocks are drawn from the others.
* :func:`spatial_folds`: spatial blocks dealt into k folds of about equal size, for
  cross-validation (each fold is the test split once).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from masksdm.errors import DataError

__all__ = ["SPLITS", "fold_split", "spatial_block_split", "spatial_folds", "split_from_column", "split_from_rule"]

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


def spatial_block_split(
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    block_size: float = 1.0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    seed: int = 42,
) -> np.ndarray:
    """Assign each point to ``"train"``, ``"val"`` or ``"test"`` by whole spatial blocks.

    Blocks of ``block_size`` degrees are shuffled with ``seed``; blocks go to test until it holds
    ``test_fraction`` of the points, then to validation until it holds ``val_fraction``, the rest to
    train. Every block lies entirely in one split.

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
    counts = np.bincount(block_of, minlength=n_blocks)
    order = np.random.default_rng(seed).permutation(n_blocks)
    cumulative = np.cumsum(counts[order]) / counts.sum()
    start = np.concatenate([[0.0], cumulative[:-1]])  # share of points before each block
    assigned = np.where(start < test_fraction, 0, np.where(start < test_fraction + val_fraction, 1, 2))
    assigned[-1] = 2  # the last block always trains, so train is never empty
    split_of_block = np.empty(n_blocks, dtype=np.int64)
    split_of_block[order] = assigned
    return np.array(["test", "val", "train"])[split_of_block[block_of]]


def _validation_from(train: np.ndarray, lon: np.ndarray, lat: np.ndarray, split: np.ndarray, *,
                     block_size: float, val_fraction: float, seed: int) -> np.ndarray:
    """``split`` with ``val_fraction`` of the ``train`` points moved to validation, by whole blocks."""
    if not 0 < val_fraction < 1:
        raise DataError(f"validation plots are drawn from the training plots: need 0 < val_fraction < 1, got {val_fraction}")
    inner = spatial_block_split(lon[train], lat[train], block_size=block_size, test_fraction=val_fraction,
                                val_fraction=0.0, seed=seed)
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
) -> np.ndarray:
    """The user's split labels, one per point: ``train``, ``val`` or ``test`` (also ``training``,
    ``validation``, ``testing``, any case). Without any ``val`` label, ``val_fraction`` of the
    training points become validation points, by whole spatial blocks.

    >>> split = split_from_column(["train"] * 8 + ["Test"] * 2, np.arange(10.0), np.zeros(10), val_fraction=0.25)
    >>> [int((split == s).sum()) for s in SPLITS], split[-2:].tolist()
    ([6, 2, 2], ['test', 'test'])
    """
    text = pd.Series(np.asarray(values, dtype=object)).astype("string").str.strip().str.lower()
    labels = text.map(_ALIASES)
    bad = labels.isna()
    if bad.any():
        shown = sorted(set(text[bad].fillna("<missing>").tolist()))[:5]
        raise DataError(
            f"{int(bad.sum())} plots have a split label other than train / val / test (e.g. {shown}): "
            "give every plot one of these labels"
        )
    split = labels.to_numpy(dtype="<U5")
    if not (split == "val").any():
        split = _validation_from(split == "train", np.asarray(lon), np.asarray(lat), split,
                                 block_size=block_size, val_fraction=val_fraction, seed=seed)
    return _check_nonempty(split, "the split column")


def split_from_rule(
    plots: pd.DataFrame,
    rule: str,
    *,
    block_size: float = 1.0,
    val_fraction: float = 0.15,
    seed: int = 42,
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
                             block_size=block_size, val_fraction=val_fraction, seed=seed)
    return _check_nonempty(split, f"the test rule {rule!r}")


def spatial_folds(
    lon: np.ndarray, lat: np.ndarray, *, n_folds: int = 5, block_size: float = 1.0, seed: int = 42
) -> np.ndarray:
    """Fold index (0 .. n_folds - 1) of each point: shuffled spatial blocks dealt, largest first,
    to the fold that holds the fewest points so far, so folds are of about equal size and every
    block lies in one fold.

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
                             val_fraction=val_fraction, seed=seed)
    return _check_nonempty(split, f"fold {k}")
