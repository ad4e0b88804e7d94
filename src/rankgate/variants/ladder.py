"""The optimisation ladder: which variant of one model to try next, and whether it paid.

Teams improve a model one measured change at a time; the ladder does the same. It climbs
branches of recipes in order — the prompt (``system``, then static ``fewshot``), retrieved
examples, reasoning (``cot``, then ``sc5`` on top), and each installed quantisation of the base
— always adding the next recipe to the best variant so far and comparing the two on the same
items (paired). A step is adopted when it pays for its cost (``pays``); the first step of a
branch that does not pay ends that branch (its later rungs build on it), and the climb goes on
with the next branch from the best so far. The code here is pure (no model calls), so the
rule is easy to test and to state in a report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rankgate.outcomes import Outcome
from rankgate.rank import stats

#: (branch, recipes climbed in order); a recipe builds on the best variant when it is tried
BRANCHES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prompt", ("system", "fewshot")),
    ("examples", ("retrieved",)),
    ("reasoning", ("cot", "sc5")),
)


@dataclass(frozen=True)
class Rule:
    """When a step pays: it gains at least ``min_gain`` accuracy and at least
    ``gain_per_cost`` for each +100% of cost (e.g. 0.02: +2 points to double the cost), or it
    is cheaper and no worse."""

    min_gain: float = 0.0
    gain_per_cost: float = 0.02

    def pays(self, diff: float, cost_ratio: float | None) -> tuple[bool, str]:
        if cost_ratio is not None and cost_ratio < 1 and diff >= 0:
            return True, (f"gained {diff:+.1%} at {cost_ratio:.2f}× the cost" if diff > 0
                          else f"no worse at {cost_ratio:.2f}× the cost")
        if diff <= self.min_gain:
            return False, f"gained {diff:+.1%} (needs more than {self.min_gain:+.1%})"
        if cost_ratio is None:
            return True, f"gained {diff:+.1%} (cost unknown)"
        need = self.gain_per_cost * max(cost_ratio - 1.0, 0.0)
        if diff < need:
            return False, (f"gained {diff:+.1%} at {cost_ratio:.2f}× the cost; needs "
                           f"{need:+.1%} to pay for it")
        return True, f"gained {diff:+.1%} at {cost_ratio:.2f}× the cost"


@dataclass
class Step:
    """One rung as measured (or why it was not)."""

    model: str
    branch: str
    recipe: str | None
    against: str | None  # the variant it was compared with (the best so far)
    verdict: str  # base / adopted / not adopted / skipped
    reason: str = ""
    n: int = 0
    accuracy: float | None = None
    cost_usd_per_1k: float | None = None
    latency_s: float | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    cost_ratio: float | None = None
    latency_ratio: float | None = None
    #: the same comparison within each category of the items (small n: read the intervals)
    categories: dict[str, dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def summary(outcomes: list[Outcome], model: str, ids: set[str]) -> dict[str, Any]:
    """Accuracy, cost per 1k requests and mean latency of ``model`` on the items ``ids``."""
    rows = [o for o in outcomes if o.model == model and o.prompt_id in ids
            and o.score is not None and o.error is None]
    cost = _mean([o.cost_usd for o in rows])
    return {"n": len(rows), "accuracy": _mean([o.score for o in rows]),
            "cost_usd_per_1k": None if cost is None else 1000 * cost,
            "latency_s": _mean([o.latency_s for o in rows])}


def compare(outcomes: list[Outcome], new: str, old: str, category: str | None = None
            ) -> dict[str, Any]:
    """``new`` against ``old`` on the items both answered (of ``category``, when given):
    paired difference with its 95% interval, and the ratios of mean cost and latency on
    those items."""
    by: dict[str, dict[str, Outcome]] = {new: {}, old: {}}
    for o in outcomes:
        if o.model in by and o.score is not None and o.error is None \
                and (category is None or (o.category or "uncategorised") == category):
            by[o.model][o.prompt_id] = o
    ids = sorted(set(by[new]) & set(by[old]))
    if not ids:
        return {"n": 0}
    a = np.array([float(by[new][i].score) for i in ids])  # type: ignore[arg-type]
    b = np.array([float(by[old][i].score) for i in ids])  # type: ignore[arg-type]
    r = stats.paired_compare(a, b)

    def ratio(field: str) -> float | None:
        pairs = [(getattr(by[new][i], field), getattr(by[old][i], field)) for i in ids]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        den = sum(y for _, y in pairs)
        return sum(x for x, _ in pairs) / den if pairs and den > 0 else None

    return {"n": r.n, "diff": r.diff, "ci_low": r.low, "ci_high": r.high,
            "p_value": r.p_value, "cost_ratio": ratio("cost_usd"),
            "latency_ratio": ratio("latency_s")}


def compare_by_category(outcomes: list[Outcome], new: str, old: str
                        ) -> dict[str, dict[str, Any]]:
    """:func:`compare` within each category of the items ``new`` answered: where a recipe
    helps (maths with chain-of-thought) and where it hurts (extraction) often differ."""
    cats = sorted({o.category or "uncategorised" for o in outcomes if o.model == new})
    return {c: r for c in cats if (r := compare(outcomes, new, old, c))["n"]}
