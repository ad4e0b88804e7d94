"""The conversation corpus (``tests/data/conversations``) replayed with the official ``openai``
client against a real gateway: every request the OpenAI API accepts works, every one it
rejects gets a 400 naming the field.

The panel has the real local ``smollm2-135m`` (text only: no images, audio, files or tools) and
``hosted``, a ``faulty`` model that answers and, like a hosted model, takes everything. A
conversation needing a capability the local model lacks gets 400 ``capability_not_supported``
naming the model and pointing at the offending part.
"""

from __future__ import annotations

import inspect
from typing import Any

import openai
import pytest
from openai.resources.chat.completions import Completions

from tests.conftest import SMOLLM
from tests.fuzz_mutations import corpus

HOSTED = "hosted"
PANEL = [
    {"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM},
    {"id": HOSTED, "backend": "faulty", "upstream_model": "ok", "context_window": 128000,
     "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0},
]
CORPUS = corpus()
VALID = sorted(n for n, c in CORPUS.items() if c["valid"] and not c["needs"])
NEEDING = sorted(n for n, c in CORPUS.items() if c["valid"] and c["needs"])
INVALID = sorted(n for n, c in CORPUS.items() if not c["valid"])
STREAMED = ["agent_coding_loop", "long_system_prompt", "refusal_parts", "unicode_emoji_zwj",
            "user_text_parts", "legacy_function_call_replay"]
# what `create` takes as keyword arguments; anything else goes in extra_body
_TYPED = set(inspect.signature(Completions.create).parameters) - {
    "self", "extra_headers", "extra_query", "extra_body", "timeout"}
LOCAL_MAX_TOKENS = 8


def test_the_corpus_covers_what_the_issue_asks_for():
    assert len(VALID) + len(NEEDING) >= 30 and len(INVALID) >= 10
    needs = {n for c in CORPUS.values() if c["valid"] for n in c["needs"]}
    assert needs == {"images", "audio", "files", "tools"}
    for name in INVALID:
        assert CORPUS[name]["param"], name


@pytest.fixture(scope="module")
def gw(start_gateway, smollm_path):
    return start_gateway(PANEL, name="corpus")


@pytest.fixture(scope="module")
def client(gw):
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=120)


def request(name: str, model: str, **override: Any) -> dict[str, Any]:
    """``create`` kwargs for a valid corpus body. For the local model the answer is kept
    short (and greedy unless the case sets a temperature)."""
    body = {**CORPUS[name]["body"], **override}
    if model == SMOLLM:
        key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        body[key] = LOCAL_MAX_TOKENS
        body.setdefault("temperature", 0)
    return as_kwargs(body, model)


def as_kwargs(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A request body as ``create`` takes it: typed fields as arguments, the rest in
    extra_body."""
    kwargs = {k: v for k, v in body.items() if k in _TYPED}
    extra = {k: v for k, v in body.items() if k not in _TYPED}
    if extra:
        kwargs["extra_body"] = extra
    return {**kwargs, "model": model}


def _consume(stream: Any) -> tuple[str, list[Any]]:
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


@pytest.mark.parametrize("model", [SMOLLM, HOSTED])
@pytest.mark.parametrize("name", VALID)
def test_valid_conversation_is_answered(client, gw, name, model):
    kwargs = request(name, model)
    if kwargs.get("stream"):
        stream = client.chat.completions.create(**kwargs)
        _, chunks = _consume(stream)
        assert any(c.choices and c.choices[0].finish_reason for c in chunks)
        assert stream.response.headers["x-rankgate-model"] == model
        return
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    r = raw.parse()
    assert raw.headers["x-rankgate-model"] == model and r.model == model
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert gw.log_row(raw.headers["x-request-id"])["status"] == 200


@pytest.mark.parametrize("name", NEEDING)
def test_conversation_needing_a_capability_is_answered_by_a_model_that_has_it(client, name):
    raw = client.chat.completions.with_raw_response.create(**request(name, HOSTED))
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-rankgate-model"] == HOSTED


@pytest.mark.parametrize("name", NEEDING)
def test_conversation_needing_a_capability_the_local_model_lacks_is_400(client, gw, name):
    case = CORPUS[name]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**request(name, SMOLLM))
    err = e.value.response.json()["error"]
    expected = case["capability_param"]
    expected = expected if isinstance(expected, list) else [expected]
    assert err["code"] == "capability_not_supported", err
    assert err["param"] in expected, err
    assert SMOLLM in err["message"], err
    assert any(need in err["message"] for need in case["needs"]), err
    assert err["type"] == "invalid_request_error"
    row = gw.log_row(e.value.response.headers["x-request-id"])
    assert row["status"] == 400 and row["error_code"] == "capability_not_supported"


@pytest.mark.parametrize("model", [SMOLLM, HOSTED])
@pytest.mark.parametrize("name", INVALID)
def test_invalid_conversation_is_400_naming_the_param(client, gw, name, model):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**as_kwargs(CORPUS[name]["body"], model))
    err = e.value.response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == CORPUS[name]["param"], err
    assert err["type"] == "invalid_request_error" and err["message"]
    assert gw.log_row(e.value.response.headers["x-request-id"])["status"] == 400


@pytest.mark.parametrize("model", [SMOLLM, HOSTED])
@pytest.mark.parametrize("name", STREAMED)
def test_valid_conversation_streams(client, gw, name, model):
    kwargs = request(name, model, stream=True, stream_options={"include_usage": True})
    stream = client.chat.completions.create(**kwargs)
    _, chunks = _consume(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert any(c.choices and c.choices[0].finish_reason in ("stop", "length") for c in chunks)
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens >= 1
    assert chunks[-1].model_extra["rankgate"]["request_id"]
    row = gw.log_row(stream.response.headers["x-request-id"])
    assert row["status"] == 200 and row["stream"]


def test_streamed_request_the_local_model_cannot_take_is_400_before_the_stream(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**request("image_data_urls", SMOLLM, stream=True))
    assert e.value.code == "capability_not_supported"
    assert e.value.param == "messages[2].content[0]"
