"""LinUCB bandit over query embeddings: keeps learning which model to use from feedback.

Each model (arm) j has a ridge-regression estimate θ_j of quality given the query features x;
``predict`` returns θ_j·x (so the shared policy and explanations work as for every router), and
``select`` adds the upper-confidence bonus α·sqrt(xᵀA_j⁻¹x) so rarely tried models still get
tried. It is warm-started from offline outcomes (each (item, model, score) is one observation)
and ``update`` folds in one piece of live feedback in O(d²) (Sherman–Morrison), so a thumbs-down
changes the next choice at once. Features: the embedding projected to ``dim`` dimensions by a
fixed random projection (seeded; stored in the artifact) plus a bias term.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import Knob, OutcomeMatrix, choose


class LinUCBRouter:
    name = "bandit"

    def __init__(self, embedder: Embedder, alpha: float = 0.5, dim: int = 48, ridge: float = 1.0,
                 seed: int = 0) -> None:
        self.embedder = embedder
        self.alpha = alpha
        self.dim = dim
        self.ridge = ridge
        self.seed = seed
        self.models: list[str] = []
        self.proj: np.ndarray | None = None
        self.A_inv: np.ndarray | None = None  # [m, d, d]
        self.b: np.ndarray | None = None  # [m, d]
        self.n_updates: np.ndarray | None = None

    def _features(self, prompts: list[str]) -> np.ndarray:
        assert self.proj is not None, "fit the bandit first"
        e = np.asarray(self.embedder.embed(prompts), dtype=np.float64)
        z = e @ self.proj
        return np.hstack([z, np.ones((len(prompts), 1))])

    def fit(self, data: OutcomeMatrix) -> None:
        self.models = list(data.models)
        rng = np.random.default_rng(self.seed)
        d_in = self.embedder.dim
        self.proj = rng.normal(0, 1 / np.sqrt(self.dim), size=(d_in, self.dim))
        d = self.dim + 1
        m = len(self.models)
        X = self._features(data.prompts)
        A = np.repeat(self.ridge * np.eye(d)[None], m, axis=0)
        self.b = np.zeros((m, d))
        for j in range(m):
            ok = ~np.isnan(data.scores[:, j])
            Xj, yj = X[ok], data.scores[ok, j]
            A[j] += Xj.T @ Xj
            self.b[j] = Xj.T @ yj
        self.A_inv = np.linalg.inv(A)
        self.n_updates = np.zeros(m)

    def _theta(self) -> np.ndarray:
        assert self.A_inv is not None and self.b is not None
        return np.einsum("mij,mj->mi", self.A_inv, self.b)

    def predict(self, prompts: list[str]) -> np.ndarray:
        X = self._features(prompts)
        return np.clip(X @ self._theta().T, 0.0, 1.0)

    def select(self, prompt: str, costs: np.ndarray, knob: Knob) -> tuple[int, np.ndarray]:
        """The arm to play for ``prompt`` (mean + exploration bonus, through the policy)."""
        assert self.A_inv is not None
        x = self._features([prompt])[0]
        mean = np.clip(self._theta() @ x, 0.0, 1.0)
        bonus = self.alpha * np.sqrt(np.einsum("i,mij,j->m", x, self.A_inv, x))
        j = int(choose((mean + bonus)[None, :], costs, knob)[0])
        return j, mean

    def update(self, prompt: str, model: str, reward: float) -> None:
        """Fold in one observed reward (feedback score in [0, 1]) for ``model`` on ``prompt``."""
        assert self.A_inv is not None and self.b is not None and self.n_updates is not None
        j = self.models.index(model)
        x = self._features([prompt])[0]
        Ainv = self.A_inv[j]
        Ax = Ainv @ x
        self.A_inv[j] = Ainv - np.outer(Ax, Ax) / (1.0 + x @ Ax)
        self.b[j] += reward * x
        self.n_updates[j] += 1

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert self.proj is not None and self.A_inv is not None and self.b is not None
        assert self.n_updates is not None
        params = {"alpha": self.alpha, "dim": self.dim, "ridge": self.ridge, "seed": self.seed,
                  "models": self.models}
        return params, {"proj": self.proj, "A_inv": self.A_inv, "b": self.b,
                        "n_updates": self.n_updates}

    @classmethod
    def from_state(cls, embedder: Embedder, params: dict[str, Any], arrays: dict[str, np.ndarray]
                   ) -> LinUCBRouter:
        r = cls(embedder, alpha=params["alpha"], dim=params["dim"], ridge=params["ridge"],
                seed=params["seed"])
        r.models = list(params["models"])
        r.proj, r.A_inv, r.b = arrays["proj"], arrays["A_inv"].copy(), arrays["b"].copy()
        r.n_updates = arrays["n_updates"].copy()
        return r
