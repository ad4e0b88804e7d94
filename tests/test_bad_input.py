"""Bad input gets an OpenAI-shaped error with an honest status, and is still logged."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import SMOLLM

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def _assert_error(resp: httpx.Response, gateway, status: int, param: str | None,
                  code: str) -> dict:
    assert resp.status_code == status
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param and err["code"] == code
    assert err["type"] == "invalid_request_error"
    row = gateway.log_row(resp.headers["x-request-id"])
    assert row["status"] == status and row["error_code"] == code
    return err


@pytest.mark.parametrize("body", [b"{bad json", b"", b"[1, 2]", b"\xff\xfe", b"null"])
def test_malformed_body_is_400_invalid_json(gateway, body):
    r = httpx.post(gateway.base_url + "/chat/completions", content=body,
                   headers={"content-type": "application/json"})
    err = _assert_error(r, gateway, 400, None, "invalid_json")
    assert "JSON" in err["message"]


@pytest.mark.parametrize(("missing", "endpoint"), [("messages", "/chat/completions"),
                                                   ("model", "/chat/completions"),
                                                   ("prompt", "/completions")])
def test_missing_field_is_400_naming_it(gateway, missing, endpoint):
    body = {"model": SMOLLM, "messages": MSG, "prompt": "x"}
    body.pop(missing)
    r = httpx.post(gateway.base_url + endpoint, json=body)
    err = _assert_error(r, gateway, 400, missing, "missing_required_parameter")
    assert f"'{missing}'" in err["message"]


@pytest.mark.parametrize(("extra", "param"), [
    ({"max_tokens": "10"}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"temperature": 7}, "temperature"),
    ({"stream": "yes"}, "stream"),
    ({"messages": "hi"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
])
def test_ill_typed_field_is_400_naming_it_via_openai_client(client, gateway, extra, param):
    kwargs = {"model": SMOLLM, "messages": MSG, **extra}
    messages = kwargs.pop("messages")
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(messages=messages, **kwargs)
    assert e.value.status_code == 400
    assert e.value.param == param
    assert param.split("[")[0].split(".")[0] in e.value.message
    row = gateway.log_row(e.value.response.headers["x-request-id"])
    assert row["status"] == 400 and row["model"] == SMOLLM


def test_unknown_model_is_404_listing_valid_ids(client, gateway):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-5-ultra", messages=MSG)
    assert e.value.code == "model_not_found" and e.value.param == "model"
    for mid in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        assert mid in e.value.message
    row = gateway.log_row(e.value.response.headers["x-request-id"])
    assert row["status"] == 404 and row["model"] == "gpt-5-ultra"


def test_unknown_model_on_completions_endpoint_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")


def test_several_choices_from_a_local_model_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SMOLLM, messages=MSG, n=2, max_tokens=2)
    assert e.value.param == "n"


def test_unknown_route_and_wrong_method_are_openai_shaped(gateway):
    r = httpx.post(gateway.base_url + "/chat/completion", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(gateway.base_url + "/chat/completions")
    assert r.status_code == 405 and "error" in r.json()


def test_openapi_spec_documents_the_request_bodies(gateway):
    spec = httpx.get(gateway.root + "/openapi.json").json()
    op = spec["paths"]["/v1/chat/completions"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[-1]
    assert "messages" in spec["components"]["schemas"][name]["required"]
