"""LLM-as-judge: single-answer grading with a rubric, and pairwise comparison in both orders.

Any panel or hosted model can judge (it is just a ``Backend``). Single grading asks for a
1–10 rating in ``[[n]]`` and maps it to (n−1)/9. Pairwise judging asks which of two answers is
better, **twice, with the order swapped**; if the two verdicts disagree (position bias) the
comparison is a tie. Verdicts that can't be parsed are ties/zero, never guesses.

``JudgeScorer`` is an ordinary scorer: the runner passes its judge model (``rankgate eval
--judge MODEL``) to every scorer's ``ascore``, and this one is the scorer that uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rankgate.backends.base import Backend
from rankgate.eval.scorers.base import Item, Score

GRADE_PROMPT = """You are a strict, fair grader. Rate the ASSISTANT ANSWER to the USER QUESTION.
{rubric}{reference}
Rate from 1 (useless or wrong) to 10 (fully correct, complete and clear). Think briefly, then
end with your rating in double brackets, for example: Rating: [[7]]

[USER QUESTION]
{question}

[ASSISTANT ANSWER]
{answer}
"""

PAIR_PROMPT = """You are a strict, fair judge. Compare two answers to the same USER QUESTION
and decide which one is better (more correct, then more helpful). Ignore length and style.
{rubric}Think briefly, then end with your verdict in double brackets: [[A]] if answer A is
better, [[B]] if answer B is better, [[C]] for a tie.

[USER QUESTION]
{question}

[ANSWER A]
{a}

[ANSWER B]
{b}
"""

_RATING = re.compile(r"\[\[\s*(10|[1-9])(?:\s*/\s*10)?\s*\]\]")
_RATING_LOOSE = re.compile(r"rating\s*[:=]?\s*(10|[1-9])\b", re.I)
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_rating(text: str) -> int | None:
    """The judge's 1–10 rating: the last ``[[n]]``, else a last "Rating: n"; None if absent
    or if several different bracketed ratings are given."""
    found = _RATING.findall(text)
    if found:
        return int(found[-1]) if len(set(found)) == 1 else None
    loose = _RATING_LOOSE.findall(text)
    return int(loose[-1]) if loose else None


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'C' (tie) from the last ``[[X]]``; None if absent or contradictory."""
    found = _VERDICT.findall(text)
    if not found or len(set(found)) > 1:
        return None
    return found[-1]


async def _ask(judge: Backend, prompt: str) -> str:
    r = await judge.complete("chat", {"messages": [{"role": "user", "content": prompt}],
                                      "temperature": 0, "max_tokens": 400, "seed": 0})
    return (r.body["choices"][0].get("message") or {}).get("content") or ""


async def grade(judge: Backend, question: str, answer: str, rubric: str | None = None,
                reference: str | None = None) -> Score:
    prompt = GRADE_PROMPT.format(
        rubric=f"Rubric: {rubric}\n" if rubric else "",
        reference=f"A correct reference answer: {reference}\n" if reference else "",
        question=question, answer=answer)
    text = await _ask(judge, prompt)
    rating = parse_rating(text)
    if rating is None:
        return Score(0.0, f"judge {judge.spec.id} gave no parsable rating", None)
    return Score((rating - 1) / 9, f"judge {judge.spec.id} rated {rating}/10", str(rating))


@dataclass(frozen=True)
class PairVerdict:
    outcome: float  # 1: a better, 0: b better, 0.5: tie (incl. order disagreement)
    first: str | None  # verdict with a shown first
    second: str | None  # verdict with b shown first, mapped back to a/b labels


async def compare(judge: Backend, question: str, answer_a: str, answer_b: str,
                  rubric: str | None = None) -> PairVerdict:
    """Judge both orders; only a verdict that survives the swap counts."""
    r = f"Rubric: {rubric}\n" if rubric else ""
    v1 = parse_verdict(await _ask(judge, PAIR_PROMPT.format(rubric=r, question=question,
                                                            a=answer_a, b=answer_b)))
    v2_raw = parse_verdict(await _ask(judge, PAIR_PROMPT.format(rubric=r, question=question,
                                                                a=answer_b, b=answer_a)))
    v2 = {"A": "B", "B": "A", "C": "C"}.get(v2_raw) if v2_raw else None
    if v1 is not None and v1 == v2 and v1 != "C":
        return PairVerdict(1.0 if v1 == "A" else 0.0, v1, v2)
    return PairVerdict(0.5, v1, v2)


class JudgeScorer:
    """Registry entry for items graded by a judge model (``metadata.rubric`` optional,
    ``target`` an optional reference answer)."""

    name = "judge"

    def check(self, item: Item) -> None:
        rubric = item.metadata.get("rubric")
        if rubric is not None and not isinstance(rubric, str):
            raise ValueError("metadata.rubric must be a string")
        if item.target is not None and not isinstance(item.target, str):
            raise ValueError("target (the reference answer) must be a string")

    async def ascore(self, response: str, item: Item, model: Backend | None = None) -> Score:
        """The judge's rubric grade; a ValueError without a judge model (the runner records
        it as the item's error: a zero would pass for a verdict)."""
        if model is None:
            raise ValueError("judge items need a judge model (--judge MODEL)")
        return await grade(model, item.prompt_text, response, **self.args(item))

    @staticmethod
    def args(item: Item) -> dict[str, Any]:
        return {"rubric": item.metadata.get("rubric"), "reference": item.target}
