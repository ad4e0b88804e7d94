"""Summaries and extractions against a reference: which required facts made it into the answer.

The target is a list of facts; each fact is a string or a list of alternative phrasings (any one
counts). The score is the fraction of facts present, so it is graded in [0, 1]. Two metadata
keys turn a wordy or hallucinating answer into 0, because a summary that pastes the whole
passage contains every fact and is still useless:

- ``max_words``: the response may have at most this many words (counted as the ``constraints``
  scorer counts them);
- ``forbidden``: strings that must not appear (markers of a hallucination or of the distractor
  value the prompt warned about), matched like facts.

Matching is lexical: negation is not understood ("not 1,587" contains "1,587"), so a forbidden
marker must be something a faithful answer cannot contain, and ``max_words`` should sit well
below the passage length (the starter data keeps it near 60 % or less) so that echoing the
passage cannot pass.

``metadata.reference`` holds the human reference answer (the data tests require it to score 1.0).

Matching normalises both sides to tokens and looks for the fact's tokens as a contiguous run:

- case, accents and Unicode width are folded ("José" = "jose"); punctuation separates tokens,
  so whole words are required ("tea" does not match "team") and "follow-up" = "follow up";
- numbers lose thousands separators and trailing decimal zeros ("1,200" = "1200" = "1200.00",
  "12.50" = "12.5"), but "3.12" never contains "12"; ordinal suffixes go ("5th" = "5");
- a plural -s is ignored on words of four or more letters ("handles" = "handle", "hours" =
  "hour"; not on -ss/-us/-is words); irregular plurals need alternatives;
- the words zero to twenty become digits ("three" = "3"); ``%`` is the word "percent";
- currency symbols and other symbols are dropped ("$40" = "40"), so write facts whose numbers
  cannot collide with another quantity in the passage, or give the unit ("40 dollars").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from rankgate.eval.scorers.base import Item, PureScorer, Score, usable_text
from rankgate.eval.scorers.constraints import count_words

_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:(?:st|nd|rd|th)(?![^\W\d_]))?"
    r"|(?P<pct>%)"
    r"|(?P<word>[^\W\d_]+)"
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
        " fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def _singular(word: str) -> str:
    """Drop a plural -s ("handles" -> "handle") so a summary may say either; short words and
    -ss/-us/-is endings ("glass", "bonus", "analysis") keep theirs. Both sides get the same
    treatment, so an over-eager cut ("news" -> "new") only merges two rare spellings."""
    if len(word) >= 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _number(raw: str) -> str:
    raw = raw.replace(",", "")
    if "." in raw:
        raw = raw.rstrip("0").rstrip(".")
    return raw


def tokens(text: str) -> list[str]:
    """The normalised tokens of ``text`` (see the module docstring)."""
    out = []
    for m in _TOKEN.finditer(_fold(text)):
        if m.group("num") is not None:
            out.append(_number(m.group("num")))
        elif m.group("pct") is not None:
            out.append("percent")
        else:
            word = m.group("word")
            out.append(_NUMBER_WORDS.get(word) or _singular(word))
    return out


def _joined(text: str) -> str:
    return " " + " ".join(tokens(text)) + " "


def _present(fact: str, haystack: str) -> bool:
    return _joined(fact) in haystack


def _alternatives(fact: Any) -> list[str]:
    return [fact] if isinstance(fact, str) else list(fact)


def _label(fact: Any) -> str:
    return repr(_alternatives(fact)[0])


class KeyFactsScorer(PureScorer):
    """Fraction of ``item.target`` facts present in the response (0 if too long or forbidden)."""

    name = "keyfacts"

    def check(self, item: Item) -> None:
        facts = item.target
        if not isinstance(facts, list) or not facts:
            raise ValueError("keyfacts target must be a non-empty list of facts")
        for fact in facts:
            alternatives = [fact] if isinstance(fact, str) else fact
            if not isinstance(alternatives, list) or not alternatives:
                raise ValueError(f"fact {fact!r} must be a string or a non-empty list of strings")
            for alt in alternatives:
                if not isinstance(alt, str) or not tokens(alt):
                    raise ValueError(f"fact alternative {alt!r} has no letters or digits")
        meta = item.metadata
        max_words = meta.get("max_words")
        if max_words is not None and (
            isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1
        ):
            raise ValueError(f"metadata.max_words must be a positive integer, got {max_words!r}")
        forbidden = meta.get("forbidden", [])
        if not isinstance(forbidden, list) or not all(
            isinstance(f, str) and tokens(f) for f in forbidden
        ):
            raise ValueError("metadata.forbidden must be a list of strings with letters or digits")
        if "reference" in meta and not isinstance(meta["reference"], str):
            raise ValueError("metadata.reference must be a string")

    def score(self, response: str, item: Item) -> Score:
        text = usable_text(self, response, item)
        if isinstance(text, Score):
            return text
        haystack = _joined(text)
        present = [any(_present(a, haystack) for a in _alternatives(f)) for f in item.target]
        missing = [_label(f) for f, ok in zip(item.target, present, strict=True) if not ok]
        n = len(item.target)
        summary = f"{sum(present)}/{n} facts"
        if missing:
            summary += f" (missing {', '.join(missing)})"

        max_words = item.metadata.get("max_words")
        if max_words is not None and (words := count_words(text)) > max_words:
            return Score(0.0, f"{words} words > max_words {max_words}; {summary}")
        hits = [repr(f) for f in item.metadata.get("forbidden", []) if _present(f, haystack)]
        if hits:
            return Score(0.0, f"forbidden content {', '.join(hits)}; {summary}")
        return Score(sum(present) / n, summary)
