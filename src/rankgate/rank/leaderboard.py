"""From outcomes to a leaderboard a statistician would sign.

Every accuracy carries a 95% interval; comparisons between models use only the items both
answered (paired), with McNemar or a paired bootstrap and Holm's correction across pairs; the
recommendation is the cheapest model that is *statistically non-inferior* to the most accurate
one within a stated margin, and says why in words. Small samples are flagged, not hidden.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any

import numpy as np

from rankgate.outcomes import Outcome, models_of
from rankgate.rank import bradley_terry as bt
from rankgate.rank import calibration, pareto, stats
from rankgate.rank.variants import stand_ins, variant_effects

SMALL_N = 30


def _entry(model: str, rows: list[Outcome]) -> dict[str, Any]:
    ok = [o for o in rows if o.score is not None]
    scores = np.array([o.score for o in ok], dtype=float)
    iv = stats.mean_interval(scores) if len(ok) else None
    by_cat: dict[str, list[float]] = defaultdict(list)
    for o in ok:
        by_cat[o.category or "uncategorised"].append(o.score)  # type: ignore[arg-type]
    cats = {}
    for c, vals in sorted(by_cat.items()):
        civ = stats.mean_interval(np.array(vals))
        cats[c] = {"n": len(vals), "accuracy": civ.estimate, "ci_low": civ.low,
                   "ci_high": civ.high}
    costs = [o.cost_usd for o in ok if o.cost_usd is not None]
    lat = [o.latency_s for o in ok if o.latency_s is not None]
    ttft = [o.ttft_s for o in ok if o.ttft_s is not None]
    tps = [o.output_tokens / o.latency_s for o in ok
           if o.output_tokens and o.latency_s and o.latency_s > 0]
    conf = [(o.confidence, o.score) for o in ok if o.confidence is not None]
    e: dict[str, Any] = {
        "model": model, "n": len(ok), "n_errors": len(rows) - len(ok),
        "accuracy": iv.estimate if iv else None, "ci_low": iv.low if iv else None,
        "ci_high": iv.high if iv else None, "ci_method": iv.method if iv else None,
        "categories": cats,
        "cost_usd_per_1k": 1000 * float(np.mean(costs)) if costs else None,
        "cost_known_share": len(costs) / len(ok) if ok else 0.0,
        "latency_p50_s": stats.percentile(lat, 50), "latency_p95_s": stats.percentile(lat, 95),
        "ttft_p50_s": stats.percentile(ttft, 50),
        "tokens_per_s": float(np.median(tps)) if tps else None,
        "ece": None, "ece_warning": None, "reliability": None,
        "bt_rating": None, "bt_low": None, "bt_high": None, "bt_rank": None,
        "warnings": [],
    }
    if not rows:
        e["warnings"].append("no outcomes: rated by pairwise votes only")
    elif len(ok) < SMALL_N:
        e["warnings"].append(f"small sample: n={len(ok)} (<{SMALL_N}); intervals are wide")
    if conf:
        # calibration against correctness: graded scores count as correct at >= 0.5
        rel = calibration.ece(np.array([c for c, _ in conf]),
                              np.array([1.0 if s >= 0.5 else 0.0 for _, s in conf]))
        e["ece"], e["ece_warning"], e["reliability"] = rel.ece, rel.warning, rel.bins
    return e


def _pairwise(models: list[str], by_model: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    out = []
    for a, b in combinations(models, 2):
        shared = sorted(set(by_model[a]) & set(by_model[b]))
        if not shared:
            continue
        sa = np.array([by_model[a][i] for i in shared])
        sb = np.array([by_model[b][i] for i in shared])
        r = stats.paired_compare(sa, sb)
        out.append({"a": a, "b": b, "n": r.n, "diff": r.diff, "ci_low": r.low,
                    "ci_high": r.high, "test": r.test, "p_value": r.p_value,
                    "discordant": list(r.discordant) if r.discordant else None})
    for row, adj in zip(out, stats.holm([r["p_value"] for r in out]), strict=True):
        row["p_holm"] = adj
        row["significant"] = adj < 0.05
    return out


def _recommend(entries: dict[str, dict[str, Any]], by_model: dict[str, dict[str, float]],
               margin: float) -> dict[str, Any]:
    scored = [m for m, e in entries.items() if e["accuracy"] is not None]
    if not scored:
        return {"model": None, "reason": "no scored outcomes"}
    best = max(scored, key=lambda m: (entries[m]["accuracy"], -(entries[m]["cost_usd_per_1k"]
                                                               or float("inf"))))
    priced = sorted((m for m in scored if entries[m]["cost_usd_per_1k"] is not None),
                    key=lambda m: entries[m]["cost_usd_per_1k"])
    best_cost = entries[best]["cost_usd_per_1k"]
    for m in priced:
        if m == best:
            break
        if best_cost is not None and entries[m]["cost_usd_per_1k"] >= best_cost:
            break
        shared = sorted(set(by_model[m]) & set(by_model[best]))
        if len(shared) < 2:
            continue
        d, low, high = stats.paired_diff_interval(
            np.array([by_model[m][i] for i in shared]),
            np.array([by_model[best][i] for i in shared]))
        if low > -margin:
            ratio = best_cost / entries[m]["cost_usd_per_1k"] if best_cost else None
            return {
                "model": m, "best_model": best, "margin": margin,
                "diff_vs_best": d, "diff_ci": [low, high], "n_shared": len(shared),
                "reason": (f"{m} is the cheapest model statistically non-inferior to the most "
                           f"accurate ({best}): on {len(shared)} shared items its accuracy is "
                           f"{d:+.1%} (95% CI {low:+.1%} to {high:+.1%}) relative to {best}, "
                           f"above the −{margin:.0%} margin"
                           + (f", at {ratio:.1f}× lower cost." if ratio else ".")),
            }
    reason = (f"{best} is the most accurate model and no cheaper model is non-inferior to it "
              f"within {margin:.0%} (the lower bound of every cheaper model's paired difference "
              f"is below −{margin:.0%}), so the recommendation is {best}.")
    if len(shared_items := set().union(*by_model.values())) < SMALL_N:
        reason += f" Only {len(shared_items)} items: collect more to separate the models."
    return {"model": best, "best_model": best, "margin": margin, "reason": reason}


def leaderboard(outcomes: list[Outcome], votes: list[bt.Vote] | None = None,
                margin: float = 0.02) -> dict[str, Any]:
    """The ranking object printed by ``rankgate rank --json``. Models that only appear in
    votes (ranked by a pairwise judge, never graded) get a row with their rating and no
    accuracy; ``votes`` says how many votes of each source went into the one BT fit."""
    models = models_of(outcomes)
    if votes:
        models += [m for m in dict.fromkeys(x for v in votes for x in (v.a, v.b))
                   if m not in models]
    rows: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        rows[o.model].append(o)
    by_model = {m: {o.prompt_id: float(o.score) for o in rows[m] if o.score is not None}
                for m in models}
    entries = {m: _entry(m, rows[m]) for m in models}
    if votes:
        for r in bt.fit(votes, models):
            entries[r.model].update(bt_rating=r.rating, bt_low=r.low, bt_high=r.high,
                                    bt_rank=r.rank, bt_votes=r.n_votes)
    ordered = sorted(entries.values(), key=lambda e: -(e["accuracy"] or -1))
    points = {m: (e["cost_usd_per_1k"], e["accuracy"]) for m, e in entries.items()
              if e["accuracy"] is not None}
    board = {
        "n_items": len({o.prompt_id for o in outcomes}),
        "models": ordered,
        "pareto": pareto.frontier(points),
        "pairwise": _pairwise(models, by_model),
        "recommendation": _recommend(entries, by_model, margin),
        "votes": {"n": len(votes or []), "by_source": bt.count_sources(list(votes or []))},
    }
    board["variants"] = variant_effects(outcomes, board)  # each base+recipe vs its base
    if board["variants"]:  # can a variant of a cheaper model stand in for a dearer one?
        board["stand_ins"] = stand_ins(outcomes, board, margin)
    return board
