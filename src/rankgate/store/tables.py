"""The database schema, as SQLAlchemy Core tables: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

metadata = MetaData()

#: One row per request the gateway answered, successful or not.
request_log = Table(
    "request_log",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("ts", Float, nullable=False, index=True),  # unix seconds at arrival
    Column("endpoint", String(64), nullable=False),
    Column("key_id", String(64)),
    Column("model", String(200)),
    Column("stream", Boolean, nullable=False, default=False),
    Column("status", Integer, nullable=False),
    Column("error_type", String(64)),
    Column("error_code", String(64)),
    Column("error", Text),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cost_usd", Float),
    Column("cost_basis", String(200)),
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
    Column("overhead_ms", Float),
    Column("router", String(64)),  # set when model was "auto"
    Column("prompt", Text),  # the request as router text (truncated), for feedback outcomes
)

#: Outcomes that arrive through the gateway (user feedback); same fields as outcomes.jsonl.
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", String(64), nullable=False, index=True),  # the request id
    Column("prompt", Text, nullable=False),
    Column("model", String(200), nullable=False),
    Column("score", Float, nullable=False),
    Column("cost_usd", Float),
    Column("latency_s", Float),
    Column("source", String(32), nullable=False),
    Column("router", String(64)),
    Column("comment", Text),
    Column("ts", Float, nullable=False),
)


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """An engine with the schema created; SQLite gets WAL so readers never block the writer."""
    engine = create_engine(normalise_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    metadata.create_all(engine)
    return engine
