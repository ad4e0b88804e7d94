"""A key's limits hold every call a variant makes: ``+sc5`` calls its base five times, so the
gateway reserves five requests' worth of tokens and cost before it runs (a reservation of one
call would let a key spend five times its limit in flight)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import SMOLLM, Server

ADMIN = "admin-secret-for-variant-reservations-0123"
ASK = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def gw(start_gateway: Callable[..., Server], smollm_path: Path) -> Server:
    return start_gateway(panel=[{"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM}],
                         name="variant-reservations",
                         env={"RANKGATE_ADMIN_KEY": ADMIN, "RANKGATE_CACHE": "false",
                              "RANKGATE_THREADS_PER_MODEL": "1"})


def key(gw: Server, **limits: object) -> openai.OpenAI:
    """A client holding a new key with ``limits``."""
    r = httpx.post(gw.root + "/admin/keys", json={"name": "t", **limits},
                   headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code in (200, 201), r.text
    return openai.OpenAI(base_url=gw.base_url, api_key=r.json()["key"], max_retries=0)


def test_self_consistency_reserves_all_k_calls_against_the_tokens_per_minute(gw):
    # one call reserves prompt/4 + 4 per message + 8 output tokens = 15; five calls 75 > 50
    c = key(gw, tpm=50)
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model=f"{SMOLLM}+sc5", messages=ASK, max_tokens=8)
    assert "needs up to" in str(e.value) and "(50)" in str(e.value)
    # nothing was reserved by the refusal: one call of the base fits the same key
    ok = c.chat.completions.create(model=SMOLLM, messages=ASK, max_tokens=8)
    assert ok.choices[0].message.content is not None


def test_the_reservation_is_settled_at_what_the_k_calls_used(gw):
    created = httpx.post(gw.root + "/admin/keys",
                         json={"name": "t", "tpm": 100_000, "budget_usd": 100.0},
                         headers={"authorization": f"Bearer {ADMIN}"}).json()
    c = openai.OpenAI(base_url=gw.base_url, api_key=created["key"], max_retries=0)
    r = c.chat.completions.create(model=f"{SMOLLM}+sc2", messages=ASK, max_tokens=8)
    assert r.usage is not None
    used = httpx.get(gw.root + f"/admin/keys/{created['id']}",
                     headers={"authorization": f"Bearer {ADMIN}"}).json()["usage"]
    assert used["tokens_last_60s"] == r.usage.total_tokens  # both calls, not one, not five
    assert used["reserved_usd"] == 0 and used["spent_usd"] > 0
