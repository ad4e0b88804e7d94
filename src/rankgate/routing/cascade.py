"""Cascade: answer with the cheapest model first, accept when it is confident, else escalate.

Unlike a router, a cascade *pays* for every model it tries, so its cost is the sum over the
calls made — replay counts exactly that. Confidence is the answer's mean token logprob
(recorded in outcomes when the backend gives logprobs). Thresholds are calibrated on training
data: for a target precision α, each model's threshold is the lowest confidence above which its
training answers were right at least α of the time; sweeping α traces the cost/quality curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Cascade:
    order: list[int]  # model indices, cheapest first
    thresholds: np.ndarray  # per position in ``order`` (the last is never consulted)

    def run(self, conf: np.ndarray, scores: np.ndarray, costs: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Replay on items: (realised score, total cost of all calls, index of answering model).

        ``conf``/``scores``/``costs`` are [n, m]; a NaN confidence never passes a threshold.
        """
        n = scores.shape[0]
        realised = np.zeros(n)
        spent = np.zeros(n)
        answered = np.full(n, self.order[-1])
        open_ = np.ones(n, dtype=bool)
        for pos, j in enumerate(self.order):
            spent[open_] += np.nan_to_num(costs[open_, j])
            last = pos == len(self.order) - 1
            accept = open_ & (last | (np.nan_to_num(conf[:, j], nan=-np.inf)
                                      >= self.thresholds[pos]))
            realised[accept] = scores[accept, j]
            answered[accept] = j
            open_ &= ~accept
        return realised, spent, answered


def threshold_for_precision(conf: np.ndarray, correct: np.ndarray, alpha: float) -> float:
    """Lowest confidence t such that answers with confidence ≥ t were right ≥ α of the time
    (∞ when no such t exists: never accept)."""
    ok = ~np.isnan(conf)
    c, y = conf[ok], correct[ok]
    if len(c) == 0:
        return float("inf")
    order = np.argsort(-c)
    prec = np.cumsum(y[order]) / np.arange(1, len(c) + 1)
    good = np.where(prec >= alpha)[0]
    return float(c[order][good.max()]) if len(good) else float("inf")


def calibrate(conf: np.ndarray, scores: np.ndarray, costs: np.ndarray, alpha: float) -> Cascade:
    """A cascade over all models, cheapest first, with thresholds for target precision α."""
    mean_cost = np.nanmean(costs, axis=0)
    order = [int(j) for j in np.argsort(np.nan_to_num(mean_cost, nan=np.inf))]
    thresholds = np.array([threshold_for_precision(conf[:, j], scores[:, j] >= 0.5, alpha)
                           for j in order])
    return Cascade(order, thresholds)


def curve(train_conf: np.ndarray, train_scores: np.ndarray, train_costs: np.ndarray,
          test_conf: np.ndarray, test_scores: np.ndarray, test_costs: np.ndarray,
          alphas: np.ndarray | None = None) -> list[tuple[float, float, float]]:
    """(mean cost, mean quality, α) on the test items for thresholds calibrated on train."""
    alphas = np.linspace(0.0, 1.0, 41) if alphas is None else alphas
    pts = []
    for a in alphas:
        cas = calibrate(train_conf, train_scores, train_costs, float(a))
        q, c, _ = cas.run(test_conf, test_scores, test_costs)
        pts.append((float(c.mean()), float(q.mean()), float(a)))
    return sorted(set(pts))
