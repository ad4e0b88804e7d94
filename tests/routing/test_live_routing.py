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
def routed(start_gateway, two_model_outcomes, qwen05_path, smollm_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routers")
    knn = _train(tmp, two_model_outcomes, "knn")
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
