"""``tongban worker``: APScheduler triggers a claim of due jobs every second, and, when
``TONGBAN_PULL_LOG_RETENTION_DAYS`` is set, a purge of the pull log once a day."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from engine.pulllog import retention_days

log = logging.getLogger("tongban.worker")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def warn_about_calendar(engine) -> list[str]:
    """Log loudly when this or next year has no published holiday schedule (deadlines provisional)."""
    try:
        warnings = engine.calendar_status()["warnings"]
    except Exception:  # noqa: BLE001 - a start-up check must not stop the worker
        log.exception("could not check the working-day calendar")
        return []
    for w in warnings:
        log.warning("CALENDAR: %s", w)
    return warnings


def purge_pull_log(engine, days: int) -> dict | None:
    """One retention purge of the pull log as "system", audited when it deleted something (every
    worker runs it daily; the first of the day deletes, the others find nothing); a failure is
    logged, never raised."""
    try:
        result = engine.purge_pull_log(days, "system", audit_nothing=False)
    except Exception:  # noqa: BLE001 - a failed purge must not stop the worker; it runs again tomorrow
        log.exception("pull log purge failed")
        return None
    log.info("pull log: deleted %s entries from before %s (kept %s days)", result["deleted"], result["before"], days)
    return result


def make_scheduler(engine, *, background: bool = False, interval: float = 1.0, batch: int = 50):
    retention = retention_days()  # an invalid setting stops the start with its one-line message
    wid = worker_id()
    warn_about_calendar(engine)

    def tick():
        try:
            # keep claiming while a full batch came back: a backlog drains without waiting a tick
            while True:
                outcome = engine.run_due_jobs(wid, batch)
                if outcome:
                    log.info("jobs: %s", outcome)
                if sum(outcome.values()) < batch:
                    break
        except Exception:  # noqa: BLE001 - a failed tick must not stop the worker
            log.exception("worker tick failed")

    sched = (BackgroundScheduler if background else BlockingScheduler)(timezone="UTC")
    sched.add_job(tick, "interval", seconds=interval, max_instances=1, coalesce=True, id="claim-jobs")
    if retention is not None:
        sched.add_job(purge_pull_log, "interval", args=(engine, retention), hours=24, max_instances=1,
                      coalesce=True, id="purge-pull-log", next_run_time=datetime.now(UTC) + timedelta(minutes=1))
    return sched
