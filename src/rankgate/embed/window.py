"""The bounded part of a prompt that an embedder reads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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


class WindowedEmbedder:
    """What every built-in embedder shares: it reads only a head/tail window of each text
    (``head_chars`` + ``tail_chars``) and can be called like a function. Subclasses set the
    two sizes and define ``embed``."""

    head_chars: int
    tail_chars: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def window(self, text: str) -> str:
        """The part of ``text`` that is read (all of it when short enough), encodable as UTF-8."""
        return head_tail_window(text, self.head_chars, self.tail_chars)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Same as :meth:`embed`: shorthand for scripts and tests."""
        return self.embed(texts)
