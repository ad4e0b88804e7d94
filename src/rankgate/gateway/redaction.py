"""Redaction of logged request and answer bodies: secrets and e-mail addresses never reach
the store.

``serve --log-bodies`` (and shadow evaluation) store what users asked and what models
answered. Before anything is stored, every string in the messages (content, text parts, tool
call arguments, names, URLs) and the answer's text goes through ``Redactor.text``, which
replaces what looks like personal data or a credential by ``[REDACTED:<kind>]``:

============  ==========================================================================
kind          what it matches
============  ==========================================================================
``email``     e-mail addresses
``api_key``   ``sk-…`` / ``sk-proj-…`` / ``sk-ant-…`` keys, rankgate's own ``rg-…`` secrets
``bearer``    ``Bearer <token>`` (an ``Authorization`` header pasted into a prompt)
``aws_key``   AWS access key ids (``AKIA…``/``ASIA…``)
``github``    GitHub tokens (``ghp_…``, ``gho_…``, ``ghs_…``, ``github_pat_…``)
``slack``     Slack tokens (``xoxb-…``, ``xoxp-…``, …)
``hex``       32+ hexadecimal characters with letters *and* digits (hashes, hex secrets)
``token``     32+ characters of the base64/base64url alphabet that mix upper case, lower
              case and digits and look random (high entropy, few word-like runs)
``custom``    each extra pattern from ``RANKGATE_REDACT_PATTERNS`` (JSON list of regexes)
============  ==========================================================================

What a caller may rely on: no match of a named kind (``email`` … ``slack``), no ``hex`` run
with letters and digits and no match of an extra pattern survives (named kinds first, in one
pass, then ``hex``, ``token`` and each extra pattern over the result). ``token`` is a guess:
it catches ~98 % of random 32-character and ~99 % of 43-character base64 secrets of no known
format (measured in ``tests/test_redaction.py``), and leaves prose, UUIDs, URLs, paths and
most code identifiers alone (camelCase made of words, even with digits; one made mostly of
short all-caps pieces, ``getHTTPCodeFromURLv2AndParseIt``, can look random). Not recognised:
names, phone numbers, postal addresses — add patterns for what your traffic carries. A
40-character git commit id is a ``hex`` match and is redacted (a secret and a hash look alike).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

#: kind -> regex. Applied in three passes: the named kinds (one alternation), then ``hex``,
#: then ``token`` — so a long run that is *not* random-looking never hides a secret inside it.
BUILTIN: dict[str, str] = {
    "email": r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "bearer": r"\b(?i:bearer)\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{16,}",
    "api_key": r"\b(?:sk-(?:proj-|ant-|live-|test-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}"
               r"|[spr]k_(?:live|test)_[A-Za-z0-9]{16,}|rg-[A-Za-z0-9_-]{32,})",
    "aws_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "github": r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    "slack": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
}
HEX = r"(?<![0-9a-fA-F])[0-9a-fA-F]{32,}(?![0-9a-fA-F])"
TOKEN = r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{32,}={0,2}"
TOKEN_MIN_ENTROPY = 3.5  # bits per character; random base64 of 32+ chars: ~4.5-5.0
#: at most this share of a token's characters may sit in runs of 4+ of one class (upper,
#: lower, digit): words make such runs (``getUserAccount2``), random characters rarely do
TOKEN_MAX_WORDY = 0.45


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _class(c: str) -> int:
    return 0 if c.isupper() else 1 if c.islower() else 2 if c.isdigit() else 3


def _wordy(s: str) -> float:
    """Share of characters in runs of 4 or more letters of one case, or digits."""
    n = 0
    for cls, run in itertools.groupby(s, _class):
        length = sum(1 for _ in run)
        if cls < 3 and length >= 4:
            n += length
    return n / len(s)


def _hex(m: re.Match[str]) -> str:
    """A hex run is a secret (or a hash) if it mixes letters and digits."""
    s = m.group()
    if any(c.isdigit() for c in s) and any(c.isalpha() for c in s):
        return "[REDACTED:hex]"
    return s


def _token(m: re.Match[str]) -> str:
    """A base64-alphabet run is a secret if it mixes upper case, lower case and digits and
    its characters are spread like random ones: high entropy, few long runs of one class (a
    camelCase identifier or a path is made of words, so of long lower-case runs).

    Measured on random strings (``tests/test_redaction.py``): ~98 % of 32-character and ~99 %
    of 43-character random base64 secrets are caught; the rest (and any secret without a
    known prefix that looks like words) are not — the named kinds have no such misses."""
    s = m.group()
    core = s.rstrip("=")
    if (any(c.isdigit() for c in core) and any(c.isupper() for c in core)
            and any(c.islower() for c in core) and _entropy(core) >= TOKEN_MIN_ENTROPY
            and _wordy(core) <= TOKEN_MAX_WORDY):
        return "[REDACTED:token]"
    return s


#: literal text that every match of a named kind contains (case as matched)
_MARKERS = ("@", "sk-", "k_live_", "k_test_", "rg-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_",
            "ghs_", "ghr_", "github_pat_", "xox")


def _may_be_named(s: str) -> bool:
    """False only when no named kind can match: each needs one of ``_MARKERS`` (``bearer`` in
    any case)."""
    return any(m in s for m in _MARKERS) or "bearer" in s.lower()


def _has_long_run(s: str) -> bool:
    """False only when ``hex`` and ``token`` cannot match: both need 32 characters that are
    not whitespace, so some whitespace-separated chunk must be that long."""
    return len(s) >= 32 and any(len(w) >= 32 for w in s.split())


def compile_patterns(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """The extra patterns, compiled; ``ValueError`` naming the first that does not compile."""
    out = []
    for i, p in enumerate(patterns):
        try:
            out.append(re.compile(p))
        except re.error as e:
            raise ValueError(f"redact pattern {i} ({p!r}) is not a valid regular expression: "
                             f"{e}") from None
    return out


class Redactor:
    """Replaces secrets and e-mail addresses in text; thread-safe (compiled regexes only),
    so the exchange writer runs it off the event loop."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self._kinds = list(BUILTIN)
        self._named = re.compile("|".join(f"(?P<k{i}>{p})"
                                          for i, p in enumerate(BUILTIN.values())))
        self._hex = re.compile(HEX)
        self._token = re.compile(TOKEN)
        self._extra = compile_patterns(extra_patterns)

    def _kind(self, m: re.Match[str]) -> str:
        return f"[REDACTED:{self._kinds[int(m.lastgroup[1:])]}]"  # type: ignore[index]

    def text(self, s: str) -> str:
        """``s`` with every match replaced by ``[REDACTED:<kind>]``.

        Python's regex engine scans at ~80 ns per character and pattern, so each pass runs
        only when a cheap C-speed test says it could match: the named kinds need one of their
        literal markers (``_may_be_named``), ``hex`` and ``token`` need 32 characters without
        whitespace. Both tests are necessary conditions of a match, so skipping is exact; a
        short prompt without such text costs ~3 µs instead of ~260 µs."""
        out = self._named.sub(self._kind, s) if _may_be_named(s) else s
        if _has_long_run(out):
            out = self._token.sub(_token, self._hex.sub(_hex, out))
        for p in self._extra:
            out = p.sub("[REDACTED:custom]", out)
        return out

    def value(self, v: Any, text: Callable[[str], str] | None = None) -> Any:
        """A JSON value with every string in it passed through ``text`` (default: this
        redactor's ``text``); dict keys and the ``role`` and ``type`` fields, which say what
        a message or part is, are kept."""
        f = text or self.text
        if isinstance(v, str):
            return f(v)
        if isinstance(v, list):
            return [self.value(x, f) for x in v]
        if isinstance(v, dict):
            return {k: x if k in ("role", "type") else self.value(x, f) for k, x in v.items()}
        return v
