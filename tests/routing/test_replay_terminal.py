"""``rankgate route replay`` in a terminal shows what ``--json`` holds beyond the main table:
the paired differences against the reference router and the realised coverage of every
quality guarantee (``routing/replay_report.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rankgate.outcomes import Outcome, write_jsonl
from rankgate.routing.replay_report import guarantee_table, paired_table


def outcomes() -> list[Outcome]:
    rows = []
    for i in range(200):
        sums = i % 2 == 0
        text = (f"What is {i} plus {i * 3 % 17}? Answer with the number only." if sums else
                f"Write a Python function f{i}(xs) that sorts xs. Reply with one code block.")
        rows.append(Outcome(f"i{i}", text, "small", float(sums and i % 20 != 0),
                            cost_usd=1e-5))
        rows.append(Outcome(f"i{i}", text, "big", float(i % 10 != 5), cost_usd=1e-4))
    return rows


def replay(tmp_path: Path, *extra: str) -> str:
    data = tmp_path / "o.jsonl"
    if not data.exists():
        write_jsonl(data, outcomes())
    env = {**os.environ, "RANKGATE_HOME": str(tmp_path / "home"), "COLUMNS": "300"}
    r = subprocess.run([sys.executable, "-m", "rankgate", "route", "replay", "--outcomes",
                        str(data), "--routers", "knn,knn_tuned", "--embedder", "hash",
                        "--n-boot", "30", *extra],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_terminal_replay_shows_paired_differences_and_guarantee_coverage(tmp_path):
    report = json.loads(replay(tmp_path, "--json"))
    shown = replay(tmp_path)
    assert "paired against knn_tuned" in shown and "ΔAIQ [95%]" in shown
    for name, p in report["paired"].items():
        lo, hi = p["aiq"]["ci"]
        assert f"{p['aiq']['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]" in shown, name
    assert "quality guarantee" in shown
    lines = [line for line in shown.splitlines() if "│" in line]
    for name, g in report["guarantee"].items():
        for row in g["rows"]:
            if row["coverage"] is None:
                continue
            lo, hi = row["coverage_ci"]
            cells = [name, f"{row['target']:g}", f"{row['confidence']:g}",
                     f"{row['certified_share']:.0%}",
                     f"{row['coverage']:.3f} [{lo:.3f}, {hi:.3f}]",
                     "kept" if row["meets_promise"] else "broken"]
            assert any(all(c in line for c in cells) for line in lines), (name, row)


def test_no_table_when_the_replay_made_no_pairs_or_guarantees():
    assert paired_table({"paired": {}}) is None
    assert guarantee_table({"guarantee": {"knn": {"note": "too few items"}}}) is None
