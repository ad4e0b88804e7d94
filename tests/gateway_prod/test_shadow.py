"""Shadow evaluation (``serve --shadow-rate``): other panel models answer sampled live
requests off the request path. The live answer and headers never depend on it; a full queue or
the daily cap drops shadow work only, counted; shadow answers are priced, stored beside the
live one and never billed to the key; a local shadow call gives way to live traffic.

Real gateway subprocesses, the official ``openai`` client, the real smollm2 model."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
import yaml

from rankgate.store.exchange_store import Exchange, read_exchanges
from rankgate.store.tables import make_engine
from tests.conftest import SMOLLM, Server

ADMIN = "admin-secret-for-shadow-tests-0123456789"
LOCAL = {"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM}
FAST = {"id": "fast", "backend": "faulty", "upstream_model": "ok",
        "input_price_per_mtok": 1000.0, "output_price_per_mtok": 2000.0}
PRICEY = {"id": "pricey", "backend": "faulty", "upstream_model": "ok",
          "input_price_per_mtok": 1000.0, "output_price_per_mtok": 1000.0}
# "hi there" = 2 prompt words, the reply = 5 words: a pricey shadow call costs exactly
# (2 + 5) * 1000 / 1e6 = $0.007; its estimate (8 chars / 4 + 4 per message = 6 tokens in,
# max_tokens 5 out) is $0.011
HI = [{"role": "user", "content": "hi there"}]
PRICEY_CALL_USD = 0.007


def health(gw: Server) -> dict[str, Any]:
    return httpx.get(gw.root + "/healthz").json()


def shadow_idle(gw: Server, timeout: float = 60.0) -> dict[str, Any]:
    """Shadow stats once nothing is queued or running and every exchange is written."""
    deadline = time.time() + timeout
    while True:
        h = health(gw)
        if (h["shadow"]["queued"] == 0 and h["shadow"]["running"] == 0
                and h["exchanges"]["queued"] == 0) or time.time() > deadline:
            return h["shadow"]
        time.sleep(0.05)


def stored(gw: Server) -> list[Exchange]:
    engine = make_engine(f"sqlite:///{gw.home / 'rankgate.db'}")
    try:
        return read_exchanges(engine)
    finally:
        engine.dispose()


def log_rows(gw: Server) -> int:
    gw.settle()
    return gw.count_rows()


def client(gw: Server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def metric(gw: Server, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(httpx.get(gw.root + "/metrics").text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


# -- the live answer never depends on shadowing ----------------------------------------------
VOLATILE = {"x-request-id", "x-rankgate-overhead-ms", "date", "server"}


def test_shadow_never_changes_the_live_answer_or_its_headers(start_gateway, smollm_path):
    echo = {"id": "echo", "backend": "faulty", "upstream_model": "ok",
            "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}
    env = {"RANKGATE_CACHE": "false"}
    plain = start_gateway([LOCAL, echo], name="shadow-off", env=env)
    shadowed = start_gateway([LOCAL, echo], name="shadow-on", env=env,
                             extra_args=["--shadow-rate", "1", "--log-bodies"])
    prompts = ["Name a primary colour.", "What is 2 + 3?", "Say hello in French.",
               "Give one word that rhymes with cat.", "What is the capital of Italy?",
               "Name a planet."]
    for i, prompt in enumerate(prompts):
        model = SMOLLM if i % 2 else "echo"  # each is the other's shadow model
        answers = []
        for gw in (plain, shadowed):
            raw = client(gw).chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": prompt}],
                max_tokens=24, temperature=0)
            body = raw.http_response.json()
            answers.append((raw.http_response.status_code,
                            {k: v for k, v in body.items() if k not in ("id", "created")},
                            dict(raw.headers)))
        (s0, b0, h0), (s1, b1, h1) = answers
        assert s0 == s1 == 200
        assert b0 == b1, f"{model}: {b0} != {b1}"
        assert set(h0) == set(h1)
        volatile = VOLATILE | ({"x-rankgate-cost-usd"} if model == SMOLLM else set())
        assert {k: v for k, v in h0.items() if k not in volatile} == \
            {k: v for k, v in h1.items() if k not in volatile}
    st = shadow_idle(shadowed)
    assert st["done"] + st["preempted"] == len(prompts) and st["done"] >= len(prompts) // 2
    assert "shadow" not in health(plain)
    xs = stored(shadowed)
    assert sum(x.role == "live" for x in xs) == len(prompts)
    assert sum(x.role == "shadow" for x in xs) == st["done"]
    assert log_rows(shadowed) == len(prompts)  # shadow calls are not in the request log


def test_a_local_shadow_call_gives_way_to_a_live_request(start_gateway, smollm_path):
    echo = {"id": "echo", "backend": "faulty", "upstream_model": "ok"}
    gw = start_gateway([LOCAL, echo], name="shadow-preempt", extra_args=[
        "--shadow-rate", "1", "--shadow-models", SMOLLM, "--preload"])
    long_job = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]
    client(gw).chat.completions.create(model="echo", messages=long_job, max_tokens=512,
                                       temperature=0)
    deadline = time.time() + 30
    while health(gw)["shadow"]["running"] == 0:  # the shadow call on smollm2 has started
        assert time.time() < deadline, "the shadow call never started"
        time.sleep(0.02)
    live = client(gw).chat.completions.create(
        model=SMOLLM, messages=[{"role": "user", "content": "Say yes."}], max_tokens=4)
    assert live.choices[0].message.content is not None
    st = shadow_idle(gw)
    assert st["preempted"] == 1 and st["done"] == 0
    # the sampled request's live answer is stored, no shadow answer; the live request to
    # smollm2 has no other model to shadow (and bodies are not logged here)
    assert [x.role for x in stored(gw)] == ["live"]
    assert metric(gw, "rankgate_shadow_requests_total", outcome="preempted") == 1


# -- bounded: a full queue drops shadow work only --------------------------------------------
def test_a_full_shadow_queue_drops_shadow_work_only(start_gateway):
    slow = {"id": "slow", "backend": "faulty", "upstream_model": "slow-300"}
    gw = start_gateway([FAST, slow], name="shadow-full", extra_args=[
        "--shadow-rate", "1", "--shadow-models", "slow", "--shadow-queue", "1",
        "--log-bodies"])
    n = 30

    async def burst() -> list[int]:
        c = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        raws = await asyncio.gather(*(c.chat.completions.with_raw_response.create(
            model="fast", messages=[{"role": "user", "content": f"request {i}"}])
            for i in range(n)))
        await c.close()
        return [r.http_response.status_code for r in raws]

    assert asyncio.run(burst()) == [200] * n
    st = shadow_idle(gw)
    assert st["dropped_queue_full"] >= 1
    assert st["done"] + st["dropped_queue_full"] == n and st["error"] == 0
    assert metric(gw, "rankgate_shadow_requests_total",
                  outcome="dropped_queue_full") == st["dropped_queue_full"]
    xs = stored(gw)
    assert sum(x.role == "live" for x in xs) == n  # --log-bodies: every live one stored
    assert sum(x.role == "shadow" for x in xs) == st["done"]
    assert log_rows(gw) == n


# -- capped: the daily $ cap stops shadow calls ----------------------------------------------
def test_the_daily_cap_stops_shadow_calls(start_gateway):
    gw = start_gateway([FAST, PRICEY], name="shadow-cap", extra_args=[
        "--shadow-rate", "1", "--shadow-models", "pricey", "--shadow-max-usd-per-day", "0.02"])
    for _ in range(5):
        client(gw).chat.completions.create(model="fast", messages=HI, max_tokens=5)
        shadow_idle(gw)
    st = shadow_idle(gw)
    # 1st: reserve 0.011, spend 0.007; 2nd: 0.007 + 0.011 <= 0.02, spend 0.014; 3rd: 0.025 >
    # 0.02 -> capped; 4th and 5th are dropped as soon as they are offered
    assert (st["done"], st["dropped_cap"]) == (2, 3)
    assert st["spend_usd_today"] == pytest.approx(2 * PRICEY_CALL_USD) and st["capped_today"]
    assert metric(gw, "rankgate_shadow_requests_total", outcome="dropped_cap") == 3
    roles = [x.role for x in stored(gw)]
    # shadowing stores the live exchange of the requests it took (no --log-bodies here)
    assert roles.count("shadow") == 2 and roles.count("live") == 3


# -- priced, stored, never billed --------------------------------------------------------------
@pytest.fixture(scope="module")
def priced(start_gateway):
    return start_gateway([FAST, PRICEY], name="shadow-priced", env={
        "RANKGATE_ADMIN_KEY": ADMIN}, extra_args=["--shadow-rate", "1", "--shadow-models",
                                                  "pricey"])


def _key(gw: Server, **fields: Any) -> dict[str, Any]:
    r = httpx.post(gw.root + "/admin/keys", json={"name": "t", **fields},
                   headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    return r.json()


def test_shadow_answers_are_priced_and_never_billed_to_the_key(priced):
    key = _key(priced, budget_usd=1.0, budget_period="day")
    live_usd = 0.0
    ids = []
    for _ in range(3):
        raw = client(priced, key["key"]).chat.completions.with_raw_response.create(
            model="fast", messages=HI, max_tokens=5)
        live_usd += float(raw.headers["x-rankgate-cost-usd"])
        ids.append(raw.headers["x-request-id"])
    shadow_idle(priced)
    shadows = [x for x in stored(priced) if x.role == "shadow" and x.request_id in ids]
    assert len(shadows) == 3
    for x in shadows:
        assert x.model == "pricey" and x.key_id == key["id"]
        assert x.cost_usd == pytest.approx(PRICEY_CALL_USD)
        assert (x.input_tokens, x.output_tokens) == (2, 5) and x.answer
    usage = httpx.get(f"{priced.root}/admin/keys/{key['id']}",
                      headers={"authorization": f"Bearer {ADMIN}"}).json()["usage"]
    assert usage["spent_usd"] == pytest.approx(live_usd)
    engine = sa.create_engine(f"sqlite:///{priced.home / 'rankgate.db'}")
    priced.settle()
    with engine.connect() as conn:
        logged = conn.execute(sa.text("select model, cost_usd from request_log where key_id = :k"),
                              {"k": key["id"]}).all()
    engine.dispose()
    assert [m for m, _ in logged] == ["fast"] * 3
    assert metric(priced, "rankgate_shadow_spend_usd_total", model="pricey") >= \
        3 * PRICEY_CALL_USD - 1e-12


def test_a_key_that_never_logs_bodies_is_never_shadowed(priced):
    key = _key(priced, log_bodies=False)
    before = shadow_idle(priced)["done"]
    raw = client(priced, key["key"]).chat.completions.with_raw_response.create(
        model="fast", messages=HI, max_tokens=5)
    assert shadow_idle(priced)["done"] == before
    assert raw.headers["x-request-id"] not in {x.request_id for x in stored(priced)}


def test_a_key_is_only_shadowed_to_models_it_may_use(priced):
    key = _key(priced, models=["fast"])
    before = shadow_idle(priced)["done"]
    raw = client(priced, key["key"]).chat.completions.with_raw_response.create(
        model="fast", messages=HI, max_tokens=5)
    assert shadow_idle(priced)["done"] == before
    assert raw.headers["x-request-id"] not in {x.request_id for x in stored(priced)}


def test_streamed_requests_are_shadowed_too(priced):
    key = _key(priced)
    stream = client(priced, key["key"]).chat.completions.create(
        model="fast", messages=HI, max_tokens=5, stream=True,
        stream_options={"include_usage": True})
    rid = None
    for chunk in stream:
        rid = chunk.model_extra.get("rankgate", {}).get("request_id") or rid
    shadow_idle(priced)
    mine = [x for x in stored(priced) if x.request_id == rid]
    assert [(x.role, x.model) for x in mine] == [("live", "fast"), ("shadow", "pricey")]
    assert mine[0].answer == mine[1].answer == "Hello from the fault upstream."


def test_a_model_that_cannot_take_the_request_is_skipped(start_gateway):
    no_tools = {"id": "no-tools", "backend": "faulty", "upstream_model": "ok",
                "capabilities": {"tools": False}}
    gw = start_gateway([FAST, no_tools], name="shadow-incapable",
                       extra_args=["--shadow-rate", "1"])
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    client(gw).chat.completions.create(model="fast", messages=HI, tools=tools)
    client(gw).chat.completions.create(model="fast", messages=HI)
    st = shadow_idle(gw)
    assert (st["skipped_incapable"], st["done"]) == (1, 1)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "env", "message"), [
    (["--shadow-models", "fast,nope"], {}, "unknown shadow model(s) nope"),
    (["--shadow-rate", "1.5"], {}, "--shadow-rate"),
    (["--shadow-queue", "0"], {}, "--shadow-queue"),
    ([], {"RANKGATE_REDACT_PATTERNS": '["a("]'}, "redact pattern 0"),
    ([], {"RANKGATE_REDACT_PATTERNS": "not json"}, "redact_patterns"),
])
def test_bad_shadow_or_body_settings_are_refused_before_serving(tmp_path, args, env, message):
    panel = tmp_path / "panel.yaml"
    panel.write_text(yaml.safe_dump({"models": [FAST, PRICEY]}))
    r = subprocess.run([sys.executable, "-m", "rankgate", "serve", "--panel", str(panel),
                        "--port", "1", *args], capture_output=True, text=True, timeout=60,
                       env={**__import__("os").environ, "RANKGATE_HOME": str(tmp_path), **env})
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "rankgate.db").exists()
