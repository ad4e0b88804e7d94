"""``POST /v1/feedback``: a user's verdict on an answer becomes an outcome.

``{"request_id", "score": 0..1 | "thumbs": "up"|"down", "comment"?}``. The request is found in
the gateway's recent-request memory (feedback often arrives before the background writer has
stored the log row) or else in the request log; an unknown id is a 404. The outcome (``source``
"feedback", the router and comment in ``extra``) goes to the store's ``outcomes`` table through
``store/outcome_store.py``, where ranking and routing read it, and, when a bandit routed the
request, is folded into the bandit at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from rankgate.gateway.auto_route import sync_bandit
from rankgate.gateway.errors import APIError, error_response, json_object, read_body
from rankgate.gateway.state import GatewayState
from rankgate.outcomes import Outcome
from rankgate.routing.base import OnlineRouter
from rankgate.store.outcome_store import add_outcome
from rankgate.store.request_queries import find_request

_THUMBS = {"up": 1.0, "down": 0.0}


def _parse(raw: bytes) -> tuple[str, float, str | None]:
    body = json_object(raw)
    unknown = set(body) - {"request_id", "score", "thumbs", "comment"}
    if unknown:
        raise APIError(400, f"Unknown field(s) {sorted(unknown)}.", param=sorted(unknown)[0],
                       code="invalid_value")
    rid = body.get("request_id")
    if not isinstance(rid, str) or not rid:
        raise APIError(400, "Missing required parameter: 'request_id'.", param="request_id",
                       code="missing_required_parameter")
    has_score, has_thumbs = body.get("score") is not None, body.get("thumbs") is not None
    if has_score == has_thumbs:
        raise APIError(400, "Give exactly one of 'score' (0..1) or 'thumbs' ('up'/'down').",
                       param="score", code="invalid_value")
    if has_score:
        s = body["score"]
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s <= 1:
            raise APIError(400, "'score' must be a number in [0, 1].", param="score",
                           code="invalid_value")
        score = float(s)
    else:
        t = body["thumbs"]
        if t not in _THUMBS:
            raise APIError(400, "'thumbs' must be 'up' or 'down'.", param="thumbs",
                           code="invalid_value")
        score = _THUMBS[t]
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise APIError(400, "'comment' must be a string.", param="comment", code="invalid_type")
    return rid, score, comment


def _lookup_db(state: GatewayState, rid: str) -> dict[str, Any] | None:
    """What feedback needs of an answered request in the log (the shape of ``state.recent``)."""
    req = find_request(state.request_log.engine, rid)
    if req is None or not req.answered:
        return None
    return {"model": req.model, "prompt": req.prompt or "", "router": req.router,
            "cost_usd": req.cost_usd,
            "latency_s": req.latency_ms / 1000 if req.latency_ms else None}


def _outcome(rid: str, info: dict[str, Any], score: float, comment: str | None) -> Outcome:
    extra = {k: v for k, v in (("router", info.get("router")), ("comment", comment))
             if v is not None}
    return Outcome(prompt_id=rid, prompt=info["prompt"], model=info["model"], score=score,
                   cost_usd=info.get("cost_usd"), latency_s=info.get("latency_s"),
                   source="feedback", extra=extra)


def lookup_answered(state: GatewayState, rid: str) -> dict[str, Any] | None:
    """What feedback needs of an answered request: kept in memory for recent ones, else read
    from the log (blocking: call it in a thread)."""
    return state.recent.get(rid) or _lookup_db(state, rid)


async def apply_feedback(state: GatewayState, rid: str, info: dict[str, Any], score: float,
                         comment: str | None) -> bool:
    """Store a verdict on request ``rid`` as a ``feedback`` outcome (prompt and comment
    redacted like the log) and, when a bandit routed it, teach the bandit; True if a router
    learnt from it. ``POST /v1/feedback`` and the dashboard both come through here, so
    ranking and routing cannot tell where feedback was given."""
    loop = asyncio.get_running_loop()
    scrub = state.request_log.scrub or str  # stored outcomes are redacted like the log
    stored = {**info, "prompt": scrub(info["prompt"])}
    await loop.run_in_executor(None, add_outcome, state.request_log.engine,
                               _outcome(rid, stored, score,
                                        scrub(comment) if comment else comment))
    loaded = state.routing.routers.get(info.get("router") or "")
    if loaded is None or not isinstance(loaded.router, OnlineRouter):
        return False
    if state.bandit_sync is not None:  # shared: every instance applies it, in order
        await state.bandit_sync.publish(info["router"], info["prompt"], info["model"], score)
        await sync_bandit(state.routing, info["router"], state.bandit_sync)
    else:
        await loop.run_in_executor(state.routing.executor, loaded.router.update,
                                   info["prompt"], info["model"], score)
    return True


async def handle_feedback(state: GatewayState, request: Request) -> Response:
    try:
        if state.auth is not None:
            await state.auth.authenticate(request.headers.get("authorization"))
        rid, score, comment = _parse(await read_body(request, state.settings.max_body_bytes))
        loop = asyncio.get_running_loop()
        info = state.recent.get(rid) or await loop.run_in_executor(None, _lookup_db, state, rid)
        if info is None:
            raise APIError(404, f"No answered request with id '{rid}' (use the x-request-id "
                           "header of a successful response).", param="request_id",
                           code="request_not_found")
        updated = await apply_feedback(state, rid, info, score, comment)
        return Response(orjson.dumps({"object": "feedback", "request_id": rid,
                                      "model": info["model"], "score": score,
                                      "router_updated": updated}),
                        media_type="application/json")
    except APIError as e:
        return error_response(e)
