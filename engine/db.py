"""Database engine and sessions.

The caller owns the transaction (``with sessions.begin() as s:``); engine functions take a
session and never commit. SQLite is the embedded default: WAL, ``BEGIN IMMEDIATE`` for every
transaction so that writers queue instead of failing half-way, foreign keys on.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DIR = Path(os.environ.get("TONGBAN_HOME", "var"))


def database_url() -> str:
    """``TONGBAN_DATABASE_URL`` or the SQLite file under ``$TONGBAN_HOME`` (default ``./var``)."""
    url = os.environ.get("TONGBAN_DATABASE_URL")
    if url:
        return url
    DEFAULT_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DIR / 'tongban.sqlite'}"


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = url or database_url()
    # the connection a transaction just returned serves the next one: a step, the pull applied right
    # after it and the next step share one warm connection (SQLite keeps its page cache, PostgreSQL
    # its backend and prepared statements) instead of rotating through the pool
    kwargs.setdefault("pool_use_lifo", True)
    parsed = make_url(url)
    if parsed.drivername.startswith("postgresql") and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)
        _tune_sqlite(engine)
        return engine
    return create_engine(url, **kwargs)


def _tune_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and would let two writers read the same
    # row version and then fail on the write lock; take the write lock at BEGIN instead.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # readers (inbox, show) must not queue behind writers; WAL lets them read a snapshot
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("tb_readonly") else "BEGIN IMMEDIATE")


def is_postgres(session_or_engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"


class ReadSession(Session):
    """A session for reading. A block that ends normally commits its (read-only) transaction rather
    than rolling it back: on PostgreSQL a ROLLBACK makes psycopg forget every statement it prepared
    on that connection, and readers run between every two actions, so without this no statement
    would ever stay prepared and each would be parsed and planned again on every call."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.in_transaction():
            try:
                self.commit()
            except Exception:  # noqa: BLE001 - nothing was written; close() rolls back
                pass
        super().__exit__(exc_type, exc, tb)


def make_sessionmaker(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    if not readonly:
        return sessionmaker(engine, expire_on_commit=False)
    options = {"tb_readonly": True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True  # BEGIN READ ONLY: committing it can never write
    return sessionmaker(engine.execution_options(**options), class_=ReadSession, expire_on_commit=False)
