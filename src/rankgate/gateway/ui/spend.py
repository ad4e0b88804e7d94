"""Spend today and this month for the overview, at a cost that does not grow with the month:
the sums of whole past hours are kept, only the rows since are summed on each refresh."""

from __future__ import annotations

import asyncio
from typing import Any

from rankgate.gateway.limits import period_bounds
from rankgate.store import request_queries as rq


def _run(fn: Any, *args: Any) -> Any:
    return asyncio.to_thread(fn, *args)


def day_start(now: float) -> float:
    return period_bounds("day", now)[0]


def month_start(now: float) -> float:
    return period_bounds("month", now)[0]


async def _zero() -> float:
    return 0.0


class SpendCache:
    """Spend today and this month without summing the month on every refresh: the sums of
    whole hours that ended at least ``settle_s`` ago (every row of them is written by then)
    are kept for ``ttl_s``; each refresh sums only the rows after that cut. So at 1,000,000
    rows a refresh reads about an hour of the index, not the month. A row arriving late with
    an old time (a journal replayed after a crash) shows within ``ttl_s``."""

    def __init__(self, settle_s: float = 120.0, ttl_s: float = 300.0) -> None:
        self.settle_s, self.ttl_s = settle_s, ttl_s
        self._sums: dict[tuple[float, float], tuple[float, float]] = {}  # (since, cut)

    def cut(self, now: float) -> float:
        hour = now - now % 3600.0
        return hour if now - hour >= self.settle_s else hour - 3600.0

    async def _closed(self, engine: Any, since: float, cut: float, now: float) -> float:
        hit = self._sums.get((since, cut))
        if hit is not None and now - hit[1] < self.ttl_s:
            return hit[0]
        value = await _run(rq.spend_between, engine, since, cut)
        if len(self._sums) > 16:  # old cuts: hours and days gone by
            self._sums.clear()
        self._sums[(since, cut)] = (value, now)
        return value

    async def spend(self, engine: Any, now: float) -> tuple[float, float]:
        """(spend today, spend this month), UTC calendar periods. The month is summed as
        [month start, day start) + [day start, cut) + [cut, now): the first two are kept, and
        a cold start sums them concurrently (half the month each, not the month twice)."""
        cut = self.cut(now)
        day, month = day_start(now), month_start(now)
        if cut <= day:  # the first minutes of a day: today is all "live"
            today, before = await asyncio.gather(
                _run(rq.spend_between, engine, day),
                self._closed(engine, month, day, now) if day > month else _zero())
            return today, before + today
        live, closed_today, before = await asyncio.gather(
            _run(rq.spend_between, engine, cut), self._closed(engine, day, cut, now),
            self._closed(engine, month, day, now) if day > month else _zero())
        return closed_today + live, before + closed_today + live
