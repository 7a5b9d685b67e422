"""Approval rules that run inside the step transaction (called by ``engine/runtime.py``):

- the manifest's approval declarations (``tb:countersign``, ``tb:noApprover``,
  ``tb:initiatorIsApprover``, ``tb:opinionRequiredFor``), read at deploy;
- 会签 / 或签 / 票签 / 依次: SpiffWorkflow evaluates ``completionCondition`` on the last child's
  data only, so the engine counts the votes of a multi-instance user task itself after every
  vote; once the rule is decided it runs the children still open as ``skipped`` (their inbox
  rows are cancelled) and writes the outcome (``countersign_result`` = approve | reject);
- no approver / the approver is the initiator: skip, auto-approve or hand to the administrators,
  so no task exists that nobody can see;
- the typed opinion log (``tb_opinion``).

The Engine operations themselves are in ``engine/approval.py``.
"""

from __future__ import annotations

import math

from sqlalchemy import delete, select

from .bpmn_xml import BPMN_NS, TB_NS
from .errors import NotAllowed
from .models import Group, HumanTask, Membership, Opinion, TaskCandidate, TaskSign, User

MODES = ("all", "any", "ratio", "sequential")
REJECT_RULES = ("any", "ratio", "none")
NO_APPROVER = ("skip", "auto_approve", "admin")
INITIATOR = ("skip", "auto_approve", "allow")
DEFAULT_OUTCOMES = [{"id": "approve", "name": "同意"}, {"id": "reject", "name": "不同意"}]
ADMIN_GROUP = "admin"
SYSTEM = "system:approval"
_B = f"{{{BPMN_NS}}}"


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _float(value, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


# ---- manifest ---------------------------------------------------------------------------------
def parse(el) -> dict:
    """Approval declarations of one user task, merged into its manifest entry."""
    out: dict = {
        "no_approver": el.get(f"{{{TB_NS}}}noApprover") or None,
        "initiator_is_approver": el.get(f"{{{TB_NS}}}initiatorIsApprover") or None,
        "opinion_required_for": _split(el.get(f"{{{TB_NS}}}opinionRequiredFor")),
        "countersign": None,
    }
    cs = el.find(f"{_B}extensionElements/{{{TB_NS}}}countersign")
    loop = el.find(f"{_B}multiInstanceLoopCharacteristics")
    if cs is None:
        return out
    mode = (cs.get("mode") or ("sequential" if loop is not None and loop.get("isSequential") == "true" else "all"))
    collection = item = output = None
    if loop is not None:
        ref = loop.find(f"{_B}loopDataInputRef")
        collection = (ref.text or "").strip() if ref is not None else None
        inp = loop.find(f"{_B}inputDataItem")
        item = (inp.get("name") or inp.get("id")) if inp is not None else None
        outp = loop.find(f"{_B}outputDataItem")
        output = (outp.get("name") or outp.get("id")) if outp is not None else None
    approvers = cs.get("approvers") or ""
    out["countersign"] = {
        "mode": mode, "ratio": _float(cs.get("ratio"), 2 / 3 if mode == "ratio" else 1.0),
        "reject": cs.get("reject") or ("none" if mode == "ratio" else "any"),
        "reject_ratio": _float(cs.get("rejectRatio"), 0.5),
        "approvers": approvers if approvers.startswith("${") else _split(approvers),
        "group": cs.get("group") or None, "collection": collection, "item": item, "output": output,
        "result": cs.get("result") or "countersign_result", "multi_instance": loop is not None,
        "line": cs.sourceline,
    }
    return out


def manifest_fixups(entry: dict) -> None:
    """A countersign child is assigned to its approver; its decision is approve or reject."""
    cs = entry.get("countersign")
    if not cs:
        return
    if not entry.get("assignee") and cs.get("item"):
        entry["assignee"] = "${" + cs["item"] + "}"
    if not entry.get("outcomes"):
        entry["outcomes"] = list(DEFAULT_OUTCOMES)


def problems(manifest: dict) -> list[str]:
    """Declarations that cannot work; deploy and check refuse them (``definitions``), located."""
    out = []
    for tid, entry in manifest.get("tasks", {}).items():
        cs = entry.get("countersign")
        if cs:
            if cs["mode"] not in MODES:
                out.append(f"{tid}: tb:countersign mode must be one of {', '.join(MODES)}")
            if not cs["multi_instance"] or not cs["collection"]:
                out.append(f"{tid}: tb:countersign needs multiInstanceLoopCharacteristics with a loopDataInputRef")
            if not 0 < cs["ratio"] <= 1:
                out.append(f"{tid}: tb:countersign ratio must be in (0, 1]")
        if entry.get("no_approver") and entry["no_approver"] not in NO_APPROVER:
            out.append(f"{tid}: tb:noApprover must be one of {', '.join(NO_APPROVER)}")
        if entry.get("initiator_is_approver") and entry["initiator_is_approver"] not in INITIATOR:
            out.append(f"{tid}: tb:initiatorIsApprover must be one of {', '.join(INITIATOR)}")
    return out


# ---- directory helpers --------------------------------------------------------------------------
def members(session, group: str) -> list[str]:
    return list(session.scalars(select(User.name).join(Membership, Membership.user_id == User.id)
                                .join(Group, Group.id == Membership.group_id)
                                .where(Group.name == group, User.active.is_(True)).order_by(User.name)))


def active_users(session, names) -> set[str]:
    names = [n for n in names if n]
    if not names:
        return set()
    return set(session.scalars(select(User.name).where(User.name.in_(names), User.active.is_(True))))


def admins(session) -> tuple[list[str], list[str]]:
    """The process administrators: the ``admin`` group if it has active members, else users with
    the admin role."""
    if members(session, ADMIN_GROUP):
        return [ADMIN_GROUP], []
    users = [u.name for u in session.scalars(select(User).where(User.active.is_(True)).order_by(User.name))
             if "admin" in (u.roles or [])]
    return [], users


def holders(session, h: HumanTask) -> set[str]:
    """Every active user who could act on the task now."""
    if h.assignee:
        return active_users(session, [h.assignee])
    out = active_users(session, h.candidate_users or [])
    for g in h.candidate_groups or []:
        out.update(members(session, g))
    return out


# ---- start: the approvers of countersigns ----------------------------------------------------------
def initial_data(session, manifest: dict, data: dict) -> None:
    """Fill the collection of each countersign from its group or list when the start data lacks it
    (a group is resolved to its active members when the instance starts)."""
    for entry in manifest.get("tasks", {}).values():
        cs = entry.get("countersign")
        if not cs or not cs.get("collection") or cs["collection"] in data:
            continue
        if cs.get("group"):
            data[cs["collection"]] = members(session, cs["group"])
        elif isinstance(cs.get("approvers"), list) and cs["approvers"]:
            data[cs["collection"]] = list(cs["approvers"])
        elif isinstance(cs.get("approvers"), str):
            got = data.get(cs["approvers"][2:-1].strip())
            if got is not None:
                data[cs["collection"]] = list(got) if not isinstance(got, str) else _split(got)


# ---- complete -----------------------------------------------------------------------------------
def before_complete(session, h: HumanTask, actor: str) -> None:
    """A task held by a delegate or an added signer is answered, not completed."""
    active = session.scalars(select(TaskSign).where(TaskSign.human_task_id == h.id,
                                                    TaskSign.status == "active")).first()
    if active is not None:
        what = "delegated to" if active.kind == "delegate" else "waiting for the added signer"
        raise NotAllowed(f"task {h.id} is {what} {active.user_name}: they answer (Engine.answer) and the "
                         f"task returns to {active.owner}")


def _mi_parent(task):
    from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask

    parent = task.parent
    if parent is not None and isinstance(parent.task_spec, MultiInstanceTask):
        return parent
    return None


def before_run(task, entry: dict, decision: str | None) -> None:
    cs = entry.get("countersign")
    if not cs or _mi_parent(task) is None:
        return
    spec = _mi_parent(task).task_spec
    task.internal_data["tb_vote"] = decision  # the vote, counted by tally (None: abstained)
    if spec.output_item is not None and not spec.output_item.exists(task):
        spec.output_item.set(task, decision)
    if spec.output_item is None:
        # without an output item SpiffWorkflow merges the whole child data into the round: keep the
        # approver and the vote out of it (a sequential round refuses an input item that exists)
        if spec.input_item is not None:
            task.data.pop(spec.input_item.bpmn_id, None)
        task.data.pop("decision", None)


def tally(parent, cs: dict) -> dict:
    """The votes of one countersign round and whether the rule is decided."""
    spec = parent.task_spec
    children = [c for c in parent.children if c.task_spec.name == spec.task_spec]
    if spec.data_input is not None and spec.data_input.exists(parent):
        total = len(spec.data_input.get(parent))
    else:
        total = parent.internal_data.get("cardinality") or len(children)
    from SpiffWorkflow.util.task import TaskState

    votes = [c.internal_data.get("tb_vote") for c in children if c.state == TaskState.COMPLETED]
    approve = sum(1 for v in votes if v == "approve")
    reject = sum(1 for v in votes if v == "reject")
    pending = max(0, total - len(votes))  # a vote skipped by tb:noApprover abstains
    mode = cs["mode"]
    # a ratio is met within half a percent: 0.67 of 3 votes is 2 (designers write 2/3 as 0.67)
    needed = 1 if mode == "any" else total if mode in ("all", "sequential") else \
        math.ceil((cs["ratio"] - 0.005) * total - 1e-9)
    needed = max(1, needed) if total else 0
    result = None
    if total and approve >= needed:
        result = "approve"
    elif cs["reject"] == "any" and reject >= 1:
        result = "reject"
    elif cs["reject"] == "ratio" and total and reject / total >= cs["reject_ratio"] - 1e-9:
        result = "reject"
    elif approve + pending < needed or (pending == 0 and total):
        result = "reject"
    return {"mode": mode, "total": total, "approve": approve, "reject": reject, "pending": pending,
            "needed": needed, "result": result}


def after_run(task, entry: dict) -> dict | None:
    """Count the round after a vote; once decided, run the open votes as skipped and set the outcome."""
    cs = entry.get("countersign")
    parent = _mi_parent(task) if cs else None
    if parent is None:
        return None
    from SpiffWorkflow.util.task import TaskState

    t = tally(parent, cs)
    if t["result"] is None:
        return t
    parent.data[cs["result"]] = t["result"]
    parent.data[cs["result"] + "_votes"] = {"approve": t["approve"], "reject": t["reject"], "total": t["total"]}
    spec = parent.task_spec
    for _ in range(10_000):  # sequential rounds create the next vote when one completes
        open_votes = [c for c in parent.children if c.task_spec.name == spec.task_spec and c.state == TaskState.READY]
        if not open_votes:
            break
        for c in open_votes:
            before_run(c, entry, "skipped")
            c.run()
    return t


def record(session, clock, h: HumanTask | None, actor: str, kind: str, *, instance_id: int | None = None,
           decision: str | None = None, text: str | None = None, target: str | None = None) -> Opinion:
    o = Opinion(instance_id=h.instance_id if h is not None else instance_id, human_task_id=h.id if h else None,
                bpmn_id=h.bpmn_id if h else None, actor=actor, kind=kind, decision=decision,
                text=(text or "").strip(), target=(target or None) and str(target)[:300], at=clock.now())
    session.add(o)
    return o


# ---- no approver / initiator as approver ------------------------------------------------------------
def _rules_declared(manifest: dict) -> bool:
    flag = manifest.get("_approval_rules")
    if flag is None:
        flag = any(e.get("no_approver") or e.get("initiator_is_approver") for e in manifest.get("tasks", {}).values())
        manifest["_approval_rules"] = flag
    return flag


def set_candidates(session, h: HumanTask, groups: list[str], users: list[str]) -> None:
    h.candidate_groups, h.candidate_users, h.assignee = list(groups), list(users), None
    session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == h.id))
    for g in groups:
        session.add(TaskCandidate(task_id=h.id, kind="group", name=g))
    for u in users:
        session.add(TaskCandidate(task_id=h.id, kind="user", name=u))


def _may_open_unseen(manifest: dict) -> bool:
    """Whether some task declares nobody at all (no candidate groups or users, no assignee, no lane)."""
    flag = manifest.get("_may_open_unseen")
    if flag is None:
        flag = any(not (e.get("candidate_groups") or e.get("candidate_users") or e.get("assignee"))
                   for e in manifest.get("tasks", {}).values())
        manifest["_may_open_unseen"] = flag
    return flag


def hand_unseen_to_admins(runtime, session, row, now) -> None:
    """The default when a process declares no rule: a task that names nobody at all goes to the
    process administrators (the ``admin`` group, else users with the admin role), so that no
    task is left that nobody can see. With no administrator the task stays as declared."""
    from . import audit

    fresh = session.scalars(select(HumanTask).where(
        HumanTask.instance_id == row.id, HumanTask.status.in_(("open", "waiting")), HumanTask.created_at == now))
    for h in fresh:
        if h.candidate_groups or h.candidate_users or h.assignee:
            continue
        groups, users = admins(session)
        if not groups and not users:
            return
        set_candidates(session, h, groups, users)
        record(session, runtime.clock, h, SYSTEM, "handover", text="无审批人，转交流程管理员",
               target=",".join(groups + users))
        audit.append(session, runtime.clock, SYSTEM, "approval.no_approver", instance_id=row.id,
                     task_ref=h.bpmn_id, detail={"task_id": h.id, "rule": "admin (default)", "to": groups + users})


def after_sync(runtime, session, row, wf, manifest: dict, now) -> None:
    """Apply tb:noApprover and tb:initiatorIsApprover to the tasks this step opened; a task that
    declares no rule and names nobody goes to the administrators, as in a process without rules."""
    if not _rules_declared(manifest):
        if _may_open_unseen(manifest):
            hand_unseen_to_admins(runtime, session, row, now)
        return
    from . import audit
    from .runtime import _find_task

    for _ in range(100):
        acted = False
        fresh = list(session.scalars(select(HumanTask).where(
            HumanTask.instance_id == row.id, HumanTask.status.in_(("open", "waiting")),
            HumanTask.created_at == now).order_by(HumanTask.id)))
        for h in fresh:
            entry = manifest["tasks"].get(h.bpmn_id, {})
            rule_none, rule_init = entry.get("no_approver"), entry.get("initiator_is_approver")
            if not rule_none and not rule_init:
                continue
            can = holders(session, h)
            action = None
            if not can and rule_none:
                action, why = rule_none, "no_approver"
            elif can == {row.started_by} and rule_init in ("skip", "auto_approve"):
                action, why = rule_init, "initiator_is_approver"
            if action is None:
                continue
            if action == "admin":
                groups, users = admins(session)
                if not groups and not users:
                    raise NotAllowed(f"task '{h.name}' has no approver and there is no administrator to hand it to")
                set_candidates(session, h, groups, users)
                record(session, runtime.clock, h, SYSTEM, "handover", text="无审批人，转交流程管理员",
                       target=",".join(groups + users))
                audit.append(session, runtime.clock, SYSTEM, "approval.no_approver", instance_id=row.id,
                             task_ref=h.bpmn_id, detail={"task_id": h.id, "rule": "admin", "to": groups + users})
                continue
            task = _find_task(wf, h.spiff_task_id)
            if task is None:
                continue
            decision = "approve" if action == "auto_approve" else None

            def run(task=task, decision=decision, entry=entry):
                if decision:
                    task.data["decision"] = decision
                before_run(task, entry, decision)
                task.run()
                after_run(task, entry)

            runtime._steps(wf, run)
            h.status, h.completed_at, h.completed_by, h.decision = "completed", now, SYSTEM, decision
            h.opinion = "自动通过" if decision else "自动跳过"
            from . import sla as sla_clock

            sla_clock.task_closed(runtime, session, h, now, "completed")
            session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == h.id))
            record(session, runtime.clock, h, SYSTEM, action, decision=decision, text=h.opinion + f"（{why}）")
            audit.append(session, runtime.clock, SYSTEM, "approval." + why, instance_id=row.id, task_ref=h.bpmn_id,
                         detail={"task_id": h.id, "rule": action})
            session.flush()
            runtime._sync_tasks(session, row, wf, manifest, now, False)
            acted = True
            break
        if not acted:
            break
    if _may_open_unseen(manifest):  # tasks without a rule of their own still get the default
        hand_unseen_to_admins(runtime, session, row, now)


# ---- declared 抄送: <tb:cc groups="market,tobacco" groupsExpr="..." note="..."/> --------------------------
CC_DONE = "tb_cc_done"  # workflow-level data: the spiff task ids whose declared copies were sent


def parse_cc(process_el) -> dict[str, list[dict]]:
    """Declared copies per element id: ``<tb:cc>`` directly in an element's extensionElements.
    ``groups`` is a literal list; ``groupsExpr`` an expression over the element's data giving a
    list or a comma-separated string of group names; ``note`` the text of the copy."""
    out: dict[str, list[dict]] = {}
    for el in process_el.iter():
        if not isinstance(el.tag, str) or not el.get("id"):
            continue
        for c in el.findall(f"{_B}extensionElements/{{{TB_NS}}}cc"):
            out.setdefault(el.get("id"), []).append({
                "groups": _split(c.get("groups")), "groups_expr": (c.get("groupsExpr") or "").strip() or None,
                "note": (c.get("note") or "").strip(), "line": c.sourceline})
    return out


def _cc_groups(runtime, decl: dict, data: dict) -> list[str]:
    groups = list(decl["groups"])
    if decl.get("groups_expr"):
        try:
            value = runtime._script_engine.environment.evaluate(decl["groups_expr"], dict(data))
        except Exception:  # noqa: BLE001 - a bad expression sends no copy rather than stopping the case
            value = None
        if isinstance(value, str):
            value = _split(value)
        groups += [str(g) for g in (value or []) if g]
    return list(dict.fromkeys(groups))


def declared_cc(runtime, session, row, wf, manifest: dict, now, actor: str) -> None:
    """Send the copies declared with ``tb:cc`` for the elements completed in this step: one ``tb_cc`` row
    (read receipts as for a manual 抄送) and one notice per active member of the groups, an opinion row and
    an audit event ``cc`` per element. Each completed element sends once (its spiff task id is recorded in
    the workflow data), so a repeated save or a loop that passes the element again is exact."""
    declared = manifest.get("cc") or {}
    if not declared:
        return
    from SpiffWorkflow.util.task import TaskState

    from . import audit, notify
    from .models import CarbonCopy

    done = wf.data.setdefault(CC_DONE, [])
    for t in wf.get_tasks(state=TaskState.COMPLETED):
        bpmn_id = getattr(t.task_spec, "bpmn_id", None)
        if bpmn_id not in declared or str(t.id) in done:
            continue
        done.append(str(t.id))
        h = session.scalars(select(HumanTask).where(HumanTask.instance_id == row.id,
                                                    HumanTask.spiff_task_id == str(t.id))).first()
        name = getattr(t.task_spec, "bpmn_name", None) or bpmn_id
        settings = notify.smtp_settings(session)
        for decl in declared[bpmn_id]:
            groups = _cc_groups(runtime, decl, t.data)
            users = list(dict.fromkeys(u for g in groups for u in members(session, g)))
            rows = [CarbonCopy(instance_id=row.id, human_task_id=h.id if h else None, user_name=u,
                               sent_by="system", note=decl["note"], sent_at=now) for u in users]
            session.add_all(rows)
            session.flush()
            for c in rows:
                notify.notice(session, user=c.user_name, kind="cc", title=f"【抄送】{name}（案件 {row.id}）",
                              body=c.note, instance_id=row.id, task_id=c.human_task_id, now=now,
                              dedupe_key=f"cc:{c.id}:{c.user_name}", settings=settings)
            session.add(Opinion(instance_id=row.id, human_task_id=h.id if h else None, bpmn_id=bpmn_id,
                                actor="system", kind="cc", text=decl["note"], target=",".join(users)[:300] or None,
                                at=now))
            audit.append(session, runtime.clock, "system", "cc", instance_id=row.id, task_ref=bpmn_id,
                         detail={"declared": True, "element": bpmn_id, "groups": groups, "to": users,
                                 "cc_ids": [c.id for c in rows], "note": decl["note"], "on_behalf_of": actor})
