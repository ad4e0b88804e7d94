"""The bounded part of a prompt that an embedder reads."""

from __future__ import annotations

_SEP = " … "


def head_tail_window(text: str, head_chars: int, tail_chars: int) -> str:
    """The first ``head_chars`` and last ``tail_chars`` characters of a long ``text`` (all of a
    short one), with unpaired surrogates replaced so the result always encodes as UTF-8 — a
    bounded cost per prompt that keeps the question's start and its final instruction."""
    if len(text) > head_chars + tail_chars:
        tail = text[len(text) - tail_chars:] if tail_chars else ""
        text = text[:head_chars] + _SEP + tail
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
