"""``tongban worker``: APScheduler triggers a claim of due jobs every second."""

from __future__ import annotations

import logging
import os
import socket

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

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


def make_scheduler(engine, *, background: bool = False, interval: float = 1.0, batch: int = 50):
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
    return sched
