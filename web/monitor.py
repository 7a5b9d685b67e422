"""Monitor pages (电子监察) and the SLA bits of the clerk pages.

The dashboard shows the monitor's org subtree (the user's department and everything under it;
administrators and monitors without a department see everything): open tasks by deadline state
per department and group, yellow/red clocks by department and by org level, overdue cases and
steps with who holds them, handling time per step (average, p90), a weekly trend, the escalation
log, the supervision cards, a heat map of handling time on the process diagram, and a banner
when the working-day calendar of this or next year is missing (deadlines provisional). The lists
export to xlsx and CSV.

The instance and task pages include ``monitor_sla_box.html`` (``sla_box()`` below): the clocks of
the case and the step, pauses, extensions, and the forms that POST to the routes at the end.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine.errors import EngineError, NotFound
from engine.escalation import to_csv, to_xlsx

from .auth import engine, has_role, login_required, role_required

bp = Blueprint("monitor", __name__, url_prefix="/monitor")

STATES = ("overdue", "near", "in_time", "none")
EXPORTS = ("overdue", "cards", "log")
FORMATS = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
           "csv": "text/csv; charset=utf-8"}
# the columns of Engine.sla_export for the lists the web scopes itself
CARD_COLUMNS = ["id", "color", "instance_id", "task_id", "process_key", "name", "point", "department_name",
                "holder", "due_at", "issued_at"]
LOG_COLUMNS = ["id", "at", "instance_id", "task_id", "point", "action", "target", "outcome"]
UNITS = {"workday": _l("个工作日"), "day": _l("个自然日"), "hour": _l("小时"), "fixed": ""}
STATE_NAMES = {"green": _l("正常"), "yellow": _l("预警"), "red": _l("超期")}


# ---- scope -------------------------------------------------------------------------------------
def _scope_department() -> str | None:
    """The root of what the signed-in monitor sees: None means everything (admin, or no department)."""
    if "admin" in (g.user.get("roles") or []):
        return None
    return g.user.get("department") or None


def _subtree_codes(departments: list[dict], root: str | None) -> set[str] | None:
    if root is None:
        return None
    children: dict[str | None, list[str]] = {}
    for d in departments:
        children.setdefault(d["parent"], []).append(d["code"])
    out, stack = set(), [root]
    while stack:
        code = stack.pop()
        if code not in out:
            out.add(code)
            stack.extend(children.get(code, []))
    return out


def _scoped_cards(dept: str | None, instances: set[int] | None, color: str | None = None) -> list[dict]:
    """Cards of the subtree: a step's card by its department, a case's card by the case's steps."""
    cards = engine().supervision_cards(color=color or None, limit=100_000 if dept else 500)
    if dept is None:
        return cards
    codes = _subtree_codes(engine().departments(), dept)
    return [c for c in cards if c["department"] in codes
            or (c["department"] is None and c["scope"] == "instance" and c["instance_id"] in instances)][:500]


def _scoped_log(instances: set[int] | None, limit: int = 200) -> list[dict]:
    if instances is None:
        return engine().escalation_log(limit)
    return [e for e in engine().escalation_log(100_000) if e["instance_id"] in instances][:limit]


# ---- the first dashboard: open tasks by deadline state ----------------------------------------
def _by_department(by_group: dict, groups: list[dict], departments: list[dict]) -> list[dict]:
    """Group counts summed per department (a task offered to two groups counts in both)."""
    names = {d["code"]: d["name"] for d in departments}
    dept_of = {g_["name"]: g_["department"] for g_ in groups}
    out: dict[str, dict] = {}
    for group, counts in by_group.items():
        code = dept_of.get(group)
        row = out.setdefault(code or "", {"code": code, "name": names.get(code, None), **dict.fromkeys(STATES, 0)})
        for st in STATES:
            row[st] += counts.get(st, 0)
    return sorted(out.values(), key=lambda r: (-r["overdue"], -r["near"], r["code"] or "~"))


def _task_overview(codes: set[str] | None) -> dict:
    eng = engine()
    overview = eng.task_overview()
    groups, departments = eng.groups(), eng.departments()
    dept_of = {g_["name"]: g_["department"] for g_ in groups}
    by_group = overview["by_group"]
    totals = overview["totals"]
    if codes is not None:
        by_group = {name: c for name, c in by_group.items() if dept_of.get(name) in codes}
        totals = {st: sum(c.get(st, 0) for c in by_group.values()) for st in STATES}
    group_rows = sorted(({"group": name, **counts} for name, counts in by_group.items()),
                        key=lambda r: (-r["overdue"], -r["near"], r["group"]))
    users = {u["name"]: u["display_name"] for u in eng.users()}
    overdue = eng.tasks(due_before=eng.clock.now(), limit=200)
    if codes is not None:
        overdue = [t for t in overdue if any(dept_of.get(grp) in codes for grp in t["candidate_groups"])]
    dept_names = {d["code"]: d["name"] for d in departments}
    for t in overdue:
        t["holder"] = users.get(t["assignee"], t["assignee"]) if t["assignee"] else None
        t["departments"] = sorted({dept_names.get(dept_of.get(grp), "") for grp in t["candidate_groups"]} - {""})
    by_dept = _by_department(by_group, groups, departments)
    chart = {"departments": [r["name"] or r["code"] or "—" for r in by_dept],
             "overdue": [r["overdue"] for r in by_dept], "near": [r["near"] for r in by_dept],
             "in_time": [r["in_time"] for r in by_dept], "none": [r["none"] for r in by_dept]}
    return {"totals": totals, "groups": group_rows, "departments": by_dept, "overdue": overdue, "chart": chart,
            "now": overview["now"]}


def _latest_definitions() -> list[dict]:
    latest: dict[str, dict] = {}
    for d in engine().definitions():  # ordered by key, version
        latest[d["key"]] = d
    return sorted(latest.values(), key=lambda d: d["key"])


@bp.route("/")
@role_required("monitor")
def index():
    eng = engine()
    dept = _scope_department()
    departments = eng.departments()
    codes = _subtree_codes(departments, dept)
    try:
        sla = eng.sla_overview(dept)
    except NotFound:
        abort(403, description=_("您所在的部门不存在，无法确定监察范围。"))
    instances = eng.sla_scope_instances(dept)
    color = request.args.get("card") if request.args.get("card") in ("yellow", "red") else None
    cards = _scoped_cards(dept, instances, color)
    log = _scoped_log(instances)
    names = {u["name"]: u["display_name"] or u["name"] for u in eng.users()}
    for row in sla["overdue_cases"] + sla["overdue_steps"]:
        row["assignee_name"] = names.get(row["assignee"], row["assignee"]) if row.get("assignee") else None
    processes = _latest_definitions()
    handled = [h["process_key"] for h in sla["handling"]]
    chosen = request.args.get("process") or (handled[0] if handled else processes[0]["key"] if processes else "")
    scope_name = next((d["name"] for d in departments if d["code"] == dept), None)
    trend = {"weeks": [w["week"] for w in sla["trend"]],
             **{k: [w[k] for w in sla["trend"]] for k in ("yellow", "red", "completed", "completed_late")}}
    return render_template(
        "monitor.html", **_task_overview(codes), sla=sla, cards=cards, card_color=color, log=log,
        scope=dept, scope_name=scope_name, calendar=eng.calendar_status(), processes=processes, process=chosen,
        trend=trend, state_names={k: str(v) for k, v in STATE_NAMES.items()})


@bp.route("/heatmap.json")
@role_required("monitor")
def heatmap():
    """The chosen process's BPMN and, per step, the handling time in the monitor's scope."""
    key = request.args.get("process") or ""
    latest = {d["key"]: d for d in _latest_definitions()}
    if key not in latest:
        abort(404, description=_("没有这个流程。"))
    from .inbox import _main_bpmn

    definition = engine().definition(latest[key]["id"])
    sla = engine().sla_overview(_scope_department())
    steps = {h["bpmn_id"]: {"name": h["name"], "count": h["count"], "avg_hours": h["avg_hours"],
                            "p90_hours": h["p90_hours"], "overdue": 0}
             for h in sla["handling"] if h["process_key"] == key}
    for s in sla["overdue_steps"]:
        if s["process_key"] == key:
            steps.setdefault(s["bpmn_id"], {"name": s["name"], "count": 0, "avg_hours": None, "p90_hours": None,
                                            "overdue": 0})["overdue"] += 1
    top = max((v["avg_hours"] or 0 for v in steps.values()), default=0)
    return jsonify({"key": key, "xml": _main_bpmn(definition), "steps": steps, "max_avg_hours": top,
                    "labels": {"avg": _("平均"), "p90": "P90", "count": _("件"), "hours": _("小时"),
                               "overdue": _("超期在办")}})


@bp.route("/export/<kind>.<fmt>")
@role_required("monitor")
def export(kind: str, fmt: str):
    if kind not in EXPORTS or fmt not in FORMATS:
        abort(404)
    eng = engine()
    dept = _scope_department()
    if kind == "overdue" or dept is None:
        body = eng.sla_export(kind, fmt, department=dept)
    else:
        instances = eng.sla_scope_instances(dept)
        rows, cols = ((_scoped_cards(dept, instances), CARD_COLUMNS) if kind == "cards"
                      else (_scoped_log(instances, 100_000), LOG_COLUMNS))
        body = to_csv(rows, cols) if fmt == "csv" else to_xlsx(rows, cols, kind)
    stamp = eng.clock.now().strftime("%Y%m%d")
    return body, 200, {"Content-Type": FORMATS[fmt],
                       "Content-Disposition": f'attachment; filename="tongban-sla-{kind}-{stamp}.{fmt}"'}


# ---- the SLA box of the instance and task pages --------------------------------------------------
def _handles(task: dict, me: str, groups: set[str]) -> bool:
    if task.get("assignee"):
        return task["assignee"] == me
    return me in (task.get("candidate_users") or []) or bool(groups & set(task.get("candidate_groups") or []))


def sla_box(instance_id: int, task_id: int | None = None) -> dict | None:
    """What ``monitor_sla_box.html`` shows: None when the case has no clock."""
    eng = engine()
    try:
        st = eng.sla_status(instance_id)
    except EngineError:
        return None
    steps = [c for c in st["tasks"] if (c["task_id"] == task_id if task_id is not None else c["status"] != "stopped")]
    if st["instance"] is None and not steps:
        return None
    me, groups = g.user["name"], set(g.user.get("groups") or [])
    open_tasks = eng.tasks(instance_id=instance_id)
    handler = any(_handles(t, me, groups) for t in open_tasks)
    mine = {t["id"] for t in open_tasks if _handles(t, me, groups)}
    pending = {e["clock_id"] for e in st["extensions"] if e["status"] == "pending"}
    clocks = ([st["instance"]] if st["instance"] else []) + steps
    for c in clocks:
        c["unit_name"] = str(UNITS.get(c["unit"], c["unit"]))
        c["state_label"] = str(STATE_NAMES[c["state"]])
        live = c["status"] != "stopped" and c["state"] != "red"
        c["may_extend"] = live and c["id"] not in pending and (
            (c["scope"] == "task" and c["task_id"] in mine) or (c["scope"] == "instance" and handler))
    manual = next((p for p in st["pauses"] if p["source"] == "manual" and not p["ended_at"]), None)
    approvers = {c["approver_group"] for c in clocks}
    running = any(c["status"] != "stopped" for c in clocks)
    shown_clocks = {c["id"] for c in clocks}
    extensions = [dict(e, may_decide=e["status"] == "pending" and e["approver_group"] in groups
                       and e["requested_by"] != me)
                  for e in st["extensions"] if task_id is None or e["clock_id"] in shown_clocks]
    return {"instance_id": instance_id, "task_id": task_id, "case": st["instance"], "steps": steps,
            "pauses": st["pauses"], "manual_pause": manual, "extensions": extensions,
            "may_pause": running and manual is None and (handler or bool(groups & approvers)),
            "may_resume": manual is not None and (handler or manual["paused_by"] == me or bool(groups & approvers)),
            "next": request.full_path.rstrip("?")}


def _my_pending_extensions() -> list[dict]:
    """Extension requests waiting for a group the signed-in user belongs to (not their own)."""
    groups = set(g.user.get("groups") or []) if g.get("user") else set()
    if not groups:
        return []
    return [e for e in engine().extensions("pending") if e["approver_group"] in groups
            and e["requested_by"] != g.user["name"]]


@bp.app_context_processor
def _sla_globals():
    return {"sla_box": sla_box, "pending_extensions": lambda: len(_my_pending_extensions())}


@bp.route("/extensions")
@login_required
def extensions():
    """延期审批: the requests the user's groups decide (an approver need not hold a task of the case)."""
    rows = _my_pending_extensions()
    names = {u["name"]: u["display_name"] or u["name"] for u in engine().users()}
    for e in rows:
        try:
            st = engine().sla_status(e["instance_id"])
        except EngineError:
            st = {"instance": None, "tasks": []}
        clock = next((c for c in [st["instance"], *st["tasks"]] if c and c["id"] == e["clock_id"]), None)
        e["clock"] = clock
        if clock:
            clock["unit_name"] = str(UNITS.get(clock["unit"], clock["unit"]))
            clock["state_label"] = str(STATE_NAMES[clock["state"]])
        e["requested_by_name"] = names.get(e["requested_by"], e["requested_by"])
    return render_template("monitor_extensions.html", extensions=rows)


def _back(instance_id: int) -> str:
    target = request.form.get("next") or ""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("inbox.instance", instance_id=instance_id)


def _may_see(instance_id: int) -> None:
    if not has_role("monitor") and not engine().may_see_instance(instance_id, g.user["name"]):
        abort(403, description=_("您无权查看此办件。"))


def _act(instance_id: int, action, done: str):
    """Run an engine action; engine refusals come back as a flash message on the page."""
    try:
        action()
    except EngineError as exc:
        flash(_("操作未完成：%(msg)s", msg=str(exc)), "error")
    else:
        flash(done, "success")
    return redirect(_back(instance_id))


@bp.route("/sla/<int:instance_id>/extension", methods=["POST"])
@login_required
def request_extension(instance_id: int):
    _may_see(instance_id)
    task_id = request.form.get("task_id", type=int)
    days = request.form.get("days", type=int)
    reason = request.form.get("reason", "")
    if not days or days < 1:
        flash(_("请填写延期天数（1–365）。"), "error")
        return redirect(_back(instance_id))
    kwargs = {"instance_id": instance_id} if task_id is None else {}
    return _act(instance_id, lambda: engine().request_extension(task_id, **kwargs, days=days, reason=reason,
                                                                 actor=g.user["name"]),
                _("延期申请已提交，等待审批。"))


@bp.route("/sla/<int:instance_id>/extensions/<int:extension_id>", methods=["POST"])
@login_required
def decide_extension(instance_id: int, extension_id: int):
    # no visibility check: the engine lets only the clock's approver group decide
    decision = request.form.get("decision")
    note = request.form.get("note", "")
    if decision == "approve":
        return _act(instance_id, lambda: engine().approve_extension(extension_id, g.user["name"], note),
                    _("已批准延期。"))
    if decision == "refuse":
        return _act(instance_id, lambda: engine().refuse_extension(extension_id, g.user["name"], note),
                    _("已驳回延期申请。"))
    abort(400, description=_("请选择批准或驳回。"))


@bp.route("/sla/<int:instance_id>/pause", methods=["POST"])
@login_required
def pause(instance_id: int):
    _may_see(instance_id)
    reason = request.form.get("reason", "")
    return _act(instance_id, lambda: engine().pause_clock(instance_id, reason, g.user["name"]), _("已暂停计时。"))


@bp.route("/sla/<int:instance_id>/resume", methods=["POST"])
@login_required
def resume(instance_id: int):
    _may_see(instance_id)
    return _act(instance_id, lambda: engine().resume_clock(instance_id, g.user["name"]), _("已恢复计时。"))
