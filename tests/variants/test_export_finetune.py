"""``rankgate export finetune``: best answer per prompt, validated against OpenAI's chat
fine-tuning format, held-out split beside it, and round-trips; nothing qualifies → says so,
writes nothing, exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from rankgate.outcomes import Outcome, write_jsonl
from rankgate.outcomes.finetune import heldout_path, read_examples, validate_line


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rankgate", "export", "finetune", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ})


def test_the_best_answer_per_prompt_is_exported_validated_and_round_trips(tmp_path: Path):
    src = tmp_path / "o.jsonl"
    rows = [Outcome("a", "Q a", "small", 0.0, response="wrong"),
            Outcome("a", "Q a", "big", 1.0, response="right a", cost_usd=0.02),
            Outcome("a", "Q a", "mid", 1.0, response="right a, cheaper", cost_usd=0.01),
            Outcome("a2", "Q a", "big", 1.0, response="same prompt, other id", cost_usd=0.03)]
    rows += [Outcome(f"p{k}", f"Q {k}", "big", 1.0, response=f"A {k}") for k in range(9)]
    write_jsonl(src, rows)
    out = tmp_path / "train.jsonl"
    r = export("--outcomes", str(src), "--out", str(out), "--heldout", "0.2", "--json")
    assert r.returncode == 0, r.stderr
    summary = orjson.loads(r.stdout)
    train, held = read_examples(out), read_examples(heldout_path(out))
    assert (summary["train"], summary["heldout"]) == (len(train), len(held)) == (8, 2)
    assert all(validate_line(x) == [] for x in train + held)
    pairs = {(x["messages"][0]["content"], x["messages"][1]["content"]) for x in train + held}
    assert len(pairs) == 10  # one line per distinct prompt, none in both splits
    assert ("Q a", "right a, cheaper") in pairs  # best score, then the cheaper
    assert {p for p, _ in pairs} == {"Q a", *(f"Q {k}" for k in range(9))}


def test_the_validator_rejects_what_openai_would():
    ok = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert validate_line(ok) == []
    assert validate_line({"messages": []}) == ["'messages' must be a non-empty list"]
    assert "messages[1]: content must be a non-empty string" in validate_line(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]})
    assert "messages[0]: role must be one of system, user, assistant" in validate_line(
        {"messages": [{"role": "robot", "content": "q"}]})
    assert "the last message must be the assistant's" in validate_line(
        {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]})
    assert "unknown key 'extra'" in validate_line({**ok, "extra": 1})


def test_the_embedded_outcomes_export_for_a_teacher(tmp_path: Path):
    out = tmp_path / "t.jsonl"
    r = export("--outcomes", "embedded", "--teacher", "qwen2.5-coder-1.5b", "--out", str(out),
               "--json")
    assert r.returncode == 0, r.stderr
    lines = read_examples(out) + read_examples(heldout_path(out))
    assert len(lines) > 100 and all(validate_line(x) == [] for x in lines)


@pytest.mark.parametrize(("rows", "says"), [
    ([Outcome("a", "Q", "m", 0.5, response="meh")], "no item scored >= 1"),
    ([Outcome("a", "Q", "m", 1.0)], "carry no response text"),
])
def test_nothing_above_the_threshold_writes_nothing_and_exits_1(tmp_path, rows, says):
    src, out = tmp_path / "o.jsonl", tmp_path / "train.jsonl"
    write_jsonl(src, rows)
    r = export("--outcomes", str(src), "--out", str(out))
    assert r.returncode == 1
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and not heldout_path(out).exists()
