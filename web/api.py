"""REST API under /api/v1 (JSON; OpenAPI document at /api/v1/openapi.json).

Every view is a thin call into ``engine.api.Engine``; engine errors become JSON in ``web.errors``
(``{"error": code, "message": ..., "fields"?: {...}, "problems"?: [...]}``). Callers authenticate
with ``Authorization: Bearer <token>`` or the session cookie (then writes need ``X-CSRF-Token``,
checked in ``web.auth``). Without credentials every endpoint but the OpenAPI document answers 401.

Who may see what: admins and monitors read every task and instance; anybody else reads the tasks
they may act on (or completed) and the instances they started or have a task in; what they may
not see is 403, not hidden.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from flask import Blueprint, current_app, g, jsonify, request

from engine.errors import Conflict, Invalid, NotAllowed, NotFound
from engine.masking import mask_data
from engine.pulllog import KINDS as PULL_KINDS
from engine.pulllog import OUTCOMES, parse_moment

from .auth import has_role
from .errors import error_response
from .licences import render_pdf, verify_url, visible_licence

bp = Blueprint("api", __name__, url_prefix="/api/v1")

ROLES = ("designer", "clerk", "monitor", "admin")
SCOPES = ("all", "mine", "unclaimed")
MAX_LIMIT = 500
XML_TYPES = ("application/xml", "text/xml", "application/bpmn+xml")
MAX_ID = 2**63 - 1  # ids are 64-bit; larger path ids can match nothing
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")


def engine():
    return current_app.extensions["tongban"]


def me() -> str:
    return g.user["name"]


# ---- authentication, roles --------------------------------------------------------------
@bp.before_request
def _authenticate():
    if request.endpoint in ("api.openapi", "api.verify_licence"):  # public: the QR code of a printed licence
        return None
    if not g.get("user"):
        header = request.headers.get("Authorization", "")
        message = ("the bearer token is unknown or revoked" if header.lower().startswith("bearer ")
                   else "sign in, or send Authorization: Bearer <token>")
        response, status = error_response(401, message, "unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="tongban"'
        return response, status
    for value in (request.view_args or {}).values():
        if isinstance(value, int) and value > MAX_ID:
            raise NotFound(f"no such resource: id {value} is out of range")
    if any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)) or any(
            isinstance(v, str) and "\x00" in v for v in (request.view_args or {}).values()):
        raise _BadRequest(400, "NUL characters are not allowed")
    return None


def require(*roles: str) -> None:
    """The caller must hold one of ``roles`` (admin holds them all); else 403."""
    if not has_role(*roles):
        raise NotAllowed(f"{me()} needs the role {' or '.join(roles)}")


def reads_everything() -> bool:
    return has_role("monitor")  # monitors and admins


# ---- request parsing --------------------------------------------------------------------
class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


@bp.errorhandler(_BadRequest)
def _bad_request(exc: _BadRequest):
    return error_response(exc.status, exc.message)


def json_body(*, optional: bool = False) -> dict:
    """The request's JSON object. 415 when the body is not JSON, 400 when it is malformed
    or not an object; an empty body is ``{}`` when ``optional``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return {}
        raise _BadRequest(400, "a JSON object is required as the request body")
    if not request.is_json:
        raise _BadRequest(415, "send the body as application/json")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(400, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Invalid("the body must be a JSON object", {})
    if _has_nul(value):
        raise _BadRequest(400, "NUL characters and lone surrogates are not allowed in the body")
    return value


def _has_nul(value) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape
            return True
        return False
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _check(errors: dict[str, str]) -> None:
    if errors:
        raise Invalid("invalid request: " + ", ".join(sorted(errors)), errors)


def _opt_str(body: dict, key: str, errors: dict, *, max_len: int = 10_000) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors[key] = "must be a string"
    elif len(value) > max_len:
        errors[key] = f"at most {max_len} characters"
    else:
        return value
    return None


def _str_list(body: dict, key: str, errors: dict) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and _NAME.match(v) for v in value):
        errors[key] = "must be a list of names (letters, digits, _ . @ -)"
        return []
    return value


def query_int(name: str, default: int, lo: int, hi: int | None, errors: dict) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        errors[name] = "must be a whole number"
        return default
    if value < lo or (hi is not None and value > hi):
        errors[name] = f"must be between {lo} and {hi}" if hi is not None else f"must be at least {lo}"
        return default
    return value


def paging(errors: dict, default_limit: int = 50) -> tuple[int, int]:
    return (query_int("limit", default_limit, 1, MAX_LIMIT, errors),
            query_int("offset", 0, 0, 10_000_000, errors))


def query_datetime(name: str, errors: dict) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        errors[name] = "must be an ISO 8601 date or date-time, e.g. 2026-01-31T17:00:00+08:00"
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError):
        errors[name] = "is out of range"
        return None


def query_choice(name: str, choices, default, errors: dict):
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        errors[name] = f"must be one of {', '.join(choices)}"
        return default
    return raw


# ---- OpenAPI, me --------------------------------------------------------------------------
@bp.get("/openapi.json")
def openapi():
    from .openapi import document

    return jsonify(document())


@bp.get("/me")
def whoami():
    out = dict(g.user)
    out["task_counts"] = engine().task_counts(me())
    out["via_token"] = bool(g.get("via_token"))
    return jsonify(out)


# ---- definitions --------------------------------------------------------------------------
def _uploaded_files() -> dict[str, bytes]:
    """Files of a multipart upload (any field name), or ``{"files": {name: text}}`` as JSON."""
    if request.mimetype == "multipart/form-data":
        files = {}
        for storage in request.files.listvalues():
            for f in storage:
                name = (f.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
                if not name or "\x00" in name:
                    raise Invalid("every uploaded file needs a file name", {"files": "a file has no usable name"})
                files[name] = f.read()
        if not files:
            raise Invalid("no file uploaded", {"files": "upload one or more .bpmn / .dmn files"})
        return files
    if request.mimetype in XML_TYPES:  # one raw file; its name from ?name=
        raw = request.get_data()
        if not raw.strip():
            raise Invalid("the body is empty", {"files": "send the BPMN/DMN file as the body"})
        name = request.args.get("name") or ("upload.dmn" if b"DMN/20" in raw[:2000] else "upload.bpmn")
        return {name.replace("\\", "/").rsplit("/", 1)[-1] or "upload.bpmn": raw}
    body = json_body()
    value = body.get("files")
    if isinstance(value, list) and value and all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("content"), str)
            for f in value):
        value = {f["name"]: f["content"] for f in value}
    if (not isinstance(value, dict) or not value
            or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items())):
        raise Invalid("send files as {\"files\": {\"name.bpmn\": \"<xml>\"}}",
                      {"files": "an object mapping file names to file contents (text), "
                                "or a list of {\"name\", \"content\"}"})
    files = {k.replace("\\", "/").rsplit("/", 1)[-1]: v.encode("utf-8") for k, v in value.items()}
    if not all(files):
        raise Invalid("every file needs a name", {"files": "a file name ends with a slash"})
    return files


@bp.post("/deployments")
def deploy():
    require("designer")
    files = _uploaded_files()
    deployed = engine().deploy(files, actor=me())
    status = 201 if any(d.created for d in deployed) else 200
    return jsonify([d.as_dict() for d in deployed]), status


@bp.post("/deployments/check")
def deploy_check():
    require("designer")
    result = engine().check(_uploaded_files())
    return jsonify({"ok": not any(p["severity"] == "error" for p in result["problems"]), **result})


@bp.get("/definitions")
def definitions():
    key = request.args.get("key")
    if key:
        return jsonify(engine().versions(key))
    return jsonify(engine().definitions())


def _main_xml(d: dict) -> str | None:
    """The BPMN file of a definition that holds its process (for the diagram)."""
    bpmn = {name: text for name, text in (d.get("sources") or {}).items() if not name.lower().endswith(".dmn")}
    for text in bpmn.values():
        if f'id="{d["key"]}"' in text:
            return text
    return next(iter(bpmn.values()), None)


@bp.get("/definitions/<int:definition_id>")
def definition(definition_id: int):
    d = engine().definition(definition_id)
    d["bpmn_xml"] = _main_xml(d)
    return jsonify(d)


@bp.get("/definitions/<int:definition_id>/xml")
def definition_xml(definition_id: int):
    xml = _main_xml(engine().definition(definition_id))
    if xml is None:
        raise NotFound(f"definition {definition_id} has no BPMN file")
    # uploaded content: a browser opening this URL must not run anything in it (an XHTML <script>
    # inside extensionElements would run in this site's origin); scripts fetch it all the same
    response = current_app.response_class(xml, mimetype="application/xml")
    response.headers["Content-Disposition"] = f'attachment; filename="definition-{definition_id}.bpmn"'
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


# ---- instances ----------------------------------------------------------------------------
@bp.post("/instances")
def start():
    require("clerk")
    body = json_body()
    errors: dict[str, str] = {}
    key = body.get("process_key")
    if not isinstance(key, str) or not key.strip():
        errors["process_key"] = "required: the key of a deployed process"
    data = body.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors["data"] = "must be a JSON object"
    business_key = _opt_str(body, "business_key", errors, max_len=200)
    _check(errors)
    result = engine().start(key, data=data, business_key=business_key, actor=me())
    return jsonify({"id": result["instance_id"], **result, "process_key": key,
                    "business_key": business_key}), 201


@bp.get("/instances")
def instances():
    errors: dict[str, str] = {}
    limit, offset = paging(errors)
    status = query_choice("status", ("running", "completed", "error", "terminated"), None, errors)
    _check(errors)
    user = None if reads_everything() else me()
    return jsonify(engine().instances_for(user, status=status, process_key=request.args.get("process_key"),
                                          business_key=request.args.get("business_key"),
                                          limit=limit, offset=offset))


def _may_see_instance(instance_id: int) -> None:
    if reads_everything():
        return
    if not engine().may_see_instance(instance_id, me()):
        raise NotAllowed(f"{me()} may not see instance {instance_id}")


def _sensitive_fields(definition_id: int) -> dict[str, str]:
    return engine().sensitive_fields(definition_id)


@bp.get("/instances/<int:instance_id>")
def instance(instance_id: int):
    _may_see_instance(instance_id)
    out = engine().show(instance_id)
    out["masked"] = not has_role("admin")
    if out["masked"]:  # data, and the data recorded in the history, with sensitive values masked
        declared = _sensitive_fields(out["definition_id"])
        out["data"] = mask_data(out.get("data") or {}, declared)
        for entry in out["history"]:
            entry["detail"] = mask_data(entry.get("detail"), declared)
    return jsonify(out)


@bp.get("/instances/<int:instance_id>/audit")
def instance_audit(instance_id: int):
    _may_see_instance(instance_id)
    events = engine().trail(instance_id)
    if not has_role("admin"):
        declared = _sensitive_fields(engine().show(instance_id)["definition_id"])
        for e in events:
            e["detail"] = mask_data(e.get("detail"), declared)
    return jsonify(events)


# ---- tasks --------------------------------------------------------------------------------
@bp.get("/tasks")
def tasks():
    errors: dict[str, str] = {}
    limit, offset = paging(errors)
    scope = query_choice("scope", SCOPES, "all", errors)
    due_before = query_datetime("due_before", errors)
    instance_id = query_int("instance_id", 0, 1, MAX_ID, errors) or None
    _check(errors)
    return jsonify(engine().tasks(user=me(), scope=scope, process_key=request.args.get("process_key") or None,
                                  department=request.args.get("department") or None, due_before=due_before,
                                  instance_id=instance_id, limit=limit, offset=offset))


def _task(task_id: int) -> dict:
    """The task as the caller may see it: 403 for a clerk outside its candidates."""
    try:
        return engine().task(task_id, me())
    except NotAllowed:
        if not reads_everything():
            raise
    out = engine().task(task_id)
    declared = {**dict.fromkeys(out.get("sensitive") or []), **_sensitive_fields(out["definition_id"])}
    out["data"] = mask_data(out.get("data") or {}, declared)
    return out


@bp.get("/tasks/<int:task_id>")
def task(task_id: int):
    return jsonify(_task(task_id))


@bp.get("/tasks/<int:task_id>/form")
def task_form(task_id: int):
    t = _task(task_id)
    data = t.get("data") or {}
    values = {f["id"]: data.get(f["id"], f.get("default")) for f in t["form"]}
    return jsonify({"task_id": t["id"], "form_key": t.get("form_key"), "fields": t["form"],
                    "outcomes": t["outcomes"], "opinion_required": t["opinion_required"],
                    "values": values, "data": data})


@bp.post("/tasks/<int:task_id>/claim")
def claim(task_id: int):
    json_body(optional=True)
    return jsonify(engine().claim(task_id, me()))


@bp.post("/tasks/<int:task_id>/unclaim")
def unclaim(task_id: int):
    body = json_body(optional=True)
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise Invalid("invalid request: force", {"force": "must be true or false"})
    if force:
        require("admin")
    return jsonify(engine().unclaim(task_id, me(), force=force))


@bp.post("/tasks/<int:task_id>/complete")
def complete(task_id: int):
    body = json_body(optional=True)
    errors: dict[str, str] = {}
    data = body.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors["data"] = "must be a JSON object"
    decision = _opt_str(body, "decision", errors, max_len=100)
    opinion = _opt_str(body, "opinion", errors)
    _check(errors)
    return jsonify(engine().complete(task_id, me(), data, decision, opinion))


# ---- organisation, users, tokens (admin) ---------------------------------------------------
@bp.get("/departments")
def departments():
    return jsonify(engine().departments())


@bp.get("/groups")
def groups():
    return jsonify(engine().groups())


@bp.get("/users")
def users():
    require("admin")
    return jsonify(engine().users())


@bp.post("/users")
def add_user():
    require("admin")
    body = json_body()
    errors: dict[str, str] = {}
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        errors["name"] = "required: 1-100 letters, digits, _ . @ -"
    display = _opt_str(body, "display_name", errors, max_len=200) or ""
    groups_ = _str_list(body, "groups", errors)
    roles = _str_list(body, "roles", errors) if "roles" in body else ["clerk"]
    if not errors.get("roles") and set(roles) - set(ROLES):
        errors["roles"] = f"roles are {', '.join(ROLES)}"
    department = _opt_str(body, "department", errors, max_len=60)
    password = _opt_str(body, "password", errors, max_len=200)
    if password is not None and len(password) < 8:
        errors["password"] = "at least 8 characters"
    _check(errors)
    if any(u["name"] == name for u in engine().users()):
        raise Conflict(f"user '{name}' already exists")
    user = engine().add_user(name, groups_, display, roles=roles, password=password, department=department,
                             actor=me())
    return jsonify(user), 201


@bp.get("/users/<name>")
def user(name: str):
    if name != me():
        require("admin")
    return jsonify(engine().user(name))


@bp.patch("/users/<name>")
def update_user(name: str):
    require("admin")
    body = json_body()
    errors: dict[str, str] = {}
    active = body.get("active")
    if active is not None and not isinstance(active, bool):
        errors["active"] = "must be true or false"
    if active is False and name == me():
        errors["active"] = "you cannot deactivate yourself"
    password = _opt_str(body, "password", errors, max_len=200)
    if password is not None and len(password) < 8:
        errors["password"] = "at least 8 characters"
    _check(errors)
    if not any(u["name"] == name for u in engine().users()):
        raise NotFound(f"no user '{name}'")
    if active is True:
        engine().set_active(name, True, actor=me())
    if password is not None:
        engine().set_password(name, password, actor=me())
    if active is False:
        engine().set_active(name, False, actor=me())
    return jsonify(next(u for u in engine().users() if u["name"] == name))


@bp.get("/tokens")
def tokens():
    require("admin")
    return jsonify(engine().tokens())


@bp.post("/tokens")
def issue_token():
    require("admin")
    body = json_body()
    errors: dict[str, str] = {}
    user_name = body.get("user")
    if not isinstance(user_name, str) or not user_name.strip():
        errors["user"] = "required: the user the token acts as"
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["name"] = "required: what the token is for (1-200 characters)"
    _check(errors)
    return jsonify(engine().issue_token(user_name, name, actor=me())), 201


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int):
    require("admin")
    engine().revoke_token(token_id, actor=me())
    return jsonify(next(t for t in engine().tokens() if t["id"] == token_id))


# ---- audit --------------------------------------------------------------------------------
@bp.get("/audit")
def audit_events():
    require("monitor")
    errors: dict[str, str] = {}
    limit = query_int("limit", 100, 1, MAX_LIMIT, errors)
    _check(errors)
    events = engine().trail(limit=limit)
    if not has_role("admin"):  # masked as each case's own audit trail is
        declared = engine().sensitive_fields_of_instances(e.get("instance_id") for e in events)
        for e in events:
            e["detail"] = mask_data(e.get("detail"), declared.get(e.get("instance_id"), {}))
    return jsonify(events)


@bp.get("/audit/verify")
def audit_verify():
    require("monitor")
    return jsonify(engine().verify_audit().as_dict())


def query_moment(name: str, errors: dict) -> datetime | None:
    """An ISO 8601 date (00:00 Asia/Shanghai) or date-time with an offset, as aware UTC."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return parse_moment(raw, naive_is_local=False)
    except ValueError as exc:
        errors[name] = str(exc)
        return None


def query_name(name: str, errors: dict, *, max_len: int = 100) -> str | None:
    raw = request.args.get(name)
    if not raw:
        return None
    if len(raw) > max_len:
        errors[name] = f"at most {max_len} characters"
        return None
    return raw


@bp.get("/pull-log")
def pull_log():
    """The data pull log (调取日志), newest first: admins only."""
    require("admin")
    errors: dict[str, str] = {}
    # instance_id, as /tasks and /licences call it; instance, its first name, is still understood
    instance_id = query_int("instance_id", 0, 1, MAX_ID, errors) or None
    alias = query_int("instance", 0, 1, MAX_ID, errors) or None
    if alias is not None and instance_id is not None and alias != instance_id:
        errors["instance"] = "differs from instance_id; give one of them"
    instance_id = instance_id or alias
    kind = query_choice("kind", PULL_KINDS, None, errors)
    outcome = query_choice("outcome", OUTCOMES, None, errors)
    connector, actor = query_name("connector", errors), query_name("actor", errors)
    since, until = query_moment("since", errors), query_moment("until", errors)
    limit = query_int("limit", 100, 1, MAX_LIMIT, errors)
    if since is not None and until is not None and until <= since:
        errors["until"] = "must be later than since"
    _check(errors)
    return jsonify(engine().pull_log(instance_id, limit, kind=kind, connector=connector, actor=actor,
                                     since=since, until=until, outcome=outcome))


# ---- Chinese approval operations (中国式审批; docs/approval.md) -------------------------------
OPINION_MAX = 5000


def _name(body: dict, key: str, errors: dict, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        errors[key] = "required: a user name (letters, digits, _ . @ -)" if required else "must be a user name"
        return None
    return value


def _text(body: dict, key: str, errors: dict) -> str:
    return _opt_str(body, key, errors, max_len=OPINION_MAX) or ""


def _users(body: dict, errors: dict) -> list[str]:
    users = _str_list(body, "users", errors)
    if not errors.get("users") and not users:
        errors["users"] = "required: one or more user names"
    return users


@bp.post("/tasks/<int:task_id>/transfer")
def transfer_task(task_id: int):
    body = json_body()
    errors: dict[str, str] = {}
    to = _name(body, "to", errors)
    opinion = _text(body, "opinion", errors)
    _check(errors)
    return jsonify(engine().transfer(task_id, to, me(), opinion))


@bp.post("/tasks/<int:task_id>/delegate")
def delegate_task(task_id: int):
    body = json_body()
    errors: dict[str, str] = {}
    to = _name(body, "to", errors)
    opinion = _text(body, "opinion", errors)
    _check(errors)
    return jsonify(engine().delegate(task_id, to, me(), opinion))


@bp.post("/tasks/<int:task_id>/add-sign")
def add_sign(task_id: int):
    body = json_body()
    errors: dict[str, str] = {}
    users_ = _users(body, errors)
    position = body.get("position", "before")
    if position not in ("before", "after"):
        errors["position"] = "before or after"
    opinion = _text(body, "opinion", errors)
    decision = _opt_str(body, "decision", errors, max_len=100)
    data = body.get("data") or {}
    if not isinstance(data, dict):
        errors["data"] = "must be a JSON object"
    _check(errors)
    return jsonify(engine().add_sign(task_id, users_, me(), position, opinion, decision=decision, data=data))


@bp.post("/tasks/<int:task_id>/answer")
def answer_task(task_id: int):
    body = json_body(optional=True)
    errors: dict[str, str] = {}
    decision = body.get("decision")
    if decision is not None and decision not in ("approve", "reject"):
        errors["decision"] = "approve or reject"
    opinion = _text(body, "opinion", errors)
    _check(errors)
    return jsonify(engine().answer(task_id, me(), opinion, decision))


@bp.get("/tasks/<int:task_id>/signs")
def task_signs(task_id: int):
    _task(task_id)
    return jsonify(engine().signs(task_id))


@bp.post("/signs/<int:sign_id>/remove")
def remove_sign(sign_id: int):
    body = json_body(optional=True)
    errors: dict[str, str] = {}
    reason = _text(body, "reason", errors)
    _check(errors)
    return jsonify(_reason_call(lambda: engine().remove_sign(sign_id, me(), reason)))


@bp.get("/tasks/<int:task_id>/return-targets")
def return_targets(task_id: int):
    return jsonify(engine().return_targets(task_id, me()))


@bp.post("/tasks/<int:task_id>/return")
def return_task(task_id: int):
    body = json_body()
    errors: dict[str, str] = {}
    target = body.get("target_task_id")
    if not isinstance(target, int) or isinstance(target, bool) or not 1 <= target <= MAX_ID:
        errors["target_task_id"] = "required: the id of a task from return-targets"
    opinion = _text(body, "opinion", errors)
    _check(errors)
    return jsonify(engine().return_task(task_id, target, me(), opinion))


@bp.post("/tasks/<int:task_id>/return-to-applicant")
def return_to_applicant(task_id: int):
    body = json_body()
    errors: dict[str, str] = {}
    opinion = _text(body, "opinion", errors)
    fields = body.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) and 0 < len(f) <= 100 for f in fields):
        errors["fields"] = "must be a list of field ids"
    _check(errors)
    return jsonify(engine().return_to_applicant(task_id, me(), opinion, fields))


@bp.post("/instances/<int:instance_id>/supplement")
def supplement(instance_id: int):
    # the engine says who may before it judges the data
    return jsonify(engine().supplement(instance_id, json_body().get("data"), me()))


@bp.post("/tasks/<int:task_id>/withdraw")
def withdraw_task(task_id: int):
    body = json_body(optional=True)
    errors: dict[str, str] = {}
    opinion = _text(body, "opinion", errors)
    _check(errors)
    return jsonify(engine().withdraw(task_id, me(), opinion))


@bp.post("/tasks/<int:task_id>/urge")
def urge_task(task_id: int):
    body = json_body(optional=True)
    errors: dict[str, str] = {}
    note = _text(body, "note", errors)
    _check(errors)
    return jsonify(engine().urge(task_id, me(), note))


@bp.post("/tasks/<int:task_id>/cc")
def cc_task(task_id: int):
    body = json_body()
    errors: dict[str, str] = {}
    users_ = _users(body, errors)
    note = _text(body, "note", errors)
    _check(errors)
    return jsonify(engine().cc(task_id, users_, me(), note)), 201


@bp.get("/to-read")
def to_read():
    errors: dict[str, str] = {}
    limit = query_int("limit", 100, 1, MAX_LIMIT, errors)
    unread = query_choice("unread_only", ("true", "false"), "false", errors)
    _check(errors)
    return jsonify(engine().to_read(me(), unread_only=unread == "true", limit=limit))


@bp.get("/to-read/<int:cc_id>")
def to_read_task(cc_id: int):
    out = engine().cc_task(cc_id, me())
    if not has_role("admin"):
        declared = dict.fromkeys(out.get("sensitive") or [])
        if out.get("definition_id"):
            declared.update(_sensitive_fields(out["definition_id"]))
        out["data"] = mask_data(out.get("data") or {}, declared)
    return jsonify(out)


@bp.post("/to-read/<int:cc_id>/read")
def mark_read(cc_id: int):
    json_body(optional=True)
    return jsonify(engine().mark_read(cc_id, me()))


@bp.get("/instances/<int:instance_id>/forecast")
def forecast(instance_id: int):
    _may_see_instance(instance_id)
    return jsonify(engine().forecast(instance_id))


@bp.get("/instances/<int:instance_id>/opinions")
def opinions(instance_id: int):
    _may_see_instance(instance_id)
    return jsonify(engine().opinions(instance_id))


@bp.get("/instances/<int:instance_id>/cc")
def cc_receipts(instance_id: int):
    _may_see_instance(instance_id)
    return jsonify(engine().cc_receipts(instance_id))


@bp.get("/instances/<int:instance_id>/votes")
def countersign_votes(instance_id: int):
    _may_see_instance(instance_id)
    return jsonify(engine().countersign_votes(instance_id))


@bp.get("/phrases")
def phrases():
    return jsonify(engine().phrases(me()))


@bp.post("/phrases")
def add_phrase():
    body = json_body()
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text.strip()) > 500:
        raise Invalid("invalid request: text", {"text": "required: 1 to 500 characters"})
    return jsonify(engine().add_phrase(me(), text)), 201


@bp.delete("/phrases/<int:phrase_id>")
def remove_phrase(phrase_id: int):
    engine().remove_phrase(phrase_id, me())
    return "", 204


def _reason_call(fn):
    """Run an engine call whose text the request sends as ``reason``: a missing or too long text is
    named by that field, as the client sent it (the engine calls every such text the opinion)."""
    try:
        return fn()
    except Invalid as exc:
        if "opinion" in exc.fields:
            exc.fields["reason"] = exc.fields.pop("opinion")
        raise


def _reason(required: bool) -> str:
    body = json_body(optional=not required)
    errors: dict[str, str] = {}
    reason = _text(body, "reason", errors)
    _check(errors)
    return reason


@bp.post("/instances/<int:instance_id>/move")
def move_instance(instance_id: int):
    body = json_body()
    errors: dict[str, str] = {}
    to = body.get("to")
    if not isinstance(to, str) or not to.strip() or len(to) > 200:
        errors["to"] = "required: the id of a user task of the process"
    from_task = body.get("from_task_id")
    if from_task is not None and (not isinstance(from_task, int) or isinstance(from_task, bool)
                                  or not 1 <= from_task <= MAX_ID):
        errors["from_task_id"] = "must be the id of an open task"
    reason = _text(body, "reason", errors)
    _check(errors)
    return jsonify(_reason_call(lambda: engine().move(instance_id, to, me(), reason, from_task_id=from_task)))


@bp.post("/instances/<int:instance_id>/suspend")
def suspend_instance(instance_id: int):
    reason = _reason(True)
    return jsonify(_reason_call(lambda: engine().suspend(instance_id, me(), reason)))


@bp.post("/instances/<int:instance_id>/resume")
def resume_instance(instance_id: int):
    reason = _reason(False)
    return jsonify(_reason_call(lambda: engine().resume(instance_id, me(), reason)))


@bp.post("/instances/<int:instance_id>/terminate")
def terminate_instance(instance_id: int):
    reason = _reason(True)
    return jsonify(_reason_call(lambda: engine().terminate(instance_id, me(), reason)))


# ---- electronic licences (docs/licences.md) -----------------------------------------------
@bp.get("/licences")
def licences():
    errors: dict[str, str] = {}
    instance_id = query_int("instance_id", 0, 1, MAX_ID, errors) or None
    limit = query_int("limit", 200, 1, MAX_LIMIT, errors)
    _check(errors)
    if instance_id is not None:
        _may_see_instance(instance_id)
    user = None if reads_everything() else me()
    return jsonify(engine().licences(instance_id=instance_id, holder_code=request.args.get("holder_code") or None,
                                     user=user, limit=limit))


@bp.get("/licences/<licence_no>")
def licence(licence_no: str):
    lic = visible_licence(licence_no)
    return jsonify({**lic, "verify_url": verify_url(lic)})


@bp.get("/licences/<licence_no>/pdf")
def licence_pdf(licence_no: str):
    lic = visible_licence(licence_no)
    response = current_app.response_class(render_pdf(lic, verify_url(lic)), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{lic["licence_no"]}.pdf"'
    return response


@bp.get("/verify/<licence_no>")
def verify_licence(licence_no: str):
    return jsonify(engine().verify_licence(licence_no, request.args.get("c")))
