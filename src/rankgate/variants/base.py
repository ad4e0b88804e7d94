"""The recipe contract: what a variant changes about its base model's requests and answers.

A recipe is one small class (one file's worth, or less) plus one line in
:data:`rankgate.variants.registry.RECIPES`. The default behaviour covers the common case, a
request rewrite (a system prompt, examples, sampling parameters): ``request`` returns the new
payload, and streaming passes straight through to the base model. Recipes that work on the
answer (chain-of-thought extraction, self-consistency's vote) override ``complete`` and set
``streams_through = False``; the variant then streams their finished answer as one chunk.

Everything a recipe needs from its environment (stored outcomes, another GGUF file) is checked
in ``check`` when the variant is built, so a recipe that cannot apply fails with a message that
names it before any generation runs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from rankgate.backends.base import Backend, Capabilities, Kind, Result
    from rankgate.backends.resources import Resources
    from rankgate.panel import ModelSpec


class RecipeError(ValueError):
    """A recipe that is unknown, misconfigured or cannot apply here; one line naming it."""


@dataclass(frozen=True)
class RecipeContext:
    """What a recipe may look at when its variant is built."""

    variant: ModelSpec
    base: ModelSpec
    resources: Resources


class Recipe:
    """Base of every recipe: a request rewrite by default (override ``request``)."""

    #: the registry key (``cot``, ``sc``, ``q``…): names the recipe in errors and in ``use:``
    key: ClassVar[str]
    #: what ``+<key><param>`` means, e.g. ``sc5`` → "5 samples"; None: takes no parameter
    param_help: ClassVar[str | None] = None
    #: how the name is written after ``+`` (``sc[K]``), for messages; default: the key
    spelling: ClassVar[str | None] = None
    #: True: a stream of the rewritten request is the variant's stream
    streams_through: ClassVar[bool] = True

    label: str = ""  # the name as written after ``+`` (set by ``make_recipe``)

    @classmethod
    def from_param(cls, param: str | None, options: dict[str, Any]) -> Recipe:
        """The recipe for ``+<key><param>`` and/or the panel YAML's options. Subclasses that
        take a parameter map it onto an option here."""
        if param is not None:
            raise RecipeError(f"recipe {cls.key!r} takes no parameter (got {param!r})")
        return cls(**options)

    def check(self, ctx: RecipeContext) -> None:
        """Raise ``RecipeError`` naming the recipe if it cannot apply to ``ctx.base`` here."""

    def inner(self, ctx: RecipeContext, base: Backend) -> Backend:
        """The backend this recipe calls: the base's own (shared weights) unless the recipe
        swaps the model itself (a quantisation)."""
        return base

    def capabilities(self, caps: Capabilities) -> Capabilities:
        return caps

    def calls(self) -> int:
        """How many calls of the inner model one request makes (budget reservations must
        hold all of them, not one)."""
        return 1

    async def load(self) -> None:
        """Warm up what the recipe needs (an example index); the base loads itself."""

    async def request(self, kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload sent to the base model instead of ``payload`` (never mutated)."""
        return payload

    async def complete(self, inner: Backend, kind: Kind, payload: dict[str, Any]) -> Result:
        return await inner.complete(kind, await self.request(kind, payload))

    def describe(self) -> str:
        """One line for ``panel list`` and reports: the recipe and its non-default settings."""
        shown = [(f.name, getattr(self, f.name)) for f in fields(self)  # type: ignore[arg-type]
                 if f.init and f.name != "label" and getattr(self, f.name) != f.default]
        opts = ", ".join(f"{n}={v!r}" for n, v in shown
                         if v is not None and not isinstance(v, list | tuple | dict))
        return f"{self.key}({opts})" if opts else self.key


def payload_messages(kind: Kind, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's messages (copied), or its text prompt as one user message."""
    if kind == "chat":
        return [dict(m) for m in payload.get("messages") or ()]
    prompt = payload.get("prompt", "")
    return [{"role": "user", "content": prompt[0] if isinstance(prompt, list) else str(prompt)}]


def with_messages(kind: Kind, payload: dict[str, Any], messages: list[dict[str, Any]]
                  ) -> dict[str, Any]:
    """``payload`` carrying ``messages`` instead (a text prompt becomes their plain text)."""
    if kind == "chat":
        return {**payload, "messages": messages}
    from rankgate.messages import prompt_text

    return {**payload, "prompt": prompt_text({"messages": messages})}


def last_user_index(messages: list[dict[str, Any]]) -> int | None:
    """Where the request's last user message is (the question being asked), or None."""
    return max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)


def insert_before_last_user(messages: list[dict[str, Any]], turns: list[dict[str, Any]]
                            ) -> list[dict[str, Any]]:
    """``turns`` (example user/assistant pairs) placed just before the last user message,
    after any system messages: where a chat model expects demonstrations."""
    last = last_user_index(messages)
    if last is None:
        return [*messages, *turns]
    return [*messages[:last], *turns, *messages[last:]]
