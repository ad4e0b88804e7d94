"""k-nearest-neighbour router: a model does well on prompts like the ones it did well on.

For a new prompt, take the ``k`` most cosine-similar training prompts and average each model's
scores over them, weighting neighbour i by ``exp((sim_i − 1) / temperature)`` — an *absolute*
weight (1 for an identical prompt, tiny for a distant one), so that the estimate is then shrunk
towards the model's global mean by ``prior`` pseudo-neighbours of weight 1:

    q_j = (Σ_i w_i·s_ij + prior·μ_j) / (Σ_i w_i + prior)      over neighbours where s_ij is known

Few or dissimilar neighbours therefore give nearly the global mean (the honest answer when we
have not seen anything like this prompt), many close ones give their local average. Missing
scores simply drop out of that model's sums. Embeddings are centred on the training mean first:
e5 vectors share a large common direction that makes every pair look similar (raw cosine of a
prompt's 20th neighbour ≈ 0.8; centred, the nearest is ≈ 0.3–0.6).

Defaults were chosen on an 80/20 split of the llmrouter-9models training set (5,608 items, 9
models): k = 50 beat 10/20 (per-model AUC 0.794 vs 0.779/0.788) and tied 100; temperature 0.3
beat 0.1 (which over-shrinks: AUC 0.784) and tied 1.0; centring added ~0.005 AUC.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.baselines import model_means
from rankgate.routing.mf import serial_blas

_SMALL = 8  # query batches up to this size skip BLAS


def centred(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Rows of ``X`` minus ``mean``, re-normalised to unit length (cosine = dot product)."""
    Z = np.asarray(X, np.float32) - mean
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-6)


class KNNRouter:
    name = "knn"

    def __init__(self, embedder: Embedder, k: int = 50, temperature: float = 0.3,
                 prior: float = 0.3) -> None:
        if k < 1 or temperature <= 0 or prior < 0:
            raise ValueError("need k >= 1, temperature > 0, prior >= 0")
        self.embedder = embedder
        self.k = k
        self.temperature = temperature
        self.prior = prior
        self.models: list[str] = []
        self.X = np.zeros((0, 0), np.float32)  # centred, normalised training embeddings
        self.scores = np.zeros((0, 0))
        self.means = np.zeros(0)
        self.x_mean = np.zeros(0, np.float32)

    def fit(self, data: OutcomeMatrix) -> None:
        self.fit_embedded(self.embedder.embed(data.prompts), data)

    def fit_embedded(self, X: np.ndarray, data: OutcomeMatrix) -> None:
        if len(data.prompts) == 0:
            raise ValueError("cannot fit a router on no items")
        self.models = list(data.models)
        self.x_mean = np.asarray(X, np.float32).mean(axis=0)
        self.X = centred(X, self.x_mean)
        self.scores = np.asarray(data.scores, float)
        self.means = model_means(self.scores)

    def predict(self, prompts: list[str]) -> np.ndarray:
        return self.predict_embedded(self.embedder.embed(prompts))

    def predict_embedded(self, Q: np.ndarray) -> np.ndarray:
        Qc = centred(Q, self.x_mean)
        out = np.empty((len(Qc), len(self.models)))
        k = min(self.k, len(self.X))
        obs = ~np.isnan(self.scores)
        filled = np.where(obs, self.scores, 0.0)
        for s in range(0, len(Qc), 1024):  # bounds the [queries × train] similarity block
            block = Qc[s: s + 1024]
            # One query at serving time: a plain loop beats multithreaded BLAS, whose threads
            # spin against the model server's for the same cores (1 ms vs 15 ms measured).
            if len(block) <= _SMALL:
                sims = np.einsum("qd,nd->qn", block, self.X)
            else:
                with serial_blas():
                    sims = block @ self.X.T
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            w = np.exp((np.take_along_axis(sims, idx, axis=1) - 1.0) / self.temperature)
            num = np.einsum("qk,qkm->qm", w, filled[idx])
            den = np.einsum("qk,qkm->qm", w, obs[idx].astype(float))
            out[s: s + 1024] = (num + self.prior * self.means) / (den + self.prior + 1e-12)
        return np.clip(out, 0.0, 1.0)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"k": self.k, "temperature": self.temperature, "prior": self.prior,
                  "models": self.models}
        return params, {"X": self.X, "scores": self.scores,
                        "means": self.means, "x_mean": self.x_mean}

    @classmethod
    def from_state(cls, embedder: Embedder, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> KNNRouter:
        r = cls(embedder, k=int(params["k"]), temperature=float(params["temperature"]),
                prior=float(params["prior"]))
        r.models = list(params["models"])
        r.X = np.asarray(arrays["X"], np.float32)
        r.scores = np.asarray(arrays["scores"], float)
        r.means = np.asarray(arrays["means"], float)
        r.x_mean = np.asarray(arrays["x_mean"], np.float32)
        return r
