"""``store/spend_rollup.py``: the hourly spend rollup equals the request log however rows get
there, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from rankgate.store import request_queries as rq
from rankgate.store import spend_rollup
from rankgate.store.request_log import insert_ignoring_duplicates
from rankgate.store.tables import make_engine, metadata, request_log, spend_hourly


def rows(n: int, seed: int, prefix: str = "r") -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"{prefix}{i}", "ts": rng.uniform(0.0, 10 * 3600.0), "endpoint": "/",
             "stream": False, "status": 200,
             "cost_usd": None if i % 7 == 0 else rng.uniform(0, 0.01)} for i in range(n)]


def logged_spend(engine: sa.Engine, since: float, until: float | None) -> float:
    q = sa.select(sa.func.coalesce(sa.func.sum(request_log.c.cost_usd), 0.0)).where(
        request_log.c.ts >= since)
    if until is not None:
        q = q.where(request_log.c.ts < until)
    with engine.connect() as conn:
        return float(conn.execute(q).scalar_one())


RANGES = [(0.0, None), (0.0, 36000.0), (1800.0, 30600.0), (3600.0, 7200.0),
          (3599.5, 7200.5), (5000.0, 5001.0), (7200.0, None)]


def test_spend_over_any_range_equals_the_log_through_every_way_of_inserting(store_engine):
    with store_engine.begin() as conn:
        conn.execute(request_log.insert(), rows(300, 1))  # one multi-row statement
        for r in rows(40, 2, "s"):  # one statement per row
            conn.execute(request_log.insert(), [r])
    again = rows(30, 1) + rows(20, 3, "t")  # a journal replay: 30 already there, 20 new
    with store_engine.begin() as conn:
        conn.execute(insert_ignoring_duplicates(store_engine), again)
    with store_engine.connect() as conn:
        counted = conn.execute(sa.select(sa.func.sum(spend_hourly.c.requests))).scalar_one()
    assert counted == 360  # skipped duplicates are not counted
    for since, until in RANGES:
        assert rq.spend_between(store_engine, since, until) == pytest.approx(
            logged_spend(store_engine, since, until), rel=1e-9, abs=1e-12), (since, until)


def test_rows_logged_before_the_rollup_existed_are_back_filled_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    metadata.create_all(old)  # a store from before the rollup: the table, no trigger
    with old.begin() as conn:
        conn.execute(request_log.insert(), rows(200, 4))
    old.dispose()
    engine = make_engine(url)
    again = make_engine(url)  # a second process opening it installs nothing twice
    with engine.begin() as conn:
        conn.execute(request_log.insert(), rows(10, 5, "n"))
    for since, until in RANGES:
        assert rq.spend_between(again, since, until) == pytest.approx(
            logged_spend(engine, since, until), rel=1e-9, abs=1e-12)
    engine.dispose()
    again.dispose()


def test_postgresql_copy_is_counted_by_the_statement_trigger(postgres_url):
    import psycopg

    from tests.loop_support import fresh_postgres_database

    with fresh_postgres_database(postgres_url) as url:
        engine = make_engine(url)
        data = rows(500, 6)
        with psycopg.connect(url) as con:
            with con.cursor() as cur, cur.copy(
                    "COPY request_log (id, ts, endpoint, stream, status, cost_usd) FROM STDIN"
                    ) as copy:
                for r in data:
                    copy.write_row((r["id"], r["ts"], "/", False, 200, r["cost_usd"]))
            con.commit()
        assert spend_rollup.installed(engine)
        for since, until in RANGES:
            assert rq.spend_between(engine, since, until) == pytest.approx(
                logged_spend(engine, since, until), rel=1e-9, abs=1e-12)
        engine.dispose()


def test_rebuild_recomputes_after_rows_are_deleted_by_hand(store_engine):
    with store_engine.begin() as conn:
        conn.execute(request_log.insert(), rows(100, 7))
        conn.execute(request_log.delete().where(request_log.c.ts < 3600.0))
    spend_rollup.rebuild(store_engine)
    assert rq.spend_between(store_engine, 0.0, 36000.0) == pytest.approx(
        logged_spend(store_engine, 0.0, 36000.0))
