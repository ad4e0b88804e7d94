"""Who may see the dashboard, and proof that a form was sent by it (CSRF).

A person logs in once with the admin key and gets a session cookie (HttpOnly, SameSite=Strict,
path ``/ui``): ``<expiry>.<session id>.<hmac>``, signed with a secret derived from the admin
key, so every replica that shares the admin key accepts it without a lookup. Logging out lists
the session id as revoked on the shared store (``gateway/ui/revoked.py``), so a copied cookie
dies with the session, not 12 hours later.
Scripts may send the admin key as a Bearer header instead. Every form that changes something
carries a CSRF token, an HMAC of the session cookie: another site can make a browser send the
cookie but cannot read the token. A Bearer request needs none (browsers never add that header
on their own). The login form has its own token (login CSRF: another site must not log a
browser into a session of its choosing): an HMAC of a random pre-session cookie that the form
page sets, checked against the cookie when the form comes back.

Without an admin key the gateway is open and bound to loopback (the CLI sees to that): the
dashboard is then read-only for loopback clients, says so, and refuses every change.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from rankgate.gateway.auth import Auth, bearer_token

COOKIE = "rankgate_ui"
LOGIN_COOKIE = "rankgate_ui_login"  # the pre-session nonce the login form's token signs
LOGIN_S = 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_S = 12 * 3600


@dataclass(frozen=True)
class Access:
    """What this request may do: ``admin`` (read and change), ``readonly`` (an open gateway,
    loopback client) or ``none``. ``csrf`` is the token forms must echo (cookie sessions)."""

    level: Literal["admin", "readonly", "none"]
    csrf: str | None = None
    via: Literal["cookie", "bearer", "open", "none"] = "none"

    @property
    def can_read(self) -> bool:
        return self.level != "none"

    @property
    def can_write(self) -> bool:
        return self.level == "admin"


class Sessions:
    """Issues and checks session cookies and CSRF tokens for one admin key."""

    def __init__(self, admin_key: str, max_age_s: int = SESSION_S) -> None:
        self._secret = hashlib.sha256(b"rankgate-ui-session|" + admin_key.encode()).digest()
        self.max_age_s = max_age_s

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        expiry = int((now or time.time()) + self.max_age_s)
        payload = f"{expiry}.{secrets.token_hex(12)}"
        return f"{payload}.{self._sign(payload)}"

    def valid(self, cookie: str | None, now: float | None = None) -> bool:
        if not cookie or cookie.count(".") != 2:
            return False
        payload, _, sig = cookie.rpartition(".")
        expiry = payload.partition(".")[0]
        if not expiry.isdigit() or int(expiry) < (now or time.time()):
            return False
        return hmac.compare_digest(sig, self._sign(payload))

    def csrf_for(self, cookie: str) -> str:
        return self._sign("csrf|" + cookie)

    @staticmethod
    def session_id(cookie: str) -> str:
        """The random part of a (valid) cookie: what logging out revokes."""
        return cookie.split(".")[1]

    @staticmethod
    def expiry(cookie: str) -> float:
        return float(cookie.partition(".")[0])

    def login_csrf(self, nonce: str) -> str:
        """The login form's token for the pre-session cookie ``nonce``."""
        return self._sign("login|" + nonce)

    def login_csrf_ok(self, nonce: str | None, sent: str | None) -> bool:
        return bool(nonce and sent) and hmac.compare_digest(str(sent),
                                                             self.login_csrf(str(nonce)))


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


def access(request: Request, auth: Auth | None, sessions: Sessions | None) -> Access:
    """Decide what ``request`` may do on the dashboard."""
    if auth is None or not auth.enabled or sessions is None:
        return Access("readonly", via="open") if _loopback(request) else Access("none")
    if bearer_token(request.headers.get("authorization")) and auth.is_admin(
            request.headers.get("authorization")):
        return Access("admin", via="bearer")
    cookie = request.cookies.get(COOKIE)
    if sessions.valid(cookie):
        assert cookie is not None
        return Access("admin", csrf=sessions.csrf_for(cookie), via="cookie")
    return Access("none")


def csrf_ok(acc: Access, request: Request, form: dict[str, str]) -> bool:
    """A change is allowed when it comes with the admin key as a header, or from a cookie
    session that echoes its CSRF token (form field or ``X-CSRF-Token`` header)."""
    if not acc.can_write:
        return False
    if acc.via == "bearer":
        return True
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return acc.csrf is not None and hmac.compare_digest(sent, acc.csrf)
