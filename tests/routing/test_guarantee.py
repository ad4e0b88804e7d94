"""The quality guarantee (``min_quality`` + ``confidence``): conformal lower bounds keep their
promise on fresh data, a target no model can meet falls back to the best model and says so,
the knob refuses a confidence outside (0, 1), the bounds travel in the artifact, and the
gateway answers with the bound it used in a header."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rankgate.embed import HashEmbedder
from rankgate.gateway.auto_route import parse_knob
from rankgate.gateway.errors import APIError
from rankgate.outcomes import Outcome
from rankgate.routing import artifact
from rankgate.routing.base import Knob, choose_guaranteed
from rankgate.routing.conformal import Guarantee, check_trainable, coverage_table, guarantee_of
from rankgate.routing.train_replay import train

COSTS = np.array([1.0, 2.0, 4.0])


def world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, realised graded scores) for 3 models: each item has a true quality per
    model; the router sees it with noise; the realised score scatters around it."""
    rng = np.random.default_rng(seed)
    ease = rng.beta(2, 2, (n, 1))
    true = np.clip(ease + np.array([-0.25, 0.0, 0.2]) + rng.normal(0, 0.1, (n, 3)), 0, 1)
    pred = np.clip(true + rng.normal(0, 0.08, true.shape), 0, 1)
    score = np.clip(true + rng.normal(0, 0.12, true.shape), 0, 1)
    return pred, score


@pytest.fixture(scope="module")
def guarantee() -> Guarantee:
    P, Y = world(3000, 0)
    return Guarantee(["a", "b", "c"], P, Y, COSTS)


@pytest.mark.parametrize("confidence", [0.8, 0.9])
@pytest.mark.parametrize("target", [0.6, 0.7])
def test_guarantee_keeps_its_promise_on_fresh_data(guarantee, target, confidence):
    P, Y = world(4000, 1)
    row = next(r for r in coverage_table(guarantee, P, Y, COSTS, (target,), (confidence,)))
    assert row["certified_share"] > 0.1  # it certifies something...
    assert row["coverage_ci"][1] >= confidence  # ...and keeps the promise within its interval
    assert row["coverage"] >= confidence - 0.03


def test_a_stricter_confidence_never_gives_higher_bounds(guarantee):
    P, _ = world(500, 2)
    assert np.all(guarantee.lower(P, 0.7, 0.9) <= guarantee.lower(P, 0.7, 0.8) + 1e-12)


def test_unmeetable_guarantee_falls_back_to_the_best_model_and_says_so():
    lower = np.array([[0.1, 0.3, 0.5]])
    pred = np.array([[0.4, 0.6, 0.9]])
    j, met = choose_guaranteed(lower, pred, COSTS, target=0.8)
    assert j[0] == 2 and not met[0]
    j, met = choose_guaranteed(lower, pred, COSTS, target=0.25)
    assert j[0] == 1 and met[0]  # the cheapest whose bound clears it


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.2, float("nan")])
def test_knob_refuses_confidence_outside_the_open_unit_interval(bad):
    with pytest.raises(ValueError, match="confidence"):
        Knob(min_quality=0.8, confidence=bad)
    with pytest.raises(APIError) as e:
        parse_knob({"rankgate": {"min_quality": 0.8, "confidence": bad}})
    assert e.value.status == 400 and e.value.param == "rankgate.confidence"


def test_knob_needs_min_quality_for_a_confidence():
    with pytest.raises(APIError) as e:
        parse_knob({"rankgate": {"confidence": 0.9}})
    assert e.value.param == "rankgate.confidence"
    assert parse_knob({"rankgate": {"min_quality": 0.8, "confidence": 0.9}}) == Knob(
        min_quality=0.8, confidence=0.9)


@pytest.mark.parametrize(("Y", "models", "match"), [
    (np.ones((100, 1)) * 0.5, ["a"], "at least 2 models"),
    (np.ones((100, 2)), ["a", "b"], "scores that vary"),
    (np.eye(2)[np.arange(10) % 2], ["a", "b"], "at least 40 items, got 10"),
])
def test_guarantee_refuses_data_it_cannot_promise_anything_from(Y, models, match):
    with pytest.raises(ValueError, match=match):
        check_trainable(Y, models, 40, "a quality guarantee")
    with pytest.raises(ValueError, match=match):
        Guarantee(models, np.full(Y.shape, 0.5), Y, np.ones(len(models)))


# ---------------------------------------------------------------------- artifact and gateway

SMALL, BIG = "small", "big"


def _outcomes() -> list[Outcome]:
    rows = []
    for i in range(200):
        sums = i % 2 == 0
        text = (f"What is {i} plus {i * 3 % 17}? Answer with the number only." if sums else
                f"Write a Python function f{i}(xs) that sorts xs. Reply with one code block.")
        rows.append(Outcome(f"i{i}", text, SMALL, float(sums and i % 20 != 0),
                            cost_usd=1e-5))
        rows.append(Outcome(f"i{i}", text, BIG, float(i % 10 != 5), cost_usd=1e-4))
    return rows


@pytest.fixture(scope="module")
def router_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("guarantee") / "knn.npz"
    info = train(_outcomes(), "knn", path, HashEmbedder())
    assert info["guarantee"] is not None, info["guarantee_note"]
    return str(path)


def test_guarantee_travels_in_the_artifact(router_path):
    router, header = artifact.load(router_path, HashEmbedder())
    g = guarantee_of(router)
    assert g is not None and header["guarantee"]["models"] == [SMALL, BIG]
    P = router.predict(["What is 5 plus 7? Answer with the number only."])
    assert g.lower(P, 0.8, 0.9).shape == (1, 2)


@pytest.fixture(scope="module")
def client(router_path, tmp_path_factory):
    from rankgate.config import Settings
    from rankgate.gateway.app import create_app
    from rankgate.panel import parse_panel

    panel = parse_panel([
        {"id": SMALL, "backend": "faulty", "upstream_model": "ok",
         "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1},
        {"id": BIG, "backend": "faulty", "upstream_model": "ok",
         "input_price_per_mtok": 1.0, "output_price_per_mtok": 1.0}], "test")
    home = tmp_path_factory.mktemp("gw-home")
    app = create_app(Settings(home=home), panel, routers=[router_path])
    with TestClient(app) as c:
        yield c


def _ask(client, prompt: str, knob: dict):
    return client.post("/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": prompt}], "max_tokens": 4,
        "rankgate": knob})


def test_gateway_headers_carry_the_bound_of_a_met_guarantee(client):
    r = _ask(client, "What is 40 plus 2? Answer with the number only.",
             {"min_quality": 0.5, "confidence": 0.8})
    assert r.status_code == 200, r.text
    assert r.headers["x-rankgate-guarantee"].startswith("met 0.5@0.8")
    assert float(r.headers["x-rankgate-quality-bound"]) >= 0.5


def test_gateway_unmeetable_guarantee_uses_the_best_model_and_says_so(client):
    r = _ask(client, "Write a Python function g(xs) that sorts xs. Reply with one code block.",
             {"min_quality": 1.0, "confidence": 0.99})
    assert r.status_code == 200, r.text
    assert r.headers["x-rankgate-guarantee"].startswith("unmet 1@0.99")
    assert r.headers["x-rankgate-model"] == BIG  # the best predicted model
    assert "x-rankgate-quality-bound" in r.headers


@pytest.mark.parametrize("bad", [1.0, 0, 2, "high"])
def test_gateway_refuses_a_bad_confidence_with_its_param(client, bad):
    r = _ask(client, "hi", {"min_quality": 0.8, "confidence": bad})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "rankgate.confidence"


# ---------------------------------------------------------------------- savings → λ


@pytest.mark.parametrize("savings", [0.3, 0.6])
def test_savings_target_picks_a_lambda_that_spends_within_it(savings):
    from rankgate.routing.base import choose
    from rankgate.routing.budget import lambda_for_savings

    P, Y = world(1000, 3)
    lam = lambda_for_savings(P, Y, COSTS, savings)
    spent = COSTS[choose(P, COSTS, Knob(lam=lam))].mean()
    assert spent <= (1 - savings) * COSTS[Y.mean(axis=0).argmax()] + 1e-9
    assert lam <= lambda_for_savings(P, Y, COSTS, savings + 0.2)  # saving more costs quality


def test_gateway_savings_knob_routes_and_refuses_a_bad_share(client):
    ok = _ask(client, "What is 3 plus 4? Answer with the number only.", {"savings": 0.5})
    assert ok.status_code == 200, ok.text
    bad = _ask(client, "hi", {"savings": 1.5})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rankgate.savings"


# ---------------------------------------------------------------------- train and replay


@pytest.mark.parametrize(("rows", "match"), [
    ([Outcome(f"i{i}", f"prompt {i}", BIG, float(i % 2)) for i in range(50)],
     "at least 2 models, got 1"),
    ([Outcome(f"i{i}", f"prompt {i}", m, 1.0) for i in range(50) for m in (SMALL, BIG)],
     "scores that vary"),
])
def test_route_train_refuses_data_nothing_can_be_learned_from(rows, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        train(rows, "knn", tmp_path / "r.npz", HashEmbedder())
    assert not (tmp_path / "r.npz").exists()


def test_replay_reports_guarantee_coverage_and_paired_differences(tmp_path):
    from rankgate.routing.replay_report import guarantee_rows, paired_rows, write_replay_html
    from rankgate.routing.train_replay import run_replay, split

    tr, te = split(_outcomes(), 0.3, seed=0)
    report = run_replay(tr, te, ["knn", "knn_tuned"], HashEmbedder(), n_boot=20)
    rows = report["guarantee"]["knn"]["rows"]
    assert {(r["target"], r["confidence"]) for r in rows} == {
        (t, c) for t in (0.6, 0.7, 0.8) for c in (0.8, 0.9)}
    assert all(0 <= r["certified_share"] <= 1 and r["cost_point"] > 0 for r in rows)
    assert report["paired_vs"] == "knn_tuned" and set(report["paired"]) == {"knn"}
    assert paired_rows(report)[0]["aiq_ci"] is not None
    assert len(guarantee_rows(report)) == 12
    write_replay_html(report, tmp_path / "r.html")
    assert "Quality guarantee" in (tmp_path / "r.html").read_text()


def test_replay_keeps_what_a_paired_comparison_of_two_replays_needs():
    # bench/embed_speed.py compares one router under two embedders on the same items
    from rankgate.routing.replay import paired_difference
    from rankgate.routing.train_replay import run_replay, split

    tr, te = split(_outcomes(), 0.3, seed=0)
    kept: dict = {}
    report = run_replay(tr, te, ["knn"], HashEmbedder(), n_boot=20, kept=kept)
    P, Y = kept["predictions"]["knn"], kept["scores"]
    assert P.shape == Y.shape == (report["n_test"], 2) and len(kept["item_ids"]) == len(Y)
    same = paired_difference(P, P, Y, kept["used"], 20, 0)
    assert same["diff"] == 0.0 and same["ci"] == [0.0, 0.0]
    other: dict = {}
    run_replay(tr, te, ["knn"], HashEmbedder(dim=64), n_boot=0, kept=other)
    assert other["item_ids"] == kept["item_ids"]
    assert not np.array_equal(other["predictions"]["knn"], P)
