"""Continuous batching for a local GGUF model: concurrent requests share each llama.cpp decode.

Why: on a CPU a small model is memory-bound — each decode step reads every weight once,
whatever the number of sequences in the batch — so four users decoding together cost little
more than one. llama-cpp-python's ``Llama`` decodes one sequence at a time; this engine drives
llama.cpp's own multi-sequence batches through its C API, in the same process, sharing the
``Llama``'s loaded weights (no second copy, no subprocess to supervise).

* One engine thread per loaded GGUF file owns a llama.cpp context with ``slots`` sequences,
  each with its own cache of the full context window (``kv_unified`` off: n_ctx = window ×
  slots).
* Each step is one batch: the last sampled token of every decoding sequence plus a chunk of
  the prompt of sequences still reading theirs (chunked prefill: a long prompt never stalls
  the others for more than one step).
* Sampling is llama.cpp's sampler chain, built per sequence exactly as llama-cpp-python builds
  it (penalties → grammar → greedy, or top-k → typical → top-p → min-p → temperature → dist),
  so a temperature-0 answer is the same greedy decode, and grammars (tool calls, JSON mode)
  work unchanged.
* A finished sequence leaves its KV cache in its slot; the next request goes to the free slot
  sharing the longest prefix with its prompt and reads only the rest (llama-cpp-python does
  the same for its single sequence; evaluations with one system prompt rely on it).
* Each step's CPU time is split among its sequences by their token count. That share, not the
  wall time a request spent beside others, is its ``compute_s`` (what a local answer is billed).

:class:`EngineLlama` puts the engine behind the ``Llama`` calls llama-cpp-python's chat
handlers make (``tokenize``, ``create_completion``), so chat templates, tool prompts, JSON
grammars and response shapes stay llama-cpp-python's own.
"""

from __future__ import annotations

import codecs
import contextlib
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from rankgate.backends.base import BackendError

PREFILL_CHUNK = 512
"""Tokens one step may spend on prompts (llama.cpp's n_batch): a long prompt is read in
chunks of this size while the other sequences keep decoding."""

_PENALTY_LAST_N = 64  # llama-cpp-python's ``last_n_tokens_size`` default


class EngineStopped(BackendError):
    """The model was shut down (gateway stopping) while a request waited or generated: a
    503 the client may retry elsewhere, never a hang."""

    status = 503
    code = "model_not_ready"


class TokenSink(Protocol):
    """Where the engine reports each sampled token (``llamacpp._Tap``)."""

    top_logprobs: int | None
    prompt_tokens: int
    cancelled: threading.Event

    def on_token(self, token: int, logits: Any) -> None: ...


@dataclass
class Sampling:
    """Sampler settings of one request, with llama-cpp-python's ``create_completion`` defaults."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    grammar: Any = None  # a llama_cpp.LlamaGrammar
    logit_bias: dict[int, float] | None = None


@dataclass
class _End:
    """The last item of a sequence's output queue."""

    reason: str  # "eog" | "length" | "cancelled" | "error"
    error: BaseException | None = None


@dataclass
class _Seq:
    """One request in the engine: what it reads, what it has produced, where it goes."""

    prompt: list[int]
    max_tokens: int
    sampling: Sampling
    sink: TokenSink
    out: queue.SimpleQueue[int | _End] = field(default_factory=queue.SimpleQueue)
    slot: int = -1
    read: int = 0  # prompt tokens already in the KV cache
    generated: int = 0
    eog: bool = False  # ended on an end-of-generation token (not counted in usage)
    pending: int | None = None  # sampled, not yet decoded
    sampler: Any = None
    compute_s: float = 0.0
    stopped: bool = False  # a stop string ended the answer: free the slot, deliver the rest

    @property
    def dropped(self) -> bool:
        return self.stopped or self.sink.cancelled.is_set()

    @property
    def prefilling(self) -> bool:
        return self.read < len(self.prompt)


class BatchEngine:
    """Many sequences of one model, decoded together; see the module docstring."""

    def __init__(self, llama: Any, n_ctx: int, slots: int, threads: int,
                 gate: threading.Semaphore, compute: Executor | None = None) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.llama = llama
        self.n_ctx = n_ctx
        self.slots = slots
        self.gate = gate  # the process's CPU budget, held for each decode step
        # where decodes run: the threads every local model loads and computes on. llama.cpp's
        # OpenMP keeps a thread team per calling thread; with one engine thread per model
        # each model had its own team, and a model decoded ~25% slower once another had run
        # (measured through the gateway). One set of calling threads keeps one set of teams.
        self._compute = compute
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * slots
        params.n_batch = PREFILL_CHUNK
        params.n_ubatch = PREFILL_CHUNK
        params.n_seq_max = slots
        params.n_threads = threads
        params.n_threads_batch = threads
        # a cache per sequence: a request's attention reads only its own cells, laid out
        # the same whatever ran in the other slots (one shared cache would interleave them,
        # and the summation order — so greedy answers — would depend on history)
        params.kv_unified = False
        # as ``Llama`` builds its context (flash attention off), so one request alone is
        # decoded with the same arithmetic as llama-cpp-python's loop
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        from llama_cpp._utils import suppress_stdout_stderr

        # quiet: llama.cpp's context banner is noise on a user's terminal
        with suppress_stdout_stderr(disable=False):
            self._ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
        if not self._ctx:
            raise BackendError(f"llama.cpp could not create a {slots}-sequence context of "
                               f"{n_ctx} tokens each (out of memory?)")
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._vocab = llama._model.vocab
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._batch = llama_cpp.llama_batch_init(PREFILL_CHUNK, 0, 1)
        self._kv: list[list[int]] = [[] for _ in range(slots)]  # tokens each slot's cache holds
        self._free = list(range(slots))
        self._active: list[_Seq] = []
        self._waiting: list[_Seq] = []
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------------
    def submit(self, prompt: list[int], max_tokens: int, sampling: Sampling,
               sink: TokenSink) -> _Seq:
        seq = _Seq(prompt, max_tokens, sampling, sink)
        with self._cv:
            if self._closing:
                raise EngineStopped("the local model is shutting down")
            self._waiting.append(seq)
            self._cv.notify()
        return seq

    def wake(self) -> None:
        """Let the engine see a cancellation now rather than after its next step."""
        with self._cv:
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout=30)
        lib = self._lib
        if not self._thread.is_alive():
            lib.llama_batch_free(self._batch)
            lib.llama_free(self._ctx)

    # -- the engine thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._waiting and not self._active:
                    self._cv.wait()
                if self._closing:
                    waiting, self._waiting = self._waiting, []
                    for seq in waiting + self._active:
                        self._finish(seq, _End("error", EngineStopped(
                            "the local model shut down mid-answer")))
                    return
                self._admit()
            try:
                self._step()
            except BaseException as e:  # a llama.cpp failure fails the batch, never the thread
                for seq in list(self._active):
                    self._finish(seq, _End("error", e))

    def _admit(self) -> None:
        """Give waiting requests the free slots, each the one sharing its longest prefix."""
        while self._waiting and self._free:
            seq = self._waiting.pop(0)
            if seq.dropped:
                seq.out.put(_End("cancelled"))
                continue
            # the longest shared prefix; among equals the lowest slot, so the same requests in
            # the same order land in the same slots (and get the same answers)
            slot = max(sorted(self._free), key=lambda s: _common(self._kv[s], seq.prompt))
            self._free.remove(slot)
            keep = min(_common(self._kv[slot], seq.prompt), len(seq.prompt) - 1)
            if keep <= 0 or not self._lib.llama_memory_seq_rm(self._mem, slot, keep, -1):
                self._lib.llama_memory_seq_rm(self._mem, slot, -1, -1)
                keep = 0
            del self._kv[slot][keep:]
            seq.slot, seq.read = slot, keep
            seq.sampler = _sampler(self.llama, self._n_vocab, seq.sampling)
            self._active.append(seq)

    def _step(self) -> None:
        lib, batch = self._lib, self._batch
        for seq in [s for s in self._active if s.dropped]:
            self._finish(seq, _End("cancelled"))
        if not self._active:
            return
        n = 0
        rows: list[tuple[_Seq, int, bool]] = []  # (sequence, tokens in this step, samples?)

        def add(seq: _Seq, token: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = len(self._kv[seq.slot])
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq.slot
            batch.logits[n] = logits
            self._kv[seq.slot].append(token)
            n += 1

        for seq in self._active:  # decoding sequences first: one token each
            if not seq.prefilling and seq.pending is not None:
                add(seq, seq.pending, True)
                seq.pending = None
                rows.append((seq, 1, True))
        budget = PREFILL_CHUNK - n  # a step never exceeds the context's n_batch
        for seq in self._active:  # then prompts, in arrival order, within the chunk
            if not seq.prefilling or budget <= 0:
                continue
            take = min(budget, len(seq.prompt) - seq.read)
            for t in seq.prompt[seq.read:seq.read + take]:
                seq.read += 1
                add(seq, t, not seq.prefilling)
            budget -= take
            rows.append((seq, take, not seq.prefilling))
        if n == 0:
            return
        batch.n_tokens = n
        with self.gate:
            t0 = time.perf_counter()
            if self._compute is not None:
                rc = self._compute.submit(lib.llama_decode, self._ctx, batch).result()
            else:
                rc = lib.llama_decode(self._ctx, batch)
            dt = time.perf_counter() - t0
        if rc != 0:
            raise BackendError(f"llama.cpp decode failed (code {rc}) on a batch of {n} tokens")
        idx = -1
        for seq, k, samples in rows:
            idx += k
            seq.compute_s += dt * k / n
            if samples:
                self._sample(seq, idx)

    def _sample(self, seq: _Seq, idx: int) -> None:
        lib = self._lib
        logits = None
        if seq.sink.top_logprobs is not None:
            import numpy as np

            ptr = lib.llama_get_logits_ith(self._ctx, idx)
            logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).copy()
        token = int(lib.llama_sampler_sample(seq.sampler.sampler, self._ctx, idx))
        seq.sink.on_token(token, logits)
        seq.generated += 1
        if lib.llama_vocab_is_eog(self._vocab, token):
            seq.eog = True
            self._finish(seq, _End("eog"))
            return
        seq.out.put(token)
        room = self.n_ctx - len(self._kv[seq.slot])
        if seq.generated >= seq.max_tokens or room <= 0:
            self._finish(seq, _End("length"))
        else:
            seq.pending = token

    def _finish(self, seq: _Seq, end: _End) -> None:
        if seq in self._active:
            self._active.remove(seq)
            self._free.append(seq.slot)
        if seq.sampler is not None:
            with contextlib.suppress(Exception):
                seq.sampler.close()
            seq.sampler = None
        seq.out.put(end)


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _sampler(llama: Any, n_vocab: int, s: Sampling) -> Any:
    """llama-cpp-python's ``Llama._init_sampler`` chain, for one sequence."""
    from llama_cpp import _internals

    smp = _internals.LlamaSampler()
    if s.logit_bias:
        smp.add_logit_bias(n_vocab, s.logit_bias)
    smp.add_penalties(n_vocab=n_vocab, penalty_last_n=_PENALTY_LAST_N,
                      penalty_repeat=s.repeat_penalty, penalty_freq=s.frequency_penalty,
                      penalty_present=s.presence_penalty)
    if s.grammar is not None:
        smp.add_grammar(llama._model, s.grammar)
    seed = s.seed if s.seed is not None else random.randrange(2**32)
    if s.temperature < 0:
        smp.add_dist(seed)
    elif s.temperature == 0:
        smp.add_greedy()
    else:
        smp.add_top_k(s.top_k)
        smp.add_typical(s.typical_p, 1)
        smp.add_top_p(s.top_p, 1)
        smp.add_min_p(s.min_p, 1)
        smp.add_temp(s.temperature)
        smp.add_dist(seed)
    return smp


class EngineLlama:
    """A ``Llama`` whose generations run on a :class:`BatchEngine`.

    Everything but generation (tokenizer, chat templates and handlers, metadata) is the
    wrapped ``Llama``'s: ``create_chat_completion`` is ``Llama``'s own method run on this
    object, so its chat handler formats the prompt and calls our ``create_completion``.
    One instance serves one request (``tap`` is that request's token sink).
    """

    def __init__(self, llama: Any, engine: BatchEngine, tap: TokenSink) -> None:
        self._llama = llama
        self._engine = engine
        self.tap = tap
        self.compute_s = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)

    def create_chat_completion(self, **kw: Any) -> Any:
        return type(self._llama).create_chat_completion(self, **kw)

    def create_completion(self, prompt: str | list[int], max_tokens: int | None = 16,
                          temperature: float = 0.8, top_p: float = 0.95, min_p: float = 0.05,
                          typical_p: float = 1.0, stop: str | list[str] | None = None,
                          frequency_penalty: float = 0.0, presence_penalty: float = 0.0,
                          repeat_penalty: float = 1.0, top_k: int = 40, stream: bool = False,
                          seed: int | None = None, model: str | None = None,
                          grammar: Any = None, logit_bias: dict[str, float] | None = None,
                          **_ignored: Any) -> Any:
        """llama-cpp-python's ``create_completion`` contract (body or chunk iterator; a
        ``ValueError`` for a prompt longer than the window), generated on the engine."""
        tokens = self._prompt_tokens(prompt)
        n_ctx = self._engine.n_ctx
        if len(tokens) >= n_ctx:
            raise ValueError(f"Requested tokens ({len(tokens)}) exceed context window of "
                             f"{n_ctx}")
        if max_tokens is None or max_tokens <= 0 or max_tokens + len(tokens) >= n_ctx:
            max_tokens = n_ctx - len(tokens)
        sampling = Sampling(temperature, top_k, top_p, min_p, typical_p, repeat_penalty,
                            frequency_penalty, presence_penalty, seed, grammar,
                            {int(k): float(v) for k, v in logit_bias.items()}
                            if logit_bias else None)
        stops = [stop] if isinstance(stop, str) else [s for s in (stop or []) if s]
        self.tap.prompt_tokens = len(tokens)
        seq = self._engine.submit(tokens, max_tokens, sampling, self.tap)
        head = {"id": f"cmpl-{uuid.uuid4()}", "object": "text_completion",
                "created": int(time.time()), "model": model or self._llama.model_path}
        pieces = _pieces(seq, self._llama.detokenize, stops, self._engine.wake)
        if stream:
            return self._chunks(head, seq, pieces)
        text, finish = "", "length"
        for piece in pieces:
            if isinstance(piece, _Finish):
                finish = piece.reason
            else:
                text += piece
        self.compute_s = seq.compute_s
        out = seq.generated - (1 if seq.eog else 0)
        return {**head, "choices": [{"text": text, "index": 0, "logprobs": None,
                                     "finish_reason": finish}],
                "usage": {"prompt_tokens": len(tokens), "completion_tokens": out,
                          "total_tokens": len(tokens) + out}}

    def _chunks(self, head: dict[str, Any], seq: _Seq, pieces: Iterator[str | _Finish]
                ) -> Iterator[dict[str, Any]]:
        try:
            for piece in pieces:
                if isinstance(piece, _Finish):
                    self.compute_s = seq.compute_s
                    yield {**head, "choices": [{"text": "", "index": 0, "logprobs": None,
                                                "finish_reason": piece.reason}]}
                    return
                if piece:
                    yield {**head, "choices": [{"text": piece, "index": 0, "logprobs": None,
                                                "finish_reason": None}]}
        finally:
            self.tap.cancelled.set()  # a consumer that stops early frees the slot
            self._engine.wake()

    def _prompt_tokens(self, prompt: str | list[int]) -> list[int]:
        """Token ids as llama-cpp-python's ``_create_completion`` builds them."""
        if isinstance(prompt, list):
            return [int(t) for t in prompt]
        llama = self._llama
        bos = llama.token_bos()
        head = [bos] if llama._model.add_bos_token() and bos != -1 else []
        body = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) \
            if prompt else []
        return head + body


@dataclass
class _Finish:
    reason: str  # "stop" | "length"


def _pieces(seq: _Seq, detokenize: Callable[[list[int]], bytes], stops: list[str],
            wake: Callable[[], None]) -> Iterator[str | _Finish]:
    """Text as it becomes safe to show: UTF-8 decoded across token boundaries, held back
    while it could still be the start of a stop string, cut at the first stop string (which
    also stops the sequence). Ends with a :class:`_Finish`. Errors from the engine raise."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text, shown = "", 0
    hold = max((len(s) for s in stops), default=0)
    while True:
        item = seq.out.get()
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            text += decoder.decode(b"", final=True)
            if text[shown:]:
                yield text[shown:]
            yield _Finish("stop" if item.reason in ("eog", "cancelled") else "length")
            return
        text += decoder.decode(detokenize([item]))
        start = max(0, shown - hold)
        cut = min((i for s in stops if (i := text.find(s, start)) >= 0), default=-1)
        if cut >= 0:
            seq.stopped = True  # not ``cancelled``: the caller still wants what comes next
            wake()
            if text[shown:cut]:
                yield text[shown:cut]
            yield _Finish("stop")
            return
        safe = len(text) - _partial_stop(text, stops)
        if safe > shown:
            yield text[shown:safe]
            shown = safe


def _partial_stop(text: str, stops: list[str]) -> int:
    """Length of the longest end of ``text`` that begins some stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best
