"""The exchange log: what answered chat requests asked and got, redacted, written off the
request path.

With ``serve --log-bodies`` (or a key's ``log_bodies``), and for every request sampled for
shadow evaluation, an answered chat request leaves one ``live`` exchange
(``store/exchange_store.py``); ``gateway/shadow.py`` adds one ``shadow`` exchange per other
model it asked. The request path makes one call, ``record(call, answer)``, once the response
is decided: it builds a small object and does a ``put_nowait`` — redaction, capping, rendering
the answer's text and the database write all happen later, in one background writer task
that batches exchanges and writes them in its own thread (``add_exchanges``). A full queue
drops the exchange, never the response, and counts it (``/healthz`` → ``exchanges.dropped``,
``/metrics`` → ``rankgate_exchange_log_dropped``).

What is logged: chat completions (stream and non-stream) that were answered (status 200) by a
model. Not logged: errors, text completions, and answers from the cache — those were produced
for another request (which is logged, if its body was), cost nothing, and logging them again
would count one answer twice when the exchanges are judged.

Each stored exchange: ``messages`` = the request's messages with every string redacted
(``gateway/redaction.py``) and cut at ``body_max_chars`` (``data:…;base64,`` blobs replaced by
a note of their size); ``prompt`` = ``messages.prompt_text`` of those; ``answer`` = the first
choice's message as ``messages.message_text`` renders it (tool calls included), redacted and
cut; ``truncated`` = something was cut. Cost, latency and tokens are those of that model's
call (the live one's latency: arrival to response decided, as the client saw it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rankgate.gateway.redaction import Redactor
from rankgate.messages import message_text, prompt_text
from rankgate.store.exchange_store import Exchange, Role, add_exchanges

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from rankgate.config import Settings
    from rankgate.gateway.completions import RequestRecord
    from rankgate.gateway.shadow import Shadow

log = logging.getLogger("rankgate.exchanges")

BATCH_MAX = 200
BATCH_WAIT_S = 0.1  # gather exchanges this long per write: fewer commits (nothing waits on them)
WRITE_TRIES = 4  # a batch the database refuses this many times is dropped (counted)
_DATA_URL = re.compile(r"data:[^,;]{0,100}(?:;[^,;]{0,100})*;base64,")
REDACT_MARGIN = 512  # chars kept past the cap while redacting, so no secret is cut in half

#: what ``decide`` returns: log the live exchange only, or also ask the shadow models
Plan = Literal["log", "shadow"]


@dataclass(slots=True)
class LoggedRequest:
    """One answered chat request whose body is logged; its live and shadow exchanges share it.
    ``body`` is the validated request as the client sent it — never stored as is."""

    request_id: str
    ts: float
    key_id: str | None
    router: str | None
    body: dict[str, Any]
    # (messages, prompt, truncated) once redacted; only the writer thread sets it
    redacted: tuple[list[dict[str, Any]], str, bool] | None = None


@dataclass(slots=True)
class PendingExchange:
    """An exchange not yet redacted or rendered. ``answer``: an OpenAI ``chat.completion``
    body, a ``StreamTap`` of a finished stream, or None when the call failed (``error``)."""

    request: LoggedRequest
    role: Role
    model: str
    answer: Any
    cost_usd: float | None = None
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None


class StreamTap:
    """Passes a stream's chunks through unchanged and keeps them, so the answer can be logged
    once the stream has ended. Only streams whose body will be logged are tapped."""

    __slots__ = ("_events", "chunks", "plan")

    def __init__(self, events: AsyncIterator[dict[str, Any]], plan: Plan) -> None:
        self._events = events
        self.plan = plan
        self.chunks: list[dict[str, Any]] = []

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._events:
            self.chunks.append(chunk)
            yield chunk

    def message(self) -> tuple[dict[str, Any], str | None]:
        """The first choice's assistant message assembled from its deltas (content, refusal
        and tool calls merged by index), and its finish reason."""
        content: list[str] = []
        refusal: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish = None
        for chunk in self.chunks:
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                finish = choice.get("finish_reason") or finish
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    content.append(delta["content"])
                if isinstance(delta.get("refusal"), str):
                    refusal.append(delta["refusal"])
                for tc in delta.get("tool_calls") or ():
                    if not isinstance(tc, dict):
                        continue
                    slot = calls.setdefault(int(tc.get("index", len(calls))),
                                            {"function": {"name": "", "arguments": ""}})
                    fn = tc.get("function") or {}
                    slot["function"]["name"] += fn.get("name") or ""
                    slot["function"]["arguments"] += fn.get("arguments") or ""
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
        if refusal:
            msg["refusal"] = "".join(refusal)
        if calls:
            msg["tool_calls"] = [calls[i] for i in sorted(calls)]
        return msg, finish


def _choice(answer: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(message, finish_reason) of an answer's first choice."""
    if isinstance(answer, StreamTap):
        return answer.message()
    if not isinstance(answer, dict):
        return None, None
    for choice in answer.get("choices") or ():
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            msg = choice.get("message")
            return (msg if isinstance(msg, dict) else {}), choice.get("finish_reason")
    return None, None


@dataclass
class _Redacting:
    """Redact then cap, for one exchange; remembers whether anything was cut."""

    redactor: Redactor
    cap: int
    truncated: bool = False

    def text(self, s: str) -> str:
        m = _DATA_URL.match(s)
        if m is not None and len(s) > 200:  # an inline image/audio/file: keep only its type
            self.truncated = True
            return f"{m.group()}[{len(s) - m.end()} characters omitted]"
        if len(s) > self.cap + REDACT_MARGIN:
            s = s[: self.cap + REDACT_MARGIN]
        s = self.redactor.text(s)
        if len(s) > self.cap:
            self.truncated = True
            s = s[: self.cap]
        return s

    def value(self, v: Any) -> Any:
        return self.redactor.value(v, self.text)


@dataclass
class ExchangeStats:
    written: int = 0
    dropped: int = 0  # the queue was full
    shadow_dropped: int = 0  # of which: shadow answers
    failed: int = 0  # could not be rendered or written (logged)
    in_flight: int = 0  # taken off the queue, not yet written


class ExchangeLog:
    """Decides which requests' bodies are logged, queues them, and writes them in the
    background. ``start`` / ``close`` run in the app's lifespan."""

    def __init__(self, engine: Engine, settings: Settings, shadow: Shadow | None = None
                 ) -> None:
        self.engine = engine
        self.default = settings.log_bodies
        self.cap = settings.body_max_chars
        self.redactor = Redactor(settings.redact_patterns)
        self.shadow = shadow
        self.capacity = settings.exchange_queue_size
        self._queue: asyncio.Queue[PendingExchange] = asyncio.Queue(maxsize=self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exchange-log")
        self._task: asyncio.Task[None] | None = None
        self.counts = ExchangeStats()

    # -- request path ----------------------------------------------------------------------
    def decide(self, call: RequestRecord) -> Plan | None:
        """Whether this request's exchange is logged, and shadowed: the key's own setting
        wins over the server's; a key that says never (``log_bodies=false``) is never
        shadowed either (shadowing sends its messages to other models)."""
        if call.kind != "chat":
            return None
        own = call.key.log_bodies if call.key is not None else None
        if own is not False and self.shadow is not None and self.shadow.sample():
            return "shadow"
        if own or (own is None and self.default):
            return "log"
        return None

    def collect(self, call: RequestRecord, events: AsyncIterator[dict[str, Any]]
                ) -> AsyncIterator[dict[str, Any]]:
        """A stream's events, tapped if its body will be logged (else returned as is)."""
        try:
            plan = self.decide(call)
        except Exception:  # never fail a request over logging
            log.exception("exchange log: decide failed for request %s", call.id)
            return events
        return events if plan is None else StreamTap(events, plan)

    def record(self, call: RequestRecord, answer: Any) -> None:
        """The request path's one call, once an answer is decided: ``answer`` is the response
        body (non-stream) or the stream's events as ``collect`` returned them. Queues the live
        exchange (and the shadow work) without waiting; never raises."""
        try:
            if call.status != 200 or call.cache is not None or call.kind != "chat":
                return
            plan = answer.plan if isinstance(answer, StreamTap) else (
                None if call.stream else self.decide(call))
            if plan is None:
                return
            if self._queue.full():
                self._drop()
                return
            u, cost, d = call.usage, call.cost, call.decision
            req = LoggedRequest(call.id, call.ts, call.key.id if call.key else None,
                                d.router if d else None, call.body)
            if plan == "shadow":
                assert self.shadow is not None
                if not self.shadow.offer(req, call.model or "", call.key) and not (
                        self._logs_by_setting(call)):
                    return
            self._queue.put_nowait(PendingExchange(
                req, "live", call.model or "", answer,
                cost_usd=cost.usd if cost else None,
                latency_s=time.perf_counter() - call.t0,
                input_tokens=u.input_tokens if u else None,
                output_tokens=u.output_tokens if u else None))
        except Exception:
            log.exception("exchange log: record failed for request %s", call.id)

    def _logs_by_setting(self, call: RequestRecord) -> bool:
        own = call.key.log_bodies if call.key is not None else None
        return bool(own or (own is None and self.default))

    def _drop(self, shadow: bool = False) -> None:
        self.counts.dropped += 1
        if shadow:
            self.counts.shadow_dropped += 1
        if self.counts.dropped == 1 or self.counts.dropped % 1000 == 0:
            log.warning("exchange log queue full (%d): %d exchange(s) dropped so far",
                        self.capacity, self.counts.dropped)

    def submit(self, item: PendingExchange) -> bool:
        """Queue an exchange from background work (shadow answers); False if dropped."""
        try:
            self._queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            self._drop(shadow=item.role == "shadow")
            return False

    # -- writer ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="exchange-log")

    def _request_text(self, req: LoggedRequest) -> tuple[list[dict[str, Any]], str, bool]:
        if req.redacted is None:
            r = _Redacting(self.redactor, self.cap)
            msgs = [r.value(m) for m in req.body.get("messages") or () if isinstance(m, dict)]
            req.redacted = (msgs, prompt_text({"messages": msgs}), r.truncated)
        return req.redacted

    def render(self, p: PendingExchange) -> Exchange:
        """The exchange as stored: redacted, capped, the answer rendered as text."""
        msgs, prompt, cut = self._request_text(p.request)
        message, finish = _choice(p.answer)
        r = _Redacting(self.redactor, self.cap)
        answer = r.text(message_text(message)) if message is not None else None
        req = p.request
        return Exchange(
            request_id=req.request_id, ts=req.ts, role=p.role, model=p.model, messages=msgs,
            prompt=prompt, answer=answer, key_id=req.key_id, router=req.router,
            truncated=cut or r.truncated, cost_usd=p.cost_usd, latency_s=p.latency_s,
            input_tokens=p.input_tokens, output_tokens=p.output_tokens,
            finish_reason=finish if isinstance(finish, str) else None,
            error=r.text(p.error) if p.error else None)

    def _write(self, batch: list[PendingExchange]) -> int:
        rows = []
        for p in batch:
            try:
                rows.append(self.render(p))
            except Exception:
                self.counts.failed += 1
                log.exception("exchange of request %s could not be rendered; dropped",
                              p.request.request_id)
        delay = 0.05
        for attempt in range(WRITE_TRIES):
            try:
                return add_exchanges(self.engine, rows)
            except Exception:
                if attempt == WRITE_TRIES - 1:
                    self.counts.failed += len(rows)
                    log.exception("exchange log: a batch of %d could not be written; dropped",
                                  len(rows))
                    return 0
                time.sleep(delay)
                delay *= 4
        return 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            self.counts.in_flight = 1  # counted as queued while the batch gathers
            await asyncio.sleep(BATCH_WAIT_S)
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self.counts.in_flight = len(batch)
            try:
                self.counts.written += await loop.run_in_executor(self._executor, self._write,
                                                                  batch)
            except Exception:
                log.exception("exchange log writer failed")
            finally:
                self.counts.in_flight = 0
                for _ in batch:
                    self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every exchange queued so far is written (or dropped as failed)."""
        await self._queue.join()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued (bounded by ``timeout_s``), then stop the writer."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    def stats(self) -> dict[str, int]:
        s = self.counts
        return {"written": s.written, "queued": self._queue.qsize() + s.in_flight,
                "dropped": s.dropped, "shadow_dropped": s.shadow_dropped, "failed": s.failed,
                "capacity": self.capacity, "log_bodies_default": int(self.default)}
