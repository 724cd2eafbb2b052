"""Per-species baselines on MaskSDM's split, and paired tests of MaskSDM against them.

The baselines are what ecologists fit, one model per species, on the same training plots and
normalised inputs (``card.features``) as MaskSDM:

* ``"glm"``: a quadratic logistic GLM, i.e. logistic regression on the predictors and their
  squares (standardised, mild L2 penalty, scikit-learn);
* ``"rf"``: a random forest (scikit-learn, 200 trees);
* ``"gbm"``: histogram gradient boosting (scikit-learn);
* ``"maxent"``: Maxent (``elapid.MaxentModel``, linear, quadratic and hinge features), the
  absences serving as background points.

Missing values: ``"rf"`` and ``"gbm"`` take NaN as it is (both split on missingness natively);
``"glm"`` and ``"maxent"`` get NaN replaced by the training mean, which is 0 for z-scored inputs.

:func:`compare_baselines` scores MaskSDM and each baseline with all predictors and with each
predictor group withheld at test time: MaskSDM masks the withheld predictors, each baseline trained
on all predictors gets them imputed (mean, or k nearest training plots, predictions averaged over
the imputed copies), and a baseline retrained without them is the fair alternative an
ecologist would fit. Per-species models cost time linearly in the number of species (and of
withheld groups when retraining): ``max_species`` evaluates a seeded random sample of species.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from masksdm.data.predictors import column_mask, subset_mask
from masksdm.errors import CheckpointError, DataError
from masksdm.evaluation.imputation import Imputer, make_imputer
from masksdm.evaluation.paired import paired_test
from masksdm.evaluation.subsets import default_subsets, subset_logits
from masksdm.metrics import MIN_CLASS, mean_interval
from masksdm.model.checkpoint import load_checkpoint, split_arrays
from masksdm.scoring import is_presence_only, max_tss_thresholds, scorable, species_scores
from masksdm.workspace import Workspace

__all__ = [
    "BASELINES",
    "BaselineComparison",
    "SpeciesModel",
    "compare_baselines",
    "fit_baseline",
    "format_comparison",
    "impute_withheld",
    "make_baseline",
    "paired_tests",
]

log = logging.getLogger(__name__)

#: Names of the built-in baselines.
BASELINES: tuple[str, ...] = ("glm", "rf", "gbm", "maxent")
_NAN_NATIVE = frozenset({"rf", "gbm"})
_MASKSDM = "MaskSDM"


def _with_squares(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.square(x)])


def make_baseline(name: str, *, seed: int = 0) -> Any:
    """An unfitted scikit-learn style classifier for baseline ``name`` (see the module docstring)."""
    if name == "glm":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer, StandardScaler

        return make_pipeline(
            FunctionTransformer(_with_squares), StandardScaler(), LogisticRegression(C=1.0, max_iter=10_000)
        )
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=200, min_samples_leaf=2, n_jobs=-1, random_state=seed)
    if name == "gbm":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed)
    if name == "maxent":
        import elapid  # imported here: it takes seconds, and only this baseline needs it

        # NOTE[DIFF]: elapid's default adds product features, P^2/2 of them for P predictors (1,830 for
        # the paper's 61): on the demo workspace a fit took 6.6 s instead of 2.4 s, and scored lower.
        return elapid.MaxentModel(feature_types=["linear", "quadratic", "hinge"], random_state=seed)
    raise ValueError(f"unknown baseline {name!r}: choose among {list(BASELINES)}")


@dataclass
class SpeciesModel:
    """One baseline fitted for one species on some of the input columns.

    Attributes:
        name: the baseline (one of :data:`BASELINES`).
        estimator: the fitted classifier.
        columns: (C,) bool, the input columns it was trained on; the others are never read.
        n_threads: threads of its OpenMP and BLAS code (see :func:`fit_baseline`).
    """

    name: str
    estimator: Any
    columns: np.ndarray
    n_threads: int | None = 1

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)[:, self.columns]
        return x if self.name in _NAN_NATIVE else np.nan_to_num(x, nan=0.0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Presence probability (N,) from inputs ``x`` (N, C) with every column."""
        if x.shape[1] != len(self.columns):
            raise ValueError(f"expected inputs with {len(self.columns)} columns, got {x.shape[1]}")
        with threadpool_limits(limits=self.n_threads):
            return np.asarray(self.estimator.predict_proba(self._inputs(x)), dtype=np.float64)[:, 1]


def fit_baseline(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    columns: np.ndarray | None = None,
    seed: int = 0,
    n_threads: int | None = 1,
) -> SpeciesModel:
    """Fit baseline ``name`` for one species.

    Args:
        name: one of :data:`BASELINES`.
        x: (N, C) normalised inputs, NaN where missing.
        y: (N,) presence (True/1) or absence.
        columns: (C,) bool, the columns to train on (default: all); retrained baselines leave
            the withheld ones out.
        seed: seed of the randomised baselines.
        n_threads: threads of the model's OpenMP and BLAS code, through threadpoolctl (``None``:
            the libraries' own; the random forest always uses every core, through joblib). One
            is the default: a per-species model is small, and OpenMP threads wait on each other
            at every step whenever a core is busy (another process, or PyTorch's own OpenMP
            threads still spinning after MaskSDM's predictions). On 2 busy cores a 3,500-plot
            gradient boosting fit took 14-30 s with 2 threads and 0.4 s with 1.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 2))
    >>> model = fit_baseline("glm", x, x[:, 0] + rng.normal(0, 0.5, 300) > 0, columns=np.array([True, False]))
    >>> p = model.predict(x)
    >>> p.shape, bool(np.corrcoef(p, x[:, 0])[0, 1] > 0.9)
    ((300,), True)
    """
    y = np.asarray(y).astype(np.int64)
    if len(np.unique(y)) < 2:
        raise DataError(f"baseline {name!r} needs presences and absences, got only {'presences' if y.any() else 'absences'}")
    columns = np.ones(x.shape[1], dtype=bool) if columns is None else np.asarray(columns, dtype=bool)
    model = SpeciesModel(name, make_baseline(name, seed=seed), columns, n_threads)
    with threadpool_limits(limits=n_threads):
        model.estimator.fit(model._inputs(x), y)
    return model


def impute_withheld(imputer: Imputer, x: np.ndarray, visible_columns: np.ndarray) -> np.ndarray:
    """Copies (m, N, C) of ``x`` with exactly the withheld columns (``visible_columns`` False) imputed.

    Visible columns keep their values, NaN included, so a baseline treats missing values as it
    does with all predictors.
    """
    copies = imputer.impute(x, visible_columns)
    return np.where(visible_columns[None, None, :], np.asarray(x, dtype=np.float32)[None], copies)


def _settings(card: Any, withheld: Mapping[str, Sequence[str]] | Sequence[str | Sequence[str]] | None) -> dict[str, np.ndarray]:
    """Setting name -> visible predictors (T,): ``"all"``, then ``"without <entry>"`` per entry."""
    if withheld is None:
        entries = {g: [g] for g in default_subsets(card) if g != "all"}
    elif isinstance(withheld, Mapping):
        entries = {str(k): list(v) for k, v in withheld.items()}
    else:
        entries = {e if isinstance(e, str) else "+".join(e): [e] if isinstance(e, str) else list(e) for e in withheld}
    settings = {"all": np.ones(len(card.predictors), dtype=bool)}
    for name, names in entries.items():
        settings[f"without {name}"] = ~subset_mask(names, card.predictors)
        if not settings[f"without {name}"].any():
            raise DataError(f"withholding {names} leaves no predictor: withhold fewer (withheld={name!r})")
    return settings


def _choose_species(
    card: Any, ws: Workspace, labels: dict[str, np.ndarray], *, split: str, species: Sequence[str] | None,
    max_species: int | None, min_presences: int, seed: int, background: np.ndarray | None = None,
) -> np.ndarray:
    """Indices into ``card.species`` of the species to evaluate."""
    y_train = labels["train"]
    n_train = y_train.sum(axis=0)
    ok = (n_train >= min_presences) & (n_train < len(y_train)) & scorable(labels[split], background, 1)
    ok &= np.isin(card.species, ws.species_names)
    if species is not None:
        chosen = card.species_indices(species)
        dropped = [card.species[i] for i in chosen if not ok[i]]
        if dropped:
            log.warning("left out %d species without both classes in train and %s or with fewer than %d "
                        "training presences: %s", len(dropped), split, min_presences, dropped)
        chosen = np.array([i for i in chosen if ok[i]], dtype=np.int64)
    else:
        chosen = np.flatnonzero(ok)
    if max_species is not None and len(chosen) > max_species:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, max_species, replace=False))
    if len(chosen) == 0:
        raise DataError(
            f"no species to evaluate: each needs presences and absences in train and {split} and at least "
            f"{min_presences} training presences: lower min_presences or choose other species"
        )
    return chosen


@dataclass
class BaselineComparison:
    """Results of :func:`compare_baselines`.

    Attributes:
        summary: one row per (setting, method): ``setting``, ``method`` (``MaskSDM``, ``rf`` with
            all predictors, ``rf + mean``/``rf + knn`` imputed, ``rf retrained``), ``mean_auc``
            with ``auc_low``/``auc_high`` (bootstrap interval over species), ``mean_tss``,
            ``brier`` (mean Brier score), ``n_species`` (in the means), ``n_thin`` (left out) and
            ``seconds`` (fitting and predicting, summed over species; an imputed variant reuses
            the model fitted with all predictors, whose fit is counted in that method's ``all`` row).
        per_species: one row per (setting, method, species): ``auc`` with its DeLong interval
            ``auc_low``/``auc_high``, ``tss`` (on the test split at the max-TSS threshold of the
            validation split; NaN where validation lacks a class), ``brier``, ``n_presences`` and
            ``n_absences`` (test) and ``thin`` (fewer than ``min_class`` of either there).
        tests: one row per (setting, baseline method) pairing MaskSDM's per-species AUC with the
            baseline's over the species in the means (:func:`~masksdm.evaluation.paired.paired_test`): ``mean_difference``
            (MaskSDM minus baseline), ``ci_low``, ``ci_high`` (bootstrap 95 % interval),
            ``p_value`` (Wilcoxon signed-rank, two-sided), ``n_species``, ``wins`` and ``losses``
            (species where MaskSDM is better, worse).
        min_class, keep_thin: the thin-species rule the means followed.
    """

    summary: pd.DataFrame
    per_species: pd.DataFrame
    tests: pd.DataFrame
    min_class: int = MIN_CLASS
    keep_thin: bool = False

    def to_markdown(self, *, metric: str = "auc", scale: float = 100.0, digits: int = 1) -> str:
        """See :func:`format_comparison`."""
        return format_comparison(self, metric=metric, scale=scale, digits=digits)


def compare_baselines(
    workspace: Workspace | str | Path,
    run: str = "main",
    *,
    baselines: Sequence[str] = BASELINES,
    withheld: Mapping[str, Sequence[str]] | Sequence[str | Sequence[str]] | None = None,
    imputations: Sequence[str] = ("mean", "knn"),
    retrain: bool = True,
    split: str = "test",
    species: Sequence[str] | None = None,
    max_species: int | None = None,
    min_presences: int = 5,
    min_class: int = MIN_CLASS,
    keep_thin: bool = False,
    seed: int = 0,
    n_threads: int | None = 1,
    progress: bool = True,
) -> BaselineComparison:
    """Score MaskSDM run ``run`` and per-species baselines on the same split.

    Args:
        workspace: the workspace (or its folder) the run was trained on.
        run: the MaskSDM run, ``models/<run>``.
        baselines: which of :data:`BASELINES` to fit.
        withheld: predictors hidden at test time, one setting per entry: group or predictor
            names, a list of them, or a mapping setting name -> names (default: each predictor
            group). Every comparison also has the setting ``"all"``.
        imputations: imputers (:func:`~masksdm.evaluation.imputation.make_imputer`, fitted on
            the training inputs) that fill the withheld predictors for baselines trained on all.
        retrain: also fit each baseline without the withheld predictors.
        split: the split scored; thresholds for TSS are always chosen on ``"val"``.
        species: evaluate only these species (names); default every species with presences and
            absences in train and ``split`` and at least ``min_presences`` training presences.
        max_species: evaluate a random sample (seeded) of at most this many species.
        min_class: a species with fewer presences or absences than this in ``split`` is thin: scored,
            but left out of the means and paired tests unless ``keep_thin``.
        seed: seed of the species sample, the baselines and the bootstrap.
        n_threads: threads of each baseline's OpenMP and BLAS code (see :func:`fit_baseline`).
        progress: show a progress bar over the fits.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}: choose among {list(BASELINES)}")
    model, card = load_checkpoint(ws.run_dir(run))
    if card.config.train.masking != "random":
        raise CheckpointError(f"run '{run}' was trained without masking: compare_baselines needs a MaskSDM run")
    splits = list(dict.fromkeys(["train", "val", split]))
    arrays = {s: split_arrays(card, ws, s) for s in splits}
    x = {s: a[0] for s, a in arrays.items()}
    labels = {s: a[1] for s, a in arrays.items()}
    background = {s: ws.background_mask(s) for s in splits}
    chosen = _choose_species(card, ws, labels, split=split, species=species, max_species=max_species,
                             min_presences=min_presences, seed=seed, background=background[split])
    y = {s: labels[s][:, chosen] for s in splits}
    settings = _settings(card, withheld)
    imputers = {name: make_imputer(name, x["train"]) for name in imputations}
    scored = ("val", split)
    probs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    seconds: dict[tuple[str, str], float] = {}

    for setting, visible in settings.items():  # MaskSDM: one model, the withheld predictors masked
        start = time.perf_counter()
        subset = [p.name for p, v in zip(card.predictors, visible, strict=True) if v]
        probs[setting, _MASKSDM] = {
            s: 1 / (1 + np.exp(-subset_logits(model, card, x[s], subset)[:, chosen].astype(np.float64))) for s in scored
        }
        seconds[setting, _MASKSDM] = time.perf_counter() - start

    visible_columns = {k: column_mask(v, card.predictors) for k, v in settings.items()}
    copies: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for setting in list(settings)[1:]:
        for name, imputer in imputers.items():
            start = time.perf_counter()
            copies[setting, name] = {s: impute_withheld(imputer, x[s], visible_columns[setting]) for s in scored}
            seconds[setting, name] = time.perf_counter() - start

    methods: list[tuple[str, str]] = []  # (setting, method) of the baselines, in table order
    for base in baselines:
        for setting in settings:
            if setting == "all":
                methods.append((setting, base))
            else:
                methods += [(setting, f"{base} + {name}") for name in imputers]
                methods += [(setting, f"{base} retrained")] if retrain else []
    for key in methods:
        probs[key] = {s: np.empty((len(x[s]), len(chosen))) for s in scored}
        seconds.setdefault(key, 0.0)
        if " + " in key[1]:  # every baseline pays for the imputation
            seconds[key] += seconds[key[0], key[1].rpartition(" + ")[2]]

    n_fits = len(chosen) * len(baselines) * (1 + retrain * (len(settings) - 1))
    bar = tqdm(total=n_fits, desc="baselines", unit="fit", disable=not progress)
    for j, name in enumerate(card.species[i] for i in chosen):
        for base in baselines:
            bar.set_postfix_str(f"{base} {name}", refresh=False)
            start = time.perf_counter()
            full = fit_baseline(base, x["train"], y["train"][:, j], seed=seed, n_threads=n_threads)
            for s in scored:
                probs["all", base][s][:, j] = full.predict(x[s])
            seconds["all", base] += time.perf_counter() - start
            bar.update()
            for setting in list(settings)[1:]:
                for imp in imputers:
                    start = time.perf_counter()
                    for s in scored:  # averaged over the imputed copies, as subset_logits does
                        m, n, c = copies[setting, imp][s].shape
                        stacked = full.predict(copies[setting, imp][s].reshape(m * n, c))
                        probs[setting, f"{base} + {imp}"][s][:, j] = stacked.reshape(m, n).mean(axis=0)
                    seconds[setting, f"{base} + {imp}"] += time.perf_counter() - start
                if retrain:
                    start = time.perf_counter()
                    refit = fit_baseline(base, x["train"], y["train"][:, j], columns=visible_columns[setting],
                                         seed=seed, n_threads=n_threads)
                    for s in scored:
                        probs[setting, f"{base} retrained"][s][:, j] = refit.predict(x[s])
                    seconds[setting, f"{base} retrained"] += time.perf_counter() - start
                    bar.update()
    bar.close()

    order = sorted([(s, _MASKSDM) for s in settings] + methods, key=lambda k: list(settings).index(k[0]))
    per_species = _per_species(probs, order, y, split, [card.species[i] for i in chosen], min_class=min_class,
                               background=background)
    n_thin = int(per_species.drop_duplicates("species")["thin"].sum())
    counted = per_species if keep_thin else per_species[~per_species["thin"]]
    rows = []
    for (setting, method), frame in counted.groupby(["setting", "method"], sort=False):
        mean, low, high = mean_interval(frame["auc"].to_numpy(dtype=float), seed=seed)
        rows.append({"setting": setting, "method": method, "mean_auc": mean, "auc_low": low, "auc_high": high,
                     "mean_tss": frame["tss"].mean(), "brier": frame["brier"].mean(),
                     **({"boyce": frame["boyce"].mean()} if "boyce" in frame else {}),
                     "n_species": int(frame["auc"].notna().sum()), "n_thin": n_thin,
                     "seconds": seconds[setting, method]})
    if not rows:
        raise DataError(
            f"every species has fewer than {min_class} presences or absences among the {len(y[split])} {split} "
            "plots: prepare with smaller blocks or a larger --test-fraction, use masksdm cv, or --keep-thin"
        )
    return BaselineComparison(pd.DataFrame(rows), per_species, paired_tests(counted, seed=seed), min_class, keep_thin)


def _per_species(
    probs: Mapping[tuple[str, str], Mapping[str, np.ndarray]], order: Sequence[tuple[str, str]],
    y: Mapping[str, np.ndarray], split: str, names: list[str], *, min_class: int = MIN_CLASS,
    background: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """AUC with its DeLong interval, TSS (threshold chosen on validation) and Brier score of every
    (setting, method), one row a species; on presence-only data against the background, with the
    Boyce index (:func:`~masksdm.scoring.species_scores`)."""
    frames = []
    bg = background or {}
    thin = ~scorable(y[split], bg.get(split), min_class)
    presence_only = is_presence_only(bg.get(split))
    for setting, method in order:
        p = probs[setting, method]
        thr = max_tss_thresholds(p["val"], y["val"], bg.get("val"))[1]
        scores = species_scores(p[split], y[split], background=bg.get(split), thresholds=thr)
        frame = pd.DataFrame({"setting": setting, "method": method, "species": names})
        columns = ["auc", "auc_low", "auc_high", "tss_val_threshold", "brier", *(["boyce"] if presence_only else []),
                   "n_presences", "n_absences"]
        frame = pd.concat([frame, scores[columns].rename(columns={"tss_val_threshold": "tss"})], axis=1)
        frames.append(frame.assign(thin=thin))
    return pd.concat(frames, ignore_index=True)


def paired_tests(per_species: pd.DataFrame, *, seed: int = 0, by: Sequence[str] = ("species",)) -> pd.DataFrame:
    """MaskSDM against every other method of its setting, AUC paired over the rows' ``by`` keys
    (species; or fold and species when ``per_species`` pools cross-validation folds): one row per
    (setting, method), as :attr:`BaselineComparison.tests`."""
    rows = []
    key = list(by)
    for (setting, method), frame in per_species.groupby(["setting", "method"], sort=False):
        if method == _MASKSDM:
            continue
        ours = per_species[(per_species["setting"] == setting) & (per_species["method"] == _MASKSDM)]
        theirs = frame.set_index(key)["auc"]
        t = paired_test(ours.set_index(key)["auc"].loc[theirs.index].to_numpy(), theirs.to_numpy(), seed=seed)
        rows.append({"setting": setting, "method": method, "mean_difference": t.mean_difference,
                     "ci_low": t.ci_low, "ci_high": t.ci_high, "p_value": t.p_value, "n_species": t.n_pairs,
                     "wins": t.wins, "losses": t.losses})
    return pd.DataFrame(rows)


def _p_text(p: float) -> str:
    return "–" if not np.isfinite(p) else f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def format_comparison(
    comparison: BaselineComparison, *, metric: str = "auc", scale: float = 100.0, digits: int = 1
) -> str:
    """Markdown: mean ``metric`` (``"auc"`` or ``"tss"``, x100 by default) per method (rows) and
    setting (columns), the best per column in bold, then MaskSDM's paired tests on AUC."""
    if metric not in ("auc", "tss"):
        raise ValueError(f"metric must be 'auc' or 'tss', got {metric!r}")
    summary = comparison.summary
    methods, settings = summary["method"].unique(), summary["setting"].unique()

    def pivot(column: str) -> pd.DataFrame:
        return summary.pivot(index="method", columns="setting", values=column).loc[methods, settings]

    table = pivot(f"mean_{metric}")
    interval = (pivot("auc_low"), pivot("auc_high")) if metric == "auc" and "auc_low" in summary else None
    best = table.max(axis=0)
    n = int(summary["n_species"].max())
    n_thin = int(summary["n_thin"].max()) if "n_thin" in summary else 0
    kept = "kept" if comparison.keep_thin else "left out"
    thin = f" ({n_thin} with fewer than {comparison.min_class} presences or absences {kept})" if n_thin else ""
    lines = [f"Mean test {metric.upper()} x{scale:g} over {n} species{thin}"
             + (", with its bootstrap 95 % interval over species" if interval is not None else ""), "",
             "| method | " + " | ".join(table.columns) + " |", "|---|" + "---:|" * len(table.columns)]
    for method, row in table.iterrows():
        cells = []
        for col, value in row.items():
            text = "–" if not np.isfinite(value) else f"{value * scale:.{digits}f}"
            if np.isfinite(value) and np.isclose(value, best[col]):
                text = f"**{text}**"
            if interval is not None and np.isfinite(interval[0].loc[method, col]):
                text += f" ({interval[0].loc[method, col] * scale:.{digits}f}-{interval[1].loc[method, col] * scale:.{digits}f})"
            cells.append(text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", f"MaskSDM minus baseline, AUC x{scale:g}, paired over species: mean difference, bootstrap 95 % "
              "interval, Wilcoxon signed-rank p (two-sided, uncorrected), species where MaskSDM is better", "",
              "| setting | baseline | difference | 95 % interval | p | MaskSDM better |", "|---|---|---:|---:|---:|---:|"]
    for t in comparison.tests.itertuples():
        lines.append(
            f"| {t.setting} | {t.method} | {t.mean_difference * scale:+.{digits}f} | "
            f"[{t.ci_low * scale:+.{digits}f}, {t.ci_high * scale:+.{digits}f}] | {_p_text(t.p_value)} | "
            f"{t.wins}/{t.n_species} |"
        )
    return "\n".join(lines)
