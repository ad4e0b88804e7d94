"""Pairwise judging over existing outcomes → votes for Bradley–Terry.

For every item answered by two panel models, the judge compares the two responses in both
orders (``judge.compare``); each comparison becomes one vote ``{"a", "b", "outcome"}``. Votes are
appended line by line and a re-run skips (item, a, b) triples already judged.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import orjson

from rankgate.eval.scorers.judge import compare
from rankgate.outcomes import Outcome


def pairs_to_judge(outcomes: list[Outcome], models: list[str], limit: int | None
                   ) -> list[tuple[str, str, str, str, str]]:
    """(prompt_id, prompt, a, b) work list with both responses present."""
    by_item: dict[str, dict[str, Outcome]] = defaultdict(dict)
    for o in outcomes:
        if o.model in models and o.response is not None and o.error is None:
            by_item[o.prompt_id][o.model] = o
    work = []
    for pid, answers in by_item.items():
        for a, b in combinations([m for m in models if m in answers], 2):
            work.append((pid, answers[a].prompt, a, b, ""))
    return work[:limit] if limit else work


def judge_pairs(outcomes: list[Outcome], models: list[str], judge_backend: Any, out: Path,
                limit: int | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> int:
    """Judge every pair; returns the number of new votes written. ``on_progress(done, total)``
    is called before the first comparison and after each one (the CLI's progress)."""
    done = set()
    if out.exists():
        for line in out.read_bytes().splitlines():
            if line.strip():
                d = orjson.loads(line)
                done.add((d["prompt_id"], d["a"], d["b"]))
    responses = {(o.prompt_id, o.model): o.response or "" for o in outcomes}
    work = [w for w in pairs_to_judge(outcomes, models, limit) if (w[0], w[2], w[3]) not in done]

    async def main() -> int:
        n = 0
        if on_progress is not None:
            on_progress(0, len(work))
        with out.open("ab") as f:
            for pid, prompt, a, b, _ in work:
                v = await compare(judge_backend, prompt, responses[(pid, a)],
                                  responses[(pid, b)])
                f.write(orjson.dumps({"prompt_id": pid, "a": a, "b": b, "outcome": v.outcome,
                                      "judge": judge_backend.spec.id, "first": v.first,
                                      "second": v.second}) + b"\n")
                f.flush()
                n += 1
                if on_progress is not None:
                    on_progress(n, len(work))
        return n

    return asyncio.run(main())
