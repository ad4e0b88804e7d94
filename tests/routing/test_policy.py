"""The shared policy: knobs, cost caps, ties."""

from __future__ import annotations

import numpy as np
import pytest

from rankgate.routing.base import Knob, choose

PRED = np.array([[0.50, 0.70, 0.90],
                 [0.95, 0.96, 0.97],
                 [0.10, 0.20, 0.30]])
COST = np.array([1e-6, 1e-5, 1e-4])


def test_lambda_zero_takes_the_best_predicted_quality():
    assert list(choose(PRED, COST, Knob(lam=0.0))) == [2, 2, 2]


def test_large_lambda_takes_the_cheapest():
    assert list(choose(PRED, COST, Knob(lam=1e6))) == [0, 0, 0]


def test_cost_cap_is_never_exceeded():
    rng = np.random.default_rng(0)
    pred = rng.random((500, 3))
    for cap in (5e-6, 2e-5, 1e-3):
        chosen = choose(pred, COST, Knob(max_cost=cap))
        assert np.all(COST[chosen] <= cap)
    # nothing fits: the cheapest model, never a dearer one
    assert set(choose(pred, COST, Knob(max_cost=1e-9))) == {0}


def test_min_quality_takes_the_cheapest_model_that_reaches_it():
    assert list(choose(PRED, COST, Knob(min_quality=0.65))) == [1, 0, 2]


def test_exact_ties_go_to_the_cheaper_model_even_with_dollar_costs():
    pred = np.array([[0.8, 0.8, 0.8]])
    assert choose(pred, np.array([3e-6, 1e-6, 2e-6]), Knob()).tolist() == [1]


def test_unknown_costs_count_as_most_expensive():
    pred = np.array([[0.8, 0.8]])
    assert choose(pred, np.array([np.nan, 1e-6]), Knob()).tolist() == [1]


@pytest.mark.parametrize("kw", [{"lam": -1}, {"min_quality": 2}, {"max_cost": float("nan")},
                                {"lam": 1, "max_cost": 1}])
def test_invalid_knobs_are_rejected(kw):
    with pytest.raises(ValueError):
        Knob(**kw)
