"""Deploying BPMN/DMN: read safely, validate, parse with SpiffWorkflow, store a version.

Each executable process in the upload becomes a definition version of its key (the process
id). Identical content for a key is a no-op; anything else makes version N+1, and running
instances stay on the version they started with. The parsed spec is stored once per version
and cached in memory per version, so a definition is parsed once per process.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from . import audit
from .bpmn_xml import BPMN_NS, SPIFF_NS, kind_of, line_of, parse_xml, xsd_problems
from .errors import InvalidProcess, NotFound, Problem
from .manifest import process_manifest
from .models import ProcessDefinition
from .scripts import check_expression, check_script
from .serialization import spec_registry

_B = "{%s}" % BPMN_NS


@dataclass
class Deployed:
    key: str
    version: int
    id: int
    created: bool

    def as_dict(self) -> dict:
        return {"key": self.key, "version": self.version, "id": self.id, "created": self.created}


def read_paths(paths: list[str | Path]) -> dict[str, bytes]:
    """Files named, and the .bpmn/.dmn files of folders named, as {name: bytes}."""
    files: dict[str, bytes] = {}
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted([*p.rglob("*.bpmn"), *p.rglob("*.bpmn20.xml"), *p.rglob("*.dmn")])
            if not found:
                raise InvalidProcess([Problem("no .bpmn or .dmn files in this folder", file=str(p))])
            for f in found:
                files[str(f)] = f.read_bytes()
        elif p.is_file():
            files[str(p)] = p.read_bytes()
        else:
            raise NotFound(f"no such file or folder: {p}")
    return files


def _script_problems(name: str, tree) -> list[Problem]:
    problems = []

    def add(el, text, checker, what):
        owner = el
        while owner is not None and not owner.get("id"):
            owner = owner.getparent()
        for line, msg in checker(text):
            at = (el.sourceline or 0) + ((line or 1) - 1)
            problems.append(Problem(f"{what}: {msg}", file=name, line=at,
                                    element_id=owner.get("id") if owner is not None else None))

    for el in tree.iter(_B + "script", "{%s}preScript" % SPIFF_NS, "{%s}postScript" % SPIFF_NS):
        if el.text and el.text.strip():
            add(el, el.text, check_script, "script error")
    for tag in ("conditionExpression", "timeDuration", "timeDate", "timeCycle", "completionCondition"):
        for el in tree.iter(_B + tag):
            if el.text and el.text.strip():
                add(el, el.text, check_expression, f"{tag} error")
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


def _checksum(spec_json: str, manifest: dict) -> str:
    h = hashlib.sha256(spec_json.encode())
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
        problems += xsd_problems(name, tree)
        problems += _script_problems(name, tree)
    parser = SpiffBpmnParser(validator=None)
    if problems:
        return parser, trees, {}, problems
    for name, tree in sorted(trees.items(), key=lambda kv: kind_of(kv[1]) != "dmn"):
        try:
            if kind_of(tree) == "dmn":
                parser.add_dmn_xml(tree.getroot(), filename=name)
            else:
                parser.add_bpmn_xml(tree, filename=name)
        except ValidationException as exc:
            problems.append(_from_spiff(exc, trees, name))
        except (SpiffWorkflowException, Exception) as exc:  # noqa: BLE001 - any parser failure is a located problem
            problems.append(Problem(f"cannot read this file: {exc}", file=name))
    sources = {name: etree.tostring(t, encoding="unicode") for name, t in trees.items()}
    return parser, trees, sources, problems


def _from_spiff(exc: ValidationException, trees: dict, fallback_file: str | None = None) -> Problem:
    file = getattr(exc, "file_name", None) or fallback_file
    element_id = getattr(exc, "id", None) or None
    line = getattr(exc, "line_number", None) or None
    if not line and file in trees:
        line = line_of(trees[file], element_id)
    msg = str(getattr(exc, "message", None) or exc).split("\n")[0]
    tag = getattr(exc, "tag", None)
    if "does not support" in msg or "Unsupported" in msg:
        msg = f"this element is not supported by the engine ({tag or msg})"
    return Problem(msg, file=file, line=line, element_id=element_id)


def deploy(session: Session, files: dict[str, bytes], *, actor: str, clock) -> list[Deployed]:
    parser, trees, sources, problems = validate(files)
    if problems:
        raise InvalidProcess(problems)
    process_ids = []
    for name, tree in trees.items():
        if kind_of(tree) != "bpmn":
            continue
        for proc in tree.getroot().iter(_B + "process"):
            if proc.get("isExecutable", "true").lower() != "false":
                process_ids.append((name, proc))
    if not process_ids:
        raise InvalidProcess([Problem("no executable process in the upload (isExecutable=\"true\")",
                                      file=next(iter(files), None))])
    manifests = {proc.get("id"): process_manifest(proc) for _, proc in process_ids}
    results = []
    registry = spec_registry()
    for name, proc in process_ids:
        key = proc.get("id")
        try:
            spec = parser.get_spec(key)
            subs = parser.get_subprocess_specs(key)
        except ValidationException as exc:
            raise InvalidProcess([_from_spiff(exc, trees, name)]) from exc
        except Exception as exc:  # noqa: BLE001
            raise InvalidProcess([Problem(f"cannot build process '{key}': {exc}", file=name,
                                          line=proc.sourceline, element_id=key)]) from exc
        manifest = dict(manifests[key])
        tasks = dict(manifest["tasks"])
        for sub in subs:
            tasks.update(manifests.get(sub, {}).get("tasks", {}))
            manifest["has_timers"] = manifest["has_timers"] or manifests.get(sub, {}).get("has_timers", False)
            manifest["has_messages"] = manifest["has_messages"] or manifests.get(sub, {}).get("has_messages", False)
        manifest["tasks"] = tasks
        spec_json = json.dumps({
            "spec": registry.convert(spec),
            "subprocess_specs": {k: registry.convert(v) for k, v in subs.items()},
        }, sort_keys=True, ensure_ascii=False)
        checksum = _checksum(spec_json, manifest)
        latest = session.scalars(
            select(ProcessDefinition).where(ProcessDefinition.key == key)
            .order_by(ProcessDefinition.version.desc()).limit(1)).first()
        if latest is not None and latest.checksum == checksum:
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


def latest_definition(session: Session, key: str) -> ProcessDefinition:
    row = session.scalars(select(ProcessDefinition).where(ProcessDefinition.key == key)
                          .order_by(ProcessDefinition.version.desc()).limit(1)).first()
    if row is None:
        raise NotFound(f"no process with key '{key}' is deployed")
    return row


def list_definitions(session: Session) -> list[ProcessDefinition]:
    return list(session.scalars(select(ProcessDefinition).order_by(ProcessDefinition.key, ProcessDefinition.version)))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ProcessDefinition)) or 0
