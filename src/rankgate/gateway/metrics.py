"""Prometheus metrics for one gateway: what ``/metrics`` serves.

Each ``Metrics`` owns its own ``CollectorRegistry`` (never the global one), so two gateways in
one process (tests build several) count separately. ``observe`` runs once per request on the
hot path: the label-bound children a request touches are looked up once per distinct label
combination and kept in a dict, so a repeat observation is one dict lookup plus a handful of
``inc``/``observe`` calls (measured: a few µs per call, see ``bench/README.md``).

Label cardinality is bounded, because a label value a client controls (the ``model`` of a
request for a model that does not exist, say) would otherwise create a new series per value:
each label admits at most ``max_label_values`` distinct values and maps the rest to
``"other"``. No request ids or key secrets are ever labels; the virtual-key id is a label
only with ``key_label=True`` (and then on the request and spend counters only).

Series (all prefixed ``rankgate_``):

===================================  ====================================================
``requests_total``                   model, endpoint, status, stream (+ key_id)
``errors_total``                     model, type (the OpenAI error ``type``)
``request_latency_seconds``          histogram, model, stream; arrival → last byte
``ttft_seconds``                     histogram, model; arrival → first content chunk
``input_tokens_total``               model
``output_tokens_total``              model
``spend_usd_total``                  model (+ key_id); requests whose cost is known only
``unknown_cost_requests_total``      model; successful requests whose cost is unknown —
                                     they are *not* counted as $0 in ``spend_usd_total``
``cache_hits_total``                 kind (exact / semantic)
``cache_misses_total``               requests answered without a cache hit
``fallbacks_total``                  model (the model that finally answered)
``routing_choices_total``            router, model
``breaker_state``                    model, state (1 for the current state, else 0)
``request_log_queue_depth``          gauge
``request_log_queue_capacity``       gauge
``request_log_dropped``              gauge (the request log's own cumulative count)
``backpressure_total``               requests refused because the log queue was full
``shadow_requests_total``            outcome: shadow calls done, error, preempted,
                                     dropped_queue_full, dropped_cap, skipped_incapable,
                                     cancelled (``gateway/shadow.py``)
``shadow_spend_usd_total``           model; shadow spend, never billed to a key
``exchange_log_queue_depth``         gauge: logged bodies waiting to be written
``exchange_log_written``             gauge: exchanges written since start
``exchange_log_dropped``             gauge: exchanges dropped (queue full) since start
===================================  ====================================================
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rankgate.rank.drift import DriftReport

# 1 ms … 120 s: gateway-only answers (cache hits, errors) land in the low buckets, model
# calls in the high ones.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 120.0)
BREAKER_STATES = ("closed", "open", "half_open")
OTHER = "other"  # the label value every value past the cardinality bound becomes
NONE = "none"  # the label value for "not given" (no model parsed, no key)
_CHILD_CACHE_MAX = 4096  # distinct raw label combinations kept bound; cleared past that


class _Bounded:
    """Admits the first ``limit`` distinct values of one label; later ones become ``other``."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return NONE
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(value)
        return value


@dataclass(slots=True)
class _Bound:
    """The children one label combination touches, bound once."""

    requests: Any
    latency: Any
    ttft: Any
    input_tokens: Any
    output_tokens: Any
    spend: Any
    unknown_cost: Any | None  # None: the request failed, so an unknown cost is not counted
    error: Any | None
    cache: Any | None
    fallback: Any
    route: Any | None


class Metrics:
    """One gateway's Prometheus series. Not thread-safe beyond what prometheus_client gives
    (the gateway calls it from its event loop only)."""

    def __init__(self, *, key_label: bool = False, max_label_values: int = 200,
                 cache_enabled: bool = True) -> None:
        """``key_label``: label request and spend counters with the virtual-key id.
        ``cache_enabled``: count cache hits/misses (a gateway without a cache counts
        neither, rather than reporting every request as a miss)."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.key_label = key_label
        self.cache_enabled = cache_enabled
        self._model = _Bounded(max_label_values)
        self._endpoint = _Bounded(max_label_values)
        self._error_type = _Bounded(max_label_values)
        self._router = _Bounded(max_label_values)
        self._key = _Bounded(max_label_values)
        self._breaker_models = _Bounded(max_label_values)
        self._bound: dict[tuple[Any, ...], _Bound] = {}
        r = self.registry
        p = "rankgate_"
        key = ["key_id"] if key_label else []
        self.requests = Counter(p + "requests", "Requests answered, by final status.",
                                ["model", "endpoint", "status", "stream", *key], registry=r)
        self.errors = Counter(p + "errors", "Requests that ended in an error, by error type.",
                              ["model", "type"], registry=r)
        self.latency = Histogram(p + "request_latency_seconds",
                                 "Arrival to last byte, as the gateway saw it.",
                                 ["model", "stream"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram(p + "ttft_seconds", "Arrival to the first streamed chunk.",
                              ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.input_tokens = Counter(p + "input_tokens", "Prompt tokens.", ["model"],
                                    registry=r)
        self.output_tokens = Counter(p + "output_tokens", "Completion tokens.", ["model"],
                                     registry=r)
        self.spend = Counter(p + "spend_usd", "Spend in US dollars, requests with a known "
                             "cost only (see unknown_cost_requests).", ["model", *key],
                             registry=r)
        self.unknown_cost = Counter(p + "unknown_cost_requests",
                                    "Successful requests whose cost is unknown (not $0).",
                                    ["model"], registry=r)
        self.cache_hits = Counter(p + "cache_hits", "Requests answered from the cache.",
                                  ["kind"], registry=r)
        self.cache_misses = Counter(p + "cache_misses",
                                    "Requests answered without a cache hit.", registry=r)
        self.fallbacks = Counter(p + "fallbacks",
                                 "Requests answered by a fallback model.", ["model"],
                                 registry=r)
        self.routing = Counter(p + "routing_choices", "Models picked by each router.",
                               ["router", "model"], registry=r)
        self.breaker = Gauge(p + "breaker_state",
                             "Circuit breaker state per model: 1 for the current state.",
                             ["model", "state"], registry=r)
        self.queue_depth = Gauge(p + "request_log_queue_depth",
                                 "Rows waiting in the request-log queue.", registry=r)
        self.queue_capacity = Gauge(p + "request_log_queue_capacity",
                                    "Size of the request-log queue.", registry=r)
        self.queue_dropped = Gauge(p + "request_log_dropped",
                                   "Request-log rows dropped since start.", registry=r)
        self.backpressure = Counter(p + "backpressure",
                                    "Requests refused because the request-log queue was full.",
                                    registry=r)
        self._cache_miss_child = self.cache_misses  # label-less: the metric is the child
        self.shadow = Counter(p + "shadow_requests", "Shadow calls by outcome (never billed "
                              "to a key, never in the request log).", ["outcome"], registry=r)
        self.shadow_spend = Counter(p + "shadow_spend_usd", "Spend of shadow calls in US "
                                    "dollars, known costs only.", ["model"], registry=r)
        self.exchange_depth = Gauge(p + "exchange_log_queue_depth",
                                    "Logged bodies waiting to be written.", registry=r)
        self.exchange_written = Gauge(p + "exchange_log_written",
                                      "Exchanges (logged bodies) written since start.",
                                      registry=r)
        self.drift = Gauge(p + "drift", "Latest drift check per model and metric (quality "
                           "(judge), quality (feedback), latency): stat=diff (latest window − "
                           "the one before), low/high (its 95% interval), p_holm, detected "
                           "(1 = drift), n_before, n_after.", ["model", "metric", "stat"],
                           registry=r)
        self.drift_checked = Gauge(p + "drift_checked_timestamp_seconds",
                                   "When drift was last checked (unix seconds).", registry=r)
        self.exchange_dropped = Gauge(p + "exchange_log_dropped",
                                      "Exchanges dropped because their queue was full.",
                                      registry=r)

    def observe(self, *, model: str | None, endpoint: str, status: int, error_type: str | None,
                stream: bool, latency_s: float, ttft_s: float | None,
                input_tokens: int | None, output_tokens: int | None, cost_usd: float | None,
                cache: str | None, fallback: bool, router: str | None,
                key_id: str | None) -> None:
        """Count one finished request. ``cache`` is ``"exact"`` / ``"semantic"`` for a hit
        and None otherwise (a miss, if the cache is enabled). ``cost_usd`` None on a
        successful request counts it as unknown-cost, never as $0."""
        k = (model, endpoint, status, error_type, stream, cache, router,
             key_id if self.key_label else None)
        b = self._bound.get(k)
        if b is None:
            b = self._bind(k)
        b.requests.inc()
        b.latency.observe(latency_s)
        if ttft_s is not None:
            b.ttft.observe(ttft_s)
        if input_tokens:
            b.input_tokens.inc(input_tokens)
        if output_tokens:
            b.output_tokens.inc(output_tokens)
        if cost_usd is not None:
            b.spend.inc(cost_usd)
        elif b.unknown_cost is not None:
            b.unknown_cost.inc()
        if b.error is not None:
            b.error.inc()
        if b.cache is not None:
            b.cache.inc()
        if fallback:
            b.fallback.inc()
        if b.route is not None:
            b.route.inc()

    def _bind(self, k: tuple[Any, ...]) -> _Bound:
        model_raw, endpoint, status, error_type, stream, cache, router, key_id = k
        model = self._model(model_raw)
        s = "true" if stream else "false"
        key = (self._key(key_id),) if self.key_label else ()
        hit = cache in ("exact", "semantic")
        b = _Bound(
            requests=self.requests.labels(model, self._endpoint(endpoint), str(status), s,
                                          *key),
            latency=self.latency.labels(model, s),
            ttft=self.ttft.labels(model),
            input_tokens=self.input_tokens.labels(model),
            output_tokens=self.output_tokens.labels(model),
            spend=self.spend.labels(model, *key),
            unknown_cost=self.unknown_cost.labels(model) if status < 400 else None,
            error=(self.errors.labels(model, self._error_type(error_type))
                   if error_type is not None else None),
            cache=(None if not self.cache_enabled else
                   self.cache_hits.labels(cache) if hit else self._cache_miss_child),
            fallback=self.fallbacks.labels(model),
            route=self.routing.labels(self._router(router), model) if router else None,
        )
        if len(self._bound) >= _CHILD_CACHE_MAX:
            self._bound.clear()  # bounds memory; the series themselves stay registered
        self._bound[k] = b
        return b

    def set_breakers(self, states: dict[str, str]) -> None:
        """Publish each model's breaker state (closed / open / half_open; ``half-open`` is
        accepted too). Models not in ``states`` keep their last published state."""
        for model_raw, state_raw in states.items():
            state = state_raw.replace("-", "_")
            if state not in BREAKER_STATES:
                raise ValueError(f"unknown breaker state {state_raw!r} for {model_raw}; "
                                 f"expected one of {', '.join(BREAKER_STATES)}")
            model = self._breaker_models(model_raw)
            for s in BREAKER_STATES:
                self.breaker.labels(model, s).set(1.0 if s == state else 0.0)

    def set_queue(self, depth: int, dropped: int, capacity: int) -> None:
        """Publish the request-log queue's depth, cumulative drops and capacity."""
        self.queue_depth.set(depth)
        self.queue_dropped.set(dropped)
        self.queue_capacity.set(capacity)

    def count_backpressure(self) -> None:
        """Count one request refused because the request-log queue was full."""
        self.backpressure.inc()

    def count_shadow(self, outcome: str, n: int = 1) -> None:
        """Count ``n`` shadow calls that ended in ``outcome`` (a fixed set of words)."""
        self.shadow.labels(outcome).inc(n)

    def add_shadow_spend(self, model: str, usd: float) -> None:
        self.shadow_spend.labels(self._model(model)).inc(usd)

    def set_exchanges(self, depth: int, written: int, dropped: int) -> None:
        """Publish the exchange log's queue depth and cumulative writes and drops."""
        self.exchange_depth.set(depth)
        self.exchange_written.set(written)
        self.exchange_dropped.set(dropped)

    def set_drift(self, report: DriftReport) -> None:
        """Publish a drift report: every tested model × metric; series of models no longer
        tested are removed, so a scrape never shows a stale verdict as current."""
        self.drift.clear()
        for c in report.checks:
            model = self._model(c.model)
            for stat, v in (("diff", c.diff), ("low", c.low), ("high", c.high),
                            ("p_holm", c.p_holm), ("detected", float(c.drift)),
                            ("n_before", c.n_before), ("n_after", c.n_after)):
                self.drift.labels(model, c.metric, stat).set(v)
        self.drift_checked.set(time.time())

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every series, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
