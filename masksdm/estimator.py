"""A scikit-learn estimator for users who already have a table of predictors and species.

:class:`MaskSDMClassifier` trains one MaskSDM network for every species column at once from a
plain table (no workspace), and predicts from any subset of its predictors: a NaN value, a column
named in ``mask=`` or left out of ``use=`` is hidden from the model by its mask token::

    from masksdm import MaskSDMClassifier

    clf = MaskSDMClassifier(epochs=50).fit(X, Y)     # X: predictors, Y: one 0/1 column per species
    p = clf.predict_proba(X_new)                     # (rows, species) presence probabilities
    p_climate = clf.predict_proba(X_new, use=["WorldClim"])  # climate predictors only
    present = clf.predict(X_new)                     # 0/1 at each species' max-TSS threshold
    phi = clf.shapley(X_new, species="Fagus sylvatica").values  # (rows, 1, groups)
    clf.save("models/table")                         # safetensors + JSON, never pickle
    clf = MaskSDMClassifier.load("models/table")

Training goes through :func:`masksdm.model.training.train_arrays`; the fitted model is a normal
MaskSDM checkpoint (``model_`` and ``card_``), so every other tool of the package works with it.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted

from masksdm._io import write_json
from masksdm.data.predictors import UNGROUPED, Predictor, catalogue_entry, subset_mask
from masksdm.errors import CheckpointError, ConfigError, DataError, OutputExistsError
from masksdm.explain.games import Players, ShapleyResult, local_shapley
from masksdm.metrics import evaluable_species, mean_auc
from masksdm.model.checkpoint import CARD, WEIGHTS, ModelCard, load_checkpoint, save_checkpoint
from masksdm.model.config import RunConfig, preset
from masksdm.model.inference import predict_proba, resolve_device
from masksdm.model.training import train_arrays

__all__ = ["ESTIMATOR_FILE", "MaskSDMClassifier"]

#: The estimator's parameters and fit information, beside the checkpoint's files.
ESTIMATOR_FILE = "estimator.json"

_FORMAT = "masksdm-estimator/1"
_MIN_ROWS = 3  # one training row and two validation rows (a presence and an absence)
_SPLIT_DRAWS = 20


class MaskSDMClassifier(ClassifierMixin, BaseEstimator):
    """MaskSDM as a scikit-learn classifier: many species from any subset of predictors.

    Args:
        preset: the config preset the other settings start from: ``"cpu"`` (small, fast) or
            ``"paper"`` (the published network).
        epochs: maximum passes over the training rows (``None``: the preset's; given, it also
            switches off the preset's ``min_steps``).
        batch_size: training batch size (``None``: the preset's).
        lr: AdamW learning rate (``None``: the preset's).
        d_token: token width; must be divisible by the preset's number of heads (4 for ``"cpu"``,
            8 for ``"paper"``) (``None``: the preset's).
        n_blocks: transformer blocks (``None``: the preset's).
        patience: early-stopping patience in epochs, 0 = never (``None``: the preset's); used
            with ``select="best"`` only.
        select: ``"best"`` (keep the epoch of best validation AUC) or ``"last"`` (run the whole
            schedule, keep its last epoch; the ``cpu`` preset's) (``None``: the preset's).
        validation_fraction: share of the rows held out (seeded, at random; redrawn while no
            species has a presence and an absence among them) to select the best epoch and the
            max-TSS thresholds; the others train and give the normalisation.
        groups: column -> predictor group, for ``use=``/``mask=`` and Shapley players. Columns
            not in it get their catalogue group (``bio_1`` ... is ``WorldClim``) or ``"Other"``.
        seed: seed of the validation split, the weights, batch order and masks.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: show a training progress bar.

    Targets: ``Y`` with one 0/1 column per species (a DataFrame, or a 2-D array whose species are
    named ``y0``, ``y1``, ...) makes a multi-label classifier: ``predict_proba`` gives (rows,
    species) presence probabilities and ``predict`` a (rows, species) 0/1 array. A 1-D ``y`` (one
    species, any two labels) follows scikit-learn's binary convention: ``classes_`` holds the two
    labels, the larger one (``classes_[1]``) is the presence, ``predict_proba`` gives (rows, 2)
    ``[1 - p, p]`` and ``predict`` returns labels. Multi-class targets are not supported.

    ``score`` is the mean ROC-AUC over the species with both classes (not accuracy): it needs no
    threshold, and is the metric the training selects epochs with.

    The learning-rate warm-up is the preset's number of steps but at most a tenth of all training
    steps (:func:`~masksdm.model.training.step_plan`), so that short fits on small tables reach
    the learning rate.

    Attributes:
        model_: the trained :class:`~masksdm.model.network.MaskSDM` (the epoch ``select`` kept).
        card_: its :class:`~masksdm.model.checkpoint.ModelCard` (predictors, species,
            normalisation fitted on the training rows, thresholds, metrics).
        classes_: species names (multi-label), or the two labels of a 1-D ``y``.
        n_features_in_: number of predictor columns seen in ``fit``.
        feature_names_in_: their names, only when ``X`` was a DataFrame with string columns.
    """

    def __init__(
        self,
        *,
        preset: str = "cpu",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        d_token: int | None = None,
        n_blocks: int | None = None,
        patience: int | None = None,
        select: str | None = None,
        validation_fraction: float = 0.15,
        groups: Mapping[str, str] | None = None,
        seed: int = 0,
        device: str = "auto",
        progress: bool = False,
    ) -> None:
        self.preset = preset
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.d_token = d_token
        self.n_blocks = n_blocks
        self.patience = patience
        self.select = select
        self.validation_fraction = validation_fraction
        self.groups = groups
        self.seed = seed
        self.device = device
        self.progress = progress

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_class = False
        tags.classifier_tags.multi_label = True
        tags.classifier_tags.poor_score = True  # tiny fits in the checks are far from converged
        return tags

    # -- fitting -------------------------------------------------------------------------------

    def build_config(self) -> RunConfig:
        """The :class:`~masksdm.model.config.RunConfig` these parameters train with."""
        base = preset(self.preset)
        model_changes = {"d_token": self.d_token, "n_blocks": self.n_blocks}
        model = replace(base.model, **{k: v for k, v in model_changes.items() if v is not None})
        config = replace(base, model=model)
        if self.epochs is not None:
            config = config.with_epochs(self.epochs)
        train_changes = {"batch_size": self.batch_size, "lr": self.lr, "patience": self.patience, "select": self.select}
        changes = {k: v for k, v in train_changes.items() if v is not None}
        return config.replace_train(**changes, seed=int(self.seed), device=self.device)

    def fit(self, X: Any, Y: Any) -> MaskSDMClassifier:
        """Train on a table.

        Args:
            X: predictors (rows, columns): a DataFrame of numeric columns, or a 2-D array (columns
                named ``x0`` ... ``x{n-1}``); NaN is allowed and masked.
            Y: presence/absence: a DataFrame of 0/1 species columns, a 2-D 0/1 array, or a 1-D
                vector of two labels (one species).

        Returns:
            The fitted estimator.
        """
        names, raw = _read_fit_x(X)
        species, y, classes = _read_y(Y, len(raw))
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        n = len(raw)
        if n < _MIN_ROWS:
            raise DataError(
                f"got {n} sample{'s' if n != 1 else ''}: MaskSDMClassifier needs at least {_MIN_ROWS} rows "
                "(one to train, two to validate with a presence and an absence)"
            )
        val, fit = self._split(y)
        predictors = self._predictors(names)
        normalisation = _fit_normalisation(raw[fit], names)
        config = self.build_config()
        with tempfile.TemporaryDirectory(prefix="masksdm-fit-") as tmp:
            run_dir = Path(tmp) / "run"
            # the card normalises exactly as at prediction time; train_arrays takes model inputs
            x = ModelCard(config, predictors, species, normalisation).features(raw)
            train_arrays(
                x[fit], y[fit], x[val], y[val], predictors=predictors, species=species,
                normalisation=normalisation, run_dir=run_dir, config=config, progress=self.progress,
            )
            self.model_, self.card_ = load_checkpoint(run_dir, device=resolve_device(self.device))
        self._set_fit_attributes(names if isinstance(X, pd.DataFrame) and _string_columns(X) else None,
                                 classes, binary=classes is not None)
        return self

    def _split(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validation and training rows: a seeded random ``validation_fraction`` of the rows,
        redrawn (up to ``_SPLIT_DRAWS`` times, still seeded) until some species has a presence and
        an absence among them, so that small tables can select epochs by AUC."""
        n = len(y)
        n_val = min(n - 1, max(2, round(self.validation_fraction * n)))
        rng = np.random.default_rng(self.seed)
        for _ in range(_SPLIT_DRAWS):
            order = rng.permutation(n)
            if evaluable_species(y[order[:n_val]]).any():
                return np.sort(order[:n_val]), np.sort(order[n_val:])
        raise DataError(
            f"no species has both a presence and an absence among the {n_val} validation rows "
            f"(validation_fraction={self.validation_fraction} of {n} rows, {_SPLIT_DRAWS} seeded draws): pass "
            "a larger validation_fraction, or more rows with presences and absences of a species"
        )

    def _predictors(self, names: list[str]) -> list[Predictor]:
        groups = dict(self.groups or {})
        unknown = sorted(set(groups) - set(names))
        if unknown:
            raise ConfigError(f"groups names columns that X does not have: {unknown}; X has {names[:6]} ...")
        out = []
        for name in names:
            known = catalogue_entry(name)
            group = groups.get(name) or (known.group if known else UNGROUPED)
            out.append(Predictor(name, str(group), "table", known.unit if known else ""))
        return out

    def _set_fit_attributes(self, feature_names: list[str] | None, classes: np.ndarray | None, *, binary: bool) -> None:
        self.n_features_in_ = len(self.card_.predictors)
        if feature_names is not None:
            self.feature_names_in_ = np.asarray(feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.classes_ = classes if classes is not None else np.asarray(self.card_.species, dtype=object)
        self._binary = binary

    # -- prediction ----------------------------------------------------------------------------

    def _inputs(self, X: Any, use: Sequence[str] | str | None, mask: Sequence[str] | str | None) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs (N, P) in the model's order and the visible predictors (P,)."""
        check_is_fitted(self)
        predictors = self.card_.predictors
        visible = subset_mask(_names(use), predictors) if use is not None else np.ones(len(predictors), bool)
        if mask is not None:
            visible &= ~subset_mask(_names(mask), predictors)
        raw = self._align(X, visible)
        return self.card_.features(raw), visible

    def _align(self, X: Any, visible: np.ndarray) -> np.ndarray:
        names = self.card_.predictor_names
        fitted_names = getattr(self, "feature_names_in_", None)
        if isinstance(X, pd.DataFrame) and _string_columns(X) and fitted_names is not None:
            _check_numeric(X)
            missing = [n for n, v in zip(names, visible, strict=True) if v and n not in X.columns]
            if missing:
                raise DataError(
                    f"X lacks the columns {missing} the model was fitted with: add them (NaN where unknown), "
                    f"or predict without them with mask={missing}"
                )
            extra = [c for c in X.columns if c not in set(names)]
            if extra:
                raise DataError(
                    f"X has columns the model was not fitted with: {extra}; drop them "
                    f"(X.drop(columns={extra})) — the model knows {names[:6]} ..."
                )
            frame = X.reindex(columns=names)  # hidden columns may be absent: they become NaN
            return _numeric_array(frame, "X")
        if isinstance(X, pd.DataFrame):
            _check_numeric(X)
        named = isinstance(X, pd.DataFrame) and _string_columns(X)
        if fitted_names is not None:  # scikit-learn's warnings when names are given on one side only
            warnings.warn(
                f"X does not have valid feature names, but {type(self).__name__} was fitted with feature names: "
                "its columns are taken by position; pass a DataFrame to match them by name",
                UserWarning, stacklevel=4,
            )
        elif named:
            warnings.warn(
                f"X has feature names, but {type(self).__name__} was fitted without feature names: its "
                f"columns are taken by position as {names[:4]} ...",
                UserWarning, stacklevel=4,
            )
        raw = _numeric_array(X, "X")
        if raw.shape[1] != len(names):
            raise DataError(
                f"X has {raw.shape[1]} features, but {type(self).__name__} is expecting {len(names)} features "
                f"as input: pass the columns {names[:6]} ... in this order (NaN for unknown values)"
            )
        return raw

    def _proba(self, X: Any, use: Any, mask: Any) -> np.ndarray:
        x, visible = self._inputs(X, use, mask)
        keep = None if visible.all() else visible
        tc = self.card_.config.train
        p = predict_proba(self.model_, x, keep, batch_size=tc.eval_batch_size, precision=tc.precision)
        return p.astype(np.float64)

    def predict_proba(
        self, X: Any, *, use: Sequence[str] | str | None = None, mask: Sequence[str] | str | None = None
    ) -> np.ndarray:
        """Presence probabilities.

        Args:
            X: predictors; a DataFrame's columns are matched by name (extra columns are an error,
                columns hidden by ``use``/``mask`` may be absent), an array's by position.
            use: predictor or group names to use; every other predictor is hidden (masked).
            mask: predictor or group names to hide, on top of ``use``.

        Returns:
            (rows, species) probabilities; for a 1-D binary fit (rows, 2) ``[1 - p, p]``.
        """
        p = self._proba(X, use, mask)
        return np.column_stack([1 - p[:, 0], p[:, 0]]) if self._binary else p

    def get_thresholds(self, threshold: str | float | Sequence[float] = "max_tss") -> np.ndarray:
        """Per-species thresholds (S,): the validation max-TSS ones of the card (0.5 where a
        species had no presence or no absence among the validation rows), or the value(s) given."""
        check_is_fitted(self)
        n_species = len(self.card_.species)
        if isinstance(threshold, str):
            if threshold != "max_tss":
                raise ConfigError(f"threshold must be 'max_tss', a number or one per species, got {threshold!r}")
            saved = self.card_.thresholds or [None] * n_species
            return np.array([0.5 if t is None else t for t in saved], dtype=np.float64)
        values = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_species,)) if np.ndim(threshold) == 0 \
            else np.asarray(threshold, dtype=np.float64)
        if values.shape != (n_species,):
            raise ConfigError(f"give one threshold or one per species ({n_species}), got shape {values.shape}")
        return values

    def predict(
        self,
        X: Any,
        *,
        use: Sequence[str] | str | None = None,
        mask: Sequence[str] | str | None = None,
        threshold: str | float | Sequence[float] = "max_tss",
    ) -> np.ndarray:
        """Presence (1) or absence (0): probability >= threshold (see :meth:`get_thresholds`).

        Returns:
            (rows, species) 0/1 int array; for a 1-D binary fit (rows,) labels from ``classes_``.
        """
        present = self._proba(X, use, mask) >= self.get_thresholds(threshold)[None, :]
        if self._binary:
            return self.classes_[present[:, 0].astype(np.int64)]
        return present.astype(np.int64)

    def score(
        self, X: Any, y: Any, sample_weight: Any = None, *,
        use: Sequence[str] | str | None = None, mask: Sequence[str] | str | None = None,
    ) -> float:
        """Mean ROC-AUC over the species with a presence and an absence among these rows.

        Args:
            X: predictors, as in :meth:`predict_proba`.
            y: presence/absence as given to :meth:`fit` (a DataFrame's species matched by name).
            sample_weight: optional row weights (N,).
            use, mask: the predictors to use or hide, as in :meth:`predict_proba`.
        """
        p = self._proba(X, use, mask)
        if isinstance(y, pd.DataFrame) and set(map(str, y.columns)) == set(self.card_.species):
            y = y.rename(columns=str)[self.card_.species]  # species columns matched by name
        y = np.asarray(y)
        labels = (y == self.classes_[1])[:, None] if self._binary else _binary_matrix(y, "y")
        if labels.shape != p.shape:
            raise DataError(f"y has shape {y.shape}, expected {p.shape[:1] if self._binary else p.shape}")
        ok = evaluable_species(labels)
        if not ok.any():
            raise DataError("no species has both a presence and an absence among these rows: AUC is undefined")
        if sample_weight is None:
            return mean_auc(p, labels)
        return float(np.mean([roc_auc_score(labels[:, j], p[:, j], sample_weight=sample_weight)
                              for j in np.flatnonzero(ok)]))

    def shapley(
        self, X: Any, *, species: str | Sequence[str] | None = None, players: Players = "groups", **kwargs: Any
    ) -> ShapleyResult:
        """Local Shapley values of the predictors by masking (see
        :func:`masksdm.explain.games.local_shapley`, which takes the other keywords).

        Args:
            X: predictors, as in :meth:`predict_proba`.
            species: species names (default: all).
            players: ``"groups"``, ``"predictors"``, names, or player -> names.

        Returns:
            The :class:`~masksdm.explain.core.ShapleyResult`; values (rows, species, players).
        """
        x, _ = self._inputs(X, None, None)
        chosen = list(self.card_.species) if species is None else species
        return local_shapley(self.model_, self.card_, x, chosen, players=players, **kwargs)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the fitted model to folder ``path``: ``model.safetensors`` + ``model.json`` (a
        MaskSDM checkpoint) and ``estimator.json`` (parameters and fit information). No pickle."""
        check_is_fitted(self)
        path = Path(path)
        existing = [name for name in (WEIGHTS, CARD, ESTIMATOR_FILE) if (path / name).exists()]
        if existing and not force:
            raise OutputExistsError(f"'{path}' already holds {existing}: pass force=True to overwrite them")
        params = self.get_params()
        params["groups"] = None if self.groups is None else dict(self.groups)
        info = {
            "format": _FORMAT,
            "params": params,
            "feature_names_in": None if not hasattr(self, "feature_names_in_") else list(self.feature_names_in_),
            "binary": self._binary,
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str if self.classes_.dtype != object else "object",
        }
        save_checkpoint(path, self.model_, self.card_)
        write_json(path / ESTIMATOR_FILE, info)
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> MaskSDMClassifier:
        """A fitted estimator from a folder written by :meth:`save` (``device`` overrides the saved one)."""
        path = Path(path)
        try:
            info = json.loads((path / ESTIMATOR_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"no {ESTIMATOR_FILE} in '{path}': pass a folder written by MaskSDMClassifier.save") from None
        except json.JSONDecodeError as err:
            raise CheckpointError(f"'{path / ESTIMATOR_FILE}' is corrupt ({err}): save the estimator again") from None
        if info.get("format") != _FORMAT:
            raise CheckpointError(f"'{path / ESTIMATOR_FILE}' has format {info.get('format')!r}, expected {_FORMAT!r}")
        params = dict(info["params"])
        if device is not None:
            params["device"] = device
        estimator = cls(**params)
        estimator.model_, estimator.card_ = load_checkpoint(path, device=resolve_device(estimator.device))
        dtype = object if info["classes_dtype"] == "object" else np.dtype(info["classes_dtype"])
        classes = np.asarray(info["classes"], dtype=dtype) if info["binary"] else None
        estimator._set_fit_attributes(info["feature_names_in"], classes, binary=info["binary"])
        return estimator


# -- input checks ------------------------------------------------------------------------------


def _names(names: Sequence[str] | str) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def _string_columns(frame: pd.DataFrame) -> bool:
    return len(frame.columns) > 0 and all(isinstance(c, str) for c in frame.columns)


def _check_numeric(frame: pd.DataFrame) -> None:
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        kinds = ", ".join(f"{c!r} ({frame[c].dtype})" for c in bad[:5])
        raise DataError(
            f"X has non-numeric columns {kinds}: convert them to numbers (pd.to_numeric, one-hot "
            "columns for categories) or drop them"
        )


def _numeric_array(X: Any, name: str) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return check_array(X, dtype=np.float64, ensure_all_finite="allow-nan", input_name=name)
    except ValueError as err:
        if "could not convert" in str(err):
            raise DataError(f"{name} has non-numeric values ({err}): give numbers, NaN where unknown") from None
        raise


def _read_fit_x(X: Any) -> tuple[list[str], np.ndarray]:
    """Column names and raw values (N, P) float64 of the predictors given to ``fit``."""
    if isinstance(X, pd.DataFrame):
        _check_numeric(X)
        raw = _numeric_array(X, "X")
        names = [str(c) for c in X.columns] if _string_columns(X) else [f"x{i}" for i in range(raw.shape[1])]
        if len(set(names)) < len(names):
            raise DataError(f"X has duplicated column names {sorted({n for n in names if names.count(n) > 1})}: rename them")
    else:
        raw = _numeric_array(X, "X")
        names = [f"x{i}" for i in range(raw.shape[1])]
    return names, raw


def _binary_matrix(y: np.ndarray, name: str) -> np.ndarray:
    if y.dtype == np.bool_:
        return y
    try:
        values = y.astype(np.float64)
    except (TypeError, ValueError):
        values = np.full(y.shape, np.nan)
    if not np.isin(values, (0.0, 1.0)).all():
        shown = pd.unique(pd.Series(y.ravel())).tolist()[:5]
        raise DataError(
            f"{name} must hold presence/absence as 0/1 or bool in every species column, got values such as "
            f"{shown}; multi-class targets are not supported (one 0/1 column per class instead)"
        )
    return values.astype(bool)


def _read_y(Y: Any, n_rows: int) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Species names, presence matrix (N, S) bool, and the two labels of a 1-D ``y`` (else None)."""
    if Y is None:
        raise DataError(
            "MaskSDMClassifier requires y to be passed, but the target y is None: give Y, one 0/1 column "
            "per species (or a 1-D presence/absence vector)"
        )
    if isinstance(Y, pd.DataFrame):
        species, values = [str(c) for c in Y.columns], Y.to_numpy()
    else:
        values = np.asarray(Y)
        name = Y.name if isinstance(Y, pd.Series) and isinstance(Y.name, str) else "y"
        species = [name] if values.ndim == 1 else [f"y{j}" for j in range(values.shape[1] if values.ndim == 2 else 0)]
    if values.ndim not in (1, 2) or (values.ndim == 2 and values.shape[1] == 0):
        raise DataError(f"Y has shape {values.shape}: give a 1-D vector (one species) or a (rows, species) 0/1 table")
    if len(values) != n_rows:
        raise DataError(f"Y has {len(values)} rows but X has {n_rows}: give one row of Y per row of X, in the same order")
    if len(set(species)) < len(species):
        raise DataError(f"Y has duplicated species names {sorted({s for s in species if species.count(s) > 1})}: rename them")
    values = check_array(values, ensure_2d=False, dtype=None, ensure_all_finite=True, ensure_min_samples=0, input_name="y")
    if values.ndim == 2:
        return species, _binary_matrix(values, "Y"), None
    check_classification_targets(values)
    classes = np.unique(values)
    if len(classes) > 2:
        raise DataError(
            f"Only binary classification is supported. The type of the target is {type_of_target(values)} "
            f"({len(classes)} labels, e.g. {classes[:5].tolist()}): a 1-D y is one species' presence/absence; "
            "for several species give a (rows, species) 0/1 table"
        )
    if len(classes) < 2:
        raise DataError(
            f"y has one class ({classes.tolist()}): a 1-D y is one species' presence/absence and needs "
            "both presences and absences"
        )
    return species, (values == classes[1])[:, None], classes


def _fit_normalisation(raw: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """Mean and std (ddof 0, NaN skipped) of each column over the training rows."""
    empty = [n for n, ok in zip(names, np.isfinite(raw).any(axis=0), strict=True) if not ok]
    if empty:
        raise DataError(f"columns {empty} have no value in the training rows: drop them or give values")
    mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
    return {n: {"mean": float(m), "std": float(s)} for n, m, s in zip(names, mean, std, strict=True)}

