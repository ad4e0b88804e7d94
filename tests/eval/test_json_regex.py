"""The json_schema and regex scorers: where JSON is found in a response, what a pattern must
match, and which targets are refused up front."""

from __future__ import annotations

from typing import Any

import pytest

from rankgate.eval import scorers
from rankgate.eval.scorers.base import Item
from rankgate.eval.scorers.json_schema import JsonSchemaScorer, extract_json, parse_strict_json
from rankgate.eval.scorers.regex import RegexScorer

JSON = JsonSchemaScorer()
REGEX = RegexScorer()

PERSON = {
    "type": "object",
    "required": ["name", "qty"],
    "properties": {"name": {"const": "Ada Lane"}, "qty": {"type": "integer", "const": 36}},
}


def json_item(schema: Any) -> Item:
    return Item(id="j", messages=[], scorer="json_schema", target=schema)


def regex_item(pattern: Any, **metadata: Any) -> Item:
    return Item(id="r", messages=[], scorer="regex", target=pattern, metadata=metadata)


# ------------------------------------------------------------------ json_schema: responses

JSON_CASES = [
    ('{"name": "Ada Lane", "qty": 36}', 1.0),
    ('  \n{"name": "Ada Lane", "qty": 36}\n', 1.0),
    ('```json\n{"name": "Ada Lane", "qty": 36}\n```', 1.0),
    ('```\n{"name": "Ada Lane", "qty": 36}\n```', 1.0),  # an unlabelled fence
    ('Sure! Here it is:\n```json\n{"name": "Ada Lane", "qty": 36}\n```\nAnything else?', 1.0),
    ('The record is {"name": "Ada Lane", "qty": 36}. Done.', 1.0),  # a span inside prose
    ('Fill in {name} and [qty]: {"name": "Ada Lane", "qty": 36}', 1.0),  # decoys that don't parse
    ('{"name": "Ada Lane", "qty": 36.0}', 1.0),  # 36.0 is the number 36 in JSON Schema
    ('{"name": "Ada Lane", "qty": "36"}', 0.0),  # a string is not an integer
    ('{"name": "ada lane", "qty": 36}', 0.0),  # const is exact
    ('{"name": "Ada Lane"}', 0.0),  # a required key is missing
    ("{'name': 'Ada Lane', 'qty': 36}", 0.0),  # Python dict syntax is not JSON
    ('{"name": "Ada Lane", "qty": 36,}', 0.0),  # a trailing comma is not JSON
    ('{"name": "Ada Lane", "qty": NaN}', 0.0),  # NaN is not JSON
    ('[{"name": "Ada Lane", "qty": 36}]', 0.0),  # wrapped in an array
    # the first JSON found is the answer: a later, valid one does not rescue it
    ('{"name": "Ada Lane", "qty": 24}\nOops, I mean {"name": "Ada Lane", "qty": 36}', 0.0),
    # a ```json block wins over an earlier unlabelled block
    ('```\nexample: {"qty": 1}\n```\n```json\n{"name": "Ada Lane", "qty": 36}\n```', 1.0),
    ("I could not find the information.", 0.0),
    ("", 0.0),
]


@pytest.mark.parametrize(("response", "expected"), JSON_CASES)
def test_json_response_scores_as_pinned(response: str, expected: float) -> None:
    assert JSON.score(response, json_item(PERSON)).value == expected


def test_json_score_reports_the_failing_path_and_the_extracted_json() -> None:
    result = JSON.score('Result: {"name": "Ada Lane", "qty": 24}', json_item(PERSON))
    assert result.value == 0.0
    assert "at qty" in result.explanation
    assert result.extracted == '{"name": "Ada Lane", "qty": 24}'


def test_json_format_keywords_are_checked() -> None:
    item = json_item({"type": "string", "format": "date"})
    assert JSON.score('"2025-10-17"', item).value == 1.0
    assert JSON.score('"2025-17-10"', item).value == 0.0


def test_json_bool_is_not_a_number() -> None:
    assert JSON.score("true", json_item({"const": 1})).value == 0.0


def test_json_schema_draft_is_taken_from_the_schema() -> None:
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}
    assert JSON.score("7", json_item(schema)).value == 1.0


def test_json_scorer_never_raises_on_odd_input() -> None:
    assert JSON.score(None, json_item(PERSON)).value == 0.0  # type: ignore[arg-type]
    assert JSON.score("{" * 5000, json_item(PERSON)).value == 0.0
    assert JSON.score("[" * 100_000, json_item(PERSON)).value == 0.0  # deeper than recursion
    assert JSON.score("x", json_item({"type": "nonsense"})).value == 0.0


def test_strict_json_accepts_only_json_or_one_fenced_block() -> None:
    assert parse_strict_json(' {"a": 1} ') == ({"a": 1}, '{"a": 1}')
    assert parse_strict_json('```json\n{"a": 1}\n```') == ({"a": 1}, '{"a": 1}')
    assert parse_strict_json('Here: ```json\n{"a": 1}\n```') is None
    assert parse_strict_json('Here: {"a": 1}') is None
    assert extract_json('Here: {"a": 1}') == ({"a": 1}, '{"a": 1}')


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ("object", "must be a JSON object"),
        (True, "must be a JSON object"),
        ({"type": "objekt"}, "invalid JSON Schema"),
        ({"properties": {"a": {"minLength": -1}}}, "invalid JSON Schema at properties/a"),
        ({"required": "name"}, "invalid JSON Schema"),
    ],
)
def test_json_check_rejects_invalid_schemas(schema: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        JSON.check(json_item(schema))


# ------------------------------------------------------------------ regex: responses

REGEX_CASES: list[tuple[str, dict[str, Any], str, float]] = [
    (r"\(555\) \d{3}-\d{4}", {}, "Call (555) 382-9104 today", 1.0),  # search by default
    (r"\(555\) \d{3}-\d{4}", {"fullmatch": True}, "  (555) 382-9104\n", 1.0),  # stripped
    (r"\(555\) \d{3}-\d{4}", {"fullmatch": True}, "Sure! (555) 382-9104", 0.0),
    (r"\(555\) \d{3}-\d{4}", {"fullmatch": True}, "(555) 382-91045", 0.0),
    (r"\(555\) \d{3}-\d{4}", {}, "(555) 38-29104", 0.0),
    (r"green", {}, "GREEN", 0.0),  # case-sensitive unless told
    (r"green", {"flags": "i"}, "GREEN", 1.0),
    (r"green", {"flags": ["i"]}, "Green", 1.0),  # flags may be a list
    (r"^answer: \d+$", {}, "work\nanswer: 42", 0.0),  # ^ and $ are whole-text anchors
    (r"^answer: \d+$", {"flags": "m"}, "work\nanswer: 42\nthanks", 1.0),
    (r"start.*end", {}, "start\nmiddle\nend", 0.0),  # . stops at newlines
    (r"start.*end", {"flags": "s"}, "start\nmiddle\nend", 1.0),
    (r"(?:red|blue)[.!]?", {"flags": "i", "fullmatch": True}, "Blue.", 1.0),
    (r"(?:red|blue)[.!]?", {"flags": "i", "fullmatch": True}, "Blue. Or red.", 0.0),
    (r"\bcat\b", {}, "concatenate", 0.0),
    (r"x", {}, "", 0.0),
]


@pytest.mark.parametrize(("pattern", "meta", "response", "expected"), REGEX_CASES)
def test_regex_response_scores_as_pinned(
    pattern: str, meta: dict[str, Any], response: str, expected: float
) -> None:
    assert REGEX.score(response, regex_item(pattern, **meta)).value == expected


def test_regex_reports_the_matched_text() -> None:
    result = REGEX.score("The code is AB-12.", regex_item(r"[A-Z]{2}-\d+"))
    assert result.value == 1.0
    assert result.extracted == "AB-12"


def test_regex_never_raises_on_odd_input() -> None:
    assert REGEX.score(None, regex_item("a")).value == 0.0  # type: ignore[arg-type]
    assert REGEX.score("a", regex_item("(")).value == 0.0


@pytest.mark.parametrize(
    ("pattern", "meta", "reason"),
    [
        ("(unclosed", {}, "does not compile"),
        ("", {}, "non-empty string"),
        (42, {}, "non-empty string"),
        ("a", {"flags": "iq"}, "unknown regex flag"),
        ("a", {"flags": 2}, "flags must be"),
        ("a", {"fullmatch": "yes"}, "fullmatch must be"),
    ],
)
def test_regex_check_rejects_unusable_targets(pattern: Any, meta: dict, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        REGEX.check(regex_item(pattern, **meta))


def test_registry_returns_both_scorers() -> None:
    assert isinstance(scorers.get("json_schema"), JsonSchemaScorer)
    assert isinstance(scorers.get("regex"), RegexScorer)
