"""The ``numeric`` scorer: which number in free text is the final answer, how numbers are read,
and what must not be accepted. Also checks the starter ``math.jsonl`` workload against it."""

from __future__ import annotations

import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

import rankgate
from rankgate.eval.scorers import get
from rankgate.eval.scorers.base import Item
from rankgate.eval.scorers.numeric import NumericScorer, extract_answer, parse_number

DATA = Path(rankgate.__file__).parent / "eval" / "data" / "starter" / "math.jsonl"
APPLES = "If 3 apples cost $6, how much does one apple cost?"
EGGS = ("A box holds 24 eggs. 4 boxes are shared equally among 4 friends. "
        "How many eggs does each friend get?")


def item(target, prompt: str = "What is the answer?", **metadata) -> Item:
    return Item(id="t", messages=[{"role": "user", "content": prompt}], scorer="numeric",
                target=target, metadata=metadata)


def score(response, target, prompt: str = "What is the answer?", **metadata) -> float:
    return NumericScorer().score(response, item(target, prompt, **metadata)).value


_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def naive_first(text: str) -> float:
    return float(_DIGITS.findall(text)[0])


def naive_last(text: str) -> float:
    return float(_DIGITS.findall(text)[-1])


# ---------------------------------------------------------------- reading numbers

@pytest.mark.parametrize("response, target", [
    ("Answer: $1,234.50", 1234.5),
    ("The total is $1,234.50.", "1,234.50"),
    ("It comes to 1,000,000 grains.", 1_000_000),
    (r"The sum is $1{,}234$.", 1234),
    ("Answer: 3/4", "3/4"),
    (r"Answer: $\frac{3}{4}$", 0.75),
    (r"\boxed{\dfrac{3}{4}}", "3/4"),
    ("You need 1 1/2 cups of flour.", 1.5),
    (r"So the length is $1\frac{1}{2}$ m.", "3/2"),
    ("The temperature falls to −5 °C.", -5),
    ("Answer: -5 degrees", "-5"),
    ("Answer: -$12", -12),
    ("Answer: 0.125", "1/8"),
    ("Answer: .5", 0.5),
    ("Answer: 42.0", 42),
    ("There are about 6.02 × 10^23 atoms.", 6.02e23),
    (r"Answer: $6.02 \times 10^{23}$", "6.02e23"),
    ("Answer: 1.5e-3", 0.0015),
    ("Answer: 2.5 million", 2_500_000),
    ("Answer: 12 cm", 12),
    ("She has 5 apples.", 5),
    ("The trip takes 3.5 hours.", 3.5),
    ("The walk is 12km long.", 12),
    ("Answer: 45%", 45),
    (r"\boxed{45\%}", "45%"),
    ("The price rose by 25 percent.", 25),
    ("The answer is twelve.", 12),
    ("Answer: twenty-one", 21),
    ("Answer: negative seven", -7),
    ("Twelve.", 12),
])
def test_reads_the_number_in_its_many_written_forms(response, target):
    assert score(response, target) == 1.0


def test_ordinals_are_not_numbers():
    assert score("It is the 12th.", 12) == 0.0


def test_a_numbered_list_does_not_supply_the_answer():
    assert score("The total is 42.\n1. Add the rows\n2. Check the sum\n3. Done", 42) == 1.0


def test_step_labels_do_not_supply_the_answer():
    assert score("The total is 42. See Step 3", 42) == 1.0


# ---------------------------------------------------------------- which number is the answer

def test_the_last_box_beats_everything_else():
    assert score(r"First \boxed{41}, then corrected: \boxed{42}. Answer: 41", 42) == 1.0
    assert score(r"\boxed{41}. Answer: 42", 42) == 0.0


def test_a_box_without_a_number_scores_zero_even_if_a_number_follows():
    assert score(r"\boxed{\text{none}} but maybe 7", 7) == 0.0


def test_the_last_answer_marker_wins_over_earlier_markers_and_later_numbers():
    assert score("Answer: 41\nWait, let me recheck.\nAnswer: 42", 42) == 1.0
    assert score("Final answer: 42\n(I checked it twice, with 3 methods.)", 42) == 1.0


@pytest.mark.parametrize("response", [
    "**Answer:** 42", "The final answer is 42.", "final answer: **42**", "Answer:\n42",
    "ANSWER = 42", "the answer is x = 42", "The answer is approximately 42", "Answer: $42$",
])
def test_answer_markers_in_their_usual_spellings(response):
    assert score(response, 42) == 1.0


def test_a_marker_followed_by_words_is_not_a_marker():
    assert score("The answer is to multiply 3 by 4 to get 12.", 12) == 1.0
    assert score("I'll write Answer: <number>.\nEach apple costs 2 dollars.", 2) == 1.0


def test_a_worked_chain_after_a_marker_yields_its_result():
    assert score("Answer: 2 + 3 = 5", 5) == 1.0
    assert score("Answer: 24 = 96 / 4", 24) == 1.0


def test_restated_givens_after_the_answer_are_dropped():
    response = "For 3 apples at $6 in total, each apple costs $2, as 3 × 2 = 6."
    assert naive_first(response) != 2 and naive_last(response) != 2
    assert score(response, 2, APPLES) == 1.0


def test_a_cued_check_after_the_answer_is_skipped():
    response = "Since 3 apples cost $6, one apple costs $6 / 3 = $2. Check: 3 × $2 = $6."
    assert naive_first(response) != 2 and naive_last(response) != 2
    assert score(response, 2, APPLES) == 1.0


def test_an_equation_of_givens_alone_is_skipped():
    response = "With 3 apples, one apple costs $2. 6 = 3 + 3 splits the bill evenly."
    assert naive_first(response) != 2 and naive_last(response) != 2
    assert score(response, 2, APPLES) == 1.0


def test_an_answer_that_equals_a_given_is_still_the_answer():
    response = "4 × 24 = 96 eggs in total. Each of the 4 friends gets 24 eggs."
    assert naive_first(response) != 24
    assert score(response, 24, EGGS) == 1.0


def test_a_derivation_whose_result_equals_a_given_is_not_mistaken_for_a_check():
    assert score("4 × 24 = 96 eggs. 96 / 4 = 24 eggs each.", 24, EGGS) == 1.0


def test_a_remainder_is_read_from_the_clause_that_states_it():
    prompt = "What is the remainder when 100 is divided by 7?"
    response = "The remainder is 2 when 100 is divided by 7."
    assert naive_last(response) != 2
    assert score(response, 2, prompt) == 1.0
    assert score("100 = 7 × 14 + 2", 2, prompt) == 1.0


def test_the_last_number_wins_over_an_intermediate_result_after_equals():
    response = "3 × 10 = 30 eggs; 30 ÷ 12 = 2.5, so she needs 3 cartons."
    prompt = "Each cake needs 3 eggs; cartons hold 12. How many cartons for 10 cakes?"
    assert score(response, 3, prompt) == 1.0


def test_the_brief_example_with_a_marker_after_restated_numbers():
    response = "If 3 apples cost $6, then one apple costs $2, so the answer is 2 for each of the 3."
    assert naive_first(response) != 2 and naive_last(response) != 2
    assert score(response, 2, APPLES) == 1.0


# ---------------------------------------------------------------- what must not be accepted

@pytest.mark.parametrize("response, target", [
    ("Answer: 41", 42),
    ("Answer: -42", 42),
    ("The temperature is 5 degrees.", -5),
    ("Answer: 4.2", 42),
    ("Answer: 420", 42),
    ("Answer: 1,234", 1.234),
    ("Answer: 5 or 6", 5),
    ("The answer is 5 to 6.", 5),
    ("It is 45%.", 0.45),
    ("Answer: 0.333", "1/3"),
    ("Answer: 3/8", "3/4"),
    ("I don't know.", 7),
    ("", 7),
    ("   \n ", 7),
    ("Answer: <number>", 7),
    (r"\boxed{}", 7),
    ("3 apples cost $6.", 2),
    ("The answer is one of the options.", 1),
    ("Answer: 7th", 7),
    ("It is 2 × 10^3.", 2),
    ("Answer: 3/0", 3),
    ("9" * 6000, 9),
])
def test_rejects_wrong_hedged_and_missing_answers(response, target):
    assert score(response, target, APPLES) == 0.0


def test_never_raises_on_odd_responses():
    scorer = NumericScorer()
    odd = [None, 42, "{" * 50_000 + r"\boxed{2}", r"\boxed{" * 5000, "Answer: " * 5000,
           "1/" * 20_000, "\x00\ufffd", r"\frac{\frac{1}{0}}{2}", "10^99999", "1e9999 apples"]
    for response in odd:
        result = scorer.score(response, item(2))
        assert 0.0 <= result.value <= 1.0 and result.explanation


# ---------------------------------------------------------------- tolerance and explanation

def test_rel_tol_from_metadata_accepts_a_rounded_answer():
    assert score("Answer: 3.1416", 3.14159265, rel_tol=1e-4) == 1.0
    assert score("Answer: 3.14", 3.14159265, rel_tol=1e-4) == 0.0


def test_abs_tol_from_metadata_governs_answers_near_zero():
    assert score("Answer: 0.0004", 0, abs_tol=1e-3) == 1.0
    assert score("Answer: 0.0004", 0) == 0.0


def test_huge_numbers_compare_exactly_without_overflow():
    assert score("Answer: 1e400", "1e400") == 1.0
    assert score("Answer: 1e400", "1.01e400") == 0.0


def test_explanation_says_what_was_extracted_and_compared():
    result = NumericScorer().score("So 3 apples is $6.\nAnswer: $1,234.50", item(1234.5))
    assert result.extracted == "$1,234.50"
    assert "1234.5" in result.explanation and "Answer:" in result.explanation
    assert "match" in result.explanation and "\n" not in result.explanation


def test_extract_answer_reports_the_rule_used():
    pick = extract_answer("Each apple costs $2, as 3 apples cost $6.", APPLES)
    assert pick.number is not None and pick.number.value == 2
    assert "restating clause" in pick.how


# ---------------------------------------------------------------- check

@pytest.mark.parametrize("target, value", [
    (42, Fraction(42)), (-2.5, Fraction(-5, 2)), ("3/4", Fraction(3, 4)), ("-2.5", Fraction(-5, 2)),
    ("1,234.50", Fraction(123450, 100)), ("45%", Fraction(45)), (r"\frac{1}{3}", Fraction(1, 3)),
    ("1 1/2", Fraction(3, 2)), ("1e-3", Fraction(1, 1000)), ("−7", Fraction(-7)),
])
def test_check_accepts_numbers_and_numeric_strings(target, value):
    NumericScorer().check(item(target))
    if isinstance(target, str):
        assert parse_number(target) == value


@pytest.mark.parametrize("target", [
    None, True, "abc", "3 apples", "", "1/0", "5 or 6", float("nan"), float("inf"), [1], {"v": 1},
])
def test_check_rejects_non_numeric_targets(target):
    with pytest.raises(ValueError):
        NumericScorer().check(item(target))


@pytest.mark.parametrize("metadata", [{"rel_tol": -0.1}, {"rel_tol": "0.1"}, {"abs_tol": True},
                                      {"abs_tol": float("nan")}])
def test_check_rejects_bad_tolerances(metadata):
    with pytest.raises(ValueError):
        NumericScorer().check(item(42, **metadata))


def test_score_on_an_unusable_item_is_zero_with_a_reason():
    result = NumericScorer().score("Answer: 42", item("forty-two-ish"))
    assert result.value == 0.0 and "unusable" in result.explanation


def test_registry_returns_the_numeric_scorer():
    assert isinstance(get("numeric"), NumericScorer)


# ---------------------------------------------------------------- the starter data file

def _rows() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _item(row: dict) -> Item:
    return Item(id=row["id"], messages=[{"role": "user", "content": row["prompt"]}],
                scorer=row["scorer"], target=row["target"], category=row["category"],
                metadata=row["metadata"])


def test_starter_math_items_are_well_formed_and_spread_over_difficulties():
    rows = _rows()
    assert len(rows) >= 70
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"math-\d{3}", i) for i in ids)
    for r in rows:
        assert list(r) == ["id", "prompt", "target", "scorer", "category", "metadata"], r["id"]
        assert r["scorer"] == "numeric" and r["category"] == "math"
        assert re.search(r"'Answer: <(number|fraction)>'\.$", r["prompt"]), r["id"]
    share = Counter(r["metadata"]["difficulty"] for r in rows)
    assert set(share) == {"easy", "medium", "hard"}
    for level, aim in {"easy": 0.35, "medium": 0.40, "hard": 0.25}.items():
        assert abs(share[level] / len(rows) - aim) <= 0.07, (level, share)


def test_starter_math_targets_pass_check_and_references_score_one():
    scorer = get("numeric")
    for row in _rows():
        it = _item(row)
        scorer.check(it)
        reference = row["metadata"]["reference"]
        assert reference.rstrip().endswith(f"Answer: {row['target']}"), row["id"]
        result = scorer.score(reference, it)
        assert result.value == 1.0, (row["id"], result.explanation)


def test_starter_math_references_with_a_wrong_final_line_score_zero():
    scorer = get("numeric")
    for row in _rows():
        working = row["metadata"]["reference"].rsplit("Answer:", 1)[0]
        wrong = parse_number(str(row["target"])) + 1
        shown = str(wrong.numerator) if wrong.denominator == 1 else repr(float(wrong))
        result = scorer.score(f"{working}Answer: {shown}", _item(row))
        assert result.value == 0.0, (row["id"], result.explanation)
