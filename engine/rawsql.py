"""Core statements run on the DBAPI cursor (SQLite): compiled once by SQLAlchemy, with its own type
processors, so the SQL and the stored values are exactly what ``Connection.execute`` would produce,
without its per-execution work (cache key, execution context, result object). For short hot paths
only (applying a pull), inside a transaction the caller opened with ``engine.begin()``."""

from __future__ import annotations

from sqlalchemy import Connection


class Prepared:
    """One statement; every parameter must be given (column defaults are not applied)."""

    def __init__(self, statement, column_keys: list[str] | None = None):
        self.statement, self.column_keys = statement, column_keys
        self._by_dialect: dict[str, tuple] = {}

    def _compiled(self, dialect):
        got = self._by_dialect.get(dialect.name)
        if got is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
            if compiled.positiontup is None:
                raise ValueError(f"{dialect.name}: only positional parameter styles are supported")
            order = list(compiled.positiontup)
            procs = [compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order]
            got = self._by_dialect[dialect.name] = (compiled, compiled.string, order, procs)
        return got

    def _row(self, compiled, order, procs, params: dict) -> tuple:
        values = compiled.construct_params(params)
        return tuple(p(values[n]) if p else values[n] for n, p in zip(order, procs, strict=True))

    def execute(self, conn: Connection, params: dict | list[dict] | None = None) -> int:
        """Run it; returns the DBAPI rowcount."""
        compiled, sql, order, procs = self._compiled(conn.dialect)
        cursor = conn.connection.driver_connection.cursor()
        try:
            if isinstance(params, list):
                cursor.executemany(sql, [self._row(compiled, order, procs, p) for p in params])
            else:
                cursor.execute(sql, self._row(compiled, order, procs, params or {}))
            return cursor.rowcount
        finally:
            cursor.close()

    def scalar(self, conn: Connection, params: dict | None = None):
        compiled, sql, order, procs = self._compiled(conn.dialect)
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.execute(sql, self._row(compiled, order, procs, params or {}))
            row = cursor.fetchone()
            return row[0] if row else None
        finally:
            cursor.close()
