"""Routers that ignore the prompt (or cheat): the yardsticks a learned router must beat.

* :class:`SingleModelRouter` — always one model. It predicts every model's training mean, but
  raises the chosen model to 1 so any policy picks it (with ``lam=0``); its predicted qualities
  stay honest for the others, which is what an explanation should show.
* :class:`RandomRouter` — a uniformly random model per prompt, reproducible per prompt text
  (the same prompt gets the same pick, whatever the batch).
* :class:`OracleRouter` — knows the true scores of the items it is given; replay only.

Replay computes the zero-router and oracle curves from the score matrix itself; these exist for
code that needs a *router object* (the gateway, a side-by-side benchmark).
Also home to :func:`model_means`, the prompt-blind prior every learned router shrinks towards.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import OutcomeMatrix


def model_means(scores: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per-model mean of the observed scores [m]; ``default`` for a model with none."""
    obs = ~np.isnan(scores)
    n = obs.sum(axis=0)
    total = np.where(obs, scores, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), default)


class SingleModelRouter:
    """Always routes to ``model`` (at ``lam=0``); useful as the "just use X" baseline."""

    name = "single"

    def __init__(self, model: str) -> None:
        self.model = model
        self.models: list[str] = []
        self.means = np.zeros(0)

    def fit(self, data: OutcomeMatrix) -> None:
        if self.model not in data.models:
            raise ValueError(f"model {self.model!r} is not in the panel {data.models}")
        self.models = list(data.models)
        self.means = model_means(data.scores)

    def predict(self, prompts: list[str]) -> np.ndarray:
        row = self.means.copy()
        row[self.models.index(self.model)] = 1.0
        return np.tile(row, (len(prompts), 1))

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"model": self.model, "models": self.models}, {"means": self.means}

    @classmethod
    def from_state(cls, embedder: Embedder | None, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> SingleModelRouter:
        r = cls(params["model"])
        r.models = list(params["models"])
        r.means = np.asarray(arrays["means"], float)
        return r


class RandomRouter:
    """A uniformly random quality per (prompt, model): a random pick under any knob."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.models: list[str] = []

    def fit(self, data: OutcomeMatrix) -> None:
        self.models = list(data.models)

    def predict(self, prompts: list[str]) -> np.ndarray:
        out = np.empty((len(prompts), len(self.models)))
        for i, p in enumerate(prompts):
            h = hashlib.sha256(f"{self.seed}\x00{p}".encode("utf-8", "surrogatepass")).digest()
            out[i] = np.random.default_rng(int.from_bytes(h[:8], "little")).random(
                len(self.models))
        return out

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"seed": self.seed, "models": self.models}, {}

    @classmethod
    def from_state(cls, embedder: Embedder | None, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> RandomRouter:
        r = cls(seed=int(params["seed"]))
        r.models = list(params["models"])
        return r


class OracleRouter:
    """Predicts the *true* scores of the prompts it was fitted on (missing → model mean).

    For replay only: an upper bound, never a deployable router. Unknown prompts get the
    model means.
    """

    name = "oracle"

    def __init__(self) -> None:
        self.models: list[str] = []
        self.rows: dict[str, np.ndarray] = {}
        self.means = np.zeros(0)

    def fit(self, data: OutcomeMatrix) -> None:
        self.models = list(data.models)
        self.means = model_means(data.scores)
        filled = np.where(np.isnan(data.scores), self.means, data.scores)
        self.rows = {p: filled[i] for i, p in enumerate(data.prompts)}

    def predict(self, prompts: list[str]) -> np.ndarray:
        return np.array([self.rows.get(p, self.means) for p in prompts]).reshape(
            len(prompts), len(self.models))

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        raise NotImplementedError("the oracle reads the test answers; it is never saved")
