"""Backends: one object per panel model that knows how to call it (see ``base.py``)."""

from __future__ import annotations

from pathlib import Path

from rankgate.backends.base import Backend
from rankgate.backends.faulty import FaultyBackend
from rankgate.backends.llamacpp import LlamaCppBackend, ThreadBudget
from rankgate.backends.openai_http import OpenAIHTTPBackend, UpstreamPool
from rankgate.config import Settings
from rankgate.local_models import BUNDLED, model_path
from rankgate.panel import ModelSpec, Panel


def build_backend(spec: ModelSpec, settings: Settings, client: UpstreamPool,
                  budget: ThreadBudget) -> Backend:
    """The backend object for one panel model (nothing is loaded or connected yet)."""
    if spec.backend == "openai":
        return OpenAIHTTPBackend(spec, client, settings.upstream_timeout_s)
    if spec.backend == "faulty":  # fault injection for drills and tests: no I/O at all
        return FaultyBackend(spec)
    if spec.bundled:
        bundled = BUNDLED[spec.bundled]
        return LlamaCppBackend(spec, model_path(bundled, settings.home), budget,
                               bundled.context_window)
    assert spec.path
    return LlamaCppBackend(spec, Path(spec.path).expanduser(), budget)


def build_backends(panel: Panel, settings: Settings, client: UpstreamPool,
                   budget: ThreadBudget) -> dict[str, Backend]:
    return {spec.id: build_backend(spec, settings, client, budget) for spec in panel}


__all__ = ["Backend", "ThreadBudget", "build_backend", "build_backends"]
