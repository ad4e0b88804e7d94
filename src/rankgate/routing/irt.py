"""Item-response-theory router (IRT-Router / MIRT): a difficulty and a discrimination per
prompt, predicted from its embedding, and an ability per model.

    P(model j answers prompt x well) = σ( a(x)·θ_j + c_j − b(x) )

``b(x) = w·x + b₀`` is the prompt's difficulty (shared by every model), ``a(x) =
softplus(A x + a₀)`` ∈ ℝ^dim its (non-negative) discrimination along ``dim`` latent skills,
``θ_j`` model j's abilities on them and ``c_j`` its overall level. With ``dim`` = 1 this is the
two-parameter logistic model of psychometrics. Why it may beat matrix factorisation: the
difficulty term is *shared* — one hard prompt moves every model down together — which is what
routing data mostly look like (easy prompts are easy for all), leaving the skills to explain
which model wins where. Fitted like :mod:`rankgate.routing.mf` (soft-label cross-entropy over
observed entries, L2, L-BFGS), ``dim`` and ``l2`` chosen by cross-validation inside the
training data.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.baselines import model_means
from rankgate.routing.knn_tuned import check_data
from rankgate.routing.mf import logit, serial_blas, sigmoid

DIMS = (1, 8)
L2S = (1e-4, 1e-3)
CV_FOLDS = 3
MIN_ITEMS = 40


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _fit(X: np.ndarray, Y: np.ndarray, dim: int, l2: float, seed: int, max_iter: int
         ) -> dict[str, np.ndarray]:
    from scipy.optimize import minimize

    D = X.shape[1]
    m = Y.shape[1]
    mask = ~np.isnan(Y)
    Yf = np.where(mask, Y, 0.0)
    n_obs = max(int(mask.sum()), 1)
    rng = np.random.default_rng(seed)
    sizes = [D * dim, dim, D, 1, m * dim, m]
    theta0 = np.concatenate([rng.normal(0, 0.1 / np.sqrt(D), D * dim), np.zeros(dim),
                             np.zeros(D), [0.0], rng.normal(0, 0.1, m * dim),
                             logit(model_means(Y))])

    def unpack(t: np.ndarray) -> list[np.ndarray]:
        A, a0, w, b0, th, c = np.split(t, np.cumsum(sizes)[:-1])
        return [A.reshape(D, dim), a0, w, b0, th.reshape(m, dim), c]

    def loss(t: np.ndarray) -> tuple[float, np.ndarray]:
        A, a0, w, b0, th, c = unpack(t)
        Za = X @ A + a0
        a = _softplus(Za)
        b = X @ w + b0[0]
        L = a @ th.T + c - b[:, None]
        f = float(((np.logaddexp(0.0, L) - Yf * L) * mask).sum() / n_obs
                  + l2 * ((A**2).sum() + (w**2).sum() + (th**2).sum()))
        G = (sigmoid(L) - Yf) * mask / n_obs
        gth = G.T @ a + 2 * l2 * th
        gc = G.sum(axis=0)
        gbvec = -G.sum(axis=1)
        gw = X.T @ gbvec + 2 * l2 * w
        gZa = (G @ th) * sigmoid(Za)
        gA = X.T @ gZa + 2 * l2 * A
        return f, np.concatenate([gA.ravel(), gZa.sum(axis=0), gw, [gbvec.sum()],
                                  gth.ravel(), gc])

    with serial_blas():
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter})
    A, a0, w, b0, th, c = unpack(res.x)
    return {"A": A, "a0": a0, "w": w, "b0": b0, "theta": th, "c": c}


def _predict(p: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    a = _softplus(X @ p["A"] + p["a0"])
    b = X @ p["w"] + p["b0"][0]
    return sigmoid(a @ p["theta"].T + p["c"] - b[:, None])


class IRTRouter:
    name = "irt"

    def __init__(self, embedder: Embedder, dims: tuple[int, ...] = DIMS,
                 l2s: tuple[float, ...] = L2S, folds: int = CV_FOLDS, seed: int = 0,
                 max_iter: int = 300) -> None:
        self.embedder = embedder
        self.dims, self.l2s = tuple(dims), tuple(l2s)
        self.folds, self.seed, self.max_iter = folds, seed, max_iter
        self.models: list[str] = []
        self.x_mean = np.zeros(0)
        self.params: dict[str, np.ndarray] = {}
        self.chosen: dict[str, Any] = {}

    def fit(self, data: OutcomeMatrix) -> None:
        self.fit_embedded(self.embedder.embed(data.prompts), data)

    def fit_embedded(self, X: np.ndarray, data: OutcomeMatrix) -> None:
        check_data(data, MIN_ITEMS, "the IRT router")
        self.models = list(data.models)
        X = np.asarray(X, float)
        Y = np.asarray(data.scores, float)
        grid = list(product(self.dims, self.l2s))
        if len(grid) > 1:
            fold = np.random.default_rng(self.seed).permutation(len(Y)) % self.folds
            err = {g: 0.0 for g in grid}
            for f in range(self.folds):
                tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
                mu = X[tr].mean(axis=0)
                o = ~np.isnan(Y[te])
                for g in grid:
                    p = _fit(X[tr] - mu, Y[tr], g[0], g[1], self.seed, self.max_iter)
                    P = _predict(p, X[te] - mu)
                    err[g] += float(np.sum((P[o] - Y[te][o]) ** 2))
            best = min(grid, key=lambda g: err[g])
            cv = err[best] / max(int((~np.isnan(Y)).sum()), 1)
        else:
            best, cv = grid[0], None
        self.chosen = {"dim": best[0], "l2": best[1], "cv_brier": cv}
        self.x_mean = X.mean(axis=0)
        self.params = _fit(X - self.x_mean, Y, best[0], best[1], self.seed, self.max_iter)

    def predict(self, prompts: list[str]) -> np.ndarray:
        return self.predict_embedded(self.embedder.embed(prompts))

    def predict_embedded(self, Q: np.ndarray) -> np.ndarray:
        return _predict(self.params, np.asarray(Q, float) - self.x_mean)

    def difficulty(self, prompts: list[str]) -> np.ndarray:
        """Each prompt's predicted difficulty b(x) (higher: harder for every model)."""
        Xc = np.asarray(self.embedder.embed(prompts), float) - self.x_mean
        return Xc @ self.params["w"] + self.params["b0"][0]

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"dims": list(self.dims), "l2s": list(self.l2s), "folds": self.folds,
                  "seed": self.seed, "max_iter": self.max_iter, "models": self.models,
                  "chosen": self.chosen}
        return params, {"x_mean": self.x_mean, **self.params}

    @classmethod
    def from_state(cls, embedder: Embedder, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> IRTRouter:
        r = cls(embedder, dims=tuple(int(d) for d in params["dims"]),
                l2s=tuple(float(v) for v in params["l2s"]), folds=int(params["folds"]),
                seed=int(params["seed"]), max_iter=int(params["max_iter"]))
        r.models = list(params["models"])
        r.chosen = dict(params["chosen"])
        r.x_mean = np.asarray(arrays["x_mean"], float)
        r.params = {k: np.asarray(arrays[k], float)
                    for k in ("A", "a0", "w", "b0", "theta", "c")}
        return r
