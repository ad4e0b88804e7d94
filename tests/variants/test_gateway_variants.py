"""Variants at the gateway, on the real local model ``smollm2-135m``: served by name with no
configuration, listed when the panel declares them, routed to by ``auto``, and refused with an
OpenAI-shaped error naming the recipe when they cannot be."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import SMOLLM, Server

PANEL = [{"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM}, f"{SMOLLM}+cot"]
ENV = {"RANKGATE_THREADS_PER_MODEL": "1", "RANKGATE_CACHE": "false"}
ASK = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]


@pytest.fixture(scope="module")
def gw(start_gateway: Callable[..., Server], smollm_path: Path, tmp_path_factory) -> Server:
    """A gateway with smollm2, its declared +cot variant and a router trained on outcomes in
    which the +system variant answers everything right at the base's cost."""
    tmp = tmp_path_factory.mktemp("variants-router")
    rows = [{"prompt_id": f"p{k}", "prompt": f"Question {k} about {topic}?", "model": m,
             "score": 1.0 if m.endswith("+system") else 0.0, "cost_usd": 0.0001}
            for k in range(24) for topic in ("cities", "rivers") for m in
            (SMOLLM, f"{SMOLLM}+system")]
    (tmp / "o.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    subprocess.run([sys.executable, "-m", "rankgate", "route", "train", "--outcomes",
                    str(tmp / "o.jsonl"), "--router", "knn", "--embedder", "hash", "--out",
                    str(tmp / "router.npz"), "--no-calibrate"], check=True,
                   capture_output=True, timeout=300)
    return start_gateway(panel=PANEL, env=ENV, name="variants",
                         extra_args=["--router", str(tmp / "router.npz")])


def chat(gw: Server, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", timeout=300,
                      json={"model": model, "messages": ASK, "max_tokens": 8, **extra})


def test_models_lists_the_declared_variant(gw):
    ids = [m["id"] for m in httpx.get(gw.base_url + "/models").json()["data"]]
    assert f"{SMOLLM}+cot" in ids and f"{SMOLLM}+sc3" not in ids


def test_a_built_in_variant_is_served_by_name_with_no_configuration(gw):
    r = chat(gw, f"{SMOLLM}+system")
    assert r.status_code == 200, r.text
    assert r.headers["x-rankgate-model"] == f"{SMOLLM}+system"
    assert r.json()["choices"][0]["message"]["content"]
    assert float(r.headers["x-rankgate-cost-usd"]) > 0


def test_self_consistency_is_billed_for_all_its_calls(gw):
    base = chat(gw, SMOLLM).json()["usage"]
    sc = chat(gw, f"{SMOLLM}+sc2")
    assert sc.status_code == 200, sc.text
    assert sc.json()["usage"]["prompt_tokens"] == 2 * base["prompt_tokens"]


def test_a_cot_variant_streams(gw):
    with httpx.stream("POST", gw.base_url + "/chat/completions", timeout=300,
                      json={"model": f"{SMOLLM}+cot", "messages": ASK, "max_tokens": 16,
                            "stream": True}) as r:
        assert r.status_code == 200
        body = r.read().decode()
    assert body.rstrip().endswith("data: [DONE]") and '"content"' in body


def test_auto_routes_to_a_variant_its_router_prefers(gw):
    r = chat(gw, "auto")
    assert r.status_code == 200, r.text
    assert r.headers["x-rankgate-model"] == f"{SMOLLM}+system"


@pytest.mark.parametrize(("model", "status", "says"), [
    (f"{SMOLLM}+cott", 404, "unknown recipe 'cott'"),
    (f"{SMOLLM}+retrieved", 400, "recipe 'retrieved' of 'smollm2-135m+retrieved' cannot apply"),
    (f"{SMOLLM}+q8_0", 400, "no installed package ships smollm2-135m as Q8_0"),
])
def test_a_variant_that_cannot_be_served_is_an_openai_error_naming_it(gw, model, status, says):
    r = chat(gw, model)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["param"] == "model" and says in err["message"]
