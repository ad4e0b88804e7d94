"""Shared pieces of the variant tests: a panel of in-process ``faulty`` models (exact,
deterministic usage and a record of every request received) and a small outcomes pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from rankgate.config import Settings
from rankgate.panel import Panel, parse_panel


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", threads=1, threads_per_model=1)


def faulty_panel(*extra: Any) -> Panel:
    """``echo`` (a healthy faulty model with panel prices, so cost = tokens × price) plus
    ``extra`` panel entries."""
    return parse_panel([{"id": "echo", "backend": "faulty", "input_price_per_mtok": 1.0,
                         "output_price_per_mtok": 2.0}, *extra], "test-panel.yaml")


POOL = [
    # the item under test: its own solved answer is in the pool (same id, same text)
    {"prompt_id": "geo-1", "prompt": "What is the capital of France? Answer with one word.",
     "model": "big", "score": 1.0, "response": "Paris"},
    # the same text under another id (a duplicate item): must not be shown either
    {"prompt_id": "geo-1-dup", "prompt": "What is the capital of France? Answer with one word.",
     "model": "big", "score": 1.0, "response": "Paris"},
    {"prompt_id": "geo-2", "prompt": "What is the capital of Spain? Answer with one word.",
     "model": "big", "score": 1.0, "response": "Madrid"},
    {"prompt_id": "geo-3", "prompt": "What is the capital of Italy? Answer with one word.",
     "model": "big", "score": 1.0, "response": "Rome"},
    {"prompt_id": "math-9", "prompt": "What is 2 + 2? Answer: <number>.", "model": "big",
     "score": 1.0, "response": "Answer: 4"},
    {"prompt_id": "geo-4", "prompt": "What is the capital of Peru? Answer with one word.",
     "model": "small", "score": 0.0, "response": "Quito"},  # wrong: never an example
]


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in POOL))
    return path
