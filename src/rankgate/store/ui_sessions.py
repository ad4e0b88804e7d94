"""Revoked dashboard sessions: the one place that reads and writes ``ui_revoked_sessions``.

A dashboard session cookie is signed rather than stored (every replica that shares the admin
key accepts it without a lookup), so logging out must list the session's id somewhere every
replica looks: here, on the shared store. Blocking calls on an ``Engine``: from async code run
them in a thread.
"""

from __future__ import annotations

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from rankgate.store.tables import ui_revoked_sessions

_T = ui_revoked_sessions


def revoke_session(engine: Engine, session_id: str, expires_at: float, now: float) -> None:
    """List ``session_id`` as revoked until ``expires_at`` (when its cookie dies anyway), and
    forget sessions whose cookies have expired. Revoking twice is harmless."""
    try:
        with engine.begin() as conn:
            conn.execute(delete(_T).where(_T.c.expires_at < now))
            if conn.execute(select(_T.c.session_id).where(_T.c.session_id == session_id)
                            ).first() is None:
                conn.execute(_T.insert().values(session_id=session_id, expires_at=expires_at))
    except IntegrityError:  # another replica listed it at the same moment: it is revoked
        pass


def session_revoked(engine: Engine, session_id: str) -> bool:
    """Whether this session was logged out (a primary-key lookup)."""
    with engine.connect() as conn:
        return conn.execute(select(_T.c.session_id).where(_T.c.session_id == session_id)
                            ).first() is not None
