"""The outcome store: what the feedback endpoint (or ``add_outcome``) writes reads back as the
same ``Outcome`` records, unknown values stay None, and the filters select what they say."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from rankgate.gateway.auto_route import RoutingTable
from rankgate.gateway.feedback import handle_feedback
from rankgate.outcomes import Outcome
from rankgate.store.outcome_store import add_outcome, add_outcomes, read_outcomes
from rankgate.store.tables import make_engine, request_log


@pytest.fixture
def engine(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path / 'rankgate.db'}")
    yield e
    e.dispose()


def full_outcome(**changes) -> Outcome:
    base = dict(prompt_id="p1", prompt="What is 2+2?", model="qwen2.5-coder-0.5b", score=0.75,
                cost_usd=0.0012, latency_s=1.5, ttft_s=0.25, input_tokens=12, output_tokens=3,
                response="4", category="math", source="judge", scorer="exact",
                explanation="matches", error=None, logprob_mean=-0.4, confidence=0.9,
                extra={"router": "knn", "comment": "fine", "judge": {"model": "m", "votes": 3}})
    base.update(changes)
    return Outcome(**base)


# --- the feedback endpoint ------------------------------------------------------------------

@pytest.fixture
def feedback(engine):
    """``POST /v1/feedback`` on a minimal app around the real handler and a real database."""
    state = SimpleNamespace(auth=None, settings=SimpleNamespace(max_body_bytes=64 * 1024),
                            recent=OrderedDict(),
                            request_log=SimpleNamespace(engine=engine, scrub=None),
                            routing=RoutingTable(), bandit_sync=None)

    async def endpoint(request: Request) -> Response:
        return await handle_feedback(state, request)  # type: ignore[arg-type]

    app = Starlette(routes=[Route("/v1/feedback", endpoint, methods=["POST"])])
    with TestClient(app) as client:
        yield SimpleNamespace(client=client, state=state)
    state.routing.executor.shutdown()


def log_request(engine, rid: str, **values) -> None:
    row = {"id": rid, "ts": time.time(), "endpoint": "chat", "status": 200,
           "model": "smollm2-135m", "prompt": "user: hi", **values}
    with engine.begin() as conn:
        conn.execute(sa.insert(request_log), [row])


def test_feedback_on_a_logged_request_reads_back_as_a_feedback_outcome(engine, feedback):
    log_request(engine, "req-1", router="knn", cost_usd=0.002, latency_ms=1500.0)
    r = feedback.client.post("/v1/feedback", json={"request_id": "req-1", "thumbs": "up",
                                                   "comment": "right"})
    assert r.status_code == 200, r.text
    assert read_outcomes(engine) == [Outcome(
        prompt_id="req-1", prompt="user: hi", model="smollm2-135m", score=1.0, cost_usd=0.002,
        latency_s=1.5, source="feedback", extra={"router": "knn", "comment": "right"})]


def test_feedback_on_a_recent_request_keeps_unknown_cost_and_latency_as_none(engine, feedback):
    feedback.state.recent["req-2"] = {"model": "m", "prompt": "p", "router": None,
                                      "cost_usd": None, "latency_s": None}
    r = feedback.client.post("/v1/feedback", json={"request_id": "req-2", "score": 0.25})
    assert r.status_code == 200, r.text
    [got] = read_outcomes(engine)
    assert got == Outcome(prompt_id="req-2", prompt="p", model="m", score=0.25,
                          source="feedback")
    assert got.cost_usd is None and got.latency_s is None and got.extra == {}


def test_feedback_on_an_unanswered_or_unknown_request_stores_nothing(engine, feedback):
    log_request(engine, "req-err", status=502)
    for rid in ("req-err", "req-unknown"):
        r = feedback.client.post("/v1/feedback", json={"request_id": rid, "thumbs": "down"})
        assert r.status_code == 404
    assert read_outcomes(engine) == []


# --- add_outcome / read_outcomes ------------------------------------------------------------

def test_every_field_and_extra_round_trip(engine):
    o = full_outcome()
    add_outcome(engine, o)
    assert read_outcomes(engine) == [o]


def test_unknown_values_stay_none_never_zero(engine):
    add_outcome(engine, Outcome(prompt_id="p", prompt="", model="m", score=0.0,
                                source="import"))
    [got] = read_outcomes(engine)
    assert got == Outcome(prompt_id="p", prompt="", model="m", score=0.0, source="import")
    for name in ("cost_usd", "latency_s", "ttft_s", "input_tokens", "output_tokens",
                 "response", "category", "scorer", "explanation", "error", "logprob_mean",
                 "confidence"):
        assert getattr(got, name) is None, name


def test_since_selects_outcomes_stored_at_or_after_it(engine):
    add_outcome(engine, full_outcome(prompt_id="old"), ts=1000.0)
    add_outcome(engine, full_outcome(prompt_id="edge"), ts=2000.0)
    add_outcome(engine, full_outcome(prompt_id="new"), ts=3000.0)
    assert [o.prompt_id for o in read_outcomes(engine, since=2000.0)] == ["edge", "new"]
    assert [o.prompt_id for o in read_outcomes(engine)] == ["old", "edge", "new"]


def test_sources_and_models_select_what_they_name(engine):
    add_outcomes(engine, [full_outcome(prompt_id="a", source="feedback"),
                          full_outcome(prompt_id="b", source="judge", model="other"),
                          full_outcome(prompt_id="c", source="shadow")])
    assert [o.prompt_id for o in read_outcomes(engine, sources=["feedback", "shadow"])
            ] == ["a", "c"]
    assert {o.source for o in read_outcomes(engine, sources=["judge"])} == {"judge"}
    assert [o.prompt_id for o in read_outcomes(engine, models=["other"])] == ["b"]
    assert read_outcomes(engine, sources=[]) == []


@pytest.mark.parametrize("changes", [{"score": None}, {"source": None}, {"source": ""}])
def test_outcomes_without_score_or_source_are_refused_and_nothing_is_stored(engine, changes):
    with pytest.raises(ValueError):
        add_outcomes(engine, [full_outcome(prompt_id="ok"), full_outcome(**changes)])
    assert read_outcomes(engine) == []


def test_a_database_from_before_the_new_columns_gains_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    with old.begin() as conn:  # the outcomes table as earlier releases created it
        conn.execute(sa.text(
            "create table outcomes (id integer primary key autoincrement, prompt_id varchar(64)"
            " not null, prompt text not null, model varchar(200) not null, score float not null,"
            " cost_usd float, latency_s float, source varchar(32) not null, router varchar(64),"
            " comment text, ts float not null)"))
        conn.execute(sa.text("insert into outcomes (prompt_id, prompt, model, score, source, "
                             "router, ts) values ('r1', 'p', 'm', 1.0, 'feedback', 'knn', 1.0)"))
    old.dispose()
    engine = make_engine(url)
    try:
        add_outcome(engine, full_outcome(prompt_id="r2"))
        got = read_outcomes(engine)
    finally:
        engine.dispose()
    assert got == [Outcome(prompt_id="r1", prompt="p", model="m", score=1.0, source="feedback",
                           extra={"router": "knn"}), full_outcome(prompt_id="r2")]


def test_outcomes_round_trip_and_filter_on_postgresql(postgres_url):
    engine = make_engine(postgres_url)
    model = f"pg-{uuid.uuid4().hex[:8]}"  # the server is shared by the whole session
    try:
        first = full_outcome(prompt_id="pg-1", model=model, source="feedback")
        second = Outcome(prompt_id="pg-2", prompt="p", model=model, score=0.5, source="shadow")
        add_outcome(engine, first, ts=1000.0)
        add_outcome(engine, second, ts=2000.0)
        assert read_outcomes(engine, models=[model]) == [first, second]
        assert read_outcomes(engine, models=[model], since=1500.0) == [second]
        assert read_outcomes(engine, models=[model], sources=["feedback"]) == [first]
    finally:
        engine.dispose()
