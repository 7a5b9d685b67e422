"""The flow check: does the data flow match the authority flow?

For every process and every task: the data the task needs (the inputs of its pulls and
service calls) and where each item comes from — pulled by a connector, produced by an earlier
task on every path that reaches it, or asked from the applicant — plus what it receives.

Errors (block a deploy, exit 1 in ``tongban check``):
- an input that is not available on some path reaching the task;
- a task that would receive a pulled field its authority may not see (``tb:visibleFields`` on
  the task, or ``<tb:authority group fields>`` for its candidate groups in the process);
- a pull naming an unknown connector, operation, input or output field, missing a required
  input, without purpose (用途) or legal basis (依据), or with an input expression that does not compile.
Warnings:
- 重复填报: an applicant field (``<tb:applicant fields>`` or a start-event form field) that a
  connector can supply;
- a pull nobody reads (no expression, form or later step uses the field, and the task's
  ``tb:visibleFields`` does not show it);
- inputs assumed to come from the applicant because the process declares no applicant data.
Counts: fields the applicant fills vs fields pulled (the 313 → 98 of the convenience-store reform).

Data availability is a classic forward data-flow analysis over the sequence flows: "on every
path" is the intersection over incoming flows (a parallel join takes the union: all its branches
ran), "may receive" the union. Elements whose outputs cannot be known statically (DMN decisions,
call activities, messages, multi-instance) make every name possibly available after them.
"""

from __future__ import annotations

import ast
import builtins

from lxml import etree

from . import licences
from .bpmn_xml import BPMN_NS, CAMUNDA_NS, SPIFF_NS, TB_NS, kind_of, parse_xml
from .errors import InvalidProcess, Problem
from .manifest import _form_fields as _manifest_form_fields
from .manifest import _split, data_pulls
from .scripts import check_expression

_B = f"{{{BPMN_NS}}}"
ANY = "*"
ALWAYS = {"initiator", "business_key"}
_BUILTINS = set(dir(builtins)) | {"True", "False", "None"}
NODE_TAGS = {"startEvent", "endEvent", "userTask", "manualTask", "task", "scriptTask", "serviceTask", "sendTask",
             "receiveTask", "businessRuleTask", "callActivity", "subProcess", "exclusiveGateway", "parallelGateway",
             "inclusiveGateway", "eventBasedGateway", "complexGateway", "intermediateCatchEvent",
             "intermediateThrowEvent", "boundaryEvent", "transaction", "adHocSubProcess"}
OPAQUE = {"businessRuleTask", "callActivity", "receiveTask"}


def names_read(expr: str) -> set[str]:
    try:
        tree = ast.parse((expr or "").strip(), mode="eval")
    except SyntaxError:
        try:
            tree = ast.parse(expr or "")
        except SyntaxError:
            return set()
    bound = {n.id for c in ast.walk(tree) if isinstance(c, ast.comprehension) for n in ast.walk(c.target)
             if isinstance(n, ast.Name)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound - _BUILTINS


def names_written(script: str) -> set[str]:
    try:
        tree = ast.parse(script or "")
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _form_fields(el) -> list[dict]:
    """Form fields of an element; an unreadable form is reported by the deploy checks, not here."""
    try:
        return _manifest_form_fields(el)
    except ValueError:
        return []


def _local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


class _Process:
    def __init__(self, file: str, proc, registry):
        self.file, self.proc, self.registry = file, proc, registry
        self.departments: dict[str, str] = {}  # group → department name, for the summary
        self.key = proc.get("id")
        self.nodes: dict[str, etree._Element] = {}
        self.preds: dict[str, list[str]] = {}
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        for el in proc:
            if _local(el) in NODE_TAGS and el.get("id") and etree.QName(el).namespace == BPMN_NS:
                self.nodes[el.get("id")] = el
                self.preds.setdefault(el.get("id"), [])
        for flow in proc.findall(_B + "sequenceFlow"):
            src, dst = flow.get("sourceRef"), flow.get("targetRef")
            if src in self.nodes and dst in self.nodes:
                self.preds[dst].append(src)
        for nid, el in self.nodes.items():
            if _local(el) == "boundaryEvent" and el.get("attachedToRef") in self.nodes:
                self.preds[nid].append(el.get("attachedToRef"))
        ext = proc.find(_B + "extensionElements")
        self.applicant_declared: list[str] = []
        self.authority: dict[str, set[str]] = {}
        if ext is not None:
            for a in ext.iter(f"{{{TB_NS}}}applicant"):
                self.applicant_declared += _split(a.get("fields"))
            for a in ext.iter(f"{{{TB_NS}}}authority"):
                for g in _split(a.get("group")):
                    self.authority.setdefault(g, set()).update(_split(a.get("fields")))
        self.lanes = {}
        for lane in proc.iter(_B + "lane"):
            for ref in lane.findall(_B + "flowNodeRef"):
                self.lanes[(ref.text or "").strip()] = lane.get(f"{{{TB_NS}}}group") or lane.get("id")

    def problem(self, bucket, msg, el, line=None):
        bucket.append(Problem(msg, file=self.file, line=line or el.sourceline, element_id=el.get("id"),
                              severity="error" if bucket is self.errors else "warning"))

    # ---- what each element declares -----------------------------------------------------
    def pulls_of(self, el) -> list[dict]:
        return data_pulls(el) if _local(el) in ("userTask", "manualTask", "serviceTask") else []

    def check_declarations(self):
        for el in self.proc.iter():
            if _local(el) == "data" and etree.QName(el).namespace == TB_NS:
                owner = el.getparent().getparent() if el.getparent() is not None else None
                if owner is None or _local(owner) not in ("userTask", "manualTask", "serviceTask"):
                    self.problem(self.errors, "<tb:data> belongs on a user task or a service task",
                                 owner if owner is not None else el, el.sourceline)
        for el in self.nodes.values():
            for pull in self.pulls_of(el):
                self._check_pull(el, pull)

    def _check_pull(self, el, pull):
        line = pull.get("line")
        service = _local(el) == "serviceTask"
        name, op_name = pull["connector"], pull["operation"]
        where = f"{name}.{op_name}"
        if not name or name not in self.registry:
            known = ", ".join(self.registry.names()) or "none installed"
            self.problem(self.errors, f"unknown connector '{name}' (known: {known})", el, line)
            return
        conn = self.registry.unconfigured(name)
        op = conn.operations().get(op_name)
        if op is None and not conn.dynamic_operations:
            known = ", ".join(sorted(conn.operations()))
            self.problem(self.errors, f"connector '{name}' has no operation '{op_name}' (it has: {known})", el, line)
            return
        for what, value in (("purpose (用途)", pull.get("purpose")), ("legal basis (依据)", pull.get("basis"))):
            if not (value or "").strip():
                bucket = self.warnings if service else self.errors
                self.problem(bucket, f"the pull {where} states no {what}; every pull of shared data must say "
                                     "why it is needed and on which legal basis", el, line)
        if not service and not pull.get("outputs"):
            self.problem(self.errors, f"the pull {where} keeps no fields; declare each field with "
                                      "<tb:output name=\"...\"/> (only declared fields enter the task)", el, line)
        for iname, expr in (pull.get("inputs") or {}).items():
            for _, msg in check_expression(expr or ""):
                self.problem(self.errors, f"input '{iname}' of {where}: {msg}", el, line)
        if op is None:
            return
        for iname in pull.get("inputs") or {}:
            if iname not in op.inputs:
                self.problem(self.errors, f"{where} has no input '{iname}' (inputs: {', '.join(op.inputs)})", el, line)
        for iname in op.required_inputs:
            if iname not in (pull.get("inputs") or {}):
                self.problem(self.errors, f"{where} needs the input '{iname}'", el, line)
        for o in pull.get("outputs") or []:
            if o["name"] not in op.fields:
                self.problem(self.errors, f"{where} returns no field '{o['name']}' (fields: "
                                          f"{', '.join(op.fields)})", el, o.get("line") or line)

    def produced(self, el) -> tuple[set[str], set[str]]:
        """(names an element makes available after it, of which pulled)."""
        tag = _local(el)
        out: set[str] = set()
        pulled: set[str] = set()
        if tag in OPAQUE or el.find(_B + "multiInstanceLoopCharacteristics") is not None:
            out.add(ANY)
        if tag in ("subProcess", "transaction", "adHocSubProcess"):
            for inner in el.iter():
                if inner is not el and _local(inner) in NODE_TAGS:
                    o, p = self.produced(inner)
                    out |= o
                    pulled |= p
        if tag == "intermediateCatchEvent" and el.find(_B + "messageEventDefinition") is not None:
            out.add(ANY)
        if tag == "startEvent":
            out |= {f["id"] for f in _form_fields(el) if f.get("id")}
        if tag in ("userTask", "manualTask"):
            out |= {f["id"] for f in _form_fields(el) if f.get("id")}
            if el.get(f"{{{TB_NS}}}outcomes") or any(f["id"] == "decision" for f in _form_fields(el)):
                out.add("decision")
        for pull in self.pulls_of(el):
            names = {o["as"] for o in pull.get("outputs") or [] if o.get("scope") != "task"}
            if tag == "serviceTask" and not pull.get("outputs"):
                if pull.get("result_variable"):
                    names = {pull["result_variable"]}
                else:
                    op = self._op(pull)
                    names = set(op.fields) if op else {ANY}
            out |= names
            pulled |= names - {ANY}
        for s in el.iter(_B + "script", f"{{{SPIFF_NS}}}preScript", f"{{{SPIFF_NS}}}postScript"):
            out |= names_written(s.text or "")
        if tag == "serviceTask" and (licence := licences.declaration(el)) is not None:
            out |= licences.produced_fields(licence)
        return out, pulled

    def _op(self, pull):
        if pull["connector"] not in self.registry:
            return None
        return self.registry.unconfigured(pull["connector"]).operations().get(pull["operation"])

    def needs(self, el) -> dict[str, str]:
        """name -> what needs it (the pull or service input)."""
        out = {}
        for pull in self.pulls_of(el):
            for iname, expr in (pull.get("inputs") or {}).items():
                for n in names_read(expr or ""):
                    out.setdefault(n, f"input '{iname}' of {pull['connector']}.{pull['operation']}")
        return out

    def groups_of(self, el) -> list[str]:
        groups = _split(el.get(f"{{{TB_NS}}}candidateGroups") or el.get(f"{{{CAMUNDA_NS}}}candidateGroups"))
        if not groups and el.get("id") in self.lanes:
            groups = [self.lanes[el.get("id")]]
        return groups

    # ---- the analysis ---------------------------------------------------------------------
    def run(self) -> dict:
        self.check_declarations()
        applicant_start = set()
        for el in self.nodes.values():
            if _local(el) == "startEvent":
                applicant_start |= {f["id"] for f in _form_fields(el) if f.get("id")}
        applicant = set(self.applicant_declared) | applicant_start
        strict = bool(applicant)
        produced = {nid: self.produced(el) for nid, el in self.nodes.items()}
        all_names = set().union(*(p[0] for p in produced.values())) | applicant | ALWAYS | {ANY}
        start_ids = [n for n, el in self.nodes.items() if _local(el) == "startEvent" and not self.preds[n]]
        base = applicant | ALWAYS
        must_out = {n: set(all_names) for n in self.nodes}
        may_out = {n: set() for n in self.nodes}
        must_in: dict[str, set[str]] = {}
        may_in: dict[str, set[str]] = {}
        for _ in range(len(self.nodes) + 2):
            changed = False
            for nid, el in self.nodes.items():
                preds = self.preds[nid]
                if not preds:
                    mi = set(base) if nid in start_ids or not strict else set(base)
                    yi = set(base)
                elif _local(el) == "parallelGateway" and len(preds) > 1:
                    mi = set().union(*(must_out[p] for p in preds))
                    yi = set().union(*(may_out[p] for p in preds))
                else:
                    mi = set.intersection(*(must_out[p] for p in preds))
                    yi = set().union(*(may_out[p] for p in preds))
                scoped = {o["as"] for p in self.pulls_of(el) for o in p.get("outputs") or [] if o.get("scope") == "task"}
                mo = (mi | produced[nid][0]) - scoped
                yo = (yi | produced[nid][0]) - scoped
                if mo != must_out[nid] or yo != may_out[nid] or must_in.get(nid) != mi:
                    changed = True
                must_in[nid], may_in[nid], must_out[nid], may_out[nid] = mi, yi, mo, yo
            if not changed:
                break
        pulled_names = set().union(*(p[1] for p in produced.values()))
        producers: dict[str, list[str]] = {}
        for nid, (names, _) in produced.items():
            for n in names:
                producers.setdefault(n, []).append(nid)
        referenced = self._referenced()
        tasks = []
        assumed: set[str] = set()
        for nid, el in self.nodes.items():
            tag = _local(el)
            if tag not in ("userTask", "manualTask", "serviceTask", "scriptTask", "businessRuleTask", "task"):
                continue
            needs = []
            for name, what in self.needs(el).items():
                available = name in must_in[nid] or ANY in must_in[nid]
                if name in applicant or name in ALWAYS:
                    source = "applicant" if name not in ALWAYS else "engine"
                elif available and name in pulled_names and ANY not in must_in[nid]:
                    source = "pulled"
                elif available:
                    source = "earlier task"
                elif not strict and name not in producers:
                    source = "applicant (undeclared)"
                    assumed.add(name)
                else:
                    source = None
                    on_some = name in may_in[nid]
                    self.problem(self.errors, f"'{name}' ({what}) is not available on every path that reaches "
                                              f"this task" + ("; it is produced only on some paths" if on_some else
                                                              "; nothing before it produces it"), el)
                needs.append({"name": name, "for": what, "source": source,
                              "from": [p for p in producers.get(name, []) if p != nid]})
            own_pulled = set()
            for pull in self.pulls_of(el):
                own_pulled |= {o["as"] for o in pull.get("outputs") or []}
            receives = sorted(((may_in[nid] & pulled_names) | own_pulled) - {ANY})
            allowed = self._allowed(el)
            if allowed is not None:
                for name in receives:
                    if name not in allowed:
                        self.problem(self.errors, f"this task would receive the pulled field '{name}', which its "
                                                  f"authority may not see (allowed: {', '.join(sorted(allowed)) or 'none'})"
                                                  "; drop the field, mark it scope=\"task\" where it is pulled, or "
                                                  "widen the authority", el)
            tasks.append({"id": nid, "name": el.get("name") or nid, "type": tag, "line": el.sourceline,
                          "groups": self.groups_of(el), "needs": needs, "receives": receives,
                          "pulls": [{"connector": p["connector"], "operation": p["operation"],
                                     "fields": [o["as"] for o in p.get("outputs") or []], "purpose": p["purpose"],
                                     "basis": p["basis"]} for p in self.pulls_of(el)],
                          "form_fields": [f["id"] for f in _form_fields(el) if f.get("id")] if tag != "serviceTask" else [],
                          "visible_fields": allowed and sorted(allowed)})
            self._unread(el, referenced)
        if assumed:
            self.warnings.append(Problem(
                f"{', '.join(sorted(assumed))}: assumed to come from the applicant; declare the applicant's data with "
                "<tb:applicant fields=\"...\"/> in the process's extensionElements to check every path",
                file=self.file, line=self.proc.sourceline, element_id=self.key, severity="warning"))
        suppliable = self._suppliable() | pulled_names
        for name in sorted(applicant):
            if name in suppliable:
                self.warnings.append(Problem(
                    f"重复填报: the applicant is asked for '{name}', which a connector can supply; pull it instead",
                    file=self.file, line=self.proc.sourceline, element_id=self.key, severity="warning"))
        steps = self.steps()
        return {"key": self.key, "name": self.proc.get("name") or self.key, "file": self.file, "tasks": tasks,
                "applicant_fields": sorted(applicant | assumed), "pulled_fields": sorted(pulled_names),
                "counts": {"applicant_fields": len(applicant | assumed), "pulled_fields": len(pulled_names)},
                "departments": list(dict.fromkeys(d for st in steps for d in st["departments"])),
                "steps": steps, "limits": self.limits(steps),
                "errors": [p.as_dict() for p in self.errors], "warnings": [p.as_dict() for p in self.warnings]}

    # ---- the summary: departments, steps, limits ------------------------------------------
    def steps(self) -> list[dict]:
        """The user and service tasks (and DMN decisions) in flow order from the start event
        (the steps of a sub-process where it sits), each with its groups and their departments."""
        order: list = []
        seen: set[str] = set()
        queue = [n for n, el in self.nodes.items() if _local(el) == "startEvent" and not self.preds[n]]
        succs: dict[str, list[str]] = {}
        for dst, preds in self.preds.items():
            for src in preds:
                succs.setdefault(src, []).append(dst)
        while queue:
            nid = queue.pop(0)
            if nid in seen:
                continue
            seen.add(nid)
            order.append(self.nodes[nid])
            queue.extend(d for d in succs.get(nid, []) if d not in seen)
        order += [el for nid, el in self.nodes.items() if nid not in seen]
        out, listed = [], set()
        for top in order:
            inner = [top] + ([e for e in top.iter() if e is not top]
                             if _local(top) in ("subProcess", "transaction", "adHocSubProcess") else [])
            for el in inner:
                if _local(el) not in STEP_TAGS or etree.QName(el).namespace != BPMN_NS or el.get("id") in listed:
                    continue
                listed.add(el.get("id"))
                groups = self.groups_of(el)
                out.append({"id": el.get("id"), "name": el.get("name") or el.get("id"), "type": _local(el),
                            "groups": groups,
                            "departments": list(dict.fromkeys(self.departments.get(g) or g for g in groups)),
                            "limit": _limits_of(el)})
        return out

    def limits(self, steps: list[dict]) -> dict:
        """Promised vs statutory: the case's (``tb:sla`` on the process) and each step's."""
        case = _limits_of(self.proc)
        return {**case, "tasks": [{"id": st["id"], "name": st["name"], **st["limit"]} for st in steps
                                  if st["limit"]["promised"] or st["limit"]["statutory"]]}

    def _allowed(self, el) -> set[str] | None:
        visible = el.get(f"{{{TB_NS}}}visibleFields")
        if visible is not None:
            return set(_split(visible))
        sets = [self.authority[g] for g in self.groups_of(el) if g in self.authority]
        return set().union(*sets) if sets else None

    def _referenced(self) -> set[str]:
        names: set[str] = set()
        for tag in ("conditionExpression", "completionCondition", "loopCardinality"):
            for e in self.proc.iter(_B + tag):
                names |= names_read(e.text or "")
        for s in self.proc.iter(_B + "script", f"{{{SPIFF_NS}}}preScript", f"{{{SPIFF_NS}}}postScript"):
            names |= names_read(s.text or "")
        for el in self.nodes.values():
            for pull in self.pulls_of(el):
                for expr in (pull.get("inputs") or {}).values():
                    names |= names_read(expr or "")
            names |= {f["id"] for f in _form_fields(el) if f.get("id")}
            if el.get(f"{{{TB_NS}}}visibleFields"):
                names |= set(_split(el.get(f"{{{TB_NS}}}visibleFields")))
        for inner in self.proc.iter(_B + "userTask", _B + "manualTask"):
            names |= set(_split(inner.get(f"{{{TB_NS}}}visibleFields")))
        return names

    def _unread(self, el, referenced):
        tag = _local(el)
        for pull in self.pulls_of(el):
            if tag == "serviceTask":
                kept = [o["as"] for o in pull.get("outputs") or []] or (
                    [pull["result_variable"]] if pull.get("result_variable") else [])
                unread = [n for n in kept if n not in referenced]
            else:
                visible = el.get(f"{{{TB_NS}}}visibleFields")
                shown = set(_split(visible)) if visible is not None else None
                unread = [o["as"] for o in pull.get("outputs") or []
                          if shown is not None and o["as"] not in shown and o["as"] not in referenced]
            if unread:
                self.problem(self.warnings, f"a pull nobody reads: {', '.join(unread)} from {pull['connector']}."
                                            f"{pull['operation']} is not shown or used by any step", el,
                             pull.get("line"))

    def _suppliable(self) -> set[str]:
        fields, keys = set(), set()
        for name in self.registry.names():
            try:
                conn = self.registry.unconfigured(name)
                if conn.dynamic_operations:
                    continue
                for op in conn.operations().values():
                    fields |= set(op.fields)
                    keys |= set(op.inputs)
            except Exception:  # noqa: BLE001 - a broken plug-in does not stop the check
                continue
        return fields - keys - {"found", "count"}


STEP_TAGS = {"userTask", "manualTask", "serviceTask", "sendTask", "businessRuleTask"}


def _limits_of(el) -> dict:
    """{"promised": {"value", "unit"} | None, "statutory": ...} of an element's own ``tb:sla``
    (``limit`` counts as statutory when no ``statutory`` is given)."""
    from .sla import _UNIT_ALIASES, _num

    sla = el.find(f"{_B}extensionElements/{{{TB_NS}}}sla")
    if sla is None:
        return {"promised": None, "statutory": None}
    unit = _UNIT_ALIASES.get((sla.get("unit") or "workday").strip().lower(), "workday")

    def value(*names):
        for name in names:
            n = _num(sla.get(name))
            if n is not None:
                return {"value": int(n) if n == int(n) else n, "unit": unit}
        return None

    return {"promised": value("promised"), "statutory": value("statutory", "limit")}


def _processes(files: dict[str, bytes]):
    for name, content in files.items():
        tree, errs = parse_xml(name, content)
        if errs or tree is None or kind_of(tree) != "bpmn":
            continue
        for proc in tree.getroot().iter(_B + "process"):
            if proc.get("isExecutable", "true").strip().lower() != "false":
                yield name, proc


def check_files(files: dict[str, bytes], registry=None, group_departments: dict[str, str] | None = None) -> dict:
    """The report of ``tongban check``: one entry per executable process.

    ``group_departments`` (group → department name, from the directory when there is one)
    names the departments of the summary; without it a group stands for its department."""
    if registry is None:
        from .connectors import default_registry

        registry = default_registry()
    processes = []
    for name, proc in _processes(files):
        checker = _Process(name, proc, registry)
        checker.departments = dict(group_departments or {})
        processes.append(checker.run())
    errors = sum(len(p["errors"]) for p in processes)
    warnings = sum(len(p["warnings"]) for p in processes)
    return {"ok": errors == 0, "errors": errors, "warnings": warnings, "processes": processes,
            "counts": {"applicant_fields": sum(p["counts"]["applicant_fields"] for p in processes),
                       "pulled_fields": sum(p["counts"]["pulled_fields"] for p in processes)}}


def deploy_problems(files: dict[str, bytes], registry=None) -> list[Problem]:
    report = check_files(files, registry)
    return [Problem(e["message"], file=e["file"], line=e["line"], element_id=e["element_id"])
            for p in report["processes"] for e in p["errors"]]


def raise_for_errors(files: dict[str, bytes], registry=None) -> None:
    problems = deploy_problems(files, registry)
    if problems:
        raise InvalidProcess(problems)
