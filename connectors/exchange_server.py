"""The demo data exchange: a small HTTP service that plays the government data-sharing platform.

Plain WSGI on the standard library (no Flask): ``make_app(...)`` gives the WSGI application,
``serve(...)`` runs it on a threading ``wsgiref`` server (HTTP/1.1, kept-alive connections), ``start_in_thread(...)`` is for tests
and the embedded product.

API (JSON; every request needs ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``, else 401):

    GET  /api/v1/health                      no key needed
    GET  /api/v1/operations                  operation names with input and output schemas
    POST /api/v1/query/{operation}           body: the inputs; answer: {"request_id", "data": {...}}
    GET  /api/v1/pushes?uscc=&department=     the registrations pushed to departments (push_registration)
    GET  /api/v1/_control, POST /api/v1/_control   test controls (see ``Controls``)

Every response carries the request id in the ``X-Request-Id`` header and the ``request_id`` field.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

from .exchange_data import OPERATIONS, STATEFUL, Dataset, generate, query

log = logging.getLogger("tongban.exchange")
DEFAULT_KEY = "demo-exchange-key"


@dataclass
class Controls:
    """How the exchange misbehaves, for tests. ``mode``: ok | error500 | error429 | malformed |
    wrong_schema | timeout (sleeps ``delay`` then answers 504). ``times``: how many requests the
    mode applies to before it returns to ok (0 = until changed). ``delay``: seconds added to
    every answer."""

    mode: str = "ok"
    times: int = 0
    delay: float = 0.0
    requests: int = 0  # answered /query requests, for tests

    def take(self) -> str:
        mode = self.mode
        if mode != "ok" and self.times:
            self.times -= 1
            if self.times == 0:
                self.mode = "ok"
        return mode


MODES = {"ok", "error500", "error429", "malformed", "wrong_schema", "timeout"}


class ExchangeApp:
    def __init__(self, dataset: Dataset | None = None, *, seed: int = 20240601, size: int = 3000,
                 api_key: str = DEFAULT_KEY, controls: Controls | None = None, clock=None):
        self.data = dataset or generate(seed, size)
        self.api_key = api_key
        self.controls = controls or Controls()
        self.clock = clock or (lambda: datetime.now().astimezone())
        self._lock = threading.Lock()
        self._pushes: dict[tuple[str, str], dict] = {}  # (department, uscc) → the first push's receipt

    # ---- pushed registrations (多证合一: the departments' receipts) --------------------------
    def push(self, inputs: dict) -> dict:
        """Record one push; idempotent per (department, uscc): a repeat answers the same receipt."""
        department = str(inputs.get("department", "")).strip()
        uscc = str(inputs.get("uscc", "")).strip().upper()
        with self._lock:
            record = self._pushes.get((department, uscc))
            if record is None:
                now = self.clock()
                record = {"receipt_no": f"HZ{department}{len(self._pushes) + 1:08d}", "department": department,
                          "uscc": uscc, "enterprise_name": str(inputs.get("enterprise_name") or ""),
                          "items": str(inputs.get("items") or ""),
                          "received_at": now.isoformat(timespec="seconds") if hasattr(now, "isoformat") else str(now),
                          "repeats": 0}
                self._pushes[(department, uscc)] = record
            else:
                record["repeats"] += 1
            return {"found": True, "received": True, "receipt_no": record["receipt_no"],
                    "department": department, "received_at": record["received_at"]}

    def pushes(self, uscc: str | None = None, department: str | None = None) -> list[dict]:
        """The recorded pushes in the order received, optionally for one USCC and/or department."""
        with self._lock:
            items = [dict(r) for r in self._pushes.values()]
        if uscc:
            items = [r for r in items if r["uscc"] == uscc.strip().upper()]
        if department:
            items = [r for r in items if r["department"] == department.strip()]
        return items

    # ---- WSGI ---------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        rid = uuid.uuid4().hex
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")

        def reply(status: str, body: dict | bytes, extra=()):
            raw = body if isinstance(body, bytes) else json.dumps({"request_id": rid, **body},
                                                                  ensure_ascii=False).encode()
            start_response(status, [("Content-Type", "application/json; charset=utf-8"),
                                    ("Content-Length", str(len(raw))), ("X-Request-Id", rid), *extra])
            return [raw]

        if path == "/api/v1/health":
            return reply("200 OK", {"status": "ok", "seed": self.data.seed,
                                    "records": {"enterprises": len(self.data.enterprises),
                                                "persons": len(self.data.persons),
                                                "licences": len(self.data.licences)}})
        if not self._authorized(environ):
            return reply("401 Unauthorized", {"error": "unauthorized", "message": "missing or wrong API key"})
        if path == "/api/v1/operations":
            return reply("200 OK", {"operations": {name: {"title": t, "input_schema": i, "output_schema": o}
                                                   for name, (t, i, o) in OPERATIONS.items()}})
        if path == "/api/v1/_control":
            return self._control(environ, method, reply)
        if path == "/api/v1/pushes" and method == "GET":
            params = parse_qs(environ.get("QUERY_STRING", ""))
            items = self.pushes((params.get("uscc") or [""])[0], (params.get("department") or [""])[0])
            return reply("200 OK", {"pushes": items, "count": len(items)})
        if path.startswith("/api/v1/query/") and method == "POST":
            return self._query(environ, path.rsplit("/", 1)[1], reply)
        return reply("404 Not Found", {"error": "not_found", "message": f"no route {method} {path}"})

    def _authorized(self, environ) -> bool:
        key = environ.get("HTTP_X_API_KEY") or ""
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        return bool(self.api_key) and key == self.api_key

    @staticmethod
    def _body(environ) -> dict | None:
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        raw = environ["wsgi.input"].read(min(size, 1 << 20)) if size else b""
        try:
            value = json.loads(raw or b"{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _control(self, environ, method, reply):
        if method == "POST":
            body = self._body(environ) or {}
            with self._lock:
                if "mode" in body:
                    if body["mode"] not in MODES:
                        return reply("400 Bad Request", {"error": "bad_mode", "message": f"modes: {sorted(MODES)}"})
                    self.controls.mode = body["mode"]
                    self.controls.times = int(body.get("times") or 0)
                if "delay" in body:
                    self.controls.delay = float(body["delay"])
                if body.get("reset_count"):
                    self.controls.requests = 0
        return reply("200 OK", {"controls": asdict(self.controls)})

    def _query(self, environ, operation, reply):
        with self._lock:
            mode = self.controls.take()
            delay = self.controls.delay
            self.controls.requests += 1
        if delay:
            time.sleep(delay)
        if operation not in OPERATIONS:
            return reply("404 Not Found", {"error": "no_operation", "message": f"no operation '{operation}'"})
        inputs = self._body(environ)
        if inputs is None:
            return reply("400 Bad Request", {"error": "bad_request", "message": "the body must be a JSON object"})
        if mode == "timeout":
            time.sleep(max(delay, 5.0))
            return reply("504 Gateway Timeout", {"error": "timeout"})
        if mode == "error500":
            return reply("500 Internal Server Error", {"error": "internal", "message": "数据源暂不可用"})
        if mode == "error429":
            return reply("429 Too Many Requests", {"error": "rate_limited"}, [("Retry-After", "1")])
        if mode == "malformed":
            return reply("200 OK", b'{"request_id": "x", "data": {"found": tru')
        missing = [k for k in OPERATIONS[operation][1].get("required", []) if not inputs.get(k)]
        if missing:
            return reply("400 Bad Request", {"error": "bad_request", "message": f"missing {', '.join(missing)}"})
        data = self.push(inputs) if operation in STATEFUL else query(self.data, operation, inputs)
        if mode == "wrong_schema":
            return reply("200 OK", {"result": [data], "code": "0000"})
        return reply("200 OK", {"data": data})


MAX_BODY = 1 << 20  # bytes of a request body the exchange reads


class _Body:
    """A request's body as the application sees it: at most Content-Length bytes. What the
    application leaves unread is drained after the answer, so that the next request on a kept-alive
    connection starts at its request line."""

    def __init__(self, rfile, length: int):
        self._rfile, self.left = rfile, length

    def read(self, size: int | None = -1) -> bytes:
        n = self.left if size is None or size < 0 else min(size, self.left)
        data = self._rfile.read(n) if n > 0 else b""
        self.left -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        n = self.left if size is None or size < 0 else min(size, self.left)
        data = self._rfile.readline(n) if n > 0 else b""
        self.left -= len(data)
        return data

    def readlines(self, hint=-1):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


class _Answer(ServerHandler):
    http_version = "1.1"


class _Handler(WSGIRequestHandler):
    """HTTP/1.1 with kept-alive connections (the standard library's handler answers one request per
    connection, so every call paid a new connection and a new thread). Quiet: requests are logged at
    debug level only."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds an idle kept-alive connection is kept
    disable_nagle_algorithm = True  # headers and body are separate writes: no waiting for the client's ACK

    def handle(self):
        self.close_connection = True
        self._handle_one()
        while not self.close_connection:
            self._handle_one()

    def _handle_one(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            self.close_connection = True
            return
        if not self.parse_request():  # it answered the error and set close_connection
            return
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            self.send_error(400, "bad Content-Length")
            self.close_connection = True
            return
        if self.headers.get("Transfer-Encoding"):
            self.send_error(411, "a body needs a Content-Length")
            self.close_connection = True
            return
        body = _Body(self.rfile, length)
        answer = _Answer(body, self.wfile, self.get_stderr(), self.get_environ(), multithread=True)
        answer.request_handler = self
        answer.run(self.server.get_app())
        if body.left > MAX_BODY:
            self.close_connection = True  # not worth reading: the connection goes instead
        elif body.left:
            body.read()

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        log.debug("%s - %s", self.address_string(), format % args)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A thread per connection; ``server_close`` also closes the kept-alive connections, so a stopped
    exchange is really down for clients that held a connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kwargs):
        self._open: set = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self):
        super().server_close()
        with self._open_lock:
            open_now, self._open = list(self._open), set()
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def make_http_server(app: ExchangeApp, host: str = "127.0.0.1", port: int = 8600) -> ThreadingWSGIServer:
    return make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=_Handler)


def start_in_thread(app: ExchangeApp, host: str = "127.0.0.1", port: int = 0):
    """Serve in a daemon thread; returns (server, base_url). ``server.shutdown()`` stops it."""
    server = make_http_server(app, host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_address[1]}"
