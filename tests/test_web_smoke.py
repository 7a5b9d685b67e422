"""The app starts, sign-in works with CSRF, and pages need a signed-in user with the right role."""

from __future__ import annotations

from tests.web_support import csrf_of, login


def test_sign_in_needs_csrf_and_right_password(app):
    c = app.test_client()
    assert c.get("/").status_code == 302
    page = c.get("/login").get_data(as_text=True)
    token = csrf_of(page)
    r = c.post("/login", data={"username": "window_clerk", "password": "tongban-demo"})
    assert r.status_code == 400  # no CSRF token
    r = c.post("/login", data={"username": "window_clerk", "password": "wrong-password", "csrf_token": token})
    assert r.status_code == 401 and "用户名或密码错误" in r.get_data(as_text=True)
    r = c.post("/login", data={"username": "window_clerk", "password": "tongban-demo", "csrf_token": token})
    assert r.status_code == 302
    assert "王窗口" in c.get("/").get_data(as_text=True)


def test_sign_in_is_rate_limited(app):
    c = app.test_client()
    token = csrf_of(c.get("/login").get_data(as_text=True))
    for _ in range(5):
        c.post("/login", data={"username": "approver", "password": "nope-nope", "csrf_token": token})
    r = c.post("/login", data={"username": "approver", "password": "tongban-demo", "csrf_token": token})
    assert r.status_code == 401 and "15" in r.get_data(as_text=True)


def test_roles_gate_pages(client_for):
    clerk = client_for("window_clerk")
    assert clerk.get("/designer/").status_code == 403
    assert clerk.get("/admin/").status_code == 403
    assert client_for("designer").get("/designer/").status_code == 200
    assert client_for("admin").get("/admin/").status_code == 200


def test_english_is_available(client_for):
    c = client_for("window_clerk")
    assert "Inbox" in c.get("/?lang=en").get_data(as_text=True)
    assert "待办" in c.get("/?lang=zh_Hans").get_data(as_text=True)


def test_logout_needs_post_with_csrf(client_for):
    c = client_for("window_clerk")
    assert c.post("/logout").status_code == 400
    assert c.post("/logout", data={"csrf_token": c.csrf}).status_code == 302
    assert c.get("/").status_code == 302


def test_sign_in_cannot_redirect_off_site(app):
    c = app.test_client()
    token = csrf_of(c.get("/login").get_data(as_text=True))
    r = c.post("/login?next=//evil.example/x", data={"username": "window_clerk", "password": "tongban-demo",
                                                     "csrf_token": token})
    assert r.status_code == 302 and "evil" not in r.location
    assert login(app.test_client(), "leader")


def test_browser_sign_in(live_server, page):
    from tests.web_support import browser_login, shot

    page.goto(f"{live_server}/login")
    shot(page, "login")
    browser_login(page, live_server, "window_clerk")
    assert page.locator("#current-user").inner_text().startswith("王窗口")
    assert page.evaluate("typeof htmx") == "object"  # htmx came from node_modules


def test_signing_out_ends_the_session_also_for_a_copy_of_its_cookie(app, client_for):
    c = client_for("approver")
    stolen = app.test_client()
    for cookie in c._cookies.values():  # the same session cookie, as a thief would replay it
        stolen.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    assert stolen.get("/api/v1/me").status_code == 200
    assert c.post("/logout", data={"csrf_token": c.csrf}).status_code == 302
    assert stolen.get("/api/v1/me").status_code == 401
    assert stolen.get("/").status_code == 302  # to the sign-in page
    assert login(app.test_client(), "approver")  # signing in again works


def test_a_new_password_or_deactivation_ends_earlier_sessions(app, client_for):
    engine = app.extensions["tongban"]
    c = client_for("leader")
    assert c.get("/api/v1/me").status_code == 200
    engine.set_password("leader", "a-new-password-1", actor="admin")
    assert c.get("/api/v1/me").status_code == 401
    fresh = app.test_client()
    assert login(fresh, "leader", "a-new-password-1")
    assert fresh.get("/api/v1/me").status_code == 200
    engine.set_active("leader", False, actor="admin")
    engine.set_active("leader", True, actor="admin")
    assert fresh.get("/api/v1/me").status_code == 401
    engine.set_password("leader", "tongban-demo", actor="admin")


def test_an_unknown_name_costs_a_password_check_too(monkeypatch):
    """The sign-in answer takes as long for a name that does not exist (no enumeration by timing)."""
    from engine import directory

    calls = []
    real = directory._argon2()

    class Counting:
        def verify(self, hashed, password):
            calls.append(password)
            return real.verify(hashed, password)

        def hash(self, password):
            return real.hash(password)

    monkeypatch.setattr(directory, "_argon2", lambda: Counting())
    assert directory.check_password(None, "guess-1") is False
    assert calls == ["guess-1"]


def test_pages_and_api_answers_carry_security_headers(client_for):
    c = client_for("window_clerk")
    for url in ("/", "/api/v1/me", "/login"):
        h = c.get(url).headers
        assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY", url
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"], url
