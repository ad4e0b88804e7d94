"""The dashboard's routes under ``/ui``: pages, one JSON endpoint, and the forms that change
something (log in/out, create and revoke keys, give feedback).

Every route first decides access (``session.access``): without it a page redirects to the
login form and a fragment or data endpoint answers 401 — never data. Every change needs the
CSRF token of the session (``session.csrf_ok``) and is refused on a read-only dashboard.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from rankgate.gateway.auth import InvalidKeySettings
from rankgate.gateway.state import GatewayState
from rankgate.gateway.ui import boards as boards_mod
from rankgate.gateway.ui import evals_view, login, queries, routing_view
from rankgate.gateway.ui.feedback import FeedbackError, record_feedback
from rankgate.gateway.ui.render import Pages
from rankgate.gateway.ui.revoked import RevokedSessions
from rankgate.gateway.ui.session import COOKIE, Access, Sessions, access, csrf_ok
from rankgate.gateway.ui.spend import SpendCache
from rankgate.store.request_queries import STATUS_CLASSES, find_request

FORM_LIMIT = 64 * 1024
REFRESH_S = 5

Handler = Callable[[Request, Access], Awaitable[Response]]


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form body (what browsers and htmx send), first value of each field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            break
    parsed = parse_qs(body[:FORM_LIMIT].decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _is_fragment(request: Request) -> bool:
    return (request.headers.get("hx-request") == "true"
            or request.url.path.startswith(("/ui/api/", "/ui/partials/")))


def _shown_messages(raw: str) -> list[tuple[str, str]]:
    """(role, text) of each logged message: a string content as is, parts and tool calls as
    indented JSON. The template escapes both."""
    try:
        msgs = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [("?", raw)]
    out = []
    for m in msgs if isinstance(msgs, list) else [msgs]:
        if not isinstance(m, dict):
            out.append(("?", str(m)))
            continue
        content = m.get("content")
        rest = {k: v for k, v in m.items() if k not in ("role", "content")}
        text = content if isinstance(content, str) else (
            orjson.dumps(content, option=orjson.OPT_INDENT_2).decode() if content else "")
        if rest:
            text += ("\n" if text else "") + orjson.dumps(rest, option=orjson.OPT_INDENT_2).decode()
        out.append((str(m.get("role", "?")), text))
    return out


class Dashboard:
    """Everything the pages need, built once per gateway by ``mount_ui``."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.pages = Pages()
        self.boards = boards_mod.Boards(state.request_log.engine)
        self.spend = SpendCache()
        self.routing_cache = routing_view.RoutingCache()
        key = state.settings.admin_key if state.auth is not None else None
        self.sessions = Sessions(key) if key else None
        self.revoked = RevokedSessions(state.request_log.engine)

    async def access(self, request: Request) -> Access:
        """What ``request`` may do; a cookie of a logged-out session grants nothing."""
        acc = access(request, self.state.auth, self.sessions)
        cookie = request.cookies.get(COOKIE)
        if acc.via == "cookie" and cookie and await self.revoked.contains(
                Sessions.session_id(cookie)):
            return Access("none")
        return acc

    def guarded(self, handler: Handler, *, write: bool = False
                ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            acc = await self.access(request)
            if not acc.can_read:
                if _is_fragment(request) or request.method != "GET":
                    return Response("Log in to the dashboard first (or send the admin key "
                                    "as a Bearer header).", status_code=401,
                                    media_type="text/plain",
                                    headers={"WWW-Authenticate": "Bearer"})
                nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/ui/login?next={quote(nxt)}", status_code=303)
            if write and not acc.can_write:
                return self.page(request, acc, "message.html", status=403,
                                 title="Read-only", message="This dashboard is read-only: "
                                 "the gateway has no admin key. Set RANKGATE_ADMIN_KEY to "
                                 "manage it from here.")
            t0 = time.perf_counter()
            resp = await handler(request, acc)
            # what the page cost the server (queries + rendering), for browsers' dev tools
            # and bench/dashboard.py
            resp.headers["server-timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.1f}"
            return resp

        return run

    def page(self, request: Request, acc: Access, name: str, status: int = 200,
             **context: Any) -> Response:
        return self.pages.render(name, status=status, acc=acc, path=request.url.path,
                                 refresh_s=REFRESH_S, **context)

    # -- login (login.py) ----------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        return await login.login_form(self, request)

    async def login(self, request: Request) -> Response:
        return await login.login(self, request, await _form(request))

    async def logout(self, request: Request, acc: Access) -> Response:
        return await login.logout(self, request, acc, await _form(request))

    def csrf_refused(self, request: Request, acc: Access) -> Response:
        return self.page(request, acc, "message.html", status=403, title="Refused",
                         message="This form was not sent by this dashboard (its CSRF token "
                         "is missing or wrong). Reload the page and try again.")

    # -- pages -------------------------------------------------------------------------
    async def overview(self, request: Request, acc: Access) -> Response:
        data = await queries.overview(self.state, self.spend)
        name = "_overview.html" if request.url.path.startswith("/ui/partials/") else \
            "overview.html"
        return self.page(request, acc, name, d=data, fig=data["live"])

    async def overview_api(self, request: Request, acc: Access) -> Response:
        data = await queries.overview(self.state, self.spend)
        return Response(orjson.dumps(queries.overview_json(data)),
                        media_type="application/json", headers={"cache-control": "no-store"})

    async def routing(self, request: Request, acc: Access) -> Response:
        window = request.query_params.get("window", "24h")
        window = window if window in routing_view.WINDOWS else "24h"
        data = await self.routing_cache.get(self.state, window,
                                            request.query_params.get("key") or None)
        chart = {"buckets": sorted({b for b, _, _ in data["mix"]}), "models": data["models"],
                 "counts": [[b, m, n] for b, m, n in data["mix"]]}
        return self.page(request, acc, "routing.html", d=data, chart=chart,
                         windows=list(routing_view.WINDOWS))

    async def leaderboard(self, request: Request, acc: Access) -> Response:
        data = await self.boards.get(request.query_params.get("source", "embedded"))
        board = data["board"]
        return self.page(request, acc, "leaderboard.html", d=data, board=board,
                         points=boards_mod.pareto_points(board) if board else [],
                         cats=boards_mod.categories(board) if board else [],
                         sources=boards_mod.SOURCES)

    async def requests(self, request: Request, acc: Access) -> Response:
        params = dict(request.query_params)
        flt = queries.parse_filter(params, time.time())
        rows, nxt = await queries.requests_page(
            self.state, flt, queries.parse_cursor(params.get("before")))
        keep = {k: v for k, v in params.items() if k != "before" and v}
        return self.page(request, acc, "requests.html", rows=rows, next_cursor=nxt,
                         params=params, keep=keep, statuses=list(STATUS_CLASSES),
                         windows=list(queries.WINDOWS), models=self.state.panel.ids)

    async def request_detail(self, request: Request, acc: Access, *,
                             notice: str | None = None, status: int = 200) -> Response:
        rid = request.path_params["request_id"]
        engine = self.state.request_log.engine
        req = await asyncio.to_thread(find_request, engine, rid)
        if req is None:
            return self.page(request, acc, "message.html", status=404, title="Not found",
                             message="No logged request has this id (a request answered a "
                             "moment ago may not be written yet).")
        from rankgate.store.outcome_store import query_outcomes
        from rankgate.store.request_queries import exchanges_of

        bodies, rated, why = await asyncio.gather(
            asyncio.to_thread(exchanges_of, engine, rid),
            asyncio.to_thread(query_outcomes, engine, prompt_ids=[rid]),
            queries.explain(self.state, req))
        for x in bodies:
            x["shown"] = _shown_messages(x["messages"])
        return self.page(request, acc, "request.html", status=status, r=req, bodies=bodies,
                         outcomes=[o for _, o in rated], why=why, notice=notice)

    async def feedback(self, request: Request, acc: Access) -> Response:
        form = await _form(request)
        if not csrf_ok(acc, request, form):
            return self.csrf_refused(request, acc)
        try:
            score = await record_feedback(self.state, request.path_params["request_id"],
                                          form.get("thumbs") or None, form.get("score") or None,
                                          form.get("comment") or None)
        except FeedbackError as e:
            return await self.request_detail(request, acc, notice=str(e), status=400)
        return await self.request_detail(request, acc, notice=f"Feedback recorded: score "
                                         f"{score:g}.")

    async def keys(self, request: Request, acc: Access, *, created: dict[str, Any] | None = None,
                   error: str | None = None, status: int = 200) -> Response:
        keys = await queries.keys_page(self.state)
        return self.page(request, acc, "keys.html", status=status, keys=keys, created=created,
                         error=error, auth_on=self.state.auth is not None, now=time.time())

    async def create_key(self, request: Request, acc: Access) -> Response:
        form = await _form(request)
        if not csrf_ok(acc, request, form):
            return self.csrf_refused(request, acc)
        assert self.state.auth is not None  # write access implies an admin key

        def whole(name: str) -> int | None:
            v = form.get(name, "").strip()
            return int(v) if v.isdigit() else (None if not v else -1)

        budget_raw = form.get("budget_usd", "").strip()
        try:
            budget = float(budget_raw) if budget_raw else None
        except ValueError:
            return await self.keys(request, acc, error="budget_usd must be a number of "
                                   "dollars (or empty for no budget).", status=400)
        models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
        try:
            secret, info = await asyncio.to_thread(
                self.state.auth.store.create, form.get("name", ""), models or None,
                whole("rpm"), whole("tpm"), budget, form.get("budget_period") or "month")
        except InvalidKeySettings as e:
            return await self.keys(request, acc, error=f"{e}.", status=400)
        # the one time the secret is shown: in this response, never stored, never again
        return await self.keys(request, acc, created={"secret": secret, **info.public()})

    async def revoke_key(self, request: Request, acc: Access) -> Response:
        form = await _form(request)
        if not csrf_ok(acc, request, form):
            return self.csrf_refused(request, acc)
        assert self.state.auth is not None
        key_id = request.path_params["key_id"]
        if await asyncio.to_thread(self.state.auth.store.revoke, key_id):
            self.state.auth.forget(key_id)
            return RedirectResponse("/ui/keys", status_code=303)
        return await self.keys(request, acc, error=f"No active key with id {key_id}.",
                               status=404)

    async def evals(self, request: Request, acc: Access) -> Response:
        return self.page(request, acc, "evals.html", d=await evals_view.evals_page(self.state),
                         now=time.time())


def build_ui_router(dash: Dashboard) -> APIRouter:
    r = APIRouter(prefix="/ui", include_in_schema=False)
    g = dash.guarded
    r.add_api_route("/login", dash.login_form, methods=["GET"])
    r.add_api_route("/login", dash.login, methods=["POST"])
    r.add_api_route("/logout", g(dash.logout, write=True), methods=["POST"])
    r.add_api_route("", g(dash.overview), methods=["GET"])
    r.add_api_route("/", g(dash.overview), methods=["GET"])
    r.add_api_route("/partials/overview", g(dash.overview), methods=["GET"])
    r.add_api_route("/api/overview", g(dash.overview_api), methods=["GET"])
    r.add_api_route("/routing", g(dash.routing), methods=["GET"])
    r.add_api_route("/leaderboard", g(dash.leaderboard), methods=["GET"])
    r.add_api_route("/requests", g(dash.requests), methods=["GET"])
    r.add_api_route("/requests/{request_id}", g(dash.request_detail), methods=["GET"])
    r.add_api_route("/requests/{request_id}/feedback", g(dash.feedback, write=True),
                    methods=["POST"])
    r.add_api_route("/keys", g(dash.keys), methods=["GET"])
    r.add_api_route("/keys", g(dash.create_key, write=True), methods=["POST"])
    r.add_api_route("/keys/{key_id}/revoke", g(dash.revoke_key, write=True), methods=["POST"])
    r.add_api_route("/evals", g(dash.evals), methods=["GET"])
    return r


def mount_ui(app: FastAPI, state: GatewayState) -> None:
    """Add the dashboard to a gateway app: its routes and its static assets (the vendored
    htmx and Chart.js, the stylesheet: public files that hold no data)."""
    dash = Dashboard(state)
    app.include_router(build_ui_router(dash))
    app.mount("/ui/static", StaticFiles(packages=[("rankgate.gateway.ui", "static")]),
              name="ui-static")


__all__ = ["Dashboard", "build_ui_router", "mount_ui"]
