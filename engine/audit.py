"""Hash-chained audit events. Each event's hash covers its content and the previous hash,
so any edit, insertion or deletion in the middle of the log is detected by ``verify``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from .models import AuditEvent

GENESIS = "0" * 64
_PG_LOCK = 7_041_998  # advisory lock id: one chain, appended in commit order


def _digest(prev: str, at, actor, action, instance_id, definition_id, task_ref, detail) -> str:
    body = json.dumps(
        [prev, at.isoformat(), actor, action, instance_id, definition_id, task_ref, detail],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def append(session: Session, clock, actor: str, action: str, *, instance_id=None, definition_id=None,
           task_ref=None, detail=None) -> AuditEvent:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
    detail = json.loads(json.dumps(detail or {}, default=str, ensure_ascii=False))
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    at = clock.now()
    event = AuditEvent(at=at, actor=actor, action=action, instance_id=instance_id,
                       definition_id=definition_id, task_ref=task_ref, detail=detail, prev_hash=prev,
                       hash=_digest(prev, at, actor, action, instance_id, definition_id, task_ref, detail))
    session.add(event)
    session.flush()
    return event


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
