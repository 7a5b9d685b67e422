"""The job table: claiming due rows once across any number of workers.

PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED``; SQLite: a conditional ``UPDATE … WHERE
locked_by IS NULL`` (writers are serialized there). A claim is a lease: a worker that dies
leaves its rows to be claimed again when the lease runs out. The effect of a job and its
``done`` mark commit in one transaction, so a job's effect happens once.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from .errors import EngineError, ScriptError
from .models import Job

log = logging.getLogger("tongban.jobs")
# how long a claim holds; a killed worker's jobs are claimed again after it (TONGBAN_JOB_LEASE seconds)
LEASE = timedelta(seconds=float(os.environ.get("TONGBAN_JOB_LEASE", "60")))


def claim(session: Session, clock, worker: str, limit: int = 50) -> list[int]:
    now = clock.now()
    due = (Job.status == "pending") & (Job.due_at <= now) & or_(Job.locked_until.is_(None), Job.locked_until < now)
    if session.get_bind().dialect.name == "postgresql":
        ids = list(session.scalars(select(Job.id).where(due).order_by(Job.due_at).limit(limit)
                                   .with_for_update(skip_locked=True)))
        if ids:
            session.execute(update(Job).where(Job.id.in_(ids))
                            .values(locked_by=worker, locked_until=now + LEASE))
        return ids
    claimed = []
    for job_id in session.scalars(select(Job.id).where(due).order_by(Job.due_at).limit(limit)):
        res = session.execute(update(Job).where(Job.id == job_id, due).values(locked_by=worker, locked_until=now + LEASE))
        if res.rowcount == 1:
            claimed.append(job_id)
    return claimed


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 5 * 2 ** max(0, attempts - 1)))


def run_claimed(sessions, engine, job_id: int, worker: str) -> str:
    """Run one claimed job in its own transaction; returns done | retry | incident | skipped."""
    try:
        with sessions.begin() as s:
            job = s.get(Job, job_id, with_for_update=s.get_bind().dialect.name == "postgresql")
            if job is None or job.status != "pending" or job.locked_by != worker:
                return "skipped"
            handler = engine.job_handlers.get(job.kind)
            if handler is None:
                raise EngineError(f"no handler for job kind '{job.kind}'")
            handler(s, job)
            job.status = "done"
            job.fired_at = engine.clock.now()
            job.attempts += 1
            job.locked_by = None
            job.locked_until = None
        return "done"
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job, the worker lives on
        with sessions.begin() as s:
            job = s.get(Job, job_id)
            if job is None:
                return "skipped"
            job.attempts += 1
            job.last_error = str(exc)[:2000]
            job.locked_by = None
            job.locked_until = None
            retryable = getattr(exc, "retryable", not isinstance(exc, ScriptError))
            if retryable and job.attempts < job.max_attempts:
                job.due_at = engine.clock.now() + backoff(job.attempts)
                log.warning("job %s failed (attempt %s), retrying: %s", job_id, job.attempts, exc)
                return "retry"
            job.status = "incident"
            err = exc if isinstance(exc, EngineError) else EngineError(str(exc))
            engine.runtime.record_incident(s, job.instance_id, err, kind=f"job:{job.kind}", job_id=job.id)
            log.error("job %s became an incident: %s", job_id, exc)
            return "incident"
