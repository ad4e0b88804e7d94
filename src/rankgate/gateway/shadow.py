"""Shadow evaluation: a sampled share of live chat requests is also asked of other panel
models, off the request path, so they can be compared without gold answers.

``serve --shadow-rate R [--shadow-models m1,m2]``: when an answered chat request is sampled
(probability R), the request path hands it over with one ``put_nowait`` (``offer``) — nothing
else; the client's answer, latency and headers are decided before and never depend on it.
Up to ``--shadow-concurrency`` workers then send the same request (``max_tokens`` as the client
asked, capped at ``shadow_max_tokens``; one choice; not streamed) to every shadow model other
than the one that answered, through the runtime's backends, and store each answer as a
``shadow`` exchange beside the live one (``gateway/exchange_log.py``), priced by that model's
pricer. Shadow calls are never billed to the key (the limiter is not involved), never in the
request log, and bypass retries, fallbacks and circuit breakers (a shadow failure is stored as
an exchange with ``error`` and never opens a breaker live traffic relies on).

Bounded and capped, with every dropped call counted (``/metrics``
``rankgate_shadow_requests_total{outcome}``, ``/healthz`` ``shadow``): a full queue drops the
sampled request (``dropped_queue_full``); ``--shadow-max-usd-per-day`` caps shadow spend per
UTC day — each call reserves its estimate (``pricer.estimate``) before it runs and settles its
real cost after, and once a call would go over, shadow work is dropped (``dropped_cap``) until
the next UTC day (a model with no known price reserves nothing; its spend, when it reports
one, still counts). A model that cannot take the request (tools, images… it lacks) is
``skipped_incapable``. The cap is per gateway process.

Local models share the CPU with live traffic. A shadow call to a compute-priced backend (the
machine's own CPU) that exposes ``active_calls`` (llama.cpp:
``ThreadBudget.calls``, every local call waiting for or running on the shared threads) runs
only when no other local call is waiting or running — one local shadow call at a time — and is
cancelled (generation stops at the next token) as soon as a live call arrives: ``preempted``,
nothing stored. A call still loading weights is not cancelled (the live request needs them
too). A live request that arrives during a local shadow call so waits at most one poll
(``YIELD_POLL_S``) plus one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rankgate.backends.base import Result
from rankgate.gateway.exchange_log import LoggedRequest, PendingExchange
from rankgate.messages import needs, prompt_text

if TYPE_CHECKING:
    from rankgate.backends import Backend
    from rankgate.config import Settings
    from rankgate.gateway.auth import KeyInfo
    from rankgate.gateway.exchange_log import ExchangeLog
    from rankgate.gateway.metrics import Metrics
    from rankgate.runtime import PanelRuntime

log = logging.getLogger("rankgate.shadow")

OUTCOMES = ("done", "error", "preempted", "dropped_queue_full", "dropped_cap",
            "skipped_incapable", "cancelled")
YIELD_POLL_S = 0.005  # how often a local shadow call checks for live work
_NOT_SENT = ("model", "stream", "stream_options", "rankgate", "n", "max_tokens",
             "max_completion_tokens")


class Preempted(Exception):
    """A local shadow call gave way to live traffic."""


def shadow_models(panel_ids: list[str], wanted: list[str] | None) -> list[str]:
    """The models shadow calls may go to: ``wanted`` (checked against the panel; a
    ``ValueError`` names unknown ones) or every panel model."""
    if wanted is None:
        return list(panel_ids)
    unknown = [m for m in wanted if m not in panel_ids]
    if unknown:
        raise ValueError(f"unknown shadow model(s) {', '.join(unknown)}; the panel has "
                         f"{', '.join(panel_ids)}")
    if not wanted:
        raise ValueError("--shadow-models lists no model")
    return list(dict.fromkeys(wanted))


def _utc_day(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 86400)


@dataclass(slots=True)
class _Job:
    request: LoggedRequest
    targets: tuple[str, ...]


class Shadow:
    """The sampler, queue, workers and daily cap of shadow evaluation for one gateway."""

    def __init__(self, runtime: PanelRuntime, settings: Settings, models: list[str],
                 metrics: Metrics) -> None:
        self.runtime = runtime
        self.rate = settings.shadow_rate
        self.models = tuple(models)
        # the shadow models of a request answered by each model (request path: one lookup)
        self._others = {m: tuple(x for x in self.models if x != m)
                        for m in runtime.backends}
        self.metrics = metrics
        self.max_tokens = settings.shadow_max_tokens
        self.timeout_s = settings.shadow_timeout_s
        self.concurrency = settings.shadow_concurrency
        self.cap = settings.shadow_max_usd_per_day
        self.capacity = settings.shadow_queue
        self.exchanges: ExchangeLog | None = None  # set by the app factory
        self.counts = dict.fromkeys(OUTCOMES, 0)
        for outcome in OUTCOMES:  # every series exists from the start, at 0
            metrics.count_shadow(outcome, 0)
        self.spend_usd = 0.0  # all shadow spend since start (known costs)
        self.spend_by_model: dict[str, float] = {}
        self.day = _utc_day()
        self.day_spent = 0.0
        self.reserved = 0.0
        self.capped_day: int | None = None  # the UTC day the cap was reached
        self.running = 0
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=self.capacity)
        self._workers: list[asyncio.Task[None]] = []
        self._local = asyncio.Lock()  # one shadow call on local models at a time

    # -- request path ----------------------------------------------------------------------
    def sample(self) -> bool:
        return self.rate >= 1.0 or (self.rate > 0.0 and random.random() < self.rate)

    def offer(self, request: LoggedRequest, live_model: str, key: KeyInfo | None) -> bool:
        """Queue a sampled request for the shadow models (not ``live_model``, and only
        models ``key`` may use); never waits. False if there is nothing to do or it was
        dropped (counted)."""
        targets = self._others.get(live_model)
        if targets is None:
            targets = tuple(m for m in self.models if m != live_model)
        if key is not None and not key.admin and key.models is not None:
            targets = tuple(m for m in targets if m in key.models)
        if not targets:
            return False
        if self.capped_day is not None and self.capped_day == _utc_day():
            self._count("dropped_cap", len(targets))
            return False
        try:
            self._queue.put_nowait(_Job(request, targets))
        except asyncio.QueueFull:
            self._count("dropped_queue_full", len(targets))
            return False
        return True

    def _count(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n
        self.metrics.count_shadow(outcome, n)

    # -- the daily cap ---------------------------------------------------------------------
    def _reserve(self, estimate: float | None) -> bool:
        """Reserve a call's estimated cost against today's cap; False once it is reached."""
        today = _utc_day()
        if today != self.day:
            self.day, self.day_spent = today, 0.0
        if self.cap is None:
            return True
        if self.capped_day == today or (
                self.day_spent + self.reserved + (estimate or 0.0) > self.cap):
            self.capped_day = today
            return False
        self.reserved += estimate or 0.0
        return True

    def _release(self, estimate: float | None) -> None:
        if self.cap is not None:
            self.reserved = max(0.0, self.reserved - (estimate or 0.0))

    def _spend(self, model: str, usd: float | None) -> None:
        """Settle a call's real cost (unknown: nothing to count)."""
        if usd is None:
            return
        self.day_spent += usd
        self.spend_usd += usd
        self.spend_by_model[model] = self.spend_by_model.get(model, 0.0) + usd
        self.metrics.add_shadow_spend(model, usd)

    # -- workers ---------------------------------------------------------------------------
    def start(self) -> None:
        if not self._workers:
            loop = asyncio.get_running_loop()
            self._workers = [loop.create_task(self._work(), name=f"shadow-{i}")
                             for i in range(self.concurrency)]

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                for model in job.targets:
                    await self._one(job.request, model)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours: the worker goes on
                log.exception("shadow work on request %s failed", job.request.request_id)
            finally:
                self._queue.task_done()

    def _payload(self, body: dict[str, Any], backend: Backend) -> dict[str, Any]:
        """The client's request for another model: one choice, not streamed, max_tokens as
        asked but at most ``max_tokens`` (and the model's context window)."""
        out = {k: v for k, v in body.items() if k not in _NOT_SENT}
        name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        asked = body.get(name)
        limit = min(asked, self.max_tokens) if isinstance(asked, int) and asked > 0 \
            else self.max_tokens
        if backend.context_window:
            limit = min(limit, backend.context_window)
        out[name] = limit
        return out

    def _able(self, body: dict[str, Any], backend: Backend) -> bool:
        return not needs(body).missing(backend.capabilities)

    async def _one(self, req: LoggedRequest, model: str) -> None:
        backend = self.runtime.backends[model]
        pricer = self.runtime.pricers[model]
        if not self._able(req.body, backend):
            self._count("skipped_incapable")
            return
        payload = self._payload(req.body, backend)
        n_msgs = len(payload.get("messages") or ())
        estimate = pricer.estimate(len(prompt_text(payload)) // 4 + 4 * n_msgs, payload.get(
            "max_completion_tokens") or payload["max_tokens"])
        if not self._reserve(estimate):
            self._count("dropped_cap")
            return
        t0 = time.perf_counter()
        self.running += 1
        try:
            result = await self._call(backend, payload)
        except asyncio.CancelledError:
            self._count("cancelled")
            raise
        except Preempted:
            self._count("preempted")
            return
        except Exception as e:  # BackendError, a timeout, a bug in a backend
            message = getattr(e, "message", None) or f"{type(e).__name__}: {e}".rstrip(": ")
            if isinstance(e, TimeoutError):
                message = f"shadow call timed out after {self.timeout_s:g} s"
            self._count("error")
            self._store(PendingExchange(req, "shadow", model, None,
                                        latency_s=time.perf_counter() - t0, error=message))
            return
        finally:
            self.running -= 1
            self._release(estimate)
        usd = pricer.cost(result.usage.input_tokens, result.usage.output_tokens,
                          result.compute_s, result.usage.estimated).usd
        self._spend(model, usd)
        self._count("done")
        self._store(PendingExchange(req, "shadow", model, result.body, cost_usd=usd,
                                    latency_s=time.perf_counter() - t0,
                                    input_tokens=result.usage.input_tokens,
                                    output_tokens=result.usage.output_tokens))

    def _store(self, item: PendingExchange) -> None:
        if self.exchanges is not None:
            self.exchanges.submit(item)

    async def _call(self, backend: Backend, payload: dict[str, Any]) -> Result:
        if backend.capabilities.compute_priced and hasattr(backend, "active_calls"):
            return await self._call_yielding(backend, payload)
        return await asyncio.wait_for(backend.complete("chat", payload), self.timeout_s)

    async def _call_yielding(self, backend: Any, payload: dict[str, Any]) -> Result:
        """A local call that runs only while no other local call waits or runs, and is
        cancelled when one arrives (``Preempted``)."""
        deadline = time.monotonic() + self.timeout_s
        async with self._local:
            while backend.active_calls > 0:
                if time.monotonic() > deadline:
                    raise Preempted  # live traffic never left room for it
                await asyncio.sleep(YIELD_POLL_S)
            task = asyncio.ensure_future(backend.complete("chat", payload))
            try:
                while True:
                    done, _ = await asyncio.wait({task}, timeout=YIELD_POLL_S)
                    if done:
                        return task.result()
                    if backend.active_calls > 1 and backend.status().loaded:
                        raise Preempted
                    if time.monotonic() > deadline:
                        raise TimeoutError
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task

    async def close(self) -> None:
        """Stop the workers; calls in flight are cancelled (``cancelled``), queued requests
        are not shadowed."""
        for t in self._workers:
            t.cancel()
        for t in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._workers = []

    def stats(self) -> dict[str, Any]:
        return {"rate": self.rate, "models": list(self.models), **self.counts,
                "queued": self._queue.qsize(), "running": self.running,
                "capacity": self.capacity, "spend_usd": round(self.spend_usd, 9),
                "spend_usd_today": round(self.day_spent, 9), "max_usd_per_day": self.cap,
                "capped_today": self.capped_day == _utc_day()}
