"""engine/rawsql.py: a statement run on the DBAPI cursor stores exactly what SQLAlchemy's own
execution stores (datetimes, JSON, NULLs), and reads back equal through the ORM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, select, text, update

from engine.models import PullLog
from engine.rawsql import Prepared

T = PullLog.__table__
KEYS = [c.key for c in T.columns if c.key != "id"]


def row(n: int) -> dict:
    return {"at": datetime(2026, 11, 27, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8))) + timedelta(minutes=n),
            "kind": "pull", "actor": "system for 市场监管", "instance_id": n, "human_task_id": None, "task_ref": "t",
            "spiff_task_id": None, "job_id": 7, "connector": "exchange", "operation": "enterprise",
            "fields": ["enterprise_name", "名称"], "purpose": "核验", "basis": "依据", "source": "", "request_id": None,
            "duration_ms": 3, "outcome": "ok", "error": None, "result_hash": "ab" * 32}


@pytest.fixture
def sqlite_engine(tmp_path):
    from engine.api import Engine

    eng = Engine(f"sqlite:///{tmp_path / 'raw.sqlite'}")
    eng.upgrade()
    yield eng
    eng.db.dispose()


def test_the_stored_values_are_what_sqlalchemy_stores(sqlite_engine):
    with sqlite_engine.db.begin() as c:
        c.execute(T.insert(), [row(1)])
        assert Prepared(T.insert(), KEYS).execute(c, [row(2), row(3)]) == 2
    with sqlite_engine.db.connect() as c:
        stored = c.execute(text("SELECT at, fields, human_task_id FROM tb_pull_log ORDER BY id")).all()
    by_sqlalchemy, *by_raw = stored
    shift = [datetime.fromisoformat(r[0]) - datetime.fromisoformat(by_sqlalchemy[0]) for r in by_raw]
    assert shift == [timedelta(minutes=1), timedelta(minutes=2)]  # same text format, UTC, no offset
    assert {r[1] for r in stored} == {by_sqlalchemy[1]} and {r[2] for r in stored} == {None}
    with sqlite_engine.readers() as s:
        logs = s.scalars(select(PullLog).order_by(PullLog.id)).all()
    assert [p.at for p in logs] == [row(n)["at"].astimezone(UTC) for n in (1, 2, 3)]
    assert all(p.fields == ["enterprise_name", "名称"] for p in logs)


def test_updates_report_their_rowcount_and_scalars_read(sqlite_engine):
    with sqlite_engine.db.begin() as c:
        Prepared(T.insert(), KEYS).execute(c, row(1))
        mark = Prepared(update(T).where(T.c.id == bindparam("b_id"), T.c.outcome == "ok").values(outcome="error"))
        assert mark.execute(c, {"b_id": 1}) == 1
        assert mark.execute(c, {"b_id": 1}) == 0  # the condition no longer holds
        assert Prepared(select(T.c.outcome).where(T.c.id == bindparam("b_id"))).scalar(c, {"b_id": 1}) == "error"
        assert Prepared(select(T.c.outcome).where(T.c.id == bindparam("b_id"))).scalar(c, {"b_id": 99}) is None


def test_a_missing_parameter_is_an_error_not_a_null(sqlite_engine):
    with sqlite_engine.db.begin() as c:
        incomplete = {k: v for k, v in row(1).items() if k != "actor"}
        with pytest.raises(Exception, match="actor"):
            Prepared(T.insert(), KEYS).execute(c, incomplete)
