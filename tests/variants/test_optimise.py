"""``rankgate optimise``: the ladder climbs branch by branch, stops a branch at a step that
does not pay, resumes from its outcomes file, and writes its report and recommendation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from rankgate.outcomes import Outcome
from rankgate.variants.ladder import Rule, compare_by_category
from tests.variants.conftest import POOL


def test_a_step_pays_when_its_gain_covers_its_cost():
    rule = Rule(min_gain=0.0, gain_per_cost=0.02)
    assert rule.pays(0.05, 2.0)[0]  # +5 points for double the cost
    assert not rule.pays(0.01, 2.0)[0]  # +1 point does not pay for double
    assert not rule.pays(0.0, 1.2)[0]  # no gain
    assert rule.pays(0.0, 0.5)[0]  # as good and cheaper
    assert not rule.pays(-0.02, 0.5)[0]  # cheaper but worse
    assert rule.pays(0.03, None)[0]  # cost unknown: the gain decides


def test_each_rung_is_compared_within_each_category_on_its_own_items():
    def o(i: int, model: str, score: float, cat: str) -> Outcome:
        return Outcome(prompt_id=f"{cat}{i}", prompt="p", model=model, score=score,
                       cost_usd=0.002 if "+" in model else 0.001, latency_s=1.0,
                       category=cat)

    rows = [o(i, m, s, c) for i in range(6) for c, (base, var) in
            {"math": (0.0, 1.0), "extraction": (1.0, 0.0)}.items()
            for m, s in (("m", base), ("m+cot", var))]
    by = compare_by_category(rows, "m+cot", "m")
    assert set(by) == {"math", "extraction"}
    assert by["math"]["n"] == 6 and by["math"]["diff"] == 1.0
    assert by["extraction"]["diff"] == -1.0 and by["extraction"]["cost_ratio"] == 2.0


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    panel = tmp_path / "panel.yaml"
    panel.write_text("models:\n  - {id: echo, backend: faulty, input_price_per_mtok: 1, "
                     "output_price_per_mtok: 2}\n")
    work = tmp_path / "work.jsonl"
    work.write_bytes(b"".join(orjson.dumps(
        {"id": f"w{k}", "prompt": f"Greet person number {k}.", "scorer": "contains",
         "target": ["hello"], "category": "greeting"}) + b"\n" for k in range(4)))
    pool = tmp_path / "pool.jsonl"
    pool.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in POOL))
    return {"panel": panel, "work": work, "pool": pool, "out": tmp_path / "opt",
            "home": tmp_path / "home"}


def optimise(s: dict[str, Path], limit: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rankgate", "optimise", "--model", "echo", "--panel",
         str(s["panel"]), "--workload", str(s["work"]), "--limit", str(limit), "--out",
         str(s["out"]), "--examples", str(s["pool"]), "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "RANKGATE_HOME": str(s["home"])})


def outcome_pairs(s: dict[str, Path]) -> list[tuple[str, str]]:
    lines = (s["out"] / "outcomes.jsonl").read_bytes().splitlines()
    return [(d["model"], d["prompt_id"]) for d in map(orjson.loads, lines)]


def test_the_ladder_climbs_stops_unpaid_branches_and_reports(setup):
    r = optimise(setup, 2)
    assert r.returncode == 0, r.stderr
    report = orjson.loads(r.stdout)
    steps = {s["model"]: s for s in report["steps"]}
    # every step scores as its base (the same canned reply) at a higher cost: none pays,
    # so each branch stops at its first rung (no +fewshot after +system, no +sc5 after +cot)
    assert list(steps) == ["echo", "echo+system", "echo+retrieved", "echo+cot", "echo+q…"]
    assert steps["echo+system"]["verdict"] == "not adopted"
    assert steps["echo+system"]["diff"] == 0.0 and steps["echo+system"]["cost_ratio"] > 1
    assert steps["echo+q…"]["verdict"] == "skipped"
    assert "no other quantisation of echo is installed" in steps["echo+q…"]["reason"]
    assert report["recommended"] == "echo"
    md = (setup["out"] / "report.md").read_text()
    assert md.count("| echo") == 5
    assert "### echo+system vs echo, per category" in md and "| greeting | 2 |" in md
    assert steps["echo+system"]["categories"]["greeting"]["n"] == 2
    assert sorted(set(m for m, _ in outcome_pairs(setup))) == [
        "echo", "echo+cot", "echo+retrieved", "echo+system"]


def test_the_ladder_resumes_where_it_stopped(setup):
    assert optimise(setup, 2).returncode == 0
    first = outcome_pairs(setup)
    assert len(first) == 2 * 4
    # a run killed mid-way: the last two outcomes never made it to the file
    path = setup["out"] / "outcomes.jsonl"
    path.write_bytes(b"\n".join(path.read_bytes().splitlines()[:-2]) + b"\n")
    assert optimise(setup, 2).returncode == 0
    again = outcome_pairs(setup)
    assert sorted(again) == sorted(first)  # only the missing ones were run again
    assert optimise(setup, 2).returncode == 0
    assert len(outcome_pairs(setup)) == len(first)  # nothing left to do: nothing appended
    assert optimise(setup, 4).returncode == 0
    assert len(outcome_pairs(setup)) == 4 * 4  # a larger --limit only adds the new items


def test_an_unknown_model_is_one_line(setup):
    r = subprocess.run([sys.executable, "-m", "rankgate", "optimise", "--model", "echo+cott",
                        "--panel", str(setup["panel"])], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "RANKGATE_HOME": str(setup["home"])})
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "unknown recipe 'cott'" in r.stderr
