"""Per-key rate limits and budgets: admit a request before it runs, settle its real usage after.

* **RPM** — requests in any sliding 60 s window (no fixed windows that let 2× through at a
  boundary). A request counts from ``admit`` on, whatever its outcome.
* **TPM** — tokens in a sliding 60 s window: the estimate (prompt + ``max_tokens``) counts from
  ``admit``; ``settle`` replaces it with the real count.
* **Budget** — dollars per UTC calendar period (day, ISO week, month, or total). ``admit``
  reserves the estimated cost atomically and denies when spent + reserved + estimate would
  exceed the budget; ``settle`` moves the reservation to spent at the real cost (an unknown
  cost keeps the estimate: unknown is never free). With no estimate nothing is reserved, but
  a key whose spent + reserved has reached its budget is denied.

Spend survives restarts: it is the sum of ``request_log.cost_usd`` for the key since the period
began, loaded once per key and period (the gateway writes ``key_id`` on each row).

``MemoryLimiter`` serves one process. ``RedisLimiter`` shares limits and spend between
processes: each check-and-reserve is one Lua script (EVALSHA), so it is atomic across them,
and a reservation carries an expiry so a crashed process can't hold budget forever. The clock
is injectable; with ``RedisLimiter`` every process must use a synchronised wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine

from rankgate.gateway.auth import KeyInfo
from rankgate.gateway.errors import APIError
from rankgate.store.request_queries import spend_since
from rankgate.store.tables import make_engine

log = logging.getLogger("rankgate.limits")

WINDOW_S = 60.0
#: How long a reservation of a process that died holds budget before it is dropped.
RESERVATION_TTL_S = 900.0
#: Retry-After for a used-up ``total`` budget, which no amount of waiting frees.
TOTAL_BUDGET_RETRY_S = 86_400.0
_EPS = 1e-9  # dollars; float sums of cents must not deny the request that exactly fits


def period_bounds(period: str, now: float) -> tuple[float, float | None]:
    """``(start, end)`` of the UTC calendar period containing ``now``; ``total`` never ends."""
    if period == "total":
        return 0.0, None
    dt = datetime.fromtimestamp(now, UTC)
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=dt.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return start.timestamp(), end.timestamp()


class RateLimited(APIError):
    """429 with the seconds until enough frees up (``retry_after_s``, at least 1; also set as
    the ``Retry-After`` header, so ``error_response`` sends it as is). ``limit`` is "rpm",
    "tpm" or "budget", for metrics."""

    def __init__(self, message: str, *, limit: str, retry_after_s: float) -> None:
        retry = max(1.0, float(math.ceil(retry_after_s)))
        budget = limit == "budget"
        super().__init__(429, message,
                         type="insufficient_quota" if budget else "rate_limit_error",
                         code="budget_exceeded" if budget else "rate_limit_exceeded",
                         headers={"Retry-After": str(int(retry))})
        self.limit = limit
        self.retry_after_s = retry


@dataclass
class Ticket:
    """What ``admit`` reserved for one request; hand it back to ``settle`` exactly once."""

    key_id: str | None  # None: nothing was reserved (open gateway, admin key)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = 0.0
    tokens: int = 0  # counted against TPM (0 if the key has no TPM limit)
    usd: float = 0.0  # reserved against the budget
    period_start: float | None = None  # the budget period charged (None: no budget)
    rpm: bool = False
    tpm: bool = False
    settled: bool = False

    @property
    def noop(self) -> bool:
        return self.key_id is None


def _noop() -> Ticket:
    return Ticket(key_id=None)


class Limiter(Protocol):
    async def admit(self, key: KeyInfo | None, est_tokens: int,
                    est_cost_usd: float | None) -> Ticket: ...
    async def settle(self, ticket: Ticket, tokens: int | None,
                     cost_usd: float | None) -> None: ...
    async def usage(self, key: KeyInfo) -> dict[str, float]: ...
    async def aclose(self) -> None: ...


def _unlimited(key: KeyInfo | None) -> bool:
    return (key is None or key.admin
            or (key.rpm is None and key.tpm is None and key.budget_usd is None))


def _rpm_denied(key: KeyInfo, retry: float) -> RateLimited:
    return RateLimited(f"Key {key.label} has reached its limit of {key.rpm} requests per "
                       f"minute; retry in {math.ceil(retry)} s.", limit="rpm",
                       retry_after_s=retry)


def _tpm_denied(key: KeyInfo, est_tokens: int, retry: float) -> RateLimited:
    if est_tokens > (key.tpm or 0):
        return RateLimited(f"This request needs up to {est_tokens} tokens, more than key "
                           f"{key.label} may use in a minute ({key.tpm}); lower max_tokens "
                           "or shorten the prompt.", limit="tpm", retry_after_s=WINDOW_S)
    return RateLimited(f"Key {key.label} has reached its limit of {key.tpm} tokens per minute "
                       f"(this request needs up to {est_tokens}); retry in {math.ceil(retry)} s.",
                       limit="tpm", retry_after_s=retry)


def _budget_denied(key: KeyInfo, spent: float, in_flight: bool, now: float) -> RateLimited:
    if in_flight:  # requests in flight hold the rest; they settle soon, usually for less
        return RateLimited(f"Key {key.label}'s {key.budget_period} budget of "
                           f"${key.budget_usd:g} is spoken for by requests in flight "
                           f"(${spent:.6g} spent); retry shortly.", limit="budget",
                           retry_after_s=1.0)
    _, end = period_bounds(key.budget_period, now)
    if end is None:
        return RateLimited(f"Key {key.label} has used up its total budget of "
                           f"${key.budget_usd:g} (${spent:.6g} spent); an admin must issue "
                           "a new key.", limit="budget", retry_after_s=TOTAL_BUDGET_RETRY_S)
    return RateLimited(f"Key {key.label} has used up its {key.budget_period} budget of "
                       f"${key.budget_usd:g} (${spent:.6g} spent); it renews in "
                       f"{math.ceil(end - now)} s.", limit="budget", retry_after_s=end - now)


def _over_budget(budget: float, spent: float, reserved: float, est: float | None) -> bool:
    if est is None:
        return spent + reserved >= budget
    return spent + reserved + est > budget + _EPS


class _SpendLoader:
    """Spend so far of a key in a period, from the request log; concurrent loads of the same
    (key, period) share one query, run in a thread so the event loop never waits on the DB."""

    def __init__(self, engine_or_url: Engine | str) -> None:
        if isinstance(engine_or_url, str):
            self.engine = make_engine(engine_or_url)
            self._owns = True
        else:
            self.engine, self._owns = engine_or_url, False
        self._inflight: dict[tuple[str, float], asyncio.Task[float]] = {}

    async def load(self, key_id: str, start: float) -> float:
        task = self._inflight.get((key_id, start))
        if task is None:
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(spend_since, self.engine, key_id, start))
            self._inflight[(key_id, start)] = task

            def done(t: asyncio.Task[float]) -> None:
                self._inflight.pop((key_id, start), None)
                if not t.cancelled():
                    t.exception()

            task.add_done_callback(done)
        try:
            return await asyncio.shield(task)
        except Exception as e:
            log.exception("loading the spend of key %s failed", key_id)
            raise APIError(503, "Spend so far can't be read from the store, so the key's "
                           "budget can't be checked; try again.", type="server_error",
                           code="store_unavailable") from e

    def close(self) -> None:
        if self._owns:
            self.engine.dispose()


class _Window:
    """A sliding 60 s window of (ts, ticket id, amount) with a running total."""

    def __init__(self) -> None:
        self.entries: deque[list[Any]] = deque()  # [ts, ticket id, amount], oldest first
        self.by_id: dict[str, list[Any]] = {}
        self.total = 0.0

    def prune(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - WINDOW_S:
            _, tid, amount = self.entries.popleft()
            self.by_id.pop(tid, None)
            self.total -= amount
        if not self.entries:
            self.total = 0.0

    def add(self, now: float, tid: str, amount: float) -> None:
        entry = [now, tid, amount]
        self.entries.append(entry)
        self.by_id[tid] = entry
        self.total += amount

    def correct(self, tid: str, amount: float) -> None:
        entry = self.by_id.get(tid)
        if entry is not None:  # else it has left the window already
            self.total += amount - entry[2]
            entry[2] = amount

    def retry_after(self, now: float, need: float, limit: float) -> float:
        """Seconds until the window holds at most ``limit - need``."""
        remaining = self.total
        for ts, _, amount in self.entries:
            remaining -= amount
            if remaining + need <= limit:
                return ts + WINDOW_S - now
        return WINDOW_S


@dataclass
class _Spend:
    period_start: float
    spent: float
    reserved: dict[str, float] = field(default_factory=dict)  # ticket id -> $


class MemoryLimiter:
    """Limits for one gateway process. Every check-and-reserve runs without an ``await`` in
    between, so concurrent requests on the event loop can't overshoot a limit."""

    def __init__(self, engine_or_url: Engine | str, clock: Callable[[], float] = time.time
                 ) -> None:
        self._loader = _SpendLoader(engine_or_url)
        self._clock = clock
        self._rpm: dict[str, _Window] = {}
        self._tpm: dict[str, _Window] = {}
        self._spend: dict[str, _Spend] = {}

    async def _bucket(self, key: KeyInfo, now: float) -> _Spend:
        start, _ = period_bounds(key.budget_period, now)
        bucket = self._spend.get(key.id)
        if bucket is None or bucket.period_start != start:
            spent = await self._loader.load(key.id, start)
            bucket = self._spend.get(key.id)
            if bucket is None or bucket.period_start != start:  # nobody beat us to it
                # reservations of the previous period settle into the request log only
                bucket = self._spend[key.id] = _Spend(start, spent)
        return bucket

    async def admit(self, key: KeyInfo | None, est_tokens: int,
                    est_cost_usd: float | None) -> Ticket:
        """Reserve room for one request, or raise ``RateLimited``."""
        if _unlimited(key):
            return _noop()
        assert key is not None
        bucket = (await self._bucket(key, self._clock())
                  if key.budget_usd is not None else None)
        # from here on no await: check and reserve are one step for the event loop
        now = self._clock()
        rpm = tpm = None
        if key.rpm is not None:
            rpm = self._rpm.setdefault(key.id, _Window())
            rpm.prune(now)
            if rpm.total + 1 > key.rpm:
                raise _rpm_denied(key, rpm.retry_after(now, 1, key.rpm))
        if key.tpm is not None:
            tpm = self._tpm.setdefault(key.id, _Window())
            tpm.prune(now)
            if tpm.total + est_tokens > key.tpm:
                raise _tpm_denied(key, est_tokens, tpm.retry_after(now, est_tokens, key.tpm))
        ticket = Ticket(key_id=key.id, ts=now)
        if bucket is not None and key.budget_usd is not None:
            reserved = sum(bucket.reserved.values())
            if _over_budget(key.budget_usd, bucket.spent, reserved, est_cost_usd):
                in_flight = not _over_budget(key.budget_usd, bucket.spent, 0.0, est_cost_usd)
                raise _budget_denied(key, bucket.spent, in_flight, now)
            ticket.usd = max(0.0, est_cost_usd or 0.0)
            ticket.period_start = bucket.period_start
            bucket.reserved[ticket.id] = ticket.usd
        if rpm is not None:
            rpm.add(now, ticket.id, 1)
            ticket.rpm = True
        if tpm is not None:
            tpm.add(now, ticket.id, est_tokens)
            ticket.tokens, ticket.tpm = est_tokens, True
        return ticket

    async def settle(self, ticket: Ticket, tokens: int | None, cost_usd: float | None) -> None:
        """Record real usage (None: unknown, keep the estimate); never raises."""
        try:
            if ticket.noop or ticket.settled:
                return
            ticket.settled = True
            assert ticket.key_id is not None
            if ticket.tpm and tokens is not None:
                window = self._tpm.get(ticket.key_id)
                if window is not None:
                    window.correct(ticket.id, max(0, tokens))
            if ticket.period_start is not None:
                bucket = self._spend.get(ticket.key_id)
                if bucket is not None and bucket.period_start == ticket.period_start:
                    reserved = bucket.reserved.pop(ticket.id, ticket.usd)
                    bucket.spent += max(0.0, cost_usd) if cost_usd is not None else reserved
        except Exception:
            log.exception("settling request usage of key %s failed", ticket.key_id)

    async def usage(self, key: KeyInfo) -> dict[str, float]:
        """What the key has used: requests and tokens in the last 60 s, $ spent and reserved
        in the current period."""
        now = self._clock()
        out = {"requests_last_60s": 0.0, "tokens_last_60s": 0.0, "spent_usd": 0.0,
               "reserved_usd": 0.0}
        for name, windows in (("requests_last_60s", self._rpm), ("tokens_last_60s", self._tpm)):
            window = windows.get(key.id)
            if window is not None:
                window.prune(now)
                out[name] = window.total
        if key.budget_usd is not None:
            bucket = await self._bucket(key, now)
            out["spent_usd"], out["reserved_usd"] = bucket.spent, sum(bucket.reserved.values())
        return out

    async def aclose(self) -> None:
        self._loader.close()


# --- Redis ----------------------------------------------------------------------------------
# Tokens ride in the TPM members ("<ticket>:<tokens>") so expiring entries can be subtracted
# from the running sum without a second structure.

_ADMIT_LUA = """
-- KEYS: 1 rpm zset, 2 tpm zset, 3 tpm sum, 4 spent, 5 reservation expiries zset,
--       6 reservation amounts hash
-- ARGV: 1 now, 2 ticket id, 3 rpm (0: none), 4 tpm (0: none), 5 est tokens,
--       6 budget (-1: none), 7 est usd (-1: unknown), 8 reservation expiry, 9 reservation ttl
local now = tonumber(ARGV[1])
local tid = ARGV[2]
local rpm, tpm, est_tokens = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local budget, est_usd = tonumber(ARGV[6]), tonumber(ARGV[7])
local horizon = now - 60
local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) end

if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
  local n = redis.call('ZCARD', KEYS[1])
  if n >= rpm then
    local e = redis.call('ZRANGE', KEYS[1], n - rpm, n - rpm, 'WITHSCORES')
    return {'rpm', tostring(tonumber(e[2]) + 60 - now), tostring(n)}
  end
end
if tpm > 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon)
  if #expired > 0 then
    local freed = 0
    for _, m in ipairs(expired) do freed = freed + tokens_of(m) end
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)
    redis.call('DECRBY', KEYS[3], freed)
  end
  local used = 0
  if redis.call('ZCARD', KEYS[2]) > 0 then used = tonumber(redis.call('GET', KEYS[3]) or '0') end
  if used + est_tokens > tpm then
    local retry = 60
    if est_tokens <= tpm then
      local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
      local remaining = used
      for i = 1, #entries, 2 do
        remaining = remaining - tokens_of(entries[i])
        if remaining + est_tokens <= tpm then
          retry = tonumber(entries[i + 1]) + 60 - now
          break
        end
      end
    end
    return {'tpm', tostring(retry), tostring(used)}
  end
end
local est = 0
if budget >= 0 then
  local spent = redis.call('GET', KEYS[4])
  if not spent then return {'load', '0', '0'} end
  spent = tonumber(spent)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)
  for _, d in ipairs(dead) do redis.call('HDEL', KEYS[6], d) end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now) end
  local reserved = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[6])) do reserved = reserved + tonumber(v) end
  if est_usd >= 0 then est = est_usd end
  local over, over_alone
  if est_usd < 0 then
    over, over_alone = spent + reserved >= budget, spent >= budget
  else
    over = spent + reserved + est > budget + 1e-9
    over_alone = spent + est > budget + 1e-9
  end
  if over then
    if over_alone then return {'budget', '0', tostring(spent)} end
    return {'budget_in_flight', '1', tostring(spent)}
  end
end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, tid)
  redis.call('EXPIRE', KEYS[1], 62)
end
if tpm > 0 then
  redis.call('ZADD', KEYS[2], now, tid .. ':' .. est_tokens)
  redis.call('INCRBY', KEYS[3], est_tokens)
  redis.call('EXPIRE', KEYS[2], 62)
  redis.call('EXPIRE', KEYS[3], 62)
end
if budget >= 0 and est > 0 then
  redis.call('ZADD', KEYS[5], ARGV[8], tid)
  redis.call('HSET', KEYS[6], tid, tostring(est))
  redis.call('EXPIRE', KEYS[5], ARGV[9])
  redis.call('EXPIRE', KEYS[6], ARGV[9])
end
return {'ok', '0', '0'}
"""

_SETTLE_LUA = """
-- KEYS: 1 tpm zset, 2 tpm sum, 3 spent, 4 reservation expiries zset, 5 reservation amounts
-- ARGV: 1 ticket id, 2 est tokens, 3 real tokens (-1: unknown), 4 real usd (-1: unknown),
--       5 tpm counted ('1'/'0'), 6 budget charged ('1'/'0'), 7 reserved usd
if ARGV[5] == '1' and tonumber(ARGV[3]) >= 0 then
  local old = ARGV[1] .. ':' .. ARGV[2]
  local score = redis.call('ZSCORE', KEYS[1], old)
  if score then
    redis.call('ZREM', KEYS[1], old)
    redis.call('ZADD', KEYS[1], score, ARGV[1] .. ':' .. ARGV[3])
    redis.call('INCRBY', KEYS[2], tonumber(ARGV[3]) - tonumber(ARGV[2]))
  end
end
if ARGV[6] == '1' then
  local held = redis.call('HGET', KEYS[5], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  local cost = tonumber(ARGV[4])
  if cost < 0 then cost = tonumber(held or ARGV[7]) end
  -- a missing total was lost with Redis; the next admit reloads it from the request log
  if cost > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('INCRBYFLOAT', KEYS[3], cost)
  end
end
return 1
"""


def _keys(key_id: str, period_start: float | None) -> list[str]:
    base = f"rankgate:{{{key_id}}}"  # one hash slot per key (Redis Cluster)
    p = int(period_start or 0)
    return [f"{base}:rpm", f"{base}:tpm", f"{base}:tpm_sum", f"{base}:spent:{p}",
            f"{base}:resv:{p}", f"{base}:resv_usd:{p}"]


class RedisLimiter:
    """Limits shared by every gateway process that uses the same Redis and database.

    Fails closed: if Redis is unreachable a limited key's request gets a 503 rather than
    running unchecked (``settle`` only logs). Spend totals expire a day after their period
    ends; if Redis loses one, the next ``admit`` reloads it from the request log."""

    def __init__(self, redis_url: str, engine_or_url: Engine | str,
                 clock: Callable[[], float] = time.time,
                 reservation_ttl_s: float = RESERVATION_TTL_S) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(redis_url)
        self._admit = self._redis.register_script(_ADMIT_LUA)
        self._settle = self._redis.register_script(_SETTLE_LUA)
        self._loader = _SpendLoader(engine_or_url)
        self._clock = clock
        self.reservation_ttl_s = reservation_ttl_s

    async def _load_spent(self, key: KeyInfo, start: float, now: float) -> None:
        spent = await self._loader.load(key.id, start)
        _, end = period_bounds(key.budget_period, now)
        ttl = None if end is None else max(1, math.ceil(end - now + 86_400))
        await self._redis.set(_keys(key.id, start)[3], repr(spent), nx=True, ex=ttl)

    async def admit(self, key: KeyInfo | None, est_tokens: int,
                    est_cost_usd: float | None) -> Ticket:
        """Reserve room for one request atomically across processes, or raise
        ``RateLimited`` (503 ``APIError`` if Redis or the database can't be reached)."""
        import redis.exceptions

        if _unlimited(key):
            return _noop()
        assert key is not None
        for _ in range(3):
            now = self._clock()
            start = (period_bounds(key.budget_period, now)[0]
                     if key.budget_usd is not None else None)
            ticket = Ticket(key_id=key.id, ts=now, period_start=start)
            args = [repr(now), ticket.id, key.rpm or 0, key.tpm or 0, est_tokens,
                    repr(key.budget_usd) if key.budget_usd is not None else -1,
                    repr(est_cost_usd) if est_cost_usd is not None else -1,
                    repr(now + self.reservation_ttl_s), math.ceil(self.reservation_ttl_s) + 60]
            try:
                raw = await self._admit(keys=_keys(key.id, start), args=args)
            except redis.exceptions.RedisError as e:
                log.error("rate-limit store unreachable: %s", type(e).__name__)
                raise APIError(503, "The rate-limit store is unavailable; try again.",
                               type="server_error", code="limits_unavailable") from e
            verdict, retry, detail = (x.decode() if isinstance(x, bytes) else str(x) for x in raw)
            if verdict == "ok":
                ticket.rpm, ticket.tpm = key.rpm is not None, key.tpm is not None
                ticket.tokens = est_tokens if ticket.tpm else 0
                ticket.usd = max(0.0, est_cost_usd or 0.0) if start is not None else 0.0
                return ticket
            if verdict == "load":
                assert start is not None
                await self._load_spent(key, start, now)
                continue
            if verdict == "rpm":
                raise _rpm_denied(key, float(retry))
            if verdict == "tpm":
                raise _tpm_denied(key, est_tokens, float(retry))
            raise _budget_denied(key, float(detail), verdict == "budget_in_flight", now)
        raise APIError(503, "The key's spend so far could not be loaded; try again.",
                       type="server_error", code="limits_unavailable")

    async def settle(self, ticket: Ticket, tokens: int | None, cost_usd: float | None) -> None:
        """Record real usage (None: unknown, keep the estimate); never raises."""
        try:
            if ticket.noop or ticket.settled:
                return
            ticket.settled = True
            assert ticket.key_id is not None
            if not ticket.tpm and ticket.period_start is None:
                return
            await self._settle(
                keys=_keys(ticket.key_id, ticket.period_start)[1:],
                args=[ticket.id, ticket.tokens, max(0, tokens) if tokens is not None else -1,
                      repr(max(0.0, cost_usd)) if cost_usd is not None else -1,
                      int(ticket.tpm), int(ticket.period_start is not None), repr(ticket.usd)])
        except Exception:
            log.exception("settling request usage of key %s failed", ticket.key_id)

    async def usage(self, key: KeyInfo) -> dict[str, float]:
        """What the key has used: requests and tokens in the last 60 s, $ spent and reserved
        in the current period (across every process)."""
        now = self._clock()
        start = period_bounds(key.budget_period, now)[0] if key.budget_usd is not None else 0
        rpm, tpm, _, spent, _, resv = _keys(key.id, start)
        horizon = f"({now - WINDOW_S!r}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zcount(rpm, horizon, "+inf")
            pipe.zrangebyscore(tpm, horizon, "+inf")
            pipe.get(spent)
            pipe.hvals(resv)
            n, members, spent_raw, held = await pipe.execute()
        if key.budget_usd is not None and spent_raw is None:
            spent_raw = repr(await self._loader.load(key.id, start))
        return {"requests_last_60s": float(n),
                "tokens_last_60s": float(sum(int(m.rsplit(b":", 1)[1]) for m in members)),
                "spent_usd": float(spent_raw or 0.0),
                "reserved_usd": sum(float(v) for v in held)}

    async def aclose(self) -> None:
        await self._redis.aclose()
        self._loader.close()
