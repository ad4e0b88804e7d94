"""Everything a running gateway holds, built once by the app factory and passed explicitly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from rankgate.backends import Backend, ThreadBudget
from rankgate.config import Settings
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
    client: httpx.AsyncClient
    budget: ThreadBudget
    started: float = field(default_factory=time.time)
