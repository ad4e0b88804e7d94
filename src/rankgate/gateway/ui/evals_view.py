"""The evaluations page's data: outcomes in the store by source and model, the evaluations
``rankgate eval`` recorded (their real progress: ``eval/progress_record.py``), and the outcome
files the gateway can see."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankgate.eval.progress_record import EvalRun, read_runs
from rankgate.gateway.state import GatewayState
from rankgate.store import request_queries as rq


@dataclass
class OutcomeFile:
    path: Path
    rows: int
    size: int
    modified: float
    run: EvalRun | None = None  # the recorded evaluation writing this file, if any


def _count_lines(path: Path, cap: int = 50_000_000) -> int:
    n = 0
    with path.open("rb") as f:
        read = 0
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            read += len(chunk)
            if read > cap:
                break
    return n


def outcome_files(state: GatewayState) -> list[OutcomeFile]:
    """Outcome files the gateway can see: JSONL in RANKGATE_HOME (and its ``evals/``), in
    ``./.rankgate`` (where ``make run`` writes), and the shipped evaluation."""
    from importlib import resources

    roots = [state.settings.home, state.settings.home / "evals", Path.cwd() / ".rankgate"]
    paths: list[Path] = []
    for root in roots:
        if root.is_dir():
            paths.extend(sorted(p for p in root.glob("*.jsonl") if p.is_file()))
    paths.append(Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl")))
    out = []
    for p in dict.fromkeys(paths):
        try:
            st = p.stat()
            out.append(OutcomeFile(p, _count_lines(p), st.st_size, st.st_mtime))
        except OSError:
            continue
    return out


async def evals_page(state: GatewayState) -> dict[str, Any]:
    runs, files, evals = await asyncio.gather(
        asyncio.to_thread(rq.outcome_runs, state.request_log.engine),
        asyncio.to_thread(outcome_files, state),
        asyncio.to_thread(read_runs, state.settings.home))
    by_out = {e.out: e for e in evals}
    for f in files:
        f.run = by_out.get(str(f.path.resolve()))
    return {"runs": runs, "files": files, "evals": evals}
