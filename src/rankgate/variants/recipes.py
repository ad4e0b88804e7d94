"""The prompt and sampling recipes: each one small class behind :class:`Recipe`.

* ``system``  — a system prompt (prepended to one the request already has);
* ``fewshot`` — static demonstrations as earlier chat turns (``fewshotN``: the first N);
* ``cot``     — asks for step-by-step reasoning and a last ``Answer:`` line, and hands the
  caller only the answer (the reasoning moves to ``reasoning_content``), so the workload's
  scorers grade what the model concluded;
* ``sc``      — self-consistency: k samples at once (``sc5``), majority vote over their final
  answers; usage and cost are those of all k calls, latency the wall time of all k;
* ``t``       — sampling parameters (``t07``: temperature 0.7; YAML: ``top_p``, ``seed``…).

Retrieved examples and quantisations need the outside world and live in ``retrieval.py`` and
``quant.py``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from rankgate.variants.answers import extracted, vote_key
from rankgate.variants.base import (
    Recipe,
    RecipeError,
    insert_before_last_user,
    last_user_index,
    payload_messages,
    with_messages,
)

if TYPE_CHECKING:
    from rankgate.backends.base import Backend, Capabilities, Kind, Result

DEFAULT_SYSTEM = ("You are a careful, precise assistant. Follow the instructions exactly and "
                  "give only what is asked for, in the format asked for.")

#: demonstrations of the answer formats the built-in workloads ask for (none is a workload item)
DEFAULT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is 23 + 19? Give the final answer on its own line as 'Answer: <number>'.",
     "23 + 19 = 42.\nAnswer: 42"),
    ("Which of these is a fruit?\n\nA. Carrot\nB. Pear\nC. Potato\nD. Onion\n\n"
     "Answer with the letter of the correct option.", "B"),
    ("Write a Python function `triple(x: int) -> int` that returns three times `x`. Reply "
     "with the complete function in a single ```python code block.",
     "```python\ndef triple(x: int) -> int:\n    return 3 * x\n```"),
    ("Which river flows through Vienna? Answer with just the name.", "The Danube"),
)

COT_INSTRUCTION = ("Think step by step. Then give the final answer on its own last line, "
                   "starting with 'Answer:'.")


def _positive_int(recipe: str, what: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise RecipeError(f"recipe {recipe!r}: {what} must be a whole number >= 1, got {text!r}")
    return int(text)


@dataclass
class SystemPrompt(Recipe):
    key: ClassVar[str] = "system"
    text: str = DEFAULT_SYSTEM
    label: str = ""

    async def request(self, kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
        messages = payload_messages(kind, payload)
        if messages and messages[0].get("role") in ("system", "developer") \
                and isinstance(messages[0].get("content"), str):
            messages[0] = {**messages[0], "content": f"{self.text}\n\n{messages[0]['content']}"}
        else:
            messages.insert(0, {"role": "system", "content": self.text})
        return with_messages(kind, payload, messages)


def example_turns(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for user, assistant in pairs:
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return turns


@dataclass
class StaticFewShot(Recipe):
    key: ClassVar[str] = "fewshot"
    spelling: ClassVar[str | None] = "fewshot[N]"
    param_help: ClassVar[str | None] = "number of examples (fewshot2)"
    #: ``[{"user": …, "assistant": …}]`` in the panel YAML; default: the built-in four
    examples: list[dict[str, str]] = field(default_factory=lambda: [
        {"user": u, "assistant": a} for u, a in DEFAULT_EXAMPLES])
    n: int | None = None
    label: str = ""

    @classmethod
    def from_param(cls, param: str | None, options: dict[str, Any]) -> Recipe:
        if param is not None:
            options = {**options, "n": _positive_int(cls.key, "the number of examples", param)}
        recipe = cls(**options)
        bad = [i for i, e in enumerate(recipe.examples)
               if not isinstance(e, dict) or not isinstance(e.get("user"), str)
               or not isinstance(e.get("assistant"), str)]
        if bad or not recipe.examples:
            raise RecipeError(f"recipe 'fewshot': examples must be a non-empty list of "
                              f"{{user, assistant}} strings (entry {bad[0] if bad else 0})")
        return recipe

    async def request(self, kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
        chosen = self.examples[:self.n] if self.n else self.examples
        turns = example_turns([(e["user"], e["assistant"]) for e in chosen])
        return with_messages(kind, payload,
                             insert_before_last_user(payload_messages(kind, payload), turns))


def _body_text(body: dict[str, Any]) -> str:
    choice = (body.get("choices") or [{}])[0]
    if "message" in choice:
        return (choice.get("message") or {}).get("content") or ""
    return choice.get("text") or ""


def _with_text(body: dict[str, Any], text: str, reasoning: str | None) -> dict[str, Any]:
    """``body`` answering ``text`` (the reasoning, when given, as ``reasoning_content``)."""
    choice = dict((body.get("choices") or [{}])[0])
    if "message" in choice:
        msg = {**(choice.get("message") or {}), "content": text}
        if reasoning is not None:
            msg["reasoning_content"] = reasoning
        choice["message"] = msg
    else:
        choice["text"] = text
    choice["logprobs"] = None  # they were the reasoning's tokens, not the answer's
    return {**body, "choices": [choice, *(body.get("choices") or [])[1:]]}


def _no_logprobs(caps: Capabilities) -> Capabilities:
    return replace(caps, logprobs=False)


@dataclass
class ChainOfThought(Recipe):
    key: ClassVar[str] = "cot"
    streams_through: ClassVar[bool] = False
    instruction: str = COT_INSTRUCTION
    label: str = ""

    def capabilities(self, caps: Capabilities) -> Capabilities:
        return _no_logprobs(caps)

    async def request(self, kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
        messages = payload_messages(kind, payload)
        last = last_user_index(messages)
        if last is None or not isinstance(messages[last].get("content"), str):
            messages.append({"role": "user", "content": self.instruction})
        else:
            messages[last] = {**messages[last],
                              "content": f"{messages[last]['content']}\n\n{self.instruction}"}
        out = with_messages(kind, payload, messages)
        out.pop("logprobs", None)
        out.pop("top_logprobs", None)
        return out

    async def complete(self, inner: Backend, kind: Kind, payload: dict[str, Any]) -> Result:
        result = await inner.complete(kind, await self.request(kind, payload))
        reply = _body_text(result.body)
        answer = extracted(reply)
        result.body = _with_text(result.body, answer, reply if answer != reply.strip() else None)
        return result


@dataclass
class SelfConsistency(Recipe):
    key: ClassVar[str] = "sc"
    spelling: ClassVar[str | None] = "sc[K]"
    param_help: ClassVar[str | None] = "number of samples (sc5)"
    streams_through: ClassVar[bool] = False
    k: int = 5
    temperature: float = 0.7  # greedy samples would all agree: sampling is the point
    label: str = ""

    @classmethod
    def from_param(cls, param: str | None, options: dict[str, Any]) -> Recipe:
        if param is not None:
            options = {**options, "k": _positive_int(cls.key, "k", param)}
        recipe = cls(**options)
        if recipe.k < 1:
            raise RecipeError(f"recipe 'sc': k must be >= 1, got {recipe.k}")
        return recipe

    def capabilities(self, caps: Capabilities) -> Capabilities:
        return _no_logprobs(caps)

    def calls(self) -> int:
        return self.k

    async def complete(self, inner: Backend, kind: Kind, payload: dict[str, Any]) -> Result:
        """k calls at once, each with its own seed — a local model decodes them in one batch
        (its parallel slots), a remote one answers them side by side — so the latency is the
        wall time of all k together and the cost the sum of the k calls'. The answer is the
        first reply (in seed order) whose final answer won the vote."""
        from rankgate.backends.base import Result, Usage

        seed = payload.get("seed") if isinstance(payload.get("seed"), int) else 0
        temperature = max(float(payload.get("temperature") or 0.0), self.temperature)
        samples = []
        for i in range(self.k):
            sample = {**payload, "temperature": temperature, "seed": seed + i}
            sample.pop("logprobs", None)
            sample.pop("top_logprobs", None)
            samples.append(sample)
        tasks = [asyncio.ensure_future(inner.complete(kind, s)) for s in samples]
        try:
            results: list[Result] = list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:  # one sample failed: the others would only waste the slots
                t.cancel()
            raise
        keys = [vote_key(_body_text(r.body)) for r in results]
        winner, votes = Counter(keys).most_common(1)[0]
        chosen = results[keys.index(winner)]

        def total(name: str) -> int | None:
            vals = [getattr(r.usage, name) for r in results]
            return None if any(v is None for v in vals) else sum(vals)

        usage = Usage(total("input_tokens"), total("output_tokens"),
                      estimated=any(r.usage.estimated for r in results))
        body = _with_text(chosen.body, _body_text(chosen.body), None)
        body["usage"] = {"prompt_tokens": usage.input_tokens,
                         "completion_tokens": usage.output_tokens,
                         "total_tokens": (usage.input_tokens or 0) + (usage.output_tokens or 0)}
        body["rankgate_votes"] = {"samples": self.k, "winner_votes": votes,
                                  "distinct_answers": len(set(keys))}
        return Result(body, usage, sum(r.compute_s for r in results), results[0].ttft_s)


def _temperature(param: str) -> float:
    """``07`` → 0.7, ``10`` → 1.0, ``1`` → 1.0: the decimal point after the first digit."""
    if not param.isdigit():
        raise RecipeError(f"recipe 't': write the temperature as digits with the point after "
                          f"the first (t07 = 0.7, t10 = 1.0), got {param!r}")
    return float(f"{param[0]}.{param[1:] or '0'}")


@dataclass
class Sampling(Recipe):
    key: ClassVar[str] = "t"
    spelling: ClassVar[str | None] = "t<temp>"
    param_help: ClassVar[str | None] = "temperature, point after the first digit (t07 = 0.7)"
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    label: str = ""

    @classmethod
    def from_param(cls, param: str | None, options: dict[str, Any]) -> Recipe:
        if param is not None:
            options = {**options, "temperature": _temperature(param)}
        recipe = cls(**options)
        if all(getattr(recipe, n) is None for n in ("temperature", "top_p", "top_k", "seed")):
            raise RecipeError("recipe 't': set at least one of temperature, top_p, top_k, seed")
        return recipe

    async def request(self, kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
        changed = {n: getattr(self, n) for n in ("temperature", "top_p", "top_k", "seed")
                   if getattr(self, n) is not None}
        return {**payload, **changed}
