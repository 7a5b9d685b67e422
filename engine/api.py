"""The engine's front door: one object that holds the wiring (database, clock, caches)
and runs each operation in its own short transaction.

Adapters (CLI, web, worker) call these methods; a method that changes state commits once,
or rolls back entirely. A script failure is reported to the caller and recorded as an
incident in a separate transaction, so the failed step leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import os
from datetime import date, datetime, timedelta

from sqlalchemy import ARRAY, BigInteger, any_, case, cast, delete, false, func, or_, select, union
from sqlalchemy.orm.exc import StaleDataError

from . import audit, definitions, directory, flowcheck, forms, jobs, masking, pulllog, pulls, sealing
from . import calendar as workcal
from .approval import ApprovalMixin
from .clock import SYSTEM_CLOCK, Clock
from .db import make_engine, make_sessionmaker
from .errors import Conflict, Invalid, NotAllowed, NotFound, ScriptError
from .escalation import SlaMixin
from .licences import LicenceMixin
from .models import (
    ApiToken,
    AuditEvent,
    CalendarDay,
    CalendarYear,
    Department,
    EndedSession,
    Group,
    HumanTask,
    Incident,
    Instance,
    Job,
    LoginFailure,
    Membership,
    ProcessDefinition,
    PullLog,
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


class Engine(SlaMixin, ApprovalMixin, LicenceMixin):
    def __init__(self, url: str | None = None, *, clock: Clock = SYSTEM_CLOCK, script_timeout: float | None = None,
                 db_engine=None, connectors=None):
        self.db = db_engine or make_engine(url)
        self.sessions = make_sessionmaker(self.db)
        self.readers = make_sessionmaker(self.db, readonly=True)
        self.clock = clock
        self.specs = definitions.SpecCache()
        timeout = script_timeout
        self.runtime = Runtime(self.specs, clock,
                               lambda: make_script_engine() if timeout is None else make_script_engine(timeout))
        self.job_handlers = {"timer": self.runtime.fire_timer}
        from .connectors import default_registry

        self.connector_registry = connectors if connectors is not None else default_registry()
        self.connector_pool = pulls.ConnectorPool(self.connector_registry)
        self.run_pulls_inline = True  # run the pull jobs an action created right after its commit
        # and write their requests while the action is saved (connectors that can: http, exchange)
        self.send_pulls_early = os.environ.get("TONGBAN_PULLS_EARLY", "1") != "0"
        self.runtime.calendar_provider = self.calendar
        self._init_sla()  # SLA and e-mail job handlers (engine/escalation.py)

    # ---- schema -------------------------------------------------------------------------
    def upgrade(self) -> None:
        from .migrate import upgrade

        upgrade(self.db.url.render_as_string(hide_password=False))

    # ---- definitions --------------------------------------------------------------------
    def deploy(self, files: dict[str, bytes], actor: str = "system") -> list[definitions.Deployed]:
        flowcheck.raise_for_errors(files, self.connector_registry)
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
        if not problems:
            problems = flowcheck.deploy_problems(files)
            keys = [] if problems else keys
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
        """A new password; it ends the user's web sessions signed in before."""
        with self.sessions.begin() as s:
            u = directory.get_user(s, name)
            u.password_hash = directory.hash_password(password)
            u.session_epoch = (u.session_epoch or 0) + 1
            audit.append(s, self.clock, actor, "user.password", detail={"user": name})

    def end_sessions(self, name: str, actor: str | None = None) -> None:
        """Sign out everywhere: every web session of the user signed in so far ends (the session
        cookie alone cannot be taken back). Audit ``sign_out``."""
        with self.sessions.begin() as s:
            u = s.scalars(select(User).where(User.name == name)).first()
            if u is None:
                return
            u.session_epoch = (u.session_epoch or 0) + 1
            audit.append(s, self.clock, actor or name, "sign_out", detail={"user": name, "reason": "everywhere"})

    SESSION_KEEP = timedelta(days=31)  # as long as a session cookie can live (Flask's default lifetime)

    def end_session(self, name: str, sid: str, reason: str = "sign_out") -> None:
        """End one web session (``sid`` from its cookie): this browser and any copy of its cookie are
        signed out, the user's other sessions go on. ``reason``: sign_out | idle | expired.
        Audit ``sign_out`` with the reason."""
        now = self.clock.now()
        with self.sessions.begin() as s:
            s.execute(delete(EndedSession).where(EndedSession.ended_at < now - self.SESSION_KEEP))
            if s.get(EndedSession, sid) is None:
                s.add(EndedSession(sid=sid[:64], user_name=name[:100], ended_at=now, reason=reason[:20]))
                audit.append(s, self.clock, name, "sign_out", detail={"user": name, "reason": reason})

    def session_user(self, name: str, epoch, sid: str | None = None) -> dict | None:
        """The user of a web session, or None when the session has ended (signed out in this
        browser, everywhere, a new password, deactivated, or no such user)."""
        with self.readers() as s:
            ended = select(EndedSession.sid).where(EndedSession.sid == sid).exists() if sid else false()
            got = s.execute(select(User, ended).where(User.name == name)).first()
            if got is None or got[1]:
                return None
            u = got[0]
            if not u.active or epoch != u.session_epoch:
                return None
            return self._user_dict(s, u)

    def set_active(self, name: str, active: bool, actor: str = "system") -> dict:
        with self.sessions.begin() as s:
            u = s.scalars(select(User).where(User.name == name)).first()
            if u is None:
                raise NotFound(f"no user '{name}'")
            u.active = active
            if not active:
                u.session_epoch = (u.session_epoch or 0) + 1
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
    # failed sign-ins within the window that block further tries: a name from one client (someone
    # guessing at that desk), one client whatever the names (spraying a password over many names;
    # higher, as an office signs in behind one address), one name whatever the clients (guessing
    # from many addresses; higher, so that a few wrong guesses elsewhere do not lock a clerk out)
    LOGIN_LIMIT = 5
    LOGIN_LIMIT_CLIENT = 30
    LOGIN_LIMIT_USER = 20

    def sign_in(self, name: str, password: str, client: str = "") -> dict | None:
        """The user on a correct password; None on a wrong one; NotAllowed when failures within 15
        minutes reach a limit for this name at this client, for this client, or for this name (the
        limits hold across web workers)."""
        limits = {f"pair:{client}|{name}"[:200]: self.LOGIN_LIMIT, f"user:{name}"[:200]: self.LOGIN_LIMIT_USER}
        if client:
            limits[f"client:{client}"[:200]] = self.LOGIN_LIMIT_CLIENT
        blocked = None
        with self.sessions.begin() as s:
            since = self.clock.now() - self.LOGIN_WINDOW
            counts = dict(s.execute(select(LoginFailure.key, func.count()).where(
                LoginFailure.key.in_(list(limits)), LoginFailure.at >= since).group_by(LoginFailure.key)).all())
            blocked = next((key.split(":", 1)[0] for key, limit in limits.items() if counts.get(key, 0) >= limit), None)
            if blocked:
                audit.append(s, self.clock, name[:100] or "-", "sign_in.blocked",
                             detail={"client": client, "by": blocked})
            else:
                u = s.scalars(select(User).where(User.name == name)).first()
                if directory.check_password(u, password):  # as long for an unknown name
                    # this desk's own failures are forgiven; those counted for the name elsewhere stay
                    s.execute(delete(LoginFailure).where(LoginFailure.key == f"pair:{client}|{name}"[:200]))
                    audit.append(s, self.clock, name, "sign_in", detail={"client": client})
                    return {**self._user_dict(s, u), "session_epoch": u.session_epoch}
                s.execute(delete(LoginFailure).where(LoginFailure.at < since))  # the table keeps one window
                for key in limits:
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

    def display_names(self) -> dict[str, str]:
        """{user name: display name} for every user, in one query (for showing who holds what)."""
        with self.readers() as s:
            return {n: d or n for n, d in s.execute(select(User.name, User.display_name))}

    def user_for_token(self, token: str) -> dict | None:
        """The active user a live bearer token belongs to (two queries: user+department, groups)."""
        with self.readers() as s:
            row = s.execute(
                select(User, Department.code, Department.name)
                .join(ApiToken, ApiToken.user_name == User.name)
                .outerjoin(Department, Department.id == User.department_id)
                .where(ApiToken.token_hash == directory.token_digest(token), ApiToken.revoked_at.is_(None),
                       User.active.is_(True))).first()
            if row is None:
                return None
            u, code, dept_name = row
            return {"name": u.name, "display_name": u.display_name, "groups": sorted(directory.group_names(u)),
                    "roles": sorted(u.roles or []), "active": u.active, "department": code,
                    "department_name": dept_name}

    # ---- instances ----------------------------------------------------------------------
    def _guarded(self, fn):
        try:
            with pulls.inline_step(self) as s:
                result = fn(s)
                created = pulls.new_jobs(s)
            self._run_new_jobs(created)
            return result
        except StaleDataError as exc:
            # another writer committed the instance first and a flush before the step's own guarded
            # one met it (an autoflush in a query): the same lost race, the same answer
            raise Conflict("the instance was changed by someone else meanwhile; reload and try again") from exc
        except ScriptError as exc:
            # the failed workflow left the hot cache when it was loaded; only the incident remains to write
            with self.sessions.begin() as s:
                exc.incident_id = self.runtime.record_incident(s, getattr(exc, "instance_id", None), exc).id
            raise

    def start(self, key: str, data: dict | None = None, business_key: str | None = None,
              actor: str = "system") -> dict:
        def run(s):
            definition = definitions.latest_for(s, key, actor)  # and the starter is a user
            start_data = data
            fields = self.start_form(definition)
            if fields:  # the start event declares a form: the applicant's data must satisfy it
                start_data = forms.with_defaults(fields, forms.validate(fields, data if data is not None else {}))
            row = self.runtime.start(s, definition, data=start_data, business_key=business_key, actor=actor)
            return {"instance_id": row.id, "status": row.status}

        return self._guarded(run)

    def start_fields(self, key: str) -> list[dict]:
        """The start form of the latest version of ``key`` ([] when none); NotFound for an unknown key."""
        with self.readers() as s:
            return self.start_form(definitions.latest_definition(s, key))

    def start_form(self, definition) -> list[dict]:
        """The form fields of a deployed version's start event ([] when it declares none);
        read once per version (a version never changes)."""
        cache = self.__dict__.setdefault("_start_forms", {})
        if definition.id not in cache:
            cache[definition.id] = forms.start_form_fields(definition.sources or {}, definition.key)
        return cache[definition.id]

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
        except NotAllowed as exc:
            # on PostgreSQL (read committed) the loser can read the task row before the winner commits
            # and the instance after it: the workflow then says "not ready". For a candidate that is the
            # same lost race, so it gets the same conflict.
            with self.readers() as s:
                h = s.get(HumanTask, task_id)
                if (h is not None and h.status == "completed" and h.completed_by != actor
                        and (actor in (h.candidate_users or [])
                             or directory.groups_of(s, actor) & set(h.candidate_groups or []))):
                    raise Conflict(f"task {task_id} was already completed by {h.completed_by}") from exc
            raise

    def task(self, task_id: int, user: str | None = None) -> dict:
        """A task with its form, outcomes, the instance data and history, for the task page.

        With ``user``, only a candidate, the assignee or whoever completed it may read it."""
        with self.readers() as s:
            h = s.get(HumanTask, task_id)
            if h is None:
                raise NotFound(f"no task {task_id}")
            if user is not None and h.completed_by != user and h.owner != user \
                    and not self.runtime.may_act(s, h, user):  # the owner of a delegated task reads it
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
                "sensitive": sorted(f["id"] for f in entry.get("form_fields") or [] if f.get("sensitive")),
            })
            out.update(self._pulled_view(s, h, row, manifest, user, self._task_view_data(s, h, row)))
            return out

    def _task_view_data(self, s, h: HumanTask, row: Instance) -> dict:
        """An open task shows the data of its own branch; a finished one the instance's data."""
        if h.status in ("open", "waiting", "supplement") and row.status in ("running", "suspended") and row.state:
            data = self.runtime.branch_data(s, row, h.spiff_task_id)
            if data is not None:
                return data
        return row.data or {}

    def _pulled_view(self, s, h: HumanTask, row: Instance, manifest: dict, user: str | None,
                     base: dict | None = None) -> dict:
        """Pulled data of a task with provenance; sensitive values masked unless the viewer may see them.
        ``base``: the data the task sees (its branch's), else the instance's."""
        base = (row.data or {}) if base is None else base
        groups = directory.groups_of(s, user) if user else set()
        u = s.scalars(select(User).where(User.name == user)).first() if user else None
        roles = set(u.roles or []) if u is not None else set()
        declared = self._pull_outputs(manifest)  # field (as named in the data) -> (declaration, operation fields)
        values = pulls.pulled_values(s, h.id)
        data = {**base, **values}
        sensitive = set()
        for name, (o, op_fields) in declared.items():
            kind = pulls.sensitive_kind(o, op_fields)
            if kind:
                sensitive.add(name)
                if name in data and not pulls.may_see_full(o, groups, roles):
                    data[name] = pulls.mask(data[name], kind)
        if user is not None and "admin" not in roles:
            # other sensitive fields (declared, or named so: the applicant's, earlier steps'), as every
            # other view shows them; the task's own form fields stay as they are, for its form
            own = {f["id"] for f in manifest["tasks"].get(h.bpmn_id, {}).get("form_fields") or []}
            others = {k: v for k, v in data.items() if k not in declared and k not in own}
            data.update(masking.mask_data(others, self.sensitive_fields(row.definition_id, s)))
        own, service = self._pull_sources(s, h)
        latest = {}
        for entry in own:
            latest[(entry.connector, entry.operation)] = entry
        for entry in service:  # pulled by the process's service tasks into the data this task sees
            latest[(entry.connector, entry.operation, entry.task_ref)] = entry
        pulled, shown = [], set()
        for entry in latest.values():
            for name in entry.fields or []:
                if name in shown or (entry.kind == "service" and name not in data):
                    continue
                shown.add(name)
                o, op_fields = declared.get(name, ({"name": name, "as": name}, {}))
                kind = pulls.sensitive_kind(o, op_fields)
                full = not kind or pulls.may_see_full(o, groups, roles)
                value = values.get(name, base.get(name))
                pulled.append({
                    "field": name, "title": (op_fields.get(o["name"]) or {}).get("title") or name,
                    "value": value if full else pulls.mask(value, kind), "masked": not full and value is not None,
                    "sensitive": kind, "source": entry.source, "connector": entry.connector,
                    "operation": entry.operation, "at": _iso(entry.at), "request_id": entry.request_id,
                    "purpose": entry.purpose, "basis": entry.basis})
        return {"pulled": pulled, "data": data,
                "sensitive": sorted(set(f["id"] for f in (manifest["tasks"].get(h.bpmn_id, {}).get("form_fields") or [])
                                        if f.get("sensitive")) | sensitive)}

    def sensitive_fields(self, definition_id: int, session=None) -> dict[str, str]:
        """The fields of a deployed version declared sensitive, with how each is masked (``id``,
        ``phone``, ``other``): form fields of its tasks and start event marked sensitive, and pulled
        fields whose declaration or connector schema says so. Read once per version."""
        cache = self.__dict__.setdefault("_sensitive", {})
        if definition_id not in cache:
            with contextlib.nullcontext(session) if session is not None else self.readers() as s:
                d = s.get(ProcessDefinition, definition_id)
                if d is None:
                    raise NotFound(f"no definition {definition_id}")
                manifest, start = d.manifest or {}, self.start_form(d)
            out: dict[str, str] = {}
            for f in [*start, *(f for e in manifest.get("tasks", {}).values() for f in e.get("form_fields") or [])]:
                if f.get("sensitive"):
                    out[f["id"]] = masking.kind_of_field(f["id"]) or "other"
            for name, (o, op_fields) in self._pull_outputs(manifest).items():
                kind = pulls.sensitive_kind(o, op_fields)
                if kind:
                    out[name] = "other" if kind == "health" else kind
            cache[definition_id] = out
        return dict(cache[definition_id])

    def sensitive_fields_of_instances(self, instance_ids) -> dict[int, dict[str, str]]:
        """``sensitive_fields`` of the version each instance runs on, by instance id."""
        ids = sorted({i for i in instance_ids if i})
        if not ids:
            return {}
        with self.readers() as s:
            rows = s.execute(select(Instance.id, Instance.definition_id).where(Instance.id.in_(ids))).all()
            return {iid: self.sensitive_fields(did, s) for iid, did in rows}

    def _pull_outputs(self, manifest: dict) -> dict[str, tuple[dict, dict]]:
        """Field (as named in the data) -> (its output declaration, the operation's field schema)."""
        out = {}
        for entry in [*manifest.get("tasks", {}).values(), *manifest.get("services", {}).values()]:
            for p in entry.get("pulls") or []:
                try:
                    op_fields = self.connector_registry.unconfigured(p["connector"]).operation(p["operation"]).fields
                except Exception:  # noqa: BLE001 - a connector configured only in the database
                    op_fields = {}
                for o in p.get("outputs") or []:
                    out[o["as"]] = (o, op_fields)
        return out

    @staticmethod
    def _pull_sources(s, h: HumanTask) -> tuple[list, list]:
        """Successful pull-log entries behind a task's data, oldest first: the task's own pulls, and
        the service-task pulls of its instance."""
        own = list(s.scalars(select(PullLog).where(PullLog.human_task_id == h.id, PullLog.kind == "pull",
                                                   PullLog.outcome == "ok").order_by(PullLog.id)))
        service = list(s.scalars(select(PullLog).where(PullLog.instance_id == h.instance_id,
                                                       PullLog.kind == "service", PullLog.outcome == "ok")
                                 .order_by(PullLog.id)))
        return own, service

    def unmask(self, task_id: int, field: str, user: str, reason: str = "") -> dict:
        """The full value of a masked pulled field; the unmasking is logged (pull log and audit)."""
        with self.sessions.begin() as s:
            h = s.get(HumanTask, task_id)
            if h is None:
                raise NotFound(f"no task {task_id}")
            if h.completed_by != user and not self.runtime.may_act(s, h, user):
                raise NotAllowed(f"{user} may not see task {task_id}")
            own, service = self._pull_sources(s, h)
            src = next((p for p in [*reversed(own), *reversed(service)] if field in (p.fields or [])), None)
            if src is None:
                raise NotFound(f"task {task_id} has no pulled field '{field}'")
            row = s.get(Instance, h.instance_id)
            s.add(PullLog(at=self.clock.now(), kind="unmask", actor=user, instance_id=row.id, human_task_id=h.id,
                          task_ref=h.bpmn_id, spiff_task_id=h.spiff_task_id, connector=src.connector,
                          operation=src.operation, fields=[field], purpose=reason or src.purpose, basis=src.basis,
                          source=src.source, request_id=src.request_id, duration_ms=0, outcome="ok"))
            audit.append(s, self.clock, user, "unmask", instance_id=row.id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "field": field, "reason": reason})
            return {"field": field, "value": pulls.pulled_values(s, h.id).get(field, (row.data or {}).get(field))}

    # ---- connectors ---------------------------------------------------------------------
    def connectors(self) -> list[dict]:
        """Installed connectors with their configuration schema and operations (with schemas)."""
        out = []
        with self.readers() as s:
            cfgs = pulls.configs(s, self.connector_registry.names())
        for name in self.connector_registry.names():
            cfg = cfgs.get(name)
            conn = self.connector_registry.new(name, cfg.config if cfg else {}, {})
            out.append(conn.describe())
        return out

    @staticmethod
    def _config_dict(name: str, cls, cfg) -> dict:
        schema = getattr(cls, "config_schema", {}) or {}
        secret_keys = sorted({k for k, v in schema.items() if v.get("secret")} | set((cfg.secrets if cfg else {}) or {}))
        unreadable = cfg is not None and isinstance(cfg.secrets, sealing.Unreadable)
        return {"name": name, "config": dict(cfg.config) if cfg else {},
                "secrets": {k: "unreadable" if unreadable else
                            "set" if cfg is not None and (cfg.secrets or {}).get(k) else "not set"
                            for k in secret_keys},
                **({"secrets_error": sealing.Unreadable.reason} if unreadable else {}),
                "revision": cfg.revision if cfg else 0, "updated_at": _iso(cfg.updated_at) if cfg else None,
                "updated_by": cfg.updated_by if cfg else None}

    def connector_configs(self) -> list[dict]:
        """Stored configuration per connector; secrets only as "set" / "not set"."""
        with self.readers() as s:
            cfgs = pulls.configs(s, self.connector_registry.names())
            return [self._config_dict(n, self.connector_registry.cls(n), cfgs.get(n))
                    for n in self.connector_registry.names()]

    def set_connector_config(self, name: str, config: dict | None = None, secrets: dict | None = None,
                             actor: str = "system") -> dict:
        """Replace a connector's configuration; each secret given replaces the stored one ("" or None
        removes it), secrets not given stay. Secret values never reach the audit log."""
        from .models import ConnectorConfig

        cls = self.connector_registry.cls(name)
        secret_keys = {k for k, v in (cls.config_schema or {}).items() if v.get("secret")}
        config = dict(config or {})
        leaked = sorted(k for k in config if k in secret_keys)
        if leaked:
            raise Invalid(f"{', '.join(leaked)} must be given as secrets, not configuration",
                          {k: "secret" for k in leaked})
        with self.sessions.begin() as s:
            cfg = s.scalars(select(ConnectorConfig).where(ConnectorConfig.name == name)).first()
            now = self.clock.now()
            if cfg is None:
                cfg = ConnectorConfig(name=name, config={}, secrets={}, revision=0, updated_at=now, updated_by=actor)
                s.add(cfg)
            # secrets sealed with a key this process lacks are kept as they are, unless new ones are
            # given: those replace them all (the old ones cannot be read to merge with)
            keep = isinstance(cfg.secrets, sealing.Unreadable) and not secrets
            merged = dict(cfg.secrets or {})
            for k, v in (secrets or {}).items():
                if v in (None, ""):
                    merged.pop(k, None)
                else:
                    merged[k] = str(v)
            cfg.config = config
            if not keep:
                cfg.secrets = merged
            cfg.revision = (cfg.revision or 0) + 1
            cfg.updated_at, cfg.updated_by = now, actor
            s.flush()
            self.connector_pool.forget(name)
            audit.append(s, self.clock, actor, "connector.config",
                         detail={"connector": name, "config": config, "secrets_changed": sorted(secrets or {})})
            return self._config_dict(name, cls, cfg)

    def pull_log(self, instance_id: int | None = None, limit: int = 200, *, kind: str | None = None,
                 connector: str | None = None, actor: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, outcome: str | None = None) -> list[dict]:
        """Data pulls, service calls and unmaskings, newest first (values never stored). Filters:
        the case, ``kind`` (pull | service | unmask), ``connector`` and ``actor`` (exact), ``since``
        (inclusive) and ``until`` (exclusive) as aware datetimes, ``outcome`` (ok | error)."""
        if outcome is not None and outcome not in pulllog.OUTCOMES:
            raise Invalid(f"outcome must be one of {', '.join(pulllog.OUTCOMES)}, not {outcome!r}",
                          {"outcome": f"must be one of {', '.join(pulllog.OUTCOMES)}"})
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
                raise Invalid(f"{name} must be an aware datetime", {name: "must be an aware datetime"})
        with self.readers() as s:
            q = select(PullLog).order_by(PullLog.id.desc()).limit(limit)
            if instance_id is not None:
                q = q.where(PullLog.instance_id == instance_id)
            if kind:
                q = q.where(PullLog.kind == kind)
            if connector:
                q = q.where(PullLog.connector == connector)
            if actor:
                q = q.where(PullLog.actor == actor)
            if since is not None:
                q = q.where(PullLog.at >= since)
            if until is not None:
                q = q.where(PullLog.at < until)
            if outcome:
                q = q.where(PullLog.outcome == outcome)
            return [{"id": p.id, "at": _iso(p.at), "kind": p.kind, "actor": p.actor, "instance_id": p.instance_id,
                     "task_id": p.human_task_id, "task": p.task_ref, "connector": p.connector,
                     "operation": p.operation, "fields": list(p.fields or []), "purpose": p.purpose,
                     "basis": p.basis, "source": p.source, "request_id": p.request_id,
                     "duration_ms": p.duration_ms, "outcome": p.outcome, "error": p.error,
                     "result_hash": p.result_hash} for p in s.scalars(q)]

    def purge_pull_log(self, older_than_days: int, actor: str, *, audit_nothing: bool = True) -> dict:
        """Delete pull log entries older than ``older_than_days`` (at least ``PULL_LOG_MIN_DAYS``, 3 years)
        and audit the purge in the same transaction: ``{"deleted": n, "before": cutoff}``. Who: an
        administrator, or ``system`` (the workers' retention run).
        ``audit_nothing=False`` (the workers' daily run: every worker runs it, one of them deletes)
        writes the audit event only when something was deleted."""
        days = pulllog.check_days(older_than_days)
        before = pulllog.cutoff(self.clock.now(), days)
        with self.sessions.begin() as s:
            if actor != "system" and not self._is_admin(s, actor):
                raise NotAllowed(f"{actor} may not purge the pull log: administrators only")
            deleted = s.execute(delete(PullLog).where(PullLog.at < before)
                                .execution_options(synchronize_session=False)).rowcount
            if deleted or audit_nothing:
                audit.append(s, self.clock, actor, "pull_log.purge",
                             detail={"deleted": deleted, "before": _iso(before), "older_than_days": days})
        return {"deleted": deleted, "before": _iso(before)}

    def incidents(self, *, open_only: bool = True, instance_id: int | None = None, limit: int = 200) -> list[dict]:
        with self.readers() as s:
            q = select(Incident).order_by(Incident.id.desc()).limit(limit)
            if open_only:
                q = q.where(Incident.resolved_at.is_(None))
            if instance_id is not None:
                q = q.where(Incident.instance_id == instance_id)
            return [{"id": i.id, "instance_id": i.instance_id, "job_id": i.job_id, "kind": i.kind,
                     "element_id": i.element_id, "message": i.message, "created_at": _iso(i.created_at),
                     "resolved": i.resolved_at is not None} for i in s.scalars(q)]

    def retry_incident(self, incident_id: int, actor: str) -> dict:
        """Re-queue the job behind an incident (a failed pull, service call or timer) and run it now.
        Returns the incident and the outcome of the retry (done | retry | incident | skipped)."""
        from .models import Job

        with self.sessions.begin() as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                raise NotFound(f"no incident {incident_id}")
            if inc.resolved_at is not None:
                raise NotAllowed(f"incident {incident_id} was already resolved")
            job = s.get(Job, inc.job_id) if inc.job_id else None
            if job is None or job.status != "incident":
                raise NotAllowed(f"incident {incident_id} has no failed job to retry")
            now = self.clock.now()
            job.status, job.attempts, job.due_at = "pending", 0, now
            job.locked_by = job.locked_until = None
            inc.resolved_at = now
            audit.append(s, self.clock, actor, "incident.retry", instance_id=inc.instance_id,
                         task_ref=inc.element_id, detail={"incident_id": inc.id, "job_id": job.id})
            job_id, kind = job.id, job.kind
        outcome = "queued"
        worker = f"retry:{actor}"[:100]
        if pulls.claim_ids(self, [job_id], worker):
            outcome = (pulls.run_claimed(self, job_id, worker) if kind in pulls.KINDS
                       else jobs.run_claimed(self.sessions, self, job_id, worker))
        return {"incident_id": incident_id, "job_id": job_id, "outcome": outcome}

    def _job_kinds(self, ids: list[int]) -> dict[int, str]:
        from .models import Job

        if not ids:
            return {}
        with self.readers() as s:
            return dict(s.execute(select(Job.id, Job.kind).where(Job.id.in_(ids))).all())

    @property
    def inline_worker(self) -> str:
        return f"inline:{os.getpid()}:{id(self):x}"

    def _run_new_jobs(self, created: list[tuple[int, dict]]) -> None:
        """The pull and service jobs an action just created (leased to this process in the same
        transaction), run in-process at once; the worker is the fallback and does the retries."""
        for job_id, ctx in created:
            if not ctx.get("locked_by"):
                continue
            try:
                pulls.run_claimed(self, job_id, ctx["locked_by"], ctx)
            except Exception:  # noqa: BLE001 - the job stays leased; the worker takes it after the lease
                import logging

                logging.getLogger("tongban.pulls").exception("inline run of job %s failed", job_id)

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
            candidate = or_((TaskCandidate.kind == "user") & (TaskCandidate.name == user),
                            (TaskCandidate.kind == "group") & TaskCandidate.name.in_(names or {""}))
            visible = select(TaskCandidate.task_id).where(candidate)
            mine = HumanTask.assignee == user
            if s.get_bind().dialect.name == "postgresql":
                # id = ANY(array of candidate ids): the ids are read once through their index and the
                # tasks fetched by primary key. An IN (subquery) is planned as a scan of every open
                # task (most are unclaimed), ~4x slower at 100,000 open tasks (docs/performance.md).
                ids = select(func.array_agg(TaskCandidate.task_id)).where(candidate).scalar_subquery()
                unclaimed = HumanTask.assignee.is_(None) & (HumanTask.id == any_(cast(ids, ARRAY(BigInteger))))
            else:
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
            # one query (and one group lookup) for the three counts: this runs on every page
            visible = self._task_query(s, user=user).subquery()
            mine, unclaimed, overdue = s.execute(select(
                func.count().filter(visible.c.assignee == user),
                func.count().filter(visible.c.assignee.is_(None)),
                func.count().filter(visible.c.due_at.is_not(None), visible.c.due_at <= now))).one()
            return {"mine": mine, "unclaimed": unclaimed, "overdue": overdue}

    def task_overview(self, near: timedelta = timedelta(days=2)) -> dict:
        """Open tasks counted by deadline state (overdue | near: due within ``near`` | in_time |
        none: no deadline), overall and per candidate group, for the monitor dashboard."""
        with self.readers() as s:
            now = self.clock.now()
            state = case((HumanTask.due_at.is_(None), "none"), (HumanTask.due_at < now, "overdue"),
                         (HumanTask.due_at <= now + near, "near"), else_="in_time").label("state")
            totals = {"overdue": 0, "near": 0, "in_time": 0, "none": 0}
            for st, n in s.execute(select(state, func.count()).where(HumanTask.status == "open")
                                   .group_by(state)).all():
                totals[st] = n
            by_group: dict[str, dict] = {}
            for name, st, n in s.execute(
                    select(TaskCandidate.name, state, func.count())
                    .join(HumanTask, HumanTask.id == TaskCandidate.task_id)
                    .where(HumanTask.status == "open", TaskCandidate.kind == "group")
                    .group_by(TaskCandidate.name, state)).all():
                by_group.setdefault(name, {"overdue": 0, "near": 0, "in_time": 0, "none": 0})[st] = n
            return {"now": _iso(now), "totals": totals, "by_group": by_group}

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
        return union(select(Instance.id).where(Instance.started_by == user),
                     select(HumanTask.instance_id).where(or_(HumanTask.assignee == user,
                                                             HumanTask.completed_by == user)),
                     select(HumanTask.instance_id).where(HumanTask.status == "open",
                                                         HumanTask.assignee.is_(None),
                                                         HumanTask.id.in_(candidate)))

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
                    "incidents": incidents,
                    # tasks waiting for their declared data (a pull running, retrying or failed)
                    "waiting_tasks": [task_dict(h) for h in s.scalars(select(HumanTask).where(
                        HumanTask.instance_id == row.id, HumanTask.status == "waiting"))],
                    # what else the case waits for: timers, pulls and service calls still to run or retry
                    "pending_jobs": [{"id": j.id, "kind": j.kind, "element_id": (j.payload or {}).get("bpmn_id"),
                                      "due_at": _iso(j.due_at), "attempts": j.attempts,
                                      "last_error": j.last_error}
                                     for j in s.scalars(select(Job).where(Job.instance_id == row.id,
                                                                          Job.status == "pending")
                                                        .order_by(Job.due_at, Job.id))]}

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
        kinds = self._job_kinds(ids)
        for job_id in ids:
            if kinds.get(job_id) in pulls.KINDS:
                result = pulls.run_claimed(self, job_id, worker)
            else:
                result = jobs.run_claimed(self.sessions, self, job_id, worker)
            outcome[result] = outcome.get(result, 0) + 1
        return outcome

    # ---- working-day calendar -----------------------------------------------------------
    CALENDAR_TTL = 30.0  # seconds a process trusts its loaded calendar before checking the database

    def calendar(self, *, fresh: bool = False) -> workcal.Calendar:
        """The working-day calendar with the overrides administrators loaded (cached per process)."""
        import time

        now = time.monotonic()
        cached = getattr(self, "_calendar", None)
        if cached is not None and not fresh and now - self._calendar_at < self.CALENDAR_TTL:
            return cached
        cal = workcal.Calendar()
        with self.readers() as s:
            for d in s.scalars(select(CalendarDay)):
                cal.days.setdefault(d.region, {})[d.day] = (d.workday, d.name)
            for y in s.scalars(select(CalendarYear)):
                cal.years.setdefault(y.region, set()).add(y.year)
        self._calendar, self._calendar_at = cal, now
        return cal

    def load_calendar(self, text: str, filename: str = "", region: str = workcal.NATIONAL,
                      actor: str = "system") -> dict:
        """Load a published schedule (holidays and 调休 working days) for ``region``; the years it
        covers replace what was loaded for them before."""
        try:
            rows = workcal.parse_schedule(text, filename)
        except ValueError as exc:
            raise Invalid(f"calendar file {filename or ''}: {exc}".replace(" :", ":"), {"file": str(exc)}) from exc
        years = sorted({d.year for d, _, _ in rows})
        with self.sessions.begin() as s:
            s.execute(delete(CalendarDay).where(CalendarDay.region == region, or_(*[
                (CalendarDay.day >= date(y, 1, 1)) & (CalendarDay.day <= date(y, 12, 31)) for y in years])))
            s.execute(delete(CalendarYear).where(CalendarYear.region == region, CalendarYear.year.in_(years)))
            s.flush()
            seen = {}
            for d, working, name in rows:
                seen[d] = (working, name)
            for d, (working, name) in sorted(seen.items()):
                s.add(CalendarDay(region=region, day=d, workday=working, name=name[:100]))
            for y in years:
                s.add(CalendarYear(region=region, year=y, source=filename[:300], loaded_by=actor,
                                   loaded_at=self.clock.now()))
            audit.append(s, self.clock, actor, "calendar.load",
                         detail={"region": region, "years": years, "days": len(seen), "file": filename})
        self.calendar(fresh=True)
        return {"region": region, "years": years, "days": len(seen),
                "holidays": sum(1 for w, _ in seen.values() if not w),
                "workdays": sum(1 for w, _ in seen.values() if w)}

    def calendar_status(self, region: str = workcal.NATIONAL) -> dict:
        """The current and next year: loaded / package / missing, with a warning for a missing one."""
        today = self.clock.now().astimezone(workcal.TZ).date()
        cal = self.calendar()
        years, warnings = [], []
        for year in (today.year, today.year + 1):
            status = cal.year_status(year, region)
            years.append({"year": year, "region": region, "status": status})
            if status == "missing":
                warnings.append(f"no published holiday schedule for {year} ({region}): deadlines in {year} "
                                f"count weekends only and are provisional; load it with: "
                                f"tongban calendar load FILE --region {region}")
        return {"today": today.isoformat(), "years": years, "warnings": warnings, "ok": not warnings}

    def sla_scope_instances(self, department: str | None) -> set[int] | None:
        """Ids of the instances with a clocked step in ``department`` or under it (None: every
        instance). The monitor pages scope the escalation log and the case cards with it."""
        if department is None:
            return None
        from .models import SlaClock

        with self.readers() as s:
            _depts, scope = self._dept_scope(s, department)
            return set(s.scalars(select(SlaClock.instance_id).where(
                SlaClock.scope == "task", SlaClock.department_id.in_(scope)).distinct()))

    def calendar_due(self, start: date, n: int, unit: str = "workday", region: str = workcal.NATIONAL) -> dict:
        try:
            due, provisional = self.calendar().due(start, n, unit, region)
        except ValueError as exc:
            raise Invalid(str(exc), {"n" if "negative" in str(exc) else "unit": str(exc)}) from exc
        return {"start": start.isoformat(), "n": n, "unit": unit, "region": region, "due": due.isoformat(),
                "provisional": provisional}

    def calendar_region_warning(self, region: str) -> str | None:
        """A region's own days override the country's; for a region with none loaded, say that its
        answers are the country's (a misspelt region code would otherwise go unnoticed)."""
        cal = self.calendar()
        if region == workcal.NATIONAL or cal.days.get(region) or cal.years.get(region):
            return None
        known = sorted(r for r in set(cal.days) | set(cal.years) if r != workcal.NATIONAL)
        return (f"no schedule is loaded for region {region}: the national working days were used"
                + (f" (regions with a schedule: {', '.join(known)})" if known else ""))

    # ---- audit --------------------------------------------------------------------------
    def verify_audit(self) -> audit.Verification:
        with self.readers() as s:
            return audit.verify(s)


__all__ = ["Engine", "NotAllowed", "NotFound"]
