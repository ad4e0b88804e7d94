"""Tuned kNN: the bar every learned router must clear.

Published router benchmarks keep finding that a well-tuned k-nearest-neighbour router matches
far more complex ones (RouterArena's kNN with k = 80, LLMRouterBench), so before claiming a
learned router is better we give kNN the same care: its neighbourhood size ``k``, the
sharpness of its similarity weighting (``temperature``; a large one is plain averaging) and
its shrinkage to each model's mean (``prior``) are chosen by ``folds``-fold cross-validation
*inside the training data it is given* (Brier score over observed (item, model) pairs), and
each model's predictions then get a Platt map fitted on the same out-of-fold predictions
(kNN averages shrink towards the mean, so their scale is off per model).

Nothing here can see a test item: ``fit`` receives only the training matrix, and
``cv_items`` records the item ids the cross-validation used (a test checks they are exactly
the training ids). The whole grid costs one similarity block per fold: the top ``max(ks)``
neighbours are found once and every (k, temperature, prior) reuses them.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.baselines import model_means
from rankgate.routing.classifier import fit_soft_logistic
from rankgate.routing.knn import KNNRouter, centred
from rankgate.routing.mf import logit, serial_blas, sigmoid

KS = (5, 10, 20, 50, 100, 200)
TEMPERATURES = (0.05, 0.1, 0.3, 1.0, 10.0)
PRIORS = (0.1, 1.0, 3.0)
MIN_ITEMS = 20


def check_data(data: OutcomeMatrix, min_items: int, what: str) -> None:
    """The refusal every tuned router shares (one model, constant scores, too few items)."""
    from rankgate.routing.conformal import check_trainable

    check_trainable(data.scores, list(data.models), min_items, what)


def _neighbours(Q: np.ndarray, X: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) of the ``kmax`` most similar rows of ``X``, most similar first."""
    with serial_blas():
        sims = Q @ X.T
    kmax = min(kmax, X.shape[0])
    idx = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
    s = np.take_along_axis(sims, idx, axis=1)
    o = np.argsort(-s, axis=1)
    return np.take_along_axis(idx, o, axis=1), np.take_along_axis(s, o, axis=1)


def _grid_predict(idx: np.ndarray, sims: np.ndarray, Y: np.ndarray, means: np.ndarray,
                  k: int, temperature: float, prior: float) -> np.ndarray:
    obs = ~np.isnan(Y)
    filled = np.where(obs, Y, 0.0)
    i, s = idx[:, :k], sims[:, :k]
    w = np.exp((s - 1.0) / temperature)
    num = np.einsum("qk,qkm->qm", w, filled[i])
    den = np.einsum("qk,qkm->qm", w, obs[i].astype(float))
    return np.clip((num + prior * means) / (den + prior + 1e-12), 0.0, 1.0)


class TunedKNNRouter:
    name = "knn_tuned"

    def __init__(self, embedder: Embedder, folds: int = 5, seed: int = 0,
                 ks: tuple[int, ...] = KS, temperatures: tuple[float, ...] = TEMPERATURES,
                 priors: tuple[float, ...] = PRIORS, calibrate: bool = True) -> None:
        if folds < 2:
            raise ValueError("folds must be >= 2")
        self.embedder = embedder
        self.folds, self.seed = folds, seed
        self.ks, self.temperatures, self.priors = tuple(ks), tuple(temperatures), tuple(priors)
        self.calibrate = calibrate
        self.models: list[str] = []
        self.knn = KNNRouter(embedder)
        self.a = np.zeros(0)  # per-model Platt slope
        self.b = np.zeros(0)  # per-model Platt intercept
        self.chosen: dict[str, Any] = {}
        self.cv_items: list[str] = []

    def fit(self, data: OutcomeMatrix) -> None:
        self.fit_embedded(self.embedder.embed(data.prompts), data)

    def fit_embedded(self, X: np.ndarray, data: OutcomeMatrix) -> None:
        n = len(data.prompts)
        check_data(data, max(MIN_ITEMS, 2 * self.folds), "the tuned kNN router")
        self.models = list(data.models)
        Y = np.asarray(data.scores, float)
        X = np.asarray(X, np.float32)
        fold = np.random.default_rng(self.seed).permutation(n) % self.folds
        grid = list(product(self.ks, self.temperatures, self.priors))
        sq = np.zeros(len(grid))
        oof = {g: np.full(Y.shape, np.nan) for g in grid}
        for f in range(self.folds):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            mu = X[tr].mean(axis=0)
            idx, sims = _neighbours(centred(X[te], mu), centred(X[tr], mu), max(self.ks))
            means = model_means(Y[tr])
            for g in grid:
                oof[g][te] = _grid_predict(idx, sims, Y[tr], means, *g)
        obs = ~np.isnan(Y)
        for i, g in enumerate(grid):
            sq[i] = np.mean((oof[g][obs] - Y[obs]) ** 2)
        best = grid[int(np.argmin(sq))]
        self.chosen = {"k": best[0], "temperature": best[1], "prior": best[2],
                       "cv_brier": float(sq.min()), "grid_size": len(grid)}
        self.cv_items = list(data.item_ids)
        m = Y.shape[1]
        self.a, self.b = np.ones(m), np.zeros(m)
        if self.calibrate:
            P = oof[best]
            for j in range(m):
                o = obs[:, j]
                fitted = fit_soft_logistic(logit(P[o, j]).reshape(-1, 1), Y[o, j], C=100.0)
                if fitted is not None:
                    self.a[j], self.b[j] = float(fitted[0][0]), fitted[1]
        self.knn = KNNRouter(self.embedder, k=best[0], temperature=best[1], prior=best[2])
        self.knn.fit_embedded(X, data)

    def predict(self, prompts: list[str]) -> np.ndarray:
        return self.predict_embedded(self.embedder.embed(prompts))

    def predict_embedded(self, Q: np.ndarray) -> np.ndarray:
        return sigmoid(self.a * logit(self.knn.predict_embedded(Q)) + self.b)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        p, a = self.knn.state()
        params = {"folds": self.folds, "seed": self.seed, "ks": list(self.ks),
                  "temperatures": list(self.temperatures), "priors": list(self.priors),
                  "calibrate": self.calibrate, "models": self.models, "chosen": self.chosen,
                  "knn": p}
        return params, {**{f"knn.{k}": v for k, v in a.items()}, "a": self.a, "b": self.b}

    @classmethod
    def from_state(cls, embedder: Embedder, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> TunedKNNRouter:
        r = cls(embedder, folds=int(params["folds"]), seed=int(params["seed"]),
                ks=tuple(int(k) for k in params["ks"]),
                temperatures=tuple(float(t) for t in params["temperatures"]),
                priors=tuple(float(p) for p in params["priors"]),
                calibrate=bool(params["calibrate"]))
        r.models = list(params["models"])
        r.chosen = dict(params.get("chosen") or {})
        r.knn = KNNRouter.from_state(embedder, params["knn"], {
            k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("knn.")})
        r.a, r.b = np.asarray(arrays["a"], float), np.asarray(arrays["b"], float)
        return r
