"""Retries, fallbacks and a circuit breaker per model, around any ``Backend``.

A request names a chain: the model asked for, then its fallbacks. Each model gets up to
``retries`` retries with full-jitter exponential backoff, on retryable failures only (the model
may do better a moment later: unreachable, timeout, 429, 5xx); then the next model of the chain
is tried. A failure that is the request's fault (any other 4xx: bad request, context overflow) is
raised at once, since no retry or other model would fix it. A model whose breaker is open is
skipped without a call, so a dead upstream costs nothing while it is down and is probed by
exactly one request once its cooldown has passed.

State is one ``CircuitBreaker`` per model, in this process (breakers are about what this
gateway sees; they need no sharing). Clock, random source and sleep are injectable so tests
check the exact backoff delays and breaker timings without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio

from rankgate.backends.base import (
    Backend,
    BackendError,
    BackendStream,
    BackendTimeout,
    BackendUnreachable,
    Kind,
    Result,
)
from rankgate.panel import ModelSpec

BreakerState = Literal["closed", "open", "half_open"]
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


def is_retryable(err: BackendError) -> bool:
    """Whether the same request may succeed later or elsewhere. By status, not class: the
    ``openai`` backend raises an upstream 429 as a ``BadRequest`` with status 429."""
    return isinstance(err, BackendUnreachable | BackendTimeout) or \
        err.status in RETRYABLE_STATUSES


def retry_after_of(err: BackendError) -> float | None:
    """The upstream's Retry-After in seconds, when the backend attached one to the error."""
    value = getattr(err, "retry_after_s", None)
    return float(value) if isinstance(value, int | float) and value >= 0 else None


class CircuitBreaker:
    """Stops calling a model that keeps failing, and lets one probe test its recovery.

    closed → open after ``failure_threshold`` consecutive failures; open for ``cooldown_s``;
    then half-open: ``allow()`` is true for exactly one caller (the probe) until that probe's
    outcome is recorded: success closes the breaker, failure re-opens it for a new cooldown.
    Callers must report every allowed call with ``record_success``, ``record_failure`` or
    ``release`` (the call ended in a way that says nothing about the model's health).
    """

    def __init__(self, failure_threshold: int = 5, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1 or cooldown_s < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s >= 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None  # None: closed
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown_s:
            return "open"
        return "half_open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether a call may go to the model now; in half-open, claims the one probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probing or (self._opened_at is None
                             and self._failures >= self.failure_threshold):
            self._opened_at = self._clock()
        self._probing = False

    def release(self) -> None:
        """An allowed call ended without a verdict (cancelled, or the request's own fault):
        in half-open, the next caller may probe."""
        self._probing = False

    def retry_after_s(self) -> float:
        """Seconds until ``allow()`` may be true again: 0 when closed; while a half-open probe
        is in flight, a nominal second (its outcome decides)."""
        state = self.state
        if state == "closed" or (state == "half_open" and not self._probing):
            return 0.0
        if state == "half_open":
            return min(1.0, self.cooldown_s)
        assert self._opened_at is not None
        return max(0.0, self._opened_at + self.cooldown_s - self._clock())


@dataclass
class Attempt:
    """One try of one model: ``status`` 200 on success, the error's status on failure, None
    when skipped (breaker open); ``error`` is the error code (``circuit_open`` when skipped)."""

    model: str
    status: int | None
    error: str | None
    seconds: float


class CircuitOpen(BackendError):
    """Every model of the chain was skipped because its breaker is open."""

    status = 503
    code = "circuit_open"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Resilience:
    """Calls a chain of models with retries, backoff, fallbacks, timeouts and breakers.

    ``backends`` maps panel ids to backends (the gateway's own dict); a breaker is kept for
    each. ``default_timeout_s`` applies to models without ``timeout_s``; None means no limit
    from this layer (a backend may still have its own). ``sleep`` is the backoff wait.
    ``retry_after_max_s`` caps the wait an upstream's ``Retry-After`` asks for (default: the
    backoff cap, 2 s): a request waits at most that long per retry instead of holding its
    client for the minute a rate-limited upstream may ask for; the setting is
    ``RANKGATE_RETRY_AFTER_MAX_S`` / ``serve --retry-after-max-s``.
    """

    def __init__(self, backends: dict[str, Backend], *, retries: int = 2,
                 backoff_base_s: float = 0.05, backoff_max_s: float = 2.0,
                 retry_after_max_s: float | None = None,
                 failure_threshold: int = 5, cooldown_s: float = 30.0,
                 default_timeout_s: float | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if retries < 0 or backoff_base_s < 0 or backoff_max_s < 0 or (
                retry_after_max_s is not None and retry_after_max_s < 0):
            raise ValueError("retries and backoff times must be >= 0")
        self.backends = backends
        self.retries = retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = backoff_max_s if retry_after_max_s is None else retry_after_max_s
        self.default_timeout_s = default_timeout_s
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._breakers = {m: CircuitBreaker(failure_threshold, cooldown_s, clock)
                          for m in backends}
        self._breaker_args = (failure_threshold, cooldown_s, clock)

    def breaker(self, model_id: str) -> CircuitBreaker:
        """The breaker of one model (e.g. to record a failure seen mid-stream); a model first
        served after start-up (a ``base+recipe`` variant) gets its own on first use."""
        if model_id not in self._breakers:
            self._breakers[model_id] = CircuitBreaker(*self._breaker_args)
        return self._breakers[model_id]

    def breaker_states(self) -> dict[str, str]:
        return {m: b.state for m, b in self._breakers.items()}

    def backoff_s(self, retry: int, err: BackendError | None = None) -> float:
        """The wait before retry number ``retry`` (0-based): the upstream's Retry-After if
        the error carries one (at most ``retry_after_max_s``), else full jitter
        ``uniform(0, min(max, base·2^retry))`` (at most ``backoff_max_s``)."""
        after = retry_after_of(err) if err is not None else None
        if after is not None:
            return min(after, self.retry_after_max_s)
        return self._rng.uniform(0.0, min(self.backoff_max_s,
                                          self.backoff_base_s * 2.0 ** retry))

    async def complete(self, chain: list[ModelSpec], kind: Kind, payload: dict[str, Any]
                       ) -> tuple[Result, ModelSpec, list[Attempt]]:
        """The first success along ``chain``, the model that served it and every attempt.
        Raises the first non-retryable error, else the last error, else ``CircuitOpen``."""

        def call(spec: ModelSpec) -> Awaitable[Result]:
            return self.backends[spec.id].complete(kind, payload)

        result, spec, attempts = await self._run(chain, call)
        return result, spec, attempts

    async def stream(self, chain: list[ModelSpec], kind: Kind, payload: dict[str, Any]
                     ) -> tuple[BackendStream, dict[str, Any] | None,
                                AsyncIterator[dict[str, Any]], ModelSpec, list[Attempt]]:
        """Open a stream along ``chain`` and wait for its first event (None: empty stream), so
        a failure before the first chunk is retried or falls back like any other; returns the
        stream (the caller must ``aclose`` it), that first event, the iterator of the rest,
        the serving model and the attempts. After the first chunk nothing is retried: errors
        raise from the iterator, and the timeout here no longer applies."""

        async def call(spec: ModelSpec) -> tuple[BackendStream, dict[str, Any] | None,
                                                 AsyncIterator[dict[str, Any]]]:
            bstream = await self.backends[spec.id].stream(kind, payload)
            events = aiter(bstream)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                first = None
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await bstream.aclose()
                raise
            return bstream, first, events

        (bstream, first, events), spec, attempts = await self._run(chain, call)
        return bstream, first, events, spec, attempts

    async def _run(self, chain: list[ModelSpec], call: Callable[[ModelSpec], Awaitable[T]]
                   ) -> tuple[T, ModelSpec, list[Attempt]]:
        if not chain:
            raise ValueError("empty model chain")
        attempts: list[Attempt] = []
        last_error: BackendError | None = None
        skipped_waits: list[float] = []
        seen: set[str] = set()
        for spec in chain:
            if spec.id in seen:  # a fallback list may repeat the lead model: one turn each
                continue
            seen.add(spec.id)
            breaker = self.breaker(spec.id)
            for retry in range(self.retries + 1):
                if not breaker.allow():
                    if retry == 0:
                        attempts.append(Attempt(spec.id, None, CircuitOpen.code, 0.0))
                        skipped_waits.append(breaker.retry_after_s())
                    break
                t0 = self._clock()
                try:
                    value = await self._timed(spec, call(spec))
                except BackendError as e:
                    attempts.append(Attempt(spec.id, e.status, e.code, self._clock() - t0))
                    if not is_retryable(e):
                        breaker.release()  # the request's fault, not the model's
                        raise
                    breaker.record_failure()
                    last_error = e
                    if retry < self.retries and breaker.state == "closed":
                        await self._sleep(self.backoff_s(retry, e))
                    continue
                except BaseException:
                    breaker.release()
                    raise
                breaker.record_success()
                attempts.append(Attempt(spec.id, 200, None, self._clock() - t0))
                return value, spec, attempts
        if last_error is not None:
            raise last_error
        wait = min(skipped_waits)
        raise CircuitOpen(f"every model for this request is failing and paused "
                          f"({', '.join(a.model for a in attempts)}); retry in {wait:.1f}s",
                          retry_after_s=wait)

    async def _timed(self, spec: ModelSpec, work: Awaitable[T]) -> T:
        limit = spec.timeout_s or self.default_timeout_s
        if limit is None:
            return await work
        try:
            async with asyncio.timeout(limit):
                return await work
        except TimeoutError:
            raise BackendTimeout(
                f"upstream {spec.id} did not answer in time (no answer within {limit:g}s)"
            ) from None
