"""Drift: has a model's quality or latency changed lately?

Per model, the latest time window (ending at the newest outcome) is compared with the window
before it, for three metrics:

* **quality (judge)** and **quality (feedback)**, kept apart because a judge's grades and users'
  thumbs are different scales (a shifting mix of the two would look like drift). 0/1 scores
  (thumbs) use the two-proportion z-test with Newcombe's interval for the difference;
  graded scores a permutation test of the difference in means with a bootstrap interval;
* **latency** (of the answers those outcomes score, each answer once): the Mann–Whitney U
  test, with a bootstrap interval for the difference in medians.

A change is reported as a drift only when its Holm-adjusted p-value (over every check made)
is below ``alpha`` *and* its 95% interval excludes zero; a model with fewer than ``min_n``
outcomes in either window is not tested, and is listed as such, so a quiet report on thin data
says that it is thin. Everything is seeded: the same data gives the same report.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rankgate.outcomes import Outcome
from rankgate.rank import stats

METRICS = ("quality (judge)", "quality (feedback)", "latency")


@dataclass(frozen=True)
class Check:
    """One model × metric compared across the two windows."""

    model: str
    metric: str
    before: float  # mean quality / median latency (s) in the earlier window
    after: float  # ... in the latest window
    diff: float  # after − before
    low: float  # 95% interval of the difference
    high: float
    p_value: float
    test: str
    n_before: int
    n_after: int
    p_holm: float = 1.0
    drift: bool = False


@dataclass
class DriftReport:
    window_s: float
    start: float  # start of the earlier window (unix seconds)
    split: float  # end of the earlier window, start of the latest
    end: float  # end of the latest window
    checks: list[Check] = field(default_factory=list)
    too_few: list[dict[str, Any]] = field(default_factory=list)  # untested: model, metric, n's

    @property
    def drifts(self) -> list[Check]:
        return [c for c in self.checks if c.drift]

    def to_json(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "start": self.start, "split": self.split,
                "end": self.end, "checks": [asdict(c) for c in self.checks],
                "drifts": [asdict(c) for c in self.drifts], "too_few": self.too_few}


def _two_proportions(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, str]:
    """(low, high, p) for mean(b) − mean(a) of 0/1 samples: pooled z-test, Newcombe (hybrid
    Wilson) interval."""
    n1, n2 = len(a), len(b)
    p1, p2 = float(a.mean()), float(b.mean())
    pooled = (a.sum() + b.sum()) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p = 1.0 if se == 0 else float(math.erfc(abs(p2 - p1) / se / math.sqrt(2)))
    w1, w2 = stats.wilson(float(a.sum()), n1), stats.wilson(float(b.sum()), n2)
    d = p2 - p1
    low = d - math.sqrt((p2 - w2.low) ** 2 + (w1.high - p1) ** 2)
    high = d + math.sqrt((w2.high - p2) ** 2 + (p1 - w1.low) ** 2)
    return low, high, p, "two-proportion z"


#: resampled values held in memory at once (a day of busy traffic is thousands of answers)
_CHUNK = 2_000_000


def _chunks(total: int, width: int) -> list[int]:
    size = max(1, _CHUNK // max(width, 1))
    return [min(size, total - i) for i in range(0, total, size)]


def _boot_diff(a: np.ndarray, b: np.ndarray, stat: Any, rng: np.random.Generator,
               n_boot: int) -> tuple[float, float]:
    parts = []
    for k in _chunks(n_boot, len(a) + len(b)):
        ia = rng.integers(0, len(a), size=(k, len(a)))
        ib = rng.integers(0, len(b), size=(k, len(b)))
        parts.append(stat(b[ib], axis=1) - stat(a[ia], axis=1))
    d = np.concatenate(parts)
    return float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))


def _permutation(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                 n_perm: int) -> float:
    """Two-sided permutation p-value of the difference in means."""
    observed = abs(b.mean() - a.mean())
    pooled = np.concatenate([a, b])
    n1 = len(a)
    hits = 0
    for k in _chunks(n_perm, len(pooled)):
        shuffled = pooled[np.argsort(rng.random((k, len(pooled))), axis=1)]
        diffs = np.abs(shuffled[:, n1:].mean(axis=1) - shuffled[:, :n1].mean(axis=1))
        hits += int(np.sum(diffs >= observed - 1e-12))
    return float((hits + 1) / (n_perm + 1))


def compare_windows(a: Sequence[float], b: Sequence[float], metric: str, seed: int = 0,
                    n_boot: int = 2000) -> tuple[float, float, float, float, float, str]:
    """(before, after, low, high, p, test) for one metric's samples in the earlier (``a``)
    and latest (``b``) window."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    if metric == "latency":
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(x, y, alternative="two-sided").pvalue)
        p = 1.0 if math.isnan(p) else p  # every value tied: nothing changed
        low, high = _boot_diff(x, y, np.median, rng, n_boot)
        return float(np.median(x)), float(np.median(y)), low, high, p, "mann-whitney"
    if stats.is_binary(x) and stats.is_binary(y):
        low, high, p, test = _two_proportions(x, y)
    else:
        low, high = _boot_diff(x, y, np.mean, rng, n_boot)
        p, test = _permutation(x, y, rng, n_boot), "permutation"
    return float(x.mean()), float(y.mean()), low, high, p, test


def _series(timed: Sequence[tuple[float, Outcome]]) -> dict[tuple[str, str],
                                                              list[tuple[float, float]]]:
    """(model, metric) -> [(ts, value)]: quality by kind, latency once per answer."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for ts, o in timed:
        kind = (o.source or "").split(":", 1)[0]
        if kind in ("judge", "feedback") and o.score is not None:
            out[(o.model, f"quality ({kind})")].append((ts, float(o.score)))
        if o.latency_s is not None and (o.prompt_id, o.model) not in seen:
            seen.add((o.prompt_id, o.model))
            out[(o.model, "latency")].append((ts, float(o.latency_s)))
    return out


def detect(timed: Sequence[tuple[float, Outcome]], window_s: float, *,
           end: float | None = None, min_n: int = 10, alpha: float = 0.05,
           seed: int = 0) -> DriftReport:
    """Compare the window ``[end − w, end)`` with ``[end − 2w, end − w)`` for every model and
    metric (``end`` defaults to just after the newest outcome). ``timed`` is ``(ts, outcome)``
    as ``store.outcome_store.query_outcomes`` returns it."""
    if window_s <= 0:
        raise ValueError("the drift window must be positive")
    if end is None:
        end = (max(ts for ts, _ in timed) + 1e-6) if timed else 0.0
    split, start = end - window_s, end - 2 * window_s
    report = DriftReport(window_s, start, split, end)
    for (model, metric), points in sorted(_series(timed).items()):
        before = [v for ts, v in points if start <= ts < split]
        after = [v for ts, v in points if split <= ts < end]
        if len(before) < min_n or len(after) < min_n:
            report.too_few.append({"model": model, "metric": metric,
                                   "n_before": len(before), "n_after": len(after)})
            continue
        b, a, low, high, p, test = compare_windows(before, after, metric, seed)
        report.checks.append(Check(model, metric, b, a, a - b, low, high, p, test,
                                   len(before), len(after)))
    adjusted = stats.holm([c.p_value for c in report.checks])
    report.checks = [Check(**{**asdict(c), "p_holm": ph,
                              "drift": ph < alpha and (c.low > 0 or c.high < 0)})
                     for c, ph in zip(report.checks, adjusted, strict=True)]
    return report


def describe(c: Check) -> str:
    """One line: 'qwen: quality (judge) 0.82 → 0.41 (−0.41, 95% CI −0.52 to −0.30; p=0.0002,
    permutation, n=40/38)'."""
    unit = " s" if c.metric == "latency" else ""
    return (f"{c.model}: {c.metric} {c.before:.3g}{unit} → {c.after:.3g}{unit} "
            f"({c.diff:+.3g}, 95% CI {c.low:+.3g} to {c.high:+.3g}; p={c.p_holm:.2g} "
            f"Holm, {c.test}, n={c.n_before}/{c.n_after})")
