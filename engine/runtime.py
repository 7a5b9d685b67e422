"""Instances and the step transaction.

One action = one short transaction owned by the caller:
load the row (hot cache keyed by row version, else deserialize) → check the action is
allowed → apply it and run engine steps until the instance waits → sync human tasks, jobs,
subscriptions and audit → write the state with ``version = version + 1`` guarded by the old
version (SQLAlchemy's version counter; a stale writer gets ``Conflict``).
The workflow object is taken out of the hot cache while an action runs and only put back
after the commit, so a failed or rolled-back action never leaves a half-updated workflow behind.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.exceptions import SpiffWorkflowException, TaskNotFoundException, WorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, delete, event, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError

from . import approval_rules, audit, forms, pulls, spiff_guards
from . import clock as clock_mod
from . import sla as sla_clock
from .directory import active_user_id, group_names_joined, groups_of, no_such_user, split_names
from .errors import Conflict, EngineError, Invalid, NotAllowed, NotFound, ScriptError
from .models import (
    EventSubscription,
    HumanTask,
    Incident,
    Instance,
    Job,
    TaskCandidate,
    TaskPulled,
    TaskSign,
    User,
)
from .serialization import dump_state, load_state, to_jsonable
from .sla import due_times

POLL_SECONDS = 5
LIVE = ("open", "waiting", "supplement", "suspended")

# What completing a task reads, in one statement: the task, the fields pulled for it, its instance row
# (``_load``'s session.get then finds it in the identity map), whether a delegate or an added signer
# holds the task, the acting user (NULL: no such active user) with their group names, and how many
# other tasks of the instance are still live (none: the step's task sync has nothing to look up).
_ACTOR = bindparam("b_actor")
_OTHER = HumanTask.__table__.alias("other")
_COMPLETING = (
    select(HumanTask, TaskPulled.data, Instance,
           select(TaskSign.id).where(TaskSign.human_task_id == HumanTask.id, TaskSign.status == "active")
           .limit(1).correlate(HumanTask).scalar_subquery(),
           active_user_id(_ACTOR).scalar_subquery(),
           group_names_joined(_ACTOR).scalar_subquery(),
           select(func.count()).select_from(_OTHER)
           .where(_OTHER.c.instance_id == HumanTask.instance_id, _OTHER.c.id != HumanTask.id,
                  _OTHER.c.status.in_(LIVE)).correlate(HumanTask).scalar_subquery())
    .outerjoin(TaskPulled, TaskPulled.human_task_id == HumanTask.id)
    .join(Instance, Instance.id == HumanTask.instance_id)
    .where(HumanTask.id == bindparam("b_id")))
# a new human task and its candidate rows, written without a flush of the unit of work
_INSERT_TASK = insert(HumanTask.__table__).returning(HumanTask.__table__.c.id)
_INSERT_CANDIDATE = insert(TaskCandidate.__table__)


def took_part(session: Session, h: HumanTask, actor: str, groups: set[str] | None = None) -> bool:
    """Whether the actor had a part in the task: its holder, whoever completed it, a candidate, an
    added signer or delegate, or an administrator (``groups``: the actor's, when already read)."""
    if actor in (h.assignee, h.completed_by, h.owner) or actor in (h.candidate_users or []):
        return True
    if groups is not None and groups & set(h.candidate_groups or []):
        return True
    got = session.execute(select(User.roles, group_names_joined(bindparam("b_actor")).scalar_subquery())
                          .where(User.name == bindparam("b_actor"), User.active.is_(True)),
                          {"b_actor": actor}).first()
    if got is None:
        return False
    roles, joined = got
    groups = split_names(joined)
    if "admin" in (roles or []) or approval_rules.ADMIN_GROUP in groups or groups & set(h.candidate_groups or []):
        return True
    return session.scalar(select(TaskSign.id).where(TaskSign.human_task_id == h.id, TaskSign.user_name == actor)
                          .limit(1)) is not None


def check_open(h: HumanTask, session: Session | None = None, actor: str | None = None,
               groups: set[str] | None = None) -> None:
    """The task is open. Otherwise a Conflict when it was completed or cancelled (another action got
    there first), NotAllowed for any other state. With ``actor``, someone who had no part in the task
    learns only that they may not act on it, not its state or who completed it."""
    if h.status == "open":
        return
    if actor is not None and session is not None and not took_part(session, h, actor, groups):
        raise NotAllowed(f"{actor} may not act on task {h.id} '{h.name}'")
    if h.status == "completed":
        raise Conflict(f"task {h.id} was already completed by {h.completed_by}")
    if h.status == "cancelled":
        status = session.scalar(select(Instance.status).where(Instance.id == h.instance_id)) if session else None
        if status not in (None, "running", "suspended"):
            raise NotAllowed(f"instance {h.instance_id} is {status}")
        raise Conflict(f"task {h.id} was cancelled meanwhile (returned, withdrawn or moved)")
    raise NotAllowed(f"task {h.id} is {h.status}, not open")


class HotCache:
    """Live workflows of recently touched instances, keyed by instance id with their row version."""

    def __init__(self, size: int = 2000):
        self.size = size
        self._items: OrderedDict[int, tuple[int, BpmnWorkflow]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, instance_id: int, version: int) -> BpmnWorkflow | None:
        with self._lock:
            item = self._items.pop(instance_id, None)
        if item and item[0] == version:
            return item[1]
        return None

    def put(self, instance_id: int, version: int, workflow: BpmnWorkflow) -> None:
        with self._lock:
            self._items[instance_id] = (version, workflow)
            self._items.move_to_end(instance_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self):
        with self._lock:
            self._items.clear()


@event.listens_for(Session, "after_commit")
def _after_commit(session):
    for fn in session.info.pop("tb_after_commit", []):
        fn()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session):
    session.info.pop("tb_after_commit", None)


def _on_commit(session: Session, fn) -> None:
    session.info.setdefault("tb_after_commit", []).append(fn)


spiff_guards.install()


def _translate(exc: Exception) -> ScriptError:
    """SpiffWorkflow wraps script failures; give the designer the element and the cause."""
    inner = getattr(exc, "exception", None)
    element = None
    task = getattr(exc, "task", None)
    if task is not None:
        element = getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name
    elif getattr(exc, "task_spec", None) is not None:
        element = getattr(exc.task_spec, "bpmn_id", None) or exc.task_spec.name
    cause = inner if isinstance(inner, ScriptError) else None
    text = str(cause or inner or exc).split("\n")[0]
    where = f" in '{element}'" if element else ""
    err = ScriptError(f"script or expression failed{where}: {text}", element_id=element,
                      line=getattr(exc, "line_number", None) or (cause.line if cause else None))
    return err


class Runtime:
    """Engine operations on instances. Functions take a session and never commit."""

    def __init__(self, specs, clock, script_engine_factory):
        self.specs = specs
        self.clock = clock
        self.hot = HotCache()
        self.calendar_provider = lambda: None  # the Engine supplies the loaded working-day calendar
        self._script_engine = script_engine_factory()

    # ---- loading and saving -------------------------------------------------------------
    def _load(self, session: Session, instance_id: int) -> tuple[Instance, BpmnWorkflow, dict]:
        row = session.get(Instance, instance_id)
        if row is None:
            raise NotFound(f"no instance {instance_id}")
        spec, subs, manifest = self.specs.get(session, row.definition_id)
        pulls.park_services(spec, subs)
        wf = self.hot.take(row.id, row.version)
        if wf is None:
            wf = load_state(row.state, spec, subs, self._script_engine)
        return row, wf, manifest

    def branch_data(self, session: Session, row: Instance, spiff_task_id: str) -> dict | None:
        """The data an open task sees on its own branch (in parallel branches the instance's data is
        the branch completed last, which may not be this task's). Read only: the workflow goes back
        to the hot cache unchanged (a writer that took a newer version keeps its own)."""
        spec, subs, _manifest = self.specs.get(session, row.definition_id)
        pulls.park_services(spec, subs)
        wf = self.hot.take(row.id, row.version)
        if wf is None:
            wf = load_state(row.state, spec, subs, self._script_engine)
        try:
            task = _find_task(wf, spiff_task_id)
            return to_jsonable(task.data) if task is not None else None
        finally:
            self.hot.put(row.id, row.version, wf)

    def _steps(self, wf: BpmnWorkflow, action) -> None:
        with clock_mod.using(self.clock):
            try:
                action()
                wf.do_engine_steps()
            except ScriptError:
                raise
            except (SpiffWorkflowException, WorkflowException) as exc:
                raise _translate(exc) from exc

    def _save(self, session: Session, row: Instance, wf: BpmnWorkflow, manifest: dict, actor: str,
              new: bool = False, others_live: int | None = None) -> None:
        """``others_live``: live human tasks of the instance besides the one this action closed, when
        the action already knows (0 spares the task sync its lookup)."""
        now = self.clock.now()
        self._sync_tasks(session, row, wf, manifest, now, new, others_live)
        approval_rules.after_sync(self, session, row, wf, manifest, now)  # tb:noApprover, tb:initiatorIsApprover
        approval_rules.declared_cc(self, session, row, wf, manifest, now, actor)  # tb:cc on completed elements
        if manifest.get("has_timers"):
            self._sync_timers(session, row, wf, now)
        if manifest.get("has_messages"):
            self._sync_subscriptions(session, row, wf)
        row.state = dump_state(wf)
        last = wf.last_task or wf.task_tree
        row.data = to_jsonable(last.data)
        row.updated_at = now
        if wf.is_completed() and row.status == "running":
            row.status = "completed"
            row.ended_at = now
            with session.no_autoflush:  # the row's changes go with the guarded flush below
                audit.append(session, self.clock, actor, "end", instance_id=row.id)
        sla_clock.instance_saved(self, session, row, wf, manifest, now, new)
        instance_id = row.id
        try:
            session.flush()
        except (StaleDataError, IntegrityError) as exc:
            raise _changed_meanwhile(instance_id) from exc
        version = row.version
        _on_commit(session, lambda: self.hot.put(row.id, version, wf))

    def _sync_tasks(self, session, row, wf, manifest, now, new, others_live=None):
        ready = {str(t.id): t for t in wf.get_tasks(state=TaskState.READY, manual=True)}
        ready = pulls.split_services(self, session, row, ready, manifest, now, new)  # service tasks get a job
        existing = {} if new or others_live == 0 else {
            h.spiff_task_id: h for h in session.scalars(
                select(HumanTask).where(HumanTask.instance_id == row.id, HumanTask.status.in_(LIVE)))}
        for tid, h in existing.items():
            if tid not in ready:
                h.status = "cancelled"
                h.completed_at = now
                sla_clock.task_closed(self, session, h, now, "cancelled")
                session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == h.id))
        for tid, t in ready.items():
            if tid in existing:
                continue
            bpmn_id = getattr(t.task_spec, "bpmn_id", None) or t.task_spec.name
            entry = manifest["tasks"].get(bpmn_id, {})
            groups = [_resolve(g, t.data) for g in entry.get("candidate_groups", [])]
            users = [_resolve(u, t.data) for u in entry.get("candidate_users", [])]
            assignee = _resolve(entry["assignee"], t.data) if entry.get("assignee") else None
            due_at, warn_at = due_times(entry, now, t.data, self.calendar_provider())
            values = dict(
                instance_id=row.id, spiff_task_id=tid, process_key=row.process_key, bpmn_id=bpmn_id,
                name=getattr(t.task_spec, "bpmn_name", None) or entry.get("name") or bpmn_id,
                lane=entry.get("lane") or getattr(t.task_spec, "lane", None),
                candidate_groups=[g for g in groups if g], candidate_users=[u for u in users if u],
                assignee=assignee or None, owner=None, status="waiting" if entry.get("pulls") else "open",
                priority=50, form_key=entry.get("form_key"), created_at=now, due_at=due_at, warn_at=warn_at,
                completed_at=None, completed_by=None, decision=None, opinion=None)
            h = self._insert_task(session, row.id, values)
            sla_clock.task_opened(self, session, row, h, entry, manifest, now, t.data)
            if entry.get("pulls"):
                pulls.schedule(self, session, row, t, entry, "pull", now, human_task_id=h.id)
            candidates = [{"task_id": h.id, "kind": "group", "name": g} for g in dict.fromkeys(h.candidate_groups)]
            candidates += [{"task_id": h.id, "kind": "user", "name": u} for u in dict.fromkeys(h.candidate_users)]
            if candidates:
                session.connection().execute(_INSERT_CANDIDATE, candidates)

    @staticmethod
    def _insert_task(session: Session, instance_id: int, values: dict) -> HumanTask:
        """Insert a human task row with one statement and hand the session the object as if it had
        loaded it (every column given), instead of a flush of the unit of work per new task. The
        session's other pending changes wait for the step's next flush, as before."""
        try:
            task_id = session.connection().execute(_INSERT_TASK, values).scalar_one()
        except IntegrityError as exc:
            raise _changed_meanwhile(instance_id) from exc
        h = HumanTask(id=task_id, **values)
        make_transient_to_detached(h)
        session.add(h)
        return h

    def _sync_timers(self, session, row, wf, now):
        wanted = {}
        for t in list(wf.event_manager.tasks.values()):
            definition = t.task_spec.event_definition
            if not isinstance(definition, TimerEventDefinition):
                continue
            value = t._get_internal_data("event_value")
            if isinstance(value, dict):
                value = value.get("next")
            try:
                fire_at = datetime.fromisoformat(value) if value else None
            except (TypeError, ValueError):
                fire_at = None
            if fire_at is not None and fire_at.tzinfo is None:
                fire_at = fire_at.astimezone()
            # SpiffWorkflow fires strictly after the time; a millisecond later is enough
            due = (fire_at + timedelta(milliseconds=1)) if fire_at else now + timedelta(seconds=POLL_SECONDS)
            wanted[str(t.id)] = due
        jobs = {j.task_ref: j for j in session.scalars(
            select(Job).where(Job.instance_id == row.id, Job.kind == "timer", Job.status == "pending"))}
        for ref, job in jobs.items():
            if ref not in wanted:
                session.delete(job)
        for ref, due in wanted.items():
            job = jobs.get(ref)
            if job is None:
                session.add(Job(kind="timer", due_at=due, instance_id=row.id, task_ref=ref, payload={},
                                created_at=now, dedupe_key=f"timer:{ref}:{due.isoformat()}"))
            elif job.due_at != due:
                job.due_at = due
                job.dedupe_key = f"timer:{ref}:{due.isoformat()}"

    def _sync_subscriptions(self, session, row, wf):
        session.execute(delete(EventSubscription).where(EventSubscription.instance_id == row.id))
        for t in list(wf.event_manager.tasks.values()):
            definition = t.task_spec.event_definition
            if not isinstance(definition, MessageEventDefinition):
                continue
            values = {}
            for prop in definition.correlation_properties:
                try:
                    values[prop.name] = wf.script_engine.environment.evaluate(prop.retrieval_expression, t.data)
                except Exception:  # noqa: BLE001 - the value is simply not known yet
                    continue
            session.add(EventSubscription(
                instance_id=row.id, spiff_task_id=str(t.id), event_name=definition.name,
                correlation=_canonical(values), business_key=row.business_key))

    # ---- operations ---------------------------------------------------------------------
    def start(self, session: Session, definition, *, data: dict | None, business_key: str | None,
              actor: str) -> Instance:
        spec, subs, manifest = self.specs.get(session, definition.id)
        pulls.park_services(spec, subs)
        wf = BpmnWorkflow(spec, subs, script_engine=self._script_engine)
        now = self.clock.now()
        row = Instance(definition_id=definition.id, process_key=definition.key, business_key=business_key,
                       status="running", state="", data={}, started_by=actor, started_at=now, updated_at=now)
        session.add(row)
        session.flush()
        initial = dict(data or {})
        initial.setdefault("initiator", actor)
        approval_rules.initial_data(session, manifest, initial)  # countersign approvers from a group or list
        if business_key:
            initial.setdefault("business_key", business_key)

        def begin():
            wf.task_tree.data.update(initial)
            for t in wf.get_tasks(state=TaskState.READY):
                t.data.update(initial)

        audit.append(session, self.clock, actor, "start", instance_id=row.id, definition_id=definition.id,
                     detail={"key": definition.key, "version": definition.version,
                             "business_key": business_key, "data": initial})
        try:
            self._steps(wf, begin)
        except ScriptError as exc:
            exc.instance_id = None
            raise
        self._save(session, row, wf, manifest, actor, new=True)
        return row

    def _human_task(self, session, task_id: int) -> HumanTask:
        h = session.get(HumanTask, task_id)
        if h is None:
            raise NotFound(f"no task {task_id}")
        return h

    def may_act(self, session, h: HumanTask, user_name: str, groups: set[str] | None = None) -> bool:
        if groups is None:
            groups = groups_of(session, user_name)
        if h.assignee:
            return h.assignee == user_name
        return user_name in (h.candidate_users or []) or bool(groups & set(h.candidate_groups or []))

    def _check_open(self, h: HumanTask, session: Session | None = None, actor: str | None = None,
                    groups: set[str] | None = None):
        check_open(h, session, actor, groups)

    def claim(self, session: Session, task_id: int, actor: str) -> HumanTask:
        h = self._human_task(session, task_id)
        self._check_open(h, session, actor)
        if h.assignee and h.assignee != actor:
            raise NotAllowed(f"task {h.id} is claimed by {h.assignee}")
        if not self.may_act(session, h, actor):
            raise NotAllowed(f"{actor} is not a candidate for task {h.id}")
        h.assignee = actor
        audit.append(session, self.clock, actor, "claim", instance_id=h.instance_id, task_ref=h.bpmn_id,
                     detail={"task_id": h.id})
        return h

    def unclaim(self, session: Session, task_id: int, actor: str, *, force: bool = False) -> HumanTask:
        """Give a claimed task back to its candidates (the holder, or an administrator with force)."""
        h = self._human_task(session, task_id)
        self._check_open(h, session, None if force else actor)
        if not h.assignee:
            raise NotAllowed(f"task {h.id} is not claimed")
        if h.assignee != actor and not force:
            raise NotAllowed(f"task {h.id} is claimed by {h.assignee}")
        if not (h.candidate_groups or h.candidate_users):
            raise NotAllowed(f"task {h.id} is assigned to {h.assignee} by the process and has no candidates")
        previous, h.assignee = h.assignee, None
        audit.append(session, self.clock, actor, "unclaim", instance_id=h.instance_id, task_ref=h.bpmn_id,
                     detail={"task_id": h.id, "from": previous})
        return h

    def complete(self, session: Session, task_id: int, actor: str, data: dict | None = None,
                 decision: str | None = None, opinion: str | None = None, *, force: bool = False) -> Instance:
        """Complete a task; ``force`` is the engine acting itself (an SLA's deemed decision)."""
        got = session.execute(_COMPLETING, {"b_id": task_id, "b_actor": actor}).first()
        if got is None:
            raise NotFound(f"no task {task_id}")
        h, pulled, _instance, held, actor_id, group_names, others_live = got
        pulled = dict(pulled or {})
        self._check_open(h, session, None if force else actor, split_names(group_names) if actor_id else set())
        if not force:
            if actor_id is None:
                raise no_such_user(actor)
            if not self.may_act(session, h, actor, split_names(group_names)):
                raise NotAllowed(f"{actor} may not act on task {h.id} '{h.name}'")
            if held is not None:
                approval_rules.before_complete(session, h, actor)  # delegated / added signer: says who holds it
        row, wf, manifest = self._load(session, h.instance_id)
        if row.status != "running":
            raise NotAllowed(f"instance {row.id} is {row.status}")
        task = _find_task(wf, h.spiff_task_id)
        if task is None or task.state != TaskState.READY:
            # the mirror and the workflow disagree: never run() a task that is not READY
            raise NotAllowed(f"task {h.id} is not ready in the workflow")
        entry = manifest["tasks"].get(h.bpmn_id, {})
        submitted = forms.validate(entry.get("form_fields") or [], dict(data or {}))
        if decision is None and entry.get("outcomes"):
            decision = submitted.get("decision")
        problems = {}
        if entry.get("outcomes") and decision not in {o["id"] for o in entry["outcomes"]}:
            names = ", ".join(o["id"] for o in entry["outcomes"])
            problems["decision"] = f"请选择办理结果 / choose a decision: {names}"
        if entry.get("opinion_required") and not (opinion or "").strip():
            problems["opinion"] = "请填写审批意见 / an opinion is required"
        if problems:
            raise Invalid("表单有误 / the form has errors: " + ", ".join(sorted(problems)), problems)
        if decision is not None:
            submitted.setdefault("decision", decision)

        pulled = pulled if entry.get("pulls") else {}

        def act():
            task.data.update(pulled)  # the declared fields pulled for this step, then the form
            task.data.update(submitted)
            for name in pulls.task_scoped(entry):
                task.data.pop(name, None)  # pulled for this step only (minimum necessary)
            approval_rules.before_run(task, entry, decision)
            task.run()
            counted["tally"] = approval_rules.after_run(task, entry)  # 会签: the engine counts the votes

        counted: dict = {}

        try:
            self._steps(wf, act)
        except ScriptError as exc:
            exc.instance_id = row.id
            raise
        h.status = "completed"
        h.completed_at = self.clock.now()
        h.completed_by = actor
        h.assignee = h.assignee or actor
        sla_clock.task_closed(self, session, h, h.completed_at, "completed")
        h.decision = decision
        h.opinion = opinion
        with session.no_autoflush:  # the task's own changes go with the step's next flush
            session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == h.id))
        audit.append(session, self.clock, actor, "complete", instance_id=row.id, task_ref=h.bpmn_id,
                     detail={"task_id": h.id, "data": submitted, "decision": decision, "opinion": opinion})
        approval_rules.record(session, self.clock, h, actor, decision or "complete", decision=decision, text=opinion)
        if counted.get("tally") and counted["tally"]["result"]:
            audit.append(session, self.clock, actor, "countersign.decided", instance_id=row.id, task_ref=h.bpmn_id,
                         detail=counted["tally"])
        self._save(session, row, wf, manifest, actor, others_live=others_live)
        return row

    def fire_timer(self, session: Session, job: Job, actor: str = "system") -> None:
        row, wf, manifest = self._load(session, job.instance_id)
        if row.status != "running":
            return
        try:
            self._steps(wf, wf.refresh_timers)
        except ScriptError as exc:
            exc.instance_id = row.id
            raise
        audit.append(session, self.clock, actor, "timer", instance_id=row.id, task_ref=job.task_ref,
                     detail={"job_id": job.id, "due_at": job.due_at})
        self._save(session, row, wf, manifest, actor)

    def send_message(self, session: Session, name: str, *, payload: dict | None = None,
                     correlation: dict | None = None, business_key: str | None = None,
                     actor: str = "system") -> list[int]:
        q = select(EventSubscription).where(EventSubscription.event_name == name)
        if correlation:
            q = q.where(EventSubscription.correlation == _canonical(correlation))
        if business_key:
            q = q.where(EventSubscription.business_key == business_key)
        subs = list(session.scalars(q))
        if not subs:
            raise NotFound(f"no instance is waiting for message '{name}' with {correlation or business_key or 'no correlation'}")
        if len({s.instance_id for s in subs}) > 1 and not correlation and not business_key:
            raise NotAllowed(f"several instances wait for '{name}'; give a correlation or business key")
        delivered = []
        for sub in subs:
            row, wf, manifest = self._load(session, sub.instance_id)
            waiting = _find_task(wf, sub.spiff_task_id)
            if waiting is None:
                continue
            definition = waiting.task_spec.event_definition
            for prop in definition.correlation_properties:
                # a payload the waiting instance cannot correlate is the sender's mistake: refused,
                # nothing written, no incident on an instance that did nothing wrong
                try:
                    wf.script_engine.environment.evaluate(prop.retrieval_expression, dict(payload or {}))
                except Exception as exc:  # noqa: BLE001 - any failure of the expression on this payload
                    raise Invalid(f"message '{name}': its payload does not give '{prop.name}' "
                                  f"({prop.retrieval_expression}): {exc}",
                                  {"payload": f"needs what '{prop.retrieval_expression}' reads"}) from exc
            keyed = {}
            for prop in definition.correlation_properties:
                for key in prop.correlation_keys:
                    keyed.setdefault(key, {})[prop.name] = (correlation or {}).get(prop.name)

            def deliver(definition=definition, keyed=keyed, wf=wf):
                wf.send_event(BpmnEvent(definition, payload=dict(payload or {}), correlations=keyed))

            try:
                self._steps(wf, deliver)
            except ScriptError as exc:
                exc.instance_id = row.id
                raise
            audit.append(session, self.clock, actor, "message", instance_id=row.id, task_ref=name,
                         detail={"payload": payload, "correlation": correlation})
            self._save(session, row, wf, manifest, actor)
            delivered.append(row.id)
        return delivered

    def record_incident(self, session: Session, instance_id: int | None, exc: EngineError,
                        kind: str = "script", job_id: int | None = None) -> Incident:
        inc = Incident(instance_id=instance_id, kind=kind, message=str(exc), job_id=job_id,
                       element_id=getattr(exc, "element_id", None), created_at=self.clock.now())
        session.add(inc)
        session.flush()
        audit.append(session, self.clock, "system", "error", instance_id=instance_id,
                     task_ref=inc.element_id, detail={"incident_id": inc.id, "message": str(exc)})
        return inc


def _changed_meanwhile(instance_id: int) -> Conflict:
    """A concurrent action on the same instance committed first. Its version bump makes ours fail at
    the guarded update; before that, the rows it mirrored for the same workflow tasks (the next human
    task, its pull job: unique per workflow task) can collide with ours on PostgreSQL, whose readers
    do not wait for writers. Either way the second writer gets a Conflict and nothing is written."""
    return Conflict(f"instance {instance_id} was changed by someone else; reload and try again")


def _find_task(wf: BpmnWorkflow, spiff_task_id: str):
    try:
        return wf.get_task_from_id(UUID(spiff_task_id))
    except (TaskNotFoundException, ValueError):
        return None


def _canonical(values: dict) -> str:
    return json.dumps(to_jsonable(values), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _resolve(value: str | None, data: dict) -> str | None:
    """``${name}`` (Camunda style) takes a value from the task data; anything else is literal."""
    if value and value.startswith("${") and value.endswith("}"):
        got = data.get(value[2:-1].strip())
        return str(got) if got is not None else None
    return value
