"""Any OpenAI-compatible HTTP server: vLLM, SGLang, Ollama, llama.cpp server, hosted APIs.

All models of a gateway share one ``UpstreamPool`` (one pooled ``aiohttp.ClientSession``, owned
by the gateway), so connections are reused across requests and models. aiohttp rather than
httpx because the upstream hop is the gateway's hottest path: its C HTTP parser and lighter
connection pool cost a fraction of httpx's per-request CPU.

Upstream failures become ``BackendError``s with honest statuses: unreachable → 502, timeout →
504, upstream 5xx → 502, upstream 4xx → the same 4xx with the upstream's message (a 429 also
carries the upstream's Retry-After as ``retry_after_s``). A 200 whose body is not a completion
is a 502, never passed on.
"""

from __future__ import annotations

import asyncio
import math
import os
import ssl
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from yarl import URL

from rankgate.backends.base import (
    BackendError,
    BackendStatus,
    BackendTimeout,
    BackendUnreachable,
    BadRequest,
    Capabilities,
    Kind,
    Result,
    StreamStats,
    Usage,
)
from rankgate.backends.resources import Resources
from rankgate.panel import ModelSpec

_PATHS = {"chat": "/chat/completions", "text": "/completions"}
CONNECT_TIMEOUT_S = 10.0
# Idle connections are dropped a little before common servers' own keep-alive expiry
# (uvicorn and Node close after 5 s): reusing a connection the server is closing at that
# moment fails a POST, which aiohttp (rightly) does not retry.
KEEPALIVE_S = 4.0
BODY_END_GRACE_S = 5.0  # after [DONE], how long a connection waits for the body to end


class UpstreamPool:
    """The gateway's one pool of upstream connections, shared by every ``openai`` model.

    Build it anywhere (the app factory runs before the server's event loop exists); the
    ``aiohttp.ClientSession`` is made on first use inside the running loop, and made afresh if
    a later call runs in another loop (a CLI that calls ``asyncio.run`` more than once). The
    owner calls ``aclose()`` once, from the loop that used it, at shutdown. ``max_connections``
    bounds concurrent upstream connections across all models (requests over it wait for a
    free one); there is no per-host bound.
    """

    def __init__(self, max_connections: int = 1000, dns_ttl_s: int = 60) -> None:
        self.max_connections = max_connections
        self.dns_ttl_s = dns_ttl_s
        self._ssl = _ssl_context()  # here, not in the loop: loading CAs takes milliseconds
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        """The pooled session of the running loop (must be called inside one)."""
        loop = asyncio.get_running_loop()
        s = self._session
        if s is None or self._loop is not loop or s.closed:
            s = self._session = self._new_session()
            self._loop = loop
        return s

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_S,
            use_dns_cache=True, ttl_dns_cache=self.dns_ttl_s, ssl=self._ssl)
        # Timeouts are per request (per model); proxies are resolved once per backend.
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(),
                                     auto_decompress=True, trust_env=False)

    async def aclose(self) -> None:
        s, self._session, self._loop = self._session, None, None
        if s is not None and not s.closed:
            await s.close()

    async def __aenter__(self) -> UpstreamPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _ssl_context() -> ssl.SSLContext:
    """certifi's CA bundle, as httpx used, unless the environment names its own CAs."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context()
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with httpx and requests
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _env_proxy(url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy HTTP(S)_PROXY / NO_PROXY choose for ``url`` (httpx honoured them too);
    resolved once, because aiohttp's ``trust_env`` re-reads the environment per request."""
    from aiohttp.helpers import get_env_proxy_for_url

    try:
        return get_env_proxy_for_url(url)
    except LookupError:
        return None, None


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or
    unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _upstream_message(body: bytes, reason: str | None) -> str:
    try:
        data = orjson.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg or data)[:500]
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")[:500] or reason or ""


def _usage(body: dict[str, Any] | None) -> Usage:
    u = (body or {}).get("usage") or {}
    return Usage(u.get("prompt_tokens"), u.get("completion_tokens"))


def validate(spec: ModelSpec) -> None:
    """Panel fields of an OpenAI-compatible server: a ``base_url``, no local file."""
    if not spec.base_url:
        raise ValueError("openai models need 'base_url'")
    if spec.path or spec.bundled:
        raise ValueError("'path'/'bundled' only apply to backend 'llamacpp'")


def build(spec: ModelSpec, res: Resources) -> OpenAIHTTPBackend:
    return OpenAIHTTPBackend(spec, res.pool, res.settings.upstream_timeout_s)


#: What an OpenAI-compatible server may do: the upstream itself answers 400 to what its model
#: cannot take, and that 400 is passed on. A panel entry narrows this with ``capabilities``.
HTTP_CAPABILITIES = Capabilities(streaming=True, logprobs=True, tools=True, images=True,
                                 audio=True, files=True, embeddings=True, max_concurrency=None)


class OpenAIHTTPBackend:
    """One panel model served over OpenAI-compatible HTTP.

    ``pool`` is the gateway's shared ``UpstreamPool``; anything else (``None``, or a legacy
    ``httpx.AsyncClient``) makes the backend use a private pool that its ``aclose()`` closes.
    ``timeout_s`` (or the model's own ``timeout_s``) bounds each wait for upstream bytes: the
    response head, the body, and every gap between stream events; connecting has 10 s.
    """

    def __init__(self, spec: ModelSpec, pool: UpstreamPool | Any, timeout_s: float) -> None:
        assert spec.base_url
        self.spec = spec
        self.capabilities = spec.narrow(HTTP_CAPABILITIES)
        self.context_window: int | None = spec.context_window
        self._owns_pool = not isinstance(pool, UpstreamPool)
        self.pool: UpstreamPool = UpstreamPool(max_connections=100) if self._owns_pool else pool
        self.base_url = spec.base_url.rstrip("/")
        self._urls = {kind: URL(self.base_url + path) for kind, path in _PATHS.items()}
        self._embeddings_url = URL(self.base_url + "/embeddings")
        read_s = spec.timeout_s or timeout_s
        # connect covers waiting for a free pooled connection too (httpx's pool timeout)
        self.timeout = aiohttp.ClientTimeout(total=None, connect=read_s + CONNECT_TIMEOUT_S,
                                             sock_connect=CONNECT_TIMEOUT_S, sock_read=read_s)
        self._proxy, self._proxy_auth = _env_proxy(self._urls["chat"])
        self._headers = {"content-type": "application/json"}
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if key:
                self._headers["authorization"] = f"Bearer {key}"

    def _body(self, payload: dict[str, Any], stream: bool) -> bytes:
        body = {**payload, "model": self.spec.name_upstream, "stream": stream}
        if stream:
            opts = dict(body.get("stream_options") or {})
            opts["include_usage"] = True  # so spend is known for streams too
            body["stream_options"] = opts
        return orjson.dumps(body)

    def _post(self, kind: Kind, payload: dict[str, Any], stream: bool) -> Any:
        return self.pool.session().post(
            self._urls[kind], data=self._body(payload, stream), headers=self._headers,
            timeout=self.timeout, proxy=self._proxy, proxy_auth=self._proxy_auth,
            allow_redirects=False)

    def _raise_for(self, resp: aiohttp.ClientResponse, body: bytes) -> None:
        status = resp.status
        if status < 400:
            return
        msg = (f"upstream {self.spec.id} answered {status}: "
               f"{_upstream_message(body, resp.reason)}")
        if status in (400, 404, 409, 413, 422, 429):
            # the client's request was the problem (or the upstream limits it): same status
            err = BadRequest(msg, status=400 if status in (404, 422) else status,
                             code=f"upstream_{status}")
            if status == 429:
                retry = _retry_after_s(resp.headers.get("retry-after"))
                if retry is not None:
                    err.retry_after_s = retry  # type: ignore[attr-defined]
            raise err
        if status in (408, 504):
            raise BackendTimeout(msg)
        raise BackendError(msg)

    def _timeout(self, e: BaseException) -> BackendTimeout:
        return BackendTimeout(
            f"upstream {self.spec.id} did not answer in time ({type(e).__name__})")

    def _unreachable(self, e: BaseException) -> BackendUnreachable:
        return BackendUnreachable(
            f"upstream {self.spec.id} at {self.base_url} is unreachable: "
            f"{type(e).__name__}: {e}")

    async def _json_answer(self, request: Any) -> Any:
        """The JSON body of a non-streamed upstream call (``request``: an aiohttp request
        context), with every failure mapped to a ``BackendError``: timeout, unreachable,
        an HTTP error status, a body that is not JSON."""
        try:
            async with request as resp:
                raw = await resp.read()
        except TimeoutError as e:  # aiohttp's timeouts are TimeoutErrors; check them first
            raise self._timeout(e) from None
        except aiohttp.ClientError as e:
            raise self._unreachable(e) from None
        self._raise_for(resp, raw)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BackendError(f"upstream {self.spec.id} sent a body that is not JSON") from None

    async def complete(self, kind: Kind, payload: dict[str, Any]) -> Result:
        t0 = time.perf_counter()
        body = await self._json_answer(self._post(kind, payload, stream=False))
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise BackendError(f"upstream {self.spec.id} sent a 200 without 'choices'")
        if "error" in body and not body["choices"]:
            raise BackendError(f"upstream {self.spec.id} sent an error in a 200: {body['error']}")
        return Result(body, _usage(body), time.perf_counter() - t0)

    async def embed(self, payload: dict[str, Any]) -> Result:
        """``/embeddings`` at the upstream: the client's body under the upstream's model
        name, the upstream's answer as it is; errors map as for completions (an upstream
        without the endpoint answers 404, passed on as a 400 naming it)."""
        t0 = time.perf_counter()
        data = orjson.dumps({**payload, "model": self.spec.name_upstream})
        body = await self._json_answer(self.pool.session().post(
            self._embeddings_url, data=data, headers=self._headers, timeout=self.timeout,
            proxy=self._proxy, proxy_auth=self._proxy_auth, allow_redirects=False))
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BackendError(f"upstream {self.spec.id} sent an embeddings answer without "
                               "'data'")
        return Result(body, Usage(_usage(body).input_tokens, 0), time.perf_counter() - t0)

    async def stream(self, kind: Kind, payload: dict[str, Any]) -> _HTTPStream:
        t0 = time.perf_counter()
        try:
            resp = await self._post(kind, payload, stream=True)
        except TimeoutError as e:
            raise self._timeout(e) from None
        except aiohttp.ClientError as e:
            raise self._unreachable(e) from None
        ctype = resp.headers.get("content-type", "")
        if resp.status >= 400 or not ctype.startswith("text/event-stream"):
            try:
                raw = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                raw = b""
            finally:
                resp.release()
            self._raise_for(resp, raw)
            raise BackendError(f"upstream {self.spec.id} answered a stream request with "
                               f"{ctype or 'no content-type'}, not an event stream: "
                               f"{_upstream_message(raw, resp.reason)}")
        return _HTTPStream(self, resp, t0, _prompt_chars(kind, payload))

    async def load(self) -> None:
        return None  # nothing to warm up: connections open on first use

    def status(self, thorough: bool = False) -> BackendStatus:
        return BackendStatus(None, True, self.base_url, note="not probed (remote)")

    async def aclose(self) -> None:
        """Closes the private pool, if any; the shared pool is closed by its owner."""
        if self._owns_pool:
            await self.pool.aclose()


class _HTTPStream:
    """Server-sent events from the upstream, parsed into chunk dicts.

    The body is split into events on blank lines, one bytes operation per network read, and
    each event's data goes straight to orjson. After ``[DONE]`` the connection returns to the
    pool once the body ends; a stream that ends any other way (error, cancellation,
    ``aclose()`` before ``[DONE]``) closes it, so the upstream stops generating.
    """

    def __init__(self, backend: OpenAIHTTPBackend, resp: aiohttp.ClientResponse, t0: float,
                 prompt_chars: int) -> None:
        self.backend = backend
        self.resp = resp
        self.stats = StreamStats()
        self._t0 = t0
        self._prompt_chars = prompt_chars
        self._content_chunks = 0
        self._done = False

    def _chunk(self, data: bytes) -> dict[str, Any]:
        name = self.backend.spec.id
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BackendError(f"upstream {name} sent a stream event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise BackendError(f"upstream {name} sent a stream event that is not a JSON object")
        if chunk.get("error"):
            raise BackendError(f"upstream {name} failed mid-stream: "
                               f"{_upstream_message_from(chunk)}")
        if chunk.get("usage"):
            self.stats.usage = _usage(chunk)
        if any(_has_content(c) for c in chunk.get("choices") or ()):
            self._content_chunks += 1
        return chunk

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        name = self.backend.spec.id
        done = False
        buf = b""
        try:
            async for data in self.resp.content.iter_any():
                buf = buf + data if buf else data
                if b"\r" in buf:
                    buf = _lf_only(buf)
                *events, buf = buf.split(b"\n\n")
                for event in events:
                    payload = _event_data(event)
                    if payload is None:
                        continue
                    if _is_done(payload):
                        done = True
                        break
                    yield self._chunk(payload)
                if done:
                    break
            if not done and (payload := _event_data(buf)) is not None:
                # a last event without its blank line
                if _is_done(payload):
                    done = True
                else:
                    yield self._chunk(payload)
        except TimeoutError:
            raise BackendTimeout(f"upstream {name} stalled mid-stream") from None
        except aiohttp.ClientError as e:
            raise BackendError(f"upstream {name} broke the stream: {type(e).__name__}") from None
        finally:
            self.stats.compute_s = time.perf_counter() - self._t0
            self._done = done
            if not done:
                self.resp.close()
            elif self.resp.content.at_eof():
                self.resp.release()
            else:
                # The body's end (the chunk terminator) often comes in a later read. aiohttp
                # puts the connection back in the pool when it arrives; an upstream that
                # never ends the body loses the connection after a grace period.
                asyncio.get_running_loop().call_later(BODY_END_GRACE_S, self.resp.close)
        if not done:
            raise BackendError(f"upstream {name} ended the stream without [DONE] (truncated)")
        if self.stats.usage.output_tokens is None:
            # The upstream ignored stream_options.include_usage (llama.cpp's Python server
            # does): count one token per content chunk and ~4 characters per prompt token,
            # and say the figures are estimates.
            self.stats.usage = Usage(-(-self._prompt_chars // 4), self._content_chunks,
                                     estimated=True)

    async def aclose(self) -> None:
        """Closes the upstream connection, unless the stream ended with ``[DONE]``."""
        if not self._done:
            self.resp.close()


def _lf_only(buf: bytes) -> bytes:
    """CRLF and CR line ends as LF; a CR at the very end waits for the next read (it may be
    the first half of a CRLF)."""
    tail = b"\r" if buf.endswith(b"\r") else b""
    body = buf[:-1] if tail else buf
    return body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail


def _is_done(data: bytes) -> bool:
    return len(data) < 16 and data.strip() == b"[DONE]"


def _event_data(event: bytes) -> bytes | None:
    """The data of one SSE event (its ``data:`` lines joined), None if it has none."""
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:]
    if not event.strip():
        return None
    lines = [ln[5:].removeprefix(b" ") for ln in event.split(b"\n") if ln.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _has_content(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta") or {}
    return bool(delta.get("content") or delta.get("tool_calls") or choice.get("text"))


def _prompt_chars(kind: Kind, payload: dict[str, Any]) -> int:
    if kind == "text":
        return len(str(payload.get("prompt", "")))
    return sum(len(str(m.get("content") or "")) for m in payload.get("messages", []))


def _upstream_message_from(chunk: dict[str, Any]) -> str:
    err = chunk.get("error")
    return str(err.get("message") if isinstance(err, dict) else err)[:500]
