"""Router names → classes: ``make`` builds a router to train, ``rebuild`` one from its saved
state (the artifact loader's only way in, so adding a router is adding one file and one line
here)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.bandit import LinUCBRouter
from rankgate.routing.base import Router
from rankgate.routing.baselines import RandomRouter, SingleModelRouter
from rankgate.routing.classifier import ClassifierRouter
from rankgate.routing.cluster import ClusterRouter
from rankgate.routing.ensemble import EnsembleRouter
from rankgate.routing.irt import IRTRouter
from rankgate.routing.knn import KNNRouter
from rankgate.routing.knn_tuned import TunedKNNRouter
from rankgate.routing.mf import MFRouter

ROUTERS: dict[str, type] = {"knn": KNNRouter, "mf": MFRouter, "classifier": ClassifierRouter,
                            "ensemble": EnsembleRouter, "knn_tuned": TunedKNNRouter,
                            "cluster": ClusterRouter, "irt": IRTRouter}
"""The learned routers ``rankgate route train`` offers; each is ``cls(embedder, **params)``."""

_SAVED: dict[str, type] = {**ROUTERS, "bandit": LinUCBRouter, "single": SingleModelRouter,
                           "random": RandomRouter}


def make(name: str, embedder: Embedder, **params: Any) -> Router:
    """A new, unfitted router ``name`` with hyperparameters ``params``."""
    if name not in ROUTERS:
        raise ValueError(f"unknown router {name!r}; choose one of {sorted(ROUTERS)}")
    return ROUTERS[name](embedder, **params)


def rebuild(name: str, embedder: Embedder | None, params: dict[str, Any],
            arrays: dict[str, np.ndarray]) -> Router:
    """The router ``name`` restored from what its ``state()`` returned."""
    if name not in _SAVED:
        raise ValueError(f"unknown router {name!r}; this version knows {sorted(_SAVED)}")
    return _SAVED[name].from_state(embedder, params, arrays)
