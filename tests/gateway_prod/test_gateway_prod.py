"""The production gateway end to end: a real ``rankgate serve`` subprocess with the ``faulty``
backend (the fault injector), called with the official ``openai`` client and raw HTTP.

Keys (401/403/429), budgets under real concurrency, fallbacks, the circuit breaker, timeouts,
the exact cache, body limits, metrics and the bind rule — each as the user meets it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import openai
import pytest
import sqlalchemy as sa

ADMIN = "admin-secret-for-tests-0123456789"
PRICES = {"input_price_per_mtok": 1000.0, "output_price_per_mtok": 2000.0}
PANEL = [
    {"id": "good", "backend": "faulty", "upstream_model": "ok", **PRICES},
    {"id": "other", "backend": "faulty", "upstream_model": "ok-other", **PRICES},
    {"id": "broken", "backend": "faulty", "upstream_model": "error-500",
     "fallbacks": ["good"], **PRICES},
    {"id": "broken-alone", "backend": "faulty", "upstream_model": "error-503", **PRICES},
    {"id": "bad", "backend": "faulty", "upstream_model": "bad-request-400",
     "fallbacks": ["good"], **PRICES},
    {"id": "hang", "backend": "faulty", "upstream_model": "hang", "timeout_s": 0.3, **PRICES},
    {"id": "flaky", "backend": "faulty", "upstream_model": "flaky-3", **PRICES},
    {"id": "midstream", "backend": "faulty", "upstream_model": "err-in-stream", **PRICES},
    *({"id": f"f-{fault}", "backend": "faulty", "upstream_model": fault, "timeout_s": 0.3,
       **PRICES} for fault in ("error-500", "error-503", "rate-limit-429", "bad-request-400",
                               "slow-50", "hang", "err-in-stream", "truncated-stream",
                               "bad-json", "error-in-200")),
]
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(PANEL, name="prod", env={
        "RANKGATE_ADMIN_KEY": ADMIN, "RANKGATE_RETRIES": "0", "RANKGATE_BREAKER_FAILURES": "3",
        "RANKGATE_BREAKER_COOLDOWN_S": "1.5", "RANKGATE_MAX_BODY_BYTES": "65536"})


def admin_create(gw, **fields) -> dict:
    r = httpx.post(gw.root + "/admin/keys", json={"name": "t", **fields},
                   headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code in (200, 201), r.text
    return r.json()


def client(gw, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


# -- keys -------------------------------------------------------------------------------------
def test_missing_or_wrong_key_is_401_and_never_echoed(gw):
    r = httpx.post(gw.base_url + "/chat/completions", json={"model": "good", "messages": MSG})
    assert r.status_code == 401 and r.json()["error"]["code"]
    wrong = "rg-this-is-not-a-real-key-1234567890"
    with pytest.raises(openai.AuthenticationError) as e:
        client(gw, wrong).chat.completions.create(model="good", messages=MSG)
    assert wrong not in str(e.value.body) and wrong not in gw.log_path.read_text()


def test_admin_api_needs_the_admin_key(gw):
    r = httpx.post(gw.root + "/admin/keys", json={"name": "x"},
                   headers={"authorization": "Bearer nope"})
    assert r.status_code == 401


def test_key_lists_and_revokes_and_secret_is_not_stored(gw):
    created = admin_create(gw, name="to-revoke")
    secret = created["key"]
    assert client(gw, secret).chat.completions.create(model="good", messages=MSG)
    listed = httpx.get(gw.root + "/admin/keys", headers={"authorization": f"Bearer {ADMIN}"})
    assert secret not in listed.text and created["id"] in listed.text
    engine = sa.create_engine(f"sqlite:///{gw.home / 'rankgate.db'}")
    with engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(sa.text("select * from api_keys")))
    engine.dispose()
    assert secret not in dump
    r = httpx.delete(gw.root + f"/admin/keys/{created['id']}",
                     headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code in (200, 204)
    deadline = time.time() + 15  # revocation reaches the auth cache within its TTL
    while True:
        try:
            client(gw, secret).chat.completions.create(model="good", messages=MSG)
        except openai.AuthenticationError:
            break
        assert time.time() < deadline, "revoked key still accepted"
        time.sleep(0.5)


def test_model_not_allowed_for_the_key_is_403(gw):
    key = admin_create(gw, models=["good"])["key"]
    c = client(gw, key)
    assert c.chat.completions.create(model="good", messages=MSG).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError):
        c.chat.completions.create(model="other", messages=MSG)


def test_rpm_limit_is_429_with_retry_after(gw):
    key = admin_create(gw, rpm=3)["key"]
    c = client(gw, key)
    for _ in range(3):
        c.chat.completions.create(model="good", messages=MSG)
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="good", messages=MSG)
    assert int(e.value.response.headers["retry-after"]) >= 1


def _one_cost(gw) -> float:
    raw = client(gw, ADMIN).chat.completions.with_raw_response.create(
        model="good", messages=MSG, max_tokens=5)
    return float(raw.headers["x-rankgate-cost-usd"])


def test_budget_holds_under_50_concurrent_requests(gw):
    cost = _one_cost(gw)
    assert cost > 0
    created = admin_create(gw, budget_usd=10 * cost * 1.0001, budget_period="day")
    c = openai.AsyncOpenAI(base_url=gw.base_url, api_key=created["key"], max_retries=0)

    async def one() -> str:
        try:
            await c.chat.completions.create(model="good", messages=MSG, max_tokens=5)
            return "ok"
        except openai.RateLimitError as e:
            return e.body.get("code") if isinstance(e.body, dict) else "429"

    async def burst() -> list[str]:
        try:
            return await asyncio.gather(*(one() for _ in range(50)))
        finally:
            await c.close()

    results = asyncio.run(burst())
    passed = results.count("ok")
    assert 1 <= passed <= 10, results
    assert all(r == "budget_exceeded" for r in results if r != "ok"), set(results)
    gw.settle()
    engine = sa.create_engine(f"sqlite:///{gw.home / 'rankgate.db'}")
    with engine.connect() as conn:
        spent = conn.execute(sa.text("select coalesce(sum(cost_usd), 0) from request_log "
                                     "where key_id = :k and status = 200"),
                             {"k": created["id"]}).scalar_one()
    engine.dispose()
    assert spent <= 10 * cost * 1.0001


# -- reliability ------------------------------------------------------------------------------
def test_failed_model_falls_back_and_says_so(gw):
    raw = client(gw, ADMIN).chat.completions.with_raw_response.create(model="broken",
                                                                     messages=MSG)
    assert raw.headers["x-rankgate-fallback"] == "broken->good"
    assert raw.headers["x-rankgate-model"] == "good"
    assert raw.parse().model == "good"
    row = gw.log_row(raw.headers["x-request-id"])
    assert row["fallback_from"] == "broken" and row["model"] == "good"


def test_bad_request_is_not_retried_nor_fallen_back(gw):
    with pytest.raises(openai.BadRequestError) as e:
        client(gw, ADMIN).chat.completions.create(model="bad", messages=MSG)
    assert "x-rankgate-fallback" not in e.value.response.headers


def test_hanging_model_is_cut_by_its_timeout(gw):
    with pytest.raises(openai.APIStatusError) as e:
        client(gw, ADMIN).chat.completions.create(model="hang", messages=MSG)
    assert e.value.status_code == 504


def test_breaker_opens_then_recovers_through_a_half_open_probe(gw):
    c = client(gw, ADMIN)
    for _ in range(3):  # flaky-3: its first three calls fail
        with pytest.raises(openai.APIStatusError) as e:
            c.chat.completions.create(model="flaky", messages=MSG)
        assert e.value.status_code == 502 or e.value.status_code == 503
    assert httpx.get(gw.root + "/healthz").json()["breakers"]["flaky"] == "open"
    with pytest.raises(openai.APIStatusError) as e:  # skipped without a call while open
        c.chat.completions.create(model="flaky", messages=MSG)
    assert e.value.status_code == 503 and e.value.body["code"] == "circuit_open"
    assert int(e.value.response.headers["retry-after"]) >= 1
    time.sleep(1.6)  # cooldown: the next request is the half-open probe, and it succeeds
    assert c.chat.completions.create(model="flaky", messages=MSG).choices[0].message.content
    assert httpx.get(gw.root + "/healthz").json()["breakers"]["flaky"] == "closed"


def test_error_mid_stream_ends_with_an_error_event_and_is_logged(gw):
    stream = client(gw, ADMIN).chat.completions.create(model="midstream", messages=MSG,
                                                       stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    rid = stream.response.headers["x-request-id"]
    row = gw.log_row(rid)
    assert row["status"] >= 500 and "mid-stream" in row["error"]


@pytest.mark.parametrize(("fault", "status"), [
    ("error-500", 502), ("error-503", 502), ("rate-limit-429", 429), ("bad-request-400", 400),
    ("slow-50", 200), ("hang", 504), ("bad-json", 502), ("error-in-200", 502)])
def test_each_fault_gets_its_honest_status_and_a_log_row(gw, fault, status):
    r = httpx.post(gw.base_url + "/chat/completions",
                   json={"model": f"f-{fault}", "messages": MSG},
                   headers={"authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert r.status_code == status, r.text
    if status != 200:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    row = gw.log_row(r.headers["x-request-id"])
    assert row["status"] == status and row["model"] == f"f-{fault}"


@pytest.mark.parametrize("fault", ["err-in-stream", "truncated-stream"])
def test_a_stream_that_breaks_ends_with_an_error_event_not_a_silent_cut(gw, fault):
    stream = client(gw, ADMIN).chat.completions.create(model=f"f-{fault}", messages=MSG,
                                                       stream=True)
    chunks = 0
    with pytest.raises(openai.APIError):
        for _ in stream:
            chunks += 1
    assert chunks >= 1  # it did start: the failure came mid-stream
    row = gw.log_row(stream.response.headers["x-request-id"])
    assert row["status"] == 502 and row["error"].startswith("mid-stream")


# -- cache ------------------------------------------------------------------------------------
def test_exact_cache_answers_a_repeated_temperature_0_request_for_free(gw):
    c = client(gw, ADMIN)
    msgs = [{"role": "user", "content": f"cache me {time.time()}"}]
    first = c.chat.completions.with_raw_response.create(model="good", messages=msgs,
                                                       temperature=0)
    second = c.chat.completions.with_raw_response.create(model="good", messages=msgs,
                                                        temperature=0)
    assert "x-rankgate-cache" not in first.headers
    assert second.headers["x-rankgate-cache"] == "exact"
    assert float(second.headers["x-rankgate-cost-usd"]) == 0.0
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    warm = c.chat.completions.with_raw_response.create(model="good", messages=msgs,
                                                      temperature=0.7)
    assert "x-rankgate-cache" not in warm.headers  # sampled answers are never cached


def test_cache_is_scoped_by_key(gw):
    msgs = [{"role": "user", "content": f"scoped {time.time()}"}]
    a, b = admin_create(gw)["key"], admin_create(gw)["key"]
    client(gw, a).chat.completions.create(model="good", messages=msgs, temperature=0)
    raw = client(gw, b).chat.completions.with_raw_response.create(model="good", messages=msgs,
                                                                 temperature=0)
    assert "x-rankgate-cache" not in raw.headers


# -- limits on input, metrics, binding ----------------------------------------------------------
def test_oversized_body_is_413(gw):
    big = "x" * 70_000
    r = httpx.post(gw.base_url + "/chat/completions",
                   json={"model": "good", "messages": [{"role": "user", "content": big}]},
                   headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks():
        yield b'{"model": "good", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 5000
        yield b'"}]}'

    r = httpx.post(gw.base_url + "/chat/completions", content=chunks(),
                   headers={"authorization": f"Bearer {ADMIN}",
                            "content-type": "application/json"})
    assert r.status_code == 413


def test_metrics_count_requests_errors_fallbacks_and_cache(gw):
    from prometheus_client.parser import text_string_to_metric_families

    c = client(gw, ADMIN)
    c.chat.completions.create(model="good", messages=MSG)
    c.chat.completions.create(model="broken", messages=MSG)
    text = httpx.get(gw.root + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    names = set(families)
    assert any("request" in n for n in names)
    assert any("fallback" in n for n in names)
    assert any("breaker" in n for n in names)
    total = sum(s.value for f in families.values() for s in f.samples
                if "fallback" in f.name and s.name.endswith("_total"))
    assert total >= 1


def test_open_gateway_refuses_a_public_bind(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rankgate", "serve", "--host", "0.0.0.0",
                        "--port", "9"], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "RANKGATE_HOME": str(tmp_path),
                            "RANKGATE_ADMIN_KEY": ""})
    assert r.returncode != 0
    assert "RANKGATE_ADMIN_KEY" in r.stdout + r.stderr
