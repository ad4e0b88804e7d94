"""``judge --store`` on logged exchanges whose answers the real smollm2 and qwen 0.5B models
wrote, judged by the real qwen 0.5B (SQLite and PostgreSQL): both orders per pair, a grade per
answer carrying the answer's own cost and latency, unparsable verdicts recorded as errors and
never as scores, and a second run that redoes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from rankgate.backends.base import Backend
from rankgate.config import Settings
from rankgate.eval.store_judge import CappedJudge, judge_store
from rankgate.panel import load_panel
from rankgate.runtime import PanelRuntime, open_panel
from rankgate.store.exchange_store import add_exchanges
from rankgate.store.outcome_store import query_outcomes
from rankgate.store.vote_store import read_judge_errors, read_votes
from tests.loop_support import QWEN05, real_exchanges, write_panel


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory, qwen05_path: Path, smollm_path: Path) -> Path:
    return write_panel(tmp_path_factory.mktemp("panel"), qwen05_path)


@pytest.fixture(scope="module")
def answers(panel_file: Path):
    return real_exchanges(str(panel_file))


@pytest.fixture(scope="module")
def judge_runtime(panel_file: Path) -> Iterator[PanelRuntime]:
    rt = open_panel(load_panel(panel_file), Settings(), [QWEN05])
    yield rt
    asyncio.run(rt.aclose())


def _judge(rt: PanelRuntime, max_tokens: int) -> Backend:
    return CappedJudge(rt.backends[QWEN05], max_tokens)  # type: ignore[return-value]


def test_every_pair_is_judged_in_both_orders_and_every_answer_graded_once(
        store_engine, answers, judge_runtime):
    logged = list(answers[:4])  # two requests, each answered live by smollm2 and shadowed by qwen
    add_exchanges(store_engine, logged)
    report = judge_store(store_engine, _judge(judge_runtime, 64), mode="both")
    assert (report.requests, report.to_do, report.skipped, report.failed) == (2, 6, 0, 0)
    assert report.votes + report.grades + report.unparsable == 6

    votes = read_votes(store_engine)
    errors = read_judge_errors(store_engine)
    assert report.votes == len(votes) >= 1 and report.unparsable == len(errors)
    pairs = {(v.prompt_id, v.model_a, v.model_b) for v in votes} | {
        (e.prompt_id, e.model_a, e.model_b) for e in errors if e.mode == "pairwise"}
    assert pairs == {("req-0", "smollm2-135m", QWEN05), ("req-1", "smollm2-135m", QWEN05)}
    live_ts = {x.request_id: x.ts for x in logged if x.role == "live"}
    for v in votes:  # both orders were asked; only an order-proof verdict is a win
        assert v.first in ("A", "B", "C") and v.second in ("A", "B", "C")
        expected = {("A", "A"): 1.0, ("B", "B"): 0.0}.get((v.first, v.second), 0.5)
        assert (v.outcome, v.source, v.judge, v.ts) == (expected, "judge", QWEN05,
                                                        live_ts[v.prompt_id])

    grades = query_outcomes(store_engine, kinds=["judge"])
    assert report.grades == len(grades) >= 1
    by_answer = {(x.request_id, x.model): x for x in logged}
    for ts, o in grades:
        x = by_answer[(o.prompt_id, o.model)]
        rating = o.extra["rating"]
        assert o.score == pytest.approx((rating - 1) / 9) and 1 <= rating <= 10
        assert (o.source, o.extra["judge"], o.extra["role"]) == ("judge", QWEN05, x.role)
        assert (o.cost_usd, o.latency_s, o.input_tokens, o.output_tokens, o.response) == (
            x.cost_usd, x.latency_s, x.input_tokens, x.output_tokens, x.answer)
        assert ts == x.ts and o.prompt == x.prompt

    again = judge_store(store_engine, _judge(judge_runtime, 64), mode="both")
    assert (again.to_do, again.skipped, again.done) == (0, 6, 0)
    assert len(read_votes(store_engine)) == len(votes)
    assert len(query_outcomes(store_engine)) == len(grades)


def test_an_unparsable_verdict_is_an_error_never_a_score_and_is_not_judged_again(
        store_engine, answers, judge_runtime):
    add_exchanges(store_engine, answers[4:6])  # one request: smollm2 live, qwen shadow
    # one token is too short for "[[A]]" or "[[7]]": the real judge's verdict cannot be parsed
    report = judge_store(store_engine, _judge(judge_runtime, 1), mode="both")
    assert (report.requests, report.unparsable, report.votes, report.grades) == (1, 3, 0, 0)
    assert read_votes(store_engine) == [] and query_outcomes(store_engine) == []
    errors = read_judge_errors(store_engine)
    assert sorted(e.mode for e in errors) == ["pairwise", "rubric", "rubric"]
    assert all("parsable" in e.error and e.judge == QWEN05 for e in errors)
    again = judge_store(store_engine, _judge(judge_runtime, 1), mode="both")
    assert (again.to_do, again.skipped) == (0, 3)


def test_limit_and_mode_select_the_work(store_engine, answers, judge_runtime):
    add_exchanges(store_engine, answers)
    report = judge_store(store_engine, _judge(judge_runtime, 1), mode="pairwise", limit=1)
    assert (report.requests, report.to_do) == (3, 1)
    rest = judge_store(store_engine, _judge(judge_runtime, 1), mode="pairwise")
    assert (rest.to_do, rest.skipped) == (2, 1)
