"""Outcomes: the one data type the whole loop reads and writes, and the ways they come in.

``record`` holds the :class:`Outcome` record and its JSONL files; ``importers`` turns other
people's outcome matrices (wide CSV, RouterBench, LLMRouter) into outcomes and is imported as
``rankgate.outcomes.importers`` (not re-exported: most callers never need it). The store's
read/write layer for outcomes is ``rankgate.store.outcome_store``.
"""

from rankgate.outcomes.record import (
    Outcome,
    OutcomeError,
    OutcomeWriter,
    iter_jsonl,
    models_of,
    read_jsonl,
    write_jsonl,
)

__all__ = ["Outcome", "OutcomeError", "OutcomeWriter", "iter_jsonl", "models_of", "read_jsonl",
           "write_jsonl"]
