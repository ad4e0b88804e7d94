"""The overview's "since this gateway started" figures, read from the same Prometheus registry
``/metrics`` renders — so the page and ``/metrics`` cannot disagree. Latency percentiles are
estimated from the histogram buckets exactly as Prometheus' ``histogram_quantile`` does
(linear within the bucket that holds the rank)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class ModelFigures:
    """One model's counters since start (all statuses, all endpoints)."""

    requests: float = 0.0
    errors: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    spend_usd: float = 0.0
    latency: dict[float, float | None] = field(default_factory=dict)  # quantile -> seconds
    ttft: dict[float, float | None] = field(default_factory=dict)


@dataclass
class LiveFigures:
    requests: float
    errors_by_type: dict[str, float]
    models: dict[str, ModelFigures]
    cache_hits: float
    cache_misses: float
    fallbacks: float
    backpressure: float

    @property
    def errors(self) -> float:
        return sum(self.errors_by_type.values())

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def cache_hit_rate(self) -> float | None:
        seen = self.cache_hits + self.cache_misses
        return self.cache_hits / seen if seen else None

    @property
    def spend_usd(self) -> float:
        return sum(m.spend_usd for m in self.models.values())

    @property
    def tokens(self) -> tuple[float, float]:
        return (sum(m.input_tokens for m in self.models.values()),
                sum(m.output_tokens for m in self.models.values()))


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``buckets``: ``(upper bound, cumulative count)`` sorted by bound, ``+Inf`` last.
    None when nothing was observed."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, cum in buckets:
        if cum >= rank:
            if math.isinf(upper):
                return lower  # Prometheus answers the highest finite bound
            inside = cum - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = upper, cum
    return lower


def read(registry: Any) -> LiveFigures:
    """Fold every sample of the gateway's registry into per-model figures."""
    models: dict[str, ModelFigures] = defaultdict(ModelFigures)
    errors: dict[str, float] = defaultdict(float)
    lat: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    ttft: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    totals = {"requests": 0.0, "hits": 0.0, "misses": 0.0, "fallbacks": 0.0, "bp": 0.0}
    for family in registry.collect():
        for s in family.samples:
            name, labels, v = s.name, s.labels, float(s.value)
            model = labels.get("model")
            if name == "rankgate_requests_total":
                models[model].requests += v
                totals["requests"] += v
            elif name == "rankgate_errors_total":
                models[model].errors += v
                errors[labels["type"]] += v
            elif name == "rankgate_input_tokens_total":
                models[model].input_tokens += v
            elif name == "rankgate_output_tokens_total":
                models[model].output_tokens += v
            elif name == "rankgate_spend_usd_total":
                models[model].spend_usd += v
            elif name == "rankgate_cache_hits_total":
                totals["hits"] += v
            elif name == "rankgate_cache_misses_total":
                totals["misses"] += v
            elif name == "rankgate_fallbacks_total":
                totals["fallbacks"] += v
            elif name == "rankgate_backpressure_total":
                totals["bp"] += v
            elif name == "rankgate_request_latency_seconds_bucket":
                lat[model][float(labels["le"])] += v
            elif name == "rankgate_ttft_seconds_bucket":
                ttft[model][float(labels["le"])] += v
    for source, attr in ((lat, "latency"), (ttft, "ttft")):
        for model, by_le in source.items():
            buckets = sorted(by_le.items())
            setattr(models[model], attr,
                    {q: histogram_quantile(q, buckets) for q in QUANTILES})
    return LiveFigures(requests=totals["requests"], errors_by_type=dict(errors),
                       models={m: f for m, f in sorted(models.items()) if f.requests},
                       cache_hits=totals["hits"], cache_misses=totals["misses"],
                       fallbacks=totals["fallbacks"], backpressure=totals["bp"])
