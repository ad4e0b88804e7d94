"""What the Overview, Requests and Keys pages show, gathered from the store's read layer and
the running gateway (the Routing and Evaluations pages: ``routing_view.py``, ``evals_view.py``).
No SQL here (``store/request_queries.py`` has it); every blocking store call runs in a worker
thread so the event loop keeps serving completions while a page is built."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from rankgate.gateway.limits import period_bounds
from rankgate.gateway.state import GatewayState
from rankgate.gateway.ui import live
from rankgate.gateway.ui.routing_view import WINDOWS
from rankgate.gateway.ui.spend import SpendCache
from rankgate.store import request_queries as rq


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(fn, *args, **kwargs)


async def overview(state: GatewayState, spend: SpendCache, now: float | None = None
                   ) -> dict[str, Any]:
    """Live figures (the metrics registry), plus what only the store knows: spend today and
    this month and the request rate of the last minute, across every instance."""
    now = now or time.time()
    engine = state.request_log.engine
    (today, month), last_min = await asyncio.gather(
        spend.spend(engine, now), _run(rq.count_since, engine, now - 60.0))
    stats = state.request_log.stats()
    return {"live": live.read(state.metrics.registry), "spend_today": today,
            "spend_month": month, "rps": last_min / 60.0, "requests_last_min": last_min,
            "breakers": state.resilience.breaker_states(), "queue": stats,
            "exchanges": state.exchanges.stats(), "started": state.started, "now": now}


def overview_json(data: dict[str, Any]) -> dict[str, Any]:
    """The overview as JSON (``/ui/api/overview``): for scripts, and what the tests compare."""
    fig: live.LiveFigures = data["live"]
    return {
        "requests": fig.requests, "errors_by_type": fig.errors_by_type,
        "error_rate": fig.error_rate, "cache_hit_rate": fig.cache_hit_rate,
        "spend_since_start_usd": fig.spend_usd, "spend_today_usd": data["spend_today"],
        "spend_month_usd": data["spend_month"], "requests_per_s_last_min": data["rps"],
        "tokens": {"input": fig.tokens[0], "output": fig.tokens[1]},
        "models": {m: {"requests": f.requests, "errors": f.errors,
                       "input_tokens": f.input_tokens, "output_tokens": f.output_tokens,
                       "spend_usd": f.spend_usd,
                       "latency_s": {str(q): v for q, v in f.latency.items()},
                       "ttft_s": {str(q): v for q, v in f.ttft.items()}}
                   for m, f in fig.models.items()},
        "breakers": data["breakers"], "request_log": data["queue"],
    }


def parse_filter(params: dict[str, str], now: float) -> rq.RequestFilter:
    """The request search's query string; a value that does not parse is ignored (the
    form shows what was applied)."""
    def num(name: str) -> float | None:
        try:
            v = float(params.get(name, ""))
        except ValueError:
            return None
        return v if math.isfinite(v) else None

    window = params.get("window", "")
    since = now - WINDOWS[window] if window in WINDOWS else None
    status = params.get("status") or None
    if status is not None and status not in rq.STATUS_CLASSES and not status.isdigit():
        status = None
    return rq.RequestFilter(since=since, key_id=params.get("key") or None,
                            model=params.get("model") or None, status=status,
                            min_cost_usd=num("min_cost"), max_cost_usd=num("max_cost"))


def parse_cursor(raw: str | None) -> tuple[float, str] | None:
    if not raw or "_" not in raw:
        return None
    ts, _, rid = raw.partition("_")
    try:
        return float(ts), rid
    except ValueError:
        return None


def cursor_of(row: rq.LoggedRequest) -> str:
    return f"{row.ts!r}_{row.id}"


async def requests_page(state: GatewayState, flt: rq.RequestFilter,
                        before: tuple[float, str] | None, limit: int = 50
                        ) -> tuple[list[rq.LoggedRequest], str | None]:
    """One page of the search and the cursor of the next (None on the last page)."""
    rows = await _run(rq.search_requests, state.request_log.engine, flt, limit=limit + 1,
                      before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (cursor_of(rows[-1]) if more and rows else None)


@dataclass
class Explanation:
    """How a routed request was decided: what the log recorded, and the router's current
    predictions for the logged prompt (the decision's own numbers are in its response
    headers, not in the log)."""

    router: str
    loaded: bool
    candidates: list[dict[str, Any]]
    note: str


async def explain(state: GatewayState, req: rq.LoggedRequest) -> Explanation | None:
    if req.router is None:
        return None
    if req.decision:  # logged as decided (rows from before the column: recomputed below)
        d = orjson.loads(req.decision)
        bounds = d.get("quality_bound") or {}
        cands = sorted(({"model": m, "predicted_quality": q,
                         "estimated_cost_usd": d["estimated_cost"].get(m),
                         "quality_bound": bounds.get(m),
                         "answered": m == req.model, "asked": m == req.fallback_from}
                        for m, q in d["predicted_quality"].items()),
                       key=lambda c: -c["predicted_quality"])
        knob = ", ".join(f"{k}={v}" for k, v in (d.get("knob") or {}).items()) or "default"
        note = (f"As decided at request time by '{d['router']}': chose {d['chosen']} with "
                f"the knob {knob}" + (f"; guarantee {d['guarantee']}" if d.get("guarantee")
                                      else "") + ".")
        return Explanation(req.router, True, cands, note)
    loaded = state.routing.routers.get(req.router)
    if loaded is None or not req.prompt:
        return Explanation(req.router, False, [], f"The router '{req.router}' is not loaded "
                           "now, so its predictions for this prompt cannot be shown.")
    from rankgate.routing.base import Knob, decide

    loop = asyncio.get_running_loop()
    d = await loop.run_in_executor(state.routing.executor, decide, loaded.router, req.prompt,
                                   loaded.costs, Knob())
    cands = sorted(({"model": m, "predicted_quality": q,
                     "estimated_cost_usd": d.estimated_cost.get(m),
                     "answered": m == req.model, "asked": m == req.fallback_from}
                    for m, q in d.predicted_quality.items()),
                   key=lambda c: -c["predicted_quality"])
    when = datetime.fromtimestamp(loaded.loaded_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Explanation(req.router, True, cands,
                       f"Predicted qualities recomputed now by the router serving as "
                       f"'{req.router}' (loaded {when}) for the logged prompt, with the "
                       "default knob; the request's own knob is not logged.")

async def keys_page(state: GatewayState, now: float | None = None) -> list[dict[str, Any]]:
    """Every key (revoked ones last) with its spend in its current budget period."""
    if state.auth is None:
        return []
    now = now or time.time()
    keys = await _run(state.auth.store.list, True)
    engine = state.request_log.engine

    async def spend(k: dict[str, Any]) -> dict[str, Any]:
        start, end = period_bounds(k["budget_period"], now)
        k["spent_usd"] = await _run(rq.spend_since, engine, k["id"], start)
        k["period_end"] = end
        budget = k["budget_usd"]
        k["budget_share"] = (k["spent_usd"] / budget if budget else None)
        return k

    out = await asyncio.gather(*(spend(k) for k in keys))
    return sorted(out, key=lambda k: (k["revoked_at"] is not None, -k["created_at"]))
