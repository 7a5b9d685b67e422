"""The audit chain as transactions append to it: several events in one transaction, events in a
savepoint that is rolled back, events written on a Core connection (the pull apply path), and
writers in two threads at once. Each time ``verify`` must hold and every event must link to the
event before it in id order."""

from __future__ import annotations

import threading

from sqlalchemy import select

from engine import audit
from engine.models import AuditEvent


def _links(engine) -> list[tuple[str, str]]:
    with engine.readers() as s:
        return [(e.prev_hash, e.hash) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def _assert_chained(engine, added: int, before: int):
    """``added`` events since ``before`` events, and the whole chain links up."""
    links = _links(engine)
    assert len(links) == before + added
    assert links[0][0] == audit.GENESIS
    for (_, before), (prev, _) in zip(links, links[1:], strict=False):
        assert prev == before
    assert engine.verify_audit().ok


def test_events_of_one_transaction_link_to_each_other(engine):
    before = len(_links(engine))  # the fixture\'s users were audited
    with engine.sessions.begin() as s:
        hashes = [audit.append(s, engine.clock, "tester", f"step{i}", detail={"i": i}) for i in range(4)]
    assert len(set(hashes)) == 4
    _assert_chained(engine, 4, before)


def test_an_event_rolled_back_with_its_savepoint_is_never_linked_to(engine):
    before = len(_links(engine))  # the fixture\'s users were audited
    with engine.sessions.begin() as s:
        audit.append(s, engine.clock, "tester", "before")
        sp = s.begin_nested()
        audit.append(s, engine.clock, "tester", "inside, rolled back")
        sp.rollback()
        audit.append(s, engine.clock, "tester", "after the rollback")
        with s.begin_nested():
            audit.append(s, engine.clock, "tester", "inside, kept")
        audit.append(s, engine.clock, "tester", "after the savepoint")
    with engine.readers() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.actor == "tester")
                                 .order_by(AuditEvent.id)))
    assert actions == ["before", "after the rollback", "inside, kept", "after the savepoint"]
    _assert_chained(engine, 4, before)


def test_session_and_core_connection_events_share_one_chain(engine):
    before = len(_links(engine))  # the fixture\'s users were audited
    with engine.sessions.begin() as s:
        audit.append(s, engine.clock, "tester", "session")
    with engine.db.begin() as c:
        audit.append(c, engine.clock, "tester", "core 1")
        audit.append(c, engine.clock, "tester", "core 2", detail={"名称": "中文"})
    with engine.sessions.begin() as s:
        audit.append(s, engine.clock, "tester", "session again")
    _assert_chained(engine, 4, before)


def test_a_rolled_back_transaction_leaves_no_trace_in_the_chain(engine):
    before = len(_links(engine))  # the fixture\'s users were audited
    try:
        with engine.db.begin() as c:
            audit.append(c, engine.clock, "tester", "lost")
            raise RuntimeError("the step failed")
    except RuntimeError:
        pass
    with engine.sessions.begin() as s:
        audit.append(s, engine.clock, "tester", "kept")
    _assert_chained(engine, 1, before)


def test_concurrent_writers_keep_one_chain(engine):
    before = len(_links(engine))  # the fixture\'s users were audited
    errors = []

    def writer(n):
        try:
            for i in range(15):
                if i % 2:
                    with engine.db.begin() as c:
                        audit.append(c, engine.clock, f"w{n}", "core", detail={"i": i})
                        audit.append(c, engine.clock, f"w{n}", "core+", detail={"i": i})
                else:
                    with engine.sessions.begin() as s:
                        audit.append(s, engine.clock, f"w{n}", "session", detail={"i": i})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _assert_chained(engine, 3 * (8 + 7 * 2), before)


def test_events_on_a_sessions_own_connection_join_its_chain(engine):
    before = len(_links(engine))
    with engine.sessions.begin() as s:
        audit.append(s, engine.clock, "tester", "session")
        audit.append(s.connection(), engine.clock, "tester", "its connection")
        audit.append(s, engine.clock, "tester", "session again")
    _assert_chained(engine, 3, before)
