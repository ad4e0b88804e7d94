"""Any OpenAI-compatible HTTP server: vLLM, SGLang, Ollama, llama.cpp server, hosted APIs.

All models share one pooled ``httpx.AsyncClient`` (owned by the gateway), so connections are
reused across requests and models. Upstream failures become ``BackendError``s with honest
statuses: unreachable → 502, timeout → 504, upstream 5xx → 502, upstream 4xx → the same 4xx
with the upstream's message. A 200 whose body is not a completion is a 502, never passed on.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from rankgate.backends.base import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    BadRequest,
    Kind,
    Result,
    StreamStats,
    Usage,
)
from rankgate.panel import ModelSpec

_PATHS = {"chat": "/chat/completions", "text": "/completions"}


def _upstream_message(resp: httpx.Response) -> str:
    try:
        data = orjson.loads(resp.content)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg or data)[:500]
    except orjson.JSONDecodeError:
        return resp.text[:500] or resp.reason_phrase


def _usage(body: dict[str, Any] | None) -> Usage:
    u = (body or {}).get("usage") or {}
    return Usage(u.get("prompt_tokens"), u.get("completion_tokens"))


class OpenAIHTTPBackend:
    def __init__(self, spec: ModelSpec, client: httpx.AsyncClient, timeout_s: float) -> None:
        assert spec.base_url
        self.spec = spec
        self.client = client
        self.base_url = spec.base_url.rstrip("/")
        self.timeout = httpx.Timeout(spec.timeout_s or timeout_s, connect=10.0)
        self._headers = {"content-type": "application/json"}
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if key:
                self._headers["authorization"] = f"Bearer {key}"

    def _request(self, kind: Kind, payload: dict[str, Any], stream: bool) -> httpx.Request:
        body = dict(payload)
        body["model"] = self.spec.name_upstream
        body["stream"] = stream
        if stream:
            opts = dict(body.get("stream_options") or {})
            opts["include_usage"] = True  # so spend is known for streams too
            body["stream_options"] = opts
        return self.client.build_request(
            "POST", self.base_url + _PATHS[kind], content=orjson.dumps(body),
            headers=self._headers, timeout=self.timeout,
        )

    def _raise_for(self, resp: httpx.Response, body: bytes | None = None) -> None:
        if resp.status_code < 400:
            return
        msg = f"upstream {self.spec.id} answered {resp.status_code}: {_upstream_message(resp)}"
        if resp.status_code in (400, 404, 409, 413, 422, 429):
            # the client's request was the problem (or the upstream limits it): same status
            status = 400 if resp.status_code in (404, 422) else resp.status_code
            raise BadRequest(msg, status=status, code=f"upstream_{resp.status_code}")
        if resp.status_code in (408, 504):
            raise BackendTimeout(msg)
        raise BackendError(msg)

    async def _send(self, req: httpx.Request, stream: bool) -> httpx.Response:
        try:
            return await self.client.send(req, stream=stream)
        except httpx.TimeoutException as e:
            raise BackendTimeout(
                f"upstream {self.spec.id} did not answer in time ({type(e).__name__})"
            ) from None
        except httpx.TransportError as e:
            raise BackendUnreachable(
                f"upstream {self.spec.id} at {self.base_url} is unreachable: "
                f"{type(e).__name__}: {e}"
            ) from None

    async def complete(self, kind: Kind, payload: dict[str, Any]) -> Result:
        t0 = time.perf_counter()
        resp = await self._send(self._request(kind, payload, stream=False), stream=False)
        self._raise_for(resp)
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise BackendError(f"upstream {self.spec.id} sent a body that is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise BackendError(f"upstream {self.spec.id} sent a 200 without 'choices'")
        if "error" in body and not body["choices"]:
            raise BackendError(f"upstream {self.spec.id} sent an error in a 200: {body['error']}")
        return Result(body, _usage(body), time.perf_counter() - t0)

    async def stream(self, kind: Kind, payload: dict[str, Any]) -> _HTTPStream:
        t0 = time.perf_counter()
        resp = await self._send(self._request(kind, payload, stream=True), stream=True)
        if resp.status_code >= 400:
            await resp.aread()
            await resp.aclose()
            self._raise_for(resp)
        ctype = resp.headers.get("content-type", "")
        if not ctype.startswith("text/event-stream"):
            await resp.aread()
            await resp.aclose()
            raise BackendError(f"upstream {self.spec.id} answered a stream request with "
                               f"{ctype or 'no content-type'}, not an event stream: "
                               f"{_upstream_message(resp)}")
        return _HTTPStream(self, resp, t0, _prompt_chars(kind, payload))

    async def aclose(self) -> None:  # the shared client is closed by its owner
        return None


class _HTTPStream:
    """Server-sent events from the upstream, parsed into chunk dicts."""

    def __init__(self, backend: OpenAIHTTPBackend, resp: httpx.Response, t0: float,
                 prompt_chars: int) -> None:
        self.backend = backend
        self.resp = resp
        self.stats = StreamStats()
        self._t0 = t0
        self._prompt_chars = prompt_chars
        self._content_chunks = 0

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        name = self.backend.spec.id
        done = False
        try:
            async for line in self.resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise BackendError(
                        f"upstream {name} sent a stream event that is not JSON") from None
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise BackendError(f"upstream {name} failed mid-stream: "
                                       f"{_upstream_message_from(chunk)}")
                if chunk.get("usage"):
                    self.stats.usage = _usage(chunk)
                if any(_has_content(c) for c in chunk.get("choices") or ()):
                    self._content_chunks += 1
                yield chunk
        except httpx.TimeoutException:
            raise BackendTimeout(f"upstream {name} stalled mid-stream") from None
        except httpx.TransportError as e:
            raise BackendError(f"upstream {name} broke the stream: {type(e).__name__}") from None
        finally:
            self.stats.compute_s = time.perf_counter() - self._t0
            await self.resp.aclose()
        if not done:
            raise BackendError(f"upstream {name} ended the stream without [DONE] (truncated)")
        if self.stats.usage.output_tokens is None:
            # The upstream ignored stream_options.include_usage (llama.cpp's Python server
            # does): count one token per content chunk and ~4 characters per prompt token,
            # and say the figures are estimates.
            self.stats.usage = Usage(-(-self._prompt_chars // 4), self._content_chunks,
                                     estimated=True)

    async def aclose(self) -> None:
        await self.resp.aclose()


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
