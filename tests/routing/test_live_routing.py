"""model="auto" through the official openai client, with routers trained on the embedded
panel's shipped outcomes, on a gateway running the real 135M and 0.5B models."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import httpx
import openai
import orjson
import pytest

from tests.conftest import QWEN05, SMOLLM

EASY = "What color is the sky on a clear day? Answer with one word."
HARD = ("Write a Python function `merge_intervals(intervals)` that merges all overlapping "
        "intervals in a list of [start, end] pairs and returns them sorted. Reply with the "
        "complete function in a single ```python code block.")


@pytest.fixture(scope="module")
def two_model_outcomes(tmp_path_factory):
    src = resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"
    out = tmp_path_factory.mktemp("routing") / "two.jsonl"
    with open(str(src), "rb") as f, out.open("wb") as g:
        for line in f:
            if orjson.loads(line)["model"] in (SMOLLM, QWEN05):
                g.write(line)
    return out


def _train(tmp, outcomes, router: str):
    path = tmp / f"{router}.npz"
    r = subprocess.run([sys.executable, "-m", "rankgate", "route", "train", "--outcomes",
                        str(outcomes), "--router", router, "--out", str(path)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return path


@pytest.fixture(scope="module")
def knn_path(two_model_outcomes, tmp_path_factory):
    return _train(tmp_path_factory.mktemp("knn"), two_model_outcomes, "knn")


@pytest.fixture(scope="module")
def routed(start_gateway, two_model_outcomes, knn_path, qwen05_path, smollm_path,
           tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routers")
    knn = knn_path
    bandit = _train(tmp, two_model_outcomes, "bandit")
    panel = [{"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM},
             {"id": QWEN05, "backend": "llamacpp", "path": str(qwen05_path)}]
    gw = start_gateway(panel=panel, name="routed",
                       extra_args=["--router", str(knn), "--router", str(bandit)])
    return gw


@pytest.fixture(scope="module")
def client(routed):
    return openai.OpenAI(base_url=routed.base_url, api_key="unused", max_retries=0,
                         timeout=600)


def _ask(client, prompt: str, model: str = "auto", **knob):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=2,
        temperature=0, extra_body={"rankgate": knob} if knob else None)
    return raw, raw.parse()


def _candidates(raw) -> dict[str, float]:
    pairs = (c.split("=") for c in raw.headers["x-rankgate-candidates"].split(","))
    return {m: float(v.split("/")[0]) for m, v in pairs}


def test_easy_prompt_goes_to_a_cheaper_model_than_a_hard_one(client):
    # the router must see the code task as harder for the small model than the easy question
    q_easy = _candidates(_ask(client, EASY)[0])[SMOLLM]
    q_hard = _candidates(_ask(client, HARD)[0])[SMOLLM]
    assert q_easy > q_hard
    # one knob for both: "the cheapest model predicted to reach q"
    q = (q_easy + q_hard) / 2
    easy, r_easy = _ask(client, EASY, min_quality=q)
    hard, r_hard = _ask(client, HARD, min_quality=q)
    assert easy.headers["x-rankgate-router"] == "knn"
    assert easy.headers["x-rankgate-model"] == SMOLLM == r_easy.model
    assert hard.headers["x-rankgate-model"] == QWEN05 == r_hard.model
    assert set(_candidates(hard)) == {SMOLLM, QWEN05}
    assert float(hard.headers["x-rankgate-predicted-quality"]) == pytest.approx(
        _candidates(hard)[QWEN05], abs=1e-3)


def test_cost_cap_forces_the_cheap_model(client):
    raw, _ = _ask(client, HARD, max_cost_usd=1e-12)
    assert raw.headers["x-rankgate-model"] == SMOLLM


def test_models_list_offers_auto(client):
    ids = [m.id for m in client.models.list()]
    assert "auto" in ids and "auto:knn" in ids and "auto:bandit" in ids


@pytest.mark.parametrize(("extra", "param"), [
    ({"rankgate": {"lambda": -1}}, "rankgate.lambda"),
    ({"rankgate": {"min_quality": "high"}}, "rankgate.min_quality"),
    ({"rankgate": {"max_cost_usd": 1, "min_quality": 0.5}}, "rankgate"),
    ({"rankgate": {"budget": 1}}, "rankgate"),
    ({"rankgate": 5}, "rankgate"),
])
def test_bad_knob_is_400(client, extra, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="auto", messages=[{"role": "user",
                                                                 "content": EASY}],
                                       extra_body=extra)
    assert e.value.param == param


def test_unknown_router_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="auto:nope", messages=[{"role": "user",
                                                                      "content": EASY}])
    assert "knn" in e.value.message


def test_feedback_is_stored_and_unknown_ids_are_404(routed, client):
    raw, _ = _ask(client, EASY)
    rid = raw.headers["x-request-id"]
    r = httpx.post(routed.base_url + "/feedback", json={"request_id": rid, "thumbs": "up",
                                                        "comment": "right"})
    assert r.status_code == 200 and r.json()["model"] == raw.headers["x-rankgate-model"]
    assert httpx.post(routed.base_url + "/feedback",
                      json={"request_id": "nope", "score": 1}).status_code == 404
    for bad in ({"request_id": rid}, {"request_id": rid, "score": 2},
                {"request_id": rid, "thumbs": "sideways"}, {"score": 1}):
        assert httpx.post(routed.base_url + "/feedback", json=bad).status_code == 400
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{routed.home / 'rankgate.db'}")
    with engine.connect() as conn:
        row = conn.execute(sa.text("select * from outcomes where prompt_id = :i"),
                           {"i": rid}).mappings().one()
    engine.dispose()
    assert row["score"] == 1.0 and row["source"] == "feedback" and EASY in row["prompt"]


def test_negative_feedback_changes_the_bandits_choice(routed, client):
    prompt = "Name the largest planet in our solar system."
    first, _ = _ask(client, prompt, "auto:bandit")
    start = first.headers["x-rankgate-model"]
    rid = first.headers["x-request-id"]
    for _ in range(40):  # users keep rejecting the answers of the model it starts with
        r = httpx.post(routed.base_url + "/feedback", json={"request_id": rid,
                                                            "thumbs": "down"})
        assert r.json()["router_updated"] is True
        raw, _ = _ask(client, prompt, "auto:bandit")
        if raw.headers["x-rankgate-model"] != start:
            break
        rid = raw.headers["x-request-id"]
    assert raw.headers["x-rankgate-model"] != start


WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
OSLO = [{"role": "user", "content": "What is the weather in Oslo right now?"}]


def test_auto_routes_a_tool_request_only_to_a_model_that_can_call_tools(client):
    # the cheapest-possible knob would pick the 135M model, whose template has no tools
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=OSLO, tools=WEATHER, tool_choice="required", max_tokens=48,
        temperature=0, extra_body={"rankgate": {"max_cost_usd": 0.0}})
    r = raw.parse()
    assert raw.headers["x-rankgate-model"] == QWEN05
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(orjson.loads(call.function.arguments), dict)


def test_a_model_without_tool_calls_refuses_tools_by_name(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SMOLLM, messages=OSLO, tools=WEATHER,
                                       max_tokens=8)
    err = e.value.body
    assert err["code"] == "capability_not_supported" and err["param"] == "tools"
    assert SMOLLM in err["message"] and "tool" in err["message"]


def test_local_qwen_returns_real_tool_calls_and_continues_the_agent_loop(client):
    r = client.chat.completions.create(
        model=QWEN05, messages=OSLO, tools=WEATHER, max_tokens=48, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None
    assert "city" in orjson.loads(call.function.arguments)
    # the agent framework replays the call and its result: accepted, answered
    follow = [*OSLO,
              {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
              {"role": "tool", "tool_call_id": call.id, "content": "12 C, light rain"}]
    r2 = client.chat.completions.create(model=QWEN05, messages=follow, tools=WEATHER,
                                        tool_choice="none", max_tokens=24, temperature=0)
    assert r2.choices[0].message.content


def test_a_streamed_tool_call_arrives_as_tool_call_deltas(client):
    stream = client.chat.completions.create(
        model=QWEN05, messages=OSLO, tools=WEATHER, tool_choice="required", max_tokens=48,
        temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_auto_with_an_image_no_local_model_can_see_is_a_400(client):
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="auto", messages=msgs, max_tokens=8)
    assert e.value.body["code"] == "capability_not_supported"
    assert e.value.body["param"] == "messages[0].content[1]"


def test_auto_skips_a_model_whose_weights_are_missing(start_gateway, knn_path, smollm_path,
                                                      tmp_path):
    """The router would pick the 0.5B for a hard prompt; its file is missing, so auto picks
    among the ready models at once instead of retrying a model that cannot answer; with no
    ready model left it is a 503 naming why, never a 200 from nowhere."""
    gone = tmp_path / "missing.gguf"
    panel = [{"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM},
             {"id": QWEN05, "backend": "llamacpp", "path": str(gone)}]
    gw = start_gateway(panel=panel, name="not-ready", extra_args=["--router", str(knn_path)])
    c = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=600)
    raw, _ = _ask(c, HARD)
    assert _candidates(raw)[QWEN05] > _candidates(raw)[SMOLLM]  # the router wanted the 0.5B
    assert raw.headers["x-rankgate-model"] == SMOLLM
    assert "x-rankgate-fallback" not in raw.headers
    assert raw.headers.get("x-rankgate-attempts", "1") == "1"

    only_missing = [{"id": SMOLLM, "backend": "llamacpp", "path": str(gone)},
                    {"id": QWEN05, "backend": "llamacpp", "path": str(gone)}]
    gw2 = start_gateway(panel=only_missing, name="none-ready",
                        extra_args=["--router", str(knn_path)])
    c2 = openai.OpenAI(base_url=gw2.base_url, api_key="unused", max_retries=0, timeout=60)
    with pytest.raises(openai.InternalServerError) as e:
        _ask(c2, EASY)
    assert e.value.status_code == 503
    err = e.value.body if isinstance(e.value.body, dict) else {}
    assert err.get("code") == "model_not_ready" and "not ready" in err.get("message", "")
