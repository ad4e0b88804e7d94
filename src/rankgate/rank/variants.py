"""The paired effect of each recipe: every variant (``base+recipe``) against its base.

A recipe is a change to one model, so the honest comparison is paired: the same items, the
variant's score minus its base's, with a paired bootstrap interval (McNemar's exact p for 0/1
scores), overall and per category. Beside quality stand the prices of the change — the ratio
of mean cost and of mean latency on those items — and whether the variant moves the
cost/quality Pareto frontier of the whole models: it does when it is on the frontier of
models + variants (``displaces`` lists the models it pushes off the models-only frontier).

:func:`stand_ins` asks the question a team optimising a cheap model cares about: is a variant
of a cheaper model *non-inferior* to a dearer model, overall or within a category — the lower
bound of its paired difference above −margin — so that the dearer model can be replaced there?
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from rankgate.outcomes import Outcome, models_of
from rankgate.rank import pareto, stats


def base_of(model: str, present: set[str]) -> str | None:
    """The nearest ancestor of a ``base+r1+r2`` id among ``present`` (``base+r1``, else
    ``base``); None for a plain model or one whose bases were not evaluated."""
    cut = model.rfind("+")
    while cut > 0:
        if model[:cut] in present:
            return model[:cut]
        cut = model.rfind("+", 0, cut)
    return None


def _ratio(a: list[float], b: list[float]) -> float | None:
    if not a or not b or float(np.mean(b)) <= 0:
        return None
    return float(np.mean(a)) / float(np.mean(b))


def _scored(outcomes: list[Outcome]) -> dict[str, dict[str, Outcome]]:
    """model → item → its scored, error-free outcome."""
    scored: dict[str, dict[str, Outcome]] = defaultdict(dict)
    for o in outcomes:
        if o.score is not None and o.error is None:
            scored[o.model][o.prompt_id] = o
    return scored


def _paired(va: dict[str, Outcome], vb: dict[str, Outcome], ids: list[str]) -> dict[str, Any]:
    a = np.array([float(va[i].score) for i in ids])  # type: ignore[arg-type]
    b = np.array([float(vb[i].score) for i in ids])  # type: ignore[arg-type]
    r = stats.paired_compare(a, b)
    return {"n": r.n, "diff": r.diff, "ci_low": r.low, "ci_high": r.high, "p_value": r.p_value,
            "test": r.test, "significant": r.p_value < 0.05 and not r.low <= 0 <= r.high}


def variant_effects(outcomes: list[Outcome], board: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant present with its base: the paired difference (overall and per
    category), cost and latency ratios on the shared items, and its place on the frontier.
    ``board`` is the leaderboard being built (its per-model cost and accuracy)."""
    scored = _scored(outcomes)
    present = set(scored)
    entries = {e["model"]: e for e in board["models"]}
    points = {m: (e["cost_usd_per_1k"], e["accuracy"]) for m, e in entries.items()
              if e["accuracy"] is not None}
    plain = {m: p for m, p in points.items() if base_of(m, present) is None and "+" not in m}
    before = set(pareto.frontier(plain))
    after = set(pareto.frontier(points))
    rows = []
    for model in models_of(outcomes):
        base = base_of(model, present)
        if base is None:
            continue
        va, vb = scored[model], scored[base]
        ids = sorted(set(va) & set(vb))
        if not ids:
            continue
        row: dict[str, Any] = {"variant": model, "base": base,
                               "recipe": model[len(base) + 1:], **_paired(va, vb, ids)}
        row["cost_ratio"] = _ratio([va[i].cost_usd for i in ids if va[i].cost_usd is not None
                                    and vb[i].cost_usd is not None],
                                   [vb[i].cost_usd for i in ids if va[i].cost_usd is not None
                                    and vb[i].cost_usd is not None])  # type: ignore[misc]
        row["latency_ratio"] = _ratio(
            [va[i].latency_s for i in ids if va[i].latency_s is not None
             and vb[i].latency_s is not None],
            [vb[i].latency_s for i in ids if va[i].latency_s is not None
             and vb[i].latency_s is not None])  # type: ignore[misc]
        row["on_frontier"] = model in after
        row["displaces"] = sorted(m for m in before - after
                                  if points[m][0] is not None and points[model][0] is not None
                                  and points[model][0] <= points[m][0]  # type: ignore[operator]
                                  and points[model][1] >= points[m][1])
        row["moves_frontier"] = model in after
        cats: dict[str, list[str]] = defaultdict(list)
        for i in ids:
            cats[va[i].category or "uncategorised"].append(i)
        row["categories"] = {c: _paired(va, vb, cids) for c, cids in sorted(cats.items())}
        rows.append(row)
    return rows


def stand_ins(outcomes: list[Outcome], board: dict[str, Any], margin: float
              ) -> dict[str, Any]:
    """Each variant against every plain model dearer than it (mean cost per request), on the
    items both answered, overall and per category: paired difference, interval and whether it
    is non-inferior at ``margin``. ``found`` lists the non-inferior pairs; ``closest`` the
    comparisons whose lower bound came nearest the margin (what would need more items)."""
    scored = _scored(outcomes)
    present = set(scored)
    cost = {e["model"]: e["cost_usd_per_1k"] for e in board["models"]}
    plain = [m for m in scored if "+" not in m or base_of(m, present) is None]
    rows: list[dict[str, Any]] = []
    for v in scored:
        if base_of(v, present) is None or cost.get(v) is None:
            continue
        for m in plain:
            if m == v or v.startswith(m + "+") or cost.get(m) is None \
                    or cost[m] <= cost[v]:  # type: ignore[operator]
                continue  # its own base is variant_effects' business; cheaper is no question
            ids = sorted(set(scored[v]) & set(scored[m]))
            cats: dict[str, list[str]] = defaultdict(list)
            for i in ids:
                cats[scored[v][i].category or "uncategorised"].append(i)
            for cat, cids in [("all", ids), *sorted(cats.items())]:
                if not cids:
                    continue
                r = _paired(scored[v], scored[m], cids)
                rows.append({"variant": v, "model": m, "category": cat,
                             "cost_ratio": cost[v] / cost[m],  # type: ignore[operator]
                             **r, "non_inferior": r["ci_low"] > -margin})
    rows.sort(key=lambda r: -r["ci_low"])
    return {"margin": margin, "found": [r for r in rows if r["non_inferior"]],
            "closest": [r for r in rows if not r["non_inferior"]][:5], "compared": len(rows)}


def describe(row: dict[str, Any]) -> str:
    """One line: "+cot on smollm2-135m: +4.0% [−2.0%, +10.0%] on 50 items, cost ×2.10"."""
    cost = f", cost ×{row['cost_ratio']:.2f}" if row["cost_ratio"] is not None else ""
    lat = f", latency ×{row['latency_ratio']:.2f}" if row["latency_ratio"] is not None else ""
    front = "; moves the frontier" if row["moves_frontier"] else ""
    if row["displaces"]:
        front += f" (displaces {', '.join(row['displaces'])})"
    return (f"+{row['recipe']} on {row['base']}: {row['diff']:+.1%} [{row['ci_low']:+.1%}, "
            f"{row['ci_high']:+.1%}] on {row['n']} items{cost}{lat}{front}")
