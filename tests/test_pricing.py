"""Cost of a request: panel prices, the genai-prices catalogue, local compute time, or null."""

from __future__ import annotations

import pytest

from rankgate.panel import ModelSpec
from rankgate.pricing import Pricer


def spec(**kw) -> ModelSpec:
    return ModelSpec(**{"id": "m", "backend": "openai", "base_url": "http://x", **kw})


def test_panel_prices_are_per_million_tokens():
    p = Pricer(spec(input_price_per_mtok=2.0, output_price_per_mtok=8.0), 0.1)
    c = p.cost(1_000_000, 500_000, compute_s=3.0)
    assert c.usd == pytest.approx(2.0 + 4.0) and c.basis == "panel"


def test_hosted_model_priced_by_name_from_genai_prices():
    from genai_prices import Usage, calc_price

    p = Pricer(spec(id="gpt-4o-mini", provider="openai"), 0.1)
    assert p.basis == "genai-prices"
    expected = calc_price(Usage(input_tokens=1000, output_tokens=200), "gpt-4o-mini",
                          provider_id="openai").total_price
    assert p.cost(1000, 200, None).usd == pytest.approx(float(expected))
    assert p.cost(1000, 200, None).usd > 0


def test_unknown_model_costs_null_with_a_reason_never_zero():
    p = Pricer(spec(id="my-private-finetune-v3"), 0.1)
    c = p.cost(1000, 200, 1.0)
    assert c.usd is None and c.basis.startswith("unknown") and "my-private-finetune-v3" in c.basis
    assert p.cost(1000, 200, 1.0).header() == "unknown"


def test_local_model_costs_compute_seconds_times_machine_price():
    p = Pricer(ModelSpec(id="l", backend="llamacpp", bundled="smollm2-135m"), 0.36)
    c = p.cost(10, 10, compute_s=2.0)
    assert c.usd == pytest.approx(2.0 * 0.36 / 3600) and c.basis == "local-compute"
    assert p.cost(10, 10, None).usd is None


def test_missing_usage_is_null_cost_for_token_priced_models():
    p = Pricer(spec(input_price_per_mtok=1.0, output_price_per_mtok=1.0), 0.1)
    assert p.cost(None, None, 1.0).usd is None


def test_estimated_tokens_are_flagged_in_the_basis():
    p = Pricer(spec(input_price_per_mtok=1.0, output_price_per_mtok=1.0), 0.1)
    assert p.cost(10, 10, None, estimated_tokens=True).basis == "panel (tokens estimated)"
