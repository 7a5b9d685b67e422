"""Clerk pages: inbox, task page, start an application, instance pages.

Views only call ``engine.api.Engine``; permissions are the engine's (a task of another group
answers 403 because ``Engine.task(..., user=...)`` and ``claim`` refuse it). Sensitive values
are masked for everyone but administrators (``engine.masking``)."""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import forms
from engine.errors import Conflict, EngineError, Invalid, NotAllowed, NotFound
from engine.masking import mask_data

from .auth import engine, has_role, login_required

bp = Blueprint("inbox", __name__)

PAGE_SIZE = 50
NEAR_DUE = timedelta(days=2)
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
SCOPES = ("all", "mine", "unclaimed")
DUE_FILTERS = ("all", "overdue", "soon")


# ---- helpers ------------------------------------------------------------------------------
def _me() -> str:
    return g.user["name"]


def _is_admin() -> bool:
    return "admin" in (g.user.get("roles") or [])


def _sees_everything() -> bool:
    """Administrators and monitors (电子监察) read every task and instance; they act as themselves."""
    return has_role("monitor")


def _parse(value) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _now() -> datetime:
    return engine().clock.now()


def _urgency(task: dict, now: datetime) -> str:
    due = _parse(task.get("due_at"))
    if due is None or task.get("status") != "open":
        return ""
    if due < now:
        return "overdue"
    if due < now + NEAR_DUE:
        return "near-due"
    return ""


@bp.app_template_filter("localtime")
def localtime(value, fmt: str = "%Y-%m-%d %H:%M") -> str:
    moment = _parse(value)
    if moment is None:
        return ""
    if moment.tzinfo is None:
        return moment.strftime(fmt)
    return moment.astimezone(LOCAL_TZ).strftime(fmt)


@bp.app_template_filter("show_value")
def show_value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("是") if value else _("否")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, indent=1)
    return str(value)


@bp.app_template_filter("bilingual")
def bilingual(message) -> str:
    """Engine messages read "中文 / English": show the half of the page's language."""
    text = str(message or "")
    if " / " not in text:
        return text
    zh, _sep, en = text.partition(" / ")
    return en if str(get_locale()) == "en" else zh


def _display_names() -> dict[str, str]:
    try:
        return engine().display_names()
    except EngineError:
        return {}


def _who(name: str | None, names: dict[str, str] | None = None) -> str:
    if not name:
        return ""
    names = names if names is not None else _display_names()
    shown = names.get(name)
    return f"{shown} ({name})" if shown and shown != name else name


def _declared_sensitive(definition: dict) -> dict[str, str]:
    return engine().sensitive_fields(definition["id"])


BASE_LABELS = {"applicant_name": _l("申请人姓名"), "id_number": _l("身份证号码"), "phone": _l("联系电话"),
               "business_key": _l("受理编号"), "initiator": _l("受理人"), "decision": _l("办理结果")}


def _labels(definition: dict) -> dict[str, str]:
    """Names people read for the data keys: the labels of the process's forms (the start form
    and the tasks'), else the titles the connector gives the pulled fields."""
    out = {k: str(v) for k, v in BASE_LABELS.items()}
    manifest = definition.get("manifest") or {}
    fields = [*_start_fields(definition.get("key") or "")]
    for entry in manifest.get("tasks", {}).values():
        fields += entry.get("form_fields") or []
    for f in fields:
        if f.get("label") and f["label"] != f["id"]:
            out.setdefault(f["id"], f["label"])
    registry = engine().connector_registry
    for entry in [*manifest.get("tasks", {}).values(), *manifest.get("services", {}).values()]:
        for pull in entry.get("pulls") or []:
            try:
                op_fields = registry.unconfigured(pull["connector"]).operation(pull["operation"]).fields
            except Exception:  # noqa: BLE001 - a connector configured only in the database: no titles
                continue
            for o in pull.get("outputs") or []:
                title = (op_fields.get(o["name"]) or {}).get("title")
                if title:
                    out.setdefault(o["as"], title)
    return out


def _mask(data, declared: dict[str, str | None]):
    return data if _is_admin() else mask_data(data or {}, declared)


def _process_names() -> dict[str, str]:
    names = {}
    for d in engine().definitions():  # ordered by key, version: the latest name wins
        names[d["key"]] = d["name"] or d["key"]
    return names


def _latest_definitions() -> list[dict]:
    latest: dict[str, dict] = {}
    for d in engine().definitions():
        latest[d["key"]] = d
    return sorted(latest.values(), key=lambda d: d["key"])


def _main_bpmn(definition: dict) -> str:
    """The BPMN file of a deployment that holds the process (a deployment may carry DMN tables
    and called processes too)."""
    sources = definition.get("sources") or {}
    key = re.escape(definition["key"])
    bpmn = {name: text for name, text in sources.items()
            if re.search(r"<([\w-]+:)?process[\s>]", text or "")}
    for text in bpmn.values():
        if re.search(r"<([\w-]+:)?process\b[^>]*\bid=[\"']" + key + r"[\"']", text):
            return text
    if bpmn:
        return next(iter(bpmn.values()))
    raise NotFound(f"no BPMN source for definition {definition['id']}")


def _instance_for_me(instance_id: int) -> tuple[dict, list[dict]]:
    if not _sees_everything() and not engine().may_see_instance(instance_id, _me()):
        abort(403, description=_("您无权查看此办件。"))
    return engine().show(instance_id), engine().tasks(instance_id=instance_id, status="all")


def _task_for_me(task_id: int) -> dict:
    try:
        return engine().task(task_id, user=None if _sees_everything() else _me())
    except NotAllowed:
        abort(403, description=_("此任务不属于您所在的组，无权查看。"))


def _back(default: str) -> str:
    target = request.form.get("next") or ""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return default


ACTIONS = {
    "start": _l("受理"), "claim": _l("领取"), "unclaim": _l("退回待领取"), "complete": _l("办理"),
    "end": _l("办结"), "timer": _l("定时器触发"), "message": _l("收到消息"), "pull": _l("调取共享数据"),
    "service": _l("自动处理"), "incident.retry": _l("异常重试"), "unmask": _l("查看敏感信息"),
}


def _history(shown: dict, declared: dict[str, str | None], definition: dict, names: dict[str, str]) -> list[dict]:
    tasks = (definition.get("manifest") or {}).get("tasks", {})
    task_names = {k: v.get("name") or k for k, v in tasks.items()}
    outcomes = {(k, o["id"]): o["name"] for k, v in tasks.items() for o in v.get("outcomes") or []}
    rows = []
    for event in shown.get("history") or []:
        detail = _mask(event.get("detail") or {}, declared)
        rows.append({
            "at": event.get("at"), "actor": _who(event.get("actor"), names), "action": event.get("action"),
            "action_name": str(ACTIONS.get(event.get("action"), event.get("action"))),
            "task": task_names.get(event.get("task") or "", event.get("task") or ""),
            "decision": detail.get("decision") if isinstance(detail, dict) else None,
            "decision_name": outcomes.get((event.get("task"), detail.get("decision") if isinstance(detail, dict)
                                           else None)),
            "opinion": detail.get("opinion") if isinstance(detail, dict) else None,
            "data": detail.get("data") if isinstance(detail, dict) else None,
        })
    return rows


def _start_data(shown: dict) -> dict:
    for event in shown.get("history") or []:
        if event.get("action") == "start":
            data = dict((event.get("detail") or {}).get("data") or {})
            data.pop("initiator", None)
            data.pop("business_key", None)
            return data
    return {}


# ---- inbox --------------------------------------------------------------------------------
def _inbox_args() -> dict:
    scope = request.args.get("scope", "all")
    due = request.args.get("due", "all")
    try:
        page = max(int(request.args.get("page", 1)), 1)
    except ValueError:
        page = 1
    return {"scope": scope if scope in SCOPES else "all", "due": due if due in DUE_FILTERS else "all",
            "process": request.args.get("process") or "", "department": request.args.get("department") or "",
            "page": page}


@bp.route("/")
@login_required
def index():
    args = _inbox_args()
    now = _now()
    due_before = {"overdue": now, "soon": now + NEAR_DUE}.get(args["due"])
    error = None
    try:
        rows = engine().tasks(user=_me(), scope=args["scope"], process_key=args["process"] or None,
                              department=args["department"] or None, due_before=due_before,
                              limit=PAGE_SIZE + 1, offset=(args["page"] - 1) * PAGE_SIZE)
    except NotFound as exc:
        rows, error = [], str(exc)
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    names = _display_names()
    processes = _process_names()
    for t in rows:
        t["urgency"] = _urgency(t, now)
        t["assignee_name"] = _who(t["assignee"], names)
        t["process_name"] = processes.get(t["process_key"], t["process_key"])
    departments = engine().departments()

    def page_url(page: int) -> str:
        params = {k: v for k, v in args.items() if v and k != "page"}
        return url_for("inbox.index", page=page, **params)

    return render_template("inbox.html", tasks=rows, args=args, processes=processes, departments=departments,
                           has_next=has_next, page_url=page_url, error=error, me=_me(),
                           to_read_count=len(engine().to_read(_me(), unread_only=True)))


def _row_response(task_id: int, message: str | None = None):
    """After claim/unclaim: the task row again for htmx (with fresh navigation counts), else a redirect."""
    if request.headers.get("HX-Request"):
        t = engine().task(task_id)
        t["urgency"] = _urgency(t, _now())
        t["assignee_name"] = _who(t["assignee"])
        t["process_name"] = _process_names().get(t["process_key"], t["process_key"])
        return render_template("_task_row_swap.html", t=t, me=_me(), message=message)
    if message:
        flash(message, "success")
    return redirect(_back(url_for("inbox.task", task_id=task_id)))


@bp.route("/tasks/<int:task_id>/claim", methods=["POST"])
@login_required
def claim(task_id: int):
    engine().claim(task_id, _me())
    return _row_response(task_id, _("已领取。"))


@bp.route("/tasks/<int:task_id>/unclaim", methods=["POST"])
@login_required
def unclaim(task_id: int):
    engine().unclaim(task_id, _me())
    return _row_response(task_id, _("已退回待领取。"))


# ---- task page ----------------------------------------------------------------------------
def _form_values(task: dict) -> dict:
    """Initial values: what the instance already holds, else the field's default."""
    data = task.get("data") or {}
    values = {}
    for f in task["form"]:
        value = data.get(f["id"], f.get("default"))
        if f["id"] in (task.get("sensitive") or []) and isinstance(value, str) and "*" in value:
            value = f.get("default")  # never put a masked value back into the process
        if f["type"] == "boolean" and isinstance(value, str):
            value = value.strip().lower() in ("true", "1", "yes", "on", "是")
        values[f["id"]] = value
    return values


def _submitted(task: dict) -> dict:
    values = {}
    for f in task["form"]:
        if f.get("readonly"):
            continue
        if f["type"] == "boolean":
            values[f["id"]] = "true" if request.form.get(f["id"]) else "false"
        else:
            values[f["id"]] = request.form.get(f["id"], "")
    return values


def _check(task: dict, values: dict, decision: str | None, opinion: str) -> dict:
    """All the problems at once (the engine stops at the first group); the engine checks again."""
    errors: dict[str, str] = {}
    try:
        forms.validate(task["form"], values)
    except Invalid as exc:
        errors.update(exc.fields)
    if task["outcomes"] and decision not in {o["id"] for o in task["outcomes"]}:
        errors["decision"] = _("请选择办理结果")
    if task["opinion_required"] and not opinion.strip():
        errors["opinion"] = _("请填写审批意见")
    return errors


def _render_task(task: dict, *, values=None, errors=None, decision=None, opinion="", conflict=None, status=200,
                 read_only=False, action_error=None, revealed=None, notice=None):
    shown = engine().show(task["instance_id"])
    definition = engine().definition(task["definition_id"])
    declared = {**dict.fromkeys(task.get("sensitive") or []), **_declared_sensitive(definition)}
    names = _display_names()
    form_ids = {f["id"] for f in task["form"]}
    step_data = {k: v for k, v in (task.get("data") or {}).items() if k not in ("initiator",)}
    context = {
        "task": task, "values": values if values is not None else _form_values(task), "errors": errors or {},
        "decision": decision if decision is not None else task.get("decision"),
        "opinion": opinion if opinion else (task.get("opinion") or ""),
        "conflict": conflict, "me": _me(),
        "applicant": _mask(_start_data(shown), declared),
        "step_data": _mask({k: v for k, v in step_data.items() if k not in form_ids}, declared),
        "history": _history(shown, declared, definition, names),
        "instance": shown, "process_name": definition.get("name") or definition["key"],
        "assignee_name": _who(task.get("assignee"), names), "completed_by_name": _who(task.get("completed_by"), names),
        "may_edit": task["status"] == "open" and task.get("assignee") == _me(),
        "urgency": _urgency(task, _now()), "labels": _labels(definition),
        "revealed": revealed or {}, "notice": notice,
    }
    from .approval_views import approval_context  # the 中国式审批 operations (web/approval_views.py)

    context.update(approval_context(task, read_only=read_only), action_error=action_error)
    return render_template("task.html", **context), status


@bp.route("/tasks/<int:task_id>", methods=["GET"])
@login_required
def task(task_id: int):
    return _render_task(_task_for_me(task_id))


@bp.route("/tasks/<int:task_id>/unmask", methods=["POST"])
@login_required
def unmask(task_id: int):
    """查看完整: the full value of a masked pulled field, for whoever the engine lets see it;
    the engine logs the unmasking (pull log kind "unmask" and audit) with the reason given."""
    t = _task_for_me(task_id)
    field = request.form.get("field", "")
    reason = request.form.get("reason", "").strip()
    if not reason:
        return _render_task(t, action_error=_("请填写查看完整信息的理由。"), status=400)
    try:
        shown = engine().unmask(task_id, field, _me(), reason=reason[:500])
    except NotAllowed:
        return _render_task(t, action_error=_("您无权查看此项的完整信息。"), status=403)
    except NotFound:
        return _render_task(t, action_error=_("此任务没有调取数据项 %(field)s。", field=field), status=404)
    return _render_task(t, revealed={field: shown["value"]},
                        notice=_("已显示完整信息，本次查看已记录（理由：%(reason)s）。", reason=reason[:500]))


@bp.route("/tasks/<int:task_id>", methods=["POST"])
@login_required
def complete(task_id: int):
    t = _task_for_me(task_id)
    values = _submitted(t)
    decision = request.form.get("decision") or None
    opinion = request.form.get("opinion", "")
    kept = {**_form_values(t), **{k: v for k, v in values.items()}}
    for f in t["form"]:
        if f["type"] == "boolean":
            kept[f["id"]] = values.get(f["id"]) == "true"
    if t["status"] == "completed":
        return _conflict_page(t, kept, decision, opinion)
    if t["status"] != "open":
        return _render_task(t, values=kept, decision=decision, opinion=opinion,
                            conflict=_("此任务已撤销，无需办理。"), status=409)
    if t.get("assignee") and t["assignee"] != _me():
        return _render_task(t, values=kept, decision=decision, opinion=opinion,
                            conflict=_("已由 %(who)s 领取，您不能办理。", who=_who(t["assignee"])), status=409)
    if not t.get("assignee"):
        return _render_task(t, values=kept, decision=decision, opinion=opinion,
                            conflict=_("请先领取此任务再办理。"), status=409)
    errors = _check(t, values, decision, opinion)
    if errors:
        return _render_task(t, values=kept, errors=errors, decision=decision, opinion=opinion, status=400)
    try:
        result = engine().complete(task_id, _me(), values, decision=decision, opinion=opinion.strip() or None)
    except Invalid as exc:
        return _render_task(t, values=kept, errors=exc.fields or {"_form": str(exc)}, decision=decision,
                            opinion=opinion, status=400)
    except Conflict:
        return _conflict_page(engine().task(task_id), kept, decision, opinion)
    flash(_("「%(name)s」已办理完成。", name=t["name"]), "success")
    return redirect(url_for("inbox.instance", instance_id=result["instance_id"]))


def _conflict_page(t: dict, values, decision, opinion):
    who = _who(t.get("completed_by")) or _("他人")
    return _render_task(t, values=values, decision=decision, opinion=opinion,
                        conflict=_("已由 %(who)s 办理，您的提交未保存。", who=who), status=409)


# ---- instances ----------------------------------------------------------------------------
@bp.route("/instances")
@login_required
def instances():
    status = request.args.get("status") or ""
    if status not in ("", "running", "completed", "error", "cancelled", "suspended"):
        status = ""
    try:
        page = max(int(request.args.get("page", 1)), 1)
    except ValueError:
        page = 1
    rows = engine().instances_for(None if _sees_everything() else _me(), status=status or None,
                                 limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    names = _display_names()
    processes = _process_names()
    for r in rows:
        r["process_name"] = processes.get(r["process_key"], r["process_key"])
        r["started_by_name"] = _who(r["started_by"], names)
    return render_template("instances.html", instances=rows, status=status, page=page, has_next=has_next,
                           everything=_sees_everything())


@bp.route("/instances/<int:instance_id>")
@login_required
def instance(instance_id: int, action_error: str | None = None):
    shown, tasks = _instance_for_me(instance_id)
    definition = engine().definition(shown["definition_id"])
    declared = _declared_sensitive(definition)
    names = _display_names()
    now = _now()
    open_tasks = [t for t in tasks if t["status"] == "open"]
    for t in open_tasks:
        t["urgency"] = _urgency(t, now)
        t["assignee_name"] = _who(t["assignee"], names)
    data = {k: v for k, v in (shown.get("data") or {}).items()}
    return render_template(
        "instance.html", instance=shown, data=_mask(data, declared), applicant=_mask(_start_data(shown), declared),
        process_name=definition.get("name") or definition["key"], open_tasks=open_tasks,
        done_tasks=[t for t in tasks if t["status"] == "completed"],
        history=_history(shown, declared, definition, names),
        started_by_name=_who(shown.get("started_by"), names), masked=not _is_admin(), labels=_labels(definition),
        action_error=action_error, **instance_context(shown, tasks))


@bp.route("/instances/<int:instance_id>/diagram.json")
@login_required
def diagram(instance_id: int):
    """The main BPMN of the instance's definition and the elements to colour; ``?task=bpmn_id``
    shows that task as the active one (the task page)."""
    shown, _tasks = _instance_for_me(instance_id)
    definition = engine().definition(shown["definition_id"])
    progress = engine().progress(instance_id)
    errors = {i["element_id"] for i in shown.get("incidents") or [] if i.get("element_id") and not i["resolved"]}
    highlight = {k: list(v) for k, v in progress.items()}
    highlight["error"] = sorted(set(highlight.get("error", [])) | errors)
    focus = request.args.get("task")
    if focus:
        others = [x for x in highlight["active"] if x != focus]
        highlight["waiting"] = sorted(set(highlight["waiting"]) | set(others))
        highlight["active"] = [focus]
        highlight["completed"] = [x for x in highlight["completed"] if x != focus]
    return jsonify({"xml": _main_bpmn(definition), "highlight": highlight, "key": definition["key"]})


# ---- start an application -----------------------------------------------------------------
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def valid_id_number(text: str) -> bool:
    """An 18-character resident ID (GB 11643) with its ISO 7064 MOD 11-2 check character."""
    if not re.fullmatch(r"\d{17}[\dXx]", text):
        return False
    total = sum(int(c) * w for c, w in zip(text[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == text[17].upper()


def _new_business_key() -> str:
    return f"SL{_now().astimezone(LOCAL_TZ):%Y%m%d}{secrets.randbelow(10**6):06d}"


def _start_values() -> dict:
    return {k: request.form.get(k, "").strip() for k in
            ("process", "applicant_name", "id_number", "phone", "business_key", "data_json")}


def _extra_pairs() -> list[tuple[str, str]]:
    keys = request.form.getlist("extra_key")
    vals = request.form.getlist("extra_value")
    return [(k.strip(), v.strip()) for k, v in zip(keys, vals, strict=False) if k.strip() or v.strip()]


def _typed(text: str):
    """Key/value rows: numbers and true/false become JSON values, anything else stays text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _start_fields(key: str) -> list[dict]:
    try:
        return engine().start_fields(key) if key else []
    except NotFound:
        return []


def _start_with_form(definitions: list[dict], key: str, fields: list[dict]):
    """The 一表申请 page of a process whose start event declares a form: its own fields,
    validated on the server, each message next to its field."""
    errors: dict[str, str] = {}
    if request.method == "GET":
        values = forms.with_defaults(fields, {})
        business_key = _new_business_key()
    else:
        business_key = request.form.get("business_key", "").strip() or _new_business_key()
        values = {}
        for f in fields:
            if f.get("readonly") or (f["type"] != "boolean" and f["id"] not in request.form):
                continue
            values[f["id"]] = ("true" if request.form.get(f["id"]) else "false") if f["type"] == "boolean" \
                else request.form.get(f["id"], "").strip()
        try:
            clean = forms.validate(fields, values)
        except Invalid as exc:
            errors.update(exc.fields or {"_form": str(exc)})
        else:
            try:
                started = engine().start(key, clean, business_key=business_key, actor=_me())
            except Invalid as exc:
                errors.update(exc.fields or {"_form": str(exc)})
            except EngineError as exc:
                errors["_form"] = _("受理失败：%(msg)s", msg=str(exc))
            else:
                flash(_("已受理，受理编号 %(key)s。", key=business_key), "success")
                return redirect(url_for("inbox.instance", instance_id=started["instance_id"]))
    definition = next((d for d in definitions if d["key"] == key), {"key": key, "name": key})
    return render_template("start_form.html", definition=definition, fields=fields, values=values,
                           errors=errors, business_key=business_key), (400 if errors else 200)


@bp.route("/start", methods=["GET", "POST"])
@login_required
def start():
    if not has_role("clerk"):
        abort(403, description=_("只有窗口人员可以受理申请。"))
    definitions = _latest_definitions()
    chosen = request.args.get("process", "") if request.method == "GET" else request.form.get("process", "")
    fields = _start_fields(chosen) if chosen in {d["key"] for d in definitions} else []
    if fields and (request.method == "GET" or request.form.get("form") == "start"):
        return _start_with_form(definitions, chosen, fields)
    if request.method == "GET":
        values = {"process": request.args.get("process", ""), "business_key": _new_business_key()}
        with_forms = [d for d in definitions if _start_fields(d["key"])]
        return render_template("start.html", definitions=definitions, values=values, errors={},
                               pairs=[("", "")] * 3, with_forms=with_forms)
    values = _start_values()
    pairs = _extra_pairs()
    errors: dict[str, str] = {}
    if values["process"] not in {d["key"] for d in definitions}:
        errors["process"] = _("请选择要办理的事项")
    if not values["applicant_name"]:
        errors["applicant_name"] = _("请填写申请人姓名")
    if not valid_id_number(values["id_number"]):
        errors["id_number"] = _("身份证号码应为 18 位且校验位正确")
    if values["phone"] and not re.fullmatch(r"1\d{10}", values["phone"]):
        errors["phone"] = _("手机号码应为以 1 开头的 11 位数字")
    if not values["business_key"]:
        values["business_key"] = _new_business_key()
    data: dict = {}
    if values["data_json"]:
        try:
            parsed = json.loads(values["data_json"])
        except ValueError as exc:
            errors["data_json"] = _("JSON 格式错误：%(msg)s", msg=str(exc))
        else:
            if isinstance(parsed, dict):
                data.update(parsed)
            else:
                errors["data_json"] = _("JSON 必须是一个对象，例如 {\"floor_area\": 80}")
    for k, v in pairs:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            errors["extra"] = _("字段名只能包含字母、数字和下划线，且不能以数字开头：%(key)s", key=k)
            break
        data[k] = _typed(v)
    if not errors:
        data.update({"applicant_name": values["applicant_name"], "id_number": values["id_number"].upper()})
        if values["phone"]:
            data["phone"] = values["phone"]
        try:
            started = engine().start(values["process"], data, business_key=values["business_key"], actor=_me())
        except Invalid as exc:
            detail = "；".join(f"{k}: {v}" for k, v in (exc.fields or {}).items())
            errors["_form"] = _("受理失败：%(msg)s", msg=f"{exc} {detail}".strip())
        except EngineError as exc:
            errors["_form"] = _("受理失败：%(msg)s", msg=str(exc))
        else:
            flash(_("已受理，受理编号 %(key)s。", key=values["business_key"]), "success")
            return redirect(url_for("inbox.instance", instance_id=started["instance_id"]))
    shown_pairs = pairs + [("", "")] * max(3 - len(pairs), 1)
    return render_template("start.html", definitions=definitions, values=values, errors=errors,
                           pairs=shown_pairs, with_forms=[]), 400


from . import approval_views  # noqa: E402,F401 - registers the approval routes on this blueprint
from .approval_views import instance_context  # noqa: E402
