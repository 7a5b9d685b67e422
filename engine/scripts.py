"""Restricted execution of BPMN scripts, conditions and expressions.

Every uploaded script is treated as hostile. Code is compiled with RestrictedPython
(no imports, no names or attributes starting with ``_``, guarded item and attribute access,
no ``open``/``exec``/``eval``) and runs under a wall-clock deadline enforced by a trace
function on the script's own frames, so ``while True: pass`` is stopped and the worker lives on.
``range`` is bounded so that a C-level loop cannot run away either.

A single C call is not interrupted by the deadline, so the operators that can make one huge
value in one step (``**``, ``*`` of a sequence, ``<<``, and ``pow``) are checked before they run:
a result over ``MAX_INT_BITS`` bits or ``MAX_ITEMS`` items is refused with a ScriptError instead of
holding the worker for minutes or taking its memory. Known limit, stated plainly: string methods
that pad (``"x".ljust(n)``) are not checked; they are bounded only by the deadline between calls.
"""

from __future__ import annotations

import ast
import functools
import operator
import os
import sys
import textwrap
import time

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_eval, compile_restricted_exec, safe_builtins
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
MAX_INT_BITS = 1_000_000  # about 300,000 decimal digits
MAX_ITEMS = 10_000_000  # characters or items of a repeated sequence


class ScriptTimeout(ScriptError):
    pass


def _bounded_range(*args):
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise ScriptError(f"range of {len(r)} items is over the limit of {MAX_RANGE}")
    return r


def _too_big(what: str, size: int, limit: int) -> ScriptError:
    return ScriptError(f"{what} would have about {size:,} {'bits' if limit == MAX_INT_BITS else 'items'}, "
                       f"over the limit of {limit:,}")


def _guarded_pow(base, exp, *mod):
    if not mod and type(base) is int and type(exp) is int and exp > 0 and abs(base) > 1:
        bits = exp * (abs(base).bit_length() - 1)
        if bits > MAX_INT_BITS:
            raise _too_big(f"{base} ** {exp}", bits, MAX_INT_BITS)
    return pow(base, exp, *mod)


def _guarded_mul(a, b):
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, str | bytes | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_ITEMS:
            raise _too_big("a repeated sequence", len(seq) * n, MAX_ITEMS)
    return a * b


def _guarded_lshift(a, b):
    if type(a) is int and type(b) is int and a and b > 0 and a.bit_length() + b > MAX_INT_BITS:
        raise _too_big(f"{a} << {b}", a.bit_length() + b, MAX_INT_BITS)
    return a << b


_GUARDED_OPS = {ast.Pow: "_tb_pow_", ast.Mult: "_tb_mul_", ast.LShift: "_tb_lshift_"}


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's checks, and ``**``, ``*`` and ``<<`` through the guarded functions above."""

    def visit_BinOp(self, node):
        node = super().visit_BinOp(node)
        name = _GUARDED_OPS.get(type(node.op))
        if name is None:
            return node
        func = ast.copy_location(ast.Name(id=name, ctx=ast.Load()), node)
        return ast.copy_location(ast.Call(func=func, args=[node.left, node.right], keywords=[]), node)


_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": _guarded_mul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": _guarded_pow, "|=": operator.ior,
    "&=": operator.iand, "^=": operator.ixor, "<<=": _guarded_lshift, ">>=": operator.irshift,
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
_BUILTINS = {**safe_builtins, **_EXTRA_BUILTINS, "range": _bounded_range, "pow": _guarded_pow}
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
    "_tb_pow_": _guarded_pow,
    "_tb_mul_": _guarded_mul,
    "_tb_lshift_": _guarded_lshift,
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
    result = compile_restricted_exec(source, filename=SCRIPT_FILENAME, policy=_Policy)
    return _restricted_messages(result.errors)


def check_expression(source: str) -> list[tuple[int | None, str]]:
    problems = _precheck(source.strip())
    if problems:
        return problems
    result = compile_restricted_eval(source.strip(), filename=SCRIPT_FILENAME, policy=_Policy)
    return _restricted_messages(result.errors)


@functools.lru_cache(maxsize=4096)
def _compiled_exec(source: str):
    problems = check_script(source)
    if problems:
        line, msg = problems[0]
        raise ScriptError(f"script rejected: {msg}", line=line)
    return compile_restricted_exec(_normalize(source), filename=SCRIPT_FILENAME, policy=_Policy).code


@functools.lru_cache(maxsize=8192)
def _compiled_eval(source: str):
    problems = check_expression(source)
    if problems:
        line, msg = problems[0]
        raise ScriptError(f"expression {source.strip()!r} rejected: {msg}", line=line)
    return compile_restricted_eval(source.strip(), filename=SCRIPT_FILENAME, policy=_Policy).code


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
