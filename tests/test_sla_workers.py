"""Three `tongban worker` processes on PostgreSQL, one killed with SIGKILL mid-run: every SLA
point fires exactly once (cards, notices, audit events, mails), none is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.models import AuditEvent, Job, Notice, SupervisionCard
from tests.conftest import PG_URL
from tests.sla_support import ONE_POINT_BPMN, SmtpSink

ROOT = Path(__file__).resolve().parent.parent
N = 300

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _worker(db_url, sink_port, env_extra=None):
    env = {**os.environ, "TONGBAN_DATABASE_URL": db_url, "TONGBAN_JOB_LEASE": "5",
           "TONGBAN_SMTP_HOST": "127.0.0.1", "TONGBAN_SMTP_PORT": str(sink_port), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "cli.main", "worker", "--interval", "0.2"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _count(engine, q):
    with engine.sessions() as s:
        return s.scalar(q)


@pytest.mark.skipif(not PG_URL, reason="TONGBAN_TEST_POSTGRES_URL is not set")
def test_three_workers_one_killed_every_point_fires_exactly_once(engine, db_url, clock):
    if not db_url.startswith("postgresql"):
        pytest.skip("the worker kill test runs on PostgreSQL")
    engine.deploy({"one.bpmn": ONE_POINT_BPMN.encode()})
    engine.set_notify_email("window_clerk", "clerk@example.gov.cn")
    # started on the test clock (5 Jan 2026): the 1-hour deadlines lie in the past for the workers,
    # which read the system clock
    for _ in range(N):
        engine.start("sla_one", {}, actor="window_clerk")
    assert _count(engine, select(func.count()).select_from(Job).where(Job.kind == "sla")) == N
    sink = SmtpSink()
    workers = [_worker(db_url, sink.port) for _ in range(3)]
    try:
        fired = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "sla.escalation")
        deadline = time.monotonic() + 120
        while _count(engine, fired) < N // 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = workers[0]
        os.kill(victim.pid, signal.SIGKILL)  # mid-run: it may hold a claimed batch
        victim.wait()
        done_at_kill = _count(engine, fired)
        assert done_at_kill < N, "the run finished before the kill; raise N"
        workers[0] = _worker(db_url, sink.port)  # restarted
        deadline = time.monotonic() + 180
        pending = select(func.count()).select_from(Job).where(Job.status.in_(("pending",)))
        while (_count(engine, pending) or _count(engine, fired) < N) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.kill()
        sink.close()
    with engine.sessions() as s:
        jobs = {st: n for st, n in s.execute(select(Job.status, func.count()).group_by(Job.status))}
        assert jobs == {"done": 2 * N}, jobs  # N sla points and N mails, no incident, nothing left
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "sla.escalation")) == N
        cards = list(s.scalars(select(SupervisionCard.human_task_id)))
        assert len(cards) == N and len(set(cards)) == N
        notices = list(s.scalars(select(Notice.human_task_id).where(Notice.user_name == "window_clerk")))
        assert len(notices) == N and len(set(notices)) == N
        ids = {n for n in s.scalars(select(Notice.id))}
    got = sink.message_ids()
    assert {int(m.split("-")[2].split("@")[0]) for m in got} == ids  # every mail, none missing
    # a mail may be sent twice only if a worker died between the SMTP send and its commit
    assert len(got) - len(set(got)) <= 50
    assert engine.verify_audit().ok
