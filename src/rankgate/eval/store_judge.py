"""``rankgate judge --store``: score logged traffic that has no gold answers.

A logged request with two or more answers (the live one and its shadows, ``store/
exchange_store.py``) is judged two ways, each optional:

* **pairwise** — every pair of answers, in both orders (``judge.compare``: a verdict that flips
  with the order is a tie) → one vote (``source="judge"``) per pair, for the Bradley–Terry fit;
* **rubric** — every answer graded 1–10 (``judge.grade``) → one outcome per answer with
  ``source="judge"``, score (rating − 1)/9, the judge in ``extra["judge"]`` and the answer's
  own cost, latency and tokens, so ``rank`` and ``route train`` read it like any outcome.
  Its time in the store is the request's, so ``--since 7d`` means "requests of the last week"
  for judge outcomes and votes alike.

Requests with a single answer are left alone: one answer tells nothing about which model to
prefer, and grading all live traffic would cost a judge call per request.

What a caller may rely on: the run is **resumable** (what this judge already compared or
graded — a vote, an outcome or a recorded unparsable verdict — is skipped), results are written
as each verdict arrives (an interrupted run loses at most the verdicts in flight), an
unparsable verdict is recorded in ``judge_errors`` and counted, never turned into a score or a
tie, and a judge call that fails (timeout, upstream error) is counted and retried on the next
run, not recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

from sqlalchemy import Engine

from rankgate.backends.base import Backend, BackendError
from rankgate.eval.scorers.judge import compare, grade
from rankgate.outcomes import Outcome
from rankgate.store.exchange_store import Exchange, by_request, read_exchanges
from rankgate.store.outcome_store import add_outcome
from rankgate.store.vote_store import (
    JudgeError,
    StoredVote,
    add_judge_errors,
    add_votes,
    graded_answers,
    judged_pairs,
)

Mode = Literal["pairwise", "rubric", "both"]
MODES: tuple[str, ...] = ("pairwise", "rubric", "both")


@dataclass(frozen=True)
class Task:
    """One judge job: a pair of answers to compare, or one answer to grade (``b`` None)."""

    request_id: str
    a: Exchange
    b: Exchange | None = None


@dataclass
class JudgeReport:
    """What a run did; ``failures`` keeps the first few failure messages for the user."""

    requests: int = 0  # logged requests in range with >= 2 answers
    to_do: int = 0  # tasks planned this run (after skips and --limit)
    skipped: int = 0  # tasks already done by this judge
    votes: int = 0
    grades: int = 0
    unparsable: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.votes + self.grades + self.unparsable + self.failed


def answers_by_request(exchanges: list[Exchange]) -> dict[str, list[Exchange]]:
    """Per request, the answers worth judging: one per model (the first logged), with text,
    without an error; only requests with two or more of them."""
    out: dict[str, list[Exchange]] = {}
    for rid, xs in by_request(exchanges).items():
        seen: dict[str, Exchange] = {}
        for x in xs:
            if x.answer is not None and x.error is None and x.model not in seen:
                seen[x.model] = x
        if len(seen) >= 2:
            out[rid] = list(seen.values())
    return out


def plan(answers: dict[str, list[Exchange]], mode: Mode, done_pairs: set[tuple[str, str, str]],
         done_grades: set[tuple[str, str]], limit: int | None = None
         ) -> tuple[list[Task], int]:
    """The tasks still to do (request by request, at most ``limit`` requests with work left)
    and how many were skipped as already done."""
    tasks: list[Task] = []
    skipped = 0
    requests = 0
    for rid, xs in answers.items():
        todo: list[Task] = []
        if mode in ("pairwise", "both"):
            for a, b in combinations(xs, 2):
                if (rid, *sorted((a.model, b.model))) in done_pairs:
                    skipped += 1
                else:
                    todo.append(Task(rid, a, b))
        if mode in ("rubric", "both"):
            for x in xs:
                if (rid, x.model) in done_grades:
                    skipped += 1
                else:
                    todo.append(Task(rid, x))
        if todo:
            if limit is not None and requests >= limit:
                break
            requests += 1
            tasks.extend(todo)
    return tasks, skipped


class CappedJudge:
    """The judge backend with a smaller answer budget (``--max-tokens``): the judge prompts ask
    for brief reasoning, and on a slow local judge the budget is most of the run's time. Every
    other attribute is the judge's own."""

    def __init__(self, backend: Backend, max_tokens: int) -> None:
        self._backend = backend
        self.max_tokens = max_tokens
        self.spec = backend.spec

    async def complete(self, kind: Any, payload: dict[str, Any]) -> Any:
        return await self._backend.complete(kind, {**payload, "max_tokens": self.max_tokens})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


async def _pair(engine: Engine, judge: Backend, t: Task, report: JudgeReport) -> None:
    assert t.b is not None
    v = await compare(judge, t.a.prompt, t.a.answer or "", t.b.answer or "")
    if v.first is None or v.second is None:
        which = " and ".join(n for n, s in (("first", v.first), ("second", v.second))
                             if s is None)
        err = JudgeError(t.request_id, "pairwise", t.a.model, judge.spec.id,
                         f"judge {judge.spec.id} gave no parsable verdict ({which} order)",
                         t.a.ts, t.b.model)
        await asyncio.to_thread(add_judge_errors, engine, [err])
        report.unparsable += 1
        return
    vote = StoredVote(t.request_id, t.a.model, t.b.model, v.outcome, "judge", t.a.ts,
                      judge=judge.spec.id, first=v.first, second=v.second)
    await asyncio.to_thread(add_votes, engine, [vote])
    report.votes += 1


async def _grade(engine: Engine, judge: Backend, t: Task, report: JudgeReport) -> None:
    x = t.a
    s = await grade(judge, x.prompt, x.answer or "")
    if s.extracted is None:
        err = JudgeError(t.request_id, "rubric", x.model, judge.spec.id, s.explanation, x.ts)
        await asyncio.to_thread(add_judge_errors, engine, [err])
        report.unparsable += 1
        return
    extra: dict[str, Any] = {"judge": judge.spec.id, "rating": int(s.extracted),
                             "role": x.role}
    if x.router:
        extra["router"] = x.router
    o = Outcome(prompt_id=t.request_id, prompt=x.prompt, model=x.model, score=s.value,
                cost_usd=x.cost_usd, latency_s=x.latency_s, input_tokens=x.input_tokens,
                output_tokens=x.output_tokens, response=x.answer, source="judge",
                scorer="judge", explanation=s.explanation, extra=extra)
    await asyncio.to_thread(add_outcome, engine, o, ts=x.ts)
    report.grades += 1


async def run(engine: Engine, judge: Backend, tasks: list[Task], report: JudgeReport,
              concurrency: int = 1,
              on_progress: Callable[[JudgeReport], None] | None = None) -> JudgeReport:
    """Judge ``tasks`` with at most ``concurrency`` at once, writing each verdict as it comes."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(t: Task) -> None:
        async with gate:
            try:
                if t.b is not None:
                    await _pair(engine, judge, t, report)
                else:
                    await _grade(engine, judge, t, report)
            except BackendError as e:
                report.failed += 1
                if len(report.failures) < 5:
                    report.failures.append(f"{t.request_id}: {e.message}")
            if on_progress is not None:
                on_progress(report)

    await asyncio.gather(*(one(t) for t in tasks))
    return report


def judge_store(engine: Engine, judge: Backend, *, since: float | None = None,
                until: float | None = None, mode: Mode = "both", limit: int | None = None,
                concurrency: int = 1,
                on_plan: Callable[[JudgeReport], None] | None = None,
                on_progress: Callable[[JudgeReport], None] | None = None) -> JudgeReport:
    """Judge the logged requests with ``since <= ts < until`` (see the module docstring).
    ``on_plan`` sees the report once the work is counted, ``on_progress`` after each task."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    answers = answers_by_request(read_exchanges(engine, since=since, until=until))
    judge_id = judge.spec.id
    done_pairs = judged_pairs(engine, judge_id) if mode != "rubric" else set()
    done_grades = graded_answers(engine, judge_id) if mode != "pairwise" else set()
    tasks, skipped = plan(answers, mode, done_pairs, done_grades, limit)
    report = JudgeReport(requests=len(answers), to_do=len(tasks), skipped=skipped)
    if on_plan is not None:
        on_plan(report)
    if tasks:
        asyncio.run(run(engine, judge, tasks, report, concurrency, on_progress))
    return report
