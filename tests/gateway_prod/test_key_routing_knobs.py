"""A key's default routing holds every knob a request's ``rankgate`` field can (``confidence``
and ``savings`` included), checked the same way; and a savings target still holds when the
key's allowed models exclude the router's first choice (``completions.restrict``). Against a
real gateway subprocess with the official ``openai`` client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from rankgate.embed import HashEmbedder
from rankgate.gateway.auth import ROUTING_KNOBS, InvalidKeySettings, validate_limits
from rankgate.gateway.knob import KNOB_FIELDS
from rankgate.outcomes import Outcome
from rankgate.routing.train_replay import train
from tests.conftest import Server

ADMIN_KEY = "knob-admin-key"
CHEAP, MID, TOP = "cheap", "mid", "top"
PRICES = {CHEAP: 0.1, MID: 0.2, TOP: 1.0}
SUMS = "What is 21 plus 4? Answer with the number only."
CODE = "Write a Python function f3(xs) that sorts xs. Reply with one code block."


def outcomes() -> list[Outcome]:
    """CHEAP is perfect at sums and useless at code; MID is nearly as good at sums (90 %) and
    as bad at code; TOP is perfect at both and dearest."""
    rows = []
    for i in range(200):
        sums = i % 2 == 0
        text = (f"What is {i} plus {i * 3 % 17}? Answer with the number only." if sums else
                f"Write a Python function f{i}(xs) that sorts xs. Reply with one code block.")
        scores = {CHEAP: float(sums), MID: float(sums and i % 10 != 0), TOP: 1.0}
        for m, s in scores.items():
            rows.append(Outcome(f"i{i}", text, m, s, cost_usd=PRICES[m] * 1e-4))
    return rows


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory
            ) -> Server:
    path = tmp_path_factory.mktemp("knob-router") / "knn.npz"
    info = train(outcomes(), "knn", path, HashEmbedder())
    assert info["guarantee"] is not None, info["guarantee_note"]
    panel = [{"id": m, "backend": "faulty", "upstream_model": "ok",
              "input_price_per_mtok": p, "output_price_per_mtok": p}
             for m, p in PRICES.items()]
    return start_gateway(panel=panel, name="knobs", env={"RANKGATE_ADMIN_KEY": ADMIN_KEY},
                         extra_args=["--router", str(path)])


def create_key(gw: Server, **settings: Any) -> httpx.Response:
    return httpx.post(gw.root + "/admin/keys", json={"name": "knobs", **settings},
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


def ask(gw: Server, secret: str, prompt: str, extra_body: dict[str, Any] | None = None
        ) -> Any:
    client = openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}], max_tokens=4,
        extra_body=extra_body)


def test_a_key_may_hold_every_knob_a_request_may_send():
    assert set(ROUTING_KNOBS) == set(KNOB_FIELDS)
    for routing in ({"min_quality": 0.7, "confidence": 0.9}, {"savings": 0.4},
                    {"lambda": 100}, {"max_cost_usd": 0.01}):
        assert validate_limits("k", None, None, None, None, "month", routing)["routing"] \
            == {k: float(v) for k, v in routing.items()}


@pytest.mark.parametrize(("routing", "param"), [
    ({"confidence": 0.9}, "routing.confidence"),  # a guarantee of what quality?
    ({"min_quality": 0.7, "confidence": 1.0}, "routing.confidence"),
    ({"savings": 1.5}, "routing.savings"),
    ({"savings": "half"}, "routing.savings"),
    ({"savings": 0.5, "lambda": 1}, "routing"),
    ({"speed": 1}, "routing"),
])
def test_a_key_knob_is_refused_as_a_request_knob_would_be(gateway, routing, param):
    with pytest.raises(InvalidKeySettings) as e:
        validate_limits("k", None, None, None, None, "month", routing)
    assert e.value.param == param
    r = create_key(gateway, routing=routing)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_a_key_default_guarantee_routes_its_requests_with_a_bound(gateway):
    r = create_key(gateway, routing={"min_quality": 0.5, "confidence": 0.8})
    assert r.status_code == 201, r.text
    assert r.json()["routing"] == {"min_quality": 0.5, "confidence": 0.8}
    raw = ask(gateway, r.json()["key"], SUMS)
    assert raw.headers["x-rankgate-guarantee"].startswith("met 0.5@0.8")
    assert float(raw.headers["x-rankgate-quality-bound"]) >= 0.5
    assert raw.parse().choices[0].message.content
    own = ask(gateway, r.json()["key"], SUMS, {"rankgate": {"lambda": 0}})  # the request wins
    assert "x-rankgate-guarantee" not in own.headers


def test_a_key_default_savings_target_routes_like_the_same_request_knob(gateway):
    r = create_key(gateway, routing={"savings": 0.5})
    assert r.status_code == 201, r.text
    secret = r.json()["key"]
    with_key = ask(gateway, secret, CODE)
    asked = ask(gateway, ADMIN_KEY, CODE, {"rankgate": {"savings": 0.5}})
    assert with_key.headers["x-rankgate-model"] == asked.headers["x-rankgate-model"]


def test_a_savings_target_holds_among_the_models_a_key_may_use(gateway):
    """The router's first choice for a sum is CHEAP; this key may not use it. Among MID and
    TOP, best quality is TOP, but spending half of TOP's cost means MID."""
    full = ask(gateway, ADMIN_KEY, SUMS, {"rankgate": {"savings": 0.5}})
    assert full.headers["x-rankgate-model"] == CHEAP
    r = create_key(gateway, models=[MID, TOP, "auto"], routing={"savings": 0.5})
    assert r.status_code == 201, r.text
    secret = r.json()["key"]
    assert ask(gateway, secret, SUMS).headers["x-rankgate-model"] == MID
    assert ask(gateway, secret, SUMS, {"rankgate": {"lambda": 0}}).headers[
        "x-rankgate-model"] == TOP  # no cost knob: the best of the two


def test_restrict_refuses_an_unresolved_savings_knob():
    from rankgate.gateway.completions import restrict
    from rankgate.routing.base import Decision, Knob

    d = Decision(CHEAP, "knn", {CHEAP: 1.0, MID: 0.9, TOP: 1.0},
                 {CHEAP: 1e-5, MID: 2e-5, TOP: 1e-4})
    with pytest.raises(ValueError, match="savings"):
        restrict(d, [MID, TOP], Knob(savings=0.5))
    assert restrict(d, [MID, TOP], Knob(lam=1e5)).model == MID
    assert restrict(d, [MID, TOP], Knob()).model == TOP

