"""The engine's front door: one object that holds the wiring (database, clock, caches)
and runs each operation in its own short transaction.

Adapters (CLI, web, worker) call these methods; a method that changes state commits once,
or rolls back entirely. A script failure is reported to the caller and recorded as an
incident in a separate transaction, so the failed step leaves nothing half-written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select

from . import audit, definitions, directory, jobs
from .clock import SYSTEM_CLOCK, Clock
from .db import make_engine, make_sessionmaker
from .errors import Conflict, NotAllowed, NotFound, ScriptError
from .models import (
    ApiToken,
    AuditEvent,
    Department,
    Group,
    HumanTask,
    Incident,
    Instance,
    LoginFailure,
    Membership,
    ProcessDefinition,
    TaskCandidate,
    User,
)
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

    def definition(self, definition_id: int) -> dict:
        """One deployed version with its source files (for the diagram) and manifest."""
        with self.readers() as s:
            d = s.get(ProcessDefinition, definition_id)
            if d is None:
                raise NotFound(f"no definition {definition_id}")
            return {"id": d.id, "key": d.key, "version": d.version, "name": d.name,
                    "deployed_at": _iso(d.deployed_at), "deployed_by": d.deployed_by,
                    "checksum": d.checksum, "manifest": d.manifest, "sources": d.sources}

    def versions(self, key: str) -> list[dict]:
        with self.readers() as s:
            rows = s.scalars(select(ProcessDefinition).where(ProcessDefinition.key == key)
                             .order_by(ProcessDefinition.version.desc()))
            return [{"id": d.id, "key": d.key, "version": d.version, "name": d.name,
                     "deployed_at": _iso(d.deployed_at), "deployed_by": d.deployed_by} for d in rows]

    @staticmethod
    def check(files: dict[str, bytes]) -> dict:
        """Validate an upload without deploying it: {"keys": [...], "problems": [...]}."""
        keys, problems = definitions.check(files)
        return {"keys": keys, "problems": [p.as_dict() for p in problems]}

    # ---- users, departments, sign-in, tokens --------------------------------------------
    def add_user(self, name: str, groups=(), display_name: str = "", *, roles=None, password: str | None = None,
                 department: str | None = None, actor: str = "system") -> dict:
        with self.sessions.begin() as s:
            u = directory.add_user(s, self.clock, name, list(groups), display_name)
            if roles is not None:
                directory.set_roles(u, roles)
            if password is not None:
                u.password_hash = directory.hash_password(password)
            if department is not None:
                u.department_id = self._department(s, department).id
            audit.append(s, self.clock, actor, "user.add",
                         detail={"user": name, "groups": list(groups), "roles": list(roles or [])})
            return self._user_dict(s, u)

    def set_password(self, name: str, password: str, actor: str = "system") -> None:
        with self.sessions.begin() as s:
            u = directory.get_user(s, name)
            u.password_hash = directory.hash_password(password)
            audit.append(s, self.clock, actor, "user.password", detail={"user": name})

    def set_active(self, name: str, active: bool, actor: str = "system") -> dict:
        with self.sessions.begin() as s:
            u = s.scalars(select(User).where(User.name == name)).first()
            if u is None:
                raise NotFound(f"no user '{name}'")
            u.active = active
            audit.append(s, self.clock, actor, "user.activate" if active else "user.deactivate",
                         detail={"user": name})
            return self._user_dict(s, u)

    def _department(self, s, code: str) -> Department:
        d = s.scalars(select(Department).where(Department.code == code)).first()
        if d is None:
            raise NotFound(f"no department '{code}'")
        return d

    @staticmethod
    def _user_dict(s, u: User) -> dict:
        dept = s.get(Department, u.department_id) if u.department_id else None
        return {"name": u.name, "display_name": u.display_name, "groups": sorted(directory.group_names(u)),
                "roles": sorted(u.roles or []), "active": u.active,
                "department": dept.code if dept else None, "department_name": dept.name if dept else None}

    def users(self) -> list[dict]:
        with self.readers() as s:
            return [self._user_dict(s, u) for u in directory.list_users(s)]

    def user(self, name: str) -> dict:
        with self.readers() as s:
            return self._user_dict(s, directory.get_user(s, name))

    def add_department(self, code: str, name: str, level: int, parent: str | None = None,
                       actor: str = "system") -> dict:
        with self.sessions.begin() as s:
            d = directory.ensure_department(s, code, name, level, parent)
            audit.append(s, self.clock, actor, "department.add",
                         detail={"code": code, "name": name, "level": level, "parent": parent})
            return {"id": d.id, "code": d.code, "name": d.name, "level": d.level, "parent": parent}

    def departments(self) -> list[dict]:
        with self.readers() as s:
            rows = list(s.scalars(select(Department).order_by(Department.level, Department.code)))
            codes = {d.id: d.code for d in rows}
            return [{"id": d.id, "code": d.code, "name": d.name, "level": d.level,
                     "level_name": directory.LEVELS[d.level], "parent": codes.get(d.parent_id)} for d in rows]

    def set_group_department(self, group: str, department: str | None, actor: str = "system") -> None:
        with self.sessions.begin() as s:
            g = directory.ensure_group(s, group)
            g.department_id = self._department(s, department).id if department else None
            audit.append(s, self.clock, actor, "group.department", detail={"group": group, "department": department})

    def groups(self) -> list[dict]:
        with self.readers() as s:
            depts = {d.id: d.code for d in s.scalars(select(Department))}
            members: dict[int, int] = dict(s.execute(
                select(Membership.group_id, func.count()).group_by(Membership.group_id)).all())
            return [{"name": g.name, "display_name": g.display_name, "department": depts.get(g.department_id),
                     "members": members.get(g.id, 0)}
                    for g in s.scalars(select(Group).order_by(Group.name))]

    LOGIN_WINDOW = timedelta(minutes=15)
    LOGIN_LIMIT = 5

    def sign_in(self, name: str, password: str, client: str = "") -> dict | None:
        """The user on a correct password; None on a wrong one; NotAllowed after too many failures
        for this name or this client within 15 minutes (the limit holds across web workers)."""
        keys = [f"user:{name}"] + ([f"client:{client}"] if client else [])
        blocked = False
        with self.sessions.begin() as s:
            since = self.clock.now() - self.LOGIN_WINDOW
            for key in keys:
                failures = s.scalar(select(func.count()).select_from(LoginFailure).where(
                    LoginFailure.key == key, LoginFailure.at >= since))
                blocked = blocked or failures >= self.LOGIN_LIMIT
            if blocked:
                audit.append(s, self.clock, name[:100] or "-", "sign_in.blocked", detail={"client": client})
            else:
                u = s.scalars(select(User).where(User.name == name)).first()
                if u is not None and directory.check_password(u, password):
                    s.execute(delete(LoginFailure).where(LoginFailure.key == f"user:{name}"))
                    audit.append(s, self.clock, name, "sign_in", detail={"client": client})
                    return self._user_dict(s, u)
                for key in keys:
                    s.add(LoginFailure(key=key, at=self.clock.now()))
                audit.append(s, self.clock, name[:100] or "-", "sign_in.failed", detail={"client": client})
        if blocked:
            raise NotAllowed("too many failed sign-ins; try again in 15 minutes")
        return None

    def issue_token(self, user_name: str, name: str, actor: str) -> dict:
        """A new bearer token; the secret is returned once and only its hash is stored."""
        with self.sessions.begin() as s:
            row, secret = directory.issue_token(s, self.clock, user_name, name, actor)
            audit.append(s, self.clock, actor, "token.issue", detail={"token_id": row.id, "user": user_name})
            return {"id": row.id, "name": name, "user": user_name, "token": secret}

    def tokens(self) -> list[dict]:
        with self.readers() as s:
            return [{"id": t.id, "name": t.name, "user": t.user_name, "created_by": t.created_by,
                     "created_at": _iso(t.created_at), "revoked": t.revoked_at is not None}
                    for t in s.scalars(select(ApiToken).order_by(ApiToken.id))]

    def revoke_token(self, token_id: int, actor: str) -> None:
        with self.sessions.begin() as s:
            row = s.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"no token {token_id}")
            row.revoked_at = row.revoked_at or self.clock.now()
            audit.append(s, self.clock, actor, "token.revoke", detail={"token_id": token_id})

    def user_for_token(self, token: str) -> dict | None:
        with self.readers() as s:
            u = directory.user_for_token(s, token)
            return self._user_dict(s, u) if u is not None else None

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

    def unclaim(self, task_id: int, actor: str, *, force: bool = False) -> dict:
        with self.sessions.begin() as s:
            return task_dict(self.runtime.unclaim(s, task_id, actor, force=force))

    def complete(self, task_id: int, actor: str, data: dict | None = None, decision: str | None = None,
                 opinion: str | None = None) -> dict:
        def run(s):
            row = self.runtime.complete(s, task_id, actor, data, decision, opinion)
            return {"instance_id": row.id, "status": row.status}

        try:
            return self._guarded(run)
        except Conflict as exc:
            # two clerks on one task: the loser learns who completed it
            with self.readers() as s:
                h = s.get(HumanTask, task_id)
                if h is not None and h.status == "completed" and "already completed" not in str(exc):
                    raise Conflict(f"task {task_id} was already completed by {h.completed_by}") from exc
            raise

    def task(self, task_id: int, user: str | None = None) -> dict:
        """A task with its form, outcomes, the instance data and history, for the task page.

        With ``user``, only a candidate, the assignee or whoever completed it may read it."""
        with self.readers() as s:
            h = s.get(HumanTask, task_id)
            if h is None:
                raise NotFound(f"no task {task_id}")
            if user is not None and h.completed_by != user and not self.runtime.may_act(s, h, user):
                raise NotAllowed(f"{user} may not see task {task_id}")
            row = s.get(Instance, h.instance_id)
            spec, subs, manifest = self.specs.get(s, row.definition_id)
            entry = manifest["tasks"].get(h.bpmn_id, {})
            out = task_dict(h)
            out.update({
                "form": entry.get("form_fields") or [], "outcomes": entry.get("outcomes") or [],
                "opinion_required": bool(entry.get("opinion_required")), "decision": h.decision,
                "opinion": h.opinion, "completed_at": _iso(h.completed_at), "definition_id": row.definition_id,
                "instance": {"id": row.id, "status": row.status, "business_key": row.business_key,
                             "started_by": row.started_by, "started_at": _iso(row.started_at)},
                "data": row.data or {},
                "sensitive": sorted(f["id"] for f in entry.get("form_fields") or [] if f.get("sensitive")),
            })
            return out

    def trail(self, instance_id: int | None = None, limit: int = 500) -> list[dict]:
        """Audit events of one instance (oldest first), or the newest events overall."""
        with self.readers() as s:
            if instance_id is not None:
                if s.get(Instance, instance_id) is None:
                    raise NotFound(f"no instance {instance_id}")
                events = audit.trail(s, instance_id)
            else:
                events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))
            return [{"id": e.id, "at": _iso(e.at), "actor": e.actor, "action": e.action,
                     "instance_id": e.instance_id, "task": e.task_ref, "detail": e.detail, "hash": e.hash}
                    for e in events]

    def send_message(self, name: str, payload=None, correlation=None, business_key=None, actor="system") -> dict:
        return self._guarded(lambda s: {"delivered_to": self.runtime.send_message(
            s, name, payload=payload, correlation=correlation, business_key=business_key, actor=actor)})

    def _task_query(self, s, *, instance_id=None, user=None, group=None, status="open", process_key=None,
                    scope="all", department=None, due_before=None):
        q = select(HumanTask)
        if status != "all":
            q = q.where(HumanTask.status == status)
        if instance_id is not None:
            q = q.where(HumanTask.instance_id == instance_id)
        if process_key:
            q = q.where(HumanTask.process_key == process_key)
        if due_before is not None:
            q = q.where(HumanTask.due_at.is_not(None), HumanTask.due_at <= due_before)
        if group:
            q = q.where(HumanTask.id.in_(select(TaskCandidate.task_id).where(
                TaskCandidate.kind == "group", TaskCandidate.name == group)))
        if department:
            dept = s.scalars(select(Department).where(Department.code == department)).first()
            if dept is None:
                raise NotFound(f"no department '{department}'")
            groups = select(Group.name).where(Group.department_id.in_(directory.department_subtree(s, dept.id)))
            q = q.where(HumanTask.id.in_(select(TaskCandidate.task_id).where(
                TaskCandidate.kind == "group", TaskCandidate.name.in_(groups))))
        if user:
            names = directory.groups_of(s, user)
            visible = select(TaskCandidate.task_id).where(or_(
                (TaskCandidate.kind == "user") & (TaskCandidate.name == user),
                (TaskCandidate.kind == "group") & TaskCandidate.name.in_(names or {""})))
            mine = HumanTask.assignee == user
            unclaimed = HumanTask.assignee.is_(None) & HumanTask.id.in_(visible)
            q = q.where(mine if scope == "mine" else unclaimed if scope == "unclaimed" else or_(mine, unclaimed))
        return q

    def tasks(self, *, instance_id: int | None = None, user: str | None = None, group: str | None = None,
              status: str = "open", process_key: str | None = None, scope: str = "all",
              department: str | None = None, due_before: datetime | None = None,
              limit: int | None = None, offset: int = 0) -> list[dict]:
        """Open tasks (or ``status``), sorted by due time. With ``user``: the tasks the user holds
        and the unclaimed tasks of the user's groups (``scope`` mine | unclaimed | all)."""
        with self.readers() as s:
            q = self._task_query(s, instance_id=instance_id, user=user, group=group, status=status,
                                 process_key=process_key, scope=scope, department=department,
                                 due_before=due_before)
            q = q.order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id).offset(offset)
            if limit is not None:
                q = q.limit(limit)
            return [task_dict(h) for h in s.scalars(q)]

    def task_counts(self, user: str) -> dict:
        """Counts for the navigation: tasks I hold, my groups' unclaimed tasks, overdue among them."""
        with self.readers() as s:
            now = self.clock.now()
            out = {}
            for scope in ("mine", "unclaimed"):
                q = self._task_query(s, user=user, scope=scope)
                out[scope] = s.scalar(select(func.count()).select_from(q.subquery()))
            q = self._task_query(s, user=user, due_before=now)
            out["overdue"] = s.scalar(select(func.count()).select_from(q.subquery()))
            return out

    def instances(self, status: str | None = None, limit: int = 200) -> list[dict]:
        with self.readers() as s:
            q = select(Instance).order_by(Instance.id.desc()).limit(limit)
            if status:
                q = q.where(Instance.status == status)
            return [{"id": i.id, "process_key": i.process_key, "business_key": i.business_key,
                     "status": i.status, "started_at": _iso(i.started_at), "ended_at": _iso(i.ended_at)}
                    for i in s.scalars(q)]

    @staticmethod
    def _involving(s, user: str):
        """Ids of the instances ``user`` started or has a task in (holds, completed, or may claim)."""
        names = directory.groups_of(s, user)
        candidate = select(TaskCandidate.task_id).where(or_(
            (TaskCandidate.kind == "user") & (TaskCandidate.name == user),
            (TaskCandidate.kind == "group") & TaskCandidate.name.in_(names or {""})))
        return (select(Instance.id).where(Instance.started_by == user)
                .union(select(HumanTask.instance_id).where(or_(HumanTask.assignee == user,
                                                               HumanTask.completed_by == user)))
                .union(select(HumanTask.instance_id).where(HumanTask.status == "open",
                                                           HumanTask.assignee.is_(None),
                                                           HumanTask.id.in_(candidate))))

    def instances_for(self, user: str | None = None, *, status: str | None = None, process_key: str | None = None,
                      business_key: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
        """Instances, newest first; with ``user`` only those the user started or has a task in."""
        with self.readers() as s:
            q = select(Instance)
            if user is not None:
                q = q.where(Instance.id.in_(self._involving(s, user)))
            if status:
                q = q.where(Instance.status == status)
            if process_key:
                q = q.where(Instance.process_key == process_key)
            if business_key:
                q = q.where(Instance.business_key == business_key)
            q = q.order_by(Instance.id.desc()).limit(limit).offset(offset)
            return [{"id": i.id, "process_key": i.process_key, "business_key": i.business_key,
                     "status": i.status, "definition_id": i.definition_id, "started_by": i.started_by,
                     "started_at": _iso(i.started_at), "ended_at": _iso(i.ended_at)}
                    for i in s.scalars(q)]

    def may_see_instance(self, instance_id: int, user: str) -> bool:
        """NotFound if there is no such instance; else whether ``user`` started it or has a task in it."""
        with self.readers() as s:
            if s.get(Instance, instance_id) is None:
                raise NotFound(f"no instance {instance_id}")
            inv = self._involving(s, user).subquery()
            return s.scalar(select(func.count()).select_from(inv).where(inv.c[0] == instance_id)) > 0

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

    def progress(self, instance_id: int) -> dict:
        """BPMN element ids of one instance by state, for diagram highlighting:
        completed, active (ready or running), waiting (timers, messages) and error.
        Read from the stored workflow state (never the hot cache, which actions take from)."""
        from SpiffWorkflow.util.task import TaskState

        from .serialization import load_state

        with self.readers() as s:
            row = s.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            spec, subs, _manifest = self.specs.get(s, row.definition_id)
            wf = load_state(row.state, spec, subs, self.runtime._script_engine)
        out: dict[str, set] = {"completed": set(), "active": set(), "waiting": set(), "error": set()}
        for t in wf.get_tasks():
            bpmn_id = getattr(t.task_spec, "bpmn_id", None)
            if not bpmn_id:
                continue
            if t.state == TaskState.COMPLETED:
                out["completed"].add(bpmn_id)
            elif t.state in (TaskState.READY, TaskState.STARTED):
                out["active"].add(bpmn_id)
            elif t.state == TaskState.WAITING:
                out["waiting"].add(bpmn_id)
            elif t.state == TaskState.ERROR:
                out["error"].add(bpmn_id)
        # a loop or multi-instance element can be both done and running: show it as running
        out["completed"] -= out["active"] | out["waiting"] | out["error"]
        return {k: sorted(v) for k, v in out.items()}

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
