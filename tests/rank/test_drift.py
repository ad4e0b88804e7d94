"""Drift: a shift injected into a model's quality or latency is found with an interval that
excludes zero; a stable series, or one too thin to test, reports no drift. The outcomes are
data written with deliberately different scores, not model answers."""

from __future__ import annotations

import numpy as np
import pytest

from rankgate.outcomes import Outcome
from rankgate.rank.drift import compare_windows, describe, detect

DAY = 86400.0
END = 1_750_000_000.0


def series(model: str, kind: str, before: list[float], after: list[float],
           latency: tuple[float, float] = (1.0, 1.0), seed: int = 0
           ) -> list[tuple[float, Outcome]]:
    """Outcomes spread evenly over the two days before END: ``before`` in the earlier day,
    ``after`` in the latest; latencies noisy around the given medians."""
    rng = np.random.default_rng(seed)
    rows = []
    for day, scores, lat in ((2, before, latency[0]), (1, after, latency[1])):
        for i, s in enumerate(scores):
            ts = END - day * DAY + (i + 0.5) * DAY / len(scores)
            rows.append((ts, Outcome(f"{model}-{day}-{i}", "q", model, s, source=kind,
                                     latency_s=float(lat * rng.lognormal(0, 0.2)))))
    return rows


def graded(rng: np.random.Generator, mean: float, n: int) -> list[float]:
    return list(np.clip(rng.normal(mean, 0.15, n), 0, 1))


def test_a_drop_in_judged_quality_is_a_drift_with_an_interval_below_zero():
    rng = np.random.default_rng(1)
    data = (series("qwen", "judge", graded(rng, 0.8, 40), graded(rng, 0.5, 40))
            + series("smol", "judge", graded(rng, 0.4, 40), graded(rng, 0.4, 40), seed=1))
    report = detect(data, DAY, end=END)
    found = {(c.model, c.metric): c for c in report.drifts}
    assert set(found) == {("qwen", "quality (judge)")}
    c = found[("qwen", "quality (judge)")]
    assert c.high < 0 and c.low < c.diff < c.high and c.diff == pytest.approx(-0.3, abs=0.08)
    assert c.test == "permutation" and (c.n_before, c.n_after) == (40, 40)
    assert "qwen: quality (judge)" in describe(c) and "95% CI" in describe(c)


def test_thumbs_use_the_two_proportion_test_and_a_rise_is_found_too():
    data = series("live", "feedback", [1.0] * 10 + [0.0] * 30, [1.0] * 30 + [0.0] * 10)
    report = detect(data, DAY, end=END)
    [c] = [c for c in report.checks if c.metric == "quality (feedback)"]
    assert c.drift and c.test == "two-proportion z" and c.low > 0
    assert c.diff == pytest.approx(0.5)


def test_a_slower_model_is_a_latency_drift():
    rng = np.random.default_rng(2)
    data = series("qwen", "judge", graded(rng, 0.7, 30), graded(rng, 0.7, 30),
                  latency=(1.0, 2.0))
    report = detect(data, DAY, end=END)
    assert [(c.model, c.metric) for c in report.drifts] == [("qwen", "latency")]
    [lat] = report.drifts
    assert lat.test == "mann-whitney" and lat.low > 0 and lat.after > lat.before


def test_a_stable_series_reports_no_drift():
    rng = np.random.default_rng(3)
    data = []
    for i, m in enumerate(("a", "b", "c")):
        data += series(m, "judge", graded(rng, 0.6, 50), graded(rng, 0.6, 50), seed=i)
        data += series(m, "feedback", list(rng.integers(0, 2, 40).astype(float)),
                       list(rng.integers(0, 2, 40).astype(float)), seed=10 + i)
    report = detect(data, DAY, end=END)
    assert len(report.checks) == 9 and report.drifts == []


def test_too_few_outcomes_are_listed_untested_not_called_stable():
    data = series("rare", "judge", [0.9] * 5, [0.1] * 5)
    report = detect(data, DAY, end=END)
    assert report.checks == [] and report.drifts == []
    assert {(t["model"], t["metric"], t["n_before"], t["n_after"]) for t in report.too_few} == {
        ("rare", "quality (judge)", 5, 5), ("rare", "latency", 5, 5)}


def test_the_windows_end_at_the_newest_outcome_by_default():
    rng = np.random.default_rng(4)
    data = series("qwen", "judge", graded(rng, 0.8, 30), graded(rng, 0.3, 30))
    report = detect(data, DAY)
    assert report.end == pytest.approx(max(ts for ts, _ in data), abs=1e-3)
    assert [c.metric for c in report.drifts] == ["quality (judge)"]


def test_same_data_same_report():
    a, b = [0.2, 0.4, 0.6] * 10, [0.3, 0.5, 0.7] * 10
    assert compare_windows(a, b, "quality (judge)") == compare_windows(a, b, "quality (judge)")
