"""``base+recipe`` ids: how a variant's name resolves to a panel entry.

A variant id is a panel model's id followed by ``+recipe`` parts, applied left to right
(``qwen2.5-coder-0.5b+retrieved+cot``: retrieved examples, then chain-of-thought on top). The
base is the *longest* declared prefix, so a declared model or custom variant whose own id holds
a ``+`` still works. Built-in recipes resolve on demand, with no configuration; custom ones are
panel entries of their own (see ``variant_entry``). A variant's spec is its base's spec under
the variant's id, carrying ``base`` and ``recipe``: it is priced like its base, and its backend
is a wrapper around the base's (``rankgate.variants.backend``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rankgate.variants.base import RecipeError
from rankgate.variants.registry import make_recipe

if TYPE_CHECKING:
    from rankgate.panel import ModelSpec


class NotInPanel(KeyError):
    """An id whose base is no model of the panel; ``str()`` is the one-line reason."""

    def __str__(self) -> str:
        return str(self.args[0])


def derive(base: ModelSpec, variant_id: str, recipe: dict[str, Any]) -> ModelSpec:
    """The spec of ``base`` with ``recipe`` applied, under ``variant_id`` (recipe options are
    checked here: a misconfigured recipe fails at panel load, naming it)."""
    label = variant_id.rsplit("+", 1)[-1]
    make_recipe(str(recipe.get("name", label)), {k: v for k, v in recipe.items()
                                                 if k != "name"})
    return base.model_copy(update={
        "id": variant_id, "base": base.id, "recipe": dict(recipe),
        "upstream_model": base.name_upstream, "fallbacks": (),
        "tags": (*base.tags, "variant")})


def resolve(model_id: str, declared: Mapping[str, ModelSpec]) -> ModelSpec:
    """The spec of ``model_id``: declared, or a declared model with built-in recipes after
    it. ``NotInPanel`` when no declared model is its base, ``RecipeError`` naming an unknown
    or misconfigured recipe."""
    if model_id in declared:
        return declared[model_id]
    cuts = [i for i, c in enumerate(model_id) if c == "+"]
    for cut in reversed(cuts):
        if model_id[:cut] in declared:
            spec = declared[model_id[:cut]]
            for name in model_id[cut + 1:].split("+"):
                if not name:
                    raise RecipeError(f"{model_id!r}: empty recipe name after '+'")
                try:
                    spec = derive(spec, f"{spec.id}+{name}", {"name": name})
                except RecipeError as e:
                    raise RecipeError(f"{model_id!r}: {e}") from None
            return spec
    base = model_id.split("+", 1)[0]
    raise NotInPanel(f"{base!r} is not a model of this panel" if cuts else
                     f"{model_id!r} is not a model of this panel")


def is_variant_entry(raw: Any) -> bool:
    """A panel YAML entry that declares a variant: a bare ``base+recipe`` string, or a
    mapping with no ``backend`` that names a ``base``/``recipe`` or has ``+`` in its id."""
    if isinstance(raw, str):
        return True
    return isinstance(raw, dict) and "backend" not in raw and (
        "base" in raw or "recipe" in raw or "+" in str(raw.get("id", "")))


_ENTRY_FIELDS = {"id", "base", "recipe", "tags"}


def variant_entry(raw: Any, declared: Mapping[str, ModelSpec]) -> ModelSpec:
    """The spec a variant entry declares, e.g.::

        - qwen2.5-coder-0.5b+cot                 # a built-in, listed by /v1/models
        - id: qwen2.5-coder-0.5b+terse           # a custom recipe configuring a built-in
          recipe: {use: system, text: "Answer in one line."}
        - id: terse-qwen                          # any id, with an explicit base
          base: qwen2.5-coder-0.5b
          recipe: sc3

    Raises ``EntryError`` naming the field and the reason (the panel adds file and model).
    """
    if isinstance(raw, str):
        raw = {"id": raw}
    unknown = sorted(set(raw) - _ENTRY_FIELDS)
    if unknown:
        raise EntryError(unknown[0], f"not a field of a variant (fields: "
                         f"{', '.join(sorted(_ENTRY_FIELDS))}); a model needs 'backend'")
    vid = raw.get("id")
    if not isinstance(vid, str) or not vid:
        raise EntryError("id", "required, a non-empty string")
    base_id = raw.get("base") or (vid.rsplit("+", 1)[0] if "+" in vid else None)
    if not isinstance(base_id, str) or not base_id:
        raise EntryError("base", "required when the id is not 'base+recipe'")
    recipe = raw.get("recipe")
    if recipe is None:
        if "+" not in vid:
            raise EntryError("recipe", "required when the id is not 'base+recipe'")
        config: dict[str, Any] = {"name": vid.rsplit("+", 1)[1]}
    elif isinstance(recipe, str):
        config = {"name": recipe}
    elif isinstance(recipe, dict):
        config = dict(recipe)
        if "use" not in config:
            raise EntryError("recipe", "a mapping needs 'use' (the built-in recipe it "
                             "configures)")
    else:
        raise EntryError("recipe", "a built-in recipe name or a mapping with 'use'")
    try:
        base = resolve(base_id, declared)
    except NotInPanel:
        raise EntryError("base", f"{base_id!r} is not a model of this panel") from None
    except RecipeError as e:
        raise EntryError("base", str(e)) from None
    try:
        spec = derive(base, vid, config)
    except RecipeError as e:
        raise EntryError("recipe", str(e)) from None
    tags = raw.get("tags")
    if tags is not None:
        spec = spec.model_copy(update={"tags": tuple(map(str, tags))})
    return spec


class EntryError(ValueError):
    """A variant entry that cannot be used: ``field`` and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
