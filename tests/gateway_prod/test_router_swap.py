"""Hot swap of routers in a running gateway (``POST /admin/router``, SIGHUP): requests sent
all along through the official ``openai`` client with ``model="auto"`` never fail, both
artifacts serve in turn, a bad artifact is refused with a 400 naming the problem while the old
router keeps serving, and SIGHUP reloads the ``--router`` files.

The panel is two ``faulty`` models (they answer at once, so the test exercises the swap, not
a model); the two artifacts are kNN routers trained on opposite verdicts about them, so each
gives its own ``x-rankgate-candidates`` for the same prompt and the header tells which one
served a request.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from rankgate.embed import HashEmbedder
from rankgate.outcomes import Outcome
from rankgate.routing import artifact
from rankgate.routing.promote import install
from rankgate.routing.train_replay import train
from tests.conftest import Server

SMALL, BIG = "small", "big"
PANEL = [{"id": SMALL, "backend": "faulty", "upstream_model": "ok",
          "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1},
         {"id": BIG, "backend": "faulty", "upstream_model": "ok",
          "input_price_per_mtok": 1.0, "output_price_per_mtok": 1.0}]
PROMPT = "What is 12 plus 30? Answer with the number only."
SWAPS = 10
MAX_REQUESTS = 3000  # the senders' bound, whatever happens
PER_SWAP = 15  # responses to see after each swap before the next one


def _outcomes(small_good_at_sums: bool, models: tuple[str, ...] = (SMALL, BIG)
              ) -> list[Outcome]:
    rows = []
    for i in range(160):
        if i % 2 == 0:
            text, sums = f"What is {i} plus {i * 3 % 17}? Answer with the number only.", True
        else:
            text, sums = (f"Write a Python function f{i}(xs) that sorts the list xs and "
                          "returns it. Reply with one ```python block."), False
        for m in models:
            good = m != SMALL or (sums == small_good_at_sums)
            rows.append(Outcome(f"i{i}", text, m, 1.0 if good else 0.0,
                                cost_usd=1e-5 if m == SMALL else 1e-4, source="eval"))
    return rows


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("swap-artifacts")
    emb = HashEmbedder()
    out = {"a": tmp / "a.npz", "b": tmp / "b.npz", "other": tmp / "other.npz",
           "served": tmp / "served.npz", "bad": tmp / "bad.npz"}
    train(_outcomes(True), "knn", out["a"], emb)
    train(_outcomes(False), "knn", out["b"], emb)
    train(_outcomes(True, (SMALL, "elsewhere")), "knn", out["other"], emb)
    install(out["a"], out["served"])
    out["bad"].write_bytes(b"PK\x03\x04 this is not a router")
    return out


def _client(gw: Server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)


def _ask(client: openai.OpenAI, model: str = "auto") -> tuple[str, str]:
    """(the candidates header, the router header) of one routed request."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=4,
        extra_body={"rankgate": {"min_quality": 0.6}})
    raw.parse()
    return raw.headers["x-rankgate-candidates"], raw.headers["x-rankgate-router"]


def _swap(gw: Server, path: Path | str, headers: dict[str, str] | None = None,
          **extra: str) -> httpx.Response:
    return httpx.post(gw.root + "/admin/router", json={"path": str(path), **extra},
                      headers=headers or {}, timeout=60)


def _wait(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Server], artifacts: dict[str, Path]) -> Server:
    return start_gateway(panel=PANEL, name="swap",
                         extra_args=["--router", str(artifacts["served"])])


@pytest.fixture(scope="module")
def signatures(gateway: Server, artifacts: dict[str, Path]) -> dict[str, str]:
    """The candidates header each artifact gives the probe prompt (they must differ)."""
    client = _client(gateway)
    out = {}
    for name in ("b", "a"):  # ends serving A, as it started
        assert _swap(gateway, artifacts[name]).status_code == 200
        out[name] = _ask(client)[0]
    assert out["a"] != out["b"]
    return out


def test_ten_swaps_under_continuous_requests_lose_nothing(gateway, artifacts, signatures):
    client = _client(gateway)
    seen: Counter[str] = Counter()
    failures: list[str] = []
    done = threading.Event()
    lock = threading.Lock()
    sent = [0]

    def sender() -> None:
        while not done.is_set():
            with lock:
                if sent[0] >= MAX_REQUESTS:
                    return
                sent[0] += 1
            try:
                candidates, _ = _ask(client)
                with lock:
                    seen[candidates] += 1
            except Exception as e:  # every failure is counted, none hidden
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")

    def answered() -> int:
        with lock:
            return sum(seen.values()) + len(failures)

    swaps = []
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(sender) for _ in range(4)]
        try:
            for i in range(SWAPS):
                target = artifacts["b"] if i % 2 == 0 else artifacts["a"]
                before = answered()
                r = _swap(gateway, target)
                swaps.append(r)
                assert r.status_code == 200, r.text
                _wait(lambda b=before: answered() >= b + PER_SWAP or sent[0] >= MAX_REQUESTS,
                      "responses after a swap")
        finally:
            done.set()
            for f in futures:
                f.result()
    assert failures == []
    assert sum(seen.values()) >= SWAPS * PER_SWAP
    assert set(seen) == {signatures["a"], signatures["b"]}  # both served, nothing else
    assert seen[signatures["a"]] > 0 and seen[signatures["b"]] > 0
    assert [s.json()["replaced"]["training_hash"] is not None for s in swaps] == [True] * SWAPS
    assert _ask(client)[0] == signatures["a"]  # the last swap (i = 9) installed A


@pytest.mark.parametrize("which, words", [
    ("bad", "corrupt or not a router artifact"),
    ("other", "are not in the panel"),
    ("missing", "no such router file"),
])
def test_bad_artifact_is_refused_and_the_old_router_keeps_serving(
        gateway, artifacts, signatures, tmp_path, which, words):
    client = _client(gateway)
    serving = _ask(client)[0]
    path = tmp_path / "missing.npz" if which == "missing" else artifacts[which]
    r = _swap(gateway, path)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_router" and err["param"] == "path"
    assert words in err["message"] and path.name in err["message"]
    assert "previous router keeps serving" in err["message"]
    assert _ask(client)[0] == serving


def test_swap_request_shape_is_checked(gateway):
    r = httpx.post(gateway.root + "/admin/router", json={"name": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "path"
    r = httpx.post(gateway.root + "/admin/router", json={"path": "/x.npz", "colour": "red"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "colour"
    r = httpx.post(gateway.root + "/admin/router", content=b"not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_a_named_swap_adds_a_router_and_models_list_follows(gateway, artifacts, signatures):
    assert _swap(gateway, artifacts["b"], name="alt").status_code == 200
    ids = [m.id for m in _client(gateway).models.list().data]
    assert "auto" in ids and "auto:alt" in ids
    client = _client(gateway)
    assert _ask(client, "auto:alt") == (signatures["b"], "alt")
    assert _ask(client)[0] == signatures["a"]  # plain auto is untouched
    listed = httpx.get(gateway.root + "/admin/router").json()["data"]
    assert [(d["name"], d["default"]) for d in listed][-1] == ("alt", False)
    assert _swap(gateway, artifacts["b"], name="bad name!").status_code == 400


def test_sighup_reloads_the_router_files(start_gateway, artifacts, tmp_path):
    served = tmp_path / "router.npz"
    install(artifacts["a"], served)
    gw = start_gateway(panel=PANEL, name="sighup", extra_args=["--router", str(served)])
    client = _client(gw)
    first = _ask(client)[0]
    hash_b = artifact.read_header(artifacts["b"])["training_hash"]

    def serving_hash() -> str:
        return httpx.get(gw.root + "/admin/router").json()["data"][0]["training_hash"]

    install(artifacts["b"], served)  # what `route promote --install` does
    os.kill(gw.proc.pid, signal.SIGHUP)
    _wait(lambda: serving_hash() == hash_b, "the SIGHUP reload")
    assert gw.proc.poll() is None  # SIGHUP did not end the process
    after = _ask(client)[0]
    assert after != first
    install(artifacts["bad"], served)  # a broken file: the reload fails, B keeps serving
    os.kill(gw.proc.pid, signal.SIGHUP)
    _wait(lambda: "router reload failed" in gw.log_path.read_text(), "the failed reload log")
    assert serving_hash() == hash_b and _ask(client)[0] == after


def test_router_api_needs_the_admin_key_when_one_is_set(start_gateway, artifacts):
    gw = start_gateway(panel=PANEL, name="swap-auth", env={"RANKGATE_ADMIN_KEY": "sk-admin-1"},
                       extra_args=["--router", str(artifacts["a"])])
    r = _swap(gw, artifacts["b"])
    assert r.status_code == 401
    r = _swap(gw, artifacts["b"], headers={"Authorization": "Bearer sk-admin-1"})
    assert r.status_code == 200 and r.json()["training_hash"] == artifact.read_header(
        artifacts["b"])["training_hash"]


def test_the_request_log_keeps_the_decision_as_made(start_gateway, artifacts):
    """The log row of a routed request holds the decision itself — chosen model, knob, every
    candidate's predicted quality and cost — equal to the response's headers, so the
    dashboard explains a request by what happened, not by what the router would say now."""
    import orjson

    from rankgate.store.request_queries import find_request
    from rankgate.store.tables import make_engine

    gw = start_gateway(panel=PANEL, name="decision-log",
                       extra_args=["--router", str(artifacts["a"])])
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": PROMPT}], max_tokens=4,
        extra_body={"rankgate": {"min_quality": 0.6}})
    raw.parse()
    gw.settle()
    engine = make_engine(f"sqlite:///{gw.home / 'rankgate.db'}")
    try:
        req = find_request(engine, raw.headers["x-request-id"])
    finally:
        engine.dispose()
    assert req is not None and req.decision is not None
    d = orjson.loads(req.decision)
    assert d["chosen"] == raw.headers["x-rankgate-model"] == req.model
    assert d["knob"] == {"min_quality": 0.6} and d["router"] == req.router
    header = dict(c.split("=") for c in raw.headers["x-rankgate-candidates"].split(","))
    assert set(header) == set(d["predicted_quality"]) == {SMALL, BIG}
    for m, v in header.items():
        q, _cost = v.split("/")
        assert abs(d["predicted_quality"][m] - float(q)) < 1e-3
