"""Schema migrations: apply the Alembic revisions in ``engine/migrations`` (no alembic.ini)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool

from . import sealing

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _normalize(url: str) -> str:
    # a bare postgresql:// would pick psycopg2; the project ships psycopg 3
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", _normalize(url).replace("%", "%%"))
    return cfg


# any fixed number: PostgreSQL advisory lock held while migrating
_MIGRATION_LOCK = 0x7B0A_0001


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (default: the newest).

    On PostgreSQL the migration holds an advisory lock, so several processes starting at once
    (gunicorn workers, `tongban worker`s) migrate one after the other instead of colliding;
    the later ones find the schema current and do nothing. SQLite serializes writers itself."""
    url = _normalize(url)
    if not url.startswith("postgresql"):
        command.upgrade(alembic_config(url), revision)
        if revision == "head":
            _seal(url)
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
            try:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
                if revision == "head":
                    sealing.seal_stored(conn)  # connector secrets stored before sealing
                    conn.commit()
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
                conn.commit()
    finally:
        engine.dispose()


def _seal(url: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            sealing.seal_stored(conn)  # connector secrets stored before sealing
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None when it was never migrated."""
    engine = create_engine(_normalize(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
