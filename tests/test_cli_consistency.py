"""Every command behaves alike: `--version`, help on every option, `--json` where results are
printed, progress kept off stdout, `rank` showing Bradley–Terry and the pairwise table, and
every bad flag value a one-line error with exit code 2."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rankgate import cli_support
from rankgate.cli import app
from rankgate.cli_support import package_version

runner = CliRunner()


def invoke(*args: str, home: Path | None = None) -> Any:
    env = {"RANKGATE_HOME": str(home)} if home is not None else None
    return runner.invoke(app, list(args), env=env)


def _commands() -> list[tuple[str, Any]]:
    """(command path, click command) for every leaf command of the app."""
    out: list[tuple[str, Any]] = []

    def walk(cmd: Any, path: str) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, f"{path} {name}")
        else:
            out.append((path, cmd))

    walk(typer.main.get_command(app), "rankgate")
    return out


COMMANDS = dict(_commands())


# --- help and flags ---------------------------------------------------------------------------

def test_every_option_and_argument_of_every_command_has_help():
    missing = [f"{path} {'/'.join(p.opts)}" for path, cmd in COMMANDS.items()
               for p in cmd.params if not getattr(p, "hidden", False)
               and not (getattr(p, "help", None) or "").strip()]
    assert len(COMMANDS) >= 15  # the walk really reached the sub-groups
    assert missing == []


@pytest.mark.parametrize("path", [
    "rankgate eval", "rankgate import", "rankgate rank", "rankgate route train",
    "rankgate route replay", "rankgate route promote", "rankgate judge votes",
    "rankgate judge calibrate", "rankgate panel list", "rankgate keys list",
    "rankgate keys create", "rankgate logs export"])
def test_every_command_that_prints_results_has_json(path):
    assert any("--json" in p.opts for p in COMMANDS[path].params)


def test_version_prints_the_package_version():
    r = invoke("--version")
    assert r.exit_code == 0
    assert r.stdout.strip() == f"rankgate {package_version()}"


def test_serve_takes_the_retry_after_cap():
    [opt] = [p for p in COMMANDS["rankgate serve"].params if "--retry-after-max-s" in p.opts]
    assert "Retry-After" in opt.help


# --- bad flag values --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def outcomes_file(tmp_path_factory) -> Path:
    """A small two-model outcome file (a strong and a weak model, no costs)."""
    from rankgate.outcomes import Outcome, write_jsonl

    rng = random.Random(0)
    rows = []
    for i in range(40):
        prompt = f"question {i}: {'math' if i % 2 else 'facts'} about item {i}"
        rows.append(Outcome(prompt_id=f"p{i}", prompt=prompt, model="big",
                            score=float(rng.random() < 0.8), category="a"))
        rows.append(Outcome(prompt_id=f"p{i}", prompt=prompt, model="small",
                            score=float(rng.random() < 0.4), category="a"))
    path = tmp_path_factory.mktemp("cli") / "outcomes.jsonl"
    write_jsonl(path, rows)
    return path


BAD = [
    (["serve", "--log-format", "xml"], "--log-format"),
    (["serve", "--log-level", "loud"], "--log-level"),
    (["serve", "--retry-after-max-s", "-1"], "--retry-after-max-s"),
    (["eval", "--limit", "-1"], "--limit"),
    (["eval", "--workload", "no-such-workload"], "--workload no-such-workload"),
    (["eval", "--seed", "-3"], "--seed"),
    (["rank", "--outcomes", "{outcomes}", "--margin", "2"], "--margin"),
    (["rank", "--outcomes", "{outcomes}", "--since", "yesterday"], "--since"),
    (["rank", "--outcomes", "{outcomes}", "--html", "/no/such/dir/r.html"], "/no/such/dir"),
    (["route", "train", "--outcomes", "{outcomes}", "--router", "nope"], "unknown router"),
    (["route", "replay", "--outcomes", "{outcomes}", "--routers", "knn,nope"], "nope"),
    (["route", "replay", "--outcomes", "{outcomes}", "--cost", "big"], "--cost"),
    (["route", "replay", "--outcomes", "{outcomes}", "--cost", "big=-1"], "--cost"),
    (["route", "replay", "--outcomes", "{outcomes}", "--test-frac", "1.5"], "--test-frac"),
    (["import", "{outcomes}", "--format", "excel"], "unknown format"),
    (["judge", "--outcomes", "{outcomes}", "--judge", "smollm2-135m", "--limit", "0"],
     "--limit"),
    (["judge", "calibrate", "--judge", "smollm2-135m", "--workload", "nope"], "--workload"),
    (["keys", "create", "--name", "a", "--budget-period", "year"], "budget_period"),
    (["logs", "export", "--store", "x.db", "--as", "csv", "--out", "y"], "--as"),
    (["no-such-command"], "no-such-command"),
    (["eval", "--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize("args, named", BAD, ids=[" ".join(a[:3]) for a, _ in BAD])
def test_a_bad_flag_value_is_one_line_on_stderr_and_exit_2(args, named, outcomes_file,
                                                           tmp_path):
    argv = [a.replace("{outcomes}", str(outcomes_file)) for a in args]
    r = invoke(*argv, home=tmp_path)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert named in lines[0]
    assert "Traceback" not in r.stderr + r.stdout


# --- --json, progress --------------------------------------------------------------------------

def test_route_train_json_is_the_only_thing_on_stdout(outcomes_file, tmp_path):
    out = tmp_path / "r.npz"
    r = invoke("route", "train", "--outcomes", str(outcomes_file), "--router", "knn",
               "--embedder", "hash", "--out", str(out), "--json", home=tmp_path)
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["router"] == "knn" and info["models"] == ["big", "small"]
    assert info["n_items"] == 40 and info["costs"] == [None, None] and out.is_file()
    assert "80" in info["provenance"]  # the sentence saying what it was trained on


def test_route_replay_json_is_the_only_thing_on_stdout(outcomes_file, tmp_path):
    r = invoke("route", "replay", "--outcomes", str(outcomes_file), "--routers", "knn",
               "--embedder", "hash", "--n-boot", "0", "--no-calibrate", "--json",
               home=tmp_path)
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert set(report["routers"]) >= {"knn", "random", "zero", "oracle"}


def test_import_json_reports_counts_notes_and_skips(tmp_path):
    src = tmp_path / "wide.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "gpt-4", "mixtral"])
        w.writerows([["a", 1, 0], ["b", 1, 1], ["", 0, 0], ["d", "x", 1]])
    r = invoke("import", str(src), "--out", str(tmp_path / "o.jsonl"), "--json")
    assert r.exit_code == 0, r.stderr
    j = json.loads(r.stdout)
    assert (j["outcomes"], j["prompts"], j["rows_skipped"], j["scores_skipped"]) == (5, 3, 1, 1)
    assert j["models"] == ["gpt-4", "mixtral"] and j["costs_known"] == []
    assert {s["reason"] for s in j["skipped"]} == {"missing prompt",
                                                  "non-numeric score 'x' for model gpt-4"}


def test_progress_off_a_terminal_is_silent_for_a_short_run(capsys):
    with cli_support.progress("work", 3) as update:
        for k in range(3):
            update(k + 1)
    assert capsys.readouterr().err == ""


def test_progress_off_a_terminal_prints_periodic_lines_on_stderr(capsys):
    with cli_support.progress("work", 3, every_s=0) as update:
        for k in range(3):
            update(k + 1, description="working hard")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 4 and lines[-1].split(" ", 1)[1].startswith("working hard: 3/3")


def test_progress_is_quiet_for_json_runs(capsys):
    with cli_support.progress("work", 3, every_s=0, quiet=True) as update:
        update(3)
    assert capsys.readouterr().err == ""


# --- rank in the terminal ------------------------------------------------------------------------

def test_rank_shows_the_bradley_terry_table_and_the_pairwise_comparisons(outcomes_file,
                                                                          tmp_path):
    votes = tmp_path / "votes.jsonl"
    lines = [{"a": "big", "b": "small", "outcome": 1.0}] * 12 + [
        {"a": "big", "b": "small", "outcome": 0.0}] * 3
    votes.write_text("".join(json.dumps(v) + "\n" for v in lines))
    r = invoke("rank", "--outcomes", str(outcomes_file), "--votes", str(votes), home=tmp_path)
    assert r.exit_code == 0, r.stderr
    flat = " ".join(r.stdout.split())
    assert "Bradley–Terry ratings from 15 pairwise vote(s) (import 15)" in flat
    assert "BT [95% CI]" in flat
    assert "pairwise comparisons on shared items" in flat
    assert "big − small" in flat and "difference in accuracy a − b; test:" in flat


def test_rank_without_votes_shows_the_pairwise_table_but_no_bt_table(outcomes_file, tmp_path):
    r = invoke("rank", "--outcomes", str(outcomes_file), home=tmp_path)
    assert r.exit_code == 0, r.stderr
    flat = " ".join(r.stdout.split())
    assert "pairwise comparisons on shared items" in flat
    assert "Bradley–Terry" not in flat


def test_judge_votes_json_reports_the_votes_and_keeps_stdout_clean(tmp_path):
    from rankgate.eval.pairwise import judge_pairs
    from rankgate.outcomes import Outcome, write_jsonl

    rows = [Outcome(prompt_id=f"p{i}", prompt=f"q{i}", model=m, score=1.0, response=f"{m} {i}")
            for i in range(3) for m in ("big", "small")]
    outcomes = tmp_path / "answers.jsonl"
    write_jsonl(outcomes, rows)
    panel = tmp_path / "panel.yaml"
    panel.write_text("models:\n  - {id: judge, backend: faulty, upstream_model: ok}\n")
    votes = tmp_path / "votes.jsonl"
    r = invoke("judge", "--outcomes", str(outcomes), "--judge", "judge", "--panel", str(panel),
               "--out", str(votes), "--json", home=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {"judge": "judge", "new_votes": 3, "out": str(votes),
                                    "models": ["big", "small"]}
    assert len(votes.read_text().splitlines()) == 3

    seen: list[tuple[int, int]] = []  # the progress callback the CLI's bar is fed from
    judge_pairs(rows, ["big", "small"], None, votes, on_progress=lambda d, t: seen.append(
        (d, t)))
    assert seen == [(0, 0)]  # everything already judged: resumable, nothing asked
