"""Logged-out dashboard sessions, checked on every cookie request.

A session cookie is valid by its signature alone, so "log out" must be remembered: the
session id goes into this process's set (answered without I/O) and into the store's
``ui_revoked_sessions`` (``store/ui_sessions.py``), which every gateway sharing the store reads —
a cookie copied before logging out is refused by every replica, not only the one that saw the
logout. Ids are kept until the cookie would have expired anyway.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Engine

from rankgate.store.ui_sessions import revoke_session, session_revoked


class RevokedSessions:
    """Session ids ended by logging out: a local set in front of the shared store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local: dict[str, float] = {}  # session id -> its cookie's expiry

    async def revoke(self, session_id: str, expires_at: float) -> None:
        now = time.time()
        self._local = {s: t for s, t in self._local.items() if t >= now}
        self._local[session_id] = expires_at
        await asyncio.to_thread(revoke_session, self.engine, session_id, expires_at, now)

    async def contains(self, session_id: str) -> bool:
        """Revoked here or by another gateway on the store (a primary-key lookup, in a
        thread: the event loop keeps serving completions)."""
        if session_id in self._local:
            return True
        return await asyncio.to_thread(session_revoked, self.engine, session_id)
