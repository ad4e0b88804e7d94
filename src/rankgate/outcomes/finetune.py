"""Fine-tuning data from outcomes: the best answer per prompt, in OpenAI's chat format.

The point is distillation measured like everything else: export the strong model's best
answers (``teacher``), fine-tune a cheap model on them, and rank the result as one more panel
model. A line is ``{"messages": [{"role": "user", …}, {"role": "assistant", …}]}`` — the format
OpenAI's fine-tuning API (and most open trainers) accept; ``validate_line`` checks every line
written against it, so a file that leaves here uploads. Prompts are the outcomes' ``prompt``
text (a multi-turn chat arrives rendered as one user turn: outcomes keep the text routers
see, not the turns). A held-out split is written beside the training file, never overlapping.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rankgate.outcomes.record import Outcome
from rankgate.outcomes.solved import Solved, best_answers

ROLES = ("system", "user", "assistant")
_MESSAGE_KEYS = {"role", "content", "name", "weight"}


def example(o: Outcome, system: str | None = None) -> dict[str, Any]:
    """One training line from one chosen outcome."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": o.prompt},
                 {"role": "assistant", "content": o.response or ""}]
    return {"messages": messages}


def validate_line(line: Any) -> list[str]:
    """What keeps ``line`` from being a valid OpenAI chat fine-tuning example (empty: valid):
    an object with a non-empty ``messages`` list of ``{role, content}`` objects, roles
    system/user/assistant, string contents that are non-empty, at least one user and one
    assistant message, the last one an assistant's, and ``weight`` (assistant only) 0 or 1."""
    if not isinstance(line, dict):
        return ["not a JSON object"]
    problems = [f"unknown key {k!r}" for k in line if k != "messages"]
    msgs = line.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return [*problems, "'messages' must be a non-empty list"]
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            problems.append(f"messages[{i}]: not an object")
            continue
        extra = sorted(set(m) - _MESSAGE_KEYS)
        if extra:
            problems.append(f"messages[{i}]: unknown key {extra[0]!r}")
        if m.get("role") not in ROLES:
            problems.append(f"messages[{i}]: role must be one of {', '.join(ROLES)}")
        content = m.get("content")
        if not isinstance(content, str) or not content.strip():
            problems.append(f"messages[{i}]: content must be a non-empty string")
        if "weight" in m and (m.get("role") != "assistant" or m["weight"] not in (0, 1)):
            problems.append(f"messages[{i}]: weight must be 0 or 1, on assistant messages")
    roles = [m.get("role") for m in msgs if isinstance(m, dict)]
    if "user" not in roles:
        problems.append("no user message")
    if "assistant" not in roles:
        problems.append("no assistant message")
    elif roles[-1] != "assistant":
        problems.append("the last message must be the assistant's")
    return problems


@dataclass
class Export:
    """What an export wrote (or would have), for the command's summary."""

    train: int
    heldout: int
    solved: Solved
    train_path: Path
    heldout_path: Path | None


def heldout_path(out: Path) -> Path:
    """``train.jsonl`` → ``train.heldout.jsonl`` (beside it)."""
    return out.with_name(f"{out.stem}.heldout{out.suffix or '.jsonl'}")


def split(lines: list[dict[str, Any]], heldout: float, seed: int
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A seeded shuffle cut into (train, held out); any held-out share keeps one line out
    when there are at least two."""
    order = list(lines)
    random.Random(seed).shuffle(order)
    n_out = round(len(order) * heldout)
    if heldout > 0 and n_out == 0 and len(order) >= 2:
        n_out = 1
    return order[n_out:], order[:n_out]


def _write(path: Path, lines: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as f:
        for line in lines:
            f.write(orjson.dumps(line) + b"\n")
            n += 1
    return n


class NothingToExport(ValueError):
    """No outcome passes the threshold with its answer text; the message says why."""


def export_finetune(outcomes: Sequence[Outcome], out: Path, *, min_score: float = 1.0,
                    teachers: Sequence[str] | None = None, heldout: float = 0.1,
                    seed: int = 0, system: str | None = None) -> Export:
    """Write the training file and its held-out split; validates every line first. Raises
    ``NothingToExport`` (writing nothing) when no outcome qualifies."""
    solved = best_answers(outcomes, min_score, teachers)
    if not solved.answers:
        who = f" from {', '.join(teachers)}" if teachers else ""
        if solved.without_text:
            raise NothingToExport(
                f"no answers to export: {solved.without_text} outcome(s){who} scored >= "
                f"{min_score:g} but carry no response text (outcomes written without "
                "'response' cannot teach)")
        raise NothingToExport(f"no item scored >= {min_score:g}{who} among "
                              f"{solved.considered} outcome(s); nothing written")
    lines = [example(o, system) for o in solved.answers]
    for i, line in enumerate(lines):
        problems = validate_line(line)
        if problems:  # cannot happen for answers with text; guards the format's contract
            raise ValueError(f"example {i} ({solved.answers[i].prompt_id}): {problems[0]}")
    train, held = split(lines, heldout, seed)
    _write(out, train)
    hpath = heldout_path(out) if heldout > 0 else None
    if hpath is not None:
        _write(hpath, held)
    return Export(len(train), len(held), solved, out, hpath)


def read_examples(path: Path) -> list[dict[str, Any]]:
    """The lines of a training file (for round trips and checks)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
