"""Which item a variant is answering, so retrieval can never show a model the item itself.

The evaluation runner knows the item (its id and the prompt text stored in outcomes); the
backend below it sees only messages. A context variable carries the item down the call without
widening the backend protocol: the runner sets it around each call, and the outermost variant
sets it from the request's own text when nobody did (a gateway request has no item id).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Answering:
    """The item being answered: its workload id (None at the gateway) and its prompt text."""

    item_id: str | None
    prompt: str


_CURRENT: ContextVar[Answering | None] = ContextVar("rankgate_answering", default=None)


def current() -> Answering | None:
    return _CURRENT.get()


@contextlib.contextmanager
def answering(item_id: str | None, prompt: str) -> Iterator[Answering]:
    """Within this block (and the tasks it starts) retrieval excludes this item; an outer
    block wins, so nested variants all see the original item."""
    outer = _CURRENT.get()
    if outer is not None:
        yield outer
        return
    token = _CURRENT.set(Answering(item_id, prompt))
    try:
        yield _CURRENT.get()  # type: ignore[misc]
    finally:
        _CURRENT.reset(token)
