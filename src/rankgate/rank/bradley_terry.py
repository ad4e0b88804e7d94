"""Bradley–Terry ratings from pairwise votes, fitted by maximum likelihood.

P(a beats b) = σ(β_a − β_b). Ties count as half a win each way (the usual convention). The fit
is order-independent — unlike an online Elo, shuffling the votes changes nothing — and a small
ridge penalty keeps ratings finite when a model wins or loses every comparison. Intervals come
from a bootstrap over votes; ranks tie when intervals overlap, as Chatbot Arena reports them
(a model's rank is 1 + the number of models whose interval lies entirely above its own).
Ratings are reported on the Elo-like scale 400·β/ln(10) + 1000, mean-centred at 1000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

SCALE = 400.0 / np.log(10.0)


@dataclass(frozen=True)
class Vote:
    """One pairwise verdict. Votes of every ``source`` (``judge``, ``feedback``, ``import``)
    go into the same fit; the source is kept so a ranking can say what it was made of."""

    a: str
    b: str
    outcome: float  # 1: a wins, 0: b wins, 0.5: tie
    source: str = "import"


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float
    low: float
    high: float
    rank: int
    n_votes: int


def _fit(idx_a: np.ndarray, idx_b: np.ndarray, y: np.ndarray, w: np.ndarray, k: int,
         ridge: float) -> np.ndarray:
    def nll(beta: np.ndarray) -> tuple[float, np.ndarray]:
        z = beta[idx_a] - beta[idx_b]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-12
        ll = w * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
        g = w * (y - p)
        grad = np.zeros(k)
        np.add.at(grad, idx_a, -g)
        np.add.at(grad, idx_b, g)
        return -ll.sum() + ridge * np.sum(beta ** 2), grad + 2 * ridge * beta

    res = minimize(nll, np.zeros(k), jac=True, method="L-BFGS-B")
    beta = res.x
    return beta - beta.mean()


def fit(votes: list[Vote], models: list[str] | None = None, n_boot: int = 200,
        seed: int = 0, ridge: float = 1e-3) -> list[Rating]:
    """Ratings with 95% bootstrap intervals, best first."""
    names = models or sorted({v.a for v in votes} | {v.b for v in votes})
    index = {m: i for i, m in enumerate(names)}
    votes = [v for v in votes if v.a in index and v.b in index and v.a != v.b]
    if not votes:
        return []
    ia = np.array([index[v.a] for v in votes])
    ib = np.array([index[v.b] for v in votes])
    y = np.array([v.outcome for v in votes], dtype=float)
    w = np.ones(len(votes))
    k = len(names)
    beta = _fit(ia, ib, y, w, k, ridge)
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot, k))
    for r in range(n_boot):
        counts = np.bincount(rng.integers(0, len(votes), len(votes)), minlength=len(votes))
        boots[r] = _fit(ia, ib, y, counts.astype(float), k, ridge)
    low = np.quantile(boots, 0.025, axis=0)
    high = np.quantile(boots, 0.975, axis=0)
    n_votes = np.bincount(np.concatenate([ia, ib]), minlength=k)
    ratings = []
    for i, m in enumerate(names):
        better = int(np.sum(low > high[i]))  # models whose whole interval is above ours
        ratings.append(Rating(m, float(1000 + SCALE * beta[i]), float(1000 + SCALE * low[i]),
                              float(1000 + SCALE * high[i]), 1 + better, int(n_votes[i])))
    return sorted(ratings, key=lambda r: -r.rating)


def count_sources(votes: list[Vote]) -> dict[str, int]:
    """How many votes of each source, most first."""
    from collections import Counter

    return dict(Counter(v.source for v in votes).most_common())


def win_probability(rating_a: float, rating_b: float) -> float:
    return float(1.0 / (1.0 + 10 ** ((rating_b - rating_a) / 400.0)))
