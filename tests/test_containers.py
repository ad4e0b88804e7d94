"""The container files hold their promises, checked by reading them (Docker cannot run on
every machine the tests run on): a multi-stage Dockerfile whose runtime stage is non-root with
a /healthz HEALTHCHECK and no compiler or weights unless asked for; a compose file with
PostgreSQL, Redis and two gateways that share one admin key, one store and one Redis, behind
a load balancer whose config names both; the panel they serve is a valid rankgate panel."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from rankgate.panel import load_panel

ROOT = Path(__file__).resolve().parents[1]
GATEWAYS = ("gateway1", "gateway2")


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        if op.upper() == "FROM":
            out.append([])
        elif not out:
            continue  # ARGs before the first FROM
        out[-1].append((op.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_dockerfile_is_multi_stage_with_a_non_root_runtime():
    st = stages()
    assert len(st) >= 2
    runtime = st[-1]
    users = [arg for op, arg in runtime if op == "USER"]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert not any(op == "COPY" and "--from=builder" in arg for op, arg in runtime), \
        "wheels are bind-mounted from the builder, not copied into a layer"
    assert any(op == "RUN" and "--mount=type=bind,from=builder" in arg for op, arg in runtime)


def test_dockerfile_healthcheck_asks_healthz():
    checks = [arg for op, arg in stages()[-1] if op == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0] and "CMD" in checks[0]


def test_compiler_and_weights_only_when_asked_for():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ARG PANEL_PACKAGES=""$', text, re.M), "no weights by default"
    extras = re.search(r"^ARG EXTRAS=(\S+)$", text, re.M)
    assert extras is not None and "local" not in extras.group(1).split(",")
    builder = " ".join(arg for _, arg in stages()[0])
    assert "*,local,*)" in builder and "build-essential" in builder  # compiler: local only
    runtime = " ".join(arg for _, arg in stages()[-1])
    assert "build-essential" not in runtime and "cmake" not in runtime
    assert "gguf" not in text.lower().replace("*.gguf", "")


def test_dockerignore_keeps_the_context_small():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".rankgate", "tests"):
        assert entry in ignored


def test_compose_has_the_stack(compose):
    services = compose["services"]
    for name in ("postgres", "redis", *GATEWAYS, "lb"):
        assert name in services
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]


def test_both_gateways_share_admin_key_store_and_redis(compose):
    services = compose["services"]
    gw = [services[g] for g in GATEWAYS]
    keys = [g["environment"]["RANKGATE_ADMIN_KEY"] for g in gw]
    assert keys[0] == keys[1] and keys[0].startswith("${RANKGATE_ADMIN_KEY")
    assert ":?" in keys[0], "compose refuses to start without an admin key"
    cmds = [_command(g) for g in gw]
    stores = [_option(c, "--store") for c in cmds]
    redis = [_option(c, "--redis") for c in cmds]
    assert stores[0] == stores[1] and stores[0].startswith("postgresql://")
    assert "@postgres:" in stores[0]
    assert redis[0] == redis[1] and redis[0].startswith("redis://redis:")
    assert all(_option(c, "--host") == "0.0.0.0" for c in cmds)
    for g in gw:
        deps = g["depends_on"]
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"


def test_the_gateways_serve_a_valid_panel(compose):
    for g in GATEWAYS:
        service = compose["services"][g]
        mounted = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        panel_path = _option(_command(service), "--panel")
        panel = load_panel(ROOT / mounted[panel_path])
        assert len(panel) >= 1


def test_the_load_balancer_names_both_gateways(compose):
    lb = compose["services"]["lb"]
    cfg_file = next(v.split(":")[0] for v in lb["volumes"] if "haproxy" in v)
    cfg = (ROOT / cfg_file).read_text()
    port = _option(_command(compose["services"]["gateway1"]), "--port")
    servers = re.findall(r"^\s*server\s+(\S+)\s+(\S+)", cfg, re.M)
    assert sorted(addr for _, addr in servers) == [f"{g}:{port}" for g in GATEWAYS]
    assert re.search(r"option httpchk GET /healthz", cfg)
    assert set(lb["depends_on"]) == set(GATEWAYS)


def test_make_compose_test_runs_the_cross_gateway_check():
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\ncompose-test:"):]
    target = target[:target.index("\n\n")]
    assert "up -d --build --wait" in target and "deploy/compose_check.py" in target
    assert "down -v" in target
    check = (ROOT / "deploy" / "compose_check.py").read_text()
    assert "/admin/keys" in check and "import openai" in check
