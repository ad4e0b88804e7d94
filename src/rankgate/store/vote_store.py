"""Pairwise votes in the database: the one place that reads and writes ``votes`` and
``judge_errors``, and the one definition of how feedback becomes votes.

A vote says which of two models answered one request better (``outcome`` 1: ``model_a``, 0:
``model_b``, 0.5: tie). Every kind of pairwise verdict ends in the same Bradley–Terry fit:

* ``judge`` votes are written by ``rankgate judge --store`` (both orders; a disagreement is a
  tie; an unparsable verdict goes to ``judge_errors`` instead, never to a vote);
* ``import`` votes are pairwise verdicts from elsewhere, stored as given;
* ``feedback`` votes are **derived when read** (``feedback_votes``), never stored, so that a
  late judge grade or a second thumbs on the same request changes them without a rewrite.

What a caller may rely on: a vote written by ``add_votes`` reads back equal; reads are in time
order; the feedback rule below is applied identically wherever votes are read.

Blocking calls on an ``Engine`` from ``tables.make_engine``: from async code run them in a
thread or an executor.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from sqlalchemy import Engine, RowMapping, insert, or_, select

from rankgate.store.outcome_store import query_outcomes
from rankgate.store.tables import judge_errors, votes

VoteSource = Literal["judge", "feedback", "import"]
VOTE_SOURCES: tuple[str, ...] = ("judge", "feedback", "import")
#: a feedback score and a judge grade closer than this are a tie (their scales differ: a thumbs
#: up is 1.0, the judge's 9/10 is 0.89 — that is agreement, not a win)
FEEDBACK_TIE_MARGIN = 0.2


@dataclass(frozen=True)
class StoredVote:
    """One pairwise verdict on one request (the shape of ``rank.bradley_terry.Vote`` plus where
    it came from)."""

    prompt_id: str
    model_a: str
    model_b: str
    outcome: float  # 1: model_a better, 0: model_b better, 0.5: tie
    source: VoteSource
    ts: float  # unix seconds the vote counts at: the judged request's time
    judge: str | None = None
    first: str | None = None  # verdict with model_a shown first (A, B or C)
    second: str | None = None  # verdict with model_b shown first, mapped back to a/b labels


@dataclass(frozen=True)
class JudgeError:
    """A judge verdict that could not be parsed: counted and reported, never a score."""

    prompt_id: str
    mode: Literal["pairwise", "rubric"]
    model_a: str
    judge: str
    error: str
    ts: float
    model_b: str | None = None


_VOTE_FIELDS = tuple(f.name for f in fields(StoredVote))
_ERROR_FIELDS = tuple(f.name for f in fields(JudgeError))


def _check(v: StoredVote) -> dict[str, Any]:
    where = f"vote {v.prompt_id}/{v.model_a}/{v.model_b}"
    if v.source not in ("judge", "import"):
        raise ValueError(f"{where}: source must be 'judge' or 'import' (feedback votes are "
                         "derived from feedback outcomes when read, never stored)")
    if not 0.0 <= v.outcome <= 1.0:
        raise ValueError(f"{where}: outcome must be in [0, 1], got {v.outcome}")
    if v.model_a == v.model_b:
        raise ValueError(f"{where}: a model cannot be compared with itself")
    return {name: getattr(v, name) for name in _VOTE_FIELDS}


def add_votes(engine: Engine, items: Iterable[StoredVote]) -> int:
    """Store votes in one transaction (all or none); returns how many. ``ValueError`` for a
    feedback vote, an outcome outside [0, 1] or a model against itself."""
    rows = [_check(v) for v in items]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(votes), rows)
    return len(rows)


def _vote(row: RowMapping) -> StoredVote:
    return StoredVote(**{name: row[name] for name in _VOTE_FIELDS})


def read_votes(engine: Engine, *, since: float | None = None, until: float | None = None,
               sources: Sequence[str] | None = None, judge: str | None = None,
               models: Sequence[str] | None = None) -> list[StoredVote]:
    """Stored votes (judge, import) with ``since <= ts < until``, of the given sources, by one
    judge, or involving one of ``models``; in time order. Feedback votes: ``feedback_votes``
    (or ``all_votes`` for everything)."""
    q = select(votes)
    if since is not None:
        q = q.where(votes.c.ts >= since)
    if until is not None:
        q = q.where(votes.c.ts < until)
    if sources is not None:
        q = q.where(votes.c.source.in_(list(sources)))
    if judge is not None:
        q = q.where(votes.c.judge == judge)
    if models is not None:
        q = q.where(or_(votes.c.model_a.in_(list(models)), votes.c.model_b.in_(list(models))))
    q = q.order_by(votes.c.ts, votes.c.id)
    with engine.connect() as conn:
        return [_vote(r) for r in conn.execute(q).mappings()]


def feedback_votes(engine: Engine, *, since: float | None = None, until: float | None = None,
                   margin: float = FEEDBACK_TIE_MARGIN) -> list[StoredVote]:
    """Votes derived from user feedback, for the same Bradley–Terry fit as the judge's.

    The rule: feedback is given on request R's *live* answer, by model L. Every other model M
    whose answer to R was graded by the rubric judge (a shadow answer, ``source="judge"``)
    meets L once: with f the feedback score on R (the mean, if R got several) and j the judge's
    grade of M on R (the mean over judges), L wins if f − j > ``margin``, loses if j − f >
    ``margin``, and ties otherwise. So a thumbs up (1.0) beats a shadow graded 6/10 and ties
    one graded 9/10; a thumbs down (0.0) loses to a shadow graded 4/10 and ties one graded
    1/10. Feedback on a request that no other model answered gives no vote (there is nothing
    to compare it with on that request; it still counts as an outcome). ``since``/``until``
    select the feedback by its time; the judge grades of those requests are used whenever
    they were made.
    """
    fb = query_outcomes(engine, since=since, until=until, kinds=["feedback"])
    if not fb:
        return []
    scores: dict[str, list[float]] = defaultdict(list)
    live: dict[str, str] = {}
    ts: dict[str, float] = {}
    for t, o in fb:
        if o.score is None:
            continue
        if o.prompt_id in live and live[o.prompt_id] != o.model:
            continue  # feedback names the model that answered; a different one is not live
        live[o.prompt_id] = o.model
        scores[o.prompt_id].append(float(o.score))
        ts[o.prompt_id] = max(ts.get(o.prompt_id, t), t)
    grades: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _, o in query_outcomes(engine, kinds=["judge"], prompt_ids=list(live)):
        if o.score is not None and o.model != live[o.prompt_id]:
            grades[(o.prompt_id, o.model)].append(float(o.score))
    out: list[StoredVote] = []
    for (rid, other), gs in grades.items():
        f = sum(scores[rid]) / len(scores[rid])
        j = sum(gs) / len(gs)
        outcome = 1.0 if f - j > margin else 0.0 if j - f > margin else 0.5
        out.append(StoredVote(rid, live[rid], other, outcome, "feedback", ts[rid]))
    return sorted(out, key=lambda v: (v.ts, v.prompt_id, v.model_b))


def all_votes(engine: Engine, *, since: float | None = None, until: float | None = None,
              sources: Sequence[str] = VOTE_SOURCES) -> list[StoredVote]:
    """Every vote of the given sources: the stored ones and the feedback-derived ones."""
    stored = [s for s in sources if s != "feedback"]
    out = read_votes(engine, since=since, until=until, sources=stored) if stored else []
    if "feedback" in sources:
        out += feedback_votes(engine, since=since, until=until)
    return out


def add_judge_errors(engine: Engine, items: Iterable[JudgeError]) -> int:
    """Record unparsable verdicts (one transaction); returns how many."""
    rows = [{name: getattr(e, name) for name in _ERROR_FIELDS} for e in items]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(judge_errors), rows)
    return len(rows)


def read_judge_errors(engine: Engine, *, judge: str | None = None,
                      since: float | None = None) -> list[JudgeError]:
    """Recorded unparsable verdicts, optionally of one judge and from ``since`` on."""
    q = select(judge_errors).order_by(judge_errors.c.ts, judge_errors.c.id)
    if judge is not None:
        q = q.where(judge_errors.c.judge == judge)
    if since is not None:
        q = q.where(judge_errors.c.ts >= since)
    with engine.connect() as conn:
        return [JudgeError(**{n: r[n] for n in _ERROR_FIELDS})
                for r in conn.execute(q).mappings()]


def judged_pairs(engine: Engine, judge: str) -> set[tuple[str, str, str]]:
    """``(prompt_id, model_x, model_y)`` (models sorted) that ``judge`` has already compared,
    as a vote or as an unparsable verdict: what a resumed ``judge --store`` skips."""
    q1 = select(votes.c.prompt_id, votes.c.model_a, votes.c.model_b).where(
        votes.c.judge == judge, votes.c.source == "judge")
    q2 = select(judge_errors.c.prompt_id, judge_errors.c.model_a, judge_errors.c.model_b).where(
        judge_errors.c.judge == judge, judge_errors.c.mode == "pairwise")
    with engine.connect() as conn:
        rows = [*conn.execute(q1), *conn.execute(q2)]
    return {(rid, *sorted((a, b))) for rid, a, b in rows}  # type: ignore[misc]


def graded_answers(engine: Engine, judge: str) -> set[tuple[str, str]]:
    """``(prompt_id, model)`` answers that ``judge`` has already graded with the rubric (an
    outcome with ``source="judge"`` and this judge in ``extra``, or an unparsable grade)."""
    done = {(o.prompt_id, o.model) for _, o in query_outcomes(engine, kinds=["judge"])
            if o.extra.get("judge") == judge}
    q = select(judge_errors.c.prompt_id, judge_errors.c.model_a).where(
        judge_errors.c.judge == judge, judge_errors.c.mode == "rubric")
    with engine.connect() as conn:
        done |= {(rid, m) for rid, m in conn.execute(q)}
    return done
