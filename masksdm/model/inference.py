"""Batched inference: logits and probabilities for many sites, on CPU or GPU."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from masksdm.model.network import MaskSDMEnsemble, Network

__all__ = ["autocast", "model_inputs", "predict_logits", "predict_logits_tensor", "predict_proba", "resolve_device"]


def model_inputs(
    x: np.ndarray, visible: np.ndarray, masking: str, widths: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs and keep mask (T,) as a model trained with this masking mode expects them.

    MaskSDM (``"random"``): values as they are, predictors outside ``visible`` masked.
    Unmasked baseline (``"none"``): NaN and hidden predictors set to 0, the training mean after
    z-scoring (mean imputation), and nothing masked. ``widths`` (T,) gives each predictor's
    number of columns when some are embeddings.
    """
    if masking == "none":
        columns = visible if widths is None else np.repeat(visible, widths)
        return np.where(columns[None, :], np.nan_to_num(x, nan=0.0), 0.0).astype(np.float32), None
    return x, visible


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is visible: use --device cpu")
    return torch.device(device)


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on CUDA by default (or when asked), nothing on CPU with fp32."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def predict_logits_tensor(
    model: Network,
    x: np.ndarray | torch.Tensor,
    keep: np.ndarray | torch.Tensor | None = None,
    *,
    batch_size: int = 4096,
    species: np.ndarray | None = None,
    precision: str = "auto",
    members: bool = False,
) -> torch.Tensor:
    """Logits (N, S) float32 as a tensor on the model's device (no copy to the host).

    ``x`` holds model inputs (N, n_inputs) (see :class:`~masksdm.model.network.MaskSDM`); NaN and
    ``keep=False`` are masked. ``keep`` may be (N, T) or (T,) (the same subset for every site).
    ``members=True`` (an ensemble only): every member's logits, (k, N, S); their mean over the
    first axis is the ensemble's logits.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x_t = torch.as_tensor(x, dtype=torch.float32)
    keep_t = None if keep is None else torch.as_tensor(keep, dtype=torch.bool)
    species_t = None if species is None else torch.as_tensor(species, dtype=torch.long, device=device)
    n_out = model.n_species if species is None else len(species)
    if members and not isinstance(model, MaskSDMEnsemble):
        raise TypeError("members=True needs an ensemble (MaskSDMEnsemble)")
    lead = (model.n_members,) if members else ()
    out = torch.empty((*lead, x_t.shape[0], n_out), dtype=torch.float32, device=device)
    try:
        with autocast(device, precision):
            for start in range(0, x_t.shape[0], batch_size):
                xb = x_t[start : start + batch_size].to(device, non_blocking=True)
                kb = None  # a (P,) subset stays 1-D: the model then tokenises only those predictors
                if keep_t is not None:
                    kb = keep_t.to(device) if keep_t.ndim == 1 else keep_t[start : start + batch_size].to(device)
                if isinstance(model, MaskSDMEnsemble) and members:
                    out[:, start : start + len(xb)] = model.member_logits(xb, kb, species=species_t).float()
                else:
                    out[start : start + len(xb)] = model(xb, kb, species=species_t).float()
    finally:
        model.train(was_training)
    return out


def predict_logits(
    model: Network,
    x: np.ndarray | torch.Tensor,
    keep: np.ndarray | torch.Tensor | None = None,
    **kwargs,
) -> np.ndarray:
    """Logits (N, S) float32 as a NumPy array; see :func:`predict_logits_tensor` for the options."""
    return predict_logits_tensor(model, x, keep, **kwargs).cpu().numpy()


def predict_proba(model: Network, x: np.ndarray | torch.Tensor, keep=None, **kwargs) -> np.ndarray:
    """Presence probabilities (N, S): the sigmoid of :func:`predict_logits`."""
    logits = predict_logits(model, x, keep, **kwargs)
    return 1.0 / (1.0 + np.exp(-logits))
