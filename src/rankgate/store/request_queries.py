"""Reads of the request log: one request by id, and what a key has spent since a time.

The log is written in batches by ``store/request_log.py``; this module only reads it, so the
gateway's handlers (feedback, limits) and the dashboard never write SQL of their own. Blocking
calls on an ``Engine``: from async code run them in a thread or an executor.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import Engine, func, select

from rankgate.store.tables import request_log


@dataclass(frozen=True)
class LoggedRequest:
    """One request-log row (see ``tables.request_log`` for what each column means)."""

    id: str
    ts: float
    endpoint: str
    key_id: str | None
    model: str | None
    stream: bool
    status: int
    error_type: str | None
    error_code: str | None
    error: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    cost_basis: str | None
    latency_ms: float | None
    ttft_ms: float | None
    overhead_ms: float | None
    router: str | None
    prompt: str | None
    cache: str | None
    fallback_from: str | None
    attempts: int | None

    @property
    def answered(self) -> bool:
        """A model answered it (HTTP 200): the requests that feedback may be given on."""
        return self.status == 200 and self.model is not None


_COLUMNS = [request_log.c[f.name] for f in fields(LoggedRequest)]


def find_request(engine: Engine, request_id: str) -> LoggedRequest | None:
    """The logged request with this id, or None (unknown, or not written yet: the log is
    written in the background, so a request answered a moment ago may not be there)."""
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(request_log.c.id == request_id)
                           ).mappings().first()
    return LoggedRequest(**row) if row is not None else None


def spend_since(engine: Engine, key_id: str, since: float) -> float:
    """Dollars a key's logged requests cost from ``since`` (unix seconds) on; 0.0 for none.
    Rows whose cost is unknown (NULL) add nothing."""
    with engine.connect() as conn:
        total = conn.execute(select(func.coalesce(func.sum(request_log.c.cost_usd), 0.0))
                             .where(request_log.c.key_id == key_id,
                                    request_log.c.ts >= since)).scalar_one()
    return float(total)
