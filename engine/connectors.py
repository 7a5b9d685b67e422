"""The connector interface and the registry.

A connector is a small class with a ``name``, a set of ``operations`` (each with an input and
an output schema) and a ``call(operation, inputs)`` that returns the output fields. Built-ins
live in ``connectors/``; every connector, built-in or third-party, registers through the
entry-point group ``tongban.connectors`` (``name = "package.module:Class"``). ``engine/``
never imports an adapter: the registry loads them by entry point.

Configuration (base URL, timeouts, API keys) lives in the database (``tb_connector_config``);
the engine hands it to ``configure(config, secrets)`` before calls. Secrets are never
returned, logged or written to audit details.

Failures raise ``ConnectorError``; ``retryable`` says whether a later attempt may succeed
(timeouts, 5xx, 429, malformed or wrong-schema payloads: yes; unknown operation: no).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from .errors import ConnectorError

log = logging.getLogger("tongban.connectors")
GROUP = "tongban.connectors"
SENSITIVE_KINDS = ("id", "phone", "health", "other")


@dataclass
class Operation:
    """One thing a connector can do. Schemas are JSON Schema objects (type object, properties).

    An output property may carry ``"sensitive": "id" | "phone" | "health" | "other"`` (masked
    for clerks whose role need not see it) and ``"title"``."""

    name: str
    title: str = ""
    input_schema: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    output_schema: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    timeout: float | None = None  # seconds; None: the connector's default

    @property
    def inputs(self) -> list[str]:
        return list(self.input_schema.get("properties", {}))

    @property
    def required_inputs(self) -> list[str]:
        return list(self.input_schema.get("required", []))

    @property
    def fields(self) -> dict[str, dict]:
        return dict(self.output_schema.get("properties", {}))

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "input_schema": self.input_schema,
                "output_schema": self.output_schema, "timeout": self.timeout}


@dataclass
class Result:
    """What a call returns: the output object (every field of the operation, the caller keeps the
    declared ones), the remote request id, and the source system's name for provenance."""

    data: dict
    request_id: str | None = None
    source: str = ""


class Connector:
    """Base class. Subclasses set ``name``, ``title``, ``config_schema`` and implement
    ``operations()`` and ``call()``. ``dynamic_operations`` is true when operations come from
    configuration (http, sql), so a deploy cannot check them without a database."""

    name: str = ""
    title: str = ""
    dynamic_operations: bool = False
    # {key: {"title", "type", "secret": bool, "default"}}
    config_schema: dict = {}

    def __init__(self):
        self.config: dict = {}
        self.secrets: dict = {}

    def configure(self, config: dict, secrets: dict) -> None:
        defaults = {k: v.get("default") for k, v in self.config_schema.items()
                    if not v.get("secret") and v.get("default") is not None}
        self.config = {**defaults, **(config or {})}
        self.secrets = dict(secrets or {})

    def operations(self) -> dict[str, Operation]:
        raise NotImplementedError

    def operation(self, name: str) -> Operation:
        ops = self.operations()
        if name not in ops:
            raise ConnectorError(f"connector '{self.name}' has no operation '{name}'", retryable=False)
        return ops[name]

    def call(self, operation: str, inputs: dict) -> Result:
        raise NotImplementedError

    def send_early(self, operation: str, inputs: dict):
        """Optionally start the call now and return an object whose ``result()`` gives the
        ``Result`` later and whose ``discard()`` drops it unread. The engine sends a pull this way
        while the step that needs it is still being saved (it must not block: write a request,
        do not wait). ``None``: not supported now; the engine calls ``call()`` after the commit."""
        return None

    def prepare_early(self) -> None:
        """Get ready for the next ``send_early`` (e.g. open a connection); called outside any
        transaction after the inline calls."""

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"name": self.name, "title": self.title, "dynamic_operations": self.dynamic_operations,
                "config_schema": self.config_schema,
                "operations": [op.as_dict() for op in self.operations().values()]}


def check_output(op: Operation, data) -> dict:
    """The output must be an object whose declared properties have the declared JSON types."""
    if not isinstance(data, dict):
        raise ConnectorError(f"operation '{op.name}' returned {type(data).__name__}, not an object (wrong schema)")
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
             "array": list}
    for key in op.output_schema.get("required", []):
        if key not in data:
            raise ConnectorError(f"operation '{op.name}' returned no '{key}' (wrong schema)")
    for key, prop in op.fields.items():
        if key not in data or data[key] is None:
            continue
        wanted = prop.get("type")
        allowed = wanted if isinstance(wanted, list) else [wanted] if wanted else []
        ok = not allowed or any(
            t == "null" or (isinstance(data[key], types.get(t, object))
                            and not (t in ("integer", "number") and isinstance(data[key], bool)))
            for t in allowed)
        if not ok:
            raise ConnectorError(f"operation '{op.name}' returned '{key}' as {type(data[key]).__name__}, "
                                 f"expected {wanted} (wrong schema)")
    return data


def check_inputs(op: Operation, inputs: dict) -> None:
    missing = [k for k in op.required_inputs if inputs.get(k) in (None, "")]
    if missing:
        raise ConnectorError(f"operation '{op.name}' needs {', '.join(missing)}", retryable=False)


class Registry:
    """Connector classes by name. ``load()`` reads the entry points once."""

    def __init__(self, classes: dict[str, type[Connector]] | None = None):
        self._classes: dict[str, type[Connector]] = dict(classes or {})
        self._describe: dict[str, Connector] = {}
        self._lock = threading.Lock()

    def load(self) -> Registry:
        for ep in entry_points(group=GROUP):
            if ep.name in self._classes:
                continue
            try:
                self._classes[ep.name] = ep.load()
            except Exception:  # noqa: BLE001 - a broken plug-in must not stop the engine
                log.exception("cannot load connector %s", ep.value)
        return self

    def register(self, cls: type[Connector], name: str | None = None) -> None:
        with self._lock:
            self._classes[name or cls.name] = cls
            self._describe.pop(name or cls.name, None)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def cls(self, name: str) -> type[Connector]:
        if name not in self._classes:
            raise ConnectorError(f"no connector '{name}' is installed", retryable=False)
        return self._classes[name]

    def new(self, name: str, config: dict | None = None, secrets: dict | None = None) -> Connector:
        conn = self.cls(name)()
        conn.configure(config or {}, secrets or {})
        return conn

    def unconfigured(self, name: str) -> Connector:
        """An instance for describing operations (deploy checks, the admin page)."""
        with self._lock:
            conn = self._describe.get(name)
            if conn is None:
                conn = self._describe[name] = self.new(name)
            return conn


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry().load()
        return _default
