"""Request bodies in the log (``serve --log-bodies``, per key): stored redacted and capped,
off by default, for streams too, never for errors or cache hits — real gateway subprocesses,
the official ``openai`` client, the exchanges read back through ``store/exchange_store.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from rankgate.messages import prompt_text
from rankgate.store.exchange_store import Exchange, read_exchanges
from rankgate.store.tables import make_engine
from tests.conftest import Server

ADMIN = "admin-secret-for-body-tests-0123456789"
PRICES = {"input_price_per_mtok": 1000.0, "output_price_per_mtok": 2000.0}
PANEL = [
    {"id": "good", "backend": "faulty", "upstream_model": "ok", **PRICES},
    {"id": "broken", "backend": "faulty", "upstream_model": "error-500", **PRICES},
]
REPLY = "Hello from the fault upstream."
CAP = 300
SECRET_KEY = "sk-proj-" + "Zq9x4TbL" * 6
EMAIL = "jane.doe@example.com"


def exchanges(gw: Server, n: int, timeout: float = 10.0) -> list[Exchange]:
    """The gateway's exchanges once at least ``n`` are written and its queue is empty."""
    deadline = time.time() + timeout
    while True:
        st = httpx.get(gw.root + "/healthz").json()["exchanges"]
        if (st["written"] >= n and st["queued"] == 0) or time.time() > deadline:
            break
        time.sleep(0.05)
    engine = make_engine(f"sqlite:///{gw.home / 'rankgate.db'}")
    try:
        return read_exchanges(engine)
    finally:
        engine.dispose()


def client(gw: Server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def logged(start_gateway):
    return start_gateway(PANEL, name="bodies", extra_args=["--log-bodies"], env={
        "RANKGATE_BODY_MAX_CHARS": str(CAP),
        "RANKGATE_REDACT_PATTERNS": json.dumps([r"(?i)project\s+falcon"])})


@pytest.fixture(scope="module")
def unlogged(start_gateway):
    return start_gateway(PANEL, name="no-bodies")


def test_bodies_are_stored_redacted_and_capped(logged):
    long_text = "word " * 200  # 1000 characters, over the cap
    messages = [
        {"role": "system", "content": f"Never reveal {SECRET_KEY}."},
        {"role": "user", "content": [
            {"type": "text", "text": f"Mail {EMAIL} about Project Falcon."},
            {"type": "text", "text": long_text}]},
    ]
    raw = client(logged).chat.completions.with_raw_response.create(
        model="good", messages=messages, max_tokens=16)
    rid = raw.headers["x-request-id"]
    usage = raw.parse().usage
    [x] = [e for e in exchanges(logged, 1) if e.request_id == rid]
    assert x.role == "live" and x.model == "good" and x.key_id is None
    assert x.messages[0] == {"role": "system", "content": "Never reveal [REDACTED:api_key]."}
    parts = x.messages[1]["content"]
    assert parts[0] == {"type": "text",
                        "text": "Mail [REDACTED:email] about [REDACTED:custom]."}
    assert parts[1]["text"] == long_text[:CAP] and x.truncated
    assert x.prompt == prompt_text({"messages": x.messages})
    assert x.answer == REPLY and x.finish_reason == "stop" and x.error is None
    assert (x.input_tokens, x.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert x.cost_usd == pytest.approx(float(raw.headers["x-rankgate-cost-usd"]))
    assert x.latency_s is not None and x.latency_s > 0
    stored = json.dumps([e.messages for e in exchanges(logged, 1)]) + " ".join(
        e.prompt for e in exchanges(logged, 1))
    assert SECRET_KEY not in stored and EMAIL not in stored and "Falcon" not in stored


def test_a_short_exchange_is_not_marked_truncated(logged):
    raw = client(logged).chat.completions.with_raw_response.create(
        model="good", messages=[{"role": "user", "content": "short and sweet"}])
    rid = raw.headers["x-request-id"]
    [x] = [e for e in exchanges(logged, 2) if e.request_id == rid]
    assert not x.truncated and x.messages == [{"role": "user", "content": "short and sweet"}]


def test_streamed_answers_are_stored_once_the_stream_ends(logged):
    stream = client(logged).chat.completions.create(
        model="good", messages=[{"role": "user", "content": f"stream to {EMAIL}"}],
        stream=True, stream_options={"include_usage": True})
    text, rid, usage = "", None, None
    for chunk in stream:
        rid = chunk.model_extra.get("rankgate", {}).get("request_id") or rid
        usage = chunk.usage or usage
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text == REPLY and rid is not None
    [x] = [e for e in exchanges(logged, 3) if e.request_id == rid]
    assert x.answer == REPLY and x.finish_reason == "stop"
    assert x.messages == [{"role": "user", "content": "stream to [REDACTED:email]"}]
    assert x.output_tokens == usage.completion_tokens


def test_errors_and_cache_hits_are_not_stored(logged):
    before = len(exchanges(logged, 0))
    with pytest.raises(openai.APIStatusError):
        client(logged).chat.completions.create(
            model="broken", messages=[{"role": "user", "content": "fails"}])
    msgs = [{"role": "user", "content": "cache me please"}]
    first = client(logged).chat.completions.with_raw_response.create(
        model="good", messages=msgs, temperature=0)
    second = client(logged).chat.completions.with_raw_response.create(
        model="good", messages=msgs, temperature=0)
    assert second.headers.get("x-rankgate-cache") == "exact"
    after = exchanges(logged, before + 1)
    assert len(after) == before + 1
    assert after[-1].request_id == first.headers["x-request-id"]


def test_without_log_bodies_nothing_is_stored(unlogged):
    client(unlogged).chat.completions.create(
        model="good", messages=[{"role": "user", "content": f"mail {EMAIL}"}])
    stream = client(unlogged).chat.completions.create(
        model="good", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY
    unlogged.settle()
    assert exchanges(unlogged, 0, timeout=0.5) == []
    health = httpx.get(unlogged.root + "/healthz").json()
    assert health["exchanges"]["written"] == 0 and "shadow" not in health


def test_the_request_logs_prompt_and_feedback_are_redacted_without_bodies(unlogged):
    """The metadata row keeps the prompt (for feedback outcomes): it is redacted too, in the
    writer thread, and so is the outcome a thumbs-up turns it into."""
    raw = client(unlogged).chat.completions.with_raw_response.create(
        model="good", messages=[{"role": "user", "content": f"mail {EMAIL} key {SECRET_KEY}"}])
    rid = raw.headers["x-request-id"]
    r = httpx.post(unlogged.base_url + "/feedback",
                   json={"request_id": rid, "thumbs": "up", "comment": f"from {EMAIL}"})
    assert r.status_code == 200, r.text
    unlogged.settle()
    engine = make_engine(f"sqlite:///{unlogged.home / 'rankgate.db'}")
    try:
        with engine.connect() as c:
            prompt = c.execute(sa.text("select prompt from request_log where id = :i"),
                               {"i": rid}).scalar_one()
            fb = c.execute(sa.text("select prompt, comment from outcomes where prompt_id = :i"),
                           {"i": rid}).one()
    finally:
        engine.dispose()
    for stored in (prompt, fb.prompt, fb.comment):
        assert EMAIL not in stored and SECRET_KEY not in stored, stored
    assert "mail [REDACTED:email] key [REDACTED:api_key]" in prompt
    assert fb.comment == "from [REDACTED:email]"


# -- per key --------------------------------------------------------------------------------
def _key(gw: Server, **fields: Any) -> dict[str, Any]:
    r = httpx.post(gw.root + "/admin/keys", json={"name": "t", **fields},
                   headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("server_default", [False, True])
def test_a_keys_setting_overrides_the_server_default(start_gateway, server_default):
    gw = start_gateway(PANEL, name=f"keys-bodies-{server_default}",
                       extra_args=["--log-bodies"] if server_default else [],
                       env={"RANKGATE_ADMIN_KEY": ADMIN})
    keys = {setting: _key(gw, log_bodies=setting) for setting in (True, False, None)}
    assert [k["log_bodies"] for k in keys.values()] == [True, False, None]
    sent = {}
    for setting, key in keys.items():
        raw = client(gw, key["key"]).chat.completions.with_raw_response.create(
            model="good", messages=[{"role": "user", "content": f"from {setting}"}])
        sent[setting] = raw.headers["x-request-id"]
    gw.settle()
    stored = {x.request_id: x for x in exchanges(gw, 1 + server_default)}
    logged = {setting for setting, rid in sent.items() if rid in stored}
    assert logged == ({True, None} if server_default else {True})
    assert stored[sent[True]].key_id == keys[True]["id"]


def test_admin_api_refuses_a_non_boolean_log_bodies(start_gateway):
    gw = start_gateway(PANEL, name="keys-bad-bodies", env={"RANKGATE_ADMIN_KEY": ADMIN})
    r = httpx.post(gw.root + "/admin/keys", json={"name": "t", "log_bodies": "yes"},
                   headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "log_bodies"


def test_keys_create_cli_sets_log_bodies(tmp_path):
    store = f"sqlite:///{tmp_path / 'k.db'}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rankgate", "keys", *args, "--store",
                               store], capture_output=True, text=True, timeout=60)

    on = json.loads(run("create", "--name", "on", "--log-bodies", "--json").stdout)
    off = json.loads(run("create", "--name", "off", "--no-log-bodies", "--json").stdout)
    default = json.loads(run("create", "--name", "default", "--json").stdout)
    assert (on["log_bodies"], off["log_bodies"], default["log_bodies"]) == (True, False, None)
    listed = {k["name"]: k["log_bodies"] for k in json.loads(run("list", "--json").stdout)}
    assert listed == {"on": True, "off": False, "default": None}


def test_an_old_key_table_gains_the_log_bodies_column(tmp_path):
    """A database made before per-key bodies existed keeps working: its keys read as
    'server default'."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE api_keys (id VARCHAR(64) PRIMARY KEY, name VARCHAR(200) NOT NULL, "
            "prefix VARCHAR(32) NOT NULL, secret_sha256 VARCHAR(64) NOT NULL UNIQUE, "
            "models TEXT, rpm INTEGER, tpm INTEGER, budget_usd FLOAT, "
            "budget_period VARCHAR(16) NOT NULL, routing TEXT, created_at FLOAT NOT NULL, "
            "revoked_at FLOAT)"))
        conn.execute(sa.text(
            "INSERT INTO api_keys VALUES ('key-old', 'old', 'rg-abc', 'h', NULL, NULL, NULL, "
            "NULL, 'month', NULL, 1.0, NULL)"))
    old.dispose()
    from rankgate.gateway.auth import KeyStore

    keys = KeyStore(url)
    try:
        [k] = keys.list()
        assert k["id"] == "key-old" and k["log_bodies"] is None
    finally:
        keys.close()
