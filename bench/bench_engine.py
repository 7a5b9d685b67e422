"""Throughput and per-step cost of the engine against raw SpiffWorkflow, in one run.

    .venv/bin/python bench/bench_engine.py [--db sqlite|postgres|both] [--runs 5] [--instances N] [--json]

Part 1 - bench/three_tasks.bpmn (start -> 3 sequential user tasks with tb:candidateGroups -> end),
instances per second, each layer measured in the same process, runs interleaved:

  raw     SpiffWorkflow in memory: BpmnWorkflow, do_engine_steps, run the READY manual task
  naive   the same, but every step is load -> complete -> save of the whole workflow JSON
          (BpmnWorkflowSerializer, spec included) kept in a dict
  serialize  raw plus the engine's serialization of the state (no spec) after the start and each
          step, no database: what SpiffWorkflow's serializer alone costs against running the steps
  floor   the least an engine that commits every step can do on SQLite: the live workflow kept in
          memory (never loaded), its state serialized as the engine does (no spec) and written with
          one UPDATE guarded by the row version, the task rows updated, one commit per step, on the
          plain sqlite3 module with the engine's settings (WAL, synchronous=NORMAL); no ORM, no
          audit, candidates, SLA or opinions. What is left between it and raw is the price of
          committing each step at all.
  engine  Engine API, one committed transaction per start/complete, on SQLite (temp file)
          and/or PostgreSQL (a throwaway database tb_bench_<random>, dropped afterwards).
          The client looks up the open task of its instance before each complete, with a
          cheap indexed query (--lookup query, default) or Engine.tasks(instance_id=...)
          (--lookup tasks).

Part 2 - 20-step and 100-step sequential processes (bench/sequential.py): time of one
complete at step 5 / 15 / 95, median over several instances and a window of +-2 steps, to
see whether the cost of a step grows with the instance's history.

Medians over --runs runs. Progress goes to stderr; --json prints the results as JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from lxml import etree  # noqa: E402
from sequential import sequential_bpmn  # noqa: E402
from SpiffWorkflow.bpmn import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser  # noqa: E402
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from engine.api import Engine  # noqa: E402
from engine.clock import Clock  # noqa: E402
from engine.models import HumanTask, Instance  # noqa: E402

THREE_TASKS = HERE / "three_tasks.bpmn"
THREE_KEY = "bench_three_tasks"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
ACTOR = "bench_clerk"
GROUPS = ["window", "review", "approval", "bench"]
PAYLOAD = {"ok": True, "note": "bench"}
WINDOW = 2  # per-step figures: median over steps k-WINDOW .. k+WINDOW


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# raw SpiffWorkflow and the naive load-complete-save loop
# ---------------------------------------------------------------------------------------------
def parse(xml: bytes, key: str):
    parser = SpiffBpmnParser()
    parser.add_bpmn_xml(etree.ElementTree(etree.fromstring(xml)), filename=f"{key}.bpmn")
    return parser.get_spec(key), parser.get_subprocess_specs(key)


def _ready(wf):
    return wf.get_tasks(state=TaskState.READY, manual=True)


class Raw:
    name = "raw"

    def __init__(self, spec, subs):
        self.spec, self.subs = spec, subs

    def instance(self, step_times: list | None = None, **_kwargs) -> None:
        wf = BpmnWorkflow(self.spec, self.subs)
        wf.task_tree.data.update({"initiator": ACTOR})
        wf.do_engine_steps()
        self.started(wf)
        step = 0
        while True:
            t0 = time.perf_counter()
            ready = _ready(wf)
            if not ready:
                break
            task = ready[0]
            task.data.update(PAYLOAD)
            task.run()
            wf.do_engine_steps()
            step += 1
            self.stepped(wf, task, step)
            if step_times is not None:
                step_times.append(time.perf_counter() - t0)
        assert wf.is_completed()

    def started(self, wf) -> None:
        """After the start's engine steps (a layer that persists writes the new instance here)."""

    def stepped(self, wf, task, step: int) -> None:
        """After each completed step and its engine steps."""


class Naive:
    """Every step: deserialize the whole workflow (spec included) from a store, complete, serialize."""

    name = "naive"

    def __init__(self, spec, subs):
        self.spec, self.subs = spec, subs
        self.ser = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
        self.store: dict[int, tuple[str, bool]] = {}
        self.next_id = 0
        self.sizes: dict[int, int] = {}

    def instance(self, step_times: list | None = None) -> None:
        self.next_id += 1
        iid = self.next_id
        wf = BpmnWorkflow(self.spec, self.subs)
        wf.task_tree.data.update({"initiator": ACTOR})
        wf.do_engine_steps()
        self.store[iid] = (self.ser.serialize_json(wf), wf.is_completed())
        step = 0
        while not self.store[iid][1]:
            t0 = time.perf_counter()
            wf = self.ser.deserialize_json(self.store[iid][0])
            task = _ready(wf)[0]
            task.data.update(PAYLOAD)
            task.run()
            wf.do_engine_steps()
            state = self.ser.serialize_json(wf)
            self.store[iid] = (state, wf.is_completed())
            step += 1
            if step_times is not None:
                step_times.append(time.perf_counter() - t0)
                self.sizes[step] = len(state)
        del self.store[iid]


class Serialize(Raw):
    """Raw SpiffWorkflow plus serializing its state after the start and every step, as the engine
    stores it (no spec), with no database: the price of SpiffWorkflow's serializer alone."""

    name = "serialize"

    def __init__(self, spec, subs):
        from engine.serialization import dump_state

        super().__init__(spec, subs)
        self.dump = dump_state

    def started(self, wf) -> None:
        self.dump(wf)

    def stepped(self, wf, task, step: int) -> None:
        self.dump(wf)


class Floor(Raw):
    """Raw SpiffWorkflow plus the minimum persistence of a step: see ``floor`` in the docstring."""

    name = "floor sqlite"

    def __init__(self, spec, subs, path: str):
        from engine.serialization import dump_state

        super().__init__(spec, subs)
        self.dump = dump_state
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS instance (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, state TEXT,"
            " status TEXT);"
            "CREATE TABLE IF NOT EXISTS task (id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL"
            " REFERENCES instance(id), spiff_id TEXT, name TEXT, status TEXT);"
            "CREATE INDEX IF NOT EXISTS ix_task_open ON task (instance_id, status);")
        self.sizes: dict[int, int] = {}

    def _open_tasks(self, iid: int, wf) -> None:
        for t in _ready(wf):
            self.db.execute("INSERT INTO task (instance_id, spiff_id, name, status) VALUES (?, ?, ?, 'open')",
                            (iid, str(t.id), t.task_spec.name))

    def started(self, wf) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.iid = self.db.execute("INSERT INTO instance (version, state, status) VALUES (1, ?, 'running')",
                                   (self.dump(wf),)).lastrowid
        self._open_tasks(self.iid, wf)
        self.db.execute("COMMIT")
        self.version = 1

    def stepped(self, wf, task, step: int) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("UPDATE task SET status = 'completed' WHERE instance_id = ? AND spiff_id = ?",
                        (self.iid, str(task.id)))
        self._open_tasks(self.iid, wf)
        state = self.dump(wf)
        changed = self.db.execute(
            "UPDATE instance SET version = version + 1, state = ?, status = ? WHERE id = ? AND version = ?",
            (state, "completed" if wf.is_completed() else "running", self.iid, self.version)).rowcount
        if changed != 1:
            raise RuntimeError("lost update")
        self.db.execute("COMMIT")
        self.version += 1
        self.sizes[step] = len(state)

    def close(self):
        self.db.close()


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------
class EngineLayer:
    def __init__(self, name: str, url: str, lookup: str = "query", hot: bool = True):
        self.name = name
        self.url = url
        self.lookup = lookup
        self.eng = Engine(url, clock=Clock())
        self.eng.upgrade()
        self.eng.add_user(ACTOR, GROUPS)
        self.keys: dict[str, str] = {}
        if not hot:
            # a worker that never finds the instance in its hot cache (several workers, restarts):
            # every complete deserializes the state from the row
            self.eng.runtime.hot.size = 0
        self.sizes: dict[int, int] = {}

    def deploy(self, name: str, xml: bytes) -> None:
        self.eng.deploy({name: xml}, actor=ACTOR)

    def open_task(self, instance_id: int) -> int | None:
        if self.lookup == "tasks":
            tasks = self.eng.tasks(instance_id=instance_id)
            return tasks[0]["id"] if tasks else None
        with self.eng.readers() as s:  # a read, as the inbox reads
            return s.scalar(select(HumanTask.id).where(
                HumanTask.instance_id == instance_id, HumanTask.status == "open").limit(1))

    def state_size(self, instance_id: int) -> int:
        with self.eng.readers() as s:
            return s.scalar(select(func.length(Instance.state)).where(Instance.id == instance_id)) or 0

    def instance(self, key: str = THREE_KEY, step_times: list | None = None, size_at=()) -> None:
        res = self.eng.start(key, data={"applicant": "bench"}, business_key=f"bk-{uuid.uuid4().hex[:12]}",
                             actor=ACTOR)
        iid = res["instance_id"]
        status = res["status"]
        step = 0
        while status == "running":
            task_id = self.open_task(iid)
            t1 = time.perf_counter()
            status = self.eng.complete(task_id, ACTOR, data=PAYLOAD)["status"]
            step += 1
            if step_times is not None:
                step_times.append(time.perf_counter() - t1)  # the complete call alone
            if step in size_at:
                self.sizes[step] = self.state_size(iid)
        assert status == "completed", status

    def close(self):
        self.eng.db.dispose()


class PgDatabase:
    """A throwaway PostgreSQL database, dropped on exit."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.name = f"tb_bench_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
                                   isolation_level="AUTOCOMMIT")
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = f"{admin_url.rsplit('/', 1)[0]}/{self.name}"

    def drop(self):
        with self.admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------
def throughput(layer, n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        layer.instance()
    return n / (time.perf_counter() - t0)


def per_step(layer, instances: int, run_kwargs=None) -> list[list[float]]:
    series = []
    for _ in range(instances):
        times: list[float] = []
        gc.collect()
        layer.instance(step_times=times, **(run_kwargs or {}))
        series.append(times)
    return series


def step_ms(series: list[list[float]], k: int) -> float:
    """Median (ms) over instances and steps k-WINDOW..k+WINDOW (1-based step numbers)."""
    values = [s[i - 1] for s in series for i in range(k - WINDOW, k + WINDOW + 1) if 1 <= i <= len(s)]
    return statistics.median(values) * 1000


def profile_engine(url: str, xml: bytes, key: str, steps: int) -> str:
    layer = EngineLayer("profile", url)
    try:
        layer.deploy(f"{key}.bpmn", xml)
        layer.instance(key)  # warm up: spec cache, statement cache
        prof = cProfile.Profile()
        prof.enable()
        layer.instance(key)
        prof.disable()
    finally:
        layer.close()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(30)
    out.write("\n---- by own time ----\n")
    stats.sort_stats("tottime").print_stats(20)
    return f"cProfile of one {steps}-step instance through the engine ({url.split(':')[0]}):\n" + out.getvalue()


def check_pg(url: str) -> str | None:
    try:
        eng = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc).splitlines()[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Tongban engine benchmark (see docs/performance.md)")
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both",
                   help="engine backends to measure (default: both; PostgreSQL is skipped with a note "
                        "when it is not reachable and --db was not given explicitly)")
    p.add_argument("--runs", type=int, default=5, help="runs per layer, the median is reported (default 5)")
    p.add_argument("--instances", type=int, default=100, help="3-task instances per run and layer (default 100)")
    p.add_argument("--seq-instances", type=int, default=5,
                   help="instances per layer for the 20/100-step per-step test (default 5)")
    p.add_argument("--pg-url", default=os.environ.get("TONGBAN_BENCH_POSTGRES_URL", DEFAULT_PG),
                   help=f"PostgreSQL server + admin database (default {DEFAULT_PG})")
    p.add_argument("--lookup", choices=["query", "tasks"], default="query",
                   help="how the client finds the open task: a cheap indexed query or Engine.tasks()")
    p.add_argument("--no-cold", action="store_true", help="skip the SQLite cold-cache layer")
    p.add_argument("--skip-steps", action="store_true", help="skip part 2 (20/100-step processes)")
    p.add_argument("--profile", action="store_true",
                   help="also cProfile one 100-step engine instance on SQLite and print it to stderr")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = p.parse_args(argv)
    db_given = any(a == "--db" or a.startswith("--db=") for a in (argv if argv is not None else sys.argv[1:]))

    started = time.perf_counter()
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    notes = []
    if "postgres" in backends:
        problem = check_pg(args.pg_url)
        if problem:
            if db_given:
                log(f"PostgreSQL at {args.pg_url} is not reachable: {problem}")
                return 2
            backends.remove("postgres")
            notes.append(f"PostgreSQL skipped (not reachable: {problem})")
            log(notes[-1])

    three_xml = THREE_TASKS.read_bytes()
    seq = {n: sequential_bpmn(n) for n in (20, 100)}
    spec3, subs3 = parse(three_xml, THREE_KEY)

    tmp = tempfile.TemporaryDirectory(prefix="tb_bench_")
    pg = None
    layers = [Raw(spec3, subs3), Naive(spec3, subs3), Serialize(spec3, subs3)]
    floors: list[Floor] = []
    if "sqlite" in backends:
        floors.append(Floor(spec3, subs3, f"{tmp.name}/floor.sqlite"))
        layers.append(floors[-1])
    engines: list[EngineLayer] = []
    results: dict = {"config": {
        "runs": args.runs, "instances": args.instances, "seq_instances": args.seq_instances,
        "lookup": args.lookup, "backends": backends, "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "notes": notes}}
    try:
        if "sqlite" in backends:
            engines.append(EngineLayer("engine sqlite", f"sqlite:///{tmp.name}/bench.sqlite", args.lookup))
            if not args.no_cold:
                engines.append(EngineLayer("engine sqlite cold", f"sqlite:///{tmp.name}/cold.sqlite",
                                           args.lookup, hot=False))
        if "postgres" in backends:
            pg = PgDatabase(args.pg_url)
            log(f"PostgreSQL database {pg.name} created")
            engines.append(EngineLayer("engine postgres", pg.url, args.lookup))
        for e in engines:
            e.deploy("three_tasks.bpmn", three_xml)
            for n, xml in seq.items():
                e.deploy(f"sequential_{n}.bpmn", xml)
        layers += engines

        # ---- part 1: throughput, runs interleaved so that noise hits every layer alike ----
        for layer in layers:
            layer.instance()  # warm-up, not counted
        rates: dict[str, list[float]] = {layer.name: [] for layer in layers}
        for r in range(args.runs):
            for layer in layers:
                rates[layer.name].append(throughput(layer, args.instances))
            log(f"run {r + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()))
        raw = statistics.median(rates["raw"])
        naive = statistics.median(rates["naive"])
        results["throughput"] = {
            name: {"instances_per_s": statistics.median(v), "min": min(v), "max": max(v),
                   "ratio_to_raw": statistics.median(v) / raw, "ratio_to_naive": statistics.median(v) / naive,
                   "runs": v}
            for name, v in rates.items()}

        # ---- part 2: per-step cost against history ----
        if not args.skip_steps:
            steps_out = {}
            checkpoints = {20: (5, 15), 100: (5, 95)}
            for n, points in checkpoints.items():
                key = f"bench_seq_{n}"
                spec, subs = parse(seq[n], key)
                seq_layers = [Raw(spec, subs), Naive(spec, subs)]
                if "sqlite" in backends:
                    floors.append(Floor(spec, subs, f"{tmp.name}/floor_{n}.sqlite"))
                    seq_layers.append(floors[-1])
                seq_layers += engines
                for layer in seq_layers:
                    layer.sizes = {}
                    kwargs = {"key": key, "size_at": points} if isinstance(layer, EngineLayer) else None
                    series = per_step(layer, args.seq_instances, kwargs)
                    row = {f"step_{k}_ms": step_ms(series, k) for k in points}
                    row["growth"] = row[f"step_{points[1]}_ms"] / row[f"step_{points[0]}_ms"]
                    row["state_bytes"] = {k: layer.sizes.get(k) for k in points} if layer.sizes else None
                    steps_out.setdefault(f"{n}_steps", {})[layer.name] = row
                    log(f"{n}-step {layer.name}: " + ", ".join(
                        f"step {k} {row[f'step_{k}_ms']:.2f} ms" for k in points) + f", x{row['growth']:.2f}")
            results["per_step"] = steps_out

        if args.profile and "sqlite" in backends:
            log(profile_engine(f"sqlite:///{tmp.name}/profile.sqlite", seq[100], "bench_seq_100", 100))
    finally:
        for e in [*engines, *floors]:
            e.close()
        if pg is not None:
            pg.drop()
            log(f"PostgreSQL database {pg.name} dropped")
        tmp.cleanup()
    results["elapsed_s"] = time.perf_counter() - started

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(report(results))
    return 0


def report(results: dict) -> str:
    c = results["config"]
    lines = [f"Tongban benchmark - {c['runs']} runs x {c['instances']} instances, lookup={c['lookup']}, "
             f"Python {c['python']}, {c['machine']}", ""]
    for note in c["notes"]:
        lines.append(f"note: {note}")
    lines += ["3 sequential user tasks (start + 3 completes per instance), median instances/s:",
              f"  {'layer':<22}{'inst/s':>9}{'min':>9}{'max':>9}{'/raw':>8}{'/naive':>8}"]
    for name, r in results["throughput"].items():
        lines.append(f"  {name:<22}{r['instances_per_s']:>9.1f}{r['min']:>9.1f}{r['max']:>9.1f}"
                     f"{r['ratio_to_raw']:>8.3f}{r['ratio_to_naive']:>8.2f}")
    for label, rows in results.get("per_step", {}).items():
        points = [k for k in next(iter(rows.values())) if k.startswith("step_")]
        lines += ["", f"{label.replace('_', ' ')} process, time of one step (ms, median over instances "
                      f"and steps k-{WINDOW}..k+{WINDOW}; engine = the complete() call):",
                  f"  {'layer':<22}" + "".join(f"{p.replace('_ms', ''):>10}" for p in points) + f"{'growth':>9}"
                  + "   state bytes"]
        for name, r in rows.items():
            sizes = r["state_bytes"]
            size_txt = " -> ".join(str(sizes[k]) for k in sizes) if sizes else ""
            lines.append(f"  {name:<22}" + "".join(f"{r[p]:>10.2f}" for p in points)
                         + f"{r['growth']:>8.2f}x   {size_txt}")
    lines += ["", f"elapsed {results['elapsed_s']:.0f} s"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
