"""Restricted execution of BPMN scripts, conditions and expressions.

Every uploaded script is treated as hostile. Code is compiled with RestrictedPython
(no imports, no names or attributes starting with ``_``, guarded item and attribute access,
no ``open``/``exec``/``eval``) and runs under a wall-clock deadline enforced by a trace
function on the script's own frames, so ``while True: pass`` is stopped and the worker lives on.
``range`` is bounded so that a C-level loop cannot run away either.

Known limits, stated plainly: an expression such as ``10 ** 10 ** 8`` runs inside one C call
and is not interrupted by the deadline.
"""

from __future__ import annotations

import ast
import functools
import operator
import os
import sys
import textwrap
import time

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, safe_builtins
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from .errors import ScriptError

SCRIPT_FILENAME = "<bpmn-script>"
DEFAULT_TIMEOUT = float(os.environ.get("TONGBAN_SCRIPT_TIMEOUT", "2.0"))
MAX_RANGE = 1_000_000


class ScriptTimeout(ScriptError):
    pass


def _bounded_range(*args):
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise ScriptError(f"range of {len(r)} items is over the limit of {MAX_RANGE}")
    return r


_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "|=": operator.ior,
    "&=": operator.iand, "^=": operator.ixor, "<<=": operator.ilshift, ">>=": operator.irshift,
}


def _inplacevar(op, x, y):
    try:
        return _INPLACE[op](x, y)
    except KeyError:
        raise ScriptError(f"operator {op} is not allowed") from None


class _PrintCollector:
    """``print`` in a script writes nowhere; RestrictedPython needs the hook to exist."""

    def __init__(self, _getattr_=None):
        self.lines: list[str] = []

    def _call_print(self, *objects, **kwargs):
        self.lines.append(" ".join(str(o) for o in objects))

    def __call__(self):
        return "\n".join(self.lines)


_EXTRA_BUILTINS = {
    name: getattr(__import__("builtins"), name)
    for name in (
        "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "format",
        "frozenset", "int", "isinstance", "len", "list", "map", "max", "min", "reversed", "round",
        "set", "sorted", "str", "sum", "tuple", "zip",
    )
}
_BUILTINS = {**safe_builtins, **_EXTRA_BUILTINS, "range": _bounded_range}
for _forbidden in ("setattr", "delattr", "getattr", "hasattr", "compile", "open", "__import__"):
    _BUILTINS.pop(_forbidden, None)

_GUARDS = {
    "__builtins__": _BUILTINS,
    "_getattr_": safer_getattr,
    "_getitem_": default_guarded_getitem,
    "_getiter_": default_guarded_getiter,
    "_write_": full_write_guard,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_inplacevar_": _inplacevar,
    "_print_": _PrintCollector,
    "_apply_": lambda f, *a, **kw: f(*a, **kw),
}
_RESERVED = frozenset(_GUARDS)


def _precheck(source: str) -> list[tuple[int | None, str]]:
    """Our own clearer messages for the things designers most often try."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [(exc.lineno, f"syntax error: {exc.msg}")]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            problems.append((node.lineno, "scripts may not import modules"))
        elif isinstance(node, ast.Name) and node.id in ("open", "__import__", "exec", "eval", "compile"):
            problems.append((node.lineno, f"'{node.id}' is not available in scripts"))
    return problems


def _restricted_messages(errors) -> list[tuple[int | None, str]]:
    out = []
    for err in errors:
        # RestrictedPython writes "Line 3: ..." at the start of its messages
        line = None
        msg = err
        if err.startswith("Line "):
            head, _, rest = err.partition(":")
            try:
                line = int(head[5:])
                msg = rest.strip()
            except ValueError:
                pass
        out.append((line, msg))
    return out


def _normalize(source: str) -> str:
    # modelling tools indent the script body under <bpmn:script>; the line count stays the same
    return textwrap.dedent(source)


def check_script(source: str) -> list[tuple[int | None, str]]:
    """Problems with a script, as (line within the script, message); empty when it is fine."""
    source = _normalize(source)
    problems = _precheck(source)
    if problems:
        return problems
    result = compile_restricted_exec(source, filename=SCRIPT_FILENAME)
    return _restricted_messages(result.errors)


def check_expression(source: str) -> list[tuple[int | None, str]]:
    problems = _precheck(source.strip())
    if problems:
        return problems
    result = compile_restricted_eval(source.strip(), filename=SCRIPT_FILENAME)
    return _restricted_messages(result.errors)


@functools.lru_cache(maxsize=4096)
def _compiled_exec(source: str):
    problems = check_script(source)
    if problems:
        line, msg = problems[0]
        raise ScriptError(f"script rejected: {msg}", line=line)
    return compile_restricted_exec(_normalize(source), filename=SCRIPT_FILENAME).code


@functools.lru_cache(maxsize=8192)
def _compiled_eval(source: str):
    problems = check_expression(source)
    if problems:
        line, msg = problems[0]
        raise ScriptError(f"expression {source.strip()!r} rejected: {msg}", line=line)
    return compile_restricted_eval(source.strip(), filename=SCRIPT_FILENAME).code


def _with_deadline(fn, seconds: float):
    deadline = time.monotonic() + seconds

    def local(frame, event, arg):
        # opcode events too: a one-line ``while True: pass`` emits no line events
        if time.monotonic() > deadline:
            raise ScriptTimeout(f"script ran longer than {seconds:g} s and was stopped", line=frame.f_lineno)
        return local

    def global_(frame, event, arg):
        if frame.f_code.co_filename == SCRIPT_FILENAME:
            frame.f_trace_opcodes = True
            return local
        return None

    previous = sys.gettrace()
    sys.settrace(global_)
    try:
        return fn()
    finally:
        sys.settrace(previous)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment that runs everything through RestrictedPython."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, functions: dict | None = None):
        super().__init__({})
        self.timeout = timeout
        self.functions = dict(functions or {})

    def _globals(self, context, external_context):
        glb = dict(_GUARDS)
        glb.update(self.functions)
        if external_context:
            glb.update(external_context)
        glb.update(context)
        return glb

    def evaluate(self, expression, context, external_context=None):
        code = _compiled_eval(expression)
        glb = self._globals(context, external_context)
        return _with_deadline(lambda: eval(code, glb), self.timeout)

    def execute(self, script, context, external_context=None):
        code = _compiled_exec(script)
        glb = self._globals(context, external_context)
        _with_deadline(lambda: exec(code, glb), self.timeout)
        skip = _RESERVED | set(self.functions) | set(external_context or {})
        for key in list(context):
            if key not in glb:
                del context[key]
        for key, value in glb.items():
            if key in skip or key.startswith("_") or callable(value):
                continue
            context[key] = value
        return True

    def call_service(self, context, **kwargs):
        raise ScriptError("service tasks are run by connectors, not by scripts")


def make_script_engine(timeout: float = DEFAULT_TIMEOUT) -> PythonScriptEngine:
    return PythonScriptEngine(environment=RestrictedEnvironment(timeout=timeout))
