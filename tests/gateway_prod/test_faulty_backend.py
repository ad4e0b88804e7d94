"""The ``faulty`` backend: every fault raises what the ``openai`` backend raises for the same
upstream behaviour over real HTTP (the fault upstream server), and healthy names answer with
exact, deterministic usage."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from rankgate.backends.base import BackendError, BackendTimeout, BadRequest, Kind
from rankgate.backends.faulty import FaultyBackend
from rankgate.backends.openai_http import OpenAIHTTPBackend
from rankgate.config import Settings
from rankgate.panel import ModelSpec, Panel
from rankgate.runtime import open_panel

pytestmark = pytest.mark.anyio
MSG = [{"role": "system", "content": "Be brief."},
       {"role": "user", "content": "Name a colour please."}]
PAYLOAD: dict[str, Any] = {"messages": MSG}
PARITY_FAULTS = ["error-500", "error-503", "rate-limit-429", "bad-request-400", "err-in-stream",
                 "truncated-stream", "bad-json", "error-in-200", "slow-10", "fast"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def faulty(name: str, model_id: str | None = None) -> FaultyBackend:
    return FaultyBackend(ModelSpec(id=model_id or name, backend="faulty", upstream_model=name))


async def run_complete(backend: Any, kind: Kind = "chat", payload: dict[str, Any] | None = None
                       ) -> tuple[Any, BackendError | None]:
    try:
        return await backend.complete(kind, payload or PAYLOAD), None
    except BackendError as e:
        return None, e


async def run_stream(backend: Any, kind: Kind = "chat", payload: dict[str, Any] | None = None
                     ) -> tuple[list[dict[str, Any]], Any, BackendError | None]:
    """(chunks received, stream stats, error raised at open or mid-stream)."""
    chunks: list[dict[str, Any]] = []
    try:
        bstream = await backend.stream(kind, payload or PAYLOAD)
    except BackendError as e:
        return chunks, None, e
    try:
        async for chunk in bstream:
            chunks.append(chunk)
    except BackendError as e:
        return chunks, bstream.stats, e
    finally:
        await bstream.aclose()
    return chunks, bstream.stats, None


def shape(err: BackendError | None) -> tuple[Any, ...] | None:
    return None if err is None else (type(err), err.status, err.code, err.message)


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join((c.get("delta") or {}).get("content") or c.get("text") or ""
                   for ch in chunks for c in ch["choices"])


@pytest.mark.parametrize("fault", PARITY_FAULTS)
async def test_faulty_matches_the_openai_backend_over_real_http(fault, fault_upstream):
    mid = f"m-{fault}"
    fake = faulty(fault, mid)
    async with httpx.AsyncClient() as client:
        real = OpenAIHTTPBackend(ModelSpec(id=mid, backend="openai", upstream_model=fault,
                                           base_url=fault_upstream.base_url), client, 30.0)
        real_result, real_err = await run_complete(real)
        real_chunks, real_stats, real_serr = await run_stream(real)
    fake_result, fake_err = await run_complete(fake)
    fake_chunks, fake_stats, fake_serr = await run_stream(fake)

    assert shape(fake_err) == shape(real_err)
    assert shape(fake_serr) == shape(real_serr)
    if real_result is not None:
        assert fake_result.body["choices"][0]["message"] == \
            real_result.body["choices"][0]["message"]
        assert fake_result.usage == real_result.usage
    assert text_of(fake_chunks) == text_of(real_chunks)
    if real_stats is not None and real_serr is None:
        assert fake_stats.usage == real_stats.usage


@pytest.mark.parametrize(("fault", "cls", "status", "code"), [
    ("error-500", BackendError, 502, "upstream_error"),
    ("error-503", BackendError, 502, "upstream_error"),
    ("error-504", BackendTimeout, 504, "upstream_timeout"),
    ("rate-limit-429", BadRequest, 429, "upstream_429"),
    ("bad-request-400", BadRequest, 400, "upstream_400"),
    ("bad-json", BackendError, 502, "upstream_error"),
    ("error-in-200", BackendError, 502, "upstream_error"),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_fault_raises_its_error_before_any_chunk(fault, cls, status, code, stream):
    backend = faulty(fault)
    if stream:
        chunks, _, err = await run_stream(backend)
        assert chunks == []
    else:
        _, err = await run_complete(backend)
    assert type(err) is cls and err.status == status and err.code == code
    assert fault in err.message


@pytest.mark.parametrize("fault", ["err-in-stream", "truncated-stream"])
async def test_stream_fault_raises_after_two_chunks_and_completion_is_fine(fault):
    backend = faulty(fault)
    chunks, _, err = await run_stream(backend)
    assert text_of(chunks) == "Hello from"
    assert type(err) is BackendError and err.status == 502 and fault in err.message
    result, cerr = await run_complete(backend)
    assert cerr is None and result.body["choices"][0]["message"]["content"]


async def test_rate_limit_carries_the_upstream_retry_after():
    _, err = await run_complete(faulty("rate-limit-429"))
    assert err.retry_after_s == 1.0


@pytest.mark.parametrize("stream", [False, True])
async def test_hang_never_answers_until_cancelled(stream):
    backend = faulty("hang")
    work = backend.stream("chat", PAYLOAD) if stream else backend.complete("chat", PAYLOAD)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(work, 0.05)
    assert backend.calls == 1


async def test_flaky_fails_its_first_n_calls_then_recovers():
    backend = faulty("flaky-2")
    _, e1 = await run_complete(backend)
    _, _, e2 = await run_stream(backend)
    assert [type(e1), e1.status, type(e2), e2.status] == [BackendError, 502, BackendError, 502]
    assert "503" in e1.message and "call 2 of 2" in e2.message
    result, e3 = await run_complete(backend)
    chunks, _, e4 = await run_stream(backend)
    assert e3 is None and e4 is None and text_of(chunks) == "Hello from the fault upstream."
    assert result.body["choices"][0]["message"]["content"] == "Hello from the fault upstream."
    assert backend.calls == 4


async def test_usage_is_words_of_prompt_and_reply():
    result, _ = await run_complete(faulty("fast"))
    assert result.body["usage"] == {"prompt_tokens": 6, "completion_tokens": 5,
                                    "total_tokens": 11}
    assert (result.usage.input_tokens, result.usage.output_tokens) == (6, 5)
    assert result.usage.estimated is False
    text, _ = await run_complete(faulty("fast"), "text", {"prompt": "one two three"})
    assert text.body["object"] == "text_completion"
    assert text.body["choices"][0]["text"] == "Hello from the fault upstream."
    assert (text.usage.input_tokens, text.usage.output_tokens) == (3, 5)


@pytest.mark.parametrize("kind", ["chat", "text"])
async def test_max_tokens_cuts_the_reply(kind):
    payload = {"messages": MSG, "max_tokens": 2} if kind == "chat" else \
        {"prompt": "hi", "max_tokens": 2}
    result, _ = await run_complete(faulty("fast"), kind, payload)
    choice = result.body["choices"][0]
    text = choice["message"]["content"] if kind == "chat" else choice["text"]
    assert text == "Hello from" and choice["finish_reason"] == "length"
    assert result.usage.output_tokens == 2
    chunks, stats, err = await run_stream(faulty("fast"), kind, payload)
    assert err is None and text_of(chunks) == "Hello from"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert stats.usage.output_tokens == 2


async def test_stream_ends_with_a_usage_only_chunk():
    chunks, stats, _ = await run_stream(faulty("fast"))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hello"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert stats.usage.output_tokens == 5 and stats.usage.estimated is False


async def test_panel_backend_faulty_builds_a_faulty_backend():
    spec = ModelSpec(id="chaos", backend="faulty", upstream_model="error-503")
    async with open_panel(Panel([spec]), Settings()) as rt:
        backend = rt.backends["chaos"]
    assert isinstance(backend, FaultyBackend) and backend.fault == "error-503"
