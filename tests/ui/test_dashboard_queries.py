"""The dashboard's store reads (``store/request_queries.py``) on a real SQLite store."""

from __future__ import annotations

import pytest

from rankgate.store import request_queries as rq
from rankgate.store.tables import make_engine, request_log


def row(i: int, **over: object) -> dict:
    r = {"id": f"r{i:04d}", "ts": 1000.0 + i, "endpoint": "/v1/chat/completions",
         "key_id": "k1" if i % 2 else "k2", "model": "a" if i % 3 else "b", "stream": False,
         "status": 200 if i % 5 else 502, "cost_usd": 0.001 * (i % 4) if i % 7 else None,
         "router": "knn" if i % 2 else None}
    r.update(over)
    return r


def all_rows() -> list[dict]:
    return [row(i) for i in range(200)] + [row(1000, ts=1100.0), row(1001, ts=1100.0)]


@pytest.fixture
def engine(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with e.begin() as conn:
        conn.execute(request_log.insert(), all_rows())  # two rows share ts=1100
    yield e
    e.dispose()


def test_keyset_pages_cover_every_row_once_newest_first(engine):
    seen, cursor = [], None
    while True:
        page = rq.search_requests(engine, rq.RequestFilter(), limit=7, before=cursor)
        if not page:
            break
        seen.extend(page)
        cursor = (page[-1].ts, page[-1].id)
    assert len(seen) == 202 and len({r.id for r in seen}) == 202
    assert [(r.ts, r.id) for r in seen] == sorted(((r.ts, r.id) for r in seen), reverse=True)


def test_filters_combine(engine):
    flt = rq.RequestFilter(since=1050.0, key_id="k1", model="a", status="ok",
                           min_cost_usd=0.002)
    got = rq.search_requests(engine, flt, limit=500)
    expected = [r for r in all_rows() if r["ts"] >= 1050 and r["key_id"] == "k1"
                and r["model"] == "a" and 200 <= r["status"] < 300
                and r["cost_usd"] is not None and r["cost_usd"] >= 0.002]
    assert got and sorted(r.id for r in got) == sorted(r["id"] for r in expected)
    assert {r.status for r in rq.search_requests(engine, rq.RequestFilter(status="5xx"))} \
        == {502}


def test_spend_and_counts_match_the_rows(engine):
    rows = all_rows()
    total = sum(r["cost_usd"] or 0.0 for r in rows if 1100 <= r["ts"] < 1150)
    assert rq.spend_between(engine, 1100.0, 1150.0) == pytest.approx(total)
    assert rq.count_since(engine, 1190.0) == sum(1 for r in rows if r["ts"] >= 1190)


def test_routed_mix_buckets_routed_requests_by_model(engine):
    mix = rq.routed_mix(engine, 1000.0, 100.0)
    routed = [r for r in all_rows() if r["router"] is not None]
    assert sum(n for _, _, n in mix) == len(routed)
    first = {m: n for b, m, n in mix if b == 1000.0}
    assert first == {m: sum(1 for r in routed if r["ts"] < 1100 and r["model"] == m)
                     for m in ("a", "b")}


def test_cost_moments_count_answered_requests_and_known_costs(engine):
    got = rq.cost_moments_by_model(engine, 0.0)
    for model in ("a", "b"):
        ok = [r for r in all_rows() if r["model"] == model and r["status"] == 200]
        priced = [r["cost_usd"] for r in ok if r["cost_usd"] is not None]
        m = got[model]
        assert (m.requests, m.priced) == (len(ok), len(priced))
        assert m.mean == pytest.approx(sum(priced) / len(priced))


def test_spend_cache_agrees_with_direct_sums_at_any_time_of_day(tmp_path):
    import asyncio

    from rankgate.gateway.ui.spend import SpendCache, day_start, month_start

    e = make_engine(f"sqlite:///{tmp_path / 'spend.sqlite'}")
    now = 1_764_000_000.0  # 2025-11-24 16:00 UTC
    with e.begin() as conn:
        conn.execute(request_log.insert(), [row(i, ts=now - 37 * i, cost_usd=0.001 * (i % 9))
                                            for i in range(5000)])
    cache = SpendCache(settle_s=120.0)
    for t in (now, now + 60, now + 200, now + 3600 * 7 + 5, now + 3600 * 8 + 130):
        today, month = asyncio.run(cache.spend(e, t))
        assert today == pytest.approx(rq.spend_between(e, day_start(t)))
        assert month == pytest.approx(rq.spend_between(e, month_start(t)))
    e.dispose()


def test_savings_compare_routed_spend_with_always_the_best_model():
    from rankgate.gateway.ui.routing_view import savings

    best = rq.CostMoments(requests=4, priced=4, total_usd=4.0, total_sq=4.0 + 0.5)
    routed = {"cheap": rq.CostMoments(6, 6, 0.6, 0.06), "best": rq.CostMoments(4, 4, 4.0, 4.5)}
    s = savings({"best": best}, routed, "best")
    assert s["requests"] == 10 and s["always_best_usd"] == pytest.approx(10.0)
    assert s["saved_share"] == pytest.approx(1 - 4.6 / 10.0)
    assert s["low"] < s["saved_share"] < s["high"]  # the interval brackets the estimate
    assert savings({"best": best}, routed, None) is None
    assert savings({}, routed, "best") is None
