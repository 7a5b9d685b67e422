"""Pull requests written while the step that needs them is saved, answers read after its commit.

Against the real demo exchange on 127.0.0.1; the HTTP connector's early path on its own against a
small local HTTP server."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import select

from connectors import http as http_connector
from connectors.http import EarlyCall, HttpConnector, breaker_for, reset_breakers
from engine import pulls
from engine.errors import ConnectorError
from engine.models import HumanTask, Instance, Job, PullLog
from tests.conftest import example_files
from tests.exchange_fixtures import count, good_enterprise
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture
from tests.exchange_fixtures import xengine as xengine  # noqa: F401 - fixture


def start(engine, index=0):
    ent = good_enterprise(index)
    return engine.start("pull_enterprise", {"uscc": ent["uscc"], "applicant_name": ent["legal_rep"]},
                        actor="window_clerk")["instance_id"]


@pytest.fixture
def spied(monkeypatch):
    """What went out early and what was read: lists of (operation, EarlyCall | None) and answers."""
    sent, read = [], []
    original_send, original_result = HttpConnector.send_early, EarlyCall.result

    def send_early(self, operation, inputs):
        call = original_send(self, operation, inputs)
        sent.append((operation, call))
        return call

    def result(self):
        res = original_result(self)
        read.append((self.operation, res.request_id))
        return res

    monkeypatch.setattr(HttpConnector, "send_early", send_early)
    monkeypatch.setattr(EarlyCall, "result", result)
    return sent, read


def warm(engine):
    """The first pull of a connector is made after the commit and leaves a connection open."""
    engine.deploy(example_files("pull_enterprise.bpmn"))
    iid = start(engine, 5)
    assert engine.tasks(instance_id=iid)[0]["status"] == "open"


def test_the_request_goes_out_while_the_step_is_saved_and_its_answer_opens_the_task(xengine, exchange, spied):
    sent, read = spied
    warm(xengine)
    assert all(call is None for _, call in sent)  # nothing was open yet: asked after the commit
    sent.clear()
    before = exchange.requests
    ent = good_enterprise(0)
    iid = start(xengine, 0)
    # written during the start's transaction, read after it: one request, one answer, one log entry
    assert [op for op, call in sent] == ["enterprise"] and sent[0][1] is not None
    assert exchange.requests == before + 1
    [(op, request_id)] = read
    [task] = xengine.tasks(instance_id=iid)
    assert task["status"] == "open"
    view = xengine.task(task["id"], "window_clerk")
    assert view["data"]["enterprise_name"] == ent["enterprise_name"]
    assert "business_scope" not in view["data"]  # still only the declared fields
    [entry] = xengine.pull_log(iid)
    assert entry["outcome"] == "ok" and entry["request_id"] == request_id and len(request_id) == 32
    # the next step's pull goes the same way and the process goes on
    xengine.complete(task["id"], "window_clerk", {"decision": "accept"})
    [second] = xengine.tasks(instance_id=iid)
    assert second["status"] == "open" and [op for op, _ in read] == ["enterprise", "premises"]
    assert xengine.task(second["id"], "approver")["data"]["premises_kind"] == "租赁"
    assert xengine.verify_audit().ok


def test_without_early_sending_every_request_is_made_after_the_commit(xengine, exchange, spied):
    sent, read = spied
    xengine.send_pulls_early = False
    warm(xengine)
    iid = start(xengine, 0)
    assert sent == [] and read == []
    assert xengine.tasks(instance_id=iid)[0]["status"] == "open"


def test_a_connection_the_service_closed_meanwhile_costs_nothing_but_a_new_request(xengine, exchange, spied):
    sent, read = spied
    warm(xengine)
    exchange.stop()  # the kept-alive connection dies with the server
    exchange.start()
    before = exchange.requests
    iid = start(xengine, 1)
    [task] = xengine.tasks(instance_id=iid)
    assert task["status"] == "open"
    assert xengine.task(task["id"], "window_clerk")["data"]["enterprise_name"] == good_enterprise(1)["enterprise_name"]
    assert exchange.requests == before + 1  # the request on the dead connection never reached anyone
    assert [p["outcome"] for p in xengine.pull_log(iid)] == ["ok"]
    # a fresh connection is open again: the next start's request goes out early and is read
    read.clear()
    iid = start(xengine, 2)
    assert [op for op, _ in read] == ["enterprise"]


@pytest.mark.parametrize("failure", ["error500", "malformed", "wrong_schema", "slow", "down"])
def test_a_failing_early_answer_is_judged_like_any_answer(xengine, exchange, clock, spied, failure):
    sent, _read = spied
    warm(xengine)
    exchange.fail(failure)
    iid = start(xengine, 0)
    assert sent[-1][1] is not None or failure == "down"  # down: the write may already fail
    [task] = xengine.tasks(instance_id=iid, status="all")
    assert task["status"] == "waiting"
    [entry] = xengine.pull_log(iid)
    assert entry["outcome"] == "error" and entry["error"]
    with xengine.readers() as s:
        job = s.scalars(select(Job).where(Job.instance_id == iid, Job.kind == "pull")).one()
        assert job.status == "pending" and job.attempts == 1 and job.locked_by is None
    exchange.recover()
    clock.advance(timedelta(minutes=10))
    assert xengine.run_due_jobs("test-worker") == {"done": 1}
    [task] = xengine.tasks(instance_id=iid)
    assert xengine.task(task["id"], "window_clerk")["data"]["enterprise_name"] == good_enterprise(0)["enterprise_name"]
    assert sorted(p["outcome"] for p in xengine.pull_log(iid)) == ["error", "ok"]
    assert count(xengine, HumanTask, instance_id=iid) == 1


def test_a_step_that_fails_after_its_request_went_out_closes_it_unread(xengine, exchange, spied, monkeypatch, caplog):
    from engine import runtime

    sent, read = spied
    warm(xengine)
    sent.clear()
    instances = count(xengine, Instance)

    def broken(wf):
        raise RuntimeError("disk full")

    monkeypatch.setattr(runtime, "dump_state", broken)  # after the task sync (and the early request)
    with caplog.at_level(logging.WARNING, logger="tongban.pulls"), pytest.raises(RuntimeError, match="disk full"):
        start(xengine, 0)
    [(op, call)] = sent
    assert op == "enterprise" and call is not None
    assert read == [] and call._conn is None  # closed, never read
    assert "closed unread" in caplog.text
    # nothing of the failed start was written: no instance, task, job or pull log entry
    assert count(xengine, Instance) == instances
    assert count(xengine, Job, kind="pull", status="pending") == 0
    assert count(xengine, PullLog, outcome="ok") == 1  # the warm-up's
    monkeypatch.undo()
    iid = start(xengine, 0)
    assert xengine.tasks(instance_id=iid)[0]["status"] == "open"


# ---- the HTTP connector's early path on its own -------------------------------------------------
class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.seen.append((self.command, self.path, self.headers.get("X-Token")))
        body = json.dumps({"result": {"name": "测试企业", "ok": True}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-Id", f"r{len(self.seen)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    reset_breakers()
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()
    reset_breakers()


def _connector(base_url, **config):
    conn = HttpConnector()
    conn.configure({"base_url": base_url, "retries": 0, "api_key_header": "X-Token", "operations": {
        "ent": {"method": "GET", "path": "/ent/{code}", "result_path": "result",
                "input_schema": {"type": "object", "properties": {"code": {"type": "string"},
                                                                  "full": {"type": "boolean"}},
                                 "required": ["code"]},
                "output_schema": {"type": "object", "properties": {"name": {"type": "string"},
                                                                   "ok": {"type": "boolean"}}}}}, **config},
                   {"api_key": "s3cret"})
    return conn


def test_the_http_connector_writes_a_get_with_its_base_path_and_query_like_a_normal_call(recorder):
    url, seen = recorder
    conn = _connector(url + "/share/v1/")
    assert conn.send_early("ent", {"code": "A 1"}) is None  # no connection is open yet
    normal = conn.call("ent", {"code": "A 1", "full": True})
    conn.prepare_early()
    early = conn.send_early("ent", {"code": "A 1", "full": True})
    assert isinstance(early, EarlyCall)
    res = early.result()
    assert res.data == normal.data == {"name": "测试企业", "ok": True} and res.request_id == "r2"
    assert seen[0] == seen[1] == ("GET", "/share/v1/ent/A%201?code=A+1&full=true", "s3cret")
    with pytest.raises(ConnectorError, match="already read"):
        early.result()
    # the connection went back for the next one
    assert conn.send_early("ent", {"code": "B"}).result().request_id == "r3"
    conn.close()


def test_no_early_path_where_it_would_differ_from_a_normal_call(recorder, monkeypatch):
    url, seen = recorder
    # a test or in-process transport
    mocked = HttpConnector(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))
    mocked.configure({"base_url": url, "operations": {"ent": {}}}, {})
    mocked.prepare_early()
    assert mocked.send_early("ent", {}) is None
    # a proxy configured for the URL (read once per connector and base URL)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    proxied = _connector(url)
    proxied.prepare_early()
    assert proxied._idle == [] and proxied.send_early("ent", {"code": "A"}) is None
    monkeypatch.delenv("HTTP_PROXY")
    conn = _connector(url)
    conn.prepare_early()
    # an open breaker (the normal call fails fast), inputs a normal call would refuse
    breaker = breaker_for(f"{url}|ent", 5, 30.0)
    for _ in range(5):
        breaker.failure()
    assert conn.send_early("ent", {"code": "A"}) is None
    breaker.success()
    assert conn.send_early("ent", {}) is None  # 'code' is required
    assert seen == []
    call = conn.send_early("ent", {"code": "A"})
    assert call is not None
    call.discard()
    conn.close()


def test_the_engine_uses_a_connector_only_while_its_configuration_copy_is_fresh(xengine, exchange, monkeypatch):
    warm(xengine)
    assert xengine.connector_pool.fresh("exchange") is not None
    monkeypatch.setattr(pulls, "CONFIG_TTL", 0.0)
    assert xengine.connector_pool.fresh("exchange") is None
    assert xengine.connector_pool.fresh("no-such-connector") is None


def test_early_idle_connections_are_bounded(recorder):
    url, _seen = recorder
    conn = _connector(url)
    calls = []
    for _ in range(http_connector.EARLY_IDLE + 2):
        conn.prepare_early()
        calls.append(conn.send_early("ent", {"code": "A"}))  # each takes the one idle connection
    for call in calls:
        call.result()
    assert len(conn._idle) == http_connector.EARLY_IDLE
    conn.close()
    assert conn._idle == []


def test_an_early_write_that_would_wait_is_dropped_and_nothing_connects_inside_the_step():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # accepts connections (the backlog) but never reads a byte
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        conn = HttpConnector()
        conn.configure({"base_url": url, "retries": 0, "operations": {"big": {
            "method": "POST", "input_schema": {"type": "object", "properties": {"blob": {"type": "string"}}}}}}, {})
        conn.prepare_early()
        [idle] = conn._idle
        # far more than the socket buffers take at once: the write would wait for the reader
        assert conn.send_early("big", {"blob": "x" * (32 * 1024 * 1024)}) is None
        assert idle.sock is None and conn._idle == []  # that connection is gone, not reused
        # an idle connection that lost its socket is not reconnected inside the step
        conn.prepare_early()
        conn._idle[0].close()
        assert conn.send_early("big", {"blob": "x"}) is None
        conn.close()
    finally:
        listener.close()
