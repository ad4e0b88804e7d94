"""The code scorer: extraction from messy responses, pass@1 in the sandbox, the starter data and
HumanEval (all 164 canonical solutions must pass through our harness)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rankgate.eval import scorers
from rankgate.eval.humaneval import INSTRUCTION, load_humaneval
from rankgate.eval.scorers.base import Item, Score
from rankgate.eval.scorers.code import CodeScorer, build_solution

DATA = Path(__file__).parents[2] / "src/rankgate/eval/data/starter/code.jsonl"
SCORER = CodeScorer(timeout_s=10)

PROMPT_CODE = '''from typing import List


def sum_of_squares(nums: List[int]) -> int:
    """Return the sum of the squares of ``nums`` (0 for an empty list)."""
'''
TESTS = """def check(candidate):
    assert candidate([1, 2, 3]) == 14
    assert candidate([]) == 0
    assert candidate([-2]) == 4
"""


def make_item(target: object = TESTS, **metadata: object) -> Item:
    meta = {"entry_point": "sum_of_squares", "prompt_code": PROMPT_CODE, "difficulty": "easy"}
    meta.update(metadata)
    meta = {k: v for k, v in meta.items() if v is not None}
    return Item(id="t-1", messages=[{"role": "user", "content": "write it"}], scorer="code",
                target=target, category="code", metadata=meta)


ITEM = make_item()
GOOD = "def sum_of_squares(nums):\n    return sum(n * n for n in nums)\n"

# (response, expected score, a phrase the explanation must contain)
PASSING = [
    ("```python\n" + GOOD + "```", "passed"),
    (GOOD, "passed"),  # no fence at all
    ("Sure! Here is the function:\n\n```python\n" + GOOD + "```\n\nIt squares each number.",
     "passed"),
    ("First try:\n```python\ndef sum_of_squares(nums):\n    return sum(nums)\n```\n"
     "Oops, that forgot the squares. Fixed:\n```python\n" + GOOD + "```", "passed"),
    ("```python\n" + GOOD + "```\nUsage:\n```python\nprint(sum_of_squares([1, 2]))\n```",
     "passed"),
    ("    return sum(n * n for n in nums)\n", "passed"),  # body only, HumanEval style
    ("```python\n    total = 0\n    for n in nums:\n        total += n * n\n    return total\n"
     "```", "passed"),  # body only, inside a fence
    ("return sum(n * n for n in nums)", "passed"),  # body only, not indented
    ("```python\ndef sum_of_squares(nums: List[int]) -> int:\n    return sum(n * n for n in nums)"
     "\n```", "passed"),  # uses List without importing it: the prompt's imports are kept
    ("```\n" + GOOD + "```", "passed"),  # fence without a language
    ("```py\n" + GOOD + "```", "passed"),
    ("```python\n" + GOOD, "passed"),  # truncated: the closing fence never came
    ("```python\ndef sum_of_squares(nums):\n    return sum(n * n for n in nums)```", "passed"),
    ("```python\ndef square(n):\n    return n * n\n```\nand then\n```python\n"
     "def sum_of_squares(nums):\n    return sum(square(n) for n in nums)\n```", "passed"),
    ("```python\n" + GOOD + "\nif __name__ == '__main__':\n    print(sum_of_squares("
     "[int(x) for x in input().split()]))\n```", "passed"),  # demo needing stdin is dropped
    ("~~~python\n" + GOOD + "~~~", "passed"),
    ("1. Here it is:\n\n    ```python\n    def sum_of_squares(nums):\n"
     "        return sum(n * n for n in nums)\n    ```", "passed"),  # indented fence
    ("Install nothing:\n```bash\npip install nothing\n```\n```python\n" + GOOD + "```",
     "passed"),
    ("```python\nsum_of_squares = lambda nums: sum(n * n for n in nums)\n```", "passed"),
    ("Here you go:\ndef sum_of_squares(nums):\n    return sum(n * n for n in nums)\n"
     "This adds up the squares.", "passed"),  # prose around unfenced code
    ("Here:\ndef sum_of_squares(nums):\n    return sum(n * n for n in nums)\n  oops",
     "passed"),  # a stray trailing line is trimmed, not a syntax error
    ("```python\nimport math\n\ndef sum_of_squares(nums):\n    return sum(math.pow(n, 2) for n in"
     " nums) if nums else 0\n```", "passed"),  # 14.0 == 14
]
FAILING = [
    ("", "empty response"),
    ("   \n\t", "empty response"),
    ("I'm sorry, I can't help with that.", "no recognisable Python code"),
    ("```python\ndef squares_sum(nums):\n    return sum(n * n for n in nums)\n```",
     "no function named 'sum_of_squares'"),
    ("```python\ndef sum_of_squares(nums)\n    return sum(n * n for n in nums)\n```",
     "syntax error"),
    ("```python\nprint(14)\n```", "failed assertion"),  # print-only: the stub returns None
    ("```python\nimport sys\nsys.exit(0)\n" + GOOD + "```", "exited before the tests"),
    ("```python\nimport os\nos._exit(0)\n" + GOOD + "```", "exited before the tests"),
    ("```python\nimport sys\ndef sum_of_squares(nums):\n    sys.exit(0)\n```",
     "exited before the tests"),
    ("```python\nexit(0)\n```", "exited before the tests"),
    ("```python\nraise SystemExit(0)\n```", "exited before the tests"),
    ("```python\nimport os\ndef sum_of_squares(nums):\n    print('rankgate-tests-passed-00')\n"
     "    os._exit(0)\n```", "exited before the tests"),  # a guessed sentinel is not enough
    ("```python\nimport atexit, os\natexit.register(lambda: os._exit(0))\n"
     "def sum_of_squares(nums):\n    return sum(nums)\n```", "exited before the tests"),
    ("```python\ndef sum_of_squares(nums):\n    return sum(nums)\n```", "failed assertion"),
    ("```python\ndef sum_of_squares(nums):\n    return 14\n```", "failed assertion"),
    ("```python\ndef check(candidate):\n    return True\n\ndef sum_of_squares(nums):\n"
     "    return 0\n```", "failed assertion"),  # its own check is replaced by the real one
    ("```python\ndef sum_of_squares(nums):\n    while True:\n        pass\n```", "timeout"),
    ("```python\nimport os\ndef sum_of_squares(nums):\n    os.system('echo hi')\n"
     "    return sum(n * n for n in nums)\n```", "os.system is disabled"),
    ("```bash\necho 14\n```", "no Python code block"),
    ("```pycon\n>>> sum_of_squares([1, 2, 3])\n14\n```", "no Python code block"),
    ("```python\n```", "no Python code"),
    ("```python\n" + PROMPT_CODE + "```", "failed assertion"),  # the stub, unimplemented
    ("```python\ndef sum_of_squares(nums):\n    return undefined_helper(nums)\n```",
     "NameError"),
    ("```python\ndef sum_of_squares(nums):\n    return sum(n * n for n in nums)\n\n"
     "assert sum_of_squares([1]) == 2\n```", "failed assertion"),  # its own wrong demo assert
    ("def sum_of_squares(nums):\nreturn sum(n * n for n in nums)", "syntax error"),
    ("```python\nclass Solution:\n    def sum_of_squares(self, nums):\n"
     "        return sum(n * n for n in nums)\n```", "failed assertion"),
    ("\x00\x00", "syntax error"),
    ("```python\nx = bytearray(4 * 1024 ** 3)\n" + GOOD + "```", "MemoryError"),
    ("```python\nimport socket\nsocket.create_connection(('127.0.0.1', 9))\n" + GOOD + "```",
     "socket (network access) is disabled"),
]


@pytest.mark.parametrize(("response", "phrase"), PASSING)
def test_correct_answers_in_any_reasonable_format_pass(response: str, phrase: str):
    s = SCORER.score(response, ITEM)
    assert (s.value, s.explanation) == (1.0, phrase)


@pytest.mark.parametrize(("response", "phrase"), FAILING)
def test_wrong_unusable_or_cheating_answers_fail(response: str, phrase: str):
    scorer = CodeScorer(timeout_s=2) if "while True" in response else SCORER
    s = scorer.score(response, ITEM)
    assert s.value == 0.0
    assert phrase in s.explanation, s.explanation


def test_there_are_at_least_thirty_adversarial_responses():
    assert len(PASSING) + len(FAILING) >= 30


def test_score_reports_the_extracted_code_not_the_prompt():
    s = SCORER.score("Here:\n```python\n" + GOOD + "```", ITEM)
    assert isinstance(s, Score) and s.extracted == GOOD


def test_without_prompt_code_a_complete_function_still_passes():
    item = make_item(prompt_code=None)
    assert SCORER.score("```python\n" + GOOD + "```", item).value == 1.0
    s = SCORER.score("    return sum(n * n for n in nums)", item)
    assert s.value == 0.0  # a body needs the signature it belongs to


def test_body_only_without_prompt_code_is_not_guessed():
    solution = build_solution("return 1", "f")
    assert solution.program is None


def test_registry_returns_the_code_scorer():
    assert isinstance(scorers.get("code"), CodeScorer)


@pytest.mark.parametrize(("target", "meta", "reason"), [
    ("assert True\n", {}, "def check"),
    (None, {}, "def check"),
    (["def check(candidate): pass"], {}, "def check"),
    ("def check(candidate)\n    pass\n", {}, "does not compile"),
    (TESTS, {"entry_point": None}, "entry_point"),
    (TESTS, {"entry_point": "not a name"}, "entry_point"),
    (TESTS, {"prompt_code": "def broken(:"}, "prompt_code"),
])
def test_check_rejects_unusable_items(target: object, meta: dict, reason: str):
    item = make_item(target, **meta)
    with pytest.raises(ValueError, match=reason):
        SCORER.check(item)
    s = SCORER.score(GOOD, item)  # score never raises, even on a broken item
    assert s.value == 0.0 and "unusable item" in s.explanation


# ------------------------------------------------------------------------- starter data

def load_starter() -> list[dict]:
    with DATA.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def as_item(row: dict) -> Item:
    return Item(id=row["id"], messages=[{"role": "user", "content": row["prompt"]}],
                scorer=row["scorer"], target=row["target"], category=row["category"],
                metadata=row["metadata"])


def score_all(pairs: list[tuple[str, Item]]) -> list[Score]:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda p: SCORER.score(*p), pairs))


def test_starter_items_are_well_formed():
    rows = load_starter()
    assert len(rows) >= 50
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    entry_points = [r["metadata"]["entry_point"] for r in rows]
    assert len(set(entry_points)) == len(entry_points)
    for n, row in enumerate(rows, 1):
        assert list(row) == ["id", "prompt", "target", "scorer", "category", "metadata"]
        assert row["id"] == f"code-{n:03d}"
        assert (row["scorer"], row["category"]) == ("code", "code")
        assert row["metadata"]["difficulty"] in ("easy", "medium", "hard")
        assert f"`{row['metadata']['entry_point']}(" in row["prompt"]
        assert "```python code block" in row["prompt"]
        assert row["target"].count("assert") >= 4
        SCORER.check(as_item(row))


def test_starter_difficulty_spread_matches_the_panel():
    rows = load_starter()
    share = {d: sum(r["metadata"]["difficulty"] == d for r in rows) / len(rows)
             for d in ("easy", "medium", "hard")}
    assert 0.30 <= share["easy"] <= 0.40
    assert 0.35 <= share["medium"] <= 0.45
    assert 0.20 <= share["hard"] <= 0.30


def test_every_starter_reference_scores_one():
    rows = load_starter()
    scores = score_all([(r["metadata"]["reference"], as_item(r)) for r in rows])
    failed = {r["id"]: s.explanation for r, s in zip(rows, scores, strict=True) if s.value != 1}
    assert failed == {}


# Plausible but wrong solutions: every hard item has one, and some medium/easy ones.
WRONG = {
    "last_digit": "def last_digit(n):\n    return n % 10\n",
    "is_leap_year": "def is_leap_year(year):\n    return year % 4 == 0\n",
    "tick_tock": ("def tick_tock(n):\n    if n % 24 == 0:\n        return 'TickTock'\n"
                  "    if n % 4 == 0:\n        return 'Tick'\n    if n % 6 == 0:\n"
                  "        return 'Tock'\n    return str(n)\n"),
    "second_largest": ("def second_largest(nums):\n    if len(nums) < 2:\n        return None\n"
                       "    return sorted(nums)[-2]\n"),
    "unique_in_order": "def unique_in_order(items):\n    return list(set(items))\n",
    "rotate_right": "def rotate_right(items, k):\n    return items[-k:] + items[:-k]\n",
    "most_common_char": ("from collections import Counter\ndef most_common_char(text):\n"
                         "    return Counter(text).most_common(1)[0][0] if text else ''\n"),
    # the next four are what Qwen2.5-Coder-0.5B/1.5B actually answered
    "seconds_to_clock": ("def seconds_to_clock(total):\n    h, m, s = total // 3600, "
                         "total % 3600 // 60, total % 60\n    return f'{h:02}:{m:02}:{s:02}'\n"),
    "count_pairs_with_sum": (
        "def count_pairs_with_sum(nums, target):\n    count, seen = 0, set()\n"
        "    for n in nums:\n        if target - n in seen:\n            count += 1\n"
        "        seen.add(n)\n    return count\n"),
    "rle_encode": (
        "def rle_encode(text):\n    if not text:\n        return ''\n"
        "    out, cur, k = '', text[0], 1\n"
        "    for ch in text[1:]:\n        if ch == cur:\n            k += 1\n        else:\n"
        "            out += str(k) + cur\n            cur, k = ch, 1\n"
        "    return out + str(k) + cur\n"),
    "title_words": ("def title_words(text):\n    return ' '.join(w.capitalize() if w.isalpha() "
                    "else w for w in text.split())\n"),
    "merge_intervals": (
        "def merge_intervals(intervals):\n    merged = []\n"
        "    for s, e in sorted(intervals):\n        if merged and s <= merged[-1][1]:\n"
        "            merged[-1][1] = e\n        else:\n            merged.append([s, e])\n"
        "    return merged\n"),
    "rle_decode": (
        "def rle_decode(s):\n    out, i = [], 0\n    while i < len(s):\n"
        "        if s[i].isdigit():\n            out.append(s[i + 1] * int(s[i]))\n"
        "            i += 2\n        else:\n            out.append(s[i])\n            i += 1\n"
        "    return ''.join(out)\n"),
    "min_coins": (
        "def min_coins(coins, amount):\n    count = 0\n"
        "    for c in sorted(coins, reverse=True):\n        count += amount // c\n"
        "        amount %= c\n    return count if amount == 0 else -1\n"),
    "edit_cost": (
        "def edit_cost(a, b):\n    prev = list(range(len(b) + 1))\n"
        "    for i in range(1, len(a) + 1):\n        cur = [i] + [0] * len(b)\n"
        "        for j in range(1, len(b) + 1):\n"
        "            cur[j] = min(prev[j] + 1, cur[j - 1] + 1,\n"
        "                         prev[j - 1] + (a[i - 1] != b[j - 1]))\n"
        "        prev = cur\n    return prev[-1]\n"),
    "eval_rpn": (
        "def eval_rpn(tokens):\n    st = []\n    for t in tokens:\n"
        "        if t in ('+', '-', '*', '/'):\n            b, a = st.pop(), st.pop()\n"
        "            st.append({'+': a + b, '-': a - b, '*': a * b, '/': a // b}[t])\n"
        "        else:\n            st.append(int(t))\n    return st[0]\n"),
    "spiral_order": (
        "def spiral_order(m):\n    out = []\n    if not m or not m[0]:\n        return out\n"
        "    t, b, l, r = 0, len(m) - 1, 0, len(m[0]) - 1\n"
        "    while t <= b and l <= r:\n        out += [m[t][c] for c in range(l, r + 1)]\n"
        "        out += [m[x][r] for x in range(t + 1, b + 1)]\n"
        "        out += [m[b][c] for c in range(r - 1, l - 1, -1)]\n"
        "        out += [m[x][l] for x in range(b - 1, t, -1)]\n"
        "        t, b, l, r = t + 1, b - 1, l + 1, r - 1\n    return out\n"),
    "next_same_digits": (
        "def next_same_digits(n):\n    s = str(n)\n    if len(s) < 2:\n        return -1\n"
        "    m = int(s[:-2] + s[-1] + s[-2])\n    return m if m > n else -1\n"),
    "wrap_text": ("import textwrap\ndef wrap_text(text, width):\n"
                  "    return textwrap.wrap(text, width)\n"),
    "count_grid_paths": (
        "def count_grid_paths(grid):\n    R, C = len(grid), len(grid[0])\n"
        "    w = [[1] * C for _ in range(R)]\n    for r in range(1, R):\n"
        "        for c in range(1, C):\n"
        "            w[r][c] = 0 if grid[r][c] else w[r - 1][c] + w[r][c - 1]\n"
        "    return w[-1][-1]\n"),
    "compare_versions": (
        "def compare_versions(a, b):\n    for x, y in zip(a.split('.'), b.split('.')):\n"
        "        if int(x) != int(y):\n            return -1 if int(x) < int(y) else 1\n"
        "    return 0\n"),
    "longest_valid_parens": (
        "def longest_valid_parens(s):\n    opened = pairs = 0\n    for ch in s:\n"
        "        if ch == '(':\n            opened += 1\n        elif opened:\n"
        "            opened -= 1\n            pairs += 1\n    return 2 * pairs\n"),
    "top_k_words": ("from collections import Counter\ndef top_k_words(words, k):\n"
                    "    return [w for w, _ in Counter(words).most_common(k)]\n"),
    "expand_repeats": (
        "def expand_repeats(s):\n    stack, cur, num = [], '', 0\n    for ch in s:\n"
        "        if ch.isdigit():\n            num = int(ch)\n        elif ch == '[':\n"
        "            stack.append((cur, num))\n            cur, num = '', 0\n"
        "        elif ch == ']':\n            prev, k = stack.pop()\n"
        "            cur = prev + cur * k\n"
        "        else:\n            cur += ch\n    return cur\n"),
}


def test_every_hard_starter_item_has_a_plausible_wrong_solution():
    hard = {r["metadata"]["entry_point"] for r in load_starter()
            if r["metadata"]["difficulty"] == "hard"}
    assert hard <= set(WRONG)


def test_plausible_wrong_solutions_fail_the_starter_tests():
    rows = {r["metadata"]["entry_point"]: r for r in load_starter()}
    pairs = [("```python\n" + code + "```", as_item(rows[name])) for name, code in WRONG.items()]
    scores = score_all(pairs)
    passed = [name for name, s in zip(WRONG, scores, strict=True) if s.value != 0.0]
    assert passed == []


# ------------------------------------------------------------------------------ HumanEval

def test_humaneval_loads_all_164_problems_as_code_items():
    items = load_humaneval()
    assert len(items) == 164
    assert [i["id"] for i in items] == [f"humaneval-{n}" for n in range(164)]
    first = items[0]
    assert list(first) == ["id", "prompt", "target", "scorer", "category", "metadata"]
    assert (first["scorer"], first["category"]) == ("code", "code_humaneval")
    assert first["prompt"].startswith(INSTRUCTION)
    assert first["prompt"].endswith(first["metadata"]["prompt_code"])
    assert first["metadata"]["entry_point"] == "has_close_elements"
    assert first["metadata"]["difficulty"] == "medium"
    assert first["metadata"]["reference"].startswith("```python\n")
    assert first["metadata"]["reference"].endswith("\n```")
    for item in items:
        SCORER.check(as_item(item))


def test_all_164_humaneval_canonical_solutions_pass():
    items = load_humaneval()
    scores = score_all([(i["metadata"]["reference"], as_item(i)) for i in items])
    failed = {i["id"]: s.explanation for i, s in zip(items, scores, strict=True) if s.value != 1}
    assert failed == {}


def test_humaneval_stub_answers_fail():
    items = load_humaneval()[:20]
    scores = score_all([("```python\n" + i["metadata"]["prompt_code"] + "    return None\n```",
                         as_item(i)) for i in items])
    assert [s.value for s in scores] == [0.0] * len(items)
