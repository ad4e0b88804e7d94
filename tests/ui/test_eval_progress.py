"""A running ``rankgate eval``'s real progress on the Evaluations page: the CLI records it
(``eval/progress_record.py``) and the page reads the record — done of planned, running, then
finished — in a real browser against a real gateway sharing RANKGATE_HOME; a run whose process
died shows as stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from rankgate.eval.progress_record import ProgressRecorder, read_runs, record_path
from rankgate.eval.runner import Progress
from tests.ui.test_dashboard_browser import login, wait

ITEMS = 24
SLOW_MS = 1500  # per answer: the run lasts a few seconds, and is paused (SIGSTOP) meanwhile


def row_state(browser: Any, out: Path) -> dict[str, str] | None:
    return browser.execute_script(
        "const tr = [...document.querySelectorAll('[data-testid=eval-runs] tr[data-eval-out]')]"
        ".find(t => t.dataset.evalOut === arguments[0]);"
        "return tr ? {state: tr.dataset.state, done: tr.querySelector("
        "'[data-testid=eval-done]').textContent.trim()} : null;", str(out))


def test_a_running_eval_shows_its_recorded_progress_then_finishes(ui_gateway, browser,
                                                                  tmp_path):
    panel = tmp_path / "panel.yaml"
    panel.write_text(yaml.safe_dump({"models": [
        {"id": "slowpoke", "backend": "faulty", "upstream_model": f"slow-{SLOW_MS}",
         "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.1}]}))
    out = tmp_path / "elsewhere" / "run.jsonl"  # not a folder the page lists files from
    out.parent.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rankgate", "eval", "--workload", "starter", "--limit",
         str(ITEMS), "--panel", str(panel), "--out", str(out), "--no-cache"],
        env={**os.environ, "RANKGATE_HOME": str(ui_gateway.home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    record = record_path(ui_gateway.home, out)
    try:
        deadline = time.time() + 120
        while not (record.exists() and orjson.loads(record.read_bytes())["done"] >= 1):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.time() < deadline, "the eval recorded no progress"
            time.sleep(0.1)
        proc.send_signal(signal.SIGSTOP)  # paused mid-run: the page must say where it is
        rec = orjson.loads(record.read_bytes())
        assert 1 <= rec["done"] < ITEMS and rec["total"] == ITEMS
        assert rec["done"] <= len(out.read_bytes().splitlines())  # the record never runs ahead
        login(browser, ui_gateway)
        browser.get(ui_gateway.root + "/ui/evals")
        shown = wait(browser).until(lambda d: row_state(d, out))
        assert shown == {"state": "running", "done": f"{rec['done']} / {ITEMS}"}
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
        # the page refreshes the table by itself: no reload
        wait(browser).until(lambda d: (row_state(d, out) or {}).get("state") == "finished")
        assert row_state(browser, out) == {"state": "finished", "done": f"{ITEMS} / {ITEMS}"}
        assert len(out.read_bytes().splitlines()) == ITEMS
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()


def test_a_run_whose_process_is_gone_is_reported_stopped(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    rec = ProgressRecorder(tmp_path, tmp_path / "o.jsonl", "starter", ["m"], planned=10)
    pr = Progress(total=10)
    pr.done = 4
    rec.update(pr, force=True)
    data = orjson.loads(rec.path.read_bytes())
    rec.path.write_bytes(orjson.dumps({**data, "pid": child.pid}))  # the run's process died
    (run,) = read_runs(tmp_path)
    assert run.state == "stopped" and run.done == 4 and run.eta_s is None
    rec.close("finished", pr)
    (run,) = read_runs(tmp_path)
    assert run.state == "finished" and run.share == 0.4
