"""What rank and route train are made of: an answer scored by several sources counts once (the
most trusted kind's score), votes keep their source, and the provenance sentence says it."""

from __future__ import annotations

import pytest

from rankgate.outcomes import Outcome
from rankgate.rank.bradley_terry import Vote
from rankgate.rank.inputs import (
    InputError,
    describe,
    gather,
    merge_answers,
    parse_sources,
    read_vote_file,
)
from rankgate.rank.leaderboard import leaderboard


def o(pid: str, model: str, score: float | None, source: str | None) -> Outcome:
    return Outcome(pid, "q", model, score, source=source)


def test_one_answer_scored_by_judge_and_feedback_keeps_the_feedback_score():
    rows = [o("r1", "a", 0.3, "judge"), o("r1", "a", 1.0, "feedback"),
            o("r1", "b", 0.2, "judge"), o("r1", "b", 0.6, "judge"),
            o("i1", "a", 1.0, "eval:starter"), o("i1", "a", 0.0, "feedback")]
    merged, n = merge_answers(rows)
    assert n == 3
    assert [(m.prompt_id, m.model, m.score, m.source) for m in merged] == [
        ("r1", "a", 1.0, "feedback"), ("r1", "b", pytest.approx(0.4), "judge"),
        ("i1", "a", 1.0, "eval:starter")]


def test_unique_answers_pass_through_unchanged_and_in_order():
    rows = [o("1", "a", 1.0, "eval:x"), o("1", "b", None, "eval:x"), o("2", "a", 0.0, None)]
    assert merge_answers(rows) == (rows, 0)


def test_the_sentence_names_every_kind_and_vote_source():
    rows = [o(f"r{i}", "a", 0.5, "judge") for i in range(412)]
    rows += [o(f"f{i}", "a", 1.0, "feedback") for i in range(96)]
    votes = [Vote("a", "b", 1.0, "judge")] * 980 + [Vote("a", "b", 0.5, "feedback")] * 40
    text = describe(gather(rows, file_votes=votes))
    assert text == ("from 412 judge outcomes and 96 feedback outcomes, 1,020 votes "
                    "(judge 980, feedback 40)")


def test_vote_files_in_both_shapes_keep_or_infer_their_source(tmp_path):
    f = tmp_path / "votes.jsonl"
    f.write_text('{"a": "x", "b": "y", "outcome": 1}\n'
                 '{"model_a": "x", "model_b": "y", "winner": "tie"}\n'
                 '{"prompt_id": "p", "a": "x", "b": "y", "outcome": 0, "judge": "j"}\n')
    assert read_vote_file(f) == [Vote("x", "y", 1.0, "import"), Vote("x", "y", 0.5, "import"),
                                 Vote("x", "y", 0.0, "judge")]


@pytest.mark.parametrize(("line", "message"), [
    ('{"a": "x", "b": "y", "outcome": 2}', "outcome must be in"),
    ('{"a": "x", "outcome": 1}', "KeyError"),
    ('{"a": "x", "b": "y", "outcome": 1, "source": "oracle"}', "source must be one of"),
    ("not json", "JSONDecodeError"),
])
def test_a_bad_vote_line_is_named(tmp_path, line, message):
    f = tmp_path / "votes.jsonl"
    f.write_text('{"a": "x", "b": "y", "outcome": 1}\n' + line + "\n")
    with pytest.raises(InputError, match=f"votes.jsonl:2: not a vote.*{message}"):
        read_vote_file(f)


def test_sources_are_checked():
    assert parse_sources(None) == ["eval", "import", "live", "shadow", "judge", "feedback"]
    assert parse_sources("judge, feedback") == ["judge", "feedback"]
    with pytest.raises(InputError, match=r"unknown kind.*gold"):
        parse_sources("judge,gold")


def test_a_model_known_only_from_votes_gets_a_rating_and_no_accuracy():
    rows = [o(f"i{i}", "a", float(i % 2), "eval:x") for i in range(10)]
    votes = [Vote("a", "judged-only", 0.0, "judge")] * 15 + [Vote("a", "judged-only", 1.0)] * 5
    board = leaderboard(rows, votes)
    entry = {m["model"]: m for m in board["models"]}["judged-only"]
    assert entry["accuracy"] is None and entry["bt_rating"] > 1000
    assert entry["warnings"] == ["no outcomes: rated by pairwise votes only"]
    assert board["votes"] == {"n": 20, "by_source": {"judge": 15, "import": 5}}
