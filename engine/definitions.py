"""Deploying BPMN/DMN: read safely, validate, parse with SpiffWorkflow, store a version.

Each executable process in the upload becomes a definition version of its key (the process
id). Identical content for a key is a no-op; anything else makes version N+1, and running
instances stay on the version they started with. The parsed spec is stored once per version
and cached in memory per version, so a definition is parsed once per process.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lxml import etree
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import approval_rules, audit, sla
from .bpmn_xml import BPMN_NS, SPIFF_NS, TB_NS, kind_of, line_of, parse_xml, xsd_problems
from .directory import active_user_id, no_such_user
from .errors import InvalidProcess, NotFound, Problem
from .forms import fields_from_json_schema
from .licences import LicenceAwareParser
from .manifest import process_manifest
from .models import ProcessDefinition
from .scripts import check_expression, check_script
from .serialization import spec_registry

_B = f"{{{BPMN_NS}}}"


@dataclass
class Deployed:
    key: str
    version: int
    id: int
    created: bool

    def as_dict(self) -> dict:
        return {"key": self.key, "version": self.version, "id": self.id, "created": self.created}


def read_paths(paths: list[str | Path]) -> dict[str, bytes]:
    """Files named, and the .bpmn/.dmn files of folders named, as {name: bytes}. A file is named by
    its own name and a folder's files by the folder's name and their path inside it, however the path
    was written (relative, absolute, ``.``, a trailing slash): the stored sources and their checksum
    are the same, so deploying unchanged files again is a no-op. Two files that would get one name
    keep the path as given."""
    files: dict[str, bytes] = {}

    def add(name: str, f: Path) -> None:
        files[str(f) if name in files else name] = f.read_bytes()

    for p in map(Path, paths):
        if p.is_dir():
            found = sorted([*p.rglob("*.bpmn"), *p.rglob("*.bpmn20.xml"), *p.rglob("*.dmn")])
            if not found:
                raise InvalidProcess([Problem("no .bpmn or .dmn files in this folder", file=str(p))])
            folder = p.resolve().name
            for f in found:
                add(str(PurePosixPath(folder, *f.relative_to(p).parts)), f)
        elif p.is_file():
            add(p.name, p)
        else:
            raise NotFound(f"no such file or folder: {p}")
    return files


_EXPRESSION_HINT = ("; conditions and timer expressions are Python expressions, e.g. amount > 10000 "
                    "or \"PT1H\" (FEEL, ${...} and prose are not understood)")


def _script_problems(name: str, tree) -> list[Problem]:
    """Scripts and expressions compiled the way they will run; lines are lines of the file."""
    problems = []

    def add(el, text, checker, what, hint=""):
        # the element that owns the script: the task, flow or event, not an expression or definition
        owner = el.getparent()
        while owner is not None and (not owner.get("id") or str(owner.tag).endswith("EventDefinition")):
            owner = owner.getparent()
        # expressions are checked stripped, so their line 1 is the first non-blank line
        skipped = text[:len(text) - len(text.lstrip())].count("\n") if checker is check_expression else 0
        for line, msg in checker(text):
            at = (el.sourceline or 0) + skipped + ((line or 1) - 1)
            extra = hint if hint and msg.startswith("syntax error") else ""
            problems.append(Problem(f"{what}: {msg}{extra}", file=name, line=at,
                                    element_id=owner.get("id") if owner is not None else None))

    for el in tree.iter(_B + "script", f"{{{SPIFF_NS}}}preScript", f"{{{SPIFF_NS}}}postScript"):
        if el.text and el.text.strip():
            add(el, el.text, check_script, "script error")
    for tag in ("conditionExpression", "timeDuration", "timeDate", "timeCycle", "completionCondition"):
        for el in tree.iter(_B + tag):
            if el.text and el.text.strip():
                add(el, el.text, check_expression, f"{tag} error", _EXPRESSION_HINT)
    return problems


def _flow_problems(name: str, tree) -> list[Problem]:
    problems = []
    for process in tree.iter(_B + "process", _B + "subProcess"):
        ids = {el.get("id") for el in process if isinstance(el.tag, str) and el.get("id")}
        for flow in process.findall(_B + "sequenceFlow"):
            for end in ("sourceRef", "targetRef"):
                ref = flow.get(end)
                if not ref:
                    problems.append(Problem(f"sequence flow has no {end}", file=name,
                                            line=flow.sourceline, element_id=flow.get("id")))
                elif ref not in ids:
                    side = "starts at" if end == "sourceRef" else "points to"
                    problems.append(Problem(
                        f"sequence flow {side} '{ref}', which is not an element of "
                        f"'{process.get('id')}' (a dangling flow)", file=name, line=flow.sourceline,
                        element_id=flow.get("id")))
    return problems


def _data_store_problems(name: str, tree) -> list[Problem]:
    """SpiffWorkflow refuses data stores it has no class for, without saying where; we say where."""
    known = SpiffBpmnParser.DATA_STORE_CLASSES
    problems = []
    for store in tree.iter(_B + "dataStore"):
        label = " ".join((store.get("name") or "").split())
        if not store.get("id") or not label or label not in known:
            what = f"data store '{label}'" if label else "a data store without a name"
            problems.append(Problem(
                f"{what} cannot be used: the engine has no data store implementations "
                "(keep data in process variables instead)" if not known else
                f"{what} has no implementation; known data stores: {', '.join(sorted(known))}",
                file=name, line=store.sourceline, element_id=store.get("id")))
    return problems


def _checksum(spec_json: str, manifest: dict) -> str:
    """What makes two deployments of a process the same version: its spec and manifest, but not the
    name of the file it came from (the same process deployed from its folder and then as a single
    file, or from another working directory, is the same content)."""
    data = json.loads(spec_json)
    for spec in [data.get("spec") or {}, *(data.get("subprocess_specs") or {}).values()]:
        if isinstance(spec, dict):
            spec.pop("file", None)
    h = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode())
    h.update(json.dumps(manifest, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def validate(files: dict[str, bytes]) -> tuple[SpiffBpmnParser, dict, dict[str, str], list[Problem]]:
    """Parse and check everything; returns (parser, trees, sources, problems)."""
    problems: list[Problem] = []
    trees = {}
    for name, content in files.items():
        tree, errs = parse_xml(name, content)
        if errs:
            problems += errs
            continue
        if kind_of(tree) is None:
            problems.append(Problem(
                f"root element <{etree.QName(tree.getroot()).localname}> is neither BPMN 2.0 "
                "definitions nor DMN", file=name, line=tree.getroot().sourceline))
            continue
        trees[name] = tree
        problems += _flow_problems(name, tree)
        problems += _data_store_problems(name, tree)
        problems += xsd_problems(name, tree)
        problems += _script_problems(name, tree)
    parser = LicenceAwareParser(validator=None)  # SpiffBpmnParser + service tasks with tb:licence
    if problems:
        return parser, trees, {}, problems
    for name, tree in sorted(trees.items(), key=lambda kv: kind_of(kv[1]) != "dmn"):
        try:
            if kind_of(tree) == "dmn":
                parser.add_dmn_xml(tree.getroot(), filename=name)
            else:
                parser.add_bpmn_xml(tree, filename=name)
        except SpiffWorkflowException as exc:
            problem = _from_spiff(exc, trees, name)
            if not problem.line and not problem.element_id:
                # no node in the exception: point at the document, the best we know
                problem.line, problem.element_id = tree.getroot().sourceline, tree.getroot().get("id")
            problems.append(problem)
        except Exception as exc:  # noqa: BLE001 - any parser failure is a located problem
            root = tree.getroot()
            problems.append(Problem(f"cannot read this file: {_first_line(exc)}", file=name,
                                    line=root.sourceline, element_id=root.get("id")))
    sources = {name: etree.tostring(t, encoding="unicode") for name, t in trees.items()}
    return parser, trees, sources, problems


def _first_line(exc: BaseException) -> str:
    """The exception's own message, first line only (SpiffWorkflow appends '. ' and notes)."""
    text = str(exc.args[0]) if exc.args else str(exc)
    notes = [str(n) for n in getattr(exc, "notes", None) or [] if str(n).strip()]
    if notes:
        text = text.rstrip(". ") + ". " + "; ".join(notes)
    text = _ELEMENT_REPR.sub(lambda m: f"<{_short_tag(m.group(1), m.group(2))}>", text.strip())
    return text.split("\n")[0].strip() if text else type(exc).__name__


_ELEMENT_REPR = re.compile(r"<Element \{([^}]*)\}(\S+) at 0x[0-9a-fA-F]+>")
# SpiffWorkflow's wording, said the way a process designer would look for it
_REWORDED = [
    (re.compile(r"^Multiple outgoing flows are not supported for tasks of type\.?"),
     "this task has more than one outgoing sequence flow; the engine needs a gateway to split the path"),
    (re.compile(r"^Non-default exclusive outgoing sequence flow without condition\.?"),
     "this sequence flow leaves an exclusive gateway without a condition and is not the gateway's "
     "default flow; add a condition or make it the default"),
    (re.compile(r"^Exactly one start event is required in a SubWorkflow Task; found (\d+)\.?"),
     r"a sub-process needs exactly one start event; it has \1"),
]


def _short_tag(ns: str, local: str) -> str:
    return f"bpmn:{local}" if ns == BPMN_NS else local


def _from_spiff(exc: SpiffWorkflowException, trees: dict, fallback_file: str | None = None) -> Problem:
    """A SpiffWorkflow parse error as a located problem.

    SpiffWorkflow 3.2 reads ``node.line_number``, which lxml elements do not have, so its
    exceptions usually carry an element id but no line: the line is looked up from the id.
    """
    file = getattr(exc, "file_name", None) or fallback_file
    if file not in trees:
        file = fallback_file
    element_id = getattr(exc, "id", None) or None
    line = getattr(exc, "line_number", None) or None
    if not isinstance(line, int):
        line = None
    tree = trees.get(file)
    if not line and tree is not None:
        line = line_of(tree, element_id)
    msg = _first_line(exc)
    tag = getattr(exc, "tag", None) or None
    if tag is None and tree is not None and element_id:
        found = tree.xpath("//*[@id=$i]", i=element_id)
        if found:
            tag = "bpmn:" + etree.QName(found[0]).localname
    for spiff_words, ours in _REWORDED:
        msg = spiff_words.sub(ours, msg)
    if "no support implemented" in msg or "does not support" in msg or "Unsupported" in msg:
        msg = (f"<{tag or 'element'}> is not supported by the engine (SpiffWorkflow 3.2); "
               "replace it with a supported element")
    elif tag and element_id:
        msg = f"{msg} (<{tag}>)"
    return Problem(msg, file=file, line=line, element_id=element_id)


def executable_processes(trees: dict) -> list[tuple[str, etree._Element]]:
    """(file name, <bpmn:process>) for each process the upload would deploy."""
    found = []
    for name, tree in trees.items():
        if kind_of(tree) != "bpmn":
            continue
        for proc in tree.getroot().iter(_B + "process"):
            if proc.get("isExecutable", "true").strip().lower() != "false":
                found.append((name, proc))
    return found


def _no_executable_problem(files: dict[str, bytes], trees: dict) -> Problem:
    """Say where the designer should look: the first process marked non-executable, else the root."""
    for name, tree in trees.items():
        if kind_of(tree) != "bpmn":
            continue
        for proc in tree.getroot().iter(_B + "process"):
            return Problem(
                f"process '{proc.get('id')}' is marked isExecutable=\"false\" (a descriptive model); "
                "set isExecutable=\"true\" on the process to deploy it", file=name, line=proc.sourceline,
                element_id=proc.get("id"))
    for name, tree in trees.items():
        if kind_of(tree) == "bpmn":
            root = tree.getroot()
            return Problem("the file has no <bpmn:process>, so there is nothing to run (a collaboration or "
                           "diagram alone cannot be deployed)", file=name, line=root.sourceline,
                           element_id=root.get("id"))
    return Problem("no BPMN process in the upload (only decision tables)", file=next(iter(files), None))


def _build(parser: SpiffBpmnParser, trees: dict, name: str, proc) -> tuple[str | None, list[str], Problem | None]:
    """(spec JSON, ids of called processes) of one executable process, or the problem that stops it.

    The spec is serialized here, not at storing time, so ``check`` finds everything ``deploy`` would.
    """
    key = proc.get("id")
    try:
        spec, subs = parser.get_spec(key), parser.get_subprocess_specs(key)
        registry = spec_registry()
        spec_json = json.dumps({
            "spec": registry.convert(spec),
            "subprocess_specs": {k: registry.convert(v) for k, v in subs.items()},
        }, sort_keys=True, ensure_ascii=False)
        return spec_json, sorted(subs), None
    except SpiffWorkflowException as exc:
        problem = _from_spiff(exc, trees, name)
        if not problem.line and not problem.element_id:
            problem.line, problem.element_id = proc.sourceline, key
        return None, [], problem
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a located problem
        element_id = getattr(exc, "id", None) or key
        line = line_of(trees[name], element_id) or proc.sourceline
        return None, [], Problem(f"cannot build process '{key}': {_first_line(exc)}", file=name,
                                 line=line, element_id=element_id)


def _plan(files: dict[str, bytes]):
    """Everything deploy needs, or the problems: (trees, sources, [(name, proc, spec_json, subs)], problems)."""
    parser, trees, sources, problems = validate(files)
    procs = executable_processes(trees)
    if not procs and (trees or not problems):
        # the first thing to tell a designer who uploads a descriptive model
        problems.insert(0, _no_executable_problem(files, trees))
    if problems:
        return trees, sources, [], problems
    built = []
    for name, proc in procs:
        spec_json, subs, problem = _build(parser, trees, name, proc)
        if problem is None:
            problem = _manifest_problem(name, proc)
        if problem is not None:
            problems.append(problem)
        else:
            built.append((name, proc, spec_json, subs))
    return trees, sources, built, problems


def _manifest_problem(name: str, proc) -> Problem | None:
    """Extension elements that cannot be read (e.g. a form JSON Schema that is not JSON)."""
    for el in proc.iter(f"{{{TB_NS}}}jsonSchema"):
        owner = el.getparent().getparent() if el.getparent() is not None else None
        try:
            fields_from_json_schema(el.text or "")
        except ValueError as exc:
            return Problem(f"the form JSON Schema cannot be read: {exc}", file=name, line=el.sourceline,
                           element_id=owner.get("id") if owner is not None else None)
    for el in proc.iter(f"{{{TB_NS}}}escalation"):
        owner = el.getparent().getparent() if el.getparent() is not None else None
        where = {"file": name, "line": el.sourceline, "element_id": owner.get("id") if owner is not None else None}
        at = (el.get("at") or "due").strip()
        if not sla.valid_point(at):
            return Problem(f"escalation point '{at}' is not understood: use yellow, due or statutory, "
                           f"optionally with an offset such as due+2wd, due-1d or yellow+4h", **where)
        unknown = [a for a in (el.get("action") or "notify").replace(" ", "").split(",") if a and a not in sla.ACTIONS]
        if unknown:
            return Problem(f"unknown escalation action(s) {', '.join(unknown)}: use {', '.join(sla.ACTIONS)}", **where)
    for el in proc.iter(f"{{{TB_NS}}}sla"):
        wrong = sla.declaration_problem(dict(el.attrib))
        if wrong:
            owner = el.getparent().getparent() if el.getparent() is not None else None
            return Problem(f"tb:sla: {wrong}", file=name, line=el.sourceline,
                           element_id=owner.get("id") if owner is not None else None)
        source = el.get("promisedFrom")
        if source is not None and not source.strip().isidentifier():
            owner = el.getparent().getparent() if el.getparent() is not None else None
            return Problem(f"promisedFrom='{source}' must name a data field (letters, digits, _) holding the "
                           "promised number of units", file=name, line=el.sourceline,
                           element_id=owner.get("id") if owner is not None else None)
    manifest = process_manifest(proc)
    for text in approval_rules.problems(manifest):
        tid, _, message = text.partition(": ")
        line = manifest["tasks"].get(tid, {}).get("line")
        return Problem(message, file=name, line=line, element_id=tid)
    return None


def check(files: dict[str, bytes]) -> tuple[list[str], list[Problem]]:
    """Validate an upload without a database: (process keys that would deploy, problems).

    Runs exactly the checks deploy runs; deploy is all-or-nothing, so when there is any
    problem the list of keys is empty.
    """
    _, _, built, problems = _plan(files)
    if problems:
        return [], problems
    return [proc.get("id") for _, proc, _, _ in built], []


def deploy(session: Session, files: dict[str, bytes], *, actor: str, clock) -> list[Deployed]:
    _, sources, built, problems = _plan(files)
    if problems:
        raise InvalidProcess(problems)
    manifests = {proc.get("id"): process_manifest(proc) for _, proc, _, _ in built}
    results = []
    for _name, proc, spec_json, subs in built:
        key = proc.get("id")
        manifest = dict(manifests[key])
        tasks = dict(manifest["tasks"])
        for sub in subs:
            tasks.update(manifests.get(sub, {}).get("tasks", {}))
            manifest["has_timers"] = manifest["has_timers"] or manifests.get(sub, {}).get("has_timers", False)
            manifest["has_messages"] = manifest["has_messages"] or manifests.get(sub, {}).get("has_messages", False)
        manifest["tasks"] = tasks
        checksum = _checksum(spec_json, manifest)
        latest = _latest(session, key)
        # (a version stored with a checksum of another rule is compared by its spec and manifest)
        if latest is not None and checksum in (latest.checksum, _checksum(latest.spec, latest.manifest)):
            results.append(Deployed(key, latest.version, latest.id, False))
            continue
        version = (latest.version if latest else 0) + 1
        row = ProcessDefinition(
            key=key, version=version, name=manifest["name"], checksum=checksum, spec=spec_json,
            manifest=manifest, sources=sources, deployed_at=clock.now(), deployed_by=actor)
        session.add(row)
        session.flush()
        audit.append(session, clock, actor, "deploy", definition_id=row.id,
                     detail={"key": key, "version": version, "checksum": checksum, "files": sorted(sources)})
        results.append(Deployed(key, version, row.id, True))
    return results


class SpecCache:
    """Parsed specs per definition id; a definition is immutable, so entries never go stale."""

    def __init__(self):
        self._items: dict[int, tuple] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, definition_id: int):
        item = self._items.get(definition_id)
        if item is None:
            row = session.get(ProcessDefinition, definition_id)
            if row is None:
                raise NotFound(f"no process definition {definition_id}")
            registry = spec_registry()
            data = json.loads(row.spec)
            spec = registry.restore(data["spec"])
            subs = {k: registry.restore(v) for k, v in data["subprocess_specs"].items()}
            item = (spec, subs, row.manifest)
            with self._lock:
                self._items[definition_id] = item
        return item


def _latest_select(key: str, *also):
    return (select(ProcessDefinition, *also).where(ProcessDefinition.key == key)
            .order_by(ProcessDefinition.version.desc()).limit(1))


def _latest(session: Session, key: str) -> ProcessDefinition | None:
    return session.scalars(_latest_select(key)).first()


def latest_for(session: Session, key: str, actor: str) -> ProcessDefinition:
    """The latest version of ``key`` and a check that ``actor`` ("system", or an active user) may
    be named as its starter, in one statement; NotFound for an unknown user first, then for an
    unknown key."""
    starter = active_user_id(actor)
    got = session.execute(_latest_select(key, starter.scalar_subquery())).first()
    if actor != "system" and (got is None or got[1] is None) and session.scalar(starter) is None:
        raise no_such_user(actor)
    if got is None:
        raise NotFound(f"no process with key '{key}' is deployed")
    return got[0]


def latest_definition(session: Session, key: str) -> ProcessDefinition:
    row = _latest(session, key)
    if row is None:
        raise NotFound(f"no process with key '{key}' is deployed")
    return row


def list_definitions(session: Session) -> list[ProcessDefinition]:
    return list(session.scalars(select(ProcessDefinition).order_by(ProcessDefinition.key, ProcessDefinition.version)))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ProcessDefinition)) or 0
