"""``rankgate.yaml``: one validated file for everything ``serve`` takes, secrets from the
environment, every error reported with its path, flags and environment above the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rankgate.config import Settings
from rankgate.config_file import ConfigError, check, example, interpolate, parse

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "rankgate.example.yaml"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "rankgate", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def _parse(text: str, tmp_path: Path, **environ: str):
    return parse(text, tmp_path / "rankgate.yaml", environ)


def test_the_committed_example_validates():
    r = _cli("config", "check", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"OK: {EXAMPLE}"


def test_the_committed_example_is_what_config_example_prints():
    # a setting added to config.Settings appears in `config example`; regenerate the file
    # with `rankgate config example > rankgate.example.yaml`
    assert EXAMPLE.read_text() == example()
    r = _cli("config", "example")
    assert r.returncode == 0 and r.stdout == example()


def test_every_setting_is_in_the_example_and_configurable_from_a_file(tmp_path):
    text = example()
    for name in Settings.model_fields:
        key = name.rpartition("_")[2]
        assert key in text, f"{name} is missing from the example"
    flat = {n: f.get_default(call_default_factory=True) for n, f in Settings.model_fields.items()
            if n != "home"}
    config = _parse(yaml.safe_dump(flat), tmp_path)
    # optional settings given as null are left unset; every other one is taken
    assert set(config.settings) == {n for n, v in flat.items() if v is not None}


BROKEN = """\
port: 70000
log_format: xml
admin_key: ${RG_TEST_UNSET_SECRET}
shadow:
  rate: 1.5
  concurency: 2
cache:
  ttl_s: -1
retries: many
redact_patterns: ["(unclosed"]
panel:
  - id: a
    backend: openai
  - id: b
    backend: nosuch
routers: [missing.npz]
"""

EXPECTED = [  # (path, a part of its message)
    ("port", "1..65535"),
    ("log_format", "json, text"),
    ("admin_key", "RG_TEST_UNSET_SECRET is not set"),
    ("shadow.rate", "must be ≤ 1"),
    ("shadow.concurency", "did you mean shadow.concurrency?"),
    ("cache.ttl_s", "must be > 0"),
    ("retries", "valid integer"),
    ("redact_patterns", "not a valid regular expression"),
    ("panel[0]", "need 'base_url'"),
    ("panel[1].backend", "unknown backend 'nosuch'"),
    ("routers[0]", "no router artifact"),
]


def test_check_prints_every_error_with_its_path_and_exits_1(tmp_path):
    f = tmp_path / "rankgate.yaml"
    f.write_text(BROKEN)
    r = _cli("config", "check", str(f))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    for path, part in EXPECTED:
        assert any(ln.startswith(f"{path}: ") and part in ln for ln in lines), (path, r.stderr)
    assert lines[-1] == f"{f}: {len(EXPECTED)} error(s)"
    assert "Traceback" not in r.stderr


def test_serve_with_a_broken_file_lists_every_error_and_exits_2(tmp_path):
    f = tmp_path / "rankgate.yaml"
    f.write_text("shadow:\n  rate: 2\nretries: -1\n")
    r = _cli("serve", "--config", str(f))
    assert r.returncode == 2
    assert "shadow.rate: must be ≤ 1" in r.stderr and "retries: must be ≥ 0" in r.stderr


def test_not_yaml_is_one_error_with_its_line(tmp_path):
    f = tmp_path / "rankgate.yaml"
    f.write_text("port: 1\nshadow: [unclosed\n")
    [(where, message)] = check(f)
    assert where.startswith("line ") and "not valid YAML" in message


def test_variables_are_interpolated_with_defaults_and_escapes():
    env = {"A": "alpha"}
    assert interpolate("x-${A}-y", env) == "x-alpha-y"
    assert interpolate("${B:-beta}", env) == "beta"
    assert interpolate("${B:-}", env) == ""
    assert interpolate("$${A}", env) == "${A}"
    with pytest.raises(KeyError):
        interpolate("${B}", env)


def test_secrets_come_from_the_environment_and_an_empty_default_means_unset(tmp_path):
    text = "admin_key: ${ADMIN:-}\nstore:\n  url: ${DB}\n"
    unset = _parse(text, tmp_path, DB="sqlite:///x.db")
    assert "admin_key" not in unset.settings
    assert unset.settings["store_url"] == "sqlite:///x.db"
    given = _parse(text, tmp_path, DB="sqlite:///x.db", ADMIN="sk-secret")
    assert given.settings["admin_key"] == "sk-secret"


def test_numbers_from_variables_are_validated_as_numbers(tmp_path):
    assert _parse("shadow:\n  rate: ${RATE}\n", tmp_path, RATE="0.25").settings == {
        "shadow_rate": 0.25}
    with pytest.raises(ConfigError) as e:
        _parse("shadow:\n  rate: ${RATE}\n", tmp_path, RATE="lots")
    assert e.value.errors[0][0] == "shadow.rate"


def test_grouped_and_flat_keys_are_the_same_setting(tmp_path):
    grouped = _parse("cache:\n  enabled: false\n  ttl_s: 5\nlog:\n  bodies: true\n"
                     "  format: text\n", tmp_path)
    flat = _parse("cache: false\ncache_ttl_s: 5\nlog_bodies: true\nlog_format: text\n",
                  tmp_path)
    assert grouped.settings == flat.settings == {"cache": False, "cache_ttl_s": 5,
                                                 "log_bodies": True}
    assert grouped.serve == flat.serve == {"log_format": "text"}


def test_a_setting_given_twice_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        _parse("shadow_rate: 0.1\nshadow:\n  rate: 0.2\n", tmp_path)
    assert e.value.errors == [("shadow.rate", "set twice (also at shadow_rate)")]


def test_relative_paths_are_relative_to_the_file(tmp_path):
    config = _parse("panel: panels/p.yaml\nrouters: [r.npz]\nhome: state\n", tmp_path)
    assert config.panel == tmp_path / "panels" / "p.yaml"
    assert config.routers == [tmp_path / "r.npz"]
    assert config.settings["home"] == tmp_path / "state"


def test_flags_beat_the_environment_which_beats_the_file(tmp_path, monkeypatch):
    config = _parse("retries: 5\nshadow:\n  rate: 0.5\n", tmp_path)
    monkeypatch.delenv("RANKGATE_RETRIES", raising=False)
    monkeypatch.delenv("RANKGATE_SHADOW_RATE", raising=False)
    assert (config.to_settings().retries, config.to_settings().shadow_rate) == (5, 0.5)
    monkeypatch.setenv("RANKGATE_RETRIES", "1")
    assert config.to_settings().retries == 1
    assert config.env_overridden() == ["RANKGATE_RETRIES"]
    assert config.to_settings({"retries": 0}).retries == 0  # a serve flag


def test_an_inline_panel_is_the_served_panel(tmp_path):
    config = _parse("panel:\n  - id: up\n    backend: openai\n"
                    "    base_url: http://127.0.0.1:9/v1\n", tmp_path)
    assert config.load_panel().ids == ["up"]
    assert _parse("port: 1\n", tmp_path).load_panel() is None  # the embedded default


def test_shadow_models_must_be_in_the_panel(tmp_path):
    f = tmp_path / "rankgate.yaml"
    f.write_text("shadow:\n  models: [ghost]\npanel:\n  - id: up\n    backend: openai\n"
                 "    base_url: http://127.0.0.1:9/v1\n")
    assert check(f) == [("shadow.models", "not in the panel: ghost")]
