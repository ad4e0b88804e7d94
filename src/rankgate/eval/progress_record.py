"""A running evaluation's progress, on disk, for whoever wants to watch it (the dashboard).

``rankgate eval`` appends outcomes to its ``--out`` file as it goes; how far along it is, how
many pairs it planned and whether it is still alive are only in its memory. This module
writes that to ``RANKGATE_HOME/eval_runs/<id>.json`` (one file per output file, replaced
atomically, at most every ``every_s`` and once at the end) from the runner's own progress
callback, and reads those records back. The gateway shares ``RANKGATE_HOME`` with the CLI on
one machine, so its Evaluations page shows real counts — done of planned, errors, rate, ETA,
running/finished/failed, or stopped when the process is gone — wherever the outcome file is.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

DIRNAME = "eval_runs"
#: a "running" record not refreshed for this long, by a process we cannot see, is stale
STALE_S = 600.0

State = Literal["starting", "running", "finished", "failed", "interrupted"]


def record_path(home: Path, out: Path) -> Path:
    """Where the record of an evaluation writing ``out`` lives (one per output file: a
    resumed run replaces the record of the run it resumes)."""
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return home / DIRNAME / f"{digest}.json"


class ProgressRecorder:
    """Keeps ``record_path(home, out)`` up to date from ``runner.Progress`` callbacks."""

    def __init__(self, home: Path, out: Path, workload: str, models: list[str],
                 planned: int, every_s: float = 0.5) -> None:
        self.path = record_path(home, out)
        self.every_s = every_s
        self._last = 0.0
        self.data: dict[str, Any] = {
            "out": str(out.resolve()), "workload": workload, "models": list(models),
            "planned": planned, "total": None, "done": 0, "errors": 0, "cached": 0,
            "accuracy": {}, "state": "starting", "pid": os.getpid(),
            "host": socket.gethostname(), "started": time.time(), "updated": time.time()}
        self._write()

    def update(self, progress: Any, force: bool = False) -> None:
        """Copy the runner's counts (``runner.Progress``); written at most every
        ``every_s`` unless ``force``."""
        self.data.update(total=progress.total, done=progress.done, errors=progress.errors,
                         cached=progress.cached, accuracy=progress.accuracy(),
                         state="running", updated=time.time())
        if force or self.data["updated"] - self._last >= self.every_s:
            self._write()

    def close(self, state: State, progress: Any = None) -> None:
        if progress is not None:
            self.update(progress)
        self.data.update(state=state, updated=time.time())
        self._write()

    def _write(self) -> None:
        self._last = time.time()
        with contextlib.suppress(OSError):  # watching must never break the evaluation
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps(self.data))
            os.replace(tmp, self.path)


@dataclass(frozen=True)
class EvalRun:
    """One evaluation as its record tells it, judged now."""

    out: str
    workload: str
    models: list[str]
    planned: int
    total: int | None  # pairs this run had to do (planned minus those already in ``out``)
    done: int
    errors: int
    cached: int
    accuracy: dict[str, float]
    state: str  # the record's state, or "stopped" when its process is gone
    pid: int
    started: float
    updated: float

    @property
    def share(self) -> float | None:
        return None if not self.total else self.done / self.total

    @property
    def rate(self) -> float | None:
        """Outcomes per second so far."""
        span = self.updated - self.started
        return self.done / span if self.done and span > 0 else None

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        if self.state != "running" or not rate or self.total is None:
            return None
        return max(0.0, (self.total - self.done) / rate)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def read_runs(home: Path, now: float | None = None, limit: int = 50) -> list[EvalRun]:
    """The recorded evaluations, newest first. A record still saying running/starting whose
    process is gone (same host) or that went silent for ``STALE_S`` is reported as
    ``stopped``: killed, or lost its machine."""
    now = now or time.time()
    d = home / DIRNAME
    if not d.is_dir():
        return []
    host = socket.gethostname()
    runs = []
    for p in d.glob("*.json"):
        try:
            r = orjson.loads(p.read_bytes())
            run = EvalRun(r["out"], r["workload"], list(r["models"]), int(r["planned"]),
                          r["total"], int(r["done"]), int(r["errors"]), int(r["cached"]),
                          dict(r["accuracy"]), str(r["state"]), int(r["pid"]),
                          float(r["started"]), float(r["updated"]))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # being replaced, or not ours
        if run.state in ("starting", "running") and (
                (r.get("host") == host and not _alive(run.pid))
                or now - run.updated > STALE_S):
            run = EvalRun(**{**run.__dict__, "state": "stopped"})
        runs.append(run)
    runs.sort(key=lambda r: -r.updated)
    return runs[:limit]
