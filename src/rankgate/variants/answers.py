"""Final answers out of free text: what chain-of-thought hands the scorers and what
self-consistency votes on.

A reasoning model's reply is mostly reasoning; the workload's scorers must grade the answer,
not the arithmetic on the way to it. The convention the chain-of-thought recipe asks for is a
last line ``Answer: …``; everything after the last such marker is the answer (it may span
lines, e.g. a code block). A reply without the marker is kept whole, so a scorer that can find
the answer in prose still can.
"""

from __future__ import annotations

import re

_MARK = re.compile(r"(?i)(?:\*\*)?\b(?:final\s+)?answer\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?")
_SPACE = re.compile(r"\s+")


def final_answer(text: str) -> str | None:
    """The text after the last ``Answer:`` marker, or None when there is none (or it is
    empty)."""
    last = None
    for m in _MARK.finditer(text):
        last = m
    if last is None:
        return None
    answer = text[last.end():].strip().strip("*").strip()
    return answer or None


def extracted(text: str) -> str:
    """The final answer when the reply marks one, else the whole reply."""
    return final_answer(text) or text.strip()


def vote_key(text: str) -> str:
    """What two replies must share to count as the same vote: the final answer, case,
    surrounding whitespace and a trailing full stop ignored."""
    return _SPACE.sub(" ", extracted(text)).strip().rstrip(".").strip().lower()
