"""The exact response cache: keys, cacheability, TTL, LRU, and Redis shared between processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from rankgate.gateway.cache import REDIS_PREFIX, ResponseCache, cache_key, cacheable
from tests.conftest import free_port

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0,
        "max_tokens": 16}
ANSWER = {"id": "chatcmpl-1", "object": "chat.completion",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                       "finish_reason": "stop"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(scope: str | None = "key-1", model: str = "m", kind: str = "chat", **changes: Any) -> str:
    return cache_key(scope, model, kind, {**BODY, **changes})


def test_key_is_scoped_by_key_id_model_kind_and_parameters() -> None:
    base = key()
    assert key(scope="key-2") != base
    assert key(scope=None) != base
    assert key(model="other") != base
    assert key(kind="text") != base
    assert key(temperature=0.5) != base
    assert key(max_tokens=17) != base
    assert key(messages=[{"role": "user", "content": "hi!"}]) != base
    assert key(tools=[{"type": "function", "function": {"name": "f"}}]) != base


def test_key_ignores_json_order_and_gateway_owned_fields() -> None:
    reordered = {"max_tokens": 16, "temperature": 0,
                 "messages": [{"content": "hi", "role": "user"}]}
    assert cache_key("key-1", "m", "chat", reordered) == key()
    owned = {"model": "ignored", "stream": False, "stream_options": {"include_usage": True},
             "user": "u", "rankgate": {"max_cost_usd": 1}}
    assert cache_key("key-1", "m", "chat", {**BODY, **owned}) == key()
    assert key(temperature=0.0) == key(temperature=0)


def test_cacheable_needs_explicit_greedy_decoding_and_one_choice() -> None:
    assert cacheable({"temperature": 0})
    assert cacheable({"temperature": 0.0, "n": 1})
    assert cacheable({"temperature": 0.8, "top_k": 1})  # greedy whatever the temperature
    assert not cacheable({})  # the API's default temperature is 1
    assert not cacheable({"temperature": 0.2})
    assert not cacheable({"temperature": 0, "n": 2})
    assert not cacheable({"top_p": 0})  # engines disagree on what top_p 0 means
    assert not cacheable({"temperature": False})


def test_get_returns_what_was_put_as_an_independent_copy() -> None:
    async def go() -> None:
        cache = ResponseCache()
        await cache.put("k", ANSWER)
        first = await cache.get("k")
        assert first == ANSWER
        first["id"] = "changed"
        first["choices"][0]["message"]["content"] = "changed"
        assert await cache.get("k") == ANSWER
        assert await cache.get("other") is None
        assert (cache.stats.hits, cache.stats.misses, cache.stats.errors) == (2, 1, 0)

    asyncio.run(go())


def test_entries_expire_after_the_ttl() -> None:
    async def go() -> None:
        clock = Clock()
        cache = ResponseCache(ttl_s=60, clock=clock)
        await cache.put("k", ANSWER)
        clock.now += 59.9
        assert await cache.get("k") == ANSWER
        clock.now += 0.2
        assert await cache.get("k") is None

    asyncio.run(go())


def test_memory_store_keeps_at_most_max_entries_least_recently_used_out() -> None:
    async def go() -> None:
        cache = ResponseCache(max_entries=2)
        await cache.put("a", {"n": 1})
        await cache.put("b", {"n": 2})
        assert await cache.get("a") == {"n": 1}  # a is now the most recently used
        await cache.put("c", {"n": 3})
        assert await cache.get("b") is None
        assert await cache.get("a") == {"n": 1}
        assert await cache.get("c") == {"n": 3}

    asyncio.run(go())


def test_an_unserialisable_body_is_not_stored_and_does_not_raise() -> None:
    async def go() -> None:
        cache = ResponseCache()
        await cache.put("k", {"x": object()})
        assert await cache.get("k") is None
        assert cache.stats.errors == 1

    asyncio.run(go())


def test_two_caches_share_entries_through_redis(redis_url: str) -> None:
    async def go() -> None:
        writer = ResponseCache(ttl_s=30, redis_url=redis_url)
        reader = ResponseCache(ttl_s=30, redis_url=redis_url)
        k = key(scope="shared")
        try:
            assert await reader.get(k) is None
            await writer.put(k, ANSWER)
            assert await reader.get(k) == ANSWER
            assert reader.stats.hits == 1 and writer.stats.errors == 0
        finally:
            await writer.aclose()
            await reader.aclose()
        client = redis.Redis.from_url(redis_url)
        try:
            assert 0 < client.pttl(REDIS_PREFIX + k) <= 30_000  # Redis expires it itself
        finally:
            client.close()

    asyncio.run(go())


def test_a_corrupt_redis_value_is_a_counted_miss(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(REDIS_PREFIX + "corrupt", b"{not json")
    client.set(REDIS_PREFIX + "not-an-object", b"[1, 2]")
    client.close()

    async def go() -> None:
        cache = ResponseCache(redis_url=redis_url)
        try:
            assert await cache.get("corrupt") is None
            assert await cache.get("not-an-object") is None
            assert cache.stats.errors == 2 and cache.stats.misses == 2
        finally:
            await cache.aclose()

    asyncio.run(go())


def test_an_unavailable_redis_makes_get_a_miss_and_put_a_no_op() -> None:
    async def go() -> None:
        cache = ResponseCache(redis_url=f"redis://127.0.0.1:{free_port()}/0")
        try:
            await cache.put("k", ANSWER)  # must not raise
            assert await cache.get("k") is None
            assert cache.stats.errors == 2 and cache.stats.misses == 1
        finally:
            await cache.aclose()

    asyncio.run(go())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ResponseCache(ttl_s=0)
    with pytest.raises(ValueError):
        ResponseCache(max_entries=0)
