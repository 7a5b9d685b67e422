"""``sql``: read-only queries against any SQLAlchemy URL.

Operations come from configuration; parameters are always bound (``:name``), never formatted
into the text. A query must be one ``SELECT`` (or ``WITH … SELECT``) statement; it runs in a
read-only transaction (PostgreSQL ``SET TRANSACTION READ ONLY``, SQLite ``PRAGMA query_only``)
that is rolled back afterwards.

    config:  {"operations": {"staff_health": {"query": "SELECT name, valid_to FROM health WHERE id = :id_number",
                                               "many": false, "input_schema": {...}, "output_schema": {...}}}}
    secrets: {"url": "postgresql://reader:…@db/health"}   (the URL may hold a password)
"""

from __future__ import annotations

import re
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from engine.connectors import Connector, Operation, Result, check_inputs, check_output
from engine.errors import ConnectorError

_SELECT = re.compile(r"^\s*(select|with)\b", re.I)
_BAD = re.compile(r"\b(insert|update|delete|drop|alter|create|truncate|grant|revoke|attach|pragma|copy|call|"
                  r"merge|replace|vacuum)\b", re.I)


def check_query(query: str) -> None:
    body = query.strip().rstrip(";")
    if ";" in body:
        raise ConnectorError("a query must be a single statement", retryable=False)
    if not _SELECT.match(body) or _BAD.search(re.sub(r"'[^']*'", "''", body)):
        raise ConnectorError("only read-only SELECT queries are allowed", retryable=False)


class SqlConnector(Connector):
    name = "sql"
    title = "SQL (read-only)"
    dynamic_operations = True
    config_schema = {
        "operations": {"title": "Operations", "type": "object", "default": {}},
        "timeout": {"title": "Timeout (s)", "type": "number", "default": 5.0},
        "url": {"title": "Database URL", "type": "string", "secret": True},
    }

    def __init__(self):
        super().__init__()
        self._engine = None
        self._lock = threading.Lock()

    def operations(self) -> dict[str, Operation]:
        return {name: Operation(name, spec.get("title", ""),
                                spec.get("input_schema") or {"type": "object", "properties": {}},
                                spec.get("output_schema") or {"type": "object", "properties": {}},
                                spec.get("timeout"))
                for name, spec in (self.config.get("operations") or {}).items()}

    def engine(self):
        with self._lock:
            if self._engine is None:
                url = self.secrets.get("url") or self.config.get("url")
                if not url:
                    raise ConnectorError("connector 'sql' has no database URL configured", retryable=False)
                if url.startswith("postgresql://"):
                    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
                self._engine = create_engine(url, pool_pre_ping=True)
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def call(self, operation: str, inputs: dict) -> Result:
        op = self.operation(operation)
        check_inputs(op, inputs)
        spec = self.config["operations"][operation]
        query = spec.get("query") or ""
        check_query(query)
        stmt = text(query)
        params = {k: inputs.get(k) for k in stmt.compile().params}
        eng = self.engine()
        try:
            with eng.connect() as conn:
                if eng.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    timeout_ms = int(float(op.timeout or self.config.get("timeout") or 5.0) * 1000)
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {timeout_ms}")
                elif eng.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA query_only = ON")
                try:
                    rows = [dict(r._mapping) for r in conn.execute(stmt, params)]
                finally:
                    conn.rollback()
                    if eng.dialect.name == "sqlite":
                        conn.exec_driver_sql("PRAGMA query_only = OFF")
        except DBAPIError as exc:
            raise ConnectorError(f"sql/{operation}: {type(exc.orig).__name__}: {str(exc.orig).splitlines()[0]}",
                                 retryable=exc.connection_invalidated or "timeout" in str(exc.orig).lower()) from exc
        except SQLAlchemyError as exc:
            raise ConnectorError(f"sql/{operation}: {type(exc).__name__}", retryable=False) from exc
        if spec.get("many"):
            data = {"found": bool(rows), "rows": rows, "count": len(rows)}
        else:
            data = {"found": bool(rows), **(rows[0] if rows else {})}
        data = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}
        return Result(check_output(op, data), None, spec.get("source") or self.config.get("source") or "sql")
