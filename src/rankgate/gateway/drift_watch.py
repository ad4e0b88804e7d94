"""Drift on ``/metrics``: the gateway re-tests its own judge and feedback outcomes now and then.

``rankgate rank --store`` reports drift when someone asks; an alert needs it on a scrape. Every
``drift_interval_s`` (off when 0) a background task reads the judge and feedback outcomes of the
last two ``drift_window_s`` windows from the store, runs the same test as ``rank --store``
(``rank/drift.py``: the window ending now against the one before, Holm-adjusted, a drift only
when the interval excludes zero) in a worker thread, and publishes the result as gauges. Reading
and testing happen off the event loop; a failed read is logged and the last figures stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from rankgate.rank.drift import DriftReport, detect
from rankgate.store.outcome_store import query_outcomes

if TYPE_CHECKING:
    from rankgate.gateway.state import GatewayState

log = logging.getLogger("rankgate.gateway")


class DriftWatch:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.window_s = state.settings.drift_window_s
        self.interval_s = state.settings.drift_interval_s
        self.last: DriftReport | None = None
        self._task: asyncio.Task[None] | None = None

    def compute(self, now: float | None = None) -> DriftReport:
        """The drift of the store's judge and feedback outcomes, windows ending ``now``."""
        end = time.time() if now is None else now
        timed = query_outcomes(self.state.request_log.engine, since=end - 2 * self.window_s,
                               until=end, kinds=["judge", "feedback"])
        return detect(timed, self.window_s, end=end)

    async def refresh(self) -> None:
        try:
            report = await asyncio.get_running_loop().run_in_executor(None, self.compute)
        except Exception:  # the store may be briefly away: keep the last figures
            log.exception("drift check failed")
            return
        self.last = report
        self.state.metrics.set_drift(report)

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
