"""`rankgate judge calibrate`: the judge measured against gold, and `rank` saying so.

The statistics are checked on hand-built verdict tables (every expected value worked out by
hand below); the command runs end to end with the real qwen2.5-coder-0.5b as judge on a few of
the shipped gold-scored outcomes.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from rankgate.eval import datasets
from rankgate.eval import judge_calibration as jc
from rankgate.eval.judge_calibration import GradeRow, PairRow
from rankgate.outcomes import Outcome, write_jsonl

EMBEDDED = Path(__file__).parents[2] / "src" / "rankgate" / "data" / "embedded_outcomes.jsonl"


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


# ------------------------------------------------------------------ statistics, by hand
GRADES = [  # threshold 6: judge pass = rating >= 6; gold pass = score >= 0.5
    GradeRow("i1", "m1", "math", 1.0, 8),  # pass / pass
    GradeRow("i2", "m1", "math", 1.0, 6),  # pass / pass (6 is a pass)
    GradeRow("i3", "m1", "code", 1.0, 3),  # judge fail / gold pass
    GradeRow("i4", "m2", "code", 0.0, 7),  # judge pass / gold fail
    GradeRow("i5", "m2", "math", 0.0, 2),  # fail / fail
    GradeRow("i6", "m2", "code", 0.0, 5),  # fail / fail (5 is a fail)
    GradeRow("i7", "m2", "math", 0.5, 9),  # pass / pass (0.5 is a gold pass)
    GradeRow("i8", "m1", "math", 0.0, None),  # unparsable: counted, not scored
    GradeRow("i9", "m1", "math", 1.0, None, "upstream_timeout: slow"),  # failed call
]


def test_grading_agreement_and_kappa_match_the_hand_computed_values():
    g = jc.grading_stats(GRADES)
    # 7 scored: TP 3 (i1, i2, i7), FN 1 (i3), FP 1 (i4), TN 2 (i5, i6) -> agreement 5/7
    assert (g["n"], g["answers"], g["unparsable"], g["errors"]) == (7, 9, 1, 1)
    assert g["confusion"] == {"judge_pass_gold_pass": 3, "judge_pass_gold_fail": 1,
                              "judge_fail_gold_pass": 1, "judge_fail_gold_fail": 2}
    assert g["agreement"]["estimate"] == pytest.approx(5 / 7, abs=1e-6)
    low, high = wilson_by_hand(5, 7)
    assert g["agreement"]["low"] == pytest.approx(low, abs=1e-6)
    assert g["agreement"]["high"] == pytest.approx(high, abs=1e-6)
    # po = 5/7; judge passes 4 of 7, gold passes 4 of 7 -> pe = (4·4 + 3·3)/49 = 25/49
    # κ = (35/49 − 25/49) / (1 − 25/49) = 10/24
    assert g["kappa"]["estimate"] == pytest.approx(10 / 24, abs=1e-6)
    assert g["kappa"]["low"] <= 10 / 24 <= g["kappa"]["high"]
    assert g["base_rates"]["always_pass_agreement"] == pytest.approx(4 / 7, abs=1e-6)
    assert g["base_rates"]["always_fail_agreement"] == pytest.approx(3 / 7, abs=1e-6)
    # thresholds 3, 4, 6 and 8 all agree on 5/7: the a priori one wins the tie, labelled
    assert g["best_threshold_in_sample"]["threshold"] == 6
    assert g["best_threshold_in_sample"]["agreement"] == pytest.approx(5 / 7, abs=1e-6)
    assert "optimistic" in g["best_threshold_in_sample"]["note"]
    assert g["spearman"]["estimate"] > 0 and g["kendall"]["estimate"] > 0
    assert g["per_model"]["m1"]["agreement"]["n"] == 3  # i1, i2, i3 (i8, i9 not scored)
    assert g["per_model"]["m1"]["agreement"]["estimate"] == pytest.approx(2 / 3, abs=1e-6)


def test_a_lenient_judge_that_still_orders_answers_is_found_by_the_learnt_threshold():
    # every answer rated >= 6 (a priori: all pass), but gold passes are exactly those >= 9
    rows = [GradeRow(f"i{k}", "m", "math", 1.0 if r >= 9 else 0.0, r)
            for k, r in enumerate([6, 7, 8, 9, 10] * 4)]
    g = jc.grading_stats(rows)
    assert g["agreement"]["estimate"] == pytest.approx(8 / 20)  # = always-pass
    assert g["kappa"]["estimate"] == 0.0
    cv = g["threshold_cross_validated"]
    assert (cv["estimate"], cv["n"], cv["thresholds"]) == (1.0, 20, [9] * 5)


def test_kappa_is_undefined_not_zero_when_everything_is_in_one_class():
    assert jc.cohen_kappa(tp=5, fp=0, fn=0, tn=0) is None
    assert jc.cohen_kappa(tp=2, fp=0, fn=0, tn=2) == 1.0


PAIRS = [  # gold winner, then the verdicts: first = a shown first, second = b shown first
    PairRow("p1", "math", "x", "y", 1.0, 0.0, 10, 20, "A", "A"),  # decisive, right
    PairRow("p2", "math", "x", "y", 0.0, 1.0, 10, 20, "A", "A"),  # decisive, wrong
    PairRow("p3", "code", "x", "y", 1.0, 0.0, 10, 20, "A", "B"),  # flips with order: tie
    PairRow("p4", "code", "x", "y", 1.0, 0.0, 10, 20, "C", "C"),  # tie both times
    PairRow("p5", "code", "x", "y", 1.0, 0.0, 10, 20, None, "A"),  # one order unparsable
    PairRow("p6", "math", "x", "y", 1.0, 1.0, 100, 50, "A", "A"),  # equal gold, longer a wins
    PairRow("p7", "math", "x", "y", 0.0, 0.0, 10, 40, "A", "B"),  # equal gold, split
    PairRow("p8", "math", "x", "y", 1.0, 0.0, 10, 20, error="upstream_error: boom"),
]


def test_pairwise_accuracy_ties_and_biases_match_the_hand_computed_values():
    s = jc.pairwise_stats(PAIRS)
    assert (s["pairs"], s["pairs_gold_differs"], s["pairs_gold_equal"]) == (8, 6, 2)
    assert (s["errors"], s["unparsable_verdicts"]) == (1, 1)
    # both orders parsed, gold differs: p1..p4; decisive p1 (right), p2 (wrong)
    assert (s["accuracy"]["estimate"], s["accuracy"]["n"]) == (0.5, 2)
    assert (s["tie_rate"]["estimate"], s["tie_rate"]["n"]) == (0.5, 4)
    # decisive single-order verdicts, shown-first wins: p1 1/2, p2 1/2, p3 2/2, p5 0/1,
    # p6 1/2, p7 2/2 -> 7 of 11
    pb = s["position_bias"]
    assert (pb["estimate"], pb["n"]) == (pytest.approx(7 / 11, abs=1e-6), 11)
    low, high = wilson_by_hand(7, 11)
    assert (pb["low"], pb["high"]) == (pytest.approx(low, abs=1e-6), pytest.approx(high,
                                                                                    abs=1e-6))
    # equal gold: p6 longer wins 2/2, p7 1/2 -> 3 of 4 verdicts, 2 pairs
    lb = s["length_bias"]
    assert (lb["estimate"], lb["n"], lb["pairs"]) == (0.75, 4, 2)
    assert lb["low"] <= 0.75 <= lb["high"]


def test_small_samples_say_so():
    rep = {"grading": jc.grading_stats(GRADES), "pairwise": jc.pairwise_stats(PAIRS)}
    notes = jc.small_sample_notes(rep)
    assert any(n.startswith("grading agreement: n=7") for n in notes)
    assert all("small sample" in n for n in notes)


# ------------------------------------------------------------------ sampling (no model)
def test_a_larger_limit_keeps_the_smaller_sample_so_cached_verdicts_are_reused():
    from rankgate.outcomes import read_jsonl

    answers = jc.gold_answers(read_jsonl(EMBEDDED))
    items = datasets.load("builtin")
    small = jc.select_items(items, answers, 14, seed=0)
    large = jc.select_items(items, answers, 60, seed=0)
    assert {it.id for it in small} <= {it.id for it in large}
    assert len({it.category for it in small}) == 7  # every built-in category represented


def test_pairs_split_into_gold_differs_and_gold_equal_with_unequal_lengths():
    from rankgate.outcomes import read_jsonl

    answers = jc.gold_answers(read_jsonl(EMBEDDED))
    items = jc.select_items(datasets.load("builtin"), answers, 40, seed=1)
    models = ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    pairs = jc.select_pairs(items, answers, models, 10, 5, seed=1)
    differ, equal = pairs[:10], pairs[10:]
    assert len(differ) == 10 and all(p.gold_a != p.gold_b for p in differ)
    assert len(equal) == 5 and all(p.gold_a == p.gold_b and p.len_a != p.len_b for p in equal)
    assert pairs == jc.select_pairs(items, answers, models, 10, 5, seed=1)  # seeded


# ------------------------------------------------------------------ `rank` lookup
def _report(home: Path, judge: str, **extra: object) -> None:
    rep = {"judge": judge, "created": "2026-12-02T10:00:00+00:00", **extra,
           "grading": {"n": 240, "agreement": {"estimate": 0.78, "low": 0.74, "high": 0.82},
                       "kappa": {"estimate": 0.5, "low": 0.41, "high": 0.59}},
           "pairwise": {"position_bias": {"estimate": 0.56, "low": 0.51, "high": 0.61,
                                          "n": 180}}}
    jc.write_report(rep, jc.default_path(home, judge))


def test_judge_note_reads_the_stored_calibration_or_says_how_to_make_one(tmp_path):
    _report(tmp_path, "qwen2.5-coder-1.5b")
    assert jc.judge_note("qwen2.5-coder-1.5b", tmp_path) == (
        "judge qwen2.5-coder-1.5b: agrees with gold on 78% [74, 82] of 240 graded answers "
        "(κ 0.50 [0.41, 0.59]) (calibrated 2026-12-02); position bias 0.56 [0.51, 0.61]")
    _report(tmp_path, "capped", judge_max_tokens=32)
    assert "(calibrated 2026-12-02, answers capped at 32 tokens)" in jc.judge_note("capped",
                                                                                   tmp_path)
    assert jc.judge_note("other", tmp_path) == (
        "judge other is not calibrated: run rankgate judge calibrate --judge other")


def test_judges_come_from_judge_outcomes_and_votes_only(tmp_path):
    votes = tmp_path / "votes.jsonl"
    votes.write_bytes(b'{"prompt_id": "q", "a": "x", "b": "y", "outcome": 1, "judge": "j2"}\n')
    rows = [Outcome("q", "p", "x", 0.8, source="judge", extra={"judge": "j1"}),
            Outcome("r", "p", "x", 0.8, source="judge", extra={"judge": {"model": "j3"}}),
            Outcome("s", "p", "x", 1.0, source="eval:builtin")]
    assert jc.judges_used(rows, votes_file=votes) == ["j1", "j3", "j2"]
    assert jc.judges_used(rows[2:]) == []


def _rank(tmp_path: Path, rows: list[Outcome]) -> subprocess.CompletedProcess:
    f = tmp_path / "o.jsonl"
    write_jsonl(f, rows)
    return subprocess.run([sys.executable, "-m", "rankgate", "rank", "--outcomes", str(f)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RANKGATE_HOME": str(tmp_path / "home"),
                               "COLUMNS": "200"})


def test_rank_prints_the_judges_agreement_beside_a_judge_based_ranking(tmp_path):
    _report(tmp_path / "home", "judge-a")
    rows = [Outcome(f"q{i}", f"p{i}", m, (i + k) % 3 / 2, source="judge",
                    extra={"judge": "judge-a" if i % 2 else "judge-b"})
            for i in range(12) for k, m in enumerate(("x", "y"))]
    r = _rank(tmp_path, rows)
    assert r.returncode == 0, r.stderr
    assert "judge judge-a: agrees with gold on 78% [74, 82] of 240 graded answers" in r.stdout
    assert ("judge judge-b is not calibrated: run rankgate judge calibrate --judge judge-b"
            in r.stdout)


def test_rank_of_gold_outcomes_prints_no_judge_line(tmp_path):
    rows = [Outcome(f"q{i}", f"p{i}", m, float((i + k) % 2), source="eval")
            for i in range(12) for k, m in enumerate(("x", "y"))]
    r = _rank(tmp_path, rows)
    assert r.returncode == 0, r.stderr
    assert "judge " not in r.stdout


# ------------------------------------------------------------------ the command
def _calibrate(tmp_path: Path, *extra: str, panel: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "rankgate", "judge", "calibrate",
            *(["--panel", str(panel)] if panel else []), *extra]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "RANKGATE_HOME": str(tmp_path / "home"),
            "RANKGATE_THREADS_PER_MODEL": "2"}


def test_unknown_judge_exits_2_naming_the_panels_models_and_writes_nothing(tmp_path):
    out = tmp_path / "cal.json"
    r = subprocess.run(_calibrate(tmp_path, "--judge", "gpt-9", "--out", str(out)),
                       capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert r.returncode == 2
    assert "unknown judge 'gpt-9'" in r.stderr
    assert "smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b" in r.stderr
    assert not out.exists()


def test_outcomes_without_responses_are_refused_with_a_clear_error(tmp_path):
    f = tmp_path / "scores_only.jsonl"
    write_jsonl(f, [Outcome("humaneval-0", "p", "x", 1.0), Outcome("humaneval-1", "p", "x", 0.0)])
    out = tmp_path / "cal.json"
    r = subprocess.run(_calibrate(tmp_path, "--judge", "smollm2-135m", "--outcomes", str(f),
                                  "--out", str(out)),
                       capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert r.returncode == 2
    assert "no outcome has both a gold score and a response" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # one message (wrapped at most once)
    assert not out.exists()


def test_judge_without_a_subcommand_still_writes_votes(tmp_path):
    """`rankgate judge --outcomes F --judge M` is unchanged by the new `calibrate`."""
    r = subprocess.run([sys.executable, "-m", "rankgate", "judge", "--outcomes",
                        str(tmp_path / "missing.jsonl"), "--judge", "gpt-9"],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert r.returncode == 2
    assert "unknown judge 'gpt-9'" in r.stderr


def _cache_rows(home: Path) -> int:
    db = sqlite3.connect(home / "cache" / "responses.sqlite")
    try:
        return db.execute("select count(*) from responses").fetchone()[0]
    finally:
        db.close()


def test_calibrate_end_to_end_with_a_real_judge_is_resumable_and_free_to_rerun(
        tmp_path, qwen05_path):
    panel = tmp_path / "panel.yaml"
    panel.write_text(f"- id: qwen2.5-coder-0.5b\n  backend: llamacpp\n  path: {qwen05_path}\n")
    out = tmp_path / "cal.json"
    args = _calibrate(tmp_path, "--judge", "qwen2.5-coder-0.5b", "--limit", "3", "--pairs", "2",
                      "--length-pairs", "1", "--seed", "5", "--max-tokens", "24", "--out", str(out),
                      panel=panel)
    home = tmp_path / "home"
    # 3 items x 3 models = 9 grades, 3 pairs x 2 orders = 6 verdicts: 15 judge calls
    proc = subprocess.Popen(args, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 900
    while not (home / "cache" / "responses.sqlite").exists() or _cache_rows(home) < 3:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.time() < deadline
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # Ctrl-C mid-run
    proc.wait(120)
    assert not out.exists()  # no report from a partial run
    before = _cache_rows(home)
    assert 3 <= before < 15

    done = subprocess.run([*args, "--json"], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=1800)
    assert done.returncode == 0, done.stderr
    rep = orjson.loads(done.stdout)
    assert rep == orjson.loads(out.read_bytes())
    assert rep["judge_calls"]["from_cache"] >= before  # the interrupted run's work is kept
    assert rep["judge_calls"]["made"] + rep["judge_calls"]["from_cache"] == 15
    assert rep["judge"] == "qwen2.5-coder-0.5b" and rep["items"] == 3
    assert rep["outcomes_sha256"] and len(rep["outcomes_sha256"]) == 64
    assert rep["created"][:4].isdigit() and rep["workload"] == "builtin"
    assert rep["judge_max_tokens"] == 24
    g, pw = rep["grading"], rep["pairwise"]
    assert g["answers"] == 9 and g["n"] + g["unparsable"] + g["errors"] == 9
    assert g["threshold"] == 6 and "a priori" in g["threshold_rule"]
    for fig in (g["agreement"], pw["position_bias"]):
        assert set(fig) >= {"estimate", "low", "high", "method", "n"}
    assert g["agreement"]["low"] <= g["agreement"]["estimate"] <= g["agreement"]["high"]
    assert pw["pairs"] == 3 and pw["pairs_gold_differs"] == 2 and pw["pairs_gold_equal"] == 1
    assert len(rep["verdicts"]["grades"]) == 9 and len(rep["verdicts"]["pairs"]) == 3
    assert any("small sample" in n for n in rep["notes"])

    again = subprocess.run([*args, "--json"], capture_output=True, text=True,
                           env=_env(tmp_path), timeout=600)
    assert again.returncode == 0, again.stderr
    rep2 = orjson.loads(again.stdout)
    assert rep2["judge_calls"] == {"made": 0, "from_cache": 15}  # re-running asks nothing
    assert _cache_rows(home) == 15
    assert rep2["verdicts"] == rep["verdicts"] and rep2["grading"] == rep["grading"]
