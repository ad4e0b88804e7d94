"""Solved items: the best answer per prompt among outcomes that scored well and kept their text.

Two features learn from answers that were right: retrieved few-shot examples (a variant shows
a model the most similar solved items) and fine-tuning data (a cheap model learns from the
strong one's best answers). Both need the same thing — one answer per distinct prompt, the
best-scoring one at or above a threshold, with its response text — so it is computed here once.
Outcomes without a ``response`` cannot teach anything and are counted, not used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rankgate.outcomes.record import Outcome, read_jsonl


@dataclass
class Solved:
    """The chosen answers and what was left out (for honest messages)."""

    answers: list[Outcome]  # one per distinct prompt, best score first within a prompt
    considered: int = 0  # outcomes read
    below: int = 0  # scored under the threshold (or failed)
    without_text: int = 0  # at or above the threshold but no response text


def embedded_outcomes_path() -> Path:
    """The shipped evaluation of the embedded panel (``--outcomes embedded``)."""
    return Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))


def read_outcome_source(spec: str) -> list[Outcome]:
    """Outcomes of ``spec``: ``embedded``, a JSONL path, or ``store:<url or file>`` /
    a database URL. Raises ``ValueError`` naming the source when it cannot be read."""
    if spec == "embedded" and not Path(spec).exists():
        return read_jsonl(embedded_outcomes_path())
    if spec.startswith("store:") or "://" in spec:
        from rankgate.store.open_store import open_store
        from rankgate.store.outcome_store import read_outcomes

        engine = open_store(spec.removeprefix("store:"))
        try:
            return read_outcomes(engine)
        finally:
            engine.dispose()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"{spec}: no such outcomes file")
    return read_jsonl(path)


def best_answers(outcomes: Iterable[Outcome], min_score: float = 1.0,
                 models: Sequence[str] | None = None) -> Solved:
    """One answer per distinct prompt text: the highest-scoring outcome with ``score >=
    min_score`` and a non-empty response (ties: the cheaper, then the first seen), optionally
    only from ``models``."""
    best: dict[str, Outcome] = {}
    solved = Solved([])
    for o in outcomes:
        solved.considered += 1
        if models is not None and o.model not in models:
            continue
        if o.error is not None or o.score is None or o.score < min_score:
            solved.below += 1
            continue
        if not (o.response or "").strip():
            solved.without_text += 1
            continue
        key = o.prompt.strip()
        have = best.get(key)
        if have is None or (o.score, -(o.cost_usd or 0.0)) > (have.score or 0.0,
                                                               -(have.cost_usd or 0.0)):
            best[key] = o
    solved.answers = list(best.values())
    return solved
