"""The semantic cache's gate on the generalised rules: letter-digit tokens (versions, protocols,
model and product names) must match exactly, and punctuation is never read as a sign or an
operator, while a real minus sign still changes the question."""

from __future__ import annotations

import pytest

from rankgate.gateway.cache_gate import SameQuestionGate, same_question


def _refused(a: str, b: str) -> str:
    """The refusal reason, checked in both directions."""
    reasons = []
    for x, y in ((a, b), (b, a)):
        allowed, reason = same_question(x, y)
        assert not allowed, f"{x!r} / {y!r} was let through"
        reasons.append(reason.lower())
    return reasons[0]


def _allowed(a: str, b: str) -> None:
    assert same_question(a, b) == (True, "")
    assert same_question(b, a) == (True, "")


LETTER_DIGIT_NEAR_MISSES = [
    ("Is log4j2 vulnerable to remote code execution?",
     "Is log4j1 vulnerable to remote code execution?", "log4j1"),  # one digit inside a word
    ("Is gpt4o good at summarising contracts?", "Is gpt4 good at summarising contracts?",
     "gpt4o"),
    ("Does curl support http2 by default?", "Does curl support http3 by default?", "http2"),
    ("Save the CSV as utf8", "Save the CSV as utf16", "utf16"),
    ("Give a VM an ipv4 address", "Give a VM an ipv6 address", "ipv6"),
    ("Build wheels for x86_64 Linux", "Build wheels for x86_32 Linux", "x86_64"),
    ("Restart the interface eth0", "Restart the interface eth1", "eth1"),
    ("Which python3 packages need rebuilding?", "Which python2 packages need rebuilding?",
     "python2"),
    ("Is h264 supported in Firefox?", "Is h265 supported in Firefox?", "h265"),
]


@pytest.mark.parametrize(("a", "b", "token"), LETTER_DIGIT_NEAR_MISSES,
                         ids=[t for _, _, t in LETTER_DIGIT_NEAR_MISSES])
def test_letter_digit_tokens_must_match_exactly(a: str, b: str, token: str) -> None:
    reason = _refused(a, b)
    assert "letter-digit" in reason and token in reason


def test_the_same_letter_digit_token_in_another_spelling_still_hits() -> None:
    _allowed("How do I install Log4j2 with Maven?", "how can i install log4j2 using maven")
    _allowed("Encode the file as UTF-8", "encode the file as utf8")  # a hyphen is spelling
    _allowed("Is GPT-4o good at math?", "is gpt4o good at math")


def test_a_number_with_a_unit_suffix_is_still_compared_as_a_number() -> None:
    assert "numbers" in _refused("How much protein is in 100g of tofu?",
                                 "How much protein is in 200g of tofu?")


def test_letter_digit_tokens_keep_their_direction() -> None:
    assert "direction" in _refused("Migrate a network from ipv4 to ipv6",
                                   "Migrate a network from ipv6 to ipv4")


def test_a_dash_before_a_word_is_punctuation_not_a_number() -> None:
    _allowed("Sorting a dict by value in Python - how?", "How do I sort a dict by value in Python?")
    _allowed("Grep for a word recursively – what flags?", "What flags grep for a word recursively?")
    parsed = SameQuestionGate().parse("Merging dataframes - any tips?")
    assert parsed.numbers == ()


def test_hyphenated_words_and_number_compounds_are_not_subtractions() -> None:
    assert SameQuestionGate().parse("a well-known 3-step recipe").numbers == ("3",)


def test_a_minus_sign_still_changes_the_question() -> None:
    assert "-5" in _refused("Set the freezer to -5 degrees", "Set the freezer to 5 degrees")
    assert "-12" in _refused("What is the square of -12?", "What is the square of 12?")
    _allowed("What is the square of -12?", "what's the square of -12")
    _allowed("What is the square of −12?", "What is the square of -12?")  # U+2212 minus


def test_a_dash_after_a_word_character_is_not_a_sign() -> None:
    parsed = SameQuestionGate().parse("Simplify x-5")
    assert parsed.numbers == ("5", "op-")  # a subtraction, not the number -5
    _allowed("Simplify x-5", "Simplify x - 5")


def test_operators_count_between_operands_however_spaced() -> None:
    _allowed("Solve 4y + 1 = 9", "Solve 4y+1=9")
    assert "numbers" in _refused("What is 10 - 4?", "What is 10 + 4?")


def test_the_module_function_is_the_gate() -> None:
    a, b = "Is log4j2 safe?", "Is log4j1 safe?"
    assert SameQuestionGate().compare(a, b) == same_question(a, b)
