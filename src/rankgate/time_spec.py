"""Points in time as people type them on the command line: ``7d``, ``12h``, ``30m`` (that long
before now) or an ISO date/time (``2025-06-01``, ``2025-06-01T12:00``; UTC unless it says
otherwise). One parser for every ``--since``/``--until``/window option, so they all agree."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


class TimeSpecError(ValueError):
    """A time the parser does not understand; the message says what it accepts."""


def parse_duration(spec: str) -> float:
    """Seconds in ``7d``/``12h``/``30m``/``45s``/``2w``; ``TimeSpecError`` otherwise."""
    m = _AGO.match(spec)
    if not m:
        raise TimeSpecError(f"{spec!r} is not a duration: use e.g. 7d, 12h, 30m")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise TimeSpecError(f"{spec!r}: a duration must be positive")
    return seconds


def parse_time(spec: str, now: float | None = None) -> float:
    """Unix seconds of ``spec``: a duration before ``now`` (default: the current time) or an
    ISO 8601 date or date-time."""
    if _AGO.match(spec):
        return (time.time() if now is None else now) - parse_duration(spec)
    try:
        dt = datetime.fromisoformat(spec.strip())
    except ValueError:
        raise TimeSpecError(f"{spec!r} is not a time: use a duration before now (7d, 12h, "
                            "30m) or an ISO date (2025-06-01 or 2025-06-01T12:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
