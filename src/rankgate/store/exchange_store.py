"""Logged exchanges: what was asked and what each model answered, for the loop without gold.

With ``serve --log-bodies`` every answered chat request leaves one ``live`` exchange (the
messages and the answer, redacted and size-capped), and shadow evaluation adds one ``shadow``
exchange per other model asked the same thing. Judging the answers of one request against each
other, and turning them into outcomes or a workload, reads them back through here. What a caller
may rely on: an exchange reads back equal to what was written; ``read_exchanges`` returns them in
time order (live before its shadows); missing values are ``None``, never 0.

Blocking calls on an ``Engine`` from ``tables.make_engine``: from async code run them in a
thread or an executor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, RowMapping, insert, select

from rankgate.store.tables import exchanges

Role = Literal["live", "shadow"]


@dataclass(frozen=True)
class Exchange:
    request_id: str
    ts: float
    role: Role
    model: str
    messages: list[dict[str, Any]]
    prompt: str
    answer: str | None = None
    key_id: str | None = None
    router: str | None = None
    truncated: bool = False
    cost_usd: float | None = None
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None


_FIELDS = tuple(f.name for f in fields(Exchange))


def _row(x: Exchange) -> dict[str, Any]:
    row = {name: getattr(x, name) for name in _FIELDS}
    row["messages"] = orjson.dumps(x.messages).decode()
    return row


def _exchange(row: RowMapping) -> Exchange:
    values = {name: row[name] for name in _FIELDS}
    values["messages"] = orjson.loads(row["messages"])
    values["truncated"] = bool(row["truncated"])
    return Exchange(**values)


def add_exchanges(engine: Engine, items: Iterable[Exchange]) -> int:
    """Store exchanges in one transaction (all or none); returns how many."""
    rows = [_row(x) for x in items]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(exchanges), rows)
    return len(rows)


def read_exchanges(engine: Engine, *, since: float | None = None, until: float | None = None,
                   key_id: str | None = None, models: Sequence[str] | None = None,
                   roles: Sequence[Role] | None = None) -> list[Exchange]:
    """Exchanges with ``since <= ts < until``, of one key, of some models or roles (an empty
    sequence matches nothing), in time order, live before shadow within a request."""
    q = select(exchanges)
    if since is not None:
        q = q.where(exchanges.c.ts >= since)
    if until is not None:
        q = q.where(exchanges.c.ts < until)
    if key_id is not None:
        q = q.where(exchanges.c.key_id == key_id)
    if models is not None:
        q = q.where(exchanges.c.model.in_(list(models)))
    if roles is not None:
        q = q.where(exchanges.c.role.in_(list(roles)))
    q = q.order_by(exchanges.c.ts, exchanges.c.request_id, exchanges.c.role, exchanges.c.id)
    with engine.connect() as conn:
        return [_exchange(r) for r in conn.execute(q).mappings()]


def by_request(items: Iterable[Exchange]) -> dict[str, list[Exchange]]:
    """Exchanges grouped by request id (insertion order kept): the answers one judge compares."""
    out: dict[str, list[Exchange]] = {}
    for x in items:
        out.setdefault(x.request_id, []).append(x)
    return out
