"""Variants: a panel model plus a recipe (``qwen2.5-coder-0.5b+cot``), evaluated, ranked,
routed and served by name exactly like a model.

* ``base.py``: the recipe contract; ``recipes.py``, ``retrieval.py``, ``quant.py``: the recipes;
  ``registry.py``: one line per recipe (adding one is a class and a line);
* ``naming.py``: how ``base+recipe`` ids and the panel YAML's variant entries resolve;
* ``backend.py``: the wrapper that applies a recipe around the base's own backend (shared
  weights); ``context.py``: the item being answered, so retrieval never leaks it;
* ``answers.py``: final-answer extraction (chain-of-thought, self-consistency's vote).
"""

from rankgate.variants.backend import VariantBackend, build_variant
from rankgate.variants.base import Recipe, RecipeError
from rankgate.variants.context import answering
from rankgate.variants.registry import RECIPES, make_recipe

__all__ = ["RECIPES", "Recipe", "RecipeError", "VariantBackend", "answering", "build_variant",
           "make_recipe"]
