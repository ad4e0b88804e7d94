"""Structured logs: one JSON object per line, with the request id when there is one.

Nothing is logged per successful request (the request log table is the access log, written
off the request path); failures, warnings and lifecycle events are. Extra fields passed with
``log.warning(..., extra={"request_id": ...})`` become top-level keys.
"""

from __future__ import annotations

import logging
import time

import orjson

# attributes every LogRecord has; anything else came in through ``extra=``
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Root logging for ``rankgate serve``; httpx's per-request INFO lines are silenced (one
    line per upstream call on the hot path)."""
    if fmt not in ("json", "text"):
        raise ValueError("log format must be 'json' or 'text'")
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
