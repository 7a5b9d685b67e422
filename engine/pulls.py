"""Declared data pulls and connector-backed service tasks, the pull log, masking decisions.

A READY user task that declares ``<tb:data>`` is mirrored as a human task with status
``waiting`` (the inbox lists only ``open``) and a ``pull`` job is written in the same step
transaction, with the inputs evaluated there. A READY ``bpmn:serviceTask`` is parked (its spec
is made manual, so ``do_engine_steps`` leaves it READY) and gets a ``service`` job.

Running such a job (``run_claimed``) is three steps:
1. a short read: the job, its task, the connector configuration;
2. the connector calls, outside any database transaction;
3. one short transaction: load the instance, write only the declared fields into that task's
   data, log each pull (no values, no raw answer: a hash of the kept result), open the human task
   or complete the service task and run engine steps, save guarded by the row version.
A failure is logged, the job is retried with backoff, and after ``max_attempts`` becomes an
incident that ``Engine.retry_incident`` re-queues. The instance never moves on a failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from uuid import UUID

from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask
from SpiffWorkflow.exceptions import TaskNotFoundException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, select, update

from . import audit, jobs, licences, masking, sealing
from .errors import Conflict, ConnectorError, EngineError
from .models import ConnectorConfig, HumanTask, Instance, Job, PullLog, TaskPulled
from .rawsql import Prepared
from .serialization import to_jsonable

log = logging.getLogger("tongban.pulls")
KINDS = ("pull", "service")


# ---- step transaction side (called from runtime) ------------------------------------------
def park_services(spec, subs) -> None:
    """Service tasks wait for a job instead of running inline (SpiffWorkflow's call_service hides
    every connector error as NameError): a manual spec stays READY in do_engine_steps."""
    if getattr(spec, "_tb_parked", False):  # marked on the object: an id() could be reused by a newer spec
        return
    for s in [spec, *subs.values()]:
        for ts in s.task_specs.values():
            if isinstance(ts, ServiceTask):
                ts.manual = True
    spec._tb_parked = True


def split_services(runtime, session, row, ready: dict, manifest: dict, now, new: bool) -> dict:
    """READY manual tasks minus the parked service tasks; each of those gets a service job once."""
    services = manifest.get("services") or {}
    if not services and not any(isinstance(t.task_spec, ServiceTask) for t in ready.values()):
        return ready
    human = {}
    for tid, t in ready.items():
        bpmn_id = getattr(t.task_spec, "bpmn_id", None) or t.task_spec.name
        if bpmn_id not in services and not isinstance(t.task_spec, ServiceTask):
            human[tid] = t
            continue
        if not new and session.scalar(select(Job.id).where(Job.dedupe_key == f"service:{tid}")) is not None:
            continue
        entry = services.get(bpmn_id) or _entry_from_spec(t.task_spec, bpmn_id)
        job = schedule(runtime, session, row, t, entry, "service", now)
        if bpmn_id not in services:  # a called process's service task: the entry travels with the job
            job.payload = {**job.payload, "entry": entry}
    return human


def schedule(runtime, session, row, task, entry: dict, kind: str, now, human_task_id: int | None = None) -> Job:
    """The job that pulls a task's declared data; inputs are evaluated now, over the task's data."""
    inputs, errors = [], []
    env = runtime._script_engine.environment
    for pull in entry.get("pulls") or []:
        values = {}
        for name, expr in (pull.get("inputs") or {}).items():
            try:
                values[name] = to_jsonable(env.evaluate(expr, dict(task.data)))
            except Exception as exc:  # noqa: BLE001 - reported on the job, becomes an incident
                errors.append(f"input '{name}' = {expr}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        inputs.append(values)
    tid = str(task.id)
    job = Job(kind=kind, due_at=now, instance_id=row.id, task_ref=tid, created_at=now,
              payload={"inputs": inputs, "errors": errors, "human_task_id": human_task_id,
                       "bpmn_id": entry.get("id")},
              dedupe_key=f"{kind}:{tid}", max_attempts=5)
    inline = session.info.get("tb_inline_worker")
    early = None
    if inline:
        # leased to the action's own process, which runs it right after the commit; if that process
        # dies first, the lease runs out and any worker takes the job
        job.locked_by, job.locked_until = inline, now + jobs.LEASE
        pool = session.info.get("tb_early")
        if pool is not None and not errors:
            early = [send_early(pool, pull, values) for pull, values in zip(entry.get("pulls") or [], inputs,
                                                                            strict=False)]
    session.add(job)
    session.info.setdefault("tb_new_jobs", []).append((job, entry, _actor_names(entry, task), early))
    return job


def send_early(pool, pull: dict, inputs: dict):
    """The pull's request written now, while its step is being saved (the answer is read after the
    commit, in ``run_claimed``); None when the connector cannot or its configuration copy is stale."""
    conn = pool.fresh(pull["connector"])
    if conn is None:
        return None
    try:
        return conn.send_early(pull["operation"], inputs)
    except Exception:  # noqa: BLE001 - the call is simply made after the commit instead
        log.exception("early request of %s.%s failed to go out", pull["connector"], pull["operation"])
        return None


def discard_early(created, pending) -> None:
    """Early requests whose answers will not be read (their step did not commit, or their job has
    no row to run from): close them unread (nothing was received,
    so nothing enters a case or the pull log; the application log says which requests went out)."""
    for item in list(pending or []) + [ctx for _id, ctx in created or []]:
        early = item[3] if isinstance(item, tuple) else item.get("early")
        entry = item[1] if isinstance(item, tuple) else item.get("entry") or {}
        for pull, call in zip(entry.get("pulls") or [], early or [], strict=False):
            if call is not None:
                call.discard()
                log.warning("request to %s.%s for step %s went out early, but its step did not commit or its "
                            "job was not saved; closed unread", pull["connector"], pull["operation"], entry.get("id"))


def _entry_from_spec(spec, bpmn_id: str) -> dict:
    """A service task the manifest does not know (it is in a called process): read its
    ``spiffworkflow:serviceTaskOperator`` from the parsed spec."""
    if getattr(spec, "operation_name", "") == licences.OPERATION:
        return {"id": bpmn_id, "type": "serviceTask", "pulls": [],
                "licence": licences.from_params(getattr(spec, "operation_params", {}))}
    connector, _, operation = (getattr(spec, "operation_name", "") or "").replace("/", ".").partition(".")
    params = getattr(spec, "operation_params", {}) or {}
    rv = getattr(spec, "result_variable", None)
    return {"id": bpmn_id, "type": "serviceTask", "pulls": [{
        "connector": connector, "operation": operation, "purpose": "", "basis": "", "outputs": [],
        "inputs": {k: (v or {}).get("value") or k for k, v in params.items()},
        "result_variable": None if (rv or "").startswith("spiff__") else rv}]}


def task_scoped(entry: dict) -> list[str]:
    return [o["as"] for p in entry.get("pulls") or [] for o in p.get("outputs") or [] if o.get("scope") == "task"]


def new_jobs(session) -> list[tuple[int, dict]]:
    """(job id, what running it needs) of the jobs this transaction created, for the inline run."""
    out, unsaved = [], []
    for job, entry, actor, early in session.info.pop("tb_new_jobs", []):
        if job.id is not None:
            out.append((job.id, {"kind": job.kind, "payload": dict(job.payload), "instance_id": job.instance_id,
                                 "tid": job.task_ref, "entry": entry, "actor": actor,
                                 "locked_by": job.locked_by, "early": early}))
        else:
            unsaved.append((job, entry, actor, early))
    discard_early([], unsaved)
    session.info["tb_created"] = out  # until the commit succeeds (inline_step discards them otherwise)
    return out


@contextlib.contextmanager
def inline_step(engine):
    """A step transaction whose pull and service jobs this process runs right after the commit
    (leased in the transaction, their requests sent early while it saves). If the transaction
    fails, early requests are closed unread."""
    s = None
    try:
        with engine.sessions.begin() as s:
            if engine.run_pulls_inline:
                s.info["tb_inline_worker"] = engine.inline_worker
                if engine.send_pulls_early:
                    s.info["tb_early"] = engine.connector_pool
            yield s
    except BaseException:
        if s is not None:
            discard_early(s.info.pop("tb_created", []), s.info.pop("tb_new_jobs", []))
        raise


def _actor_names(entry: dict, task) -> str:
    who = ",".join(entry.get("candidate_groups") or []) or ",".join(entry.get("candidate_users") or [])
    return f"system for {who}"[:100] if who else "system"


# ---- connectors and their configuration ----------------------------------------------------
def configs(session, names) -> dict[str, ConnectorConfig]:
    return {c.name: c for c in session.scalars(select(ConnectorConfig).where(ConnectorConfig.name.in_(list(names))))}


CONFIG_TTL = 2.0  # seconds a process trusts its copy of connector configuration (other processes' edits)


class ConnectorPool:
    """Configured connector instances, rebuilt when their configuration revision changes."""

    def __init__(self, registry):
        self.registry = registry
        self._items: dict[str, tuple[int, object]] = {}
        self._configs: dict[str, tuple[float, object]] = {}

    def configs(self, engine, names) -> dict:
        """Configuration rows by name, re-read at most every CONFIG_TTL seconds."""
        now = time.monotonic()
        names = set(names)
        if any(n not in self._configs or now - self._configs[n][0] > CONFIG_TTL for n in names):
            with engine.readers() as s:
                found = configs(s, names)
            for n in names:
                self._configs[n] = (now, found.get(n))
        return {n: self._configs[n][1] for n in names if self._configs[n][1] is not None}

    def fresh(self, name: str):
        """The pooled connector for ``name`` if this process's copy of its configuration is fresh
        and the connector was built from it; no database read (used inside a step transaction)."""
        seen = self._configs.get(name)
        if seen is None or time.monotonic() - seen[0] > CONFIG_TTL:
            return None
        item = self._items.get(name)
        cfg = seen[1]
        if item is None or item[0] != (cfg.revision if cfg else 0):
            return None
        return item[1]

    def forget(self, name: str | None = None) -> None:
        if name is None:
            self._configs.clear()
        else:
            self._configs.pop(name, None)

    def get(self, name: str, cfg: ConnectorConfig | None):
        if cfg is not None and isinstance(cfg.secrets, sealing.Unreadable):
            raise ConnectorError(f"connector '{name}': {sealing.Unreadable.reason}", retryable=False)
        revision = cfg.revision if cfg else 0
        item = self._items.get(name)
        if item is None or item[0] != revision:
            if item is not None:
                item[1].close()
            conn = self.registry.new(name, cfg.config if cfg else {}, cfg.secrets if cfg else {})
            self._items[name] = item = (revision, conn)
        return item[1]

    def close(self):
        for _, conn in self._items.values():
            conn.close()
        self._items.clear()


# ---- running a job -------------------------------------------------------------------------
def claim_ids(engine, ids: list[int], worker: str) -> list[int]:
    """Claim the named jobs if they are still due and unlocked (the in-process fast path)."""
    if not ids:
        return []
    now = engine.clock.now()
    claimed = []
    with engine.sessions.begin() as s:
        for job_id in ids:
            res = s.execute(update(Job).where(
                Job.id == job_id, Job.status == "pending", Job.due_at <= now,
                (Job.locked_until.is_(None)) | (Job.locked_until < now)).values(
                locked_by=worker, locked_until=now + jobs.LEASE))
            if res.rowcount == 1:
                claimed.append(job_id)
    return claimed


def _result_hash(values: dict) -> str:
    body = json.dumps(to_jsonable(values), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _kept(pull: dict, op_fields: dict, data: dict) -> dict:
    """Only the declared outputs (minimum necessary); a service task without declared outputs
    keeps every field of the operation's schema, never anything else in the answer."""
    outputs = pull.get("outputs") or [{"name": k, "as": k} for k in op_fields]
    return {o["as"]: to_jsonable(data.get(o["name"])) for o in outputs}


def _actor(h: HumanTask | None) -> str:
    if h is None:
        return "system"
    who = ",".join((h.candidate_groups or []) + (h.candidate_users or [])) or (h.assignee or "")
    return f"system for {who}"[:100] if who else "system"


def run_claimed(engine, job_id: int, worker: str, ctx: dict | None = None) -> str:
    """Run one claimed pull or service job; returns done | retry | incident | skipped.

    ``ctx`` (from ``new_jobs``) lets the process that created the job skip the first read."""
    # 1. a short read (skipped on the inline path: the creating transaction knew it all)
    if ctx is None:
        with engine.readers() as s:
            job = s.get(Job, job_id)
            if job is None or job.status != "pending" or job.locked_by != worker:
                return "skipped"
            kind, payload, instance_id, tid = job.kind, dict(job.payload or {}), job.instance_id, job.task_ref
            row = s.get(Instance, instance_id)
            h = s.get(HumanTask, payload["human_task_id"]) if payload.get("human_task_id") else None
            stale = row is None or row.status != "running" or (kind == "pull" and (h is None or h.status != "waiting"))
            entry = {}
            if not stale:
                manifest = engine.specs.get(s, row.definition_id)[2]
                bpmn_id = payload.get("bpmn_id") or (h.bpmn_id if h else None)
                entry = payload.get("entry") or (
                    manifest.get("tasks", {}) if kind == "pull" else manifest.get("services", {})).get(bpmn_id, {})
            actor = _actor(h)
        if stale:
            _finish_stale(engine, job_id, worker)
            return "skipped"
    else:
        kind, payload, tid, entry, actor = ctx["kind"], ctx["payload"], ctx["tid"], ctx["entry"], ctx["actor"]
        instance_id = ctx["instance_id"]
    early = list((ctx or {}).get("early") or [])  # requests already sent while the step was saved
    cfgs = engine.connector_pool.configs(engine, {p["connector"] for p in entry.get("pulls") or []})
    # 2. the calls, outside any transaction
    results, failure, used = [], None, []
    for i, pull in enumerate(entry.get("pulls") or []):
        started = time.perf_counter()
        sent = early[i] if i < len(early) else None
        if sent is not None:
            early[i] = None
        try:
            if payload.get("errors"):
                raise ConnectorError("cannot evaluate the inputs: " + "; ".join(payload["errors"]), retryable=False)
            conn = engine.connector_pool.get(pull["connector"], cfgs.get(pull["connector"]))
            used.append(conn)
            op = conn.operation(pull["operation"])
            res = sent.result() if sent is not None else conn.call(pull["operation"],
                                                                 (payload.get("inputs") or [{}] * (i + 1))[i])
            kept = _kept(pull, op.fields, res.data)
            results.append((pull, res, kept, int((time.perf_counter() - started) * 1000)))
        except Exception as exc:  # noqa: BLE001 - every failure is logged and retried or raised as incident
            err = exc if isinstance(exc, EngineError) else ConnectorError(f"{type(exc).__name__}: {exc}")
            failure = (pull, err, int((time.perf_counter() - started) * 1000))
            break
    for sent in early:
        if sent is not None:
            sent.discard()  # an earlier pull of the step failed: these answers are not read
    if ctx is not None and failure is None:
        for conn in used:
            conn.prepare_early()  # the next step's early request finds a connection open
    if failure is not None:
        return _fail(engine, job_id, worker, kind, entry, results, failure, actor)
    # 3. one short transaction to apply
    for attempt in range(3):
        try:
            return _apply(engine, job_id, worker, kind, tid, entry, results, actor,
                          payload.get("human_task_id"), instance_id)
        except Conflict as exc:
            if attempt == 2:
                return _fail(engine, job_id, worker, kind, entry, [], (None, exc, 0), actor)
        except EngineError as exc:
            # e.g. a script after a service task failed: the instance stays where it was
            exc.retryable = False
            return _fail(engine, job_id, worker, kind, entry, [], (None, exc, 0), actor)
    return "retry"


def _log(s, engine, kind, actor, job, h_id, entry, pull, outcome, *, source="", request_id=None, duration=0,
         fields=None, error=None, result_hash=None):
    s.add(PullLog(at=engine.clock.now(), kind=kind, actor=actor, instance_id=job.instance_id,
                  human_task_id=h_id, task_ref=entry.get("id"), spiff_task_id=job.task_ref,
                  job_id=job.id, connector=pull["connector"], operation=pull["operation"],
                  fields=fields if fields is not None else [o["as"] for o in pull.get("outputs") or []],
                  purpose=pull.get("purpose") or "", basis=pull.get("basis") or "", source=source[:200],
                  request_id=(request_id or None) and str(request_id)[:100], duration_ms=duration,
                  outcome=outcome, error=error, result_hash=result_hash))


def _apply(engine, job_id, worker, kind, tid, entry, results, actor, human_task_id=None, instance_id=None) -> str:
    now = engine.clock.now()
    merged = {}
    for _pull, _res, kept, _duration in results:
        merged.update(kept)
    detail = {"job_id": job_id, "pulls": [{"connector": p["connector"], "operation": p["operation"],
                                           "fields": list(k), "request_id": r.request_id} for p, r, k, _ in results]}
    if kind == "pull" and human_task_id is not None and instance_id is not None:
        return _apply_pull(engine, job_id, worker, tid, entry, results, actor, human_task_id, instance_id, merged,
                           detail, now)
    with inline_step(engine) as s:
        job = s.get(Job, job_id, with_for_update=s.get_bind().dialect.name == "postgresql")
        if job is None or job.status != "pending" or job.locked_by != worker:
            return "skipped"
        h = s.get(HumanTask, job.payload.get("human_task_id")) if job.payload.get("human_task_id") else None
        if kind == "pull":
            if h is None or h.status != "waiting":
                job.status, job.locked_by, job.locked_until = "done", None, None
                job.last_error = "the task is no longer waiting"
                return "skipped"
            s.add(TaskPulled(human_task_id=h.id, instance_id=h.instance_id, data=to_jsonable(merged), at=now))
            h.status = "open"
            audit.append(s, engine.clock, actor, "pull", instance_id=h.instance_id, task_ref=entry.get("id"),
                         detail={**detail, "task_id": h.id})
        else:
            row, wf, manifest = engine.runtime._load(s, job.instance_id)
            task = _find(wf, tid)
            if task is None or task.state != TaskState.READY or row.status != "running":
                job.status, job.locked_by, job.locked_until = "done", None, None
                job.last_error = "the task is no longer waiting"
                return "skipped"
            rv = next((p.get("result_variable") for p, *_ in results if p.get("result_variable")), None)
            if rv:
                task.data[rv] = merged
            else:
                task.data.update(merged)
            if entry.get("licence"):
                # issued or revoked in this transaction, its fields in the data before the task completes
                task.data.update(licences.apply(s, engine, row.id, task, entry, actor))
            for name in task_scoped(entry):
                task.data.pop(name, None)  # pulled for this step only: never passed on (minimum necessary)

            def finish():
                task.complete()

            try:
                engine.runtime._steps(wf, finish)
            except EngineError as exc:
                exc.instance_id = row.id
                raise
            audit.append(s, engine.clock, actor, "service", instance_id=row.id, task_ref=entry.get("id"),
                         detail=detail)
            engine.runtime._save(s, row, wf, manifest, actor)
        for pull, res, kept, duration in results:
            _log(s, engine, kind, actor, job, h.id if h else None, entry, pull, "ok", source=res.source,
                 request_id=res.request_id, duration=duration, fields=list(kept), result_hash=_result_hash(kept))
        job.status, job.fired_at, job.locked_by, job.locked_until = "done", now, None, None
        job.attempts += 1
        job.payload = {k: v for k, v in job.payload.items() if k in ("human_task_id", "bpmn_id", "entry")}
        followups = new_jobs(s)
    engine._run_new_jobs(followups)
    return "done"


_JOB, _HT, _TP, _PL = Job.__table__, HumanTask.__table__, TaskPulled.__table__, PullLog.__table__
# built once: a pull's apply runs on every step that pulls, so no statement is constructed per call
_JOB_DONE = update(_JOB).where(_JOB.c.id == bindparam("b_id"), _JOB.c.status == "pending",
                               _JOB.c.locked_by == bindparam("b_worker")).values(
    status="done", fired_at=bindparam("b_now", type_=_JOB.c.fired_at.type), locked_by=None, locked_until=None,
    attempts=_JOB.c.attempts + 1, payload=bindparam("b_payload", type_=_JOB.c.payload.type))
_JOB_NOTE = update(_JOB).where(_JOB.c.id == bindparam("b_id")).values(last_error=bindparam("b_error"))
_TASK_OPEN = update(_HT).where(_HT.c.id == bindparam("b_id"), _HT.c.status == "waiting").values(status="open")
# SQLite: the same statements on the DBAPI cursor (engine/rawsql.py), a few microseconds each
_RAW_JOB_DONE, _RAW_TASK_OPEN = Prepared(_JOB_DONE), Prepared(_TASK_OPEN)
_RAW_PULLED = Prepared(_TP.insert(), ["human_task_id", "instance_id", "data", "at"])
_RAW_LOG = Prepared(_PL.insert(), [c.key for c in _PL.columns if c.key != "id"])
# PostgreSQL: the whole apply in one statement, sent with its lock and its commit in one round trip
# (psycopg's pipeline mode): the job is marked done only if still ours and pending (else noted), the
# task opened only if the job was, the fields, the pull log and the audit event written only if the
# task was. The audit event links to the chain's tail read in the same statement, under the chain's
# advisory lock taken by the statement before it, and is hashed in the database (audit.SQL_DIGEST)
_PG_LOCK = "SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(%(lock)s)"
_PG_APPLY = """
WITH j AS (
  UPDATE tb_job SET status = 'done', fired_at = %(now)s, locked_by = NULL, locked_until = NULL,
         attempts = attempts + 1, payload = CAST(%(payload)s AS JSON),
         last_error = CASE WHEN EXISTS (SELECT 1 FROM tb_human_task WHERE id = %(task_id)s AND status = 'waiting')
                      THEN last_error ELSE 'the task is no longer waiting' END
  WHERE id = %(job_id)s AND status = 'pending' AND locked_by = %(worker)s RETURNING id),
h AS (
  UPDATE tb_human_task SET status = 'open'
  WHERE id = %(task_id)s AND status = 'waiting' AND EXISTS (SELECT 1 FROM j) RETURNING id),
tp AS (
  INSERT INTO tb_task_pulled (human_task_id, instance_id, data, at)
  SELECT h.id, %(instance_id)s, CAST(%(data)s AS JSON), %(now)s FROM h RETURNING 1),
pl AS (
  INSERT INTO tb_pull_log (at, kind, actor, instance_id, human_task_id, task_ref, spiff_task_id, job_id,
                           connector, operation, fields, purpose, basis, source, request_id, duration_ms,
                           outcome, result_hash)
  SELECT %(now)s, 'pull', %(actor)s, %(instance_id)s, h.id, %(task_ref)s, %(spiff_task_id)s, %(job_id)s,
         r.connector, r.operation, r.fields, r.purpose, r.basis, r.source, r.request_id, r.duration_ms,
         'ok', r.result_hash
  FROM h CROSS JOIN json_to_recordset(CAST(%(logs)s AS JSON)) AS r(
    connector text, operation text, fields json, purpose text, basis text, source text, request_id text,
    duration_ms int, result_hash text)
  RETURNING 1),
t AS (
  SELECT COALESCE((SELECT hash FROM tb_audit ORDER BY id DESC LIMIT 1), %(genesis)s) AS prev),
a AS (
  INSERT INTO tb_audit (at, actor, action, instance_id, definition_id, task_ref, detail, prev_hash, hash)
  SELECT %(at)s, %(actor)s, 'pull', %(instance_id)s, NULL, %(task_ref)s, CAST(%(detail)s AS JSON), t.prev,
         """ + audit.SQL_DIGEST.format(prev="t.prev") + """
  FROM h CROSS JOIN t
  RETURNING 1)
SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM h)
"""


def _apply_pull(engine, job_id, worker, tid, entry, results, actor, human_task_id, instance_id, merged, detail, now):
    """Applying a pull: a few statements on one connection (compiled once), guarded by conditional
    updates (the job must still be ours and pending, the task still waiting); the instance row and
    its version are not touched. The fields go beside the human task and are merged into the
    workflow task's data at completion."""
    logs = [{"connector": pull["connector"], "operation": pull["operation"], "fields": list(kept),
             "purpose": pull.get("purpose") or "", "basis": pull.get("basis") or "",
             "source": (res.source or "")[:200], "request_id": (res.request_id or None) and str(res.request_id)[:100],
             "duration_ms": duration, "result_hash": _result_hash(kept)} for pull, res, kept, duration in results]
    payload = {"human_task_id": human_task_id, "bpmn_id": entry.get("id")}
    with engine.db.begin() as c:
        if c.dialect.name == "postgresql":
            return _pg_apply(engine, c, now, job_id, worker, tid, entry, actor, human_task_id, instance_id,
                             merged, detail, logs, payload)
        done = _RAW_JOB_DONE.execute(c, {"b_id": job_id, "b_worker": worker, "b_now": now,
                                         "b_payload": payload}) == 1
        opened = done and _RAW_TASK_OPEN.execute(c, {"b_id": human_task_id}) == 1
        if opened:
            _RAW_PULLED.execute(c, {"human_task_id": human_task_id, "instance_id": instance_id,
                                    "data": to_jsonable(merged), "at": now})
            _RAW_LOG.execute(c, [{"at": now, "kind": "pull", "actor": actor, "instance_id": instance_id,
                                  "human_task_id": human_task_id, "task_ref": entry.get("id"),
                                  "spiff_task_id": tid, "job_id": job_id, "outcome": "ok", "error": None,
                                  **log} for log in logs])
        if not done:
            return "skipped"  # another worker had it, or it is no longer pending: nothing was written
        if not opened:
            # the task was cancelled meanwhile (a boundary event, the instance ended): nothing to apply
            c.execute(_JOB_NOTE, {"b_id": job_id, "b_error": "the task is no longer waiting"})
            return "skipped"
        audit.append(c, engine.clock, actor, "pull", instance_id=instance_id, task_ref=entry.get("id"),
                     detail={**detail, "task_id": human_task_id})
    return "done"


def _pg_apply(engine, c, now, job_id, worker, tid, entry, actor, human_task_id, instance_id, merged, detail,
              logs, payload) -> str:
    """The apply on PostgreSQL: lock, apply, commit, one round trip. synchronous_commit is off for
    it: if this commit were lost in a crash, the job's done mark is lost with it and the pull is
    simply made again; any later durable commit flushes it anyway."""
    import psycopg

    at = engine.clock.now()
    detail = audit.as_stored({**detail, "task_id": human_task_id})
    params = {"now": now, "payload": json.dumps(payload), "job_id": job_id, "worker": worker,
              "task_id": human_task_id, "instance_id": instance_id,
              "data": json.dumps(to_jsonable(merged), ensure_ascii=False), "actor": actor,
              "task_ref": entry.get("id"), "spiff_task_id": tid, "logs": json.dumps(logs, ensure_ascii=False),
              "lock": audit.LOCK_KEY, "genesis": audit.GENESIS, "at": at,
              "detail": json.dumps(detail, ensure_ascii=False),
              "rest": audit.digest_rest(at, actor, "pull", instance_id, None, entry.get("id"), detail)}
    raw = c.connection.driver_connection
    c.info.pop("tb_audit_tail", None)  # this transaction's tail is kept by the database, not here
    with raw.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext():
        lock, apply = raw.cursor(), raw.cursor()
        lock.execute(_PG_LOCK, params)
        apply.execute(_PG_APPLY, params)
        raw.commit()  # sent with the statements; SQLAlchemy's commit at the block's end finds nothing to do
    job, task = apply.fetchone()
    return "done" if job == 1 and task == 1 else "skipped"


_PULLED = select(_TP.c.data).where(_TP.c.human_task_id == bindparam("b_id"))
def pulled_values(session, human_task_id: int) -> dict:
    """The fields pulled for a human task ({} before its pull applied). Rows are only ever written by
    the apply's own committed transaction, so a Core read on the session's connection is enough."""
    data = session.connection().execute(_PULLED, {"b_id": human_task_id}).scalar()
    return dict(data or {})


def _fail(engine, job_id, worker, kind, entry, results, failure, actor) -> str:
    pull, err, duration = failure
    with engine.sessions.begin() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != "pending" or job.locked_by != worker:
            return "skipped"
        h_id = (job.payload or {}).get("human_task_id")
        for p, res, kept, d in results:  # earlier pulls of this job did answer; they run again next time
            _log(s, engine, kind, actor, job, h_id, entry, p, "ok", source=res.source, request_id=res.request_id,
                 duration=d, fields=list(kept), result_hash=_result_hash(kept))
        if pull is not None:
            _log(s, engine, kind, actor, job, h_id, entry, pull, "error", duration=duration, error=str(err)[:2000])
        job.attempts += 1
        job.last_error = str(err)[:2000]
        job.locked_by = job.locked_until = None
        retryable = getattr(err, "retryable", True)
        if retryable and job.attempts < job.max_attempts:
            job.due_at = engine.clock.now() + jobs.backoff(job.attempts)
            log.warning("%s job %s failed (attempt %s), retrying: %s", kind, job_id, job.attempts, err)
            return "retry"
        job.status = "incident"
        err.element_id = entry.get("id")
        engine.runtime.record_incident(s, job.instance_id, err, kind=f"job:{kind}", job_id=job.id)
        log.error("%s job %s became an incident: %s", kind, job_id, err)
        return "incident"


def _finish_stale(engine, job_id, worker):
    with engine.sessions.begin() as s:
        job = s.get(Job, job_id)
        if job is not None and job.status == "pending" and job.locked_by == worker:
            job.status, job.locked_by, job.locked_until = "done", None, None
            job.last_error = "the task is no longer waiting"


def _find(wf, tid):
    try:
        return wf.get_task_from_id(UUID(tid))
    except (TaskNotFoundException, ValueError):
        return None


# ---- masking and the task page -------------------------------------------------------------
def sensitive_kind(output: dict, op_fields: dict) -> str | None:
    declared = output.get("sensitive")
    if declared in ("false", "no"):
        return None
    if declared and declared not in ("true", "yes"):
        return declared
    from_schema = (op_fields.get(output["name"]) or {}).get("sensitive")
    if declared or from_schema:
        return from_schema or masking.kind_of_field(output["as"]) or "other"
    return masking.kind_of_field(output["as"])


def may_see_full(output: dict, groups: set[str], roles: set[str]) -> bool:
    allowed = set(output.get("see_full") or [])
    return bool(allowed & (groups | roles | {f"role:{r}" for r in roles} | {f"group:{g}" for g in groups}))


def mask(value, kind: str):
    if isinstance(value, dict | list):
        return masking.mask_data(value, frozenset())
    if kind in ("other", "health"):
        kind = masking.kind_of_value(value) or "other"  # an ID number keeps its first 6 and last 4 anywhere
    return masking.mask_value(value, kind)
