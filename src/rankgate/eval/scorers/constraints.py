"""Instruction following with machine-checkable constraints.

The target is a list of constraints, each ``{"type": ..., "value": ..., <options>}``. The score is
1.0 only if EVERY constraint holds (strict prompt-level accuracy): a user who asked for "three
bullets, no commas" is not half-served by four bullets. Scores are therefore 0/1 and paired
tests apply. The explanation lists every failed constraint with what was measured.

Counting rules (what a constraint author may rely on):

- **words**: whitespace-separated tokens that contain at least one letter or digit. List markers
  at the start of a line (``-``, ``*``, ``•``, ``1.``, ``1)``) and heading marks (``#``) are not
  words. A hyphen joins ("well-known" is one word), an apostrophe joins ("don't" is one word),
  em and en dashes separate ("tea—hot" is two). Numbers are words ("1,200" is one word);
  lone punctuation ("-", "&", "...") is not.
- **lines**: non-blank lines; blank lines (stanza gaps) are not counted.
- **sentences**: a sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes or
  brackets) followed by whitespace or the end of the text, and at every line break. A period
  after a common abbreviation (Mr., Dr., e.g., a.m., etc.) or a single capital initial does not
  end a sentence; "3.5" does not either. Fragments with no letter or digit are not sentences.
- **paragraphs**: blocks of text separated by one or more blank lines.
- **bullets**: lines starting with ``- ``, ``* ``, ``• `` or a number and ``.``/``)`` then a space.
- **phrases** (``contains``/``not_contains``): case-insensitive, whole words at both ends
  ("tea" does not match "team"), any run of whitespace matches a space, curly apostrophes equal
  straight ones.
- **placeholders**: square-bracketed text such as ``[name]`` (not a Markdown link ``[x](url)``).
- **JSON** (``json``, ``json_schema``): the whole response, or the whole response being one
  fenced block, must parse; prose around it fails ("answer only in JSON").
- An empty response fails every item.

Constraint types: max_words, min_words, max_chars, exact_lines, max_lines, min_lines,
max_sentences, min_sentences, exact_sentences, bullet_count, starts_with, ends_with, contains,
not_contains, all_lowercase, all_uppercase, no_commas, json, json_schema, regex,
language_ascii_only, placeholder_count, title_wrapped, paragraph_count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rankgate.eval.scorers.base import Item, PureScorer, Score, usable_text
from rankgate.eval.scorers.json_schema import parse_strict_json, schema_validator, validation_error
from rankgate.eval.scorers.regex import compile_pattern

# ---------------------------------------------------------------- counting (shared with keyfacts)

_LINE_MARKER = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)]|#{1,6})[ \t]+", re.M)
_WORD_SPLIT = re.compile(r"[\s—–]+")
_BULLET = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]+\S", re.M)
_SENTENCE_END = re.compile(r"(?:[.!?…]+)[\"'”’)\]]*(?=\s|$)")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st vs etc e.g i.e a.m p.m inc ltd co jr sr no approx fig dept est".split()
)
_PLACEHOLDER = re.compile(r"\[([^\[\]\n]*)\](?!\()")
_TITLE = re.compile(r"<<([^<>\n]*)>>")


def _has_alnum(text: str) -> bool:
    return any(c.isalnum() for c in text)


def count_words(text: str) -> int:
    """Words by the rules in the module docstring (editor-style, list markers excluded)."""
    return sum(1 for token in _WORD_SPLIT.split(_LINE_MARKER.sub(" ", text)) if _has_alnum(token))


def nonblank_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def split_sentences(text: str) -> list[str]:
    """Sentences by the rules in the module docstring."""
    sentences: list[str] = []
    for line in nonblank_lines(text):
        start = 0
        for match in _SENTENCE_END.finditer(line):
            if match.group(0).rstrip("\"'”’)]") == ".":
                before = line[start : match.start()].split()
                last = before[-1].lstrip("(\"'“‘") if before else ""
                if last.lower() in _ABBREVIATIONS or (len(last) == 1 and last.isupper()):
                    continue
            sentences.append(line[start : match.end()].strip())
            start = match.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if _has_alnum(s)]


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n(?:[ \t]*\n)+", text.strip()) if _has_alnum(p)]


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Case-insensitive whole-word pattern for ``phrase`` (see the module docstring)."""
    phrase = phrase.strip().replace("’", "'")
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    left = r"(?<!\w)" if re.match(r"\w", phrase) else ""
    right = r"(?!\w)" if re.search(r"\w$", phrase) else ""
    return re.compile(left + body + right, re.IGNORECASE)


def _phrase_count(phrase: str, text: str) -> int:
    return len(phrase_pattern(phrase).findall(text.replace("’", "'")))


# ---------------------------------------------------------------- value validation


def _count_value(minimum: int) -> Callable[[dict[str, Any]], None]:
    def validate(c: dict[str, Any]) -> None:
        v = c.get("value")
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{c['type']}: value must be an integer >= {minimum}, got {v!r}")

    return validate


def _text_value(c: dict[str, Any]) -> None:
    if not isinstance(c.get("value"), str) or not c["value"].strip():
        raise ValueError(f"{c['type']}: value must be a non-empty string")


def _phrases(c: dict[str, Any]) -> list[str]:
    v = c.get("value")
    return [v] if isinstance(v, str) else list(v)


def _phrase_value(c: dict[str, Any]) -> None:
    v = c.get("value")
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        raise ValueError(f"{c['type']}: value must be a phrase or a non-empty list of phrases")
    for p in items:
        if not isinstance(p, str) or not _has_alnum(p):
            raise ValueError(f"{c['type']}: every phrase must be a string with a letter or digit")
    if "min_count" in c:
        mc = c["min_count"]
        if isinstance(mc, bool) or not isinstance(mc, int) or mc < 1:
            raise ValueError(f"{c['type']}: min_count must be an integer >= 1")


def _flag_value(c: dict[str, Any]) -> None:
    if c.get("value", True) is not True:
        raise ValueError(f"{c['type']}: value must be true (or omitted)")


def _json_value(c: dict[str, Any]) -> None:
    _flag_value(c)
    keys = c.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("json: keys must be a list of strings")


def _schema_value(c: dict[str, Any]) -> None:
    schema_validator(c.get("value"))


def _regex_value(c: dict[str, Any]) -> None:
    compile_pattern(c.get("value"), c.get("flags"))


def _title_value(c: dict[str, Any]) -> None:
    v = c.get("value", True)
    if v is not True and not (isinstance(v, str) and v.strip()):
        raise ValueError("title_wrapped: value must be true or the exact title")


def _at_least_option(c: dict[str, Any]) -> None:
    if not isinstance(c.get("at_least", False), bool):
        raise ValueError(f"{c['type']}: at_least must be true or false")


def _ignore_case_option(c: dict[str, Any]) -> None:
    if not isinstance(c.get("ignore_case", False), bool):
        raise ValueError(f"{c['type']}: ignore_case must be true or false")


# ---------------------------------------------------------------- checks
# Each returns None when the constraint holds, else a short reason with what was measured.


def _compare(name: str, got: int, want: int, op: str) -> str | None:
    ok = {"<=": got <= want, ">=": got >= want, "==": got == want}[op]
    return None if ok else f"{name}: got {got}, want {op} {want}"


def _count(measure: Callable[[str], int], op: str) -> Callable[[str, dict[str, Any]], str | None]:
    def check(text: str, c: dict[str, Any]) -> str | None:
        effective = ">=" if op == "==" and c.get("at_least") else op
        return _compare(c["type"], measure(text), c["value"], effective)

    return check


def _starts_with(text: str, c: dict[str, Any]) -> str | None:
    got, want = text.lstrip(), c["value"]
    if c.get("ignore_case"):
        got, want = got.lower(), want.lower()
    if got.startswith(want):
        return None
    return f"starts_with: response starts {text.lstrip()[: len(want) + 10]!r}"


def _ends_with(text: str, c: dict[str, Any]) -> str | None:
    got, want = text.rstrip(), c["value"]
    if c.get("ignore_case"):
        got, want = got.lower(), want.lower()
    if got.endswith(want):
        return None
    return f"ends_with: response ends {text.rstrip()[-(len(want) + 10) :]!r}"


def _contains(text: str, c: dict[str, Any]) -> str | None:
    need = c.get("min_count", 1)
    short = [(p, n) for p in _phrases(c) if (n := _phrase_count(p, text)) < need]
    if not short:
        return None
    if need > 1:
        return "contains: " + ", ".join(f"{p!r} found {n}, want >= {need}" for p, n in short)
    return f"contains: missing {', '.join(repr(p) for p, _ in short)}"


def _not_contains(text: str, c: dict[str, Any]) -> str | None:
    present = [repr(p) for p in _phrases(c) if _phrase_count(p, text)]
    return f"not_contains: found {', '.join(present)}" if present else None


def _all_lowercase(text: str, c: dict[str, Any]) -> str | None:
    if not any(ch.isalpha() for ch in text):
        return "all_lowercase: no letters"
    upper = [ch for ch in text if ch.isupper()]
    return f"all_lowercase: {len(upper)} uppercase letters (e.g. {upper[0]!r})" if upper else None


def _all_uppercase(text: str, c: dict[str, Any]) -> str | None:
    if not any(ch.isalpha() for ch in text):
        return "all_uppercase: no letters"
    lower = [ch for ch in text if ch.islower()]
    return f"all_uppercase: {len(lower)} lowercase letters (e.g. {lower[0]!r})" if lower else None


def _no_commas(text: str, c: dict[str, Any]) -> str | None:
    n = sum(text.count(ch) for ch in ",，、")
    return f"no_commas: {n} commas" if n else None


def _ascii_only(text: str, c: dict[str, Any]) -> str | None:
    bad = sorted({ch for ch in text if ord(ch) > 127})
    return f"language_ascii_only: non-ASCII {''.join(bad[:5])!r}" if bad else None


def _json(text: str, c: dict[str, Any]) -> str | None:
    parsed = parse_strict_json(text)
    if parsed is None:
        return "json: response is not (only) JSON"
    keys = c.get("keys", [])
    if keys:
        value = parsed[0]
        if not isinstance(value, dict):
            return f"json: top level is {type(value).__name__}, not an object"
        missing = [k for k in keys if k not in value]
        if missing:
            return f"json: missing keys {', '.join(missing)}"
    return None


def _json_schema(text: str, c: dict[str, Any]) -> str | None:
    parsed = parse_strict_json(text)
    if parsed is None:
        return "json_schema: response is not (only) JSON"
    error = validation_error(schema_validator(c["value"]), parsed[0])
    return f"json_schema: {error}" if error else None


def _regex(text: str, c: dict[str, Any]) -> str | None:
    pattern = compile_pattern(c["value"], c.get("flags"))
    return None if pattern.search(text[:100_000]) else f"regex: {c['value']!r} does not match"


def _placeholder_count(text: str) -> int:
    return sum(1 for m in _PLACEHOLDER.finditer(text) if _has_alnum(m.group(1)))


def _title_wrapped(text: str, c: dict[str, Any]) -> str | None:
    titles = [t.strip() for t in _TITLE.findall(text) if _has_alnum(t)]
    if not titles:
        return "title_wrapped: no <<title>>"
    want = c.get("value", True)
    if want is not True and want.strip().lower() not in (t.lower() for t in titles):
        return f"title_wrapped: title is {titles[0]!r}, want {want!r}"
    return None


@dataclass(frozen=True)
class _Rule:
    validate: Callable[[dict[str, Any]], None]  # raises ValueError on an unusable constraint
    holds: Callable[[str, dict[str, Any]], str | None]  # None, or why it failed
    options: frozenset[str] = frozenset()  # keys allowed besides "type" and "value"


_RULES: dict[str, _Rule] = {
    "max_words": _Rule(_count_value(1), _count(count_words, "<=")),
    "min_words": _Rule(_count_value(1), _count(count_words, ">=")),
    "max_chars": _Rule(_count_value(1), _count(lambda t: len(t.strip()), "<=")),
    "exact_lines": _Rule(_count_value(1), _count(lambda t: len(nonblank_lines(t)), "==")),
    "max_lines": _Rule(_count_value(1), _count(lambda t: len(nonblank_lines(t)), "<=")),
    "min_lines": _Rule(_count_value(1), _count(lambda t: len(nonblank_lines(t)), ">=")),
    "max_sentences": _Rule(_count_value(1), _count(lambda t: len(split_sentences(t)), "<=")),
    "min_sentences": _Rule(_count_value(1), _count(lambda t: len(split_sentences(t)), ">=")),
    "exact_sentences": _Rule(_count_value(1), _count(lambda t: len(split_sentences(t)), "==")),
    "bullet_count": _Rule(
        lambda c: (_count_value(0)(c), _at_least_option(c)),
        _count(lambda t: len(_BULLET.findall(t)), "=="),
        frozenset({"at_least"}),
    ),
    "starts_with": _Rule(
        lambda c: (_text_value(c), _ignore_case_option(c)), _starts_with, frozenset({"ignore_case"})
    ),
    "ends_with": _Rule(
        lambda c: (_text_value(c), _ignore_case_option(c)), _ends_with, frozenset({"ignore_case"})
    ),
    "contains": _Rule(_phrase_value, _contains, frozenset({"min_count"})),
    "not_contains": _Rule(_phrase_value, _not_contains),
    "all_lowercase": _Rule(_flag_value, _all_lowercase),
    "all_uppercase": _Rule(_flag_value, _all_uppercase),
    "no_commas": _Rule(_flag_value, _no_commas),
    "json": _Rule(_json_value, _json, frozenset({"keys"})),
    "json_schema": _Rule(_schema_value, _json_schema),
    "regex": _Rule(_regex_value, _regex, frozenset({"flags"})),
    "language_ascii_only": _Rule(_flag_value, _ascii_only),
    "placeholder_count": _Rule(
        lambda c: (_count_value(0)(c), _at_least_option(c)),
        _count(_placeholder_count, "=="),
        frozenset({"at_least"}),
    ),
    "title_wrapped": _Rule(_title_value, _title_wrapped),
    "paragraph_count": _Rule(_count_value(1), _count(lambda t: len(paragraphs(t)), "==")),
}
_OPTIONAL_VALUE = {"all_lowercase", "all_uppercase", "no_commas", "json", "language_ascii_only"}
_OPTIONAL_VALUE |= {"title_wrapped"}


def constraint_types() -> list[str]:
    """The constraint types this scorer understands."""
    return list(_RULES)


def validate_constraint(c: Any) -> None:
    """``ValueError`` with a one-line reason if ``c`` is not a usable constraint."""
    if not isinstance(c, dict):
        raise ValueError(f"each constraint must be an object, got {type(c).__name__}")
    kind = c.get("type")
    if kind not in _RULES:
        raise ValueError(f"unknown constraint type {kind!r} (known: {', '.join(_RULES)})")
    rule = _RULES[kind]
    extra = set(c) - {"type", "value"} - rule.options
    if extra:
        raise ValueError(f"{kind}: unknown keys {', '.join(sorted(extra))}")
    if "value" not in c and kind not in _OPTIONAL_VALUE:
        raise ValueError(f"{kind}: value is required")
    rule.validate(c)


class ConstraintsScorer(PureScorer):
    """1.0 if the response satisfies every constraint in ``item.target``, else 0.0."""

    name = "constraints"

    def check(self, item: Item) -> None:
        if not isinstance(item.target, list) or not item.target:
            raise ValueError("constraints target must be a non-empty list of constraint objects")
        for c in item.target:
            validate_constraint(c)

    def score(self, response: str, item: Item) -> Score:
        text = usable_text(self, response, item)
        if isinstance(text, Score):
            return text
        failed = []
        for c in item.target:
            try:
                reason = _RULES[c["type"]].holds(text, c)
            except Exception as exc:  # one odd response must not crash a run
                reason = f"{c['type']}: check failed ({type(exc).__name__})"
            if reason is not None:
                failed.append(reason)
        n = len(item.target)
        if failed:
            return Score(0.0, f"failed {len(failed)}/{n}: " + "; ".join(failed))
        return Score(1.0, f"all {n} constraints met")
