"""Masked training of MaskSDM: random predictor masking, early stopping, resumable runs.

Each training batch draws one keep-probability p ~ U(0, 1) and keeps every predictor of every plot
independently with probability p; NaN values are always masked. So the number of visible
predictors per plot is uniform over 0..P, the model learns every subset size, and at prediction time
it works from ANY subset (Zbinden et al. 2025). ``masking="none"`` trains the classical baseline:
NaN mean-imputed (0 after z-scoring), nothing masked.

A run folder receives ``model.safetensors`` + ``model.json`` (best epoch on validation mean AUC),
``metrics.csv`` (one row per epoch), ``config.toml`` (the resolved config) and ``resume/`` (the
last epoch's full state, so an interrupted run continues with ``resume=True``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from masksdm._io import atomic_path, write_json, write_parquet, write_text
from masksdm.data.predictors import UNGROUPED, Predictor, input_widths
from masksdm.errors import CheckpointError, ConfigError, DataError, OutputExistsError
from masksdm.locks import exclusive
from masksdm.metrics import MIN_CLASS, background_auc, mean_auc
from masksdm.model.checkpoint import (
    CARD,
    ModelCard,
    build_model,
    check_training_plots,
    load_checkpoint,
    read_card,
    save_checkpoint,
    training_plots,
)
from masksdm.model.config import RunConfig, TrainConfig, for_table
from masksdm.model.inference import (
    autocast,
    model_inputs,
    predict_logits,
    predict_logits_tensor,
    resolve_device,
)
from masksdm.model.losses import make_loss
from masksdm.model.network import MaskSDMEnsemble
from masksdm.scoring import is_presence_only, max_tss_thresholds, scorable
from masksdm.workspace import Workspace

#: The resume state of an unfinished run (in ``run_dir/resume/``): tensors, and the epoch in its metadata.
STATE = "state.safetensors"

__all__ = ["TrainResult", "ensure_trained", "train", "train_arrays"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Summary of a finished training run."""

    run_dir: Path
    best_epoch: int
    best_val_auc: float
    epochs_run: int
    stopped_early: bool
    seconds: float
    samples_per_second: float


def _rng_tensors(generator: torch.Generator) -> dict[str, torch.Tensor]:
    out = {"rng.generator": generator.get_state(), "rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    return out


def _save_state(path: Path, model, optimizer, generator, info: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"optim.{idx}.{name}"] = torch.as_tensor(value).detach().contiguous().cpu()
    tensors.update(_rng_tensors(generator))
    info = {**info, "param_groups": opt["param_groups"]}
    path.mkdir(parents=True, exist_ok=True)
    # one file, replaced at once, holds the tensors and the epoch they belong to: a kill at any point
    # leaves the previous epoch's state or this one, never one's weights with the other's counters
    with atomic_path(path / STATE) as tmp:
        save_file(tensors, str(tmp), metadata={"info": json.dumps(info)})
    write_json(path / "state.json", info)  # a readable copy; resume reads the metadata above


def _state_info(path: Path) -> dict[str, Any]:
    """The epoch counters, history and config saved with the resume state in ``path``."""
    try:
        with safe_open(str(path / STATE), framework="pt") as state:
            return json.loads((state.metadata() or {})["info"])
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"the resume state in '{path}' is unreadable ({err}): start over with --force") from None


def _load_state(path: Path, model, optimizer, generator, device) -> dict[str, Any]:
    info = _state_info(path)
    try:
        tensors = load_file(str(path / STATE))
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"the resume state in '{path}' is unreadable ({err}): start over with --force") from None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value.to(device) if value.ndim else value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return info


def _prepare_run_dir(run_dir: Path, *, resume: bool, force: bool) -> None:
    started = (run_dir / "model.json").exists() or (run_dir / "resume").exists()
    if resume:
        if not (run_dir / "resume" / STATE).exists():
            raise CheckpointError(f"nothing to resume in '{run_dir}': start the run without --resume")
        return
    if started and not force:
        raise OutputExistsError(
            f"run '{run_dir}' already exists: pass --resume to continue it or --force to start over"
        )
    if started:
        for name in ("model.json", "model.safetensors", "metrics.csv", "config.toml", "thresholds.parquet"):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "resume", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def _draw_keep(n: int, group_of: torch.Tensor, n_groups: int, group_masking: float, generator) -> torch.Tensor:
    """(n, P) keep mask of one batch: p ~ U(0, 1), then each predictor (or each whole group, in a
    ``group_masking`` share of batches) kept with probability p."""
    device = group_of.device
    p = torch.rand((), device=device, generator=generator)
    by_group = group_masking > 0 and bool(torch.rand((), device=device, generator=generator) < group_masking)
    if by_group:
        return (torch.rand((n, n_groups), device=device, generator=generator) < p)[:, group_of]
    return torch.rand((n, len(group_of)), device=device, generator=generator) < p


def _masking_group_of(predictors: Sequence[Predictor]) -> list[str]:
    return [p.name if p.group == UNGROUPED else p.group for p in predictors]


def masking_groups(predictors: Sequence[Predictor]) -> list[str]:
    """The units that group masking keeps or masks together: the predictor groups, except that
    each predictor of the catch-all group ``"Other"`` (table columns of no known source) is its
    own unit, so that a table's environmental columns are not masked all at once."""
    return list(dict.fromkeys(_masking_group_of(predictors)))


def step_plan(tc: TrainConfig, n_batches: int) -> tuple[int, int, int]:
    """Epochs, patience (epochs) and warm-up steps of a run with ``n_batches`` batches per epoch:
    ``train.min_steps`` lengthens short runs, and the warm-up is capped at a tenth of all steps."""
    epochs, patience = tc.epochs, tc.patience
    if tc.min_steps:
        epochs = max(epochs, math.ceil(tc.min_steps / n_batches))
        if patience:
            patience = max(patience, math.ceil(tc.min_steps / 10 / n_batches))
    return epochs, patience, min(tc.warmup_steps, max(1, epochs * n_batches // 10))


def _lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Learning-rate multiplier: linear warm-up, then constant or cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * progress))


def train(
    workspace: Workspace | str | Path,
    run_dir: str | Path,
    *,
    config: RunConfig | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train MaskSDM (or the unmasked baseline) on a workspace.

    Args:
        workspace: a prepared workspace (see :func:`masksdm.workspace.prepare_workspace`).
        run_dir: output folder of this run (e.g. ``WORKSPACE/models/main``).
        config: the run config; with ``resume`` and no config, the run's own config is used.
        resume: continue an interrupted run from its last finished epoch.
        force: overwrite an existing run.
        progress: show a progress bar.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    train_arr, val_arr = ws.arrays("train"), ws.arrays("val")
    if len(train_arr["x"]) == 0 or len(val_arr["x"]) == 0:
        raise DataError("the training or validation split is empty: rebuild the workspace with other split fractions")
    return train_arrays(
        train_arr["x"], train_arr["y"], val_arr["x"], val_arr["y"],
        predictors=ws.predictors, species=ws.species_names, normalisation=ws.normalisation,
        run_dir=run_dir, config=config, resume=resume, force=force, progress=progress,
        data=training_plots(ws), train_background=train_arr["background"], val_background=val_arr["background"],
    )


def _check_background(background: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if background is None:
        return np.zeros(n, dtype=bool)
    background = np.asarray(background)
    if background.shape != (n,) or not np.isin(background, (0, 1)).all():
        raise DataError(f"{name}_background must be (rows of {name}_x,) = ({n},) bool, got shape {background.shape}")
    return background.astype(bool)


def _check_arrays(
    x: np.ndarray, y: np.ndarray, name: str, n_columns: int, n_species: int
) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != n_columns:
        raise DataError(f"{name}_x has shape {x.shape}, expected (rows, {n_columns}): one column per predictor input")
    if y.shape != (len(x), n_species):
        raise DataError(f"{name}_y has shape {y.shape}, expected (rows of {name}_x, species) = {(len(x), n_species)}")
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise DataError(f"{name}_y must hold presence/absence as bool or 0/1, got values {np.unique(y)[:5]}")
        y = y.astype(bool)
    if len(x) == 0:
        raise DataError(f"{name}_x has no rows: give at least one training and one validation row")
    return x, y


@exclusive("run_dir", "run")
def train_arrays(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    *,
    predictors: Sequence[Predictor],
    species: Sequence[str],
    normalisation: Mapping[str, Mapping[str, float]],
    run_dir: str | Path,
    config: RunConfig | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    data: Mapping[str, Any] | None = None,
    train_background: np.ndarray | None = None,
    val_background: np.ndarray | None = None,
) -> TrainResult:
    """Train MaskSDM (or the unmasked baseline) from arrays; :func:`train` reads them from a workspace.

    Args:
        train_x: training model inputs (N, n_columns) float: tabular predictors already z-scored
            with ``normalisation``, then embedding vectors; NaN is masked.
        train_y: training presence/absence (N, S), bool or 0/1.
        val_x: validation model inputs (M, n_columns), as ``train_x``; they select the best epoch
            (mean AUC) and the max-TSS thresholds.
        val_y: validation presence/absence (M, S).
        predictors: the model's predictors in input order (tabular ones first).
        species: species names in output order.
        normalisation: name -> ``{"mean": ..., "std": ...}`` of every tabular predictor, stored in
            the card so that :meth:`ModelCard.features` normalises new raw values the same way.
        run_dir, config, resume, force, progress: as :func:`train`.
        data: what the rows are, recorded in the card (:attr:`ModelCard.data`); :func:`train`
            gives the digests of the workspace's training and validation plots.
        train_background, val_background: presence-only data: (N,) and (M,) bool marking the
            random background rows. Training then uses the full weighted loss
            (:class:`~masksdm.model.losses.FullWeightedLoss`), and validation scores each species'
            presences against the validation background (:mod:`masksdm.scoring`).
    """
    run_dir = Path(run_dir)
    predictors, species = list(predictors), [str(s) for s in species]
    n_columns = int(input_widths(predictors).sum())
    train_x, train_y = _check_arrays(train_x, train_y, "train", n_columns, len(species))
    val_x, val_y = _check_arrays(val_x, val_y, "val", n_columns, len(species))
    train_bg = _check_background(train_background, len(train_x), "train")
    val_bg = _check_background(val_background, len(val_x), "val")
    missing = [p.name for p in predictors if not p.is_embedding and p.name not in normalisation]
    if missing:
        raise DataError(f"normalisation has no mean and std for predictors {missing}: give them for every tabular predictor")
    if not scorable(val_y, val_bg, 1).any():
        what = "presences and background points" if is_presence_only(val_bg) else "both presences and absences"
        raise DataError(
            f"no species has {what} in the validation rows: give more validation rows (a larger "
            "--val-fraction or a smaller --block-size) or species observed at more of them"
        )
    _prepare_run_dir(run_dir, resume=resume, force=force)
    if config is not None:
        config = for_table(config, len(train_x))
    if resume:
        state = _state_info(run_dir / "resume")
        saved = RunConfig.from_dict(state["config"])
        if config is not None and config != saved:
            raise ConfigError(
                f"run '{run_dir}' was started with another config: resume without --config/--preset, "
                "or start over with --force"
            )
        if "data" in state and state["data"] != dict(data or {}):
            raise DataError(
                f"run '{run_dir}' was started on other training or validation plots (the workspace was "
                "rebuilt since): start over with --force"
            )
        config = saved
    config = for_table(config or RunConfig(), len(train_x))
    tc = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device)
    torch.manual_seed(tc.seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(tc.seed)

    card = ModelCard(
        config=config,
        predictors=predictors,
        species=species,
        normalisation={p.name: dict(normalisation[p.name]) for p in predictors if not p.is_embedding},
        data=dict(data or {}),
    )
    allowed = card.allowed  # train.use; the network masks the others itself (build_model)
    widths = input_widths(predictors)
    x_train_np, _ = model_inputs(train_x, allowed, tc.masking, widths)
    x_val, keep_val = model_inputs(val_x, allowed, tc.masking, widths)
    x_train = torch.from_numpy(np.ascontiguousarray(x_train_np)).to(device)
    y_train = torch.from_numpy(train_y).to(device)
    y_val = torch.from_numpy(val_y).to(device)
    group_names = masking_groups(predictors)  # ungrouped table columns each their own unit
    group_of = torch.tensor([group_names.index(g) for g in _masking_group_of(predictors)], device=device)
    model = build_model(card).to(device)
    bg_train = torch.from_numpy(train_bg).to(device)
    loss_fn = make_loss(tc.loss, y_train, bg_train, target_group_weight=tc.target_group_weight).to(device)
    # masked tokens collapsed into one: exact without dropout, so that is the default
    collapse = tc.collapse == "on" or (tc.collapse == "auto" and config.model.dropout == 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    n = x_train.shape[0]
    n_batches = math.ceil(n / tc.batch_size)
    epochs, patience, warmup_steps = step_plan(tc, n_batches)
    select_last = tc.select == "last"
    scored = scorable(val_y, val_bg)  # epochs are never chosen on a species with a handful of validation plots
    if not scored.any():
        scored = scorable(val_y, val_bg, 1)
        if not select_last:
            log.warning(
                "no species has %d presences and %d absences among the %d validation plots: epochs are not "
                "chosen on so few, the whole schedule runs and its last epoch is kept (as train.select = "
                '"last"); more validation plots (--val-fraction, smaller --block-size) let validation choose',
                MIN_CLASS, MIN_CLASS, len(val_y))
            select_last = True
    if select_last:  # the whole schedule runs; the last epoch is kept
        patience = 0
    y_val_scored_index = torch.from_numpy(np.flatnonzero(scored)).to(device)
    y_val_scored = y_val[:, y_val_scored_index]
    bg_val = torch.from_numpy(val_bg).to(device) if is_presence_only(val_bg) else None

    def val_mean_auc(logits: torch.Tensor) -> float:
        if bg_val is None:
            return mean_auc(logits, y_val_scored)
        auc = background_auc(logits, y_val_scored, bg_val)
        return float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, warmup_steps, epochs * n_batches, tc.schedule)
    )

    info: dict[str, Any] = {"epoch": 0, "step": 0, "best_auc": -math.inf, "best_epoch": 0, "bad_epochs": 0, "history": []}
    if resume:
        info = _load_state(run_dir / "resume", model, optimizer, generator, device)
        scheduler.last_epoch = info["step"]  # the restored param groups already hold the current lr
        log.info("resuming %s after epoch %d", run_dir, info["epoch"])
    write_text(run_dir / "config.toml", config.to_toml())

    start_time = time.perf_counter()
    samples_seen = 0
    stopped_early = bool(patience) and info["bad_epochs"] >= patience  # resuming a stopped run
    first_epoch = epochs if stopped_early else info["epoch"]
    bar = tqdm(range(first_epoch, epochs), desc=f"train {run_dir.name}", unit="epoch", disable=not progress,
               initial=info["epoch"], total=epochs)
    for epoch in bar:
        model.train()
        epoch_start = time.perf_counter()
        order = torch.randperm(n, device=device, generator=generator)
        total = torch.zeros((), device=device)
        for b in range(n_batches):
            idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
            xb, yb, bgb = x_train[idx], y_train[idx], bg_train[idx]
            keep = None
            if tc.masking == "random":
                keep = _draw_keep(xb.shape[0], group_of, len(group_names), tc.group_masking, generator)
            with autocast(device, tc.precision):
                if isinstance(model, MaskSDMEnsemble):  # each member by its own loss
                    loss = sum(loss_fn(z, yb, bgb) for z in model.member_logits(xb, keep, collapse=collapse))
                else:
                    loss = loss_fn(model(xb, keep, collapse=collapse), yb, bgb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach()
        samples_seen += n
        train_loss = float(total) / n_batches
        val_logits = predict_logits_tensor(
            model, x_val, keep_val, batch_size=tc.eval_batch_size, precision=tc.precision
        )
        val_auc = val_mean_auc(val_logits[:, y_val_scored_index])
        info["step"] += n_batches
        info["epoch"] = epoch + 1
        row = {
            "epoch": epoch + 1, "train_loss": train_loss, "val_mean_auc": val_auc,
            "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - epoch_start,
        }
        info["history"].append(row)
        improved = val_auc > info["best_auc"] or select_last
        if improved:
            info["best_auc"], info["best_epoch"], info["bad_epochs"] = val_auc, epoch + 1, 0
            card.metrics = {"best_epoch": epoch + 1, "val_mean_auc": val_auc, "complete": False}
            save_checkpoint(run_dir, model, card)
        else:
            info["bad_epochs"] += 1
        _save_state(run_dir / "resume", model, optimizer, generator, {**info, "config": config.to_dict(), "data": card.data})
        write_text(run_dir / "metrics.csv", pd.DataFrame(info["history"]).to_csv(index=False))
        bar.set_postfix(loss=f"{train_loss:.3f}", val_auc=f"{val_auc:.3f}", best=f"{info['best_auc']:.3f}")
        if patience and info["bad_epochs"] >= patience:
            stopped_early = True
            break
    bar.close()
    seconds = time.perf_counter() - start_time

    best, card = load_checkpoint(run_dir, device=device)
    best_logits = predict_logits(best, x_val, keep_val, batch_size=tc.eval_batch_size, precision=tc.precision)
    val_prob = 1 / (1 + np.exp(-best_logits.astype(np.float64)))
    tss, thresholds = max_tss_thresholds(val_prob, val_y, val_bg)
    card.thresholds = [float(t) if np.isfinite(t) else None for t in thresholds]
    card.metrics = {
        "best_epoch": info["best_epoch"],
        "val_mean_auc": val_mean_auc(torch.from_numpy(best_logits[:, scored]).to(device)),
        "val_mean_tss": float(np.nanmean(tss)),
        "epochs_run": info["epoch"],
        "stopped_early": stopped_early,
        "train_seconds": seconds,
        "device": str(device),
        "n_train": int(n),
        "n_val": len(x_val),
        "complete": True,
    }
    save_checkpoint(run_dir, best, card)
    write_parquet(
        run_dir / "thresholds.parquet",
        pd.DataFrame({"species": card.species, "threshold_max_tss_val": thresholds, "val_tss": tss}),
    )
    return TrainResult(
        run_dir=run_dir,
        best_epoch=info["best_epoch"],
        best_val_auc=float(info["best_auc"]),
        epochs_run=info["epoch"],
        stopped_early=stopped_early,
        seconds=seconds,
        samples_per_second=samples_seen / seconds if seconds > 0 else float("nan"),
    )


def _same_plots(card: ModelCard, ws: Workspace) -> bool:
    try:
        check_training_plots(card, ws)
    except DataError:
        log.info("%s was trained on another split of the plots: training again", ws.path)
        return False
    return True


def ensure_trained(ws: Workspace, run_dir: Path, config: RunConfig, *, progress: bool = True) -> None:
    """Train ``run_dir`` unless it holds a complete run with the same config; resume it when it was
    interrupted with that config, else start over. Comparisons and cross-validation call this so
    that a rerun reuses what is done."""
    config = for_table(config, int(ws.split_mask("train").sum()))  # as the run's card records it
    card = None
    if (run_dir / CARD).exists():
        try:
            card, _ = read_card(run_dir)
        except CheckpointError:
            card = None
        if card is not None and card.config == config and card.metrics.get("complete") and _same_plots(card, ws):
            log.info("reusing %s", run_dir)
            return
    resumable = (run_dir / "resume" / STATE).exists() and (card is None or _same_plots(card, ws))
    if resumable:
        saved = _state_info(run_dir / "resume")["config"]
        resumable = RunConfig.from_dict(saved) == config
    train(ws, run_dir, config=None if resumable else config, resume=resumable, force=not resumable, progress=progress)
