"""The manifest: our semantic layer over BPMN, read from extension elements at deploy.

Dialects read, in order of precedence: our namespace (``tb:``), ``camunda:``, and
``spiffworkflow:properties``; lanes map to candidate groups when nothing else says (the
lane's ``tb:group`` attribute, else its id).
"""

from __future__ import annotations

from lxml import etree

from . import approval_rules, forms, licences
from .bpmn_xml import BPMN_NS, CAMUNDA_NS, SPIFF_NS, TB_NS

HUMAN_TAGS = {"userTask", "manualTask"}
_B = f"{{{BPMN_NS}}}"


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _spiff_properties(el) -> dict[str, str]:
    props = {}
    for p in el.iter(f"{{{SPIFF_NS}}}property"):
        if p.get("name"):
            props[p.get("name")] = p.get("value", "")
    return props


def _form_fields(el) -> list[dict]:
    """camunda:formField and tb:field elements, then a tb:jsonSchema, as one field list."""
    fields = []
    for f in el.iter(f"{{{CAMUNDA_NS}}}formField", f"{{{TB_NS}}}field"):
        constraints = {c.get("name"): c.get("config") for c in f.iter(f"{{{CAMUNDA_NS}}}constraint")}
        options = [{"id": v.get("id"), "name": v.get("name") or v.get("id")}
                   for v in f.iter(f"{{{CAMUNDA_NS}}}value", f"{{{TB_NS}}}option") if v.get("id")]
        if not options and f.get("options"):
            options = [{"id": o, "name": o} for o in _split(f.get("options"))]

        def limit(name, f=f, constraints=constraints):
            return constraints.get(name) if constraints.get(name) is not None else f.get(name)

        fields.append(forms.field(
            f.get("id"), label=f.get("label"), type_=f.get("type", "string"),
            required="required" in constraints or f.get("required") == "true",
            default=f.get("defaultValue") or f.get("default"), options=options or None,
            min=limit("min"), max=limit("max"), minlength=limit("minlength"), maxlength=limit("maxlength"),
            pattern=limit("pattern"), readonly=("readonly" in constraints) or None,
            sensitive=f.get("sensitive") == "true" or None))
    schema = el.find(f".//{{{TB_NS}}}jsonSchema")
    if schema is not None and (schema.text or "").strip():
        fields.extend(forms.fields_from_json_schema(schema.text))
    return fields


def _outcomes(el) -> list[dict]:
    """The decisions a clerk can take: tb:outcomes="approve:准予,reject:不予", or the options of a
    form field called ``decision``."""
    raw = el.get(f"{{{TB_NS}}}outcomes")
    if raw:
        out = []
        for part in _split(raw):
            oid, _, name = part.partition(":")
            out.append({"id": oid.strip(), "name": (name or oid).strip()})
        return out
    for f in el.iter(f"{{{CAMUNDA_NS}}}formField", f"{{{TB_NS}}}field"):
        if f.get("id") == "decision":
            return [{"id": v.get("id"), "name": v.get("name") or v.get("id")}
                    for v in f.iter(f"{{{CAMUNDA_NS}}}value", f"{{{TB_NS}}}option") if v.get("id")]
    return []


def data_pulls(el) -> list[dict]:
    """Declared data pulls of a task: ``<tb:data connector operation purpose basis>`` with
    ``<tb:input name expr>`` and ``<tb:output name [as] [sensitive] [seeFull] [scope]>`` children.
    A service task's ``spiffworkflow:serviceTaskOperator id="connector.operation"`` counts too."""
    pulls = []
    for d in el.iter(f"{{{TB_NS}}}data"):
        pulls.append({
            "connector": d.get("connector") or "", "operation": d.get("operation") or "",
            "purpose": d.get("purpose") or "", "basis": d.get("basis") or "", "line": d.sourceline,
            "inputs": {i.get("name"): i.get("expr") if i.get("expr") is not None else i.get("name")
                       for i in d.iter(f"{{{TB_NS}}}input") if i.get("name")},
            "outputs": [{"name": o.get("name"), "as": o.get("as") or o.get("name"),
                         "sensitive": o.get("sensitive") or None, "see_full": _split(o.get("seeFull")),
                         "scope": o.get("scope") or "instance", "line": o.sourceline}
                        for o in d.iter(f"{{{TB_NS}}}output") if o.get("name")],
        })
    if not pulls:
        for op in el.iter(f"{{{SPIFF_NS}}}serviceTaskOperator"):
            connector, _, operation = (op.get("id") or "").replace("/", ".").partition(".")
            pulls.append({
                "connector": connector, "operation": operation, "purpose": op.get(f"{{{TB_NS}}}purpose") or "",
                "basis": op.get(f"{{{TB_NS}}}basis") or "", "line": op.sourceline,
                "inputs": {p.get("id"): p.get("value") or p.get("id") for p in op.iter(f"{{{SPIFF_NS}}}parameter")
                           if p.get("id")},
                "outputs": [], "result_variable": op.get("resultVariable") or None,
            })
    return pulls


SLA_KEYS = ("limit", "unit", "warn", "warnBefore", "statutory", "promised", "promisedFrom", "region", "approver")


def escalations(el) -> list[dict]:
    """``<tb:escalation at="yellow|due|due+2wd" action="notify,card" target="..." [decision] [scope]>``
    directly inside the element's extensionElements (a process's chain is not its tasks' chain)."""
    out = []
    for e in el.findall(f"{_B}extensionElements/{{{TB_NS}}}escalation"):
        out.append({"at": (e.get("at") or "due").strip(), "actions": _split(e.get("action") or "notify"),
                    "target": e.get("target") or None, "decision": e.get("decision") or None,
                    "opinion": e.get("opinion") or None, "scope": e.get("scope") or None})
    return out


def _process_sla(process_el) -> dict:
    """The instance's limit (``tb:sla`` on the process), the chains, and the elements that stop the clock."""
    sla_el = process_el.find(f"{_B}extensionElements/{{{TB_NS}}}sla")
    sla = {k: sla_el.get(k) for k in SLA_KEYS if sla_el.get(k)} if sla_el is not None else None
    chain = escalations(process_el)
    pauses = {}
    for el in process_el.iter():
        if isinstance(el.tag, str) and el.get(f"{{{TB_NS}}}pausesClock") and el.get("id"):
            pauses[el.get("id")] = el.get(f"{{{TB_NS}}}pausesClock")
    return {"sla": sla, "instance_chain": [e for e in chain if e["scope"] in (None, "instance")],
            "task_chain": [e for e in chain if e["scope"] in (None, "task")], "pauses": pauses}


def task_entry(el, lane: dict | None) -> dict:
    def attr(name):
        return el.get(f"{{{TB_NS}}}{name}") or el.get(f"{{{CAMUNDA_NS}}}{name}")

    props = _spiff_properties(el)
    groups = _split(attr("candidateGroups") or props.get("candidateGroups"))
    users = _split(attr("candidateUsers") or props.get("candidateUsers"))
    assignee = attr("assignee") or props.get("assignee") or None
    sla_el = el.find(f".//{{{TB_NS}}}sla")
    sla = None
    if sla_el is not None:
        sla = {k: sla_el.get(k) for k in SLA_KEYS if sla_el.get(k)}
    lane_group = None
    if lane:
        lane_group = lane.get("group")
    if not groups and not users and not assignee and lane_group:
        groups = [lane_group]
    return {
        "id": el.get("id"),
        "name": el.get("name") or el.get("id"),
        "type": etree.QName(el).localname,
        "line": el.sourceline,
        "lane": lane.get("name") if lane else None,
        "candidate_groups": groups,
        "candidate_users": users,
        "assignee": assignee,
        "form_key": attr("formKey") or props.get("formKey") or None,
        "form_fields": _form_fields(el),
        "outcomes": _outcomes(el),
        "opinion_required": el.get(f"{{{TB_NS}}}opinionRequired") == "true",
        "due": attr("dueDate") or props.get("dueDate") or None,
        "sla": sla,
        "org_level": el.get(f"{{{TB_NS}}}orgLevel"),
        "pulls": data_pulls(el),
        "visible_fields": _split(el.get(f"{{{TB_NS}}}visibleFields")) or None,
        "escalations": escalations(el),
        **approval_rules.parse(el),
    }


def process_manifest(process_el) -> dict:
    lanes_by_node: dict[str, dict] = {}
    for lane in process_el.iter(_B + "lane"):
        info = {"id": lane.get("id"), "name": lane.get("name") or lane.get("id"),
                "group": lane.get(f"{{{TB_NS}}}group") or lane.get("id")}
        for ref in lane.findall(_B + "flowNodeRef"):
            lanes_by_node[(ref.text or "").strip()] = info
    tasks = {}
    for el in process_el.iter():
        if isinstance(el.tag, str) and etree.QName(el).namespace == BPMN_NS and etree.QName(el).localname in HUMAN_TAGS:
            tasks[el.get("id")] = task_entry(el, lanes_by_node.get(el.get("id")))
            approval_rules.manifest_fixups(tasks[el.get("id")])
    services = {}
    for el in process_el.iter(_B + "serviceTask"):
        entry = task_entry(el, lanes_by_node.get(el.get("id")))
        licence = licences.declaration(el)
        if licence is not None:  # issued or revoked by the engine itself: a job, no connector
            entry["licence"] = licence
        if entry["pulls"] or licence is not None:
            services[el.get("id")] = entry
    has_timers = process_el.find(".//" + _B + "timerEventDefinition") is not None
    has_messages = process_el.find(".//" + _B + "messageEventDefinition") is not None or \
        process_el.find(".//" + _B + "receiveTask") is not None
    return {
        "key": process_el.get("id"),
        "name": process_el.get("name") or process_el.get("id"),
        "tasks": tasks,
        "has_timers": has_timers,
        "has_messages": has_messages,
        "services": services,
        "cc": approval_rules.parse_cc(process_el),  # tb:cc: copies sent when an element completes
        **_process_sla(process_el),
    }
