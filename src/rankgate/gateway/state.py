"""Everything a running gateway holds, built once by the app factory and passed explicitly."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from rankgate.backends import Backend, ThreadBudget
from rankgate.backends.openai_http import UpstreamPool
from rankgate.config import Settings
from rankgate.gateway.routing import RoutingTable
from rankgate.panel import Panel
from rankgate.pricing import Pricer
from rankgate.store.request_log import RequestLog


@dataclass
class GatewayState:
    settings: Settings
    panel: Panel
    backends: dict[str, Backend]
    pricers: dict[str, Pricer]
    request_log: RequestLog
    client: UpstreamPool
    budget: ThreadBudget
    routing: RoutingTable = field(default_factory=RoutingTable)
    # production features (issue #5); each is built by the app factory from settings
    auth: Any = None  # gateway/auth.py Auth: admin key + virtual keys (None: open gateway)
    limiter: Any = None  # gateway/limits.py MemoryLimiter | RedisLimiter
    cache: Any = None  # gateway/cache.py ResponseCache
    resilience: Any = None  # gateway/resilience.py Resilience
    metrics: Any = None  # gateway/metrics.py Metrics
    bandit_sync: Any = None  # gateway/bandit_sync.py BanditSync (with Redis)
    started: float = field(default_factory=time.time)
    # request id -> what feedback needs, for requests too recent to be in the database yet
    recent: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    recent_max: int = 10_000

    def remember(self, request_id: str, info: dict[str, Any]) -> None:
        self.recent[request_id] = info
        if len(self.recent) > self.recent_max:
            self.recent.popitem(last=False)
