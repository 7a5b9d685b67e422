"""``exchange``: the client of the demo data exchange (``tongban exchange``).

An ``http`` connector with fixed operations (enterprise registry, identity check, e-licences,
credit blacklist, real estate, premises). ``base_url`` ``embedded`` (the default) answers from an
in-process copy of the demo exchange through httpx's WSGI transport, so the embedded product and
the examples run without a second process; any ``http://`` URL talks to a real exchange.
"""

from __future__ import annotations

import threading

import httpx

from engine.connectors import Operation

from .exchange_data import OPERATIONS
from .http import HttpConnector

EMBEDDED = "embedded"
_OPERATIONS = {name: Operation(name, title, inputs, outputs) for name, (title, inputs, outputs) in OPERATIONS.items()}
_embedded_app = None
_embedded_lock = threading.Lock()


def embedded_app():
    global _embedded_app
    with _embedded_lock:
        if _embedded_app is None:
            from .exchange_server import ExchangeApp

            _embedded_app = ExchangeApp()
        return _embedded_app


class ExchangeConnector(HttpConnector):
    name = "exchange"
    title = "数据共享交换平台（演示）"
    dynamic_operations = False
    config_schema = {
        **{k: v for k, v in HttpConnector.config_schema.items() if k != "operations"},
        "base_url": {"title": "Base URL (embedded = in-process demo data)", "type": "string", "default": EMBEDDED},
        "timeout": {"title": "Timeout (s)", "type": "number", "default": 3.0},
    }

    def operations(self) -> dict[str, Operation]:
        return dict(_OPERATIONS)  # built once; a copy, so no caller changes them for everybody

    def _route(self, operation: str) -> dict:
        return {"method": "POST", "path": f"/api/v1/query/{operation}", "result_path": "data"}

    def _embedded(self) -> bool:
        return (self.config.get("base_url") or EMBEDDED) == EMBEDDED

    def base_url(self) -> str:
        return "http://exchange.embedded" if self._embedded() else super().base_url()

    def _early_target(self):
        return None if self._embedded() else super()._early_target()  # in-process: nothing to write early

    def client(self) -> httpx.Client:
        if self._embedded() and self._transport is None:
            self._transport = httpx.WSGITransport(app=embedded_app())
        return super().client()

    def headers(self) -> dict:
        if self._embedded() and not self.secrets.get("api_key"):
            return {"X-API-Key": embedded_app().api_key}
        return super().headers()

    def source(self) -> str:
        return "数据共享交换平台" + ("（内置演示）" if self._embedded() else "")
