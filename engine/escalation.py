"""Escalations (the SLA job handler), clock actions (pause, resume, extensions, reassign) and the
reads behind the monitor pages (overview, escalation log, supervision cards, exports).

The handler runs inside the job's transaction (``jobs.run_claimed``): the card, the notices, the
escalation log rows, the audit event, the outbox mails and the job's ``done`` mark commit together,
so a point's effects happen once however many workers run and whenever one is killed.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from . import audit, directory, notify
from . import sla as slam
from .calendar import DEFAULT
from .errors import Invalid, NotAllowed, NotFound
from .models import (
    Department,
    DepartmentChain,
    Group,
    HumanTask,
    Instance,
    Membership,
    Notice,
    NotifyAddress,
    SlaClock,
    SlaEvent,
    SlaExtension,
    SlaPause,
    SupervisionCard,
    TaskCandidate,
    User,
)

SLA_ACTOR = "system:sla"


def _iso(v):
    return v.isoformat() if v else None


def _members(s, group: str) -> list[str]:
    return list(s.scalars(select(User.name).join(Membership, Membership.user_id == User.id)
                          .join(Group, Group.id == Membership.group_id)
                          .where(Group.name == group, User.active.is_(True)).order_by(User.name)))


def _holders(s, h: HumanTask) -> list[str]:
    if h.assignee:
        return [h.assignee]
    out = list(h.candidate_users or [])
    for g in h.candidate_groups or []:
        out.extend(_members(s, g))
    return sorted(set(out))


def _holder_text(h: HumanTask | None) -> str | None:
    if h is None:
        return None
    return h.assignee or ",".join([*(h.candidate_groups or []), *(h.candidate_users or [])]) or None


def _target_users(s, target: str | None, tasks: list[HumanTask]) -> list[str]:
    if not target or target in ("assignee", "holder", "handler"):
        return sorted({u for h in tasks for u in _holders(s, h)})
    if target.startswith("user:"):
        return [target[5:]]
    return _members(s, target[6:] if target.startswith("group:") else target)


def _group_of_target(target: str | None) -> str | None:
    if not target or target in ("assignee", "holder", "handler"):
        return None
    return target[6:] if target.startswith("group:") else None if target.startswith("user:") else target


def set_candidates(s, h: HumanTask, groups: list[str], users: list[str]) -> None:
    h.candidate_groups, h.candidate_users, h.assignee = list(groups), list(users), None
    s.execute(delete(TaskCandidate).where(TaskCandidate.task_id == h.id))
    for g in groups:
        s.add(TaskCandidate(task_id=h.id, kind="group", name=g))
    for u in users:
        s.add(TaskCandidate(task_id=h.id, kind="user", name=u))


# ---- the job handler -------------------------------------------------------------------------
def fire(engine, s, job) -> None:
    payload = job.payload or {}
    c = s.get(SlaClock, payload.get("clock_id"))
    if c is None or c.status != "running" or c.epoch != payload.get("epoch"):
        return  # stopped, paused or extended since: reconcile has (or will have) moved this point
    pg = s.get_bind().dialect.name == "postgresql"
    h = s.get(HumanTask, c.human_task_id, with_for_update=pg) if c.human_task_id else None
    if c.scope == "task" and (h is None or h.status not in ("open", "waiting")):
        return
    tasks = [h] if h is not None else list(s.scalars(select(HumanTask).where(
        HumanTask.instance_id == c.instance_id, HumanTask.status == "open")))
    now = engine.clock.now()
    point = payload.get("point")
    s.info["tb_firing_job"] = job.id
    # the point's colour, not the firing time's: a yellow point fired late is still a yellow card
    color = "red" if c.due_at is not None and job.due_at > c.due_at else "yellow"
    settings = notify.smtp_settings(s)
    card = SupervisionCard(color=color, clock_id=c.id, instance_id=c.instance_id, human_task_id=c.human_task_id,
                           scope=c.scope, process_key=c.process_key, bpmn_id=c.bpmn_id, name=c.name, point=point,
                           department_id=c.department_id, holder=_holder_text(h) or
                           ";".join(filter(None, (_holder_text(t) for t in tasks))) or None,
                           due_at=c.due_at, issued_at=now, dedupe_key=job.dedupe_key or f"sla-job:{job.id}")
    s.add(card)
    s.flush()
    results = []
    for step in [st for st in c.chain or [] if st.get("at") == point]:
        for action in step.get("actions") or []:
            outcome, target, detail = _act(engine, s, c, h, tasks, step, action, job, color, now, settings)
            s.add(SlaEvent(at=now, job_id=job.id, clock_id=c.id, instance_id=c.instance_id,
                           human_task_id=c.human_task_id, point=point, action=action[:20],
                           target=(target or "")[:200] or None, outcome=outcome, detail=detail))
            results.append({"action": action, "target": target, "outcome": outcome, **detail})
    audit.append(s, engine.clock, SLA_ACTOR, "sla.escalation", instance_id=c.instance_id, task_ref=c.bpmn_id,
                 detail={"job_id": job.id, "clock_id": c.id, "point": point, "card": color, "card_id": card.id,
                         "due_at": c.due_at, "actions": results})
    s.info.pop("tb_firing_job", None)


def _title(c: SlaClock, color: str, kind: str) -> str:
    due = c.due_at.astimezone(slam.LOCAL).strftime("%Y-%m-%d") if c.due_at else "-"
    tag = {"remind": "催办", "reassign": "转办", "raise": "提级督办", "decide": "视为同意"}.get(
        kind, "超期" if color == "red" else "预警")
    return f"【{tag}】{c.name}（案件 {c.instance_id}）办理期限 {due}"


def _notify(s, engine, c, users, kind, color, job, now, settings, body=""):
    sent = []
    for u in users:
        notify.notice(s, user=u, kind=kind, title=_title(c, color, kind),
                      body=body or f"{c.name} 的办理期限为 {_iso(c.due_at)}，当前状态：{slam.STATE_NAMES[color]}。",
                      instance_id=c.instance_id, task_id=c.human_task_id, now=now,
                      dedupe_key=f"{job.dedupe_key}:{kind}:{u}", settings=settings)
        sent.append(u)
    return sent


def _act(engine, s, c, h, tasks, step, action, job, color, now, settings):
    target = step.get("target")
    if action == "card":
        return "done", None, {}
    if action in ("notify", "remind"):
        users = _target_users(s, target, tasks)
        if action == "remind":
            for t in tasks:
                t.priority = max(t.priority or 0, 80)
        return "done", target or "assignee", {"users": _notify(s, engine, c, users, action, color, job, now, settings)}
    if action == "reassign":
        group = _group_of_target(target)
        if h is None or group is None:
            return "skipped", target, {"reason": "reassign needs a task and a target group"}
        before = _holder_text(h)
        set_candidates(s, h, [group], [])
        c.department_id = slam.department_of_groups(s, [group]) or c.department_id
        users = _notify(s, engine, c, _members(s, group), "reassign", color, job, now, settings)
        audit.append(s, engine.clock, SLA_ACTOR, "reassign", instance_id=c.instance_id, task_ref=h.bpmn_id,
                     detail={"task_id": h.id, "from": before, "to": group, "point": step.get("at")})
        return "done", group, {"from": before, "users": users}
    if action == "raise":
        current = c.raised_department_id or c.department_id
        dept = s.get(Department, current) if current else None
        parent = s.get(Department, dept.parent_id) if dept is not None and dept.parent_id else None
        if parent is None:
            return "skipped", target, {"reason": "no higher level in the org tree"}
        groups = [_group_of_target(target)] if _group_of_target(target) else list(
            s.scalars(select(Group.name).where(Group.department_id == parent.id).order_by(Group.name)))
        users = sorted({u for g in groups for u in _members(s, g)})
        c.raised_department_id = parent.id
        sent = _notify(s, engine, c, users, "raise", color, job, now, settings)
        return "done", parent.code, {"level": parent.level, "department": parent.code, "users": sent}
    if action == "auto_decide":
        decision = step.get("decision")
        if h is None or not decision:
            return "skipped", None, {"reason": "auto_decide needs a task and a declared decision"}
        sp = s.begin_nested()
        try:
            engine.runtime.complete(s, h.id, SLA_ACTOR, {"decision": decision, "deemed": True}, decision,
                                    step.get("opinion") or "逾期未作决定，依法视为准予（告知承诺）", force=True)
            sp.commit()
        except (Invalid, NotAllowed) as exc:
            sp.rollback()
            return "skipped", decision, {"reason": str(exc)}
        return "done", decision, {"task_id": h.id}
    return "skipped", target, {"reason": f"unknown action '{action}'"}


# ---- engine methods ---------------------------------------------------------------------------
class SlaMixin:
    """SLA operations and reads of the Engine (``engine/api.py`` mixes this in)."""

    def _init_sla(self) -> None:
        self.job_handlers["sla"] = lambda s, job: fire(self, s, job)
        self.job_handlers["email"] = lambda s, job: notify.email_job(self, s, job)

    def _cal(self):
        return self.calendar() or DEFAULT

    # ---- escalation chains per department ----
    def set_department_chain(self, department: str, escalations: list[dict], actor: str = "system") -> dict:
        """Set (or with an empty list, remove) the escalation chain of a department: it applies to
        tasks of its groups and of the departments under it that have no task or process chain.
        Each entry: {"at": "yellow|due|statutory[+-N(wd|d|h)]", "action": "notify,card,...",
        "target"?, "decision"?, "opinion"?}."""
        chain, problems = [], {}
        for i, e in enumerate(escalations or []):
            if not isinstance(e, dict):
                problems[str(i)] = "each entry must be an object"
                continue
            at = str(e.get("at") or "due").replace(" ", "")
            actions = [a.strip() for a in str(e.get("action") or e.get("actions") or "notify").split(",") if a.strip()]
            if not slam.valid_point(at):
                problems[str(i)] = f"escalation point '{at}' is not understood (yellow, due, statutory, e.g. due+2wd)"
            elif any(a not in slam.ACTIONS for a in actions):
                problems[str(i)] = f"actions must be among {', '.join(slam.ACTIONS)}"
            else:
                chain.append({"at": at, "actions": actions, "target": e.get("target") or None,
                              "decision": e.get("decision") or None, "opinion": e.get("opinion") or None,
                              "scope": "task"})
        if problems:
            raise Invalid("the escalation chain has errors: " + "; ".join(problems.values()), problems)
        with self.sessions.begin() as s:
            dept = s.scalars(select(Department).where(Department.code == department)).first()
            if dept is None:
                raise NotFound(f"no department '{department}'")
            row = s.scalars(select(DepartmentChain).where(DepartmentChain.department_id == dept.id)).first()
            if not chain:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(DepartmentChain(department_id=dept.id, chain=chain, updated_by=actor, updated_at=self.clock.now()))
            else:
                row.chain, row.updated_by, row.updated_at = chain, actor, self.clock.now()
            audit.append(s, self.clock, actor, "sla.department_chain", detail={"department": department, "chain": chain})
        return {"department": department, "chain": chain}

    def department_chains(self) -> list[dict]:
        with self.readers() as s:
            rows = s.execute(select(Department.code, DepartmentChain.chain, DepartmentChain.updated_by,
                                    DepartmentChain.updated_at)
                             .join(DepartmentChain, DepartmentChain.department_id == Department.id)
                             .order_by(Department.code)).all()
            return [{"department": code, "chain": chain, "updated_by": by, "updated_at": at.isoformat()}
                    for code, chain, by, at in rows]

    # ---- clock status ----
    def sla_status(self, instance_id: int) -> dict:
        now = self.clock.now()
        with self.readers() as s:
            if s.get(Instance, instance_id) is None:
                raise NotFound(f"no instance {instance_id}")
            clocks = list(s.scalars(select(SlaClock).where(SlaClock.instance_id == instance_id).order_by(SlaClock.id)))
            pauses = list(s.scalars(select(SlaPause).where(SlaPause.instance_id == instance_id).order_by(SlaPause.id)))
            exts = list(s.scalars(select(SlaExtension).where(SlaExtension.instance_id == instance_id)
                                  .order_by(SlaExtension.id)))
            inst = next((c for c in clocks if c.scope == "instance"), None)
            return {"instance": slam.clock_dict(inst, now) if inst else None,
                    "tasks": [slam.clock_dict(c, now) for c in clocks if c.scope == "task"],
                    "pauses": [{"id": p.id, "reason": p.reason, "source": p.source, "started_at": _iso(p.started_at),
                                "paused_by": p.paused_by, "ended_at": _iso(p.ended_at), "resumed_by": p.resumed_by}
                               for p in pauses],
                    "extensions": [self._ext_dict(e) for e in exts]}

    @staticmethod
    def _ext_dict(e: SlaExtension) -> dict:
        return {"id": e.id, "clock_id": e.clock_id, "instance_id": e.instance_id, "task_id": e.human_task_id,
                "days": e.days, "reason": e.reason, "requested_by": e.requested_by,
                "requested_at": _iso(e.requested_at), "approver_group": e.approver_group, "status": e.status,
                "decided_by": e.decided_by, "decided_at": _iso(e.decided_at), "note": e.decision_note}

    def _may_handle(self, s, instance_id: int, actor: str, groups: set[str]) -> bool:
        for h in s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.status == "open")):
            if h.assignee == actor or (not h.assignee and (actor in (h.candidate_users or [])
                                                          or groups & set(h.candidate_groups or []))):
                return True
        return False

    # ---- pause / resume ----
    def pause_clock(self, instance_id: int, reason: str, actor: str) -> dict:
        """Stop the clocks of a case (专家评审, 听证, 检验检测, 补正 ...); a handler of the case or the
        approver group may. The reason is recorded; the days until resume are not counted."""
        if not (reason or "").strip():
            raise Invalid("a reason is required to stop the clock", {"reason": "required"})
        with self.sessions.begin() as s:
            row = s.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            if row.status != "running":
                raise NotAllowed(f"instance {instance_id} is {row.status}")
            groups = directory.groups_of(s, actor)
            approvers = {c.approver_group for c in s.scalars(select(SlaClock).where(
                SlaClock.instance_id == instance_id))} or {slam.DEFAULT_APPROVER}
            if not (self._may_handle(s, instance_id, actor, groups) or groups & approvers):
                raise NotAllowed(f"{actor} handles no task of instance {instance_id}")
            if s.scalars(select(SlaPause).where(SlaPause.instance_id == instance_id, SlaPause.source == "manual",
                                                SlaPause.ended_at.is_(None))).first() is not None:
                raise NotAllowed(f"the clock of instance {instance_id} is already stopped")
            now = self.clock.now()
            p = slam.start_pause(s, instance_id, reason.strip(), "manual", actor, now, self._cal())
            audit.append(s, self.clock, actor, "sla.pause", instance_id=instance_id,
                         detail={"pause_id": p.id, "reason": p.reason})
            return {"pause_id": p.id, "instance_id": instance_id, "reason": p.reason, "started_at": _iso(now)}

    def resume_clock(self, instance_id: int, actor: str) -> dict:
        with self.sessions.begin() as s:
            if s.get(Instance, instance_id) is None:
                raise NotFound(f"no instance {instance_id}")
            groups = directory.groups_of(s, actor)
            p = s.scalars(select(SlaPause).where(SlaPause.instance_id == instance_id, SlaPause.source == "manual",
                                                 SlaPause.ended_at.is_(None))).first()
            if p is None:
                raise NotAllowed(f"the clock of instance {instance_id} is not stopped")
            approvers = {c.approver_group for c in s.scalars(select(SlaClock).where(
                SlaClock.instance_id == instance_id))} or {slam.DEFAULT_APPROVER}
            if not (p.paused_by == actor or self._may_handle(s, instance_id, actor, groups) or groups & approvers):
                raise NotAllowed(f"{actor} may not restart the clock of instance {instance_id}")
            now = self.clock.now()
            resumed = slam.end_pause(s, p, actor, now, self._cal())
            audit.append(s, self.clock, actor, "sla.resume", instance_id=instance_id,
                         detail={"pause_id": p.id, "reason": p.reason, "clocks": [c.id for c in resumed]})
            return {"pause_id": p.id, "instance_id": instance_id, "ended_at": _iso(now),
                    "clocks": [slam.clock_dict(c, now) for c in resumed]}

    # ---- extensions (延期) ----
    def request_extension(self, task_id: int | None = None, *, instance_id: int | None = None, days: int,
                          reason: str, actor: str) -> dict:
        """The handler asks for ``days`` more (in the clock's unit; hours clocks get days × 24 h)."""
        if (task_id is None) == (instance_id is None):
            raise Invalid("name a task or an instance", {"target": "task_id or instance_id"})
        if not isinstance(days, int) or days <= 0 or days > 365:
            raise Invalid("days must be a whole number from 1 to 365", {"days": "1..365"})
        if not (reason or "").strip():
            raise Invalid("a reason is required", {"reason": "required"})
        with self.sessions.begin() as s:
            groups = directory.groups_of(s, actor)
            if task_id is not None:
                h = s.get(HumanTask, task_id)
                if h is None:
                    raise NotFound(f"no task {task_id}")
                if h.status != "open":
                    raise NotAllowed(f"task {task_id} is {h.status}")
                if not (h.assignee == actor or (not h.assignee and self.runtime.may_act(s, h, actor, groups))):
                    raise NotAllowed(f"{actor} does not handle task {task_id}")
                c = s.scalars(select(SlaClock).where(SlaClock.human_task_id == task_id,
                                                     SlaClock.status != "stopped")).first()
            else:
                if s.get(Instance, instance_id) is None:
                    raise NotFound(f"no instance {instance_id}")
                if not self._may_handle(s, instance_id, actor, groups):
                    raise NotAllowed(f"{actor} handles no task of instance {instance_id}")
                c = s.scalars(select(SlaClock).where(SlaClock.instance_id == instance_id, SlaClock.scope == "instance",
                                                     SlaClock.status != "stopped")).first()
            if c is None:
                raise NotFound("no running time limit to extend")
            now = self.clock.now()
            if c.status == "running" and c.due_at is not None and now > c.due_at:
                raise NotAllowed("the time limit has run out: an extension is requested before the deadline")
            if s.scalars(select(SlaExtension).where(SlaExtension.clock_id == c.id,
                                                    SlaExtension.status == "pending")).first():
                raise NotAllowed("an extension of this time limit is already waiting for approval")
            e = SlaExtension(clock_id=c.id, instance_id=c.instance_id, human_task_id=c.human_task_id, days=days,
                             reason=reason.strip()[:500], requested_by=actor, requested_at=now,
                             approver_group=c.approver_group, status="pending")
            s.add(e)
            s.flush()
            audit.append(s, self.clock, actor, "sla.extension.request", instance_id=c.instance_id,
                         task_ref=c.bpmn_id, detail={"extension_id": e.id, "days": days, "reason": e.reason})
            for u in _members(s, c.approver_group):
                notify.notice(s, user=u, kind="extension", title=f"【延期申请】{c.name}（案件 {c.instance_id}）{days} 天",
                              body=e.reason, instance_id=c.instance_id, task_id=c.human_task_id, now=now,
                              dedupe_key=f"ext:{e.id}:{u}", settings=notify.smtp_settings(s))
            return self._ext_dict(e)

    def _decide_extension(self, extension_id: int, actor: str, approve: bool, note: str) -> dict:
        with self.sessions.begin() as s:
            e = s.get(SlaExtension, extension_id)
            if e is None:
                raise NotFound(f"no extension request {extension_id}")
            if e.status != "pending":
                raise NotAllowed(f"extension request {extension_id} was already {e.status}")
            if e.approver_group not in directory.groups_of(s, actor):
                raise NotAllowed(f"only the group '{e.approver_group}' may decide extensions")
            if e.requested_by == actor:
                raise NotAllowed("nobody approves their own extension")
            c = s.get(SlaClock, e.clock_id, with_for_update=s.get_bind().dialect.name == "postgresql")
            now = self.clock.now()
            e.status, e.decided_by, e.decided_at, e.decision_note = (
                "approved" if approve else "refused"), actor, now, (note or "")[:500] or None
            if approve and c.status != "stopped":
                c.extended += e.days * 24 if c.unit == "hour" else e.days
                c.epoch += 1
                slam.refresh(s, c, self._cal(), now)
            audit.append(s, self.clock, actor, "sla.extension." + e.status, instance_id=e.instance_id,
                         task_ref=c.bpmn_id, detail={"extension_id": e.id, "days": e.days, "due_at": c.due_at})
            notify.notice(s, user=e.requested_by, kind="extension",
                          title=f"【延期{'已批准' if approve else '未批准'}】{c.name}（案件 {c.instance_id}）",
                          body=note or "", instance_id=c.instance_id, task_id=c.human_task_id, now=now,
                          dedupe_key=f"ext:{e.id}:decided", settings=notify.smtp_settings(s))
            out = self._ext_dict(e)
            out["clock"] = slam.clock_dict(c, now)
            return out

    def approve_extension(self, extension_id: int, actor: str, note: str = "") -> dict:
        return self._decide_extension(extension_id, actor, True, note)

    def refuse_extension(self, extension_id: int, actor: str, note: str = "") -> dict:
        return self._decide_extension(extension_id, actor, False, note)

    def extensions(self, status: str | None = "pending", group: str | None = None) -> list[dict]:
        with self.readers() as s:
            q = select(SlaExtension).order_by(SlaExtension.id)
            if status:
                q = q.where(SlaExtension.status == status)
            if group:
                q = q.where(SlaExtension.approver_group == group)
            return [self._ext_dict(e) for e in s.scalars(q)]

    # ---- reassign (转办) keeps the step's clock ----
    def reassign(self, task_id: int, actor: str, *, group: str | None = None, user: str | None = None,
                 reason: str = "") -> dict:
        """Hand an open task to another group or user: the step's deadlines and pending escalation
        points stay as they were (the legal clock does not restart)."""
        if (group is None) == (user is None):
            raise Invalid("name a group or a user", {"target": "group or user"})
        with self.sessions.begin() as s:
            h = s.get(HumanTask, task_id, with_for_update=s.get_bind().dialect.name == "postgresql")
            if h is None:
                raise NotFound(f"no task {task_id}")
            if h.status != "open":
                raise NotAllowed(f"task {task_id} is {h.status}")
            groups = directory.groups_of(s, actor)
            if not (self.runtime.may_act(s, h, actor, groups) or slam.DEFAULT_APPROVER in groups):
                raise NotAllowed(f"{actor} may not reassign task {task_id}")
            if user is not None:
                directory.get_user(s, user)
            before = _holder_text(h)
            set_candidates(s, h, [group] if group else [], [user] if user else [])
            if user:
                h.assignee = user
            now = self.clock.now()
            for c in s.scalars(select(SlaClock).where(SlaClock.human_task_id == h.id, SlaClock.status != "stopped")):
                c.department_id = slam.department_of_groups(s, h.candidate_groups) or c.department_id
                slam.refresh(s, c, self._cal(), now)
            audit.append(s, self.clock, actor, "reassign", instance_id=h.instance_id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "from": before, "to": group or user, "reason": reason})
            from .api import task_dict

            return task_dict(h)

    # ---- notices ----
    def set_notify_email(self, user: str, email: str | None, actor: str = "system") -> None:
        with self.sessions.begin() as s:
            directory.get_user(s, user)
            row = s.scalars(select(NotifyAddress).where(NotifyAddress.user_name == user)).first()
            if not email:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(NotifyAddress(user_name=user, email=email))
            else:
                row.email = email
            audit.append(s, self.clock, actor, "user.email", detail={"user": user, "set": bool(email)})

    def notices(self, user: str, *, unread_only: bool = False, limit: int = 100) -> list[dict]:
        with self.readers() as s:
            q = select(Notice).where(Notice.user_name == user).order_by(Notice.id.desc()).limit(limit)
            if unread_only:
                q = q.where(Notice.read_at.is_(None))
            return [{"id": n.id, "kind": n.kind, "title": n.title, "body": n.body, "instance_id": n.instance_id,
                     "task_id": n.human_task_id, "created_at": _iso(n.created_at), "read": n.read_at is not None,
                     "email_status": n.email_status} for n in s.scalars(q)]

    def mark_notice_read(self, notice_id: int, user: str) -> None:
        with self.sessions.begin() as s:
            n = s.get(Notice, notice_id)
            if n is None or n.user_name != user:
                raise NotFound(f"no notice {notice_id} for {user}")
            n.read_at = n.read_at or self.clock.now()

    # ---- reads for the monitor pages ----
    def _dept_scope(self, s, department: str | None) -> tuple[dict[int, Department], set[int] | None]:
        depts = {d.id: d for d in s.scalars(select(Department))}
        if department is None:
            return depts, None
        root = next((d for d in depts.values() if d.code == department), None)
        if root is None:
            raise NotFound(f"no department '{department}'")
        return depts, directory.department_subtree(s, root.id)

    def sla_overview(self, department: str | None = None, *, weeks: int = 8, limit: int = 500) -> dict:
        """Yellow/red counts by department and by org level, overdue cases and steps with who holds
        them, handling time per step (average and p90, hours), and a weekly trend of cards."""
        now = self.clock.now()
        with self.readers() as s:
            depts, scope = self._dept_scope(s, department)
            clocks = list(s.scalars(select(SlaClock).where(SlaClock.status != "stopped")))
            tasks = {h.id: h for h in s.scalars(select(HumanTask).where(
                HumanTask.id.in_([c.human_task_id for c in clocks if c.human_task_id]) if clocks else False))}
            # an instance's department: the department of any of its clocked steps
            inst_dept: dict[int, int] = {}
            for c in clocks:
                if c.scope == "task" and c.department_id and c.instance_id not in inst_dept:
                    inst_dept[c.instance_id] = c.department_id
            totals = {"green": 0, "yellow": 0, "red": 0}
            by_dept: dict[str, dict] = {}
            by_level: dict[int, dict] = {}
            overdue_cases, overdue_steps = [], []
            for c in clocks:
                dep_id = c.department_id if c.scope == "task" else inst_dept.get(c.instance_id)
                if scope is not None and dep_id not in scope:
                    continue
                st = slam.state(c, now)
                if c.scope == "task":
                    totals[st] += 1
                    d = depts.get(dep_id)
                    key = d.code if d else ""
                    row = by_dept.setdefault(key, {"department": d.code if d else None, "name": d.name if d else None,
                                                   "level": d.level if d else None, "green": 0, "yellow": 0, "red": 0})
                    row[st] += 1
                    if d is not None:
                        lv = by_level.setdefault(d.level, {"level": d.level, "level_name": directory.LEVELS[d.level],
                                                           "green": 0, "yellow": 0, "red": 0})
                        lv[st] += 1
                if st != "red":
                    continue
                item = slam.clock_dict(c, now)
                item["overdue_hours"] = round((now - c.due_at).total_seconds() / 3600, 1)
                h = tasks.get(c.human_task_id)
                item["holder"] = _holder_text(h)
                item["assignee"] = h.assignee if h else None
                d = depts.get(dep_id)
                item["department"], item["department_name"] = (d.code, d.name) if d else (None, None)
                (overdue_steps if c.scope == "task" else overdue_cases).append(item)
            for lst in (overdue_steps, overdue_cases):
                lst.sort(key=lambda r: r["due_at"] or "")
            case_totals = {"green": 0, "yellow": 0, "red": 0}
            for c in clocks:
                if c.scope == "instance" and (scope is None or inst_dept.get(c.instance_id) in scope):
                    case_totals[slam.state(c, now)] += 1
            return {"now": _iso(now), "department": department, "steps": totals, "cases": case_totals,
                    "by_department": sorted(by_dept.values(), key=lambda r: (-r["red"], -r["yellow"],
                                                                              r["department"] or "~")),
                    "by_level": [by_level[k] for k in sorted(by_level)],
                    "overdue_cases": overdue_cases[:limit], "overdue_steps": overdue_steps[:limit],
                    "handling": self._handling(s, scope), "trend": self._trend(s, now, weeks, scope)}

    @staticmethod
    def _handling(s, scope) -> list[dict]:
        q = select(HumanTask.process_key, HumanTask.bpmn_id, HumanTask.name, HumanTask.created_at,
                   HumanTask.completed_at, HumanTask.candidate_groups).where(
            HumanTask.status == "completed", HumanTask.completed_at.is_not(None))
        dept_of = dict(s.execute(select(Group.name, Group.department_id)).all()) if scope is not None else {}
        spans: dict[tuple, list[float]] = defaultdict(list)
        names = {}
        for key, bpmn_id, name, created, done, groups in s.execute(q):
            if scope is not None and not any(dept_of.get(g) in scope for g in groups or []):
                continue
            spans[(key, bpmn_id)].append((done - created).total_seconds() / 3600)
            names[(key, bpmn_id)] = name
        out = []
        for (key, bpmn_id), hours in sorted(spans.items()):
            hours.sort()
            p90 = hours[min(len(hours) - 1, max(0, math.ceil(0.9 * len(hours)) - 1))]
            out.append({"process_key": key, "bpmn_id": bpmn_id, "name": names[(key, bpmn_id)], "count": len(hours),
                        "avg_hours": round(sum(hours) / len(hours), 2), "p90_hours": round(p90, 2)})
        return out

    @staticmethod
    def _trend(s, now: datetime, weeks: int, scope) -> list[dict]:
        local = now.astimezone(slam.LOCAL).date()
        monday = local - timedelta(days=local.weekday())
        starts = [monday - timedelta(weeks=i) for i in range(weeks - 1, -1, -1)]
        since = slam.eod(starts[0] - timedelta(days=1))
        rows = {w: {"week": w.isoformat(), "yellow": 0, "red": 0, "completed": 0, "completed_late": 0} for w in starts}

        def week(at):
            d = at.astimezone(slam.LOCAL).date()
            return d - timedelta(days=d.weekday())

        for color, at, dep in s.execute(select(SupervisionCard.color, SupervisionCard.issued_at,
                                               SupervisionCard.department_id).where(SupervisionCard.issued_at > since)):
            if (scope is None or dep in scope) and week(at) in rows:
                rows[week(at)][color] += 1
        for ended, due, dep in s.execute(select(SlaClock.ended_at, SlaClock.due_at, SlaClock.department_id).where(
                SlaClock.scope == "task", SlaClock.end_reason == "completed", SlaClock.ended_at > since)):
            if (scope is None or dep in scope) and week(ended) in rows:
                rows[week(ended)]["completed"] += 1
                rows[week(ended)]["completed_late"] += int(due is not None and ended > due)
        return list(rows.values())

    def escalation_log(self, limit: int = 200, *, instance_id: int | None = None) -> list[dict]:
        with self.readers() as s:
            q = select(SlaEvent).order_by(SlaEvent.id.desc()).limit(limit)
            if instance_id is not None:
                q = q.where(SlaEvent.instance_id == instance_id)
            return [{"id": e.id, "at": _iso(e.at), "instance_id": e.instance_id, "task_id": e.human_task_id,
                     "clock_id": e.clock_id, "point": e.point, "action": e.action, "target": e.target,
                     "outcome": e.outcome, "detail": e.detail} for e in s.scalars(q)]

    def supervision_cards(self, *, color: str | None = None, department: str | None = None,
                          since: datetime | None = None, instance_id: int | None = None, limit: int = 500) -> list[dict]:
        with self.readers() as s:
            depts, scope = self._dept_scope(s, department)
            q = select(SupervisionCard).order_by(SupervisionCard.id.desc()).limit(limit)
            if color:
                q = q.where(SupervisionCard.color == color)
            if since is not None:
                q = q.where(SupervisionCard.issued_at >= since)
            if instance_id is not None:
                q = q.where(SupervisionCard.instance_id == instance_id)
            if scope is not None:
                q = q.where(SupervisionCard.department_id.in_(scope))
            out = []
            for k in s.scalars(q):
                d = depts.get(k.department_id)
                out.append({"id": k.id, "color": k.color, "instance_id": k.instance_id, "task_id": k.human_task_id,
                            "scope": k.scope, "process_key": k.process_key, "bpmn_id": k.bpmn_id, "name": k.name,
                            "point": k.point, "department": d.code if d else None,
                            "department_name": d.name if d else None, "holder": k.holder, "due_at": _iso(k.due_at),
                            "issued_at": _iso(k.issued_at)})
            return out

    def sla_export(self, kind: str, fmt: str = "xlsx", *, department: str | None = None) -> bytes:
        """``overdue`` (cases and steps), ``cards`` or ``log`` as xlsx or CSV bytes."""
        if kind == "overdue":
            ov = self.sla_overview(department)
            rows = [{**r, "kind": "case"} for r in ov["overdue_cases"]] + \
                   [{**r, "kind": "step"} for r in ov["overdue_steps"]]
            cols = ["kind", "instance_id", "task_id", "process_key", "name", "department_name", "holder",
                    "due_at", "statutory_due_at", "overdue_hours", "provisional"]
        elif kind == "cards":
            rows = self.supervision_cards(department=department, limit=100_000)
            cols = ["id", "color", "instance_id", "task_id", "process_key", "name", "point", "department_name",
                    "holder", "due_at", "issued_at"]
        elif kind == "log":
            rows = self.escalation_log(100_000)
            cols = ["id", "at", "instance_id", "task_id", "point", "action", "target", "outcome"]
        else:
            raise Invalid(f"unknown export '{kind}' (overdue, cards or log)", {"kind": kind})
        if fmt == "csv":
            return to_csv(rows, cols)
        if fmt == "xlsx":
            return to_xlsx(rows, cols, kind)
        raise Invalid(f"unknown format '{fmt}' (xlsx or csv)", {"format": fmt})


def to_csv(rows: list[dict], columns: list[str]) -> bytes:
    """UTF-8 with a BOM so that Excel shows the Chinese text."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else _cell(r.get(c)) for c in columns])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _cell(v):
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
        return "'" + v  # no formulas from data (CSV/xlsx injection)
    return v


def to_xlsx(rows: list[dict], columns: list[str], title: str = "sheet") -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title[:31])
    ws.append(columns)
    for r in rows:
        ws.append([_cell(r.get(c)) if not isinstance(r.get(c), list | dict) else str(r.get(c)) for c in columns])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


__all__ = ["SlaMixin", "fire", "to_csv", "to_xlsx"]
