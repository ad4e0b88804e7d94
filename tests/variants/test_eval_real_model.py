"""A variant evaluates like a model on the real ``smollm2-135m``: ``rankgate eval --models
smollm2-135m,smollm2-135m+fewshot2`` just works, and ``rank`` then reports the recipe's
paired effect against its base."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from rankgate.outcomes import read_jsonl
from tests.conftest import SMOLLM


def test_eval_then_rank_a_built_in_variant_of_the_real_model(smollm_path: Path,
                                                             tmp_path: Path):
    out = tmp_path / "o.jsonl"
    env = {**os.environ, "RANKGATE_HOME": str(tmp_path / "home"),
           "RANKGATE_THREADS_PER_MODEL": "1"}
    run = subprocess.run([sys.executable, "-m", "rankgate", "eval", "--models",
                          f"{SMOLLM},{SMOLLM}+fewshot2", "--limit", "2", "--category",
                          "factual", "--max-tokens", "16", "--out", str(out), "--json"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    rows = read_jsonl(out)
    assert sorted({o.model for o in rows}) == [SMOLLM, f"{SMOLLM}+fewshot2"]
    assert all(o.error is None and o.score is not None for o in rows)
    by = {(o.model, o.prompt_id): o for o in rows}
    for (model, pid), o in by.items():
        if model != SMOLLM:  # four demonstration turns make the prompt longer
            assert o.input_tokens > by[(SMOLLM, pid)].input_tokens
    ranked = subprocess.run([sys.executable, "-m", "rankgate", "rank", "--outcomes", str(out),
                             "--json"], capture_output=True, timeout=120, env=env)
    [effect] = orjson.loads(ranked.stdout)["variants"]
    assert (effect["base"], effect["recipe"], effect["n"]) == (SMOLLM, "fewshot2", 2)
    assert effect["cost_ratio"] is not None and effect["latency_ratio"] is not None
