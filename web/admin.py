"""Admin pages (系统管理): users, departments (五级 org tree), groups, API tokens, audit log,
connectors (数据连接: configuration and write-only secrets, the pull log, incidents to retry).

Every change goes through an ``Engine`` method, which writes the audit entry; every form
posts the session's CSRF token (checked in ``web.auth``).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from engine.directory import LEVELS, ROLES
from engine.errors import EngineError
from engine.pulllog import KINDS as PULL_KINDS
from engine.pulllog import OUTCOMES, parse_moment

from .auth import engine, role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _split(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[,，\s]+", value or "") if v.strip()]


def _fail(exc: Exception) -> None:
    flash(_("操作失败：%(message)s", message=str(exc)), "error")


def _tree(departments: list[dict]) -> list[dict]:
    """Departments as nested nodes ({..., "children": [...]}), roots first."""
    nodes = {d["code"]: dict(d, children=[]) for d in departments}
    roots = []
    for d in departments:
        parent = nodes.get(d["parent"]) if d["parent"] else None
        (parent["children"] if parent else roots).append(nodes[d["code"]])
    return roots


def _members(users: list[dict]) -> dict[str, list[str]]:
    by_dept: dict[str, list[str]] = {}
    for u in users:
        if u["department"]:
            by_dept.setdefault(u["department"], []).append(u["name"])
    return by_dept


@bp.route("/")
@role_required("admin")
def index():
    return users()


# ---- users ---------------------------------------------------------------------------------

@bp.route("/users", methods=["GET", "POST"])
@role_required("admin")
def users():
    form = {}
    status = 200
    if request.method == "POST":
        form = request.form
        name = form.get("name", "").strip()
        password = form.get("password", "")
        roles = [r for r in form.getlist("roles") if r in ROLES]
        groups = _split(form.get("groups", "")) + [x for x in form.getlist("group") if x]
        department = form.get("department") or None
        errors = []
        if not NAME_RE.match(name):
            errors.append(_("用户名须为 2–64 个字母、数字或 _ . @ -。"))
        elif any(u["name"] == name for u in engine().users()):
            errors.append(_("用户 %(name)s 已存在。", name=name))
        if len(password) < 8:
            errors.append(_("初始密码至少 8 个字符。"))
        if not roles:
            errors.append(_("请至少选择一个角色。"))
        if not errors:
            try:
                engine().add_user(name, sorted(set(groups)), form.get("display_name", "").strip() or name,
                                  roles=roles, password=password, department=department, actor=g.user["name"])
                flash(_("已添加用户 %(name)s。", name=name), "ok")
                return redirect(url_for(".users"))
            except EngineError as exc:
                errors.append(str(exc))
        for e in errors:
            flash(e, "error")
        status = 400
    return render_template("admin_users.html", tab="users", users=engine().users(), roles=ROLES,
                           groups=engine().groups(), departments=engine().departments(), form=form,
                           checked_roles=form.getlist("roles") if form else ["clerk"]), status


@bp.route("/users/<name>/active", methods=["POST"])
@role_required("admin")
def set_active(name: str):
    active = request.form.get("active") == "1"
    if not active and name == g.user["name"]:
        flash(_("不能停用自己的账号。"), "error")
        return redirect(url_for(".users"))
    try:
        engine().set_active(name, active, actor=g.user["name"])
        flash(_("已启用 %(name)s。", name=name) if active else _("已停用 %(name)s。", name=name), "ok")
    except EngineError as exc:
        _fail(exc)
    return redirect(url_for(".users"))


@bp.route("/users/<name>/password", methods=["POST"])
@role_required("admin")
def reset_password(name: str):
    password = request.form.get("password", "")
    if len(password) < 8:
        flash(_("初始密码至少 8 个字符。"), "error")
        return redirect(url_for(".users"))
    try:
        engine().set_password(name, password, actor=g.user["name"])
        flash(_("已重置 %(name)s 的密码。", name=name), "ok")
    except EngineError as exc:
        _fail(exc)
    return redirect(url_for(".users"))


# ---- departments and groups ----------------------------------------------------------------

@bp.route("/departments", methods=["GET", "POST"])
@role_required("admin")
def departments():
    status = 200
    if request.method == "POST":
        code = request.form.get("code", "").strip()
        name = request.form.get("name", "").strip()
        parent = request.form.get("parent") or None
        try:
            level = int(request.form.get("level", "0"))
        except ValueError:
            level = 0
        existing = {d["code"] for d in engine().departments()}
        if not CODE_RE.match(code) or not name:
            flash(_("请填写部门编码（字母、数字、_ . -）和名称。"), "error")
            status = 400
        elif code in existing:
            flash(_("部门编码 %(code)s 已存在。", code=code), "error")
            status = 400
        else:
            try:
                engine().add_department(code, name, level, parent, actor=g.user["name"])
                flash(_("已添加部门 %(name)s。", name=name), "ok")
                return redirect(url_for(".departments"))
            except EngineError as exc:
                _fail(exc)
                status = 400
    depts = engine().departments()
    return render_template("admin_departments.html", tab="departments", tree=_tree(depts), departments=depts,
                           levels=LEVELS, members=_members(engine().users())), status


@bp.route("/groups", methods=["GET", "POST"])
@role_required("admin")
def groups():
    status = 200
    if request.method == "POST":
        group = request.form.get("group", "").strip()
        department = request.form.get("department") or None
        if not NAME_RE.match(group):
            flash(_("用户组名须为 2–64 个字母、数字或 _ . @ -。"), "error")
            status = 400
        else:
            try:
                engine().set_group_department(group, department, actor=g.user["name"])
                flash(_("已保存用户组 %(name)s。", name=group), "ok")
                return redirect(url_for(".groups"))
            except EngineError as exc:
                _fail(exc)
                status = 400
    depts = engine().departments()
    return render_template("admin_groups.html", tab="groups", groups=engine().groups(), departments=depts,
                           dept_names={d["code"]: d["name"] for d in depts}), status


# ---- API tokens ----------------------------------------------------------------------------

@bp.route("/tokens", methods=["GET", "POST"])
@role_required("admin")
def tokens():
    issued = None
    status = 200
    if request.method == "POST":
        user = request.form.get("user", "").strip()
        name = request.form.get("name", "").strip()
        if not user or not name:
            flash(_("请选择用户并填写令牌用途。"), "error")
            status = 400
        else:
            try:
                issued = engine().issue_token(user, name[:100], actor=g.user["name"])
            except EngineError as exc:
                _fail(exc)
                status = 400
    # the secret is shown on this response only; it is never stored in clear text
    return render_template("admin_tokens.html", tab="tokens", tokens=engine().tokens(), issued=issued,
                           users=[u for u in engine().users() if u["active"]]), status


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@role_required("admin")
def revoke_token(token_id: int):
    try:
        engine().revoke_token(token_id, actor=g.user["name"])
        flash(_("已吊销令牌 %(id)s。", id=token_id), "ok")
    except EngineError as exc:
        _fail(exc)
    return redirect(url_for(".tokens"))


# ---- working-day calendar (节假日安排) ------------------------------------------------------

@bp.route("/calendar", methods=["GET", "POST"])
@role_required("admin")
def calendar():
    """Upload a published schedule (holidays and 调休 working days) for a year and region; see
    which years are loaded; check a due date."""
    status, loaded, due, code = None, None, None, 200
    region = (request.values.get("region") or "CN").strip()[:40] or "CN"
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash(_("请选择节假日安排文件（JSON 或 CSV）。"), "error")
            code = 400
        else:
            try:
                text = upload.read().decode("utf-8-sig")
                loaded = engine().load_calendar(text, upload.filename, region, actor=g.user["name"])
                flash(_("已导入 %(n)s 天（%(years)s，%(region)s）。", n=loaded["days"],
                        years=", ".join(map(str, loaded["years"])), region=loaded["region"]), "ok")
            except UnicodeDecodeError:
                flash(_("文件不是 UTF-8 文本。"), "error")
                code = 400
            except EngineError as exc:
                _fail(exc)
                code = 400
    if request.args.get("start"):
        from datetime import date

        try:
            due = engine().calendar_due(date.fromisoformat(request.args["start"]),
                                        int(request.args.get("n", "20")),
                                        request.args.get("unit", "workday"), region)
        except (ValueError, EngineError) as exc:
            _fail(exc)
            code = 400
    status = engine().calendar_status(region)
    return render_template("admin_calendar.html", tab="calendar", status=status, due=due, region=region,
                           loaded=loaded), code


# ---- audit ---------------------------------------------------------------------------------

@bp.route("/audit", methods=["GET", "POST"])
@role_required("admin")
def audit():
    verification = engine().verify_audit().as_dict() if request.method == "POST" else None
    try:
        limit = max(1, min(int(request.args.get("limit", 200)), 2000))
    except ValueError:
        limit = 200
    return render_template("admin_audit.html", tab="audit", events=engine().trail(limit=limit),
                           verification=verification, limit=limit)


# ---- connectors (数据连接), the pull log and incidents -------------------------------------

SIMPLE_TYPES = ("string", "number", "integer", "boolean")


def _simple_fields(schema: dict) -> list[tuple[str, dict]]:
    """Configuration keys edited as single inputs (secrets and objects are handled apart)."""
    return [(k, v) for k, v in schema.items() if not v.get("secret") and v.get("type") in SIMPLE_TYPES]


def _connector_views() -> list[dict]:
    configs = {c["name"]: c for c in engine().connector_configs()}
    out = []
    for desc in engine().connectors():
        cfg = configs.get(desc["name"], {"config": {}, "secrets": {}, "revision": 0})
        schema = desc.get("config_schema") or {}
        simple = _simple_fields(schema)
        simple_keys = {k for k, _v in simple}
        extra = {k: v for k, v in (cfg.get("config") or {}).items() if k not in simple_keys}
        out.append({**desc, "cfg": cfg, "simple": simple,
                    "extra_json": json.dumps(extra, ensure_ascii=False, indent=2) if extra else ""})
    return out


def _parse_config(schema: dict, form) -> tuple[dict, dict, list[str]]:
    """The posted configuration and secrets; empty inputs are left out (the default applies,
    a stored secret stays)."""
    errors: list[str] = []
    config: dict = {}
    extra_text = (form.get("extra_json") or "").strip()
    if extra_text:
        try:
            extra = json.loads(extra_text)
        except ValueError as exc:
            extra = None
            errors.append(_("其他配置不是有效的 JSON：%(msg)s", msg=str(exc)))
        if extra is not None and not isinstance(extra, dict):
            errors.append(_("其他配置必须是一个 JSON 对象。"))
        elif extra:
            config.update(extra)
    for key, prop in _simple_fields(schema):
        raw = (form.get(f"cfg_{key}") or "").strip()
        if prop.get("type") == "boolean":
            posted = form.getlist(f"cfg_{key}")  # a hidden "0" and the checkbox's "1"
            if posted:
                config[key] = "1" in posted
            continue
        if not raw:
            config.pop(key, None)
            continue
        try:
            config[key] = int(raw) if prop["type"] == "integer" else float(raw) if prop["type"] == "number" else raw
        except ValueError:
            errors.append(_("%(key)s 应为数字。", key=prop.get("title") or key))
    secrets: dict = {}
    for key, prop in schema.items():
        if not prop.get("secret"):
            continue
        if form.get(f"clear_{key}"):
            secrets[key] = ""  # removes the stored secret
        elif form.get(f"secret_{key}"):
            secrets[key] = form.get(f"secret_{key}")  # an empty input keeps the stored secret
    return config, secrets, errors


@bp.route("/connectors", methods=["GET"])
@role_required("admin")
def connectors():
    show_resolved = request.args.get("resolved") == "1"
    return render_template("admin_connectors.html", tab="connectors", connectors=_connector_views(),
                           incidents=engine().incidents(open_only=not show_resolved), show_resolved=show_resolved)


@bp.route("/connectors/<name>", methods=["POST"])
@role_required("admin")
def save_connector(name: str):
    desc = next((c for c in engine().connectors() if c["name"] == name), None)
    if desc is None:
        abort(404)
    config, secrets, errors = _parse_config(desc.get("config_schema") or {}, request.form)
    if not errors:
        try:
            engine().set_connector_config(name, config, secrets, actor=g.user["name"])
            flash(_("已保存数据连接 %(name)s 的配置。", name=name), "ok")
            return redirect(url_for(".connectors") + f"#connector-{name}")
        except EngineError as exc:
            errors.append(str(exc))
    for e in errors:
        flash(e, "error")
    # the secrets typed are not sent back: the page shows only 已设置 / 未设置
    return render_template("admin_connectors.html", tab="connectors", connectors=_connector_views(),
                           incidents=engine().incidents(), show_resolved=False,
                           failed=name, failed_form={k: v for k, v in request.form.items()
                                                     if not k.startswith("secret_") and k != "csrf_token"}), 400


def _day_filter(name: str, *, end: bool = False):
    """A date filter of the pull log page: (aware UTC moment or None, the text to show again, bad?).
    A date is 00:00 in Asia/Shanghai; the end date counts whole (up to the next day's 00:00)."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None, "", False
    try:
        moment = parse_moment(raw)
    except ValueError:
        return None, raw, True
    if end and _is_date(raw):  # a date from the date input: the whole day is included
        moment += timedelta(days=1)
    return moment, raw, False


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


@bp.route("/connectors/log")
@role_required("admin")
def pull_log():
    raw = (request.args.get("instance") or "").strip()
    instance_id = int(raw) if raw.isascii() and raw.isdigit() and int(raw) < 2**63 else None
    kind = request.args.get("kind") or ""
    if kind not in PULL_KINDS:
        kind = ""
    outcome = request.args.get("outcome") or ""
    if outcome not in OUTCOMES:
        outcome = ""
    connector = (request.args.get("connector") or "").strip()[:100]
    actor = (request.args.get("actor") or "").strip()[:100]
    since, since_text, bad_since = _day_filter("since")
    until, until_text, bad_until = _day_filter("until", end=True)
    try:
        limit = max(1, min(int(request.args.get("limit", 200)), 2000))
    except ValueError:
        limit = 200
    rows = engine().pull_log(instance_id, limit=limit, kind=kind or None, connector=connector or None,
                             actor=actor or None, since=since, until=until, outcome=outcome or None)
    return render_template("admin_pull_log.html", tab="connectors", rows=rows, instance=raw if instance_id else "",
                           kind=kind, kinds=PULL_KINDS, limit=limit, bad_instance=bool(raw) and instance_id is None,
                           outcome=outcome, outcomes=OUTCOMES, connector=connector, actor=actor,
                           connectors=engine().connector_registry.names(), since=since_text, until=until_text,
                           bad_dates=[n for n, bad in (("since", bad_since), ("until", bad_until)) if bad])


def _safe_back(default: str) -> str:
    target = request.form.get("next") or ""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return default


@bp.route("/incidents/<int:incident_id>/retry", methods=["POST"])
@role_required("admin")
def retry_incident(incident_id: int):
    try:
        result = engine().retry_incident(incident_id, actor=g.user["name"])
    except EngineError as exc:
        _fail(exc)
    else:
        outcome = result.get("outcome")
        if outcome == "done":
            flash(_("异常 %(id)s 已重试成功。", id=incident_id), "ok")
        elif outcome in ("retry", "queued"):
            flash(_("异常 %(id)s 已重新排队，但这次仍未成功，系统将自动再试。", id=incident_id), "error")
        elif outcome == "incident":
            flash(_("异常 %(id)s 重试失败，已记为新的异常。", id=incident_id), "error")
        else:
            flash(_("异常 %(id)s 已重试（%(outcome)s）。", id=incident_id, outcome=outcome), "ok")
    return redirect(_safe_back(url_for(".connectors")))
