"""Ten thousand mutated conversations against a real gateway: no input makes it answer 5xx.

The seeds are the conversation corpus; ``tests/fuzz_mutations.py`` mutates them (types, nulls,
huge and empty values, wrong nesting, unknown roles and part types, duplicated messages) and
judges each answer: never a status >= 500 (the panel's models all answer, so a 5xx can only be
the gateway's own bug), every 4xx OpenAI-shaped, a 400 for a one-field mutation names its
``param``, a 200 stream never ends with an error event — and the request log holds exactly one
row per request sent, counted after the gateway has stopped. Failures are reported as small
reproducing bodies (shrunk against the same gateway).
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import SMOLLM
from tests.fuzz_mutations import (
    Fuzzer,
    Mutant,
    corpus,
    encode,
    error_of,
    problems,
    show,
    shrink,
)

SEED = int(os.environ.get("RANKGATE_FUZZ_SEED", "20240613"))
N_HOSTED = int(os.environ.get("RANKGATE_FUZZ_REQUESTS", "10000"))
N_LOCAL = int(os.environ.get("RANKGATE_FUZZ_LOCAL_REQUESTS", "300"))
PRICES = {"input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}
HOSTED_PANEL = [
    {"id": "hosted", "backend": "faulty", "upstream_model": "ok", "context_window": 128000,
     **PRICES},
    {"id": "hosted-text", "backend": "faulty", "upstream_model": "ok-text",
     "context_window": 16000, **PRICES,
     "capabilities": {"images": False, "audio": False, "files": False, "tools": False}},
]
LOCAL_PANEL = [{"id": SMOLLM, "backend": "llamacpp", "bundled": SMOLLM}]
LOCAL_CONTEXT = 8192


@dataclass
class Answer:
    mutant: Mutant
    status: int | None
    content_type: str
    content: bytes
    transport_error: str | None
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        return problems(self.mutant, self.status, self.content_type, self.content,
                        self.transport_error)


async def _post(client: httpx.AsyncClient, m: Mutant) -> Answer:
    t0 = time.perf_counter()
    try:
        r = await client.post("/chat/completions", content=encode(m.body),
                              headers={"content-type": "application/json"})
        return Answer(m, r.status_code, r.headers.get("content-type", ""), r.content, None,
                      time.perf_counter() - t0)
    except httpx.HTTPError as e:
        return Answer(m, None, "", b"", f"{type(e).__name__}: {e}", time.perf_counter() - t0)


def _send_all(base_url: str, mutants: Iterable[Mutant], concurrency: int,
              timeout: float) -> list[Answer]:
    async def run() -> list[Answer]:
        answers: list[Answer] = []
        limits = httpx.Limits(max_connections=concurrency,
                              max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                     limits=limits) as client:
            it = iter(mutants)

            async def worker() -> None:
                for m in it:  # one shared iterator: each mutant is sent once
                    answers.append(await _post(client, m))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return answers

    return asyncio.run(run())


def _report(answers: list[Answer], base_url: str, timeout: float) -> tuple[str, int]:
    """Failures, one example per kind, each shrunk to a small reproducing body; and how
    many extra requests the shrinking sent."""
    by_kind: dict[str, list[Answer]] = collections.defaultdict(list)
    for a in answers:
        for p in a.problems:
            by_kind[":".join(p.split(":")[:2])[:60]].append(a)
    lines, extra = [], 0
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for found in list(by_kind.values())[:6]:
            a = found[0]
            first = a.problems[0].split(":")[0]

            def still_fails(body: dict, a: Answer = a, first: str = first) -> bool:
                nonlocal extra
                extra += 1
                m = Mutant(body, a.mutant.seed, a.mutant.ops, a.mutant.touched)
                try:
                    r = client.post("/chat/completions", content=encode(body),
                                    headers={"content-type": "application/json"})
                    got = problems(m, r.status_code, r.headers.get("content-type", ""),
                                   r.content)
                except httpx.HTTPError as e:
                    got = problems(m, None, "", b"", f"{type(e).__name__}: {e}")
                return any(p.startswith(first) for p in got)

            small = shrink(a.mutant.body, still_fails, budget=80)
            lines.append(f"- {len(found)}x {a.problems[0]}\n  seed {a.mutant.seed}, "
                         f"ops {list(a.mutant.ops)}\n  minimal body: {show(small)}")
    return "\n".join(lines), extra


def _summary(answers: list[Answer], seconds: float) -> str:
    statuses = collections.Counter(a.status for a in answers)
    codes = collections.Counter()
    for a in answers:
        if a.status and a.status >= 400:
            err = error_of(a.content)
            codes[f"{a.status} {err.get('code') if err else '?'}"] += 1
    five = sum(n for s, n in statuses.items() if s is not None and s >= 500)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{len(answers)} requests in {seconds:.1f}s ({len(answers) / seconds:.0f}/s), "
            f"load {load}; statuses {dict(sorted(statuses.items(), key=str))}; 5xx {five}; "
            f"top error codes {codes.most_common(12)}")


def _fuzz(start_gateway, panel, name: str, fuzzer: Fuzzer, n: int, concurrency: int,
          timeout: float) -> None:
    gw = start_gateway(panel, name=name)
    t0 = time.perf_counter()
    answers = _send_all(gw.base_url, fuzzer.mutants(n), concurrency, timeout)
    seconds = time.perf_counter() - t0
    summary = _summary(answers, seconds)
    print(f"\n[{name}] seed {SEED}: {summary}")
    for a in sorted(answers, key=lambda a: -a.seconds)[:5]:
        err = error_of(a.content) or {}
        print(f"[{name}] slow: {a.seconds:.1f}s {a.status} {err.get('code')} {a.mutant.seed} "
              f"{list(a.mutant.ops)}")
    failing = [a for a in answers if a.problems]
    report, extra = _report(failing, gw.base_url, timeout) if failing else ("", 0)
    sent = len(answers) + extra
    gw.settle(timeout=60)
    gw.stop()
    rows = gw.count_rows()
    print(f"[{name}] request-log rows {rows} for {sent} requests sent")
    assert not failing, (f"{len(failing)} of {len(answers)} answers are wrong "
                         f"(seed {SEED}; {summary}):\n{report}")
    assert rows == sent, (f"{rows} request-log rows for {sent} requests; by status, "
                          f"answered {_by_status(answers)} vs logged {_logged_by_status(gw)}")


def _by_status(answers: list[Answer]) -> dict:
    return dict(sorted(collections.Counter(a.status for a in answers).items(), key=str))


def _logged_by_status(gw) -> dict:
    engine = sa.create_engine(f"sqlite:///{gw.home / 'rankgate.db'}")
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text(
                "select status, count(*) from request_log group by status")).all())
    finally:
        engine.dispose()


@pytest.mark.timeout(540)
def test_ten_thousand_mutated_requests_get_no_5xx_and_one_log_row_each(start_gateway):
    seeds = corpus()
    fuzzer = Fuzzer(seeds, SEED, ["hosted", "hosted", "hosted-text"])
    _fuzz(start_gateway, HOSTED_PANEL, "fuzz-hosted", fuzzer, N_HOSTED, concurrency=16,
          timeout=60)


@pytest.mark.timeout(540)
def test_mutated_requests_to_the_local_model_get_no_5xx(start_gateway, smollm_path):
    seeds = corpus()
    fuzzer = Fuzzer(seeds, SEED + 1, [SMOLLM], token_cap=4, context_window=LOCAL_CONTEXT,
                    over_limit=False)
    _fuzz(start_gateway, LOCAL_PANEL, "fuzz-local", fuzzer, N_LOCAL,
          concurrency=int(os.environ.get("RANKGATE_FUZZ_LOCAL_CONCURRENCY", "4")),
          timeout=180)
