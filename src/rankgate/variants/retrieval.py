"""Retrieved few-shot: the k solved items most similar to the request, shown as earlier turns.

The examples are the best answers (``rankgate.outcomes.solved``) among stored outcomes: an
outcomes file, the shipped evaluation (``embedded``) or the store. Similarity is the cosine of
the routers' embedder (``rankgate.embed.make_embedder``), so "similar" means what it means for
routing. The item being answered is never among its own examples: an example is left out when
it has the same item id (in evaluation) *or* the same prompt text (anywhere), so an evaluation
on items that are also in the example pool measures the recipe, not leakage.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rankgate.variants.base import (
    Recipe,
    RecipeContext,
    RecipeError,
    insert_before_last_user,
    payload_messages,
    with_messages,
)
from rankgate.variants.context import current

if TYPE_CHECKING:
    import numpy as np

    from rankgate.backends.base import Kind
    from rankgate.embed import Embedder
    from rankgate.outcomes import Outcome


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def example_source(option: str | None, ctx: RecipeContext) -> str:
    """Where the examples come from: the recipe's ``outcomes``, else the setting
    ``examples_outcomes``, else the store the gateway writes to."""
    settings = ctx.resources.settings
    return option or settings.examples_outcomes or f"store:{settings.resolved_store_url()}"


@dataclass
class RetrievedFewShot(Recipe):
    key: ClassVar[str] = "retrieved"
    spelling: ClassVar[str | None] = "retrieved[K]"
    param_help: ClassVar[str | None] = "number of examples (retrieved5)"
    k: int = 3
    outcomes: str | None = None  # embedded, a JSONL path or store:<url>; default: see above
    min_score: float = 1.0
    embedder: str = "onnx-e5-int8"
    label: str = ""
    _examples: list[Outcome] = field(default_factory=list, init=False, repr=False)
    _vectors: np.ndarray | None = field(default=None, init=False, repr=False)
    _embed: Embedder | None = field(default=None, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _embed_home: Path | None = field(default=None, init=False, repr=False)  # set by check

    @classmethod
    def from_param(cls, param: str | None, options: dict[str, Any]) -> Recipe:
        if param is not None:
            if not param.isdigit() or int(param) < 1:
                raise RecipeError(f"recipe 'retrieved': k must be a whole number >= 1, got "
                                  f"{param!r}")
            options = {**options, "k": int(param)}
        return cls(**options)

    def check(self, ctx: RecipeContext) -> None:
        """Read the pool now: no solved example with its text is a refusal, before any
        generation."""
        from rankgate.embed import KINDS
        from rankgate.outcomes.solved import best_answers, read_outcome_source

        if self.embedder not in KINDS:
            raise RecipeError(f"recipe 'retrieved' of {ctx.variant.id!r}: unknown embedder "
                              f"{self.embedder!r} (known: {', '.join(KINDS)})")
        source = example_source(self.outcomes, ctx)
        try:
            rows = read_outcome_source(source)
        except (ValueError, OSError) as e:
            raise RecipeError(f"recipe 'retrieved' of {ctx.variant.id!r} cannot apply: no "
                              f"stored outcomes to retrieve from ({e}); set "
                              "RANKGATE_EXAMPLES_OUTCOMES to an outcomes file or 'embedded'"
                              ) from None
        solved = best_answers(rows, self.min_score)
        if not solved.answers:
            why = (f"{solved.without_text} solved outcome(s) lack their response text"
                   if solved.without_text else f"none of {solved.considered} outcome(s) "
                   f"scored >= {self.min_score:g}")
            raise RecipeError(f"recipe 'retrieved' of {ctx.variant.id!r} cannot apply: no "
                              f"solved items with answers in {source} ({why})")
        self._examples = solved.answers
        self._embed_home = ctx.resources.settings.home

    async def load(self) -> None:
        async with self._lock:
            if self._vectors is not None:
                return
            from rankgate.embed import make_embedder

            assert self._embed_home is not None, "check() reads the pool first"
            self._embed = make_embedder(self.embedder,
                                        self._embed_home / "cache" / "embeddings.sqlite")
            texts = [o.prompt for o in self._examples]
            self._vectors = await asyncio.to_thread(self._embed.embed, texts)

    def nearest(self, query: str, item_id: str | None, exclude: set[str]) -> list[Outcome]:
        """The ``k`` most similar examples to ``query``, leaving out the item ``item_id`` and
        every example whose prompt text is in ``exclude`` (normalised)."""
        assert self._vectors is not None and self._embed is not None
        import numpy as np

        sims = self._vectors @ self._embed.embed([query])[0]
        chosen: list[Outcome] = []
        seen: set[str] = set()
        for i in np.argsort(-sims, kind="stable"):
            o = self._examples[int(i)]
            text = _norm(o.prompt)
            if (item_id is not None and o.prompt_id == item_id) or text in exclude \
                    or text in seen:
                continue
            seen.add(text)
            chosen.append(o)
            if len(chosen) == self.k:
                break
        return chosen

    async def request(self, kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
        from rankgate.messages import content_text, prompt_text
        from rankgate.variants.recipes import example_turns

        await self.load()
        messages = payload_messages(kind, payload)
        users = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
        here = current()
        own = prompt_text({"messages": messages})
        query = here.prompt if here is not None else own
        exclude = {_norm(t) for t in (own, query, *(users[-1:])) if t}
        found = await asyncio.to_thread(self.nearest, query, here.item_id if here else None,
                                        exclude)
        turns = example_turns([(o.prompt, o.response or "") for o in found])
        return with_messages(kind, payload, insert_before_last_user(messages, turns))
