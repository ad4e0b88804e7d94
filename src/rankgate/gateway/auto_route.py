"""``model: "auto"`` — pick the panel model for one request with a trained router.

The knob comes from ``extra_body={"rankgate": {"max_cost_usd" | "min_quality" | "lambda" |
"savings"}}`` or, when a request sends none, from its key's default routing (the same fields,
checked by the same ``knob.knob_from_fields``); ``min_quality`` with ``confidence`` asks for a
guarantee, answered from the artifact's conformal bounds
(:mod:`rankgate.routing.conformal`) — a router without them refuses it (400), and a target no
model's bound reaches is served by the best model and said so in the headers. The decision
runs off the event loop (embedding is CPU work) on one dedicated thread, and comes back with
everything needed to explain it in the response headers.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.gateway.errors import APIError
from rankgate.gateway.knob import KnobError, knob_from_fields
from rankgate.messages import prompt_text
from rankgate.routing.base import Decision, Knob, OnlineRouter, Router, decide
from rankgate.routing.conformal import Guarantee, guarantee_of


@dataclass
class LoadedRouter:
    router: Router
    costs: np.ndarray  # estimated $ per request per model (NaN unknown)
    meta: dict[str, Any]
    source: Path | None = None  # the artifact it was loaded from (what SIGHUP reloads)
    loaded_at: float = field(default_factory=time.time)


@dataclass
class RoutingTable:
    """The routers a gateway can use; the first is what plain ``auto`` means.

    Hot swaps (``gateway/router_swap.py``) never mutate ``routers`` or ``embedders``: they
    assign a new dict, so a request that already resolved its ``LoadedRouter`` finishes with
    it, and any reader iterating the old dict sees a consistent one."""

    routers: dict[str, LoadedRouter] = field(default_factory=dict)
    # embedder name -> the instance the routers use (None: prompt-blind routers)
    embedders: dict[str | None, Embedder | None] = field(default_factory=lambda: {None: None})
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="route"))
    swap_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one swap at a time

    @property
    def default(self) -> str | None:
        return next(iter(self.routers), None)

    def resolve(self, model: str) -> tuple[str, LoadedRouter]:
        name = model.partition(":")[2] or self.default
        if name is None:
            raise APIError(400, "model 'auto' needs a trained router: start the gateway with "
                           "`rankgate serve --router FILE`.", param="model",
                           code="no_router")
        if name not in self.routers:
            raise APIError(404, f"No router named '{name}'. Loaded routers: "
                           f"{', '.join(self.routers) or 'none'}.", param="model",
                           code="router_not_found")
        return name, self.routers[name]

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def is_auto(model: str) -> bool:
    return model == "auto" or model.startswith("auto:")


def parse_knob(body: dict[str, Any]) -> Knob:
    """The request's ``rankgate`` knob (checked by ``knob.knob_from_fields``, as a key's
    default routing is); a 400 naming the field at fault otherwise."""
    raw = body.get("rankgate")
    if raw is None:
        return Knob()
    try:
        return knob_from_fields(raw)
    except KnobError as e:
        param = f"rankgate.{e.field}" if e.field else "rankgate"
        if e.field is None:
            message = f"'rankgate' {e}." if e.code == "invalid_type" else f"Invalid rankgate: {e}."
        else:
            message = f"Invalid {param}: {e}."
        raise APIError(400, message, param=param, code=e.code) from None


def decide_guaranteed(router: Router, guarantee: Guarantee, prompt: str, costs: np.ndarray,
                      knob: Knob, name: str) -> Decision:
    """The cheapest model whose lower bound clears ``knob.min_quality`` at
    ``knob.confidence``; the best predicted model, marked unmet, when none does."""
    pred = router.predict([prompt])
    j, met, lower = guarantee.choose(pred, costs, knob)
    target = f"{knob.min_quality:g}@{knob.confidence:g}"
    status = (f"met {target}" if met[0] else
              f"unmet {target}: no model's lower bound reaches the target; best model used")
    return Decision(router.models[int(j[0])], name,
                    {m: float(q) for m, q in zip(router.models, pred[0], strict=True)},
                    _cost_map(router.models, costs),
                    quality_bound={m: float(v) for m, v in zip(router.models, lower[0],
                                                               strict=True)},
                    guarantee=status)


async def sync_bandit(table: RoutingTable, name: str, sync: Any) -> None:
    """Fold in feedback other gateways (or this one) published for bandit ``name``."""
    loaded = table.routers.get(name)
    if loaded is None or not isinstance(loaded.router, OnlineRouter):
        return  # swapped for another kind of router meanwhile: nothing to fold in
    router = loaded.router
    events = await sync.pull(name)
    if events:
        def apply() -> None:
            for e in events:
                router.update(e["prompt"], e["model"], e["score"])
        await asyncio.get_running_loop().run_in_executor(table.executor, apply)


async def route(table: RoutingTable, model: str, body: dict[str, Any],
                sync: Any = None) -> Decision:
    name, loaded = table.resolve(model)
    knob = parse_knob(body)
    text = prompt_text(body)
    loop = asyncio.get_running_loop()
    router = loaded.router
    if knob.confidence is not None:
        guarantee = guarantee_of(router)
        if guarantee is None or isinstance(router, OnlineRouter):
            raise APIError(400, f"The router '{name}' has no quality guarantee (its artifact "
                           "holds no conformal bounds: retrain it with `rankgate route "
                           "train`, or drop rankgate.confidence).", param="rankgate.confidence",
                           code="guarantee_unavailable")
        return await loop.run_in_executor(table.executor, decide_guaranteed, router, guarantee,
                                          text, loaded.costs, knob, name)
    if knob.savings is not None:
        knob = _savings_lambda(router, loaded, knob, name)
    if isinstance(router, OnlineRouter):  # the bandit explores
        if sync is not None:
            await sync_bandit(table, name, sync)
        def pick() -> Decision:
            j, mean = router.select(text, loaded.costs, knob)
            return Decision(router.models[j], name,
                            {m: float(q) for m, q in zip(router.models, mean, strict=True)},
                            _cost_map(router.models, loaded.costs))
        return await loop.run_in_executor(table.executor, pick)
    d = await loop.run_in_executor(table.executor, decide, router, text, loaded.costs, knob)
    return Decision(d.model, name, d.predicted_quality, d.estimated_cost)


def _savings_lambda(router: Router, loaded: LoadedRouter, knob: Knob, name: str,
                    among: list[str] | None = None) -> Knob:
    """The λ knob a ``savings`` target implies on the artifact's held-out training predictions
    (computed once per share, prices and candidate set, kept with the artifact's guarantee).
    ``among``: only these models may answer (a key's allowed models, the able ones), so the
    target is read off those columns — "spend this share less than the best of *them*"."""
    from rankgate.routing.budget import lambda_for_savings

    g = guarantee_of(router)
    if g is None or isinstance(router, OnlineRouter):
        raise APIError(400, f"The router '{name}' keeps no held-out training predictions to "
                       "turn a savings target into a price of quality: retrain it with "
                       "`rankgate route train`, or give lambda or max_cost_usd.",
                       param="rankgate.savings", code="savings_unavailable")
    savings = knob.savings
    assert savings is not None
    cols = [g.models.index(m) for m in among] if among is not None else list(
        range(len(g.models)))
    costs = np.asarray(loaded.costs, float)[cols]
    try:
        lam = g.memo(("savings", savings, tuple(cols), tuple(np.nan_to_num(costs, nan=-1.0))),
                     lambda: lambda_for_savings(g.P[:, cols], g.Y[:, cols], costs, savings))
    except ValueError as e:
        raise APIError(400, f"Invalid rankgate.savings: {e}.", param="rankgate.savings",
                       code="invalid_value") from None
    return Knob(lam=lam)


def savings_knob_among(table: RoutingTable, model: str, knob: Knob, among: list[str]) -> Knob:
    """``knob`` with its savings target turned into the λ it implies when only ``among`` may
    answer (``completions.restrict``); any other knob as it is."""
    if knob.savings is None:
        return knob
    name, loaded = table.resolve(model)
    return _savings_lambda(loaded.router, loaded, knob, name, among)


def _cost_map(models: list[str], costs: np.ndarray) -> dict[str, float | None]:
    return {m: (None if np.isnan(c) else float(c)) for m, c in zip(models, costs, strict=True)}
