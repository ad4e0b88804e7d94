"""Logging in to the dashboard and out of it.

* The login form page sets a random pre-session cookie and embeds its HMAC as the form's CSRF
  token; a login POST without the pair is refused (403) before the admin key is even looked
  at, so another site cannot log a browser into a session of its choosing (login CSRF).
* Logging out revokes the session id on the shared store (``revoked.py``) as well as deleting
  the cookie: a copy of the cookie is refused from then on, by every gateway on the store.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rankgate.gateway.ui.session import (
    COOKIE,
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_S,
    Access,
    Sessions,
    csrf_ok,
)

if TYPE_CHECKING:
    from rankgate.gateway.ui.routes import Dashboard


def safe_next(target: str | None) -> str:
    """Only a path of this dashboard: never another site (an open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"


def _form_page(dash: Dashboard, request: Request, acc: Access, sessions: Sessions,
               status: int = 200, error: str | None = None, nxt: str = "") -> Response:
    """The login form with a token for the browser's pre-session cookie (a new one if it
    has none)."""
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_hex(16)
    resp = dash.page(request, acc, "login.html", status=status, next=nxt, error=error,
                     open_gateway=False, login_csrf=sessions.login_csrf(nonce))
    resp.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_S, path="/ui/login", httponly=True,
                    samesite="strict", secure=request.url.scheme == "https")
    return resp


async def login_form(dash: Dashboard, request: Request) -> Response:
    acc = await dash.access(request)
    if acc.can_read:
        return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    nxt = request.query_params.get("next", "")
    if dash.sessions is None:
        return dash.page(request, acc, "login.html", next=nxt, error=None, open_gateway=True)
    return _form_page(dash, request, acc, dash.sessions, nxt=nxt)


async def login(dash: Dashboard, request: Request, form: dict[str, str]) -> Response:
    acc = await dash.access(request)
    nxt = safe_next(form.get("next"))
    sessions = dash.sessions
    if sessions is None or dash.state.auth is None:
        return RedirectResponse(nxt, 303) if acc.can_read else dash.page(
            request, acc, "login.html", status=401, next=nxt, open_gateway=True,
            error="This gateway has no admin key; its dashboard is read-only and "
                  "answers loopback clients only.")
    if not sessions.login_csrf_ok(request.cookies.get(LOGIN_COOKIE), form.get(CSRF_FIELD)):
        return _form_page(dash, request, acc, sessions, status=403, nxt=nxt,
                          error="This login form was not sent by this dashboard (its CSRF "
                          "token is missing or wrong). Try again from this page.")
    if not dash.state.auth.is_admin("Bearer " + form.get("admin_key", "")):
        return _form_page(dash, request, acc, sessions, status=401, nxt=nxt,
                          error="That is not the admin key.")
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(COOKIE, sessions.issue(), max_age=sessions.max_age_s, path="/ui",
                    httponly=True, samesite="strict", secure=request.url.scheme == "https")
    resp.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return resp


async def logout(dash: Dashboard, request: Request, acc: Access, form: dict[str, str]
                 ) -> Response:
    if not csrf_ok(acc, request, form):
        return dash.csrf_refused(request, acc)
    cookie = request.cookies.get(COOKIE)
    if acc.via == "cookie" and cookie:
        await dash.revoked.revoke(Sessions.session_id(cookie), Sessions.expiry(cookie))
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/ui")
    return resp
