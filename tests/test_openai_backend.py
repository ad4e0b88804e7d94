"""The ``openai`` backend: a real OpenAI-compatible upstream (llama.cpp's own server with the
real smollm2 model), hosted-price lookup, and every way an upstream can fail."""

from __future__ import annotations

import asyncio
import email.utils
import re
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from rankgate.backends.base import BackendTimeout, BackendUnreachable, BadRequest
from rankgate.backends.openai_http import OpenAIHTTPBackend, UpstreamPool
from rankgate.panel import ModelSpec
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


# -- the backend itself, over real sockets ----------------------------------------------------
# (scripted raw HTTP/1.1 servers where the fault upstream cannot misbehave the way a test needs)

SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n")
HELLO = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'


def chunked(*pieces: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces]


def json_reply(status: int, body: bytes, *headers: bytes) -> list[bytes]:
    head = b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status, len(body))
    return [head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body]


COMPLETION = json_reply(200, b'{"choices":[{"index":0,"message":{"content":"Hi"}}],'
                             b'"usage":{"prompt_tokens":3,"completion_tokens":1}}')


@dataclass
class Reply:
    pieces: list[bytes]  # written one by one, with a short pause between them
    hold: bool = False  # then keep the response open until the client closes the connection


class RawUpstream:
    """A scripted HTTP/1.1 server: each request gets the next ``Reply``. It records the
    connections it accepted, the requests' heads and whether the client closed a held
    response (``client_closed``)."""

    def __init__(self, *replies: Reply, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.replies = list(replies)
        self.ssl_ctx = ssl_ctx
        self.connections = 0
        self.heads: list[bytes] = []
        self.client_closed = asyncio.Event()
        self.replied = 0  # replies written in full
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_ctx)
        port = self.server.sockets[0].getsockname()[1]
        scheme = "https" if self.ssl_ctx else "http"
        self.base_url = f"{scheme}://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                self.heads.append(head.lower())
                reply = self.replies.pop(0)
                for piece in reply.pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.005)
                self.replied += 1
                if reply.hold:
                    await reader.read()  # b"" once the client has closed the connection
                    self.client_closed.set()
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()


def backend(base_url: str, default_timeout_s: float = 5.0, pool: UpstreamPool | None = None,
            **spec: Any) -> OpenAIHTTPBackend:
    return OpenAIHTTPBackend(ModelSpec(id="m", backend="openai", base_url=base_url, **spec),
                             pool, default_timeout_s)


async def drain(stream: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_stream_events_are_parsed_across_reads_crlf_comments_and_multiline_data():
    events = (b": keep-alive\r\n\r\n" + HELLO.replace(b"\n", b"\r\n")
              + b'data: {"choices":[],\r\ndata: "usage":{"prompt_tokens":3,'
                b'"completion_tokens":1}}\r\n\r\n' + b"data: [DONE]")
    pieces = [events[i:i + 7] for i in range(0, len(events), 7)]  # splits CRLFs too
    async with RawUpstream(Reply([SSE_HEAD, *chunked(*pieces), b"0\r\n\r\n"])) as up:
        async with UpstreamPool() as pool:
            stream = await backend(up.base_url, pool=pool).stream("chat", {"messages": MSG})
            chunks = await drain(stream)
    assert [c["choices"] for c in chunks] == [
        [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}], []]
    assert (stream.stats.usage.input_tokens, stream.stats.usage.output_tokens) == (3, 1)
    assert stream.stats.usage.estimated is False


@pytest.mark.anyio
async def test_finished_stream_returns_its_connection_to_the_pool():
    # [DONE] and the body's end in one write (uvicorn), then in two (the end comes later)
    at_once = Reply([SSE_HEAD, *chunked(HELLO + USAGE + b"data: [DONE]\n\n"), b"0\r\n\r\n"])
    at_once.pieces[-2:] = [b"".join(at_once.pieces[-2:])]
    end_later = Reply([SSE_HEAD, *chunked(HELLO + USAGE + b"data: [DONE]\n\n"), b"0\r\n\r\n"])
    async with RawUpstream(at_once, Reply(COMPLETION), end_later, Reply(COMPLETION)) as up, \
            UpstreamPool() as pool:
        b = backend(up.base_url, pool=pool)
        first = await b.stream("chat", {"messages": MSG})
        await drain(first)
        await first.aclose()  # after [DONE] this keeps the connection
        result = await b.complete("chat", {"messages": MSG})
        later = await b.stream("chat", {"messages": MSG})
        await drain(later)
        await later.aclose()
        while up.replied < 3:  # the body's end has been sent
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # and read
        await b.complete("chat", {"messages": MSG})
    assert result.body["choices"][0]["message"]["content"] == "Hi"
    assert up.connections == 1 and len(up.heads) == 4


@pytest.mark.anyio
async def test_closing_a_stream_early_closes_the_upstream_connection():
    async with RawUpstream(Reply([SSE_HEAD, *chunked(HELLO)], hold=True)) as up, \
            UpstreamPool() as pool:
        stream = await backend(up.base_url, pool=pool).stream("chat", {"messages": MSG})
        async for _ in stream:
            break
        await stream.aclose()
        await asyncio.wait_for(up.client_closed.wait(), 5)


@pytest.mark.anyio
async def test_cancelled_stream_closes_the_upstream_connection():
    async with RawUpstream(Reply([SSE_HEAD, *chunked(HELLO)], hold=True)) as up, \
            UpstreamPool() as pool:
        stream = await backend(up.base_url, pool=pool).stream("chat", {"messages": MSG})
        got: list[dict[str, Any]] = []

        async def consume() -> None:
            async for chunk in stream:
                got.append(chunk)

        task = asyncio.create_task(consume())
        while not got:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(up.client_closed.wait(), 5)


@pytest.mark.anyio
async def test_cancelled_completion_closes_the_upstream_connection():
    async with RawUpstream(Reply([], hold=True)) as up, UpstreamPool() as pool:
        task = asyncio.create_task(backend(up.base_url, pool=pool).complete(
            "chat", {"messages": MSG}))
        while not up.heads:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(up.client_closed.wait(), 5)


@pytest.mark.anyio
async def test_stalled_stream_is_a_timeout_after_the_models_own_timeout():
    async with RawUpstream(Reply([SSE_HEAD, *chunked(HELLO)], hold=True)) as up, \
            UpstreamPool() as pool:
        stream = await backend(up.base_url, 30.0, pool, timeout_s=0.3).stream(
            "chat", {"messages": MSG})
        with pytest.raises(BackendTimeout) as e:
            await drain(stream)
    assert e.value.status == 504 and e.value.message == "upstream m stalled mid-stream"


@pytest.mark.anyio
async def test_upstream_429_exposes_its_retry_after(fault_upstream):
    async with UpstreamPool() as pool:
        b = backend(fault_upstream.base_url, pool=pool, upstream_model="rate-limit-429")
        for call in (b.complete("chat", {"messages": MSG}), b.stream("chat", {"messages": MSG})):
            with pytest.raises(BadRequest) as e:
                await call
            assert e.value.status == 429 and e.value.retry_after_s == 1.0


@pytest.mark.anyio
async def test_retry_after_as_an_http_date_is_seconds_from_now():
    when = email.utils.formatdate(time.time() + 120, usegmt=True).encode()
    reply = json_reply(429, b'{"error":{"message":"slow down"}}', b"retry-after: " + when)
    async with RawUpstream(Reply(reply)) as up, UpstreamPool() as pool:
        with pytest.raises(BadRequest) as e:
            await backend(up.base_url, pool=pool).complete("chat", {"messages": MSG})
    assert 100 < e.value.retry_after_s <= 121
    assert e.value.message == "upstream m answered 429: slow down"


@pytest.mark.anyio
@pytest.mark.parametrize("value", [b"soon", b"inf", b"nan"])
async def test_unreadable_retry_after_is_not_passed_on(value):
    reply = json_reply(429, b'{"error":{"message":"slow down"}}', b"retry-after: " + value)
    async with RawUpstream(Reply(reply)) as up, UpstreamPool() as pool:
        with pytest.raises(BadRequest) as e:
            await backend(up.base_url, pool=pool).complete("chat", {"messages": MSG})
    assert e.value.status == 429 and getattr(e.value, "retry_after_s", None) is None


@pytest.mark.anyio
async def test_api_key_env_is_sent_as_a_bearer_token(monkeypatch):
    monkeypatch.setenv("RANKGATE_TEST_UPSTREAM_KEY", "sk-test-123")
    async with RawUpstream(Reply(COMPLETION)) as up, UpstreamPool() as pool:
        await backend(up.base_url, pool=pool, api_key_env="RANKGATE_TEST_UPSTREAM_KEY",
                      upstream_model="up-name").complete("chat", {"messages": MSG})
    assert b"\r\nauthorization: bearer sk-test-123\r\n" in up.heads[0]
    assert up.heads[0].startswith(b"post /v1/chat/completions http/1.1")


@pytest.mark.anyio
async def test_https_upstream_is_verified_against_trusted_cas(tmp_path, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    async with RawUpstream(Reply(COMPLETION), ssl_ctx=server_ctx) as up:
        async with UpstreamPool() as pool:  # certifi's CAs: the self-signed cert is refused
            with pytest.raises(BackendUnreachable):
                await backend(up.base_url, pool=pool).complete("chat", {"messages": MSG})
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        async with UpstreamPool() as pool:
            result = await backend(up.base_url, pool=pool).complete("chat", {"messages": MSG})
    assert result.body["choices"][0]["message"]["content"] == "Hi"


def test_pool_built_outside_a_loop_serves_every_loop_that_uses_it(fault_upstream):
    pool = UpstreamPool()  # as the app factory does, before any event loop runs
    b = backend(fault_upstream.base_url, pool=pool, upstream_model="fast")

    async def once() -> str:
        return (await b.complete("chat", {"messages": MSG})).body["choices"][0]["message"][
            "content"]

    async def last() -> str:
        try:
            return await once()
        finally:
            await pool.aclose()

    assert asyncio.run(once()) == asyncio.run(last()) == "Hello from the fault upstream."


@pytest.mark.anyio
async def test_refused_connection_is_unreachable():
    async with UpstreamPool() as pool:
        with pytest.raises(BackendUnreachable) as e:
            await backend(f"http://127.0.0.1:{free_port()}/v1", pool=pool).complete(
                "chat", {"messages": MSG})
    assert e.value.status == 502 and e.value.code == "upstream_unreachable"
