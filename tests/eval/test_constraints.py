"""The constraints scorer: strict all-or-nothing instruction following, with pinned counting rules,
and the starter ``instructions.jsonl`` workload that relies on it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rankgate.eval import datasets, scorers
from rankgate.eval.scorers.base import Item
from rankgate.eval.scorers.constraints import (
    ConstraintsScorer,
    count_words,
    split_sentences,
)

SCORER = ConstraintsScorer()
DATA = Path(__file__).parents[2] / "src/rankgate/eval/data/starter/instructions.jsonl"


def make_item(*constraints: dict) -> Item:
    return Item(
        id="t-1",
        messages=[{"role": "user", "content": "x"}],
        scorer="constraints",
        target=list(constraints),
    )


def c(kind: str, value: object = True, **options: object) -> dict:
    return {"type": kind, "value": value, **options}


def value(response: str, *constraints: dict) -> float:
    return SCORER.score(response, make_item(*constraints)).value


# ------------------------------------------------------------------ counting rules


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("well-known facts", 2),  # a hyphen joins
        ("don't stop", 2),  # an apostrophe joins
        ("tea—hot tea–cold", 4),  # em and en dashes separate
        ("- one\n- two\n1. three\n2) four\n# five", 5),  # list and heading markers are not words
        ("cost: 1,200 dollars & more ...", 4),  # numbers are words, lone punctuation is not
        ("", 0),
    ],
)
def test_word_count_follows_documented_rules(text: str, words: int) -> None:
    assert count_words(text) == words


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("Dr. Smith met Mr. Jones. They talked.", 2),  # titles do not end sentences
        ("It costs 3.5 dollars. Cheap!", 2),  # decimals do not either
        ("Use a tool, e.g. a hammer. Done.", 2),
        ("J. R. R. Tolkien wrote it. Fine.", 2),  # capital initials
        ("I want a. Then b.", 2),  # a lower-case letter is not an initial
        ("Wait... what? Really!", 3),  # ellipsis, question and exclamation marks end sentences
        ('He said "stop." Then he left.', 2),  # a closing quote stays with its sentence
        ("a title line\nThe body. More body.", 3),  # a line break ends a sentence
        ("---\n***\nOne.", 1),  # fragments without letters or digits are not sentences
    ],
)
def test_sentence_split_follows_documented_rules(text: str, n: int) -> None:
    assert len(split_sentences(text)) == n


# ------------------------------------------------------------------ adversarial responses

CASES = [
    # (constraints, response, expected score)
    ([c("max_words", 3)], "a well-known fact", 1.0),
    ([c("max_words", 3)], "a well known fact", 0.0),
    ([c("max_words", 2)], "- apples\n- pears", 1.0),  # bullet markers are free
    ([c("min_words", 5)], "one two three four - -- ...", 0.0),  # punctuation does not pad
    ([c("exact_lines", 3)], "one\n\ntwo\n\n\nthree\n", 1.0),  # blank lines are not lines
    ([c("exact_lines", 3)], "one\ntwo\nthree\nfour", 0.0),
    ([c("max_lines", 2)], "one\n   \ntwo", 1.0),  # whitespace-only lines are blank
    ([c("max_sentences", 1)], "Dr. Okoye arrived at 9.30 a.m. sharp", 1.0),
    ([c("max_sentences", 1)], "Sure! Here it is.", 0.0),  # a chatty preamble is a sentence
    ([c("exact_sentences", 2)], "First one.\nSecond one", 1.0),
    ([c("bullet_count", 3)], "- a\n* b\n• c", 1.0),
    ([c("bullet_count", 2)], "**Bold heading**\n---\n- a\n- b", 1.0),  # bold and rules are not
    ([c("bullet_count", 2)], "1) first\n  2. second\n3.5 is not a bullet", 1.0),
    ([c("bullet_count", 3)], "- a\n- b\n- c\n- d", 0.0),  # exact by default
    ([c("bullet_count", 3, at_least=True)], "- a\n- b\n- c\n- d", 1.0),
    ([c("starts_with", "Dear Sam,")], "  \nDear Sam, hello", 1.0),  # leading whitespace is ok
    ([c("starts_with", "Dear Sam,")], "Sure! Dear Sam, hello", 0.0),
    ([c("starts_with", "Dear Sam,")], "dear sam, hello", 0.0),  # case-sensitive by default
    ([c("starts_with", "Dear Sam,", ignore_case=True)], "dear sam, hello", 1.0),
    ([c("ends_with", "Have a great day!")], "Welcome. Have a great day!\n\n", 1.0),
    ([c("ends_with", "Have a great day!")], "Welcome. Have a great day! 🙂", 0.0),
    ([c("contains", "tea")], "Our team loves coffee.", 0.0),  # whole words only
    ([c("contains", "tea")], "TEA, please.", 1.0),  # case-insensitive
    ([c("contains", "machine code")], "It makes machine\ncode quickly.", 1.0),
    ([c("contains", "don't")], "I don’t know.", 1.0),  # curly apostrophe equals straight
    ([c("contains", "tide", min_count=2)], "The tide. The tidal wave.", 0.0),
    ([c("contains", ["evaporation", "condensation"])], "Evaporation happens.", 0.0),
    ([c("not_contains", "Java")], "I like JavaScript.", 1.0),
    ([c("not_contains", "Java")], "I like JAVA.", 0.0),
    ([c("not_contains", ["cat", "cats"])], "The cat's toy.", 0.0),  # the possessive is the word
    ([c("all_lowercase")], "no capitals here: 3 items, 100%!", 1.0),
    ([c("all_lowercase")], "i think I am fine", 0.0),
    ([c("all_lowercase")], "123 !!!", 0.0),  # vacuous text is not compliance
    ([c("all_lowercase")], "café résumé", 1.0),
    ([c("all_lowercase")], "Émile", 0.0),  # accented capitals count
    ([c("all_uppercase")], "SNOW FALLS, 3 TIMES.", 1.0),
    ([c("all_uppercase")], "SNOW FALLs", 0.0),
    ([c("no_commas")], "one two three", 1.0),
    ([c("no_commas")], "one，two", 0.0),  # the full-width comma is a comma
    ([c("json", keys=["city"])], '{"city": "Paris"}', 1.0),
    ([c("json", keys=["city"])], '```json\n{"city": "Paris"}\n```', 1.0),
    ([c("json", keys=["city"])], 'Here you go: {"city": "Paris"}', 0.0),  # prose around JSON
    ([c("json")], '```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```', 0.0),  # two blocks
    ([c("json", keys=["city"])], '{"town": "Paris"}', 0.0),
    ([c("json", keys=["city"])], '[{"city": "Paris"}]', 0.0),  # keys need a top-level object
    ([c("json")], '{"x": NaN}', 0.0),  # NaN is not JSON
    ([c("json")], "{'city': 'Paris'}", 0.0),  # Python dict syntax is not JSON
    ([c("json")], "[" * 100_000, 0.0),  # nesting deeper than the recursion limit
    (
        [
            c(
                "json_schema",
                {
                    "type": "object",
                    "required": ["year"],
                    "properties": {"year": {"type": "integer"}},
                },
            )
        ],
        '{"year": "1937"}',
        0.0,
    ),
    ([c("regex", r"^\d{3}$", flags="m")], "code:\n123\n", 1.0),
    ([c("language_ascii_only")], "plain 'quotes' only", 1.0),
    ([c("language_ascii_only")], "curly “quotes”", 0.0),
    ([c("placeholder_count", 2)], "Hi [name], see [link](http://x) and [ ] box at [place].", 1.0),
    ([c("placeholder_count", 1)], "Hi [name] and [date].", 0.0),
    ([c("placeholder_count", 1, at_least=True)], "Hi [name] and [date].", 1.0),
    ([c("title_wrapped")], "<<Morning Routine>>\nsteps", 1.0),
    ([c("title_wrapped")], "<< >> no title", 0.0),
    ([c("title_wrapped")], "«Morning Routine»", 0.0),  # guillemets are not double brackets
    ([c("title_wrapped", "morning routine")], "<<Morning Routine>>", 1.0),
    ([c("title_wrapped", "Morning Routine")], "<<Evening Routine>>", 0.0),
    ([c("paragraph_count", 2)], "first para\n   \nsecond para", 1.0),
    ([c("paragraph_count", 2)], "first line\nsecond line", 0.0),  # one newline is not a break
    ([c("paragraph_count", 2)], "first\n\n***\n\nsecond", 1.0),  # a separator is not a paragraph
    ([c("max_chars", 10)], "  0123456789  ", 1.0),  # surrounding whitespace is free
    ([c("max_chars", 10)], "0123456789!", 0.0),
]


@pytest.mark.parametrize(("constraints", "response", "expected"), CASES)
def test_adversarial_response_scores_as_pinned(
    constraints: list[dict], response: str, expected: float
) -> None:
    assert value(response, *constraints) == expected


def test_score_is_one_only_when_every_constraint_holds() -> None:
    constraints = (c("all_lowercase"), c("no_commas"), c("exact_lines", 2))
    assert value("a b\nc d", *constraints) == 1.0
    assert value("a b\nc, d", *constraints) == 0.0


def test_explanation_lists_every_failed_constraint_with_measurement() -> None:
    item = make_item(c("max_words", 2), c("no_commas"), c("all_lowercase"))
    result = SCORER.score("one, two three", item)
    assert result.value == 0.0
    assert "failed 2/3" in result.explanation
    assert "max_words: got 3, want <= 2" in result.explanation
    assert "no_commas: 1 commas" in result.explanation


def test_explanation_gives_the_count_found_for_min_count() -> None:
    result = SCORER.score("The tide turned.", make_item(c("contains", "tide", min_count=2)))
    assert "contains: 'tide' found 1, want >= 2" in result.explanation


@pytest.mark.parametrize("response", ["", "   \n\t ", None])
def test_empty_or_missing_response_scores_zero(response: str | None) -> None:
    assert value(response, c("not_contains", "anything")) == 0.0  # type: ignore[arg-type]


def test_score_never_raises_on_an_unusable_target() -> None:
    result = SCORER.score("text", make_item(c("no_such_type")))
    assert result.value == 0.0
    assert "unusable target" in result.explanation


# ------------------------------------------------------------------ check


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ([], "non-empty list"),
        ("max_words 5", "non-empty list"),
        (["max_words"], "must be an object"),
        ([{"type": "max_wrods", "value": 5}], "unknown constraint type"),
        ([{"type": "max_words"}], "value is required"),
        ([{"type": "max_words", "value": "5"}], "integer"),
        ([{"type": "max_words", "value": True}], "integer"),  # a bool is not a count
        ([{"type": "max_words", "value": 0}], "integer >= 1"),
        ([{"type": "max_words", "value": 5, "at_least": True}], "unknown keys"),
        ([{"type": "starts_with", "value": "  "}], "non-empty string"),
        ([{"type": "contains", "value": []}], "non-empty list"),
        ([{"type": "contains", "value": ["ok", "..."]}], "letter or digit"),
        ([{"type": "contains", "value": "x", "min_count": 0}], "min_count"),
        ([{"type": "no_commas", "value": False}], "must be true"),
        ([{"type": "json", "keys": "city"}], "keys must be a list"),
        ([{"type": "json_schema", "value": {"type": "objekt"}}], "invalid JSON Schema"),
        ([{"type": "json_schema", "value": "object"}], "must be a JSON object"),
        ([{"type": "regex", "value": "(unclosed"}], "does not compile"),
        ([{"type": "regex", "value": "a", "flags": "q"}], "unknown regex flag"),
        ([{"type": "bullet_count", "value": 2, "at_least": "yes"}], "at_least"),
        ([{"type": "title_wrapped", "value": 3}], "title_wrapped"),
    ],
)
def test_check_rejects_unusable_constraints(target: object, reason: str) -> None:
    item = Item(id="t", messages=[], scorer="constraints", target=target)
    with pytest.raises(ValueError, match=reason):
        SCORER.check(item)


def test_check_accepts_flag_constraints_without_value() -> None:
    SCORER.check(make_item({"type": "no_commas"}, {"type": "title_wrapped"}, {"type": "json"}))


def test_registry_returns_the_constraints_scorer() -> None:
    assert isinstance(scorers.get("constraints"), ConstraintsScorer)


# ------------------------------------------------------------------ starter workload


def load_items(path: Path) -> list[tuple[dict, Item]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [
        (
            row,
            Item(
                id=row["id"],
                messages=[{"role": "user", "content": row["prompt"]}],
                scorer=row["scorer"],
                target=row["target"],
                category=row["category"],
                metadata=row["metadata"],
            ),
        )
        for row in rows
    ]


INSTRUCTIONS = load_items(DATA)


def test_instructions_file_has_enough_well_formed_items() -> None:
    assert len(INSTRUCTIONS) >= 50
    ids = [row["id"] for row, _ in INSTRUCTIONS]
    assert ids == [f"instructions-{n:03d}" for n in range(1, len(ids) + 1)]
    assert len({row["prompt"] for row, _ in INSTRUCTIONS}) == len(INSTRUCTIONS)
    for row, _ in INSTRUCTIONS:
        assert list(row) == ["id", "prompt", "target", "scorer", "category", "metadata"]
        assert row["category"] == "instructions"
        assert row["scorer"] in {"constraints", "json_schema", "regex"}
    assert Counter(row["scorer"] for row, _ in INSTRUCTIONS)["constraints"] >= 45


def test_instructions_difficulty_spread_matches_the_brief() -> None:
    counts = Counter(row["metadata"]["difficulty"] for row, _ in INSTRUCTIONS)
    assert set(counts) == {"easy", "medium", "hard"}
    shares = {k: v / len(INSTRUCTIONS) for k, v in counts.items()}
    assert 0.28 <= shares["easy"] <= 0.42
    assert 0.33 <= shares["medium"] <= 0.47
    assert 0.18 <= shares["hard"] <= 0.32


def test_hard_instructions_combine_at_least_three_constraints() -> None:
    for row, _ in INSTRUCTIONS:
        if row["metadata"]["difficulty"] == "hard" and row["scorer"] == "constraints":
            assert len(row["target"]) >= 2, row["id"]
            assert len(row["target"]) >= 3 or any(
                t["type"] in {"regex", "json_schema"} for t in row["target"]
            ), row["id"]


@pytest.mark.parametrize(("row", "item"), INSTRUCTIONS, ids=[r["id"] for r, _ in INSTRUCTIONS])
def test_instructions_item_passes_check_and_its_reference_scores_one(row: dict, item: Item) -> None:
    scorer = scorers.get(item.scorer)
    scorer.check(item)
    reference = row["metadata"]["reference"]
    assert isinstance(reference, str) and reference.strip()
    result = scorer.score(reference, item)
    assert result.value == 1.0, result.explanation
    assert scorer.score("", item).value == 0.0


def test_instructions_file_loads_through_the_workload_loader() -> None:
    items = datasets.load(str(DATA))
    assert [i.id for i in items] == [row["id"] for row, _ in INSTRUCTIONS]
