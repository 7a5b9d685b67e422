"""Read sessions: a read ends with a commit of a read-only transaction, so PostgreSQL connections keep
the statements psycopg prepared on them (a ROLLBACK makes psycopg forget them all)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, text

from engine.models import HumanTask, User


def _ends(engine):
    seen = []
    event.listen(engine.db, "commit", lambda conn: seen.append("commit"))
    event.listen(engine.db, "rollback", lambda conn: seen.append("rollback"))
    return seen


def test_a_read_that_ends_normally_commits_and_one_that_fails_rolls_back(engine):
    seen = _ends(engine)
    with engine.readers() as s:
        assert s.scalar(select(func.count()).select_from(User)) >= 1
    assert seen == ["commit"]
    seen.clear()
    with pytest.raises(ZeroDivisionError), engine.readers() as s:
        s.scalar(select(func.count()).select_from(User))
        1 / 0  # noqa: B018 - the block fails after reading
    assert seen == ["rollback"]


def test_a_read_session_never_writes(engine):
    """Whatever a read block adds is never stored: PostgreSQL refuses it (READ ONLY), and on SQLite
    nothing is flushed by a session that only reads."""
    with engine.readers() as s:
        before = s.scalar(select(func.count()).select_from(User))
    if engine.db.dialect.name == "postgresql":
        with pytest.raises(Exception, match="read-only"), engine.readers() as s:
            s.execute(text("INSERT INTO tb_group (name, display_name) VALUES ('x', 'x')"))
    with engine.readers() as s:
        assert s.scalar(select(func.count()).select_from(User)) == before


def test_statements_stay_prepared_across_reads_and_actions_on_postgresql(engine):
    if engine.db.dialect.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    engine.deploy({"a.bpmn": b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
  id="d" targetNamespace="urn:t"><bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s"/>
  <bpmn:userTask id="u" tb:candidateGroups="window"/><bpmn:endEvent id="e"/>
  <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="u"/><bpmn:sequenceFlow id="f2" sourceRef="u" targetRef="e"/>
</bpmn:process></bpmn:definitions>"""})
    for _ in range(8):  # psycopg prepares a statement at its fifth run on a connection
        iid = engine.start("p", actor="window_clerk")["instance_id"]
        [task] = engine.tasks(instance_id=iid)
        engine.complete(task["id"], "window_clerk", {})
    with engine.readers() as s:
        prepared = s.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
        assert s.scalar(select(func.count()).select_from(HumanTask)) == 8
    assert prepared >= 5  # the task lookup, the user's groups, the instance row, the audit tail, ...
