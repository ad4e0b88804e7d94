"""One completion request, end to end: parse, validate, call the backend, answer, log.

Both ``/v1/chat/completions`` and ``/v1/completions`` go through ``handle``. Every exit path —
success, bad input, backend failure, a stream that dies midway, a client that hangs up —
produces exactly one request-log row, and every error leaves as OpenAI-shaped JSON (or, once a
stream has started, as an SSE error event) with an honest status.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rankgate.backends.base import BackendError, BackendStream, Kind, Usage
from rankgate.gateway.errors import APIError, error_body, error_response, json_object
from rankgate.gateway.routing import is_auto, prompt_text, route
from rankgate.gateway.schemas import ChatCompletionRequest, CompletionRequest
from rankgate.gateway.state import GatewayState
from rankgate.panel import ModelSpec
from rankgate.pricing import Cost
from rankgate.routing.base import Decision

log = logging.getLogger("rankgate.gateway")

_SCHEMAS: dict[Kind, type[BaseModel]] = {"chat": ChatCompletionRequest, "text": CompletionRequest}
_ENDPOINTS: dict[Kind, str] = {"chat": "/v1/chat/completions", "text": "/v1/completions"}
_ID_PREFIX: dict[Kind, str] = {"chat": "chatcmpl-", "text": "cmpl-"}
_CHUNK_OBJECT: dict[Kind, str] = {"chat": "chat.completion.chunk", "text": "text_completion"}
# fields the gateway owns; the backend sets its own values for them
_NOT_FORWARDED = ("model", "stream", "stream_options", "rankgate")
PROMPT_LOG_CHARS = 8000


@dataclass
class Call:
    """Bookkeeping for one request; becomes its request-log row."""

    kind: Kind
    id: str
    t0: float  # perf_counter at arrival
    ts: float  # wall clock at arrival
    model: str | None = None
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    error_code: str | None = None
    error: str | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    backend_s: float = 0.0
    ttft_s: float | None = None
    overhead_ms: float | None = None
    decision: Decision | None = None
    prompt: str | None = None

    def fail(self, status: int, type_: str, code: str | None, message: str) -> None:
        self.status, self.error_type, self.error_code, self.error = status, type_, code, message

    def row(self) -> dict[str, Any]:
        u = self.usage or Usage()
        return {
            "id": self.id, "ts": self.ts, "endpoint": _ENDPOINTS[self.kind], "key_id": None,
            "model": self.model, "stream": self.stream, "status": self.status,
            "error_type": self.error_type, "error_code": self.error_code,
            "error": self.error[:2000] if self.error else None,
            "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
            "cost_usd": self.cost.usd if self.cost else None,
            "cost_basis": self.cost.basis if self.cost else None,
            "latency_ms": (time.perf_counter() - self.t0) * 1000.0,
            "ttft_ms": self.ttft_s * 1000.0 if self.ttft_s is not None else None,
            "overhead_ms": self.overhead_ms,
            "router": self.decision.router if self.decision else None,
            "prompt": self.prompt[:PROMPT_LOG_CHARS] if self.prompt is not None else None,
        }


def _param(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_error(e: ValidationError) -> APIError:
    first = e.errors(include_url=False)[0]
    # for unions pydantic appends the tried type to the location; drop it
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and "[" in p))
    loc = tuple(p for p in loc if p not in ("str", "list[str]", "list[dict[str,any]]"))
    param = _param(loc) or None
    if first["type"] == "missing":
        return APIError(400, f"Missing required parameter: '{param}'.", param=param,
                        code="missing_required_parameter")
    got = first.get("input")
    shown = orjson.dumps(got).decode()[:80] if _jsonable(got) else type(got).__name__
    return APIError(400, f"Invalid value for '{param}': {first['msg']} (got {shown}).",
                    param=param, code="invalid_value" if "type" not in first["type"]
                    else "invalid_type")


def _jsonable(v: Any) -> bool:
    try:
        orjson.dumps(v)
        return True
    except TypeError:
        return False


async def _parse(state: GatewayState, request: Request, call: Call
                 ) -> tuple[dict[str, Any], ModelSpec]:
    body = json_object(await request.body())
    if isinstance(body.get("model"), str):
        call.model = body["model"]
    call.stream = body.get("stream") is True
    try:
        _SCHEMAS[call.kind].model_validate(body)
    except ValidationError as e:
        raise _validation_error(e) from None
    if call.kind == "text" and isinstance(body["prompt"], list) and len(body["prompt"]) != 1:
        raise APIError(400, "Send one prompt per request (a string or a one-element list).",
                       param="prompt", code="invalid_value")
    call.prompt = prompt_text(body)
    if is_auto(body["model"]):
        call.decision = await route(state.routing, body["model"], body)
        call.model = call.decision.model
    spec = state.panel.get(call.model or body["model"])
    if spec is None:
        raise APIError(
            404,
            f"The model '{body['model']}' does not exist in this panel. "
            f"Valid ids: {', '.join(state.panel.ids)}.",
            param="model", code="model_not_found",
        )
    return body, spec


def _forwarded(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k not in _NOT_FORWARDED}
    if isinstance(out.get("prompt"), list):
        out["prompt"] = out["prompt"][0]
    return out


def _usage_json(u: Usage) -> dict[str, int] | None:
    if u.input_tokens is None or u.output_tokens is None:
        return None
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


def _headers(call: Call, cost: str, overhead_ms: float) -> dict[str, str]:
    h = {"x-request-id": call.id, "x-rankgate-cost-usd": cost,
         "x-rankgate-overhead-ms": f"{overhead_ms:.3f}"}
    if call.model:
        h["x-rankgate-model"] = call.model
    d = call.decision
    h["x-rankgate-router"] = d.router if d else "none"
    if d is not None:
        h["x-rankgate-predicted-quality"] = f"{d.predicted_quality[d.model]:.4f}"
        h["x-rankgate-candidates"] = d.candidates_header()
    if call.cost is not None and call.cost.usd is None:
        h["x-rankgate-cost-note"] = call.cost.basis
    return h


async def handle(state: GatewayState, request: Request, kind: Kind) -> Response:
    call = Call(kind, uuid.uuid4().hex, time.perf_counter(), time.time())
    try:
        body, spec = await _parse(state, request, call)
        backend = state.backends[spec.id]
        payload = _forwarded(body)
        if call.stream:
            return await _start_stream(state, call, spec, backend, payload, body)
        t = time.perf_counter()
        result = await backend.complete(kind, payload)
        call.backend_s = time.perf_counter() - t
        call.usage = result.usage
        call.cost = state.pricers[spec.id].cost(result.usage.input_tokens,
                                                result.usage.output_tokens, result.compute_s)
        out = result.body
        out["id"] = _ID_PREFIX[kind] + call.id
        out["model"] = spec.id
        usage = _usage_json(result.usage)
        if usage is not None:
            out["usage"] = usage
        call.status = 200
        call.overhead_ms = (time.perf_counter() - call.t0 - call.backend_s) * 1000.0
        _remember(state, call)
        return Response(orjson.dumps(out), media_type="application/json",
                        headers=_headers(call, call.cost.header(), call.overhead_ms))
    except APIError as e:
        call.fail(e.status, e.type, e.code, e.message)
        return error_response(e, _headers(call, "0", _elapsed_ms(call)))
    except BackendError as e:
        call.fail(e.status, e.type, e.code, e.message)
        return error_response(APIError(e.status, e.message, type=e.type, param=e.param,
                                       code=e.code), _headers(call, "unknown", _elapsed_ms(call)))
    except Exception as e:  # a bug of ours: still an honest 500, still logged
        log.exception("request %s failed", call.id)
        call.fail(500, "server_error", "internal_error", f"{type(e).__name__}: {e}")
        return error_response(APIError(500, f"Internal error in rankgate (request {call.id}).",
                                       type="server_error", code="internal_error"),
                              _headers(call, "unknown", _elapsed_ms(call)))
    finally:
        if not call.stream or call.status != 200:
            state.request_log.submit(call.row())


def _remember(state: GatewayState, call: Call) -> None:
    """Keep what feedback on this request will need (the log row may not be written yet)."""
    state.remember(call.id, {"model": call.model, "prompt": call.prompt or "",
                             "router": call.decision.router if call.decision else None,
                             "cost_usd": call.cost.usd if call.cost else None,
                             "latency_s": time.perf_counter() - call.t0})


def _elapsed_ms(call: Call) -> float:
    return (time.perf_counter() - call.t0 - call.backend_s) * 1000.0


async def _start_stream(state: GatewayState, call: Call, spec: ModelSpec, backend: Any,
                        payload: dict[str, Any], body: dict[str, Any]) -> Response:
    """Open the backend stream and wait for its first event before sending headers, so an
    upstream that fails before producing anything still gets an honest HTTP error status."""
    t = time.perf_counter()
    bstream = await backend.stream(call.kind, payload)
    events = aiter(bstream)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except BaseException:
        with anyio.CancelScope(shield=True):
            await bstream.aclose()
        raise
    pre_backend_ms = (t - call.t0) * 1000.0
    call.status = 200
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    headers = _headers(call, "pending", pre_backend_ms)
    headers["cache-control"] = "no-cache"
    return StreamingResponse(
        _relay(state, call, spec, bstream, _prepend(first, events), include_usage, t,
               pre_backend_ms),
        media_type="text/event-stream", headers=headers,
    )


async def _prepend(first: dict[str, Any] | None, rest: AsyncIterator[dict[str, Any]]
                   ) -> AsyncIterator[dict[str, Any]]:
    if first is None:
        return
    yield first
    async for item in rest:
        yield item


async def _relay(state: GatewayState, call: Call, spec: ModelSpec, bstream: BackendStream,
                 events: AsyncIterator[dict[str, Any]], include_usage: bool, t_backend: float,
                 pre_backend_ms: float) -> AsyncIterator[bytes]:
    cid = _ID_PREFIX[call.kind] + call.id
    created = int(call.ts)
    try:
        async for chunk in events:
            chunk.pop("usage", None)
            if not chunk.get("choices"):
                continue  # a usage-only chunk from the upstream: we send our own below
            chunk["id"] = cid
            chunk["model"] = spec.id
            if call.ttft_s is None:
                call.ttft_s = time.perf_counter() - call.t0
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        call.backend_s = time.perf_counter() - t_backend
        call.usage = bstream.stats.usage
        call.cost = state.pricers[spec.id].cost(call.usage.input_tokens,
                                                call.usage.output_tokens,
                                                bstream.stats.compute_s, call.usage.estimated)
        if include_usage:
            final = {"id": cid, "object": _CHUNK_OBJECT[call.kind], "created": created,
                     "model": spec.id, "choices": [], "usage": _usage_json(call.usage),
                     "rankgate": {"cost_usd": call.cost.usd, "cost_basis": call.cost.basis,
                                  "usage_estimated": call.usage.estimated,
                                  "request_id": call.id}}
            yield b"data: " + orjson.dumps(final) + b"\n\n"
        _remember(state, call)
        yield b"data: [DONE]\n\n"
    except BackendError as e:
        call.fail(e.status, e.type, e.code, f"mid-stream: {e.message}")
        yield b"data: " + orjson.dumps(error_body(e.message, e.type, e.param, e.code)) + b"\n\n"
    except Exception as e:  # a bug of ours: end the stream with an error event, log it
        log.exception("stream %s failed", call.id)
        call.fail(500, "server_error", "internal_error", f"mid-stream: {type(e).__name__}: {e}")
        yield b"data: " + orjson.dumps(error_body(
            f"Internal error in rankgate (request {call.id}).", "server_error", None,
            "internal_error")) + b"\n\n"
    except BaseException:  # cancelled: the client went away
        call.fail(499, "client_closed", "client_closed", "the client closed the stream")
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await bstream.aclose()
        call.backend_s = call.backend_s or time.perf_counter() - t_backend
        call.overhead_ms = pre_backend_ms
        if call.usage is None:
            call.usage = bstream.stats.usage
        state.request_log.submit(call.row())
