"""Final-answer extraction: what chain-of-thought hands the scorers and what
self-consistency votes on."""

from __future__ import annotations

from rankgate.eval.scorers.base import Item
from rankgate.eval.scorers.numeric import NumericScorer
from rankgate.variants.answers import extracted, final_answer, vote_key


def test_the_answer_is_what_follows_the_last_answer_marker():
    reply = "Step 1: 17 + 25.\nAnswer: 41? No.\nStep 2: recount.\nAnswer: 42"
    assert final_answer(reply) == "42"


def test_a_multiline_answer_such_as_code_is_kept_whole():
    reply = "I will write it.\nAnswer:\n```python\ndef f():\n    return 1\n```"
    assert final_answer(reply) == "```python\ndef f():\n    return 1\n```"


def test_bold_markers_and_final_answer_wording_are_understood():
    assert final_answer("so...\n**Final Answer:** B") == "B"


def test_a_reply_without_a_marker_is_kept_whole():
    assert final_answer("Paris.") is None
    assert extracted("  Paris.  ") == "Paris."


def test_votes_ignore_case_space_and_a_final_full_stop():
    assert vote_key("Reasoning...\nAnswer:  Paris.") == vote_key("answer: paris") == "paris"


def test_the_numeric_scorer_grades_an_extracted_answer():
    item = Item(id="m", messages=[{"role": "user", "content": "17+25?"}], scorer="numeric",
                target=42)
    reply = "17 + 25: first 17 + 20 = 37, then 37 + 5 = 42.\nAnswer: 42"
    assert NumericScorer().score(extracted(reply), item).value == 1.0
