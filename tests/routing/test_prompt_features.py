"""The ensemble's surface features: the lookahead-guarded patterns count exactly what the plain
patterns count (they only skip positions no match can start at), on real prompts and on
strings built to sit on the edges (case folding, line ends, word boundaries)."""

from __future__ import annotations

import random
import re
from importlib import resources

import numpy as np

from rankgate.outcomes import read_jsonl
from rankgate.routing import ensemble as ens

PLAIN = {
    "code": (re.compile(ens.CODE_PATTERN, re.M), ens._CODE),
    "math": (re.compile(ens.MATH_PATTERN, re.I), ens._MATH),
    "question": (re.compile(ens.QWORD_PATTERN, re.I), ens._QWORD),
    "write": (re.compile(ens.WRITE_PATTERN, re.I), ens._WRITE),
}
EDGES = [
    "", "?", "def f():\n    return 1;\n", "DEF x; RETURN y;  \nSELECT * FROM t", "a=>b",
    "SOLVE 3 + 4 = x; How Many? HOW MUCH $5^2 \\frac{1}{2} \\sqrt{9}", "ſolve this",
    "Write, CREATE, generate; compose a draft and IMPLEMENT", "What? WHY! how, Which who when",
    "console.log(x) public int x; #include <a.h> print(1) function f() {}", "```py\n```",
    "12 -3", "1\n=\n2", "ſum and Kelvin-sign \u212a", "x;\r\ny;\r\n", "int\x00 ;\u2028;",
]


def _corpus() -> list[str]:
    rows = read_jsonl(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))
    prompts = list(dict.fromkeys(o.prompt for o in rows))
    rng = random.Random(0)  # shuffled pieces of real prompts: new boundaries, same alphabet
    pieces = [p[i: i + 40] for p in prompts[:200] for i in range(0, len(p), 40)]
    mixed = ["".join(rng.sample(pieces, 5)) for _ in range(300)]
    return prompts + mixed + EDGES


def test_guarded_patterns_find_exactly_what_the_plain_patterns_find():
    for text in _corpus():
        for name, (plain, guarded) in PLAIN.items():
            assert guarded.findall(text) == plain.findall(text), (name, text[:80])


def test_features_are_finite_and_count_what_the_prompt_holds():
    F = ens.prompt_features(["def f():\n    return 1\n", "What is 2 + 2?", ""])
    assert F.shape == (3, len(ens.FEATURES)) and np.isfinite(F).all()
    col = {name: i for i, name in enumerate(ens.FEATURES)}
    assert F[0, col["code_marks"]] == np.log1p(2)  # "def " and "return"
    assert F[1, col["ends_with_question"]] == 1.0 and F[1, col["question_words"]] > 0
    assert F[1, col["digit_share"]] == 2 / len("What is 2 + 2?")
    assert not F[2].any() or F[2, col["log_chars"]] == 0.0
