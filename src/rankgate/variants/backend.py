"""A variant behind the backend protocol: its recipe around its base model's backend.

The wrapper holds the base's *own* backend object (the runtime builds the base once and hands
it over), so a variant loads no second copy of the weights and waits on the same model lock:
``smollm2-135m`` and ``smollm2-135m+cot`` are one model in memory. Everything the gateway, the
evaluation runner and the shadow caller ask of a backend works unchanged: ``complete``,
``stream`` (passed through for request rewrites, the finished answer as one chunk for recipes
that work on the answer), ``capabilities``, ``status``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rankgate.backends.base import (
    Backend,
    BackendStatus,
    BackendStream,
    Kind,
    Result,
    StreamStats,
)
from rankgate.variants.base import Recipe, RecipeContext
from rankgate.variants.context import answering
from rankgate.variants.registry import make_recipe

if TYPE_CHECKING:
    from rankgate.backends.resources import Resources
    from rankgate.panel import ModelSpec


def recipe_of(spec: ModelSpec) -> Recipe:
    """The recipe a variant spec carries (checked at panel load; built fresh per backend)."""
    config = dict(spec.recipe or {})
    name = str(config.pop("name", spec.id.rsplit("+", 1)[-1]))
    return make_recipe(name, config)


def build_variant(spec: ModelSpec, base_spec: ModelSpec, base: Backend,
                  resources: Resources) -> VariantBackend:
    """The backend of variant ``spec`` around ``base`` (the base's own backend object).
    Raises ``RecipeError`` naming the recipe when it cannot apply here (no stored examples,
    a quantisation not installed) — before anything is generated."""
    recipe = recipe_of(spec)
    ctx = RecipeContext(spec, base_spec, resources)
    recipe.check(ctx)
    inner = recipe.inner(ctx, base)
    return VariantBackend(spec, inner, recipe, owns_inner=inner is not base)


class VariantBackend:
    """``spec``'s recipe applied to ``inner``; see the module docstring."""

    def __init__(self, spec: ModelSpec, inner: Backend, recipe: Recipe,
                 owns_inner: bool = False) -> None:
        self.spec = spec
        self.inner = inner
        self.recipe = recipe
        self._owns_inner = owns_inner
        self.capabilities = spec.narrow(recipe.capabilities(inner.capabilities))
        self.context_window: int | None = inner.context_window
        #: calls of the base model per request (``+cot+sc5``: 5), for budget reservations
        self.calls_per_request: int = recipe.calls() * getattr(inner, "calls_per_request", 1)

    async def load(self) -> None:
        await self.inner.load()
        await self.recipe.load()

    def status(self, thorough: bool = False) -> BackendStatus:
        st = self.inner.status(thorough)
        return replace(st, location=f"{st.location} + {self.recipe.describe()}")

    async def complete(self, kind: Kind, payload: dict[str, Any]) -> Result:
        from rankgate.messages import prompt_text

        with answering(None, prompt_text(payload)):
            return await self.recipe.complete(self.inner, kind, payload)

    async def stream(self, kind: Kind, payload: dict[str, Any]) -> BackendStream:
        from rankgate.messages import prompt_text

        with answering(None, prompt_text(payload)):
            if self.recipe.streams_through:
                return await self.inner.stream(kind, await self.recipe.request(kind, payload))
            result = await self.recipe.complete(self.inner, kind, payload)
        return AnswerStream(kind, result)

    async def aclose(self) -> None:
        if self._owns_inner:  # the base's own backend is the runtime's to close
            await self.inner.aclose()


class AnswerStream:
    """A finished answer as a stream: one content chunk, the finish chunk, a usage chunk
    (the shapes an OpenAI server sends with ``include_usage``)."""

    def __init__(self, kind: Kind, result: Result) -> None:
        self.kind = kind
        self.result = result
        self.stats = StreamStats(result.usage, result.compute_s)
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        body = self.result.body
        choice = (body.get("choices") or [{}])[0]
        chunk_type = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        head = {"id": body.get("id", "variant"), "object": chunk_type,
                "created": body.get("created", int(time.time())), "model": body.get("model")}
        if self.kind == "chat":
            msg = choice.get("message") or {}
            delta: dict[str, Any] = {"role": "assistant", "content": msg.get("content") or ""}
            if msg.get("reasoning_content"):
                delta["reasoning_content"] = msg["reasoning_content"]
            first = {"index": 0, "delta": delta, "finish_reason": None}
            last = {"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason")}
        else:
            first = {"index": 0, "text": choice.get("text") or "", "finish_reason": None,
                     "logprobs": None}
            last = {"index": 0, "text": "", "finish_reason": choice.get("finish_reason"),
                    "logprobs": None}
        for part in (first, last):
            if self._closed:
                return
            yield {**head, "choices": [part]}
        if body.get("usage"):
            yield {**head, "choices": [], "usage": body["usage"]}

    async def aclose(self) -> None:
        self._closed = True
