"""Hash-chained audit events. Each event's hash covers its content and the previous hash,
so any edit, insertion or deletion in the middle of the log is detected by ``verify``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from .models import AuditEvent
from .rawsql import Prepared

GENESIS = "0" * 64
LOCK_KEY = _PG_LOCK = 7_041_998  # advisory lock id: one chain, appended in commit order


def _digest(prev: str, at, actor, action, instance_id, definition_id, task_ref, detail) -> str:
    body = json.dumps(
        [prev, at.isoformat(), actor, action, instance_id, definition_id, task_ref, detail],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def as_stored(detail) -> dict:
    """An event's detail as the JSON column gives it back (what its hash covers)."""
    return json.loads(json.dumps(detail or {}, default=str, ensure_ascii=False))


_HEAD = '["' + GENESIS + '"'


def digest_rest(at, actor, action, instance_id, definition_id, task_ref, detail) -> str:
    """What the hashed text holds after the previous hash: an event's hash is
    sha256('["' + prev + '"' + rest), so a statement that reads the chain's tail itself can hash the
    event in the database (``SQL_DIGEST``); ``verify`` checks it like any other."""
    body = json.dumps([GENESIS, at.isoformat(), actor, action, instance_id, definition_id, task_ref, detail],
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return body[len(_HEAD):]


# PostgreSQL: the hash of an event whose previous hash is the column or expression ``prev`` and whose
# ``digest_rest`` is the parameter ``rest`` (psycopg style)
SQL_DIGEST = """encode(sha256(convert_to('["' || {prev} || '"' || %(rest)s, 'UTF8')), 'hex')"""


_T = AuditEvent.__table__
_LAST = select(_T.c.hash).order_by(_T.c.id.desc()).limit(1)
_INSERT = _T.insert()
_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_FIELDS = ["at", "actor", "action", "instance_id", "definition_id", "task_ref", "detail", "prev_hash", "hash"]
_RAW_LAST, _RAW_INSERT = Prepared(_LAST), Prepared(_INSERT, _FIELDS)


def append(db: Session | Connection, clock, actor: str, action: str, *, instance_id=None, definition_id=None,
           task_ref=None, detail=None) -> str:
    """Append one event inside the caller's transaction (a Session or a Core Connection); returns its hash.

    The first event of a transaction reads the chain's tail under the writer lock (PostgreSQL: an
    advisory lock held to commit; SQLite: BEGIN IMMEDIATE holds the write lock). Later events of the
    same transaction link to the hash the transaction just wrote; a savepoint is a transaction of its
    own here, so an event rolled back with its savepoint is never linked to."""
    conn = db if isinstance(db, Connection) else db.connection()
    # SQLite: the tail read and the insert on the DBAPI cursor of the transaction's connection (see
    # rawsql), for a session too: the table has no foreign keys, so nothing the session has not
    # flushed yet can make the insert fail, and every event is written here, in order
    raw = conn.dialect.name == "sqlite"
    # the tail this transaction wrote last, kept on the connection (a session's events and events
    # written on its connection see the same one) and valid only in the same (nested) transaction
    txn = conn.get_nested_transaction() or conn.get_transaction()
    cached = conn.info.get("tb_audit_tail")
    if cached is not None and cached[0] is txn:
        prev = cached[1]
    else:
        if conn.dialect.name == "postgresql":
            db.execute(_LOCK, {"k": _PG_LOCK})
        prev = (_RAW_LAST.scalar(conn) if raw else db.scalar(_LAST)) or GENESIS
    detail = as_stored(detail)
    at = clock.now()
    digest = _digest(prev, at, actor, action, instance_id, definition_id, task_ref, detail)
    values = {"at": at, "actor": actor, "action": action, "instance_id": instance_id,
              "definition_id": definition_id, "task_ref": task_ref, "detail": detail, "prev_hash": prev, "hash": digest}
    if raw:
        _RAW_INSERT.execute(conn, values)
    else:
        db.execute(_INSERT, values)
    conn.info["tb_audit_tail"] = (txn, digest)
    return digest


@dataclass
class Verification:
    ok: bool
    events: int
    first_bad_id: int | None = None
    reason: str | None = None

    def as_dict(self):
        return {"ok": self.ok, "events": self.events, "first_bad_id": self.first_bad_id, "reason": self.reason}


def verify(session: Session) -> Verification:
    prev = GENESIS
    n = 0
    for ev in session.scalars(select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)):
        n += 1
        if ev.prev_hash != prev:
            return Verification(False, n, ev.id, "the link to the previous event is broken (an event was removed or inserted)")
        expect = _digest(prev, ev.at, ev.actor, ev.action, ev.instance_id, ev.definition_id, ev.task_ref, ev.detail)
        if expect != ev.hash:
            return Verification(False, n, ev.id, "the event's content does not match its hash (it was edited)")
        prev = ev.hash
    return Verification(True, n)


def trail(session: Session, instance_id: int) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.id)))
