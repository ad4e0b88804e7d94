"""Per-model classifier router: one logistic regression per model, "will model j do well on x?".

Graded scores are used as *soft labels*, not thresholded: each item enters model j's training
set twice, as a success with weight s and as a failure with weight 1 − s. The weighted log-loss
is then exactly the cross-entropy against s, so a 0.7 counts as 0.7 — thresholding at 0.5
would throw away the grade and treat 0.51 like 1.0. Logistic regression minimises log-loss, so
its probabilities are calibrated in the sense the policy needs (a predicted 0.7 means about 0.7
on average over similar prompts) without a separate calibration step; the L2 strength ``C`` is
what keeps them from being over-confident on 384 dimensions. Items where model j's score is
missing are left out of model j's fit only.

A model whose observed labels are all one value (always right, always wrong, or a constant
grade) has nothing to discriminate: it predicts its mean. Prediction is a dot product in NumPy,
so the artifact holds plain coefficients and serving does not import scikit-learn.
``C`` = 1 was chosen on an 80/20 split of llmrouter-9models train (per-model AUC 0.776; 0.3:
0.772, 3: 0.773 and slower to fit).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.baselines import model_means
from rankgate.routing.mf import serial_blas, sigmoid


def fit_soft_logistic(X: np.ndarray, y: np.ndarray, C: float, max_iter: int = 500
                      ) -> tuple[np.ndarray, float] | None:
    """(coef, intercept) of an L2 logistic regression on soft labels ``y`` ∈ [0, 1], or None
    when ``y`` is constant (nothing to learn)."""
    from sklearn.linear_model import LogisticRegression

    if len(y) == 0 or np.ptp(y) == 0:
        return None
    n = len(y)
    XX = np.concatenate([X, X])
    yy = np.concatenate([np.ones(n), np.zeros(n)])
    ww = np.concatenate([y, 1.0 - y])
    keep = ww > 0
    clf = LogisticRegression(C=C, max_iter=max_iter)
    clf.fit(XX[keep], yy[keep], sample_weight=ww[keep])
    return clf.coef_[0].astype(float), float(clf.intercept_[0])


class ClassifierRouter:
    name = "classifier"

    def __init__(self, embedder: Embedder, C: float = 1.0, max_iter: int = 500) -> None:
        if C <= 0:
            raise ValueError("C must be > 0")
        self.embedder = embedder
        self.C = C
        self.max_iter = max_iter
        self.models: list[str] = []
        self.coef = np.zeros((0, 0))  # [m, d]
        self.intercept = np.zeros(0)  # [m]
        self.constant = np.zeros(0)  # [m]: the mean for a model with one label value, else NaN

    def fit(self, data: OutcomeMatrix) -> None:
        self.fit_embedded(self.embedder.embed(data.prompts), data)

    def fit_embedded(self, X: np.ndarray, data: OutcomeMatrix) -> None:
        if len(data.prompts) == 0:
            raise ValueError("cannot fit a router on no items")
        self.models = list(data.models)
        X = np.asarray(X, float)
        Y = np.asarray(data.scores, float)
        m, d = Y.shape[1], X.shape[1]
        means = model_means(Y)
        self.coef = np.zeros((m, d))
        self.intercept = np.zeros(m)
        self.constant = np.full(m, np.nan)
        with serial_blas():
            for j in range(m):
                obs = ~np.isnan(Y[:, j])
                fitted = fit_soft_logistic(X[obs], Y[obs, j], self.C, self.max_iter)
                if fitted is None:
                    self.constant[j] = means[j]
                else:
                    self.coef[j], self.intercept[j] = fitted

    def predict(self, prompts: list[str]) -> np.ndarray:
        return self.predict_embedded(self.embedder.embed(prompts))

    def predict_embedded(self, Q: np.ndarray) -> np.ndarray:
        P = sigmoid(np.asarray(Q, float) @ self.coef.T + self.intercept)
        const = ~np.isnan(self.constant)
        P[:, const] = self.constant[const]
        return P

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"C": self.C, "max_iter": self.max_iter, "models": self.models}
        return params, {"coef": self.coef, "intercept": self.intercept,
                        "constant": self.constant}

    @classmethod
    def from_state(cls, embedder: Embedder, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> ClassifierRouter:
        r = cls(embedder, C=float(params["C"]), max_iter=int(params["max_iter"]))
        r.models = list(params["models"])
        r.coef = np.asarray(arrays["coef"], float)
        r.intercept = np.asarray(arrays["intercept"], float)
        r.constant = np.asarray(arrays["constant"], float)
        return r
