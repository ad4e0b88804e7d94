"""Rate limits and budgets on real SQLite and a real Redis, with an injected clock.

Every behaviour runs against both limiters (``MemoryLimiter`` for one process, ``RedisLimiter``
for several); the cross-process tests use two ``RedisLimiter``s with separate clients, as two
gateway processes would have.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from rankgate.gateway.auth import ADMIN, KeyInfo
from rankgate.gateway.limits import (
    MemoryLimiter,
    RateLimited,
    RedisLimiter,
    Ticket,
    period_bounds,
)
from rankgate.store.tables import make_engine, request_log

T0 = datetime(2025, 6, 11, 12, 0, tzinfo=UTC).timestamp()  # a Wednesday, mid-month


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_key(**limits: Any) -> KeyInfo:
    """A fresh key id per test, so tests sharing the Redis server never see each other."""
    base: dict[str, Any] = {"rpm": None, "tpm": None, "budget_usd": None,
                            "budget_period": "month"}
    base.update(limits)
    return KeyInfo(id=f"key-{uuid.uuid4().hex[:12]}", name="t", prefix="rg-test",
                   models=None, routing=None, **base)


@pytest.fixture
def db_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'rankgate.db'}"
    make_engine(url).dispose()
    return url


@pytest.fixture(params=["memory", "redis"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def make_limiter(kind, db_url, request) -> Callable[..., MemoryLimiter | RedisLimiter]:
    def make(clock: Clock, **kwargs: Any) -> MemoryLimiter | RedisLimiter:
        if kind == "memory":
            return MemoryLimiter(db_url, clock=clock)
        return RedisLimiter(request.getfixturevalue("redis_url"), db_url, clock=clock, **kwargs)

    return make


def run(limiter: MemoryLimiter | RedisLimiter,
        body: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await body()
        finally:
            await limiter.aclose()

    return asyncio.run(main())


async def denied(coro: Awaitable[Ticket]) -> RateLimited:
    with pytest.raises(RateLimited) as e:
        await coro
    return e.value


def add_log_rows(db_url: str, key_id: str, rows: list[tuple[float, float | None]]) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(request_log), [
            {"id": uuid.uuid4().hex, "ts": ts, "endpoint": "/v1/chat/completions",
             "key_id": key_id, "stream": False, "status": 200, "cost_usd": cost}
            for ts, cost in rows])
    engine.dispose()


def test_periods_are_utc_calendar_periods():
    day = period_bounds("day", T0)
    assert day == (datetime(2025, 6, 11, tzinfo=UTC).timestamp(),
                   datetime(2025, 6, 12, tzinfo=UTC).timestamp())
    assert period_bounds("week", T0)[0] == datetime(2025, 6, 9, tzinfo=UTC).timestamp()  # Mon
    assert period_bounds("month", T0) == (datetime(2025, 6, 1, tzinfo=UTC).timestamp(),
                                          datetime(2025, 7, 1, tzinfo=UTC).timestamp())
    dec = datetime(2025, 12, 31, 23, 59, tzinfo=UTC).timestamp()
    assert period_bounds("month", dec)[1] == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert period_bounds("total", T0) == (0.0, None)


def test_rate_limited_carries_retry_after_of_at_least_one_second():
    err = RateLimited("slow down", limit="rpm", retry_after_s=0.2)
    assert err.status == 429 and err.code == "rate_limit_exceeded"
    assert err.retry_after_s == 1.0 and err.headers["Retry-After"] == "1"
    assert RateLimited("x", limit="budget", retry_after_s=12.3).headers["Retry-After"] == "13"
    assert RateLimited("x", limit="budget", retry_after_s=5).code == "budget_exceeded"


def test_open_gateway_and_admin_pass_with_noop_tickets(make_limiter):
    limiter = make_limiter(Clock())

    async def body() -> None:
        for key in (None, ADMIN, make_key()):
            for _ in range(100):
                ticket = await limiter.admit(key, 10**6, 10**6)
                assert ticket.noop
                await limiter.settle(ticket, 5, 1.0)

    run(limiter, body)


def test_rpm_is_a_sliding_window(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    key = make_key(rpm=3)

    async def body() -> None:
        for t in (0, 20, 40):
            clock.t = T0 + t
            await limiter.admit(key, 1, None)
        clock.t = T0 + 50
        err = await denied(limiter.admit(key, 1, None))
        assert err.limit == "rpm" and err.retry_after_s == 10  # the t=0 request leaves at 60
        assert key.id in err.message
        clock.t = T0 + 60  # one left the window: exactly one more fits
        await limiter.admit(key, 1, None)
        clock.t = T0 + 61
        assert (await denied(limiter.admit(key, 1, None))).retry_after_s == 19
        # no fixed-window boundary: a burst at 119.9 + 120 never exceeds 3 in any 60 s
        clock.t = T0 + 119.9
        for _ in range(2):
            await limiter.admit(key, 1, None)  # t=20 and t=40 have left; t=60 is still in
        await denied(limiter.admit(key, 1, None))
        clock.t = T0 + 120
        await limiter.admit(key, 1, None)
        await denied(limiter.admit(key, 1, None))
        assert (await limiter.usage(key))["requests_last_60s"] == 3

    run(limiter, body)


def test_tpm_counts_the_estimate_and_settle_corrects_it(make_limiter):
    clock = Clock()
    limiter = make_limiter(clock)
    key = make_key(tpm=1000)

    async def body() -> None:
        big = await limiter.admit(key, 800, None)
        err = await denied(limiter.admit(key, 300, None))
        assert err.limit == "tpm" and err.retry_after_s == 60
        await limiter.settle(big, 100, None)  # it used far less than max_tokens allowed
        assert (await limiter.usage(key))["tokens_last_60s"] == 100
        clock.t += 10
        second = await limiter.admit(key, 300, None)
        await limiter.settle(second, None, None)  # unknown: the estimate stays
        assert (await limiter.usage(key))["tokens_last_60s"] == 400
        clock.t += 5
        err = await denied(limiter.admit(key, 700, None))
        assert err.retry_after_s == 45  # when the 100-token request leaves the window
        clock.t = T0 + 60
        await limiter.admit(key, 700, None)

    run(limiter, body)


def test_request_larger_than_the_whole_tpm_limit_is_refused(make_limiter):
    limiter = make_limiter(Clock())
    key = make_key(tpm=100)

    async def body() -> None:
        err = await denied(limiter.admit(key, 101, None))
        assert err.limit == "tpm" and "max_tokens" in err.message

    run(limiter, body)


def test_50_concurrent_admits_against_a_budget_for_10_admit_exactly_10(make_limiter):
    limiter = make_limiter(Clock())
    key = make_key(budget_usd=10.0)

    async def body() -> None:
        results = await asyncio.gather(*(limiter.admit(key, 10, 1.0) for _ in range(50)),
                                       return_exceptions=True)
        admitted = [r for r in results if isinstance(r, Ticket)]
        refused = [r for r in results if isinstance(r, RateLimited)]
        assert len(admitted) == 10 and len(refused) == 40
        assert {r.code for r in refused} == {"budget_exceeded"}
        assert all(r.retry_after_s == 1 for r in refused)  # held by requests in flight
        for t in admitted:
            await limiter.settle(t, 10, 1.0)
        err = await denied(limiter.admit(key, 10, 0.01))
        # spent for good this month: retry when the month renews
        assert err.retry_after_s == period_bounds("month", T0)[1] - T0

    run(limiter, body)


def test_settle_releases_the_reservation_at_the_real_cost(make_limiter):
    limiter = make_limiter(Clock())
    key = make_key(budget_usd=1.0)

    async def body() -> None:
        ticket = await limiter.admit(key, 10, 0.6)
        assert (await limiter.usage(key))["reserved_usd"] == pytest.approx(0.6)
        await denied(limiter.admit(key, 10, 0.6))  # 0.6 + 0.6 > 1
        await limiter.settle(ticket, 10, 0.1)
        use = await limiter.usage(key)
        assert use["reserved_usd"] == 0 and use["spent_usd"] == pytest.approx(0.1)
        unknown = await limiter.admit(key, 10, 0.6)
        await limiter.settle(unknown, None, None)  # unknown cost is never free
        assert (await limiter.usage(key))["spent_usd"] == pytest.approx(0.7)
        await limiter.settle(unknown, None, 5.0)  # a second settle changes nothing
        assert (await limiter.usage(key))["spent_usd"] == pytest.approx(0.7)

    run(limiter, body)


def test_without_an_estimate_nothing_is_reserved_but_a_spent_budget_denies(make_limiter):
    limiter = make_limiter(Clock())
    key = make_key(budget_usd=1.0)

    async def body() -> None:
        tickets = [await limiter.admit(key, 10, None) for _ in range(5)]
        assert (await limiter.usage(key))["reserved_usd"] == 0
        for t in tickets[:4]:
            await limiter.settle(t, 10, 0.3)
        err = await denied(limiter.admit(key, 10, None))
        assert err.code == "budget_exceeded" and err.retry_after_s > 1
        await limiter.settle(tickets[4], 10, None)  # no estimate, no cost: nothing to add
        assert (await limiter.usage(key))["spent_usd"] == pytest.approx(1.2)

    run(limiter, body)


def test_zero_budget_admits_nothing(make_limiter):
    limiter = make_limiter(Clock())
    key = make_key(budget_usd=0.0)

    async def body() -> None:
        await denied(limiter.admit(key, 1, None))
        await denied(limiter.admit(key, 1, 0.0001))

    run(limiter, body)


def test_spend_is_reloaded_from_the_request_log_after_a_restart(make_limiter, db_url):
    key = make_key(budget_usd=1.0, budget_period="day")
    day_start = period_bounds("day", T0)[0]
    add_log_rows(db_url, key.id, [
        (day_start + 10, 0.5), (T0 - 60, 0.4), (T0 - 30, None),  # today: 0.9
        (day_start - 1, 100.0),  # yesterday: not this period's
    ])
    add_log_rows(db_url, "key-other", [(T0 - 5, 100.0)])
    clock = Clock()
    limiter = make_limiter(clock)

    async def body() -> None:
        assert (await limiter.usage(key))["spent_usd"] == pytest.approx(0.9)
        await limiter.admit(key, 1, 0.05)
        err = await denied(limiter.admit(key, 1, 0.1))
        assert err.code == "budget_exceeded"
        clock.t = period_bounds("day", T0)[1] + 1  # a new day: a fresh budget
        await limiter.admit(key, 1, 0.9)

    run(limiter, body)


def test_redis_limiters_in_two_processes_share_one_rpm_limit(redis_url, db_url):
    clock = Clock()
    a, b = RedisLimiter(redis_url, db_url, clock), RedisLimiter(redis_url, db_url, clock)
    key = make_key(rpm=5)

    async def body() -> None:
        try:
            for i in range(5):
                await (a if i % 2 else b).admit(key, 1, None)
            for limiter in (a, b):
                assert (await denied(limiter.admit(key, 1, None))).limit == "rpm"
            clock.t += 60
            results = await asyncio.gather(*(lim.admit(key, 1, None)
                                             for lim in [a, b] * 10), return_exceptions=True)
            assert sum(isinstance(r, Ticket) for r in results) == 5
        finally:
            await b.aclose()

    run(a, body)


def test_redis_limiters_in_two_processes_share_one_budget(redis_url, db_url):
    clock = Clock()
    a, b = RedisLimiter(redis_url, db_url, clock), RedisLimiter(redis_url, db_url, clock)
    key = make_key(budget_usd=10.0, budget_period="week")

    async def body() -> None:
        try:
            results = await asyncio.gather(*(lim.admit(key, 1, 1.0) for lim in [a, b] * 25),
                                           return_exceptions=True)
            tickets = [r for r in results if isinstance(r, Ticket)]
            assert len(tickets) == 10
            assert all(isinstance(r, RateLimited) for r in results if r not in tickets)
            for i, t in enumerate(tickets):  # settled by either process, at half the estimate
                await (a if i % 2 else b).settle(t, 1, 0.5)
            assert (await b.usage(key))["spent_usd"] == pytest.approx(5.0)
            more = await asyncio.gather(*(lim.admit(key, 1, 1.0) for lim in [a, b] * 10),
                                        return_exceptions=True)
            assert sum(isinstance(r, Ticket) for r in more) == 5
        finally:
            await b.aclose()

    run(a, body)


def test_redis_reservation_of_a_crashed_process_expires(redis_url, db_url):
    clock = Clock()
    crashed = RedisLimiter(redis_url, db_url, clock, reservation_ttl_s=30)
    key = make_key(budget_usd=1.0)

    async def body() -> None:
        await crashed.admit(key, 1, 1.0)  # never settled: its process died
        await crashed.aclose()
        survivor = RedisLimiter(redis_url, db_url, clock)
        try:
            err = await denied(survivor.admit(key, 1, 0.5))
            assert err.retry_after_s == 1  # held by a request in flight
            clock.t += 31
            await survivor.admit(key, 1, 0.5)
        finally:
            await survivor.aclose()

    asyncio.run(body())


def test_redis_spend_total_lost_from_redis_is_reloaded(redis_url, db_url):
    """Redis without persistence may lose the spend total; the request log has it."""
    import redis as redis_sync

    clock = Clock()
    limiter = RedisLimiter(redis_url, db_url, clock)
    key = make_key(budget_usd=1.0)

    async def body() -> None:
        await limiter.admit(key, 1, 0.1)
        add_log_rows(db_url, key.id, [(T0, 0.95)])  # the gateway logged the real spend
        client = redis_sync.Redis.from_url(redis_url)
        client.delete(*client.keys(f"rankgate:{{{key.id}}}:spent:*"))
        client.close()
        err = await denied(limiter.admit(key, 1, 0.1))
        assert err.code == "budget_exceeded"

    run(limiter, body)


def test_budget_holds_across_processes_on_postgresql(redis_url, postgres_url):
    """The multi-instance setup: PostgreSQL for the request log, Redis for limits."""
    key = make_key(budget_usd=2.0, budget_period="total")
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    make_engine(postgres_url).dispose()
    with engine.begin() as conn:
        conn.execute(sa.insert(request_log), [
            {"id": uuid.uuid4().hex, "ts": T0 - 86_400 * 400, "endpoint": "/v1/completions",
             "key_id": key.id, "stream": False, "status": 200, "cost_usd": 1.5}])
    engine.dispose()
    clock = Clock()
    a, b = (RedisLimiter(redis_url, postgres_url, clock),
            RedisLimiter(redis_url, postgres_url, clock))

    async def body() -> None:
        try:
            results = await asyncio.gather(*(lim.admit(key, 1, 0.1) for lim in [a, b] * 10),
                                           return_exceptions=True)
            tickets = [r for r in results if isinstance(r, Ticket)]
            assert len(tickets) == 5  # 1.5 spent before + 5 × 0.1 reserved
            err = next(r for r in results if isinstance(r, RateLimited))
            assert err.code == "budget_exceeded" and err.retry_after_s == 1  # in flight
            for t in tickets:
                await a.settle(t, 1, None)  # cost unknown: the estimate is charged
            err = await denied(b.admit(key, 1, 0.01))
            assert "used up its total budget" in err.message
            assert (await b.usage(key))["spent_usd"] == pytest.approx(2.0)
        finally:
            await b.aclose()

    run(a, body)
