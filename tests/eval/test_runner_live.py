"""The eval runner with the real smollm2-135m model: resumable, cached, validated up front."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson

from rankgate.eval import datasets
from rankgate.outcomes import read_jsonl


def _args(out, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rankgate", "eval", "--workload", "starter", "--sample", "10",
            "--seed", "3", "--models", "smollm2-135m", "--max-tokens", "48", "--out", str(out),
            *extra]


def _eval(tmp_path, out, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "RANKGATE_HOME": str(tmp_path / "home")}
    return subprocess.Popen(_args(out, *extra), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _lines(path) -> list[dict]:
    if not path.exists():
        return []
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def test_interrupted_eval_resumes_without_redoing_finished_items(tmp_path, smollm_path):
    out = tmp_path / "outcomes.jsonl"
    proc = _eval(tmp_path, out, "--no-cache")
    deadline = time.time() + 600
    while len(_lines(out)) < 3:
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.wait(60)
    before = _lines(out)
    assert 3 <= len(before) < 10
    done = subprocess.run(_args(out, "--no-cache"), capture_output=True, text=True,
                          env={**os.environ, "RANKGATE_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stdout + done.stderr
    after = _lines(out)
    assert len(after) == 10
    assert after[:len(before)] == before  # finished items untouched, not redone
    assert len({(o["prompt_id"], o["model"]) for o in after}) == 10
    assert f"{len(before)} already in" in done.stdout
    for o in read_jsonl(out):
        assert o.score is not None and 0 <= o.score <= 1 and o.error is None
        assert o.latency_s > 0 and o.output_tokens > 0 and o.cost_usd > 0
        assert o.logprob_mean is not None and 0 < o.confidence <= 1


def test_rerun_into_a_new_file_is_served_from_the_response_cache(tmp_path, smollm_path):
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    assert _eval(tmp_path, first).wait(600) == 0
    p = _eval(tmp_path, second)
    text, _ = p.communicate(timeout=600)
    assert p.returncode == 0
    assert "10 from cache" in text
    a = {(o["prompt_id"]): o["response"] for o in _lines(first)}
    b = {(o["prompt_id"]): o["response"] for o in _lines(second)}
    assert a == b


def test_a_bad_workload_reports_every_bad_line(tmp_path):
    bad = tmp_path / "w.jsonl"
    bad.write_text("\n".join([
        '{"id": "a", "prompt": "2+2?", "target": 4, "scorer": "numeric"}',
        '{"id": "a", "prompt": "dup", "target": 1, "scorer": "numeric"}',
        'not json',
        '{"id": "c", "prompt": "x", "scorer": "telepathy"}',
        '{"id": "d", "prompt": "x", "target": "four", "scorer": "numeric"}',
        '{"id": "e", "scorer": "exact", "target": "x"}',
        '{"id": "f", "prompt": "ok", "target": "x", "scorer": "exact", "colour": 1}',
    ]))
    r = subprocess.run([sys.executable, "-m", "rankgate", "eval", "--workload", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    for line, field in [(2, "id"), (3, "(line)"), (4, "scorer"), (5, "target"), (6, "prompt"),
                        (7, "colour")]:
        assert f"line {line}: field '{field}'" in r.stderr, r.stderr
    assert "6 invalid line(s)" in r.stderr


def test_builtin_workload_loads_with_every_category():
    items = datasets.load("builtin")
    cats = {i.category for i in items}
    assert {"math", "knowledge_mc", "factual", "code", "instructions", "extraction",
            "code_humaneval"} <= cats
    assert sum(i.category == "code_humaneval" for i in items) == 164
    assert sum(i.category != "code_humaneval" for i in items) >= 300
