"""``http``: JSON over HTTP with httpx.

Per-operation timeouts; retries with exponential backoff (``backoff * 2**n`` seconds) for
timeouts, connection errors, 5xx and 429; a circuit breaker per endpoint (base URL +
operation) that opens after ``breaker_failures`` consecutive failures and lets one trial
call through after ``breaker_reset`` seconds. Operations come from configuration:

    {"base_url": "https://share.example.gov.cn", "timeout": 5,
     "operations": {"enterprise": {"method": "GET", "path": "/ent/{uscc}", "result_path": "data",
                                    "input_schema": {...}, "output_schema": {...}, "timeout": 3}}}

Secrets: ``api_key`` (sent in the header named by ``api_key_header``, default ``X-API-Key``).
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote

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

    def headers(self) -> dict:
        key = self.secrets.get("api_key")
        return {self.config.get("api_key_header") or "X-API-Key": key} if key else {}

    # ---- calling ------------------------------------------------------------------------
    def call(self, operation: str, inputs: dict) -> Result:
        op = self.operation(operation)
        check_inputs(op, inputs)
        route = self._route(operation)
        method = (route.get("method") or "POST").upper()
        path = (route.get("path") or f"/{operation}").format_map(
            {k: quote(str(v), safe="") for k, v in inputs.items()})
        answer, rid = self.request(operation, method, path, inputs, op.timeout)
        data = _dig(answer, route.get("result_path"))
        return Result(check_output(op, data), rid, self.source())

    def source(self) -> str:
        return self.config.get("source") or self.title or self.name

    def request(self, operation: str, method: str, path: str, inputs: dict, timeout: float | None):
        """One logical call with retries and the breaker; returns (JSON answer, request id)."""
        timeout = float(timeout or self.config.get("timeout") or 5.0)
        retries = int(self.config.get("retries") if self.config.get("retries") is not None else 2)
        backoff = float(self.config.get("backoff") if self.config.get("backoff") is not None else 0.2)
        breaker = breaker_for(f"{self.base_url()}|{operation}", int(self.config.get("breaker_failures") or 5),
                              float(self.config.get("breaker_reset") or 30.0))
        last: ConnectorError | None = None
        for attempt in range(retries + 1):
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
            rid = resp.headers.get("x-request-id")
            if resp.status_code == 429 or resp.status_code >= 500:
                breaker.failure()
                last = ConnectorError(f"{self.name}/{operation}: HTTP {resp.status_code} (request {rid})")
                continue
            if resp.status_code in (401, 403):
                breaker.success()
                raise ConnectorError(f"{self.name}/{operation}: HTTP {resp.status_code}: the API key was refused "
                                     f"(request {rid})")
            if resp.status_code >= 400:
                breaker.success()
                raise ConnectorError(f"{self.name}/{operation}: HTTP {resp.status_code} (request {rid}): "
                                     f"{resp.text[:200]}", retryable=False)
            try:
                answer = json.loads(resp.content)
            except ValueError:
                breaker.failure()
                last = ConnectorError(f"{self.name}/{operation}: the answer is not valid JSON (request {rid})")
                continue
            breaker.success()
            if isinstance(answer, dict) and answer.get("request_id") and not rid:
                rid = str(answer["request_id"])
            return answer, rid
        assert last is not None
        raise last
