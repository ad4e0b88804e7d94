"""Structured output: the response must contain JSON that validates against the item's schema.

The target is a JSON Schema (any draft ``jsonschema`` knows; the ``$schema`` key picks it, the
newest draft otherwise). Models wrap JSON in prose and code fences, so the scorer looks for the
JSON the way a careful caller's parser would, in this order, and scores the FIRST candidate that
parses (it never shops among several for one that validates):

1. the whole response;
2. a fenced code block (```json blocks before unlabelled ones);
3. the first ``{...}`` or ``[...]`` span, scanning left to right, that decodes as JSON.

``NaN``/``Infinity`` are rejected (they are not JSON). ``format`` keywords are checked where
``jsonschema`` can check them without extra packages (``date``, ``email``, ``ipv4``, ...), so a
schema can pin ``"format": "date"``. To require exact extracted values, put ``const``/``enum`` in
the schema.

``extract_json`` and ``parse_strict_json`` are shared with the ``constraints`` scorer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rankgate.eval.scorers.base import Item, PureScorer, Score

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n[ \t]*)?```", re.S)
_MAX_CHARS = 200_000  # longer responses are cut: scanning is quadratic in the worst case
_MAX_SPANS = 500  # start positions tried for a {...}/[...] span before giving up
# what a failed parse raises: bad JSON, or nesting deeper than the interpreter's recursion limit
_PARSE_ERRORS = (ValueError, RecursionError)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of each fenced block, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def parse_strict_json(text: str) -> tuple[Any, str] | None:
    """Parse a response that should BE JSON: the whole response, or the whole response being one
    fenced block. Returns ``(value, json_text)`` or ``None``.

    This is the instruction-following reading ("answer only in JSON"): prose around the JSON
    is a violation, so the ``constraints`` scorer uses this and not ``extract_json``.
    """
    stripped = text[:_MAX_CHARS].strip()
    try:
        return _loads(stripped), stripped
    except _PARSE_ERRORS:
        pass
    blocks = _fenced_blocks(stripped)
    if len(blocks) == 1:
        match = _FENCE.search(stripped)
        if match and match.start() == 0 and match.end() == len(stripped):
            body = blocks[0][1].strip()
            try:
                return _loads(body), body
            except _PARSE_ERRORS:
                return None
    return None


def extract_json(text: str) -> tuple[Any, str] | None:
    """Find the JSON a lenient caller would take from ``text`` (see the module docstring).
    Returns ``(value, json_text)`` for the first candidate that parses, or ``None``."""
    text = text[:_MAX_CHARS]
    stripped = text.strip()
    try:
        return _loads(stripped), stripped
    except _PARSE_ERRORS:
        pass
    blocks = _fenced_blocks(text)
    ordered = [b for lang, b in blocks if lang == "json"]
    ordered += [b for lang, b in blocks if lang != "json"]
    for body in ordered:
        try:
            return _loads(body.strip()), body.strip()
        except _PARSE_ERRORS:
            continue
    for attempt, match in enumerate(re.finditer(r"[\[{]", text)):
        if attempt >= _MAX_SPANS:
            break
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except _PARSE_ERRORS:
            continue
        return value, text[match.start() : end]
    return None


def schema_validator(schema: Any) -> Any:
    """A ready validator for ``schema``; ``ValueError`` with a one-line reason if the schema is
    unusable (not an object, or invalid under its own metaschema)."""
    import jsonschema  # imported here: only items that use schemas pay for it

    if not isinstance(schema, dict):
        raise ValueError(f"schema must be a JSON object, got {type(schema).__name__}")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.path) or "(root)"
        raise ValueError(f"invalid JSON Schema at {path}: {exc.message}") from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validation_error(validator: Any, value: Any) -> str | None:
    """One line describing the most relevant validation error, or ``None`` if ``value`` is valid."""
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    path = "/".join(str(p) for p in error.absolute_path) or "(root)"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"at {path}: {message}"


def _compact(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class JsonSchemaScorer(PureScorer):
    """1.0 if the response's JSON validates against ``item.target`` (a JSON Schema), else 0.0."""

    name = "json_schema"

    def check(self, item: Item) -> None:
        schema_validator(item.target)

    def score(self, response: str, item: Item) -> Score:
        try:
            validator = schema_validator(item.target)
        except ValueError as exc:
            return Score(0.0, f"unusable target: {exc}")
        found = extract_json(response or "")
        if found is None:
            return Score(0.0, "no parseable JSON in the response")
        value, text = found
        try:
            error = validation_error(validator, value)
        except Exception as exc:  # a pathological schema/value pair must not crash a run
            return Score(0.0, f"validation failed to run: {type(exc).__name__}", _compact(text))
        if error is not None:
            return Score(0.0, f"JSON does not match the schema {error}", _compact(text))
        return Score(1.0, "JSON parses and matches the schema", _compact(text))
