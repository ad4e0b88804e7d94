"""Continuous batching on the real smollm2-135m model (``backends/llamacpp_batch.py``).

The batched engine must answer exactly what llama-cpp-python's own serial loop answers at
temperature 0, whatever else shares its steps, and keep every request-level promise of the
serial backend: stop strings, logprobs, grammars, cancellation, usage and billing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rankgate.backends.base import BackendError, ContextOverflow
from rankgate.config import Settings
from rankgate.panel import default_panel
from rankgate.runtime import PanelRuntime, open_panel
from tests.conftest import SMOLLM

PROMPTS = ["What is 17 times 23?", "Name three primary colors.",
           "Write a Python function that reverses a string.", "Say hello in French.",
           "What is the capital of Italy?", "List the days of the week.",
           "Explain what a prime number is.", "Give me a haiku about snow."]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _runtime(tmp_path: Path, slots: int) -> PanelRuntime:
    settings = Settings(home=tmp_path, local_slots=slots, threads=2, threads_per_model=1)
    return open_panel(default_panel(), settings, [SMOLLM])


@pytest.fixture
async def batched(tmp_path: Path, smollm_path: Path) -> AsyncIterator[PanelRuntime]:
    async with _runtime(tmp_path / "b", 3) as rt:
        yield rt


def _chat(q: str, max_tokens: int = 24, **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": q}], "temperature": 0,
            "max_tokens": max_tokens, **extra}


def _text(result) -> str:
    return result.body["choices"][0]["message"]["content"]


async def _idle(engine: object, within_s: float = 30.0) -> None:
    """Wait until the engine holds no sequence (it drops a stopped one at its next step)."""
    assert engine is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while engine._active or engine._waiting:  # type: ignore[attr-defined]
        assert loop.time() < deadline, "a stopped sequence kept its slot"
        await asyncio.sleep(0.05)


async def _fresh(tmp_path: Path, payload: dict[str, object], stream: bool = False,
                 whole: bool = False) -> Any:
    """One answer (its text, or the ``Result`` if ``whole``) from a new runtime: an empty
    cache, so runs are comparable."""
    async with _runtime(tmp_path / str(len(list(tmp_path.iterdir()))), 2) as rt:
        backend = rt.backends[SMOLLM]
        if not stream:
            result = await backend.complete("chat", payload)
            return result if whole else _text(result)
        s = await backend.stream("chat", payload)
        return "".join([c["choices"][0]["delta"].get("content") or "" async for c in s
                        if c.get("choices")])


@pytest.mark.anyio
async def test_alone_on_the_engine_a_request_gets_the_serial_loops_answer(tmp_path, smollm_path):
    async with _runtime(tmp_path / "serial", 0) as rt:
        serial = [await rt.backends[SMOLLM].complete("chat", _chat(q)) for q in PROMPTS]
    async with _runtime(tmp_path / "batched", 3) as rt:
        backend = rt.backends[SMOLLM]
        assert backend.capabilities.max_concurrency == 3
        alone = [await backend.complete("chat", _chat(q)) for q in PROMPTS]
    assert [_text(r) for r in alone] == [_text(r) for r in serial]
    assert [r.usage for r in alone] == [r.usage for r in serial]
    assert [r.body["choices"][0]["finish_reason"] for r in alone] == \
        [r.body["choices"][0]["finish_reason"] for r in serial]


@pytest.mark.anyio
async def test_more_requests_than_slots_all_complete_with_their_own_answers(tmp_path,
                                                                           smollm_path):
    first = {"logprobs": True, "top_logprobs": 5}
    alone = [await _fresh(tmp_path, _chat(q, 1, **first), whole=True) for q in PROMPTS]
    async with _runtime(tmp_path / "many", 3) as rt:
        backend = rt.backends[SMOLLM]
        # 8 requests, 3 slots: some wait for a slot, prompts are read in shared batches
        together = await asyncio.gather(*[backend.complete("chat", _chat(q, 24, **first))
                                          for q in PROMPTS])
    assert all(r.usage.output_tokens > 0 for r in together)
    # each answer starts from its own prompt: its first token has the probability that prompt
    # alone gives it (batched arithmetic rounds differently: measured up to 0.06 apart on
    # smollm2, and a near-tie may flip the greedy token; a slot that
    # read another prompt's tokens would give a different distribution altogether)
    for a, t in zip(alone, together, strict=True):
        got = t.body["choices"][0]["logprobs"]["content"][0]
        expected = {x["token"]: x["logprob"] for x in
                    a.body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]}
        assert got["token"] in expected
        assert got["logprob"] == pytest.approx(expected[got["token"]], abs=0.2)


@pytest.mark.anyio
async def test_a_reused_slot_reads_only_the_new_tokens_like_the_serial_loop(tmp_path,
                                                                           smollm_path):
    # llama-cpp-python keeps its one sequence's cache and reads only what a new prompt adds
    # (re-reading the last prompt token for fresh logits); a slot does the same, so the same
    # calls in the same order give the serial loop's answers, reuse included
    calls = [_chat(PROMPTS[2], 40), _chat(PROMPTS[2], 40),
             _chat(PROMPTS[2] + " Add a docstring.", 40), _chat(PROMPTS[0], 16)]
    async with _runtime(tmp_path / "serial", 0) as rt:
        serial = [await rt.backends[SMOLLM].complete("chat", c) for c in calls]
    async with _runtime(tmp_path / "batched", 1) as rt:
        backend = rt.backends[SMOLLM]
        batched = [await backend.complete("chat", c) for c in calls]
        engine = backend.weights.engine
        assert engine is not None and not engine._active and engine._free == [0]
        # the slot's cache holds the last prompt and what was decoded of its answer
        assert len(engine._kv[0]) == batched[-1].usage.input_tokens + \
            batched[-1].usage.output_tokens - 1
    assert [_text(r) for r in batched] == [_text(r) for r in serial]
    assert [r.usage for r in batched] == [r.usage for r in serial]


@pytest.mark.anyio
async def test_compute_is_split_among_the_requests_sharing_a_step(batched):
    backend = batched.backends[SMOLLM]
    await backend.complete("chat", _chat("hi", 2))  # load outside the measured window
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    results = await asyncio.gather(*[backend.complete("chat", _chat(q, 32))
                                     for q in PROMPTS[:3]])
    wall = loop.time() - t0
    # each request pays its share of the steps it was in, so together they pay at most the
    # time the model was busy — not three times it, as wall time per request would
    assert all(r.compute_s > 0 for r in results)
    assert sum(r.compute_s for r in results) <= wall
    assert all(r.ttft_s is not None and r.ttft_s <= wall for r in results)


@pytest.mark.anyio
async def test_stop_strings_cut_the_text_and_end_the_sequence(tmp_path, smollm_path):
    full = await _fresh(tmp_path, _chat(PROMPTS[5], 48))
    word = next(w for w in ("Wednesday", "Tuesday", "Monday") if w in full)
    async with _runtime(tmp_path / "cut", 2) as rt:
        cut = await rt.backends[SMOLLM].complete("chat", _chat(PROMPTS[5], 48, stop=[word]))
        assert cut.body["choices"][0]["finish_reason"] == "stop"
        await _idle(rt.backends[SMOLLM].weights.engine)  # the sequence was stopped
    assert _text(cut) == full[:full.index(word)]
    # streamed, text that may begin the stop string is held back, never sent then retracted
    assert await _fresh(tmp_path, _chat(PROMPTS[5], 48, stop=[word]), stream=True) == _text(cut)


@pytest.mark.anyio
async def test_logprobs_are_the_greedy_choice_at_temperature_zero(batched):
    backend = batched.backends[SMOLLM]
    results = await asyncio.gather(*[
        backend.complete("chat", _chat(q, 12, logprobs=True, top_logprobs=3))
        for q in PROMPTS[:3]])
    for r in results:
        content = r.body["choices"][0]["logprobs"]["content"]
        assert len(content) == r.usage.output_tokens
        for tok in content:
            best = max(tok["top_logprobs"], key=lambda t: t["logprob"])
            assert tok["logprob"] == pytest.approx(best["logprob"])
            assert tok["logprob"] <= 0


@pytest.mark.anyio
async def test_json_mode_grammar_runs_on_the_engine(batched):
    backend = batched.backends[SMOLLM]
    r = await backend.complete("chat", _chat(
        "Give a JSON object with a key 'city' naming the capital of France.", 40,
        response_format={"type": "json_object"}))
    if r.body["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(_text(r)), dict)
    else:  # cut by max_tokens: still a prefix the grammar allowed
        assert _text(r).lstrip().startswith("{")


@pytest.mark.anyio
async def test_a_stream_closed_early_frees_its_slot_for_the_next_request(batched):
    backend = batched.backends[SMOLLM]
    streams = [await backend.stream("chat", _chat("Write a very long story.", 400))
               for _ in range(3)]  # every slot taken
    for s in streams:
        async for _chunk in s:
            break
        await s.aclose()
    r = await asyncio.wait_for(backend.complete("chat", _chat(PROMPTS[4], 8)), 120)
    assert _text(r)
    await _idle(backend.weights.engine)
    assert backend.active_calls == 0


@pytest.mark.anyio
async def test_a_cancelled_request_stops_generating(batched):
    backend = batched.backends[SMOLLM]
    task = asyncio.create_task(backend.complete("chat", _chat("Write a very long story.", 400)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while not (backend.weights.engine and backend.weights.engine._active):  # generating
        assert loop.time() < deadline and not task.done()
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _idle(backend.weights.engine)


@pytest.mark.anyio
async def test_prompt_longer_than_the_window_is_refused_naming_the_limit(batched):
    backend = batched.backends[SMOLLM]
    with pytest.raises(ContextOverflow) as e:
        await backend.complete("chat", _chat("word " * 9000, 4))
    assert str(backend.n_ctx) in str(e.value)


@pytest.mark.anyio
async def test_shutdown_fails_requests_in_flight_instead_of_hanging(tmp_path, smollm_path):
    rt = _runtime(tmp_path, 2)
    backend = rt.backends[SMOLLM]
    await backend.load()
    tasks = [asyncio.create_task(backend.complete("chat", _chat("Write a long story.", 400)))
             for _ in range(4)]
    await asyncio.sleep(1.0)
    await asyncio.wait_for(rt.aclose(), 60)
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    for outcome in done:  # finished before the close, or a clear 503 — never a hang
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, BackendError) and outcome.status == 503


@pytest.mark.anyio
async def test_a_long_prompt_is_read_in_chunks_beside_decoding_requests(batched):
    backend = batched.backends[SMOLLM]
    long_q = "Summarise this text in one sentence: " + " ".join(
        f"Sentence {i} says that the river keeps flowing past the old mill." for i in range(90))
    short = [backend.complete("chat", _chat(q, 48)) for q in PROMPTS[:2]]
    results = await asyncio.gather(*short, backend.complete("chat", _chat(long_q, 16)))
    # more than two steps' worth of prompt (512 tokens each, minus the decoding tokens)
    assert results[-1].usage.input_tokens > 1100
    assert all(r.usage.output_tokens > 0 for r in results)
    assert results[-1].ttft_s is not None
    await _idle(backend.weights.engine)
