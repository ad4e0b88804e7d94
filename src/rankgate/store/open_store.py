"""Open an existing store for the commands that read it (``rank``, ``route train``, ``judge``,
``logs export``): a SQLite path that does not exist is an error, not a new empty database, so
a typo in ``--store`` never leaves a file behind or ranks nothing in silence."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from rankgate.store.tables import make_engine, normalise_url


class StoreError(ValueError):
    """A store URL that cannot be opened; the message is one line and names it."""


def store_url(spec: str) -> str:
    """A SQLAlchemy URL for ``spec``: a URL as given, or a plain file path as SQLite."""
    if "://" not in spec:
        return f"sqlite:///{Path(spec).expanduser().resolve()}"
    return spec


def open_store(spec: str) -> Engine:
    """An engine on the existing store ``spec`` (URL or SQLite file path), schema up to date.
    ``StoreError`` for an unparsable URL or a SQLite file that does not exist."""
    url = store_url(spec)
    from rankgate.extras import check_urls

    check_urls(url, None)  # a PostgreSQL URL without psycopg names the extra to install
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise StoreError(f"{spec!r} is not a database URL (e.g. sqlite:///path/rankgate.db "
                         "or postgresql://user@host/db)") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if not db or db == ":memory:" or not Path(db).is_file():
            raise StoreError(f"no store at {db or spec!r}: the file does not exist (the "
                             "gateway's default store is rankgate.db in RANKGATE_HOME)")
    try:
        return make_engine(url)
    except Exception as e:  # a driver or connection error, named in one line
        raise StoreError(f"cannot open the store {parsed.render_as_string(hide_password=True)}"
                         f": {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                         ) from None
