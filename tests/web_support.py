"""Fixtures for web tests: the app on a fresh database with the demo org and users,
signed-in test clients, a live server on 127.0.0.1 and Debian's chromium driven by Playwright.

Screenshots go to test-output/screenshots/ (``shot(page, name)``).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from cli.demo import DEMO_PASSWORD, seed
from engine.api import Engine
from web import create_app

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("TONGBAN_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def demo_engine(db_url, clock):
    """Engine with the demo departments, groups, users (password DEMO_PASSWORD) and example processes
    (not the process library: a library test deploys its own folder of processes/)."""
    eng = Engine(db_url, clock=clock, script_timeout=1.0)
    eng.upgrade()
    seed(eng, library=False)
    yield eng
    eng.db.dispose()


@pytest.fixture
def app(demo_engine):
    return create_app(demo_engine, {"TESTING": True, "SECRET_KEY": "test-secret"})


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert m, "page has no CSRF token"
    return m.group(1)


def login(client, name: str, password: str = DEMO_PASSWORD):
    """Sign ``client`` in through the sign-in form; returns the session's CSRF token."""
    token = csrf_of(client.get("/login").get_data(as_text=True))
    r = client.post("/login", data={"username": name, "password": password, "csrf_token": token})
    assert r.status_code == 302, f"sign-in of {name} failed: {r.status_code}"
    return csrf_of(client.get("/").get_data(as_text=True))


@pytest.fixture
def client_for(app):
    """``client_for("window_clerk")`` → a test client signed in as that user, with ``.csrf`` set."""

    def make(name: str):
        c = app.test_client()
        c.csrf = login(c, name)
        return c

    return make


@pytest.fixture
def live_server(app):
    """The app served on a free port of 127.0.0.1 in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(30000)  # a loaded 2-core CI machine can be slow; tests wait for states, not time
    yield pg
    context.close()


@pytest.fixture
def context_for(browser, live_server):
    """``context_for("leader")`` → a page in a fresh browser context, signed in as that user."""
    contexts = []

    def make(name: str):
        ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
        contexts.append(ctx)
        pg = ctx.new_page()
        pg.set_default_timeout(30000)
        browser_login(pg, live_server, name)
        return pg

    yield make
    for ctx in contexts:
        ctx.close()


def browser_login(page, base_url: str, name: str, password: str = DEMO_PASSWORD) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    with page.expect_navigation(timeout=60000) as nav:
        page.click("button[type=submit]")
    if "/login" in page.url:  # say why: the status and the page's own message
        response = nav.value
        message = page.locator(".error, [role=alert], h1").all_inner_texts()
        raise AssertionError(f"sign-in of {name} failed: {page.url} "
                             f"{response.status if response else '-'} {message}")


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
