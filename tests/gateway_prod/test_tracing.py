"""OpenTelemetry traces as a collector receives them: a real gateway subprocess exports over
OTLP/HTTP to a real receiver on 127.0.0.1 (``rankgate.testing.otlp_receiver``, decoding the
protobuf with ``opentelemetry-proto``), and the span trees of one routed, one cached and one
fallen-back request are checked: names, parent/child links, the request id, the routing
decision and each upstream attempt. The panel is ``faulty`` models (``error-500`` fails every
call), so the fallback is real and deterministic.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from rankgate.config import Settings
from rankgate.embed import HashEmbedder
from rankgate.gateway import create_app
from rankgate.gateway.tracing import TraceRequests, traces_url
from rankgate.outcomes import Outcome
from rankgate.panel import ModelSpec, Panel
from rankgate.routing.train_replay import train
from rankgate.testing.otlp_receiver import OTLPReceiver
from tests.conftest import Server

ADMIN = "rg-admin-tracing-test"
PANEL = [{"id": "small", "backend": "faulty", "upstream_model": "ok",
          "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1},
         {"id": "big", "backend": "faulty", "upstream_model": "ok",
          "input_price_per_mtok": 1.0, "output_price_per_mtok": 1.0},
         {"id": "broken", "backend": "faulty", "upstream_model": "error-500",
          "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1, "fallbacks": ["big"]}]
SERVER, CLIENT = 2, 3  # OTLP span kinds


def _outcomes() -> list[Outcome]:
    rows = []
    for i in range(60):
        text = f"What is {i} plus {i * 3 % 17}? Answer with the number only."
        # scores must vary to train a router; small is right more often, so auto picks it
        small, big = float(i % 10 != 9), float(i % 5 != 0)
        for m, score, cost in (("small", small, 1e-5), ("big", big, 1e-4)):
            rows.append(Outcome(f"i{i}", text, m, score, cost_usd=cost, source="eval"))
    return rows


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    r = OTLPReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def traced(start_gateway: Callable[..., Server], receiver: OTLPReceiver,
           tmp_path_factory: pytest.TempPathFactory) -> Server:
    router = tmp_path_factory.mktemp("tracing-router") / "knn.npz"
    train(_outcomes(), "knn", router, HashEmbedder())
    return start_gateway(panel=PANEL, name="traced", extra_args=["--router", str(router)],
                         env={"RANKGATE_ADMIN_KEY": ADMIN, "RANKGATE_RETRIES": "1",
                              "RANKGATE_OTEL_ENDPOINT": receiver.endpoint,
                              "OTEL_BSP_SCHEDULE_DELAY": "50",
                              "OTEL_SERVICE_NAME": "rankgate-under-test"})


def _client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=ADMIN, max_retries=0, timeout=60)


def _ask(gw: Server, model: str, prompt: str = "What is 2 plus 3?", **kw: Any
         ) -> httpx.Headers:
    raw = _client(gw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}],
        max_tokens=8, **kw)
    raw.parse()
    return raw.headers


def tree(receiver: OTLPReceiver, request_id: str, expect: int,
         timeout: float = 20.0) -> dict[str, Any]:
    """The span tree of one request, as ``{"span": ..., "children": [...]}`` (children in
    start order), once its root and ``expect`` spans in all have been exported."""
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.snapshot()
        roots = [s for s in spans if s["parent_id"] is None
                 and s["attributes"].get("rankgate.request_id") == request_id]
        if roots:
            mine = [s for s in spans if s["trace_id"] == roots[0]["trace_id"]]
            if len(mine) >= expect:
                break
        if time.monotonic() > deadline:
            raise AssertionError(f"spans of {request_id} not exported: {roots} / {len(spans)}")
        time.sleep(0.05)

    def node(span: dict[str, Any]) -> dict[str, Any]:
        kids = sorted((s for s in mine if s["parent_id"] == span["span_id"]),
                      key=lambda s: s["start_ns"])
        return {"span": span, "children": [node(k) for k in kids]}

    assert len(mine) == expect, [s["name"] for s in mine]
    return node(roots[0])


def names(node: dict[str, Any]) -> list[str]:
    return [c["span"]["name"] for c in node["children"]]


def render(node: dict[str, Any], depth: int = 0) -> str:
    """The tree as indented lines with the interesting attributes (printed for the note)."""
    s = node["span"]
    keep = {k: v for k, v in s["attributes"].items()
            if k.startswith(("rankgate.", "gen_ai.", "error.", "http.response"))}
    line = "  " * depth + f"{s['name']}  {keep}"
    return "\n".join([line, *(render(c, depth + 1) for c in node["children"])])


def test_routed_request_has_auth_route_cache_and_one_attempt(traced, receiver):
    headers = _ask(traced, "auto", "What is 7 plus 9?", temperature=0)  # cacheable: a lookup
    t = tree(receiver, headers["x-request-id"], expect=5)
    print("\nrouted:\n" + render(t))
    root = t["span"]
    assert root["name"] == "POST /v1/chat/completions" and root["kind"] == SERVER
    assert root["resource"]["service.name"] == "rankgate-under-test"  # OTEL_* honoured
    a = root["attributes"]
    assert a["http.response.status_code"] == 200
    assert a["rankgate.router"] == headers["x-rankgate-router"]
    assert a["rankgate.model"] == headers["x-rankgate-model"]
    assert names(t) == ["rankgate.auth", "rankgate.route", "rankgate.cache.lookup",
                        f"chat {headers['x-rankgate-model']}"]
    auth, route, cache, attempt = (c["span"] for c in t["children"])
    assert auth["attributes"]["rankgate.key.id"] == "admin"
    r = route["attributes"]
    assert r["rankgate.request_id"] == headers["x-request-id"]
    assert r["rankgate.route.model"] == headers["x-rankgate-model"]
    assert r["rankgate.router"] == headers["x-rankgate-router"]
    assert sorted(r["rankgate.route.candidates"]) == ["big", "small"]
    assert r["rankgate.route.predicted_quality"] == pytest.approx(
        float(headers["x-rankgate-predicted-quality"]), abs=1e-4)
    assert len(r["rankgate.route.candidate_quality"]) == 2
    assert cache["attributes"]["rankgate.cache.hit"] is False
    assert attempt["kind"] == CLIENT
    assert attempt["attributes"]["rankgate.attempt"] == 1
    assert attempt["attributes"]["rankgate.attempt.outcome"] == "ok"
    assert attempt["attributes"]["gen_ai.request.model"] == headers["x-rankgate-model"]
    assert attempt["attributes"]["gen_ai.usage.output_tokens"] > 0


def test_cached_request_stops_at_the_cache_lookup(traced, receiver):
    first = _ask(traced, "small", temperature=0)
    second = _ask(traced, "small", temperature=0)
    assert second["x-rankgate-cache"] == "exact"
    tree(receiver, first["x-request-id"], expect=4)  # auth, cache miss, one attempt
    t = tree(receiver, second["x-request-id"], expect=3)
    print("\ncached:\n" + render(t))
    assert names(t) == ["rankgate.auth", "rankgate.cache.lookup"]
    assert t["children"][1]["span"]["attributes"]["rankgate.cache.hit"] is True
    assert t["span"]["attributes"]["rankgate.cache"] == "exact"


def test_fallen_back_request_shows_each_attempt_and_the_fallback(traced, receiver):
    headers = _ask(traced, "broken")
    assert headers["x-rankgate-fallback"] == "broken->big"
    t = tree(receiver, headers["x-request-id"], expect=6)
    print("\nfallen back:\n" + render(t))
    assert names(t) == ["rankgate.auth", "chat broken", "chat broken", "rankgate.fallback"]
    for n, c in enumerate(t["children"][1:3], start=1):
        a = c["span"]["attributes"]
        assert (a["rankgate.attempt"], a["rankgate.attempt.outcome"]) == (n, "error")
        assert a["error.type"] == "upstream_error" and a["rankgate.attempt.status"] == 502
        assert a["rankgate.upstream_model"] == "error-500"
        assert c["span"]["status"] == 2  # STATUS_CODE_ERROR
    fallback = t["children"][3]
    fa = fallback["span"]["attributes"]
    assert (fa["rankgate.fallback.from"], fa["rankgate.fallback.to"],
            fa["rankgate.fallback.reason"]) == ("broken", "big", "upstream_error")
    assert names(fallback) == ["chat big"]
    last = fallback["children"][0]["span"]["attributes"]
    assert (last["rankgate.attempt"], last["rankgate.attempt.outcome"]) == (3, "ok")
    root = t["span"]["attributes"]
    assert root["rankgate.fallback"] == "broken->big" and root["rankgate.attempts"] == 3
    assert root["http.response.status_code"] == 200


def test_streamed_request_span_ends_after_the_last_chunk(traced, receiver):
    with _client(traced).chat.completions.with_streaming_response.create(
            model="big", messages=[{"role": "user", "content": "Say hello"}],
            stream=True) as raw:
        rid = raw.headers["x-request-id"]
        chunks = list(raw.parse())
    t = tree(receiver, rid, expect=3)
    assert names(t) == ["rankgate.auth", "chat big"]
    last_chunk_sent = t["span"]["end_ns"]
    assert chunks and last_chunk_sent >= t["children"][1]["span"]["end_ns"]


def test_a_callers_traceparent_makes_the_request_span_its_child(traced, receiver):
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    r = httpx.post(traced.base_url + "/chat/completions", timeout=30,
                   headers={"authorization": f"Bearer {ADMIN}",
                            "traceparent": f"00-{trace_id}-{parent}-01"},
                   json={"model": "big", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 20
    while not (root := [s for s in receiver.snapshot()
                        if s["attributes"].get("rankgate.request_id") == rid]):
        assert time.monotonic() < deadline, "request span not exported"
        time.sleep(0.05)
    assert (root[0]["trace_id"], root[0]["parent_id"]) == (trace_id, parent)


def test_a_rejected_key_is_an_auth_span_with_the_error(traced, receiver):
    r = httpx.post(traced.base_url + "/chat/completions", timeout=30,
                   headers={"authorization": "Bearer rg-not-a-key"},
                   json={"model": "big", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401
    t = tree(receiver, r.headers["x-request-id"], expect=2)
    assert names(t) == ["rankgate.auth"]
    auth = t["children"][0]["span"]
    assert auth["status"] == 2 and auth["attributes"]["error.type"] == "invalid_api_key"
    assert t["span"]["status"] != 2  # a 401 is the client's error, not the server's


def test_tracing_is_off_by_default_and_adds_nothing(tmp_path: Path):
    app = create_app(Settings(home=tmp_path),
                     Panel([ModelSpec(id="m", backend="faulty", upstream_model="ok")]))
    state = app.state.rankgate
    assert state.tracer is None
    assert not any(m.cls is TraceRequests for m in app.user_middleware)
    assert "_timed" not in vars(state.resilience)  # the attempt path is not wrapped


def test_a_gateway_without_tracing_never_imports_the_sdk(tmp_path: Path):
    # (FastAPI itself imports opentelemetry-api; the SDK and exporter are ours alone)
    code = ("import sys; from rankgate.config import Settings; "
            "from rankgate.gateway import create_app; "
            "from rankgate.panel import ModelSpec, Panel; "
            f"create_app(Settings(home={str(tmp_path)!r}), "
            "Panel([ModelSpec(id='m', backend='faulty')])); "
            "print(sorted(m for m in sys.modules "
            "if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANKGATE_", "OTEL_"))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_the_traces_url_follows_the_otlp_endpoint_convention():
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"
