"""The exact response cache: same scope, same model, same request body → the stored answer.

What is cached: a complete non-streaming response body, keyed by :func:`cache_key` (the virtual
key id, the model, the kind of endpoint and the canonical request body), for ``ttl_s`` seconds.
Only deterministic requests are cacheable (:func:`cacheable`): replaying a sampled answer to a
request that asked for sampling would silently turn randomness off.

Where it lives: in process memory (an LRU bounded by ``max_entries``, expiry by an injectable
clock) or, with ``redis_url``, in Redis, so that every gateway process sharing that Redis
shares the cache (an answer stored through one is served through another). Entries are
content-addressed and immutable, so there is nothing to invalidate and no coordination
between processes; Redis expires them itself (``PX``), and its own ``maxmemory`` policy (set
it to ``allkeys-lru`` or ``volatile-lru``) bounds its size — ``max_entries`` bounds only the
memory store.

Failure: the cache is an optimisation, so it never fails a request. A Redis that is down,
slow (operations time out after ``redis_timeout_s``) or holds a corrupt value makes ``get`` a
miss and ``put`` a no-op; each such event is counted in ``stats.errors`` and logged once per
kind of failure per minute, so an operator sees it without the log filling up.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from rankgate.gateway.semantic_cache import SemanticCache

log = logging.getLogger("rankgate.cache")

# Fields the gateway owns or that do not change the answer; never part of a key.
_NOT_KEYED = ("model", "stream", "stream_options", "user", "rankgate")
REDIS_PREFIX = "rankgate:cache:v1:"


def _canonical(value: Any) -> Any:
    """Integral floats as ints (``0.0`` and ``0`` are the same temperature); recursive."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def cache_key(scope: str | None, model: str, kind: str, payload: dict[str, Any]) -> str:
    """The exact-cache key: sha256 hex of the canonical JSON of everything that decides the
    answer.

    ``scope`` is the virtual key id (``None`` for an open gateway), so one tenant never reads
    another's answers; ``payload`` is the body the backend gets. The gateway-owned fields
    (model, stream, stream_options, user, rankgate) are dropped here too, so a caller that
    forgets to strip them still gets the same key. Key order, and ``0`` vs ``0.0``, do not
    matter; every other difference (temperature, max_tokens, tools, a message) gives another
    key.
    """
    body = {k: v for k, v in payload.items() if k not in _NOT_KEYED}
    blob = orjson.dumps({"v": 1, "scope": scope, "model": model, "kind": kind,
                         "payload": _canonical(body)},
                        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(blob).hexdigest()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def cacheable(payload: dict[str, Any]) -> bool:
    """Whether a request asks for a deterministic answer, so that serving a stored one is what
    the backend would have done anyway.

    Yes when ``temperature`` is explicitly 0 (greedy decoding in every OpenAI-compatible
    engine; the API's default is 1, so a missing temperature is *not* cacheable) or ``top_k``
    is 1 (greedy whatever the temperature, in llama.cpp, vLLM and SGLang). ``top_p`` 0 is not
    taken as greedy: engines disagree on it (some reject it, some clamp it to a small
    epsilon). And only one choice: ``n`` absent or 1 — several choices exist to get
    different samples.
    """
    n = payload.get("n")
    if n is not None and n != 1:
        return False
    return _number(payload.get("temperature")) == 0.0 or _number(payload.get("top_k")) == 1.0


@dataclass
class CacheStats:
    """Counters since start. ``semantic_*`` are the semantic cache's, when there is one."""

    hits: int = 0
    misses: int = 0
    errors: int = 0  # store failures (Redis down, timeout, corrupt value): served as misses
    semantic_hits: int = 0
    semantic_refusals: int = 0  # a candidate was similar enough but the safety gate said no


class _MemoryStore:
    """LRU of serialised bodies with expiry times."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self.items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        item = self.items.get(key)
        if item is None:
            return None
        if item[0] <= self.clock():
            del self.items[key]
            return None
        self.items.move_to_end(key)
        return item[1]

    def put(self, key: str, blob: bytes, ttl_s: float) -> None:
        self.items[key] = (self.clock() + ttl_s, blob)
        self.items.move_to_end(key)
        while len(self.items) > self.max_entries:
            self.items.popitem(last=False)


class ResponseCache:
    """Exact cache in memory or Redis, plus an optional semantic cache (``semantic``).

    ``get`` returns a fresh parse of the stored body every time (callers may mutate it, e.g.
    to set a new response id). ``put`` never raises. ``stats`` is a snapshot of the counters.
    """

    def __init__(self, ttl_s: float = 3600, max_entries: int = 10_000,
                 redis_url: str | None = None, semantic: SemanticCache | None = None,
                 clock: Callable[[], float] = time.time, *,
                 redis_timeout_s: float = 0.5) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("ttl_s must be > 0 and max_entries >= 1")
        self.ttl_s = ttl_s
        self.semantic = semantic
        self.redis_url = redis_url
        self._counts = CacheStats()
        self._memory = _MemoryStore(max_entries, clock) if redis_url is None else None
        self._redis: Any = None
        self._last_warned: dict[str, float] = {}
        if redis_url is not None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(redis_url, socket_timeout=redis_timeout_s,
                                            socket_connect_timeout=redis_timeout_s)

    @property
    def stats(self) -> CacheStats:
        s = copy.copy(self._counts)
        if self.semantic is not None:
            s.semantic_hits = self.semantic.stats.hits
            s.semantic_refusals = self.semantic.stats.refusals
            s.errors += self.semantic.stats.errors
        return s

    async def get(self, key: str) -> dict[str, Any] | None:
        blob = await self._get_blob(key)
        if blob is None:
            self._counts.misses += 1
            return None
        try:
            body = orjson.loads(blob)
            if not isinstance(body, dict):
                raise ValueError(f"a {type(body).__name__}, not a JSON object")
        except (orjson.JSONDecodeError, ValueError) as e:
            self._failed("corrupt", e)
            self._counts.misses += 1
            return None
        self._counts.hits += 1
        return body

    async def put(self, key: str, body: dict[str, Any]) -> None:
        try:
            blob = orjson.dumps(body)
            if self._memory is not None:
                self._memory.put(key, blob, self.ttl_s)
            else:
                await self._redis.set(REDIS_PREFIX + key, blob, px=max(1, int(self.ttl_s * 1000)))
        except Exception as e:  # a cache write must never fail the request
            self._failed("put", e)

    async def _get_blob(self, key: str) -> bytes | None:
        if self._memory is not None:
            return self._memory.get(key)
        try:
            return await self._redis.get(REDIS_PREFIX + key)
        except Exception as e:  # Redis down or slow: a miss, not a failure
            self._failed("get", e)
            return None

    def _failed(self, what: str, error: BaseException) -> None:
        self._counts.errors += 1
        now = time.monotonic()
        if now - self._last_warned.get(what, -1e9) >= 60:
            self._last_warned[what] = now
            log.warning("response cache %s failed (served as a miss): %s: %s", what,
                        type(error).__name__, error)

    async def aclose(self) -> None:
        if self.semantic is not None:
            await self.semantic.aclose()
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except Exception as e:  # closing a dead connection is not an error
                log.debug("closing the cache's Redis client: %s", e)
            self._redis = None
