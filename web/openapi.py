"""The OpenAPI 3 document of the REST API (``GET /api/v1/openapi.json``), built from Python dicts.

Keep it in step with ``web/api.py``: tests/test_api_fuzz.py runs schemathesis against it and
checks that every response conforms (status codes, content types, bodies).
"""

from __future__ import annotations

from copy import deepcopy

VERSION = "1.0.0"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required=(), *, additional: bool | dict = True, description: str | None = None) -> dict:
    out = {"type": "object", "properties": properties, "additionalProperties": additional}
    if required:
        out["required"] = list(required)
    if description:
        out["description"] = description
    return out


def _list(item: dict) -> dict:
    return {"type": "array", "items": item}


S = {"type": "string"}
NS = {"type": "string", "nullable": True}
I = {"type": "integer"}  # noqa: E741
NI = {"type": "integer", "nullable": True}
B = {"type": "boolean"}
DT = {"type": "string", "format": "date-time"}
NDT = {"type": "string", "format": "date-time", "nullable": True}
ANY_OBJ = {"type": "object", "additionalProperties": True}
STRS = _list(S)
ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1, "format": "int64"}

SCHEMAS: dict[str, dict] = {
    "Error": _obj({
        "error": {"type": "string", "description": "stable machine-readable code, e.g. validation, "
                                                   "unauthorized, not_allowed, not_found, conflict"},
        "message": {"type": "string", "description": "what went wrong, for people"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "validation errors: field id → message"},
        "problems": _list(_ref("Problem")),
    }, ["error", "message"]),
    "Problem": _obj({
        "severity": S, "file": NS, "line": NI, "element_id": NS, "message": S,
    }, ["message"], description="one located problem in an uploaded BPMN/DMN file"),
    "User": _obj({
        "name": S, "display_name": S, "groups": STRS,
        "roles": _list({"type": "string", "enum": ["designer", "clerk", "monitor", "admin"]}),
        "active": B, "department": NS, "department_name": NS,
    }, ["name", "display_name", "groups", "roles", "active", "department"]),
    "TaskCounts": _obj({"mine": I, "unclaimed": I, "overdue": I}, ["mine", "unclaimed", "overdue"]),
    "Me": {"allOf": [_ref("User"), _obj({"task_counts": _ref("TaskCounts"), "via_token": B},
                                        ["task_counts", "via_token"])]},
    "NewUser": _obj({
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,100}$"},
        "display_name": {"type": "string", "maxLength": 200},
        "groups": _list({"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,100}$"}),
        "roles": _list({"type": "string", "enum": ["designer", "clerk", "monitor", "admin"]}),
        "department": {"type": "string", "nullable": True, "description": "department code"},
        "password": {"type": "string", "minLength": 8, "maxLength": 200, "nullable": True},
    }, ["name"], description="roles default to [clerk]"),
    "UserUpdate": _obj({
        "active": B, "password": {"type": "string", "minLength": 8, "maxLength": 200},
    }),
    "Department": _obj({"id": I, "code": S, "name": S, "level": I, "level_name": S, "parent": NS},
                       ["id", "code", "name", "level", "parent"]),
    "Group": _obj({"name": S, "display_name": S, "department": NS, "members": I},
                  ["name", "department", "members"]),
    "TokenRequest": _obj({
        "user": {"type": "string", "minLength": 1, "description": "the user the token acts as"},
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "what it is for"},
    }, ["user", "name"]) | {"example": {"user": "window_clerk", "name": "county e-government portal"}},
    "IssuedToken": _obj({"id": I, "name": S, "user": S,
                         "token": {"type": "string", "description": "the secret; shown once"}},
                        ["id", "name", "user", "token"]),
    "Token": _obj({"id": I, "name": S, "user": S, "created_by": S, "created_at": NDT, "revoked": B},
                  ["id", "name", "user", "revoked"]),
    "Definition": _obj({"id": I, "key": S, "version": I, "name": S, "deployed_at": NDT, "tasks": I,
                        "deployed_by": S}, ["id", "key", "version"]),
    "DefinitionDetail": _obj({
        "id": I, "key": S, "version": I, "name": S, "deployed_at": NDT, "deployed_by": S, "checksum": S,
        "manifest": ANY_OBJ,
        "sources": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "file name → file text as uploaded"},
        "bpmn_xml": {"type": "string", "nullable": True,
                     "description": "the BPMN file holding the process, for a diagram viewer"},
    }, ["id", "key", "version", "sources", "bpmn_xml"]),
    "JsonFiles": _obj({
        "files": {"oneOf": [
            {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"},
             "description": "file name (.bpmn / .dmn) → file text"},
            {"type": "array", "minItems": 1, "items": _obj({"name": S, "content": S}, ["name", "content"])},
        ]},
    }, ["files"]),
    "Deployed": _obj({"key": S, "version": I, "id": I, "created": B}, ["key", "version", "id", "created"]),
    "CheckResult": _obj({"ok": B, "keys": STRS, "problems": _list(_ref("Problem"))}, ["ok", "keys", "problems"]),
    "StartRequest": _obj({
        "process_key": {"type": "string", "minLength": 1},
        "data": ANY_OBJ,
        "business_key": {"type": "string", "maxLength": 200, "nullable": True},
    }, ["process_key"]) | {"example": {"process_key": "api_form", "data": {"applicant": "张三"},
                                       "business_key": "YYZ-2026-0001"}},
    "Started": _obj({"id": I, "instance_id": I, "status": S, "process_key": S, "business_key": NS},
                    ["id", "instance_id", "status"]),
    "InstanceSummary": _obj({
        "id": I, "process_key": S, "business_key": NS,
        "status": {"type": "string", "enum": ["running", "completed", "error", "terminated", "suspended"]},
        "definition_id": I, "started_by": S, "started_at": NDT, "ended_at": NDT,
    }, ["id", "process_key", "status"]),
    "HistoryEntry": _obj({"at": NDT, "actor": S, "action": S, "task": NS,
                          "detail": {"nullable": True}}, ["at", "actor", "action"]),
    "Incident": _obj({"id": I, "kind": S, "element_id": NS, "message": S, "created_at": NDT, "resolved": B},
                     ["id", "kind", "message", "resolved"]),
    "Instance": _obj({
        "id": I, "process_key": S, "business_key": NS, "status": S, "version": I, "definition_id": I,
        "definition_version": I, "data": {"type": "object", "nullable": True, "additionalProperties": True},
        "masked": {"type": "boolean", "description": "sensitive values in data are masked"},
        "started_by": S, "started_at": NDT, "ended_at": NDT,
        "open_tasks": _list(_ref("Task")), "history": _list(_ref("HistoryEntry")),
        "incidents": _list(_ref("Incident")),
    }, ["id", "process_key", "status", "definition_id", "data", "open_tasks", "history", "incidents"]),
    "AuditEvent": _obj({"id": I, "at": NDT, "actor": S, "action": S, "instance_id": NI, "task": NS,
                        "detail": {"nullable": True}, "hash": S}, ["id", "at", "actor", "action", "hash"]),
    "Verification": _obj({"ok": B, "events": I, "first_bad_id": NI, "reason": NS},
                         ["ok", "events", "first_bad_id", "reason"]),
    "PullLogEntry": _obj({
        "id": I, "at": DT, "kind": {"type": "string", "enum": ["pull", "service", "unmask"]},
        "actor": {"type": "string", "description": "who pulled: the engine on behalf of the task's groups, "
                                                   "or the user who unmasked"},
        "instance_id": NI, "task_id": NI, "task": {**NS, "description": "the BPMN id of the step"},
        "connector": S, "operation": S, "fields": {**STRS, "description": "the fields kept (never their values)"},
        "purpose": {"type": "string", "description": "用途"}, "basis": {"type": "string", "description": "依据"},
        "source": S, "request_id": NS, "duration_ms": NI,
        "outcome": {"type": "string", "enum": ["ok", "error"]}, "error": NS,
        "result_hash": {**NS, "description": "SHA-256 of the kept result"},
    }, ["id", "at", "kind", "actor", "instance_id", "connector", "operation", "fields", "outcome"],
        description="one data pull, service call or unmasking (调取日志); values are never stored"),
    "Task": _obj({
        "id": I, "instance_id": I, "bpmn_id": S, "name": S, "lane": NS, "candidate_groups": STRS,
        "candidate_users": STRS, "assignee": NS,
        "status": {"type": "string", "enum": ["open", "completed", "cancelled", "supplement", "suspended",
                                              "waiting"]},
        "due_at": NDT, "process_key": S, "form_key": NS, "created_at": DT, "completed_by": NS,
    }, ["id", "instance_id", "bpmn_id", "name", "candidate_groups", "assignee", "status", "due_at"]),
    "FormField": _obj({
        "id": S, "label": S,
        "type": {"type": "string", "description": "string, long, double, boolean, date, enum"},
        "required": B, "default": {"nullable": True},
        "options": _list(_obj({"id": S, "name": S})),
        "min": {"nullable": True}, "max": {"nullable": True}, "minlength": {"nullable": True},
        "maxlength": {"nullable": True}, "pattern": {"nullable": True}, "readonly": {"nullable": True},
        "sensitive": {"nullable": True},
    }, ["id", "label", "type", "required"]),
    "Outcome": _obj({"id": S, "name": S}, ["id", "name"]),
    "TaskDetail": {"allOf": [_ref("Task"), _obj({
        "form": _list(_ref("FormField")), "outcomes": _list(_ref("Outcome")), "opinion_required": B,
        "decision": NS, "opinion": NS, "completed_at": NDT, "definition_id": I,
        "instance": _obj({"id": I, "status": S, "business_key": NS, "started_by": S, "started_at": NDT},
                         ["id", "status"]),
        "data": {"type": "object", "additionalProperties": True},
        "sensitive": STRS,
    }, ["form", "outcomes", "opinion_required", "instance", "data"])]},
    "TaskForm": _obj({
        "task_id": I, "form_key": NS, "fields": _list(_ref("FormField")), "outcomes": _list(_ref("Outcome")),
        "opinion_required": B, "values": ANY_OBJ, "data": ANY_OBJ,
    }, ["task_id", "fields", "outcomes", "opinion_required", "values", "data"]),
    "UnclaimRequest": _obj({"force": {"type": "boolean", "description": "admin only: take it from its holder"}}),
    "CompleteRequest": _obj({
        "data": {"type": "object", "additionalProperties": True, "description": "form values"},
        "decision": {"type": "string", "nullable": True, "maxLength": 100,
                     "description": "one of the task's outcomes"},
        "opinion": {"type": "string", "nullable": True, "description": "审批意见"},
    }) | {"example": {"data": {"amount": 30}, "decision": "approve", "opinion": "材料齐全，同意"}},
    "Completed": _obj({"instance_id": I, "status": S}, ["instance_id", "status"]),
}

ERRORS = {
    400: "Validation failed (`fields` names each bad field; `problems` locates errors in uploads), "
         "malformed JSON, or a missing CSRF token on a cookie-authenticated write",
    401: "No credentials, or an unknown/revoked bearer token",
    403: "The caller may not do this (role, or not a candidate of the task)",
    404: "No such resource",
    405: "Method not allowed",
    409: "Conflict: e.g. the task was already completed by someone else",
    413: "Request body too large",
    415: "The body must be application/json",
    422: "A process script failed (an incident was recorded)",
    503: "A connector failed",
}


def _error(status: int) -> dict:
    return {"description": ERRORS[status],
            "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(schema: dict | None, description: str = "OK") -> dict:
    out: dict = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, tag: str, responses: dict, *, errors=(), params=(), body=None, public=False,
        op_id: str) -> dict:
    codes = ([] if public else [401]) + list(errors)
    if body is not None:
        codes += [400, 413, 415]
    out = {"summary": summary, "tags": [tag], "operationId": op_id, "responses": dict(responses)}
    for status in sorted(set(codes)):
        out["responses"][str(status)] = _error(status)
    if params:
        out["parameters"] = list(params)
    if body is not None:
        out["requestBody"] = body
    if public:
        out["security"] = []
    return out


def _path_id(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"id of the {what}", "schema": ID,
            "example": 1}


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


LIMIT = _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size")
OFFSET = _q("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0}, "rows to skip")
TASK_ID = _path_id("task_id", "task")
INSTANCE_ID = _path_id("instance_id", "instance")


UPLOAD = {"required": True, "content": {
    "multipart/form-data": {"schema": _obj({"files": _list({"type": "string", "format": "binary"})}, ["files"])},
    "application/json": {"schema": _ref("JsonFiles")},
    "application/xml": {"schema": {"type": "string", "description": "one BPMN/DMN file; its name from ?name="}},
}}
UPLOAD_NAME = _q("name", S, "file name of a raw XML body (application/xml)")


def _paths() -> dict:
    tasks = _list(_ref("Task"))
    return {
        "/openapi.json": {"get": _op("This document", "meta", {"200": _ok(ANY_OBJ)}, public=True,
                                     op_id="openapi")},
        "/me": {"get": _op("The caller: roles, groups, department and task counts", "meta",
                           {"200": _ok(_ref("Me"))}, op_id="me")},
        "/deployments": {"post": _op(
            "Deploy BPMN/DMN files (designer). 201 when a new version was created, 200 when every file "
            "was identical to a deployed version; 400 with located `problems` when a file is rejected",
            "definitions",
            {"201": _ok(_list(_ref("Deployed")), "Deployed"), "200": _ok(_list(_ref("Deployed")), "Unchanged")},
            errors=[403], op_id="deploy",
            body=UPLOAD, params=[UPLOAD_NAME])},
        "/deployments/check": {"post": _op(
            "Validate BPMN/DMN files without deploying them (designer)", "definitions",
            {"200": _ok(_ref("CheckResult"))}, errors=[403], op_id="checkDeployment",
            body=UPLOAD, params=[UPLOAD_NAME])},
        "/definitions": {"get": _op(
            "Deployed process definitions (newest version of each key), or every version of `key`",
            "definitions", {"200": _ok(_list(_ref("Definition")))},
            params=[_q("key", S, "list every version of this process key")], op_id="listDefinitions")},
        "/definitions/{definition_id}": {"get": _op(
            "One definition version with its manifest and source files (BPMN XML for the diagram)",
            "definitions", {"200": _ok(_ref("DefinitionDetail"))}, errors=[404],
            params=[_path_id("definition_id", "definition")], op_id="getDefinition")},
        "/definitions/{definition_id}/xml": {"get": _op(
            "The BPMN XML of a definition (for bpmn-js)", "definitions",
            {"200": {"description": "BPMN 2.0 XML", "content": {"application/xml": {"schema": S}}}},
            errors=[404], params=[_path_id("definition_id", "definition")], op_id="getDefinitionXml")},
        "/instances": {
            "post": _op("Start an instance of the newest version of `process_key` (clerk)", "instances",
                        {"201": _ok(_ref("Started"), "Started")}, errors=[403, 404, 422, 503],
                        body=_body(_ref("StartRequest")), op_id="startInstance"),
            "get": _op("Instances, newest first: all for monitors and admins; otherwise those the caller "
                       "started or has a task in", "instances", {"200": _ok(_list(_ref("InstanceSummary")))},
                       errors=[400],
                       params=[_q("status", {"type": "string",
                                             "enum": ["running", "completed", "error", "terminated"]}, "status"),
                               _q("process_key", S, "process key"), _q("business_key", S, "business key"),
                               LIMIT, OFFSET], op_id="listInstances"),
        },
        "/instances/{instance_id}": {"get": _op(
            "An instance: status, data (sensitive values masked except for admins), open tasks, history, "
            "incidents", "instances", {"200": _ok(_ref("Instance"))}, errors=[403, 404],
            params=[INSTANCE_ID], op_id="getInstance")},
        "/instances/{instance_id}/audit": {"get": _op(
            "The instance's audit trail (hash-chained events, oldest first)", "instances",
            {"200": _ok(_list(_ref("AuditEvent")))}, errors=[403, 404], params=[INSTANCE_ID],
            op_id="getInstanceAudit")},
        "/tasks": {"get": _op(
            "Open tasks for the caller: tasks they hold and their groups' unclaimed tasks, by due time",
            "tasks", {"200": _ok(tasks)}, errors=[400, 404],
            params=[_q("scope", {"type": "string", "enum": ["all", "mine", "unclaimed"], "default": "all"},
                       "mine: tasks I hold; unclaimed: my groups' unclaimed tasks; all: both"),
                    _q("process_key", S, "only this process"),
                    _q("department", S, "only tasks of groups in this department (code) and below"),
                    _q("due_before", DT, "only tasks due at or before this time"),
                    _q("instance_id", ID, "only tasks of this instance"), LIMIT, OFFSET],
            op_id="listTasks")},
        "/tasks/{task_id}": {"get": _op(
            "A task with its form, outcomes and the instance data (403 unless the caller may act on it, "
            "completed it, or is a monitor/admin)", "tasks", {"200": _ok(_ref("TaskDetail"))},
            errors=[403, 404], params=[TASK_ID], op_id="getTask")},
        "/tasks/{task_id}/form": {"get": _op(
            "The task's form fields, outcomes and current values", "tasks", {"200": _ok(_ref("TaskForm"))},
            errors=[403, 404], params=[TASK_ID], op_id="getTaskForm")},
        "/tasks/{task_id}/claim": {"post": _op(
            "Claim a task of one of the caller's groups", "tasks", {"200": _ok(_ref("Task"))},
            errors=[403, 404, 409], params=[TASK_ID], body=_body(ANY_OBJ, required=False), op_id="claimTask")},
        "/tasks/{task_id}/unclaim": {"post": _op(
            "Give a claimed task back to its candidates (`force`: an admin takes it from its holder)",
            "tasks", {"200": _ok(_ref("Task"))}, errors=[403, 404, 409], params=[TASK_ID],
            body=_body(_ref("UnclaimRequest"), required=False), op_id="unclaimTask")},
        "/tasks/{task_id}/complete": {"post": _op(
            "Complete a task with form data, a decision and an opinion. 400 names each bad field; 409 when "
            "someone else completed it first (the message says who)", "tasks", {"200": _ok(_ref("Completed"))},
            errors=[403, 404, 409, 422, 503], params=[TASK_ID], body=_body(_ref("CompleteRequest"), required=False),
            op_id="completeTask")},
        "/departments": {"get": _op("The org tree (省/市/区县/街镇/村社区), flat", "organisation",
                                    {"200": _ok(_list(_ref("Department")))}, op_id="listDepartments")},
        "/groups": {"get": _op("Groups with their department and member count", "organisation",
                               {"200": _ok(_list(_ref("Group")))}, op_id="listGroups")},
        "/users": {
            "get": _op("Users (admin)", "admin", {"200": _ok(_list(_ref("User")))}, errors=[403],
                       op_id="listUsers"),
            "post": _op("Add a user (admin); 409 if the name is taken", "admin",
                        {"201": _ok(_ref("User"), "Created")}, errors=[403, 404, 409],
                        body=_body(_ref("NewUser")), op_id="addUser"),
        },
        "/users/{name}": {
            "get": _op("One user (admin, or the user themself)", "admin", {"200": _ok(_ref("User"))},
                       errors=[403, 404], params=[{"name": "name", "in": "path", "required": True, "schema": S}],
                       op_id="getUser"),
            "patch": _op("Activate/deactivate a user or set their password (admin)", "admin",
                         {"200": _ok(_ref("User"))}, errors=[403, 404],
                         params=[{"name": "name", "in": "path", "required": True, "schema": S}],
                         body=_body(_ref("UserUpdate")), op_id="updateUser"),
        },
        "/tokens": {
            "get": _op("API tokens (admin); secrets are never shown again", "admin",
                       {"200": _ok(_list(_ref("Token")))}, errors=[403], op_id="listTokens"),
            "post": _op("Issue a bearer token for a user (admin); the secret is in the answer, once", "admin",
                        {"201": _ok(_ref("IssuedToken"), "Issued")}, errors=[403, 404],
                        body=_body(_ref("TokenRequest")), op_id="issueToken"),
        },
        "/tokens/{token_id}": {"delete": _op(
            "Revoke a token (admin)", "admin", {"200": _ok(_ref("Token"))}, errors=[403, 404],
            params=[_path_id("token_id", "token")], op_id="revokeToken")},
        "/audit": {"get": _op("The newest audit events (monitor, admin)", "audit",
                              {"200": _ok(_list(_ref("AuditEvent")))}, errors=[400, 403],
                              params=[_q("limit", {"type": "integer", "minimum": 1, "maximum": 500,
                                                   "default": 100}, "how many")], op_id="listAudit")},
        "/audit/verify": {"get": _op("Verify the audit hash chain (monitor, admin)", "audit",
                                     {"200": _ok(_ref("Verification"))}, errors=[403], op_id="verifyAudit")},
        "/pull-log": {"get": _op(
            "The data pull log (调取日志: pulls, service calls, unmaskings), newest first (admin). 400 names "
            "each bad filter", "audit", {"200": _ok(_list(_ref("PullLogEntry")))}, errors=[400, 403],
            params=[_q("instance_id", ID, "only this case"),
                    {**_q("instance", ID, "the same as instance_id (its earlier name)"), "deprecated": True},
                    _q("kind", {"type": "string", "enum": ["pull", "service", "unmask"]}, "only this kind"),
                    _q("connector", {"type": "string", "maxLength": 100}, "only this connector"),
                    _q("actor", {"type": "string", "maxLength": 100}, "only entries by this actor"),
                    {**_q("since", S, "from this moment on (inclusive): an ISO 8601 date-time with an offset, "
                                      "or a date (00:00 Asia/Shanghai)"), "example": "2026-01-01T00:00:00+08:00"},
                    {**_q("until", S, "before this moment (exclusive): an ISO 8601 date-time with an offset, "
                                      "or a date (00:00 Asia/Shanghai)"), "example": "2026-02-01"},
                    _q("outcome", {"type": "string", "enum": ["ok", "error"]}, "only this outcome"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "how many")],
            op_id="listPullLog")},
    }


# ---- Chinese approval operations (中国式审批; docs/approval.md, web/api.py) ----------------------
USER_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,100}$"}
TEXT = {"type": "string", "maxLength": 5000}
SIGN_STATUS = {"type": "string", "enum": ["pending", "active", "done", "removed"]}
SCHEMAS.update({
    "TransferRequest": _obj({"to": USER_NAME, "opinion": TEXT}, ["to"]) | {
        "example": {"to": "approver", "opinion": "请李审批办理"}},
    "AddSignRequest": _obj({
        "users": {"type": "array", "minItems": 1, "items": USER_NAME,
                  "description": "the added signers, answering in this order"},
        "position": {"type": "string", "enum": ["before", "after"], "default": "before",
                     "description": "before: they answer first, then the task comes back; after: the caller "
                                    "decides now and the step completes when the last approves"},
        "opinion": TEXT,
        "decision": {"type": "string", "nullable": True, "maxLength": 100,
                     "description": "after: the caller's decision (one of the task's outcomes)"},
        "data": {"type": "object", "additionalProperties": True, "description": "after: the caller's form values"},
    }, ["users"]) | {"example": {"users": ["leader"], "position": "before", "opinion": "请领导把关"}},
    "Sign": _obj({"id": I, "task_id": I, "user": S,
                  "kind": {"type": "string", "enum": ["before", "after", "delegate"]}, "position": I,
                  "status": SIGN_STATUS, "owner": S, "added_by": S, "added_at": NDT, "decision": NS,
                  "opinion": NS, "decided_at": NDT},
                 ["id", "task_id", "user", "kind", "status", "owner", "added_by"],
                 description="an added signer (加签) or a delegation (委派)"),
    "SignResult": _obj({"task_id": I, "owner": S, "assignee": NS, "signs": _list(_ref("Sign"))},
                       ["task_id", "owner", "assignee", "signs"]),
    "AnswerRequest": _obj({"decision": {"type": "string", "nullable": True, "enum": ["approve", "reject", None],
                                        "description": "an added signer's decision (a delegate gives an opinion)"},
                           "opinion": TEXT}) | {"example": {"decision": "approve", "opinion": "同意"}},
    "Answered": _obj({"task_id": I, "assignee": NS, "owner": NS, "completed": B},
                     ["task_id", "assignee", "owner", "completed"]),
    "RemoveSignRequest": _obj({"reason": TEXT}),
    "SignRemoved": _obj({"task_id": I, "assignee": NS, "owner": NS, "sign": _ref("Sign")},
                        ["task_id", "assignee", "sign"]),
    "ReturnTarget": _obj({"task_id": I, "bpmn_id": S, "name": S, "completed_by": NS, "completed_at": NDT},
                         ["task_id", "bpmn_id", "name"], description="an earlier completed step on the path"),
    "ReturnRequest": _obj({"target_task_id": ID, "opinion": {"type": "string", "minLength": 1, "maxLength": 5000}},
                          ["target_task_id", "opinion"]) | {
        "example": {"target_task_id": 1, "opinion": "材料不全，请重新受理"}},
    "Returned": _obj({"instance_id": I, "task_id": NI, "to": S, "assignee": NS}, ["instance_id", "task_id", "to"]),
    "ReturnToApplicantRequest": _obj({
        "opinion": {"type": "string", "minLength": 1, "maxLength": 5000, "description": "what to supplement"},
        "fields": _list({"type": "string", "minLength": 1, "maxLength": 100})}, ["opinion"]) | {
        "example": {"opinion": "请补充营业执照复印件", "fields": ["licence_copy"]}},
    "WaitingForSupplement": _obj({"instance_id": I, "task_id": I, "status": S, "fields": STRS},
                                 ["instance_id", "task_id", "status"]),
    "SupplementRequest": _obj({"data": {"type": "object", "minProperties": 1, "additionalProperties": True,
                                        "description": "the supplemented fields"}}, ["data"]) | {
        "example": {"data": {"licence_copy": "已补交"}}},
    "Supplemented": _obj({"instance_id": I, "task_id": I, "status": S}, ["instance_id", "task_id", "status"]),
    "OpinionRequest": _obj({"opinion": TEXT}),
    "Withdrawn": _obj({"instance_id": I, "task_id": NI, "cancelled": _list(I)},
                      ["instance_id", "task_id", "cancelled"]),
    "UrgeRequest": _obj({"note": TEXT}) | {"example": {"note": "申请人来电询问，请尽快办理"}},
    "Urged": _obj({"task_id": I, "notified": STRS, "at": NDT}, ["task_id", "notified"]),
    "CcRequest": _obj({"users": {"type": "array", "minItems": 1, "items": USER_NAME}, "note": TEXT}, ["users"]) | {
        "example": {"users": ["leader"], "note": "请知悉"}},
    "CarbonCopy": _obj({"id": I, "instance_id": I, "task_id": NI, "user": S, "sent_by": S, "note": NS,
                        "sent_at": NDT, "read_at": NDT, "read": B, "task_name": NS, "process_key": NS},
                       ["id", "instance_id", "user", "sent_by", "read"], description="抄送: a read-only copy"),
    "ReadOnlyTask": {"allOf": [_ref("TaskDetail"), _obj({"read_only": B}, ["read_only"])]},
    "Opinion": _obj({"id": I, "instance_id": I, "task_id": NI, "bpmn_id": NS, "actor": S,
                     "kind": {"type": "string", "description": "approve, reject, complete, transfer, delegate, "
                                                           "add_sign, answer, sign, remove_sign, return, "
                                                           "return_applicant, supplement, withdraw, urge, cc, "
                                                           "move, suspend, resume, terminate, …"},
                     "decision": NS, "text": NS, "target": NS, "at": NDT},
                    ["id", "instance_id", "actor", "kind"], description="a typed opinion (审批意见) or action"),
    "Phrase": _obj({"id": I, "text": S}, ["id", "text"], description="a common phrase (常用语)"),
    "PhraseRequest": _obj({"text": {"type": "string", "minLength": 1, "maxLength": 500}}, ["text"]) | {
        "example": {"text": "材料齐全，同意"}},
    "ForecastStep": _obj({"bpmn_id": S, "name": NS, "groups": STRS, "users": STRS, "assignee": NS,
                          "resolved_users": STRS,
                          "certain": {"type": "boolean", "description": "false after an undecided gateway"},
                          "countersign": NS}, ["bpmn_id", "groups", "users", "resolved_users", "certain"]),
    "Forecast": _obj({
        "instance_id": I, "status": S, "open": _list(_obj({"bpmn_id": S, "name": NS}, ["bpmn_id"])),
        "ahead": _list(_ref("ForecastStep")),
        "choices": _list(_obj({"gateway": S, "name": NS, "options": _list(ANY_OBJ)}, ["gateway", "options"])),
    }, ["instance_id", "status", "open", "ahead", "choices"], description="流程预测: the steps still ahead"),
    "Vote": _obj({"task_id": I, "bpmn_id": S, "approver": NS, "status": S, "decision": NS, "opinion": NS,
                  "completed_at": NDT}, ["task_id", "bpmn_id", "status"]),
    "ReasonRequest": _obj({"reason": TEXT}) | {"example": {"reason": "申请人撤回申请"}},
    "RequiredReasonRequest": _obj({"reason": {"type": "string", "minLength": 1, "maxLength": 5000}}, ["reason"]) | {
        "example": {"reason": "等待上级批复"}},
    "MoveRequest": _obj({"to": {"type": "string", "minLength": 1, "maxLength": 200,
                                "description": "the id of a user task of the process"},
                         "from_task_id": {**ID, "nullable": True,
                                          "description": "the open task to move from (when several are open)"},
                         "reason": {"type": "string", "minLength": 1, "maxLength": 5000}}, ["to", "reason"]) | {
        "example": {"to": "accept", "reason": "受理信息有误，调回受理"}},
    "Moved": _obj({"instance_id": I, "task_id": NI, "to": S}, ["instance_id", "task_id", "to"]),
    "InstanceState": _obj({"instance_id": I, "status": S}, ["instance_id", "status"]),
})

WRITE_ERRORS = [403, 404, 409, 422, 503]
SIGN_ID = _path_id("sign_id", "added signer or delegation")
CC_ID = _path_id("cc_id", "copy (抄送)")


def _approval_paths() -> dict:
    def write(summary, response, body, op_id, *, params=(TASK_ID,), required=True, tag="approval"):
        return {"post": _op(summary, tag, {"200": _ok(response)}, errors=WRITE_ERRORS, params=list(params),
                            body=_body(body, required=required), op_id=op_id)}

    return {
        "/tasks/{task_id}/transfer": write(
            "转办: hand the task to another user, who then owns it (holder or admin)",
            _ref("Task"), _ref("TransferRequest"), "transferTask"),
        "/tasks/{task_id}/delegate": write(
            "委派: the delegate answers with an opinion, then the task comes back to the caller, who decides",
            _ref("SignResult"), _ref("TransferRequest"), "delegateTask"),
        "/tasks/{task_id}/add-sign": write(
            "加签: add signers before (they answer first) or after the caller (the caller decides now)",
            _ref("SignResult"), _ref("AddSignRequest"), "addSigners"),
        "/tasks/{task_id}/answer": write(
            "The answer of the active delegate or added signer", _ref("Answered"), _ref("AnswerRequest"),
            "answerTask", required=False),
        "/tasks/{task_id}/signs": {"get": _op(
            "The added signers and delegations of a task, in order", "approval",
            {"200": _ok(_list(_ref("Sign")))}, errors=[403, 404], params=[TASK_ID], op_id="listSigns")},
        "/signs/{sign_id}/remove": write(
            "减签: remove an added signer (or take back a delegation) who has not answered (who added it, or admin)",
            _ref("SignRemoved"), _ref("RemoveSignRequest"), "removeSigner", params=(SIGN_ID,), required=False),
        "/tasks/{task_id}/return-targets": {"get": _op(
            "The earlier completed steps on the task's path it can be returned to, nearest first (holder, admin)",
            "approval", {"200": _ok(_list(_ref("ReturnTarget")))}, errors=[403, 404], params=[TASK_ID],
            op_id="listReturnTargets")},
        "/tasks/{task_id}/return": write(
            "退回: send the case back to an earlier step (from return-targets); an opinion is required",
            _ref("Returned"), _ref("ReturnRequest"), "returnTask"),
        "/tasks/{task_id}/return-to-applicant": write(
            "退回补正: the task waits for the applicant's supplement and the clocks stop; an opinion is required",
            _ref("WaitingForSupplement"), _ref("ReturnToApplicantRequest"), "returnToApplicant"),
        "/instances/{instance_id}/supplement": write(
            "补正: the applicant's supplement (the applicant who started the instance, or admin); the waiting "
            "task opens again", _ref("Supplemented"), _ref("SupplementRequest"), "supplementInstance",
            params=(INSTANCE_ID,)),
        "/tasks/{task_id}/withdraw": write(
            "撤回: whoever completed this task takes it back while the next step has not acted",
            _ref("Withdrawn"), _ref("OpinionRequest"), "withdrawTask", required=False),
        "/tasks/{task_id}/urge": write(
            "催办: remind whoever holds the task (at most once an hour; the applicant, anyone who did a step of "
            "the case, leaders, admins)", _ref("Urged"), _ref("UrgeRequest"), "urgeTask", required=False),
        "/tasks/{task_id}/cc": {"post": _op(
            "抄送: read-only copies of the task in the users' to-read lists", "approval",
            {"201": _ok(_list(_ref("CarbonCopy")), "Copied")}, errors=WRITE_ERRORS, params=[TASK_ID],
            body=_body(_ref("CcRequest")), op_id="ccTask")},
        "/to-read": {"get": _op(
            "The caller's to-read list (待阅: copies sent to them), newest first", "approval",
            {"200": _ok(_list(_ref("CarbonCopy")))}, errors=[400],
            params=[_q("unread_only", {"type": "boolean", "default": False}, "only copies not read yet"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "how many")],
            op_id="listToRead")},
        "/to-read/{cc_id}": {"get": _op(
            "The copied task, read-only (its addressee only)", "approval", {"200": _ok(_ref("ReadOnlyTask"))},
            errors=[404], params=[CC_ID], op_id="getCopiedTask")},
        "/to-read/{cc_id}/read": write(
            "Mark a copy as read (its addressee only; the first read time stays)", _ref("CarbonCopy"), ANY_OBJ,
            "markCopyRead", params=(CC_ID,), required=False),
        "/instances/{instance_id}/forecast": {"get": _op(
            "流程预测: the steps still ahead and who will hold them", "approval", {"200": _ok(_ref("Forecast"))},
            errors=[403, 404], params=[INSTANCE_ID], op_id="getForecast")},
        "/instances/{instance_id}/opinions": {"get": _op(
            "The typed opinions and approval actions of the case, oldest first", "approval",
            {"200": _ok(_list(_ref("Opinion")))}, errors=[403, 404], params=[INSTANCE_ID], op_id="listOpinions")},
        "/instances/{instance_id}/cc": {"get": _op(
            "Every copy sent in the case with its read receipt", "approval",
            {"200": _ok(_list(_ref("CarbonCopy")))}, errors=[403, 404], params=[INSTANCE_ID],
            op_id="listCopies")},
        "/instances/{instance_id}/votes": {"get": _op(
            "The 会签 votes of the case", "approval", {"200": _ok(_list(_ref("Vote")))}, errors=[403, 404],
            params=[INSTANCE_ID], op_id="listVotes")},
        "/phrases": {
            "get": _op("The caller's common phrases (常用语)", "approval", {"200": _ok(_list(_ref("Phrase")))},
                       op_id="listPhrases"),
            "post": _op("Save a common phrase (saving the same text again returns the saved one)", "approval",
                        {"201": _ok(_ref("Phrase"), "Saved")}, errors=[404], body=_body(_ref("PhraseRequest")),
                        op_id="addPhrase"),
        },
        "/phrases/{phrase_id}": {"delete": _op(
            "Delete one of the caller's phrases", "approval", {"204": _ok(None, "Deleted")}, errors=[404],
            params=[_path_id("phrase_id", "phrase")], op_id="removePhrase")},
        "/instances/{instance_id}/move": write(
            "Move the instance's token to another user task (admin; a reason is required)", _ref("Moved"),
            _ref("MoveRequest"), "moveInstance", params=(INSTANCE_ID,), tag="admin"),
        "/instances/{instance_id}/suspend": write(
            "Suspend a running instance (admin; a reason is required)", _ref("InstanceState"),
            _ref("RequiredReasonRequest"), "suspendInstance", params=(INSTANCE_ID,), tag="admin"),
        "/instances/{instance_id}/resume": write(
            "Resume a suspended instance (admin)", _ref("InstanceState"), _ref("ReasonRequest"), "resumeInstance",
            params=(INSTANCE_ID,), required=False, tag="admin"),
        "/instances/{instance_id}/terminate": write(
            "Terminate a running or suspended instance (admin; a reason is required)", _ref("InstanceState"),
            _ref("RequiredReasonRequest"), "terminateInstance", params=(INSTANCE_ID,), tag="admin"),
    }


# ---- electronic licences (docs/licences.md) ------------------------------------------------------
DATE = {"type": "string", "format": "date"}
NDATE = {"type": "string", "format": "date", "nullable": True}
SCHEMAS.update({
    "Licence": _obj({
        "licence_no": S, "licence_id": {"type": "string", "description": "证照标识: typeCode.issuerCode.licence_no"},
        "name": S, "type_code": S, "holder": S, "holder_code": S, "holder_code_type": S, "issuer": S,
        "issuer_code": S, "jurisdiction": S, "address": NS, "items": STRS, "issued_on": DATE, "valid_from": DATE,
        "valid_to": {**NDATE, "description": "null: 长期"},
        "status": {"type": "string", "enum": ["valid", "revoked"]}, "issued_at": DT, "revoked_at": NDT,
        "revoke_reason": NS, "verify_code": S, "instance_id": I, "task_ref": S,
        "verify_url": {"type": "string", "description": "the public verification address (the QR code's)"},
    }, ["licence_no", "licence_id", "name", "holder", "holder_code", "issuer", "items", "issued_on", "valid_to",
        "status", "verify_code", "instance_id", "task_ref"], description="an electronic licence (电子证照)"),
    "LicencePublic": _obj({
        "licence_no": S, "name": S, "holder": S, "holder_code": S, "issuer": S, "items": STRS, "issued_on": DATE,
        "valid_from": DATE, "valid_to": NDATE, "status": {"type": "string", "enum": ["valid", "revoked"]},
        "revoked_at": NDT, "revoked_on": NDATE,
    }, ["licence_no", "name", "holder", "holder_code", "issuer", "items", "valid_to", "status"],
        description="what the public verification shows of a licence"),
})
LICENCE_NO = {"name": "licence_no", "in": "path", "required": True, "description": "the licence number",
              "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,40}$"}, "example": "ZH3101152026000001"}


def _licence_paths() -> dict:
    return {
        "/licences": {"get": _op(
            "Licences issued by the caller's visible cases (all of them for monitors and admins), newest first",
            "licences", {"200": _ok(_list(_ref("Licence")))}, errors=[400, 403, 404],
            params=[_q("instance_id", ID, "only the licences of this case"),
                    _q("holder_code", S, "only the licences of this holder (e.g. a unified social credit code)"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 200}, "how many")],
            op_id="listLicences")},
        "/licences/{licence_no}": {"get": _op(
            "One licence with its verification code and address (who may see its case)", "licences",
            {"200": _ok(_ref("Licence"))}, errors=[403, 404], params=[LICENCE_NO], op_id="getLicence")},
        "/licences/{licence_no}/pdf": {"get": _op(
            "The printable licence (A4 PDF with a QR code of the verification address)", "licences",
            {"200": {"description": "the PDF", "content": {"application/pdf": {
                "schema": {"type": "string", "format": "binary"}}}}},
            errors=[403, 404], params=[LICENCE_NO], op_id="getLicencePdf")},
        "/verify/{licence_no}": {"get": _op(
            "Public verification (no credentials): the licence's public face when the code matches; 404 for an "
            "unknown number and a wrong code alike", "licences", {"200": _ok(_ref("LicencePublic"))},
            errors=[404], params=[LICENCE_NO, {**_q("c", S, "the verification code printed with the QR code"),
                                                "required": True}],
            public=True, op_id="verifyLicence")},
    }


def document() -> dict:
    return deepcopy({
        "openapi": "3.0.3",
        "info": {
            "title": "Tongban REST API", "version": VERSION,
            "description": "JSON API of the Tongban workflow engine. Authenticate with `Authorization: Bearer "
                           "<token>` (an admin issues tokens), or with the session cookie of a signed-in "
                           "browser plus the `X-CSRF-Token` header on writes. Errors are "
                           "`{\"error\": code, \"message\": ..., \"fields\"?: {...}, \"problems\"?: [...]}`.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"cookie": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a token issued by an admin"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "session",
                           "description": "the sign-in session; writes also need the X-CSRF-Token header"},
            },
            "schemas": SCHEMAS,
        },
        "paths": {**_paths(), **_approval_paths(), **_licence_paths()},
    })
