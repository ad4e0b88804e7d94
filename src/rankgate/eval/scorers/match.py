"""Text-match scorers for short answers: ``exact`` and ``contains``.

``target`` is an accepted answer or a list of accepted aliases (``["Jupiter"]``,
``["Leonardo da Vinci", "da Vinci"]``). Both sides go through the same normalisation, so a
target and a response are compared as token sequences:

* accents dropped and case folded (``"Márquez"`` = ``"marquez"``);
* a leading ``"Answer:"`` / ``"Final answer:"`` dropped;
* apostrophes dropped (``"Newton's"`` → ``newtons``, ``"isn't"`` → ``isnt``), thousands
  separators dropped (``"1,000"`` → ``1000``), ``"/"`` read as ``or``;
* other punctuation and symbols become spaces, except a decimal point between digits and a
  minus sign before a number (``-3.5`` stays one token; use the ``numeric`` scorer for
  numbers that need tolerance or units);
* the articles the / an dropped, and "a" where it reads as the article: before a word, except
  a capital "A" inside a sentence (``"Vitamin A"``, ``"Plan A"`` keep it) and before
  is/was/or/and (``"vitamin a is"``); whitespace collapsed.

``exact``: the whole normalised response equals an accepted alias.

``contains``: an accepted alias occurs as a whole-word sequence (``"Paris"`` is in ``"The
capital is Paris."``, not in ``"Parisian"``), and the response is refused (0) when

* it names a wrong answer listed in ``metadata["reject"]`` (stops ``"Paris or Lyon"``
  hedging). A reject that is itself negated (``"Canberra, not Sydney"``, ``"Sydney is
  wrong"``) does not count: a correction of a distractor is not a hedge;
* any occurrence of the target is negated: ``"not Paris"``, ``"isn't Paris"``, ``"never
  Paris"``, ``"rather than / instead of / other than / except Paris"``, ``"neither Paris
  nor …"``, ``"Paris is not / is wrong / isn't …"``;
* an occurrence is offered as one of alternatives (``"Paris or Lyon"``, ``"Lyon or Paris"``,
  ``"Paris/Lyon"``) whose other side is not itself an accepted alias.

Limits: ``contains`` cannot judge every way of naming several candidates. ``"Paris, Lyon,
Nice"`` without a ``reject`` list scores 1; a negation further away than one filler word
(``"I would not say that the answer is Paris"``) is missed; ``"Paris? No."`` is missed; and a
negation or "or" next to the target refuses even when the prose means otherwise (``"Paris
or, as locals say, Paname"``). Items whose wrong answers are predictable should list them in
``reject``; items that need real reading should use the ``judge`` scorer.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from rankgate.eval.scorers.base import Item, PureScorer, Score

_ANSWER_PREFIX = re.compile(r"^[\s*_#>`\"']*(?:final\s+)?answer[\s*_]*[:=]", re.IGNORECASE)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_THE_AN = re.compile(r"\b(?:the|an)\b", re.IGNORECASE)
# "a" before a word; group 1 is what precedes it (start of text or a sentence/bracket mark)
_ARTICLE_A = re.compile(r"(^|[.!?:;\n(\[\"“‘'*_#>\-]\s*|\s)([Aa])(?=[ \t]+([^\W\d_]+))")
# words that never follow the article, so "a" before them is a letter ("vitamin a is")
_NOT_AFTER_ARTICLE = frozenset({"is", "was", "or", "and", "nor", "are", "were", "vs", "versus"})
_NEGATIONS = frozenset({
    "not", "never", "isnt", "wasnt", "arent", "werent", "dont", "doesnt", "didnt", "cant",
    "cannot", "wont", "wouldnt", "shouldnt", "couldnt", "aint", "neither", "nor", "except",
})
_NEGATION_PAIRS = frozenset({("rather", "than"), ("instead", "of"), ("other", "than")})
# words that may sit between a negation and the answer: "not actually Paris"
_FILLERS = frozenset({
    "actually", "really", "quite", "just", "exactly", "necessarily", "definitely",
    "certainly", "simply", "even", "always",
})
_COPULAS = frozenset({"is", "was"})
_DENIALS = frozenset({"not", "wrong", "incorrect", "false", "never"})


def normalize(text: str) -> list[str]:
    """The comparison tokens of ``text`` (see the module docstring for the rules)."""
    text = _ANSWER_PREFIX.sub(" ", text, count=1)
    text = _THE_AN.sub(" ", text)
    text = _ARTICLE_A.sub(lambda m: m.group(0) if _keeps_a(m) else m.group(1), text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = re.sub(r"['’‘`´]", "", text)
    text = _THOUSANDS.sub("", text).replace("/", " or ")
    out: list[str] = []
    for i, ch in enumerate(text):
        prev = text[i - 1] if i else ""
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch.isalnum() or ch.isspace():
            out.append(ch)
        elif ch == "." and prev.isdigit() and nxt.isdigit():
            out.append(ch)
        elif ch in "-−" and nxt.isdigit() and not prev.isalnum():
            out.append("-")
        else:
            out.append(" ")
    return "".join(out).split()


def _keeps_a(m: re.Match[str]) -> bool:
    """Whether an "a" before a word is a letter, not the article: a capital "A" inside a
    sentence ("Vitamin A deficiency", "Plan A"), or "a" before a verb/conjunction."""
    if m.group(3).casefold() in _NOT_AFTER_ARTICLE:
        return True
    return m.group(2) == "A" and m.group(1).isspace() and m.start() > 0


def _aliases(value: Any, what: str) -> list[list[str]]:
    """Normalised token sequences of a string or list of strings; ``ValueError`` if unusable."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ValueError(f"{what} must be a string or a non-empty list of strings")
    out = []
    for v in values:
        if not isinstance(v, str):
            raise ValueError(f"{what} entries must be strings, got {v!r}")
        tokens = normalize(v)
        if not tokens:
            raise ValueError(f"{what} entry {v!r} is empty after normalisation")
        out.append(tokens)
    return out


def _find(seq: list[str], tokens: list[str]) -> list[int]:
    """Start positions of ``seq`` as a whole-token run in ``tokens``."""
    n = len(seq)
    return [i for i in range(len(tokens) - n + 1) if tokens[i:i + n] == seq]


def _validate(item: Item) -> tuple[list[list[str]], list[list[str]]]:
    """(accepted aliases, rejected answers) as token sequences; ``ValueError`` if unusable."""
    accepted = _aliases(item.target, "target")
    reject_raw = (item.metadata or {}).get("reject")
    rejected = [] if reject_raw is None else _aliases(reject_raw, "metadata.reject")
    for r in rejected:
        for a in accepted:
            if _find(r, a):
                raise ValueError(f"metadata.reject entry {' '.join(r)!r} occurs inside the "
                                 f"accepted answer {' '.join(a)!r}, so no answer could pass")
    return accepted, rejected


def _negated(tokens: list[str], start: int, end: int) -> bool:
    """Whether the run ``tokens[start:end]`` is denied right before or right after it."""
    i = start - 1
    while i >= 0 and tokens[i] in _FILLERS:
        i -= 1
    if i >= 0 and tokens[i] in _NEGATIONS:
        return True
    if i >= 1 and (tokens[i - 1], tokens[i]) in _NEGATION_PAIRS:
        return True
    after = tokens[end:end + 2]
    return bool(after) and (after[0] in {"isnt", "wasnt"}
                            or (after[0] in _COPULAS and after[1:2] != []
                                and after[1] in _DENIALS))


def _alternatives(tokens: list[str], start: int, end: int, accepted: list[list[str]]) -> bool:
    """Whether the run is offered next to "or" with something that is not an accepted alias."""
    if end + 1 < len(tokens) and tokens[end] == "or":
        if not any(tokens[end + 1:end + 1 + len(a)] == a for a in accepted):
            return True
    if start >= 2 and tokens[start - 1] == "or":
        before = tokens[:start - 1]
        if not any(len(before) >= len(a) and before[len(before) - len(a):] == a
                   for a in accepted):
            return True
    return False


class ExactScorer(PureScorer):
    """1.0 when the whole normalised response is one of the accepted answers."""

    name = "exact"

    def check(self, item: Item) -> None:
        _validate(item)

    def score(self, response: str, item: Item) -> Score:
        try:
            accepted, _ = _validate(item)
        except ValueError as e:
            return Score(0.0, f"unusable item: {e}")
        if not isinstance(response, str):
            return Score(0.0, "response is not text")
        got = normalize(response)
        shown = " ".join(got)
        if not got:
            return Score(0.0, "empty response after normalisation")
        if got in accepted:
            return Score(1.0, f"matched {shown!r}", shown)
        return Score(0.0, f"{shown[:80]!r} is not an accepted answer "
                     f"(e.g. {' '.join(accepted[0])!r})", shown)


class ContainsScorer(PureScorer):
    """1.0 when an accepted answer appears as whole words, not negated, hedged or rejected."""

    name = "contains"

    def check(self, item: Item) -> None:
        _validate(item)

    def score(self, response: str, item: Item) -> Score:
        try:
            accepted, rejected = _validate(item)
        except ValueError as e:
            return Score(0.0, f"unusable item: {e}")
        if not isinstance(response, str):
            return Score(0.0, "response is not text")
        tokens = normalize(response)
        if not tokens:
            return Score(0.0, "empty response after normalisation")
        for r in rejected:
            for s in _find(r, tokens):
                if not _negated(tokens, s, s + len(r)):
                    return Score(0.0, f"names the rejected answer {' '.join(r)!r}",
                                 " ".join(r))
        hits = [(a, s) for a in accepted for s in _find(a, tokens)]
        if not hits:
            return Score(0.0, f"no accepted answer found (e.g. {' '.join(accepted[0])!r})")
        for a, s in hits:
            phrase = " ".join(a)
            if _negated(tokens, s, s + len(a)):
                return Score(0.0, f"refused: the response negates {phrase!r}", phrase)
            if _alternatives(tokens, s, s + len(a), accepted):
                return Score(0.0, f"refused: {phrase!r} is offered as one of alternatives",
                             phrase)
        phrase = " ".join(hits[0][0])
        return Score(1.0, f"found {phrase!r}", phrase)
