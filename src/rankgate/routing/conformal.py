"""A quality guarantee: lower prediction bounds from split-conformal prediction, so that
``{"min_quality": 0.8, "confidence": 0.9}`` means "at least 90% of the requests routed under
this knob reach quality 0.8", not "the router believes 0.8".

How the bounds are made (fitted in ``route train`` on held-out outcomes *inside* the training
data, stored in the artifact):

* every training item gets an out-of-fold prediction per model (the same cross-fitting that
  calibration uses: a router that never saw the item predicts it);
* per model, the items are cut into equal-mass bins of predicted quality (Mondrian conformal:
  "prompts the router rates alike"), at most ``MAX_BINS``, at least ``MIN_PER_BIN`` items each;
* the lower bound at level ``s`` for a new prompt is the ``k``-th smallest realised score in its
  bin, ``k = ⌊(1 − s)(n_b + 1)⌋``. For a new item exchangeable with the bin's items,
  P(score ≥ bound) ≥ 1 − k/(n_b + 1) ≥ s. With ``k`` = 0 (too few items for that confidence)
  the bound is 0: nothing is certified.

The selection problem, and the fix: the policy sends a request to the *cheapest* model whose
bound clears the target, so a dear model gets the prompts the cheap models could not be
trusted with — harder than its bin's average. Per-model coverage then overstates coverage of
the routed requests. So for each (target, confidence) the level ``s`` is raised until the
*routed* miss rate on the calibration items, cross-fitted between two halves (bins from one
half judge the other) and with the conformal +1 correction, is ≤ 1 − confidence — scanned from
the strictest level down and stopped at the first failure (fixed-sequence testing, as in
Learn-then-Test). The result is cached per (target, confidence).

A guarantee no model meets falls back to the best predicted model and says so
(:func:`rankgate.routing.base.choose_guaranteed` returns ``met`` = False): the gateway puts it
in a header, replay counts it separately. What it promises is *marginal* over prompts like the
training ones (exchangeability), not per prompt; replay measures it on held-out items.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankgate.routing.base import Knob, choose, choose_guaranteed

MAX_BINS = 40
MIN_PER_BIN = 50
MIN_ITEMS = 40
"""Calibration items a guarantee needs (fewer: refused, naming this minimum). At 40 items in
one bin a 0.9 guarantee is reachable (k = ⌊0.1·41⌋ = 4: the 4th-smallest score is the bound)."""
_LEVELS = 12  # strictness levels scanned between the asked confidence and ~1


def _bins(pred: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges of ``n_bins`` equal-mass bins of ``pred`` (duplicates merged)."""
    if n_bins <= 1 or len(pred) == 0:
        return np.zeros(0)
    return np.unique(np.quantile(pred, np.linspace(0, 1, n_bins + 1)[1:-1]))


@dataclass
class _ModelBins:
    edges: np.ndarray
    sorted_scores: list[np.ndarray]  # per bin, ascending

    @classmethod
    def fit(cls, pred: np.ndarray, score: np.ndarray) -> _ModelBins:
        n_bins = max(1, min(MAX_BINS, len(score) // MIN_PER_BIN))
        edges = _bins(pred, n_bins)
        b = np.searchsorted(edges, pred, side="right")
        return cls(edges, [np.sort(score[b == i]) for i in range(len(edges) + 1)])

    def lower(self, pred: np.ndarray, level: float) -> np.ndarray:
        b = np.searchsorted(self.edges, pred, side="right")
        out = np.zeros(len(pred))
        for i, s in enumerate(self.sorted_scores):
            k = math.floor((1.0 - level) * (len(s) + 1) + 1e-9)
            if k >= 1:
                out[b == i] = s[k - 1]
        return out


def _fit_bins(P: np.ndarray, Y: np.ndarray) -> list[_ModelBins]:
    out = []
    for j in range(Y.shape[1]):
        obs = ~np.isnan(Y[:, j]) & ~np.isnan(P[:, j])
        out.append(_ModelBins.fit(P[obs, j], Y[obs, j]))
    return out


def _lower(bins: list[_ModelBins], P: np.ndarray, level: float) -> np.ndarray:
    return np.column_stack([mb.lower(P[:, j], level) for j, mb in enumerate(bins)])


@dataclass
class Guarantee:
    """Per-model conformal lower bounds on realised quality, fitted on held-out predictions
    ``P`` [n, m] (as the router serves them) and realised scores ``Y`` [n, m] (NaN: unscored).

    ``costs`` [m] are the per-model mean costs the policy will use (the selection correction
    replays the policy, which needs them)."""

    models: list[str]
    P: np.ndarray
    Y: np.ndarray
    costs: np.ndarray
    seed: int = 0
    _bins: list[_ModelBins] = field(init=False, repr=False)
    _halves: tuple[list[_ModelBins], list[_ModelBins], np.ndarray] = field(init=False,
                                                                             repr=False)
    _levels: dict[tuple[float, float], float] = field(init=False, repr=False)
    _memo: dict[tuple[Any, ...], float] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.P = np.asarray(self.P, float)
        self.Y = np.asarray(self.Y, float)
        self.costs = np.asarray(self.costs, float).reshape(-1)
        m = len(self.models)
        if self.P.shape != self.Y.shape or self.P.ndim != 2 or self.P.shape[1] != m:
            raise ValueError(f"guarantee needs predictions and scores [n, {m}], got "
                             f"{self.P.shape} and {self.Y.shape}")
        check_trainable(self.Y, self.models, MIN_ITEMS, "a quality guarantee")
        self._bins = _fit_bins(self.P, self.Y)
        complete = np.flatnonzero(~np.isnan(self.Y).any(axis=1))
        half = np.random.default_rng(self.seed).permutation(len(complete)) % 2
        a, b = complete[half == 0], complete[half == 1]
        self._halves = (_fit_bins(self.P[a], self.Y[a]), _fit_bins(self.P[b], self.Y[b]),
                        half)
        self._levels = {}
        self._memo = {}
        self._lock = threading.Lock()

    def memo(self, key: tuple[Any, ...], compute: Callable[[], float]) -> float:
        """``compute()`` once per ``key`` for this artifact (e.g. the λ of a savings target,
        which depends only on these held-out predictions)."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._lock:
            self._memo[key] = value
        return value

    # ------------------------------------------------------------------ the bound

    def level(self, target: float, confidence: float) -> float:
        """The per-model conformal level that keeps the *routed* miss rate ≤ 1 − confidence on
        the calibration items (cross-fitted halves); cached per (target, confidence)."""
        key = (round(float(target), 6), round(float(confidence), 6))
        with self._lock:
            if key in self._levels:
                return self._levels[key]
        bins_a, bins_b, half = self._halves
        complete = np.flatnonzero(~np.isnan(self.Y).any(axis=1))
        P, Y = self.P[complete], self.Y[complete]
        rows = np.arange(len(complete))
        levels = confidence + (1 - confidence) * (1 - np.geomspace(1, 0.02, _LEVELS))
        chosen = float(levels[-1])
        for s in levels[::-1]:  # strictest first; stop at the first level that fails
            L = np.empty_like(P)
            L[half == 0] = _lower(bins_b, P[half == 0], float(s))  # judged by the other half
            L[half == 1] = _lower(bins_a, P[half == 1], float(s))
            j, met = choose_guaranteed(L, P, self.costs, target)
            miss, n_met = int(np.sum(met & (Y[rows, j] < target - 1e-12))), int(met.sum())
            # too few certified items to judge (even 0 misses would fail the +1 correction):
            # such a strict level passes; the scan stops at the first level that is judged
            # and fails
            if n_met + 1 >= 1 / (1 - confidence) and (miss + 1) / (n_met + 1) > 1 - confidence:
                break
            chosen = float(s)
        with self._lock:
            self._levels[key] = chosen
        return chosen

    def lower(self, P: np.ndarray, target: float, confidence: float) -> np.ndarray:
        """Lower prediction bounds [n, m] for predictions ``P`` (as served) under the knob."""
        return _lower(self._bins, np.atleast_2d(np.asarray(P, float)),
                      self.level(target, confidence))

    def choose(self, P: np.ndarray, costs: np.ndarray, knob: Knob
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chosen model, met, lower bounds) per row for a knob with ``confidence``."""
        if knob.confidence is None or knob.min_quality is None:
            raise ValueError("a guarantee needs min_quality and confidence")
        L = self.lower(P, knob.min_quality, knob.confidence)
        j, met = choose_guaranteed(L, P, costs, knob.min_quality)
        return j, met, L

    # ------------------------------------------------------------------ the artifact

    def header(self) -> dict[str, Any]:
        return {"method": "split-conformal lower bounds, Mondrian by predicted-quality bin, "
                          "level raised until the routed miss rate (cross-fitted halves) fits",
                "n": int(self.P.shape[0]), "seed": self.seed, "max_bins": MAX_BINS,
                "min_per_bin": MIN_PER_BIN, "models": list(self.models),
                "bins": {m: len(b.sorted_scores) for m, b in zip(self.models, self._bins,
                                                                  strict=True)}}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"P": self.P, "Y": self.Y, "costs": self.costs}

    @classmethod
    def from_header(cls, header: dict[str, Any], arrays: dict[str, np.ndarray],
                    models: list[str]) -> Guarantee:
        if list(header.get("models") or []) != list(models):
            raise ValueError(f"guarantee is for {header.get('models')}, the router predicts "
                             f"for {models}")
        return cls(list(models), arrays["P"], arrays["Y"], arrays["costs"],
                   int(header.get("seed", 0)))


def guarantee_of(router: Any) -> Guarantee | None:
    """The guarantee an artifact attached to a loaded router (None when it has none)."""
    g = getattr(router, "guarantee", None)
    return g if isinstance(g, Guarantee) else None


def check_trainable(Y: np.ndarray, models: list[str], min_items: int, what: str) -> None:
    """Refuse data nothing can be learned from, naming the minimum: one model, no variation in
    the scores, or fewer than ``min_items`` items."""
    Y = np.asarray(Y, float)
    if len(models) < 2:
        raise ValueError(f"{what} needs outcomes for at least 2 models, got {len(models)} "
                         f"({', '.join(models) or 'none'})")
    if Y.shape[0] < min_items:
        raise ValueError(f"{what} needs at least {min_items} items, got {Y.shape[0]}")
    obs = Y[~np.isnan(Y)]
    if obs.size == 0 or np.ptp(obs) == 0:
        raise ValueError(f"{what} needs scores that vary; every score here is "
                         f"{obs[0] if obs.size else 'missing'}")


# ---------------------------------------------------------------------- replaying it


def _interval(k: int, n: int) -> list[float] | None:
    """Clopper–Pearson 95% interval of k successes in n."""
    if n == 0:
        return None
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return [lo, hi]


def coverage_table(g: Guarantee, P: np.ndarray, Y: np.ndarray, costs: np.ndarray,
                   targets: tuple[float, ...] = (0.6, 0.7, 0.8),
                   confidences: tuple[float, ...] = (0.8, 0.9)) -> list[dict[str, Any]]:
    """Realised coverage of the guarantee on held-out items (``P`` served predictions, ``Y``
    complete scores), per (target, confidence): the share of requests it certified, the
    share of those reaching the target (with a Clopper–Pearson 95% interval), the mean cost
    of the guarantee policy (fallbacks included) against the point-prediction policy
    (``min_quality`` alone), and the point policy's own share reaching the target."""
    P, Y = np.asarray(P, float), np.asarray(Y, float)
    c = np.asarray(costs, float)
    rows = np.arange(len(Y))
    out = []
    for t in targets:
        jp = choose(P, c, Knob(min_quality=t))
        point_hit = Y[rows, jp] >= t - 1e-12
        for conf in confidences:
            j, met, _ = g.choose(P, c, Knob(min_quality=t, confidence=conf))
            hit = Y[rows, j] >= t - 1e-12
            k, n = int(np.sum(hit & met)), int(met.sum())
            out.append({
                "target": t, "confidence": conf, "level": g.level(t, conf),
                "n": len(Y), "certified": n, "certified_share": n / len(Y),
                "coverage": None if n == 0 else k / n, "coverage_ci": _interval(k, n),
                "meets_promise": None if n == 0 else bool(_interval(k, n)[1] >= conf),
                "coverage_all": float(hit.mean()),
                "cost": float(c[j].mean()), "cost_point": float(c[jp].mean()),
                "cost_ratio": (float(c[j].mean() / c[jp].mean()) if c[jp].mean() > 0
                               else None),
                "quality": float(Y[rows, j].mean()), "quality_point": float(Y[rows, jp].mean()),
                "point_coverage": float(point_hit.mean()),
            })
    return out
