"""rankgate: rank a panel of LLMs on your own workload and route each request to the cheapest
model that answers it well, behind one OpenAI-compatible endpoint.

The public API is re-exported here; everything else is an implementation detail. Without a
server: ``rankgate.evaluate(...)``, ``rankgate.rank(outcomes)``,
``rankgate.Router.load(path).choose(prompt)`` (``rankgate.api``, imported on first use so that
``import rankgate`` stays light).
"""

from typing import TYPE_CHECKING, Any

from rankgate.config import Settings
from rankgate.panel import ModelSpec, Panel, PanelError, default_panel, load_panel

if TYPE_CHECKING:
    from rankgate.api import Choice, Router, evaluate, rank
    from rankgate.outcomes import Outcome

__all__ = ["Choice", "ModelSpec", "Outcome", "Panel", "PanelError", "Router", "Settings",
           "default_panel", "evaluate", "load_panel", "rank"]
__version__ = "0.1.0"

_LAZY = {"Choice": "rankgate.api", "Router": "rankgate.api", "evaluate": "rankgate.api",
         "rank": "rankgate.api", "Outcome": "rankgate.outcomes"}


def __getattr__(name: str) -> Any:
    """The API names, imported on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rankgate' has no attribute {name!r}")
