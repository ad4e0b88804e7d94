"""What backends share in one process: settings, the HTTP pool, the CPU thread budget and the
loaded local weights. Built once per runtime (``rankgate.runtime.open_panel``) and handed to
every backend factory, so two panel entries on the same GGUF file share one loaded model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rankgate.backends.llamacpp import ThreadBudget
    from rankgate.backends.openai_http import UpstreamPool
    from rankgate.config import Settings


@dataclass
class Resources:
    settings: Settings
    pool: UpstreamPool
    budget: ThreadBudget
    #: loaded local weights by (resolved path, context size): see ``llamacpp.LocalWeights``
    weights: dict[tuple[str, int], Any] = field(default_factory=dict)
