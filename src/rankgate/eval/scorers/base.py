"""The scorer contract: a response and its item in, a score in [0, 1] with a reason out.

A scorer is a small class with a ``name``, a ``check`` that validates an item's gold target up
front (so a workload with a broken target fails at load time, with the line number, not after
an hour of generation), and a ``score`` that is pure and deterministic given its inputs (the
code scorer runs a sandboxed subprocess; the judge calls a model). Adding a scorer is adding
one file and one line in ``scorers/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rankgate.backends.base import Backend


@dataclass(frozen=True)
class Item:
    """One workload item, as the runner and scorers see it."""

    id: str
    messages: list[dict[str, Any]]  # what the model is sent (choices already rendered in)
    scorer: str
    target: Any = None
    choices: list[str] | None = None
    category: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The messages as plain text: exactly what the gateway's routers see for the same
        conversation (one function for both, so routers train on the text they serve)."""
        from rankgate.messages import prompt_text

        return prompt_text({"messages": self.messages})


@dataclass(frozen=True)
class Score:
    value: float  # in [0, 1]
    explanation: str  # one line: what was extracted and compared, or why it failed
    extracted: str | None = None  # the answer the scorer found in the response, if any


class Scorer(Protocol):
    """What the runner calls: every scorer is awaited the same way, and one that needs a
    model (the judge) gets it through ``model`` instead of a special case in the runner."""

    name: str

    def check(self, item: Item) -> None:
        """Raise ``ValueError`` with a one-line reason if ``item``'s target/choices/metadata
        are not usable by this scorer."""
        ...

    async def ascore(self, response: str, item: Item, model: Backend | None = None) -> Score:
        """Score one response. Never raises on odd responses: an unusable answer scores 0.
        ``model`` is the run's judge, when it has one; scorers that need none ignore it."""
        ...


class PureScorer:
    """Base of scorers that need no model: they implement a synchronous, deterministic
    ``score`` (easy to test and to call anywhere) and get ``ascore`` for free, run in a
    worker thread so CPU-heavy scoring (code in a subprocess) never blocks the event loop."""

    name: str

    def score(self, response: str, item: Item) -> Score:
        raise NotImplementedError

    async def ascore(self, response: str, item: Item, model: Backend | None = None) -> Score:
        import asyncio

        return await asyncio.to_thread(self.score, response, item)


def usable_text(scorer: Scorer, response: str, item: Item) -> str | Score:
    """The shared prelude of scorers that need a checked target and a non-empty answer: the
    response text, or the 0.0 ``Score`` that says why there is nothing to grade (a broken
    target is reported as such rather than raising mid-run)."""
    try:
        scorer.check(item)
    except ValueError as exc:
        return Score(0.0, f"unusable target: {exc}")
    text = response if isinstance(response, str) else ""
    if not text.strip():
        return Score(0.0, "empty response")
    return text
