"""``rankgate route promote``: the guard replays both routers on fresh traffic in a real SQLite
store and promotes only a router that is non-inferior in quality and not more expensive.

The traffic is two kinds of request a small model handles differently — arithmetic questions
(both models right) and code tasks (only the big model right) — so the right decision is known:
a kNN router sends arithmetic to the cheap model and code to the big one, "always big" spends
more for the same quality, and a random router loses quality on code. Routers embed with the
model-free ``hash`` embedder; the store, the artifacts and the CLI are the real ones.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from rankgate.embed import HashEmbedder
from rankgate.outcomes import Outcome
from rankgate.routing import artifact
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.baselines import RandomRouter, SingleModelRouter
from rankgate.routing.train_replay import train
from rankgate.store.outcome_store import add_outcomes
from rankgate.store.tables import make_engine

SMALL, BIG = "small", "big"
COST = {SMALL: 1e-5, BIG: 1e-4}
NOUNS = ["list", "string", "tree", "graph", "matrix", "queue", "stack", "heap", "dict", "set"]
VERBS = ["reverses", "sorts", "flattens", "counts the items of", "deduplicates", "merges",
         "validates", "serialises", "parses", "compresses"]


def _prompt(i: int) -> tuple[str, bool]:
    """The i-th request and whether it is easy (arithmetic) or hard (code)."""
    if i % 2 == 0:
        a, b = 3 + (i * 7) % 89, 11 + (i * 13) % 97
        return f"What is {a} plus {b}? Answer with the number only.", True
    k = i // 2
    return (f"Write a Python function `f{k}(x)` that {VERBS[k % len(VERBS)]} a "
            f"{NOUNS[(k // len(VERBS)) % len(NOUNS)]} given as x. Reply with the complete "
            "function in one ```python block."), False


def _outcomes(ids: range, models: tuple[str, ...] = (SMALL, BIG)) -> list[Outcome]:
    rows = []
    for i in ids:
        text, easy = _prompt(i)
        for m in models:
            ok = easy or m != SMALL
            rows.append(Outcome(f"item-{i}", text, m, 1.0 if ok else 0.0, cost_usd=COST[m],
                                source="shadow" if m == SMALL else "live"))
    return rows


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("promote")
    emb = HashEmbedder()
    training = _outcomes(range(0, 240))
    out = {"knn": tmp / "knn.npz"}
    train(training, "knn", out["knn"], emb)
    m = OutcomeMatrix.from_outcomes(training)
    costs = m.mean_costs()
    for name, router in (("big", SingleModelRouter(BIG)), ("random", RandomRouter(seed=3))):
        router.fit(m)
        out[name] = artifact.save(router, tmp / f"{name}.npz", panel_models=m.models,
                                  costs=costs, training_hash=artifact.training_hash(m),
                                  embedder_name=None, training_prompts=m.prompts)
    return out


def _store(tmp: Path, rows: list[Outcome], ts: float | None = None) -> str:
    path = tmp / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    add_outcomes(engine, rows, ts=ts)
    engine.dispose()
    return str(path)


def _promote(*args: str) -> tuple[int, dict | None, str]:
    r = subprocess.run([sys.executable, "-m", "rankgate", "route", "promote", *args],
                       capture_output=True, text=True, timeout=600)
    data = orjson.loads(r.stdout) if "--json" in args and r.returncode in (0, 1) else None
    return r.returncode, data, r.stdout + r.stderr


@pytest.fixture(scope="module")
def fresh_store(tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Path]) -> str:
    """300 fresh items after training, plus traffic the guard must not count: 100 items stored
    before the routers were trained and 40 fresh items whose prompts were trained on."""
    tmp = tmp_path_factory.mktemp("fresh")
    trained = max(artifact.trained_through(artifact.read_header(p)) or 0
                  for p in artifacts.values())
    store = _store(tmp, _outcomes(range(1000, 1100)), ts=trained - 3600)  # stale
    engine = make_engine(f"sqlite:///{store}")
    add_outcomes(engine, _outcomes(range(2000, 2300)), ts=time.time() + 1)
    add_outcomes(engine, _outcomes(range(0, 40)), ts=time.time() + 1)  # trained-on prompts
    engine.dispose()
    return store


def test_promote_accepts_a_cheaper_router_of_equal_quality_and_installs_it(
        artifacts, fresh_store, tmp_path):
    served = tmp_path / "served" / "router.npz"
    served.parent.mkdir()
    served.write_bytes(artifacts["big"].read_bytes())
    code, r, out = _promote(str(artifacts["knn"]), "--against", str(artifacts["big"]),
                            "--store", fresh_store, "--min-quality", "0.8",
                            "--install", str(served), "--json")
    assert code == 0, out
    assert r["promote"] and r["verdict"] == "promoted"
    # only the fresh, never-trained-on items were replayed
    assert r["n"] == 300 and r["dropped_trained_on"] == 40 and r["items_stored"] == 340
    assert r["quality"]["diff"][1] > -0.02 and r["cost"]["new"] < r["cost"]["current"]
    assert r["picks"]["new"][SMALL] == pytest.approx(0.5, abs=0.05)  # arithmetic → small
    assert served.read_bytes() == artifacts["knn"].read_bytes()
    assert not list(served.parent.glob(".*tmp"))  # the temp file of the atomic copy is gone


def test_promote_prints_the_decision_with_intervals_in_words(artifacts, fresh_store):
    code, _, out = _promote(str(artifacts["knn"]), "--against", str(artifacts["big"]),
                            "--store", fresh_store, "--min-quality", "0.8")
    assert code == 0, out
    text = " ".join(out.split())
    assert "PROMOTED" in text and "non-inferior" in text and "95% CI" in text
    assert "300 usable" in text and "40 whose prompt was trained on" in text


def test_an_earlier_since_counts_older_traffic_but_never_training_items(artifacts,
                                                                       fresh_store):
    code, r, out = _promote(str(artifacts["knn"]), "--against", str(artifacts["big"]),
                            "--store", fresh_store, "--min-quality", "0.8", "--since", "3h",
                            "--json")
    assert code == 0, out
    # the 100 items stored before training count now; the 40 trained-on prompts still do not
    assert r["items_stored"] == 440 and r["dropped_trained_on"] == 40 and r["n"] == 400


def test_promote_refuses_a_worse_router(artifacts, fresh_store, tmp_path):
    served = tmp_path / "router.npz"
    served.write_bytes(artifacts["knn"].read_bytes())
    code, r, out = _promote(str(artifacts["random"]), "--against", str(artifacts["knn"]),
                            "--store", fresh_store, "--min-quality", "0.8",
                            "--install", str(served), "--json")
    assert code == 1, out
    assert not r["promote"] and r["verdict"] == "worse"
    assert r["quality"]["diff"][2] < -0.02  # the whole interval is below the margin
    assert r["quality"]["test"] == "mcnemar-exact"
    assert served.read_bytes() == artifacts["knn"].read_bytes()  # nothing installed


def test_promote_refuses_a_dearer_router_of_equal_quality(artifacts, fresh_store):
    code, r, out = _promote(str(artifacts["big"]), "--against", str(artifacts["knn"]),
                            "--store", fresh_store, "--min-quality", "0.8", "--json")
    assert code == 1, out
    assert r["verdict"] == "more_expensive" and r["quality"]["diff"][1] > -0.02


def test_promote_with_too_few_fresh_items_says_how_many_it_needs(artifacts, tmp_path):
    store = _store(tmp_path, _outcomes(range(3000, 3030)), ts=time.time() + 1)
    code, r, out = _promote(str(artifacts["knn"]), "--against", str(artifacts["big"]),
                            "--store", store, "--min-quality", "0.8", "--json")
    assert code == 1, out
    assert r["verdict"] == "too_few_items" and r["n"] == 30
    assert r["items_needed"] >= 100 and f"needs at least {r['items_needed']}" in r["reason"]
    code, _, out = _promote(str(artifacts["knn"]), "--against", str(artifacts["big"]),
                            "--store", store, "--min-items", "500")
    assert code == 1 and "needs at least 500" in " ".join(out.split())


def test_promote_ignores_traffic_older_than_the_routers(artifacts, tmp_path):
    store = _store(tmp_path, _outcomes(range(1000, 1400)), ts=time.time() - 86400)
    code, r, out = _promote(str(artifacts["knn"]), "--against", str(artifacts["big"]),
                            "--store", store, "--json")
    assert code == 1, out
    assert r["items_stored"] == 0 and r["verdict"] == "too_few_items"


def test_promote_unknown_artifact_is_bad_input(artifacts, fresh_store, tmp_path):
    code, _, out = _promote(str(tmp_path / "nope.npz"), "--against", str(artifacts["big"]),
                            "--store", fresh_store)
    assert code == 2 and "nope.npz: no such router file" in out
    code, _, out = _promote(str(artifacts["knn"]), "--against", str(artifacts["big"]),
                            "--store", str(tmp_path / "missing.db"))
    assert code == 2 and "missing.db" in out and "does not exist" in out
    assert not (tmp_path / "missing.db").exists()  # nothing written


def test_promote_store_of_another_panel_names_the_missing_models(artifacts, tmp_path):
    rows = [o for o in _outcomes(range(4000, 4200)) if o.model == SMALL]
    rows += [Outcome(o.prompt_id, o.prompt, "other", 1.0, cost_usd=1e-5, source="live")
             for o in rows]
    store = _store(tmp_path, rows, ts=time.time() + 1)
    code, _, out = _promote(str(artifacts["knn"]), "--against", str(artifacts["big"]),
                            "--store", store)
    text = " ".join(out.split())
    assert code == 2, out
    assert "no fresh outcome for ['big']" in text and "['other', 'small']" in text


def test_items_needed_follows_the_paired_spread_and_margin():
    from rankgate.routing.promote import items_needed

    # sd 0.3 at a 2% margin: ((1.96 + 0.84) · 0.3 / 0.02)² ≈ 1,766
    assert items_needed(0.3, 0.02) == pytest.approx(1766, abs=2)
    assert items_needed(0.3, 0.04) < items_needed(0.3, 0.02) < items_needed(0.5, 0.02)
    assert np.isfinite(items_needed(0.0, 0.02))
