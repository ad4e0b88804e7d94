"""The database schema, as SQLAlchemy Core tables: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Index,
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
    # JSON of the routing decision when model was "auto": chosen model, the knob, and each
    # candidate's predicted quality (and lower bound) and estimated cost, as decided
    Column("decision", Text),
    Column("cache", String(16)),  # "exact" / "semantic" when answered from the cache
    Column("fallback_from", String(200)),  # the model asked for, when another one answered
    Column("attempts", Integer),  # backend calls made, retries and fallbacks included
    Index("ix_request_log_key_ts", "key_id", "ts"),  # a key's spend this period
    # the dashboard (gateway/ui): spend and routed mix over a time range read this index
    # alone, never the table; the request search filters by model or status, newest first
    Index("ix_request_log_ts_cover", "ts", "cost_usd", "router", "model", "status", "cache"),
    Index("ix_request_log_model_ts", "model", "ts"),
    Index("ix_request_log_status_ts", "status", "ts"),
)

#: Spend and requests per UTC hour (``hour``: its start, unix seconds), kept equal to the
#: request log by a database trigger: see ``store/spend_rollup.py``.
spend_hourly = Table(
    "spend_hourly",
    metadata,
    Column("hour", Float, primary_key=True),
    Column("cost_usd", Float, nullable=False),
    Column("requests", Integer, nullable=False),
)

#: Outcomes in the store (user feedback today; shadow and judge answers next): every field of
#: ``rankgate.outcomes.Outcome``, read and written only through ``store/outcome_store.py``.
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
    Column("ts", Float, nullable=False, index=True),  # unix seconds when it was stored
    Column("ttft_s", Float),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("response", Text),
    Column("category", Text),
    Column("scorer", Text),
    Column("explanation", Text),
    Column("error", Text),
    Column("logprob_mean", Float),
    Column("confidence", Float),
    Column("extra", Text),  # JSON object: the rest of ``Outcome.extra``; NULL when empty
)


#: What was asked and answered, when bodies are logged (``serve --log-bodies``): one row per
#: live answer and one per shadow answer of the same request (``role``), redacted and capped.
#: Read and written only through ``store/exchange_store.py``.
exchanges = Table(
    "exchanges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("ts", Float, nullable=False, index=True),  # unix seconds of the live request
    Column("role", String(16), nullable=False),  # "live" or "shadow"
    Column("key_id", String(64)),
    Column("model", String(200), nullable=False),
    Column("router", String(64)),  # the router that chose the live model, if any
    Column("messages", Text, nullable=False),  # JSON: the request's messages (redacted)
    Column("prompt", Text, nullable=False),  # messages.prompt_text of them (redacted)
    Column("answer", Text),  # the answer's text; NULL when the call failed
    Column("truncated", Boolean, nullable=False, default=False),  # a size cap cut something
    Column("cost_usd", Float),
    Column("latency_s", Float),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("finish_reason", String(32)),
    Column("error", Text),
    Index("ix_exchanges_model_ts", "model", "ts"),
)


#: Pairwise verdicts for the one Bradley–Terry fit: ``outcome`` 1 when ``model_a`` won, 0 when
#: ``model_b`` won, 0.5 for a tie. ``source`` is ``judge`` (``rankgate judge --store``) or
#: ``import``; feedback votes are derived from feedback outcomes when read, never stored.
#: ``ts`` is when the vote counts for ``since``: the judged request's time. Read and written
#: only through ``store/vote_store.py``.
votes = Table(
    "votes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", String(64), nullable=False, index=True),  # the request (or item) id
    Column("model_a", String(200), nullable=False),
    Column("model_b", String(200), nullable=False),
    Column("outcome", Float, nullable=False),
    Column("source", String(32), nullable=False),
    Column("judge", String(200)),  # the judge model, for source "judge"
    Column("first", String(1)),  # the judge's verdict with model_a shown first: A, B or C
    Column("second", String(1)),  # ... with model_b shown first, mapped back to a/b labels
    Column("ts", Float, nullable=False, index=True),
)

#: Judge verdicts that could not be parsed (``rankgate judge --store``): recorded so that they
#: are counted and reported, and never turned into a score or a vote; a re-run skips them.
judge_errors = Table(
    "judge_errors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", String(64), nullable=False, index=True),
    Column("mode", String(16), nullable=False),  # "pairwise" or "rubric"
    Column("model_a", String(200), nullable=False),
    Column("model_b", String(200)),  # NULL for a rubric grade
    Column("judge", String(200), nullable=False),
    Column("error", Text, nullable=False),
    Column("ts", Float, nullable=False),  # the judged request's time
)


#: Virtual API keys (gateway/auth.py). Only the sha256 of a secret is stored; ``prefix`` is a
#: short, non-secret part of it that people use to tell keys apart. A key is never deleted,
#: only revoked, so request-log rows keep pointing at a known key id.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("models", Text),  # JSON list of allowed model ids; NULL = all models
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget_usd", Float),
    Column("budget_period", String(16), nullable=False, default="month"),
    Column("routing", Text),  # JSON object: the default routing knob
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("log_bodies", Boolean),  # store this key's request bodies; NULL = server default
)


#: Dashboard sessions ended by "log out" before their cookie expired (``gateway/ui``): the
#: cookie is signed, not stored, so a copy of it stays valid unless its id is listed here.
#: Shared by every gateway on the store; rows are pruned once the cookie would have expired.
#: Read and written only through ``store/ui_sessions.py``.
ui_revoked_sessions = Table(
    "ui_revoked_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
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
    _add_missing_columns(engine)
    from rankgate.store import spend_rollup

    spend_rollup.install(engine)
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Columns added to a table after a database was created get added to it (nullable, no
    data rewrite), so a request log from an older rankgate keeps working."""
    from sqlalchemy import inspect, text

    insp = inspect(engine)
    for table in metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have and col.nullable and not col.primary_key:
                ddl = col.type.compile(dialect=engine.dialect)
                with engine.begin() as conn:
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl}'))
        for index in table.indexes:
            index.create(engine, checkfirst=True)
