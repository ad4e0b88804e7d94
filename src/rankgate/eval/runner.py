"""Run panel models over a workload and write one outcome per (item, model).

* **Async with bounded concurrency per backend**: local llama.cpp models already serialise on
  their model lock, so they get 1 in flight; HTTP backends get ``http_concurrency``.
* **Retries with backoff** on retryable failures only (unreachable, timeout, upstream 5xx/429);
  a bad request (e.g. prompt longer than the context) is recorded at once.
* **Resumable**: outcomes are appended line by line; re-running skips every (item, model) pair
  already in the output with a score, and retries the ones recorded as errors.
* **Response cache** keyed on model + messages + sampling parameters (SQLite in
  ``RANKGATE_HOME``), so re-scoring or re-running never regenerates an identical request.
* **One failing item never kills the run**: it becomes an outcome with ``error`` set.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from rankgate.backends import Backend
from rankgate.backends.base import BackendError, BackendNotInstalled, BadRequest, Result
from rankgate.eval import scorers
from rankgate.eval.scorers.base import Item, Score
from rankgate.outcomes import Outcome, OutcomeWriter, iter_jsonl
from rankgate.pricing import Pricer
from rankgate.variants.context import answering

#: generation budget per category: code needs room for a whole function
MAX_TOKENS = {"code": 512, "code_humaneval": 512, "extraction": 320, "instructions": 320}
DEFAULT_MAX_TOKENS = 256


@dataclass
class RunConfig:
    temperature: float = 0.0
    max_tokens: int | None = None  # None: per-category default
    retries: int = 3
    http_concurrency: int = 8
    logprobs: bool = True  # ask local models for token logprobs (confidence for calibration)
    source: str = "eval"


class ResponseCache:
    """Backend results keyed by request; survives runs so re-running costs nothing."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("create table if not exists responses (key text primary key, "
                         "model text, result blob, created real)")
        self._db.commit()

    @staticmethod
    def key(model: str, payload: dict[str, Any]) -> str:
        return hashlib.sha256(orjson.dumps([model, payload], option=orjson.OPT_SORT_KEYS)
                              ).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("select result from responses where key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def put(self, key: str, model: str, result: dict[str, Any]) -> None:
        self._db.execute("insert or replace into responses values (?, ?, ?, ?)",
                         (key, model, orjson.dumps(result), time.time()))
        self._db.commit()

    def close(self) -> None:
        self._db.close()


@dataclass
class Progress:
    """Live counts the CLI shows: done/total, and running accuracy per model."""

    total: int
    done: int = 0
    errors: int = 0
    cached: int = 0
    score_sum: dict[str, float] = field(default_factory=dict)
    scored: dict[str, int] = field(default_factory=dict)

    def add(self, o: Outcome, cached: bool) -> None:
        self.done += 1
        self.cached += cached
        if o.error:
            self.errors += 1
        elif o.score is not None:
            self.score_sum[o.model] = self.score_sum.get(o.model, 0.0) + o.score
            self.scored[o.model] = self.scored.get(o.model, 0) + 1

    def accuracy(self) -> dict[str, float]:
        return {m: self.score_sum[m] / n for m, n in self.scored.items() if n}


def finished_pairs(out: Path) -> set[tuple[str, str]]:
    """(item id, model) pairs already scored in ``out`` (errors are not finished)."""
    if not out.exists():
        return set()
    return {(o.prompt_id, o.model) for o in iter_jsonl(out) if o.error is None}


def _payload(item: Item, cfg: RunConfig, backend: Backend) -> dict[str, Any]:
    p: dict[str, Any] = {
        "messages": item.messages,
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens or MAX_TOKENS.get(item.category or "", DEFAULT_MAX_TOKENS),
        "seed": 0,
    }
    if cfg.logprobs and backend.capabilities.logprobs:
        p["logprobs"] = True
    return p


def _logprob_mean(body: dict[str, Any]) -> float | None:
    try:
        content = body["choices"][0]["logprobs"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if not content:
        return None
    return sum(t["logprob"] for t in content) / len(content)


def _retryable(e: BackendError) -> bool:
    if isinstance(e, BackendNotInstalled):  # a missing package does not appear by waiting
        return False
    return not isinstance(e, BadRequest) or e.status == 429


async def _call(backend: Backend, payload: dict[str, Any], retries: int) -> tuple[Result, float]:
    delay = 1.0
    for attempt in range(retries + 1):
        t0 = time.perf_counter()
        try:
            result = await backend.complete("chat", payload)
            return result, time.perf_counter() - t0
        except BackendError as e:
            if attempt == retries or not _retryable(e):
                raise
        await asyncio.sleep(delay * (1 + random.random()))
        delay *= 2
    raise AssertionError("unreachable")


class Runner:
    def __init__(self, backends: dict[str, Backend], pricers: dict[str, Pricer],
                 cache: ResponseCache | None, cfg: RunConfig, judge: Backend | None = None
                 ) -> None:
        self.backends = backends
        self.judge = judge
        self.pricers = pricers
        self.cache = cache
        self.cfg = cfg
        self._sems = {mid: asyncio.Semaphore(self._concurrency(b)) for mid, b in backends.items()}

    def _concurrency(self, backend: Backend) -> int:
        """In flight per model: the backend's own limit (1 for an in-process model), else
        ``http_concurrency``."""
        limit = backend.capabilities.max_concurrency
        return self.cfg.http_concurrency if limit is None else min(limit,
                                                                   self.cfg.http_concurrency)

    async def _generate(self, item: Item, model: str) -> tuple[dict[str, Any], bool]:
        backend = self.backends[model]
        payload = _payload(item, self.cfg, backend)
        key = ResponseCache.key(model, payload)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit, True
        async with self._sems[model]:
            with answering(item.id, item.prompt_text):  # a variant never retrieves this item
                result, latency = await _call(backend, payload, self.cfg.retries)
        body = result.body
        cost = self.pricers[model].cost(result.usage.input_tokens, result.usage.output_tokens,
                                        result.compute_s)
        rec = {
            "response": (body["choices"][0].get("message") or {}).get("content") or "",
            "latency_s": latency, "ttft_s": result.ttft_s,
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
            "cost_usd": cost.usd, "logprob_mean": _logprob_mean(body),
            "finish_reason": body["choices"][0].get("finish_reason"),
        }
        if self.cache is not None:
            self.cache.put(key, model, rec)
        return rec, False

    async def run_one(self, item: Item, model: str) -> tuple[Outcome, bool]:
        base = {"prompt_id": item.id, "prompt": item.prompt_text, "model": model,
                "category": item.category, "source": self.cfg.source, "scorer": item.scorer}
        try:
            rec, cached = await self._generate(item, model)
        except BackendError as e:
            return Outcome(**base, score=None, error=f"{e.code}: {e.message}"), False
        except Exception as e:  # one item never kills the run
            return Outcome(**base, score=None, error=f"{type(e).__name__}: {e}"), False
        try:
            sc: Score = await scorers.get(item.scorer).ascore(rec["response"], item, self.judge)
        except Exception as e:
            return Outcome(**base, score=None, response=rec["response"],
                           error=f"scorer {item.scorer} failed: {type(e).__name__}: {e}"), cached
        lp = rec.get("logprob_mean")
        return Outcome(
            **base, score=float(sc.value), response=rec["response"],
            explanation=sc.explanation, cost_usd=rec["cost_usd"], latency_s=rec["latency_s"],
            ttft_s=rec["ttft_s"], input_tokens=rec["input_tokens"],
            output_tokens=rec["output_tokens"], logprob_mean=lp,
            confidence=None if lp is None else float(2.718281828459045 ** lp),
            extra={"finish_reason": rec.get("finish_reason"), "cached": cached},
        ), cached

    async def run(self, items: list[Item], models: list[str], out: Path,
                  on_progress: Callable[[Progress], None] | None = None) -> Progress:
        done = finished_pairs(out)
        todo = [(it, m) for it in items for m in models if (it.id, m) not in done]
        progress = Progress(total=len(todo))
        writer = OutcomeWriter(out)
        queue: asyncio.Queue[tuple[Item, str]] = asyncio.Queue()
        for pair in todo:
            queue.put_nowait(pair)

        async def worker() -> None:
            while True:
                try:
                    item, model = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                outcome, cached = await self.run_one(item, model)
                writer.write(outcome)
                progress.add(outcome, cached)
                if on_progress:
                    on_progress(progress)

        n_workers = sum(self._concurrency(b) for mid, b in self.backends.items()
                        if mid in models) + 1
        try:
            await asyncio.gather(*(worker() for _ in range(max(1, n_workers))))
        finally:
            writer.close()
        return progress


def evaluate(items: list[Item], models: list[str], out: Path, *, panel: Any, settings: Any,
             cfg: RunConfig | None = None, use_cache: bool = True, judge: str | None = None,
             on_progress: Callable[[Progress], None] | None = None) -> Progress:
    """Open ``models`` of ``panel`` (and the judge) and run them over ``items``."""
    from rankgate.runtime import open_panel

    cfg = cfg or RunConfig()

    async def main() -> Progress:
        rt = open_panel(panel, settings, models)
        judge_backend = rt.add(panel.get(judge)) if judge is not None else None
        backends = {m: rt.backends[m] for m in models}
        cache = ResponseCache(settings.home / "cache" / "responses.sqlite") if use_cache else None
        try:
            return await Runner(backends, rt.pricers, cache, cfg, judge_backend).run(
                items, models, out, on_progress)
        finally:
            await rt.aclose()
            if cache is not None:
                cache.close()

    return asyncio.run(main())
