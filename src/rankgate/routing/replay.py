"""Replay: how much quality a router buys per unit of cost on held-out outcomes.

Pure NumPy. Given a complete held-out score matrix ``Y`` [n, m], per-model mean costs ``c`` [m]
and a router's predicted qualities ``P`` [n, m], we sweep the one shared policy (``choose`` with
``Knob(lam=λ)``) and read off the realised (mean cost, mean quality) curve, then summarise it
the way RouteLLM (PGR, APGR, CPT) and RouterBench (AIQ) do, next to the baselines every router
must beat: the *random* router, the *zero* router and the *oracle*.

Definitions (one line each; ``DESIGN.md`` "Metrics we report"):

* curve — for each λ on a grid, (mean c[chosen], mean Y[chosen]); sorted by cost, exact
  duplicates removed. Costs are the given $ means; when any model's cost is unknown, the x axis
  is the *share of calls to the strong model* (cost 1 for the strong model, 0 for the others),
  which is all APGR and CPT need (RouteLLM's own axis; exact for two models). A cost is never
  derived from the order of the models.
* strong / weak — the most / least accurate single model (ties: strong = the more expensive,
  weak = the cheaper); best = strong.
* PGR(q) = (q − q_weak)/(q_strong − q_weak), not clipped; None when q_strong == q_weak.
* share of strong calls of a point = clip((cost − cost_weak)/(cost_strong − cost_weak), 0, 1).
* PGR(share) = best PGR among curve points whose share ≤ that share (upper envelope, a
  non-decreasing step function); 0 before the curve's first point.
* APGR = ∫₀¹ PGR(share) d share, integrated exactly over the steps; None when undefined
  (equal strong/weak quality, or the strong model not dearer than the weak one).
* CPT(x) = smallest share whose PGR(share) ≥ x; None if never.
* AIQ = ∫ over [cost_min, cost_max] of the non-decreasing upper convex hull of the curve
  (linear between hull vertices, flat after the last, 0 before the first) ÷ (cost_max − cost_min).
* quality_at(cost) = best quality among points costing ≤ cost; cost_to_reach(q) = cheapest
  point with quality ≥ q.
* savings_at_95pct_best = 1 − cost_to_reach(0.95·q_best)/cost_best.
* zero router = upper-left convex hull of the single models (random mixing of adjacent hull
  models); random router = mixing weak/strong at share s: (1−s)·weak + s·strong;
  oracle = per item the cheapest model with the item's max score.

Mixing baselines (zero, random) are straight segments; they are reported as curves sampled at
``n_points`` costs so that the same step-envelope metrics apply to every router alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rankgate.routing.base import Knob, choose

DEFAULT_POINTS = 257
"""λ values per curve (and samples per baseline segment set): 256 intervals put share 0.5 on
the grid of the random router, so CPT(50%) of a straight line is exact."""

BASELINES = ("random", "zero", "oracle")
_MAX_BREAKPOINTS = 1_000_000  # breakpoints used to place the λ grid (subsampled beyond this)
_TOL = 1e-9  # float slack when comparing qualities / PGRs against a threshold

Point = tuple[float, float]


# --------------------------------------------------------------------------- inputs


def strong_share_costs(Y: np.ndarray) -> np.ndarray:
    """Costs for data without prices: 1 for the strong model (the best mean quality; the first
    of exactly tied best models), 0 for every other one.

    Mean cost is then the share of calls sent to the strong model — the axis on which RouteLLM
    defines APGR and CPT — so they need only which model is strong, never a price or an order.
    """
    Y = _check(Y)
    q = Y.mean(axis=0)
    out = np.zeros(Y.shape[1])
    out[int(np.flatnonzero(q >= q.max() - 1e-12)[0])] = 1.0
    return out


def resolve_costs(c: np.ndarray | Sequence[float] | None, m: int,
                  order: Sequence[int] | None = None, Y: np.ndarray | None = None
                  ) -> tuple[np.ndarray, bool]:
    """Per-model costs to replay with, and whether they are real ($) costs.

    With every cost known they are used as given. Otherwise the x axis is the share of calls to
    the strong model (:func:`strong_share_costs` of the scores ``Y``); a caller that *knows* the
    cost ranking may instead pass ``order`` (model indices, cheapest first) for rank units
    1..m. Unknown costs are never ranked by column order: that made the first column of a
    RouteLLM file (its strong model) the cheapest and left APGR undefined.
    """
    arr = None if c is None else np.asarray(c, float).reshape(-1)
    if arr is not None and arr.shape != (m,):
        raise ValueError(f"costs have {arr.shape[0]} entries for {m} models")
    if arr is not None and np.isfinite(arr).all():
        if (arr < 0).any():
            raise ValueError("costs must be >= 0")
        return arr, True
    if order is None:
        if Y is None:
            raise ValueError("costs are unknown: give every model's cost, an explicit cost "
                             "order, or the scores (to replay on the strong-call share)")
        return strong_share_costs(Y), False
    order = [int(j) for j in order]
    if sorted(order) != list(range(m)):
        raise ValueError(f"cost order must be a permutation of the {m} model indices")
    ranks = np.empty(m)
    ranks[order] = np.arange(1, m + 1, dtype=float)
    return ranks, False


def _check(Y: np.ndarray, P: np.ndarray | None = None, name: str = "router") -> np.ndarray:
    Y = np.asarray(Y, float)
    if Y.ndim != 2 or Y.shape[0] == 0 or Y.shape[1] == 0:
        raise ValueError("Y must be a non-empty [n_items, n_models] matrix")
    if np.isnan(Y).any():
        raise ValueError("Y has missing scores; replay needs complete rows "
                         "(OutcomeMatrix.complete)")
    if P is not None:
        P = np.asarray(P, float)
        if P.shape != Y.shape:
            raise ValueError(f"{name}: predictions {P.shape} do not match scores {Y.shape}")
        if not np.isfinite(P).all():
            raise ValueError(f"{name}: predictions contain NaN/inf")
    return Y


def _points(curve: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    pts = np.asarray(curve, float).reshape(-1, 2)
    if pts.shape[0] == 0:
        raise ValueError("empty curve")
    return pts


def _as_list(pts: np.ndarray) -> list[Point]:
    return [(float(x), float(y)) for x, y in pts]


def _dedup_sorted(pts: np.ndarray) -> np.ndarray:
    """Sorted by cost then quality, exact duplicates dropped (np.unique sorts lexicographically)."""
    return np.unique(pts, axis=0)


# --------------------------------------------------------------------------- the policy sweep


def _lambda_grid(P: np.ndarray, cn: np.ndarray, n_points: int) -> np.ndarray:
    """λ values (in units of the normalised costs ``cn``) where decisions actually change.

    Item i switches between models j (dearer) and k at λ = (P_ij − P_ik)/(c_j − c_k); quantiles
    of these breakpoints put the grid where the curve moves, 0 gives the best-quality end and
    2·max(breakpoint) the all-cheapest end.
    """
    n, m = P.shape
    pairs = [(j, k) for j in range(m) for k in range(m) if cn[j] > cn[k]]
    if not pairs:
        return np.array([0.0])
    rows = np.arange(n)
    cap = max(1, _MAX_BREAKPOINTS // len(pairs))
    if n > cap:
        rows = np.sort(np.random.default_rng(0).choice(n, cap, replace=False))
    parts = []
    for j, k in pairs:
        b = (P[rows, j] - P[rows, k]) / (cn[j] - cn[k])
        parts.append(b[b > 0])
    bps = np.concatenate(parts)
    if bps.size == 0:
        return np.array([0.0])
    inner = np.quantile(bps, np.linspace(0.0, 1.0, max(n_points - 2, 1)))
    return np.unique(np.concatenate([[0.0], inner, [2.0 * bps.max()]]))


def _choices(P: np.ndarray, c: np.ndarray, n_points: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(λ grid, chosen model per item for each λ) via the shared ``choose`` policy.

    Columns are sorted cheapest-first and costs scaled to max 1 before calling ``choose``: the
    policy is invariant to both, and it makes exact ties go to the cheaper model even when $
    costs are ~1e-6 (where ``choose``'s 1e-12·cost tie-break vanishes below float precision).
    """
    perm = np.argsort(c, kind="stable")
    scale = float(c.max()) if c.size and c.max() > 0 else 1.0
    cn = c[perm] / scale
    Ps = P[:, perm]
    lams = _lambda_grid(Ps, cn, n_points)
    return lams, [perm[choose(Ps, cn, Knob(lam=float(lam)))] for lam in lams]


def curve(P: np.ndarray, Y: np.ndarray, c: np.ndarray | None,
          n_points: int = DEFAULT_POINTS, order: Sequence[int] | None = None) -> list[Point]:
    """The router's realised (mean cost per item, mean quality) points over the knob's λ range.

    Each λ is a real operating point of the deployed policy, so the points are what a user
    would get; they need not be monotone (a worse-predicted dearer choice can lose quality),
    which the metrics handle with an upper envelope rather than by editing the curve.
    """
    Y = _check(Y, P)
    P = np.asarray(P, float)
    cost, _ = resolve_costs(c, Y.shape[1], order, Y)
    rows = np.arange(Y.shape[0])
    _, picks = _choices(P, cost, n_points)
    pts = np.array([[cost[j].mean(), Y[rows, j].mean()] for j in picks])
    return _as_list(_dedup_sorted(pts))


# --------------------------------------------------------------------------- baselines


def single_model_points(Y: np.ndarray, c: np.ndarray | None,
                        order: Sequence[int] | None = None) -> list[Point]:
    """(cost, mean quality) of always calling model j, in column order."""
    Y = _check(Y)
    cost, _ = resolve_costs(c, Y.shape[1], order, Y)
    return [(float(cost[j]), float(Y[:, j].mean())) for j in range(Y.shape[1])]


def reference_models(singles: Sequence[Point]) -> tuple[int, int]:
    """(strong, weak) column indices: the most and least accurate single models.

    Ties: strong = the dearer of the tied best (the premium model a router tries to avoid
    calling, so a cheaper equal model shows up as savings); weak = the cheaper of the tied worst.
    """
    pts = _points(singles)
    cost, q = pts[:, 0], pts[:, 1]
    best = np.flatnonzero(q >= q.max() - 1e-12)
    worst = np.flatnonzero(q <= q.min() + 1e-12)
    return int(best[np.argmax(cost[best])]), int(worst[np.argmin(cost[worst])])


def upper_hull(points: Sequence[Point] | np.ndarray) -> list[Point]:
    """Vertices of the non-decreasing upper convex hull, from the cheapest point to the first
    point of maximum quality.

    Anything between two vertices is reachable by randomly mixing them, so points under the
    hull (dominated models, knob settings) never matter for "best quality at this cost".
    """
    pts = _dedup_sorted(_points(points))
    # one point per cost (the best there), then only points beating every cheaper one: the
    # rising part of the hull passes through such "records" only
    pts = pts[np.r_[pts[1:, 0] != pts[:-1, 0], True]]
    pts = pts[np.r_[True, pts[1:, 1] > np.maximum.accumulate(pts[:-1, 1])]]
    hull: list[Point] = []
    for x, y in pts.tolist():  # Andrew's monotone chain, upper part: clockwise turns only
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append((x, y))
    return hull  # records rise strictly, so the last vertex is the (first) maximum


def zero_router_hull(Y: np.ndarray, c: np.ndarray | None,
                     order: Sequence[int] | None = None) -> list[Point]:
    """The zero router's vertices: the upper-left hull of the single-model points."""
    return upper_hull(single_model_points(Y, c, order))


def _sample_polyline(vertices: Sequence[Point], n_points: int) -> list[Point]:
    """The polyline through ``vertices`` at its vertices plus ``n_points`` evenly spaced costs."""
    v = _points(vertices)
    xs = np.unique(np.concatenate([v[:, 0], np.linspace(v[0, 0], v[-1, 0], n_points)]))
    return _as_list(np.column_stack([xs, np.interp(xs, v[:, 0], v[:, 1])]))


def zero_curve(Y: np.ndarray, c: np.ndarray | None, n_points: int = DEFAULT_POINTS,
               order: Sequence[int] | None = None) -> list[Point]:
    """Zero router as a curve: its hull sampled densely (mixing is linear between vertices)."""
    return _sample_polyline(zero_router_hull(Y, c, order), n_points)


def random_curve(Y: np.ndarray, c: np.ndarray | None, n_points: int = DEFAULT_POINTS,
                 order: Sequence[int] | None = None) -> list[Point]:
    """Random router: send a share s ∈ linspace(0, 1, n_points) of items to the strong model
    and the rest to the weak one — (1−s)·weak + s·strong in both cost and quality."""
    singles = single_model_points(Y, c, order)
    s_i, w_i = reference_models(singles)
    strong, weak = np.array(singles[s_i]), np.array(singles[w_i])
    share = np.linspace(0.0, 1.0, n_points)[:, None]
    return _as_list(_dedup_sorted((1 - share) * weak + share * strong))


def oracle_choice(Y: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Per item, the cheapest model among those with the item's maximum score."""
    best = Y >= Y.max(axis=1, keepdims=True) - 1e-12
    return np.argmin(np.where(best, np.broadcast_to(c, Y.shape), np.inf), axis=1)


def oracle_point(Y: np.ndarray, c: np.ndarray | None,
                 order: Sequence[int] | None = None) -> Point:
    """(mean cost, mean quality) of the oracle: the cheapest correct model per item."""
    Y = _check(Y)
    cost, _ = resolve_costs(c, Y.shape[1], order, Y)
    j = oracle_choice(Y, cost)
    return float(cost[j].mean()), float(Y[np.arange(Y.shape[0]), j].mean())


def oracle_curve(Y: np.ndarray, c: np.ndarray | None, n_points: int = DEFAULT_POINTS,
                 order: Sequence[int] | None = None) -> list[Point]:
    """The knob swept with perfect predictions (P = Y), plus the oracle point (its λ=0 end)."""
    pts = [*curve(Y, Y, c, n_points, order), oracle_point(Y, c, order)]
    return _as_list(_dedup_sorted(_points(pts)))


# --------------------------------------------------------------------------- metrics


def pgr(q: float, q_weak: float, q_strong: float) -> float | None:
    """Performance gap recovered; None when the gap is zero (nothing to recover)."""
    gap = q_strong - q_weak
    if abs(gap) <= 1e-12:
        return None
    return (q - q_weak) / gap


def _share_steps(curve: Sequence[Point] | np.ndarray, strong: Point, weak: Point
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """(shares ascending, running-max PGR) of the curve; None when shares are undefined."""
    (cs, qs), (cw, qw) = strong, weak
    if cs <= cw or abs(qs - qw) <= 1e-12:
        return None
    pts = _points(curve)
    share = np.clip((pts[:, 0] - cw) / (cs - cw), 0.0, 1.0)
    g = (pts[:, 1] - qw) / (qs - qw)
    o = np.lexsort((g, share))
    return share[o], np.maximum.accumulate(g[o])


def apgr(curve: Sequence[Point] | np.ndarray, strong: Point, weak: Point) -> float | None:
    """Average PGR over the share of strong calls ∈ [0, 1] (step upper envelope, exact).

    ``strong``/``weak`` are the reference models' (cost, quality). A multi-model curve is put on
    the share axis by its cost, so spending like x% strong calls is what "x% strong" means.
    """
    steps = _share_steps(curve, strong, weak)
    if steps is None:
        return None
    s, g = steps
    widths = np.diff(np.r_[s, 1.0])
    return float(np.sum(g * widths))  # before s[0]: PGR 0


def cpt(curve: Sequence[Point] | np.ndarray, x: float, strong: Point, weak: Point
        ) -> float | None:
    """Call-performance threshold: the smallest share of strong calls reaching PGR ≥ x."""
    steps = _share_steps(curve, strong, weak)
    if steps is None:
        return None
    s, g = steps
    hit = np.flatnonzero(g >= x - _TOL)
    return float(s[hit[0]]) if hit.size else None


def aiq(curve: Sequence[Point] | np.ndarray, cost_min: float, cost_max: float) -> float:
    """Average improvement in quality (RouterBench): mean height of the curve's non-decreasing
    upper convex hull over [cost_min, cost_max].

    The hull is linear between vertices (mixing), flat after the last vertex (a bigger budget
    can still run the last point) and 0 before the first (nothing is affordable there).
    """
    if cost_max < cost_min:
        raise ValueError("cost_max < cost_min")
    h = _points(upper_hull(curve))
    hx, hy = h[:, 0], h[:, 1]

    def height(x: float) -> float:
        return 0.0 if x < hx[0] else float(np.interp(x, hx, hy))

    if cost_max == cost_min:
        return height(cost_min)
    lo = max(cost_min, float(hx[0]))
    if lo >= cost_max:
        return 0.0
    xs = np.unique(np.r_[lo, cost_max, hx[(hx > lo) & (hx < cost_max)]])
    ys = np.interp(xs, hx, hy)  # np.interp is flat beyond the last vertex
    area = float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0)
    return area / (cost_max - cost_min)


def quality_at(curve: Sequence[Point] | np.ndarray, cost: float) -> float | None:
    """Best quality among curve points costing ≤ ``cost`` (None if none is that cheap)."""
    pts = _points(curve)
    ok = pts[:, 0] <= cost + _TOL * max(1.0, abs(cost))
    return float(pts[ok, 1].max()) if ok.any() else None


def _cheapest_reaching(curve: Sequence[Point] | np.ndarray, target: float) -> Point | None:
    pts = _points(curve)
    ok = pts[:, 1] >= target - _TOL
    if not ok.any():
        return None
    cand = pts[ok]
    cheapest = cand[cand[:, 0] == cand[:, 0].min()]
    return float(cheapest[0, 0]), float(cheapest[:, 1].max())


def cost_to_reach(curve: Sequence[Point] | np.ndarray, target_quality: float) -> float | None:
    """Cost of the cheapest curve point with quality ≥ ``target_quality`` (None if never)."""
    hit = _cheapest_reaching(curve, target_quality)
    return None if hit is None else hit[0]


# --------------------------------------------------------------------------- reports


def curve_metrics(points: Sequence[Point] | np.ndarray, singles: Sequence[Point]
                  ) -> dict[str, Any]:
    """Every reported number for one curve, relative to the panel's single models."""
    s_i, w_i = reference_models(singles)
    strong, weak = singles[s_i], singles[w_i]
    costs = [p[0] for p in singles]
    pts = _dedup_sorted(_points(points))
    hit = _cheapest_reaching(pts, 0.95 * strong[1])
    savings = None
    if hit is not None and strong[0] > 0:
        savings = 1.0 - hit[0] / strong[0]
    return {
        "apgr": apgr(pts, strong, weak),
        "cpt50": cpt(pts, 0.5, strong, weak),
        "cpt80": cpt(pts, 0.8, strong, weak),
        "aiq": aiq(pts, min(costs), max(costs)),
        "quality_at_95pct_best": None if hit is None else hit[1],
        "cost_at_95pct_best": None if hit is None else hit[0],
        "savings_at_95pct_best": savings,
        "curve": [[float(x), float(y)] for x, y in pts],
    }


def evaluate_router(name: str, P: np.ndarray, Y: np.ndarray, c: np.ndarray | None,
                    n_points: int = DEFAULT_POINTS, order: Sequence[int] | None = None
                    ) -> dict[str, Any]:
    """Metrics of router ``name`` (predictions ``P``) replayed on held-out scores ``Y``."""
    Y = _check(Y, P, name)
    return curve_metrics(curve(P, Y, c, n_points, order), single_model_points(Y, c, order))


def evaluate_baselines(Y: np.ndarray, c: np.ndarray | None, n_points: int = DEFAULT_POINTS,
                       order: Sequence[int] | None = None) -> dict[str, dict[str, Any]]:
    """The same metrics for the random, zero and oracle routers."""
    singles = single_model_points(Y, c, order)
    curves = {"random": random_curve(Y, c, n_points, order),
              "zero": zero_curve(Y, c, n_points, order),
              "oracle": oracle_curve(Y, c, n_points, order)}
    return {name: curve_metrics(pts, singles) for name, pts in curves.items()}


def bootstrap_intervals(P: np.ndarray, Y: np.ndarray, c: np.ndarray | None, n_boot: int = 200,
                        seed: int = 0, n_points: int = DEFAULT_POINTS,
                        order: Sequence[int] | None = None
                        ) -> dict[str, list[float] | None]:
    """95% percentile intervals of apgr, aiq and savings_at_95pct_best over resampled items.

    Each item's choice at a given λ does not depend on the other items, so the policy is swept
    once and every resample re-weights the same per-item outcomes (exact, and fast). The
    references (strong/weak/best model) are re-picked on each resample. Resamples where a
    metric is undefined are left out; an interval is None if none is defined.
    """
    Y = _check(Y, P)
    P = np.asarray(P, float)
    n, m = Y.shape
    cost, _ = resolve_costs(c, m, order, Y)
    rng = np.random.default_rng(seed)
    W = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]
                 ).astype(float) / n if n_boot > 0 else np.zeros((0, n))
    rows = np.arange(n)
    _, picks = _choices(P, cost, n_points)
    step = max(1, 4_000_000 // n)  # λ columns per block: one matrix product, bounded memory
    Qb = np.hstack([W @ np.column_stack([Y[rows, j] for j in picks[k:k + step]])
                    for k in range(0, len(picks), step)])  # [B, K]
    Cb = np.hstack([W @ np.column_stack([cost[j] for j in picks[k:k + step]])
                    for k in range(0, len(picks), step)])
    Mq = W @ Y  # [B, m] single-model qualities per resample
    out: dict[str, list[float]] = {"apgr": [], "aiq": [], "savings_at_95pct_best": []}
    for b in range(n_boot):
        singles = [(float(cost[j]), float(Mq[b, j])) for j in range(m)]
        r = curve_metrics(np.column_stack([Cb[b], Qb[b]]), singles)
        for k, vals in out.items():
            if r[k] is not None:
                vals.append(r[k])
    return {k: ([float(v) for v in np.percentile(vals, [2.5, 97.5])] if vals else None)
            for k, vals in out.items()}


def replay_report(predictions: Mapping[str, np.ndarray], Y: np.ndarray,
                  c: np.ndarray | None, models: Sequence[str],
                  order: Sequence[str] | None = None, n_points: int = DEFAULT_POINTS,
                  n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    """The replay of several routers and the baselines on one held-out set, JSON-ready.

    With every cost known the x axis is $ (``cost_axis`` ``"usd"``). Otherwise it is the share
    of calls to the strong model (``"strong_share"``: each model's ``cost`` is None, its
    ``axis`` value 1 for the strong model and 0 for the others, savings are strong calls
    saved), unless ``order`` names the models cheapest first (``"rank"``: ranks 1..m).
    ``costs_known`` is False in both. With ``n_boot`` > 0 an ``"intervals"`` entry holds each
    router's bootstrap intervals.
    """
    Y = _check(Y)
    models = list(models)
    if len(models) != Y.shape[1]:
        raise ValueError(f"{len(models)} model names for {Y.shape[1]} score columns")
    idx_order = None
    if order is not None:
        unknown = [m for m in order if m not in models]
        if unknown:
            raise ValueError(f"cost order names unknown models: {unknown}")
        idx_order = [models.index(m) for m in order]
    cost, known = resolve_costs(c, len(models), idx_order, Y)
    axis = "usd" if known else ("rank" if idx_order is not None else "strong_share")
    clash = set(predictions) & set(BASELINES)
    if clash:
        raise ValueError(f"router names clash with baselines: {sorted(clash)}")
    singles = single_model_points(Y, cost)
    s_i, w_i = reference_models(singles)
    routers = {name: evaluate_router(name, P, Y, cost, n_points)
               for name, P in predictions.items()}
    routers.update(evaluate_baselines(Y, cost, n_points))
    report: dict[str, Any] = {
        "n_test": int(Y.shape[0]),
        "models": {m: {"quality": q, "cost": x if axis != "strong_share" else None}
                   for m, (x, q) in zip(models, singles, strict=True)},
        "routers": routers,
        "costs_known": known,
        "cost_axis": axis,
        "axis": {m: x for m, (x, _) in zip(models, singles, strict=True)},
        "reference": {"strong": models[s_i], "weak": models[w_i], "best": models[s_i]},
    }
    if n_boot > 0:
        report["intervals"] = {name: bootstrap_intervals(P, Y, cost, n_boot, seed, n_points)
                               for name, P in predictions.items()}
    return report


def paired_difference(P_a: np.ndarray, P_b: np.ndarray, Y: np.ndarray, c: np.ndarray | None,
                      n_boot: int = 200, seed: int = 0, n_points: int = DEFAULT_POINTS,
                      metric: str = "aiq") -> dict[str, Any]:
    """``metric`` of router a minus router b on the same held-out items, with a 95% paired
    bootstrap interval: both routers are scored on the *same* resample each time, so what the
    items have in common (easy or hard draws) cancels and the interval is about the routers.

    ``metric`` is ``aiq`` or ``apgr``. Returns ``{"diff", "ci", "n_boot"}``; ``ci`` is None
    when the metric is undefined on every resample.
    """
    if metric not in ("aiq", "apgr"):
        raise ValueError("metric must be aiq or apgr")
    Y = _check(Y, P_a, "router a")
    _check(Y, P_b, "router b")
    n, m = Y.shape
    cost, _ = resolve_costs(c, m, None, Y)
    rows = np.arange(n)
    rng = np.random.default_rng(seed)
    W = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]
                 ).astype(float) / n if n_boot > 0 else np.zeros((0, n))
    per_router = []
    for P in (np.asarray(P_a, float), np.asarray(P_b, float)):
        _, picks = _choices(P, cost, n_points)
        Q = np.column_stack([Y[rows, j] for j in picks])
        C = np.column_stack([cost[j] for j in picks])
        per_router.append((Q, C))
    singles0 = single_model_points(Y, cost)
    diff0 = [curve_metrics(np.column_stack([C.mean(axis=0), Q.mean(axis=0)]), singles0)[metric]
             for Q, C in per_router]
    Mq = W @ Y
    diffs = []
    for b in range(n_boot):
        singles = [(float(cost[j]), float(Mq[b, j])) for j in range(m)]
        vals = [curve_metrics(np.column_stack([W[b] @ C, W[b] @ Q]), singles)[metric]
                for Q, C in per_router]
        if None not in vals:
            diffs.append(vals[0] - vals[1])
    full = None if None in diff0 else float(diff0[0] - diff0[1])
    return {"diff": full, "n_boot": len(diffs),
            "ci": ([float(v) for v in np.percentile(diffs, [2.5, 97.5])] if diffs else None)}
