"""Statistics against reference values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from rankgate.rank import stats


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (37, 120),
                                      (199, 200), (3, 7)])
def test_wilson_matches_scipy(k, n):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    iv = stats.wilson(k, n)
    assert iv.low == pytest.approx(ref.low, abs=1e-9)
    assert iv.high == pytest.approx(ref.high, abs=1e-9)
    assert iv.estimate == k / n


def test_wilson_stays_inside_unit_interval_at_the_extremes():
    assert stats.wilson(0, 5).low == 0.0 and stats.wilson(5, 5).high == 1.0
    assert stats.wilson(0, 5).high > 0.3  # n=5 can't rule much out


def test_mcnemar_exact_hand_computed():
    # 2 items only a right, 8 only b right: p = 2 * P(X <= 2 | Bin(10, .5)) = 2 * 56 / 1024
    a = np.array([1, 1] + [0] * 8 + [1] * 20 + [0] * 5)
    b = np.array([0, 0] + [1] * 8 + [1] * 20 + [0] * 5)
    p, n10, n01 = stats.mcnemar_exact(a, b)
    assert (n10, n01) == (2, 8)
    assert p == pytest.approx(2 * 56 / 1024)


def test_mcnemar_with_no_discordant_pairs_is_one():
    a = np.array([1, 0, 1])
    assert stats.mcnemar_exact(a, a.copy())[0] == 1.0


def test_paired_compare_uses_mcnemar_for_binary_and_bootstrap_for_graded():
    rng = np.random.default_rng(0)
    a = (rng.random(200) < 0.7).astype(float)
    b = (rng.random(200) < 0.5).astype(float)
    r = stats.paired_compare(a, b)
    assert r.test == "mcnemar-exact" and r.p_value < 0.01
    assert r.low < r.diff < r.high and r.diff == pytest.approx(a.mean() - b.mean())
    g = stats.paired_compare(a * 0.9, b * 0.9 + 0.05)
    assert g.test == "paired-bootstrap"


def test_paired_bootstrap_p_is_large_for_identical_distributions():
    rng = np.random.default_rng(1)
    a = rng.random(300)
    b = a + rng.normal(0, 0.01, 300)
    assert stats.paired_bootstrap_p(a, b) > 0.05
    assert stats.paired_bootstrap_p(a, a + 0.2) < 0.01


def test_holm_hand_computed():
    # p sorted: .01*3=.03, .02*2=.04, .04*1=.04 (monotone)
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_bootstrap_interval_covers_the_mean_of_graded_scores():
    x = np.linspace(0, 1, 101)
    iv = stats.mean_interval(x)
    assert iv.method == "bootstrap" and iv.low < 0.5 < iv.high
