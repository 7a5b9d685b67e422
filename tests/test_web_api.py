"""The REST API under /api/v1: every endpoint, who may call it (a role × endpoint matrix),
JSON errors with stable codes, validation with field errors, CSRF for cookie writes, bearer
tokens, and two clerks racing to complete one task (exactly one wins, the other gets 409)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

FORM_BPMN = Path(__file__).resolve().parent / "data" / "api_form.bpmn"
API = "/api/v1"


# ---- fixtures -------------------------------------------------------------------------------
@pytest.fixture
def tokens(demo_engine):
    """Bearer tokens of the demo users, issued on demand: ``tokens("admin")`` → headers."""
    issued: dict[str, dict] = {}

    def headers(name: str) -> dict:
        if name not in issued:
            secret = demo_engine.issue_token(name, f"test {name}", actor="admin")["token"]
            issued[name] = {"Authorization": f"Bearer {secret}"}
        return issued[name]

    return headers


@pytest.fixture
def form_process(demo_engine):
    """The test process: 受理 (group window, typed form, outcomes) → 审批 (group approval)."""
    return demo_engine.deploy({"api_form.bpmn": FORM_BPMN.read_bytes()}, actor="designer")[0]


@pytest.fixture
def api(app, tokens):
    """``api("window_clerk").get("/tasks")``: a test client that sends that user's bearer token."""

    class Caller:
        def __init__(self, name):
            self.client = app.test_client()
            self.headers = tokens(name) if name else {}

        def __getattr__(self, method):
            def call(path, **kw):
                kw["headers"] = {**self.headers, **kw.get("headers", {})}
                return getattr(self.client, method)(API + path, **kw)

            return call

    return Caller


def start_form_instance(api, as_user="window_clerk", **data):
    r = api(as_user).post("/instances", json={"process_key": "api_form", "data": data,
                                              "business_key": "BK-1"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["instance_id"]


def open_task(api, instance_id, as_user="admin"):
    rows = api(as_user).get(f"/tasks?instance_id={instance_id}").get_json()
    assert len(rows) == 1, rows
    return rows[0]


def assert_error(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:500])
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str) and body["message"]
    if code:
        assert body["error"] == code, body
    return body


# ---- the document ---------------------------------------------------------------------------
def test_openapi_document_is_public_and_covers_every_route(app):
    c = app.test_client()
    r = c.get(f"{API}/openapi.json")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "cookie"}
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.removeprefix(API)
            for arg in rule.arguments:
                path = path.replace(f"<int:{arg}>", f"{{{arg}}}").replace(f"<{arg}>", f"{{{arg}}}")
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op.get("security") != []:  # public: the document itself, the licence verification
                assert "401" in op["responses"], (path, method)
            if "requestBody" in op:
                assert {"400", "415"} <= set(op["responses"]), (path, method)
    # every $ref resolves
    text = json.dumps(doc)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in doc["components"]["schemas"], name
    import schemathesis

    schemathesis.from_dict(doc, validate_schema=True)  # valid against the OpenAPI 3.0 meta-schema


# ---- authentication -------------------------------------------------------------------------
def test_no_credentials_is_json_401_never_a_redirect(app, demo_engine):
    c = app.test_client()
    for method, path in [("get", "/me"), ("get", "/tasks"), ("get", "/tasks/1"), ("post", "/instances"),
                         ("post", "/tasks/1/complete"), ("post", "/deployments"), ("delete", "/tokens/1")]:
        r = getattr(c, method)(API + path, json={})
        body = assert_error(r, 401, "unauthorized")
        assert "Bearer" in r.headers["WWW-Authenticate"]
        assert "Location" not in r.headers and body
    r = c.get(f"{API}/me", headers={"Authorization": "Bearer tb_not-a-real-token"})
    assert "unknown or revoked" in assert_error(r, 401, "unauthorized")["message"]


def test_bearer_token_works_without_csrf_and_revoked_token_does_not(app, demo_engine, form_process):
    issued = demo_engine.issue_token("window_clerk", "client", actor="admin")
    c = app.test_client()
    h = {"Authorization": f"Bearer {issued['token']}"}
    me = c.get(f"{API}/me", headers=h).get_json()
    assert me["name"] == "window_clerk" and me["groups"] == ["window"] and me["via_token"] is True
    assert set(me["task_counts"]) == {"mine", "unclaimed", "overdue"}
    r = c.post(f"{API}/instances", headers=h, json={"process_key": "api_form"})
    assert r.status_code == 201 and r.get_json()["status"] == "running"
    demo_engine.revoke_token(issued["id"], actor="admin")
    assert_error(c.get(f"{API}/me", headers=h), 401)
    assert_error(c.post(f"{API}/instances", headers=h, json={"process_key": "api_form"}), 401)


def test_cookie_session_writes_need_the_csrf_header(client_for, form_process):
    c = client_for("window_clerk")
    assert c.get(f"{API}/me").get_json()["via_token"] is False
    body = {"process_key": "api_form", "data": {}}
    r = c.post(f"{API}/instances", json=body)
    assert r.status_code == 400 and "CSRF" in r.get_json()["message"]
    r = c.post(f"{API}/instances", json=body, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 400
    r = c.post(f"{API}/instances", json=body, headers={"X-CSRF-Token": c.csrf})
    assert r.status_code == 201
    instance_id = r.get_json()["instance_id"]
    task = c.get(f"{API}/tasks?instance_id={instance_id}").get_json()[0]
    assert c.post(f"{API}/tasks/{task['id']}/claim").status_code == 400
    r = c.post(f"{API}/tasks/{task['id']}/claim", headers={"X-CSRF-Token": c.csrf})
    assert r.status_code == 200 and r.get_json()["assignee"] == "window_clerk"


# ---- the permission matrix -------------------------------------------------------------------
PRINCIPALS = ["anonymous", "clerk_in_group", "clerk_other_group", "designer", "monitor", "admin", "revoked"]
USER_OF = {"clerk_in_group": "window_clerk", "clerk_other_group": "market_clerk", "designer": "designer",
           "monitor": "monitor", "admin": "admin"}


def _matrix(ids):
    """(method, path, body, {principal: expected status}); unlisted authenticated principals → ``other``."""
    t, i, d = ids["task"], ids["instance"], ids["definition"]
    every = {p: 200 for p in USER_OF}
    admin_only = {"admin": 200}
    monitors = {"monitor": 200, "admin": 200}
    can_see_task = {"clerk_in_group": 200, "monitor": 200, "admin": 200}
    return [
        ("get", "/me", None, every, 403),
        ("get", "/definitions", None, every, 403),
        ("get", f"/definitions/{d}", None, every, 403),
        ("get", f"/definitions/{d}/xml", None, every, 403),
        ("post", "/deployments", {"files": {"api_form.bpmn": FORM_BPMN.read_text()}},
         {"designer": 200, "admin": 200}, 403),  # identical content: 200, nothing new
        ("post", "/deployments/check", {"files": {"api_form.bpmn": FORM_BPMN.read_text()}},
         {"designer": 200, "admin": 200}, 403),
        ("post", "/instances", {"process_key": "api_form"},
         {"clerk_in_group": 201, "clerk_other_group": 201, "admin": 201}, 403),
        ("get", "/instances", None, every, 403),
        ("get", f"/instances/{i}", None, can_see_task, 403),
        ("get", f"/instances/{i}/audit", None, can_see_task, 403),
        ("get", "/tasks", None, every, 403),
        ("get", f"/tasks/{t}", None, can_see_task, 403),
        ("get", f"/tasks/{t}/form", None, can_see_task, 403),
        # writes on the task by those who may not act on it; the allowed ones are tested below
        ("post", f"/tasks/{t}/claim", None, {"clerk_in_group": None, "admin": None}, 403),
        ("post", f"/tasks/{t}/complete", {"data": {"amount": 5}, "decision": "approve"},
         {"clerk_in_group": None, "admin": None}, 403),
        ("post", f"/tasks/{t}/unclaim", {"force": True}, {"clerk_in_group": None, "admin": None}, 403),
        ("get", "/departments", None, every, 403),
        ("get", "/groups", None, every, 403),
        ("get", "/users", None, admin_only, 403),
        ("get", "/users/window_clerk", None, {"clerk_in_group": 200, "admin": 200}, 403),
        ("patch", "/users/leader", {"active": True}, admin_only, 403),
        ("get", "/tokens", None, admin_only, 403),
        ("post", "/tokens", {"user": "leader", "name": "matrix"}, {"admin": 201}, 403),
        ("delete", "/tokens/{other_token}", None, admin_only, 403),
        ("get", "/audit", None, monitors, 403),
        ("get", "/audit/verify", None, monitors, 403),
    ]


def test_permission_matrix(app, demo_engine, form_process, api, tokens):
    """Every principal against every endpoint: 401 without valid credentials, 403 where the role or
    the task's candidates say no, the success status where allowed."""
    c = app.test_client()
    instance_id = demo_engine.start("api_form", {"id_number": "110101199001011234"}, actor="admin")["instance_id"]
    task_id = demo_engine.tasks(instance_id=instance_id)[0]["id"]
    ids = {"task": task_id, "instance": instance_id, "definition": form_process.id}
    revoked = demo_engine.issue_token("admin", "revoked", actor="admin")
    demo_engine.revoke_token(revoked["id"], actor="admin")
    headers = {"anonymous": {}, "revoked": {"Authorization": f"Bearer {revoked['token']}"}}
    headers |= {p: tokens(u) for p, u in USER_OF.items()}
    failures = []
    for method, path, body, allowed, otherwise in _matrix(ids):
        for principal in PRINCIPALS:
            if principal in ("anonymous", "revoked"):
                expected = 401
            else:
                expected = allowed.get(principal, otherwise)
            if expected is None:
                continue
            p = path
            if "{other_token}" in p:  # a fresh victim token each time, so an allowed revoke is a real 200
                p = p.replace("{other_token}", str(demo_engine.issue_token("leader", "victim", "admin")["id"]))
            kw = {"headers": headers[principal]}
            if body is not None:
                kw["json"] = body
            r = getattr(c, method)(API + p, **kw)
            if r.status_code != expected:
                failures.append(f"{principal:>18} {method.upper():6} {p}: {r.status_code}, expected {expected}"
                                f" {r.get_data(as_text=True)[:120]}")
            elif expected >= 400:
                assert_error(r, expected)
    assert not failures, "\n".join(failures)
    # the writes the matrix skipped: the right clerk may claim and complete, and nothing leaked before
    assert demo_engine.tasks(instance_id=instance_id)[0]["assignee"] is None
    r = api("window_clerk").post(f"/tasks/{task_id}/claim")
    assert r.status_code == 200 and r.get_json()["assignee"] == "window_clerk"
    r = api("window_clerk").post(f"/tasks/{task_id}/complete", json={"data": {"amount": 5}, "decision": "approve"})
    assert r.status_code == 200


def test_monitor_reads_with_masking_and_clerk_is_refused_other_groups(demo_engine, form_process, api):
    instance_id = start_form_instance(api, id_number="110101199001011234")
    task = open_task(api, instance_id)
    mon = api("monitor").get(f"/tasks/{task['id']}").get_json()
    assert mon["data"]["id_number"] == "110101********1234"
    own = api("window_clerk").get(f"/tasks/{task['id']}").get_json()
    assert own["data"]["id_number"] == "110101199001011234"  # the clerk acting on it sees it in full
    inst = api("window_clerk").get(f"/instances/{instance_id}").get_json()
    assert inst["masked"] is True and inst["data"]["id_number"] == "110101********1234"
    assert api("admin").get(f"/instances/{instance_id}").get_json()["data"]["id_number"] == "110101199001011234"
    r = api("market_clerk").get(f"/tasks/{task['id']}")
    assert "market_clerk" in assert_error(r, 403, "not_allowed")["message"]
    assert_error(api("market_clerk").post(f"/tasks/{task['id']}/claim"), 403)
    assert_error(api("market_clerk").get(f"/instances/{instance_id}/audit"), 403)


# ---- definitions and deployments ---------------------------------------------------------------
def test_deploy_multipart_json_and_located_problems(app, api):
    designer = api("designer")
    r = designer.post("/deployments", data={"files": (io.BytesIO(FORM_BPMN.read_bytes()), "api_form.bpmn")},
                      content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    [row] = r.get_json()
    assert row["key"] == "api_form" and row["version"] == 1 and row["created"] is True
    r = designer.post("/deployments", json={"files": {"api_form.bpmn": FORM_BPMN.read_text()}})
    assert r.status_code == 200 and r.get_json()[0]["created"] is False
    changed = FORM_BPMN.read_text().replace('name="审批"', 'name="审批（二）"')
    r = designer.post("/deployments", json={"files": {"api_form.bpmn": changed}})
    assert r.status_code == 201 and r.get_json()[0]["version"] == 2
    bad = FORM_BPMN.read_text().replace('targetRef="approve"', 'targetRef="nowhere"')
    r = designer.post("/deployments", data={"files": (io.BytesIO(bad.encode()), "bad.bpmn")},
                      content_type="multipart/form-data")
    body = assert_error(r, 400, "invalid_process")
    assert body["problems"] and all(p["message"] for p in body["problems"])
    assert any(p["file"] == "bad.bpmn" and (p["line"] or p["element_id"]) for p in body["problems"])
    r = designer.post("/deployments", json={"files": {"x.bpmn": "<not xml"}})
    assert assert_error(r, 400, "invalid_process")["problems"][0]["file"] == "x.bpmn"
    check = designer.post("/deployments/check", json={"files": {"bad.bpmn": bad}}).get_json()
    assert check["ok"] is False and check["problems"]
    assert_error(designer.post("/deployments", json={"files": {}}), 400, "validation")
    assert_error(designer.post("/deployments", data={}, content_type="multipart/form-data"), 400, "validation")
    assert_error(designer.post("/deployments", data="files", content_type="text/plain"), 415,
                 "unsupported_media_type")
    assert_error(designer.post("/deployments", data=b"{not json", content_type="application/json"), 400,
                 "bad_request")


def test_definitions_list_versions_and_source(api, form_process):
    rows = api("window_clerk").get("/definitions").get_json()
    mine = next(d for d in rows if d["key"] == "api_form")
    assert mine["id"] == form_process.id and mine["tasks"] == 2
    versions = api("window_clerk").get("/definitions?key=api_form").get_json()
    assert [v["version"] for v in versions] == [1]
    d = api("window_clerk").get(f"/definitions/{form_process.id}").get_json()
    assert d["key"] == "api_form" and "<bpmn:userTask id=\"accept\"" in d["bpmn_xml"]
    assert d["manifest"]["tasks"]["accept"]["form_fields"][0]["id"] == "amount"
    r = api("window_clerk").get(f"/definitions/{form_process.id}/xml")
    assert r.status_code == 200 and r.mimetype == "application/xml" and b"api_form" in r.data
    # uploaded content: a browser saves it rather than showing it, and runs nothing in it
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert r.headers["Content-Security-Policy"].startswith("sandbox") and r.headers["X-Content-Type-Options"] == "nosniff"
    assert_error(api("window_clerk").get("/definitions/999999"), 404, "not_found")


# ---- instances ----------------------------------------------------------------------------------
def test_start_validates_its_body(api, form_process):
    clerk = api("window_clerk")
    body = assert_error(clerk.post("/instances", json={"data": []}), 400, "validation")
    assert set(body["fields"]) == {"process_key", "data"}
    body = assert_error(clerk.post("/instances", json={"process_key": "api_form", "business_key": 7}), 400)
    assert set(body["fields"]) == {"business_key"}
    assert_error(clerk.post("/instances", json={"process_key": "no_such_process"}), 404, "not_found")
    assert_error(clerk.post("/instances", data=b'{"process_key": ', content_type="application/json"), 400)
    assert_error(clerk.post("/instances", data=b"[1, 2]", content_type="application/json"), 400, "validation")
    assert_error(clerk.post("/instances", data=b"process_key=x", content_type="application/x-www-form-urlencoded"),
                 415)
    assert_error(clerk.post("/instances"), 400)
    assert_error(clerk.post("/instances", json={"process_key": "api_form", "data": {"x": "a\u0000b"}}), 400)
    r = clerk.post("/instances", json={"process_key": "api_form", "data": {"applicant": "张三"},
                                       "business_key": "YYZ-2026-1"})
    assert r.status_code == 201
    out = r.get_json()
    assert out["id"] == out["instance_id"] and out["business_key"] == "YYZ-2026-1"


def test_instances_a_clerk_sees_are_those_they_started_or_have_a_task_in(api, demo_engine, form_process):
    by_clerk = start_form_instance(api, "window_clerk")
    by_admin = start_form_instance(api, "admin")
    other = demo_engine.start("lanes_review", {"applicant": "李四"}, actor="admin")["instance_id"]
    seen = {i["id"] for i in api("window_clerk").get("/instances").get_json()}
    assert {by_clerk, by_admin} <= seen  # started / candidate for its open task
    assert {i["id"] for i in api("drug_clerk").get("/instances").get_json()}.isdisjoint({by_clerk, by_admin})
    assert_error(api("drug_clerk").get(f"/instances/{by_clerk}"), 403)
    everything = {i["id"] for i in api("monitor").get("/instances?limit=500").get_json()}
    assert {by_clerk, by_admin, other} <= everything
    assert [i["id"] for i in api("monitor").get("/instances?limit=1").get_json()] == [max(everything)]
    assert api("monitor").get("/instances?status=completed").get_json() == []
    assert {i["id"] for i in api("monitor").get("/instances?business_key=BK-1").get_json()} == {by_clerk, by_admin}
    body = assert_error(api("monitor").get("/instances?limit=0&status=nope"), 400, "validation")
    assert set(body["fields"]) == {"limit", "status"}
    detail = api("window_clerk").get(f"/instances/{by_clerk}").get_json()
    assert detail["status"] == "running" and detail["open_tasks"][0]["bpmn_id"] == "accept"
    trail = api("window_clerk").get(f"/instances/{by_clerk}/audit").get_json()
    assert trail[0]["action"] == "start" and trail[0]["actor"] == "window_clerk" and trail[0]["hash"]
    assert_error(api("monitor").get("/instances/424242"), 404)
    assert_error(api("monitor").get("/instances/424242/audit"), 404)


# ---- tasks --------------------------------------------------------------------------------------
def test_a_clerk_claims_fills_a_form_with_errors_and_completes(api, demo_engine, form_process):
    instance_id = start_form_instance(api, applicant="张三")
    clerk = api("window_clerk")
    task = open_task(api, instance_id, "window_clerk")
    assert task["name"] == "受理" and task["candidate_groups"] == ["window"] and task["assignee"] is None
    form = clerk.get(f"/tasks/{task['id']}/form").get_json()
    assert [f["id"] for f in form["fields"]] == ["amount", "id_number"]
    assert form["fields"][0]["type"] == "long" and form["fields"][0]["required"] is True
    assert [o["id"] for o in form["outcomes"]] == ["approve", "reject"]
    assert form["data"]["applicant"] == "张三"
    detail = clerk.get(f"/tasks/{task['id']}").get_json()
    assert detail["instance"]["id"] == instance_id and detail["form"] == form["fields"]

    r = clerk.post(f"/tasks/{task['id']}/claim")
    assert r.status_code == 200 and r.get_json()["assignee"] == "window_clerk"
    assert [t["id"] for t in clerk.get("/tasks?scope=mine").get_json()] == [task["id"]]
    assert task["id"] not in [t["id"] for t in clerk.get("/tasks?scope=unclaimed").get_json()]
    # the admin is in group window too, but the task is claimed now
    assert_error(api("admin").post(f"/tasks/{task['id']}/claim"), 403)
    r = clerk.post(f"/tasks/{task['id']}/unclaim")
    assert r.status_code == 200 and r.get_json()["assignee"] is None
    assert_error(clerk.post(f"/tasks/{task['id']}/unclaim"), 403)  # not claimed
    clerk.post(f"/tasks/{task['id']}/claim")

    body = assert_error(clerk.post(f"/tasks/{task['id']}/complete", json={"data": {"amount": "abc"}}), 400,
                        "validation")
    assert set(body["fields"]) == {"amount"} and "whole number" in body["fields"]["amount"]
    body = assert_error(clerk.post(f"/tasks/{task['id']}/complete", json={"data": {}}), 400, "validation")
    assert "required" in body["fields"]["amount"]
    body = assert_error(clerk.post(f"/tasks/{task['id']}/complete", json={"data": {"amount": 0}}), 400)
    assert "amount" in body["fields"]
    body = assert_error(clerk.post(f"/tasks/{task['id']}/complete", json={"data": {"amount": 3}}), 400)
    assert set(body["fields"]) == {"decision"}
    body = assert_error(clerk.post(f"/tasks/{task['id']}/complete", json={"data": [], "opinion": 5}), 400)
    assert set(body["fields"]) == {"data", "opinion"}
    assert_error(clerk.post(f"/tasks/{task['id']}/complete", data=b"{", content_type="application/json"), 400)
    assert_error(clerk.post(f"/tasks/{task['id']}/complete", data=b"amount=3", content_type="text/plain"), 415)
    assert demo_engine.tasks(instance_id=instance_id)[0]["status"] == "open"  # nothing half-done

    r = clerk.post(f"/tasks/{task['id']}/complete",
                   json={"data": {"amount": "30", "id_number": "110101199001011234"}, "decision": "approve",
                         "opinion": "材料齐全"})
    assert r.status_code == 200 and r.get_json() == {"instance_id": instance_id, "status": "running"}
    done = clerk.get(f"/tasks/{task['id']}").get_json()  # whoever completed it may still read it
    assert done["status"] == "completed" and done["completed_by"] == "window_clerk"
    assert done["decision"] == "approve" and done["opinion"] == "材料齐全" and done["data"]["amount"] == 30

    nxt = open_task(api, instance_id)
    assert nxt["bpmn_id"] == "approve" and nxt["candidate_groups"] == ["approval"]
    assert_error(clerk.get(f"/tasks/{nxt['id']}"), 403)
    assert nxt["id"] in [t["id"] for t in api("approver").get("/tasks").get_json()]
    r = api("approver").post(f"/tasks/{nxt['id']}/complete", json={})
    assert r.status_code == 200 and r.get_json()["status"] == "completed"
    actions = [e["action"] for e in api("monitor").get(f"/instances/{instance_id}/audit").get_json()]
    assert actions.count("claim") == 2 and "unclaim" in actions and actions[0] == "start"
    assert api("monitor").get("/audit/verify").get_json()["ok"] is True


def test_task_list_filters_and_paging(api, demo_engine, form_process):
    ids = [start_form_instance(api) for _ in range(3)]
    clerk = api("window_clerk")
    rows = clerk.get("/tasks?process_key=api_form").get_json()
    assert sorted(t["instance_id"] for t in rows) == ids
    page1 = clerk.get("/tasks?process_key=api_form&limit=2").get_json()
    page2 = clerk.get("/tasks?process_key=api_form&limit=2&offset=2").get_json()
    assert len(page1) == 2 and len(page2) == 1 and {t["id"] for t in page1 + page2} == {t["id"] for t in rows}
    assert clerk.get("/tasks?process_key=lanes_review").get_json() == []
    assert clerk.get("/tasks?due_before=2000-01-01T00:00:00Z").get_json() == []
    assert len(clerk.get("/tasks?department=sx.sz.kf.zwfw&process_key=api_form").get_json()) == 3
    assert clerk.get("/tasks?department=sx.sz.kf.scj").get_json() == []
    assert_error(clerk.get("/tasks?department=no.such.dept"), 404)
    body = assert_error(clerk.get("/tasks?scope=everything&limit=9999&offset=-1&due_before=tomorrow"), 400,
                        "validation")
    assert set(body["fields"]) == {"scope", "limit", "offset", "due_before"}
    assert api("market_clerk").get("/tasks?process_key=api_form").get_json() == []
    assert_error(clerk.get("/tasks/99999999999999999999999999"), 404)
    assert_error(clerk.get("/tasks/424242"), 404, "not_found")
    assert_error(clerk.get("/tasks/424242/form"), 404)


def test_unclaim_by_force_is_for_admins(api, form_process):
    instance_id = start_form_instance(api)
    task = open_task(api, instance_id)
    api("window_clerk").post(f"/tasks/{task['id']}/claim")
    assert_error(api("admin").post(f"/tasks/{task['id']}/unclaim"), 403)  # held by someone else
    body = assert_error(api("window_clerk").post(f"/tasks/{task['id']}/unclaim", json={"force": "yes"}), 400)
    assert set(body["fields"]) == {"force"}
    r = api("admin").post(f"/tasks/{task['id']}/unclaim", json={"force": True})
    assert r.status_code == 200 and r.get_json()["assignee"] is None


# ---- the race -----------------------------------------------------------------------------------
def test_second_completion_is_409_naming_who_completed_it(api, form_process):
    instance_id = start_form_instance(api)
    task = open_task(api, instance_id)
    body = {"data": {"amount": 1}, "decision": "approve"}
    assert api("admin").post(f"/tasks/{task['id']}/complete", json=body).status_code == 200
    r = api("window_clerk").post(f"/tasks/{task['id']}/complete", json=body)
    assert "completed by admin" in assert_error(r, 409, "conflict")["message"]
    assert_error(api("window_clerk").post(f"/tasks/{task['id']}/claim"), 409)


def test_clerks_racing_on_the_live_server_exactly_one_wins(live_server, demo_engine, form_process, tokens):
    """Several clerks of group window complete the same task at the same moment over HTTP:
    exactly one 200, every other answer is 409 naming the winner; repeated over a few tasks."""
    clerks = ["window_clerk", "admin"] + [f"window_{i}" for i in range(3)]
    for name in clerks[2:]:
        demo_engine.add_user(name, ["window"], roles=["clerk"])
    headers = {name: tokens(name) for name in clerks}
    body = {"data": {"amount": 8}, "decision": "approve"}
    with httpx.Client(base_url=live_server + API, timeout=60) as client:
        for round_ in range(3):
            r = client.post("/instances", headers=headers["window_clerk"],
                            json={"process_key": "api_form", "business_key": f"race-{round_}"})
            assert r.status_code == 201
            instance_id = r.json()["instance_id"]
            task_id = client.get(f"/tasks?instance_id={instance_id}", headers=headers["admin"]).json()[0]["id"]
            barrier = threading.Barrier(len(clerks))
            results: dict[str, httpx.Response] = {}

            def complete(name, task_id=task_id, barrier=barrier, results=results):
                with httpx.Client(base_url=live_server + API, timeout=60) as own:
                    barrier.wait()
                    results[name] = own.post(f"/tasks/{task_id}/complete", headers=headers[name], json=body)

            threads = [threading.Thread(target=complete, args=(n,)) for n in clerks]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            statuses = sorted(r.status_code for r in results.values())
            assert statuses == [200] + [409] * (len(clerks) - 1), {n: (r.status_code, r.text) for n, r in
                                                                    results.items()}
            winner = next(n for n, r in results.items() if r.status_code == 200)
            for r in results.values():
                if r.status_code == 409:
                    assert r.json()["error"] == "conflict"
                    assert f"completed by {winner}" in r.json()["message"], r.json()
            [done] = [t for t in demo_engine.tasks(instance_id=instance_id, status="all") if t["id"] == task_id]
            assert done["completed_by"] == winner
            assert demo_engine.tasks(instance_id=instance_id)[0]["bpmn_id"] == "approve"  # advanced once
    assert demo_engine.verify_audit().ok


# ---- errors ---------------------------------------------------------------------------------------
def test_errors_are_json_with_stable_codes(app, api):
    assert_error(api("admin").get("/no/such/endpoint"), 404, "not_found")
    assert_error(api("admin").delete("/me"), 405, "method_not_allowed")
    app.config["MAX_CONTENT_LENGTH"] = 2000
    r = api("designer").post("/deployments", data={"files": (io.BytesIO(b"x" * 5000), "big.bpmn")},
                             content_type="multipart/form-data")
    assert_error(r, 413, "too_large")


# ---- admin: users and tokens ------------------------------------------------------------------------
def test_admin_manages_users_and_tokens(app, api, demo_engine):
    admin = api("admin")
    r = admin.post("/users", json={"name": "new_clerk", "display_name": "新办事员", "groups": ["window"],
                                   "department": "sx.sz.kf.zwfw", "password": "long-enough-1"})
    assert r.status_code == 201
    user = r.get_json()
    assert user["roles"] == ["clerk"] and user["groups"] == ["window"] and user["department"] == "sx.sz.kf.zwfw"
    assert_error(admin.post("/users", json={"name": "new_clerk"}), 409, "conflict")
    body = assert_error(admin.post("/users", json={"name": "bad name!", "roles": ["king"], "password": "short",
                                                   "groups": "window"}), 400, "validation")
    assert set(body["fields"]) == {"name", "roles", "password", "groups"}
    assert_error(admin.post("/users", json={"name": "x1", "department": "nowhere"}), 404)
    assert "new_clerk" in [u["name"] for u in admin.get("/users").get_json()]
    assert admin.get("/users/new_clerk").get_json()["display_name"] == "新办事员"
    assert_error(admin.get("/users/nobody_here"), 404)

    r = admin.post("/tokens", json={"user": "new_clerk", "name": "integration"})
    assert r.status_code == 201
    issued = r.get_json()
    assert issued["token"].startswith("tb_") and issued["user"] == "new_clerk"
    listed = admin.get("/tokens").get_json()
    assert any(t["id"] == issued["id"] and not t["revoked"] for t in listed)
    assert issued["token"] not in json.dumps(listed)
    c = app.test_client()
    h = {"Authorization": f"Bearer {issued['token']}"}
    assert c.get(f"{API}/me", headers=h).get_json()["name"] == "new_clerk"
    assert c.get(f"{API}/users/new_clerk", headers=h).status_code == 200  # themself
    assert_error(admin.post("/tokens", json={"user": "nobody_here", "name": "x"}), 404)
    body = assert_error(admin.post("/tokens", json={}), 400)
    assert set(body["fields"]) == {"user", "name"}

    r = admin.patch("/users/new_clerk", json={"active": False})
    assert r.status_code == 200 and r.get_json()["active"] is False
    assert_error(c.get(f"{API}/me", headers=h), 401)  # a deactivated user's tokens stop working
    assert admin.patch("/users/new_clerk", json={"active": True, "password": "another-password"}).status_code == 200
    assert c.get(f"{API}/me", headers=h).status_code == 200
    r = admin.delete(f"/tokens/{issued['id']}")
    assert r.status_code == 200 and r.get_json()["revoked"] is True
    assert_error(c.get(f"{API}/me", headers=h), 401)
    assert_error(admin.delete("/tokens/424242"), 404)
    body = assert_error(admin.patch("/users/admin", json={"active": False}), 400)
    assert "active" in body["fields"]
    assert_error(admin.patch("/users/ghost", json={"active": True}), 404)


def test_org_and_audit_reads(api):
    depts = api("window_clerk").get("/departments").get_json()
    assert {"code": "sx", "parent": None}.items() <= next(d for d in depts if d["code"] == "sx").items()
    groups = {g["name"]: g for g in api("window_clerk").get("/groups").get_json()}
    assert groups["window"]["department"] == "sx.sz.kf.zwfw" and groups["window"]["members"] >= 1
    events = api("monitor").get("/audit?limit=5").get_json()
    assert len(events) == 5 and events[0]["id"] > events[-1]["id"]
    assert api("monitor").get("/audit/verify").get_json() == {"ok": True, "events": events[0]["id"],
                                                             "first_bad_id": None, "reason": None}


# ---- CLI: tokens ------------------------------------------------------------------------------------
def test_cli_tokens_issue_list_revoke(tmp_path, db_url):
    env = {**os.environ, "TONGBAN_DATABASE_URL": db_url, "TONGBAN_HOME": str(tmp_path)}

    def tongban(*args):
        proc = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        return proc

    assert tongban("users", "add", "api_client", "--group", "window").returncode == 0
    proc = tongban("tokens", "issue", "api_client", "--name", "ci", "--json")
    assert proc.returncode == 0, proc.stderr
    issued = json.loads(proc.stdout)
    assert issued["user"] == "api_client" and issued["name"] == "ci" and issued["token"].startswith("tb_")
    listed = json.loads(tongban("tokens", "list", "--json").stdout)
    assert [(t["id"], t["revoked"]) for t in listed] == [(issued["id"], False)]
    assert issued["token"] not in tongban("tokens", "list").stdout
    proc = tongban("tokens", "revoke", str(issued["id"]), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["revoked"] is True
    proc = tongban("tokens", "revoke", "999")
    assert proc.returncode == 1 and "no token 999" in proc.stderr
    proc = tongban("tokens", "issue", "ghost", "--name", "x")
    assert proc.returncode == 1 and "ghost" in proc.stderr


def test_deploy_raw_xml_and_a_list_of_files(api):
    designer = api("designer")
    r = designer.post("/deployments?name=api_form.bpmn", data=FORM_BPMN.read_bytes(), content_type="application/xml")
    assert r.status_code == 201 and r.get_json()[0]["key"] == "api_form"
    r = designer.post("/deployments", json={"files": [{"name": "api_form.bpmn", "content": FORM_BPMN.read_text()}]})
    assert r.status_code == 200 and r.get_json()[0]["created"] is False
    assert_error(designer.post("/deployments", data=b"", content_type="application/xml"), 400, "validation")
    body = assert_error(designer.post("/deployments", data=b"<bpmn:definitions", content_type="text/xml"), 400,
                        "invalid_process")
    assert body["problems"][0]["file"] == "upload.bpmn"


def test_personal_data_is_masked_in_task_data_and_in_the_audit_log_for_non_admins(api, demo_engine):
    """Named as what they are (id_number, phone) though no form declares them: the task a clerk works
    on, the monitor's audit log and the case's trail mask them alike; an administrator sees them."""
    full_id, phone = "110101199003074514", "13812345678"
    iid = demo_engine.start("lanes_review", {"applicant": "张三", "id_number": full_id, "phone": phone},
                            actor="window_clerk")["instance_id"]
    [task] = demo_engine.tasks(instance_id=iid)
    for who in ("window_clerk", "monitor"):
        seen = api(who).get(f"/tasks/{task['id']}")
        assert seen.status_code == 200, who
        assert seen.get_json()["data"]["id_number"] == "110101********4514", who
        assert seen.get_json()["data"]["phone"] == "138****5678", who
    for path in ("/audit?limit=50", f"/instances/{iid}/audit"):
        body = api("monitor").get(path).get_data(as_text=True)
        assert full_id not in body and "110101********4514" in body and phone not in body, path
    assert full_id in api("admin").get("/audit?limit=50").get_data(as_text=True)
