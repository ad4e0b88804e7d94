"""Durable mode (``rankgate serve --durable``): no request is acknowledged before its journal
record is fsynced, and concurrent requests share one fsync (group commit) instead of paying one
each. The default mode keeps its single write(2) and never fsyncs."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from rankgate.store.request_log import RequestLog
from tests.conftest import Server, _spawn, free_port

PANEL = [{"id": "good", "backend": "faulty", "upstream_model": "fast",
          "input_price_per_mtok": 1.0, "output_price_per_mtok": 1.0}]
BODY = {"model": "good", "messages": [{"role": "user", "content": "hello"}]}


def _row(i: int) -> dict[str, Any]:
    return {"id": f"req-{i:04d}", "ts": 1_700_000_000.0 + i, "endpoint": "chat", "status": 200}


def _end_offsets(path: Path) -> dict[str, int]:
    """Each journaled request id -> the file offset just past its line."""
    out, pos = {}, 0
    for line in path.read_bytes().splitlines(keepends=True):
        pos += len(line)
        out[orjson.loads(line)["id"]] = pos
    return out


class FsyncSpy:
    """Wraps the real ``os.fdatasync``: records how many bytes the file held at each call."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._real = os.fdatasync

    def __call__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        self._real(fd)
        self.sizes.append(size)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> FsyncSpy:
    s = FsyncSpy()
    monkeypatch.setattr(os, "fdatasync", s)
    return s


def _log(tmp_path: Path, durable: bool, **kw: Any) -> RequestLog:
    return RequestLog(f"sqlite:///{tmp_path / 'log.db'}", journal_dir=tmp_path / "journal",
                      batch_wait_s=0.01, durable=durable, **kw)


async def _acknowledge(rl: RequestLog, row: dict[str, Any]) -> None:
    """What the gateway does for each request: submit the row, then wait for durability."""
    rl.submit(row)
    await rl.synced()


def test_each_acknowledged_row_was_fsynced_before_synced_returned(tmp_path: Path,
                                                                  spy: FsyncSpy) -> None:
    async def go() -> None:
        rl = _log(tmp_path, durable=True)
        rl.start()
        try:
            assert rl.journal is not None
            for i in range(5):  # one at a time: each acknowledgement needs its own sync
                await _acknowledge(rl, _row(i))
                end = _end_offsets(rl.journal.path)[f"req-{i:04d}"]
                # a real fdatasync covering the whole row had returned before synced() did
                assert spy.sizes and max(spy.sizes) >= end
                assert rl.journal.synced >= end
            assert rl.journal.syncs == len(spy.sizes) == 5
            assert rl.stats()["sync_failures"] == 0
        finally:
            await rl.close()

    asyncio.run(go())


def test_concurrent_rows_share_one_fsync(tmp_path: Path, spy: FsyncSpy) -> None:
    async def go() -> None:
        rl = _log(tmp_path, durable=True)
        rl.start()
        try:
            assert rl.journal is not None
            acked: dict[str, int] = {}  # id -> number of fsyncs done when it was acknowledged

            async def one(i: int) -> None:
                await _acknowledge(rl, _row(i))
                acked[f"req-{i:04d}"] = len(spy.sizes)

            await asyncio.gather(*(one(i) for i in range(64)))
            ends = _end_offsets(rl.journal.path)
            assert set(acked) == set(ends)
            for rid, n_syncs in acked.items():
                assert n_syncs >= 1 and max(spy.sizes[:n_syncs]) >= ends[rid]
            # all 64 appended before the flusher ran: one group, one fsync
            assert rl.journal.syncs == len(spy.sizes) == 1
            assert rl.stats()["journal_synced_bytes"] == rl.stats()["journal_appended_bytes"]
        finally:
            await rl.close()

    asyncio.run(go())


def test_durable_mode_makes_sqlite_commits_durable_too(tmp_path: Path) -> None:
    # the journal is truncated once its rows are committed: the commit must survive a power
    # cut as well (synchronous=FULL; the default log keeps NORMAL)
    for durable, expected in ((True, 2), (False, 1)):
        (home := tmp_path / str(durable)).mkdir()
        rl = _log(home, durable=durable)
        with rl.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
        rl.engine.dispose()


def test_default_mode_never_fsyncs(tmp_path: Path, spy: FsyncSpy) -> None:
    async def go() -> None:
        rl = _log(tmp_path, durable=False)
        rl.start()
        try:
            await asyncio.gather(*(_acknowledge(rl, _row(i)) for i in range(20)))
            assert rl.journal is not None and len(_end_offsets(rl.journal.path)) == 20
            assert spy.sizes == [] and "durable" not in rl.stats()
        finally:
            await rl.close()

    asyncio.run(go())


def test_a_stuck_disk_delays_the_answer_boundedly_and_is_counted(tmp_path: Path) -> None:
    release = threading.Event()

    async def go() -> None:
        rl = _log(tmp_path, durable=True, sync_timeout_s=0.2)
        rl.start()
        assert rl.journal is not None
        real_sync = rl.journal.sync

        def stuck() -> None:
            release.wait(30)
            real_sync()

        rl.journal.sync = stuck  # type: ignore[method-assign]
        try:
            rl.submit(_row(0))
            assert not await rl.synced()  # returns (after the bound) instead of hanging
            assert rl.stats()["sync_failures"] == 1
        finally:
            release.set()
            await rl.close()

    asyncio.run(go())


# --- through the gateway --------------------------------------------------------------------

def _serve(home: Path, durable: bool) -> Server:
    home.mkdir(parents=True, exist_ok=True)
    panel = home / "panel.yaml"
    panel.write_text(yaml.safe_dump({"models": PANEL}))
    port = free_port()
    args = [sys.executable, "-m", "rankgate", "serve", "--port", str(port), "--panel",
            str(panel), *(["--durable"] if durable else [])]
    return _spawn(args, home, "gw", "/healthz", port, {"RANKGATE_LOG_BATCH_WAIT_S": "5"})


def test_durable_gateway_answers_only_rows_already_fsynced(tmp_path: Path) -> None:
    server = _serve(tmp_path / "gw", durable=True)
    try:
        journal = next((server.home / "journal").glob("journal-*.jsonl"))

        async def run() -> list[tuple[str, int]]:
            seen: list[tuple[str, int]] = []  # (request id, synced bytes right after it)
            async with httpx.AsyncClient(timeout=10) as c:
                async def one() -> None:
                    r = await c.post(server.base_url + "/chat/completions", json=BODY)
                    assert r.status_code == 200
                    assert r.headers["x-request-id"] in _end_offsets(journal)  # already there
                    synced = (await c.get(server.root + "/healthz")).json()["request_log"][
                        "journal_synced_bytes"]
                    seen.append((r.headers["x-request-id"], synced))
                for _ in range(3):  # waves of concurrent requests
                    await asyncio.gather(*(one() for _ in range(20)))
            return seen

        seen = asyncio.run(run())
        # (that the fsync came *before* the answer, not just soon after, is pinned in-process
        # above; here: the gateway is wired to wait, covers every answered row, and groups)
        ends = _end_offsets(journal)  # the batch wait keeps every row in the journal
        for rid, synced in seen:
            assert synced >= ends[rid], f"{rid} was answered before its record was fsynced"
        stats = httpx.get(server.root + "/healthz").json()["request_log"]
        assert stats["durable"] == 1 and stats["sync_failures"] == 0
        assert 1 <= stats["journal_syncs"] < len(seen)  # group commit: fewer fsyncs than rows
    finally:
        server.stop()
