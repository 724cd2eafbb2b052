"""Virtual species of the virtual world: niches on the predictors, prevalences and presence draws.

Each species responds to a few predictors (its drivers, drawn with the group weights below) through
a Gaussian or logistic niche on z-scored values; its intercept is solved so that its mean
probability over the plots matches a target prevalence; presences are Bernoulli draws. The truth
(drivers, parameters, probabilities) is kept, so that tests can compare the model with it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from tqdm import tqdm

from masksdm.sim.landscape import RASTER_PREDICTORS, make_rng

__all__ = [
    "AREA_COEF", "AREA_REF", "CANDIDATES", "prevalence_range", "simulate_species", "species_design", "species_names",
    "species_table",
]

#: The predictors a virtual species may respond to, with their groups.
CANDIDATES = RASTER_PREDICTORS + [("Longitude", "Location"), ("Latitude", "Location")]
_GROUP_WEIGHTS = {"WorldClim": 0.45, "SoilGrids": 0.2, "Topography": 0.12, "Human": 0.15,
                  "Location": 0.08}
#: Effect of the releve area on every species' logit: AREA_COEF x log(area / AREA_REF).
AREA_COEF, AREA_REF = 0.3, 100.0
_CHUNK = 512  # species per block of the truth computation; fixed, as presence draws are per block
_N_INTERCEPT_PLOTS = 10_000


def species_names(seed: int, n: int) -> np.ndarray:
    """Unique, plausible Latin binomials such as 'Carexa virtualis', in no particular order."""
    rng = make_rng(seed, "names")
    syl = np.array("ca re xa lo mi ra no ta phy lu se ver bo di gal an the po ly cor la sal vi fe "
                   "stu ro sa me li ter ni pa gra ce tri fo ar mo nus ge pe ru ci va".split())

    def words(m: int, ends: str) -> np.ndarray:
        end = np.array(ends.split())
        stem = np.char.add(syl[rng.integers(0, len(syl), m)], syl[rng.integers(0, len(syl), m)])
        return np.char.add(stem, end[rng.integers(0, len(end), m)])

    genera = np.char.capitalize(words(max(3, n // 8), "a us um ia is ella odon anthus ops"))
    names = np.array([], dtype=str)
    while len(names) < n:
        m = 2 * (n - len(names)) + 16
        epithets = words(m, "alis ensis ifolia oides ata icus ina osa escens ella")
        new = np.char.add(np.char.add(genera[rng.integers(0, len(genera), m)], " "), epithets)
        names = pd.unique(np.concatenate([names, new]))
    return np.asarray(names[:n], dtype=str)


def species_design(seed: int, n_species: int, quantiles: np.ndarray) -> dict[str, np.ndarray]:
    """Per species and driver slot (n_species, 3): predictor, shape and parameters."""
    rng = make_rng(seed, "species")
    groups = list(_GROUP_WEIGHTS)
    members = [[i for i, (_, g) in enumerate(CANDIDATES) if g == grp] for grp in groups]
    size = np.array([len(m) for m in members])
    table = np.array([m + [m[0]] * (size.max() - len(m)) for m in members])
    gi = rng.choice(len(groups), size=(n_species, 3), p=np.array(list(_GROUP_WEIGHTS.values())))
    pred = table[gi, (rng.random((n_species, 3)) * size[gi]).astype(int)]
    active = np.arange(3)[None, :] < rng.choice([1, 2, 3], size=(n_species, 1), p=[0.4, 0.4, 0.2])
    active[:, 1] &= pred[:, 1] != pred[:, 0]  # a repeated predictor is dropped, not drawn again
    active[:, 2] &= (pred[:, 2] != pred[:, 0]) & (pred[:, 2] != pred[:, 1])
    location = np.array([g == "Location" for _, g in CANDIDATES])[pred]
    gauss = (rng.random((n_species, 3)) < 0.65) & ~location  # range limits are monotone
    # Niche optima at the 0.1-0.9 quantiles of the land-cell distribution (a table of 81 quantiles).
    pos = rng.uniform(0.0, 80.0, (n_species, 3))
    lo = np.minimum(pos.astype(int), 79)
    mu = quantiles[pred, lo] * (lo + 1 - pos) + quantiles[pred, lo + 1] * (pos - lo)
    sign = rng.choice([-1.0, 1.0], (n_species, 3))
    return {
        "pred": pred, "active": active, "gauss": gauss, "mu": np.round(mu, 4),
        "sigma": np.round(rng.uniform(0.4, 1.5, (n_species, 3)), 4),
        "beta": np.round(sign * rng.uniform(0.5, 1.0, (n_species, 3)), 4),
        "strength": np.round(rng.uniform(1.5, 4.0, (n_species, 3)), 4),
    }


def _solve_intercept(eta: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per column b with mean(expit(b + eta)) = target: Newton on log-prevalence in a bracket."""
    n, log_t = eta.shape[0], np.log(target)
    lo = log_t - special.logsumexp(eta, axis=0) + np.log(n)  # expit < exp: prevalence <= target
    hi = special.logit(target) - eta.min(axis=0) + 1.0  # every p > target
    b, todo = lo.copy(), np.arange(len(target))
    for _ in range(100):
        p = special.expit(b[todo] + (eta if len(todo) == len(b) else eta[:, todo]))
        total = np.maximum(p.sum(axis=0), 1e-300)
        h = np.log(total / n) - log_t[todo]
        lo[todo], hi[todo] = np.where(h < 0, b[todo], lo[todo]), np.where(h > 0, b[todo], hi[todo])
        slope = (p * (1.0 - p)).sum(axis=0) / total  # d log(mean p) / db
        step = b[todo] - h / np.maximum(slope, 1e-300)
        inside = (step > lo[todo]) & (step < hi[todo])
        open_ = np.abs(h) >= 1e-7
        b[todo] = np.where(open_, np.where(inside, step, 0.5 * (lo[todo] + hi[todo])), b[todo])
        todo = todo[open_]
        if not len(todo):
            break
    return b


def prevalence_range(scale: str, n_species: int) -> tuple[float, float]:
    if scale == "demo":
        return 0.01, 0.25
    # About 20 species per plot: log-uniform on [lo, 10 lo] has mean 9 lo / ln 10.
    lo = min(20.0 / n_species * np.log(10) / 9, 0.025)
    return lo, 10 * lo


def simulate_species(seed: int, z_plots: np.ndarray, area_term: np.ndarray, design: dict,
                      target: np.ndarray, keep_prob: bool, progress: bool) -> dict[str, np.ndarray]:
    """True probabilities and presences, in blocks of species so memory stays bounded."""
    n_plots, n_species = z_plots.shape[0], len(target)
    sub = np.unique(np.linspace(0, n_plots - 1, min(n_plots, _N_INTERCEPT_PLOTS)).astype(int))
    # Each slot's term as quad * (z - mu)**2 + lin * z: one in-place formula for both shapes.
    weight = design["strength"] * design["active"]
    gauss = design["gauss"]
    mu = np.where(gauss, design["mu"], 0.0).astype(np.float32)
    quad = np.where(gauss, -0.5 * weight / design["sigma"] ** 2, 0.0).astype(np.float32)
    lin = np.where(gauss, 0.0, design["beta"] * weight).astype(np.float32)
    out: dict[str, Any] = {"intercept": np.empty(n_species), "prevalence": np.empty(n_species),
                           "contribution": np.zeros((n_species, 3))}
    prob = np.empty((n_plots, n_species), dtype=np.float32) if keep_prob else None
    found = []
    buffers: dict[str, np.ndarray] = {}  # reused between blocks: fresh pages cost more than maths
    for start in tqdm(range(0, n_species, _CHUNK), desc="virtual species", unit="block",
                      disable=not progress):
        sl = slice(start, min(start + _CHUNK, n_species))
        shape = (n_plots, sl.stop - start)
        if buffers.get("eta", np.empty(0)).shape != shape:
            buffers = {k: np.empty(shape, dtype=np.float32) for k in ("eta", "z", "term")}
        eta, z, term = buffers["eta"], buffers["z"], buffers["term"]
        eta[:] = area_term.astype(np.float32)[:, None]
        for k in range(3):
            np.take(z_plots, design["pred"][sl, k], axis=1, out=z, mode="clip")
            np.subtract(z, mu[sl, k], out=term)
            term *= term
            term *= quad[sl, k]
            z *= lin[sl, k]
            term += z
            out["contribution"][sl, k] = term[sub].std(axis=0)
            eta += term
        out["intercept"][sl] = _solve_intercept(eta[sub].astype(np.float64), target[sl])
        eta += out["intercept"][sl].astype(np.float32)
        p = special.expit(eta, out=eta)
        out["prevalence"][sl] = p.mean(axis=0, dtype=np.float64)
        make_rng(seed, "presence", str(start // _CHUNK)).random(dtype=np.float32, out=z)
        hits = np.flatnonzero(z < p)
        rows, cols = np.divmod(hits, shape[1])
        found.append((rows, cols + start, p.ravel()[hits]))
        if prob is not None:
            prob[:, sl] = p
    out["plot"], out["species"], out["p"] = (np.concatenate(f) for f in zip(*found, strict=True))
    out["probability"] = prob
    return out


def species_table(names: np.ndarray, design: dict, truth: dict, stats: list, target: np.ndarray
                   ) -> pd.DataFrame:
    """One row per species: prevalence, drivers strongest first, and the exact parameters."""
    counts = np.bincount(truth["species"], minlength=len(names))
    rows = []
    for s in range(len(names)):
        slots = [k for k in np.argsort(-truth["contribution"][s], kind="stable")
                 if design["active"][s, k]]
        terms = []
        for k in slots:
            j = int(design["pred"][s, k])
            shape = ({"shape": "gaussian", "mu": float(design["mu"][s, k]),
                      "sigma": float(design["sigma"][s, k])} if design["gauss"][s, k]
                     else {"shape": "linear", "beta": float(design["beta"][s, k])})
            terms.append({"predictor": CANDIDATES[j][0], "group": CANDIDATES[j][1],
                          "center": stats[j][0], "scale": stats[j][1], **shape,
                          "strength": float(design["strength"][s, k])})
        params = {"intercept": float(truth["intercept"][s]), "area_coef": AREA_COEF,
                  "area_reference": AREA_REF, "target_prevalence": float(target[s]),
                  "terms": terms}
        rows.append({
            "species": str(names[s]), "prevalence": float(truth["prevalence"][s]),
            "n_presences": int(counts[s]), "drivers": ";".join(t["predictor"] for t in terms),
            "driver_groups": ";".join(dict.fromkeys(t["group"] for t in terms)),
            "params": json.dumps(params)})
    return pd.DataFrame(rows)
