"""Spend per UTC hour, kept by the database itself: what "spend this month" reads instead of a
million request-log rows.

A month of logged requests summed row by row is the dashboard's slowest query (PostgreSQL
measured it as a parallel sequential scan of the whole log, ~100 ms warm at 1,000,000 rows and
several times that on a loaded machine). ``spend_hourly`` holds one row per hour — the sum of
``cost_usd`` and the number of requests logged in it — so any whole-hour range costs at most
744 rows. A database trigger adds every inserted request-log row to its hour, in the inserting
transaction, so the rollup equals the log whoever writes it: the gateway's batch writer, a
journal replay (rows a conflict skips are not added), ``COPY``, a test's plain ``INSERT``.

* PostgreSQL: one ``FOR EACH STATEMENT`` trigger with a transition table — one upsert per
  hour per batch, locking hours in order (no row update per request, no deadlock between
  replicas).
* SQLite: a ``FOR EACH ROW`` trigger (SQLite has no statement triggers); one writer at a time,
  an in-page upsert per row.

Installing it (``install``, called by ``tables.make_engine``) back-fills the hours of rows
logged before it existed, in the same transaction as the trigger, so nothing is counted twice
or missed. Request-log rows are never updated or deleted by rankgate; a manual ``DELETE`` would
leave the rollup high (``rebuild`` recomputes it).
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, func, select, text

from rankgate.store.tables import spend_hourly

HOUR_S = 3600.0
TRIGGER = "request_log_spend_hourly"
_PG_FUNCTION = "rankgate_spend_hourly_add"
_LOCK_ID = 7_402_113  # pg_advisory_xact_lock: one installer at a time across replicas

_SQLITE_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS {TRIGGER} AFTER INSERT ON request_log
BEGIN
  INSERT INTO spend_hourly (hour, cost_usd, requests)
  VALUES (CAST(new.ts / 3600 AS INTEGER) * 3600.0, coalesce(new.cost_usd, 0.0), 1)
  ON CONFLICT (hour) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd,
                                   requests = requests + excluded.requests;
END
"""

_PG_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO spend_hourly (hour, cost_usd, requests)
  SELECT floor(ts / 3600.0) * 3600.0, coalesce(sum(cost_usd), 0.0), count(*)
  FROM new_rows GROUP BY 1 ORDER BY 1
  ON CONFLICT (hour) DO UPDATE SET cost_usd = spend_hourly.cost_usd + excluded.cost_usd,
                                   requests = spend_hourly.requests + excluded.requests;
  RETURN NULL;
END $$
"""

_PG_TRIGGER = f"""
CREATE TRIGGER {TRIGGER} AFTER INSERT ON request_log
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()
"""

#: the hour a row belongs to. SQLite: CAST truncates (ts >= 0), and needs no math functions,
#: which not every SQLite build has — a trigger calling a missing one would fail every INSERT
_HOUR = {"sqlite": "CAST(ts / 3600 AS INTEGER) * 3600.0",
         "postgresql": "floor(ts / 3600.0) * 3600.0"}


def _backfill(dialect: str) -> str:
    return ("INSERT INTO spend_hourly (hour, cost_usd, requests) "
            f"SELECT {_HOUR[dialect]}, coalesce(sum(cost_usd), 0.0), count(*) "
            "FROM request_log GROUP BY 1")


_INSTALLED: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()


def _has_trigger(conn: Connection) -> bool:
    if conn.dialect.name == "postgresql":
        q = "SELECT 1 FROM pg_trigger WHERE tgname = :n AND NOT tgisinternal"
    else:
        q = "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :n"
    return conn.execute(text(q), {"n": TRIGGER}).first() is not None


def install(engine: Engine) -> None:
    """Create the trigger (once) and back-fill the hours logged before it. Safe to call from
    every process on every start: it does nothing once the trigger exists."""
    if engine.dialect.name not in ("postgresql", "sqlite"):
        return  # other databases: ``spend_between`` reads the log itself
    with engine.connect() as conn:
        if _has_trigger(conn):
            _INSTALLED[engine] = True
            return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:i)"), {"i": _LOCK_ID})
            if _has_trigger(conn):  # another replica installed it meanwhile
                _INSTALLED[engine] = True
                return
            conn.execute(text(_PG_FUNCTION_SQL))
            # the trigger first: it locks the log against inserts until this commits, so the
            # back-fill below sees every row and no row is added twice
            conn.execute(text(_PG_TRIGGER))
        else:
            conn.execute(text(_SQLITE_TRIGGER))  # the first write: takes SQLite's write lock
        conn.execute(spend_hourly.delete())
        conn.execute(text(_backfill(engine.dialect.name)))
    _INSTALLED[engine] = True


def rebuild(engine: Engine) -> None:
    """Recompute every hour from the log (after rows were deleted by hand)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE request_log IN SHARE MODE"))
        conn.execute(spend_hourly.delete())
        conn.execute(text(_backfill(engine.dialect.name)))


def installed(engine: Engine) -> bool:
    """Whether this database keeps the rollup (asked once per engine: an engine opened
    without ``make_engine`` on a database that lacks it reads the log instead)."""
    known = _INSTALLED.get(engine)
    if known is None:
        with engine.connect() as conn:
            known = engine.dialect.name in ("postgresql", "sqlite") and _has_trigger(conn)
        _INSTALLED[engine] = known
    return known


def hours_between(conn: Connection, first_hour: float, end_hour: float) -> float:
    """Dollars logged in the whole hours ``[first_hour, end_hour)`` (both hour-aligned)."""
    c = spend_hourly.c
    return float(conn.execute(select(func.coalesce(func.sum(c.cost_usd), 0.0)).where(
        c.hour >= first_hour, c.hour < end_hour)).scalar_one())


__all__ = ["HOUR_S", "TRIGGER", "hours_between", "install", "installed", "rebuild"]
