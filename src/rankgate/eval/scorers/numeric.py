r"""Numeric answers: find the *final* number in free text and compare it with the target.

Models rarely answer with a bare number. They show their working, restate the question's numbers,
write ``$1,234.50``, ``\frac{3}{4}``, ``1 1/2 cups``, ``−5`` or ``6.02 × 10^23``, box the result,
or forget the requested format. A scorer that takes the first or the last number it sees
grades the restatement instead of the answer, so this one decides in a fixed, documented order.

Which number is the answer (the first rule that yields one decides):

1. **The last** ``\boxed{...}``: the LaTeX convention for "this is my final answer". A box with
   no number in it scores 0 (the model committed to a non-numeric answer).
2. **The last answer marker followed directly by a number**: ``Answer: 42``, ``final answer is
   42``, ``**Answer:** $42``, ``the answer is x = 42``, ``Answer:`` then ``42`` on the next line.
   A marker followed by words (``the answer is to multiply 3 by 4``, or the echoed template
   ``Answer: <number>``) is not a marker.
3. **The conclusion sentence.** Sentences end at ``.``/``!``/``?`` before whitespace and at line
   breaks. Walking back from the end, skip sentences without a number and skip *checks*: an
   equation made only of the prompt's numbers (``3 × 2 = 6`` when the prompt gave 3 and 6),
   or a sentence that opens with a cue word (``since``, ``because``, ``check``, ``recall``...)
   and brings no new number (``Check: 3 × $2 = $6`` after ``Each costs $2.``). The first
   sentence left is the conclusion. From it, drop a trailing *restating clause*: one that starts
   at ``since``/``because``/``as``/``given``/``if``/``when``/``where``/``for``, holds only
   numbers already seen in the prompt or earlier, and does not go on to conclude (``so``,
   ``therefore``, ``gives``...). ``Each apple costs $2, as 3 apples cost $6`` keeps ``Each apple
   costs $2``; ``The remainder is 2 when 100 is divided by 7`` keeps ``The remainder is 2``.
   The answer is the last number of what remains, which is also how ``= 42`` at the end is read
   (``96 / 4 = 24 eggs`` gives 24; ``30 ÷ 12 = 2.5, so she needs 3 cartons`` gives 3, even
   though 3 is also in the prompt). If every sentence was skipped, the last number of the
   response.

   So the prompt's numbers lose only where they are recognisably restated, never merely for
   being in the prompt: an answer may equal a given (``Each of the 4 friends gets 24 eggs``).
   Two things are deliberately *not* guessed. An uncued check that uses the answer
   (``Each costs $2. 3 × 2 = 6.``) reads as the conclusion, because it looks exactly like a last
   derivation step whose result equals a given (``4 × 24 = 96. 96 / 4 = 24 eggs each.``); and a
   self-correction after a marker (``Answer: 5. No wait, 6``) keeps the marker's 5. Asking for
   ``Answer: <number>`` on its own line, as the starter prompts do, avoids both.

Inside a box or after a marker the answer is the first number, or the result of a worked chain
that starts there (``Answer: 2 + 3 = 5`` gives 5); a hedge (``5 or 6``, ``5 to 6``) scores 0.

Reading numbers: signs (``-5``, ``−5``, ``-$5``), currency symbols, thousands separators
(``1,234.50``, LaTeX ``1{,}234``), decimals, fractions (``3/4``, ``\frac{3}{4}``), mixed numbers
(``1 1/2``, ``1\frac{1}{2}``), scientific notation (``1.5e-3``, ``6.02 × 10^{23}``), scale words
(``2.5 million``) and trailing units (``12 cm``, ``3.5 hours``) are understood; ordinals
(``2nd``), step labels (``Step 2:``) and the ``1.``/``2.`` opening the lines of a numbered list
are not answers. Spaces are not thousands separators (``1 000`` is read as 1 and 0; a thin
space is).
A percent sign is a unit: ``45%`` reads as 45, so give percentage targets in percent (``45`` or
``"45%"``); ``45%`` does not match a target of 0.45. Number words up to ninety-nine
(``twelve``, ``twenty-one``) count only inside a box, after a marker, or as the whole response,
because "one" and "two" are everywhere in prose.

The match is ``|found − target| ≤ max(rel_tol · max(|found|, |target|), abs_tol)`` in exact
rational arithmetic, with ``metadata.rel_tol`` (default 1e-6) and ``metadata.abs_tol`` (default
1e-9): set a looser ``rel_tol`` on items whose answers may legitimately be rounded.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from rankgate.eval.scorers.base import Item, PureScorer, Score

DEFAULT_REL_TOL = 1e-6
DEFAULT_ABS_TOL = 1e-9
_MAX_CHARS = 20_000  # the answer is at the end: read only the tail of a runaway response
_MAX_ANSWER_CHARS = 300  # an answer line longer than this after its marker is not an answer
_MAX_SHOWN = 80

_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}

# One number as written in prose or LaTeX (after ``_normalize``). The look-behind keeps numbers
# glued to words ("x2", "H2O") and the digits after a decimal point from being read alone.
_NUMBER = re.compile(
    r"""
    (?<![\w.])
    (?P<sign>[-−+]?)(?P<cur>[$€£¥]?)(?P<sign2>[-−]?)
    (?:
        (?P<mw>\d+)[ \t]+(?P<mn>\d+)/(?P<md>\d+)(?![\d/]|\.\d)        # mixed number 1 1/2
      | (?P<fn>\d+)/(?P<fd>\d+)(?![\d/]|\.\d)                        # fraction 3/4
      | 10[ \t]*(?:\^|\*\*)[ \t]*\{?(?P<pow>[-+−]?\d{1,4})\}?(?!\d)   # 10^3
      | (?P<mant>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)
        (?:
            [eE](?P<exp>[-+−]?\d{1,4})(?!\d)                         # 1.5e-3
          | [ \t]*(?:[×x*·])[ \t]*10[ \t]*(?:\^|\*\*)[ \t]*\{?(?P<exp10>[-+−]?\d{1,4})\}?(?!\d)
        )?
    )
    (?!\d|(?:st|nd|rd|th)\b)                                          # not 2nd, 4th
    (?P<scale>[ \t]+(?:thousand|million|billion|trillion)\b)?
    (?P<pct>[ \t]*(?:%|percent\b|per[ \t]?cent\b))?
    """,
    re.VERBOSE | re.IGNORECASE,
)

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_NUMBER = re.compile(
    rf"""\b(?P<neg>(?:negative|minus)\s+)?
    (?:(?P<tens>{"|".join(_TENS)})(?:[-\s](?P<unit>{"|".join(_UNITS[1:10])}))?
      |(?P<small>{"|".join(sorted(_UNITS, key=len, reverse=True))}))\b
    (?!\s+(?:hundred|thousand|million|billion|of)\b)""",
    re.VERBOSE | re.IGNORECASE,
)

_MARKER = re.compile(
    r"\b(?:final\s+)?answer\b(?:\s*[*_]+)?\s*"
    r"(?:is\b|:|=|would\s+be\b|will\s+be\b|should\s+be\b)\s*:?",
    re.IGNORECASE,
)
# What may sit between a marker and its number: markdown, math delimiters, a variable name,
# and a few adverbs ("the answer is approximately 3.14").
_MARKER_FLUFF = re.compile(
    r"(?:[\s*_`#>:≈~(\[{]|\$(?![\d.\-−])|\\[(\[]|[a-z]\s*=(?!=)|"
    r"(?:approximately|approx\.|about|around|roughly|exactly|just|only|therefore|thus|then|"
    r"simply|clearly|probably|likely)\b)*",
    re.IGNORECASE,
)
_OPERATOR_GAP = re.compile(r"[\s()\[\]{}]*[-+−×x*/÷·^=][-+−×x*/÷·^=\s()\[\]{}]*")
_HEDGE_GAP = re.compile(r"\s*(?:or|and/or|to|–)\s*", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_CHECK_CUE = re.compile(
    r"^\W*(?:[A-Za-z']+\W+){0,3}?(?:because|since|given|recall|remember|check|checking|verify|"
    r"verifying|verification|note|indeed|as\s+stated|we\s+know|we\s+were\s+told)\b",
    re.IGNORECASE,
)
_CLAUSE_CUE = re.compile(r"\b(?:since|because|as|given|if|when|where|for)\b", re.IGNORECASE)
_CONCLUDES = re.compile(r"\b(?:so|therefore|thus|hence|then|gives|giving|means|making)\b",
                        re.IGNORECASE)
_ENUMERATOR = re.compile(r"(?im)^[ \t]*(?:[-*•][ \t]*)?(?:step[ \t]*)?\d{1,2}[.)][ \t]+(?=\S)")
_STEP_NUMBER = re.compile(r"(?i)\bstep\s+\d+\b")

_LATEX_FRAC = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")
_LATEX_TEXT = re.compile(r"\\(?:text|textrm|textbf|mathrm|mathbf|operatorname|mbox)\s*\{([^{}]*)\}")
_PLAIN_NUMBER = re.compile(r"[-−]?\d+(?:\.\d+)?")
_LATEX_SUBS = [
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("{,}", ","), ("\\,", ""), ("\\!", ""),
    ("\\;", " "), ("\\ ", " "), ("\\%", "%"), ("\\$", "$"), ("\\times", "×"), ("\\cdot", "·"),
    ("\\div", "÷"), ("\\approx", "≈"), ("\\left", ""), ("\\right", ""), ("\\(", " "),
    ("\\)", " "), ("\\[", " "), ("\\]", " "), ("\u00a0", " "),
]


@dataclass(frozen=True)
class NumberToken:
    """One number found in a text: its exact value and where it was written."""

    value: Fraction
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Extraction:
    """The outcome of answer extraction: a number and the rule that found it, or a problem."""

    number: NumberToken | None
    how: str


def _latex_fraction(match: re.Match[str]) -> str:
    num, den = match.group(1).strip(), match.group(2).strip()
    if _PLAIN_NUMBER.fullmatch(num) and _PLAIN_NUMBER.fullmatch(den):
        text = f"{num}/{den}"
    else:
        text = f"({num})/({den})"
    before = match.string[match.start() - 1] if match.start() else ""
    return " " + text if before.isdigit() else text  # 1\frac{1}{2} is the mixed number 1 1/2


def _normalize(text: str) -> str:
    """Plain-text numbers from LaTeX and list formatting, so one tokenizer reads them all."""
    for old, new in _LATEX_SUBS:
        text = text.replace(old, new)
    text = re.sub(r"(?<=\d)[\u2009\u202f](?=\d{3}\b)", "", text)  # 1 234 (thin space)
    text = _LATEX_FRAC_SHORT.sub(r"\1/\2", text)
    for _ in range(8):  # nested \frac / \text, innermost first
        new = _LATEX_TEXT.sub(r" \1", _LATEX_FRAC.sub(_latex_fraction, text))
        if new == text:
            break
        text = new
    if len(_ENUMERATOR.findall(text)) >= 2:  # a numbered list, not a line opening with "42. "
        text = _ENUMERATOR.sub("", text)
    return _STEP_NUMBER.sub("step", text)


def _signed(match: re.Match[str], value: Fraction) -> Fraction:
    negative = match["sign"] in ("-", "−") or match["sign2"] in ("-", "−")
    return -value if negative else value


def _power(exp: str) -> Fraction:
    return Fraction(10) ** int(exp.replace("−", "-"))


def _number_value(match: re.Match[str]) -> Fraction | None:
    """The exact value of a ``_NUMBER`` match; ``None`` for 3/0 or an absurdly long digit run."""
    try:
        if match["mw"]:
            value = int(match["mw"]) + Fraction(int(match["mn"]), int(match["md"]))
        elif match["fn"]:
            value = Fraction(int(match["fn"]), int(match["fd"]))
        elif match["pow"]:
            value = _power(match["pow"])
        else:
            digits = match["mant"].replace(",", "")
            value = Fraction(digits) if "." in digits else Fraction(int(digits))
            exp = match["exp"] or match["exp10"]
            if exp:
                value *= _power(exp)
    except (ValueError, ZeroDivisionError):
        return None
    if match["scale"]:
        value *= _SCALES[match["scale"].strip().lower()]
    return _signed(match, value)


def _word_value(match: re.Match[str]) -> Fraction:
    if match["small"]:
        value = _UNITS.index(match["small"].lower())
    else:
        value = 20 + 10 * _TENS.index(match["tens"].lower())
        if match["unit"]:
            value += _UNITS.index(match["unit"].lower())
    return Fraction(-value if match["neg"] else value)


def _numbers(text: str, words: bool = False) -> list[NumberToken]:
    """Every number in ``text`` in order; number words too when ``words``."""
    found = []
    for m in _NUMBER.finditer(text):
        value = _number_value(m)
        if value is not None:
            found.append(NumberToken(value, m.start(), m.end(), m.group(0)))
    if words:
        taken = [(n.start, n.end) for n in found]
        for m in _WORD_NUMBER.finditer(text):
            if not any(s < m.end() and m.start() < e for s, e in taken):
                found.append(NumberToken(_word_value(m), m.start(), m.end(), m.group(0)))
        found.sort(key=lambda n: n.start)
    return found


def _is_operator_gap(gap: str) -> bool:
    return _OPERATOR_GAP.fullmatch(gap) is not None


def _chain_end(text: str, nums: list[NumberToken], i: int) -> int:
    """Index of the last number of the worked chain (``2 + 3 = 5``) that starts at ``nums[i]``."""
    while i + 1 < len(nums) and _is_operator_gap(text[nums[i].end:nums[i + 1].start]):
        i += 1
    return i


def _segment_answer(text: str, nums: list[NumberToken], how: str) -> Extraction:
    """The answer in a box or after a marker: the first number, or its chain's result."""
    end = _chain_end(text, nums, 0)
    pick = 0
    for j in range(1, end + 1):
        if "=" in text[nums[j - 1].end:nums[j].start]:
            pick = j
    if pick and pick != end:  # "24 = 96 / 4": the right side is working, the left the answer
        pick = 0
    if end == 0 and len(nums) > 1 and _HEDGE_GAP.fullmatch(text[nums[0].end:nums[1].start]):
        hedge = text[nums[0].start:nums[1].end]
        return Extraction(None, f"{how} hedges between two numbers ({_shown(hedge)})")
    return Extraction(nums[pick], how)


def _boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}`` (balanced braces), or ``None`` without a box."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0 or not re.fullmatch(r"\\(?:boxed|fbox)\s*", text[start:brace]):
        return ""
    depth = 0
    for k in range(brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return text[brace + 1:k]
    return text[brace + 1:].split("\n", 1)[0]


def _from_box(text: str) -> Extraction | None:
    content = _boxed(text)
    if content is None:
        return None
    nums = _numbers(content, words=True)
    if not nums:
        return Extraction(None, f"the last \\boxed{{}} holds no number ({_shown(content)})")
    return _segment_answer(content, nums, "last \\boxed{}")


def _from_marker(text: str) -> Extraction | None:
    """The last answer marker that a number follows directly."""
    for marker in reversed(list(_MARKER.finditer(text))):
        fluff = _MARKER_FLUFF.match(text, marker.end())
        start = fluff.end() if fluff else marker.end()
        if not (_NUMBER.match(text, start) or _WORD_NUMBER.match(text, start)):
            continue
        segment = text[start:start + _MAX_ANSWER_CHARS].split("\n", 1)[0]
        nums = _numbers(segment, words=True)
        if nums and nums[0].start == 0:
            how = f"answer marker {_shown(' '.join(marker.group(0).split()))}"
            return _segment_answer(segment, nums, how)
    return None


def _sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for brk in _SENTENCE_BREAK.finditer(text):
        spans.append((start, brk.start()))
        start = brk.end()
    spans.append((start, len(text)))
    return spans


def _from_conclusion(text: str, givens: set[Fraction]) -> Extraction | None:
    """Rule 3 of the module docstring: the answer in the conclusion sentence."""
    nums = _numbers(text)
    if not nums:
        return None
    first_seen: dict[Fraction, int] = {}
    for k, n in enumerate(nums):
        first_seen.setdefault(n.value, k)

    def known_before(k: int, start: int) -> bool:  # in the prompt, or written before nums[start]
        return nums[k].value in givens or first_seen[nums[k].value] < start

    spans = _sentences(text)
    starts = [lo for lo, _ in spans]
    by_sentence: dict[int, list[int]] = {}
    for k, n in enumerate(nums):
        by_sentence.setdefault(bisect_right(starts, n.start) - 1, []).append(k)
    for sid in sorted(by_sentence, reverse=True):
        idx, (lo, hi) = by_sentence[sid], spans[sid]
        sentence = text[lo:hi]
        if "=" in sentence and all(nums[k].value in givens for k in idx):
            continue  # "3 × 2 = 6" built from the givens alone derives nothing
        if _CHECK_CUE.match(sentence) and all(known_before(k, idx[0]) for k in idx):
            continue  # "Check: 3 × 2 = 6": no new number, announced as a check
        how = "conclusion sentence"
        for cue in _CLAUSE_CUE.finditer(text, lo, hi):  # ", since 3 apples cost $6"
            head = [k for k in idx if nums[k].start < cue.start()]
            tail = [k for k in idx if nums[k].start >= cue.start()]
            if (head and tail and all(known_before(k, tail[0]) for k in tail)
                    and not _CONCLUDES.search(text, cue.end(), hi)):
                idx, hi = head, cue.start()
                how = "conclusion sentence without its restating clause"
                break
        last = idx[-1]
        eq = text.rfind("=", lo, hi)
        if 0 <= eq < nums[last].start and not text[eq + 1:nums[last].start].strip(" \t$≈~("):
            return Extraction(nums[last], f"{how}, result after '='")
        return Extraction(nums[last], f"{how}, last number")
    return Extraction(nums[-1], "last number (every sentence only restates the prompt)")


def _from_bare_word(text: str) -> Extraction | None:
    nums = _numbers(text, words=True)
    if len(nums) == 1 and not re.sub(r"[\W_]", "", text.replace(nums[0].text, "")):
        return Extraction(nums[0], "the whole response")
    return None


def extract_answer(response: str, prompt: str = "") -> Extraction:
    """The final answer in ``response`` by the rules of the module docstring; ``prompt``
    supplies the givens that a restatement repeats."""
    text = _normalize(response[-_MAX_CHARS:])
    for rule in (_from_box, _from_marker):
        pick = rule(text)
        if pick is not None:
            return pick
    givens = {n.value for n in _numbers(_normalize(prompt[-_MAX_CHARS:]), words=True)}
    pick = _from_conclusion(text, givens) or _from_bare_word(text)
    return pick or Extraction(None, "no number found in the response")


def parse_number(text: str) -> Fraction:
    """The exact value of a string that is one number (``"3/4"``, ``"-2.5"``, ``"1,234.50"``,
    ``"45%"``, ``"\\frac{1}{3}"``); ``ValueError`` otherwise."""
    norm = _normalize(text).strip()
    nums = _numbers(norm)
    if len(nums) != 1 or nums[0].text != norm:
        raise ValueError(f"target {_shown(text)} is not a single number")
    return nums[0].value


def _to_fraction(value: Any, what: str) -> Fraction:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got a bool")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float | Decimal | Fraction):
        if isinstance(value, float | Decimal) and not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value}")
        return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
    if isinstance(value, str) and what == "target":
        return parse_number(value)
    kind = "a number or a numeric string" if what == "target" else "a number"
    raise ValueError(f"{what} must be {kind}, got {type(value).__name__}")


def target_value(target: Any) -> Fraction:
    """The exact value of a numeric target; ``ValueError`` with a one-line reason otherwise."""
    return _to_fraction(target, "target")


def tolerances(metadata: dict[str, Any]) -> tuple[Fraction, Fraction]:
    """``(rel_tol, abs_tol)`` from the item's metadata, defaults filled in, validated."""
    out = []
    for key, default in (("rel_tol", DEFAULT_REL_TOL), ("abs_tol", DEFAULT_ABS_TOL)):
        tol = _to_fraction(metadata.get(key, default), f"metadata.{key}")
        if tol < 0:
            raise ValueError(f"metadata.{key} must be >= 0, got {metadata[key]}")
        out.append(tol)
    return out[0], out[1]


def close(found: Fraction, target: Fraction, rel_tol: Fraction, abs_tol: Fraction) -> bool:
    """``math.isclose`` in exact arithmetic (no overflow on 1e400, no float rounding)."""
    return abs(found - target) <= max(rel_tol * max(abs(found), abs(target)), abs_tol)


def _fmt(value: Fraction) -> str:
    if abs(value) >= 10**30 or 0 < abs(value) < Fraction(1, 10**30):  # 1e400: no float, no str
        exp = math.log10(abs(value.numerator)) - math.log10(value.denominator)
        sign = "-" if value < 0 else ""
        return f"{sign}{10 ** (exp - math.floor(exp)):.6g}e{math.floor(exp)}"
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    approx = f"{float(value):.12g}"
    return approx if den == 1 else f"{value} (≈{approx})"


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 3] + "...")


class NumericScorer(PureScorer):
    """1.0 if the response's final number equals ``item.target`` within the item's tolerance."""

    name = "numeric"

    def check(self, item: Item) -> None:
        target_value(item.target)
        tolerances(item.metadata)

    def score(self, response: str, item: Item) -> Score:
        try:
            target = target_value(item.target)
            rel_tol, abs_tol = tolerances(item.metadata)
        except ValueError as exc:
            return Score(0.0, f"unusable item: {exc}")
        if not isinstance(response, str) or not response.strip():
            return Score(0.0, "empty response")
        pick = extract_answer(response, item.prompt_text)
        if pick.number is None:
            return Score(0.0, f"{pick.how}; target {_fmt(target)}")
        found = pick.number
        ok = close(found.value, target, rel_tol, abs_tol)
        verdict = "match" if ok else "no match"
        return Score(
            1.0 if ok else 0.0,
            f"extracted {_shown(found.text)} = {_fmt(found.value)} ({pick.how}); "
            f"target {_fmt(target)}: {verdict} (rel_tol={float(rel_tol):g}, "
            f"abs_tol={float(abs_tol):g})",
            found.text.strip(),
        )
