"""Support for the loop-in-production tests.

Real answers: the embedded smollm2-135m (live) and qwen2.5-coder-0.5b (shadow) answer a few
questions, once per test session, and the answers become logged exchanges exactly as the
gateway stores them (one live + one shadow row per request). Nothing here pretends to be a
model: every answer is generated. And a fresh PostgreSQL database per test, so tests never see
each other's rows (nor another module's gateway tables)."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
import yaml

from rankgate.config import Settings
from rankgate.messages import prompt_text
from rankgate.panel import load_panel
from rankgate.runtime import open_panel
from rankgate.store.exchange_store import Exchange
from rankgate.store.tables import normalise_url

SMOLLM = "smollm2-135m"
QWEN05 = "qwen2.5-coder-0.5b"
QUESTIONS = (
    "What is the capital of France? Answer in one word.",
    "What is 12 * 11? Reply with the number only.",
    "Name the largest planet in the solar system.",
)


def write_panel(directory: Path, qwen05_path: Path) -> Path:
    """A panel of the two small models (smollm2 bundled, qwen 0.5B from its assembled file)."""
    path = directory / "panel.yaml"
    path.write_text(yaml.safe_dump({"models": [
        {"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM},
        {"id": QWEN05, "backend": "llamacpp", "path": str(qwen05_path)}]}))
    return path


@functools.cache
def real_exchanges(panel_file: str, max_tokens: int = 24) -> tuple[Exchange, ...]:
    """For each question, a live exchange answered by smollm2 and a shadow one by qwen 0.5B
    (temperature 0), with the measured latency, token counts and local-compute cost."""

    async def generate() -> list[Exchange]:
        rt = open_panel(load_panel(Path(panel_file)), Settings())
        out = []
        try:
            base = time.time() - 3600
            for i, q in enumerate(QUESTIONS):
                messages = [{"role": "user", "content": q}]
                for role, model in (("live", SMOLLM), ("shadow", QWEN05)):
                    t0 = time.perf_counter()
                    r = await rt.backends[model].complete("chat", {
                        "messages": messages, "max_tokens": max_tokens, "temperature": 0})
                    latency = time.perf_counter() - t0
                    cost = rt.pricers[model].cost(r.usage.input_tokens, r.usage.output_tokens,
                                                  r.compute_s).usd
                    choice = r.body["choices"][0]
                    out.append(Exchange(
                        request_id=f"req-{i}", ts=base + 60 * i, role=role, model=model,
                        messages=messages, prompt=prompt_text({"messages": messages}),
                        answer=choice["message"]["content"], key_id="key-a" if i else "key-b",
                        router="knn" if role == "live" else None, cost_usd=cost,
                        latency_s=latency, input_tokens=r.usage.input_tokens,
                        output_tokens=r.usage.output_tokens,
                        finish_reason=choice.get("finish_reason")))
        finally:
            await rt.aclose()
        return out

    return tuple(asyncio.run(generate()))


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the test server; dropped afterwards."""
    name = f"loop_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield server_url.rsplit("/", 1)[0] + "/" + name
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
