"""What the README promises, held to: `keys list` shows each key's usage, the upstream
Retry-After cap is a setting (env var and `serve` flag), and `eval --limit N` spreads the N
items across categories (seeded) instead of taking the first N lines."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from rankgate.cli import app
from rankgate.config import Settings
from rankgate.eval import datasets
from rankgate.eval.scorers.base import Item
from rankgate.gateway.resilience import Resilience

runner = CliRunner()
ADMIN = "admin-secret-for-tests-0123456789"
PRICES = {"input_price_per_mtok": 1000.0, "output_price_per_mtok": 2000.0}
MSG = [{"role": "user", "content": "hi"}]


# --- keys list shows usage ----------------------------------------------------------------------

def test_keys_list_shows_requests_and_spend_per_key(start_gateway):
    gw = start_gateway([{"id": "good", "backend": "faulty", "upstream_model": "ok", **PRICES},
                        {"id": "broken", "backend": "faulty", "upstream_model": "error-500",
                         **PRICES}],
                       name="keys-usage", env={"RANKGATE_ADMIN_KEY": ADMIN,
                                               "RANKGATE_RETRIES": "0"})
    store = f"sqlite:///{gw.home / 'rankgate.db'}"
    made = {}
    for name, extra in (("busy", ["--budget-usd", "5", "--budget-period", "month"]),
                        ("idle", [])):
        r = runner.invoke(app, ["keys", "create", "--name", name, "--store", store, "--json",
                                *extra])
        assert r.exit_code == 0, r.stderr
        made[name] = json.loads(r.stdout)
    headers = {"authorization": f"Bearer {made['busy']['key']}"}
    ids = []
    for model in ("good", "good", "broken"):
        resp = httpx.post(gw.base_url + "/chat/completions", headers=headers,
                          json={"model": model, "messages": MSG, "max_tokens": 8})
        ids.append(resp.headers["x-request-id"])
    rows = [gw.log_row(i) for i in ids]  # waits for the background writer
    spent = sum(r["cost_usd"] or 0.0 for r in rows)
    assert spent > 0

    listed = runner.invoke(app, ["keys", "list", "--store", store, "--json"])
    assert listed.exit_code == 0, listed.stderr
    usage = {k["name"]: k["usage"] for k in json.loads(listed.stdout)}
    assert usage["busy"]["requests"] == 3 and usage["busy"]["answered"] == 2
    assert usage["busy"]["spent_usd"] == pytest.approx(spent)
    assert usage["busy"]["period_spent_usd"] == pytest.approx(spent)  # this month's budget
    assert usage["idle"] == {"requests": 0, "answered": 0, "spent_usd": 0.0,
                             "last_request_at": None}

    table = runner.invoke(app, ["keys", "list", "--store", store], env={"COLUMNS": "250"})
    flat = " ".join(table.stdout.split())
    assert f"3 req (2 ok), ${spent:.4g}; ${spent:.4g} this month" in flat
    assert "0 req (0 ok), $0" in flat


# --- the Retry-After cap is a setting -----------------------------------------------------------

class _Sleeps:
    """Records the waits asked for instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _limited(**kw: Any) -> tuple[Resilience, _Sleeps, Any]:
    from rankgate.backends.faulty import FaultyBackend
    from rankgate.panel import ModelSpec

    spec = ModelSpec(id="limited", backend="faulty", upstream_model="rate-limit-429")
    sleeps = _Sleeps()
    res = Resilience({"limited": FaultyBackend(spec)}, retries=2, sleep=sleeps,
                     rng=random.Random(0), **kw)
    return res, sleeps, spec


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("cap, waits", [(0.4, [0.4, 0.4]), (5.0, [1.0, 1.0])])
async def test_the_retry_after_cap_is_its_own_setting(anyio_backend, cap, waits):
    # the fault upstream asks for Retry-After: 1 s; the jitter cap (0.25 s) no longer cuts it
    res, sleeps, spec = _limited(backoff_max_s=0.25, retry_after_max_s=cap)
    with pytest.raises(Exception):  # noqa: B017 - the 429 after the retries
        await res.complete([spec], "chat", {"messages": MSG})
    assert sleeps.delays == waits


def test_the_default_cap_stays_two_seconds(monkeypatch):
    monkeypatch.delenv("RANKGATE_RETRY_AFTER_MAX_S", raising=False)
    assert Settings().retry_after_max_s == 2.0
    assert Resilience({}).retry_after_max_s == 2.0
    monkeypatch.setenv("RANKGATE_RETRY_AFTER_MAX_S", "7.5")
    assert Settings().retry_after_max_s == 7.5


def test_serve_flag_reaches_the_gateway(monkeypatch, tmp_path):
    import uvicorn

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda application, **kw: served.update(app=application))
    panel = tmp_path / "panel.yaml"
    panel.write_text(yaml.safe_dump({"models": [{"id": "good", "backend": "faulty",
                                                 "upstream_model": "ok"}]}))
    r = runner.invoke(app, ["serve", "--panel", str(panel), "--retry-after-max-s", "9",
                            "--port", "8123"], env={"RANKGATE_HOME": str(tmp_path)})
    assert r.exit_code == 0, r.stderr
    assert served["app"].state.rankgate.resilience.retry_after_max_s == 9.0


# --- --limit spreads across categories ----------------------------------------------------------

def _items(per_category: dict[str, int]) -> list[Item]:
    """Items grouped by category in file order (like `builtin`: all HumanEval first)."""
    return [Item(id=f"{c}-{k}", messages=[{"role": "user", "content": f"{c} {k}"}],
                 scorer="exact", target="x", category=c)
            for c, n in per_category.items() for k in range(n)]


def test_limit_takes_a_proportional_mix_not_the_first_lines():
    items = _items({"humaneval": 164, "math": 77, "factual": 64, "code": 58})
    picked = datasets.select(items, limit=20, seed=0)
    counts = Counter(it.category for it in picked)
    assert len(picked) == 20 and set(counts) == {"humaneval", "math", "factual", "code"}
    assert 7 <= counts["humaneval"] <= 11  # ~164/363 of 20


def test_limit_is_deterministic_with_the_seed_and_nested():
    items = _items({"a": 50, "b": 30, "c": 20})
    ids = lambda xs: [x.id for x in xs]  # noqa: E731
    assert ids(datasets.select(items, limit=10, seed=3)) == ids(
        datasets.select(items, limit=10, seed=3))
    assert {x.id for x in datasets.select(items, limit=10, seed=3)} != {
        x.id for x in datasets.select(items, limit=10, seed=4)}
    small = {x.id for x in datasets.select(items, limit=10, seed=3)}
    large = {x.id for x in datasets.select(items, limit=40, seed=3)}
    assert small <= large  # a resumed run with a larger limit only adds items


def test_builtin_limit_20_is_not_only_humaneval():
    picked = datasets.select(datasets.load("builtin"), limit=20, seed=0)
    cats = {it.category for it in picked}
    assert len(picked) == 20 and len(cats) >= 5


def test_a_single_category_file_still_gets_exactly_limit_items(tmp_path: Path):
    items = _items({"only": 30})
    assert len(datasets.select(items, limit=7, seed=0)) == 7
