"""``pip install rankgate`` without extras: the CLI, ranking, replay and a gateway in front of
an OpenAI-compatible upstream work; what needs an extra fails with a message naming it.

Each test runs rankgate in a subprocess through ``tests/without_extras.py``, which makes
llama-cpp-python, matplotlib, redis, psycopg, openai and httpx unimportable (as in a fresh
base install) and checks at exit that nothing imported them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import SMOLLM, _spawn, free_port

SHIM = Path(__file__).with_name("without_extras.py")
ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RANKGATE_HOME": str(home), "COLUMNS": "200",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SHIM), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("module", ["llama_cpp", "matplotlib.pyplot", "httpx"])
def test_the_blocker_really_blocks(module):
    code = (f"import sys; sys.path.insert(0, {str(SHIM.parent)!r}); import without_extras; "
            f"without_extras.block(); import {module}")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and f"No module named '{module.partition('.')[0]}'" in r.stderr


def test_rank_runs_without_extras(tmp_path):
    r = _run("rank", "--outcomes", "embedded", "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    board = json.loads(r.stdout)
    assert {m["model"] if isinstance(m, dict) else m for m in board["models"]}


def test_route_replay_runs_without_extras(tmp_path):
    r = _run("route", "replay", "--outcomes", "embedded", "--routers", "knn", "--embedder",
             "hash", "--n-boot", "10", "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "knn" in json.loads(r.stdout)["routers"]


def test_plots_without_the_report_extra_name_it(tmp_path):
    r = _run("rank", "--outcomes", "embedded", "--png", str(tmp_path / "png"), home=tmp_path)
    assert r.returncode == 1
    assert "pip install 'rankgate[report]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_redis_url_without_the_redis_extra_names_it(tmp_path):
    r = _run("serve", "--redis", "redis://127.0.0.1:1/0", "--port", str(free_port()),
             home=tmp_path, timeout=120)
    assert r.returncode == 1
    assert "pip install 'rankgate[redis]'" in r.stderr and "Traceback" not in r.stderr


def test_panel_list_says_local_models_need_the_local_extra(tmp_path):
    r = _run("panel", "list", "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert all(row["ready"] is False for row in rows)
    assert all("pip install 'rankgate[local]'" in row["note"] for row in rows)


@pytest.fixture(scope="module")
def base_gateway(fault_upstream, tmp_path_factory):
    """``rankgate serve --config`` on a base install: a hosted-style model (the fault
    upstream) and one embedded llama.cpp model; the file's port is overridden by the flag."""
    home = tmp_path_factory.mktemp("base-install")
    config = home / "rankgate.yaml"
    config.write_text(yaml.safe_dump({
        "port": 1,  # the --port flag below wins
        "log": {"format": "text"},
        "panel": [{"id": "hosted", "backend": "openai", "base_url": "${UPSTREAM}"},
                  {"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM}],
    }))
    port = free_port()
    server = _spawn([sys.executable, str(SHIM), "serve", "--config", str(config), "--port",
                     str(port)], home, "base-gateway", "/healthz", port,
                    env={"UPSTREAM": fault_upstream.base_url, "PYTHONPATH": str(ROOT)})
    yield server
    server.stop()


def test_a_base_install_serves_a_hosted_backend(base_gateway):
    client = openai.OpenAI(base_url=base_gateway.base_url, api_key="unused", max_retries=0)
    r = client.chat.completions.create(model="hosted", max_tokens=16,
                                       messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the fault upstream."
    assert len(client.embeddings.create(model="hosted", input="hi").data) == 1


def test_a_local_model_on_a_base_install_answers_503_naming_the_extra(base_gateway):
    client = openai.OpenAI(base_url=base_gateway.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=SMOLLM, max_tokens=4,
                                       messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 503
    assert e.value.body["code"] == "backend_not_installed"
    assert "pip install 'rankgate[local]'" in e.value.body["message"]
    health = httpx.get(base_gateway.root + "/healthz").json()
    assert health["models"][SMOLLM]["ready"] is False


def test_serve_takes_the_file_where_no_flag_is_given(base_gateway):
    # the file says log.format: text (the default is json): a failed request logs as text
    httpx.post(base_gateway.base_url + "/chat/completions",
               json={"model": SMOLLM, "messages": [{"role": "user", "content": "hi"}]})
    log = base_gateway.log_path.read_text()
    assert "request failed" in log and '"level":"warning"' not in log
