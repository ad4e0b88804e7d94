"""Bandit statistics shared by several gateways through Redis.

A bandit router learns online from ``POST /v1/feedback``. With one process that is a local
update; with several behind a load balancer, feedback that reaches instance A must also teach
instance B. So each feedback event is appended to a Redis list per router (``RPUSH``: atomic,
ordered), and every instance folds in the events it has not applied yet — right after it
publishes one, and before each bandit decision (one ``LRANGE`` from its own cursor; usually
empty). Every instance therefore applies the same events in the same order on top of the same
trained artifact, and converges to the same statistics.
"""

from __future__ import annotations

from typing import Any

import orjson

PREFIX = "rankgate:bandit:"


class BanditSync:
    def __init__(self, redis_url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(redis_url)
        self._applied: dict[str, int] = {}  # router name -> events folded in so far

    async def publish(self, router: str, prompt: str, model: str, score: float) -> None:
        await self._redis.rpush(PREFIX + router, orjson.dumps(
            {"prompt": prompt, "model": model, "score": score}))

    async def pull(self, router: str) -> list[dict[str, Any]]:
        """Events published (by any instance) since this instance last pulled."""
        start = self._applied.get(router, 0)
        raw = await self._redis.lrange(PREFIX + router, start, -1)
        self._applied[router] = start + len(raw)
        return [orjson.loads(r) for r in raw]

    async def aclose(self) -> None:
        await self._redis.aclose()
