"""Evaluation under any predictor subset: per-species AUC and TSS, and their means.

A subset is a list of predictor or group names (``None`` = all predictors). MaskSDM masks every
predictor outside the subset; a model trained without masking (``train.masking = "none"``) instead
gets the hidden predictors imputed (see :mod:`masksdm.evaluation.imputation`, default: the training mean).
Species are evaluated when they have both presences and absences in the split; a species with
fewer than ``min_class`` presences or absences there (:data:`~masksdm.metrics.MIN_CLASS`, 5) is
*thin*: its scores are reported but left out of the means unless ``keep_thin``. Each AUC comes with
a DeLong interval, each mean AUC with a bootstrap interval over species, and each probability with
its Brier score and a reliability curve (calibration: do 30 % predictions come true 30 % of the time?).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from masksdm.data.plotdata import PlotData
from masksdm.data.predictors import (
    column_mask,
    input_widths,
    predictor_groups,
    resolve_subset,
    subset_mask,
)
from masksdm.errors import DataError
from masksdm.evaluation.imputation import Imputer
from masksdm.metrics import MIN_CLASS, mean_interval, reliability_curve
from masksdm.model.checkpoint import ModelCard, split_arrays
from masksdm.model.inference import model_inputs, predict_logits
from masksdm.model.network import Network
from masksdm.scoring import is_presence_only, scorable, species_scores
from masksdm.workspace import Workspace

__all__ = [
    "POOLED", "Evaluation", "default_subsets", "evaluate", "evaluate_arrays", "evaluate_plots", "reliability_by_species",
    "subset_logits",
]

#: The ``species`` value of the reliability curve pooled over all scored species.
POOLED = "(all species)"


def default_subsets(card_or_predictors) -> dict[str, list[str] | None]:
    """Each predictor group alone, then all predictors."""
    predictors = getattr(card_or_predictors, "predictors", card_or_predictors)
    subsets: dict[str, list[str] | None] = {g: [g] for g in predictor_groups(predictors)}
    subsets["all"] = None
    return subsets


def subset_logits(
    model: Network,
    card: ModelCard,
    x: np.ndarray,
    subset: Sequence[str] | None,
    *,
    imputer: Imputer | None = None,
    batch_size: int = 4096,
) -> np.ndarray:
    """Logits (N, S) from model inputs ``x`` (N, columns) using only ``subset``.

    The model's own training subset (``train.use``) is always respected.
    """
    visible = subset_mask(subset, card.predictors) & card.allowed  # the imputer fills the others
    if card.config.train.masking == "random" or imputer is None:
        inputs, keep = model_inputs(x, visible, card.config.train.masking, input_widths(card.predictors))
        return predict_logits(model, inputs, keep, batch_size=batch_size)
    copies = imputer.impute(x, column_mask(visible, card.predictors))  # (m, N, columns)
    prob_sum = np.zeros((x.shape[0], model.n_species), dtype=np.float64)
    for xc in copies:  # predictions averaged over the imputed copies, on the probability scale
        prob_sum += 1 / (1 + np.exp(-predict_logits(model, xc, batch_size=batch_size).astype(np.float64)))
    p = np.clip(prob_sum / len(copies), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p)).astype(np.float32)


def reliability_by_species(prob: np.ndarray, y: np.ndarray, species: Sequence[str], *, bins: int = 10) -> pd.DataFrame:
    """Reliability curve of every species at once: per (species, bin of predicted probability),
    ``mean_predicted``, ``observed`` (share of presences) and ``n``; empty bins left out."""
    index = np.clip((prob * bins).astype(np.int64), 0, bins - 1)
    frames = []
    for b in range(bins):
        inside = index == b
        n = inside.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            frames.append(pd.DataFrame({
                "species": np.asarray(species, dtype=object), "bin_low": b / bins, "bin_high": (b + 1) / bins,
                "mean_predicted": np.where(inside, prob, 0.0).sum(axis=0) / n,
                "observed": (inside & y).sum(axis=0) / n, "n": n,
            })[n > 0])
    out = pd.concat(frames, ignore_index=True)
    order = pd.Categorical(out["species"], categories=list(dict.fromkeys(species)), ordered=True)
    return out.assign(_o=order).sort_values(["_o", "bin_low"], kind="stable").drop(columns="_o").reset_index(drop=True)


@dataclass
class Evaluation:
    """Results of :func:`evaluate`.

    Attributes:
        summary: one row per subset: ``subset``, ``n_predictors``, ``n_species`` (scored: in the
            means), ``n_thin`` (evaluable but thin, left out unless ``keep_thin``), ``mean_auc``
            with ``auc_low``/``auc_high`` (its bootstrap interval over species; with one species,
            that species' DeLong interval), ``mean_tss`` (max TSS on the split),
            ``mean_tss_val_threshold`` (TSS at the thresholds chosen on validation, with all
            predictors) and ``brier`` (mean Brier score).
        per_species: one row per (subset, species): ``auc``, ``auc_low``, ``auc_high`` (DeLong),
            ``tss``, ``threshold``, ``brier``, ``n_presences``, ``n_absences``, ``thin``.
        reliability: one row per (subset, species, probability bin): ``mean_predicted``,
            ``observed``, ``n`` (:func:`reliability_by_species`), and the curve pooled over the
            scored species under ``species`` = :data:`POOLED`.
        level: the intervals' confidence level.
    """

    summary: pd.DataFrame
    per_species: pd.DataFrame
    reliability: pd.DataFrame | None = None
    level: float = 0.95


def evaluate(
    model: Network,
    card: ModelCard,
    workspace: Workspace,
    *,
    split: str = "test",
    subsets: Mapping[str, Sequence[str] | None] | None = None,
    imputer: Imputer | None = None,
    batch_size: int = 4096,
    min_class: int = MIN_CLASS,
    keep_thin: bool = False,
    level: float = 0.95,
) -> Evaluation:
    """Evaluate a model on a workspace split under each predictor subset (see the module docstring).

    Raises:
        DataError: every evaluable species is thin (and ``keep_thin`` is off): the split is too small
            to score, so the error suggests smaller blocks or k-fold cross-validation.
    """
    x, y = split_arrays(card, workspace, split)
    return evaluate_arrays(model, card, x, y, background=workspace.background_mask(split), what=f"{split} plots",
                           subsets=subsets, imputer=imputer, batch_size=batch_size, min_class=min_class,
                           keep_thin=keep_thin, level=level)


def evaluate_plots(
    model: Network,
    card: ModelCard,
    data: PlotData,
    *,
    rasters: Mapping[str, str | Path] | None = None,
    subsets: Mapping[str, Sequence[str] | None] | None = None,
    min_class: int = MIN_CLASS,
    keep_thin: bool = False,
    level: float = 0.95,
) -> Evaluation:
    """Evaluate a model on plots outside its workspace, e.g. a presence/absence survey used to test
    a model trained on presence-only records: each predictor is read from ``rasters`` (name ->
    raster, e.g. the workspace's ``meta["rasters"]``) at the plots, else taken from the plot table
    (``Longitude``/``Latitude`` from the coordinates); a predictor found in neither is masked.
    Species of the model absent from the table are absent everywhere in it."""
    from masksdm.data.rasters import extract_rasters

    plots = data.plots.reset_index(drop=True)
    lon, lat = plots["lon"].to_numpy(dtype=np.float64), plots["lat"].to_numpy(dtype=np.float64)
    from_rasters = {n: r for n, r in (rasters or {}).items() if n in card.predictor_names}
    values = extract_rasters(from_rasters, lon, lat, progress=False) if from_rasters else pd.DataFrame(index=plots.index)
    columns = []
    for p in card.predictors:
        if p.is_embedding:
            columns.append(np.full((len(plots), p.width), np.nan))
        elif p.name in values.columns:
            columns.append(values[p.name].to_numpy(dtype=np.float64)[:, None])
        elif p.name in plots.columns:
            columns.append(pd.to_numeric(plots[p.name], errors="coerce").to_numpy(dtype=np.float64)[:, None])
        elif p.name in ("Longitude", "Latitude"):
            columns.append((lon if p.name == "Longitude" else lat)[:, None])
        else:
            columns.append(np.full((len(plots), 1), np.nan))
    x = card.features(np.concatenate(columns, axis=1))
    index = pd.Index(plots["plot_id"].astype(str))
    y = np.zeros((len(plots), len(card.species)), dtype=bool)
    occ = data.occurrences[data.occurrences["species"].astype(str).isin(card.species)]
    rows = index.get_indexer(occ["plot_id"].astype(str))
    cols = np.array([card.species.index(str(s)) for s in occ["species"]], dtype=np.int64)
    y[rows[rows >= 0], cols[rows >= 0]] = True
    return evaluate_arrays(model, card, x, y, what="plots of the table", subsets=subsets, min_class=min_class,
                           keep_thin=keep_thin, level=level)


def evaluate_arrays(
    model: Network,
    card: ModelCard,
    x: np.ndarray,
    y: np.ndarray,
    *,
    background: np.ndarray | None = None,
    what: str = "plots",
    subsets: Mapping[str, Sequence[str] | None] | None = None,
    imputer: Imputer | None = None,
    batch_size: int = 4096,
    min_class: int = MIN_CLASS,
    keep_thin: bool = False,
    level: float = 0.95,
) -> Evaluation:
    """:func:`evaluate` on model inputs ``x`` (N, columns) and labels ``y`` (N, S), with
    ``background`` marking background rows of presence-only data."""
    background = np.zeros(len(y), dtype=bool) if background is None else np.asarray(background, dtype=bool)
    presence_only = is_presence_only(background)
    subsets = default_subsets(card) if subsets is None else subsets
    thresholds = None
    if card.thresholds is not None:
        thresholds = np.array([np.nan if t is None else t for t in card.thresholds], dtype=np.float64)
    ok = scorable(y, background, 1)
    thin = ok & ~scorable(y, background, min_class)
    counted = ok if keep_thin else ok & ~thin
    if ok.any() and not counted.any():
        against = "background points" if presence_only else "absences"
        raise DataError(
            f"every species has fewer than {min_class} presences or {against} among the {len(y)} {what}, too "
            "few for a score to mean much: prepare with smaller blocks (--block-size) or a larger --test-fraction, "
            "score by k-fold cross-validation (masksdm cv), or keep them anyway (--keep-thin)"
        )
    species = np.asarray(card.species, dtype=object)
    rows, frames, curves = [], [], []
    for name, subset in subsets.items():
        logits = subset_logits(model, card, x, subset, imputer=imputer, batch_size=batch_size)
        prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
        scores = species_scores(prob, y, background=background, thresholds=thresholds, level=level)
        auc, low, high = (scores[c].to_numpy() for c in ("auc", "auc_low", "auc_high"))
        if counted.sum() == 1:  # one species: its own interval
            only = int(np.flatnonzero(counted)[0])
            mean, m_low, m_high = float(auc[only]), float(low[only]), float(high[only])
        else:
            mean, m_low, m_high = mean_interval(auc[counted], level=level) if counted.any() else (np.nan,) * 3
        row = {
            "subset": name,
            "n_predictors": len(resolve_subset(subset, card.predictors)),
            "n_species": int(counted.sum()),
            "n_thin": int(thin.sum()),
            "mean_auc": mean, "auc_low": m_low, "auc_high": m_high,
            "mean_tss": _mean(scores["tss"].to_numpy()[counted]),
            "mean_tss_val_threshold": _mean(scores["tss_val_threshold"].to_numpy()[counted]),
            "brier": _mean(scores["brier"].to_numpy()[counted]),
        }
        if presence_only:
            row["boyce"] = _mean(scores["boyce"].to_numpy()[counted])
        rows.append(row)
        frame = scores.drop(columns=["tss_val_threshold"] + ([] if presence_only else ["boyce"]))
        frames.append(frame.assign(subset=name, species=card.species, thin=thin)[
            ["subset", "species", *frame.columns, "thin"]])
        if not presence_only:  # calibration needs true absences
            pooled = reliability_curve(prob[:, counted], y[:, counted]).assign(species=POOLED)
            curves.append(pd.concat([pooled, reliability_by_species(prob[:, ok], y[:, ok], species[ok])],
                                    ignore_index=True).assign(subset=name))
    reliability = None
    if curves:
        reliability = pd.concat(curves, ignore_index=True)
        reliability = reliability[["subset", "species", *[c for c in reliability.columns if c not in ("subset", "species")]]]
    return Evaluation(summary=pd.DataFrame(rows), per_species=pd.concat(frames, ignore_index=True),
                      reliability=reliability, level=level)


def _mean(values: np.ndarray) -> float:
    finite = np.isfinite(values)
    return float(values[finite].mean()) if finite.any() else float("nan")
