"""Pattern answers: the response must match the item's regular expression (Python ``re``).

The target is the pattern. ``metadata.flags`` is an optional string (or list) of ``i`` (ignore
case), ``m`` (``^``/``$`` per line), ``s`` (``.`` matches newlines) and ``x`` (verbose).
By default the pattern may match anywhere (``re.search``); with ``metadata.fullmatch: true`` it
must match the whole response after stripping surrounding whitespace, which is how to say
"answer with nothing else". A pattern is a precise but blunt tool: anchor it, and prefer
``fullmatch`` when distractor text could contain the accepted form.
"""

from __future__ import annotations

import re
from typing import Any

from rankgate.eval.scorers.base import Item, PureScorer, Score

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_MAX_CHARS = 100_000  # bounds the cost of a backtracking pattern on a runaway response


def parse_flags(flags: Any) -> int:
    """``re`` flags from ``"im"`` or ``["i", "m"]``; ``ValueError`` on anything else."""
    if flags is None:
        return 0
    if isinstance(flags, str):
        letters = list(flags)
    elif isinstance(flags, list) and all(isinstance(f, str) for f in flags):
        letters = list("".join(flags))
    else:
        raise ValueError(f"flags must be a string like 'im', got {type(flags).__name__}")
    value = 0
    for letter in letters:
        if letter.lower() not in _FLAGS:
            raise ValueError(f"unknown regex flag {letter!r} (use i, m, s, x)")
        value |= _FLAGS[letter.lower()]
    return value


def compile_pattern(pattern: Any, flags: Any = None) -> re.Pattern[str]:
    """The compiled pattern; ``ValueError`` with a one-line reason if it is unusable."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("regex target must be a non-empty string")
    try:
        return re.compile(pattern, parse_flags(flags))
    except re.error as exc:
        raise ValueError(f"regex does not compile: {exc}") from None


class RegexScorer(PureScorer):
    """1.0 if ``item.target`` matches the response (anywhere, or fully with ``fullmatch``)."""

    name = "regex"

    def check(self, item: Item) -> None:
        compile_pattern(item.target, item.metadata.get("flags"))
        fullmatch = item.metadata.get("fullmatch", False)
        if not isinstance(fullmatch, bool):
            raise ValueError("metadata.fullmatch must be true or false")

    def score(self, response: str, item: Item) -> Score:
        try:
            self.check(item)
            pattern = compile_pattern(item.target, item.metadata.get("flags"))
        except ValueError as exc:
            return Score(0.0, f"unusable target: {exc}")
        text = (response or "")[:_MAX_CHARS]
        if item.metadata.get("fullmatch", False):
            match = pattern.fullmatch(text.strip())
            how = "the whole response"
        else:
            match = pattern.search(text)
            how = "the response"
        if match is None:
            return Score(0.0, f"pattern {pattern.pattern!r} does not match {how}")
        found = match.group(0)
        shown = found if len(found) <= 200 else found[:197] + "..."
        return Score(1.0, f"pattern matches {how}: {shown!r}", found)
