"""Real servers for the tests: rankgate gateways, a llama.cpp server and the fault upstream,
each a subprocess on 127.0.0.1 with its own port and its own RANKGATE_HOME."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from rankgate.local_models import BUNDLED, status

SMOLLM = "smollm2-135m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


@dataclass
class Server:
    base_url: str  # .../v1
    proc: subprocess.Popen
    home: Path
    log_path: Path

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def log_row(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The request-log row of ``request_id``, waiting for the background writer."""
        engine = sa.create_engine(f"sqlite:///{self.home / 'rankgate.db'}")
        try:
            deadline = time.time() + timeout
            while True:
                with engine.connect() as conn:
                    row = conn.execute(sa.text("select * from request_log where id = :i"),
                                       {"i": request_id}).mappings().first()
                if row is not None:
                    return dict(row)
                if time.time() > deadline:
                    raise AssertionError(f"no request-log row for {request_id}")
                time.sleep(0.1)
        finally:
            engine.dispose()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every request-log row accepted so far is committed."""
        deadline = time.time() + timeout
        while httpx.get(self.root + "/healthz").json()["request_log"]["queued"]:
            if time.time() > deadline:
                raise AssertionError("request log did not drain")
            time.sleep(0.05)

    def count_rows(self) -> int:
        engine = sa.create_engine(f"sqlite:///{self.home / 'rankgate.db'}")
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("select count(*) from request_log")).scalar_one()
        finally:
            engine.dispose()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _spawn(args: list[str], home: Path, name: str, health_path: str, port: int,
           env: dict[str, str] | None = None) -> Server:
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"{name}.log"
    full_env = {**os.environ, "RANKGATE_HOME": str(home), **(env or {})}
    proc = subprocess.Popen(args, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
                            env=full_env)
    server = Server(f"http://127.0.0.1:{port}/v1", proc, home, log_path)
    try:
        wait_http(server.root + health_path, proc)
    except RuntimeError as e:
        server.stop()
        raise RuntimeError(f"{e}\n--- {name} log ---\n{log_path.read_text()[-3000:]}") from None
    return server


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    st = status(BUNDLED[SMOLLM], Path("/nonexistent"))
    if not st.ready:
        pytest.fail(f"{SMOLLM} weights are not installed: {st.problem}")
    return st.path


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Start a rankgate gateway subprocess: ``start_gateway(panel=[...] | None, env={...})``."""
    started: list[Server] = []

    def start(panel: list[dict[str, Any]] | None = None, env: dict[str, str] | None = None,
              name: str = "gateway", extra_args: list[str] | None = None) -> Server:
        home = tmp_path_factory.mktemp(name)
        port = free_port()
        args = [sys.executable, "-m", "rankgate", "serve", "--port", str(port)]
        if panel is not None:
            panel_file = home / "panel.yaml"
            panel_file.write_text(yaml.safe_dump({"models": panel}))
            args += ["--panel", str(panel_file)]
        args += extra_args or []
        server = _spawn(args, home, name, "/healthz", port, env)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def gateway(start_gateway: Callable[..., Server], smollm_path: Path) -> Server:
    """The embedded default panel (smollm2-135m is what the tests run)."""
    return start_gateway(name="default")


@pytest.fixture(scope="session")
def fault_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    server = _spawn([sys.executable, "-m", "rankgate.testing.fault_upstream", "--port",
                     str(port)], tmp_path_factory.mktemp("fault"), "fault", "/v1/models", port)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path
                 ) -> Iterator[Server]:
    """llama-cpp-python's own OpenAI-compatible server, serving the real smollm2 model."""
    port = free_port()
    server = _spawn([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_path),
                     "--model_alias", "smollm-upstream", "--host", "127.0.0.1",
                     "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"],
                    tmp_path_factory.mktemp("llama-server"), "llama-server", "/v1/models", port)
    yield server
    server.stop()


def _pg_bin(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1, in a throwaway cluster (``make test`` installs
    Debian's postgresql when it is missing)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.fail("PostgreSQL server binaries not found; run `make test` (it installs them)")
    import shutil
    import tempfile

    # outside pytest's 0700 tree: as root, the server runs as the postgres user
    base = Path(tempfile.mkdtemp(prefix="rankgate-pg-"))
    data = base / "data"
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "rankgate"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(base / "pg.log"), "-w", "-o",
                    f"-p {port} -c listen_addresses=127.0.0.1 -k {base}", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://rankgate@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


QWEN05 = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="session")
def qwen05_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 0.5B model assembled once for the session (its weight packages are installed by
    `make test`)."""
    from rankgate.local_models import MissingWeights, prepare

    try:
        return prepare(BUNDLED[QWEN05], tmp_path_factory.mktemp("models"))
    except MissingWeights as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server on 127.0.0.1 (no persistence), for the multi-instance tests
    (``make test`` installs Debian's redis-server when it is missing)."""
    import shutil

    binary = shutil.which("redis-server")
    if not binary:
        pytest.fail("redis-server not found; run `make test` (it installs it)")
    port = free_port()
    base = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(base)],
        stdout=(base / "redis.log").open("w"), stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.time() + 30
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"redis-server did not start: {(base / 'redis.log').read_text()}")
            time.sleep(0.05)
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
