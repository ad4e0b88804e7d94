"""Imports: real LLMRouter data and small CSV fixtures become outcomes; every skipped cell, row
and ignored column is counted with its reason, and every assumption is stated in the notes."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from rankgate.outcomes import read_jsonl, write_jsonl
from rankgate.outcomes.importers import (
    ImportFileError,
    detect_format,
    import_file,
    load_prices,
)

FIXTURES = Path(__file__).parent / "fixtures" / "import"
WIDE = FIXTURES / "wide.csv"
ROUTERBENCH = FIXTURES / "routerbench.csv"
LLMROUTER = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter-9models"

needs_llmrouter = pytest.mark.skipif(
    not (LLMROUTER / "test.json").is_file() or not (LLMROUTER / "default_llm.json").is_file(),
    reason=f"shared LLMRouter data not found at {LLMROUTER} (test.json + default_llm.json)",
)


def write_json(tmp_path: Path, items: object, name: str = "items.json") -> Path:
    p = tmp_path / name
    p.write_bytes(orjson.dumps(items))
    return p


# --- real LLMRouter data ---------------------------------------------------------------------


@needs_llmrouter
def test_llmrouter_test_split_gives_every_item_for_every_model_with_estimated_costs():
    r = import_file(LLMROUTER / "test.json", prices=LLMROUTER / "default_llm.json")
    assert r.format == "llmrouter"
    assert (r.rows_read, r.rows_skipped, r.scores_skipped, r.skipped) == (500, 0, 0, [])
    assert len(r.models) == 9
    assert len(r.outcomes) == 4500
    assert r.prompts == 500
    assert all(o.cost_usd is not None and o.cost_usd > 0 for o in r.outcomes)
    assert all(o.output_tokens == 256 and o.input_tokens > 0 for o in r.outcomes)
    assert all(o.extra["estimated"] == ["cost_usd", "input_tokens", "output_tokens"]
               for o in r.outcomes)


@needs_llmrouter
def test_llmrouter_cost_is_prompt_tokens_plus_assumed_output_tokens_at_file_prices():
    prices = load_prices(LLMROUTER / "default_llm.json")
    r = import_file(LLMROUTER / "test.json", prices=LLMROUTER / "default_llm.json",
                    output_tokens=100, chars_per_token=3.0)
    o = r.outcomes[0]
    p = prices[o.model]
    assert o.input_tokens == math.ceil(len(o.prompt) / 3.0)
    assert o.output_tokens == 100
    assert o.cost_usd == pytest.approx(
        (o.input_tokens * p.input_per_mtok + 100 * p.output_per_mtok) / 1e6)


@needs_llmrouter
def test_llmrouter_notes_state_the_output_length_assumption():
    r = import_file(LLMROUTER / "test.json", prices=LLMROUTER / "default_llm.json")
    text = " ".join(r.notes)
    assert "estimates" in text and "assumed 256" in text and "default_llm.json" in text
    assert "detected format llmrouter" in text
    assert "assumed 256" in r.summary()


@needs_llmrouter
def test_llmrouter_without_price_file_has_null_costs_and_says_so():
    r = import_file(LLMROUTER / "test.json")
    assert len(r.outcomes) == 4500
    assert all(o.cost_usd is None and o.input_tokens is None for o in r.outcomes)
    assert any("no costs in this file" in n for n in r.notes)


@needs_llmrouter
def test_llmrouter_import_round_trips_through_jsonl(tmp_path):
    r = import_file(LLMROUTER / "test.json", prices=LLMROUTER / "default_llm.json")
    out = tmp_path / "outcomes.jsonl"
    assert write_jsonl(out, r.outcomes) == 4500
    assert read_jsonl(out) == r.outcomes


# --- LLMRouter-style JSON: bad values --------------------------------------------------------


def test_llmrouter_bad_values_skip_only_their_model_and_missing_prompt_skips_the_row(tmp_path):
    p = write_json(tmp_path, [
        {"question": "q1", "scores": {"a": 1.0, "b": 0}, "cluster_id": 3},
        {"question": "q2", "scores": {"a": None, "b": "0.5"}},
        {"question": "q3", "scores": {"a": 1.5, "b": True}},
        {"question": "", "scores": {"a": 1.0, "b": 1.0}},
        {"scores": {"a": 1.0}},
        {"question": "q6", "scores": {}},
        "not an object",
    ])
    r = import_file(p)
    assert [(o.prompt, o.model, o.score) for o in r.outcomes] == [
        ("q1", "a", 1.0), ("q1", "b", 0.0)]
    assert r.outcomes[0].category == "3"
    assert (r.rows_read, r.rows_skipped, r.scores_skipped) == (7, 4, 4)
    assert r.skipped == [
        (2, "empty score for model a"),
        (2, "non-numeric score '0.5' for model b"),
        (3, "score 1.5 outside [0,1] for model a"),
        (3, "non-numeric score 'True' for model b"),
        (4, "missing prompt"),
        (5, "missing prompt"),
        (6, "no 'scores' object"),
        (7, "item is str, not an object"),
    ]


def test_llmrouter_model_missing_from_price_file_gets_null_cost_and_a_note(tmp_path):
    p = write_json(tmp_path, [{"question": "abcd" * 10, "scores": {"a": 1.0, "b": 0.0}}])
    prices = tmp_path / "prices.yaml"
    prices.write_text("a: {input_price: 1.0, output_price: 2.0}\n")
    r = import_file(p, prices=prices, output_tokens=10)
    a, b = r.outcomes
    assert a.cost_usd == pytest.approx((10 * 1.0 + 10 * 2.0) / 1e6)
    assert b.cost_usd is None and b.input_tokens is None and "estimated" not in b.extra
    assert any("no price in prices.yaml for b" in n for n in r.notes)


def test_same_prompt_gets_same_id_across_files_and_repeats_get_a_suffix(tmp_path):
    one = import_file(write_json(tmp_path, [{"question": "x", "scores": {"a": 1}}], "1.json"))
    two = import_file(write_json(tmp_path, [{"question": "y", "scores": {"a": 1}},
                                            {"question": "x", "scores": {"a": 0}},
                                            {"question": "x", "scores": {"a": 1}}], "2.json"))
    x_id = one.outcomes[0].prompt_id
    assert [o.prompt_id for o in two.outcomes][1:] == [x_id, f"{x_id}-2"]
    assert any("repeated prompts: 1 row" in n for n in two.notes)


def test_bad_price_file_is_an_error_naming_model_and_field(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text('{"a": {"input_price": "cheap", "output_price": 1}}')
    with pytest.raises(ImportFileError, match="model 'a': field 'input_price'"):
        load_prices(prices)


# --- wide CSV --------------------------------------------------------------------------------


def test_wide_csv_counts_every_skip_with_its_reason():
    r = import_file(WIDE, fmt="wide-csv")
    assert r.models == ["small", "mid", "large"]
    assert (r.rows_read, r.rows_skipped, r.scores_skipped) == (6, 1, 3)
    assert len(r.outcomes) == 5 * 3 - 3
    assert r.skipped == [
        (3, "empty score for model small"),
        (4, "non-numeric score 'abc' for model small"),
        (5, "missing prompt"),
        (6, "score 1.7 outside [0,1] for model large"),
    ]


def test_wide_csv_takes_ids_and_categories_from_their_columns():
    r = import_file(WIDE, fmt="wide-csv")
    by = {(o.prompt_id, o.model): o for o in r.outcomes}
    assert by["q6", "small"].prompt == "Sort [3, 1, 2]"
    assert by["q6", "small"].score == 0.25
    assert by["q3", "mid"].category == "math"
    assert ("q3", "small") not in by and ("q6", "large") not in by
    assert all(o.source == "import:wide.csv" and o.cost_usd is None for o in r.outcomes)


def test_wide_csv_reports_columns_that_are_not_scores_instead_of_guessing():
    r = import_file(WIDE, fmt="wide-csv")
    assert "column 'notes' is text, not scores (e.g. 'easy'); ignored" in r.notes
    assert ("column 'latency_ms' is numeric but not scores in [0,1] (e.g. 120); ignored"
            in r.notes)
    assert any("no costs in this file" in n for n in r.notes)


def test_wide_csv_accepts_question_column_and_derives_prompt_ids(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text("question,m1,m2\nfirst,1,0\nsecond,0,1\n")
    r = import_file(p)
    assert r.format == "wide-csv"
    assert len(r.outcomes) == 4
    assert len({o.prompt_id for o in r.outcomes}) == 2
    assert "prompts come from column 'question'" in r.notes


def test_wide_csv_row_with_wrong_field_count_is_skipped_whole(tmp_path):
    p = tmp_path / "short.csv"
    p.write_text("prompt,a,b\nok,1,0\nshort,1\n")
    r = import_file(p)
    assert len(r.outcomes) == 2
    assert r.skipped == [(2, "row has 2 fields but the header has 3")]


def test_wide_csv_duplicate_prompt_id_skips_the_later_scores(tmp_path):
    p = tmp_path / "dup.csv"
    p.write_text("prompt_id,prompt,a\nx,one,1\nx,two,0\n")
    r = import_file(p)
    assert [o.prompt for o in r.outcomes] == ["one"]
    assert r.skipped == [(2, "duplicate prompt_id 'x' for model a (first at row 1)")]


def test_wide_csv_with_estimated_costs_from_a_price_file(tmp_path):
    prices = tmp_path / "p.json"
    prices.write_text('{"small": {"input_price": 1, "output_price": 1}}')
    r = import_file(WIDE, prices=prices, output_tokens=0, chars_per_token=1.0)
    o = next(o for o in r.outcomes if o.prompt_id == "q1" and o.model == "small")
    assert o.cost_usd == pytest.approx(len("What is 2+2?") / 1e6)
    assert any("no price in p.json for mid, large" in n for n in r.notes)


def test_csv_without_prompt_column_is_an_error(tmp_path):
    p = tmp_path / "noprompt.csv"
    p.write_text("text,a\nhello,1\n")
    with pytest.raises(ImportFileError, match="no 'prompt'"):
        import_file(p)


def test_csv_without_any_score_column_is_an_error(tmp_path):
    p = tmp_path / "noscores.csv"
    p.write_text("prompt,comment\nhello,nice\n")
    with pytest.raises(ImportFileError, match="no score columns"):
        import_file(p)


# --- RouterBench -----------------------------------------------------------------------------


def test_routerbench_counts_every_skip_with_its_reason():
    r = import_file(ROUTERBENCH, fmt="routerbench")
    assert r.models == ["small", "big"]
    assert (r.rows_read, r.rows_skipped, r.scores_skipped) == (5, 1, 1)
    assert len(r.outcomes) == 7
    assert r.skipped == [(4, "missing prompt"), (5, "empty score for model small")]


def test_routerbench_keeps_responses_costs_ids_and_categories():
    r = import_file(ROUTERBENCH, fmt="routerbench")
    by = {(o.prompt_id, o.model): o for o in r.outcomes}
    assert by["mmlu.1", "big"].response == "Jupiter, by far."
    assert by["mmlu.1", "big"].cost_usd == pytest.approx(0.0004)
    assert by["mmlu.1", "big"].category == "mmlu"
    assert by["mmlu.2", "small"].prompt == "Two-line\nprompt"
    assert by["mmlu.2", "small"].response == "line one\nline two"
    assert by["gsm8k.0", "small"].response == "42"
    assert by["gsm8k.0", "small"].score == 1.0


def test_routerbench_empty_cost_is_null_and_noted_not_zero():
    r = import_file(ROUTERBENCH, fmt="routerbench")
    o = next(o for o in r.outcomes if (o.prompt_id, o.model) == ("mmlu.2", "small"))
    assert o.cost_usd is None
    assert any(n.startswith("unusable costs (empty or not a non-negative number): 1")
               for n in r.notes)


def test_routerbench_reports_the_columns_it_ignores():
    r = import_file(ROUTERBENCH, fmt="routerbench")
    assert any("'oracle_model_to_route_to'" in n and "ignored" in n for n in r.notes)


def test_routerbench_ignores_a_price_file_and_says_so(tmp_path):
    prices = tmp_path / "p.json"
    prices.write_text('{"small": {"input_price": 100, "output_price": 100}}')
    r = import_file(ROUTERBENCH, prices=prices)
    assert any("p.json ignored" in n for n in r.notes)
    assert all("estimated" not in o.extra for o in r.outcomes)


def test_routerbench_file_read_as_wide_csv_does_not_take_cost_columns_for_models():
    r = import_file(ROUTERBENCH, fmt="wide-csv")
    assert r.models == ["small", "big"]
    assert any("'small|total_cost' is RouterBench-style" in n for n in r.notes)


# --- detection, round trip, bad input --------------------------------------------------------


@pytest.mark.parametrize(("path", "fmt"), [(WIDE, "wide-csv"), (ROUTERBENCH, "routerbench")])
def test_auto_detects_csv_flavour_and_says_so(path, fmt):
    assert detect_format(path)[0] == fmt
    r = import_file(path)
    assert r.format == fmt
    assert r.notes[0].startswith(f"detected format {fmt}")


def test_auto_detects_llmrouter_json_and_jsonl(tmp_path):
    item = {"question": "q", "scores": {"a": 1}}
    assert detect_format(write_json(tmp_path, [item]))[0] == "llmrouter"
    jl = tmp_path / "items.jsonl"
    jl.write_bytes(orjson.dumps(item) + b"\n\n" + orjson.dumps(item | {"question": "r"}) + b"\n")
    r = import_file(jl)
    assert r.format == "llmrouter"
    assert r.rows_read == 2 and len(r.outcomes) == 2


def test_auto_refuses_json_that_is_not_llmrouter_style(tmp_path):
    with pytest.raises(ImportFileError, match="not LLMRouter-style"):
        import_file(write_json(tmp_path, [{"prompt_id": "x", "model": "a", "score": 1}]))


def test_wide_csv_import_round_trips_through_jsonl(tmp_path):
    r = import_file(WIDE)
    out = tmp_path / "wide.jsonl.gz"
    write_jsonl(out, r.outcomes)
    assert read_jsonl(out) == r.outcomes


def test_summary_lists_counts_notes_and_skips():
    s = import_file(WIDE).summary(max_listed=2)
    assert s.splitlines()[0] == ("imported 12 outcomes (5 prompts × 3 models) "
                                 "from wide.csv [wide-csv]")
    assert "read 6 rows; skipped 1 whole row and 3 single scores" in s
    assert "row 3: empty score for model small" in s
    assert "… and 2 more" in s


def test_unknown_format_and_missing_file_are_errors(tmp_path):
    with pytest.raises(ImportFileError, match="unknown format"):
        import_file(WIDE, fmt="parquet")
    with pytest.raises(ImportFileError, match="no such file"):
        import_file(tmp_path / "nope.csv")
