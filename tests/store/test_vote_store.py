"""Votes in the store (SQLite and PostgreSQL): they read back as written, feedback becomes votes
by the documented rule, and those votes move a model's Bradley–Terry rating the right way.

Scores and votes written here are data (a user's thumbs, grades as numbers), not model answers:
nothing in this file generates or imitates what a model says."""

from __future__ import annotations

import time

import pytest

from rankgate.outcomes import Outcome
from rankgate.rank import bradley_terry as bt
from rankgate.rank.inputs import gather
from rankgate.store.outcome_store import add_outcome, add_outcomes, query_outcomes
from rankgate.store.vote_store import (
    JudgeError,
    StoredVote,
    add_judge_errors,
    add_votes,
    all_votes,
    feedback_votes,
    graded_answers,
    judged_pairs,
    read_judge_errors,
    read_votes,
)

NOW = time.time()


def test_votes_read_back_equal_in_time_order_and_filter_by_source_time_judge_model(
        store_engine):
    written = [
        StoredVote("r2", "a", "b", 0.5, "judge", NOW - 10, judge="j", first="A", second="B"),
        StoredVote("r1", "a", "c", 1.0, "judge", NOW - 20, judge="j", first="A", second="A"),
        StoredVote("x9", "b", "c", 0.0, "import", NOW - 5),
    ]
    assert add_votes(store_engine, written) == 3
    assert read_votes(store_engine) == [written[1], written[0], written[2]]
    assert read_votes(store_engine, sources=["import"]) == [written[2]]
    assert read_votes(store_engine, since=NOW - 15) == [written[0], written[2]]
    assert read_votes(store_engine, until=NOW - 15) == [written[1]]
    assert read_votes(store_engine, judge="j", models=["c"]) == [written[1]]
    assert read_votes(store_engine, sources=[]) == []


@pytest.mark.parametrize(("vote", "message"), [
    (StoredVote("r", "a", "b", 1.0, "feedback", NOW), "derived from feedback outcomes"),
    (StoredVote("r", "a", "b", 1.5, "judge", NOW), r"outcome must be in \[0, 1\]"),
    (StoredVote("r", "a", "a", 1.0, "judge", NOW), "cannot be compared with itself"),
])
def test_a_bad_vote_is_refused_and_nothing_is_written(store_engine, vote, message):
    good = StoredVote("r", "a", "b", 1.0, "judge", NOW)
    with pytest.raises(ValueError, match=message):
        add_votes(store_engine, [good, vote])
    assert read_votes(store_engine) == []


def test_judged_work_includes_recorded_unparsable_verdicts(store_engine):
    add_votes(store_engine, [StoredVote("r1", "b", "a", 1.0, "judge", NOW, judge="j")])
    add_judge_errors(store_engine, [
        JudgeError("r2", "pairwise", "a", "j", "no parsable verdict", NOW, "c"),
        JudgeError("r3", "rubric", "a", "j", "no parsable rating", NOW),
        JudgeError("r4", "rubric", "a", "other", "no parsable rating", NOW)])
    add_outcome(store_engine, Outcome("r5", "q", "a", 0.5, source="judge",
                                      extra={"judge": "j"}))
    add_outcome(store_engine, Outcome("r6", "q", "a", 0.5, source="judge",
                                      extra={"judge": "other"}))
    assert judged_pairs(store_engine, "j") == {("r1", "a", "b"), ("r2", "a", "c")}
    assert graded_answers(store_engine, "j") == {("r3", "a"), ("r5", "a")}
    assert [e.prompt_id for e in read_judge_errors(store_engine, judge="j")] == ["r2", "r3"]


def _grade(rid: str, model: str, score: float, ts: float = NOW) -> tuple[Outcome, float]:
    return Outcome(rid, "q", model, score, source="judge", extra={"judge": "j"}), ts


def _store(engine, rows: list[tuple[Outcome, float]]) -> None:
    for o, ts in rows:
        add_outcome(engine, o, ts=ts)


def test_feedback_on_the_live_answer_meets_every_other_judged_answer_of_that_request(
        store_engine):
    _store(store_engine, [
        _grade("r1", "live", 0.9), _grade("r1", "s1", 0.5), _grade("r1", "s2", 0.9),
        _grade("r2", "s1", 0.2), _grade("r3", "s1", 0.8)])
    add_outcomes(store_engine, [
        Outcome("r1", "q", "live", 1.0, source="feedback"),  # up: beats 0.5, ties 0.9
        Outcome("r2", "q", "live", 0.0, source="feedback"),  # down: ties 0.2 (within 0.2)
        Outcome("r3", "q", "live", 0.0, source="feedback"),  # down: loses to 0.8
        Outcome("r4", "q", "live", 1.0, source="feedback"),  # nobody else answered r4
    ], ts=NOW)
    got = {(v.prompt_id, v.model_a, v.model_b): v.outcome for v in feedback_votes(store_engine)}
    assert got == {("r1", "live", "s1"): 1.0, ("r1", "live", "s2"): 0.5,
                   ("r2", "live", "s1"): 0.5, ("r3", "live", "s1"): 0.0}
    assert {v.source for v in feedback_votes(store_engine)} == {"feedback"}
    assert feedback_votes(store_engine, since=NOW + 1) == []
    # all_votes: the stored kinds plus the derived ones, each only when asked for
    add_votes(store_engine, [StoredVote("r1", "s1", "s2", 0.0, "judge", NOW, judge="j")])
    assert {v.source for v in all_votes(store_engine)} == {"judge", "feedback"}
    assert {v.source for v in all_votes(store_engine, sources=["judge"])} == {"judge"}


def _rating(engine, model: str) -> float:
    inputs = gather([], engine, kinds=["judge", "feedback"])
    return {r.model: r.rating for r in bt.fit(inputs.votes, n_boot=20)}[model]


@pytest.mark.parametrize("thumbs", [1.0, 0.0])
def test_feedback_votes_move_the_live_models_rating_in_the_direction_of_the_feedback(
        store_engine, thumbs):
    # judge votes alone: the live model and the shadow are even (every comparison a tie)
    rids = [f"r{i}" for i in range(20)]
    add_votes(store_engine, [StoredVote(r, "live", "shadow", 0.5, "judge", NOW, judge="j")
                             for r in rids])
    _store(store_engine, [_grade(r, m, 0.5) for r in rids for m in ("live", "shadow")])
    before = _rating(store_engine, "live")
    assert before == pytest.approx(1000, abs=1)
    add_outcomes(store_engine, [Outcome(r, "q", "live", thumbs, source="feedback")
                                for r in rids[:12]], ts=NOW)
    after = _rating(store_engine, "live")
    assert (after > before + 50) if thumbs == 1.0 else (after < before - 50)


def test_query_outcomes_filters_by_kind_time_key_category_and_item(store_engine):
    import sqlalchemy as sa

    from rankgate.store.tables import request_log

    with store_engine.begin() as conn:
        conn.execute(sa.insert(request_log), [
            {"id": "k1", "ts": NOW, "endpoint": "chat", "status": 200, "key_id": "alice"},
            {"id": "k2", "ts": NOW, "endpoint": "chat", "status": 200, "key_id": "bob"}])
    add_outcome(store_engine, Outcome("k1", "q", "m", 1.0, source="feedback"), ts=NOW - 100)
    add_outcome(store_engine, Outcome("k2", "q", "m", 0.0, source="feedback"), ts=NOW - 50)
    add_outcome(store_engine, Outcome("i1", "q", "m", 1.0, source="eval:starter",
                                      category="math"), ts=NOW - 10)
    ids = lambda rows: [o.prompt_id for _, o in rows]  # noqa: E731
    assert ids(query_outcomes(store_engine, kinds=["eval"])) == ["i1"]
    assert ids(query_outcomes(store_engine, kinds=["feedback"], key_id="alice")) == ["k1"]
    assert ids(query_outcomes(store_engine, since=NOW - 60, until=NOW - 20)) == ["k2"]
    assert ids(query_outcomes(store_engine, category="math")) == ["i1"]
    assert ids(query_outcomes(store_engine, prompt_ids=["i1", "k1", *map(str, range(1200))])
               ) == ["k1", "i1"]
    assert [ts for ts, _ in query_outcomes(store_engine)] == [NOW - 100, NOW - 50, NOW - 10]
