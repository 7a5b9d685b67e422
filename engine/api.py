"""The engine's front door: one object that holds the wiring (database, clock, caches)
and runs each operation in its own short transaction.

Adapters (CLI, web, worker) call these methods; a method that changes state commits once,
or rolls back entirely. A script failure is reported to the caller and recorded as an
incident in a separate transaction, so the failed step leaves nothing half-written.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from . import audit, definitions, directory, jobs
from .clock import SYSTEM_CLOCK, Clock
from .db import make_engine, make_sessionmaker
from .errors import NotAllowed, NotFound, ScriptError
from .models import HumanTask, Incident, Instance, ProcessDefinition, TaskCandidate
from .runtime import Runtime
from .scripts import make_script_engine


def task_dict(h: HumanTask) -> dict:
    return {
        "id": h.id, "instance_id": h.instance_id, "bpmn_id": h.bpmn_id, "name": h.name, "lane": h.lane,
        "candidate_groups": list(h.candidate_groups or []), "assignee": h.assignee, "status": h.status,
        "due_at": h.due_at.isoformat() if h.due_at else None,
        "candidate_users": list(h.candidate_users or []), "process_key": h.process_key,
        "form_key": h.form_key, "created_at": h.created_at.isoformat(),
        "completed_by": h.completed_by,
    }


def _iso(value: datetime | None):
    return value.isoformat() if value else None


class Engine:
    def __init__(self, url: str | None = None, *, clock: Clock = SYSTEM_CLOCK, script_timeout: float | None = None,
                 db_engine=None):
        self.db = db_engine or make_engine(url)
        self.sessions = make_sessionmaker(self.db)
        self.readers = make_sessionmaker(self.db, readonly=True)
        self.clock = clock
        self.specs = definitions.SpecCache()
        timeout = script_timeout
        self.runtime = Runtime(self.specs, clock,
                               lambda: make_script_engine() if timeout is None else make_script_engine(timeout))
        self.job_handlers = {"timer": self.runtime.fire_timer}

    # ---- schema -------------------------------------------------------------------------
    def upgrade(self) -> None:
        from .migrate import upgrade

        upgrade(self.db.url.render_as_string(hide_password=False))

    # ---- definitions --------------------------------------------------------------------
    def deploy(self, files: dict[str, bytes], actor: str = "system") -> list[definitions.Deployed]:
        with self.sessions.begin() as s:
            return definitions.deploy(s, files, actor=actor, clock=self.clock)

    def deploy_paths(self, paths, actor: str = "system"):
        return self.deploy(definitions.read_paths(paths), actor=actor)

    def definitions(self) -> list[dict]:
        with self.readers() as s:
            return [{"id": d.id, "key": d.key, "version": d.version, "name": d.name,
                     "deployed_at": _iso(d.deployed_at), "tasks": len(d.manifest.get("tasks", {}))}
                    for d in definitions.list_definitions(s)]

    # ---- users --------------------------------------------------------------------------
    def add_user(self, name: str, groups=(), display_name: str = "") -> dict:
        with self.sessions.begin() as s:
            u = directory.add_user(s, self.clock, name, list(groups), display_name)
            audit.append(s, self.clock, "system", "user.add", detail={"user": name, "groups": list(groups)})
            return {"name": u.name, "groups": sorted(directory.group_names(u))}

    def users(self) -> list[dict]:
        with self.readers() as s:
            return [{"name": u.name, "groups": sorted(directory.group_names(u))} for u in directory.list_users(s)]

    # ---- instances ----------------------------------------------------------------------
    def _guarded(self, fn):
        try:
            with self.sessions.begin() as s:
                return fn(s)
        except ScriptError as exc:
            # the failed workflow left the hot cache when it was loaded; only the incident remains to write
            with self.sessions.begin() as s:
                exc.incident_id = self.runtime.record_incident(s, getattr(exc, "instance_id", None), exc).id
            raise

    def start(self, key: str, data: dict | None = None, business_key: str | None = None,
              actor: str = "system") -> dict:
        def run(s):
            if actor != "system":
                directory.get_user(s, actor)
            definition = definitions.latest_definition(s, key)
            row = self.runtime.start(s, definition, data=data, business_key=business_key, actor=actor)
            return {"instance_id": row.id, "status": row.status}

        return self._guarded(run)

    def claim(self, task_id: int, actor: str) -> dict:
        with self.sessions.begin() as s:
            return task_dict(self.runtime.claim(s, task_id, actor))

    def complete(self, task_id: int, actor: str, data: dict | None = None, decision: str | None = None,
                 opinion: str | None = None) -> dict:
        def run(s):
            row = self.runtime.complete(s, task_id, actor, data, decision, opinion)
            return {"instance_id": row.id, "status": row.status}

        return self._guarded(run)

    def send_message(self, name: str, payload=None, correlation=None, business_key=None, actor="system") -> dict:
        return self._guarded(lambda s: {"delivered_to": self.runtime.send_message(
            s, name, payload=payload, correlation=correlation, business_key=business_key, actor=actor)})

    def tasks(self, *, instance_id: int | None = None, user: str | None = None, group: str | None = None,
              status: str = "open") -> list[dict]:
        with self.readers() as s:
            q = select(HumanTask)
            if status != "all":
                q = q.where(HumanTask.status == status)
            if instance_id is not None:
                q = q.where(HumanTask.instance_id == instance_id)
            if group:
                q = q.where(HumanTask.id.in_(select(TaskCandidate.task_id).where(
                    TaskCandidate.kind == "group", TaskCandidate.name == group)))
            if user:
                names = directory.groups_of(s, user)
                visible = select(TaskCandidate.task_id).where(or_(
                    (TaskCandidate.kind == "user") & (TaskCandidate.name == user),
                    (TaskCandidate.kind == "group") & TaskCandidate.name.in_(names or {""})))
                q = q.where(or_(HumanTask.assignee == user,
                                HumanTask.assignee.is_(None) & HumanTask.id.in_(visible)))
            q = q.order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id)
            return [task_dict(h) for h in s.scalars(q)]

    def instances(self, status: str | None = None, limit: int = 200) -> list[dict]:
        with self.readers() as s:
            q = select(Instance).order_by(Instance.id.desc()).limit(limit)
            if status:
                q = q.where(Instance.status == status)
            return [{"id": i.id, "process_key": i.process_key, "business_key": i.business_key,
                     "status": i.status, "started_at": _iso(i.started_at), "ended_at": _iso(i.ended_at)}
                    for i in s.scalars(q)]

    def show(self, instance_id: int) -> dict:
        with self.readers() as s:
            row = s.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            open_tasks = [task_dict(h) for h in s.scalars(select(HumanTask).where(
                HumanTask.instance_id == row.id, HumanTask.status == "open"))]
            history = [{"at": _iso(e.at), "actor": e.actor, "action": e.action, "task": e.task_ref,
                        "detail": e.detail} for e in audit.trail(s, row.id)]
            incidents = [{"id": i.id, "kind": i.kind, "element_id": i.element_id, "message": i.message,
                          "created_at": _iso(i.created_at), "resolved": i.resolved_at is not None}
                         for i in s.scalars(select(Incident).where(Incident.instance_id == row.id))]
            definition = s.get(ProcessDefinition, row.definition_id)
            return {"id": row.id, "process_key": row.process_key, "business_key": row.business_key,
                    "status": row.status, "version": row.version, "definition_id": row.definition_id,
                    "definition_version": definition.version, "data": row.data,
                    "started_by": row.started_by, "started_at": _iso(row.started_at),
                    "ended_at": _iso(row.ended_at), "open_tasks": open_tasks, "history": history,
                    "incidents": incidents}

    # ---- jobs ---------------------------------------------------------------------------
    def run_due_jobs(self, worker: str = "local", limit: int = 50) -> dict[str, int]:
        with self.sessions.begin() as s:
            ids = jobs.claim(s, self.clock, worker, limit)
        outcome: dict[str, int] = {}
        for job_id in ids:
            result = jobs.run_claimed(self.sessions, self, job_id, worker)
            outcome[result] = outcome.get(result, 0) + 1
        return outcome

    # ---- audit --------------------------------------------------------------------------
    def verify_audit(self) -> audit.Verification:
        with self.readers() as s:
            return audit.verify(s)


__all__ = ["Engine", "NotAllowed", "NotFound"]
