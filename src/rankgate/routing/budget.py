"""Cost-aware routing for N models: the λ a savings target implies, read off training data.

``λ`` (quality − λ·cost) is the policy's one cost knob, but nobody thinks in "$ per unit of
quality". People think "spend 70% less than always calling the best model". This module turns
that into λ: on the held-out predictions the artifact already keeps for the guarantee
(out-of-fold, as served, :class:`rankgate.routing.conformal.Guarantee`), sweep λ with the
shared policy and take the *smallest* λ whose mean cost fits ``(1 − savings) × cost of the
best model`` (best = highest realised mean quality on those items). Smallest, because λ only
trades quality away: any larger λ is cheaper still and no better. The training items, not the
test items, set it — the same rule as every other tuned number here.
"""

from __future__ import annotations

import numpy as np

from rankgate.routing.base import Knob, choose


def lambda_for_savings(P: np.ndarray, Y: np.ndarray, costs: np.ndarray, savings: float,
                       n_points: int = 200) -> float:
    """The smallest λ ($ per unit of quality, in ``costs``' units) whose policy spends at most
    ``(1 − savings)`` × the best model's mean cost on the items of ``P`` [n, m]."""
    if not 0 <= savings < 1:
        raise ValueError("savings is a share in [0, 1)")
    P, c = np.asarray(P, float), np.asarray(costs, float)
    if not np.isfinite(c).all():
        raise ValueError("a savings target needs a known cost for every model")
    with np.errstate(all="ignore"):
        q = np.nanmean(np.asarray(Y, float), axis=0)
    budget = (1 - savings) * float(c[int(np.nanargmax(q))])
    scale = float(c.max()) if c.max() > 0 else 1.0
    gaps = np.abs(P[:, :, None] - P[:, None, :]).max() + 1e-9
    dc = np.diff(np.unique(c / scale))
    top = gaps / (dc.min() if dc.size else 1.0) * 2
    lams = np.concatenate([[0.0], np.geomspace(top * 1e-6, top, n_points)])
    for lam in lams:
        if c[choose(P, c / scale, Knob(lam=float(lam)))].mean() <= budget * (1 + 1e-9):
            return float(lam) / scale
    return float(lams[-1]) / scale
