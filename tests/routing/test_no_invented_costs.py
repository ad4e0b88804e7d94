"""No invented costs: a RouteLLM-style wide CSV (prompt + one 0/1 column per model) imported
without prices replays on the share of strong-model calls — APGR and CPT defined, the strong
model the more accurate one whatever the column order — and $ figures come only from
`--cost MODEL=$` (import or replay) or a cost file."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rankgate.cli import app
from rankgate.embed.hashed import HashEmbedder
from rankgate.outcomes import read_jsonl
from rankgate.outcomes.importers import ImportFileError, import_file
from rankgate.routing import replay as rp
from rankgate.routing.train_replay import run_replay, split

runner = CliRunner()
N = 120


def _wide_csv(path: Path, columns: list[str]) -> Path:
    """RouteLLM's shape: the strong model ("gpt-4", right on ~80%) and a weak one ("mixtral",
    ~45%, and right only on 'easy' prompts), in the given column order."""
    rng = random.Random(0)
    rows = []
    for i in range(N):
        easy = i % 2 == 0
        prompt = f"{'easy' if easy else 'hard'} question number {i}: what is {i} + {i}?"
        strong = int(rng.random() < 0.8)
        weak = int(easy and rng.random() < 0.9)
        rows.append({"prompt": prompt, "gpt-4": strong, "mixtral": weak})
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["prompt", *columns])
        w.writeheader()
        w.writerows(rows)
    return path


def _replay(outcomes: list, costs: dict[str, float] | None = None) -> dict:
    train, test = split(outcomes, 0.4, 0)
    return run_replay(train, test, ["knn"], HashEmbedder(), costs, n_boot=0, seed=0,
                      calibrated=False)


@pytest.fixture
def strong_first(tmp_path) -> list:
    return import_file(_wide_csv(tmp_path / "gsm8k.csv", ["gpt-4", "mixtral"])).outcomes


def test_import_without_prices_leaves_every_cost_null(strong_first):
    assert strong_first and all(o.cost_usd is None for o in strong_first)


def test_replay_without_costs_reports_apgr_and_cpt_with_the_accurate_model_as_strong(
        strong_first):
    report = _replay(strong_first)
    assert report["costs_known"] is False and report["cost_axis"] == "strong_share"
    assert report["reference"]["strong"] == "gpt-4"  # the first column is not "cheapest"
    assert report["reference"]["weak"] == "mixtral"
    assert all(v["cost"] is None for v in report["models"].values())  # no $ made up
    assert report["axis"] == {"gpt-4": 1.0, "mixtral": 0.0}  # share of strong calls
    for name in ("knn", "random", "zero", "oracle"):
        r = report["routers"][name]
        assert r["apgr"] is not None and r["cpt50"] is not None, name
    assert report["routers"]["random"]["apgr"] == pytest.approx(0.5, abs=0.01)
    assert report["routers"]["random"]["cpt50"] == pytest.approx(0.5, abs=0.01)
    # the router learns that easy prompts need no strong call
    assert report["routers"]["knn"]["apgr"] > report["routers"]["random"]["apgr"]
    assert "gpt-4" in report["note"] and "--cost" in report["note"]


def test_column_order_changes_nothing(strong_first, tmp_path):
    weak_first = import_file(_wide_csv(tmp_path / "swapped.csv", ["mixtral", "gpt-4"])
                             ).outcomes
    a, b = _replay(strong_first), _replay(weak_first)
    assert a["reference"] == b["reference"]
    for name in ("knn", "random", "zero", "oracle"):
        for metric in ("apgr", "cpt50", "cpt80", "aiq"):
            assert a["routers"][name][metric] == pytest.approx(b["routers"][name][metric]), \
                (name, metric)


def test_given_costs_on_replay_give_dollar_figures(strong_first):
    report = _replay(strong_first, {"gpt-4": 0.03, "mixtral": 0.0006})
    assert report["costs_known"] is True and report["cost_axis"] == "usd"
    assert report["models"]["gpt-4"]["cost"] == pytest.approx(0.03)
    assert report["models"]["mixtral"]["cost"] == pytest.approx(0.0006)
    assert report["routers"]["knn"]["apgr"] is not None and "note" not in report


def test_costs_for_only_some_models_are_not_completed_by_a_guess(strong_first):
    report = _replay(strong_first, {"mixtral": 0.0006})
    assert report["costs_known"] is False and report["cost_axis"] == "strong_share"
    assert "no $ cost for gpt-4" in report["note"]


def test_a_cost_for_a_model_not_in_the_data_is_an_error(strong_first):
    with pytest.raises(ValueError, match="gpt-5"):
        _replay(strong_first, {"gpt-5": 0.1})


def test_import_cost_flag_sets_a_flat_cost_per_request(tmp_path):
    src = _wide_csv(tmp_path / "gsm8k.csv", ["gpt-4", "mixtral"])
    r = import_file(src, costs={"gpt-4": 0.03})
    by_model = {o.model: o.cost_usd for o in r.outcomes}
    assert by_model == {"gpt-4": 0.03, "mixtral": None}
    assert any("--cost" in n and "gpt-4 $0.03" in n for n in r.notes)
    with pytest.raises(ImportFileError, match="gpt-5"):
        import_file(src, costs={"gpt-5": 0.1})


def test_cli_import_then_replay_with_costs_end_to_end(tmp_path):
    src = _wide_csv(tmp_path / "gsm8k.csv", ["gpt-4", "mixtral"])
    out = tmp_path / "o.jsonl"
    r = runner.invoke(app, ["import", str(src), "--out", str(out), "--cost", "gpt-4=0.03",
                            "--cost", "mixtral=0.0006"])
    assert r.exit_code == 0, r.stderr
    assert {o.model: o.cost_usd for o in read_jsonl(out)} == {"gpt-4": 0.03,
                                                              "mixtral": 0.0006}
    env = {"RANKGATE_HOME": str(tmp_path / "home")}
    r = runner.invoke(app, ["route", "replay", "--outcomes", str(out), "--routers", "knn",
                            "--embedder", "hash", "--n-boot", "0", "--no-calibrate",
                            "--json"], env=env)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["cost_axis"] == "usd"


def test_cli_replay_without_costs_prints_the_axis_and_apgr(tmp_path):
    src = _wide_csv(tmp_path / "gsm8k.csv", ["gpt-4", "mixtral"])
    out = tmp_path / "o.jsonl"
    assert runner.invoke(app, ["import", str(src), "--out", str(out)]).exit_code == 0
    cost_file = tmp_path / "costs.json"
    cost_file.write_text(json.dumps({"gpt-4": 0.03}))
    env = {"RANKGATE_HOME": str(tmp_path / "home")}
    r = runner.invoke(app, ["route", "replay", "--outcomes", str(out), "--routers", "knn",
                            "--embedder", "hash", "--n-boot", "0", "--no-calibrate",
                            "--costs", str(cost_file)], env=env)
    assert r.exit_code == 0, r.stderr
    flat = " ".join(r.stdout.split())
    assert "share of calls to the strong model (gpt-4)" in flat
    assert "no $ cost for mixtral" in flat
    assert "model ranks" not in flat


def test_replay_report_without_costs_never_uses_column_order():
    Y = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # column 0 is strong
    for cols in ([0, 1], [1, 0]):
        report = rp.replay_report({}, Y[:, cols], None, [["s", "w"][c] for c in cols])
        assert report["reference"]["strong"] == "s" and report["axis"]["s"] == 1.0
        assert report["routers"]["random"]["apgr"] == pytest.approx(0.5, abs=0.01)
