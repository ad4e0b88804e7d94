"""Backends: one object per panel model that knows how to call it (see ``base.py``).

``build_backend`` is the one place a panel entry becomes a backend: it looks the entry's
``backend`` name up in ``registry.py``. Use ``rankgate.runtime.open_panel`` rather than calling
it directly: the runtime owns the shared resources and closes them.
"""

from __future__ import annotations

from rankgate.backends.base import Backend, BackendStatus, Capabilities
from rankgate.backends.llamacpp import ThreadBudget
from rankgate.backends.registry import backend_type
from rankgate.backends.resources import Resources
from rankgate.panel import ModelSpec


def build_backend(spec: ModelSpec, resources: Resources) -> Backend:
    """The backend object for one panel model (nothing is loaded or connected yet)."""
    return backend_type(spec.backend).build(spec, resources)


__all__ = ["Backend", "BackendStatus", "Capabilities", "Resources", "ThreadBudget",
           "build_backend"]
