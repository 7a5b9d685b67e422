"""Fixtures: an engine on a fresh database (SQLite by default, PostgreSQL when
TONGBAN_TEST_POSTGRES_URL is set, e.g. postgresql://postgres@127.0.0.1:5432/test), with a
manual clock, demo users, and helpers to deploy files."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine.api import Engine
from engine.clock import ManualClock

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "bpmn_examples"
PG_URL = os.environ.get("TONGBAN_TEST_POSTGRES_URL")

BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


def _pg_database():
    name = f"tb_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", admin, name


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tongban.sqlite'}"
        return
    url, admin, name = _pg_database()
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def engine(db_url, clock):
    eng = Engine(db_url, clock=clock, script_timeout=1.0)
    eng.upgrade()
    for name, groups in {
        "window_clerk": ["window"], "approver": ["approval"], "market_clerk": ["market"],
        "tobacco_clerk": ["tobacco"], "drug_clerk": ["drug"], "leader": ["leader"],
        "outsider": ["nobody"], "admin": ["window", "approval", "market", "tobacco", "drug", "leader"],
    }.items():
        eng.add_user(name, groups)
    yield eng
    eng.db.dispose()


def example_files(*names: str) -> dict[str, bytes]:
    return {str(EXAMPLES / n): (EXAMPLES / n).read_bytes() for n in names}


pytest_plugins = ["tests.web_support"]
