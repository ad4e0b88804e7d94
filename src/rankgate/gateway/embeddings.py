"""``POST /v1/embeddings``: passed through to a panel model whose backend serves embeddings.

Why a pass-through and no routing: vectors of two models live in different spaces, so an
application must get every vector of one index from the same model; ``model`` must therefore
name a panel model (``auto`` is a 400). The gateway adds what it adds everywhere — keys and
their model lists, OpenAI-shaped errors with ``param``, the request id and cost headers — and
otherwise forwards the body as the client sent it.

Which backends serve embeddings is their ``Capabilities.embeddings`` flag: ``openai`` (any
OpenAI-compatible server; a panel entry turns it off with ``capabilities: {embeddings:
false}``). The embedded llama.cpp models do not: they are loaded for generation, and an
embedding needs the weights loaded a second time in embedding mode (twice the memory) to give
a mean-pooled chat-model state that is a poor retrieval vector; they answer 400
``capability_not_supported``.

Every embeddings request is booked like a completion (``completions.finish_request``): one
request-log row (endpoint ``/v1/embeddings``, input tokens, cost; the input text is not
logged), its key's rate limits and budget (the estimate — ~4 characters or one id per token —
reserved before the call, settled with the upstream's usage after), and the metrics.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from rankgate.backends.base import BackendError
from rankgate.gateway.completions import RequestRecord, finish_request, refuse_when_overloaded
from rankgate.gateway.errors import APIError, error_response, json_object, read_body
from rankgate.gateway.state import GatewayState

log = logging.getLogger("rankgate.gateway")

MAX_INPUTS = 2048  # OpenAI's own limit on the items of one request
_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}


class EmbeddingsRequest(BaseModel):
    """The body of ``POST /v1/embeddings``, for the OpenAPI description (and the fuzzer that
    reads it); requests are checked by ``validate_embeddings_body``, which answers OpenAI's
    400s rather than pydantic's 422s."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="a panel model whose backend serves "
                       "embeddings (not auto)")
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="a text, texts, token ids, or lists of token ids; never empty")
    encoding_format: str | None = Field(default=None, pattern="^(float|base64)$")
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


def validate_embeddings_body(body: dict[str, Any]) -> None:
    """A 400 naming the parameter for any body OpenAI's endpoint would refuse."""
    model = body.get("model")
    if model is None:
        raise APIError(400, "you must provide a model parameter", param="model",
                       code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise APIError(400, "'model' must be a non-empty string.", param="model",
                       code="invalid_type")
    if "input" not in body:
        raise APIError(400, "you must provide an input parameter", param="input",
                       code="missing_required_parameter")
    _check_input(body["input"])
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise APIError(400, f"'encoding_format' must be 'float' or 'base64', not {fmt!r:.40}.",
                       param="encoding_format", code="invalid_value")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise APIError(400, "'dimensions' must be a positive integer.", param="dimensions",
                       code="invalid_value")
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise APIError(400, "'user' must be a string.", param="user", code="invalid_type")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise APIError(400, f"Unrecognized request argument supplied: {unknown[0]:.60}",
                       param=unknown[0][:60], code="unknown_parameter")


def _check_input(value: Any) -> None:
    """A string, a list of strings, a list of token ids, or a list of token-id lists; never
    empty (OpenAI refuses empty strings and lists too)."""
    bad = APIError(400, "'input' must be a non-empty string, a list of non-empty strings, a "
                   "list of token ids, or a list of token-id lists.", param="input",
                   code="invalid_value")
    if isinstance(value, str):
        if not value:
            raise bad
        return
    if not isinstance(value, list) or not value:
        raise bad
    if len(value) > MAX_INPUTS:
        raise APIError(400, f"'input' has {len(value)} items; at most {MAX_INPUTS} per "
                       "request.", param="input", code="invalid_value")
    if all(isinstance(v, str) and v for v in value):
        return
    if all(_token_ids(v) for v in value) or _token_ids(value):
        return
    raise bad


def _token_ids(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value))


def _input_tokens(value: Any) -> int:
    """Tokens an input may use, before the call: ~4 characters per token, one per id."""
    if isinstance(value, str):
        return len(value) // 4 + 1
    return sum(_input_tokens(v) if isinstance(v, (str, list)) else 1 for v in value)


async def handle_embeddings(state: GatewayState, request: Request) -> Response:
    """One embeddings request: key, validation, the model's capability, limits, the upstream
    call; logged and settled exactly once whatever happens."""
    call = RequestRecord("text", uuid.uuid4().hex, time.perf_counter(), time.time(),
                         endpoint="/v1/embeddings")
    t0 = call.t0
    headers = {"x-request-id": call.id, "x-rankgate-router": "none",
               "x-rankgate-cost-usd": "0"}
    try:
        refuse_when_overloaded(state)
        key = None
        if state.auth is not None:
            key = await state.auth.authenticate(request.headers.get("authorization"),
                                                request.headers.get("x-api-key"))
            call.key = key
        body = json_object(await read_body(request, state.settings.max_body_bytes))
        if isinstance(body.get("model"), str):
            call.model = body["model"][:200]
        validate_embeddings_body(body)
        name = body["model"]
        if state.auth is not None:
            state.auth.authorize(key, name[:200])
        if name == "auto" or name.startswith("auto:"):
            raise APIError(400, "Embeddings are not routed: vectors of different models are "
                           "not comparable. Name a panel model whose backend serves "
                           "embeddings.", param="model", code="invalid_value")
        spec = state.panel.get(name)
        if spec is None:
            raise APIError(404, f"The model '{name[:100]}' does not exist in this panel. "
                           f"Valid ids: {', '.join(state.panel.ids)}.", param="model",
                           code="model_not_found")
        backend = state.backends[spec.id]
        if not backend.capabilities.embeddings:
            able = [m.id for m in state.panel if state.backends[m.id].capabilities.embeddings]
            raise APIError(400, f"Model {spec.id} does not serve embeddings"
                           + (f"; models that do: {', '.join(able)}." if able else
                              "; no model of this panel does."),
                           param="model", code="capability_not_supported")
        headers["x-rankgate-model"] = call.model = spec.id
        if call.key is not None and not call.key.admin:
            n_in = _input_tokens(body["input"])
            call.ticket = await state.limiter.admit(call.key, n_in,
                                                    state.pricers[spec.id].estimate(n_in, 0))
        t = time.perf_counter()
        call.attempts = 1
        result = await backend.embed({k: v for k, v in body.items() if k != "model"})
        call.backend_s = backend_s = time.perf_counter() - t
        out = result.body
        out["model"] = spec.id
        call.usage = result.usage
        call.cost = cost = state.pricers[spec.id].cost(result.usage.input_tokens, 0,
                                                       result.compute_s)
        call.status = 200
        call.overhead_ms = (time.perf_counter() - t0 - backend_s) * 1e3
        headers["x-rankgate-cost-usd"] = cost.header()
        headers["x-rankgate-overhead-ms"] = f"{call.overhead_ms:.3f}"
        return Response(orjson.dumps(out), media_type="application/json", headers=headers)
    except APIError as e:
        call.fail(e.status, e.type, e.code, e.message)
        return error_response(e, headers)
    except BackendError as e:
        call.fail(e.status, e.type, e.code, e.message)
        return error_response(APIError(e.status, e.message, type=e.type, param=e.param,
                                       code=e.code), headers)
    except Exception as e:  # a bug of ours: still an honest 500, still logged
        log.exception("embeddings request %s failed", call.id, extra={"request_id": call.id})
        call.fail(500, "server_error", "internal_error", f"{type(e).__name__}: {e}")
        return error_response(APIError(500, f"Internal error in rankgate (request {call.id}).",
                                       type="server_error", code="internal_error"), headers)
    finally:
        await finish_request(state, call)
