"""Each recipe changes the request it claims to change — read off the messages the base
backend actually received (the ``faulty`` backend records them) — and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from rankgate.backends.base import BackendError
from rankgate.config import Settings
from rankgate.panel import parse_panel
from rankgate.runtime import open_panel
from rankgate.variants.recipes import COT_INSTRUCTION, DEFAULT_EXAMPLES, DEFAULT_SYSTEM
from tests.variants.conftest import faulty_panel

pytestmark = pytest.mark.anyio
QUESTION = [{"role": "user", "content": "Name a colour."}]
PAYLOAD: dict[str, Any] = {"messages": QUESTION, "temperature": 0.0, "seed": 0,
                           "max_tokens": 32}


async def received(settings: Settings, model: str, payload: dict[str, Any] | None = None
                   ) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    """What ``echo`` received when ``model`` (a variant of it) answered once."""
    panel = faulty_panel()
    rt = open_panel(panel, settings, [model])
    try:
        result = await rt.backends[model].complete("chat", payload or PAYLOAD)
        return list(rt.backends["echo"].received), result
    finally:
        await rt.aclose()


async def test_the_base_receives_the_request_unchanged(anyio_backend, settings):
    got, _ = await received(settings, "echo")
    assert got == [("chat", PAYLOAD)]


async def test_system_prepends_a_system_message(anyio_backend, settings):
    [(_, sent)], _ = await received(settings, "echo+system")
    assert sent["messages"] == [{"role": "system", "content": DEFAULT_SYSTEM}, *QUESTION]


async def test_system_joins_a_system_message_the_request_already_has(anyio_backend, settings):
    own = {"messages": [{"role": "system", "content": "Be brief."}, *QUESTION]}
    [(_, sent)], _ = await received(settings, "echo+system", own)
    assert sent["messages"][0] == {"role": "system", "content": f"{DEFAULT_SYSTEM}\n\nBe brief."}
    assert sent["messages"][1:] == QUESTION


async def test_fewshot_n_puts_n_demonstrations_before_the_question(anyio_backend, settings):
    [(_, sent)], _ = await received(settings, "echo+fewshot2")
    msgs = sent["messages"]
    assert msgs[-1] == QUESTION[0]
    assert [m["role"] for m in msgs[:-1]] == ["user", "assistant"] * 2
    assert [(msgs[i]["content"], msgs[i + 1]["content"]) for i in (0, 2)] == \
        list(DEFAULT_EXAMPLES[:2])


async def test_cot_asks_for_reasoning_and_keeps_other_fields(anyio_backend, settings):
    [(_, sent)], result = await received(settings, "echo+cot")
    assert sent["messages"][-1]["content"] == f"Name a colour.\n\n{COT_INSTRUCTION}"
    assert {k: v for k, v in sent.items() if k != "messages"} == \
        {k: v for k, v in PAYLOAD.items() if k != "messages"}
    # no "Answer:" line in the reply: the whole reply is the answer, no reasoning split off
    assert result.body["choices"][0]["message"]["content"] == "Hello from the fault upstream."


async def test_sampling_sets_the_temperature_it_names(anyio_backend, settings):
    [(_, sent)], _ = await received(settings, "echo+t07")
    assert sent["temperature"] == 0.7
    assert sent["messages"] == QUESTION


async def test_self_consistency_makes_k_calls_with_distinct_seeds(anyio_backend, settings):
    got, result = await received(settings, "echo+sc3")
    assert len(got) == 3
    assert sorted(p["seed"] for _, p in got) == [0, 1, 2]
    assert all(p["temperature"] == 0.7 and p["messages"] == QUESTION for _, p in got)
    assert result.body["rankgate_votes"] == {"samples": 3, "winner_votes": 3,
                                             "distinct_answers": 1}


async def test_self_consistency_usage_is_that_of_all_k_calls(anyio_backend, settings):
    _, one = await received(settings, "echo")
    _, three = await received(settings, "echo+sc3")
    assert three.usage.input_tokens == 3 * one.usage.input_tokens
    assert three.usage.output_tokens == 3 * one.usage.output_tokens
    assert three.body["usage"]["total_tokens"] == 3 * one.body["usage"]["total_tokens"]


async def test_recipes_chain_left_to_right(anyio_backend, settings):
    got, _ = await received(settings, "echo+system+sc2")
    assert len(got) == 2
    assert all(p["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM}
               for _, p in got)


async def test_a_variant_shares_its_base_backend(anyio_backend, settings):
    rt = open_panel(faulty_panel(), settings, ["echo+cot", "echo+sc2"])
    try:
        assert rt.backends["echo+cot"].inner is rt.backends["echo"]
        assert rt.backends["echo+sc2"].inner is rt.backends["echo"]
    finally:
        await rt.aclose()


async def test_a_streamed_cot_answer_arrives_as_one_chunk_with_usage(anyio_backend, settings):
    rt = open_panel(faulty_panel(), settings, ["echo+cot"])
    try:
        stream = await rt.backends["echo+cot"].stream("chat", PAYLOAD)
        chunks = [c async for c in stream]
    finally:
        await rt.aclose()
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello from the fault upstream."
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert stream.stats.usage.output_tokens == 5


async def test_a_streamed_system_variant_passes_the_rewritten_request_through(anyio_backend,
                                                                           settings):
    rt = open_panel(faulty_panel(), settings, ["echo+system"])
    try:
        stream = await rt.backends["echo+system"].stream("chat", PAYLOAD)
        [c async for c in stream]
        [(_, sent)] = rt.backends["echo"].received
    finally:
        await rt.aclose()
    assert sent["messages"][0]["role"] == "system"


async def test_self_consistency_runs_its_k_samples_at_once(anyio_backend, settings):
    panel = parse_panel([{"id": "slow", "backend": "faulty", "upstream_model": "slow-200"}],
                        "test-panel.yaml")
    rt = open_panel(panel, settings, ["slow+sc4"])
    try:
        result = await rt.backends["slow+sc4"].complete("chat", PAYLOAD)
        assert rt.backends["slow"].peak == 4  # all four in flight together
        assert result.body["rankgate_votes"]["samples"] == 4
    finally:
        await rt.aclose()


async def test_a_failing_sample_fails_the_request_with_its_error(anyio_backend, settings):
    panel = parse_panel([{"id": "bad", "backend": "faulty", "upstream_model": "error-503"}],
                        "test-panel.yaml")
    rt = open_panel(panel, settings, ["bad+sc3"])
    try:
        with pytest.raises(BackendError, match="503"):
            await rt.backends["bad+sc3"].complete("chat", PAYLOAD)
        assert rt.backends["bad"].in_flight == 0
    finally:
        await rt.aclose()
