"""Admin and monitor pages through the Flask test client: roles, users (add, deactivate, reset
password), departments, groups, API tokens (issue once, use, revoke), audit log and verify, CSRF."""

from __future__ import annotations

import re
from datetime import timedelta

from werkzeug.exceptions import NotFound as RouteNotFound

from tests.web_support import csrf_of, login


def sign_in_status(app, name: str, password: str) -> int:
    c = app.test_client()
    token = csrf_of(c.get("/login").get_data(as_text=True))
    return c.post("/login", data={"username": name, "password": password, "csrf_token": token}).status_code


def bearer_works(app, engine, secret: str) -> bool:
    """GET /api/v1/definitions with the token when the API is there, else the engine's token check."""
    try:
        app.url_map.bind("localhost").match("/api/v1/definitions", method="GET")
    except RouteNotFound:
        return engine.user_for_token(secret) is not None
    r = app.test_client().get("/api/v1/definitions", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code in (200, 401), r.status_code
    return r.status_code == 200


def test_roles_gate_admin_and_monitor(client_for):
    for name in ("window_clerk", "designer", "monitor"):
        c = client_for(name)
        for url in ("/admin/", "/admin/users", "/admin/departments", "/admin/groups", "/admin/tokens",
                    "/admin/audit"):
            assert c.get(url).status_code == 403, (name, url)
        r = c.post("/admin/users", data={"csrf_token": c.csrf, "name": "mallory", "password": "x" * 10,
                                          "roles": "admin"})
        assert r.status_code == 403
    assert client_for("window_clerk").get("/monitor/").status_code == 403
    assert client_for("designer").get("/monitor/").status_code == 403
    assert client_for("monitor").get("/monitor/").status_code == 200
    admin = client_for("admin")
    for url in ("/admin/", "/admin/users", "/admin/departments", "/admin/groups", "/admin/tokens", "/admin/audit",
                "/monitor/"):
        assert admin.get(url).status_code == 200, url


def test_admin_adds_a_user_who_can_sign_in_then_deactivates_them(app, client_for, demo_engine):
    admin = client_for("admin")
    r = admin.post("/admin/users", data={
        "csrf_token": admin.csrf, "name": "new_clerk", "display_name": "钱新人", "password": "first-pass-1",
        "roles": ["clerk"], "groups": "window, approval", "department": "sx.sz.kf.zwfw"})
    assert r.status_code == 302
    u = demo_engine.user("new_clerk")
    assert u["roles"] == ["clerk"] and u["groups"] == ["approval", "window"]
    assert u["department"] == "sx.sz.kf.zwfw" and u["display_name"] == "钱新人"
    assert "new_clerk" in admin.get("/admin/users").get_data(as_text=True)
    assert sign_in_status(app, "new_clerk", "first-pass-1") == 302
    # a second user of the same name, a short password, no role: refused with reasons
    r = admin.post("/admin/users", data={"csrf_token": admin.csrf, "name": "new_clerk", "password": "short",
                                         "roles": []})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "已存在" in html and "8" in html
    # reset the password: the old one stops working
    r = admin.post("/admin/users/new_clerk/password", data={"csrf_token": admin.csrf, "password": "second-pass-2"})
    assert r.status_code == 302
    assert sign_in_status(app, "new_clerk", "first-pass-1") == 401
    assert sign_in_status(app, "new_clerk", "second-pass-2") == 302
    # a session that is open when the user is deactivated ends too
    c = app.test_client()
    login(c, "new_clerk", "second-pass-2")
    r = admin.post("/admin/users/new_clerk/active", data={"csrf_token": admin.csrf, "active": "0"})
    assert r.status_code == 302 and demo_engine.users() and not next(
        x for x in demo_engine.users() if x["name"] == "new_clerk")["active"]
    assert sign_in_status(app, "new_clerk", "second-pass-2") == 401
    assert c.get("/").status_code == 302
    admin.post("/admin/users/new_clerk/active", data={"csrf_token": admin.csrf, "active": "1"})
    assert sign_in_status(app, "new_clerk", "second-pass-2") == 302
    actions = [e["action"] for e in demo_engine.trail()]
    assert {"user.add", "user.password", "user.deactivate", "user.activate"} <= set(actions)


def test_admin_cannot_deactivate_themselves(client_for, demo_engine):
    admin = client_for("admin")
    admin.post("/admin/users/admin/active", data={"csrf_token": admin.csrf, "active": "0"})
    assert demo_engine.user("admin")["active"]


def test_departments_tree_and_groups(client_for, demo_engine):
    admin = client_for("admin")
    r = admin.post("/admin/departments", data={"csrf_token": admin.csrf, "code": "sx.sz.kf.hd.dh",
                                               "name": "东湖社区", "level": "5", "parent": "sx.sz.kf.hd"})
    assert r.status_code == 302
    dept = next(d for d in demo_engine.departments() if d["code"] == "sx.sz.kf.hd.dh")
    assert dept["parent"] == "sx.sz.kf.hd" and dept["level_name"] == "村社区"
    html = admin.get("/admin/departments").get_data(as_text=True)
    # the new community sits inside its street's list in the tree
    street = html.index('data-dept="sx.sz.kf.hd"')
    assert street < html.index('data-dept="sx.sz.kf.hd.dh"') < html.index("</li>", html.index('data-dept="sx.sz.kf.hd.dh"'))
    # a level that does not fit under its parent is refused
    r = admin.post("/admin/departments", data={"csrf_token": admin.csrf, "code": "bad", "name": "错层",
                                               "level": "2", "parent": "sx.sz.kf.hd"})
    assert r.status_code == 400 and not any(d["code"] == "bad" for d in demo_engine.departments())
    # groups: a new group placed in the new community
    r = admin.post("/admin/groups", data={"csrf_token": admin.csrf, "group": "community",
                                          "department": "sx.sz.kf.hd.dh"})
    assert r.status_code == 302
    assert next(g for g in demo_engine.groups() if g["name"] == "community")["department"] == "sx.sz.kf.hd.dh"
    html = admin.get("/admin/groups").get_data(as_text=True)
    assert 'data-group="community"' in html and "东湖社区" in html


def test_token_is_shown_once_works_and_can_be_revoked(app, client_for, demo_engine):
    admin = client_for("admin")
    r = admin.post("/admin/tokens", data={"csrf_token": admin.csrf, "user": "window_clerk", "name": "一网通办门户"})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    secret = re.search(r'id="token-secret">([^<]+)<', html).group(1).strip()
    assert secret.startswith("tb_")
    assert secret not in admin.get("/admin/tokens").get_data(as_text=True)  # shown once only
    assert bearer_works(app, demo_engine, secret)
    token = next(t for t in demo_engine.tokens() if t["name"] == "一网通办门户")
    assert token["user"] == "window_clerk" and not token["revoked"]
    r = admin.post(f"/admin/tokens/{token['id']}/revoke", data={"csrf_token": admin.csrf})
    assert r.status_code == 302
    assert next(t for t in demo_engine.tokens() if t["id"] == token["id"])["revoked"]
    assert not bearer_works(app, demo_engine, secret)
    assert demo_engine.user_for_token(secret) is None


def test_admin_posts_need_csrf(client_for, demo_engine):
    admin = client_for("admin")
    assert admin.post("/admin/users", data={"name": "x_user", "password": "long-enough", "roles": "clerk"}
                      ).status_code == 400
    assert admin.post("/admin/users", data={"csrf_token": "wrong", "name": "x_user", "password": "long-enough",
                                            "roles": "clerk"}).status_code == 400
    assert not any(u["name"] == "x_user" for u in demo_engine.users())
    assert admin.post("/admin/users/window_clerk/active", data={"active": "0"}).status_code == 400
    assert demo_engine.user("window_clerk")["active"]
    assert admin.post("/admin/tokens", data={"user": "window_clerk", "name": "t"}).status_code == 400
    assert admin.post("/admin/departments", data={"code": "x", "name": "x", "level": "1"}).status_code == 400
    assert admin.post("/admin/audit").status_code == 400


def test_audit_log_and_verify(client_for, demo_engine):
    admin = client_for("admin")
    html = admin.get("/admin/audit").get_data(as_text=True)
    assert "deploy" in html and "sign_in" in html
    r = admin.post("/admin/audit", data={"csrf_token": admin.csrf})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'id="verify-result"' in html and "哈希链完整" in html


def test_monitor_counts_tasks_by_deadline_state(client_for, demo_engine, clock):
    # two open tasks with a 3-workday SLA (parallel_gateway) and one without a deadline (lanes)
    demo_engine.start("parallel_gateway", data={"applicant": "张三"}, actor="window_clerk")
    demo_engine.start("lanes_review", data={"applicant": "李四"}, actor="window_clerk")
    open_tasks = demo_engine.tasks()
    with_due = [t for t in open_tasks if t["due_at"]]
    assert with_due, "the example needs a task with a deadline"
    c = client_for("monitor")
    html = c.get("/monitor/").get_data(as_text=True)
    overview = demo_engine.task_overview()
    assert overview["totals"]["overdue"] == 0
    assert sum(overview["totals"].values()) == len(open_tasks)
    assert 'id="no-overdue"' in html and "echarts.min.js" in html
    clock.advance(timedelta(days=30))
    overview = demo_engine.task_overview()
    assert overview["totals"]["overdue"] == len(with_due)
    html = c.get("/monitor/").get_data(as_text=True)
    for t in with_due:
        assert f'data-task="{t["id"]}"' in html
    group = with_due[0]["candidate_groups"][0]
    assert overview["by_group"][group]["overdue"] >= 1
    assert f'data-group="{group}"' in html
