"""The request log: every answered request becomes one row, written off the request path.

Handlers call ``submit`` (a non-blocking ``put_nowait``); one background task drains the
bounded queue in batches and writes them with one ``INSERT`` per batch in a dedicated thread,
so neither the event loop nor the default executor ever waits on the database. If the queue is
full the row is *counted* (``dropped``) and a warning names its request id — reported on
``/healthz``, never silent. A failed write is retried with backoff; the batch is kept meanwhile.
``close`` drains everything still queued before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, insert, select

from rankgate.store.tables import make_engine, request_log

log = logging.getLogger("rankgate.request_log")

BATCH_MAX = 500


class RequestLog:
    def __init__(self, url: str, queue_size: int = 10_000) -> None:
        self.engine: Engine = make_engine(url)
        self.queue_size = queue_size
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log")
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self._in_flight = 0  # rows taken off the queue, not yet committed
        self.dropped = 0
        self.write_errors = 0

    # -- producer side (request path) ----------------------------------------------------
    def submit(self, row: dict[str, Any]) -> bool:
        """Queue one row; never blocks. False (and counted) if the queue is full."""
        try:
            self._queue.put_nowait(row)
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("request log queue full (%d): row for request %s not logged",
                        self.queue_size, row.get("id"))
            return False

    @property
    def depth(self) -> int:
        """Rows accepted but not yet committed to the database."""
        return self._queue.qsize() + self._in_flight

    def stats(self) -> dict[str, int]:
        return {"written": self.written, "queued": self.depth, "dropped": self.dropped,
                "write_errors": self.write_errors, "capacity": self.queue_size}

    # -- consumer side -------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="request-log")

    def _write(self, rows: list[dict[str, Any]]) -> None:
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
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._in_flight += len(batch)
            try:
                await self._write_with_retry(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every row queued so far is in the database."""
        await self._queue.join()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Drain the queue (bounded by ``timeout_s``), then stop the writer."""
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.flush(), timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    # -- reading (CLI, tests) ------------------------------------------------------------
    def fetch(self, request_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(request_log).where(request_log.c.id == request_id)
            ).mappings().first()
        return dict(row) if row else None
