"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with honest statuses.

Everything that goes wrong on the request path is raised as an ``APIError`` (or a
``BackendError``, which carries the same four fields) and rendered in exactly one place, so the
shape and the logging can't drift between endpoints.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 as soon as it grows past ``limit`` bytes (chunked uploads
    included: a declared content-length is checked before reading anything)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"The request body is {int(declared)} bytes; the limit is {limit}.",
                       code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"The request body is larger than the limit of {limit} bytes.",
                           code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not raw:
        raise APIError(400, "The request body is empty; send a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise APIError(400, f"The request body is not valid JSON: {e}.",
                       code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def error_body(message: str, type: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(err: APIError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(error_body(err.message, err.type, err.param, err.code)),
        status_code=err.status,
        media_type="application/json",
        headers={**err.headers, **(headers or {})},
    )
