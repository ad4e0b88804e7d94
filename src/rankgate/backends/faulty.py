"""An in-process model whose name injects a fault: the gateway's chaos drill, with no HTTP.

The fault is the model's name at the "upstream" (``upstream_model``, else ``id``), the same names
as ``rankgate.testing.fault_upstream``: ``error-500``, ``error-503`` (any ``error-4xx/5xx``),
``rate-limit-429``, ``bad-request-400``, ``slow-<ms>``, ``hang``, ``err-in-stream``,
``truncated-stream``, ``bad-json``, ``error-in-200``, plus ``flaky-<n>``: the first ``n`` calls on
this backend object fail with an upstream 503, later ones succeed (retries and circuit-breaker
recovery). Any other name answers "Hello from the fault upstream." (words after ``max_tokens``
are cut), streamed word by word when asked.

Each fault raises exactly what ``OpenAIHTTPBackend`` raises when the fault upstream behaves that
way over HTTP (same class, status, code and message; ``tests/gateway_prod/test_faulty_backend.py``
pins this), so a drill against ``backend: faulty`` exercises the same gateway paths as a drill
against a real failing server. ``hang`` waits until cancelled: only a caller's timeout (the
resilience layer's) ends it. Usage is this model's own count, not an estimate: its tokens are
whitespace words (prompt: the words of the message contents or the prompt, at least 1;
completion: the words of the reply), so costs in tests are exact and deterministic.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from rankgate.backends.base import (
    BackendError,
    BackendStatus,
    BackendTimeout,
    BadRequest,
    Capabilities,
    Kind,
    Result,
    StreamStats,
    Usage,
)
from rankgate.backends.resources import Resources
from rankgate.panel import ModelSpec
from rankgate.testing.fault_upstream import REPLY

_ERROR = re.compile(r"error-([45]\d\d)")
_SLOW = re.compile(r"slow-(\d+)")
_FLAKY = re.compile(r"flaky-(\d+)")
# what the fault upstream sends for each HTTP-level fault: (status, upstream error message)
_CANNED = {"rate-limit-429": (429, "injected rate limit"),
           "bad-request-400": (400, "injected bad request")}
RATE_LIMIT_RETRY_AFTER_S = 1.0  # the Retry-After the fault upstream sends with its 429


def upstream_status_error(model_id: str, status: int, message: str) -> BackendError:
    """The error ``OpenAIHTTPBackend`` raises for an upstream HTTP ``status`` >= 400."""
    msg = f"upstream {model_id} answered {status}: {message}"
    if status in (400, 404, 409, 413, 422, 429):
        return BadRequest(msg, status=400 if status in (404, 422) else status,
                          code=f"upstream_{status}")
    if status in (408, 504):
        return BackendTimeout(msg)
    return BackendError(msg)


def prompt_words(kind: Kind, payload: dict[str, Any]) -> int:
    """Prompt tokens of this model: whitespace words of the message contents (or prompt)."""
    if kind == "text":
        prompt = payload.get("prompt", "")
        text = " ".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)
        return len(text.split()) or 1
    return sum(len(_content_text(m.get("content")).split())
               for m in payload.get("messages") or ()) or 1


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts: only the text ones are words
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _max_tokens(kind: Kind, payload: dict[str, Any]) -> int | None:
    limit = payload.get("max_completion_tokens") if kind == "chat" else None
    limit = limit or payload.get("max_tokens")
    return limit if isinstance(limit, int) and limit > 0 else None


def _reply(kind: Kind, payload: dict[str, Any]) -> tuple[list[str], str]:
    """The reply's words (cut at ``max_tokens``) and its finish reason."""
    words = REPLY.split()
    limit = _max_tokens(kind, payload)
    if limit is not None and limit < len(words):
        return words[:limit], "length"
    return words, "stop"


def _usage_json(u: Usage) -> dict[str, int]:
    assert u.input_tokens is not None and u.output_tokens is not None
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


def validate(spec: ModelSpec) -> None:
    if spec.path or spec.bundled or spec.base_url:
        raise ValueError("backend 'faulty' takes no path/bundled/base_url: its model "
                         "name (upstream_model or id) says which fault to inject")


def build(spec: ModelSpec, res: Resources) -> FaultyBackend:
    return FaultyBackend(spec)


class FaultyBackend:
    """One panel model of ``backend: faulty``; ``calls`` counts every complete/stream call
    (tests use it to prove a call was or was not made) and ``received`` keeps the latest
    requests as sent (tests inspect what a wrapper such as a variant changed); ``peak`` is
    the most ``complete`` calls it has had in flight at once (tests of concurrency)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.fault = spec.name_upstream
        self.calls = 0
        self.in_flight = 0
        self.peak = 0
        self.received: deque[tuple[Kind, dict[str, Any]]] = deque(maxlen=1000)
        # a stand-in for a hosted model: takes what one would (a panel entry may narrow it)
        self.capabilities = spec.narrow(Capabilities(streaming=True, tools=True, images=True,
                                                     audio=True, files=True))
        self.context_window: int | None = spec.context_window

    async def load(self) -> None:
        return None

    def status(self, thorough: bool = False) -> BackendStatus:
        return BackendStatus(True, True, f"faulty:{self.fault}")

    async def _answer_head(self, stream: bool) -> None:
        """Everything the upstream does before it would send a 200 status line."""
        self.calls += 1
        await asyncio.sleep(0)  # a real call always yields to the event loop at least once
        fault, name = self.fault, self.spec.id
        if m := _SLOW.fullmatch(fault):
            await asyncio.sleep(int(m[1]) / 1000.0)
        elif fault == "hang":
            await asyncio.Event().wait()  # until the caller cancels
        elif m := _ERROR.fullmatch(fault):
            raise upstream_status_error(name, int(m[1]), f"injected {fault}")
        elif fault in _CANNED:
            err = upstream_status_error(name, *_CANNED[fault])
            if fault == "rate-limit-429":
                err.retry_after_s = RATE_LIMIT_RETRY_AFTER_S  # type: ignore[attr-defined]
            raise err
        elif (m := _FLAKY.fullmatch(fault)) and self.calls <= int(m[1]):
            raise upstream_status_error(
                name, 503, f"injected {fault}: call {self.calls} of {int(m[1])} fails")
        elif fault in ("bad-json", "error-in-200"):
            # a 200 with a JSON content-type (or none) whose body is not a completion
            if stream:
                shown = "<html>not json</html>" if fault == "bad-json" else \
                    "injected error in 200"
                raise BackendError(f"upstream {name} answered a stream request with "
                                   f"application/json, not an event stream: {shown}")
            if fault == "bad-json":
                raise BackendError(f"upstream {name} sent a body that is not JSON")
            raise BackendError(f"upstream {name} sent a 200 without 'choices'")

    async def complete(self, kind: Kind, payload: dict[str, Any]) -> Result:
        t0 = time.perf_counter()
        self.received.append((kind, payload))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self._answer_head(stream=False)
        finally:
            self.in_flight -= 1
        words, finish = _reply(kind, payload)
        usage = Usage(prompt_words(kind, payload), len(words))
        text = " ".join(words)
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if kind == "chat":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        body = {"id": f"faulty-{self.calls}",
                "object": "chat.completion" if kind == "chat" else "text_completion",
                "created": int(time.time()), "model": self.fault, "choices": [choice],
                "usage": _usage_json(usage)}
        return Result(body, usage, time.perf_counter() - t0)

    async def stream(self, kind: Kind, payload: dict[str, Any]) -> FaultyStream:
        t0 = time.perf_counter()
        self.received.append((kind, payload))
        await self._answer_head(stream=True)
        return FaultyStream(self, kind, payload, t0)

    async def aclose(self) -> None:
        return None


class FaultyStream:
    """The reply as chunks, one word each, then a finish chunk and a usage-only chunk (what
    an upstream sends when asked for ``include_usage``, as ``openai_http`` always asks)."""

    def __init__(self, backend: FaultyBackend, kind: Kind, payload: dict[str, Any],
                 t0: float) -> None:
        self.backend = backend
        self.kind = kind
        self.payload = payload
        self.stats = StreamStats()
        self._t0 = t0
        self._closed = False
        self._created = int(time.time())

    def _chunk(self, text: str | None, finish: str | None, first: bool = False
               ) -> dict[str, Any]:
        if self.kind == "chat":
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish,
                      "logprobs": None}
            obj = "text_completion"
        return {"id": f"faulty-{self.backend.calls}", "object": obj, "created": self._created,
                "model": self.backend.fault, "choices": [choice]}

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        fault, name = self.backend.fault, self.backend.spec.id
        words, finish = _reply(self.kind, self.payload)
        fail_after = min(1, len(words) - 1)  # the fault upstream fails after the 2nd word
        try:
            for i, word in enumerate(words):
                if self._closed:
                    return
                await asyncio.sleep(0)  # chunks arrive one by one, as over a socket
                yield self._chunk(word if i == 0 else " " + word, None, first=i == 0)
                if i == fail_after and fault == "err-in-stream":
                    raise BackendError(
                        f"upstream {name} failed mid-stream: upstream crashed mid-stream")
                if i == fail_after and fault == "truncated-stream":
                    raise BackendError(
                        f"upstream {name} ended the stream without [DONE] (truncated)")
            usage = Usage(prompt_words(self.kind, self.payload), len(words))
            yield self._chunk(None, finish)
            self.stats.usage = usage
            tail = self._chunk(None, None)
            tail["choices"] = []
            tail["usage"] = _usage_json(usage)
            yield tail
        finally:
            self.stats.compute_s = time.perf_counter() - self._t0

    async def aclose(self) -> None:
        self._closed = True
