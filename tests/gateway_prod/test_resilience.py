"""Retries, fallbacks, timeouts and circuit breakers, driven by the ``faulty`` backend (the
fault injector) with an injected clock, random source and sleep: no waiting, no wall clock."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from rankgate.backends.base import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    BadRequest,
    ContextOverflow,
)
from rankgate.backends.faulty import FaultyBackend
from rankgate.gateway.resilience import (
    Attempt,
    CircuitBreaker,
    CircuitOpen,
    Resilience,
    is_retryable,
)
from rankgate.panel import ModelSpec

pytestmark = pytest.mark.anyio
PAYLOAD: dict[str, Any] = {"messages": [{"role": "user", "content": "hi there"}]}
REPLY = "Hello from the fault upstream."


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Records the backoff waits instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def spec(model_id: str, fault: str | None = None, **kw: Any) -> ModelSpec:
    return ModelSpec(id=model_id, backend="faulty", upstream_model=fault or model_id, **kw)


def setup(*models: ModelSpec, **kw: Any
          ) -> tuple[Resilience, dict[str, FaultyBackend], Sleeps, Clock]:
    backends = {m.id: FaultyBackend(m) for m in models}
    sleeps, clock = Sleeps(), Clock()
    kw.setdefault("rng", random.Random(0))
    res = Resilience(backends, sleep=sleeps, clock=clock, **kw)  # type: ignore[arg-type]
    return res, backends, sleeps, clock


def served(attempts: list[Attempt]) -> list[tuple[str, int | None]]:
    return [(a.model, a.status) for a in attempts]


async def drain(events: Any) -> list[dict[str, Any]]:
    return [c async for c in events]


# --- retries and fallbacks -------------------------------------------------------------------

async def test_flaky_succeeds_on_the_third_call_with_two_retries():
    m = spec("m", "flaky-2")
    res, backends, sleeps, _ = setup(m, retries=2)
    result, used, attempts = await res.complete([m], "chat", PAYLOAD)
    assert result.body["choices"][0]["message"]["content"] == REPLY
    assert used.id == "m" and backends["m"].calls == 3
    assert served(attempts) == [("m", 502), ("m", 502), ("m", 200)]
    assert len(sleeps.delays) == 2


async def test_flaky_with_one_retry_falls_back_to_the_next_model():
    m, fb = spec("m", "flaky-2"), spec("backup", "ok")
    res, backends, _, _ = setup(m, fb, retries=1)
    _, used, attempts = await res.complete([m, fb], "chat", PAYLOAD)
    assert used.id == "backup"
    assert backends["m"].calls == 2
    assert served(attempts) == [("m", 502), ("m", 502), ("backup", 200)]


async def test_error_500_falls_back_to_a_healthy_model_and_attempts_show_it():
    bad, good = spec("primary", "error-500"), spec("healthy", "fast")
    res, backends, _, _ = setup(bad, good, retries=2)
    result, used, attempts = await res.complete([bad, good], "chat", PAYLOAD)
    assert used.id == "healthy" and result.usage.output_tokens == 5
    assert served(attempts) == [("primary", 502)] * 3 + [("healthy", 200)]
    assert [a.error for a in attempts] == ["upstream_error"] * 3 + [None]
    assert backends["primary"].calls == 3


async def test_every_model_failing_raises_the_last_error():
    a, b = spec("a", "error-500"), spec("b", "error-504")
    res, _, _, _ = setup(a, b, retries=0)
    with pytest.raises(BackendTimeout) as e:
        await res.complete([a, b], "chat", PAYLOAD)
    assert "upstream b answered 504" in e.value.message


async def test_bad_request_is_raised_at_once_without_retry_or_fallback():
    bad, good = spec("strict", "bad-request-400"), spec("healthy", "fast")
    res, backends, sleeps, _ = setup(bad, good, retries=2, failure_threshold=1)
    with pytest.raises(BadRequest) as e:
        await res.complete([bad, good], "chat", PAYLOAD)
    assert e.value.status == 400
    assert backends["strict"].calls == 1 and backends["healthy"].calls == 0
    assert sleeps.delays == []
    assert res.breaker_states()["strict"] == "closed", "a 400 is not the model's fault"


async def test_rate_limit_429_is_retried_and_honours_retry_after():
    m = spec("limited", "rate-limit-429")
    res, backends, sleeps, _ = setup(m, retries=2, backoff_max_s=5.0)
    with pytest.raises(BadRequest) as e:
        await res.complete([m], "chat", PAYLOAD)
    assert e.value.status == 429 and backends["limited"].calls == 3
    assert sleeps.delays == [1.0, 1.0]  # the upstream's Retry-After, not the jitter


async def test_retry_after_is_capped_by_backoff_max():
    m = spec("limited", "rate-limit-429")
    res, _, sleeps, _ = setup(m, retries=2, backoff_max_s=0.25)
    with pytest.raises(BadRequest):
        await res.complete([m], "chat", PAYLOAD)
    assert sleeps.delays == [0.25, 0.25]


async def test_backoff_is_full_jitter_exponential_within_bounds():
    m = spec("down", "error-503")
    res, _, sleeps, _ = setup(m, retries=6, backoff_base_s=0.1, backoff_max_s=1.0,
                              failure_threshold=100, rng=random.Random(42))
    with pytest.raises(BackendError):
        await res.complete([m], "chat", PAYLOAD)
    bounds = [min(1.0, 0.1 * 2**i) for i in range(6)]
    reference = random.Random(42)
    assert sleeps.delays == [reference.uniform(0, b) for b in bounds]
    assert all(0 <= d <= b for d, b in zip(sleeps.delays, bounds, strict=True))
    assert bounds[-1] == 1.0 and bounds[0] == pytest.approx(0.1)


def test_backoff_bounds_hold_over_many_draws():
    res = Resilience({}, backoff_base_s=0.05, backoff_max_s=2.0, rng=random.Random(1))
    for retry in range(10):
        cap = min(2.0, 0.05 * 2**retry)
        draws = [res.backoff_s(retry) for _ in range(200)]
        assert all(0 <= d <= cap for d in draws)
        assert max(draws) > cap * 0.9, "the whole jitter range is used"


def test_retryable_errors_are_transient_failures_only():
    assert is_retryable(BackendUnreachable("x")) and is_retryable(BackendTimeout("x"))
    assert is_retryable(BackendError("upstream 5xx"))
    assert is_retryable(BadRequest("rate limited", status=429))
    assert not is_retryable(BadRequest("bad"))
    assert not is_retryable(BadRequest("too big", status=413))
    assert not is_retryable(ContextOverflow(9000, 4096, "m"))


# --- timeouts --------------------------------------------------------------------------------

async def test_hang_is_cut_by_the_model_timeout_with_504():
    m = spec("stuck", "hang", timeout_s=0.05)
    res, backends, _, _ = setup(m, retries=0)
    with pytest.raises(BackendTimeout) as e:
        await res.complete([m], "chat", PAYLOAD)
    assert e.value.status == 504 and e.value.code == "upstream_timeout"
    assert backends["stuck"].calls == 1


async def test_hang_is_cut_by_the_default_timeout_and_falls_back():
    m, good = spec("stuck", "hang"), spec("healthy", "fast")
    res, _, _, _ = setup(m, good, retries=1, default_timeout_s=0.05)
    _, used, attempts = await res.complete([m, good], "chat", PAYLOAD)
    assert used.id == "healthy"
    assert served(attempts) == [("stuck", 504), ("stuck", 504), ("healthy", 200)]


# --- circuit breaker -------------------------------------------------------------------------

def test_breaker_opens_after_threshold_then_half_opens_for_one_probe():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=3, cooldown_s=30.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state == "closed"
    b.record_success()  # consecutive failures only
    for _ in range(3):
        assert b.allow()
        b.record_failure()
    assert b.state == "open" and not b.allow()
    clock.now += 10
    assert b.retry_after_s() == pytest.approx(20.0)
    clock.now += 20
    assert b.state == "half_open"
    assert b.allow() and not b.allow(), "exactly one probe"
    b.record_failure()
    assert b.state == "open" and b.retry_after_s() == pytest.approx(30.0)
    clock.now += 30
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow() and b.allow()


def test_breaker_probe_released_without_verdict_lets_the_next_caller_probe():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=1, cooldown_s=5.0, clock=clock)
    b.record_failure()
    clock.now += 5
    assert b.allow() and not b.allow()
    b.release()
    assert b.state == "half_open" and b.allow()


async def test_open_breaker_skips_the_model_without_calling_it():
    bad, good = spec("bad", "error-500"), spec("good", "fast")
    res, backends, _, clock = setup(bad, good, retries=0, failure_threshold=3, cooldown_s=30)
    for _ in range(3):
        await res.complete([bad, good], "chat", PAYLOAD)
    assert res.breaker_states() == {"bad": "open", "good": "closed"}
    assert backends["bad"].calls == 3
    _, used, attempts = await res.complete([bad, good], "chat", PAYLOAD)
    assert used.id == "good" and backends["bad"].calls == 3
    assert attempts[0] == Attempt("bad", None, "circuit_open", 0.0)
    clock.now += 29
    await res.complete([bad, good], "chat", PAYLOAD)
    assert backends["bad"].calls == 3


async def test_breaker_opening_mid_request_stops_the_retries():
    bad, good = spec("bad", "error-500"), spec("good", "fast")
    res, backends, sleeps, _ = setup(bad, good, retries=5, failure_threshold=2)
    _, used, attempts = await res.complete([bad, good], "chat", PAYLOAD)
    assert backends["bad"].calls == 2 and used.id == "good"
    assert served(attempts) == [("bad", 502), ("bad", 502), ("good", 200)]
    assert len(sleeps.delays) == 1


async def test_half_open_lets_exactly_one_probe_through_and_success_closes():
    sick, good = spec("sick", "flaky-3"), spec("good", "fast")
    res, backends, _, clock = setup(sick, good, retries=0, failure_threshold=3, cooldown_s=30)
    for _ in range(3):
        await res.complete([sick, good], "chat", PAYLOAD)
    assert res.breaker_states()["sick"] == "open"
    clock.now += 30
    assert res.breaker_states()["sick"] == "half_open"
    outcomes = await asyncio.gather(*(res.complete([sick, good], "chat", PAYLOAD)
                                      for _ in range(4)))
    assert backends["sick"].calls == 4, "one probe, the other three went elsewhere"
    assert sorted(used.id for _, used, _ in outcomes) == ["good", "good", "good", "sick"]
    assert res.breaker_states()["sick"] == "closed"
    _, used, _ = await res.complete([sick, good], "chat", PAYLOAD)
    assert used.id == "sick" and backends["sick"].calls == 5


async def test_failed_half_open_probe_reopens_the_breaker():
    bad, good = spec("bad", "error-503"), spec("good", "fast")
    res, backends, _, clock = setup(bad, good, retries=2, failure_threshold=2, cooldown_s=10)
    await res.complete([bad, good], "chat", PAYLOAD)
    assert res.breaker_states()["bad"] == "open" and backends["bad"].calls == 2
    clock.now += 10
    _, used, attempts = await res.complete([bad, good], "chat", PAYLOAD)
    assert backends["bad"].calls == 3, "the probe failed: no retries in half-open"
    assert used.id == "good" and served(attempts) == [("bad", 502), ("good", 200)]
    assert res.breaker_states()["bad"] == "open"
    assert res.breaker("bad").retry_after_s() == pytest.approx(10.0)


async def test_all_breakers_open_raises_circuit_open_with_the_soonest_retry():
    a, b = spec("a", "error-500"), spec("b", "error-502")
    res, backends, _, clock = setup(a, b, retries=0, failure_threshold=1, cooldown_s=30)
    with pytest.raises(BackendError):
        await res.complete([a], "chat", PAYLOAD)
    clock.now += 12
    with pytest.raises(BackendError):
        await res.complete([b], "chat", PAYLOAD)
    with pytest.raises(CircuitOpen) as e:
        await res.complete([a, b], "chat", PAYLOAD)
    assert e.value.status == 503 and e.value.code == "circuit_open"
    assert e.value.retry_after_s == pytest.approx(18.0)
    assert backends["a"].calls == 1 and backends["b"].calls == 1


async def test_bad_request_during_half_open_probe_frees_the_probe():
    m = spec("m", "bad-request-400")
    res, _, _, clock = setup(m, retries=0, failure_threshold=1, cooldown_s=5)
    res.breaker("m").record_failure()
    clock.now += 5
    with pytest.raises(BadRequest):
        await res.complete([m], "chat", PAYLOAD)
    assert res.breaker("m").state == "half_open" and res.breaker("m").allow()


# --- streams ---------------------------------------------------------------------------------

async def test_stream_returns_first_chunk_and_the_rest():
    m = spec("m", "fast")
    res, _, _, _ = setup(m)
    bstream, first, events, used, attempts = await res.stream([m], "chat", PAYLOAD)
    try:
        rest = await drain(events)
    finally:
        await bstream.aclose()
    assert first["choices"][0]["delta"]["content"] == "Hello"
    assert len(rest) == 6 and rest[-1]["usage"]["completion_tokens"] == 5
    assert used.id == "m" and served(attempts) == [("m", 200)]


async def test_stream_error_after_first_chunk_is_not_retried():
    m, good = spec("m", "err-in-stream"), spec("good", "fast")
    res, backends, _, _ = setup(m, good, retries=2)
    bstream, first, events, used, _ = await res.stream([m, good], "chat", PAYLOAD)
    assert used.id == "m" and first["choices"][0]["delta"]["content"] == "Hello"
    with pytest.raises(BackendError) as e:
        await drain(events)
    await bstream.aclose()
    assert "failed mid-stream" in e.value.message
    assert backends["m"].calls == 1 and backends["good"].calls == 0


async def test_stream_error_503_before_first_chunk_falls_back():
    m, good = spec("m", "error-503"), spec("good", "fast")
    res, backends, _, _ = setup(m, good, retries=1)
    bstream, first, events, used, attempts = await res.stream([m, good], "chat", PAYLOAD)
    await drain(events)
    await bstream.aclose()
    assert used.id == "good" and first is not None
    assert served(attempts) == [("m", 502), ("m", 502), ("good", 200)]
    assert backends["m"].calls == 2


async def test_stream_hang_before_first_chunk_times_out_with_504():
    m = spec("m", "hang", timeout_s=0.05)
    res, _, _, _ = setup(m, retries=0)
    with pytest.raises(BackendTimeout) as e:
        await res.stream([m], "chat", PAYLOAD)
    assert e.value.status == 504


async def test_stream_bad_request_is_not_retried():
    m, good = spec("m", "bad-request-400"), spec("good", "fast")
    res, backends, _, _ = setup(m, good, retries=2)
    with pytest.raises(BadRequest):
        await res.stream([m, good], "chat", PAYLOAD)
    assert backends["m"].calls == 1 and backends["good"].calls == 0
