"""Calibration: does a model's confidence match how often it is right?

Confidence comes from token logprobs when the backend gives them (exp of the mean token
logprob of the answer) or from agreement across k samples. ECE uses equal-mass bins (each bin
holds the same number of answers), which is stabler than equal-width bins when confidences
cluster, and the result says when there are too few answers per bin to trust it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_PER_BIN = 20  # fewer answers than this per bin and the ECE is mostly noise


@dataclass(frozen=True)
class Reliability:
    ece: float
    n: int
    bins: list[dict[str, float]]  # {"conf", "acc", "count", "low", "high"} per bin
    warning: str | None


def ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> Reliability:
    """Expected calibration error Σ_b |B_b|/n · |acc_b − conf_b| over equal-mass bins."""
    conf = np.asarray(confidence, float)
    acc = np.asarray(correct, float)
    n = len(conf)
    if n == 0:
        return Reliability(float("nan"), 0, [], "no answers with a confidence")
    n_bins = max(1, min(n_bins, n))
    order = np.argsort(conf, kind="stable")
    bins = []
    total = 0.0
    for chunk in np.array_split(order, n_bins):
        if len(chunk) == 0:
            continue
        c, a = float(conf[chunk].mean()), float(acc[chunk].mean())
        total += len(chunk) / n * abs(a - c)
        bins.append({"conf": c, "acc": a, "count": float(len(chunk)),
                     "low": float(conf[chunk].min()), "high": float(conf[chunk].max())})
    warning = None
    if n / n_bins < MIN_PER_BIN:
        warning = (f"only {n} answers for {n_bins} bins (<{MIN_PER_BIN} per bin): "
                   "the ECE is noisy")
    return Reliability(float(total), n, bins, warning)


def agreement_confidence(answers: list[str]) -> float:
    """Confidence from k sampled answers: the share that agree with the most common one."""
    if not answers:
        return float("nan")
    norm = [a.strip().lower() for a in answers]
    top = max(set(norm), key=norm.count)
    return norm.count(top) / len(norm)
