"""ECE on hand-computed cases; the Pareto frontier."""

from __future__ import annotations

import numpy as np
import pytest

from rankgate.rank import calibration, pareto


def test_ece_hand_computed_equal_mass_bins():
    conf = np.array([0.1, 0.2, 0.8, 0.9])
    correct = np.array([0, 1, 1, 1])
    # 2 bins of 2: bin1 conf .15 acc .5 -> .35; bin2 conf .85 acc 1 -> .15; ECE = (.35+.15)/2
    rel = calibration.ece(conf, correct, n_bins=2)
    assert rel.ece == pytest.approx(0.25)
    assert [b["count"] for b in rel.bins] == [2, 2]
    assert rel.warning and "noisy" in rel.warning


def test_perfectly_calibrated_has_zero_ece():
    conf = np.array([0.0] * 50 + [1.0] * 50)
    rel = calibration.ece(conf, conf.copy(), n_bins=2)
    assert rel.ece == pytest.approx(0.0) and rel.warning is None


def test_agreement_confidence():
    assert calibration.agreement_confidence(["42", "42 ", "41", "42"]) == 0.75


def test_pareto_frontier_drops_dominated_and_unknown_cost():
    pts = {"cheap": (1.0, 0.5), "mid": (2.0, 0.7), "bad": (3.0, 0.6), "best": (5.0, 0.9),
           "free?": (None, 0.95)}
    assert pareto.frontier(pts) == ["cheap", "mid", "best"]
