"""Retrieved few-shot: the most similar solved items become demonstrations, and the item being
answered is never among them — neither by its id nor by its text under another id."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankgate.eval.runner import RunConfig, Runner
from rankgate.eval.scorers.base import Item
from rankgate.runtime import open_panel
from rankgate.variants import RecipeError
from tests.variants.conftest import faulty_panel

pytestmark = pytest.mark.anyio
FRANCE = "What is the capital of France? Answer with one word."


def retrieval_panel(pool: Path, k: int = 2):
    return faulty_panel({"id": "echo+rag", "recipe": {"use": "retrieved", "k": k,
                                                      "outcomes": str(pool),
                                                      "embedder": "hash"}})


def demonstrations(messages: list[dict]) -> list[tuple[str, str]]:
    """(user, assistant) pairs before the last user message."""
    turns = messages[:-1]
    return [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns), 2)]


async def test_the_item_being_evaluated_is_never_its_own_example(anyio_backend, settings, pool,
                                                                 tmp_path):
    item = Item(id="geo-1", messages=[{"role": "user", "content": FRANCE}], scorer="contains",
                target=["Paris"], category="factual")
    rt = open_panel(retrieval_panel(pool, k=3), settings, ["echo+rag"])
    try:
        await Runner({"echo+rag": rt.backends["echo+rag"]}, rt.pricers, None,
                     RunConfig()).run([item], ["echo+rag"], tmp_path / "out.jsonl")
        [(_, sent)] = rt.backends["echo"].received
    finally:
        await rt.aclose()
    shown = demonstrations(sent["messages"])
    assert sent["messages"][-1]["content"] == FRANCE
    assert len(shown) == 3
    assert all(user != FRANCE for user, _ in shown)  # not by id, not by the duplicate's text
    assert ("What is the capital of Peru? Answer with one word.", "Quito") not in shown
    assert {u for u, _ in shown} <= {
        "What is the capital of Spain? Answer with one word.",
        "What is the capital of Italy? Answer with one word.",
        "What is 2 + 2? Answer: <number>."}


async def test_a_gateway_request_never_sees_its_own_text_as_an_example(anyio_backend,
                                                                       settings, pool):
    rt = open_panel(retrieval_panel(pool, k=2), settings, ["echo+rag"])
    try:
        await rt.backends["echo+rag"].complete(
            "chat", {"messages": [{"role": "user", "content": FRANCE}]})
        [(_, sent)] = rt.backends["echo"].received
    finally:
        await rt.aclose()
    shown = demonstrations(sent["messages"])
    assert len(shown) == 2 and FRANCE not in {u for u, _ in shown}
    # the nearest solved items are the other capitals, with their stored answers
    assert {a for _, a in shown} <= {"Madrid", "Rome"}


async def test_retrieval_with_no_stored_outcomes_is_refused_naming_it(anyio_backend, settings):
    with pytest.raises(RecipeError, match=r"recipe 'retrieved' of 'echo\+retrieved' cannot "
                       r"apply: no stored outcomes"):
        open_panel(faulty_panel(), settings, ["echo+retrieved"])


async def test_retrieval_from_outcomes_without_answers_is_refused(anyio_backend, settings,
                                                                  tmp_path):
    bare = tmp_path / "bare.jsonl"
    bare.write_text('{"prompt_id": "a", "prompt": "q", "model": "m", "score": 1.0}\n')
    panel = faulty_panel({"id": "echo+rag", "recipe": {"use": "retrieved",
                                                       "outcomes": str(bare)}})
    with pytest.raises(RecipeError, match="lack their response text"):
        open_panel(panel, settings, ["echo+rag"])
