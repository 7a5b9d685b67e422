"""The engine's one exception tree.

    EngineError
     ├── InvalidProcess      a BPMN/DMN upload was rejected; ``.problems`` lists located errors
     ├── NotFound            no such definition, instance, task, user
     ├── Invalid             submitted data failed validation; ``.fields`` maps field id → message
     ├── NotAllowed          the actor may not do this, or the task is not in a state that allows it
     ├── Conflict            another writer changed the instance first (optimistic lock); retry
     ├── ScriptError         a BPMN script or expression failed or was stopped by the sandbox
     └── ConnectorError      a connector call failed; ``.retryable`` says whether to try again

Adapters (web, CLI) map these to HTTP statuses or exit codes in one place each.
Foreign exceptions (lxml, SpiffWorkflow, SQLAlchemy) are translated where they enter.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "engine_error"


@dataclass
class Problem:
    """One located problem in an uploaded file, in words a process designer understands."""

    message: str
    file: str | None = None
    line: int | None = None
    element_id: str | None = None
    severity: str = "error"
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "element_id": self.element_id,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p)
        element = f" [{self.element_id}]" if self.element_id else ""
        return f"{where}{element} {self.message}".strip()


class InvalidProcess(EngineError):
    code = "invalid_process"

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        first = str(problems[0]) if problems else "invalid process"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


class NotFound(EngineError):
    code = "not_found"


class Invalid(EngineError):
    code = "validation"

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        self.fields = dict(fields or {})
        super().__init__(message)


class NotAllowed(EngineError):
    code = "not_allowed"


class Conflict(EngineError):
    code = "conflict"


class ScriptError(EngineError):
    code = "script_error"

    def __init__(self, message: str, *, element_id: str | None = None, line: int | None = None):
        self.element_id = element_id
        self.line = line
        super().__init__(message)


class ConnectorError(EngineError):
    code = "connector_error"

    def __init__(self, message: str, *, retryable: bool = True):
        self.retryable = retryable
        super().__init__(message)
