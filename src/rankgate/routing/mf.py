"""Matrix-factorisation router (RouteLLM's MF / EmbedLLM): prompts and models in one space.

A prompt's embedding x (centred on the training mean) is projected to a small latent vector
z = Wᵀx; each model j has a latent vector v_j and a bias b_j; predicted quality is
σ(v_j·z + b_j). Unlike per-model classifiers, all models share W, so what is learned from one
model's outcomes about a *kind* of prompt helps the others — the point of factorising.

Training minimises binary cross-entropy over the *observed* entries only (missing scores are
absent, not zero), with graded scores as soft labels, plus L2 on W and V. The problem is small
(items × models) and smooth, so scipy's L-BFGS on the full batch beats hand-tuned SGD: no
learning rate, deterministic for a given ``seed`` (the initialisation), converges in seconds.
Biases start at the logit of each model's mean, so an under-trained model still predicts the
right average.

Defaults, from an 80/20 split of llmrouter-9models train: ``l2`` = 1e-4 (per-model AUC 0.773;
1e-3 underfits at 0.749, 3e-5 overfits at 0.760); ``dim`` 16–64 are indistinguishable because
L2 on both factors acts as a trace-norm penalty that picks the rank itself; L-BFGS converges
(projected gradient tolerance) in under 100 iterations, so ``max_iter`` is only a guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.baselines import model_means


def logit(p: np.ndarray | float, eps: float = 1e-4) -> np.ndarray:
    p = np.clip(np.asarray(p, float), eps, 1 - eps)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, float)))  # overflow-free


@contextmanager
def serial_blas() -> Iterator[None]:
    """Run BLAS on one thread inside the block.

    Router matrices are small (items × 384), so extra BLAS threads buy little even on an idle
    machine; on a busy one — a gateway whose model server owns the cores — OpenBLAS threads
    spin against it and a fit gets ~100× slower (measured: MF on 400 items 17 s vs 0.17 s,
    9 logistic regressions on 1,500 items 11 s vs 0.16 s, with the 2 cores oversubscribed).
    """
    from threadpoolctl import threadpool_limits  # ships with scikit-learn

    with threadpool_limits(limits=1, user_api="blas"):
        yield


class MFRouter:
    name = "mf"

    def __init__(self, embedder: Embedder, dim: int = 32, l2: float = 1e-4,
                 max_iter: int = 300, seed: int = 0) -> None:
        if dim < 1 or l2 < 0 or max_iter < 1:
            raise ValueError("need dim >= 1, l2 >= 0, max_iter >= 1")
        self.embedder = embedder
        self.dim = dim
        self.l2 = l2
        self.max_iter = max_iter
        self.seed = seed
        self.models: list[str] = []
        self.W = np.zeros((0, dim))
        self.V = np.zeros((0, dim))
        self.b = np.zeros(0)
        self.x_mean = np.zeros(0)

    def fit(self, data: OutcomeMatrix) -> None:
        self.fit_embedded(self.embedder.embed(data.prompts), data)

    def fit_embedded(self, X: np.ndarray, data: OutcomeMatrix) -> None:
        from scipy.optimize import minimize

        if len(data.prompts) == 0:
            raise ValueError("cannot fit a router on no items")
        self.models = list(data.models)
        X = np.asarray(X, float)
        self.x_mean = X.mean(axis=0)
        Xc = X - self.x_mean
        Y = np.asarray(data.scores, float)
        mask = ~np.isnan(Y)
        Yf = np.where(mask, Y, 0.0)
        n_obs = max(int(mask.sum()), 1)
        d, m, r = Xc.shape[1], Y.shape[1], self.dim
        rng = np.random.default_rng(self.seed)
        W0 = rng.normal(0, 1 / np.sqrt(d), (d, r))
        V0 = rng.normal(0, 0.1, (m, r))
        b0 = logit(model_means(Y))
        sizes = [d * r, m * r, m]

        def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            W, V, b = np.split(theta, np.cumsum(sizes)[:-1])
            return W.reshape(d, r), V.reshape(m, r), b

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W, V, b = unpack(theta)
            Z = Xc @ W
            L = Z @ V.T + b
            P = sigmoid(L)
            # soft-label BCE written on logits: softplus(L) − y·L, stable for any L
            bce = (np.logaddexp(0.0, L) - Yf * L) * mask
            f = bce.sum() / n_obs + self.l2 * ((W**2).sum() + (V**2).sum())
            G = (P - Yf) * mask / n_obs
            gV = G.T @ Z + 2 * self.l2 * V
            gW = Xc.T @ (G @ V) + 2 * self.l2 * W
            gb = G.sum(axis=0)
            return float(f), np.concatenate([gW.ravel(), gV.ravel(), gb])

        theta0 = np.concatenate([W0.ravel(), V0.ravel(), b0])
        with serial_blas():
            res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                           options={"maxiter": self.max_iter})
        self.W, self.V, self.b = unpack(res.x)

    def predict(self, prompts: list[str]) -> np.ndarray:
        return self.predict_embedded(self.embedder.embed(prompts))

    def predict_embedded(self, Q: np.ndarray) -> np.ndarray:
        Z = (np.asarray(Q, float) - self.x_mean) @ self.W
        return sigmoid(Z @ self.V.T + self.b)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"dim": self.dim, "l2": self.l2, "max_iter": self.max_iter, "seed": self.seed,
                  "models": self.models}
        return params, {"W": self.W, "V": self.V, "b": self.b, "x_mean": self.x_mean}

    @classmethod
    def from_state(cls, embedder: Embedder, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> MFRouter:
        r = cls(embedder, dim=int(params["dim"]), l2=float(params["l2"]),
                max_iter=int(params["max_iter"]), seed=int(params["seed"]))
        r.models = list(params["models"])
        r.W, r.V = np.asarray(arrays["W"], float), np.asarray(arrays["V"], float)
        r.b, r.x_mean = np.asarray(arrays["b"], float), np.asarray(arrays["x_mean"], float)
        return r
