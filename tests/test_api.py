"""The Python API (``rankgate.evaluate``, ``rankgate.rank``, ``rankgate.Router``): the loop in
a notebook, with no server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

import rankgate
from rankgate.embed.hashed import HashEmbedder
from rankgate.outcomes import read_jsonl
from rankgate.panel import ModelSpec, Panel
from rankgate.routing.train_replay import train

EMBEDDED = Path(rankgate.__file__).parent / "data" / "embedded_outcomes.jsonl"


@pytest.fixture(scope="module")
def router_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api") / "knn.npz"
    train(read_jsonl(EMBEDDED), "knn", out, HashEmbedder(), calibrated=False)
    return out


def test_the_api_names_are_exported_from_the_package():
    assert {"evaluate", "rank", "Router", "Choice", "Outcome"} <= set(rankgate.__all__)
    assert rankgate.Router.load is not None and callable(rankgate.evaluate)


def test_rank_of_a_path_and_of_its_outcomes_agree():
    by_name = rankgate.rank("embedded")
    by_rows = rankgate.rank(read_jsonl(EMBEDDED))
    assert json.dumps(by_name, sort_keys=True, default=str) == \
        json.dumps(by_rows, sort_keys=True, default=str)
    assert by_name["recommendation"]
    assert by_name["n_items"] > 0


def test_rank_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no outcomes"):
        rankgate.rank([])


def test_a_loaded_router_chooses_among_its_models(router_path):
    r = rankgate.Router.load(router_path)
    choice = r.choose("What is 17 * 23?")
    assert choice.model in r.models
    assert set(choice.predicted_quality) == set(r.models) == set(choice.estimated_cost_usd)
    assert choice.router == "knn"


def test_messages_are_routed_as_the_gateway_sees_them(router_path):
    r = rankgate.Router.load(router_path)
    text = "Write a Python function that reverses a string."
    as_messages = r.choose([{"role": "user", "content": text}])
    assert as_messages == r.choose(text)


def test_the_knob_trades_quality_for_cost(router_path):
    r = rankgate.Router.load(router_path)
    prompt = "What is the capital of France?"
    costs = r.choose(prompt).estimated_cost_usd
    cheapest = min(costs, key=lambda m: costs[m])
    assert r.choose(prompt, min_quality=0.0).model == cheapest  # every model qualifies
    assert r.choose(prompt, max_cost_usd=0.0).model == cheapest  # none fits: the cheapest
    best = r.choose(prompt)
    assert best.predicted_quality[best.model] == max(best.predicted_quality.values())


def test_predict_gives_every_model_a_quality_per_prompt(router_path):
    pred = rankgate.Router.load(router_path).predict(["a", "b", "c"])
    assert all(len(v) == 3 for v in pred.values())
    assert np.all((np.array(list(pred.values())) >= 0) & (np.array(list(pred.values())) <= 1))


def test_at_most_one_knob(router_path):
    with pytest.raises(ValueError, match="at most one"):
        rankgate.Router.load(router_path).choose("x", min_quality=0.5, max_cost_usd=1.0)


def test_a_guarantee_is_asked_as_in_the_gateway(router_path, tmp_path):
    """``confidence`` picks by lower bounds and says whether the promise holds; an artifact
    without bounds refuses instead of pretending."""
    calibrated = tmp_path / "knn-bounds.npz"
    train(read_jsonl(EMBEDDED), "knn", calibrated, HashEmbedder())
    r = rankgate.Router.load(calibrated)
    c = r.choose("What is 17 * 23?", min_quality=0.3, confidence=0.8)
    assert c.guarantee is not None and c.guarantee.split()[0] in ("met", "unmet")
    assert c.quality_bound is not None and set(c.quality_bound) == set(r.models)
    if c.guarantee.startswith("met"):
        assert c.quality_bound[c.model] >= 0.3
    never = r.choose("What is 17 * 23?", min_quality=1.0, confidence=0.99)
    assert never.guarantee.startswith("unmet")
    with pytest.raises(ValueError, match="no quality guarantee"):
        rankgate.Router.load(router_path).choose("x", min_quality=0.5, confidence=0.8)


WORKLOAD = [
    {"id": "hello", "prompt": "Say hello.", "target": ["hello"], "scorer": "contains",
     "category": "chat"},
    {"id": "bye", "prompt": "Say goodbye.", "target": ["goodbye"], "scorer": "contains",
     "category": "chat"},
]


def _panel() -> Panel:
    return Panel([ModelSpec(id="ok", backend="faulty", input_price_per_mtok=1.0,
                            output_price_per_mtok=1.0),
                  ModelSpec(id="broken", backend="faulty", upstream_model="bad-request-400",
                            input_price_per_mtok=1.0, output_price_per_mtok=1.0)])


def _workload(tmp_path: Path) -> Path:
    f = tmp_path / "workload.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in WORKLOAD))
    return f


def test_evaluate_scores_every_model_on_every_item(tmp_path):
    settings = rankgate.Settings(home=tmp_path / "home")
    rows = rankgate.evaluate(_workload(tmp_path), panel=_panel(), settings=settings,
                             cache=False)
    got = {(o.prompt_id, o.model): o for o in rows}
    assert set(got) == {(i["id"], m) for i in WORKLOAD for m in ("ok", "broken")}
    assert got["hello", "ok"].score == 1.0 and got["bye", "ok"].score == 0.0
    assert got["hello", "broken"].error  # the failure is recorded, not raised
    board = rankgate.rank(rows)
    assert board["n_items"] == 2


def test_evaluate_appends_to_out_and_resumes(tmp_path):
    settings = rankgate.Settings(home=tmp_path / "home")
    out = tmp_path / "outcomes.jsonl"
    first = rankgate.evaluate(_workload(tmp_path), panel=_panel(), models=["ok"], out=out,
                              settings=settings, cache=False)
    again = rankgate.evaluate(_workload(tmp_path), panel=_panel(), models=["ok"], out=out,
                              settings=settings, cache=False)
    assert len(first) == len(again) == 2
    assert len(read_jsonl(out)) == 2  # nothing run twice


def test_evaluate_works_inside_a_running_event_loop(tmp_path):
    """A notebook cell runs inside an event loop; evaluate must not need the caller's."""
    settings = rankgate.Settings(home=tmp_path / "home")

    async def cell() -> list:
        return rankgate.evaluate(_workload(tmp_path), panel=_panel(), models=["ok"],
                                 settings=settings, cache=False)

    assert len(asyncio.run(cell())) == 2


def test_evaluate_names_unknown_models(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        rankgate.evaluate(_workload(tmp_path), panel=_panel(), models=["nope"])
