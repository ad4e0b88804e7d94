"""Cluster router (Avengers-Pro style): embed, k-means, a quality per model per cluster.

Prompts are grouped by k-means on their (centred, unit) embeddings; each cluster keeps every
model's mean score there, shrunk towards the model's overall mean by ``prior`` pseudo-items,
so a small cluster says little. A new prompt is scored against its ``top_p`` nearest
centroids, weighted by ``exp(cosine / 0.1)`` — a soft assignment, as Avengers-Pro does. The
per-cluster *cost* Avengers-Pro also keeps is the shared policy's job here: it weighs these
qualities against per-model costs like every other router's.

Why it may help over kNN: a centroid averages hundreds of prompts, so its quality estimate is
less noisy than 50 neighbours' — at the price of coarser boundaries. ``n_clusters``,
``top_p`` and ``prior`` are chosen by cross-validation inside the training data (Brier
score), the same way the tuned kNN is tuned.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.baselines import model_means
from rankgate.routing.knn import centred
from rankgate.routing.knn_tuned import check_data
from rankgate.routing.mf import serial_blas

N_CLUSTERS = (4, 8, 16, 32, 64, 128)
TOP_P = (1, 3)
PRIORS = (1.0, 5.0)
CV_FOLDS = 3
MIN_ITEMS = 40
_SHARPNESS = 0.1


def _kmeans(Z: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Unit-length centroids of ``k`` clusters of the unit rows ``Z`` (spherical-ish k-means)."""
    from sklearn.cluster import KMeans

    with serial_blas():
        km = KMeans(n_clusters=k, n_init=2, random_state=seed, max_iter=100).fit(Z)
    C = km.cluster_centers_.astype(np.float32)
    return C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-6)


def _assign(Z: np.ndarray, C: np.ndarray, top_p: int) -> np.ndarray:
    """Soft assignment weights [n, k] over the ``top_p`` nearest centroids (rows sum to 1)."""
    sims = Z @ C.T
    p = min(top_p, C.shape[0])
    keep = np.argpartition(-sims, p - 1, axis=1)[:, :p]
    W = np.zeros_like(sims, dtype=float)
    s = np.take_along_axis(sims, keep, axis=1)
    w = np.exp((s - s.max(axis=1, keepdims=True)) / _SHARPNESS)
    np.put_along_axis(W, keep, w / w.sum(axis=1, keepdims=True), axis=1)
    return W


def _table(Z: np.ndarray, C: np.ndarray, Y: np.ndarray, prior: float
           ) -> np.ndarray:
    """Per-cluster, per-model quality [k, m] (hard assignment), shrunk to the model means."""
    hard = np.argmax(Z @ C.T, axis=1)
    obs = ~np.isnan(Y)
    filled = np.where(obs, Y, 0.0)
    k = C.shape[0]
    num = np.zeros((k, Y.shape[1]))
    den = np.zeros((k, Y.shape[1]))
    np.add.at(num, hard, filled)
    np.add.at(den, hard, obs.astype(float))
    return (num + prior * model_means(Y)) / (den + prior)


class ClusterRouter:
    name = "cluster"

    def __init__(self, embedder: Embedder, seed: int = 0,
                 n_clusters: tuple[int, ...] = N_CLUSTERS, top_p: tuple[int, ...] = TOP_P,
                 priors: tuple[float, ...] = PRIORS, folds: int = CV_FOLDS) -> None:
        self.embedder = embedder
        self.seed = seed
        self.grid_k, self.grid_p, self.grid_prior = tuple(n_clusters), tuple(top_p), tuple(priors)
        self.folds = folds
        self.models: list[str] = []
        self.x_mean = np.zeros(0, np.float32)
        self.centroids = np.zeros((0, 0), np.float32)
        self.quality = np.zeros((0, 0))
        self.chosen: dict[str, Any] = {}

    def fit(self, data: OutcomeMatrix) -> None:
        self.fit_embedded(self.embedder.embed(data.prompts), data)

    def fit_embedded(self, X: np.ndarray, data: OutcomeMatrix) -> None:
        check_data(data, MIN_ITEMS, "the cluster router")
        self.models = list(data.models)
        X = np.asarray(X, np.float32)
        Y = np.asarray(data.scores, float)
        n = len(Y)
        ks = [k for k in self.grid_k if k <= max(1, n // (2 * self.folds))] or [1]
        fold = np.random.default_rng(self.seed).permutation(n) % self.folds
        grid = list(product(ks, self.grid_p, self.grid_prior))
        err = {g: 0.0 for g in grid}
        obs = ~np.isnan(Y)
        for f in range(self.folds):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            mu = X[tr].mean(axis=0)
            Ztr, Zte = centred(X[tr], mu), centred(X[te], mu)
            for k in ks:
                C = _kmeans(Ztr, k, self.seed)
                for prior in self.grid_prior:
                    T = _table(Ztr, C, Y[tr], prior)
                    for p in self.grid_p:
                        P = _assign(Zte, C, p) @ T
                        o = obs[te]
                        err[(k, p, prior)] += float(np.sum((P[o] - Y[te][o]) ** 2))
        best = min(grid, key=lambda g: err[g])
        self.chosen = {"n_clusters": best[0], "top_p": best[1], "prior": best[2],
                       "cv_brier": err[best] / max(int(obs.sum()), 1)}
        self.x_mean = X.mean(axis=0)
        Z = centred(X, self.x_mean)
        self.centroids = _kmeans(Z, best[0], self.seed)
        self.quality = _table(Z, self.centroids, Y, best[2])

    def predict(self, prompts: list[str]) -> np.ndarray:
        return self.predict_embedded(self.embedder.embed(prompts))

    def predict_embedded(self, Q: np.ndarray) -> np.ndarray:
        W = _assign(centred(Q, self.x_mean), self.centroids, int(self.chosen["top_p"]))
        return np.clip(W @ self.quality, 0.0, 1.0)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"seed": self.seed, "n_clusters": list(self.grid_k), "top_p": list(self.grid_p),
                  "priors": list(self.grid_prior), "folds": self.folds, "models": self.models,
                  "chosen": self.chosen}
        return params, {"x_mean": self.x_mean, "centroids": self.centroids,
                        "quality": self.quality}

    @classmethod
    def from_state(cls, embedder: Embedder, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> ClusterRouter:
        r = cls(embedder, seed=int(params["seed"]),
                n_clusters=tuple(int(k) for k in params["n_clusters"]),
                top_p=tuple(int(p) for p in params["top_p"]),
                priors=tuple(float(p) for p in params["priors"]), folds=int(params["folds"]))
        r.models = list(params["models"])
        r.chosen = dict(params["chosen"])
        r.x_mean = np.asarray(arrays["x_mean"], np.float32)
        r.centroids = np.asarray(arrays["centroids"], np.float32)
        r.quality = np.asarray(arrays["quality"], float)
        return r
