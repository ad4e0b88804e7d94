"""The gateway in front of the real embedded smollm2-135m model, driven by the openai client."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.conftest import SMOLLM

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def test_chat_completion_is_openai_shaped_with_usage_cost_and_headers(client, gateway):
    raw = client.chat.completions.with_raw_response.create(
        model=SMOLLM, messages=QUESTION, max_tokens=16, temperature=0)
    r = raw.parse()
    assert r.object == "chat.completion"
    assert r.model == SMOLLM
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 5
    assert 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    rid = raw.headers["x-request-id"]
    assert r.id == "chatcmpl-" + rid
    assert raw.headers["x-rankgate-model"] == SMOLLM
    assert float(raw.headers["x-rankgate-cost-usd"]) > 0
    assert float(raw.headers["x-rankgate-overhead-ms"]) >= 0
    row = gateway.log_row(rid)
    assert row["status"] == 200 and row["model"] == SMOLLM and row["endpoint"] == (
        "/v1/chat/completions")
    assert row["input_tokens"] == r.usage.prompt_tokens
    assert row["output_tokens"] == r.usage.completion_tokens
    assert row["cost_usd"] == pytest.approx(float(raw.headers["x-rankgate-cost-usd"]), rel=1e-6)
    assert row["cost_basis"] == "local-compute"
    assert row["latency_ms"] > 0 and row["error"] is None


def test_temperature_zero_is_deterministic(client):
    a = client.chat.completions.create(model=SMOLLM, messages=QUESTION, max_tokens=12,
                                       temperature=0)
    b = client.chat.completions.create(model=SMOLLM, messages=QUESTION, max_tokens=12,
                                       temperature=0)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_chat_stream_delivers_text_then_usage_and_is_logged(client, gateway):
    with client.chat.completions.with_streaming_response.create(
        model=SMOLLM, messages=QUESTION, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ) as resp:
        rid = resp.headers["x-request-id"]
        assert resp.headers["x-rankgate-model"] == SMOLLM
        chunks = list(resp.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert all(c.id == "chatcmpl-" + rid for c in chunks)
    final = chunks[-1]
    assert final.choices == [] and final.usage.completion_tokens > 0
    assert final.model_extra["rankgate"]["cost_usd"] > 0
    row = gateway.log_row(rid)
    assert row["stream"] and row["status"] == 200
    assert row["output_tokens"] == final.usage.completion_tokens
    assert row["input_tokens"] == final.usage.prompt_tokens
    assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]


def test_stream_and_non_stream_agree_at_temperature_zero(client):
    full = client.chat.completions.create(model=SMOLLM, messages=QUESTION, max_tokens=12,
                                          temperature=0)
    stream = client.chat.completions.create(model=SMOLLM, messages=QUESTION, max_tokens=12,
                                            temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == full.choices[0].message.content


def test_stream_without_include_usage_sends_no_empty_choices_chunk(client):
    chunks = list(client.chat.completions.create(
        model=SMOLLM, messages=QUESTION, max_tokens=6, temperature=0, stream=True))
    assert chunks and all(c.choices for c in chunks)


def test_text_completion_endpoint(client, gateway):
    raw = client.completions.with_raw_response.create(
        model=SMOLLM, prompt="The capital of France is", max_tokens=5, temperature=0)
    r = raw.parse()
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.usage.completion_tokens == 5
    assert gateway.log_row(raw.headers["x-request-id"])["endpoint"] == "/v1/completions"


def test_models_lists_the_panel(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def test_logprobs_match_greedy_choice_and_count_tokens(client):
    r = client.chat.completions.create(model=SMOLLM, messages=QUESTION, max_tokens=8,
                                       temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0
        assert len(t.top_logprobs) == 3
        # greedy decoding picks the most likely token, so it heads its own top list
        assert t.top_logprobs[0].token == t.token
        assert t.top_logprobs[0].logprob == pytest.approx(t.logprob)
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob


def test_prompt_longer_than_context_is_400_with_both_numbers(client, gateway):
    long = [{"role": "user", "content": "word " * 9000}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            r = client.chat.completions.create(model=SMOLLM, messages=long, max_tokens=4,
                                               stream=stream)
            list(r)
        err = e.value
        assert err.code == "context_length_exceeded"
        assert "8192" in err.message and "9031" in err.message
        row = gateway.log_row(err.response.headers["x-request-id"])
        assert row["status"] == 400 and row["error_code"] == "context_length_exceeded"


def test_client_hanging_up_mid_stream_frees_the_model_and_is_logged(client, gateway):
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json={
        "model": SMOLLM, "messages": [{"role": "user", "content": "Count to 500."}],
        "max_tokens": 400, "stream": True}, timeout=60) as resp:
        rid = resp.headers["x-request-id"]
        next(resp.iter_lines())
    row = gateway.log_row(rid)
    assert row["status"] == 499
    # the model lock was released: the next request is served
    r = client.chat.completions.create(model=SMOLLM, messages=QUESTION, max_tokens=2)
    assert r.usage.completion_tokens >= 1


def test_burst_of_200_concurrent_requests_logs_exactly_200_rows(gateway):
    gateway.settle()
    before = gateway.count_rows()

    async def burst() -> list[str]:
        aclient = openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused",
                                     max_retries=0, timeout=900,
                                     http_client=httpx.AsyncClient(
                                         limits=httpx.Limits(max_connections=200)))
        async def one(i: int) -> str:
            raw = await aclient.chat.completions.with_raw_response.create(
                model=SMOLLM, messages=[{"role": "user", "content": f"Say {i}."}],
                max_tokens=1, temperature=0)
            return raw.headers["x-request-id"]

        try:
            return await asyncio.gather(*(one(i) for i in range(200)))
        finally:
            await aclient.close()

    ids = asyncio.run(burst())
    assert len(set(ids)) == 200
    for rid in ids:
        assert gateway.log_row(rid)["status"] == 200
    gateway.settle()
    assert gateway.count_rows() - before == 200
    health = httpx.get(gateway.root + "/healthz").json()
    assert health["request_log"]["dropped"] == 0
