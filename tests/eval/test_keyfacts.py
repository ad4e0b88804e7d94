"""The keyfacts scorer (graded fact recall with length and hallucination guards) and the starter
``extraction.jsonl`` workload."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rankgate.eval import datasets, scorers
from rankgate.eval.scorers.base import Item
from rankgate.eval.scorers.keyfacts import KeyFactsScorer, tokens

SCORER = KeyFactsScorer()
DATA = Path(__file__).parents[2] / "src/rankgate/eval/data/starter/extraction.jsonl"


def make_item(facts: Any, **metadata: Any) -> Item:
    return Item(id="k", messages=[], scorer="keyfacts", target=facts, metadata=metadata)


def value(response: str, facts: Any, **metadata: Any) -> float:
    return SCORER.score(response, make_item(facts, **metadata)).value


# ------------------------------------------------------------------ normalisation

CASES: list[tuple[list, str, float]] = [
    # (facts, response, expected)
    (["1,200"], "They sold 1200 units.", 1.0),  # thousands separators
    (["1200"], "They sold 1,200 units.", 1.0),
    (["1,242"], "Total: $1,242.00", 1.0),  # trailing decimal zeros
    (["12.5"], "It costs 12.50 euros.", 1.0),
    (["12"], "Version 3.12 shipped.", 0.0),  # a decimal never contains its fraction
    (["12"], "About 120 people came.", 0.0),  # whole numbers only
    (["12"], "In 2012 we moved.", 0.0),
    (["12"], "It weighs 12kg.", 1.0),  # a unit glued to the number still separates
    (["tea"], "Our team drinks coffee.", 0.0),  # whole words only
    (["tea"], "TEA, of course.", 1.0),  # case-insensitive
    (["José Álvarez"], "jose alvarez signed it", 1.0),  # accents fold
    (["follow-up"], "a follow up call", 1.0),  # hyphen and space are the same
    (["March 5"], "It is on March 5th.", 1.0),  # ordinal suffixes go
    (["5 March"], "It is on March 5.", 0.0),  # word order matters: give alternatives
    (["3 days"], "It takes three days.", 1.0),  # number words become digits
    (["25%"], "Sales rose 25 percent.", 1.0),
    (["25%"], "It took 25 days.", 0.0),  # percent is kept as a word
    (["INV-20417"], "Invoice inv 20417 is due", 1.0),  # punctuation inside codes is free
    (["INV-20417"], "Invoice INV-20471", 0.0),
    (["Maple-Lantern-42"], "maple lantern 42", 1.0),
    (["Harbourlight Hotel"], "the Harbour light hotel", 0.0),  # a split word is a different word
    ([["Tom Adeyemi", "Adeyemi"]], "Adeyemi scored.", 1.0),  # any alternative counts
    ([["Tom Adeyemi", "Adeyemi"]], "Tom scored.", 0.0),
    (["7:20"], "at 7:20 pm", 1.0),
    (["7:20"], "at 7:00, not 7.20", 0.0),  # 7.20 is a decimal, not a time
    (["Ashby", "Kelling"], "Ashby", 0.5),  # graded: fraction of facts
    (["a1", "b2", "c3"], "b2 and c3", 2 / 3),
    (["handle"], "the handles can work loose", 1.0),  # a plural -s is ignored
    (["heat pumps"], "a heat pump", 1.0),
    (["glass"], "a glas", 0.0),  # -ss is not a plural
    (["Biscuit"], "biscuit tin", 1.0),
    (["Biscuit"], "biscotti", 0.0),
    (["r.halloran@lindenbank.example"], "Write to r.halloran@lindenbank.example.", 1.0),
    (["r.halloran@lindenbank.example"], "Write to info@lindenbank.example.", 0.0),
]


@pytest.mark.parametrize(("facts", "response", "expected"), CASES)
def test_fact_matching_follows_documented_normalisation(
    facts: list, response: str, expected: float
) -> None:
    assert value(response, facts) == pytest.approx(expected)


def test_tokens_fold_numbers_words_and_symbols() -> None:
    assert tokens("£1,200.00 for the 5th, 15% off, three times") == [
        "1200", "for", "the", "5", "15", "percent", "off", "3", "time",
    ]  # fmt: skip


# ------------------------------------------------------------------ guards


def test_exceeding_max_words_scores_zero_even_with_every_fact() -> None:
    result = SCORER.score("Ashby opened a store today", make_item(["Ashby"], max_words=4))
    assert result.value == 0.0
    assert "5 words > max_words 4" in result.explanation


def test_response_at_max_words_is_not_penalised() -> None:
    assert value("Ashby opened a store", ["Ashby"], max_words=4) == 1.0


def test_forbidden_marker_scores_zero() -> None:
    facts = [["1,875"]]
    assert value("The amount is $1,875.", facts, forbidden=["1,587"]) == 1.0
    result = SCORER.score("It is $1,875, not $1,587.", make_item(facts, forbidden=["1,587"]))
    assert result.value == 0.0
    assert "forbidden" in result.explanation


def test_forbidden_marker_matches_whole_tokens_only() -> None:
    assert value("It cost $1168 in all, so $84.", [["84"]], forbidden=["168"]) == 1.0


def test_explanation_names_the_missing_fact() -> None:
    result = SCORER.score("Ashby", make_item(["Ashby", ["Kelling", "Kelling town"]]))
    assert result.explanation == "1/2 facts (missing 'Kelling')"


@pytest.mark.parametrize("response", ["", "  \n", None])
def test_empty_response_scores_zero(response: str | None) -> None:
    assert value(response, ["x"]) == 0.0  # type: ignore[arg-type]


def test_score_never_raises_on_an_unusable_target() -> None:
    result = SCORER.score("text", make_item([]))
    assert result.value == 0.0
    assert "unusable target" in result.explanation


@pytest.mark.parametrize(
    ("facts", "metadata", "reason"),
    [
        ([], {}, "non-empty list"),
        ("Ashby", {}, "non-empty list"),
        ([[]], {}, "non-empty list of strings"),
        ([3], {}, "must be a string"),
        (["..."], {}, "no letters or digits"),
        ([["ok", "—"]], {}, "no letters or digits"),
        (["x"], {"max_words": 0}, "max_words"),
        (["x"], {"max_words": True}, "max_words"),
        (["x"], {"max_words": "20"}, "max_words"),
        (["x"], {"forbidden": "wrong"}, "forbidden"),
        (["x"], {"forbidden": ["!!"]}, "forbidden"),
        (["x"], {"reference": ["a list"]}, "reference"),
    ],
)
def test_check_rejects_unusable_targets(facts: Any, metadata: dict, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        SCORER.check(make_item(facts, **metadata))


def test_registry_returns_the_keyfacts_scorer() -> None:
    assert isinstance(scorers.get("keyfacts"), KeyFactsScorer)


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


EXTRACTION = load_items(DATA)
IDS = [row["id"] for row, _ in EXTRACTION]


def test_extraction_file_has_enough_well_formed_items() -> None:
    assert len(EXTRACTION) >= 50
    assert [f"extraction-{n:03d}" for n in range(1, len(IDS) + 1)] == IDS
    assert len({row["prompt"] for row, _ in EXTRACTION}) == len(EXTRACTION)
    for row, _ in EXTRACTION:
        assert list(row) == ["id", "prompt", "target", "scorer", "category", "metadata"]
        assert row["category"] == "extraction"
        assert row["scorer"] in {"keyfacts", "json_schema"}
    assert Counter(row["scorer"] for row, _ in EXTRACTION)["keyfacts"] >= 45


def test_extraction_difficulty_spread_matches_the_brief() -> None:
    counts = Counter(row["metadata"]["difficulty"] for row, _ in EXTRACTION)
    assert set(counts) == {"easy", "medium", "hard"}
    shares = {k: v / len(EXTRACTION) for k, v in counts.items()}
    assert 0.28 <= shares["easy"] <= 0.42
    assert 0.33 <= shares["medium"] <= 0.47
    assert 0.18 <= shares["hard"] <= 0.32


def test_every_keyfacts_item_caps_the_answer_length() -> None:
    for row, _ in EXTRACTION:
        if row["scorer"] == "keyfacts":
            assert isinstance(row["metadata"].get("max_words"), int), row["id"]


def test_json_schema_extraction_items_pin_exact_values() -> None:
    for row, _ in EXTRACTION:
        if row["scorer"] == "json_schema":
            assert '"const"' in json.dumps(row["target"]) or '"enum"' in json.dumps(row["target"])


@pytest.mark.parametrize(("row", "item"), EXTRACTION, ids=IDS)
def test_extraction_item_passes_check_and_its_reference_scores_one(row: dict, item: Item) -> None:
    scorer = scorers.get(item.scorer)
    scorer.check(item)
    reference = row["metadata"]["reference"]
    assert isinstance(reference, str) and reference.strip()
    result = scorer.score(reference, item)
    assert result.value == 1.0, result.explanation


@pytest.mark.parametrize(("row", "item"), EXTRACTION, ids=IDS)
def test_echoing_the_prompt_or_the_passage_does_not_score_full_marks(row: dict, item: Item) -> None:
    scorer = scorers.get(item.scorer)
    _, passage = row["prompt"].split("\n\n", 1)
    assert scorer.score(row["prompt"], item).value < 1.0
    assert scorer.score(passage, item).value < 1.0


def test_extraction_file_loads_through_the_workload_loader() -> None:
    items = datasets.load(str(DATA))
    assert [i.id for i in items] == [row["id"] for row, _ in EXTRACTION]
