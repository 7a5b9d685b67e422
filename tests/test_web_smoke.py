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


def test_signing_out_ends_this_browser_only_and_everywhere_ends_all(app, client_for):
    office, home = client_for("approver"), client_for("approver")
    assert office.post("/logout", data={"csrf_token": office.csrf}).status_code == 302
    assert office.get("/api/v1/me").status_code == 401
    assert home.get("/api/v1/me").status_code == 200  # the other browser is still signed in
    third = client_for("approver")
    assert 'id="logout-everywhere"' in third.get("/").get_data(as_text=True)
    assert third.post("/logout", data={"csrf_token": third.csrf, "everywhere": "1"}).status_code == 302
    assert home.get("/api/v1/me").status_code == 401 and third.get("/api/v1/me").status_code == 401
    newest_first = app.extensions["tongban"].trail()
    assert [e["detail"].get("reason") for e in newest_first if e["action"] == "sign_out"][:2] == [
        "everywhere", "sign_out"]


def _age(client, **seconds):
    """Move the session's own stamps back, as if that much time had passed."""
    with client.session_transaction() as sess:
        for key, value in seconds.items():
            sess[key] -= value


def test_an_idle_session_ends_and_says_why(app, client_for):
    c = client_for("window_clerk")
    stolen = app.test_client()
    for cookie in c._cookies.values():
        stolen.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    _age(c, seen=29 * 60)
    assert c.get("/").status_code == 200  # 29 minutes idle: still signed in, and the request counts
    _age(c, seen=29 * 60)
    assert c.get("/").status_code == 200
    _age(c, seen=31 * 60)
    r = c.get("/")
    assert r.status_code == 302 and "ended=idle" in r.headers["Location"]
    assert "长时间未操作" in c.get(r.headers["Location"]).get_data(as_text=True)
    assert c.get("/api/v1/me").status_code == 401
    assert stolen.get("/api/v1/me").status_code == 401  # a copy of the cookie ended with it
    trail = app.extensions["tongban"].trail()
    assert [e["detail"] for e in trail if e["action"] == "sign_out"][0] == {"user": "window_clerk", "reason": "idle"}
    assert client_for("window_clerk").get("/api/v1/me").status_code == 200  # signing in again works


def test_a_session_ends_after_its_longest_time_however_busy(app, client_for):
    c = client_for("leader")
    _age(c, since=11 * 3600)
    assert c.get("/api/v1/me").status_code == 200
    _age(c, since=2 * 3600)  # 13 hours since signing in, active all along
    r = c.get("/")
    assert r.status_code == 302 and "ended=expired" in r.headers["Location"]
    assert "Your session reached its maximum length" in c.get(r.headers["Location"] + "&lang=en").get_data(as_text=True)


def test_session_limits_are_configurable_and_can_be_off(demo_engine):
    from web import create_app

    app = create_app(demo_engine, {"TESTING": True, "SECRET_KEY": "s", "SESSION_IDLE_MINUTES": 0,
                                   "SESSION_MAX_HOURS": 0})
    c = app.test_client()
    login(c, "approver")
    _age(c, seen=30 * 24 * 3600, since=30 * 24 * 3600)
    assert c.get("/api/v1/me").status_code == 200
    short = create_app(demo_engine, {"TESTING": True, "SECRET_KEY": "s", "SESSION_IDLE_MINUTES": 5})
    c = short.test_client()
    login(c, "approver")
    _age(c, seen=6 * 60)
    assert c.get("/api/v1/me").status_code == 401


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


def test_a_session_from_before_session_ids_signs_in_again(client_for):
    c = client_for("approver")
    with c.session_transaction() as sess:
        del sess["sid"]
    assert c.get("/api/v1/me").status_code == 401
    assert c.get("/").status_code == 302
