"""Reads of the request log: one request by id, what a key has spent since a time, and the
dashboard's aggregates and keyset-paged search (computed by the database, on its indexes).

The log is written in batches by ``store/request_log.py``; this module only reads it, so the
gateway's handlers (feedback, limits) and the dashboard never write SQL of their own. Blocking
calls on an ``Engine``: from async code run them in a thread or an executor.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Engine, case, func, select

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
    decision: str | None = None  # JSON: the routing decision as made (``model="auto"``)

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


# -- dashboard reads (gateway/ui): aggregates computed by the database, pages by keyset ------

#: Status filters the dashboard offers, as (lowest, highest) HTTP status.
STATUS_CLASSES: dict[str, tuple[int, int]] = {"ok": (200, 299), "4xx": (400, 499),
                                              "5xx": (500, 599), "error": (400, 999)}


def spend_between(engine: Engine, since: float, until: float | None = None) -> float:
    """Dollars every logged request with ``since <= ts < until`` cost; unknown costs add
    nothing. The whole hours inside a bounded range are read from the ``spend_hourly``
    rollup (at most 744 rows for a month, ``store/spend_rollup.py``), only the partial hours
    at its ends from the log's ``(ts, cost_usd)`` index; an open range (``until`` None: the
    last minutes) reads the log."""
    from rankgate.store import spend_rollup

    hour = spend_rollup.HOUR_S
    first = -(-since // hour) * hour  # the first whole hour in the range
    end = until - until % hour if until is not None else None
    with engine.connect() as conn:
        if end is not None and end > first and spend_rollup.installed(engine):
            return (spend_rollup.hours_between(conn, first, end)
                    + _logged_spend(conn, since, first) + _logged_spend(conn, end, until))
        return _logged_spend(conn, since, until)


def _logged_spend(conn: Any, since: float, until: float | None) -> float:
    if until is not None and until <= since:
        return 0.0
    q = select(func.coalesce(func.sum(request_log.c.cost_usd), 0.0)).where(
        request_log.c.ts >= since)
    if until is not None:
        q = q.where(request_log.c.ts < until)
    return float(conn.execute(q).scalar_one())


def count_since(engine: Engine, since: float) -> int:
    """How many requests were logged from ``since`` on (the ``ts`` index; a short window)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(request_log)
                                 .where(request_log.c.ts >= since)).scalar_one())


@dataclass(frozen=True)
class RequestFilter:
    """What the request search keeps; None everywhere keeps everything."""

    since: float | None = None
    until: float | None = None
    key_id: str | None = None
    model: str | None = None
    status: str | None = None  # a key of ``STATUS_CLASSES`` or a number such as "429"
    min_cost_usd: float | None = None
    max_cost_usd: float | None = None


def search_requests(engine: Engine, flt: RequestFilter, *, limit: int = 50,
                    before: tuple[float, str] | None = None) -> list[LoggedRequest]:
    """Newest first, at most ``limit`` rows older than the ``before`` cursor ``(ts, id)`` of
    the previous page's last row. Keyset paging (never OFFSET), so page 1,000 costs what
    page 1 costs; the ``ts``, ``(key_id, ts)``, ``(model, ts)`` and ``(status, ts)`` indexes
    serve the filters."""
    c = request_log.c
    q = select(*_COLUMNS)
    if flt.since is not None:
        q = q.where(c.ts >= flt.since)
    if flt.until is not None:
        q = q.where(c.ts < flt.until)
    if flt.key_id:
        q = q.where(c.key_id == flt.key_id)
    if flt.model:
        q = q.where(c.model == flt.model)
    if flt.status:
        if flt.status in STATUS_CLASSES:
            low, high = STATUS_CLASSES[flt.status]
            q = q.where(c.status.between(low, high))
        else:
            q = q.where(c.status == int(flt.status))
    if flt.min_cost_usd is not None:
        q = q.where(c.cost_usd >= flt.min_cost_usd)
    if flt.max_cost_usd is not None:
        q = q.where(c.cost_usd <= flt.max_cost_usd)
    if before is not None:
        ts, rid = before
        # ``ts <= cursor`` first: the part an index range can serve in SQLite and PostgreSQL
        q = q.where(c.ts <= ts, (c.ts < ts) | (c.id < rid))
    q = q.order_by(c.ts.desc(), c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [LoggedRequest(**r) for r in conn.execute(q).mappings()]


def routed_mix(engine: Engine, since: float, bucket_s: float, key_id: str | None = None
               ) -> list[tuple[float, str, int]]:
    """``(bucket start, model, requests)`` of the requests a router chose the model for
    (``router`` set), from ``since`` on, in buckets of ``bucket_s`` seconds, oldest first."""
    c = request_log.c
    bucket = func.floor((c.ts - since) / bucket_s)
    q = (select(bucket.label("b"), c.model, func.count().label("n"))
         .where(c.router.is_not(None), c.ts >= since)
         .group_by(bucket, c.model).order_by(bucket, c.model))
    if key_id:
        q = q.where(c.key_id == key_id)
    with engine.connect() as conn:
        return [(since + float(b) * bucket_s, m, int(n)) for b, m, n in conn.execute(q)
                if m is not None]


@dataclass(frozen=True)
class CostMoments:
    """Count, sum and sum of squares of the known per-request costs of one group of answered
    requests, and how many answered requests the group has (known cost or not)."""

    requests: int
    priced: int
    total_usd: float
    total_sq: float

    @property
    def mean(self) -> float | None:
        return self.total_usd / self.priced if self.priced else None

    @property
    def std_error(self) -> float | None:
        """Standard error of ``mean`` (None under two priced requests)."""
        if self.priced < 2:
            return None
        mean = self.total_usd / self.priced
        var = max(0.0, (self.total_sq - self.priced * mean * mean) / (self.priced - 1))
        return (var / self.priced) ** 0.5


def cost_moments_by_model(engine: Engine, since: float, *, routed: bool | None = None,
                          key_id: str | None = None) -> dict[str, CostMoments]:
    """Per answering model, the cost moments of answered (200) requests from ``since`` on:
    all of them (``routed`` None), only those a router chose (True) or only those that named
    their model (False). What savings-versus-always-the-best estimates are made of."""
    c = request_log.c
    ok = c.status == 200
    cost = case((ok, c.cost_usd))
    # the status test is inside the aggregates and the group is an expression, so that the
    # planner reads the time range of the covering index rather than walking the (status, ts)
    # or (model, ts) index and the table behind it
    model = func.coalesce(c.model, "")
    q = (select(model, func.coalesce(func.sum(case((ok, 1), else_=0)), 0), func.count(cost),
                func.coalesce(func.sum(cost), 0.0), func.coalesce(func.sum(cost * cost), 0.0))
         .where(c.ts >= since, c.cache.is_(None))
         .group_by(model))
    if routed is True:
        q = q.where(c.router.is_not(None))
    elif routed is False:
        q = q.where(c.router.is_(None))
    if key_id:
        q = q.where(c.key_id == key_id)
    with engine.connect() as conn:
        return {m: CostMoments(int(n), int(p), float(s), float(sq))
                for m, n, p, s, sq in conn.execute(q) if m and n}


def exchanges_of(engine: Engine, request_id: str) -> list[dict[str, Any]]:
    """The logged bodies of one request (live first, then shadow answers), as plain dicts
    with the ``exchanges`` columns; empty when bodies were not logged."""
    from rankgate.store.tables import exchanges

    q = (select(exchanges).where(exchanges.c.request_id == request_id)
         .order_by(exchanges.c.role, exchanges.c.id))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


@dataclass(frozen=True)
class OutcomeRun:
    """One group of stored outcomes: a source (``eval:starter``, ``feedback``…) and a model."""

    source: str
    model: str
    n: int
    mean_score: float | None
    first_ts: float
    last_ts: float


def outcome_runs(engine: Engine, limit: int = 500) -> list[OutcomeRun]:
    """Stored outcomes grouped by source and model, the most recently written first."""
    from rankgate.store.tables import outcomes

    c = outcomes.c
    q = (select(c.source, c.model, func.count(), func.avg(c.score), func.min(c.ts),
                func.max(c.ts))
         .group_by(c.source, c.model).order_by(func.max(c.ts).desc()).limit(limit))
    with engine.connect() as conn:
        return [OutcomeRun(s, m, int(n), None if a is None else float(a), float(lo), float(hi))
                for s, m, n, a, lo, hi in conn.execute(q)]


@dataclass(frozen=True)
class RatedRequest:
    """A routed request that was later scored by feedback or a judge."""

    request_id: str
    prompt: str
    model: str
    router: str
    score: float
    source: str


def rated_routed_requests(engine: Engine, limit: int = 200) -> list[RatedRequest]:
    """The latest ``limit`` feedback/judge scores of requests a router chose the model for,
    newest first: what "predicted vs realised quality" compares."""
    from rankgate.store.tables import outcomes

    o, r = outcomes.c, request_log.c
    q = (select(o.prompt_id, r.prompt, o.model, r.router, o.score, o.source)
         .join_from(outcomes, request_log, o.prompt_id == r.id)
         .where(r.router.is_not(None), o.model == r.model,
                (o.source == "feedback") | (o.source == "judge") | o.source.like("judge:%"))
         .order_by(o.ts.desc()).limit(limit))
    with engine.connect() as conn:
        return [RatedRequest(rid, p or "", m, rt, float(s), src)
                for rid, p, m, rt, s, src in conn.execute(q)]
