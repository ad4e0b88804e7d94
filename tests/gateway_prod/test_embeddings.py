"""``/v1/embeddings`` through the official openai client: passed through to an ``openai``
backend (the fault upstream serves deterministic vectors), refused with OpenAI-shaped errors
for what cannot be served, and never routed."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import SMOLLM


@pytest.fixture(scope="module")
def gateway(start_gateway, fault_upstream, smollm_path):
    return start_gateway(name="embeddings", panel=[
        {"id": "up", "backend": "openai", "base_url": fault_upstream.base_url,
         "input_price_per_mtok": 0.02, "output_price_per_mtok": 0.0},
        {"id": "up-chat-only", "backend": "openai", "base_url": fault_upstream.base_url,
         "upstream_model": "fast", "capabilities": {"embeddings": False}},
        {"id": "up-broken", "backend": "openai", "base_url": fault_upstream.base_url,
         "upstream_model": "error-500"},
        {"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM},
    ])


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def test_vectors_come_back_one_per_input_in_order(client):
    r = client.embeddings.create(model="up", input=["first text", "second text"])
    assert [d.index for d in r.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in r.data)
    assert r.data[0].embedding != r.data[1].embedding
    assert r.model == "up"
    assert r.usage.prompt_tokens == 4


def test_the_same_input_gives_the_same_vector_as_the_upstream(client, fault_upstream):
    via_gateway = client.embeddings.create(model="up", input="stable", encoding_format="float")
    direct = openai.OpenAI(base_url=fault_upstream.base_url, api_key="x").embeddings.create(
        model="up", input="stable", encoding_format="float")
    assert via_gateway.data[0].embedding == pytest.approx(direct.data[0].embedding)


def test_base64_vectors_are_passed_through_and_decoded_by_the_client(client):
    as_float = client.embeddings.create(model="up", input="x y", encoding_format="float")
    as_b64 = client.embeddings.create(model="up", input="x y", encoding_format="base64")
    # the client sends base64 when asked and decodes nothing itself then: a string comes back
    assert isinstance(as_b64.data[0].embedding, str)
    import base64
    import struct

    raw = base64.b64decode(as_b64.data[0].embedding)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(
        as_float.data[0].embedding, abs=1e-6)


def test_dimensions_and_token_inputs_are_forwarded(client):
    r = client.embeddings.create(model="up", input=[[1, 2, 3], [4, 5]], dimensions=4)
    assert [len(d.embedding) for d in r.data] == [4, 4]


def test_answers_carry_the_gateway_headers(client):
    raw = client.embeddings.with_raw_response.create(model="up", input="hello there")
    assert raw.headers["x-rankgate-model"] == "up"
    assert raw.headers["x-request-id"]
    assert float(raw.headers["x-rankgate-cost-usd"]) == pytest.approx(2 * 0.02 / 1e6)


def test_a_local_model_answers_capability_not_supported(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=SMOLLM, input="hi")
    err = e.value.body
    assert err["code"] == "capability_not_supported" and err["param"] == "model"
    assert "up" in err["message"]  # names the models that do serve embeddings


def test_a_panel_entry_can_turn_embeddings_off(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="up-chat-only", input="hi")
    assert e.value.body["code"] == "capability_not_supported"


def test_auto_is_refused_because_vector_spaces_differ(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="auto", input="hi")
    assert e.value.body["param"] == "model" and "not routed" in e.value.body["message"]


def test_an_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="nope", input="hi")
    assert e.value.body["code"] == "model_not_found"


def test_an_upstream_failure_is_a_502(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.embeddings.create(model="up-broken", input="hi")
    assert e.value.status_code == 502


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "hi"}, "model"),
    ({"model": "up"}, "input"),
    ({"model": "up", "input": ""}, "input"),
    ({"model": "up", "input": []}, "input"),
    ({"model": "up", "input": ["ok", 3]}, "input"),
    ({"model": "up", "input": [[1, -2]]}, "input"),
    ({"model": "up", "input": "hi", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "up", "input": "hi", "dimensions": 0}, "dimensions"),
    ({"model": "up", "input": "hi", "dimensions": True}, "dimensions"),
    ({"model": "up", "input": "hi", "user": 5}, "user"),
    ({"model": "up", "input": "hi", "temperature": 0}, "temperature"),
])
def test_bad_input_is_an_openai_shaped_400_naming_the_parameter(gateway, body, param):
    r = httpx.post(gateway.base_url + "/embeddings", json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param
    assert err["type"] == "invalid_request_error" and err["message"]


def test_a_body_that_is_not_json_is_a_400(gateway):
    r = httpx.post(gateway.base_url + "/embeddings", content=b"{nope",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_with_keys_on_an_embeddings_call_needs_a_key(start_gateway, fault_upstream):
    locked = start_gateway(name="embeddings-keys", env={"RANKGATE_ADMIN_KEY": "sk-admin-test"},
                           panel=[{"id": "up", "backend": "openai",
                                   "base_url": fault_upstream.base_url}])
    anonymous = openai.OpenAI(base_url=locked.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.embeddings.create(model="up", input="hi")
    admin = openai.OpenAI(base_url=locked.base_url, api_key="sk-admin-test", max_retries=0)
    assert len(admin.embeddings.create(model="up", input="hi").data) == 1


def test_embeddings_are_logged_and_billed_to_the_key(start_gateway, fault_upstream):
    """Every embeddings call leaves one request-log row (success and failure alike) and its
    cost counts against the key's budget: a key over budget gets a 429 on embeddings too."""
    admin_key = "sk-admin-embeddings-budget"
    gw = start_gateway(name="embeddings-budget", env={"RANKGATE_ADMIN_KEY": admin_key},
                       panel=[{"id": "up", "backend": "openai",
                               "base_url": fault_upstream.base_url,
                               "input_price_per_mtok": 1_000_000.0,
                               "output_price_per_mtok": 0.0}])
    r = httpx.post(gw.root + "/admin/keys", json={"name": "emb", "budget_usd": 5.0},
                   headers={"authorization": f"Bearer {admin_key}"})
    assert r.status_code == 201, r.text
    user = openai.OpenAI(base_url=gw.base_url, api_key=r.json()["key"], max_retries=0)
    first = user.embeddings.with_raw_response.create(model="up", input="one two three")
    cost = float(first.headers["x-rankgate-cost-usd"])
    assert cost > 0
    spent, calls = cost, 1
    with pytest.raises(openai.RateLimitError) as over:
        for _ in range(20):  # $1 per token: the $5 budget runs out within a few calls
            user.embeddings.create(model="up", input="one two three")
            spent += cost
            calls += 1
    assert over.value.status_code == 429 and spent <= 5.0 + cost
    with pytest.raises(openai.BadRequestError):
        user.embeddings.create(model="up", input="")
    gw.settle()
    import sqlalchemy as sa

    from rankgate.store.tables import make_engine

    engine = make_engine(f"sqlite:///{gw.home / 'rankgate.db'}")
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text("select status, cost_usd, input_tokens, model from "
                                     "request_log where endpoint = '/v1/embeddings' "
                                     "order by ts")).all()
    finally:
        engine.dispose()
    assert [r.status for r in rows] == [200] * calls + [429, 400]
    assert sum(r.cost_usd for r in rows if r.status == 200) == pytest.approx(spent)
    assert all(r.model == "up" for r in rows) and rows[0].input_tokens > 0
