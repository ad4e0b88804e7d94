"""Intervals and paired tests — the statistics a leaderboard needs to be honest.

* Accuracy of 0/1 scores: the Wilson score interval (good coverage at small n and near 0/1,
  unlike the normal approximation). Graded scores in [0, 1]: a percentile bootstrap.
* Two models on the same items are compared *paired*: McNemar's exact test for 0/1 scores
  (only discordant items carry information), a paired bootstrap of the mean difference
  otherwise; p-values across all pairs are Holm-adjusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    method: str


def is_binary(scores: np.ndarray) -> bool:
    return bool(np.all((scores == 0.0) | (scores == 1.0)))


def wilson(successes: float, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for a proportion."""
    if n <= 0:
        return Interval(float("nan"), 0.0, 1.0, "wilson")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), "wilson")


def bootstrap_mean(scores: np.ndarray, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of the mean."""
    n = len(scores)
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0, "bootstrap")
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    a = (1 - level) / 2
    return Interval(float(scores.mean()), float(np.quantile(means, a)),
                    float(np.quantile(means, 1 - a)), "bootstrap")


def mean_interval(scores: np.ndarray, seed: int = 0) -> Interval:
    """Wilson for 0/1 scores, bootstrap for graded ones."""
    scores = np.asarray(scores, dtype=float)
    if is_binary(scores):
        return wilson(float(scores.sum()), len(scores))
    return bootstrap_mean(scores, seed=seed)


@dataclass(frozen=True)
class PairedResult:
    diff: float  # mean(a) - mean(b) on the shared items
    low: float
    high: float
    p_value: float
    test: str  # "mcnemar-exact" or "paired-bootstrap"
    n: int
    discordant: tuple[int, int] | None = None  # (a right & b wrong, a wrong & b right)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int]:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes; also the discordant counts."""
    n10 = int(np.sum((a == 1) & (b == 0)))
    n01 = int(np.sum((a == 0) & (b == 1)))
    k = n10 + n01
    if k == 0:
        return 1.0, n10, n01
    return float(sps.binomtest(n10, k, 0.5).pvalue), n10, n01


def paired_diff_interval(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0
                         ) -> tuple[float, float, float]:
    d = np.asarray(a, float) - np.asarray(b, float)
    iv = bootstrap_mean(d, n_boot=n_boot, seed=seed)
    return iv.estimate, iv.low, iv.high


def paired_bootstrap_p(a: np.ndarray, b: np.ndarray, n_boot: int = 4000, seed: int = 0) -> float:
    """Two-sided p-value of H0: mean difference 0, by bootstrapping the centred differences."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = len(d)
    if n == 0 or np.allclose(d, 0):
        return 1.0
    rng = np.random.default_rng(seed)
    centred = d - d.mean()
    boots = centred[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    return float((np.sum(np.abs(boots) >= abs(d.mean())) + 1) / (n_boot + 1))


def paired_compare(a: np.ndarray, b: np.ndarray, seed: int = 0) -> PairedResult:
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    diff, low, high = paired_diff_interval(a, b, seed=seed)
    if is_binary(a) and is_binary(b):
        p, n10, n01 = mcnemar_exact(a, b)
        return PairedResult(diff, low, high, p, "mcnemar-exact", len(a), (n10, n01))
    return PairedResult(diff, low, high, paired_bootstrap_p(a, b, seed=seed),
                        "paired-bootstrap", len(a))


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def percentile(values: list[float], q: float) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.percentile(vals, q)) if vals else None
