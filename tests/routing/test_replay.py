"""Replay metrics against hand-computed cases (APGR, CPT, AIQ, savings, baselines)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankgate.routing import replay as rp

KEYS = {"apgr", "cpt50", "cpt80", "aiq", "quality_at_95pct_best", "cost_at_95pct_best",
        "savings_at_95pct_best", "curve"}


def two_model(n: int, weak_right: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns [weak, strong]: strong always right, weak right on the first ``weak_right``."""
    Y = np.zeros((n, 2))
    Y[:, 1] = 1.0
    Y[:weak_right, 0] = 1.0
    return Y, np.array([1.0, 10.0])


def toy3() -> tuple[np.ndarray, np.ndarray]:
    """A (cost 1, q .5), B (cost 2, q .8), C (cost 4, q .9) on 10 items."""
    Y = np.zeros((10, 3))
    Y[:5] = 1  # everyone right
    Y[5:8, 1:] = 1  # B and C right
    Y[8, 2] = 1  # only C right
    return Y, np.array([1.0, 2.0, 4.0])  # item 9: nobody right


# --------------------------------------------------------------------------- APGR / CPT


def test_perfect_router_apgr_near_one_when_weak_is_mostly_right():
    # weak right on 98/100: the oracle point needs strong on 2 items -> share 0.02, PGR 1 after
    Y, c = two_model(100, 98)
    r = rp.evaluate_router("perfect", Y, Y, c)
    assert r["apgr"] == pytest.approx(0.98)
    assert r["cpt50"] == pytest.approx(0.02)
    assert r["cpt80"] == pytest.approx(0.02)


def test_perfect_router_apgr_half_when_weak_right_on_half():
    # by hand: curve = weak (share 0, PGR 0) and oracle (cost 5.5 -> share 0.5, PGR 1) -> 0.5
    Y, c = two_model(100, 50)
    r = rp.evaluate_router("perfect", Y, Y, c)
    assert r["curve"] == [[1.0, 0.5], [5.5, 1.0]]
    assert r["apgr"] == pytest.approx(0.5)
    assert r["cpt50"] == pytest.approx(0.5)


def test_random_router_apgr_half_and_cpt50_half():
    Y, c = two_model(100, 50)
    line = rp.random_curve(Y, c)
    strong, weak = (10.0, 1.0), (1.0, 0.5)
    assert rp.apgr(line, strong, weak) == pytest.approx(0.5, abs=0.005)
    assert rp.cpt(line, 0.5, strong, weak) == pytest.approx(0.5)
    assert rp.cpt(line, 0.8, strong, weak) == pytest.approx(0.8, abs=0.005)
    assert rp.evaluate_baselines(Y, c)["random"]["apgr"] == pytest.approx(0.5, abs=0.005)


def test_reversed_router_below_random():
    rng = np.random.default_rng(1)
    n = 400
    Y = np.column_stack([rng.random(n) < 0.5, rng.random(n) < 0.9]).astype(float)
    c = np.array([1.0, 10.0])
    reverse = rp.evaluate_router("reverse", 1.0 - Y, Y, c)
    perfect = rp.evaluate_router("perfect", Y, Y, c)
    rand = rp.evaluate_baselines(Y, c)["random"]
    assert reverse["apgr"] < rand["apgr"] - 0.3
    assert perfect["apgr"] > rand["apgr"]


def test_pgr():
    assert rp.pgr(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert rp.pgr(0.95, 0.5, 0.9) == pytest.approx(1.125)  # not clipped
    assert rp.pgr(0.7, 0.8, 0.8) is None


def test_apgr_undefined_when_strong_not_dearer_or_no_gap():
    assert rp.apgr([(1.0, 0.5)], (1.0, 0.9), (2.0, 0.5)) is None
    assert rp.cpt([(1.0, 0.5)], 0.5, (1.0, 0.5), (2.0, 0.5)) is None


# --------------------------------------------------------------------------- AIQ


def test_aiq_straight_line():
    assert rp.aiq([(0.0, 0.0), (1.0, 1.0)], 0.0, 1.0) == pytest.approx(0.5)


def test_aiq_single_point():
    assert rp.aiq([(0.0, 0.8)], 0.0, 1.0) == pytest.approx(0.8)  # flat after the point
    assert rp.aiq([(0.5, 0.8)], 0.0, 1.0) == pytest.approx(0.4)  # 0 before it
    assert rp.aiq([(0.5, 0.8)], 0.5, 0.5) == pytest.approx(0.8)  # empty range: the height


def test_aiq_uses_hull_not_raw_points():
    # (1, .2) lies under the segment (0,0)-(2,1) and (3, .5) after the maximum: both ignored
    pts = [(0.0, 0.0), (1.0, 0.2), (2.0, 1.0), (3.0, 0.5)]
    assert rp.aiq(pts, 0.0, 4.0) == pytest.approx((1.0 + 2.0) / 4.0)


# --------------------------------------------------------------------------- monotone handling


def test_non_monotone_curve_uses_upper_envelope():
    pts = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.7), (4.0, 0.8)]
    strong, weak = (4.0, 0.9), (1.0, 0.5)
    assert rp.quality_at(pts, 3.0) == pytest.approx(0.9)
    assert rp.quality_at(pts, 0.5) is None
    assert rp.cost_to_reach(pts, 0.85) == pytest.approx(2.0)
    assert rp.cost_to_reach(pts, 0.95) is None
    # shares 0, 1/3, 2/3, 1 with PGR 0, 1, .5, .75: envelope 0 then 1 from 1/3
    assert rp.apgr(pts, strong, weak) == pytest.approx(2 / 3)
    assert rp.cpt(pts, 0.8, strong, weak) == pytest.approx(1 / 3)
    # hull (1,.5)-(2,.9) then flat: (0.7 + 1.8) / 3
    assert rp.aiq(pts, 1.0, 4.0) == pytest.approx(2.5 / 3)


def test_knob_producing_a_worse_dearer_point():
    # columns [weak, strong]; the router sends item 2 to strong, where only weak is right
    Y = np.array([[1, 1], [0, 1], [1, 0], [0, 1]], float)
    P = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], float)
    c = np.array([1.0, 10.0])
    r = rp.evaluate_router("bad", P, Y, c)
    assert r["curve"] == [[1.0, 0.5], [3.25, 0.25]]  # dearer and worse: kept, but never counted
    assert rp.quality_at(r["curve"], 5.0) == pytest.approx(0.5)
    assert r["apgr"] == pytest.approx(0.0)  # envelope stays at the weak model, not negative
    assert r["aiq"] == pytest.approx(0.5)
    assert r["cpt50"] is None


def test_knob_curve_is_sorted_and_deduplicated():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 4)) < [0.3, 0.5, 0.7, 0.8]).astype(float)
    P = np.clip(Y + rng.normal(0, 0.4, Y.shape), 0, 1)
    pts = rp.curve(P, Y, np.array([0.1, 0.3, 1.0, 3.0]))
    xs = [p[0] for p in pts]
    assert xs == sorted(xs)
    assert len(set(pts)) == len(pts)
    assert xs[0] == pytest.approx(0.1)  # large λ: everything to the cheapest model
    assert len(pts) > 20  # dense enough to see the trade-off


# --------------------------------------------------------------------------- savings, baselines


def test_savings_three_models_by_hand():
    Y, c = toy3()
    # oracle: items 0-4 -> A, 5-7 -> B, 8 -> C, 9 (nobody right) -> A: cost 1.6, quality 0.9
    assert rp.oracle_point(Y, c) == pytest.approx((1.6, 0.9))
    perfect = rp.evaluate_router("perfect", Y, Y, c)
    assert perfect["cost_at_95pct_best"] == pytest.approx(1.6)
    assert perfect["quality_at_95pct_best"] == pytest.approx(0.9)
    assert perfect["savings_at_95pct_best"] == pytest.approx(1 - 1.6 / 4)
    # by hand, the knob with P = Y: λ>1/3 drops item 8 to A (cost 1.3, q .8), λ>1 items 5-7
    np.testing.assert_allclose(perfect["curve"], [[1.0, 0.5], [1.3, 0.8], [1.6, 0.9]])

    # constant predictions = the models' mean qualities: one model for all items per λ
    const = np.tile(Y.mean(axis=0), (10, 1))
    r = rp.evaluate_router("const", const, Y, c)
    np.testing.assert_allclose(r["curve"], [[1.0, 0.5], [2.0, 0.8], [4.0, 0.9]])
    assert r["savings_at_95pct_best"] == pytest.approx(0.0)  # only C reaches 0.855

    base = rp.evaluate_baselines(Y, c)
    # zero router: on segment B-C, 0.8 + 0.05·(x − 2) = 0.855 at x = 3.1 -> 1 − 3.1/4
    assert base["zero"]["cost_at_95pct_best"] == pytest.approx(3.1, abs=0.02)
    assert base["zero"]["savings_at_95pct_best"] == pytest.approx(0.225, abs=0.005)
    # random router: share (0.855 − .5)/.4 = .8875 -> cost 1 + 3·.8875 = 3.6625
    assert base["random"]["cost_at_95pct_best"] == pytest.approx(3.6625, abs=0.02)
    assert base["oracle"]["savings_at_95pct_best"] == pytest.approx(0.6)
    # AIQ over [1, 4]: zero hull (1,.5)-(2,.8)-(4,.9): (0.65 + 1.7) / 3
    assert base["zero"]["aiq"] == pytest.approx(2.35 / 3)


def test_zero_router_hull_drops_dominated_models():
    # A(1,.5) B(2,.8) C(4,.9); D(3,.6) dominated, E(1.5,.55) under A-B, F(5,.85) past the top
    singles = [(1.0, 0.5), (2.0, 0.8), (3.0, 0.6), (4.0, 0.9), (1.5, 0.55), (5.0, 0.85)]
    assert rp.upper_hull(singles) == [(1.0, 0.5), (2.0, 0.8), (4.0, 0.9)]
    Y = np.array([[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], float)
    # means .25 .5 .25 .75 at costs 1 2 3 4: the third model is dominated by the second
    assert rp.zero_router_hull(Y, np.array([1.0, 2.0, 3.0, 4.0])) == [
        (1.0, 0.25), (2.0, 0.5), (4.0, 0.75)]


def test_cheap_model_as_good_as_expensive():
    rng = np.random.default_rng(3)
    col = (rng.random(50) < 0.7).astype(float)
    Y = np.column_stack([col, col])
    c = np.array([0.0, 1.0])
    r = rp.evaluate_router("perfect", Y, Y, c)
    assert r["cost_at_95pct_best"] == pytest.approx(0.0)
    assert r["savings_at_95pct_best"] == pytest.approx(1.0)
    assert r["apgr"] is None  # no gap between strong and weak
    zero = rp.evaluate_baselines(Y, c)["zero"]
    assert zero["curve"] == [[0.0, pytest.approx(col.mean())]]
    assert zero["savings_at_95pct_best"] == pytest.approx(1.0)
    assert zero["aiq"] == pytest.approx(col.mean())


def test_oracle_tie_break_survives_tiny_dollar_costs():
    # $-costs ~1e-6: choose's 1e-12·cost tie-break alone would be lost under float rounding
    Y = np.ones((5, 3))
    c = np.array([3e-6, 1e-6, 2e-6])
    assert rp.curve(Y, Y, c) == [(pytest.approx(1e-6), 1.0)]
    assert rp.oracle_point(Y, c)[0] == pytest.approx(1e-6)


# --------------------------------------------------------------------------- unknown costs


def test_costs_unknown_uses_order_and_flags():
    Y, _ = toy3()
    report = rp.replay_report({"perfect": Y}, Y, None, ["a", "b", "c"], order=["c", "a", "b"])
    assert report["costs_known"] is False
    assert {m: v["cost"] for m, v in report["models"].items()} == {"a": 2.0, "b": 3.0, "c": 1.0}
    # c is cheapest and most accurate: everything reaches the best at rank cost 1
    assert report["routers"]["perfect"]["cost_at_95pct_best"] == pytest.approx(1.0)


def test_costs_partially_unknown_use_the_strong_call_share_never_an_order():
    Y = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])  # column 0 is strong
    cost, known = rp.resolve_costs(np.array([np.nan, 0.5, 0.1]), 3, Y=Y)
    assert not known
    assert list(cost) == [1.0, 0.0, 0.0]  # strong model = 1 call, the others free
    cost, known = rp.resolve_costs(np.array([0.2, 0.5, 0.1]), 3)
    assert known and list(cost) == [0.2, 0.5, 0.1]
    with pytest.raises(ValueError, match="costs are unknown"):
        rp.resolve_costs(None, 3)  # nothing to find the strong model with: no guess
    with pytest.raises(ValueError):
        rp.resolve_costs(None, 3, [0, 0, 1])


# --------------------------------------------------------------------------- report, bootstrap


def test_report_shape_and_json():
    Y, c = toy3()
    report = rp.replay_report({"perfect": Y}, Y, c, ["A", "B", "C"], n_boot=20)
    assert set(report) >= {"n_test", "models", "routers", "costs_known"}
    assert report["n_test"] == 10 and report["costs_known"] is True
    assert set(report["routers"]) == {"perfect", "random", "zero", "oracle"}
    for r in report["routers"].values():
        assert set(r) == KEYS
    assert report["models"]["B"] == {"quality": pytest.approx(0.8), "cost": 2.0}
    assert report["reference"] == {"strong": "C", "weak": "A", "best": "C"}
    json.dumps(report)
    with pytest.raises(ValueError):
        rp.replay_report({"zero": Y}, Y, c, ["A", "B", "C"])


def test_bootstrap_intervals():
    rng = np.random.default_rng(2)
    n = 300
    Y = np.column_stack([rng.random(n) < 0.4, rng.random(n) < 0.6, rng.random(n) < 0.85]
                        ).astype(float)
    c = np.array([1.0, 3.0, 10.0])
    P = np.clip(Y + rng.normal(0, 0.5, Y.shape), 0, 1)
    point = rp.evaluate_router("noisy", P, Y, c)
    iv = rp.bootstrap_intervals(P, Y, c, n_boot=100, seed=0)
    assert iv == rp.bootstrap_intervals(P, Y, c, n_boot=100, seed=0)  # reproducible
    for k in ("apgr", "aiq", "savings_at_95pct_best"):
        lo, hi = iv[k]
        assert lo <= hi
        assert lo - 0.05 <= point[k] <= hi + 0.05
    assert iv["aiq"][1] - iv["aiq"][0] < 0.2


def test_bad_input():
    Y, c = toy3()
    with pytest.raises(ValueError):
        rp.evaluate_router("r", Y[:, :2], Y, c)
    Y2 = Y.copy()
    Y2[0, 0] = np.nan
    with pytest.raises(ValueError):
        rp.evaluate_router("r", Y, Y2, c)
