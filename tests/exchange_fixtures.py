"""Fixtures for tests against the real demo data exchange on 127.0.0.1 (a free port, a thread).

``exchange``: the running exchange, with ``control(mode=..., times=..., delay=...)``, ``stop()``
(the exchange is down) and ``start()`` (back on the same port).
``xengine``: an engine (from ``engine``) whose ``exchange`` connector talks to it, with short
timeouts and no in-call retries so that failures show up quickly.
"""

from __future__ import annotations

import functools

import httpx
import pytest
from sqlalchemy import func, select

from connectors.exchange_data import generate
from connectors.exchange_server import ExchangeApp, make_http_server
from connectors.http import reset_breakers

API_KEY = "test-key-do-not-leak-7f3a"  # never appears in any output
SEED = 20240601


@functools.cache
def dataset():
    return generate(SEED, 3000)


class RunningExchange:
    def __init__(self):
        import threading

        self._threading = threading
        self.app = ExchangeApp(dataset(), api_key=API_KEY)
        self.server = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.server = make_http_server(self.app, "127.0.0.1", self.port)
        self.port = self.server.server_address[1]
        self._threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def control(self, **body) -> dict:
        r = httpx.post(f"{self.url}/api/v1/_control", json=body, headers={"X-API-Key": API_KEY})
        r.raise_for_status()
        return r.json()["controls"]

    @property
    def requests(self) -> int:
        return self.app.controls.requests

    def fail(self, failure: str) -> None:
        """``down`` (stopped), ``slow`` (1.5 s, over the test connector's 1 s timeout) or a mode."""
        if failure == "down":
            self.stop()
        elif failure == "slow":
            self.control(delay=1.5)
        else:
            self.control(mode=failure)

    def recover(self) -> None:
        if self.server is None:
            self.start()
        self.control(mode="ok", delay=0)


@pytest.fixture
def exchange():
    reset_breakers()
    ex = RunningExchange()
    yield ex
    ex.stop()
    reset_breakers()


def count(engine, model, **where) -> int:
    """Rows of ``model`` matching ``where`` (column = value), read in a fresh session."""
    with engine.readers() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


def configure_exchange(engine, exchange, **extra):
    config = {"base_url": exchange.url, "timeout": 1.0, "retries": 0, "backoff": 0.0, "breaker_failures": 100,
              **extra}
    engine.set_connector_config("exchange", config, {"api_key": API_KEY}, actor="admin")


class ApiCaller:
    """REST calls as one user with a bearer token: ``caller.post("/instances", json=...)``
    (paths under /api/v1)."""

    def __init__(self, app, engine, name: str):
        self.client = app.test_client()
        secret = engine.issue_token(name, f"test {name}", actor="admin")["token"]
        self.headers = {"Authorization": f"Bearer {secret}"}

    def __getattr__(self, method):
        def call(path, **kw):
            kw["headers"] = {**self.headers, **kw.get("headers", {})}
            return getattr(self.client, method)("/api/v1" + path, **kw)

        return call


class LibraryCase:
    """A library process deployed on the demo engine, its exchange connector on the real demo
    exchange; ``api(user)`` gives that user's REST caller (one per user)."""

    def __init__(self, engine, exchange, app, folder):
        configure_exchange(engine, exchange)
        engine.deploy_paths([folder], actor="designer")
        self.engine, self.ex, self._app, self._callers = engine, exchange, app, {}

    def api(self, name: str) -> ApiCaller:
        if name not in self._callers:
            self._callers[name] = ApiCaller(self._app, self.engine, name)
        return self._callers[name]

    def close(self):
        self.engine.connector_pool.close()


# ---- a library case driven through its REST API (``case``: a LibraryCase or alike) ----------------
def open_tasks(case, iid, user="admin") -> list[dict]:
    r = case.api(user).get(f"/tasks?instance_id={iid}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def the_task(case, iid, user, bpmn_id) -> dict:
    tasks = [t for t in open_tasks(case, iid, user) if t["bpmn_id"] == bpmn_id]
    assert len(tasks) == 1, open_tasks(case, iid)
    return tasks[0]


def act(case, user, task, decision, **data) -> dict:
    """Claim the task and complete it with a decision and form data, as ``user``."""
    api = case.api(user)
    assert api.post(f"/tasks/{task['id']}/claim").status_code == 200
    r = api.post(f"/tasks/{task['id']}/complete", json={"decision": decision, "data": data})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def instance(case, iid, user="admin") -> dict:
    r = case.api(user).get(f"/instances/{iid}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def pushes_of(case, uscc) -> list[dict]:
    """What the demo exchange recorded as pushed for the enterprise ("" for every enterprise)."""
    r = httpx.get(f"{case.ex.url}/api/v1/pushes", params={"uscc": uscc}, headers={"X-API-Key": API_KEY})
    r.raise_for_status()
    return r.json()["pushes"]


def pushes_by_department(case, uscc) -> dict[str, dict]:
    return {p["department"]: p for p in pushes_of(case, uscc)}


@pytest.fixture
def xengine(engine, exchange):
    configure_exchange(engine, exchange)
    yield engine
    engine.connector_pool.close()


def good_enterprise(index: int = 0) -> dict:
    ds = dataset()
    codes = [c for c, e in ds.enterprises.items()
             if e["status"] == "存续" and c not in ds.blacklist and ds.leases_by_lessee.get(c)]
    return ds.enterprises[codes[index]]


def blacklisted_enterprise() -> dict:
    ds = dataset()
    return ds.enterprises[next(c for c in ds.blacklist if c in ds.enterprises)]
