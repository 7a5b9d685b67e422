"""The web product under load: gunicorn (2 workers) on PostgreSQL with 100,000 open tasks.

    .venv/bin/python bench/bench_web.py [--tasks 100000] [--groups 200] [--runs 3] [--threads 1] [--json]

1. Creates a throwaway PostgreSQL database ``tb_bench_web_<random>`` (``--pg-url``, default
   postgresql://postgres@127.0.0.1:5432/), applies the migrations, deploys a one-task process
   and bulk-inserts ``--tasks`` open tasks spread over ``--groups`` groups with SQLAlchemy Core
   (instances, human tasks and candidate rows that the inbox reads; about 10 % claimed by other
   clerks, a few held by the measured clerk, due times spread over the next 30 days).
2. Starts ``gunicorn -w 2 'web:create_app()'`` on that database.
3. Latency, for a clerk in 3 groups (about 1,500 visible unclaimed tasks): the inbox page ``/``
   (session cookie) and ``GET /api/v1/tasks`` (bearer token), sequential requests on one
   keep-alive connection after a warm-up; median and p95 per run.
4. Completions per second: ``--complete`` real instances of the one-task process are started,
   then 16 concurrent clients (threads with httpx) complete them through
   ``POST /api/v1/tasks/<id>/complete``. The engine-API rate is measured in the same run on the
   same database: 16 threads calling ``Engine.complete`` in this process, and 1 thread.
   The report gives API rate / engine-API rate.

Figures are medians over ``--runs`` runs. The database is dropped at the end (also on error).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, insert, select, text  # noqa: E402

from engine.api import Engine  # noqa: E402
from engine.models import HumanTask, Instance, TaskCandidate  # noqa: E402

DEFAULT_PG = os.environ.get("TONGBAN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/")
PASSWORD = "bench-password"
CLERK = "bench_clerk"
WORKER_GROUP = "bench_done"
CLIENTS = 16
KEY = "bench_web_one"
ONE_TASK = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="Definitions_{KEY}" targetNamespace="urn:tongban:bench">
  <bpmn:process id="{KEY}" name="Benchmark: one user task" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="handle" name="办理" tb:candidateGroups="{WORKER_GROUP}">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="handle"/>
    <bpmn:sequenceFlow id="f2" sourceRef="handle" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
""".encode()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * (len(s) - 1))))
    return s[k]


# ---- database --------------------------------------------------------------------------------
def create_database(server_url: str) -> tuple[str, str]:
    name = f"tb_bench_web_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url.rstrip("/").replace("postgresql://", "postgresql+psycopg://", 1) + "/postgres",
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rstrip("/") + "/" + name, name


def drop_database(server_url: str, name: str) -> None:
    admin = create_engine(server_url.rstrip("/").replace("postgresql://", "postgresql+psycopg://", 1) + "/postgres",
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def populate(eng: Engine, n_tasks: int, n_groups: int, seed: int = 7) -> dict:
    """Users, groups, the one-task process, and ``n_tasks`` bulk-inserted open tasks."""
    rnd = random.Random(seed)
    groups = [f"g{i:03d}" for i in range(n_groups)]
    eng.add_user(CLERK, groups[:3], "基准办事员", roles=["clerk"], password=PASSWORD)
    eng.add_user("bench_worker", [WORKER_GROUP], "基准办理人", roles=["clerk"])
    others = [f"other_{i}" for i in range(20)]
    for i, name in enumerate(others):
        eng.add_user(name, [groups[(i * 7) % n_groups]], roles=["clerk"])
    for g in groups[3:]:  # every group exists in tb_group like in production
        eng.add_user(f"member_{g}", [g], roles=["clerk"])
    [definition] = eng.deploy({f"{KEY}.bpmn": ONE_TASK}, actor="bench")
    now = datetime.now(UTC)
    base = 10_000_000  # bulk rows get ids far above the sequences' values
    t0 = time.perf_counter()
    batch = 5000
    with eng.db.begin() as c:
        for start in range(0, n_tasks, batch):
            ids = range(base + start, base + min(n_tasks, start + batch))
            inst_rows, task_rows, cand_rows = [], [], []
            for i in ids:
                g = groups[i % n_groups]
                due = None if rnd.random() < 0.1 else now + timedelta(minutes=rnd.randint(-3 * 1440, 30 * 1440))
                r = rnd.random()
                assignee = (rnd.choice(others) if r < 0.10 else CLERK if r < 0.1003 else None)
                inst_rows.append({"id": i, "definition_id": definition.id, "process_key": KEY,
                                  "business_key": f"BK-{i}", "status": "running", "version": 1, "state": "{}",
                                  "data": {"applicant": f"申请人{i}"}, "started_by": "bench",
                                  "started_at": now, "updated_at": now})
                task_rows.append({"id": i, "instance_id": i, "spiff_task_id": str(uuid.UUID(int=i)),
                                  "process_key": KEY, "bpmn_id": "handle", "name": "办理", "lane": None,
                                  "candidate_groups": [g], "candidate_users": [], "assignee": assignee,
                                  "status": "open", "priority": 50, "form_key": None, "created_at": now,
                                  "due_at": due})
                cand_rows.append({"task_id": i, "kind": "group", "name": g})
            c.execute(insert(Instance.__table__), inst_rows)
            c.execute(insert(HumanTask.__table__), task_rows)
            c.execute(insert(TaskCandidate.__table__), cand_rows)
    with eng.db.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("ANALYZE"))  # fresh statistics, as autovacuum would have them in production
    log(f"  bulk insert of {n_tasks} tasks: {time.perf_counter() - t0:.1f} s")
    visible = len(eng.tasks(user=CLERK, limit=None))
    return {"definition_id": definition.id, "visible_to_clerk": visible}


# ---- gunicorn ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(db_url: str, workers: int, port: int, threads: int = 1) -> subprocess.Popen:
    env = {**os.environ, "TONGBAN_DATABASE_URL": db_url, "TONGBAN_SECRET_KEY": uuid.uuid4().hex}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers),
                             "--threads", str(threads), "-b",
                             f"127.0.0.1:{port}", "--log-level", "warning", "web:create_app()"],
                            cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError("gunicorn did not come up")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def signed_in_client(base: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=30)
    page = c.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(
        r'name="csrf-token" content="([^"]+)"', page)
    r = c.post("/login", data={"username": CLERK, "password": PASSWORD, "csrf_token": token.group(1)})
    if r.status_code != 302:
        raise RuntimeError(f"sign-in failed: {r.status_code}")
    return c


# ---- measurements --------------------------------------------------------------------------------
def latency(client: httpx.Client, path: str, n: int, warmup: int, headers=None) -> list[float]:
    for _ in range(warmup):
        client.get(path, headers=headers).raise_for_status()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


def start_instances(eng: Engine, n: int) -> list[int]:
    """Start ``n`` instances of the one-task process; returns their open task ids."""
    iids = [eng.start(KEY, {"n": i}, actor="bench_worker")["instance_id"] for i in range(n)]
    with eng.readers() as s:
        return list(s.scalars(select(HumanTask.id).where(HumanTask.instance_id.in_(iids),
                                                          HumanTask.status == "open")))


def run_parallel(task_ids: list[int], clients: int, fn) -> float:
    """Complete every task with ``clients`` threads (each its own slice); returns completions/s."""
    slices = [task_ids[i::clients] for i in range(clients)]
    errors = []

    def work(ids):
        state = {}
        for tid in ids:
            try:
                fn(tid, state)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))
        return state

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, slices))
    elapsed = time.perf_counter() - t
    if errors:
        raise RuntimeError(f"{len(errors)} completions failed, e.g. {errors[0]}")
    return len(task_ids) / elapsed


def api_completer(base: str, token: str):
    def complete(tid, state):
        if "c" not in state:
            state["c"] = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"})
        r = state["c"].post(f"/api/v1/tasks/{tid}/complete", json={"data": {"ok": True}})
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code} {r.text[:200]}")

    return complete


def engine_completer(eng: Engine):
    def complete(tid, state):
        eng.complete(tid, "bench_worker", {"ok": True})

    return complete


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200, help="timed requests per endpoint and run")
    ap.add_argument("--complete", type=int, default=320, help="tasks completed per layer and run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1,
                    help="gunicorn threads per worker (1: sync workers, one request at a time each)")
    ap.add_argument("--pg-url", default=DEFAULT_PG, help="PostgreSQL server URL (a database is created on it)")
    ap.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    db_url, db_name = create_database(args.pg_url)
    log(f"database {db_name}")
    proc = None
    eng = None
    try:
        eng = Engine(db_url)
        eng.upgrade()
        info = populate(eng, args.tasks, args.groups)
        log(f"  the clerk sees {info['visible_to_clerk']} tasks (3 groups of {args.groups})")
        token = eng.issue_token(CLERK, "bench", actor="bench")["token"]
        worker_token = eng.issue_token("bench_worker", "bench", actor="bench")["token"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_gunicorn(db_url, args.workers, port, args.threads)
        log(f"gunicorn -w {args.workers} --threads {args.threads} on {base}")
        page = signed_in_client(base)
        api = httpx.Client(base_url=base, timeout=30)
        bearer = {"Authorization": f"Bearer {token}"}
        first = api.get("/api/v1/tasks", headers=bearer).json()
        assert len(first) == 50 and all(set(t["candidate_groups"]) & {"g000", "g001", "g002"}
                                        or t["assignee"] == CLERK for t in first), "wrong inbox"
        runs = []
        for run in range(args.runs):
            r: dict = {}
            for label, client, path, headers in (("inbox_page", page, "/", None),
                                                 ("api_tasks", api, "/api/v1/tasks", bearer)):
                ms = latency(client, path, args.requests, warmup=20, headers=headers)
                r[label] = {"median_ms": statistics.median(ms), "p95_ms": pct(ms, 95)}
            api_ids = start_instances(eng, args.complete)
            engine_ids = start_instances(eng, args.complete)
            single_ids = start_instances(eng, max(40, args.complete // 4))
            r["api_per_s"] = run_parallel(api_ids, CLIENTS, api_completer(base, worker_token))
            r["engine_per_s"] = run_parallel(engine_ids, CLIENTS, engine_completer(eng))
            r["engine_1_per_s"] = run_parallel(single_ids, 1, engine_completer(eng))
            r["ratio"] = r["api_per_s"] / r["engine_per_s"]
            runs.append(r)
            log(f"run {run + 1}: inbox page median {r['inbox_page']['median_ms']:.1f} ms p95 "
                f"{r['inbox_page']['p95_ms']:.1f} | api/tasks median {r['api_tasks']['median_ms']:.1f} ms p95 "
                f"{r['api_tasks']['p95_ms']:.1f} | completions/s API(16) {r['api_per_s']:.1f}, "
                f"engine(16) {r['engine_per_s']:.1f}, engine(1) {r['engine_1_per_s']:.1f}, "
                f"ratio {r['ratio']:.2f}")

        def med(f):
            return statistics.median(f(r) for r in runs)

        result = {
            "tasks": args.tasks, "groups": args.groups, "runs": args.runs, "workers": args.workers,
            "threads": args.threads,
            "requests_per_run": args.requests, "completions_per_layer_and_run": args.complete,
            "visible_to_clerk": info["visible_to_clerk"],
            "inbox_page": {"median_ms": med(lambda r: r["inbox_page"]["median_ms"]),
                           "p95_ms": med(lambda r: r["inbox_page"]["p95_ms"])},
            "api_tasks": {"median_ms": med(lambda r: r["api_tasks"]["median_ms"]),
                          "p95_ms": med(lambda r: r["api_tasks"]["p95_ms"])},
            "completions_per_s": {"api_16_clients": med(lambda r: r["api_per_s"]),
                                  "engine_16_threads": med(lambda r: r["engine_per_s"]),
                                  "engine_1_thread": med(lambda r: r["engine_1_per_s"]),
                                  "ratio_api_to_engine": med(lambda r: r["ratio"])},
            "per_run": runs,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "load_before": os.getloadavg()[0]},
        }
        log(f"\nmedians over {args.runs} runs: inbox page {result['inbox_page']['median_ms']:.1f} / "
            f"p95 {result['inbox_page']['p95_ms']:.1f} ms; GET /api/v1/tasks "
            f"{result['api_tasks']['median_ms']:.1f} / p95 {result['api_tasks']['p95_ms']:.1f} ms; "
            f"completions/s API {result['completions_per_s']['api_16_clients']:.1f} vs engine "
            f"{result['completions_per_s']['engine_16_threads']:.1f} "
            f"(ratio {result['completions_per_s']['ratio_api_to_engine']:.2f})")
        if args.json:
            print(json.dumps(result, indent=2))
        return result
    finally:
        if proc is not None:
            stop(proc)
        if eng is not None:
            eng.db.dispose()
        if args.keep:
            log(f"kept database {db_name}")
        else:
            drop_database(args.pg_url, db_name)


if __name__ == "__main__":
    threading.excepthook = lambda a: log(f"thread error: {a.exc_value!r}")
    main()
