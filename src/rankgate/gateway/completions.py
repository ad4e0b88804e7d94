"""One completion request, end to end: parse, validate, call the backend, answer, log.

Both ``/v1/chat/completions`` and ``/v1/completions`` go through ``handle``. Every exit path —
success, bad input, backend failure, a stream that dies midway, a client that hangs up —
produces exactly one request-log row, and every error leaves as OpenAI-shaped JSON (or, once a
stream has started, as an SSE error event) with an honest status.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rankgate.backends.base import BackendError, BackendStream, Kind, Usage
from rankgate.gateway.auth import KeyInfo
from rankgate.gateway.auto_route import is_auto, parse_knob, route, savings_knob_among
from rankgate.gateway.cache import cache_key as cache_key_of
from rankgate.gateway.cache import cacheable
from rankgate.gateway.errors import APIError, error_body, error_response, json_object, read_body
from rankgate.gateway.state import GatewayState
from rankgate.gateway.validation import validate_body
from rankgate.messages import Needs, needs, prompt_text
from rankgate.panel import ModelSpec
from rankgate.pricing import Cost
from rankgate.routing.base import Decision, Knob, choose, choose_guaranteed
from rankgate.variants.base import RecipeError

log = logging.getLogger("rankgate.gateway")

_ENDPOINTS: dict[Kind, str] = {"chat": "/v1/chat/completions", "text": "/v1/completions"}
_ID_PREFIX: dict[Kind, str] = {"chat": "chatcmpl-", "text": "cmpl-"}
_CHUNK_OBJECT: dict[Kind, str] = {"chat": "chat.completion.chunk", "text": "text_completion"}
# fields the gateway owns; the backend sets its own values for them
_NOT_FORWARDED = ("model", "stream", "stream_options", "rankgate")
PROMPT_LOG_CHARS = 8000
MODEL_SHOWN_CHARS = 200  # a client's model name is echoed (messages, log row) at most this long
DEFAULT_RESERVE_TOKENS = 1024  # output tokens reserved for a request without max_tokens


@dataclass
class RequestRecord:
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
    key: KeyInfo | None = None
    ticket: Any = None  # what the limiter reserved; settled exactly once in finish_request
    cache: str | None = None  # "exact" / "semantic" when the answer came from the cache
    fallback_from: str | None = None  # the model asked for, when another one answered
    attempts: int = 0  # backend calls made (retries and fallbacks included)
    finished: bool = False  # its row is logged (streams finish inside the relay)
    needs: Needs = field(default_factory=Needs)  # capabilities the answering model needs
    body: dict[str, Any] = field(default_factory=dict)  # the validated request body
    resolved: bool = False  # ``model`` is a panel id (not just what the client sent)
    endpoint: str | None = None  # logged endpoint when not a completion (/v1/embeddings)

    def fail(self, status: int, type_: str, code: str | None, message: str) -> None:
        self.status, self.error_type, self.error_code, self.error = status, type_, code, message

    def row(self) -> dict[str, Any]:
        u = self.usage or Usage()
        return {
            "id": self.id, "ts": self.ts, "endpoint": self.endpoint or _ENDPOINTS[self.kind],
            "key_id": self.key.id if self.key else None,
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
            "cache": self.cache, "fallback_from": self.fallback_from, "attempts": self.attempts,
            "decision": self._decision_json() if self.decision is not None else None,
        }

    def _decision_json(self) -> str:
        """The routing decision as made, for the log (the dashboard's explanation)."""
        d = self.decision
        assert d is not None
        knob = self.body.get("rankgate") if isinstance(self.body.get("rankgate"), dict) else {}
        return orjson.dumps({
            "router": d.router, "chosen": d.model, "knob": knob,
            "predicted_quality": d.predicted_quality, "estimated_cost": d.estimated_cost,
            "quality_bound": d.quality_bound, "guarantee": d.guarantee,
        }, option=orjson.OPT_SERIALIZE_NUMPY).decode()


async def _parse(state: GatewayState, request: Request, call: RequestRecord
                 ) -> tuple[dict[str, Any], ModelSpec]:
    body = json_object(await read_body(request, state.settings.max_body_bytes))
    if isinstance(body.get("model"), str):
        call.model = _clip(body["model"])  # for the log row; echoed in headers once resolved
    call.stream = body.get("stream") is True
    call.body = body
    validate_body(call.kind, body)
    if call.kind == "text" and isinstance(body["prompt"], list) and len(body["prompt"]) != 1:
        raise APIError(400, "Send one prompt per request (a string or a one-element list).",
                       param="prompt", code="invalid_value")
    call.prompt = prompt_text(body)
    if call.kind == "chat":
        call.needs = needs(body)
    if state.auth is not None:
        state.auth.authorize(call.key, _clip(body["model"]))
    if is_auto(body["model"]):
        t_route = time.time_ns() if state.tracer is not None else 0
        knob_body = body
        if call.key is not None and call.key.routing and body.get("rankgate") is None:
            knob_body = {**body, "rankgate": dict(call.key.routing)}  # the key's default knob
        call.decision = await route(state.routing, body["model"], knob_body,
                                    state.bandit_sync)
        call.decision = _among_able(state, call, body, call.decision, parse_knob(knob_body))
        call.model = call.decision.model
        if state.tracer is not None:  # off, these two tests are all tracing costs a request
            state.tracer.routed(call.id, call.decision, t_route)
    spec = state.panel.get(call.decision.model if call.decision else body["model"])
    if spec is None:
        why = state.panel.why_unknown(body["model"]) if "+" in body["model"] else ""
        raise APIError(
            404,
            f"The model '{_clip(body['model'], 100)}' does not exist in this panel"
            f"{f' ({_clip(why, 300)})' if why else ''}. "
            f"Valid ids: {', '.join(state.panel.ids)}.",
            param="model", code="model_not_found",
        )
    if (err := _variant_unavailable(state, spec)) is not None:
        raise err
    call.resolved = True
    if (err := _unable(state, call, body, spec)) is not None:
        raise err
    return body, spec


def _variant_unavailable(state: GatewayState, spec: ModelSpec) -> APIError | None:
    """A variant (``base+recipe``) is built on first use; a recipe that cannot apply here
    (no stored examples, a quantisation not installed) is a 400 naming it."""
    if spec.base is None or spec.id in state.backends:
        return None
    try:
        state.runtime.add(spec)
    except RecipeError as e:
        return APIError(400, str(e), param="model", code="recipe_unavailable")
    return None


def _clip(name: str, limit: int = MODEL_SHOWN_CHARS) -> str:
    return name if len(name) <= limit else name[:limit] + "…"


def _max_tokens(body: dict[str, Any]) -> tuple[str, int] | None:
    for name in ("max_completion_tokens", "max_tokens"):
        if isinstance(body.get(name), int):
            return name, body[name]
    return None


def _unable(state: GatewayState, call: RequestRecord, body: dict[str, Any], spec: ModelSpec
            ) -> APIError | None:
    """Why ``spec`` cannot take this request (a 400 naming the model and what it lacks), or
    None: a capability it does not have, streaming, or more output than its context."""
    backend = state.backends[spec.id]
    caps = backend.capabilities
    for need in call.needs.missing(caps):
        what = {"images": "image input", "audio": "audio input", "files": "file input",
                "tools": "tool calls"}[need]
        return APIError(400, f"The model '{spec.id}' cannot take {what} (capability "
                        f"'{need}'). Send it to a model that can, or use model 'auto' to "
                        f"route among those that can.", param=call.needs.where[need],
                        code="capability_not_supported")
    if call.stream and not caps.streaming:
        return APIError(400, f"The model '{spec.id}' cannot stream; send stream: false.",
                        param="stream", code="capability_not_supported")
    limit = backend.context_window
    asked = _max_tokens(body)
    if limit is not None and asked is not None and asked[1] > limit:
        return APIError(400, f"{asked[0]} is too large: {asked[1]}. The model '{spec.id}' "
                        f"has a context window of {limit} tokens (prompt and completion "
                        f"together), so at most {limit} completion tokens.", param=asked[0],
                        code="invalid_value")
    return None


def _among_able(state: GatewayState, call: RequestRecord, body: dict[str, Any], d: Decision,
                knob: Knob) -> Decision:
    """The routing decision among only the models that can take this request and that the
    key may use (the knob applied again to those candidates); 403/400 when none is left."""
    key = call.key
    limited = key is not None and key.models is not None and not key.admin
    allowed = [m for m in d.predicted_quality if not limited or m in (key.models or ())]
    if not allowed:
        assert key is not None
        raise APIError(403, f"The key {key.label} may use none of the models this router "
                       f"chooses from ({', '.join(d.predicted_quality)}).", param="model",
                       type="permission_error", code="model_not_allowed")
    reasons = {}
    able = []
    for m in allowed:
        spec = state.panel.get(m)
        err = (_variant_unavailable(state, spec) or _unable(state, call, body, spec)
               if spec is not None else None)
        if err is None and spec is not None:
            # weights known to be missing (a stat, no I/O to the model): routing there would
            # only burn retries before falling back; /healthz says why it is not ready
            st = state.backends[spec.id].status()
            if st.ready is False:
                err = APIError(503, f"The model '{m}' is not ready: {st.note or 'not ready'}",
                               param="model", type="server_error", code="model_not_ready")
        if err is None:
            able.append(m)
        else:
            reasons[m] = err
    if not able:
        first = next(iter(reasons.values()))
        why = "; ".join(e.message.split(". ")[0] for e in reasons.values())
        if all(e.code == "model_not_ready" for e in reasons.values()):  # the server's fault
            raise APIError(503, f"None of the models this router chooses from is ready: {why}.",
                           param="model", type="server_error", code="model_not_ready")
        raise APIError(400, f"None of the models this router chooses from can take this "
                       f"request: {why}.", param=first.param, code=first.code)
    if knob.savings is not None and len(able) < len(d.predicted_quality):
        # fewer candidates: the target implies another λ, whichever model was chosen
        knob = savings_knob_among(state.routing, body["model"], knob, able)
        return restrict(d, able, knob, again=True)
    return restrict(d, able, knob)


def restrict(d: Decision, allowed: list[str], knob: Knob, *, again: bool = False
             ) -> Decision:
    """The same routing decision among ``allowed`` only (the knob applied again to them when
    the chosen model is not allowed, or always with ``again``). A ``savings`` knob must come
    as the λ it implies among ``allowed`` (``auto_route.savings_knob_among``): applied as is
    it would mean "best quality"."""
    if d.model in allowed and not again:
        return d
    if knob.savings is not None:
        raise ValueError("restrict() needs the savings target resolved to its λ among the "
                         "allowed models (auto_route.savings_knob_among)")
    pred = np.array([[d.predicted_quality[m] for m in allowed]])
    costs = np.array([np.nan if d.estimated_cost.get(m) is None else d.estimated_cost[m]
                      for m in allowed], dtype=float)
    if d.quality_bound is not None and knob.min_quality is not None:  # a guarantee: re-judged
        lower = np.array([[d.quality_bound[m] for m in allowed]])
        j, met = choose_guaranteed(lower, pred, costs, knob.min_quality)
        status = d.guarantee if bool(met[0]) else (
            f"unmet {knob.min_quality:g}@{knob.confidence:g}: no model able to take this "
            "request has a lower bound reaching the target; best able model used")
        return Decision(allowed[int(j[0])], d.router, d.predicted_quality, d.estimated_cost,
                        d.quality_bound, status)
    return Decision(allowed[int(choose(pred, costs, knob)[0])], d.router, d.predicted_quality,
                    d.estimated_cost)


def _chain(state: GatewayState, call: RequestRecord, spec: ModelSpec) -> list[ModelSpec]:
    """The model to call, then what may answer instead if it fails: for ``auto``, the router's
    other candidates by predicted quality; otherwise the panel's ``fallbacks``. A key limited
    to some models never falls back outside them."""
    if call.decision is not None:
        q = call.decision.predicted_quality
        ids = [spec.id, *sorted((m for m in q if m != spec.id), key=lambda m: -q[m])]
    else:
        ids = [spec.id, *spec.fallbacks]
    allowed = call.key.models if call.key is not None and not call.key.admin else None
    chain = []
    for i, m in enumerate(ids):
        other = state.panel.get(m)
        if other is not None and (i == 0 or (
                (allowed is None or m in allowed)
                and _unable(state, call, call.body, other) is None)):
            chain.append(other)
    return chain


def _estimate(payload: dict[str, Any], prompt: str) -> tuple[int, int]:
    """(prompt tokens, output tokens) a request may use, before it runs: ~4 characters per
    token plus per-message overhead, and its max_tokens (or a default) — for reservations."""
    n_msgs = len(payload.get("messages") or ()) or 1
    max_out = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if not isinstance(max_out, int) or isinstance(max_out, bool) or max_out <= 0:
        max_out = DEFAULT_RESERVE_TOKENS
    return len(prompt) // 4 + 4 * n_msgs, max_out


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


def _header_safe(value: str) -> str:
    """A client-supplied string fit for a header (control or non-ASCII characters would make
    the HTTP server drop the connection instead of answering): percent-encoded if needed."""
    if value.isascii() and value.isprintable():
        return value
    from urllib.parse import quote

    return quote(value, safe="")


def _headers(call: RequestRecord, cost: str, overhead_ms: float) -> dict[str, str]:
    h = {"x-request-id": call.id, "x-rankgate-cost-usd": cost,
         "x-rankgate-overhead-ms": f"{overhead_ms:.3f}"}
    if call.model and call.resolved:  # never echo an unknown name (it may be huge)
        h["x-rankgate-model"] = _header_safe(call.model)
    d = call.decision
    h["x-rankgate-router"] = d.router if d else "none"
    if d is not None:
        h["x-rankgate-predicted-quality"] = f"{d.predicted_quality[d.model]:.4f}"
        h["x-rankgate-candidates"] = d.candidates_header()
        if d.quality_bound is not None:  # a guarantee was asked: the bound it was judged on
            h["x-rankgate-quality-bound"] = f"{d.quality_bound[d.model]:.4f}"
            h["x-rankgate-guarantee"] = d.guarantee or "unknown"
    if call.cost is not None and call.cost.usd is None:
        h["x-rankgate-cost-note"] = call.cost.basis
    if call.fallback_from is not None:
        h["x-rankgate-fallback"] = f"{call.fallback_from}->{call.model}"
    if call.attempts > 1:
        h["x-rankgate-attempts"] = str(call.attempts)
    return h


def refuse_when_overloaded(state: GatewayState) -> None:
    """A 503 with Retry-After while the request log is full: a request that could not be
    logged is refused before any work, never answered unlogged."""
    if state.request_log.full:
        state.metrics.count_backpressure()
        raise APIError(503, "The gateway is overloaded (its request log is behind); retry "
                       "shortly.", type="server_error", code="overloaded",
                       headers={"retry-after": "1"})


async def handle(state: GatewayState, request: Request, kind: Kind) -> Response:
    call = RequestRecord(kind, uuid.uuid4().hex, time.perf_counter(), time.time())
    try:
        refuse_when_overloaded(state)
        if state.auth is not None:
            call.key = await state.auth.authenticate(request.headers.get("authorization"),
                                                     request.headers.get("x-api-key"))
        body, spec = await _parse(state, request, call)
        payload = _forwarded(body)
        if call.stream:
            return await _start_stream(state, call, spec, payload, body)
        await _admit(state, call, spec, payload)
        cache_key = None
        if state.cache is not None and cacheable(payload):
            cache_key = cache_key_of(call.key.id if call.key else None, spec.id, kind, payload)
            hit = await _cache_lookup(state, call, spec, cache_key, payload)
            if hit is not None:
                return hit
        t = time.perf_counter()
        result, used, attempts = await state.resilience.complete(
            _chain(state, call, spec), kind, payload)
        call.backend_s = time.perf_counter() - t
        _note_attempts(call, spec, used, attempts)
        call.usage = result.usage
        call.cost = state.pricers[used.id].cost(result.usage.input_tokens,
                                                result.usage.output_tokens, result.compute_s)
        out = result.body
        out["id"] = _ID_PREFIX[kind] + call.id
        out["model"] = used.id
        usage = _usage_json(result.usage)
        if usage is not None:
            out["usage"] = usage
        call.status = 200
        call.overhead_ms = (time.perf_counter() - call.t0 - call.backend_s) * 1000.0
        _remember(state, call)
        state.exchanges.record(call, out)  # bodies/shadow: a put_nowait, written later
        if cache_key is not None and used.id == spec.id and _finished(out):
            await state.cache.put(cache_key, out)
            if state.cache.semantic is not None and _plain_text(payload):
                await state.cache.semantic.store(cache_key_scope(call, spec, kind, payload),
                                                 call.prompt, out)
        return Response(orjson.dumps(out), media_type="application/json",
                        headers=_headers(call, call.cost.header(), call.overhead_ms))
    except APIError as e:
        call.fail(e.status, e.type, e.code, e.message)
        return error_response(e, _headers(call, "0", _elapsed_ms(call)))
    except BackendError as e:
        call.fail(e.status, e.type, e.code, e.message)
        headers = _headers(call, "unknown", _elapsed_ms(call))
        retry_after = getattr(e, "retry_after_s", None)
        if retry_after:
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        return error_response(APIError(e.status, e.message, type=e.type, param=e.param,
                                       code=e.code), headers)
    except Exception as e:  # a bug of ours: still an honest 500, still logged
        log.exception("request %s failed", call.id, extra={"request_id": call.id})
        call.fail(500, "server_error", "internal_error", f"{type(e).__name__}: {e}")
        return error_response(APIError(500, f"Internal error in rankgate (request {call.id}).",
                                       type="server_error", code="internal_error"),
                              _headers(call, "unknown", _elapsed_ms(call)))
    finally:
        if not call.stream or call.status != 200:
            await finish_request(state, call)


def _plain_text(payload: dict[str, Any]) -> bool:
    """The semantic cache compares prompt *text*: requests with images, tool calls or tool
    results carry content the text does not show, so they only ever use the exact cache."""
    if "prompt" in payload:
        return bool(payload["prompt"])
    msgs = payload.get("messages") or []
    return bool(msgs) and all(
        m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
        and not m.get("tool_calls") for m in msgs)


def _finished(body: dict[str, Any]) -> bool:
    """Only complete answers are cached (not ones cut by max_tokens or an error)."""
    choices = body.get("choices") or []
    return bool(choices) and all(c.get("finish_reason") == "stop" for c in choices)


def cache_key_scope(call: RequestRecord, spec: ModelSpec, kind: Kind,
                    payload: dict[str, Any]) -> str:
    """Semantic-cache scope: everything but the prompt must match for a hit."""
    rest = {k: v for k, v in payload.items() if k not in ("messages", "prompt")}
    return cache_key_of(call.key.id if call.key else None, spec.id, kind, rest)


async def _cache_lookup(state: GatewayState, call: RequestRecord, spec: ModelSpec,
                        key: str, payload: dict[str, Any]) -> Response | None:
    body = await state.cache.get(key)
    similarity = None
    if body is None and state.cache.semantic is not None and _plain_text(payload):
        scope = cache_key_scope(call, spec, call.kind, payload)
        hit = await state.cache.semantic.lookup(scope, call.prompt)
        if hit is not None:
            body, similarity = hit.body, hit.similarity
            call.cache = "semantic"
    elif body is not None:
        call.cache = "exact"
    if body is None:
        return None
    body["id"] = _ID_PREFIX[call.kind] + call.id
    body["created"] = int(call.ts)
    call.status = 200
    call.model = spec.id
    call.cost = Cost(0.0, f"cache: {call.cache}")
    u = body.get("usage") or {}
    call.usage = Usage(u.get("prompt_tokens"), u.get("completion_tokens"))
    call.overhead_ms = _elapsed_ms(call)
    _remember(state, call)
    headers = _headers(call, "0.0", call.overhead_ms)
    headers["x-rankgate-cache"] = call.cache or "exact"
    if similarity is not None:
        headers["x-rankgate-cache-similarity"] = f"{similarity:.4f}"
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


async def _admit(state: GatewayState, call: RequestRecord, spec: ModelSpec,
                 payload: dict[str, Any]) -> None:
    """Reserve the request's estimated tokens and cost against its key's limits (429 if over)."""
    if call.key is None or call.key.admin:
        return
    n_in, n_out = _estimate(payload, call.prompt or "")
    est_cost = state.pricers[spec.id].estimate(n_in, n_out)
    # a variant that calls its base k times (self-consistency) may spend k requests' worth
    k = getattr(state.backends.get(spec.id), "calls_per_request", 1)
    if k > 1:
        n_in, n_out = n_in * k, n_out * k
        est_cost = None if est_cost is None else est_cost * k
    call.ticket = await state.limiter.admit(call.key, n_in + n_out, est_cost)


def _note_attempts(call: RequestRecord, asked: ModelSpec, used: ModelSpec,
                   attempts: list[Any]) -> None:
    call.attempts = len(attempts)
    call.model = used.id
    if used.id != asked.id:
        call.fallback_from = asked.id


async def finish_request(state: GatewayState, call: RequestRecord) -> None:
    """Exactly once per request: log the row, settle the reservation, count the metrics.
    Never raises: the response is already decided."""
    call.finished = True
    row = call.row()
    state.request_log.submit(row)
    try:
        u = call.usage or Usage()
        if call.ticket is not None:
            tokens = None if u.input_tokens is None else u.input_tokens + (u.output_tokens or 0)
            ticket, call.ticket = call.ticket, None
            await state.limiter.settle(ticket, tokens, call.cost.usd if call.cost else None)
        state.metrics.observe(
            model=call.model, endpoint=row["endpoint"], status=call.status,
            error_type=call.error_type, stream=call.stream,
            latency_s=row["latency_ms"] / 1000.0, ttft_s=call.ttft_s,
            input_tokens=u.input_tokens, output_tokens=u.output_tokens,
            cost_usd=call.cost.usd if call.cost else None, cache=call.cache,
            fallback=call.fallback_from is not None,
            router=call.decision.router if call.decision else None,
            key_id=call.key.id if call.key else None)
    except Exception:
        log.exception("bookkeeping of request %s failed", call.id,
                      extra={"request_id": call.id})
    if call.status >= 500:
        log.warning("request failed", extra={"request_id": call.id, "status": call.status,
                                             "model": call.model, "error": call.error})
    # durable mode: the response leaves only once its row is fsynced (after the bookkeeping,
    # so a cancelled wait never skips it); otherwise returns at once
    await state.request_log.synced()


def _remember(state: GatewayState, call: RequestRecord) -> None:
    """Keep what feedback on this request will need (the log row may not be written yet)."""
    state.remember(call.id, {"model": call.model, "prompt": call.prompt or "",
                             "router": call.decision.router if call.decision else None,
                             "cost_usd": call.cost.usd if call.cost else None,
                             "latency_s": time.perf_counter() - call.t0})


def _elapsed_ms(call: RequestRecord) -> float:
    return (time.perf_counter() - call.t0 - call.backend_s) * 1000.0


async def _start_stream(state: GatewayState, call: RequestRecord, spec: ModelSpec,
                        payload: dict[str, Any], body: dict[str, Any]) -> Response:
    """Open the backend stream and wait for its first event before sending headers, so an
    upstream that fails before producing anything still gets an honest HTTP error status (and
    a retry or a fallback: nothing has been sent yet)."""
    await _admit(state, call, spec, payload)
    t = time.perf_counter()
    bstream, first, events, used, attempts = await state.resilience.stream(
        _chain(state, call, spec), call.kind, payload)
    _note_attempts(call, spec, used, attempts)
    pre_backend_ms = (t - call.t0) * 1000.0
    call.status = 200
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    headers = _headers(call, "pending", pre_backend_ms)
    headers["cache-control"] = "no-cache"
    return StreamingResponse(
        _relay(state, call, used, bstream,
               state.exchanges.collect(call, _prepend(first, events)), include_usage, t,
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


async def _relay(state: GatewayState, call: RequestRecord, spec: ModelSpec, bstream: BackendStream,
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
        state.exchanges.record(call, events)  # bodies/shadow: a put_nowait, written later
        # logged (journaled) before the client sees [DONE]: an acknowledged stream is never lost
        await _finish_stream(state, call, bstream, t_backend, pre_backend_ms)
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
            await _finish_stream(state, call, bstream, t_backend, pre_backend_ms)


async def _finish_stream(state: GatewayState, call: RequestRecord, bstream: BackendStream,
                         t_backend: float, pre_backend_ms: float) -> None:
    if call.finished:
        return
    call.finished = True
    call.backend_s = call.backend_s or time.perf_counter() - t_backend
    call.overhead_ms = pre_backend_ms
    if call.usage is None:
        call.usage = bstream.stats.usage
    await finish_request(state, call)
