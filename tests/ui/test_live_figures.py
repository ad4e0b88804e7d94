"""``gateway/ui/live.py``: the overview reads the registry ``/metrics`` renders."""

from __future__ import annotations

import pytest

from rankgate.gateway.metrics import Metrics
from rankgate.gateway.ui import live

CHAT = "/v1/chat/completions"


def observe(m: Metrics, **over: object) -> None:
    kw: dict = dict(model="m1", endpoint=CHAT, status=200, error_type=None, stream=False,
                    latency_s=0.003, ttft_s=None, input_tokens=10, output_tokens=5,
                    cost_usd=0.002, cache=None, fallback=False, router=None, key_id=None)
    kw.update(over)
    m.observe(**kw)


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.1, 2.0), (0.2, 6.0), (0.4, 10.0), (float("inf"), 10.0)]
    assert live.histogram_quantile(0.5, buckets) == pytest.approx(0.175)  # rank 5 of 10
    assert live.histogram_quantile(0.1, buckets) == pytest.approx(0.05)
    assert live.histogram_quantile(0.99, [(1.0, 1.0), (float("inf"), 2.0)]) == 1.0
    assert live.histogram_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_figures_sum_every_label_of_a_model():
    m = Metrics()
    for _ in range(3):
        observe(m)
    observe(m, stream=True, ttft_s=0.001)
    observe(m, status=502, error_type="upstream_error", cost_usd=None, input_tokens=None,
            output_tokens=None)
    observe(m, model="m2", cache="exact", cost_usd=0.0)
    fig = live.read(m.registry)
    assert fig.requests == 6 and fig.models["m1"].requests == 5
    assert fig.errors_by_type == {"upstream_error": 1.0}
    assert fig.error_rate == pytest.approx(1 / 6)
    assert fig.models["m1"].input_tokens == 40 and fig.models["m1"].output_tokens == 20
    assert fig.models["m1"].spend_usd == pytest.approx(0.008)
    assert fig.cache_hit_rate == pytest.approx(1 / 6)
    assert fig.models["m1"].ttft[0.5] is not None and fig.models["m2"].ttft[0.5] is None
