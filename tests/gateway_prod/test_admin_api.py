"""The admin API (``/admin/keys``) on a tiny app with real SQLite, and ``rankgate keys``."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rankgate.cli import app as cli_app
from rankgate.gateway.admin_api import build_admin_router
from rankgate.gateway.auth import Auth, KeyStore
from rankgate.gateway.errors import APIError
from rankgate.gateway.limits import MemoryLimiter

ADMIN_KEY = "admin-secret-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'rankgate.db'}"


def make_app(db_url: str, admin_key: str | None = ADMIN_KEY, limiter=None) -> FastAPI:
    app = FastAPI()
    app.state.rankgate = SimpleNamespace(auth=Auth(KeyStore(db_url), admin_key),
                                         limiter=limiter)
    app.include_router(build_admin_router())
    return app


@pytest.fixture
def client(db_url):
    with TestClient(make_app(db_url)) as c:
        yield c


def assert_openai_error(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_create_returns_the_secret_once_and_it_authenticates(client):
    resp = client.post("/admin/keys", headers=ADMIN, json={
        "name": "team-a", "models": ["m1", "auto"], "rpm": 60, "tpm": 10000,
        "budget_usd": 5, "budget_period": "day", "routing": {"max_cost_usd": 0.001}})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    secret = created["key"]
    assert created["id"].startswith("key-") and secret.startswith(created["prefix"])
    assert created["models"] == ["m1", "auto"] and created["budget_period"] == "day"
    assert created["routing"] == {"max_cost_usd": 0.001}
    auth: Auth = client.app.state.rankgate.auth
    key = asyncio.run(auth.authenticate(f"Bearer {secret}"))
    assert key.id == created["id"] and key.rpm == 60
    listed = client.get("/admin/keys", headers=ADMIN)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["data"]] == [created["id"]]
    assert secret not in listed.text and "sha256" not in listed.text
    one = client.get(f"/admin/keys/{created['id']}", headers=ADMIN)
    assert one.status_code == 200 and secret not in one.text and one.json()["tpm"] == 10000


def test_defaults_are_no_limits_and_a_monthly_period(client):
    created = client.post("/admin/keys", headers=ADMIN, json={"name": "x"}).json()
    assert created["models"] is None and created["rpm"] is None and created["tpm"] is None
    assert created["budget_usd"] is None and created["budget_period"] == "month"


def test_revoke_then_404_and_the_key_stops_working_at_once(client):
    created = client.post("/admin/keys", headers=ADMIN, json={"name": "x"}).json()
    auth: Auth = client.app.state.rankgate.auth
    asyncio.run(auth.authenticate(f"Bearer {created['key']}"))  # now cached
    resp = client.delete(f"/admin/keys/{created['id']}", headers=ADMIN)
    assert resp.status_code == 200 and resp.json() == {
        "object": "api_key", "id": created["id"], "deleted": True}
    with pytest.raises(APIError) as e:
        asyncio.run(auth.authenticate(f"Bearer {created['key']}"))
    assert e.value.status == 401
    again = assert_openai_error(client.delete(f"/admin/keys/{created['id']}", headers=ADMIN),
                                404)
    assert again["code"] == "key_not_found"
    assert_openai_error(client.delete("/admin/keys/key-nope", headers=ADMIN), 404)
    assert_openai_error(client.get("/admin/keys/key-nope", headers=ADMIN), 404)
    assert client.get("/admin/keys", headers=ADMIN).json()["data"] == []
    everything = client.get("/admin/keys?include_revoked=true", headers=ADMIN).json()["data"]
    assert everything[0]["revoked_at"] is not None


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_KEY},
])
def test_admin_routes_need_the_admin_key(client, headers):
    for method, path in (("POST", "/admin/keys"), ("GET", "/admin/keys"),
                         ("GET", "/admin/keys/key-x"), ("DELETE", "/admin/keys/key-x")):
        resp = client.request(method, path, headers=headers, json={"name": "x"})
        err = assert_openai_error(resp, 401)
        assert "wrong" not in err["message"]
    assert client.get("/admin/keys", headers=ADMIN).json()["data"] == []


def test_a_virtual_key_is_not_an_admin_key(client):
    secret = client.post("/admin/keys", headers=ADMIN, json={"name": "x"}).json()["key"]
    resp = client.get("/admin/keys", headers={"Authorization": f"Bearer {secret}"})
    err = assert_openai_error(resp, 401)
    assert secret not in err["message"]


def test_admin_api_says_it_is_disabled_without_an_admin_key(db_url):
    with TestClient(make_app(db_url, admin_key=None)) as c:
        err = assert_openai_error(c.get("/admin/keys", headers=ADMIN), 401)
    assert "disabled" in err["message"] and err["code"] == "admin_disabled"


@pytest.mark.parametrize(("body", "param"), [
    ({}, "name"),
    ({"name": "x", "rpm": 0}, "rpm"),
    ({"name": "x", "rpm": "10"}, "rpm"),
    ({"name": "x", "budget_usd": -5}, "budget_usd"),
    ({"name": "x", "budget_period": "year"}, "budget_period"),
    ({"name": "x", "models": "m1"}, "models"),
    ({"name": "x", "routing": {"min_quality": 2}}, "routing.min_quality"),
    ({"name": "x", "colour": "red"}, "colour"),
])
def test_bad_settings_are_400_naming_the_field(client, body, param):
    err = assert_openai_error(client.post("/admin/keys", headers=ADMIN, json=body), 400)
    assert err["param"] == param
    assert client.get("/admin/keys", headers=ADMIN).json()["data"] == []


def test_malformed_json_is_400(client):
    for raw in (b"", b"{not json", b"[1, 2]"):
        resp = client.post("/admin/keys", headers={**ADMIN, "content-type": "application/json"},
                           content=raw)
        assert assert_openai_error(resp, 400)["code"] == "invalid_json"


def test_key_detail_shows_usage_when_limits_are_on(db_url):
    limiter = MemoryLimiter(db_url)
    with TestClient(make_app(db_url, limiter=limiter)) as c:
        created = c.post("/admin/keys", headers=ADMIN,
                         json={"name": "x", "rpm": 10, "budget_usd": 1}).json()
        usage = c.get(f"/admin/keys/{created['id']}", headers=ADMIN).json()["usage"]
    assert usage == {"requests_last_60s": 0, "tokens_last_60s": 0, "spent_usd": 0,
                     "reserved_usd": 0}


# --- rankgate keys … ------------------------------------------------------------------------

def test_cli_creates_lists_and_revokes_keys(db_url):
    runner = CliRunner()
    made = runner.invoke(cli_app, ["keys", "create", "--name", "team-a", "--models", "m1,auto",
                                   "--rpm", "30", "--budget-usd", "2.5", "--budget-period",
                                   "week", "--min-quality", "0.7", "--store", db_url, "--json"])
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    assert created["models"] == ["m1", "auto"] and created["routing"] == {"min_quality": 0.7}
    store = KeyStore(db_url)
    assert store.lookup(created["key"]).id == created["id"]

    listed = runner.invoke(cli_app, ["keys", "list", "--store", db_url, "--json"])
    assert listed.exit_code == 0 and created["key"] not in listed.stdout
    assert [k["id"] for k in json.loads(listed.stdout)] == [created["id"]]
    table = runner.invoke(cli_app, ["keys", "list", "--store", db_url])
    assert created["id"] in table.stdout and created["key"] not in table.stdout

    revoked = runner.invoke(cli_app, ["keys", "revoke", created["id"], "--store", db_url])
    assert revoked.exit_code == 0
    assert store.lookup(created["key"]) is None
    again = runner.invoke(cli_app, ["keys", "revoke", created["id"], "--store", db_url])
    assert again.exit_code == 1
    store.close()


def test_cli_prints_the_secret_once_in_plain_output(db_url):
    out = CliRunner().invoke(cli_app, ["keys", "create", "--name", "x", "--store", db_url])
    assert out.exit_code == 0
    secret = next(w for w in out.stdout.split() if w.startswith("rg-"))
    assert KeyStore(db_url).lookup(secret) is not None


def test_cli_rejects_bad_settings_and_two_routing_knobs(db_url):
    runner = CliRunner()
    bad = runner.invoke(cli_app, ["keys", "create", "--name", "x", "--rpm", "0",
                                  "--store", db_url])
    assert bad.exit_code == 2 and "rpm" in bad.output
    two = runner.invoke(cli_app, ["keys", "create", "--name", "x", "--min-quality", "0.5",
                                  "--lambda", "1", "--store", db_url])
    assert two.exit_code == 2
    assert KeyStore(db_url).list(include_revoked=True) == []
