"""The cost/quality Pareto frontier: models no other model beats on both cost and quality."""

from __future__ import annotations


def frontier(points: dict[str, tuple[float | None, float]]) -> list[str]:
    """Models on the frontier of ``{model: (cost, quality)}``, cheapest first.

    A model is dominated when another is at most as expensive and at least as good, and
    strictly better on one of the two. Models with unknown cost can't be placed and are left out.
    """
    known = {m: (c, q) for m, (c, q) in points.items() if c is not None}
    out = []
    for m, (c, q) in known.items():
        dominated = any(
            (c2 <= c and q2 >= q) and (c2 < c or q2 > q)
            for m2, (c2, q2) in known.items() if m2 != m
        )
        if not dominated:
            out.append(m)
    return sorted(out, key=lambda m: (known[m][0], -known[m][1]))
