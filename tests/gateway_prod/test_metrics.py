"""``gateway/metrics.py``: the rendered Prometheus text says exactly what was observed."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rankgate.gateway.metrics import OTHER, Metrics

CHAT = "/v1/chat/completions"


def ok(**over: Any) -> dict[str, Any]:
    """Keyword arguments of one successful, non-streamed, priced request."""
    kw: dict[str, Any] = dict(model="m1", endpoint=CHAT, status=200, error_type=None,
                              stream=False, latency_s=0.003, ttft_s=None, input_tokens=10,
                              output_tokens=5, cost_usd=0.002, cache=None, fallback=False,
                              router=None, key_id=None)
    kw.update(over)
    return kw


def samples(m: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = m.render()
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, frozenset(labels.items())))


def total(m: Metrics, name: str) -> float:
    return sum(v for (n, _), v in samples(m).items() if n == name)


def test_requests_are_counted_by_model_endpoint_status_and_stream():
    m = Metrics()
    m.observe(**ok())
    m.observe(**ok())
    m.observe(**ok(stream=True, ttft_s=0.001))
    m.observe(**ok(status=502, error_type="upstream_error", cost_usd=None))
    assert value(m, "rankgate_requests_total", model="m1", endpoint=CHAT, status="200",
                 stream="false") == 2
    assert value(m, "rankgate_requests_total", model="m1", endpoint=CHAT, status="200",
                 stream="true") == 1
    assert value(m, "rankgate_requests_total", model="m1", endpoint=CHAT, status="502",
                 stream="false") == 1
    assert value(m, "rankgate_errors_total", model="m1", type="upstream_error") == 1
    assert total(m, "rankgate_errors_total") == 1


def test_latency_histogram_counts_sums_and_buckets():
    m = Metrics()
    for s in (0.0005, 0.003, 0.003, 0.2, 150.0):
        m.observe(**ok(latency_s=s))
    lat = dict(model="m1", stream="false")
    assert value(m, "rankgate_request_latency_seconds_count", **lat) == 5
    assert value(m, "rankgate_request_latency_seconds_sum", **lat) == pytest.approx(150.2065)
    assert value(m, "rankgate_request_latency_seconds_bucket", le="0.001", **lat) == 1
    assert value(m, "rankgate_request_latency_seconds_bucket", le="0.005", **lat) == 3
    assert value(m, "rankgate_request_latency_seconds_bucket", le="120.0", **lat) == 4
    assert value(m, "rankgate_request_latency_seconds_bucket", le="+Inf", **lat) == 5


def test_ttft_is_observed_only_for_streams_that_have_one():
    m = Metrics()
    m.observe(**ok())
    m.observe(**ok(stream=True, ttft_s=0.02))
    m.observe(**ok(stream=True, ttft_s=0.04))
    assert value(m, "rankgate_ttft_seconds_count", model="m1") == 2
    assert value(m, "rankgate_ttft_seconds_sum", model="m1") == pytest.approx(0.06)


def test_tokens_and_spend_add_up_per_model():
    m = Metrics()
    m.observe(**ok(input_tokens=10, output_tokens=5, cost_usd=0.25))
    m.observe(**ok(input_tokens=7, output_tokens=None, cost_usd=0.5))
    m.observe(**ok(model="m2", input_tokens=1, output_tokens=2, cost_usd=1.0))
    assert value(m, "rankgate_input_tokens_total", model="m1") == 17
    assert value(m, "rankgate_output_tokens_total", model="m1") == 5
    assert value(m, "rankgate_spend_usd_total", model="m1") == pytest.approx(0.75)
    assert value(m, "rankgate_spend_usd_total", model="m2") == pytest.approx(1.0)


def test_unknown_cost_is_counted_apart_and_never_as_zero_spend():
    m = Metrics()
    m.observe(**ok(cost_usd=0.5))
    m.observe(**ok(cost_usd=None))
    m.observe(**ok(cost_usd=None))
    m.observe(**ok(cost_usd=None, status=502, error_type="upstream_error"))  # failed: no cost
    assert value(m, "rankgate_unknown_cost_requests_total", model="m1") == 2
    assert value(m, "rankgate_spend_usd_total", model="m1") == pytest.approx(0.5)


def test_cache_hits_by_kind_and_misses():
    m = Metrics()
    m.observe(**ok(cache="exact"))
    m.observe(**ok(cache="exact"))
    m.observe(**ok(cache="semantic"))
    m.observe(**ok(cache=None))
    assert value(m, "rankgate_cache_hits_total", kind="exact") == 2
    assert value(m, "rankgate_cache_hits_total", kind="semantic") == 1
    assert value(m, "rankgate_cache_misses_total") == 1


def test_a_gateway_without_a_cache_counts_no_misses():
    m = Metrics(cache_enabled=False)
    m.observe(**ok(cache=None))
    assert value(m, "rankgate_cache_misses_total") == 0
    assert total(m, "rankgate_cache_hits_total") == 0


def test_fallbacks_and_routing_choices():
    m = Metrics()
    m.observe(**ok(model="m2", fallback=True, router="knn"))
    m.observe(**ok(model="m1", router="knn"))
    m.observe(**ok(model="m1", router="knn"))
    m.observe(**ok(model="m1"))
    assert value(m, "rankgate_fallbacks_total", model="m2") == 1
    assert total(m, "rankgate_fallbacks_total") == 1
    assert value(m, "rankgate_routing_choices_total", router="knn", model="m1") == 2
    assert value(m, "rankgate_routing_choices_total", router="knn", model="m2") == 1
    assert total(m, "rankgate_routing_choices_total") == 3


def test_breaker_state_gauge_marks_the_current_state_only():
    m = Metrics()
    m.set_breakers({"m1": "open", "m2": "closed"})
    m.set_breakers({"m1": "half-open"})
    assert value(m, "rankgate_breaker_state", model="m1", state="half_open") == 1
    assert value(m, "rankgate_breaker_state", model="m1", state="open") == 0
    assert value(m, "rankgate_breaker_state", model="m2", state="closed") == 1
    with pytest.raises(ValueError, match="unknown breaker state"):
        m.set_breakers({"m1": "melted"})


def test_request_log_queue_gauges_and_backpressure_counter():
    m = Metrics()
    m.set_queue(depth=12, dropped=3, capacity=1000)
    m.set_queue(depth=4, dropped=3, capacity=1000)
    m.count_backpressure()
    m.count_backpressure()
    assert value(m, "rankgate_request_log_queue_depth") == 4
    assert value(m, "rankgate_request_log_dropped") == 3
    assert value(m, "rankgate_request_log_queue_capacity") == 1000
    assert value(m, "rankgate_backpressure_total") == 2


def test_two_metrics_objects_share_no_state():
    a, b = Metrics(), Metrics()
    a.observe(**ok())
    a.count_backpressure()
    assert value(a, "rankgate_requests_total", model="m1", endpoint=CHAT, status="200",
                 stream="false") == 1
    assert total(b, "rankgate_requests_total") == 0
    assert value(b, "rankgate_backpressure_total") == 0


def test_key_id_is_a_label_only_when_asked():
    plain, keyed = Metrics(), Metrics(key_label=True)
    for m in (plain, keyed):
        m.observe(**ok(key_id="key-123", cost_usd=1.0))
    assert not any("key_id" in dict(lbl) for _, lbl in samples(plain))
    assert value(keyed, "rankgate_requests_total", model="m1", endpoint=CHAT, status="200",
                 stream="false", key_id="key-123") == 1
    assert value(keyed, "rankgate_spend_usd_total", model="m1", key_id="key-123") == 1.0


def test_label_values_past_the_bound_become_other():
    m = Metrics(max_label_values=3)
    for i in range(10):  # e.g. clients asking for models that don't exist
        m.observe(**ok(model=f"nope-{i}", status=404, error_type="invalid_request_error"))
    models = {dict(lbl).get("model") for (n, lbl) in samples(m)
              if n == "rankgate_requests_total"}
    assert models == {"nope-0", "nope-1", "nope-2", OTHER}
    assert value(m, "rankgate_requests_total", model=OTHER, endpoint=CHAT, status="404",
                 stream="false") == 7
    assert total(m, "rankgate_requests_total") == 10


def test_missing_model_is_labelled_none():
    m = Metrics()
    m.observe(**ok(model=None, status=400, error_type="invalid_request_error", cost_usd=None))
    assert value(m, "rankgate_requests_total", model="none", endpoint=CHAT, status="400",
                 stream="false") == 1


def test_render_is_prometheus_text():
    m = Metrics()
    m.observe(**ok())
    body, ctype = m.render()
    assert ctype.startswith("text/plain") and "version=" in ctype
    assert b"# TYPE rankgate_requests_total counter" in body
