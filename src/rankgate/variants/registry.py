"""Which recipes exist: one line each. ``+<key>`` or ``+<key><param>`` names a built-in recipe
after any panel model (``+cot``, ``+sc5``, ``+t07``, ``+q8_0``); the panel YAML declares custom
ones with ``recipe: {use: <key>, …options}``."""

from __future__ import annotations

import re
from typing import Any

from rankgate.variants.base import Recipe, RecipeError
from rankgate.variants.quant import Quantisation
from rankgate.variants.recipes import (
    ChainOfThought,
    Sampling,
    SelfConsistency,
    StaticFewShot,
    SystemPrompt,
)
from rankgate.variants.retrieval import RetrievedFewShot

RECIPES: dict[str, type[Recipe]] = {
    "system": SystemPrompt,
    "fewshot": StaticFewShot,
    "retrieved": RetrievedFewShot,
    "cot": ChainOfThought,
    "sc": SelfConsistency,
    "t": Sampling,
    "q": Quantisation,
}

_NAME = re.compile(r"([a-z]+?)([0-9][0-9a-z_]*)?")


def known() -> str:
    """The built-in recipes as a user writes them, for error messages."""
    return ", ".join(c.spelling or k for k, c in RECIPES.items())


def make_recipe(name: str, config: dict[str, Any] | None = None) -> Recipe:
    """The recipe ``name`` (as written after ``+``), configured by ``config`` (the panel
    YAML's ``recipe:`` mapping; its ``use`` picks the built-in it configures). Raises
    ``RecipeError`` naming the recipe when it is unknown or its options are wrong."""
    options = dict(config or {})
    use = options.pop("use", None)
    if use is not None:
        key, param = str(use), None
    else:
        m = _NAME.fullmatch(name)
        if m is None or m[1] not in RECIPES:
            raise RecipeError(f"unknown recipe {name!r} (built-in: {known()})")
        key, param = m[1], m[2]
    cls = RECIPES.get(key)
    if cls is None:
        raise RecipeError(f"unknown recipe {key!r} (built-in: {known()})")
    try:
        recipe = cls.from_param(param, options)
    except TypeError as e:
        bad = str(e).split("argument")[-1].strip(" '")
        raise RecipeError(f"recipe {key!r}: unknown option {bad!r}") from None
    recipe.label = name
    return recipe
