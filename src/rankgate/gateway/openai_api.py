"""The OpenAI-compatible routes: chat/completions, completions, models, plus /healthz."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from rankgate.gateway.completions import handle
from rankgate.gateway.embeddings import EmbeddingsRequest, handle_embeddings
from rankgate.gateway.errors import APIError, error_response
from rankgate.gateway.feedback import handle_feedback
from rankgate.gateway.schemas import ChatCompletionRequest, CompletionRequest
from rankgate.gateway.state import GatewayState


def _body_schema(model: type) -> dict[str, Any]:
    """OpenAPI request body for routes that parse their own body (to answer 400, not 422)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/chat/completions", openapi_extra=_body_schema(ChatCompletionRequest))
    async def chat_completions(request: Request) -> Response:
        return await handle(_state(request), request, "chat")

    @router.post("/v1/completions", openapi_extra=_body_schema(CompletionRequest))
    async def completions(request: Request) -> Response:
        return await handle(_state(request), request, "text")

    @router.post("/v1/embeddings", openapi_extra=_body_schema(EmbeddingsRequest))
    async def embeddings(request: Request) -> Response:
        """Passed through to a panel model whose backend serves embeddings."""
        return await handle_embeddings(_state(request), request)

    @router.post("/v1/feedback")
    async def feedback(request: Request) -> Response:
        """Record a user's score (0..1) or thumbs up/down for an answered request."""
        return await handle_feedback(_state(request), request)

    @router.get("/v1/models")
    async def list_models(request: Request) -> Any:
        state = _state(request)
        if state.auth is not None:
            try:
                await state.auth.authenticate(request.headers.get("authorization"))
            except APIError as e:
                return error_response(e)
        data = [
            {"id": m.id, "object": "model", "created": int(state.started),
             "owned_by": "rankgate", "backend": m.backend,
             "price_basis": state.pricers[m.id].basis, "tags": list(m.tags)}
            for m in state.panel
        ]
        for i, name in enumerate(state.routing.routers):
            ids = [f"auto:{name}"] + (["auto"] if i == 0 else [])
            data.extend({"id": rid, "object": "model", "created": int(state.started),
                         "owned_by": "rankgate", "backend": "router", "router": name}
                        for rid in ids)
        return {"object": "list", "data": data}

    @router.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        state = _state(request)
        models = {}
        for m in state.panel:
            st = state.backends[m.id].status()
            info: dict[str, Any] = {"backend": m.backend}
            if st.ready is not None:  # a remote server is not probed here
                info["ready"] = st.ready
                info["loaded"] = st.loaded
            models[m.id] = info
        out: dict[str, Any] = {"status": "ok", "models": models,
                               "request_log": state.request_log.stats(),
                               "breakers": state.resilience.breaker_states(),
                               "auth": state.auth is not None,
                               "redis": state.settings.redis_url is not None}
        if state.cache is not None:
            out["cache"] = dict(vars(state.cache.stats))
        out["exchanges"] = state.exchanges.stats()
        if state.shadow is not None:
            out["shadow"] = state.shadow.stats()
        return out

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text format (unauthenticated, like most exporters: bind it privately)."""
        state = _state(request)
        stats = state.request_log.stats()
        state.metrics.set_queue(stats["queued"], stats["dropped"], stats["capacity"])
        state.metrics.set_breakers(state.resilience.breaker_states())
        ex = state.exchanges.stats()
        state.metrics.set_exchanges(ex["queued"], ex["written"], ex["dropped"])
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    return router


def _state(request: Request) -> GatewayState:
    return request.app.state.rankgate
