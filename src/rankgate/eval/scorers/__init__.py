"""Scorer registry: ``get(name)`` returns a scorer instance (see ``base.py`` for the contract)."""

from __future__ import annotations

import importlib

from rankgate.eval.scorers.base import Item, Score, Scorer

# scorer name -> "module:Class" (imported on first use, so a scorer's dependencies load lazily)
_REGISTRY = {
    "exact": "rankgate.eval.scorers.match:ExactScorer",
    "contains": "rankgate.eval.scorers.match:ContainsScorer",
    "numeric": "rankgate.eval.scorers.numeric:NumericScorer",
    "choice": "rankgate.eval.scorers.choice:ChoiceScorer",
    "regex": "rankgate.eval.scorers.regex:RegexScorer",
    "json_schema": "rankgate.eval.scorers.json_schema:JsonSchemaScorer",
    "constraints": "rankgate.eval.scorers.constraints:ConstraintsScorer",
    "keyfacts": "rankgate.eval.scorers.keyfacts:KeyFactsScorer",
    "code": "rankgate.eval.scorers.code:CodeScorer",
    "judge": "rankgate.eval.scorers.judge:JudgeScorer",
}
_cache: dict[str, Scorer] = {}


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Scorer:
    """The scorer called ``name``; ``KeyError`` listing the valid names otherwise."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown scorer {name!r} (known: {', '.join(_REGISTRY)})")
    if name not in _cache:
        module, cls = _REGISTRY[name].split(":")
        _cache[name] = getattr(importlib.import_module(module), cls)()
    return _cache[name]


__all__ = ["Item", "Score", "Scorer", "get", "names"]
