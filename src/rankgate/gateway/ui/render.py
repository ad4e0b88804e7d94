"""Jinja2 with autoescaping on for every template: a logged prompt or a model name holding
``<script>`` is shown as text, never run. Numbers are formatted here, once."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse


def _usd(v: float | None, significant: int = 6) -> str:
    """Dollars: cents from $1 up; below, ``significant`` digits without an exponent
    (local models cost fractions of a cent per request)."""
    if v is None:
        return "—"
    if abs(v) >= 1:
        return f"${v:,.2f}"
    if v == 0:
        return "$0"
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(v))))
    return f"${v:.{decimals}f}".rstrip("0").rstrip(".")


def _pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}%}"


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.1f} ms"


def _num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _fixed(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _sig(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def make_env() -> Environment:
    env = Environment(loader=PackageLoader("rankgate.gateway.ui", "templates"),
                      autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters.update(usd=_usd, pct=_pct, ms=_ms, num=_num, when=_when, fixed=_fixed,
                       sig=_sig)
    return env


class Pages:
    """Renders a template into an HTML response (no caching by browsers or proxies: every
    page holds live data behind a login)."""

    def __init__(self) -> None:
        self.env = make_env()

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers={
            "cache-control": "no-store", "x-content-type-options": "nosniff",
            "x-frame-options": "DENY", "referrer-policy": "same-origin",
            "content-security-policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; frame-ancestors 'none'; form-action 'self'")})
