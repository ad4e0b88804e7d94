"""A fresh store per test, on SQLite and on PostgreSQL (tests that take ``store_engine`` run
on both)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from rankgate.store.tables import make_engine
from tests.loop_support import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'rankgate.db'}")
        yield engine
        engine.dispose()
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()
