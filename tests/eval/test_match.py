"""The ``exact`` and ``contains`` scorers: normalised matching that refuses negations and hedges.

Also checks the starter ``factual.jsonl`` workload against the ``contains`` scorer.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import rankgate
from rankgate.eval.scorers import get
from rankgate.eval.scorers.base import Item
from rankgate.eval.scorers.match import ContainsScorer, ExactScorer, normalize

DATA = Path(rankgate.__file__).parent / "eval" / "data" / "starter" / "factual.jsonl"


def item(target, reject=None, scorer: str = "contains") -> Item:
    meta = {} if reject is None else {"reject": reject}
    return Item(id="t", messages=[{"role": "user", "content": "?"}], scorer=scorer,
                target=target, metadata=meta)


def exact(response: str, target="Paris") -> float:
    return ExactScorer().score(response, item(target, scorer="exact")).value


def contains(response: str, target="Paris", reject=None) -> float:
    return ContainsScorer().score(response, item(target, reject)).value


# ---------------------------------------------------------------- normalisation

@pytest.mark.parametrize("text, tokens", [
    ("Answer: The Paris!", ["paris"]),
    ("**Final answer:** Zürich", ["zurich"]),
    ("Newton's laws", ["newtons", "laws"]),
    ("1,000,000 km/h", ["1000000", "km", "or", "h"]),
    ("It is -3.5 °C.", ["it", "is", "-3.5", "c"]),
    ("A Tale of Two Cities", ["tale", "of", "two", "cities"]),
    ("Vitamin A deficiency", ["vitamin", "a", "deficiency"]),
    ("an apple, a pear", ["apple", "pear"]),
    ("twenty-four", ["twenty", "four"]),
])
def test_normalize_folds_case_accents_punctuation_and_articles(text, tokens):
    assert normalize(text) == tokens


# ---------------------------------------------------------------- exact

@pytest.mark.parametrize("response", [
    "Paris", "paris", " PARIS ", "Paris.", "**Paris**", "Answer: Paris", "answer: paris!",
    "The Paris", "\"Paris\"", "Final answer: Paris",
])
def test_exact_accepts_the_target_up_to_case_punctuation_articles_and_answer_prefix(response):
    assert exact(response) == 1.0


@pytest.mark.parametrize("response", [
    "The capital is Paris.", "Paris, France", "Parisian", "Paris or Lyon", "not Paris",
    "Lyon", "", "Answer:", "P a r i s", "Pariss",
])
def test_exact_refuses_anything_but_the_whole_answer(response):
    assert exact(response) == 0.0


def test_exact_accepts_any_alias_in_a_list():
    target = ["Leonardo da Vinci", "da Vinci"]
    assert exact("Da Vinci", target) == 1.0 and exact("Leonardo", target) == 0.0


def test_exact_reports_the_normalised_response():
    s = ExactScorer().score("Answer: The Lyon!", item("Paris", scorer="exact"))
    assert s.extracted == "lyon" and "paris" in s.explanation


# ---------------------------------------------------------------- contains: accepts

@pytest.mark.parametrize("response", [
    "The capital is Paris.", "Paris!", "It's Paris, the City of Light.", "PARIS",
    "paris is the capital of France", "I am fairly sure it is Paris.",
    "The capital of France has been Paris since the Middle Ages.",
])
def test_contains_accepts_the_target_as_whole_words_anywhere(response):
    assert contains(response) == 1.0


@pytest.mark.parametrize("response, target", [
    ("Gabriel Garcia Marquez", ["Gabriel García Márquez", "Márquez"]),
    ("It was García Márquez.", ["Márquez"]),
    ("Leonardo or da Vinci, same man", ["Leonardo da Vinci", "Leonardo", "da Vinci"]),
    ("Twenty-four hours", ["24", "twenty-four"]),
    ("About 1,000 of them", ["1000"]),
    ("The Sun.", ["the Sun", "Sol"]),
    ("Lack of vitamin A causes night blindness", ["Vitamin A"]),
    ("-40", ["-40"]),
])
def test_contains_accepts_aliases_after_normalisation(response, target):
    assert contains(response, target) == 1.0


@pytest.mark.parametrize("response", ["Paris, not Lyon.", "Paris. Lyon is wrong.",
                                      "Paris rather than Lyon", "It isn't Lyon, it's Paris."])
def test_contains_ignores_a_rejected_answer_that_is_itself_negated(response):
    assert contains(response, reject=["Lyon"]) == 1.0


# ---------------------------------------------------------------- contains: refuses

@pytest.mark.parametrize("response", [
    "Parisian", "Parisienne food", "Par is", "Lyon", "I don't know", "", "!!!",
])
def test_contains_refuses_partial_words_and_other_answers(response):
    assert contains(response) == 0.0


@pytest.mark.parametrize("response", [
    "not Paris", "It isn't Paris.", "It's not actually Paris", "Paris is wrong.",
    "Paris is not correct", "Neither Paris nor Lyon", "Rather than Paris, I'd say Lyon",
    "Anything except Paris", "It's definitely not Paris.", "It was never Paris",
    "Instead of Paris, Lyon", "Paris isn't it",
])
def test_contains_refuses_a_negated_target(response):
    s = ContainsScorer().score(response, item("Paris"))
    assert s.value == 0.0 and "negat" in s.explanation


@pytest.mark.parametrize("response", [
    "Paris or Lyon", "Lyon or Paris", "Paris/Lyon", "Either Paris or Marseille",
    "It might be Paris, or Lyon", "Paris or maybe Lyon",
])
def test_contains_refuses_the_target_offered_among_alternatives(response):
    s = ContainsScorer().score(response, item("Paris"))
    assert s.value == 0.0 and "alternatives" in s.explanation


@pytest.mark.parametrize("response", ["Paris, Lyon", "Lyon", "Lyon is the capital, Paris too",
                                      "Paris or Lyon", "PARIS and LYON"])
def test_contains_refuses_any_response_naming_a_rejected_answer(response):
    s = ContainsScorer().score(response, item("Paris", reject=["Lyon"]))
    assert s.value == 0.0


def test_reject_entry_can_extend_the_target():
    assert contains("Paris, Texas", reject=["Paris, Texas"]) == 0.0
    assert contains("Paris, France", reject=["Paris, Texas"]) == 1.0


def test_letter_suffix_distinguishes_aliases():
    assert contains("Vitamin C", ["Vitamin A"]) == 0.0


# ---------------------------------------------------------------- documented limits

def test_limit_a_list_of_candidates_passes_without_a_reject_list():
    assert contains("Paris, Lyon, Nice") == 1.0  # use metadata.reject to catch this


def test_limit_a_denial_in_a_later_sentence_is_not_seen():
    assert contains("Paris? No.") == 1.0


# ---------------------------------------------------------------- check() and robustness

@pytest.mark.parametrize("target, reject, reason", [
    (None, None, "target"),
    ([], None, "target"),
    (42, None, "target"),
    (["Paris", 3], None, "target entries"),
    ("the", None, "empty"),
    ("Paris", "Lyon", None),  # a single string is accepted for reject too
    ("Paris", ["Paris"], "inside the accepted answer"),
    ("New York City", ["York"], "inside the accepted answer"),
    ("Paris", [""], "empty"),
])
def test_check_validates_target_and_reject(target, reject, reason):
    for scorer in (ExactScorer(), ContainsScorer()):
        if reason is None:
            scorer.check(item(target, reject))
        else:
            with pytest.raises(ValueError, match=reason):
                scorer.check(item(target, reject))


@pytest.mark.parametrize("response", [None, 7, "\u200b", "🙂" * 3, "x" * 20000])
def test_odd_responses_score_zero_without_raising(response):
    for scorer in (ExactScorer(), ContainsScorer()):
        assert scorer.score(response, item("Paris")).value == 0.0  # type: ignore[arg-type]


def test_score_on_an_unusable_item_is_zero_not_an_exception():
    s = ContainsScorer().score("Paris", item(None))
    assert s.value == 0.0 and "unusable item" in s.explanation


def test_registry_returns_both_match_scorers():
    assert isinstance(get("exact"), ExactScorer) and isinstance(get("contains"), ContainsScorer)


# ---------------------------------------------------------------- the starter data file

def raw_items() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def as_item(raw: dict) -> Item:
    return Item(id=raw["id"], messages=[{"role": "user", "content": raw["prompt"]}],
                scorer=raw["scorer"], target=raw["target"], category=raw["category"],
                metadata=raw["metadata"])


def test_factual_has_sixty_plus_well_formed_items():
    raws = raw_items()
    assert len(raws) >= 60
    for n, raw in enumerate(raws, start=1):
        assert list(raw) == ["id", "prompt", "target", "scorer", "category", "metadata"]
        assert raw["id"] == f"factual-{n:03d}"
        assert (raw["scorer"], raw["category"]) == ("contains", "factual")
        assert isinstance(raw["target"], list) and raw["target"]
        assert "Answer with" in raw["prompt"], raw["id"]  # says how to format the answer
        assert raw["metadata"]["difficulty"] in {"easy", "medium", "hard"}
    assert len({r["prompt"] for r in raws}) == len(raws)


def test_factual_difficulty_spans_the_panel():
    counts = Counter(r["metadata"]["difficulty"] for r in raw_items())
    n = sum(counts.values())
    assert 0.25 <= counts["easy"] / n <= 0.45
    assert 0.30 <= counts["medium"] / n <= 0.50
    assert 0.15 <= counts["hard"] / n <= 0.35


@pytest.mark.parametrize("raw", raw_items(), ids=lambda r: r["id"])
def test_factual_item_passes_check_and_its_reference_scores_one(raw):
    it = as_item(raw)
    scorer = ContainsScorer()
    scorer.check(it)
    assert scorer.score(raw["metadata"]["reference"], it).value == 1.0
    assert scorer.score("I don't know.", it).value == 0.0
    assert scorer.score(f"It is not {raw['target'][0]}.", it).value == 0.0
    for wrong in raw["metadata"].get("reject", []):
        assert scorer.score(wrong, it).value == 0.0
        assert scorer.score(f"{raw['metadata']['reference']} or {wrong}", it).value == 0.0


def test_factual_loads_through_the_workload_loader():
    from rankgate.eval import datasets

    items = datasets.parse_lines(DATA.read_bytes().splitlines(), "factual")
    assert len(items) == len(raw_items())
