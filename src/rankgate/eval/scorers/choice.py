"""Multiple-choice scorer: find the one option a response commits to, or refuse to guess.

The runner renders an item's ``choices`` as lines ``"A. <text>"`` … and asks for the letter;
``target`` is the correct letter. Models answer in many shapes (``"B"``, ``"(b)"``,
``"**B**"``, ``"Answer: B"``, ``"B) Paris"``, or just ``"Paris"``), and a scorer that only
reads the first capital letter is fooled by prose (``"A good answer is C"``) and rewards
hedging (``"A or B"``). This scorer collects every *mention* of an option and accepts the
response only when the mentions that count name exactly one option.

Mentions
    * option text: an option's text as whole words, case-insensitive, longest option first
      (so ``"Paris, Texas"`` is not also read as ``"Paris"``); letters inside a matched text
      (``"Vitamin D"``) are not letters;
    * letters in the item's range (``A``–``D`` for four options), standing alone. Upper-case
      ``B``–``F`` count unless glued to other characters (``C++``, ``D-Day``, ``E.coli``).
      Upper-case ``A`` counts unless it reads as the English article: followed on the same
      line by a word that is not a verb/conjunction (``"A good answer"`` is prose, ``"A is
      right"``, ``"A or B"``, ``"A."``, ``"A"`` are letters). Lower-case letters count only
      when unambiguous: the whole response, bracketed (``"(b)"``), ``"b)"``, ``"b."`` at the
      start of a line, or right after an answer marker or the word option/choice/letter
      (``"answer: b"``, ``"option b"``; ``"the answer is a city"`` is still prose).

Which mentions count (precedence, highest first)
    1. *Negated* mentions never count: ``"not A"``, ``"rather than A"``, ``"A is wrong"``,
       ``"neither A nor B"``.
    2. *Declared* mentions: right after an answer marker (``"answer is"``, ``"Answer:"``,
       ``"correct option is"``, ``"I'd pick"``, ``"my answer:"``; not a bare ``"option:"``,
       which introduces walk-throughs like ``"let's check each option:"``), plus whatever is
       chained to them: alternatives (``"B or C"``, ``"B, C"``, ``"B/C"``) and labels
       (``"B) Paris"``, ``"Paris (B)"``; a label whose text is another option's is a
       contradiction).
    3. The *leading* mention (the response starts with it, e.g. ``"C. Because …"``) and its
       chain. When there are declared mentions, a leading chain that names one option still
       counts (``"A\\nAnswer: B"`` is a contradiction), but a leading chain naming several
       (an echoed option list) is overridden by the declaration. A later sentence or line
       that starts with another option's letter (``"A. Lyon is … B. Paris is …"``) makes the
       response a walk-through, and the leading mention stops counting.
    4. *Second thoughts*: mentions introduced by actually, wait, correction, I mean, rather,
       maybe, perhaps, possibly, alternatively, or, no, could be, might be (``"actually C"``,
       ``"or maybe C"``, ``"No. Paris"``) always count alongside 2–3, so
       ``"B. Paris … actually C"`` and ``"A or B. Answer: B"`` are ambiguous.
    5. With no declared or leading mention, every non-negated mention counts: an explanation
       that discusses two options without committing is ambiguous.
    One option → that letter (1.0 if it is the target). Several → 0, "ambiguous". None → 0.

Known limits: a capital letter used as a name in prose (``"Plan B"``, ``"vitamin D"`` when it
is not an option's text) reads as a letter; options whose text is a single letter in range are
rejected by ``check`` because letter answers could not be told apart from text answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rankgate.eval.scorers.base import Item, PureScorer, Score

LETTERS = "ABCDEF"
_MIN_CHOICES, _MAX_CHOICES = 2, len(LETTERS)
_MASK = "\u2588"  # stands in for matched option text, so letters inside it are not read

# Words after an upper-case "A" that make it a letter, not the article ("A or B", "A is right").
_NOT_A_NOUN = frozenset({
    "or", "and", "nor", "is", "was", "would", "will", "should", "seems", "appears", "looks",
    "because", "since", "as", "but", "then", "so", "vs", "versus",
})
_MARKER = re.compile(
    r"(?:\b(?:(?:final|correct|right|best)\s+)?answer"
    r"\s*(?:is|would\s+be|will\s+be|should\s+be|must\s+be|[:=]|-|–|—)"
    r"|\b(?:final|correct|right|best)\s+(?:option|choice|letter)"
    r"\s*(?:is|would\s+be|will\s+be|should\s+be|must\s+be|[:=]|-|–|—)"
    r"|\bi\s*(?:'d|’d|'ll|’ll|\s+would|\s+will)?\s+(?:choose|pick|select|go\s+with|say)"
    r"|\bmy\s+(?:final\s+)?(?:answer|choice|pick)\s*(?:is|[:=]))",
    re.IGNORECASE,
)
_DECOR = r"[\s:=\-–—\"'“”‘’(\[{]*"
_FILLER = r"(?:option|choice|letter|either|probably|likely|most\s+likely|definitely|clearly)"
_MARKER_GAP = re.compile(rf"{_DECOR}(?:{_FILLER}\b{_DECOR})*", re.IGNORECASE)
_LEADING = re.compile(rf"[\s\"'“”‘’(\[{{>#\-–—]*(?:(?:option|choice|letter|either)\b{_DECOR})?",
                      re.IGNORECASE)
_CHAIN_ALT = re.compile(
    r"[\s)\]}\"'“”‘’]*(?:[,;/]|\b(?:or|and|nor|vs\.?|versus)\b)?[\s,;/]*"
    r"(?:(?:or|maybe|possibly|perhaps|either|option|choice|letter)\b\s*)*[\s\"'“”‘’(\[{]*",
    re.IGNORECASE,
)
_CHAIN_LETTER_TEXT = re.compile(r"\s*[.):\-–—(]?\s*")
_TEXT_LABEL_END = re.compile(r"\s*(?:$|[\n.,;!)(…])")
_CHAIN_TEXT_LETTER = re.compile(r"\s*[(\[]\s*")
_NEGATED_BEFORE = re.compile(
    r"(?:\bnot|n't|n’t|\bnever|\brather\s+than|\binstead\s+of|\bother\s+than|\bexcept"
    r"|\bneither|\bnor)\s+(?:(?:option|choice|letter)\s+)?[\"'“”‘’(\[{]*$",
    re.IGNORECASE,
)
_NEGATED_AFTER = re.compile(
    r"^[\s\"'“”‘’)\]}.]*(?:(?:is|was|are|were)\s+(?:not|wrong|incorrect|false)\b"
    r"|(?:isn't|isn’t|wasn't|wasn’t|aren't|aren’t)\b)",
    re.IGNORECASE,
)
_SECOND_THOUGHT = re.compile(
    r"(?:\bactually|\bwait|\bcorrection|\bi\s+mean|\brather|\bmaybe|\bperhaps|\bpossibly"
    r"|\balternatively|\bor|\bno|\bon\s+second\s+thought|\bcould\s+(?:also\s+)?be"
    r"|\bmight\s+(?:also\s+)?be)[\s,:;.!\-–—]*(?:it'?s\s+|it’s\s+|it\s+is\s+"
    r"|(?:the\s+)?(?:answer|option|choice|letter)\s+(?:is\s+)?)?[\"'“”‘’(\[{]*$",
    re.IGNORECASE,
)
_OPTION_WORD = re.compile(r"\b(?:option|choice|letter)\s+[\"'“”‘’(\[{]*$", re.IGNORECASE)
_SENTENCE_START = re.compile(r"(?:^|[.!?\n]\s*)(?:(?:option|choice|letter)\s+)?[\"'“”‘’(\[{]*$",
                             re.IGNORECASE)
_MARKDOWN = re.compile(r"[*_`]+|\\[A-Za-z]+")


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    option: int  # index into choices
    kind: str  # "letter" | "text"
    declared: bool = False  # after an answer marker, or chained to such a mention
    leading: bool = False  # the response starts with it, or chained to it
    second_thought: bool = False  # introduced by "actually", "or maybe", ...
    negated: bool = False
    opens_sentence: bool = False  # a letter at the start of a sentence or line ("… . B is")
    chained: bool = False  # continues the previous mention ("B or C", "B) Paris")
    denied_after: bool = False  # "… is wrong" follows it


def _norm_option(text: str) -> str:
    return " ".join(text.split()).strip().rstrip(".").strip().casefold()


def _validate(item: Item) -> tuple[list[str], int]:
    """(choices, index of the correct option); ``ValueError`` with a one-line reason."""
    choices = item.choices
    if not isinstance(choices, list) or not _MIN_CHOICES <= len(choices) <= _MAX_CHOICES:
        raise ValueError(f"choice items need a list of {_MIN_CHOICES}..{_MAX_CHOICES} choices")
    seen: dict[str, int] = {}
    for i, c in enumerate(choices):
        if not isinstance(c, str) or not _norm_option(c):
            raise ValueError(f"choice {LETTERS[i]} must be a non-empty string")
        key = _norm_option(c)
        if key in seen:
            raise ValueError(f"choices {LETTERS[seen[key]]} and {LETTERS[i]} are the same text")
        if len(key) == 1 and key.upper() in LETTERS[: len(choices)]:
            raise ValueError(f"choice {LETTERS[i]} is the single letter {c.strip()!r}, which "
                             "cannot be told apart from a letter answer")
        seen[key] = i
    valid = LETTERS[: len(choices)]
    letter = item.target.strip().upper() if isinstance(item.target, str) else ""
    if len(letter) != 1 or letter not in valid:
        raise ValueError(f"target must be one letter in {valid[0]}..{valid[-1]}, "
                         f"got {item.target!r}")
    return choices, valid.index(letter)


def _clean(response: str) -> str:
    """Drop markdown emphasis/code marks and LaTeX commands (``**B**``, ``\\boxed{B}``)."""
    return _MARKDOWN.sub("", response.replace("\u200b", ""))


def _text_mentions(text: str, choices: list[str]) -> tuple[list[_Mention], str]:
    """Option-text mentions (longest option first, no overlaps) and ``text`` with them masked."""
    taken = [False] * len(text)
    found: list[_Mention] = []
    order = sorted(range(len(choices)), key=lambda i: -len(_norm_option(choices[i])))
    for i in order:
        words = _norm_option(choices[i]).split()
        pattern = re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)",
                             re.IGNORECASE)
        for m in pattern.finditer(text):
            if any(taken[m.start():m.end()]):
                continue
            taken[m.start():m.end()] = [True] * (m.end() - m.start())
            found.append(_Mention(m.start(), m.end(), i, "text"))
    masked = "".join(_MASK if t else ch for ch, t in zip(text, taken, strict=True))
    return found, masked


def _answer_starts(text: str) -> set[int]:
    """Positions right after an answer marker and its decoration/filler (``"answer is "``)."""
    ends = set()
    for m in _MARKER.finditer(text):
        gap = _MARKER_GAP.match(text, m.end())
        ends.add(gap.end() if gap is not None else m.end())
    return ends


def _tail(text: str, pos: int, width: int = 80) -> str:
    """The ``width`` characters before ``pos`` (patterns look back this far, no further, so
    long responses stay linear)."""
    return text[max(0, pos - width):pos]


def _is_letter(text: str, i: int, answer_starts: set[int]) -> bool:
    """Whether the candidate letter at ``text[i]`` is an option letter, not prose."""
    ch = text[i]
    before, after = _tail(text, i), text[i + 1:i + 40]
    if len(text) < 40 and text.strip(" \t\r\n\"'“”‘’()[]{}.:").casefold() == ch.casefold():
        return True  # the whole response is the letter
    if before[-1:] in ("(", "[", "{") and after[:1] in (")", "]", "}"):
        return True
    if re.match(r"[.\-–]\w", after):  # "E.coli", "D-Day", "A.M."
        return False
    marker = i in answer_starts or _OPTION_WORD.search(before) is not None
    next_word = re.match(r"[ \t]+([^\W\d_]{2,})", after)  # "A B C" lists letters
    reads_as_article = (ch in "Aa" and next_word is not None
                        and next_word.group(1).casefold() not in _NOT_A_NOUN)
    if ch.isupper():
        return not reads_as_article
    # lower case: only in unambiguous positions
    if after[:1] == ")":
        return True
    line_start = (i == len(before) or "\n" in before) and \
        before.rsplit("\n", 1)[-1].strip(" \t\"'“”‘’(") == ""
    if line_start and re.match(r"[.:](?:\s|$)", after):
        return True
    return marker and not reads_as_article


def _letter_mentions(masked: str, n: int, answer_starts: set[int]) -> list[_Mention]:
    valid = LETTERS[:n]
    found = []
    for m in re.finditer(r"(?<![\w.'’\-+#&\\])([A-Fa-f])(?![\w'’+#&])", masked):
        if m.group(1).upper() in valid and _is_letter(masked, m.start(), answer_starts):
            found.append(_Mention(m.start(), m.end(), valid.index(m.group(1).upper()), "letter"))
    return found


def _chained(text: str, prev: _Mention, cur: _Mention) -> bool:
    """Whether ``cur`` continues ``prev`` as an alternative (``B or C``) or a label
    (``B) Paris``, ``Paris (B)``)."""
    gap = text[prev.end:cur.start]
    if _CHAIN_ALT.fullmatch(gap):
        return True
    if prev.kind == "letter" and cur.kind == "text":
        return bool(_CHAIN_LETTER_TEXT.fullmatch(gap) and _TEXT_LABEL_END.match(text, cur.end))
    if prev.kind == "text" and cur.kind == "letter":
        return bool(_CHAIN_TEXT_LETTER.fullmatch(gap))
    return False


def _annotate(text: str, mentions: list[_Mention], answer_starts: set[int]) -> list[_Mention]:
    """Mark each mention declared / leading / second thought / negated (see module doc)."""
    out: list[_Mention] = []
    for k, m in enumerate(mentions):
        before = _tail(text, m.start)
        at_start = m.start == len(before)  # the window reaches the start of the response
        denied_after = _NEGATED_AFTER.match(text[m.end:m.end + 40]) is not None
        sentence = _SENTENCE_START.search(before)
        m = replace(
            m,
            declared=m.start in answer_starts,
            leading=k == 0 and at_start and _LEADING.fullmatch(before) is not None,
            second_thought=_SECOND_THOUGHT.search(before) is not None,
            negated=_NEGATED_BEFORE.search(before) is not None or denied_after,
            denied_after=denied_after,
            opens_sentence=m.kind == "letter" and sentence is not None
            and (sentence.group(0)[:1] in ".!?\n" or at_start),
        )
        if out and _chained(text, out[-1], m):
            prev = out[-1]
            m = replace(m, declared=m.declared or prev.declared, leading=m.leading or prev.leading,
                        second_thought=m.second_thought or prev.second_thought,
                        negated=m.negated or prev.negated, chained=True)
        out.append(m)
    # "A and C are wrong": a denial after a chain covers every mention in it
    for k in range(len(out) - 1, 0, -1):
        if out[k].chained and out[k].denied_after:
            out[k - 1] = replace(out[k - 1], negated=True, denied_after=True)
    return out


def _counted(mentions: list[_Mention]) -> tuple[list[_Mention], str]:
    """The mentions that decide the answer, and which rule picked them."""
    live = [m for m in mentions if not m.negated]
    declared = [m for m in live if m.declared]
    leading = [m for m in live if m.leading]
    if any(m.opens_sentence and not m.leading and m.option not in {x.option for x in leading}
           for m in live):
        leading = []  # "Option A, Lyon, is … Option B, Paris, is …": a walk-through, not an answer
    thoughts = [m for m in live if m.second_thought]
    if declared:
        if len({m.option for m in leading}) == 1:
            declared += leading
        return declared + thoughts, "declared"
    if leading:
        return leading + thoughts, "leading"
    return live, "mentioned"


class ChoiceScorer(PureScorer):
    """Multiple choice: 1.0 when the response commits to exactly the target option."""

    name = "choice"

    def check(self, item: Item) -> None:
        _validate(item)

    def score(self, response: str, item: Item) -> Score:
        try:
            choices, target = _validate(item)
        except ValueError as e:
            return Score(0.0, f"unusable item: {e}")
        if not isinstance(response, str) or not response.strip():
            return Score(0.0, "empty response")
        text = _clean(response)
        texts, masked = _text_mentions(text, choices)
        answer_starts = _answer_starts(masked)
        mentions = sorted(texts + _letter_mentions(masked, len(choices), answer_starts),
                          key=lambda m: m.start)
        if not mentions:
            return Score(0.0, "no option letter or option text found")
        counted, rule = _counted(_annotate(masked, mentions, answer_starts))
        options = sorted({m.option for m in counted})
        if not options:
            return Score(0.0, "only negated options found ("
                         + ", ".join(sorted({LETTERS[m.option] for m in mentions})) + ")")
        if len(options) > 1:
            names = ", ".join(LETTERS[o] for o in options)
            return Score(0.0, f"ambiguous: the response names options {names}")
        got = LETTERS[options[0]]
        verdict = "correct" if options[0] == target else "wrong"
        return Score(1.0 if options[0] == target else 0.0,
                     f"{verdict}: {rule} option {got}, target {LETTERS[target]}", got)

