"""What ``rank`` and ``route train`` learn from: outcomes and votes from files and/or the store,
each keeping its provenance, and the sentence that says which kinds went in.

Every outcome carries a ``source`` whose kind is one of ``eval``, ``import``, ``live``,
``shadow``, ``judge`` or ``feedback`` (``eval:starter`` is of kind ``eval``). When one answer —
the same (item, model) — was scored by several sources (a judge grade and the user's thumbs on
the same live answer, say), the ranking must not count it twice: ``merge_answers`` keeps the
scores of the most trustworthy kind present (gold ``eval`` > a person's ``feedback`` >
``import`` > ``judge`` > the rest), averaged when that kind scored it more than once, and says
how many answers it merged. Votes keep their source (``judge``, ``feedback``, ``import``) and
all go into the one Bradley–Terry fit.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from rankgate.outcomes import Outcome
from rankgate.rank.bradley_terry import Vote
from rankgate.store.outcome_store import query_outcomes, source_kind
from rankgate.store.vote_store import VOTE_SOURCES, all_votes

OUTCOME_KINDS: tuple[str, ...] = ("eval", "import", "live", "shadow", "judge", "feedback")
#: which kind's score stands for an answer scored by several (lower first)
TRUST = {"eval": 0, "feedback": 1, "import": 2, "judge": 3, "live": 4, "shadow": 5}


class InputError(ValueError):
    """Inputs that cannot be used; the message is one line."""


def parse_sources(spec: str | None) -> list[str]:
    """The outcome kinds of ``--sources a,b`` (all of them when ``spec`` is None)."""
    if spec is None:
        return list(OUTCOME_KINDS)
    kinds = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [k for k in kinds if k not in OUTCOME_KINDS]
    if bad or not kinds:
        raise InputError(f"--sources: unknown kind(s) {', '.join(bad) or '(none given)'}; "
                         f"choose from {','.join(OUTCOME_KINDS)}")
    return kinds


def kind_of(o: Outcome) -> str:
    return source_kind(o.source) or "unlabelled"


def read_vote_file(path: Path) -> list[Vote]:
    """Pairwise votes: JSONL of ``{"a", "b", "outcome"}`` (1 a wins, 0 b wins, 0.5 tie) or
    ``{"model_a", "model_b", "winner": "a"|"b"|"tie"}``. Their source is the line's
    ``source``, else ``judge`` for lines that name a judge (``rankgate judge --outcomes``
    writes those), else ``import``."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    votes = []
    for n, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = orjson.loads(line)
            source = d.get("source") or ("judge" if d.get("judge") else "import")
            if source not in VOTE_SOURCES:
                raise ValueError(f"source must be one of {', '.join(VOTE_SOURCES)}")
            if "winner" in d:
                votes.append(Vote(d["model_a"], d["model_b"],
                                  {"a": 1.0, "b": 0.0, "tie": 0.5}[d["winner"]], source))
            else:
                outcome = float(d["outcome"])
                if not 0.0 <= outcome <= 1.0:
                    raise ValueError("outcome must be in [0, 1]")
                votes.append(Vote(d["a"], d["b"], outcome, source))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{path}:{n}: not a vote ({type(e).__name__}: {e})") from None
    return votes


def merge_answers(outcomes: Sequence[Outcome]) -> tuple[list[Outcome], int]:
    """One outcome per (item, model), in first-seen order, and how many answers had more than
    one (see the module docstring for which score stands)."""
    groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[(o.prompt_id, o.model)].append(o)
    out: list[Outcome] = []
    merged = 0
    for rows in groups.values():
        if len(rows) == 1:
            out.append(rows[0])
            continue
        merged += 1
        scored = [o for o in rows if o.score is not None]
        if not scored:
            out.append(rows[0])
            continue
        best = min(TRUST.get(kind_of(o), len(TRUST)) for o in scored)
        keep = [o for o in scored if TRUST.get(kind_of(o), len(TRUST)) == best]
        score = sum(float(o.score) for o in keep) / len(keep)  # type: ignore[arg-type]
        out.append(replace(keep[0], score=score,
                           extra={**keep[0].extra, "merged_scores": len(scored)}))
    return out, merged


@dataclass
class Inputs:
    """Outcomes (merged) and votes for one ranking, with counts of what went in."""

    outcomes: list[Outcome]
    votes: list[Vote]
    outcome_counts: Counter[str] = field(default_factory=Counter)  # by kind, before merging
    vote_counts: Counter[str] = field(default_factory=Counter)  # by source
    merged: int = 0

    def provenance(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcome_counts), "votes": dict(self.vote_counts),
                "merged_answers": self.merged, "summary": describe(self)}


def gather(file_outcomes: Sequence[Outcome], engine: Engine | None = None, *,
           since: float | None = None, kinds: Sequence[str] = OUTCOME_KINDS,
           file_votes: Sequence[Vote] = ()) -> Inputs:
    """Outcomes from files plus the store's outcomes of ``kinds`` since ``since``; votes from
    a file plus the store's judge/feedback/import votes (those in ``kinds``) since ``since``."""
    rows = list(file_outcomes)
    votes = list(file_votes)
    if engine is not None:
        rows += [o for _, o in query_outcomes(engine, since=since, kinds=list(kinds))]
        sources = [s for s in VOTE_SOURCES if s in kinds]
        votes += [Vote(v.model_a, v.model_b, v.outcome, v.source)
                  for v in all_votes(engine, since=since, sources=sources)]
    merged, n_merged = merge_answers(rows)
    return Inputs(merged, votes, Counter(kind_of(o) for o in rows),
                  Counter(v.source for v in votes), n_merged)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def describe(inputs: Inputs) -> str:
    """"from 412 judge outcomes and 96 feedback outcomes, 1,020 votes (judge 980, feedback
    40)": what the ranking was made of, in words."""
    parts = [_plural(n, f"{k} outcome") for k, n in inputs.outcome_counts.most_common()]
    text = "from " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1
                      else parts[0] if parts else "no outcomes")
    if inputs.vote_counts:
        total = sum(inputs.vote_counts.values())
        by = ", ".join(f"{s} {n:,}" for s, n in inputs.vote_counts.most_common())
        text += f", {_plural(total, 'vote')} ({by})"
    if inputs.merged:
        text += (f"; {_plural(inputs.merged, 'answer')} scored by more than one source kept "
                 "the most trusted one's score (eval > feedback > import > judge)")
    return text
