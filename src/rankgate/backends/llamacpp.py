"""Local GGUF models run in-process by llama-cpp-python.

* One ``Llama`` per model, loaded lazily on first use and kept.
* Concurrent requests to one model share its decode steps (``llamacpp_batch.BatchEngine``:
  ``local_slots`` sequences per model, continuous batching). With ``local_slots = 0`` the
  model serves one request at a time through llama-cpp-python's own loop, behind a per-model
  ``asyncio.Lock`` (a ``Llama`` is not thread-safe) — the behaviour before batching, kept
  for comparison (``bench/panel_speed.py``) and as a fallback.
* A shared ``ThreadBudget``: every decode step (batched) or generation (serial) holds a CPU
  slot, and slots × threads-per-call never exceeds the machine's cores, so two models never
  oversubscribe two CPUs.
* Token logprobs are read straight from llama.cpp's logits at each sampling step (a ``Llama``
  subclass taps ``sample``), so they are exact without ``logits_all=True``, which would cost
  n_ctx × n_vocab floats of memory and slow prompt evaluation.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rankgate.backends.base import (
    BackendError,
    BackendNotInstalled,
    BackendStatus,
    BadRequest,
    Capabilities,
    ContextOverflow,
    Kind,
    Result,
    StreamStats,
    Usage,
)
from rankgate.backends.llamacpp_batch import BatchEngine, EngineLlama
from rankgate.backends.llamacpp_tools import (
    as_chunks,
    extract_tool_calls,
    forced_call_grammar,
    native_messages,
    template_calls_tools,
    wants_tools,
)
from rankgate.backends.resources import Resources
from rankgate.extras import MissingExtra, installed, require
from rankgate.local_models import BUNDLED, model_path, status
from rankgate.messages import plain_messages
from rankgate.panel import ModelSpec

DEFAULT_CONTEXT = 8192
_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


class ThreadBudget:
    """CPU threads shared by every local model in the process.

    ``calls`` is the public hook for background work (shadow evaluation,
    ``gateway/shadow.py``): the number of local-model calls, of any model on this budget,
    waiting for or running on its threads — a ``complete`` from entry to return, a stream from
    ``stream()`` until it is closed. A background caller starts only when it would be the
    only one and cancels its call (generation stops at the next token) when another arrives.
    """

    def __init__(self, total_threads: int, threads_per_call: int | None = None) -> None:
        self.threads_per_call = max(1, min(threads_per_call or total_threads, total_threads))
        self.slots = max(1, total_threads // self.threads_per_call)
        self._sem = asyncio.Semaphore(self.slots)
        self.executor = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="llama")
        # the same slots for threads: a batch engine's decode step holds one
        self.cpu = threading.BoundedSemaphore(self.slots)
        # threads that only wait for a batch engine's tokens (cheap; one per request in flight)
        self.waiters = ThreadPoolExecutor(max_workers=256, thread_name_prefix="llama-wait")
        self.calls = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._sem:
            yield

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.waiters.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Tap:
    """Collects what llama.cpp sampled, token by token (filled from the worker thread)."""

    top_logprobs: int | None  # None: don't record logprobs
    prompt_tokens: int = 0
    tokens: list[int] = field(default_factory=list)
    logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    first_token_at: float | None = None  # perf_counter when the first token was sampled

    def on_token(self, token: int, logits: np.ndarray | None) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.tokens.append(token)
        if logits is None:
            return
        top = max(self.top_logprobs or 0, 0)
        m = float(logits.max())
        lse = m + float(np.log(np.exp(logits - m).sum()))
        best: list[tuple[int, float]] = []
        if top:
            ids = np.argpartition(-logits, top)[:top]
            ids = ids[np.argsort(-logits[ids])]
            best = [(int(i), float(logits[i]) - lse) for i in ids]
        self.logprobs.append((float(logits[token]) - lse, best))


def _tapped_llama_class() -> type:
    """A ``Llama`` that reports every sampled token (and its logits) to ``self.tap``.

    Built lazily so importing rankgate never imports llama_cpp (a base install has none:
    it comes with the ``local`` extra).
    """
    llama_cpp = require("llama_cpp")

    class TappedLlama(llama_cpp.Llama):  # type: ignore[misc]
        tap: _Tap | None = None

        def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
            tap = self.tap
            if tap is not None:
                tap.prompt_tokens = len(tokens)
            for token in super().generate(tokens, *args, **kwargs):
                if tap is not None and tap.cancelled.is_set():
                    return
                yield token

        def sample(self, *args: Any, **kwargs: Any) -> int:
            tap = self.tap
            if tap is None:
                return super().sample(*args, **kwargs)
            logits = None
            if tap.top_logprobs is not None:
                idx = kwargs.get("idx")
                ridx = idx - self.n_tokens if idx is not None else -1
                ptr = llama_cpp.llama_get_logits_ith(self._ctx.ctx, ridx)
                logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).copy()
            token = super().sample(*args, **kwargs)
            tap.on_token(int(token), logits)
            return token

    return TappedLlama


_SAMPLING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "stop": "stop",
}
_CHAT_ONLY = {"response_format"}


def _llama_kwargs(kind: Kind, payload: dict[str, Any], native_tools: bool = False
                  ) -> dict[str, Any]:
    """Translate an OpenAI request body into llama-cpp-python keyword arguments.
    ``native_tools``: the model's template takes tools, and this request offers some."""
    if payload.get("n") not in (None, 1):
        raise BadRequest("local models generate one choice per request; use n=1", param="n")
    kw: dict[str, Any] = {k_out: payload[k_in] for k_in, k_out in _SAMPLING.items()
                          if payload.get(k_in) is not None}
    kw.setdefault("temperature", 1.0)  # OpenAI's default, not llama.cpp's
    kw.setdefault("top_p", 1.0)
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    kw["max_tokens"] = max_tokens
    if kind == "chat" and native_tools:
        kw["messages"] = native_messages(payload["messages"])
        kw["tools"] = payload["tools"]
        if (grammar := forced_call_grammar(payload)) is not None:
            kw["grammar"] = grammar
    elif kind == "chat":
        # GGUF chat templates know {role, content: str}: content parts, null content, tool
        # calls and tool results are rendered as text (the gateway refused media and tools)
        kw["messages"] = plain_messages(payload["messages"])
        kw.update({k: payload[k] for k in _CHAT_ONLY if payload.get(k) is not None})
    else:
        kw["prompt"] = payload["prompt"]
    return kw


def _wanted_logprobs(kind: Kind, payload: dict[str, Any]) -> int | None:
    """None if no logprobs were asked for, else how many alternatives per token."""
    if kind == "chat":
        if not payload.get("logprobs"):
            return None
        return int(payload.get("top_logprobs") or 0)
    lp = payload.get("logprobs")
    return None if lp is None or lp is False else int(lp)


class LocalWeights:
    """One GGUF file loaded once, however many panel entries use it (variants of a model
    share its weights), with the lock that serialises generations on it."""

    def __init__(self, path: Path, n_ctx: int, budget: ThreadBudget, slots: int = 0) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self.budget = budget
        self.slots = slots  # sequences decoded together; 0: one request at a time (serial)
        self.llama: Any = None
        self.engine: BatchEngine | None = None
        self.lock = asyncio.Lock()  # loading (batched) / loading and every generation (serial)
        # read from the file's chat template, before loading (routing needs it up front)
        self.calls_tools = template_calls_tools(path) if path.is_file() else False
        self.runnable = installed("llama_cpp")  # False on a base install (no [local] extra)

    def _load(self, model_id: str) -> Any:
        try:  # first: without llama-cpp-python, weights would not help
            cls = _tapped_llama_class()
        except MissingExtra as e:
            raise BackendNotInstalled(f"{model_id}: {e}") from None
        if not self.path.is_file():
            raise BackendError(f"model file for {model_id!r} is missing: {self.path}; "
                               "run: rankgate panel prepare")
        threads = self.budget.threads_per_call
        llama = cls(
            model_path=str(self.path),
            # batched: the engine has its own context; this one only serves the tokenizer
            n_ctx=self.n_ctx if not self.slots else min(self.n_ctx, 512),
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        if self.slots:
            try:
                self.engine = BatchEngine(llama, self.n_ctx, self.slots, threads,
                                          self.budget.cpu, self.budget.executor)
            except BaseException:
                llama.close()
                raise
        return llama

    async def loaded(self, model_id: str) -> Any:
        """The model, loading it on first use (caller holds ``self.lock``)."""
        if self.llama is None:
            loop = asyncio.get_running_loop()
            self.llama = await loop.run_in_executor(self.budget.executor, self._load, model_id)
        return self.llama

    async def ready(self, model_id: str) -> Any:
        """The model, loading it (under the lock) if nobody has yet."""
        if self.llama is None:
            async with self.lock:
                return await self.loaded(model_id)
        return self.llama

    async def close(self) -> None:
        async with self.lock:
            if self.engine is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.engine.close)
                self.engine = None
            if self.llama is not None:
                with contextlib.suppress(Exception):
                    self.llama.close()
                self.llama = None


def validate(spec: ModelSpec) -> None:
    """Panel fields of a llamacpp model: exactly one of ``path``/``bundled``, no URL."""
    if (spec.path is None) == (spec.bundled is None):
        raise ValueError("llamacpp models need exactly one of 'path' or 'bundled'")
    if spec.bundled is not None and spec.bundled not in BUNDLED:
        raise ValueError(f"unknown bundled model {spec.bundled!r} (known: {', '.join(BUNDLED)})")
    if spec.base_url or spec.api_key_env:
        raise ValueError("'base_url'/'api_key_env' only apply to backend 'openai'")


def build(spec: ModelSpec, res: Resources) -> LlamaCppBackend:
    """The backend of a bundled or user-supplied GGUF model; weights shared by file."""
    if spec.bundled:
        bundled = BUNDLED[spec.bundled]
        path, default_ctx = model_path(bundled, res.settings.home), bundled.context_window
    else:
        assert spec.path
        path, default_ctx = Path(spec.path).expanduser(), None
    n_ctx = spec.context_window or default_ctx or DEFAULT_CONTEXT
    key = (str(path.resolve()), n_ctx)
    weights = res.weights.get(key)
    if weights is None:
        weights = res.weights[key] = LocalWeights(path, n_ctx, res.budget,
                                                  res.settings.local_slots)
    return LlamaCppBackend(spec, weights, res.settings.home)


class LlamaCppBackend:
    """A bundled or user-supplied GGUF model served in-process."""

    def __init__(self, spec: ModelSpec, weights: LocalWeights, home: Path) -> None:
        self.spec = spec
        self.capabilities = spec.narrow(Capabilities(
            streaming=True, logprobs=True, tools=weights.calls_tools, images=False,
            audio=False, files=False, max_concurrency=max(1, weights.slots),
            compute_priced=True))
        self.home = home  # RANKGATE_HOME: where bundled weights are assembled
        self.weights = weights
        self.budget = weights.budget
        self.model_path = weights.path
        self.n_ctx = weights.n_ctx
        self.context_window: int | None = weights.n_ctx
        self._lock = weights.lock

    async def _loaded(self) -> Any:
        """The model, loading it on first use (caller holds ``self._lock``)."""
        return await self.weights.loaded(self.spec.id)

    async def load(self) -> None:
        """Load now instead of on the first request (``serve --preload``); a missing file
        is left for the first request to report."""
        if not self.model_path.is_file():
            return
        async with self._lock:
            await self._loaded()

    @property
    def loaded(self) -> bool:
        return self.weights.llama is not None

    @property
    def active_calls(self) -> int:
        """Calls waiting for or running on the CPU threads this model shares with every local
        model (``ThreadBudget.calls``): what background work yields to."""
        return self.budget.calls

    def status(self, thorough: bool = False) -> BackendStatus:
        """Ready when the weights file exists (a stat, cheap enough for ``/healthz``); when it
        does not, a bundled model says which command fixes it. ``thorough`` also checks a
        bundled file's size and GGUF magic (``rankgate panel list``)."""
        if not self.weights.runnable:
            f = self.model_path
            return BackendStatus(False, False, str(f), f.stat().st_size if f.is_file() else None,
                                 str(MissingExtra("llama_cpp")))
        if thorough and self.spec.bundled:
            st = status(BUNDLED[self.spec.bundled], self.home)
            return BackendStatus(st.ready, self.loaded, str(st.path), st.size, st.problem)
        f = self.model_path
        size = f.stat().st_size if f.is_file() else None
        note = None
        if size is None:
            note = status(BUNDLED[self.spec.bundled], self.home).problem if self.spec.bundled \
                else "file missing"
        return BackendStatus(size is not None, self.loaded, str(f), size, note)

    # -- running -------------------------------------------------------------------------
    def _call(self, llama: Any, kind: Kind, kw: dict[str, Any], tap: _Tap) -> Any:
        llama.tap = tap
        serial = not isinstance(llama, EngineLlama) and not kw.get("stream")
        try:
            with self.budget.cpu if serial else contextlib.nullcontext():
                if kind == "chat":
                    return llama.create_chat_completion(**kw)
                return llama.create_completion(**kw)
        except ValueError as e:
            raise self._translate(e) from None
        finally:
            if not kw.get("stream"):
                llama.tap = None

    def _translate(self, e: ValueError) -> BadRequest:
        """llama-cpp-python reports bad requests as ValueError; give them a status."""
        m = _OVERFLOW.search(str(e))
        if m:
            return ContextOverflow(int(m.group(1)), int(m.group(2)), self.spec.id)
        return BadRequest(f"{self.spec.id}: {e}")

    def _usage(self, tap: _Tap, eos_stopped: bool) -> Usage:
        n = len(tap.tokens) - (1 if eos_stopped and tap.tokens else 0)
        return Usage(tap.prompt_tokens, max(n, 0))

    def _native_tools(self, kind: Kind, payload: dict[str, Any]) -> bool:
        return kind == "chat" and self.capabilities.tools and wants_tools(payload)

    async def complete(self, kind: Kind, payload: dict[str, Any]) -> Result:
        self.budget.calls += 1
        try:
            return await self._complete(kind, payload)
        finally:
            self.budget.calls -= 1

    async def _complete(self, kind: Kind, payload: dict[str, Any]) -> Result:
        tools = self._native_tools(kind, payload)
        kw = _llama_kwargs(kind, payload, tools)
        tap = _Tap(_wanted_logprobs(kind, payload))
        body, llama, compute_s, t0 = await self._generate(kind, kw, tap)
        eog = bool(tap.tokens) and self._is_eog(llama, tap.tokens[-1])
        if tap.top_logprobs is not None:
            self._attach_logprobs(llama, kind, body, tap, eog)
        if tools:
            extract_tool_calls(body, {t["function"]["name"] for t in payload["tools"]})
        usage = body.get("usage") or {}
        return Result(
            body=body,
            usage=Usage(usage.get("prompt_tokens"), usage.get("completion_tokens")),
            compute_s=compute_s,
            ttft_s=tap.first_token_at - t0 if tap.first_token_at is not None else None,
        )

    async def _generate(self, kind: Kind, kw: dict[str, Any], tap: _Tap
                        ) -> tuple[dict[str, Any], Any, float, float]:
        """One whole answer: (body, the ``Llama`` that made it, compute seconds, start).

        Batched, the request joins the engine's next step and its compute is its share of
        each step; serial, it waits for the model's lock and a CPU slot and its compute is
        its wall time on them."""
        loop = asyncio.get_running_loop()
        if self.weights.slots:
            llama = await self.weights.ready(self.spec.id)
            assert self.weights.engine is not None
            view = EngineLlama(llama, self.weights.engine, tap)
            t0 = time.perf_counter()
            fut = loop.run_in_executor(self.budget.waiters,
                                       partial(self._call, view, kind, kw, tap))
            body = await self._finished(fut, tap)
            return body, view, view.compute_s, t0
        async with self._lock, self.budget.slot():
            llama = await self._loaded()
            t0 = time.perf_counter()
            fut = loop.run_in_executor(self.budget.executor,
                                       partial(self._call, llama, kind, kw, tap))
            body = await self._finished(fut, tap)
            return body, llama, time.perf_counter() - t0, t0

    async def _finished(self, fut: asyncio.Future[Any], tap: _Tap) -> Any:
        """``fut``'s result; if the caller is cancelled, the generation stops at its next
        token and the model is released before the cancellation propagates."""
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            tap.cancelled.set()
            if self.weights.engine is not None:
                self.weights.engine.wake()
            with contextlib.suppress(BaseException):
                await fut
            raise

    @staticmethod
    def _is_eog(llama: Any, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(llama._model.vocab, token))

    def _attach_logprobs(self, llama: Any, kind: Kind, body: dict[str, Any], tap: _Tap,
                         eog: bool) -> None:
        """Put OpenAI-shaped logprobs on the single choice of ``body``."""
        n = len(tap.logprobs) - (1 if eog else 0)

        def text(tok: int) -> str:
            return llama.detokenize([tok]).decode("utf-8", errors="replace")

        if kind == "chat":
            content = []
            for tok, (lp, top) in zip(tap.tokens[:n], tap.logprobs[:n], strict=True):
                s = text(tok)
                content.append({
                    "token": s, "logprob": lp, "bytes": list(s.encode()),
                    "top_logprobs": [{"token": text(t), "logprob": v,
                                      "bytes": list(text(t).encode())} for t, v in top],
                })
            body["choices"][0]["logprobs"] = {"content": content, "refusal": None}
        else:
            toks = [text(t) for t in tap.tokens[:n]]
            offsets, pos = [], 0
            for s in toks:
                offsets.append(pos)
                pos += len(s)
            body["choices"][0]["logprobs"] = {
                "tokens": toks,
                "token_logprobs": [lp for lp, _ in tap.logprobs[:n]],
                "top_logprobs": [{text(t): v for t, v in top} for _, top in tap.logprobs[:n]],
                "text_offset": offsets,
            }

    async def stream(self, kind: Kind, payload: dict[str, Any]) -> _LlamaStream | _Replay:
        if self._native_tools(kind, payload):
            # tool calls are known only once the answer is complete: generate, then replay
            result = await self.complete(kind, payload)
            return _Replay(as_chunks(result.body), result.usage, result.compute_s)
        kw = _llama_kwargs(kind, payload)
        kw["stream"] = True
        s = _LlamaStream(self, kind, kw)
        await s.start()
        return s

    async def aclose(self) -> None:
        await self.weights.close()


_DONE = object()


class _Replay:
    """A finished answer handed out as stream chunks (a tool-call answer, parsed whole)."""

    def __init__(self, chunks: list[dict[str, Any]], usage: Usage, compute_s: float) -> None:
        self.chunks = chunks
        self.stats = StreamStats(usage, compute_s)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        return None


class _LlamaStream:
    """Runs one streamed generation in a worker thread and hands chunks to the event loop.

    The model lock and thread slot are held from ``start`` until the worker finishes, whether
    the stream ends, fails or the client goes away (``aclose`` stops the worker at the next
    token).
    """

    def __init__(self, backend: LlamaCppBackend, kind: Kind, kw: dict[str, Any]) -> None:
        self.backend = backend
        self.kind = kind
        self.kw = kw
        self.stats = StreamStats()
        self.tap = _Tap(None)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stack = contextlib.AsyncExitStack()
        self._worker: asyncio.Future[None] | None = None
        self._t0 = 0.0
        self._counted = False  # this stream is in ``ThreadBudget.calls``

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.backend.budget.calls -= 1

    async def start(self) -> None:
        self._counted = True
        backend = self.backend
        backend.budget.calls += 1
        try:
            if backend.weights.slots:
                llama = await backend.weights.ready(backend.spec.id)
                assert backend.weights.engine is not None
                llama = EngineLlama(llama, backend.weights.engine, self.tap)
                executor = backend.budget.waiters
            else:
                await self._stack.enter_async_context(backend._lock)
                await self._stack.enter_async_context(backend.budget.slot())
                llama = await backend._loaded()
                executor = backend.budget.executor
        except BaseException:
            await self._stack.aclose()
            self._uncount()
            raise
        loop = asyncio.get_running_loop()
        self._t0 = time.perf_counter()
        self._worker = loop.run_in_executor(executor, self._run, loop, llama)
        # surface errors that happen before the first token (context overflow...) as HTTP errors
        first = await self._queue.get()
        self._first = first
        if isinstance(first, BaseException):
            await self._finish()
            raise first

    def _run(self, loop: asyncio.AbstractEventLoop, llama: Any) -> None:
        put = partial(loop.call_soon_threadsafe, self._queue.put_nowait)
        batched = isinstance(llama, EngineLlama)
        try:
            with contextlib.nullcontext() if batched else self.backend.budget.cpu:
                for chunk in self.backend._call(llama, self.kind, self.kw, self.tap):
                    if self.tap.cancelled.is_set():
                        break
                    put(chunk)
        except ValueError as e:  # raised lazily, on the first iteration
            put(self.backend._translate(e))
        except BaseException as e:  # handed to the consumer, never lost
            put(e)
        finally:
            llama.tap = None
            eog = bool(self.tap.tokens) and self.backend._is_eog(llama, self.tap.tokens[-1])
            self.stats.usage = self.backend._usage(self.tap, eog)
            self.stats.compute_s = llama.compute_s if batched \
                else time.perf_counter() - self._t0
            put(_DONE)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        item = self._first
        try:
            while item is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
                item = await self._queue.get()
        finally:
            await self._finish()

    async def _finish(self) -> None:
        self.tap.cancelled.set()
        if self.backend.weights.engine is not None:
            self.backend.weights.engine.wake()
        if self._worker is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._worker)
        await self._stack.aclose()
        self._uncount()

    async def aclose(self) -> None:
        await self._finish()
