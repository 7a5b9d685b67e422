"""``http``: JSON over HTTP with httpx.

Per-operation timeouts; retries with exponential backoff (``backoff * 2**n`` seconds) for
timeouts, connection errors, 5xx and 429; a circuit breaker per endpoint (base URL +
operation) that opens after ``breaker_failures`` consecutive failures and lets one trial
call through after ``breaker_reset`` seconds. Operations come from configuration:

    {"base_url": "https://share.example.gov.cn", "timeout": 5,
     "operations": {"enterprise": {"method": "GET", "path": "/ent/{uscc}", "result_path": "data",
                                    "input_schema": {...}, "output_schema": {...}, "timeout": 3}}}

Secrets: ``api_key`` (sent in the header named by ``api_key_header``, default ``X-API-Key``).

Early requests (``send_early``): the engine may write a pull's request on an idle kept-alive
connection while the step that makes the task ready is still being saved, and read the answer
(``EarlyCall.result``) right after that step commits, so the service works while the engine
writes. The answer is judged exactly as ``call()`` judges it; a closed connection or anything
unusual falls back to ``call()``. Only plain http(s) URLs without a proxy take this path.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

from engine.connectors import Connector, Operation, Result, check_inputs, check_output
from engine.errors import ConnectorError


class CircuitBreaker:
    def __init__(self, failures: int = 5, reset_after: float = 30.0, clock=time.monotonic):
        self.threshold = failures
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            if self.opened_at is None:
                return True
            if self.clock() - self.opened_at >= self.reset_after:
                self.opened_at = self.clock()  # half-open: one trial, the others keep failing fast
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = self.clock()

    @property
    def state(self) -> str:
        return "closed" if self.opened_at is None else "open"


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(endpoint: str, failures: int, reset_after: float) -> CircuitBreaker:
    with _breakers_lock:
        b = _breakers.get(endpoint)
        if b is None or (b.threshold, b.reset_after) != (failures, reset_after):
            b = _breakers[endpoint] = CircuitBreaker(failures, reset_after)
        return b


def reset_breakers() -> None:
    with _breakers_lock:
        _breakers.clear()


def _dig(value, path: str | None):
    for part in (path or "").split("."):
        if part:
            if not isinstance(value, dict) or part not in value:
                raise ConnectorError(f"the answer has no '{path}' (wrong schema)")
            value = value[part]
    return value


class HttpConnector(Connector):
    name = "http"
    title = "HTTP/JSON"
    dynamic_operations = True
    config_schema = {
        "base_url": {"title": "Base URL", "type": "string"},
        "timeout": {"title": "Timeout (s)", "type": "number", "default": 5.0},
        "retries": {"title": "Retries per call", "type": "integer", "default": 2},
        "backoff": {"title": "Backoff base (s)", "type": "number", "default": 0.2},
        "breaker_failures": {"title": "Circuit breaker: failures to open", "type": "integer", "default": 5},
        "breaker_reset": {"title": "Circuit breaker: seconds open", "type": "number", "default": 30.0},
        "api_key_header": {"title": "API key header", "type": "string", "default": "X-API-Key"},
        "operations": {"title": "Operations", "type": "object", "default": {}},
        "api_key": {"title": "API key", "type": "string", "secret": True},
    }

    def __init__(self, transport: httpx.BaseTransport | None = None):
        super().__init__()
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []  # kept-alive connections for early requests
        self._target, self._target_key = None, None

    # ---- configuration ------------------------------------------------------------------
    def operations(self) -> dict[str, Operation]:
        out = {}
        for name, spec in (self.config.get("operations") or {}).items():
            out[name] = Operation(name, spec.get("title", ""),
                                  spec.get("input_schema") or {"type": "object", "properties": {}},
                                  spec.get("output_schema") or {"type": "object", "properties": {}},
                                  spec.get("timeout"))
        return out

    def _route(self, operation: str) -> dict:
        return dict((self.config.get("operations") or {}).get(operation) or {})

    def base_url(self) -> str:
        url = (self.config.get("base_url") or "").rstrip("/")
        if not url:
            raise ConnectorError(f"connector '{self.name}' has no base URL configured", retryable=False)
        return url

    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(transport=self._transport, base_url=self.base_url(),
                                            headers={"Accept": "application/json"})
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def headers(self) -> dict:
        key = self.secrets.get("api_key")
        return {self.config.get("api_key_header") or "X-API-Key": key} if key else {}

    # ---- calling ------------------------------------------------------------------------
    def _prepared(self, operation: str, inputs: dict):
        op = self.operation(operation)
        check_inputs(op, inputs)
        route = self._route(operation)
        method = (route.get("method") or "POST").upper()
        path = (route.get("path") or f"/{operation}").format_map(
            {k: quote(str(v), safe="") for k, v in inputs.items()})
        return op, route, method, path

    def call(self, operation: str, inputs: dict) -> Result:
        op, route, method, path = self._prepared(operation, inputs)
        answer, rid = self.request(operation, method, path, inputs, op.timeout)
        return self._result(op, route, answer, rid)

    def _result(self, op: Operation, route: dict, answer, rid) -> Result:
        data = _dig(answer, route.get("result_path"))
        return Result(check_output(op, data), rid, self.source())

    def source(self) -> str:
        return self.config.get("source") or self.title or self.name

    def _settings(self, operation: str, timeout: float | None):
        timeout = float(timeout or self.config.get("timeout") or 5.0)
        retries = int(self.config.get("retries") if self.config.get("retries") is not None else 2)
        backoff = float(self.config.get("backoff") if self.config.get("backoff") is not None else 0.2)
        breaker = breaker_for(f"{self.base_url()}|{operation}", int(self.config.get("breaker_failures") or 5),
                              float(self.config.get("breaker_reset") or 30.0))
        return timeout, retries, backoff, breaker

    def request(self, operation: str, method: str, path: str, inputs: dict, timeout: float | None,
                first_failure: ConnectorError | None = None):
        """One logical call with retries and the breaker; returns (JSON answer, request id).

        ``first_failure``: the first attempt was already made (an early request that failed in a
        way worth retrying); the remaining attempts follow its backoff."""
        timeout, retries, backoff, breaker = self._settings(operation, timeout)
        last: ConnectorError | None = first_failure
        for attempt in range(1 if first_failure is not None else 0, retries + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            if not breaker.allow():
                raise ConnectorError(f"{self.name}/{operation}: circuit open after repeated failures; "
                                     "not calling until it resets")
            try:
                resp = self.client().request(
                    method, path, headers=self.headers(), timeout=timeout,
                    **({"json": inputs} if method in ("POST", "PUT", "PATCH") else {"params": inputs}))
            except httpx.TimeoutException:
                breaker.failure()
                last = ConnectorError(f"{self.name}/{operation}: no answer within {timeout:g}s")
                continue
            except httpx.TransportError as exc:
                breaker.failure()
                last = ConnectorError(f"{self.name}/{operation}: cannot connect ({type(exc).__name__})")
                continue
            try:
                return self._judge(operation, breaker, resp.status_code, resp.headers.get("x-request-id"),
                                   resp.content)
            except _Again as again:
                last = again.error
        assert last is not None
        raise last

    def _judge(self, operation: str, breaker: CircuitBreaker, status: int, rid: str | None, content: bytes):
        """An HTTP answer as (JSON answer, request id), a final ConnectorError, or ``_Again`` for
        the failures worth another attempt (5xx, 429, a body that is not JSON)."""
        if status == 429 or status >= 500:
            breaker.failure()
            raise _Again(ConnectorError(f"{self.name}/{operation}: HTTP {status} (request {rid})"))
        if status in (401, 403):
            breaker.success()
            raise ConnectorError(f"{self.name}/{operation}: HTTP {status}: the API key was refused "
                                 f"(request {rid})")
        if status >= 400:
            breaker.success()
            raise ConnectorError(f"{self.name}/{operation}: HTTP {status} (request {rid}): "
                                 f"{content.decode('utf-8', 'replace')[:200]}", retryable=False)
        try:
            answer = json.loads(content)
        except ValueError:
            breaker.failure()
            raise _Again(ConnectorError(f"{self.name}/{operation}: the answer is not valid JSON "
                                        f"(request {rid})")) from None
        breaker.success()
        if isinstance(answer, dict) and answer.get("request_id") and not rid:
            rid = str(answer["request_id"])
        return answer, rid

    # ---- early requests: written before the step that needs the answer commits -----------
    def _early_target(self) -> tuple[str, str, int, str] | None:
        """(scheme, host, port, path prefix) when requests can go out on a plain socket: a real
        http(s) URL, no test or in-process transport, no proxy configured for it (the proxy
        settings are read once per base URL: reading the environment costs more than the write)."""
        key = (self.config.get("base_url"), self._transport is None)
        if self._target_key != key:
            self._target, self._target_key = self._find_early_target(), key
        return self._target

    def _find_early_target(self) -> tuple[str, str, int, str] | None:
        if self._transport is not None:
            return None
        try:
            url = urlsplit(self.base_url())
        except ConnectorError:
            return None
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            return None
        proxies = getproxies()
        if proxies.get(url.scheme) and not proxy_bypass(url.hostname):
            return None
        return url.scheme, url.hostname, url.port or (443 if url.scheme == "https" else 80), url.path.rstrip("/")

    def send_early(self, operation: str, inputs: dict) -> EarlyCall | None:
        """Write the request now on an idle kept-alive connection and return at once; the answer
        is read by ``EarlyCall.result()``. ``None`` (the caller calls ``call()`` later) when no
        connection is idle, the breaker is open, or anything about the request is not plain."""
        target = self._early_target()
        if target is None:
            return None
        try:
            op, route, method, path = self._prepared(operation, inputs)
            timeout, _retries, _backoff, breaker = self._settings(operation, op.timeout)
        except ConnectorError:
            return None
        if breaker.opened_at is not None:
            return None
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            return None
        body, headers, wire = None, {"Accept": "application/json", **self.headers()}, target[3] + path
        if method in ("POST", "PUT", "PATCH"):
            body = json.dumps(inputs, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        elif inputs:
            wire += ("&" if "?" in wire else "?") + urlencode({k: _query_value(v) for k, v in inputs.items()})
        if conn.sock is None:  # never connect here (DNS, TCP, TLS): that is prepare_early's job
            conn.close()
            return None
        try:
            # the write must not wait: a request that does not fit the socket's buffer at once is
            # dropped (the connection with it) and made after the commit instead
            conn.sock.settimeout(EARLY_WRITE_TIMEOUT)
            conn.request(method, wire, body=body, headers=headers)
            conn.timeout = timeout
            conn.sock.settimeout(timeout)
        except (OSError, http.client.HTTPException):
            conn.close()
            return None
        return EarlyCall(self, operation, inputs, op, route, method, path, timeout, breaker, conn)

    def prepare_early(self) -> None:
        """Open one kept-alive connection for the next early request (outside any transaction)."""
        target = self._early_target()
        if target is None:
            return
        with self._lock:
            if self._idle:
                return
        scheme, host, port, _prefix = target
        timeout = float(self.config.get("timeout") or 5.0)
        conn = (http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
                if scheme == "https" else http.client.HTTPConnection(host, port, timeout=timeout))
        try:
            conn.connect()
        except OSError:
            conn.close()
            return
        self._give_back(conn)

    def _give_back(self, conn) -> None:
        with self._lock:
            if len(self._idle) < EARLY_IDLE:
                self._idle.append(conn)
                return
        conn.close()


EARLY_IDLE = 4  # idle connections kept per connector for early requests
EARLY_WRITE_TIMEOUT = 0.05  # seconds an early request's write may take inside a step transaction


def _query_value(v) -> str:
    """A query parameter as httpx writes it (true/false, empty for None)."""
    return "true" if v is True else "false" if v is False else "" if v is None else str(v)


class _Again(Exception):
    def __init__(self, error: ConnectorError):
        super().__init__(str(error))
        self.error = error


class EarlyCall:
    """A request already written to the service; ``result()`` reads its answer and judges it as
    ``call()`` would (breaker, retries for 5xx/429/timeouts, schema); ``discard()`` closes the
    socket without reading anything."""

    def __init__(self, connector: HttpConnector, operation, inputs, op, route, method, path, timeout, breaker, conn):
        self.connector, self.operation, self.inputs = connector, operation, inputs
        self._op, self._route, self._method, self._path = op, route, method, path
        self._timeout, self._breaker, self._conn = timeout, breaker, conn

    def result(self) -> Result:
        c, conn, self._conn = self.connector, self._conn, None
        if conn is None:
            raise ConnectorError(f"{c.name}/{self.operation}: this early request was already read or discarded",
                                 retryable=False)
        try:
            resp = conn.getresponse()
            content = resp.read()
        except TimeoutError:
            conn.close()
            self._breaker.failure()
            first = ConnectorError(f"{c.name}/{self.operation}: no answer within {self._timeout:g}s")
            answer, rid = c.request(self.operation, self._method, self._path, self.inputs, self._op.timeout, first)
            return c._result(self._op, self._route, answer, rid)
        except (OSError, http.client.HTTPException):
            # the kept-alive connection was closed by the other side meanwhile: ask the normal way
            conn.close()
            return c.call(self.operation, self.inputs)
        if resp.will_close:
            conn.close()
        else:
            c._give_back(conn)
        try:
            answer, rid = c._judge(self.operation, self._breaker, resp.status, resp.getheader("x-request-id"), content)
        except _Again as again:
            answer, rid = c.request(self.operation, self._method, self._path, self.inputs, self._op.timeout, again.error)
        return c._result(self._op, self._route, answer, rid)

    def discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
