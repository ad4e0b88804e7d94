"""Bradley–Terry recovers known ratings from simulated battles."""

from __future__ import annotations

import random

import pytest

from rankgate.rank import bradley_terry as bt


def simulate(true: dict[str, float], n: int, seed: int = 0) -> list[bt.Vote]:
    rng = random.Random(seed)
    names = list(true)
    votes = []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        p = bt.win_probability(true[a], true[b])
        votes.append(bt.Vote(a, b, 1.0 if rng.random() < p else 0.0))
    return votes


def test_recovers_known_ratings_within_tolerance():
    true = {"a": 1200.0, "b": 1100.0, "c": 1000.0, "d": 700.0}
    ratings = {r.model: r for r in bt.fit(simulate(true, 6000), n_boot=50)}
    mean_true = sum(true.values()) / len(true)
    for m, t in true.items():
        assert ratings[m].rating - 1000 == pytest.approx(t - mean_true, abs=35)
        assert ratings[m].low <= ratings[m].rating <= ratings[m].high
    assert [r.model for r in bt.fit(simulate(true, 6000), n_boot=20)] == ["a", "b", "c", "d"]


def test_fit_is_independent_of_vote_order():
    votes = simulate({"a": 1100.0, "b": 1000.0, "c": 900.0}, 500)
    r1 = {r.model: r.rating for r in bt.fit(votes, n_boot=10)}
    r2 = {r.model: r.rating for r in bt.fit(list(reversed(votes)), n_boot=10)}
    assert r1 == pytest.approx(r2, abs=1e-6)


def test_overlapping_intervals_share_a_rank():
    votes = simulate({"a": 1000.0, "b": 1000.0, "c": 600.0}, 600, seed=3)
    ranks = {r.model: r.rank for r in bt.fit(votes, n_boot=100)}
    assert ranks["a"] == ranks["b"] == 1 and ranks["c"] == 3


def test_ties_count_half_and_unbeaten_models_stay_finite():
    votes = [bt.Vote("a", "b", 1.0)] * 20 + [bt.Vote("b", "c", 0.5)] * 10
    ratings = {r.model: r.rating for r in bt.fit(votes, n_boot=10)}
    assert ratings["a"] > ratings["b"] and abs(ratings["b"] - ratings["c"]) < 50
    assert all(abs(v) < 1e5 for v in ratings.values())
