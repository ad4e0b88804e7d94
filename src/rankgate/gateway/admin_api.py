"""The admin API: create, list, inspect and revoke virtual keys (``/admin/keys``).

Every route needs the admin key (``Authorization: Bearer $RANKGATE_ADMIN_KEY``); without one
configured the admin API is disabled and says so (401). A new key's secret is in the 201
response of ``POST /admin/keys`` and nowhere else, ever. Errors are OpenAI-shaped JSON.

``/admin/router`` (swap a router artifact in, list what serves) is the exception: a gateway
without an admin key is bound to loopback, and there it takes router swaps from loopback
clients, so that ``route promote`` → swap works on a local install.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from rankgate.gateway.auth import Auth, InvalidKeySettings, KeyInfo, bearer_token
from rankgate.gateway.errors import APIError, error_response, json_object, read_body

CREATE_FIELDS = ("name", "models", "rpm", "tpm", "budget_usd", "budget_period", "routing",
                 "log_bodies")
BODY_LIMIT = 64 * 1024


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _admin_auth(request: Request) -> Auth:
    """The gateway's ``Auth`` if this request carries the admin key; else a 401."""
    auth: Auth | None = getattr(request.app.state.rankgate, "auth", None)
    if auth is None or not auth.enabled:
        raise APIError(401, "The admin API is disabled: no admin key is configured (set "
                       "RANKGATE_ADMIN_KEY).", code="admin_disabled")
    header = request.headers.get("authorization")
    if not bearer_token(header) and request.headers.get("x-api-key"):
        header = "Bearer " + request.headers["x-api-key"]
    if not auth.is_admin(header):
        raise APIError(401, "Admin routes need the admin key: send 'Authorization: Bearer "
                       "<admin key>'.", code="invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})
    return auth


def _errors_as_json(handler: Callable[[Request], Awaitable[Response]]
                    ) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except APIError as e:
            return error_response(e)

    return run


async def _create(request: Request) -> Response:
    auth = _admin_auth(request)
    body = json_object(await read_body(request, BODY_LIMIT))
    unknown = sorted(set(body) - set(CREATE_FIELDS))
    if unknown:
        raise APIError(400, f"Unknown field(s) {unknown}; a key takes "
                       f"{', '.join(CREATE_FIELDS)}.", param=unknown[0], code="invalid_value")
    if "name" not in body:
        raise APIError(400, "'name' is required: a label for the key, e.g. the team using it.",
                       param="name", code="missing_required_parameter")
    args = {k: v for k, v in body.items() if v is not None}
    try:
        secret, info = await asyncio.to_thread(auth.store.create, **args)
    except InvalidKeySettings as e:
        raise APIError(400, f"{e}.", param=e.param, code="invalid_value") from None
    return _json({"object": "api_key", "key": secret, **info.public()}, status=201)


async def _list(request: Request) -> Response:
    auth = _admin_auth(request)
    include_revoked = request.query_params.get("include_revoked", "").lower() in ("1", "true")
    keys = await asyncio.to_thread(auth.store.list, include_revoked)
    return _json({"object": "list", "data": [{"object": "api_key", **k} for k in keys]})


async def _get(request: Request) -> Response:
    """One key's settings and, if limits are on, what it has used so far."""
    auth = _admin_auth(request)
    key_id = request.path_params["key_id"]
    found = await asyncio.to_thread(auth.store.get, key_id)
    if found is None:
        raise APIError(404, f"No key with id {key_id!r}.", param="key_id", code="key_not_found")
    out: dict[str, Any] = {"object": "api_key", **found}
    limiter = getattr(request.app.state.rankgate, "limiter", None)
    if limiter is not None and found["revoked_at"] is None:
        info = KeyInfo(**{k: found[k] for k in ("id", "name", "prefix", "rpm", "tpm",
                                                "budget_usd", "budget_period", "routing")},
                       models=tuple(found["models"]) if found["models"] is not None else None)
        out["usage"] = await limiter.usage(info)
    return _json(out)


async def _revoke(request: Request) -> Response:
    auth = _admin_auth(request)
    key_id = request.path_params["key_id"]
    if not await asyncio.to_thread(auth.store.revoke, key_id):
        raise APIError(404, f"No active key with id {key_id!r}.", param="key_id",
                       code="key_not_found")
    auth.forget(key_id)  # other processes drop it within their cache TTL
    return _json({"object": "api_key", "id": key_id, "deleted": True})


ROUTER_FIELDS = ("path", "name")


def _router_admin(request: Request) -> None:
    """Router swaps need the admin key; a gateway without one (open, and then bound to
    loopback only by the CLI) takes them from loopback clients only."""
    auth: Auth | None = getattr(request.app.state.rankgate, "auth", None)
    if auth is not None and auth.enabled:
        _admin_auth(request)
        return
    import ipaddress

    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in ("localhost", "testclient")  # Starlette's test client
    if not loopback:
        raise APIError(401, "Without an admin key the router API answers loopback clients "
                       "only; set RANKGATE_ADMIN_KEY to manage routers remotely.",
                       code="admin_disabled")


async def _swap_router(request: Request) -> Response:
    """Load an artifact and swap it in (``gateway/router_swap.py``); 400 naming the problem
    when it cannot serve, the old router still serving."""
    from pathlib import Path

    from rankgate.gateway.router_swap import swap
    from rankgate.routing.artifact import ArtifactError

    _router_admin(request)
    body = json_object(await read_body(request, BODY_LIMIT))
    unknown = sorted(set(body) - set(ROUTER_FIELDS))
    if unknown:
        raise APIError(400, f"Unknown field(s) {unknown}; a router swap takes 'path' and "
                       "optionally 'name'.", param=unknown[0], code="invalid_value")
    path, name = body.get("path"), body.get("name")
    if not isinstance(path, str) or not path:
        raise APIError(400, "'path' is required: the router artifact (.npz) to serve, as a "
                       "path on the gateway's machine.", param="path",
                       code="missing_required_parameter")
    if name is not None and not isinstance(name, str):
        raise APIError(400, "'name' must be a string.", param="name", code="invalid_type")
    try:
        info = await swap(request.app.state.rankgate, Path(path), name)
    except ArtifactError as e:
        raise APIError(400, f"{e}. The previous router keeps serving.", param="path",
                       code="invalid_router") from None
    except ValueError as e:
        raise APIError(400, f"{e}.", param="name", code="invalid_value") from None
    except OSError as e:
        raise APIError(400, f"{path}: cannot read the file ({e.strerror or e}). The previous "
                       "router keeps serving.", param="path", code="invalid_router") from None
    return _json(info)


async def _list_routers(request: Request) -> Response:
    from rankgate.gateway.router_swap import describe

    _router_admin(request)
    table = request.app.state.rankgate.routing
    return _json({"object": "list", "data": [describe(n, r, n == table.default)
                                             for n, r in table.routers.items()]})


def build_admin_router() -> APIRouter:
    """Routes under ``/admin``; they read ``request.app.state.rankgate.auth`` (an ``Auth``)
    and, for usage figures, ``request.app.state.rankgate.limiter`` if set."""
    router = APIRouter(prefix="/admin", tags=["admin"])
    router.add_api_route("/keys", _errors_as_json(_create), methods=["POST"], status_code=201,
                         summary="Create a virtual key (its secret is shown only here)")
    router.add_api_route("/keys", _errors_as_json(_list), methods=["GET"],
                         summary="List keys (never their secrets)")
    router.add_api_route("/keys/{key_id}", _errors_as_json(_get), methods=["GET"],
                         summary="One key's settings and usage")
    router.add_api_route("/keys/{key_id}", _errors_as_json(_revoke), methods=["DELETE"],
                         summary="Revoke a key")
    router.add_api_route("/router", _errors_as_json(_swap_router), methods=["POST"],
                         summary="Swap in a router artifact without a restart")
    router.add_api_route("/router", _errors_as_json(_list_routers), methods=["GET"],
                         summary="The routers serving model='auto' and their artifacts")
    return router
