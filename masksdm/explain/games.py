"""Shapley values of MaskSDM's predictors, by masking.

The value of a coalition S of players (predictor groups, or single predictors) is the model's
output with only the predictors of S visible: every other predictor gets the mask token. There is
no background data: masking is the model's own notion of absence, and because MaskSDM is trained
with random masks, v(S) approximates the prediction of a model trained on S alone (Zbinden et al.
2025, "MaskSDM with Shapley values to improve flexibility, robustness and explainability in species
distribution modelling", Methods in Ecology and Evolution, doi 10.1111/2041-210x.70200).

Two games:

* :class:`LocalGame`: v_x(S) per site and species, the presence probability (or logit);
* :class:`MetricGame`: v(S) over a data split, the AUC x 100 per species (or the mean predicted
  probability per species), averaged over species unless asked per species.

Every coalition costs one batched pass over the sites with the masked tokens collapsed into one
(:meth:`masksdm.model.network.MaskSDM.collapsed_trunk`), and only the species asked for go through the
head. :func:`local_shapley` and :func:`global_shapley` pick the estimator: exact for up to
:data:`MAX_EXACT_PLAYERS` players, antithetic permutation sampling (or KernelSHAP) beyond. The
estimators themselves are in :mod:`masksdm.explain.core`.

Efficiency holds on the scale of the game: local values on the probability scale sum to
``p(all) - p(none)``; on the logit scale (``scale="logit"``) to the difference of logits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from masksdm.data.predictors import Predictor, predictor_groups, subset_mask
from masksdm.errors import ConfigError, DataError
from masksdm.explain.core import ShapleyResult, exact_shapley
from masksdm.explain.sampling import sampled_shapley
from masksdm.metrics import background_auc, roc_auc
from masksdm.model.checkpoint import ModelCard
from masksdm.model.inference import predict_logits_tensor
from masksdm.model.network import Network
from masksdm.scoring import is_presence_only, scorable

__all__ = [
    "MAX_EXACT_PLAYERS",
    "LocalGame",
    "MetricGame",
    "Players",
    "compare_estimators",
    "estimate_shapley",
    "global_shapley",
    "local_shapley",
    "resolve_players",
]

#: ``method="auto"`` is exact up to this many players (2**12 = 4,096 coalitions), sampled beyond.
MAX_EXACT_PLAYERS = 12

#: Players: ``"groups"``, ``"predictors"``, a list of group/predictor names (one player each), or
#: a mapping from player name to the group/predictor names it holds.
Players = str | Sequence[str] | Mapping[str, Sequence[str]]


def resolve_players(
    players: Players | None, predictors: Sequence[Predictor], allowed: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Map each player to its (P,) bool mask of predictors.

    Predictors outside every player stay masked in every coalition. With ``allowed`` (P,) (a
    model's :attr:`~masksdm.model.checkpoint.ModelCard.allowed`), predictors the model never uses
    are no one's: the default groups or predictors without any are left out, a named player
    without any is an error.

    >>> ps = [Predictor("bio_1", "WorldClim"), Predictor("bio_12", "WorldClim"), Predictor("Slope", "Topography")]
    >>> {k: v.tolist() for k, v in resolve_players("groups", ps).items()}
    {'WorldClim': [True, True, False], 'Topography': [False, False, True]}
    >>> list(resolve_players(["bio_12", "Topography"], ps))
    ['bio_12', 'Topography']
    """
    if players is None or players == "groups":
        spec: Mapping[str, Sequence[str]] = {g: [g] for g in predictor_groups(predictors)}
    elif players == "predictors":
        spec = {p.name: [p.name] for p in predictors}
    elif isinstance(players, str):
        spec = {players: [players]}
    elif isinstance(players, Mapping):
        spec = players
    else:
        spec = {name: [name] for name in players}
    if not spec:
        raise ConfigError("no players given: name predictor groups or predictors, or use 'groups'")
    masks = {name: subset_mask(list(members), predictors) for name, members in spec.items()}
    for name, mask in masks.items():
        if not mask.any():
            raise ConfigError(f"player {name!r} holds no predictor: give it group or predictor names")
    if allowed is not None:
        masks = {name: mask & allowed for name, mask in masks.items()}
        unused = [name for name, mask in masks.items() if not mask.any()]
        if unused and players not in (None, "groups", "predictors"):
            raise ConfigError(f"players {unused} hold only predictors the model was trained without (train.use)")
        masks = {name: mask for name, mask in masks.items() if mask.any()}
        if not masks:
            raise ConfigError("no player holds a predictor the model uses (train.use)")
    owners = np.stack(list(masks.values())).sum(axis=0)
    if (owners > 1).any():
        shared = [p.name for p, n in zip(predictors, owners, strict=True) if n > 1]
        raise ConfigError(
            f"predictors {shared} belong to several players: each predictor may be in one player only "
            "(e.g. give 'WorldClim' or its single predictors, not both)"
        )
    return masks


def _species(card: ModelCard, species: str | Sequence[str] | None) -> np.ndarray:
    if species is None:
        return np.arange(len(card.species))
    return card.species_indices(species)


def _default_batch(device: torch.device) -> int:
    """Rows per forward pass: large on a GPU; on a CPU small batches keep the tokens in cache."""
    return 16_384 if device.type == "cuda" else 512


def _coalition_logits(
    model: Network,
    x: torch.Tensor,
    coalitions: np.ndarray,
    player_masks: np.ndarray,
    species: np.ndarray,
    *,
    batch_size: int,
    precision: str,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Logits of every site under each coalition: yields (coalition indices, (g, N, n_species)).

    Several coalitions share one forward pass when the sites are fewer than ``batch_size`` (the
    sampled estimators evaluate thousands of coalitions), but only coalitions with the same number
    of visible predictors, so that no row is padded (each row runs on its visible tokens plus one
    collapsed mask token). The empty coalition is one forward pass of one row: every site has the
    same input, so its predictions are exactly tied (a batched pass can differ in the last bit
    between rows, which would break the ties an AUC relies on).
    """
    visible = (coalitions.astype(np.float32) @ player_masks.astype(np.float32)) > 0  # (C, P)
    n = len(x)
    per_pass = max(1, batch_size // max(n, 1))
    sizes = visible.sum(axis=1)
    passes = [
        same[start : start + per_pass]
        for size in np.unique(sizes)
        for same in [np.flatnonzero(sizes == size)]
        for start in range(0, len(same), per_pass)
    ]
    for chosen in passes:
        if not visible[chosen].any():  # nothing known: every site gets the same prediction, exactly
            logits = predict_logits_tensor(model, x[:1], torch.as_tensor(visible[chosen[0]]), batch_size=1,
                                           species=species, precision=precision)
            yield chosen, logits.expand(len(chosen), n, -1)
            continue
        if len(chosen) == 1:  # one subset for every row: the model tokenises only its predictors
            keep, rows = torch.as_tensor(visible[chosen[0]]), x
        else:
            keep, rows = torch.as_tensor(visible[chosen]).repeat_interleave(n, dim=0), x.repeat(len(chosen), 1)
        logits = predict_logits_tensor(model, rows, keep, batch_size=batch_size, species=species, precision=precision)
        yield chosen, logits.view(len(chosen), n, -1)


class LocalGame:
    """Per-site values v_x(S): (C, N, n_species) for C coalitions.

    Args:
        model: the trained network (on its device).
        x: normalised predictors (N, P); NaN is masked whatever the coalition.
        player_masks: (k, P) bool, predictors of each player; predictors of no player stay masked.
        species: (n_species,) output indices of the species wanted.
        scale: ``"probability"`` (default, as the MaskSDM paper) or ``"logit"``.
        batch_size: sites per forward pass (default 512 on CPU, 16,384 on CUDA).
        precision: ``"auto"`` (bf16 on CUDA), ``"fp32"`` or ``"bf16"``.
    """

    def __init__(
        self,
        model: Network,
        x: np.ndarray,
        player_masks: np.ndarray,
        species: np.ndarray,
        *,
        scale: str = "probability",
        batch_size: int | None = None,
        precision: str = "auto",
    ) -> None:
        if scale not in ("probability", "logit"):
            raise ConfigError(f"scale must be 'probability' or 'logit', got {scale!r}")
        device = next(model.parameters()).device
        self.model, self.player_masks, self.scale = model, np.asarray(player_masks, bool), scale
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float32)).to(device)
        self.species = np.asarray(species)
        self.batch_size, self.precision = batch_size or _default_batch(device), precision

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        out = np.empty((len(coalitions), len(self.x), len(self.species)), dtype=np.float64)
        for chosen, logits in _coalition_logits(
            self.model, self.x, coalitions, self.player_masks, self.species,
            batch_size=self.batch_size, precision=self.precision,
        ):
            values = torch.sigmoid(logits) if self.scale == "probability" else logits
            out[chosen] = values.double().cpu().numpy()
        return out


class MetricGame:
    """Values over a data split: (C,) or, with ``per_species``, (C, n_species).

    Args:
        model, x, player_masks, batch_size, precision: as :class:`LocalGame`.
        labels: (N, n_species) presence/absence of the species wanted (metric ``"auc"``).
        species: (n_species,) output indices of those species.
        metric: ``"auc"``: ROC-AUC x 100 (the MaskSDM paper's global value); ``"probability"``:
            mean predicted probability over the sites.
        per_species: one value per species instead of their mean. The mean's Shapley values are
            the mean of the per-species ones (Shapley values are linear in the game).
        background: (N,) bool, presence-only data: the background rows; each species' AUC is
            then its presences against the background (:mod:`masksdm.scoring`).
    """

    def __init__(
        self,
        model: Network,
        x: np.ndarray,
        player_masks: np.ndarray,
        species: np.ndarray,
        labels: np.ndarray | None = None,
        *,
        metric: str = "auc",
        per_species: bool = False,
        batch_size: int | None = None,
        precision: str = "auto",
        background: np.ndarray | None = None,
    ) -> None:
        if metric not in ("auc", "probability"):
            raise ConfigError(f"metric must be 'auc' or 'probability', got {metric!r}")
        if metric == "auc" and labels is None:
            raise ConfigError("metric 'auc' needs the labels of the sites")
        device = next(model.parameters()).device
        self.model, self.player_masks = model, np.asarray(player_masks, bool)
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float32)).to(device)
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels, dtype=bool)).to(device)
        self.species, self.metric, self.per_species = np.asarray(species), metric, per_species
        self.batch_size, self.precision = batch_size or _default_batch(device), precision
        self.background = (torch.as_tensor(np.array(background, dtype=bool)).to(device)
                           if is_presence_only(background) else None)

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        shape = (len(coalitions), len(self.species)) if self.per_species else (len(coalitions),)
        out = np.empty(shape, dtype=np.float64)
        for chosen, logits in _coalition_logits(
            self.model, self.x, coalitions, self.player_masks, self.species,
            batch_size=self.batch_size, precision=self.precision,
        ):
            for c, scores in zip(chosen, logits, strict=True):
                if self.metric == "auc":
                    assert self.labels is not None
                    values = 100 * (roc_auc(scores, self.labels) if self.background is None
                                    else background_auc(scores, self.labels, self.background))
                else:
                    values = torch.sigmoid(scores).double().mean(dim=0).cpu().numpy()
                out[c] = values if self.per_species else np.mean(values)
        return out


def estimate_shapley(
    game,
    players: Sequence[str],
    *,
    method: str = "auto",
    target_se: float | None = None,
    max_evaluations: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> ShapleyResult:
    """Exact Shapley values, or sampled ones for many players.

    ``method``: ``"auto"`` (exact up to :data:`MAX_EXACT_PLAYERS` players, else permutation),
    ``"exact"``, ``"permutation"`` (antithetic permutation sampling) or ``"kernel"`` (KernelSHAP).
    ``target_se`` and ``max_evaluations`` stop the sampled estimators.
    """
    if method == "auto":
        method = "exact" if len(players) <= MAX_EXACT_PLAYERS else "permutation"
    if method == "exact":
        return exact_shapley(game, players, progress=progress)
    if method in ("permutation", "kernel"):
        return sampled_shapley(
            game, players, method=method, target_se=target_se, max_evaluations=max_evaluations,
            seed=seed, progress=progress,
        )
    raise ConfigError(f"unknown Shapley method {method!r}: use auto, exact, permutation or kernel")


def local_shapley(
    model: Network,
    card: ModelCard,
    x: np.ndarray,
    species: str | Sequence[str],
    *,
    players: Players | None = "groups",
    scale: str = "probability",
    method: str = "auto",
    target_se: float | None = None,
    max_evaluations: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    seed: int = 0,
    progress: bool = False,
) -> ShapleyResult:
    """Local Shapley values per site and species: values (N, n_species, k).

    Args:
        model, card: from :func:`masksdm.model.checkpoint.load_checkpoint`.
        x: normalised predictors (N, P) in the card's order (``card.features(raw)``); NaN is masked.
        species: one species name or several.
        players: see :func:`resolve_players` (default: the predictor groups).
        scale: ``"probability"`` or ``"logit"``.
        method, target_se, max_evaluations, seed: see :func:`estimate_shapley`.

    Example:
        >>> result = local_shapley(model, card, card.features(raw), "Fagus sylvatica")  # doctest: +SKIP
        >>> result.values.shape  # (sites, species, groups)  # doctest: +SKIP
        (100, 1, 6)
    """
    masks = resolve_players(players, card.predictors, card.allowed)
    game = LocalGame(
        model, _check_x(x, card), np.stack(list(masks.values())), _species(card, species),
        scale=scale, batch_size=batch_size, precision=precision,
    )
    return estimate_shapley(
        game, list(masks), method=method, target_se=target_se, max_evaluations=max_evaluations,
        seed=seed, progress=progress,
    )


def global_shapley(
    model: Network,
    card: ModelCard,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    players: Players | None = "groups",
    metric: str = "auc",
    species: str | Sequence[str] | None = None,
    per_species: bool = False,
    method: str = "auto",
    target_se: float | None = None,
    max_evaluations: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    seed: int = 0,
    progress: bool = False,
    background: np.ndarray | None = None,
) -> tuple[ShapleyResult, list[str]]:
    """Global Shapley values of a metric over sites: values (k,), or (n_species, k) per species.

    Args:
        x: normalised predictors (N, P) of the sites (e.g. ``workspace.features("test")``).
        labels: (N, S) presence/absence of ALL the model's species, in the card's order (needed
            for ``metric="auc"``).
        metric: ``"auc"`` (mean ROC-AUC x 100 over species, as the MaskSDM paper) or
            ``"probability"`` (mean predicted probability).
        species: restrict to these species (default: all; for AUC, those with both presences and
            absences among the sites).
        per_species: values per species (rows of ``values``) instead of for their mean.
        background: (N,) bool, presence-only data (``workspace.background_mask(split)``): AUC of
            each species' presences against these background rows.

    Returns:
        The result and the names of the species used (in the order of the rows when per species).
    """
    masks = resolve_players(players, card.predictors, card.allowed)
    chosen = _species(card, species)
    y = None
    if metric == "auc":
        if labels is None:
            raise ConfigError("metric 'auc' needs labels: the presence/absence of the species at the sites")
        labels = np.asarray(labels, dtype=bool)
        if labels.shape != (len(x), len(card.species)):
            raise DataError(
                f"labels have shape {labels.shape}, expected (sites, species) = {(len(x), len(card.species))}"
            )
        chosen = chosen[scorable(labels[:, chosen], background, 1)]
        if not len(chosen):
            raise DataError("no species has both presences and absences (or background) among these sites: "
                            "AUC is undefined")
        y = labels[:, chosen]
    game = MetricGame(
        model, _check_x(x, card), np.stack(list(masks.values())), chosen, y,
        metric=metric, per_species=per_species, batch_size=batch_size, precision=precision, background=background,
    )
    result = estimate_shapley(
        game, list(masks), method=method, target_se=target_se, max_evaluations=max_evaluations,
        seed=seed, progress=progress,
    )
    return result, [card.species[i] for i in chosen]


def compare_estimators(
    model: Network,
    card: ModelCard,
    x: np.ndarray,
    species: str,
    *,
    players: Players,
    budgets: Sequence[int] = (64, 256, 1024),
    methods: Sequence[str] = ("permutation", "kernel"),
    repeats: int = 3,
    batch_size: int | None = None,
    precision: str = "auto",
) -> pd.DataFrame:
    """Accuracy and time of sampled Shapley values against exact ones, on the local values of one
    species at the sites ``x`` (probability scale).

    Exact values need 2**k coalitions; the sampled estimators stop after ``budget`` coalitions
    (each coalition is one pass over the sites), ``repeats`` times with different seeds.

    Args:
        players: at most :data:`MAX_EXACT_PLAYERS` players (see :func:`resolve_players`).
        budgets: coalition budgets of the sampled estimators.
        methods: ``"permutation"`` and/or ``"kernel"``.
        repeats: runs per method and budget (seeds 0, 1, ...).

    Returns:
        One row per run: ``method``, ``budget``, ``seed``, ``n_evaluations`` (coalitions used),
        ``seconds``, ``rmse`` and ``max_error`` against the exact values (over sites and players),
        and ``mean_se`` (the mean reported standard error; NaN for exact).
    """
    masks = resolve_players(players, card.predictors, card.allowed)
    if len(masks) > MAX_EXACT_PLAYERS:
        raise ConfigError(f"{len(masks)} players: exact values (the reference) take at most {MAX_EXACT_PLAYERS}")
    game = LocalGame(model, _check_x(x, card), np.stack(list(masks.values())), _species(card, species),
                     batch_size=batch_size, precision=precision)
    names = list(masks)
    start = time.perf_counter()
    exact = exact_shapley(game, names)
    rows = [{"method": "exact", "budget": 2 ** len(names), "seed": 0, "n_evaluations": exact.n_evaluations,
             "seconds": time.perf_counter() - start, "rmse": 0.0, "max_error": 0.0, "mean_se": np.nan}]
    for method in methods:
        for budget in budgets:
            for seed in range(repeats):
                start = time.perf_counter()
                estimate = sampled_shapley(game, names, method=method, max_evaluations=int(budget), seed=seed)
                error = estimate.values - exact.values
                rows.append({
                    "method": method, "budget": int(budget), "seed": seed, "n_evaluations": estimate.n_evaluations,
                    "seconds": time.perf_counter() - start, "rmse": float(np.sqrt(np.mean(error**2))),
                    "max_error": float(np.abs(error).max()),
                    "mean_se": float(np.mean(estimate.std_errors)) if estimate.std_errors is not None else np.nan,
                })
    return pd.DataFrame(rows)


def _check_x(x: np.ndarray, card: ModelCard) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != card.n_columns:
        raise DataError(
            f"predictors have shape {x.shape}, expected (sites, {card.n_columns}) in the model's order "
            f"({', '.join(card.predictor_names[:4])}, ...): build them with card.features(raw)"
        )
    return x
