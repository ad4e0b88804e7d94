"""Reads of the request log and of the key table, on a real SQLite file."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from rankgate.store.key_store import (
    StoredKey,
    add_key,
    find_active_key,
    find_key,
    list_keys,
    revoke_key,
)
from rankgate.store.request_queries import LoggedRequest, find_request, spend_since
from rankgate.store.tables import make_engine, request_log


@pytest.fixture
def engine(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path / 'rankgate.db'}")
    yield e
    e.dispose()


def log(engine, *rows: dict) -> None:
    base = {"endpoint": "chat", "status": 200, "model": "m"}
    with engine.begin() as conn:
        conn.execute(sa.insert(request_log), [{**base, **r} for r in rows])


def test_find_request_returns_the_row_or_none(engine):
    log(engine, {"id": "r1", "ts": 10.0, "key_id": "k", "cost_usd": 0.5, "latency_ms": 20.0,
                 "router": "knn", "prompt": "p"})
    got = find_request(engine, "r1")
    assert isinstance(got, LoggedRequest)
    assert (got.id, got.ts, got.key_id, got.cost_usd, got.router, got.prompt, got.stream
            ) == ("r1", 10.0, "k", 0.5, "knn", "p", False)
    assert got.answered and got.input_tokens is None
    assert find_request(engine, "nope") is None


def test_a_failed_request_is_not_answered(engine):
    log(engine, {"id": "r1", "ts": 1.0, "status": 502}, {"id": "r2", "ts": 1.0, "model": None})
    assert not find_request(engine, "r1").answered
    assert not find_request(engine, "r2").answered


def test_spend_since_sums_one_keys_known_costs_from_that_time_on(engine):
    log(engine, {"id": "a", "ts": 99.0, "key_id": "k", "cost_usd": 5.0},
        {"id": "b", "ts": 100.0, "key_id": "k", "cost_usd": 0.25},
        {"id": "c", "ts": 150.0, "key_id": "k", "cost_usd": None},
        {"id": "d", "ts": 160.0, "key_id": "k", "cost_usd": 0.5},
        {"id": "e", "ts": 160.0, "key_id": "other", "cost_usd": 7.0})
    assert spend_since(engine, "k", 100.0) == pytest.approx(0.75)
    assert spend_since(engine, "nobody", 0.0) == 0.0


def key(key_id: str, created_at: float, **changes) -> StoredKey:
    base = {"id": key_id, "name": "team", "prefix": "rg-abc", "models": ("m1", "auto"),
            "rpm": 60, "tpm": None, "budget_usd": 2.5, "budget_period": "day",
            "routing": {"min_quality": 0.8}, "created_at": created_at}
    base.update(changes)
    return StoredKey(**base)


def test_keys_read_back_as_stored_and_revoked_ones_only_when_asked(engine):
    first, second = key("key-1", 1.0), key("key-2", 2.0, models=None, routing=None)
    add_key(engine, second, "hash-2")
    add_key(engine, first, "hash-1")
    assert list_keys(engine) == [first, second]
    assert find_active_key(engine, "hash-2") == second
    assert revoke_key(engine, "key-1", at=5.0) is True
    assert revoke_key(engine, "key-1", at=6.0) is False
    assert find_active_key(engine, "hash-1") is None
    assert list_keys(engine) == [second]
    revoked = key("key-1", 1.0, revoked_at=5.0)
    assert list_keys(engine, include_revoked=True) == [revoked, second]
    assert find_key(engine, "key-1") == revoked and find_key(engine, "key-9") is None
