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

**Durable mode** (``rankgate serve --durable``) closes the power-cut gap with *group commit*:
a handler that must not answer before its row is on stable storage awaits
``GroupCommit.wait(position)``; one flusher task runs ``fdatasync`` in its own thread on
everything written so far and wakes every waiter it covered. Requests that arrive while a sync
is in flight wait for the next one, which covers them all — so under load many rows share one
fsync, and an idle gateway pays one fsync per request (the disk's sync latency, no more).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

PREFIX = "journal-"
SYNC_TIMEOUT_S = 5.0

log = logging.getLogger("rankgate.journal")


class Journal:
    """The running process's own journal file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{PREFIX}{os.getpid()}-{time.time_ns()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0  # bytes in the file now (truncate resets it)
        # Positions for durable waits count every byte ever appended, so truncating the file
        # (its rows are committed) never makes an earlier position look unsynced or synced.
        self.appended = 0
        self.synced = 0  # ``appended`` as it was when the last successful fdatasync began
        self.syncs = 0  # fdatasync calls made: with group commit, far fewer than rows

    def append(self, row: dict[str, Any]) -> int:
        """One line, one write(2): either the whole row reaches the kernel or nothing does.
        Returns the row's end position, the value ``synced`` must reach for it to be durable."""
        data = orjson.dumps(row) + b"\n"
        os.write(self._fd, data)
        self.size += len(data)
        self.appended += len(data)
        return self.appended

    def sync(self) -> None:
        """Flush the file's data to stable storage (blocking: call it off the event loop).
        The caller records what it covered: every byte appended before the call."""
        os.fdatasync(self._fd)
        self.syncs += 1

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


class GroupCommit:
    """Makes journal appends durable in groups: one ``fdatasync`` for every row appended
    before it began, however many requests wait on it.

    ``wait(position)`` returns once ``journal.synced >= position`` (True) or, bounded by
    ``timeout_s``, when the disk does not confirm in time or the sync fails (False, counted in
    ``failures``): the caller's response is decided by then, so a stuck disk delays answers by
    at most ``timeout_s`` and is reported rather than hanging the gateway. A single flusher task
    owns the syncing; the fsync itself runs in a dedicated thread, so the event loop keeps
    accepting (and appending) requests meanwhile — those form the next group.
    """

    def __init__(self, journal: Journal, timeout_s: float = SYNC_TIMEOUT_S) -> None:
        self.journal = journal
        self.timeout_s = timeout_s
        self.failures = 0  # acknowledgements that went out without a confirmed sync
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sync")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="journal-sync")

    async def wait(self, position: int) -> bool:
        """Until the journal is synced up to ``position`` (a value ``append`` returned)."""
        if position <= self.journal.synced:
            return True
        if self._task is None or self._task.done():
            self.failures += 1
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((position, fut))
        self._wake.set()
        try:
            ok = await asyncio.wait_for(asyncio.shield(fut), self.timeout_s)
        except TimeoutError:
            ok = False
            log.error("journal fsync did not complete within %.1f s; answering anyway",
                      self.timeout_s)
        if not ok:
            self.failures += 1
        return ok

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            target = self.journal.appended  # every byte whose write(2) has returned
            try:
                await loop.run_in_executor(self._executor, self.journal.sync)
            except Exception:  # EIO, a closed descriptor...: report, keep serving later groups
                log.exception("journal fsync failed")
                self._release(target, ok=False)
                continue
            self.journal.synced = max(self.journal.synced, target)
            self._release(target, ok=True)
            # waiters that arrived during the sync set _wake again: they are the next group

    def _release(self, target: int, *, ok: bool) -> None:
        keep: list[tuple[int, asyncio.Future[bool]]] = []
        for position, fut in self._waiters:
            if position <= target:
                if not fut.done():
                    fut.set_result(ok)
            else:
                keep.append((position, fut))
        self._waiters = keep

    async def close(self) -> None:
        """Sync what is left, release every waiter, stop the flusher."""
        if self._task is not None:
            if self.journal.synced < self.journal.appended or self._waiters:
                target = self.journal.appended
                ok = True
                try:
                    await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                     self.journal.sync)
                    self.journal.synced = max(self.journal.synced, target)
                except OSError:
                    log.exception("journal fsync at shutdown failed")
                    ok = False
                self._release(target, ok=ok)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)


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
