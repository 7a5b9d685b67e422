"""Connectors, one by one, against mock transports (httpx.MockTransport) and a temporary SQLite file."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from connectors.exchange import ExchangeConnector
from connectors.http import CircuitBreaker, HttpConnector, reset_breakers
from connectors.sql import SqlConnector
from engine.connectors import Connector, Operation, Registry, Result, check_output, default_registry
from engine.errors import ConnectorError

OPS = {"enterprise": {
    "method": "GET", "path": "/ent/{uscc}", "result_path": "data", "timeout": 0.5,
    "input_schema": {"type": "object", "properties": {"uscc": {"type": "string"}}, "required": ["uscc"]},
    "output_schema": {"type": "object", "properties": {"name": {"type": "string"}, "capital": {"type": "number"}},
                      "required": ["name"]}},
    "report": {"method": "POST", "path": "/report",
               "output_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}


@pytest.fixture(autouse=True)
def _fresh_breakers():
    reset_breakers()
    yield
    reset_breakers()


def http_connector(handler, **config) -> HttpConnector:
    conn = HttpConnector(transport=httpx.MockTransport(handler))
    conn.configure({"base_url": "http://share.test", "operations": OPS, "retries": 2, "backoff": 0.0, **config},
                   {"api_key": "s3cret"})
    return conn


def test_registry_loads_the_built_ins_from_entry_points():
    reg = default_registry()
    assert {"http", "sql", "exchange"} <= set(reg.names())
    assert reg.cls("exchange") is ExchangeConnector
    with pytest.raises(ConnectorError):
        reg.cls("nope")


def test_a_third_party_connector_registers_and_describes_itself():
    class Echo(Connector):
        name = "echo"

        def operations(self):
            return {"say": Operation("say", output_schema={"type": "object", "properties": {"said": {"type": "string"}}})}

        def call(self, operation, inputs):
            return Result({"said": inputs.get("text")})

    reg = Registry()
    reg.register(Echo)
    assert reg.names() == ["echo"]
    assert reg.new("echo").call("say", {"text": "你好"}).data == {"said": "你好"}
    assert reg.unconfigured("echo").describe()["operations"][0]["name"] == "say"


def test_check_output_accepts_declared_types_and_rejects_others():
    op = Operation("x", output_schema={"type": "object", "properties": {"n": {"type": "integer"}, "b": {"type": "boolean"}},
                                       "required": ["n"]})
    assert check_output(op, {"n": 3, "b": True}) == {"n": 3, "b": True}
    for bad in ([1], {"b": True}, {"n": "3"}, {"n": True}, {"n": 1, "b": "yes"}):
        with pytest.raises(ConnectorError, match="wrong schema|not an object"):
            check_output(op, bad)


def test_http_get_quotes_path_inputs_sends_the_key_and_returns_the_declared_object():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={"data": {"name": "上海某便利店", "capital": 100}}, headers={"X-Request-Id": "r-1"})

    res = http_connector(handler).call("enterprise", {"uscc": "91/31 ?"})
    assert res.data == {"name": "上海某便利店", "capital": 100}
    assert res.request_id == "r-1"
    assert seen[0].url.path == "/ent/91%2F31%20%3F" or seen[0].url.raw_path.startswith(b"/ent/91%2F31%20%3F")
    assert seen[0].headers["X-API-Key"] == "s3cret"
    assert seen[0].method == "GET"


def test_http_post_sends_json():
    def handler(request):
        assert request.method == "POST"
        assert json.loads(request.content) == {"a": 1}
        return httpx.Response(200, json={"ok": True, "request_id": "in-body"})

    res = http_connector(handler).call("report", {"a": 1})
    assert res.data["ok"] is True and res.request_id == "in-body"


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_http_retries_5xx_and_429_then_succeeds(status):
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(status, json={"error": "x"})
        return httpx.Response(200, json={"data": {"name": "n"}})

    assert http_connector(handler).call("enterprise", {"uscc": "1"}).data == {"name": "n"}
    assert len(calls) == 3


def test_http_gives_up_after_the_retries_with_a_retryable_error():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503)

    with pytest.raises(ConnectorError) as exc:
        http_connector(handler, retries=1).call("enterprise", {"uscc": "1"})
    assert exc.value.retryable and "503" in str(exc.value)
    assert len(calls) == 2


def test_http_backoff_is_exponential():
    stamps = []

    def handler(request):
        stamps.append(time.perf_counter())
        return httpx.Response(500)

    with pytest.raises(ConnectorError):
        http_connector(handler, retries=2, backoff=0.05).call("enterprise", {"uscc": "1"})
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095


def test_http_timeout_and_connection_errors_are_retryable():
    def slow(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ConnectorError, match="no answer within 0.5s") as exc:
        http_connector(slow, retries=0).call("enterprise", {"uscc": "1"})
    assert exc.value.retryable

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ConnectorError, match="cannot connect") as exc:
        http_connector(refused, retries=0).call("enterprise", {"uscc": "1"})
    assert exc.value.retryable


def test_http_malformed_json_and_wrong_schema_are_errors():
    with pytest.raises(ConnectorError, match="not valid JSON"):
        http_connector(lambda r: httpx.Response(200, content=b'{"data": {'), retries=0).call("enterprise", {"uscc": "1"})
    with pytest.raises(ConnectorError, match="wrong schema"):
        http_connector(lambda r: httpx.Response(200, json={"result": {}}), retries=0).call("enterprise", {"uscc": "1"})
    with pytest.raises(ConnectorError, match="wrong schema"):
        http_connector(lambda r: httpx.Response(200, json={"data": {"name": 5}}), retries=0).call("enterprise", {"uscc": "1"})


def test_http_client_errors_are_not_retried_and_never_show_the_key():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(404, json={"error": "no"})

    with pytest.raises(ConnectorError) as exc:
        http_connector(handler).call("enterprise", {"uscc": "1"})
    assert not exc.value.retryable and len(calls) == 1
    with pytest.raises(ConnectorError, match="refused") as exc:
        http_connector(lambda r: httpx.Response(401)).call("enterprise", {"uscc": "1"})
    assert "s3cret" not in str(exc.value)


def test_http_missing_input_and_unknown_operation_are_not_retryable():
    conn = http_connector(lambda r: httpx.Response(200, json={"data": {"name": "n"}}))
    with pytest.raises(ConnectorError, match="needs uscc") as exc:
        conn.call("enterprise", {})
    assert not exc.value.retryable
    with pytest.raises(ConnectorError, match="no operation") as exc:
        conn.call("nope", {})
    assert not exc.value.retryable


def test_circuit_breaker_opens_fails_fast_and_half_opens():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(500)

    conn = http_connector(handler, retries=0, breaker_failures=3, breaker_reset=0.2)
    for _ in range(3):
        with pytest.raises(ConnectorError, match="HTTP 500"):
            conn.call("enterprise", {"uscc": "1"})
    with pytest.raises(ConnectorError, match="circuit open"):
        conn.call("enterprise", {"uscc": "1"})
    assert len(calls) == 3  # the open breaker did not call
    # another endpoint (operation) has its own breaker
    with pytest.raises(ConnectorError, match="HTTP 500"):
        conn.call("report", {})
    time.sleep(0.25)
    with pytest.raises(ConnectorError, match="HTTP 500"):
        conn.call("enterprise", {"uscc": "1"})  # half-open: one trial goes through
    assert len(calls) == 5


def test_breaker_closes_after_a_success():
    now = [0.0]
    b = CircuitBreaker(2, 10, clock=lambda: now[0])
    b.failure()
    b.failure()
    assert b.state == "open" and not b.allow()
    now[0] = 11
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def test_exchange_client_has_fixed_operations_and_posts_to_the_query_route():
    def handler(request):
        assert request.url.path == "/api/v1/query/credit"
        assert request.headers["X-API-Key"] == "k"
        assert json.loads(request.content) == {"subject_code": "X"}
        return httpx.Response(200, json={"request_id": "abc", "data": {"found": True, "blacklisted": False}},
                              headers={"X-Request-Id": "abc"})

    conn = ExchangeConnector(transport=httpx.MockTransport(handler))
    conn.configure({"base_url": "http://ex.test", "retries": 0}, {"api_key": "k"})
    assert {"enterprise", "identity", "licences", "licence", "credit", "property", "premises"} <= set(conn.operations())
    res = conn.call("credit", {"subject_code": "X"})
    assert res.data == {"found": True, "blacklisted": False} and res.request_id == "abc"


def test_exchange_client_embedded_answers_from_the_in_process_demo_data():
    conn = ExchangeConnector()
    conn.configure({}, {})
    from connectors.exchange import embedded_app

    code = next(iter(embedded_app().data.enterprises))
    res = conn.call("enterprise", {"uscc": code})
    assert res.data["found"] is True and res.data["uscc"] == code and res.request_id


@pytest.fixture
def sqlite_source(tmp_path):
    path = tmp_path / "health.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE health (id_number TEXT, name TEXT, valid_to TEXT)")
    con.executemany("INSERT INTO health VALUES (?, ?, ?)",
                    [("11010519491231002X", "张三", "2025-12-31"), ("110105195001010017", "李四", "2024-01-31")])
    con.commit()
    con.close()
    return f"sqlite:///{path}", path


def sql_connector(url, **ops) -> SqlConnector:
    conn = SqlConnector()
    conn.configure({"operations": {
        "health": {"query": "SELECT name, valid_to FROM health WHERE id_number = :id_number",
                   "input_schema": {"type": "object", "properties": {"id_number": {"type": "string"}},
                                    "required": ["id_number"]},
                   "output_schema": {"type": "object", "properties": {"found": {"type": "boolean"},
                                                                      "name": {"type": "string"}}}},
        "all": {"query": "SELECT id_number, name FROM health ORDER BY id_number", "many": True},
        **ops}}, {"url": url})
    return conn


def test_sql_binds_parameters_and_returns_one_row(sqlite_source):
    conn = sql_connector(sqlite_source[0])
    assert conn.call("health", {"id_number": "11010519491231002X"}).data == {
        "found": True, "name": "张三", "valid_to": "2025-12-31"}
    # an injection attempt is just a value that matches nothing
    assert conn.call("health", {"id_number": "x' OR '1'='1"}).data == {"found": False}
    rows = conn.call("all", {}).data
    assert rows["count"] == 2 and rows["rows"][0]["name"] == "张三"
    conn.close()


@pytest.mark.parametrize("query", [
    "DELETE FROM health", "SELECT 1; DELETE FROM health", "UPDATE health SET name = 'x'",
    "WITH x AS (SELECT 1) DELETE FROM health", "ATTACH DATABASE 'x' AS y"])
def test_sql_refuses_anything_but_one_select(sqlite_source, query):
    conn = sql_connector(sqlite_source[0], bad={"query": query})
    with pytest.raises(ConnectorError, match="single statement|read-only") as exc:
        conn.call("bad", {})
    assert not exc.value.retryable
    con = sqlite3.connect(sqlite_source[1])
    assert con.execute("SELECT count(*) FROM health").fetchone()[0] == 2


def test_sql_runs_read_only_even_when_a_function_would_write(sqlite_source):
    # a SELECT that tries to write through a side door still runs with query_only on
    conn = sql_connector(sqlite_source[0], sneaky={"query": "SELECT * FROM pragma_user_version"})
    assert conn.call("sneaky", {}).data["found"] is True
    eng = conn.engine()
    with eng.connect() as c:
        assert c.exec_driver_sql("PRAGMA query_only").scalar() == 0  # the connection is given back writable


def test_sql_without_url_is_a_configuration_error():
    conn = SqlConnector()
    conn.configure({"operations": {"x": {"query": "SELECT 1"}}}, {})
    with pytest.raises(ConnectorError, match="no database URL") as exc:
        conn.call("x", {})
    assert not exc.value.retryable
