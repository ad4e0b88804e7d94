"""What each virtual key has used, read from the request log: ``rankgate keys list`` shows it.

The request log is the durable record every gateway writes (the limiter's counters live in
memory or Redis and are gone after a restart), so usage read here is the same whichever
gateway served the key. Blocking calls on an ``Engine``: from async code run them in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, case, func, select

from rankgate.store.tables import request_log


@dataclass(frozen=True)
class KeyUsage:
    """One key's logged requests: all of them, the answered ones (HTTP 200), dollars spent
    (requests of unknown cost add nothing), the last request's time, and — when a period start
    was asked for — the same dollars and requests since then (its budget period)."""

    requests: int
    answered: int
    spent_usd: float
    last_ts: float | None
    period_requests: int | None = None
    period_spent_usd: float | None = None


def key_usage(engine: Engine, period_start: Mapping[str, float] | None = None
              ) -> dict[str, KeyUsage]:
    """Usage per key id that has logged requests (a key without any is absent).

    ``period_start`` maps key ids to the unix time their budget period began; those keys also
    get the requests and spend since then."""
    cols = request_log.c
    with engine.connect() as conn:
        totals = conn.execute(
            select(cols.key_id, func.count(), func.sum(case((cols.status == 200, 1), else_=0)),
                   func.coalesce(func.sum(cols.cost_usd), 0.0), func.max(cols.ts))
            .where(cols.key_id.is_not(None)).group_by(cols.key_id)).all()
        out = {k: KeyUsage(int(n), int(ok or 0), float(usd), ts)
               for k, n, ok, usd, ts in totals}
        for key_id, since in (period_start or {}).items():
            if key_id not in out:
                continue
            n, usd = conn.execute(
                select(func.count(), func.coalesce(func.sum(cols.cost_usd), 0.0))
                .where(cols.key_id == key_id, cols.ts >= since)).one()
            u = out[key_id]
            out[key_id] = KeyUsage(u.requests, u.answered, u.spent_usd, u.last_ts, int(n),
                                   float(usd))
    return out
