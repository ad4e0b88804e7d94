"""Everything a running gateway holds, built once by the app factory and passed explicitly."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rankgate.backends import Backend
from rankgate.config import Settings
from rankgate.gateway.auto_route import RoutingTable
from rankgate.panel import Panel
from rankgate.pricing import Pricer
from rankgate.runtime import PanelRuntime
from rankgate.store.request_log import RequestLog

if TYPE_CHECKING:  # the production pieces import gateway modules that import this one
    from rankgate.gateway.auth import Auth
    from rankgate.gateway.bandit_sync import BanditSync
    from rankgate.gateway.cache import ResponseCache
    from rankgate.gateway.drift_watch import DriftWatch
    from rankgate.gateway.exchange_log import ExchangeLog
    from rankgate.gateway.limits import Limiter
    from rankgate.gateway.metrics import Metrics
    from rankgate.gateway.resilience import Resilience
    from rankgate.gateway.shadow import Shadow
    from rankgate.gateway.tracing import GatewayTracer


@dataclass
class GatewayState:
    settings: Settings
    panel: Panel
    runtime: PanelRuntime  # backends, pricers, HTTP pool, thread budget
    request_log: RequestLog
    limiter: Limiter  # MemoryLimiter, or RedisLimiter shared by several gateways
    resilience: Resilience
    metrics: Metrics
    exchanges: ExchangeLog  # logged bodies (redacted), written off the request path
    routing: RoutingTable = field(default_factory=RoutingTable)
    auth: Auth | None = None  # None: an open gateway (no admin key; loopback only)
    cache: ResponseCache | None = None
    bandit_sync: BanditSync | None = None  # with Redis: bandit feedback shared by instances
    shadow: Shadow | None = None  # shadow evaluation (``serve --shadow-rate``)
    drift: DriftWatch | None = None  # drift gauges on /metrics (``drift_interval_s``)
    tracer: GatewayTracer | None = None  # OpenTelemetry (``otel_endpoint``); None: off
    started: float = field(default_factory=time.time)
    # request id -> what feedback needs, for requests too recent to be in the database yet
    recent: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    recent_max: int = 10_000

    @property
    def backends(self) -> dict[str, Backend]:
        return self.runtime.backends

    @property
    def pricers(self) -> dict[str, Pricer]:
        return self.runtime.pricers

    def remember(self, request_id: str, info: dict[str, Any]) -> None:
        self.recent[request_id] = info
        if len(self.recent) > self.recent_max:
            self.recent.popitem(last=False)
