"""The routing knob as users write it — a request's ``rankgate`` field or a key's default
``routing`` — checked by one function, so a key can hold exactly what a request can send.

``knob_from_fields`` turns ``{"min_quality": 0.8, "confidence": 0.9}`` into a
:class:`~rankgate.routing.base.Knob` or raises :class:`KnobError` naming the field at fault;
the gateway answers that as a 400 on a request (``auto_route.parse_knob``) and the admin API
as a 400 on a key (``auth.validate_limits``).
"""

from __future__ import annotations

import math
from typing import Any

from rankgate.routing.base import Knob

#: Field users write -> ``Knob`` attribute.
KNOB_FIELDS = {"max_cost_usd": "max_cost", "min_quality": "min_quality", "lambda": "lam",
               "confidence": "confidence", "savings": "savings"}
#: At most one of these per knob; ``confidence`` qualifies ``min_quality``.
EXCLUSIVE = ("max_cost_usd", "min_quality", "lambda", "savings")


class KnobError(ValueError):
    """A knob that can't be used; ``field`` names the offending field (None: the whole)."""

    def __init__(self, field: str | None, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def knob_from_fields(raw: Any) -> Knob:
    """The knob ``raw`` (a mapping of ``KNOB_FIELDS``; None values are absent) asks for."""
    if not isinstance(raw, dict):
        raise KnobError(None, "must be an object such as {\"max_cost_usd\": 0.001}",
                        code="invalid_type")
    unknown = set(raw) - set(KNOB_FIELDS)
    if unknown:
        raise KnobError(None, f"unknown option(s) {sorted(unknown)}; use one of "
                        f"{sorted(KNOB_FIELDS)}")
    given = {k: v for k, v in raw.items() if v is not None}
    if len([k for k in given if k != "confidence"]) > 1:
        raise KnobError(None, f"give at most one of {', '.join(EXCLUSIVE)}")
    for k, v in given.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise KnobError(k, "must be a number", code="invalid_type")
        if not math.isfinite(v):
            raise KnobError(k, "must be a finite number")
    try:
        return Knob(**{KNOB_FIELDS[k]: float(v) for k, v in given.items()})
    except ValueError as e:
        first = "confidence" if "confidence" in given else next(iter(given), None)
        raise KnobError(first, str(e)) from None


def knob_fields(raw: Any) -> dict[str, float] | None:
    """``raw`` checked by ``knob_from_fields`` and kept as written (floats, Nones dropped):
    what a key stores as its default routing; None for an empty one."""
    knob_from_fields(raw)
    return {k: float(v) for k, v in raw.items() if v is not None} or None
