"""Request bodies checked against the OpenAI shapes in ``schemas.py``: one 400 per bad body,
whose ``param`` names the field at fault (``messages[2].content[0].text``), never a 422 or 500.

pydantic reports one error per union member it tried and puts union-member and model names in
error locations; this turns that into the single error a client can act on.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from rankgate.backends.base import Kind
from rankgate.gateway import schemas
from rankgate.gateway.errors import APIError

_SCHEMAS: dict[Kind, type[BaseModel]] = {"chat": schemas.ChatCompletionRequest,
                                         "text": schemas.CompletionRequest}


def validate_body(kind: Kind, body: dict[str, Any]) -> None:
    """Raise the 400 ``APIError`` for a body the endpoint of ``kind`` does not accept."""
    try:
        _SCHEMAS[kind].model_validate(body)
    except ValidationError as e:
        raise _validation_error(e) from None


def _param(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


#: loc entries pydantic adds for union members and models, which are not request fields
_TYPE_NAMES = {"str", "int", "float", "bool", "dict", "list", "none", *schemas.model_names()}


def _field_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and (
        "[" in p or "=" in p or p in _TYPE_NAMES)))


def _validation_error(e: ValidationError) -> APIError:
    """The one 400 for an invalid body: the deepest failing field (for a union, the member
    the client most likely meant), with what each union member would have accepted."""
    errors = e.errors(include_url=False)
    locs = [_field_loc(err["loc"]) for err in errors]
    pick = max(range(len(errors)), key=lambda i: (len(locs[i]), -i))
    first, loc = errors[pick], locs[pick]
    same = [err for err, lc in zip(errors, locs, strict=True) if lc == loc]
    got = first.get("input")
    if first["type"] in ("invalid_role", "invalid_part_type"):
        if not isinstance(got, dict):
            param = _param(loc)
            return APIError(400, f"Invalid type for '{param}': expected an object, got "
                            f"{_shown(got)}.", param=param, code="invalid_type")
        field = "role" if first["type"] == "invalid_role" else "type"
        loc = (*loc, field)
        if field not in got:
            param = _param(loc)
            return APIError(400, f"Missing required parameter: '{param}'.", param=param,
                            code="missing_required_parameter")
        got = got[field]
    param = _param(loc) or None
    if first["type"] == "missing":
        return APIError(400, f"Missing required parameter: '{param}'.", param=param,
                        code="missing_required_parameter")
    msg = " or ".join(dict.fromkeys(
        err["msg"] if i == 0 else err["msg"].removeprefix("Input should be ")
        for i, err in enumerate(same)))
    return APIError(400, f"Invalid value for '{param}': {msg} (got {_shown(got)}).",
                    param=param, code="invalid_value" if "type" not in first["type"]
                    else "invalid_type")


def _shown(v: Any) -> str:
    try:
        return orjson.dumps(v).decode()[:80]
    except TypeError:
        return type(v).__name__
