"""Chinese approval operations (中国式审批) of the Engine: 转办, 委派, 加签/减签, 退回, 退回补正,
撤回, 催办, 抄送, typed opinions and phrases, 流程预测, and the administrator's moves (move the
token, suspend, resume, terminate). ``engine/api.py`` mixes :class:`ApprovalMixin` into Engine.

Every operation is one transaction: it checks who acts and the task's state, applies the change,
appends an audit event and an opinion row, and bumps the instance's row version (``Conflict`` when
another writer changed the instance first, so two clerks acting at once never both win).
The rules that run inside the step transaction (会签 vote counting, no approver, initiator as
approver) are in ``engine/approval_rules.py``. docs/approval.md lists the operations.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from copy import deepcopy
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from . import approval_rules as rules
from . import audit, directory, forms, notify
from . import sla as slam
from .errors import Conflict, Invalid, NotAllowed, NotFound
from .models import (
    AuditEvent,
    CarbonCopy,
    HumanTask,
    Instance,
    Job,
    Opinion,
    Phrase,
    ProcessDefinition,
    SlaClock,
    SlaPause,
    TaskSign,
    User,
)
from .runtime import check_open

URGE_INTERVAL = timedelta(hours=1)
REASON_REQUIRED = ("return", "return_applicant", "move", "terminate", "suspend")
PHRASE_MAX = 500


def _iso(v):
    return v.isoformat() if v else None


def _pg(s) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def _opinion_dict(o: Opinion) -> dict:
    return {"id": o.id, "instance_id": o.instance_id, "task_id": o.human_task_id, "bpmn_id": o.bpmn_id,
            "actor": o.actor, "kind": o.kind, "decision": o.decision, "text": o.text, "target": o.target,
            "at": _iso(o.at)}


def _sign_dict(t: TaskSign) -> dict:
    return {"id": t.id, "task_id": t.human_task_id, "user": t.user_name, "kind": t.kind, "position": t.position,
            "status": t.status, "owner": t.owner, "added_by": t.added_by, "added_at": _iso(t.added_at),
            "decision": t.decision, "opinion": t.opinion, "decided_at": _iso(t.decided_at)}


def _cc_dict(c: CarbonCopy, h: HumanTask | None = None) -> dict:
    return {"id": c.id, "instance_id": c.instance_id, "task_id": c.human_task_id, "user": c.user_name,
            "sent_by": c.sent_by, "note": c.note, "sent_at": _iso(c.sent_at), "read_at": _iso(c.read_at),
            "read": c.read_at is not None, "task_name": h.name if h else None,
            "process_key": h.process_key if h else None}


class ApprovalMixin:
    """The approval operations of the Engine (``engine/api.py`` mixes this in)."""

    # ---- shared checks ------------------------------------------------------------------------
    def _is_admin(self, s, user: str) -> bool:
        u = s.scalars(select(User).where(User.name == user)).first()
        return u is not None and u.active and ("admin" in (u.roles or []) or rules.ADMIN_GROUP in
                                               directory.group_names(u))

    def _approval_task(self, s, task_id: int) -> HumanTask:
        h = s.get(HumanTask, task_id, with_for_update=_pg(s))
        if h is None:
            raise NotFound(f"no task {task_id}")
        return h

    def _running(self, s, instance_id: int) -> Instance:
        row = s.get(Instance, instance_id)
        if row is None:
            raise NotFound(f"no instance {instance_id}")
        if row.status == "suspended":
            raise NotAllowed(f"instance {instance_id} is suspended: no task actions until it is resumed")
        if row.status != "running":
            raise NotAllowed(f"instance {instance_id} is {row.status}")
        # hold the row as read: its version is what this operation's write is checked against
        s.info.setdefault("tb_rows_read", []).append(row)
        return row

    @staticmethod
    def _check_open(h: HumanTask, s=None, actor: str | None = None) -> None:
        check_open(h, s, actor)

    def _holds(self, s, h: HumanTask, actor: str) -> bool:
        """The actor holds the task: its assignee, or a candidate of an unclaimed task."""
        if h.assignee:
            return h.assignee == actor
        return self.runtime.may_act(s, h, actor)

    def _active_sign(self, s, h: HumanTask) -> TaskSign | None:
        return s.scalars(select(TaskSign).where(TaskSign.human_task_id == h.id, TaskSign.status == "active")).first()

    def _free_holder(self, s, h: HumanTask, actor: str, what: str) -> None:
        """The actor holds the open task and no delegate or added signer holds it now."""
        self._check_open(h, s, actor)
        self._running(s, h.instance_id)
        sign = self._active_sign(s, h)
        if sign is not None:
            raise NotAllowed(f"task {h.id} is held by {sign.user_name} ({sign.kind}); {what} is possible "
                             f"when it is back with {sign.owner}")
        if not self._holds(s, h, actor):
            raise NotAllowed(f"{actor} does not hold task {h.id} '{h.name}'")

    @contextmanager
    def _tx(self):
        try:
            with self.sessions.begin() as s:
                yield s
        except StaleDataError as exc:
            raise Conflict("the instance was changed by someone else; reload and try again") from exc

    def _op(self, fn):
        """Run one operation in its own transaction; a stale row version anywhere is a Conflict."""
        try:
            return self._guarded(fn)
        except StaleDataError as exc:
            raise Conflict("the instance was changed by someone else; reload and try again") from exc

    def _bump(self, s, instance_id: int) -> None:
        """Take the instance's row version: a concurrent writer of the same instance gets Conflict."""
        row = s.get(Instance, instance_id)
        row.updated_at = self.clock.now()
        flag_modified(row, "updated_at")  # an UPDATE ... WHERE version = ? even when nothing else changed
        try:
            s.flush()
        except StaleDataError as exc:
            raise Conflict(f"instance {instance_id} was changed by someone else; reload and try again") from exc

    def _user(self, s, name: str) -> User:
        u = s.scalars(select(User).where(User.name == name)).first()
        if u is None or not u.active:
            raise NotFound(f"no active user '{name}'")
        return u

    @staticmethod
    def _need_text(text: str | None, kind: str, entry: dict | None = None) -> str:
        text = (text or "").strip()
        required = kind in REASON_REQUIRED or kind in ((entry or {}).get("opinion_required_for") or [])
        if required and not text:
            raise Invalid(f"请填写意见 / an opinion is required for {kind}", {"opinion": "required"})
        return text

    def _entry(self, s, h: HumanTask) -> dict:
        row = s.get(Instance, h.instance_id)
        _spec, _subs, manifest = self.specs.get(s, row.definition_id)
        return manifest["tasks"].get(h.bpmn_id, {})

    def _notice(self, s, users, kind: str, title: str, body: str, h: HumanTask | None, instance_id: int, key: str):
        settings = notify.smtp_settings(s)
        now = self.clock.now()
        for u in sorted(set(users)):
            notify.notice(s, user=u, kind=kind, title=title, body=body or "", instance_id=instance_id,
                          task_id=h.id if h else None, now=now, dedupe_key=f"{key}:{u}:{uuid.uuid4().hex[:12]}",
                          settings=settings)

    def _refresh_clocks(self, s, h: HumanTask) -> None:
        now = self.clock.now()
        for c in s.scalars(select(SlaClock).where(SlaClock.human_task_id == h.id, SlaClock.status != "stopped")):
            c.department_id = slam.department_of_groups(s, h.candidate_groups) or c.department_id
            slam.refresh(s, c, self._cal(), now)

    # ---- 转办 transfer ------------------------------------------------------------------------
    def transfer(self, task_id: int, to_user: str, actor: str, opinion: str = "") -> dict:
        """转办: hand the task to ``to_user``, who then owns it (the only candidate and assignee).
        Who: the holder, or an administrator. The step's deadline stays. Audit ``transfer``."""
        with self._tx() as s:
            return self._transfer(s, task_id, to_user, actor, opinion)

    def _transfer(self, s, task_id, to_user, actor, opinion):
        h = self._approval_task(s, task_id)
        admin = self._is_admin(s, actor)
        try:
            self._free_holder(s, h, actor, "a transfer")
        except NotAllowed:
            if not admin or h.status != "open" or self._active_sign(s, h) is not None:
                raise
        self._user(s, to_user)
        if to_user == h.assignee or to_user == actor:
            raise Invalid(f"task {task_id} is already with {to_user}", {"to_user": "same holder"})
        text = self._need_text(opinion, "transfer", self._entry(s, h))
        before = h.assignee or ",".join([*(h.candidate_groups or []), *(h.candidate_users or [])])
        rules.set_candidates(s, h, [], [to_user])
        h.assignee, h.owner = to_user, None
        self._refresh_clocks(s, h)
        rules.record(s, self.clock, h, actor, "transfer", text=text, target=to_user)
        audit.append(s, self.clock, actor, "transfer", instance_id=h.instance_id, task_ref=h.bpmn_id,
                     detail={"task_id": h.id, "from": before, "to": to_user, "opinion": text})
        self._notice(s, [to_user], "transfer", f"【转办】{h.name}（案件 {h.instance_id}）", text, h, h.instance_id,
                     f"transfer:{h.id}:{self.clock.now().timestamp()}")
        self._bump(s, h.instance_id)
        from .api import task_dict

        return task_dict(h)

    # ---- 委派 delegate / 加签 add signers / answer / 减签 ---------------------------------------
    def delegate(self, task_id: int, to_user: str, actor: str, opinion: str = "") -> dict:
        """委派: ``to_user`` answers (Engine.answer) and the task comes back to ``actor`` (its owner),
        who decides. Who: the holder. Audit ``delegate``."""
        with self._tx() as s:
            return self._add_signs(s, task_id, [to_user], actor, "delegate", opinion)

    def add_sign(self, task_id: int, users: list[str], actor: str, position: str = "before", opinion: str = "",
                 *, decision: str | None = None, data: dict | None = None) -> dict:
        """加签. ``before``: the added signers answer one after the other first, then the task comes back
        to ``actor``. ``after``: ``actor`` decides now (``decision``, ``data``); the added signers answer
        in turn and the step completes with that decision when the last approves (a reject brings the
        task back to ``actor``). Who: the holder; not on a 会签 vote. Audit ``add_sign``."""
        if position not in ("before", "after"):
            raise Invalid("position is before or after", {"position": "before | after"})
        with self._tx() as s:
            return self._add_signs(s, task_id, list(users or []), actor, position, opinion, decision, data)

    def _add_signs(self, s, task_id, users, actor, kind, opinion, decision=None, data=None):
        h = self._approval_task(s, task_id)
        self._free_holder(s, h, actor, "adding a signer" if kind != "delegate" else "a delegation")
        entry = self._entry(s, h)
        if entry.get("countersign"):
            raise NotAllowed(f"task {h.id} is a 会签 vote: each voter decides for themself")
        if not users or len(set(users)) != len(users):
            raise Invalid("name one or more different users", {"users": "required, no duplicates"})
        for u in users:
            self._user(s, u)
            if u == actor:
                raise Invalid(f"{actor} cannot add themself", {"users": u})
        text = self._need_text(opinion, "delegate" if kind == "delegate" else "add_sign", entry)
        payload = {}
        if kind == "after":
            outcomes = {o["id"] for o in entry.get("outcomes") or []}
            if outcomes and decision not in outcomes:
                raise Invalid(f"请选择办理结果 / choose a decision: {', '.join(sorted(outcomes))}",
                              {"decision": "required"})
            if entry.get("opinion_required") and not text:
                raise Invalid("请填写审批意见 / an opinion is required", {"opinion": "required"})
            payload = {"data": dict(data or {}), "decision": decision, "opinion": text}
        now = self.clock.now()
        rows = []
        for i, u in enumerate(users):
            t = TaskSign(human_task_id=h.id, instance_id=h.instance_id, user_name=u, kind=kind, position=i,
                         status="active" if i == 0 else "pending", owner=actor, added_by=actor, added_at=now,
                         payload=payload if i == 0 else {})
            s.add(t)
            rows.append(t)
        h.owner, h.assignee = actor, users[0]
        s.flush()
        what = "delegate" if kind == "delegate" else "add_sign"
        rules.record(s, self.clock, h, actor, what, decision=decision, text=text, target=",".join(users))
        audit.append(s, self.clock, actor, what, instance_id=h.instance_id, task_ref=h.bpmn_id,
                     detail={"task_id": h.id, "users": users, "position": kind, "opinion": text,
                             "decision": decision, "signs": [t.id for t in rows]})
        title = "委派" if kind == "delegate" else "加签"
        self._notice(s, [users[0]], "approval", f"【{title}】{h.name}（案件 {h.instance_id}）", text, h, h.instance_id,
                     f"sign:{rows[0].id}")
        self._bump(s, h.instance_id)
        return {"task_id": h.id, "owner": actor, "assignee": h.assignee, "signs": [_sign_dict(t) for t in rows]}

    def answer(self, task_id: int, actor: str, opinion: str = "", decision: str | None = None) -> dict:
        """The delegate's or added signer's answer (``decision`` approve | reject for added signers).
        The task goes to the next added signer or back to its owner; the last approval of an ``after``
        signer completes the step with the owner's decision. Who: the active delegate or signer.
        Audit ``answer``."""
        def run(s):
            return self._answer(s, task_id, actor, opinion, decision)

        return self._op(run)

    def _answer(self, s, task_id, actor, opinion, decision):
        h = self._approval_task(s, task_id)
        self._check_open(h, s, actor)
        self._running(s, h.instance_id)
        sign = self._active_sign(s, h)
        if sign is None or sign.user_name != actor:
            raise NotAllowed(f"{actor} was not asked to answer task {task_id}")
        if decision not in (None, "approve", "reject"):
            raise Invalid("decision is approve or reject", {"decision": "approve | reject"})
        text = self._need_text(opinion, "answer", self._entry(s, h))
        if sign.kind == "delegate" and not text:
            raise Invalid("请填写处理意见 / the delegate's answer is an opinion", {"opinion": "required"})
        now = self.clock.now()
        sign.status, sign.decision, sign.opinion, sign.decided_at = "done", decision, text, now
        rules.record(s, self.clock, h, actor, "answer" if sign.kind == "delegate" else "sign", decision=decision,
                     text=text, target=sign.owner)
        audit.append(s, self.clock, actor, "answer", instance_id=h.instance_id, task_ref=h.bpmn_id,
                     detail={"task_id": h.id, "sign_id": sign.id, "kind": sign.kind, "decision": decision,
                             "opinion": text})
        held = self._held(s, h) if sign.kind == "after" else None
        if sign.kind == "after" and decision == "reject":
            for t in s.scalars(select(TaskSign).where(TaskSign.human_task_id == h.id, TaskSign.status == "pending")):
                t.status = "removed"
            held = None
            self._back_to_owner(s, h, sign.owner)
        else:
            self._advance(s, h, sign.owner)
        result = {"task_id": h.id, "assignee": h.assignee, "owner": h.owner, "completed": False}
        if held is not None and h.owner is None:
            owner = h.assignee
            self._bump(s, h.instance_id)
            self.runtime.complete(s, h.id, owner, held.get("data"), held.get("decision"), held.get("opinion"),
                                  force=True)
            result["completed"] = True
            return result
        self._bump(s, h.instance_id)
        return result

    @staticmethod
    def _held(s, h: HumanTask) -> dict | None:
        first = s.scalars(select(TaskSign).where(TaskSign.human_task_id == h.id, TaskSign.kind == "after")
                          .order_by(TaskSign.id.desc())).all()
        for t in first:
            if t.payload:
                return t.payload
        return None

    def _back_to_owner(self, s, h: HumanTask, owner: str) -> None:
        h.assignee, h.owner = owner, None
        self._notice(s, [owner], "approval", f"【已回到您】{h.name}（案件 {h.instance_id}）", "", h, h.instance_id,
                     f"back:{h.id}:{self.clock.now().timestamp()}")

    def _advance(self, s, h: HumanTask, owner: str) -> None:
        nxt = s.scalars(select(TaskSign).where(TaskSign.human_task_id == h.id, TaskSign.status == "pending")
                        .order_by(TaskSign.position, TaskSign.id)).first()
        if nxt is not None:
            nxt.status = "active"
            h.assignee = nxt.user_name
            self._notice(s, [nxt.user_name], "approval", f"【加签】{h.name}（案件 {h.instance_id}）", "", h,
                         h.instance_id, f"sign:{nxt.id}")
        else:
            self._back_to_owner(s, h, owner)

    def remove_sign(self, sign_id: int, actor: str, reason: str = "") -> dict:
        """减签: remove an added signer (or take back a delegation) who has not answered yet.
        Who: whoever added it, or an administrator. Audit ``remove_sign``."""
        def run(s):
            t = s.get(TaskSign, sign_id)
            if t is None:
                raise NotFound(f"no added signer {sign_id}")
            h = self._approval_task(s, t.human_task_id)
            self._check_open(h, s, actor)
            self._running(s, h.instance_id)
            if t.added_by != actor and not self._is_admin(s, actor):
                raise NotAllowed(f"only {t.added_by} (who added {t.user_name}) may remove them")
            if t.status == "done":
                raise NotAllowed(f"{t.user_name} has already answered: an answer stays on the record")
            if t.status == "removed":
                raise Conflict(f"{t.user_name} was already removed")
            was_active = t.status == "active"
            t.status, t.decided_at = "removed", self.clock.now()
            rules.record(s, self.clock, h, actor, "remove_sign", text=reason, target=t.user_name)
            audit.append(s, self.clock, actor, "remove_sign", instance_id=h.instance_id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "sign_id": t.id, "user": t.user_name, "reason": reason})
            held = self._held(s, h) if t.kind == "after" else None
            if was_active:
                self._advance(s, h, t.owner)
            self._bump(s, h.instance_id)
            if held is not None and h.owner is None and was_active:
                self.runtime.complete(s, h.id, h.assignee, held.get("data"), held.get("decision"),
                                      held.get("opinion"), force=True)
            return {"task_id": h.id, "assignee": h.assignee, "owner": h.owner, "sign": _sign_dict(t)}

        return self._op(run)

    def signs(self, task_id: int) -> list[dict]:
        """The added signers and delegations of a task, in order."""
        with self.readers() as s:
            return [_sign_dict(t) for t in s.scalars(select(TaskSign).where(TaskSign.human_task_id == task_id)
                                                      .order_by(TaskSign.id))]

    # ---- 退回 return ----------------------------------------------------------------------------
    def _workflow_readonly(self, s, row: Instance):
        from .serialization import load_state

        spec, subs, manifest = self.specs.get(s, row.definition_id)
        from . import pulls

        pulls.park_services(spec, subs)
        return load_state(row.state, spec, subs, self.runtime._script_engine), manifest

    def _targets(self, s, h: HumanTask, wf, manifest) -> list[dict]:
        from SpiffWorkflow.util.task import TaskState

        from .runtime import _find_task

        task = _find_task(wf, h.spiff_task_id)
        if task is None:
            return []
        out, seen = [], set()
        anc = task.parent
        while anc is not None:
            bpmn_id = getattr(anc.task_spec, "bpmn_id", None)
            if anc.state == TaskState.COMPLETED and bpmn_id in manifest["tasks"] and bpmn_id != h.bpmn_id \
                    and bpmn_id not in seen:
                done = s.scalars(select(HumanTask).where(HumanTask.spiff_task_id == str(anc.id),
                                                         HumanTask.status == "completed")).first()
                if done is not None:
                    seen.add(bpmn_id)
                    out.append({"task_id": done.id, "bpmn_id": bpmn_id, "name": done.name,
                                "completed_by": done.completed_by, "completed_at": _iso(done.completed_at),
                                "spiff_task_id": done.spiff_task_id})
            anc = anc.parent
        return out

    def return_targets(self, task_id: int, user: str) -> list[dict]:
        """The earlier completed user tasks on this task's path (nearest first) it can be returned to.
        Tasks of other parallel branches are not on the path. Who: the holder or an administrator."""
        with self.readers() as s:
            h = s.get(HumanTask, task_id)
            if h is None:
                raise NotFound(f"no task {task_id}")
            if not (self._holds(s, h, user) or self._is_admin(s, user)):
                raise NotAllowed(f"{user} does not hold task {task_id}")
            row = s.get(Instance, h.instance_id)
            wf, manifest = self._workflow_readonly(s, row)
            return [{k: v for k, v in t.items() if k != "spiff_task_id"} for t in self._targets(s, h, wf, manifest)]

    def _reopen(self, s, row, wf, manifest, target_spiff: str, actor: str, assign_to: str | None):
        """Reset the workflow to an earlier task (its branch below is dropped and runs again) and save."""
        from .runtime import _find_task

        target = _find_task(wf, target_spiff)
        data = deepcopy(target.data)  # the data as that step left it: its form comes back filled in
        self.runtime._steps(wf, lambda: wf.reset_from_task_id(target.id, data))
        wf.last_task = target  # the instance's data snapshot is the reopened step's data
        for old in s.scalars(select(HumanTask).where(HumanTask.spiff_task_id == target_spiff)):
            old.spiff_task_id = str(uuid.uuid4())  # history row keeps its id, opinions and decision
        s.flush()
        self.runtime._save(s, row, wf, manifest, actor)
        new = s.scalars(select(HumanTask).where(HumanTask.spiff_task_id == target_spiff)).first()
        if new is not None and assign_to and new.status == "open" and self.runtime.may_act(s, new, assign_to):
            new.assignee = assign_to
        return new

    def return_task(self, task_id: int, target_task_id: int, actor: str, opinion: str) -> dict:
        """退回: send the instance back to an earlier completed task (``target_task_id`` from
        ``return_targets``). The open tasks below the target are cancelled — a parallel branch split
        after the target is cancelled and re-created when the flow passes the split again; branches
        not below the target keep their state. The returned task comes back with the data it left, is
        assigned to whoever did it (if still a candidate), and gets new SLA deadlines. An opinion is
        required. Who: the holder or an administrator. Audit ``return``."""
        def run(s):
            h = self._approval_task(s, task_id)
            try:
                self._free_holder(s, h, actor, "a return")
            except NotAllowed:
                if not self._is_admin(s, actor) or h.status != "open":
                    raise
            text = self._need_text(opinion, "return")
            row, wf, manifest = self.runtime._load(s, h.instance_id)
            target = next((t for t in self._targets(s, h, wf, manifest) if t["task_id"] == target_task_id), None)
            if target is None:
                raise NotAllowed(f"task {target_task_id} is not an earlier step on the path of task {task_id}")
            rules.record(s, self.clock, h, actor, "return", decision="return", text=text, target=target["bpmn_id"])
            audit.append(s, self.clock, actor, "return", instance_id=row.id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "to_task_id": target_task_id, "to": target["bpmn_id"],
                                 "opinion": text})
            new = self._reopen(s, row, wf, manifest, target["spiff_task_id"], actor, target["completed_by"])
            h.decision, h.opinion, h.completed_by = "return", text, actor
            if new is not None and new.assignee:
                self._notice(s, [new.assignee], "approval", f"【退回】{new.name}（案件 {row.id}）", text, new, row.id,
                             f"return:{new.id}")
            return {"instance_id": row.id, "task_id": new.id if new else None, "to": target["bpmn_id"],
                    "assignee": new.assignee if new else None}

        return self._op(run)

    # ---- 退回补正 return to the applicant --------------------------------------------------------
    def return_to_applicant(self, task_id: int, actor: str, opinion: str, fields: list[str] | None = None) -> dict:
        """退回补正: the task waits (status ``supplement``) for the applicant's supplement and the
        instance's clocks stop; ``supplement`` brings it back. An opinion (what to supplement) is
        required. Who: the holder. Audit ``return_applicant``."""
        with self._tx() as s:
            h = self._approval_task(s, task_id)
            self._free_holder(s, h, actor, "a return to the applicant")
            text = self._need_text(opinion, "return_applicant")
            row = s.get(Instance, h.instance_id)
            now = self.clock.now()
            h.status = "supplement"
            h.assignee = h.assignee or actor
            p = slam.start_pause(s, row.id, f"补正：{text}"[:200], f"supplement:{h.id}", actor, now, self._cal())
            rules.record(s, self.clock, h, actor, "return_applicant", decision="supplement", text=text,
                         target=",".join(fields or []) or row.started_by)
            audit.append(s, self.clock, actor, "return_applicant", instance_id=row.id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "opinion": text, "fields": list(fields or []), "pause_id": p.id})
            if s.scalars(select(User).where(User.name == row.started_by)).first() is not None:
                self._notice(s, [row.started_by], "supplement", f"【补正通知】案件 {row.id}", text, h, row.id,
                             f"supplement:{h.id}:{now.timestamp()}")
            self._bump(s, row.id)
            return {"instance_id": row.id, "task_id": h.id, "status": h.status, "fields": list(fields or [])}

    def supplement(self, instance_id: int, data: dict, actor: str) -> dict:
        """The applicant's supplement (补正材料): merged into the waiting task's data; the task opens
        again for the clerk who asked and the clocks run again. Who: the applicant (the user who
        started the instance) or an administrator. Audit ``supplement``."""
        def run(s):
            row = s.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            # who may, before anything about the request or the case's state is said
            if actor != row.started_by and not self._is_admin(s, actor):
                raise NotAllowed(f"only the applicant who started instance {instance_id} (or an administrator) "
                                 "sends its supplement")
            if not isinstance(data, dict) or not data:
                raise Invalid("invalid request: data", {"data": "required: an object of the supplemented fields"})
            h = s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                  HumanTask.status == "supplement")
                          .with_for_update(of=HumanTask) if _pg(s) else
                          select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                  HumanTask.status == "supplement")).first()
            if h is None:
                raise NotAllowed(f"instance {instance_id} is not waiting for a supplement")
            self._running(s, instance_id)
            row, wf, manifest = self.runtime._load(s, instance_id)
            from .runtime import _find_task

            task = _find_task(wf, h.spiff_task_id)
            if task is None:
                raise NotAllowed(f"task {h.id} is no longer in the workflow")
            supplied = self._supplement_data(s, row, h, manifest, wf, task.data, data)
            self.runtime._steps(wf, lambda: task.data.update(supplied))
            wf.last_task = task
            h.status = "open"
            now = self.clock.now()
            for p in s.scalars(select(SlaPause).where(SlaPause.instance_id == instance_id,
                                                      SlaPause.source == f"supplement:{h.id}",
                                                      SlaPause.ended_at.is_(None))):
                slam.end_pause(s, p, actor, now, self._cal())
            rules.record(s, self.clock, h, actor, "supplement", text="补正材料：" + ", ".join(sorted(data)))
            audit.append(s, self.clock, actor, "supplement", instance_id=instance_id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "fields": sorted(data)})
            if h.assignee:
                self._notice(s, [h.assignee], "supplement", f"【补正已提交】{h.name}（案件 {instance_id}）",
                             ", ".join(sorted(data)), h, instance_id, f"supplied:{h.id}:{now.timestamp()}")
            self.runtime._save(s, row, wf, manifest, actor)
            return {"instance_id": instance_id, "task_id": h.id, "status": h.status}

        return self._op(run)

    # what the applicant gave at the start that is the engine's, not theirs
    _ENGINE_START_KEYS = frozenset({"initiator", "business_key"})

    @staticmethod
    def _process_names(manifest: dict, wf) -> set[str]:
        """Names the process sets in its own steps: clerks' form fields and decisions, pulled fields,
        and whatever its scripts assign (called processes included)."""
        from .flowcheck import names_written

        names = {"decision"}
        for entry in manifest.get("tasks", {}).values():
            names |= {f["id"] for f in entry.get("form_fields") or []}
            names |= {o["as"] for p in entry.get("pulls") or [] for o in p.get("outputs") or []}
        for spec in [wf.spec, *wf.subprocess_specs.values()]:
            for ts in spec.task_specs.values():
                for script in (getattr(ts, "script", None), getattr(ts, "prescript", None),
                               getattr(ts, "postscript", None)):
                    if isinstance(script, str):
                        names |= names_written(script)
        return names

    def _supplement_data(self, s, row: Instance, h: HumanTask, manifest: dict, wf, current: dict,
                         data: dict) -> dict:
        """The supplement's fields, checked: when the clerk named fields in the return, only those;
        otherwise what the applicant gave (at the start or in an earlier supplement) and fields the case
        does not hold and the process never sets — never a value the process sets itself (a pulled
        record, a check's result, a clerk's decision or form field, a script's variable). Fields of the
        start form are validated as the start form validates them."""
        events, supplied_before = {}, set()
        for e in s.scalars(select(AuditEvent).where(
                AuditEvent.instance_id == row.id, AuditEvent.action.in_(("start", "return_applicant", "supplement")))
                .order_by(AuditEvent.id)):
            events[e.action] = e  # the start, and the latest return of the case
            if e.action == "supplement":
                supplied_before |= set((e.detail or {}).get("fields") or [])
        asked = events.get("return_applicant")
        asked = set(asked.detail.get("fields") or []) if asked is not None and (
            asked.detail.get("task_id") == h.id) else set()
        if asked:
            refused = sorted(k for k in data if k not in asked)
            why = f"not asked for (asked: {', '.join(sorted(asked))})"
        else:
            start = events.get("start")
            given = set(((start.detail or {}).get("data") or {}) if start is not None else {}) | supplied_before
            given -= self._ENGINE_START_KEYS
            given -= {(e.get("countersign") or {}).get("collection") for e in manifest.get("tasks", {}).values()}
            process = None if all(k in given for k in data) else self._process_names(manifest, wf) - given
            refused = sorted(k for k in data if k not in given and (k in current or k in process))
            why = "set by the process, not by the applicant"
        if refused:
            raise Invalid("补正不能修改这些字段 / the supplement cannot change: " + ", ".join(refused),
                          {k: why for k in refused})
        definition = s.get(ProcessDefinition, row.definition_id)
        declared = [f for f in self.start_form(definition) if f["id"] in data]
        return forms.validate(declared, data)

    # ---- 撤回 withdraw ---------------------------------------------------------------------------
    def withdraw(self, task_id: int, actor: str, opinion: str = "") -> dict:
        """撤回: the sender takes back a task they completed while the next step has not acted on it
        (not claimed, no opinion, no added signer). The next step's tasks are cancelled and the
        sender's task opens again, assigned to them. Who: whoever completed ``task_id``.
        Audit ``withdraw``."""
        def run(s):
            from SpiffWorkflow.util.task import TaskState

            from .runtime import _find_task

            h = self._approval_task(s, task_id)
            if h.status != "completed" or h.completed_by != actor:
                raise NotAllowed(f"{actor} did not complete task {task_id}")
            row, wf, manifest = self.runtime._load(s, h.instance_id)
            if row.status != "running":
                raise NotAllowed(f"instance {row.id} is {row.status}")
            mine = _find_task(wf, h.spiff_task_id)
            if mine is None:
                raise NotAllowed(f"task {task_id} is no longer on the instance's path")
            below = [t for t in mine if t is not mine]
            if any(t.state == TaskState.COMPLETED and getattr(t.task_spec, "bpmn_id", None) in manifest["tasks"]
                   for t in below):
                raise NotAllowed("the next step has already acted: withdraw is no longer possible")
            ids = {str(t.id) for t in below if t.state == TaskState.READY}
            q = select(HumanTask).where(HumanTask.instance_id == row.id,
                                        HumanTask.status.in_(("open", "waiting", "supplement")))
            nxt = [x for x in s.scalars(q.with_for_update() if _pg(s) else q) if x.spiff_task_id in ids]
            if not nxt:
                raise NotAllowed("there is no open next step to take back")
            for x in nxt:
                entry = manifest["tasks"].get(x.bpmn_id, {})
                if x.status != "open" and x.status != "waiting":
                    raise NotAllowed(f"the next step '{x.name}' has acted ({x.status})")
                if x.assignee and not entry.get("assignee") and not x.owner:
                    raise NotAllowed(f"the next step '{x.name}' was claimed by {x.assignee}")
                acted = s.scalars(select(Opinion.id).where(Opinion.human_task_id == x.id,
                                                           Opinion.kind.not_in(("urge", "cc")))).first()
                if acted is not None or x.owner:
                    raise NotAllowed(f"the next step '{x.name}' has already acted on it")
            text = (opinion or "").strip()
            rules.record(s, self.clock, h, actor, "withdraw", text=text, target=",".join(x.bpmn_id for x in nxt))
            audit.append(s, self.clock, actor, "withdraw", instance_id=row.id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "cancelled": [x.id for x in nxt], "opinion": text})
            new = self._reopen(s, row, wf, manifest, h.spiff_task_id, actor, None)
            for x in nxt:
                x.decision = "withdrawn"
            if new is not None:
                new.assignee = actor
            return {"instance_id": row.id, "task_id": new.id if new else None, "cancelled": [x.id for x in nxt]}

        return self._op(run)

    # ---- 催办 urge / 抄送 cc --------------------------------------------------------------------
    def _involved(self, s, instance_id: int, user: str) -> bool:
        row = s.get(Instance, instance_id)
        if row is not None and row.started_by == user:
            return True
        return s.scalars(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                    HumanTask.completed_by == user)).first() is not None

    def urge(self, task_id: int, actor: str, note: str = "") -> dict:
        """催办: remind whoever holds the open task (in-app notice, mailed if set up). At most once an
        hour per task. Who: the applicant, anyone who completed a step of the case, the leader group
        or an administrator. Audit ``urge``."""
        with self._tx() as s:
            h = self._approval_task(s, task_id)
            if h.status not in ("open", "waiting"):
                raise NotAllowed(f"task {task_id} is {h.status}: there is nobody to urge")
            self._running(s, h.instance_id)
            groups = directory.groups_of(s, actor)
            if not (self._involved(s, h.instance_id, actor) or "leader" in groups or self._is_admin(s, actor)):
                raise NotAllowed(f"{actor} is not involved in instance {h.instance_id}")
            now = self.clock.now()
            last = s.scalars(select(Opinion).where(Opinion.human_task_id == h.id, Opinion.kind == "urge")
                             .order_by(Opinion.id.desc())).first()
            if last is not None and now - last.at < URGE_INTERVAL:
                raise NotAllowed(f"task {task_id} was urged at {last.at.isoformat()}; once an hour is enough "
                                 f"(next after {(last.at + URGE_INTERVAL).isoformat()})")
            users = rules.holders(s, h)
            text = (note or "").strip()
            self._notice(s, users, "urge", f"【催办】{h.name}（案件 {h.instance_id}）", text or "请尽快办理", h,
                         h.instance_id, f"urge:{h.id}:{now.timestamp()}")
            rules.record(s, self.clock, h, actor, "urge", text=text, target=",".join(sorted(users)))
            audit.append(s, self.clock, actor, "urge", instance_id=h.instance_id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "to": sorted(users), "note": text})
            self._bump(s, h.instance_id)
            return {"task_id": h.id, "notified": sorted(users), "at": _iso(now)}

    def cc(self, task_id: int, users: list[str], actor: str, note: str = "") -> list[dict]:
        """抄送: read-only copies of a task in each user's "to read" list (``to_read``), with read
        receipts (``mark_read``, ``cc_receipts``). Who: the holder, whoever completed it, the applicant
        or an administrator. Audit ``cc``."""
        with self._tx() as s:
            h = self._approval_task(s, task_id)
            if s.get(Instance, h.instance_id).status == "suspended":
                raise NotAllowed(f"instance {h.instance_id} is suspended")
            if not (self._holds(s, h, actor) or h.completed_by == actor or self._is_admin(s, actor)
                    or s.get(Instance, h.instance_id).started_by == actor):
                raise NotAllowed(f"{actor} may not copy task {task_id}")
            users = list(dict.fromkeys(users or []))
            if not users:
                raise Invalid("name one or more users", {"users": "required"})
            for u in users:
                self._user(s, u)
            now = self.clock.now()
            rows = []
            for u in users:
                c = CarbonCopy(instance_id=h.instance_id, human_task_id=h.id, user_name=u, sent_by=actor,
                               note=(note or "").strip(), sent_at=now)
                s.add(c)
                rows.append(c)
            s.flush()
            for c in rows:
                self._notice(s, [c.user_name], "cc", f"【抄送】{h.name}（案件 {h.instance_id}）", c.note, h,
                             h.instance_id, f"cc:{c.id}")
            rules.record(s, self.clock, h, actor, "cc", text=note, target=",".join(users))
            audit.append(s, self.clock, actor, "cc", instance_id=h.instance_id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "to": users, "cc_ids": [c.id for c in rows]})
            return [_cc_dict(c, h) for c in rows]

    def to_read(self, user: str, *, unread_only: bool = False, limit: int = 100) -> list[dict]:
        """The user's "to read" list (抄送我的), newest first."""
        with self.readers() as s:
            q = select(CarbonCopy).where(CarbonCopy.user_name == user).order_by(CarbonCopy.id.desc()).limit(limit)
            if unread_only:
                q = q.where(CarbonCopy.read_at.is_(None))
            rows = list(s.scalars(q))
            tasks = {h.id: h for h in s.scalars(select(HumanTask).where(
                HumanTask.id.in_([c.human_task_id for c in rows if c.human_task_id])))} if rows else {}
            return [_cc_dict(c, tasks.get(c.human_task_id)) for c in rows]

    def mark_read(self, cc_id: int, user: str) -> dict:
        """The read receipt of a copy; only its addressee; reading twice keeps the first time.
        Audit ``cc.read`` (once)."""
        with self._tx() as s:
            c = s.get(CarbonCopy, cc_id)
            if c is None or c.user_name != user:
                raise NotFound(f"no copy {cc_id} for {user}")
            if c.read_at is None:
                c.read_at = self.clock.now()
                audit.append(s, self.clock, user, "cc.read", instance_id=c.instance_id,
                             detail={"cc_id": c.id, "task_id": c.human_task_id})
            return _cc_dict(c, s.get(HumanTask, c.human_task_id) if c.human_task_id else None)

    def cc_task(self, cc_id: int, user: str) -> dict:
        """The read-only view of a copied task for its addressee (the task page without actions)."""
        with self.readers() as s:
            c = s.get(CarbonCopy, cc_id)
            if c is None or c.user_name != user or c.human_task_id is None:
                raise NotFound(f"no copy {cc_id} for {user}")
            task_id = c.human_task_id
        out = self.task(task_id)
        out["read_only"] = True
        return out

    def countersign_votes(self, instance_id: int) -> list[dict]:
        """The votes of the instance's 会签 rounds: approver, state, decision and opinion per vote."""
        with self.readers() as s:
            row = s.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            _spec, _subs, manifest = self.specs.get(s, row.definition_id)
            ids = [k for k, e in manifest["tasks"].items() if e.get("countersign")]
            if not ids:
                return []
            return [{"task_id": h.id, "bpmn_id": h.bpmn_id, "approver": h.assignee, "status": h.status,
                     "decision": h.decision, "opinion": h.opinion, "completed_at": _iso(h.completed_at)}
                    for h in s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                               HumanTask.bpmn_id.in_(ids)).order_by(HumanTask.id))]

    def cc_receipts(self, instance_id: int) -> list[dict]:
        """Every copy sent in a case with its read receipt."""
        with self.readers() as s:
            return [_cc_dict(c) for c in s.scalars(select(CarbonCopy).where(CarbonCopy.instance_id == instance_id)
                                                   .order_by(CarbonCopy.id))]

    # ---- opinions and phrases -------------------------------------------------------------------
    def opinions(self, instance_id: int | None = None, *, task_id: int | None = None) -> list[dict]:
        """The typed opinions (审批意见) and approval actions of a case or a task, oldest first."""
        if (instance_id is None) == (task_id is None):
            raise Invalid("name an instance or a task", {"target": "instance_id or task_id"})
        with self.readers() as s:
            q = select(Opinion).order_by(Opinion.id)
            q = q.where(Opinion.instance_id == instance_id) if instance_id is not None else \
                q.where(Opinion.human_task_id == task_id)
            return [_opinion_dict(o) for o in s.scalars(q)]

    def phrases(self, user: str) -> list[dict]:
        """The user's common phrases (常用语), oldest first."""
        with self.readers() as s:
            return [{"id": p.id, "text": p.text} for p in s.scalars(
                select(Phrase).where(Phrase.user_name == user).order_by(Phrase.id))]

    def add_phrase(self, user: str, text: str) -> dict:
        """Save a common phrase; saving the same text again returns the saved one."""
        text = (text or "").strip()
        if not text or len(text) > PHRASE_MAX:
            raise Invalid(f"a phrase has 1 to {PHRASE_MAX} characters", {"text": "1..500"})
        with self._tx() as s:
            directory.get_user(s, user)
            p = s.scalars(select(Phrase).where(Phrase.user_name == user, Phrase.text == text)).first()
            if p is None:
                p = Phrase(user_name=user, text=text, created_at=self.clock.now())
                s.add(p)
                s.flush()
            return {"id": p.id, "text": p.text}

    def remove_phrase(self, phrase_id: int, user: str) -> None:
        with self._tx() as s:
            p = s.get(Phrase, phrase_id)
            if p is None or p.user_name != user:
                raise NotFound(f"no phrase {phrase_id} for {user}")
            s.delete(p)

    # ---- 流程预测 forecast ------------------------------------------------------------------------
    def forecast(self, instance_id: int) -> dict:
        """The steps still ahead of an instance: walks the process graph from the open tasks; at an
        exclusive gateway the conditions are evaluated on the current data when they can be (else the
        alternatives are listed and the steps after them are marked uncertain). Each step names who
        will hold it: candidate groups and users, and the resolved active users."""
        from SpiffWorkflow.util.task import TaskState

        with self.readers() as s:
            row = s.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            if row.status not in ("running", "suspended"):
                return {"instance_id": instance_id, "status": row.status, "open": [], "ahead": [], "choices": []}
            wf, manifest = self._workflow_readonly(s, row)
            open_tasks = [t for t in wf.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED)
                          if getattr(t.task_spec, "bpmn_id", None) in manifest["tasks"]
                          or getattr(t.task_spec, "bpmn_id", None) in manifest.get("services", {})]
            ahead, choices, seen = [], [], set()
            open_ids = {getattr(t.task_spec, "bpmn_id", None) for t in open_tasks}
            queue = [(spec, t, True) for t in open_tasks for spec in t.task_spec.outputs]
            while queue:
                spec, ctx, certain = queue.pop(0)
                if spec.name in seen:
                    continue
                seen.add(spec.name)
                bpmn_id = getattr(spec, "bpmn_id", None)
                if bpmn_id in manifest["tasks"] and bpmn_id not in open_ids:
                    ahead.append(self._step(s, manifest["tasks"][bpmn_id], ctx.data, certain))
                outputs = list(spec.outputs)
                conds = getattr(spec, "cond_task_specs", None)
                if conds and type(spec).__name__ in ("ExclusiveGateway", "InclusiveGateway"):
                    chosen, unknown = [], False
                    for cond, name in conds:
                        if cond is None:
                            continue
                        try:
                            if cond._matches(ctx):
                                chosen.append(name)
                        except Exception:  # noqa: BLE001 - a value decided by an earlier step
                            unknown = True
                    default = getattr(spec, "default_task_spec", None)
                    if not chosen and not unknown and default:
                        chosen = [default]
                    if unknown or not chosen:
                        choices.append({"gateway": bpmn_id or spec.name, "name": getattr(spec, "bpmn_name", None),
                                        "options": [{"to": n, "condition": c.args[0] if c is not None else None}
                                                    for c, n in conds]})
                        outputs = [wf.spec.task_specs[n] for _c, n in conds]
                        certain = False
                    else:
                        if type(spec).__name__ == "ExclusiveGateway":
                            chosen = chosen[:1]
                        outputs = [wf.spec.task_specs[n] for n in chosen]
                for nxt in outputs:
                    queue.append((nxt, ctx, certain))
            current = {}
            for t in open_tasks:
                current.setdefault(t.task_spec.bpmn_id, getattr(t.task_spec, "bpmn_name", None) or
                                   manifest["tasks"].get(t.task_spec.bpmn_id, {}).get("name"))
            return {"instance_id": instance_id, "status": row.status,
                    "open": [{"bpmn_id": k, "name": v} for k, v in current.items()],
                    "ahead": ahead, "choices": choices}

    def _step(self, s, entry: dict, data: dict, certain: bool) -> dict:
        from .runtime import _resolve

        groups = [g for g in (_resolve(g, data) for g in entry.get("candidate_groups", [])) if g]
        users = [u for u in (_resolve(u, data) for u in entry.get("candidate_users", [])) if u]
        assignee = _resolve(entry["assignee"], data) if entry.get("assignee") else None
        cs = entry.get("countersign")
        if cs and cs.get("collection") and isinstance(data.get(cs["collection"]), list):
            users, assignee = [str(u) for u in data[cs["collection"]]], None
        resolved = set()
        if assignee:
            resolved = rules.active_users(s, [assignee])
        else:
            resolved = rules.active_users(s, users)
            for g in groups:
                resolved.update(rules.members(s, g))
        return {"bpmn_id": entry["id"], "name": entry.get("name"), "groups": groups, "users": users,
                "assignee": assignee, "resolved_users": sorted(resolved), "certain": certain,
                "countersign": (cs or {}).get("mode")}

    # ---- administrator moves ----------------------------------------------------------------------
    def _admin(self, s, actor: str) -> None:
        if not self._is_admin(s, actor):
            raise NotAllowed(f"{actor} is not an administrator")

    def suspend(self, instance_id: int, actor: str, reason: str) -> dict:
        """Suspend an instance (administrator): its tasks refuse every action and leave the inboxes
        (status ``suspended``), its timers and pulls wait, its clocks stop. Audit ``instance.suspend``."""
        with self._tx() as s:
            self._admin(s, actor)
            text = self._need_text(reason, "suspend")
            row = self._running(s, instance_id)
            now = self.clock.now()
            s.execute(update(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.status == "open")
                      .values(status="suspended"))
            slam.start_pause(s, instance_id, f"挂起：{text}"[:200], "suspend", actor, now, self._cal())
            s.execute(update(Job).where(Job.instance_id == instance_id, Job.status == "pending", Job.kind != "sla",
                                        Job.kind != "email").values(status="suspended", locked_by=None,
                                                                    locked_until=None))
            row.status = "suspended"
            audit.append(s, self.clock, actor, "instance.suspend", instance_id=instance_id, detail={"reason": text})
            rules.record(s, self.clock, None, actor, "suspend", instance_id=instance_id, text=text)
            self._bump(s, instance_id)
            return {"instance_id": instance_id, "status": row.status}

    def resume(self, instance_id: int, actor: str, reason: str = "") -> dict:
        """Resume a suspended instance (administrator): tasks open again, waiting jobs run (at once if
        due), clocks run again. Audit ``instance.resume``."""
        with self._tx() as s:
            self._admin(s, actor)
            row = s.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            if row.status != "suspended":
                raise NotAllowed(f"instance {instance_id} is {row.status}, not suspended")
            now = self.clock.now()
            s.execute(update(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.status == "suspended")
                      .values(status="open"))
            s.execute(update(Job).where(Job.instance_id == instance_id, Job.status == "suspended")
                      .values(status="pending"))
            row.status = "running"
            s.flush()
            for p in s.scalars(select(SlaPause).where(SlaPause.instance_id == instance_id, SlaPause.source == "suspend",
                                                      SlaPause.ended_at.is_(None))):
                slam.end_pause(s, p, actor, now, self._cal())
            audit.append(s, self.clock, actor, "instance.resume", instance_id=instance_id,
                         detail={"reason": (reason or "").strip()})
            rules.record(s, self.clock, None, actor, "resume", instance_id=instance_id, text=reason)
            self._bump(s, instance_id)
            return {"instance_id": instance_id, "status": row.status}

    def terminate(self, instance_id: int, actor: str, reason: str) -> dict:
        """Terminate a running or suspended instance (administrator): the workflow is cancelled, its
        tasks are cancelled, its jobs dropped and its clocks stopped. Audit ``instance.terminate``."""
        def run(s):
            self._admin(s, actor)
            text = self._need_text(reason, "terminate")
            row = s.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            if row.status not in ("running", "suspended"):
                raise NotAllowed(f"instance {instance_id} is {row.status}")
            row, wf, manifest = self.runtime._load(s, instance_id)
            now = self.clock.now()
            self.runtime._steps(wf, wf.cancel)
            row.status, row.ended_at = "terminated", now
            audit.append(s, self.clock, actor, "instance.terminate", instance_id=instance_id, detail={"reason": text})
            rules.record(s, self.clock, None, actor, "terminate", instance_id=instance_id, text=text)
            self.runtime._save(s, row, wf, manifest, actor)
            s.execute(update(Job).where(Job.instance_id == instance_id, Job.status.in_(("pending", "suspended", "held")))
                      .values(status="cancelled", locked_by=None, locked_until=None))
            cal = self._cal()
            for c in s.scalars(select(SlaClock).where(SlaClock.instance_id == instance_id,
                                                      SlaClock.status != "stopped")):
                slam.stop(s, c, now, "terminated", cal)
            s.execute(update(SlaPause).where(SlaPause.instance_id == instance_id, SlaPause.ended_at.is_(None))
                      .values(ended_at=now, resumed_by=actor))
            return {"instance_id": instance_id, "status": row.status}

        return self._op(run)

    def move(self, instance_id: int, to_bpmn_id: str, actor: str, reason: str,
             from_task_id: int | None = None) -> dict:
        """Move the instance's token (administrator) from an open task (``from_task_id``; may be
        omitted when one task is open) to the user task ``to_bpmn_id``: back to an earlier completed
        step on the path (like 退回), or anywhere else (the open task is cancelled and the target
        opens with the current data). Audit ``instance.move``."""
        def run(s):
            from SpiffWorkflow.util.task import TaskState

            from .runtime import _find_task

            self._admin(s, actor)
            text = self._need_text(reason, "move")
            row = self._running(s, instance_id)
            opened = list(s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                            HumanTask.status.in_(("open", "waiting")))))
            if from_task_id is not None:
                h = next((x for x in opened if x.id == from_task_id), None)
                if h is None:
                    raise NotAllowed(f"task {from_task_id} is not open in instance {instance_id}")
            elif len(opened) == 1:
                h = opened[0]
            else:
                raise Invalid("name the open task to move from", {"from_task_id": "required"})
            row, wf, manifest = self.runtime._load(s, instance_id)
            if to_bpmn_id not in manifest["tasks"]:
                raise Invalid(f"'{to_bpmn_id}' is not a user task of the process", {"to": "user task id"})
            earlier = next((t for t in self._targets(s, h, wf, manifest) if t["bpmn_id"] == to_bpmn_id), None)
            audit.append(s, self.clock, actor, "instance.move", instance_id=instance_id, task_ref=h.bpmn_id,
                         detail={"from_task_id": h.id, "from": h.bpmn_id, "to": to_bpmn_id, "reason": text})
            rules.record(s, self.clock, h, actor, "move", text=text, target=to_bpmn_id)
            if earlier is not None:
                new = self._reopen(s, row, wf, manifest, earlier["spiff_task_id"], actor, None)
            else:
                src = _find_task(wf, h.spiff_task_id)
                target_spec = wf.spec.task_specs.get(to_bpmn_id)
                if src is None or target_spec is None:
                    raise NotAllowed(f"cannot move from '{h.bpmn_id}' to '{to_bpmn_id}'")

                def graft():
                    src._drop_children(force=True)
                    src._set_state(TaskState.COMPLETED)
                    child = src._add_child(target_spec, TaskState.FUTURE)
                    target_spec._predict(child, mask=TaskState.PREDICTED_MASK | TaskState.FUTURE)
                    target_spec._update(child)

                self.runtime._steps(wf, graft)
                self.runtime._save(s, row, wf, manifest, actor)
                new = s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                        HumanTask.bpmn_id == to_bpmn_id,
                                                        HumanTask.status == "open").order_by(HumanTask.id.desc())).first()
            h.decision, h.opinion = "moved", text
            return {"instance_id": instance_id, "task_id": new.id if new else None, "to": to_bpmn_id}

        return self._op(run)


__all__ = ["ApprovalMixin"]
