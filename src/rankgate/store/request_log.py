"""The request log: every answered request becomes one row, written off the request path.

Handlers call ``submit`` (a non-blocking ``put_nowait``); one background task drains the
bounded queue in batches and writes them with one ``INSERT`` per batch in a dedicated thread,
so neither the event loop nor the default executor ever waits on the database. If the queue is
full the row is *counted* (``dropped``) and a warning names its request id — reported on
``/healthz``, never silent. A failed write is retried with backoff; the batch is kept meanwhile.
``close`` drains everything still queued before the process exits.

With a journal directory (the gateway always gives one), every row is also appended to this
process's write-ahead journal (``store/journal.py``) before ``submit`` returns, i.e. before the
response leaves: a gateway killed with SIGKILL mid-burst loses no acknowledged request, because
the next start replays the orphaned journal. A full queue then spills to the journal only
(counted as ``spilled``, replayed once the queue drains) instead of dropping the row.

The journal's ``write(2)`` survives the process, not a power cut. With ``durable=True``
(``rankgate serve --durable``) a handler, after ``submit`` and its other bookkeeping, awaits
``synced()``: it returns only once every row submitted so far is fsynced, by group commit
(``journal.GroupCommit``: concurrent requests share one ``fdatasync``). SQLite then commits
with ``synchronous=FULL``, so the journal is only ever truncated after the rows it held are
durable in the database too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Insert, event, insert, select

from rankgate.store import journal as journal_mod
from rankgate.store.tables import make_engine, request_log

log = logging.getLogger("rankgate.request_log")

BATCH_MAX = 500
JOURNAL_TRUNCATE_BYTES = 256 * 1024


def insert_ignoring_duplicates(engine: Engine) -> Insert:
    """INSERT that skips rows whose request id is already in the table (journal replay)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(request_log).on_conflict_do_nothing(index_elements=["id"])
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(request_log).on_conflict_do_nothing(index_elements=["id"])
    return insert(request_log).prefix_with("IGNORE")  # MySQL-style


def _sqlite_synchronous_full(engine: Engine) -> None:
    """Make every commit durable (WAL synced per commit): in durable mode the journal may be
    truncated after a commit, so the database must not lose what the journal forgets. The
    listener runs after ``make_engine``'s (which sets NORMAL); pooled connections opened
    before it are discarded."""

    @event.listens_for(engine, "connect")
    def _full(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    engine.dispose()


class RequestLog:
    def __init__(self, url: str, queue_size: int = 10_000,
                 journal_dir: Path | None = None, batch_wait_s: float = 0.0,
                 durable: bool = False,
                 sync_timeout_s: float = journal_mod.SYNC_TIMEOUT_S,
                 scrub: Callable[[str], str] | None = None) -> None:
        self.engine: Engine = make_engine(url)
        # applied to each row's ``prompt`` in the writer thread (the gateway passes its
        # redactor): secrets never reach the table, and the request path pays nothing for it
        self.scrub = scrub
        self.durable = durable
        self.sync_timeout_s = sync_timeout_s
        self._group: journal_mod.GroupCommit | None = None
        if durable and journal_dir is None:
            raise ValueError("a durable request log needs a journal directory")
        if durable and self.engine.dialect.name == "sqlite":
            _sqlite_synchronous_full(self.engine)
        self.batch_wait_s = batch_wait_s  # gather rows this long before a write (fewer writes)
        self.queue_size = queue_size
        self.journal_dir = journal_dir
        self.journal: journal_mod.Journal | None = None
        self.spilled = 0  # rows only in the journal because the queue was full
        self.replayed = 0  # rows recovered from journals (of dead processes, or spills)
        self._spill_pending = False
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log")
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self._in_flight = 0  # rows taken off the queue, not yet committed
        self.dropped = 0
        self.write_errors = 0

    # -- producer side (request path) ----------------------------------------------------
    def submit(self, row: dict[str, Any]) -> bool:
        """Journal and queue one row; never blocks. False if the queue is full: the row is
        then in the journal only (``spilled``, replayed later) or, without a journal, lost and
        counted (``dropped``). Never waits for an fsync, even in durable mode: see
        ``synced``."""
        if self.journal is not None:
            try:
                self.journal.append(row)
            except OSError:
                log.exception("request journal write failed for request %s", row.get("id"))
        try:
            self._queue.put_nowait(row)
            return True
        except asyncio.QueueFull:
            if self.journal is not None:
                self.spilled += 1
                self._spill_pending = True
                return False
            self.dropped += 1
            log.warning("request log queue full (%d): row for request %s not logged",
                        self.queue_size, row.get("id"))
            return False

    async def synced(self) -> bool:
        """In durable mode, return once every row submitted so far is on stable storage (one
        group-commit fsync shared with concurrent requests), or after ``sync_timeout_s``
        when the disk does not confirm (then False, counted in ``sync_failures``, logged).
        Without durable mode it returns True at once, without suspending. A handler awaits it
        last, after its bookkeeping, so that nothing but the response waits for the disk."""
        if self._group is None or self.journal is None:
            return True
        return await self._group.wait(self.journal.appended)

    @property
    def full(self) -> bool:
        """The writer is behind by a whole queue: time for back-pressure."""
        return self._queue.qsize() >= self.queue_size

    @property
    def depth(self) -> int:
        """Rows accepted but not yet committed to the database."""
        return self._queue.qsize() + self._in_flight

    def stats(self) -> dict[str, int]:
        j = self.journal
        out = {"written": self.written, "queued": self.depth, "dropped": self.dropped,
               "spilled": self.spilled, "replayed": self.replayed,
               "write_errors": self.write_errors, "capacity": self.queue_size}
        if self.durable:
            out.update(durable=1, journal_syncs=j.syncs if j else 0,
                       journal_appended_bytes=j.appended if j else 0,
                       journal_synced_bytes=j.synced if j else 0,
                       sync_failures=self._group.failures if self._group else 0)
        return out

    # -- consumer side -------------------------------------------------------------------
    def start(self) -> None:
        """Replay journals of dead processes, open our own, start the writer."""
        if self.journal_dir is not None and self.journal is None:
            self.recover()
            self.journal = journal_mod.Journal(self.journal_dir)
            if self.durable:
                self._group = journal_mod.GroupCommit(self.journal, self.sync_timeout_s)
                self._group.start()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="request-log")

    def recover(self) -> int:
        """Insert the rows of every orphaned journal (insert-or-ignore), then delete it."""
        if self.journal_dir is None or not self.journal_dir.is_dir():
            return 0
        n = 0
        with journal_mod.orphans(self.journal_dir) as paths:
            for path in paths:
                rows = list(journal_mod.read_rows(path))
                self._replay(rows)
                n += len(rows)
                path.unlink()
        if n:
            log.warning("request log: replayed %d row(s) from the journals of stopped gateways",
                        n)
        return n

    def _scrubbed(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.scrub is None:
            return rows
        return [{**r, "prompt": self.scrub(r["prompt"])} if r.get("prompt") else r
                for r in rows]

    def _replay(self, rows: list[dict[str, Any]]) -> None:
        rows = self._scrubbed(rows)
        stmt = insert_ignoring_duplicates(self.engine)
        for s in range(0, len(rows), BATCH_MAX):
            with self.engine.begin() as conn:
                conn.execute(stmt, rows[s: s + BATCH_MAX])
        self.replayed += len(rows)

    async def _after_commit(self) -> None:
        """Once everything accepted is committed: replay spills, then empty the journal."""
        j = self.journal
        if j is None or self.depth:
            return
        if self._spill_pending:
            self._spill_pending = False
            rows = j.rows()
            await asyncio.get_running_loop().run_in_executor(self._executor, self._replay, rows)
            if self.depth:  # new rows arrived meanwhile: they are in the journal; keep it
                return
            j.truncate()
        elif j.size > JOURNAL_TRUNCATE_BYTES:
            j.truncate()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        rows = self._scrubbed(rows)
        with self.engine.begin() as conn:
            conn.execute(insert(request_log), rows)

    async def _write_with_retry(self, rows: list[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.05
        while True:
            try:
                await loop.run_in_executor(self._executor, self._write, rows)
                self.written += len(rows)
                self._in_flight -= len(rows)
                return
            except Exception:  # the DB may be briefly locked or away: keep the batch
                self.write_errors += 1
                log.exception("request log write of %d rows failed; retrying", len(rows))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if self.batch_wait_s:
                await asyncio.sleep(self.batch_wait_s)
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._in_flight += len(batch)
            try:
                await self._write_with_retry(batch)
                await self._after_commit()
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every row queued so far is in the database."""
        await self._queue.join()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Drain the queue (bounded by ``timeout_s``), then stop the writer."""
        drained = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self.flush(), timeout_s)
            except TimeoutError:
                drained = False
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._group is not None:
            await self._group.close()
            self._group = None
        if self.journal is not None:
            if drained and self._spill_pending:
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._replay, self.journal.rows())
                self._spill_pending = False
            # a journal with uncommitted rows stays on disk: the next start replays it
            self.journal.close(delete=drained and not self._spill_pending)
            self.journal = None
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    # -- reading (CLI, tests) ------------------------------------------------------------
    def fetch(self, request_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(request_log).where(request_log.c.id == request_id)
            ).mappings().first()
        return dict(row) if row else None
