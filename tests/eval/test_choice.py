"""The ``choice`` scorer: one committed option scores, prose and hedges don't fool it.

Also checks the starter ``knowledge_mc.jsonl`` workload against the scorer.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import rankgate
from rankgate.eval.scorers import get
from rankgate.eval.scorers.base import Item
from rankgate.eval.scorers.choice import ChoiceScorer

CAPITALS = ["Lyon", "Paris", "Nice", "Lille"]  # the capital of France is B
DATA = Path(rankgate.__file__).parent / "eval" / "data" / "starter" / "knowledge_mc.jsonl"


def item(target: str = "B", choices: list[str] | None = None) -> Item:
    return Item(id="t", messages=[{"role": "user", "content": "Capital of France?"}],
                scorer="choice", target=target,
                choices=CAPITALS if choices is None else choices)


def picked(response: str, choices: list[str] | None = None) -> str | None:
    """The option letter the scorer extracted (None when it refused or found nothing)."""
    return ChoiceScorer().score(response, item(choices=choices)).extracted


# ---------------------------------------------------------------- accepted answer shapes

@pytest.mark.parametrize("response", [
    "B", "(B)", "B.", "B)", "[B]", "Answer: B", "Answer:B", "The answer is B", "**B**",
    "b", "(b)", "b)", "Final answer: (b)", "Option b", "option B", "The answer is \"B\".",
    "Answer: [B]", "\\boxed{B}", "I'd go with B.", "My answer: B", "The correct option is B.",
    "B. B. B.", "Answer: B\nAnswer: B", "the answer is b",
])
def test_letter_answers_in_common_formats_are_read(response):
    s = ChoiceScorer().score(response, item())
    assert (s.value, s.extracted) == (1.0, "B"), s.explanation


@pytest.mark.parametrize("response", [
    "B) Paris", "B. Paris", "B - Paris", "B: Paris", "b) Paris", "Paris (B)",
    "The answer is: **B. Paris**", "The correct answer is option B (Paris).",
])
def test_letter_with_its_own_option_text_is_read(response):
    assert picked(response) == "B"


@pytest.mark.parametrize("response", ["Paris", "paris", "PARIS", "Paris.",
                                      "Paris. Definitely Paris.", "The answer is Paris."])
def test_option_text_alone_is_read_as_that_option(response):
    assert picked(response) == "B"


def test_wrong_option_scores_zero_with_the_extracted_letter():
    s = ChoiceScorer().score("Answer: C", item())
    assert (s.value, s.extracted) == (0.0, "C") and "target B" in s.explanation


def test_target_letter_is_case_insensitive():
    assert ChoiceScorer().score("B", item(target="b")).value == 1.0


# ---------------------------------------------------------------- hedges and contradictions

@pytest.mark.parametrize("response", [
    "A or B", "either B or C", "B. Paris ... actually C", "B, C", "A/B", "A, B, C or D",
    "It could be B or C.", "The answer is B or C.", "Answer: B. Actually, wait, C.",
    "The answer is B. Or maybe D.", "B or C, but I'd say B.", "Lyon? No. Paris.",
    "I think Paris is the capital, but Lyon is also big.", "Both A and B.",
    "(A) Lyon (B) Paris", "A. Lyon\nB. Paris\nC. Nice\nD. Lille", "A B C D",
])
def test_answers_naming_several_options_are_refused_as_ambiguous(response):
    s = ChoiceScorer().score(response, item())
    assert s.value == 0.0 and s.extracted is None and "ambiguous" in s.explanation, s


@pytest.mark.parametrize("response", ["B) Lyon", "Paris (A)", "A. Paris"])
def test_letter_whose_label_text_is_another_option_is_ambiguous(response):
    assert "ambiguous" in ChoiceScorer().score(response, item()).explanation


def test_leading_answer_contradicted_by_a_declared_answer_is_ambiguous():
    assert "ambiguous" in ChoiceScorer().score("A\nAnswer: B", item()).explanation


def test_walk_through_of_every_option_without_a_verdict_is_ambiguous():
    response = ("Option A, Lyon, is a large city. Option B, Paris, is the capital. "
                "Option C, Nice, is on the coast.")
    assert "ambiguous" in ChoiceScorer().score(response, item()).explanation


def test_option_walk_through_heading_is_not_an_answer_declaration():
    response = ("To decide, let's analyze each option:\n\nA. **Lyon**: a large city in the "
                "south-east.\nB. **Paris**: the seat of government.\n")
    assert "ambiguous" in ChoiceScorer().score(response, item()).explanation


def test_truncated_walk_through_is_not_declared_but_only_mentioned():
    s = ChoiceScorer().score("Let's analyze each option:\n\nA. **Lyon**: a large", item())
    assert s.extracted == "A" and "mentioned" in s.explanation


def test_echoed_option_list_is_overridden_by_the_declared_answer():
    response = "A. Lyon\nB. Paris\nC. Nice\nD. Lille\nAnswer: B"
    assert picked(response) == "B"


# ---------------------------------------------------------------- the article "A"

@pytest.mark.parametrize("response, expected", [
    ("A good answer is C", "C"),
    ("A common mistake is Lyon; the answer is C", "C"),  # the declared answer wins
    ("A quick look shows the answer is C.", "C"),
    ("A", "A"), ("a", "A"), ("A.", "A"), ("(a)", "A"), ("A is right.", "A"),
    ("I think A is right", "A"), ("The answer is A.", "A"), ("The answer is a", "A"),
])
def test_article_a_in_prose_is_not_read_as_option_a(response, expected):
    assert picked(response) == expected


def test_article_a_after_an_answer_marker_is_still_prose():
    s = ChoiceScorer().score("The answer is a city in France.", item())
    assert s.extracted is None and "no option" in s.explanation


# ---------------------------------------------------------------- negation and commitment

@pytest.mark.parametrize("response", [
    "The answer is B, not A.", "Neither A nor C; it is B.", "A is wrong. B is right.",
    "It's not A, it's B.", "Lyon is wrong; the answer is Paris.", "B rather than C.",
    "A and C are wrong. B is right.", "Options A, C and D are incorrect, so B.",
])
def test_negated_options_do_not_count(response):
    assert picked(response) == "B"


def test_only_negated_options_is_no_answer():
    s = ChoiceScorer().score("Not A.", item())
    assert s.value == 0.0 and "only negated" in s.explanation


@pytest.mark.parametrize("response", [
    "The answer is B. Option A would be wrong because Lyon is not the capital.",
    "The answer is B.\n\nExplanation: Paris has been the capital for centuries. "
    "A common misconception is that Lyon is the capital.",
    "The capital of France is Paris, so the answer is B.",
    "B is correct; A and C are wrong.",
    "Between A and B, I choose B.",
])
def test_declared_answer_wins_over_options_discussed_in_the_explanation(response):
    assert picked(response) == "B"


# ---------------------------------------------------------------- letters that are not answers

@pytest.mark.parametrize("response", ["C++ is a language", "Answer: D-Day", "Answer: E",
                                      "E.g. Paris or i.e. something", "None of the above.",
                                      "I don't know."])
def test_glued_or_out_of_range_letters_are_not_options(response):
    choices = ["Lyon", "Paris", "Nice", "Lille"]
    s = ChoiceScorer().score(response, item(choices=choices))
    if "Paris" in response:
        assert s.extracted == "B"  # only the option text counts, not the e of "e.g."
    else:
        assert s.extracted is None and s.value == 0.0


def test_letters_inside_option_texts_are_not_read_as_letters():
    vitamins = ["Vitamin C", "Vitamin A", "Vitamin D", "Vitamin B12"]
    assert picked("Vitamin D", vitamins) == "C"
    assert picked("A. Vitamin C", vitamins) == "A"
    assert picked("The answer is C (Vitamin D).", vitamins) == "C"
    assert "ambiguous" in ChoiceScorer().score("C. Vitamin A", item(choices=vitamins)).explanation


def test_longer_option_text_is_not_also_read_as_the_shorter_one():
    choices = ["Paris", "Paris, Texas", "Lyon", "Nice"]
    assert picked("Paris, Texas", choices) == "B"
    assert picked("Paris", choices) == "A"


def test_second_lower_case_letter_in_prose_is_not_an_answer():
    s = ChoiceScorer().score("Paris, because a capital hosts the government and b is a letter",
                             item())
    assert s.extracted == "B"  # Paris is B; the stray "b" in prose is ignored


# ---------------------------------------------------------------- robustness

@pytest.mark.parametrize("response", ["", "   ", "\n\n", "???", "\u200b", "🙂", "0" * 5000])
def test_empty_or_junk_responses_score_zero_without_raising(response):
    s = ChoiceScorer().score(response, item())
    assert s.value == 0.0 and s.explanation


def test_non_text_response_scores_zero_without_raising():
    assert ChoiceScorer().score(None, item()).value == 0.0  # type: ignore[arg-type]


def test_very_long_letter_soup_is_scored_without_raising():
    s = ChoiceScorer().score("A B C D " * 3000, item())
    assert s.value == 0.0 and "ambiguous" in s.explanation


def test_long_rambling_response_is_scored_deterministically():
    response = ("Let me think about the cities. " * 200) + "The answer is B."
    assert [picked(response) for _ in range(3)] == ["B", "B", "B"]


# ---------------------------------------------------------------- check()

@pytest.mark.parametrize("target, choices, reason", [
    ("E", CAPITALS, "target"),
    ("AB", CAPITALS, "target"),
    ("", CAPITALS, "target"),
    (1, CAPITALS, "target"),
    (None, CAPITALS, "target"),
    ("A", ["Paris"], "2..6"),
    ("A", [f"c{i}" for i in range(7)], "2..6"),
    ("A", ["Paris", " paris "], "same text"),
    ("A", ["Paris", ""], "non-empty"),
    ("A", ["Paris", 3], "non-empty"),
    ("A", ["Paris", "b"], "single letter"),
])
def test_check_rejects_unusable_items_with_a_reason(target, choices, reason):
    with pytest.raises(ValueError, match=reason):
        ChoiceScorer().check(item(target=target, choices=choices))


def test_check_accepts_a_valid_six_option_item():
    ChoiceScorer().check(item(target="F", choices=[f"option {i}" for i in range(6)]))


def test_score_on_an_unusable_item_is_zero_not_an_exception():
    s = ChoiceScorer().score("B", item(target="Z"))
    assert s.value == 0.0 and "unusable item" in s.explanation


def test_registry_returns_the_choice_scorer():
    assert isinstance(get("choice"), ChoiceScorer) and get("choice").name == "choice"


# ---------------------------------------------------------------- the starter data file

def raw_items() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def as_item(raw: dict) -> Item:
    return Item(id=raw["id"], messages=[{"role": "user", "content": raw["prompt"]}],
                scorer=raw["scorer"], target=raw["target"], choices=raw["choices"],
                category=raw["category"], metadata=raw["metadata"])


def test_knowledge_mc_has_sixty_plus_well_formed_items():
    raws = raw_items()
    assert len(raws) >= 60
    for n, raw in enumerate(raws, start=1):
        assert list(raw) == ["id", "prompt", "target", "choices", "scorer", "category",
                             "metadata"], raw["id"]
        assert raw["id"] == f"knowledge_mc-{n:03d}"
        assert (raw["scorer"], raw["category"]) == ("choice", "knowledge_mc")
        assert len(raw["choices"]) == 4 and raw["prompt"].strip()
        assert raw["metadata"]["difficulty"] in {"easy", "medium", "hard"}
    assert len({r["prompt"] for r in raws}) == len(raws)


def test_knowledge_mc_correct_letters_are_balanced():
    counts = Counter(r["target"] for r in raw_items())
    assert set(counts) == set("ABCD") and max(counts.values()) - min(counts.values()) <= 1


def test_knowledge_mc_difficulty_spans_the_panel():
    counts = Counter(r["metadata"]["difficulty"] for r in raw_items())
    n = sum(counts.values())
    assert 0.25 <= counts["easy"] / n <= 0.45
    assert 0.30 <= counts["medium"] / n <= 0.50
    assert 0.15 <= counts["hard"] / n <= 0.35


@pytest.mark.parametrize("raw", raw_items(), ids=lambda r: r["id"])
def test_knowledge_mc_item_passes_check_and_its_reference_scores_one(raw):
    it = as_item(raw)
    scorer = ChoiceScorer()
    scorer.check(it)
    assert scorer.score(raw["metadata"]["reference"], it).value == 1.0
    wrong = "ABCD"[("ABCD".index(raw["target"]) + 1) % 4]
    assert scorer.score(f"Answer: {wrong}", it).value == 0.0
    assert scorer.score(f"{raw['target']} or {wrong}", it).value == 0.0


def test_knowledge_mc_loads_through_the_workload_loader():
    from rankgate.eval import datasets

    items = datasets.parse_lines(DATA.read_bytes().splitlines(), "knowledge_mc")
    assert len(items) == len(raw_items())
    assert "Answer with the letter" in items[0].messages[-1]["content"]
