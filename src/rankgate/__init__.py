"""rankgate: rank a panel of LLMs on your own workload and route each request to the cheapest
model that answers it well, behind one OpenAI-compatible endpoint.

The public API is re-exported here; everything else is an implementation detail.
"""

from rankgate.config import Settings
from rankgate.panel import ModelSpec, Panel, PanelError, default_panel, load_panel

__all__ = ["ModelSpec", "Panel", "PanelError", "Settings", "default_panel", "load_panel"]
__version__ = "0.1.0"
