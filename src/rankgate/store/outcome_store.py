"""Outcomes in the database: the one place that writes and reads the ``outcomes`` table.

The gateway's feedback (and, next, shadow and judge answers) lands here so that ranking and
routing can read production outcomes as the same :class:`~rankgate.outcomes.Outcome` records
they read from JSONL. What a caller may rely on: an outcome written by ``add_outcome`` reads
back equal — unknown values stay ``None`` (never 0), ``source`` is kept as given, and
``extra`` survives (its ``router`` and ``comment`` keys in their own columns, the rest as JSON).
The time an outcome was stored is a column (``ts``) that ``since`` filters on, not a field of
the record.

Blocking calls on an ``Engine`` from ``tables.make_engine``: from async code run them in a
thread or an executor.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

import orjson
from sqlalchemy import Engine, RowMapping, insert, or_, select

from rankgate.outcomes import Outcome
from rankgate.store.tables import outcomes, request_log

#: ``Outcome`` fields stored in a column of the same name.
_FIELDS = tuple(f.name for f in fields(Outcome) if f.name != "extra")
#: ``Outcome.extra`` keys with a column of their own (the feedback endpoint's fields).
_EXTRA_COLUMNS = ("router", "comment")


def _row(o: Outcome, ts: float) -> dict[str, Any]:
    if o.score is None:
        raise ValueError(f"outcome {o.prompt_id}/{o.model}: the store holds scored outcomes "
                         "only (score is None)")
    if not o.source:
        raise ValueError(f"outcome {o.prompt_id}/{o.model}: 'source' is required in the store "
                         "(eval, import, live, shadow, judge or feedback)")
    extra = dict(o.extra)
    row: dict[str, Any] = {name: getattr(o, name) for name in _FIELDS}
    for key in _EXTRA_COLUMNS:
        row[key] = extra.pop(key) if isinstance(extra.get(key), str) else None
    row["extra"] = orjson.dumps(extra).decode() if extra else None
    row["ts"] = ts
    return row


def _outcome(row: RowMapping) -> Outcome:
    extra: dict[str, Any] = orjson.loads(row["extra"]) if row["extra"] else {}
    for key in _EXTRA_COLUMNS:
        if row[key] is not None:
            extra[key] = row[key]
    return Outcome(**{name: row[name] for name in _FIELDS}, extra=extra)


def add_outcomes(engine: Engine, items: Iterable[Outcome], *, ts: float | None = None) -> int:
    """Store outcomes in one transaction (all or none); returns how many. ``ts`` (default:
    now) is when they count as stored, for ``read_outcomes(since=...)``.

    ``ValueError`` for an outcome without a score or a ``source``: both are required here."""
    at = time.time() if ts is None else ts
    rows = [_row(o, at) for o in items]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(outcomes), rows)
    return len(rows)


def add_outcome(engine: Engine, outcome: Outcome, *, ts: float | None = None) -> None:
    """Store one outcome (see ``add_outcomes``)."""
    add_outcomes(engine, [outcome], ts=ts)


def read_outcomes(engine: Engine, *, since: float | None = None,
                  sources: Sequence[str] | None = None,
                  models: Sequence[str] | None = None) -> list[Outcome]:
    """Stored outcomes in the order they were stored, optionally only those stored at or after
    ``since`` (unix seconds), from the given ``sources`` and for the given ``models`` (an
    empty list matches nothing)."""
    query = select(outcomes).order_by(outcomes.c.ts, outcomes.c.id)
    if since is not None:
        query = query.where(outcomes.c.ts >= since)
    if sources is not None:
        query = query.where(outcomes.c.source.in_(list(sources)))
    if models is not None:
        query = query.where(outcomes.c.model.in_(list(models)))
    with engine.connect() as conn:
        return [_outcome(r) for r in conn.execute(query).mappings()]


def source_kind(source: str | None) -> str | None:
    """The kind of a ``source``: ``eval:starter`` is of kind ``eval``, ``judge`` of ``judge``."""
    return source.split(":", 1)[0] if source else None


def query_outcomes(engine: Engine, *, since: float | None = None, until: float | None = None,
                   kinds: Sequence[str] | None = None, models: Sequence[str] | None = None,
                   key_id: str | None = None, category: str | None = None,
                   prompt_ids: Sequence[str] | None = None) -> list[tuple[float, Outcome]]:
    """``(ts, outcome)`` pairs with ``since <= ts < until``, in the order they were stored.

    ``kinds`` matches a source or its kind (``eval`` matches ``eval:starter``); ``key_id``
    keeps the outcomes of requests that key made (by the request log); ``category`` and
    ``models`` match exactly; ``prompt_ids`` keeps those items only. An empty sequence
    matches nothing. The time is what drift windows and exports need beside the record."""
    base = select(outcomes).order_by(outcomes.c.ts, outcomes.c.id)
    if since is not None:
        base = base.where(outcomes.c.ts >= since)
    if until is not None:
        base = base.where(outcomes.c.ts < until)
    if kinds is not None:
        kinds = list(kinds)
        base = base.where(or_(outcomes.c.source.in_(kinds),
                              *(outcomes.c.source.like(f"{k}:%") for k in kinds)))
    if models is not None:
        base = base.where(outcomes.c.model.in_(list(models)))
    if key_id is not None:
        base = base.where(outcomes.c.prompt_id.in_(
            select(request_log.c.id).where(request_log.c.key_id == key_id)))
    if category is not None:
        base = base.where(outcomes.c.category == category)
    queries = [base]
    if prompt_ids is not None:  # in chunks: databases cap the parameters of one statement
        ids = list(dict.fromkeys(prompt_ids))
        queries = [base.where(outcomes.c.prompt_id.in_(ids[i:i + 500]))
                   for i in range(0, len(ids), 500)]
    found: list[tuple[float, int, Outcome]] = []
    with engine.connect() as conn:
        for q in queries:
            found.extend((r["ts"], r["id"], _outcome(r)) for r in conn.execute(q).mappings())
    if len(queries) > 1:
        found.sort(key=lambda t: (t[0], t[1]))
    return [(ts, o) for ts, _, o in found]
