"""Virtual keys in the database: the one place that reads and writes the ``api_keys`` table.

``gateway/auth.py`` decides what a key means (validation, secrets, caching); this module only
stores keys. A ``StoredKey`` never carries the secret or its hash: the hash goes in through
``add_key`` and is only ever compared with, in ``find_active_key``. Keys are revoked, never
deleted, so request-log rows keep pointing at a known key. Blocking calls on an ``Engine``:
from async code run them in a thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update

from rankgate.store.tables import api_keys


@dataclass(frozen=True)
class StoredKey:
    """A key's stored settings (``models``/``routing`` None: all models / no default knob)."""

    id: str
    name: str
    prefix: str  # the non-secret start of the secret, for telling keys apart
    models: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: str
    routing: dict[str, float] | None
    created_at: float
    revoked_at: float | None = None
    log_bodies: bool | None = None  # store its request bodies; None: the server's default


def _key(row: Row[Any]) -> StoredKey:
    models = json.loads(row.models) if row.models else None
    return StoredKey(id=row.id, name=row.name, prefix=row.prefix,
                     models=tuple(models) if models is not None else None,
                     rpm=row.rpm, tpm=row.tpm, budget_usd=row.budget_usd,
                     budget_period=row.budget_period,
                     routing=json.loads(row.routing) if row.routing else None,
                     created_at=row.created_at, revoked_at=row.revoked_at,
                     log_bodies=None if row.log_bodies is None else bool(row.log_bodies))


def ensure_key_table(engine: Engine) -> None:
    """Create the ``api_keys`` table if this database has none (an engine not made by
    ``tables.make_engine``)."""
    api_keys.create(engine, checkfirst=True)


def add_key(engine: Engine, key: StoredKey, secret_sha256: str) -> None:
    """Store a new key with the sha256 (hex) of its secret."""
    with engine.begin() as conn:
        conn.execute(insert(api_keys).values(
            id=key.id, name=key.name, prefix=key.prefix, secret_sha256=secret_sha256,
            models=json.dumps(list(key.models)) if key.models is not None else None,
            rpm=key.rpm, tpm=key.tpm, budget_usd=key.budget_usd,
            budget_period=key.budget_period,
            routing=json.dumps(key.routing) if key.routing is not None else None,
            created_at=key.created_at, revoked_at=key.revoked_at, log_bodies=key.log_bodies))


def list_keys(engine: Engine, *, include_revoked: bool = False) -> list[StoredKey]:
    """Keys oldest first (ties by id); active ones only unless ``include_revoked``."""
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_key(r) for r in conn.execute(query)]


def find_key(engine: Engine, key_id: str) -> StoredKey | None:
    """The key with this id, active or revoked; None if there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    return _key(row) if row is not None else None


def find_active_key(engine: Engine, secret_sha256: str) -> StoredKey | None:
    """The active key whose secret has this sha256; None if unknown or revoked."""
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.secret_sha256 == secret_sha256,
                                                  api_keys.c.revoked_at.is_(None))).first()
    return _key(row) if row is not None else None


def revoke_key(engine: Engine, key_id: str, *, at: float) -> bool:
    """Mark an active key revoked at ``at`` (unix seconds); False if no such active key."""
    with engine.begin() as conn:
        result = conn.execute(update(api_keys)
                              .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                              .values(revoked_at=at))
    return result.rowcount > 0
