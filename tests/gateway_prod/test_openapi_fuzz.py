"""The served OpenAPI spec, fuzzed with schemathesis against a live gateway: whatever a client
sends — bodies valid by the schema, or mutations that break it — the gateway never answers
with a 500.

The panel's models are ``faulty`` ones that answer normally (no model weights involved), so
the fuzzer explores the gateway's own parsing, validation and error paths. Schemathesis's
hypothesis strategies are driven directly (its pytest plugin does not load under our pytest).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

PANEL = [{"id": "good", "backend": "faulty", "upstream_model": "ok",
          "input_price_per_mtok": 1.0, "output_price_per_mtok": 1.0}]


@pytest.fixture(scope="module")
def fuzz_gateway(start_gateway):
    return start_gateway(PANEL, name="fuzz")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_the_gateway_answer_500(fuzz_gateway, mode):
    schema = schemathesis.openapi.from_url(fuzz_gateway.root + "/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/v1/chat/completions", "/v1/completions", "/v1/feedback"} <= paths
    seen: list[int] = []
    for op in operations:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            response = case.call(base_url=fuzz_gateway.root, timeout=30)
            seen.append(response.status_code)
            assert response.status_code < 500, (case.as_curl_command(), response.text[:300])

        try:
            call()
        except Unsatisfiable:  # nothing in its schema to mutate (e.g. GET /healthz)
            assert mode is GenerationMode.NEGATIVE
            assert op.path not in ("/v1/chat/completions", "/v1/completions")
    assert seen and all(s < 500 for s in seen)
    if mode is GenerationMode.NEGATIVE:
        assert any(400 <= s < 500 for s in seen)  # the mutations were noticed and refused
