"""``rank`` reports every variant against its base on the same items: paired difference with
its interval, cost and latency ratios, the frontier, per category."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from rankgate.outcomes import Outcome, write_jsonl
from rankgate.rank.leaderboard import leaderboard
from rankgate.rank.variants import base_of


def rows(model: str, scores: list[float], cost: float, latency: float,
         cat: str = "math") -> list[Outcome]:
    return [Outcome(f"i{k}", f"q{k}", model, s, cost_usd=cost, latency_s=latency,
                    category=cat if k % 2 == 0 else "code") for k, s in enumerate(scores)]


def board() -> dict:
    n = 40
    base = rows("small", [1.0 if k % 4 == 0 else 0.0 for k in range(n)], 0.001, 1.0)
    cot = rows("small+cot", [1.0 if k % 2 == 0 else 0.0 for k in range(n)], 0.002, 2.5)
    big = rows("big", [1.0 if k % 3 else 0.0 for k in range(n)], 0.01, 3.0)
    return leaderboard(base + cot + big + rows("small+cot+sc3", [1.0] * 10, 0.006, 7.5))


def test_the_base_of_a_variant_is_its_nearest_evaluated_ancestor():
    present = {"a", "a+x", "b+y"}
    assert base_of("a+x+z", present) == "a+x"
    assert base_of("a+q+z", present) == "a"
    assert base_of("b+y", present) is None
    assert base_of("a", present) is None


def test_each_variant_is_compared_with_its_base_on_shared_items():
    b = board()
    by = {r["variant"]: r for r in b["variants"]}
    cot = by["small+cot"]
    assert (cot["base"], cot["recipe"], cot["n"]) == ("small", "cot", 40)
    assert cot["diff"] == 0.25  # 20/40 vs 10/40, same items
    assert cot["ci_low"] <= 0.25 <= cot["ci_high"] and cot["ci_low"] > 0
    assert cot["test"] == "mcnemar-exact" and cot["significant"]
    assert cot["cost_ratio"] == pytest.approx(2.0)
    assert cot["latency_ratio"] == pytest.approx(2.5)
    assert set(cot["categories"]) == {"math", "code"}
    assert cot["categories"]["math"]["n"] == 20
    sc = by["small+cot+sc3"]
    assert (sc["base"], sc["recipe"], sc["n"]) == ("small+cot", "sc3", 10)
    assert sc["cost_ratio"] == pytest.approx(3.0)
    assert "big" not in by and "small" not in by


def test_a_variant_on_the_frontier_moves_it():
    b = board()
    by = {r["variant"]: r for r in b["variants"]}
    # small+cot (50% at $2/1k) sits between small and big: it joins the frontier
    assert by["small+cot"]["moves_frontier"] and "small+cot" in b["pareto"]


def test_rank_prints_and_exports_the_variant_effects(tmp_path):
    f = tmp_path / "o.jsonl"
    write_jsonl(f, [o for m in ("small", "small+cot") for o in
                    rows(m, [1.0 if k % (2 if "+" in m else 4) == 0 else 0.0
                             for k in range(40)], 0.001 * (1 + ("+" in m)), 1.0)])
    out = subprocess.run([sys.executable, "-m", "rankgate", "rank", "--outcomes", str(f),
                          "--html", str(tmp_path / "r.html")], capture_output=True, text=True,
                         timeout=120, env={"COLUMNS": "200", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert "variants vs their base" in out.stdout and "+25.0%" in out.stdout
    assert "Variants vs their base (paired)" in (tmp_path / "r.html").read_text()
    js = subprocess.run([sys.executable, "-m", "rankgate", "rank", "--outcomes", str(f),
                         "--json"], capture_output=True, timeout=120)
    assert orjson.loads(js.stdout)["variants"][0]["variant"] == "small+cot"


def test_a_variant_that_matches_a_dearer_model_in_one_category_stands_in_there():
    n = 60
    # the dearer model: right on every math item, on half of the code items
    big = [Outcome(f"i{k}", "q", "big", 1.0 if k % 2 == 0 or k % 4 == 1 else 0.0,
                   cost_usd=0.01, category="math" if k % 2 == 0 else "code") for k in range(n)]
    # small+cot: as good on math, never right on code; small: never right
    cot = [Outcome(f"i{k}", "q", "small+cot", 1.0 if k % 2 == 0 else 0.0, cost_usd=0.002,
                   category="math" if k % 2 == 0 else "code") for k in range(n)]
    # small (its base): never right, and dearer than its variant, yet never compared with it
    small = [Outcome(o.prompt_id, "q", "small", 0.0, cost_usd=0.003, category=o.category)
             for o in cot]
    si = leaderboard(big + cot + small, margin=0.05)["stand_ins"]
    found = {(r["variant"], r["model"], r["category"]) for r in si["found"]}
    assert found == {("small+cot", "big", "math")}  # not overall, not code
    assert si["found"][0]["cost_ratio"] == pytest.approx(0.2)
    # the base is never compared with its own variant, nor a model with a cheaper one
    assert all(r["model"] == "big" for r in si["found"] + si["closest"])


def test_rank_says_plainly_when_no_variant_stands_in(tmp_path):
    f = tmp_path / "o.jsonl"
    write_jsonl(f, [o for m in ("small", "small+cot") for o in
                    rows(m, [0.0] * 40, 0.001 * (1 + ("+" in m)), 1.0)]
                + rows("big", [1.0] * 40, 0.01, 1.0))
    out = subprocess.run([sys.executable, "-m", "rankgate", "rank", "--outcomes", str(f)],
                         capture_output=True, text=True, timeout=120,
                         env={"COLUMNS": "200", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert "no variant is non-inferior to a dearer model" in out.stdout
    assert "small+cot vs big (all, n=40): -100.0%" in out.stdout
