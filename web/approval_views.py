"""The Chinese approval operations (中国式审批) in the clerk pages: 转办, 委派, 加签/减签, the
delegate's or added signer's answer, 退回, 退回补正 (and the applicant's 补正), 撤回, 催办, 抄送 with
the "待阅" list, common phrases (常用语), the typed opinion history, 流程预测 and the administrator's
move / suspend / resume / terminate. Routes are on the inbox blueprint (imported at the end of
``web/inbox.py``); every operation is one engine call (docs/approval.md), whose refusals come back
as a message on the page with the engine's status (400/403/404/409), never a 500."""

from __future__ import annotations

import json

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from engine.errors import EngineError, Invalid

from .auth import engine, login_required
from .errors import engine_error_body
from .inbox import (
    ACTIONS,
    _display_names,
    _instance_for_me,
    _me,
    _render_task,
    _sees_everything,
    _task_for_me,
    _who,
    bilingual,
    bp,
)

KINDS = {
    "complete": _l("办理"), "approve": _l("同意"), "reject": _l("不同意"), "transfer": _l("转办"),
    "delegate": _l("委派"), "add_sign": _l("加签"), "answer": _l("委派答复"), "sign": _l("加签意见"),
    "remove_sign": _l("减签"), "return": _l("退回"), "return_applicant": _l("退回补正"), "supplement": _l("补正"),
    "withdraw": _l("撤回"), "urge": _l("催办"), "cc": _l("抄送"), "move": _l("调整流程"), "suspend": _l("挂起"),
    "resume": _l("恢复"), "terminate": _l("终止"), "handover": _l("转交管理员"),
}
ACTIONS.update({  # the history's names of the approval actions (audit events)
    "transfer": _l("转办"), "delegate": _l("委派"), "add_sign": _l("加签"), "answer": _l("答复"),
    "remove_sign": _l("减签"), "return": _l("退回"), "return_applicant": _l("退回补正"), "supplement": _l("补正"),
    "withdraw": _l("撤回"), "urge": _l("催办"), "cc": _l("抄送"), "cc.read": _l("已阅"),
    "instance.move": _l("调整流程"), "instance.suspend": _l("挂起"), "instance.resume": _l("恢复"),
    "instance.terminate": _l("终止"),
})
SIGN_KINDS = {"before": _l("前加签"), "after": _l("后加签"), "delegate": _l("委派")}
SIGN_STATUS = {"pending": _l("等待"), "active": _l("办理中"), "done": _l("已答复"), "removed": _l("已减签")}


# ---- helpers ------------------------------------------------------------------------------
def _admin() -> bool:
    user = g.user or {}
    return "admin" in (user.get("roles") or []) or "admin" in (user.get("groups") or [])


def _candidate(task: dict) -> bool:
    return _me() in (task.get("candidate_users") or []) or bool(
        set(g.user.get("groups") or []) & set(task.get("candidate_groups") or []))


def _users_choice() -> list[dict]:
    """Active users other than me, for the pickers."""
    try:
        users = engine().users()
    except EngineError:
        return []
    return [{"name": u["name"], "label": _who(u["name"], {u["name"]: u["display_name"]})}
            for u in users if u["active"] and u["name"] != _me()]


def _opinion_rows(instance_id: int, definition_id: int) -> list[dict]:
    names = _display_names()
    manifest = engine().definition(definition_id).get("manifest") or {}
    steps = {k: v.get("name") or k for k, v in (manifest.get("tasks") or {}).items()}
    rows = []
    for o in engine().opinions(instance_id):
        o["step"] = steps.get(o.get("bpmn_id") or "", o.get("bpmn_id"))
        target = o.get("target") or ""
        if o["kind"] in ("return", "withdraw", "move"):
            target = ",".join(steps.get(t, t) for t in target.split(",")) if target else ""
            o["target_name"] = target
            rows.append({**o, "kind_name": str(KINDS.get(o["kind"], o["kind"])), "actor_name": _who(o["actor"], names)})
            continue
        rows.append({**o, "kind_name": str(KINDS.get(o["kind"], o["kind"])), "actor_name": _who(o["actor"], names),
                     "target_name": ", ".join(_who(t, names) for t in target.split(",")) if target else ""})
    return rows


def approval_context(task: dict, *, read_only: bool = False) -> dict:
    """What task.html shows of the approval operations for the signed-in user."""
    me = _me()
    names = _display_names()
    signs = engine().signs(task["id"])
    for s in signs:
        s["user_name"] = _who(s["user"], names)
        s["kind_name"] = str(SIGN_KINDS.get(s["kind"], s["kind"]))
        s["status_name"] = str(SIGN_STATUS.get(s["status"], s["status"]))
    active = next((s for s in signs if s["status"] == "active"), None)
    is_open = task["status"] == "open" and task["instance"]["status"] == "running" and not read_only
    holder = is_open and active is None and (task.get("assignee") == me or (not task.get("assignee")
                                                                              and _candidate(task)))
    admin = _admin()
    targets = []
    if is_open and active is None and (holder or admin):
        try:
            targets = engine().return_targets(task["id"], me)
        except EngineError:
            targets = []
    for t in targets:
        t["completed_by_name"] = _who(t.get("completed_by"), names)
    return {
        "read_only": read_only,
        "signs": signs, "active_sign": active,
        "my_sign": active if is_open and active is not None and active["user"] == me else None,
        "removable": [s for s in signs if s["status"] in ("pending", "active") and is_open
                      and (s["added_by"] == me or admin)],
        "holder": holder, "may_transfer": is_open and active is None and (holder or admin),
        "may_return": bool(targets), "return_targets": targets,
        "may_withdraw": not read_only and task["status"] == "completed" and task.get("completed_by") == me
                        and task["instance"]["status"] == "running",
        "may_urge": not read_only and task["status"] == "open" and task["instance"]["status"] == "running"
                    and task.get("assignee") != me and not holder,
        "may_cc": not read_only and task["instance"]["status"] != "suspended"
                  and (holder or task.get("completed_by") == me or admin or task["instance"].get("started_by") == me),
        "waiting_supplement": task["status"] == "supplement",
        "may_edit": is_open and active is None and task.get("assignee") == me,
        "phrases": engine().phrases(me), "users_choice": _users_choice(),
        "opinions": _opinion_rows(task["instance_id"], task["definition_id"]),
    }


def _refused(exc: EngineError, task_id: int | None = None, instance_id: int | None = None):
    """The page again with the engine's refusal as a message and its status (never a 500)."""
    body, status = engine_error_body(exc)
    message = bilingual(body["message"])
    if body.get("fields"):
        message += " (" + ", ".join(f"{k}: {bilingual(v)}" for k, v in body["fields"].items()) + ")"
    message = _("操作未完成：%(msg)s", msg=message)
    if task_id is not None:
        try:
            return _render_task(_task_for_me(task_id), action_error=message, status=status)
        except (HTTPException, EngineError):
            pass
    if instance_id is not None:
        try:
            return _render_instance(instance_id, action_error=message, status=status)
        except (HTTPException, EngineError):
            pass
    return render_template("error.html", status=status, message=message), status


def _done(message: str, task_id: int | None = None, instance_id: int | None = None):
    """After a successful operation: to the task when I may still see it, else the case, else the inbox."""
    flash(message, "success")
    if task_id is not None:
        try:
            engine().task(task_id, user=None if _sees_everything() else _me())
            return redirect(url_for("inbox.task", task_id=task_id))
        except EngineError:
            pass
    if instance_id is not None:
        try:
            if _sees_everything() or engine().may_see_instance(instance_id, _me()):
                return redirect(url_for("inbox.instance", instance_id=instance_id))
        except EngineError:
            pass
    return redirect(url_for("inbox.index"))


def _run(task_id: int, call, message: str, *, go_task: int | None = None, go_instance: int | None = None):
    task = _task_for_me(task_id)
    try:
        result = call()
    except EngineError as exc:
        return _refused(exc, task_id=task_id)
    if callable(go_task):
        go_task = go_task(result)
    return _done(message, go_task if go_task is not None else task_id, go_instance or task["instance_id"])


def _form_text(name: str) -> str:
    return (request.form.get(name) or "").strip()


def _form_users() -> list[str]:
    users = [u.strip() for u in request.form.getlist("users") if u.strip()]
    if len(users) == 1 and "," in users[0]:
        users = [u.strip() for u in users[0].split(",") if u.strip()]
    return users


# ---- task operations ----------------------------------------------------------------------
@bp.route("/tasks/<int:task_id>/transfer", methods=["POST"])
@login_required
def approval_transfer(task_id: int):
    to = _form_text("to")
    return _run(task_id, lambda: engine().transfer(task_id, to, _me(), _form_text("opinion")),
                _("已转办给 %(who)s。", who=_who(to)))


@bp.route("/tasks/<int:task_id>/delegate", methods=["POST"])
@login_required
def approval_delegate(task_id: int):
    to = _form_text("to")
    return _run(task_id, lambda: engine().delegate(task_id, to, _me(), _form_text("opinion")),
                _("已委派给 %(who)s，答复后回到您。", who=_who(to)))


@bp.route("/tasks/<int:task_id>/add-sign", methods=["POST"])
@login_required
def approval_add_sign(task_id: int):
    users = _form_users()
    position = request.form.get("position") or "before"
    return _run(task_id, lambda: engine().add_sign(task_id, users, _me(), position, _form_text("opinion"),
                                                   decision=request.form.get("decision") or None),
                _("已加签：%(who)s。", who=", ".join(_who(u) for u in users)))


@bp.route("/tasks/<int:task_id>/answer", methods=["POST"])
@login_required
def approval_answer(task_id: int):
    return _run(task_id, lambda: engine().answer(task_id, _me(), _form_text("opinion"),
                                                 request.form.get("decision") or None),
                _("已提交答复。"))


@bp.route("/signs/<int:sign_id>/remove", methods=["POST"])
@login_required
def approval_remove_sign(sign_id: int):
    task_id = request.form.get("task_id", type=int)
    if task_id is None:
        abort(400, description=_("缺少任务编号。"))
    return _run(task_id, lambda: engine().remove_sign(sign_id, _me(), _form_text("reason")), _("已减签。"))


@bp.route("/tasks/<int:task_id>/return", methods=["POST"])
@login_required
def approval_return(task_id: int):
    target = request.form.get("target_task_id", type=int) or 0
    return _run(task_id, lambda: engine().return_task(task_id, target, _me(), _form_text("opinion")),
                _("已退回。"), go_task=lambda r: r.get("task_id") or -1)


@bp.route("/tasks/<int:task_id>/return-to-applicant", methods=["POST"])
@login_required
def approval_return_applicant(task_id: int):
    return _run(task_id, lambda: engine().return_to_applicant(task_id, _me(), _form_text("opinion")),
                _("已退回申请人补正，计时已暂停。"))


@bp.route("/tasks/<int:task_id>/withdraw", methods=["POST"])
@login_required
def approval_withdraw(task_id: int):
    return _run(task_id, lambda: engine().withdraw(task_id, _me(), _form_text("opinion")),
                _("已撤回，任务回到您的待办。"), go_task=lambda r: r.get("task_id") or -1)


@bp.route("/tasks/<int:task_id>/urge", methods=["POST"])
@login_required
def approval_urge(task_id: int):
    task = None
    try:
        task = engine().task(task_id)
        if not _sees_everything() and not engine().may_see_instance(task["instance_id"], _me()):
            abort(403, description=_("您无权查看此办件。"))
        result = engine().urge(task_id, _me(), _form_text("note"))
    except EngineError as exc:
        return _refused(exc, task_id=task_id, instance_id=task["instance_id"] if task else None)
    names = _display_names()
    return _done(_("已催办：%(who)s。", who=", ".join(_who(u, names) for u in result["notified"]) or "—"),
                 task_id, task["instance_id"])


@bp.route("/tasks/<int:task_id>/cc", methods=["POST"])
@login_required
def approval_cc(task_id: int):
    users = _form_users()
    return _run(task_id, lambda: engine().cc(task_id, users, _me(), _form_text("note")),
                _("已抄送：%(who)s。", who=", ".join(_who(u) for u in users)))


# ---- the applicant's supplement, administrators' moves ---------------------------------------
@bp.route("/instances/<int:instance_id>/supplement", methods=["POST"])
@login_required
def approval_supplement(instance_id: int):
    _instance_for_me(instance_id)
    try:
        data = json.loads(request.form.get("data_json") or "{}")
    except ValueError:
        data = None
    try:
        engine().supplement(instance_id, data, _me())  # who may, then the data
    except Invalid as exc:
        if not isinstance(data, dict) or not data:  # say it for the form's one field
            exc = Invalid(_("补正材料应为 JSON 对象，例如 {\"licence\": \"已补交\"}"), {"data": "object"})
        return _refused(exc, instance_id=instance_id)
    except EngineError as exc:
        return _refused(exc, instance_id=instance_id)
    return _done(_("补正材料已提交，办件继续办理。"), None, instance_id)


ADMIN_OPS = ("move", "suspend", "resume", "terminate")


@bp.route("/instances/<int:instance_id>/admin/<op>", methods=["POST"])
@login_required
def approval_admin(instance_id: int, op: str):
    if op not in ADMIN_OPS:
        abort(404)
    _instance_for_me(instance_id)
    reason = _form_text("reason")
    try:
        if op == "move":
            result = engine().move(instance_id, _form_text("to"), _me(), reason,
                                   from_task_id=request.form.get("from_task_id", type=int))
        else:
            result = getattr(engine(), op)(instance_id, _me(), reason)
    except EngineError as exc:
        return _refused(exc, instance_id=instance_id)
    messages = {"move": _("已调整到「%(to)s」。", to=result.get("to", "")), "suspend": _("办件已挂起。"),
                "resume": _("办件已恢复办理。"), "terminate": _("办件已终止。")}
    return _done(messages[op], None, instance_id)


# ---- 待阅 (copies), phrases ---------------------------------------------------------------------
@bp.route("/to-read")
@login_required
def to_read():
    names = _display_names()
    rows = engine().to_read(_me())
    for r in rows:
        r["sent_by_name"] = _who(r["sent_by"], names)
    return render_template("to_read.html", rows=rows)


@bp.route("/to-read/<int:cc_id>")
@login_required
def to_read_task(cc_id: int):
    task = engine().cc_task(cc_id, _me())
    engine().mark_read(cc_id, _me())
    return _render_task(task, read_only=True)


@bp.route("/to-read/<int:cc_id>/read", methods=["POST"])
@login_required
def to_read_mark(cc_id: int):
    engine().mark_read(cc_id, _me())
    flash(_("已标记为已阅。"), "success")
    return redirect(url_for("inbox.to_read"))


def _back_to(default: str) -> str:
    target = request.form.get("next") or ""
    return target if target.startswith("/") and not target.startswith("//") else default


@bp.route("/phrases", methods=["POST"])
@login_required
def phrase_add():
    try:
        engine().add_phrase(_me(), request.form.get("text") or "")
    except EngineError as exc:
        flash(_("常用语未保存：%(msg)s", msg=bilingual(str(exc))), "error")
    else:
        flash(_("已保存常用语。"), "success")
    return redirect(_back_to(url_for("inbox.index")))


@bp.route("/phrases/<int:phrase_id>/delete", methods=["POST"])
@login_required
def phrase_remove(phrase_id: int):
    engine().remove_phrase(phrase_id, _me())
    flash(_("已删除常用语。"), "success")
    return redirect(_back_to(url_for("inbox.index")))


# ---- the instance page's part ---------------------------------------------------------------------
def instance_context(instance: dict, tasks: list[dict]) -> dict:
    """流程预测, opinions, copies, supplement and admin actions for instance.html."""
    names = _display_names()
    try:
        forecast = engine().forecast(instance["id"])
    except EngineError:
        forecast = {"open": [], "ahead": [], "choices": []}
    for step in forecast["ahead"]:
        step["who"] = ", ".join(_who(u, names) for u in step.get("resolved_users") or [])
    copies = engine().cc_receipts(instance["id"])
    for c in copies:
        c["user_name"] = _who(c["user"], names)
    me = _me()
    involved = instance.get("started_by") == me or any(t.get("completed_by") == me for t in tasks)
    urgeable = [t for t in tasks if t["status"] == "open" and t.get("assignee") != me] \
        if instance["status"] == "running" and (involved or "leader" in (g.user.get("groups") or []) or _admin()) \
        else []
    withdrawable = [t for t in tasks if t["status"] == "completed" and t.get("completed_by") == me] \
        if instance["status"] == "running" else []
    definition = engine().definition(instance["definition_id"])
    user_tasks = [{"id": k, "name": v.get("name") or k}
                  for k, v in ((definition.get("manifest") or {}).get("tasks") or {}).items()]
    return {
        "forecast": forecast, "opinions": _opinion_rows(instance["id"], instance["definition_id"]), "copies": copies,
        "urgeable": urgeable, "withdrawable": withdrawable[-1:],
        "supplement_tasks": [t for t in tasks if t["status"] == "supplement"],
        "may_supplement": instance.get("started_by") == me or _admin(),
        "is_admin": _admin(), "user_tasks": user_tasks,
        "movable_from": [t for t in tasks if t["status"] in ("open", "waiting")],
    }


def _render_instance(instance_id: int, *, action_error: str | None = None, status: int = 200):
    from .inbox import instance as instance_view

    html = instance_view(instance_id, action_error=action_error)
    return html, status


__all__ = ["approval_context", "instance_context"]
