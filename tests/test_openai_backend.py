"""The ``openai`` backend: a real OpenAI-compatible upstream (llama.cpp's own server with the
real smollm2 model), hosted-price lookup, and every way an upstream can fail."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import free_port

MSG = [{"role": "user", "content": "Name a colour."}]
FAULTS = ["error-500", "error-503", "rate-limit-429", "bad-request-400", "err-in-stream",
          "truncated-stream", "bad-json", "error-in-200"]


@pytest.fixture(scope="module")
def remote_gateway(start_gateway, llama_server, fault_upstream):
    fault = fault_upstream.base_url
    panel = [
        {"id": "smollm-remote", "backend": "openai", "base_url": llama_server.base_url,
         "upstream_model": "smollm-upstream", "input_price_per_mtok": 1.0,
         "output_price_per_mtok": 2.0},
        {"id": "gpt-4o-mini", "backend": "openai", "base_url": fault, "provider": "openai"},
        {"id": "house-model", "backend": "openai", "base_url": fault},
        {"id": "slow", "backend": "openai", "base_url": fault, "upstream_model": "slow-5000",
         "timeout_s": 0.5},
        {"id": "hang", "backend": "openai", "base_url": fault, "timeout_s": 1},
        {"id": "dead", "backend": "openai",
         "base_url": f"http://127.0.0.1:{free_port()}/v1"},
        *({"id": f, "backend": "openai", "base_url": fault} for f in FAULTS),
    ]
    return start_gateway(panel=panel, name="remote")


@pytest.fixture(scope="module")
def client(remote_gateway):
    return openai.OpenAI(base_url=remote_gateway.base_url, api_key="unused", max_retries=0)


def test_chat_through_a_real_llama_cpp_server(client, remote_gateway):
    raw = client.chat.completions.with_raw_response.create(
        model="smollm-remote", messages=MSG, max_tokens=8, temperature=0)
    r = raw.parse()
    assert r.model == "smollm-remote" and r.choices[0].message.content
    assert r.usage.completion_tokens > 0
    expected = (r.usage.prompt_tokens * 1.0 + r.usage.completion_tokens * 2.0) / 1e6
    assert float(raw.headers["x-rankgate-cost-usd"]) == pytest.approx(expected)
    row = remote_gateway.log_row(raw.headers["x-request-id"])
    assert row["cost_basis"] == "panel" and row["status"] == 200


def test_stream_through_a_real_llama_cpp_server_counts_usage(client, remote_gateway):
    with client.chat.completions.with_streaming_response.create(
        model="smollm-remote", messages=MSG, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ) as resp:
        rid = resp.headers["x-request-id"]
        chunks = list(resp.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    usage = chunks[-1].usage
    # llama.cpp's Python server ignores include_usage, so rankgate counts the tokens itself
    assert usage.completion_tokens == sum(
        1 for c in chunks if c.choices and c.choices[0].delta.content)
    assert chunks[-1].model_extra["rankgate"]["usage_estimated"] is True
    row = remote_gateway.log_row(rid)
    assert row["output_tokens"] == usage.completion_tokens and row["cost_usd"] > 0
    assert "estimated" in row["cost_basis"]


def test_hosted_model_is_priced_from_genai_prices(client, remote_gateway):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    r = raw.parse()
    from genai_prices import Usage, calc_price

    price = calc_price(Usage(input_tokens=r.usage.prompt_tokens,
                             output_tokens=r.usage.completion_tokens), "gpt-4o-mini",
                       provider_id="openai")
    assert float(raw.headers["x-rankgate-cost-usd"]) == pytest.approx(float(price.total_price))
    assert remote_gateway.log_row(raw.headers["x-request-id"])["cost_basis"] == "genai-prices"


def test_unknown_price_is_null_not_zero(client, remote_gateway):
    raw = client.chat.completions.with_raw_response.create(model="house-model", messages=MSG)
    assert raw.headers["x-rankgate-cost-usd"] == "unknown"
    assert "no price" in raw.headers["x-rankgate-cost-note"]
    row = remote_gateway.log_row(raw.headers["x-request-id"])
    assert row["cost_usd"] is None and row["status"] == 200


@pytest.mark.parametrize(("model", "status", "code"), [
    ("dead", 502, "upstream_unreachable"),
    ("error-500", 502, "upstream_error"),
    ("error-503", 502, "upstream_error"),
    ("bad-json", 502, "upstream_error"),
    ("error-in-200", 502, "upstream_error"),
    ("slow", 504, "upstream_timeout"),
    ("hang", 504, "upstream_timeout"),
    ("rate-limit-429", 429, "upstream_429"),
    ("bad-request-400", 400, "upstream_400"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_failing_upstream_is_an_honest_error_status_and_logged(client, remote_gateway, model,
                                                               status, code, stream):
    with pytest.raises(openai.APIStatusError) as e:
        r = client.chat.completions.create(model=model, messages=MSG, stream=stream)
        list(r) if stream else None
    err = e.value
    assert err.status_code == status
    assert err.code == code
    assert err.body["message"]
    row = remote_gateway.log_row(err.response.headers["x-request-id"])
    assert row["status"] == status and row["error_code"] == code and row["model"] == model


@pytest.mark.parametrize("model", ["err-in-stream", "truncated-stream"])
def test_stream_failing_midway_ends_with_an_error_event(client, remote_gateway, model):
    with client.chat.completions.with_streaming_response.create(
            model=model, messages=MSG, stream=True) as resp:
        rid = resp.headers["x-request-id"]
        got = []
        with pytest.raises(openai.APIError) as e:
            for chunk in resp.parse():
                got.append(chunk)
    assert got, "the chunks before the failure are delivered"
    assert model in e.value.message
    row = remote_gateway.log_row(rid)
    assert row["status"] == 502 and row["error"].startswith("mid-stream")


def test_stream_error_event_is_valid_sse_json(remote_gateway):
    with httpx.stream("POST", remote_gateway.base_url + "/chat/completions",
                      json={"model": "err-in-stream", "messages": MSG, "stream": True}) as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data:")]
    assert lines[-1] != "data: [DONE]"
    import orjson

    last = orjson.loads(lines[-1][5:])
    assert set(last["error"]) == {"message", "type", "param", "code"}
