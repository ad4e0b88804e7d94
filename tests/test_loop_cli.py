"""The loop in production through the CLI (``python -m rankgate`` subprocesses): judge logged
traffic in the store, rank and train from the store, export logs — and the bad inputs of each
(one line, exit code 1 or 2, nothing written).

Two stores: a *judged* one, whose answers the real smollm2/qwen 0.5B models wrote and the real
qwen 0.5B judged through ``rankgate judge --store``; and a *production-like* one holding the
shipped evaluation of the embedded panel (real answers, gold scores) plus user feedback and
imported votes written as data (the feedback shifts on purpose, for drift)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import orjson
import pytest

from rankgate.eval import datasets
from rankgate.outcomes import Outcome, read_jsonl
from rankgate.store.exchange_store import add_exchanges
from rankgate.store.outcome_store import add_outcomes
from rankgate.store.tables import make_engine
from rankgate.store.vote_store import StoredVote, add_votes
from tests.loop_support import QWEN05, SMOLLM, fresh_postgres_database, real_exchanges, write_panel

DAY = 86400.0


def rankgate(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "RANKGATE_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "rankgate", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def one_line_error(r: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert r.returncode == code, r.stdout + r.stderr
    assert r.stderr.startswith("error:") and r.stderr.count("error:") == 1, r.stderr
    flat = " ".join(r.stderr.split())
    for n in needles:
        assert n in flat, flat


# --- the judged store: real answers, real judge ---------------------------------------------

@pytest.fixture(scope="module")
def panel_file(tmp_path_factory, qwen05_path: Path, smollm_path: Path) -> Path:
    return write_panel(tmp_path_factory.mktemp("panel"), qwen05_path)


@pytest.fixture(scope="module")
def judged(tmp_path_factory, panel_file: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """(home, store file, the judge run's result): three logged requests, two judged."""
    home = tmp_path_factory.mktemp("judged")
    db = home / "rankgate.db"
    engine = make_engine(f"sqlite:///{db}")
    add_exchanges(engine, real_exchanges(str(panel_file)))
    engine.dispose()
    r = rankgate(home, "judge", "--store", str(db), "--judge", QWEN05, "--panel",
                 str(panel_file), "--max-tokens", "64", "--limit", "2")
    return home, db, r


def test_judge_store_judges_logged_requests_and_a_rerun_redoes_nothing(judged, panel_file):
    home, db, first = judged
    assert first.returncode == 0, first.stdout + first.stderr
    out = " ".join(first.stdout.split())
    assert "3 logged request(s) with ≥ 2 answers" in out and "0 already judged" in out
    # --limit counts requests with work left: the third request's pair is judged now
    base = ["judge", "--store", f"sqlite:///{db}", "--judge", QWEN05, "--panel",
            str(panel_file), "--max-tokens", "64", "--mode", "pairwise"]
    again = rankgate(home, *base, "--limit", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 already judged" in " ".join(again.stdout.split())
    done = rankgate(home, *base)
    assert done.returncode == 0, done.stdout + done.stderr
    flat = " ".join(done.stdout.split())
    assert "0 new vote(s)" in flat and "3 already judged" in flat and "0 unparsable" in flat


def test_rank_store_says_it_ranked_from_judge_outcomes_and_votes(judged):
    home, db, _ = judged
    r = rankgate(home, "rank", "--store", str(db), "--json")
    assert r.returncode == 0, r.stderr
    board = orjson.loads(r.stdout)
    prov = board["provenance"]
    assert set(prov["outcomes"]) == {"judge"} and 1 <= prov["outcomes"]["judge"] <= 4
    assert set(prov["votes"]) <= {"judge"}
    assert prov["summary"].startswith(f"from {prov['outcomes']['judge']} judge outcome")
    assert {m["model"] for m in board["models"]} == {SMOLLM, QWEN05}
    assert board["drift"]["drifts"] == []  # four outcomes: too few to test, and said so
    text = rankgate(home, "rank", "--store", str(db))
    assert text.returncode == 0 and "judge outcome" in text.stdout
    assert "nothing to test" in text.stdout


def test_route_train_store_names_the_models_missing_from_the_panel(judged, tmp_path):
    home, db, _ = judged
    only_smollm = tmp_path / "panel.yaml"
    only_smollm.write_text(f"models:\n  - {{id: {SMOLLM}, backend: llamacpp, bundled: "
                           f"{SMOLLM}}}\n")
    out = tmp_path / "router.npz"
    r = rankgate(home, "route", "train", "--store", str(db), "--panel", str(only_smollm),
                 "--router", "knn", "--embedder", "hash", "--out", str(out))
    one_line_error(r, 1, "not in the panel", QWEN05)
    assert not out.exists()


def test_judge_store_bad_inputs(judged, panel_file, tmp_path):
    home, db, _ = judged
    base = ["judge", "--judge", QWEN05, "--panel", str(panel_file)]
    one_line_error(rankgate(home, *base), 2, "exactly one of --outcomes FILE or --store URL")
    one_line_error(rankgate(home, *base, "--store", str(db), "--mode", "vibes"), 2,
                   "--mode must be one of pairwise, rubric, both")
    one_line_error(rankgate(home, *base, "--store", str(db), "--since", "last tuesday"), 2,
                   "--since", "not a time")
    one_line_error(rankgate(home, *base, "--store", str(db), "--judge", "gpt-9"), 2,
                   "unknown judge 'gpt-9'")
    missing = tmp_path / "nope.db"
    one_line_error(rankgate(home, *base, "--store", str(missing)), 1, "no store at")
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    make_engine(f"sqlite:///{empty}").dispose()
    one_line_error(rankgate(home, *base, "--store", str(empty)), 1,
                   "no logged request has two or more answers")


# --- logs export ----------------------------------------------------------------------------

def test_logs_export_workload_is_loadable_and_runs_in_eval(judged, tmp_path):
    home, db, _ = judged
    out = tmp_path / "traffic.jsonl"
    r = rankgate(home, "logs", "export", "--store", str(db), "--as", "workload", "--out",
                 str(out))
    assert r.returncode == 0, r.stderr
    assert "wrote 3 workload item(s)" in r.stdout
    items = datasets.load(str(out))
    assert [i.id for i in items] == ["req-0", "req-1", "req-2"]
    assert all(i.scorer == "judge" and i.target is None for i in items)
    assert items[0].metadata["source_request"] == "req-0"
    assert items[0].metadata["source_model"] == SMOLLM
    raw = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert all("target" not in d for d in raw)

    by_key = tmp_path / "key-b.jsonl"
    assert rankgate(home, "logs", "export", "--store", str(db), "--as", "workload", "--key",
                    "key-b", "--out", str(by_key)).returncode == 0
    assert [i.id for i in datasets.load(str(by_key))] == ["req-0"]

    outcomes = tmp_path / "eval.jsonl"
    ev = rankgate(home, "eval", "--workload", str(out), "--models", SMOLLM, "--judge", SMOLLM,
                  "--limit", "1", "--max-tokens", "16", "--out", str(outcomes), "--no-cache")
    assert ev.returncode == 0, ev.stdout + ev.stderr
    [o] = read_jsonl(outcomes)
    assert o.prompt_id == "req-0" and o.scorer == "judge" and o.model == SMOLLM


def test_logs_export_outcomes_writes_the_stores_outcomes(judged, tmp_path):
    home, db, _ = judged
    out = tmp_path / "outcomes.jsonl"
    r = rankgate(home, "logs", "export", "--store", str(db), "--as", "outcomes", "--out",
                 str(out))
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert rows and {o.source for o in rows} == {"judge"}
    assert f"wrote {len(rows)} outcome(s) (judge {len(rows)})" in r.stdout


def test_logs_export_bad_inputs_write_nothing(judged, tmp_path):
    home, db, _ = judged
    out = tmp_path / "x.jsonl"

    def export(*args: str) -> subprocess.CompletedProcess:
        return rankgate(home, "logs", "export", "--store", str(db), "--out", str(out), *args)

    one_line_error(export("--as", "csv"), 2, "--as must be one of workload, outcomes")
    one_line_error(export("--as", "workload", "--category", "math"), 2,
                   "logged requests carry no category")
    one_line_error(export("--as", "outcomes", "--since", "1d", "--until", "2d"), 2,
                   "empty time range")
    one_line_error(export("--as", "outcomes", "--since", "yesterday"), 2, "not a time")
    one_line_error(export("--as", "workload", "--since", "2001-01-01", "--until",
                          "2001-02-01"), 1, "no logged request bodies", "nothing written")
    one_line_error(export("--as", "outcomes", "--model", "nobody"), 1, "no outcomes",
                   "model nobody")
    empty = tmp_path / "empty.db"
    make_engine(f"sqlite:///{empty}").dispose()
    for kind in ("workload", "outcomes"):
        one_line_error(rankgate(home, "logs", "export", "--store", str(empty), "--as", kind,
                                "--out", str(out)), 1, "nothing written")
    missing = tmp_path / "missing.db"
    one_line_error(rankgate(home, "logs", "export", "--store", str(missing), "--as",
                            "outcomes", "--out", str(out)), 1, "no store at")
    assert not out.exists() and not missing.exists()
    assert not list(tmp_path.glob("*.tmp"))


# --- the production-like store: shipped evaluation + feedback + imported votes --------------

def _embedded() -> list[Outcome]:
    return read_jsonl(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))


def fill_production_like(engine) -> None:
    """1,599 eval outcomes; 60 thumbs on smollm2 answers, 80% up two days ago and 20% up in
    the last day (a drift); 30 imported votes."""
    add_outcomes(engine, _embedded(), ts=time.time() - 3 * DAY)
    now = time.time()
    for day, ups in ((2, 24), (1, 6)):
        for i in range(30):
            fb = Outcome(f"fb-{day}-{i}", "q", SMOLLM, 1.0 if i < ups else 0.0,
                         latency_s=0.5, source="feedback")
            add_outcomes(engine, [fb], ts=now - day * DAY + (i + 0.5) * DAY / 30)
    add_votes(engine, [StoredVote(f"v{i}", QWEN05, SMOLLM, 1.0, "import", now - 3 * DAY)
                       for i in range(30)])


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("production")
    db = home / "rankgate.db"
    engine = make_engine(f"sqlite:///{db}")
    fill_production_like(engine)
    engine.dispose()
    return home, db


SUMMARY = "from 1,599 eval outcomes and 60 feedback outcomes, 30 votes (import 30)"


def test_rank_store_shows_what_it_used_the_bt_ratings_and_the_drift(production):
    home, db = production
    r = rankgate(home, "rank", "--store", str(db))
    assert r.returncode == 0, r.stderr
    flat = " ".join(r.stdout.split())
    assert SUMMARY in flat and "BT [95% CI]" in flat
    assert f"drift {SMOLLM}: quality (feedback) 0.8 → 0.2" in flat
    j = orjson.loads(rankgate(home, "rank", "--store", str(db), "--json").stdout)
    assert j["provenance"]["summary"] == SUMMARY
    [d] = j["drift"]["drifts"]
    assert (d["model"], d["metric"], d["test"]) == (SMOLLM, "quality (feedback)",
                                                    "two-proportion z")
    assert d["high"] < 0 and d["diff"] == pytest.approx(-0.6)
    rated = {m["model"]: m["bt_rating"] for m in j["models"]}
    assert rated[QWEN05] > rated[SMOLLM]


def test_the_html_report_says_what_it_used_and_the_drift(production, tmp_path):
    home, db = production
    page = tmp_path / "r.html"
    r = rankgate(home, "rank", "--store", str(db), "--html", str(page))
    assert r.returncode == 0, r.stderr
    text = " ".join(page.read_text().split())
    assert f"<b>Built from:</b> {SUMMARY}" in text
    assert "1 drift(s)" in text and f"{SMOLLM}: quality (feedback) 0.8 → 0.2" in text


def test_rank_store_combines_with_an_outcomes_file_and_filters_by_source(production,
                                                                         tmp_path):
    home, db = production
    extra = tmp_path / "extra.jsonl"
    extra.write_bytes(b"".join(orjson.dumps(o.to_json()) + b"\n" for o in _embedded()[:10]))
    r = rankgate(home, "rank", "--outcomes", str(extra), "--store", str(db), "--sources",
                 "feedback", "--since", "3d", "--json")
    assert r.returncode == 0, r.stderr
    prov = orjson.loads(r.stdout)["provenance"]
    assert prov["outcomes"] == {"feedback": 60, "eval": 10} and prov["votes"] == {}
    recent = rankgate(home, "rank", "--store", str(db), "--sources", "feedback", "--since",
                      "1d", "--json")
    assert orjson.loads(recent.stdout)["provenance"]["outcomes"] == {"feedback": 30}


def test_rank_store_bad_inputs(production, tmp_path):
    home, db = production
    missing = tmp_path / "typo.db"
    one_line_error(rankgate(home, "rank", "--store", str(missing)), 1, "no store at")
    assert not missing.exists()
    one_line_error(rankgate(home, "rank"), 2, "give --outcomes FILE and/or --store URL")
    one_line_error(rankgate(home, "rank", "--store", str(db), "--since", "soon"), 2,
                   "--since", "use a duration before now (7d, 12h, 30m) or an ISO date")
    one_line_error(rankgate(home, "rank", "--store", str(db), "--sources", "judge,gold"), 2,
                   "unknown kind(s) gold")
    one_line_error(rankgate(home, "rank", "--outcomes", "embedded", "--since", "7d"), 2,
                   "--since and --sources select from the store")
    one_line_error(rankgate(home, "rank", "--store", str(db), "--since", "2999-01-01"), 1,
                   "holds no outcomes or votes")
    one_line_error(rankgate(home, "rank", "--store", str(db), "--drift-window", "weekly"), 2,
                   "--drift-window", "not a duration")
    empty = tmp_path / "empty.db"
    make_engine(f"sqlite:///{empty}").dispose()
    one_line_error(rankgate(home, "rank", "--store", str(empty)), 1,
                   "holds no outcomes or votes")


def test_route_train_store_trains_on_the_stores_outcomes(production, tmp_path):
    home, db = production
    out = tmp_path / "router.npz"
    r = rankgate(home, "route", "train", "--store", str(db), "--sources", "eval", "--router",
                 "knn", "--embedder", "hash", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    flat = " ".join(r.stdout.split())
    assert "trained knn on 533 items for 3 models" in flat
    assert "from 1,599 eval outcomes" in flat and out.is_file()


def test_route_train_store_bad_inputs(production, tmp_path):
    home, db = production
    out = tmp_path / "router.npz"
    base = ["route", "train", "--router", "knn", "--embedder", "hash", "--out", str(out)]
    one_line_error(rankgate(home, *base), 2, "give --outcomes FILE and/or --store URL")
    one_line_error(rankgate(home, *base, "--store", str(db), "--since", "2999-01-01"), 1,
                   "holds no outcomes or votes")
    one_line_error(rankgate(home, *base, "--store", str(db), "--sources", "import"), 1,
                   "holds votes but no outcomes")
    assert not out.exists()


def test_rank_and_export_from_postgresql(postgres_url, tmp_path):
    with fresh_postgres_database(postgres_url) as url:
        engine = make_engine(url)
        fill_production_like(engine)
        engine.dispose()
        r = rankgate(tmp_path, "rank", "--store", url, "--json")
        assert r.returncode == 0, r.stderr
        board = orjson.loads(r.stdout)
        assert board["provenance"]["summary"] == SUMMARY
        assert [d["model"] for d in board["drift"]["drifts"]] == [SMOLLM]
        out = tmp_path / "fb.jsonl"
        e = rankgate(tmp_path, "logs", "export", "--store", url, "--as", "outcomes",
                     "--since", "1d", "--out", str(out))
        assert e.returncode == 0, e.stderr
        assert [o.source for o in read_jsonl(out)] == ["feedback"] * 30
