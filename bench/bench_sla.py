"""SLA deadlines on PostgreSQL with 2 `tongban worker` processes.

    TONGBAN_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.bench_sla

100,000 pending deadlines (in the future) stay in tb_job the whole run. Then:
1. burst: BURST deadlines fall due at once; time until the 2 workers have fired them all;
2. steady state: deadlines fall due at RATE per second for STEADY seconds; firing lag (due → fired)
   median and p99 (the worker polls once a second, as `tongban worker` does by default);
3. duplicates: escalation audit events per job (must be 1) and cards per point;
4. claim rate (claim one due job and roll back, one transaction each) as a ratio to PostgreSQL's own
   single-row UPDATE rate (one autocommit UPDATE by primary key each), both measured in this run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import jobs  # noqa: E402
from engine.api import Engine  # noqa: E402
from engine.models import AuditEvent, Instance, Job, SlaClock, SupervisionCard  # noqa: E402
from tests.sla_support import ONE_POINT_BPMN  # noqa: E402

PENDING = int(os.environ.get("BENCH_PENDING", 100_000))
BURST = int(os.environ.get("BENCH_BURST", 5_000))
RATE = float(os.environ.get("BENCH_RATE", 20))
STEADY = float(os.environ.get("BENCH_STEADY", 30))


def _db():
    base = os.environ.get("TONGBAN_BENCH_POSTGRES_URL") or os.environ.get("TONGBAN_TEST_POSTGRES_URL")
    if not base:
        sys.exit("set TONGBAN_BENCH_POSTGRES_URL=postgresql://USER@HOST:PORT/DB")
    name = f"tb_bench_sla_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return base.rsplit("/", 1)[0] + "/" + name, admin, name


def _add_points(eng, instance_id, dues, tag):
    """One instance-scope clock and one sla job per due time (bulk insert)."""
    now = datetime.now(UTC)
    chain = [{"at": "due", "actions": ["notify"], "target": None}]
    with eng.sessions.begin() as s:
        first = s.scalar(select(func.coalesce(func.max(SlaClock.id), 0))) + 1
        clocks = [{"id": first + i, "instance_id": instance_id, "scope": "instance", "process_key": "bench",
                   "name": "bench", "region": "CN", "unit": "fixed", "approver_group": "leader", "started_at": now,
                   "start_day": now.date(), "base_due_at": d, "due_at": d - timedelta(seconds=1),
                   "paused_units": 0.0, "extended": 0.0, "epoch": 0, "provisional": False, "status": "running",
                   "chain": chain} for i, d in enumerate(dues)]
        for k in range(0, len(clocks), 5000):
            s.execute(insert(SlaClock), clocks[k:k + 5000])
        rows = [{"kind": "sla", "status": "pending", "due_at": d, "instance_id": instance_id,
                 "task_ref": f"clock:{first + i}", "payload": {"clock_id": first + i, "point": "due", "epoch": 0},
                 "attempts": 0, "max_attempts": 5, "created_at": now, "dedupe_key": f"sla:{first + i}:0:due:{tag}"}
                for i, d in enumerate(dues)]
        for k in range(0, len(rows), 5000):
            s.execute(insert(Job), rows[k:k + 5000])


def _workers(url, n=2):
    env = {**os.environ, "TONGBAN_DATABASE_URL": url}
    return [subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]


def _done(eng, tag):
    with eng.readers() as s:
        return s.scalar(select(func.count()).select_from(Job).where(Job.status == "done",
                                                                    Job.dedupe_key.like(f"%:{tag}")))


def _update_rate(eng, seconds=3.0):
    with eng.db.connect() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS bench_counter (id int primary key, n bigint)"))
        c.execute(text("INSERT INTO bench_counter SELECT g, 0 FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING"))
        c.commit()
    raw = eng.db.raw_connection()
    raw.autocommit = True
    cur = raw.cursor()
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        cur.execute("UPDATE bench_counter SET n = n + 1 WHERE id = %s", (n % 1000 + 1,))
        n += 1
    raw.close()
    return n / seconds


def _claim_rate(eng, seconds=3.0):
    """Claim one due job per transaction and roll back (the row stays claimable)."""
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        with eng.sessions() as s:
            assert jobs.claim(s, eng.clock, "bench", 1)
            s.rollback()
        n += 1
    return n / seconds


def main():
    url, admin, name = _db()
    procs = []
    try:
        eng = Engine(url)
        eng.upgrade()
        eng.add_user("window_clerk", ["window"])
        eng.deploy({"one.bpmn": ONE_POINT_BPMN.encode()})
        iid = eng.start("sla_one", {}, actor="window_clerk")["instance_id"]
        far = datetime.now(UTC) + timedelta(days=30)
        t0 = time.perf_counter()
        _add_points(eng, iid, [far + timedelta(seconds=i) for i in range(PENDING)], "pending")
        print(f"inserted {PENDING} pending deadlines in {time.perf_counter() - t0:.1f}s")
        # the rates, with 100k pending rows and a due backlog present
        _add_points(eng, iid, [datetime.now(UTC) - timedelta(hours=1)] * 200, "probe")
        upd = _update_rate(eng)
        clm = _claim_rate(eng)
        print(f"PostgreSQL single-row UPDATE: {upd:,.0f}/s; job claim (1 row, own transaction): {clm:,.0f}/s; "
              f"ratio {clm / upd:.2f}")
        # burst
        _add_points(eng, iid, [datetime.now(UTC) - timedelta(seconds=1)] * BURST, "burst")
        procs = _workers(url)
        t0 = time.perf_counter()
        while _done(eng, "burst") < BURST:
            time.sleep(0.1)
        burst_s = time.perf_counter() - t0
        print(f"burst: {BURST} deadlines due at once fired by 2 workers in {burst_s:.1f}s "
              f"({BURST / burst_s:,.0f}/s, worker start-up included)")
        # steady state
        start = datetime.now(UTC) + timedelta(seconds=3)
        n = int(RATE * STEADY)
        _add_points(eng, iid, [start + timedelta(seconds=i / RATE) for i in range(n)], "steady")
        deadline = time.perf_counter() + STEADY + 60
        while _done(eng, "steady") < n and time.perf_counter() < deadline:
            time.sleep(0.5)
        with eng.readers() as s:
            lags = sorted((f - d).total_seconds() for f, d in s.execute(
                select(Job.fired_at, Job.due_at).where(Job.dedupe_key.like("%:steady"), Job.status == "done")))
            per_job = Counter(d.get("job_id") for d in s.scalars(
                select(AuditEvent.detail).where(AuditEvent.action == "sla.escalation")))
            dup = sum(1 for n in per_job.values() if n > 1)
            cards = s.scalar(select(func.count()).select_from(SupervisionCard))
            fired = s.scalar(select(func.count()).select_from(Job).where(Job.kind == "sla", Job.status == "done"))
            still = s.scalar(select(func.count()).select_from(Job).where(Job.dedupe_key.like("%:pending"),
                                                                        Job.status == "pending"))
            assert s.get(Instance, iid) is not None
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        print(f"steady: {len(lags)}/{n} deadlines at {RATE:g}/s: lag median {statistics.median(lags):.2f}s, "
              f"p99 {p99:.2f}s")
        print(f"duplicates: {dup} (jobs with more than one escalation event); cards {cards} = fired points {fired}; "
              f"{still} of {PENDING} future deadlines still pending")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
