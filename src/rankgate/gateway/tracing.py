"""OpenTelemetry traces of the request path, exported over OTLP/HTTP (the ``[otel]`` extra).

One server span per completion request (``POST /v1/chat/completions``), with child spans for
authentication, the routing decision, the cache lookups, each upstream attempt, and a
fallback span that holds the attempts made on a model other than the one asked for::

    POST /v1/chat/completions        rankgate.request_id, http.*, rankgate.model/router/cache
    ├── rankgate.auth                rankgate.key.id
    ├── rankgate.route               chosen model, router, predicted quality, candidates
    ├── rankgate.cache.lookup        rankgate.cache.hit (and .semantic_lookup when on)
    ├── chat <model>                 attempt 1: gen_ai.*, rankgate.attempt, outcome, error.type
    └── rankgate.fallback            from → to, why
        └── chat <other model>       attempt 2

Off unless ``Settings.otel_endpoint`` (``RANKGATE_OTEL_ENDPOINT``) is set, and free of cost
when off by construction: no OpenTelemetry module is imported, no middleware is added, nothing
is wrapped, and the request path holds no hook but two ``state.tracer is not None`` tests, on
``model: "auto"`` requests only (the routing span). When on, ``instrument`` wraps
the gateway's own objects (its ``Auth``, ``ResponseCache``, ``SemanticCache`` and
``Resilience``, per instance, never a class or a module) and adds one ASGI middleware for the
request span; the wrappers find the request's trace in a context variable and pass through
untouched outside a traced request (admin API, shadow calls).

The standard ``OTEL_*`` variables of the SDK apply: ``OTEL_SERVICE_NAME`` (default
``rankgate``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER[_ARG]``,
``OTEL_EXPORTER_OTLP_HEADERS`` / ``_TIMEOUT`` / ``_COMPRESSION``, ``OTEL_BSP_*`` (batching),
``OTEL_PROPAGATORS`` (an incoming ``traceparent`` makes the request span a child of the
caller's), and ``OTEL_SDK_DISABLED=true`` turns tracing off whatever the endpoint says.
Spans are exported by the SDK's batch processor on its own thread: the request path only
records them. The tracer provider is this gateway's own (the global one is never set), so
two gateways in one process trace independently.
"""

from __future__ import annotations

import contextvars
import functools
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from rankgate.backends.base import BackendError, Result
from rankgate.extras import require

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from rankgate.gateway.state import GatewayState
    from rankgate.panel import ModelSpec
    from rankgate.routing.base import Decision

T = TypeVar("T")

TRACED_PATHS: dict[str, str] = {"/v1/chat/completions": "chat",
                                "/v1/completions": "text_completion"}
_CURRENT: contextvars.ContextVar[RequestTrace | None] = contextvars.ContextVar(
    "rankgate_request_trace", default=None)
# response headers copied onto the request span (the answer's own explanation)
_HEADER_ATTRS: dict[bytes, str] = {
    b"x-request-id": "rankgate.request_id", b"x-rankgate-model": "rankgate.model",
    b"x-rankgate-router": "rankgate.router", b"x-rankgate-cache": "rankgate.cache",
    b"x-rankgate-fallback": "rankgate.fallback", b"x-rankgate-attempts": "rankgate.attempts",
    b"x-rankgate-cost-usd": "rankgate.cost_usd",
}


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for ``endpoint``: a collector's base URL gets ``/v1/traces``
    (as ``OTEL_EXPORTER_OTLP_ENDPOINT`` does); a URL that already names it is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class RequestTrace:
    """The spans of one request: its server span and the state the child spans need (the
    attempt count and the open fallback span)."""

    __slots__ = ("attempts", "context", "fallback", "fallback_context", "last_error",
                 "last_model", "operation", "span", "tracer")

    def __init__(self, tracer: Tracer, span: Span, operation: str) -> None:
        from opentelemetry import trace

        self.tracer = tracer
        self.span = span
        self.operation = operation  # gen_ai.operation.name: chat / text_completion
        self.context: Context = trace.set_span_in_context(span)
        self.attempts = 0
        self.last_model: str | None = None
        self.last_error: str | None = None
        self.fallback: Span | None = None
        self.fallback_context: Context | None = None

    def child(self, name: str, attributes: dict[str, Any] | None = None,
              start_time: int | None = None, client: bool = False,
              context: Context | None = None) -> Span:
        from opentelemetry.trace import SpanKind

        return self.tracer.start_span(
            name, context=context or self.context, attributes=attributes,
            start_time=start_time, kind=SpanKind.CLIENT if client else SpanKind.INTERNAL)

    def attempt_parent(self, model: str) -> Context:
        """Where the next attempt on ``model`` hangs: the request span, or — once the chain
        moved to another model — a fallback span that says from which model and why."""
        if self.last_model is not None and model != self.last_model:
            if self.fallback is not None:
                self.fallback.end()
            from opentelemetry import trace

            self.fallback = self.child("rankgate.fallback", {
                "rankgate.fallback.from": self.last_model, "rankgate.fallback.to": model,
                "rankgate.fallback.reason": self.last_error or "unknown"})
            self.fallback_context = trace.set_span_in_context(self.fallback)
        self.last_model = model
        return self.fallback_context or self.context

    def responded(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """The response started: its status and the explanation headers onto the span."""
        from opentelemetry.trace import Status, StatusCode

        span = self.span
        span.set_attribute("http.response.status_code", status)
        for name, value in headers:
            attr = _HEADER_ATTRS.get(name.lower())
            if attr is not None:
                text = value.decode("latin-1")
                if attr == "rankgate.cost_usd":
                    try:
                        span.set_attribute(attr, float(text))
                    except ValueError:
                        span.set_attribute("rankgate.cost_note", text)
                elif attr == "rankgate.attempts":
                    span.set_attribute(attr, int(text))
                else:
                    span.set_attribute(attr, text)
                if attr == "rankgate.model" and status < 400:
                    span.set_attribute("gen_ai.response.model", text)
        if status >= 500:  # server semantics: a 4xx is the client's, not an error here
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        if self.fallback is not None:
            self.fallback.end()
        self.span.end()


class GatewayTracer:
    """This gateway's tracer provider and the spans it records for the request path."""

    def __init__(self, provider: TracerProvider, endpoint: str) -> None:
        from rankgate import __version__

        self.provider = provider
        self.endpoint = endpoint
        self.tracer = provider.get_tracer("rankgate.gateway", __version__)

    # -- the request span ---------------------------------------------------------------------
    def begin(self, scope: dict[str, Any]) -> RequestTrace:
        """Start the server span of one request (a child of the caller's trace when the
        request carries a ``traceparent``)."""
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = propagate.extract(headers) if "traceparent" in headers else None
        path = scope["path"]
        attrs: dict[str, Any] = {
            "http.request.method": scope["method"], "http.route": path, "url.path": path,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
            "gen_ai.operation.name": TRACED_PATHS[path],
        }
        if scope.get("client"):
            attrs["client.address"] = scope["client"][0]
        if scope.get("server"):
            attrs["server.address"], attrs["server.port"] = scope["server"][0], \
                scope["server"][1]
        if "user-agent" in headers:
            attrs["user_agent.original"] = headers["user-agent"]
        span = self.tracer.start_span(f"{scope['method']} {path}", context=parent,
                                      kind=SpanKind.SERVER, attributes=attrs)
        return RequestTrace(self.tracer, span, TRACED_PATHS[path])

    # -- the routing decision (called from completions: the one hook in the request path) ----
    def routed(self, request_id: str, decision: Decision, start_ns: int) -> None:
        """A span for the routing decision just made (from ``start_ns`` to now), carrying
        what the response headers explain: the choice, the router, every candidate."""
        rt = _CURRENT.get()
        if rt is None:
            return
        ranked = sorted(decision.predicted_quality, key=lambda m: -decision.predicted_quality[m])
        attrs: dict[str, Any] = {
            "rankgate.request_id": request_id,
            "rankgate.router": decision.router,
            "rankgate.route.model": decision.model,
            "rankgate.route.predicted_quality": decision.predicted_quality[decision.model],
            "rankgate.route.candidates": ranked,
            "rankgate.route.candidate_quality": [decision.predicted_quality[m] for m in ranked],
        }
        cost = decision.estimated_cost.get(decision.model)
        if cost is not None:
            attrs["rankgate.route.estimated_cost_usd"] = cost
        guarantee = getattr(decision, "guarantee", None)
        if guarantee is not None:
            attrs["rankgate.route.guarantee"] = guarantee
        rt.span.set_attribute("rankgate.request_id", request_id)
        rt.child("rankgate.route", attrs, start_time=start_ns).end()

    # -- the wrappers ---------------------------------------------------------------------------
    def traced_auth(self, authenticate: Callable[..., Awaitable[Any]]
                    ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(authenticate)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            rt = _CURRENT.get()
            if rt is None:
                return await authenticate(*args, **kwargs)
            span = rt.child("rankgate.auth")
            try:
                key = await authenticate(*args, **kwargs)
            except BaseException as e:
                _failed(span, getattr(e, "code", None) or type(e).__name__)
                raise
            else:
                if key is not None:
                    span.set_attribute("rankgate.key.id", key.id)
                return key
            finally:
                span.end()
        return wrapper

    def traced_cache(self, name: str, lookup: Callable[..., Awaitable[Any]]
                     ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(lookup)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            rt = _CURRENT.get()
            if rt is None:
                return await lookup(*args, **kwargs)
            span = rt.child(name)
            try:
                hit = await lookup(*args, **kwargs)
            except BaseException as e:
                _failed(span, type(e).__name__)
                raise
            else:
                span.set_attribute("rankgate.cache.hit", hit is not None)
                similarity = getattr(hit, "similarity", None)
                if similarity is not None:
                    span.set_attribute("rankgate.cache.similarity", float(similarity))
                return hit
            finally:
                span.end()
        return wrapper

    def traced_attempt(self, timed: Callable[[ModelSpec, Awaitable[T]], Awaitable[T]]
                       ) -> Callable[[ModelSpec, Awaitable[T]], Awaitable[T]]:
        """Wraps ``Resilience._timed``: exactly one call per upstream attempt (retries and
        fallbacks included; a model skipped by its open breaker makes no call)."""

        @functools.wraps(timed)
        async def wrapper(spec: ModelSpec, work: Awaitable[T]) -> T:
            rt = _CURRENT.get()
            if rt is None:
                return await timed(spec, work)
            parent = rt.attempt_parent(spec.id)
            rt.attempts += 1
            span = rt.child(f"{rt.operation} {spec.id}", {
                "gen_ai.operation.name": rt.operation, "gen_ai.request.model": spec.id,
                "gen_ai.provider.name": spec.backend, "rankgate.attempt": rt.attempts,
                "rankgate.upstream_model": spec.upstream_model or spec.id,
            }, client=True, context=parent)
            try:
                value = await timed(spec, work)
            except BackendError as e:
                rt.last_error = e.code
                span.set_attribute("rankgate.attempt.status", e.status)
                span.set_attribute("rankgate.attempt.outcome", "error")
                _failed(span, e.code, e.message)
                raise
            except BaseException as e:
                span.set_attribute("rankgate.attempt.outcome", "cancelled")
                _failed(span, type(e).__name__)
                raise
            else:
                span.set_attribute("rankgate.attempt.outcome", "ok")
                if isinstance(value, Result):
                    u = value.usage
                    if u.input_tokens is not None:
                        span.set_attribute("gen_ai.usage.input_tokens", u.input_tokens)
                    if u.output_tokens is not None:
                        span.set_attribute("gen_ai.usage.output_tokens", u.output_tokens)
                    model = value.body.get("model")
                    if isinstance(model, str):
                        span.set_attribute("gen_ai.response.model", model)
                return value
            finally:
                span.end()
        return wrapper

    def shutdown(self) -> None:
        """Export what is still queued (bounded by the SDK's export timeout), then stop."""
        self.provider.shutdown()


def _failed(span: Span, error_type: str, message: str | None = None) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, message))


class TraceRequests:
    """ASGI middleware (added only when tracing is on): the server span of each completion
    request, current for everything the handler awaits, ended once the last byte (of a
    stream too) has been sent."""

    def __init__(self, app: Any, tracer: GatewayTracer) -> None:
        self.app, self.tracer = app, tracer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in TRACED_PATHS:
            await self.app(scope, receive, send)
            return
        from opentelemetry import context as otel_context

        rt = self.tracer.begin(scope)

        async def send_traced(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                rt.responded(message["status"], message.get("headers") or ())
            await send(message)

        token = _CURRENT.set(rt)
        otel_token = otel_context.attach(rt.context)  # for other instrumentations' spans
        try:
            await self.app(scope, receive, send_traced)
        except BaseException as e:
            _failed(rt.span, type(e).__name__)
            raise
        finally:
            otel_context.detach(otel_token)
            _CURRENT.reset(token)
            rt.end()


def build_tracer(endpoint: str | None) -> GatewayTracer | None:
    """This gateway's tracer, exporting to ``endpoint`` in batches; None when tracing is off
    (no endpoint, or ``OTEL_SDK_DISABLED=true``). Raises ``MissingExtra`` (naming
    ``rankgate[otel]``) when on without the OpenTelemetry SDK installed."""
    if not endpoint or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    require("opentelemetry.sdk")
    require("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from rankgate import __version__

    attrs: dict[str, Any] = {"service.version": __version__}
    named = "OTEL_SERVICE_NAME" in os.environ or \
        "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not named:
        attrs["service.name"] = "rankgate"
    provider = TracerProvider(resource=Resource.create(attrs))
    url = traces_url(endpoint)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return GatewayTracer(provider, url)


def instrument(state: GatewayState, tracer: GatewayTracer) -> None:
    """Wrap this gateway's auth, caches and upstream attempts (per instance) so that they
    record child spans of the current request's trace."""
    if state.auth is not None:
        state.auth.authenticate = tracer.traced_auth(  # type: ignore[method-assign]
            state.auth.authenticate)
    if state.cache is not None:
        state.cache.get = tracer.traced_cache(  # type: ignore[method-assign]
            "rankgate.cache.lookup", state.cache.get)
        if state.cache.semantic is not None:
            state.cache.semantic.lookup = tracer.traced_cache(  # type: ignore[method-assign]
                "rankgate.cache.semantic_lookup", state.cache.semantic.lookup)
    state.resilience._timed = tracer.traced_attempt(  # type: ignore[method-assign]
        state.resilience._timed)


def now_ns() -> int:
    """Wall clock in ns, the time base of span start times."""
    return time.time_ns()
