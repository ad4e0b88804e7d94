"""The leaderboard page's data: ``rank/leaderboard.py`` run on the shipped evaluation or on
the store's outcomes, computed in a thread and kept for a minute (a leaderboard bootstraps its
intervals, which takes longer than a page should)."""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

SOURCES = ("embedded", "store")
TTL_S = 60.0


def _embedded_path() -> Path:
    return Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))


def _compute(source: str, engine: Engine) -> dict[str, Any]:
    from rankgate.outcomes import read_jsonl
    from rankgate.rank.leaderboard import leaderboard

    if source == "store":
        from rankgate.rank.inputs import merge_answers
        from rankgate.store.outcome_store import read_outcomes

        outcomes, _ = merge_answers(read_outcomes(engine))
        where = "outcomes in the store (every source)"
    else:
        outcomes = read_jsonl(_embedded_path())
        where = "the shipped evaluation of the embedded panel (embedded_outcomes.jsonl)"
    board = leaderboard(outcomes) if outcomes else None
    return {"board": board, "source": source, "where": where, "n_outcomes": len(outcomes),
            "computed_at": time.time()}


class Boards:
    """Leaderboards by source, recomputed at most once a minute; one computation at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    async def get(self, source: str) -> dict[str, Any]:
        source = source if source in SOURCES else "embedded"
        async with self._lock:
            hit = self._cache.get(source)
            if hit is None or time.time() - hit["computed_at"] > TTL_S:
                hit = await asyncio.to_thread(_compute, source, self.engine)
                self._cache[source] = hit
            return hit


def pareto_points(board: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per model with a known cost: what the plot draws and its hover shows."""
    frontier = set(board.get("pareto") or [])
    return [{"model": e["model"], "x": e["cost_usd_per_1k"], "y": e["accuracy"],
             "low": e["ci_low"], "high": e["ci_high"], "n": e["n"],
             "pareto": e["model"] in frontier}
            for e in board["models"]
            if e["accuracy"] is not None and e["cost_usd_per_1k"] is not None]


def categories(board: dict[str, Any]) -> list[str]:
    return sorted({c for e in board["models"] for c in e["categories"]})
