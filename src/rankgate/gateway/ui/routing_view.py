"""The routing page's data: the models ``auto`` chose over time, estimated savings against
always the best model, predicted vs realised quality, and the active routers with their
artifacts and replay cards. Aggregates come from ``store/request_queries.py``."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from rankgate.gateway.state import GatewayState
from rankgate.store import request_queries as rq

WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
BUCKETS = {"1h": 300.0, "24h": 3600.0, "7d": 6 * 3600.0, "30d": 86400.0}


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(fn, *args, **kwargs)


def savings(all_models: dict[str, rq.CostMoments], routed: dict[str, rq.CostMoments],
            best: str | None) -> dict[str, Any] | None:
    """Estimated savings of the routed requests against sending each to ``best``: the routed
    spend against (routed requests × mean cost of a ``best`` request), with a 95% interval
    from the standard error of that mean (a normal approximation)."""
    if best is None or best not in all_models:
        return None
    b = all_models[best]
    n = sum(m.requests for m in routed.values())
    spent = sum(m.total_usd for m in routed.values())
    if not n or b.mean is None or b.mean <= 0:
        return None
    counterfactual = n * b.mean
    out = {"best": best, "requests": n, "spent_usd": spent,
           "always_best_usd": counterfactual, "saved_share": 1 - spent / counterfactual,
           "low": None, "high": None, "best_priced": b.priced}
    if b.std_error is not None:
        lo_mean = max(b.mean - 1.96 * b.std_error, 1e-12)
        hi_mean = b.mean + 1.96 * b.std_error
        out["low"], out["high"] = 1 - spent / (n * lo_mean), 1 - spent / (n * hi_mean)
    return out


def _best_model(state: GatewayState) -> str | None:
    """What "always the best model" means: the priciest model the default router chooses
    from (the strong-model baseline of RouteLLM and RouterBench); None without a router or
    prices."""
    name = state.routing.default
    if name is None:
        return None
    loaded = state.routing.routers[name]
    if all(math.isnan(c) for c in loaded.costs):
        return None
    import numpy as np

    return str(loaded.router.models[int(np.nanargmax(loaded.costs))])


class RoutingCache:
    """The routing page's aggregates scan a whole window (up to 30 days) of the log: kept per
    (window, key) for ``ttl_s``, so a person clicking around, or several people, cost one
    computation a minute. The page says when its figures were computed."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._pages: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    async def get(self, state: GatewayState, window: str, key_id: str | None
                  ) -> dict[str, Any]:
        async with self._lock:
            hit = self._pages.get((window, key_id))
            if hit is None or time.time() - hit["computed_at"] > self.ttl_s:
                hit = await routing_page(state, window, key_id)
                hit["computed_at"] = time.time()
                if len(self._pages) > 64:
                    self._pages.clear()
                self._pages[(window, key_id)] = hit
            return hit


async def routing_page(state: GatewayState, window: str, key_id: str | None,
                       now: float | None = None) -> dict[str, Any]:
    now = now or time.time()
    span = WINDOWS.get(window, WINDOWS["24h"])
    bucket = BUCKETS.get(window, BUCKETS["24h"])
    engine = state.request_log.engine
    since = now - span
    mix, all_models, routed, keys, rated = await asyncio.gather(
        _run(rq.routed_mix, engine, since, bucket, key_id),
        _run(rq.cost_moments_by_model, engine, since, key_id=None),
        _run(rq.cost_moments_by_model, engine, since, routed=True, key_id=key_id),
        _run(_key_ids, state),
        _run(rq.rated_routed_requests, engine, 200))
    best = _best_model(state)
    from rankgate.gateway.router_swap import describe

    routers = []
    for name, loaded in state.routing.routers.items():
        info = describe(name, loaded, name == state.routing.default)
        info["replay_card"] = _replay_card(loaded.source)
        routers.append(info)
    return {"mix": mix, "models": sorted({m for _, m, _ in mix}), "keys": keys,
            "savings": savings(all_models, routed, best), "routers": routers,
            "quality": await _predicted_vs_realised(state, rated), "window": window,
            "key": key_id, "bucket_s": bucket, "since": since}


def _key_ids(state: GatewayState) -> list[str]:
    """The keys the per-key filter offers: every key of the gateway (none when it is open)."""
    if state.auth is None:
        return []
    return [k["id"] for k in state.auth.store.list(True)]


def _replay_card(source: Path | None) -> dict[str, Any] | None:
    """The figures of a replay report saved beside the artifact (``<artifact>.replay.json``,
    the output of ``rankgate route replay --json``), if any: its scalar facts and each
    router's scalar metrics (APGR, CPT, AIQ, savings…); the curves stay in the file."""
    if source is None:
        return None
    path = source.with_name(source.name + ".replay.json")
    if not path.is_file():
        return None
    import json

    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(card, dict):
        return None
    scalar = (int, float, str, bool)
    routers = {n: r for n, r in (card.get("routers") or {}).items() if isinstance(r, dict)} \
        if isinstance(card.get("routers"), dict) else {}
    columns = list(dict.fromkeys(k for r in routers.values() for k, v in r.items()
                                 if isinstance(v, int | float) and not isinstance(v, bool)))
    return {"facts": {k: v for k, v in card.items() if isinstance(v, scalar)},
            "columns": columns,
            "routers": {name: [r.get(c) for c in columns] for name, r in routers.items()},
            "path": str(path)}


async def _predicted_vs_realised(state: GatewayState, rated: list[rq.RatedRequest]
                                 ) -> list[dict[str, Any]]:
    """Per model: the mean quality the serving router predicts for the rated requests it
    answered, and the mean score feedback or a judge gave them."""
    by_model: dict[str, list[rq.RatedRequest]] = {}
    for r in rated:
        if r.router in state.routing.routers:
            by_model.setdefault(r.model, []).append(r)
    out = []
    loop = asyncio.get_running_loop()
    for model, items in sorted(by_model.items()):
        loaded = state.routing.routers[items[0].router]
        if model not in loaded.router.models:
            continue
        j = list(loaded.router.models).index(model)
        pred = await loop.run_in_executor(state.routing.executor, loaded.router.predict,
                                          [r.prompt for r in items])
        predicted = float(sum(p[j] for p in pred) / len(items))
        realised = sum(r.score for r in items) / len(items)
        out.append({"model": model, "n": len(items), "predicted": predicted,
                    "realised": realised})
    return out
