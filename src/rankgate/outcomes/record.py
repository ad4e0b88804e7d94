"""The outcome: one row per (item, model) — the one data type the whole loop reads and writes.

Evaluation writes outcomes, imports produce them, the gateway's logs plus feedback will too;
ranking and routing only ever read them. Missing values are ``None`` (JSON null), never 0: a
cost we don't know is not a free request. Files are JSONL (optionally ``.gz``), appended to and
flushed line by line so a killed run loses at most the line being written.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import orjson


@dataclass
class Outcome:
    prompt_id: str
    prompt: str
    model: str
    score: float | None  # in [0, 1]; None when the call failed (see ``error``)
    cost_usd: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    response: str | None = None
    category: str | None = None
    source: str | None = None  # eval / import / live / shadow / judge / feedback
    scorer: str | None = None
    explanation: str | None = None
    error: str | None = None
    logprob_mean: float | None = None  # mean token logprob of the response, if known
    confidence: float | None = None  # the model's confidence in [0, 1], if known
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["extra"]:
            d.pop("extra")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Outcome:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known and k != "extra"}
        extra = dict(d.get("extra") or {})
        extra.update({k: v for k, v in d.items() if k not in known})
        return cls(**kwargs, extra=extra)


class OutcomeError(ValueError):
    """An outcomes file that can't be read; names the file and line."""


def _open(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "b")  # type: ignore[return-value]
    return path.open(mode + "b")


def _validate(d: Any, where: str) -> Outcome:
    if not isinstance(d, dict):
        raise OutcomeError(f"{where}: expected a JSON object")
    for key in ("prompt_id", "model"):
        if not isinstance(d.get(key), str) or not d[key]:
            raise OutcomeError(f"{where}: field '{key}' must be a non-empty string")
    if not isinstance(d.get("prompt"), str):
        raise OutcomeError(f"{where}: field 'prompt' must be a string")
    s = d.get("score")
    if s is not None and (not isinstance(s, int | float) or isinstance(s, bool)
                          or not (0.0 <= s <= 1.0) or math.isnan(s)):
        raise OutcomeError(f"{where}: field 'score' must be a number in [0, 1] or null")
    return Outcome.from_json(d)


def iter_jsonl(path: str | Path) -> Iterator[Outcome]:
    p = Path(path)
    with _open(p, "r") as f:
        for n, line in enumerate(io.TextIOWrapper(f, encoding="utf-8"), start=1):
            if not line.strip():
                continue
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise OutcomeError(f"{p}:{n}: not JSON ({e})") from None
            yield _validate(d, f"{p}:{n}")


def read_jsonl(path: str | Path) -> list[Outcome]:
    return list(iter_jsonl(path))


def write_jsonl(path: str | Path, outcomes: Iterable[Outcome]) -> int:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with _open(p, "w") as f:
        for o in outcomes:
            f.write(orjson.dumps(o.to_json()) + b"\n")
            n += 1
    return n


class OutcomeWriter:
    """Appends outcomes one line at a time, flushed, so an interrupted run can resume."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix == ".gz":
            raise OutcomeError(f"{self.path}: write plain JSONL while evaluating; gzip after")
        self._f = self.path.open("ab")

    def write(self, o: Outcome) -> None:
        self._f.write(orjson.dumps(o.to_json()) + b"\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def models_of(outcomes: Iterable[Outcome]) -> list[str]:
    """Model ids in first-seen order."""
    seen: dict[str, None] = {}
    for o in outcomes:
        seen.setdefault(o.model, None)
    return list(seen)
