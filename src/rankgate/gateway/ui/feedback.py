"""Feedback given from a request's page: the same outcome ``POST /v1/feedback`` stores
(``source`` "feedback", router and comment in ``extra``), and the same bandit update when a
bandit routed the request — so ranking and routing cannot tell where it was given."""

from __future__ import annotations

import asyncio
import math

from rankgate.gateway.feedback import apply_feedback, lookup_answered
from rankgate.gateway.state import GatewayState

THUMBS = {"up": 1.0, "down": 0.0}


class FeedbackError(ValueError):
    """Why feedback was not recorded, in words the page shows."""


def _score(thumbs: str | None, score: str | None) -> float:
    if thumbs is not None:
        if thumbs not in THUMBS:
            raise FeedbackError("Thumbs must be 'up' or 'down'.")
        return THUMBS[thumbs]
    try:
        v = float(score or "")
    except ValueError:
        raise FeedbackError("Give thumbs up or down, or a score between 0 and 1.") from None
    if not math.isfinite(v) or not 0 <= v <= 1:
        raise FeedbackError("A score must be between 0 and 1.")
    return v


async def record_feedback(state: GatewayState, request_id: str, thumbs: str | None,
                          score: str | None, comment: str | None) -> float:
    """Store the verdict on an answered, logged request; returns the score stored."""
    value = _score(thumbs, score)
    info = await asyncio.to_thread(lookup_answered, state, request_id)
    if info is None:
        raise FeedbackError("Only an answered (HTTP 200) logged request can get feedback.")
    await apply_feedback(state, request_id, info, value, comment)
    return value
