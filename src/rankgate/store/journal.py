"""A per-process write-ahead journal of request-log rows, so a killed gateway loses none.

The request log writes rows to the database in batches, off the request path. Between the
moment a request is answered and the moment its batch commits, the row lives only in memory;
a ``kill -9`` (or an OOM kill, or a crash) would lose it. So every row is first appended to a
journal file with one ``write(2)`` on an ``O_APPEND`` descriptor — a few microseconds, no fsync
— *before* the response leaves. Data handed to the kernel survives the death of the process
(not a power cut: that would need an fsync per request, which we judged not worth its cost).

Each process owns one journal file (``journal-<pid>-<start>.jsonl``) and holds an exclusive
``flock`` on it for its lifetime. At start-up a gateway replays every journal that no live
process holds into the database (insert-or-ignore by request id, so rows that did commit are not
duplicated) and deletes it. While running, the owner truncates its journal whenever every row
in it is committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

PREFIX = "journal-"


class Journal:
    """The running process's own journal file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{PREFIX}{os.getpid()}-{time.time_ns()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0

    def append(self, row: dict[str, Any]) -> None:
        """One line, one write(2): either the whole row reaches the kernel or nothing does."""
        data = orjson.dumps(row) + b"\n"
        os.write(self._fd, data)
        self.size += len(data)

    def truncate(self) -> None:
        """Forget everything: the caller guarantees every appended row is committed."""
        os.ftruncate(self._fd, 0)
        self.size = 0

    def rows(self) -> list[dict[str, Any]]:
        return list(read_rows(self.path))

    def close(self, *, delete: bool) -> None:
        with contextlib.suppress(OSError):
            if delete:
                self.path.unlink()
            os.close(self._fd)


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a journal; a torn last line (the process died mid-write) is skipped."""
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            with contextlib.suppress(orjson.JSONDecodeError):
                row = orjson.loads(line)
                if isinstance(row, dict) and "id" in row:
                    yield row


@contextlib.contextmanager
def orphans(directory: Path) -> Iterator[list[Path]]:
    """Journals left by processes that are gone (no one holds their lock), locked by us while
    the caller replays them. The caller deletes each one it has replayed."""
    held: list[tuple[int, Path]] = []
    try:
        for path in sorted(directory.glob(f"{PREFIX}*.jsonl")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live gateway owns it
                os.close(fd)
                continue
            held.append((fd, path))
        yield [p for _, p in held]
    finally:
        for fd, _ in held:
            os.close(fd)
