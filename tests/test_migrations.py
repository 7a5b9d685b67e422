"""The Alembic migrations build exactly the schema of engine/models.py.

SQLite always; PostgreSQL too when TONGBAN_TEST_POSTGRES_URL is set (a throwaway database is
created through it and dropped afterwards).
"""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.engine import make_url

from engine import migrate
from engine.models import Base

PG_URL = os.environ.get("TONGBAN_TEST_POSTGRES_URL")


def _psycopg(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'migrations.sqlite'}"


@pytest.fixture
def postgres_url():
    if not PG_URL:
        pytest.skip("TONGBAN_TEST_POSTGRES_URL is not set")
    name = f"tb_mig_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_psycopg(PG_URL), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(_psycopg(PG_URL)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()


def _differences(url: str) -> list:
    eng = create_engine(url, poolclass=pool.NullPool)
    try:
        with eng.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(ctx, Base.metadata)
    finally:
        eng.dispose()


def _tables(url: str) -> set[str]:
    eng = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def _check_round_trip(url: str) -> None:
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == _head()
    assert _tables(url) == set(Base.metadata.tables) | {"alembic_version"}
    assert _differences(url) == []

    migrate.upgrade(url)  # idempotent at head
    assert migrate.current(url) == _head()

    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert _tables(url) <= {"alembic_version"}

    migrate.upgrade(url)
    assert _differences(url) == []


def test_sqlite_migrations_match_models(sqlite_url):
    _check_round_trip(sqlite_url)


@pytest.mark.postgres
def test_postgres_migrations_match_models(postgres_url):
    _check_round_trip(postgres_url)


def test_single_head():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_processes_starting_together_migrate_one_after_the_other(postgres_url):
    """gunicorn workers and `tongban worker`s all call upgrade() at start-up."""
    import threading

    errors = []

    def run():
        try:
            migrate.upgrade(postgres_url)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from alembic.script import ScriptDirectory

    assert errors == []
    head = ScriptDirectory.from_config(migrate.alembic_config(postgres_url)).get_current_head()
    assert migrate.current(postgres_url) == head
