"""The manifest: our semantic layer over BPMN, read from extension elements at deploy.

Dialects read, in order of precedence: our namespace (``tb:``), ``camunda:``, and
``spiffworkflow:properties``; lanes map to candidate groups when nothing else says (the
lane's ``tb:group`` attribute, else its id).
"""

from __future__ import annotations

from lxml import etree

from . import forms
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
        sla = {k: sla_el.get(k) for k in ("limit", "unit", "warn", "statutory", "promised") if sla_el.get(k)}
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
    has_timers = process_el.find(".//" + _B + "timerEventDefinition") is not None
    has_messages = process_el.find(".//" + _B + "messageEventDefinition") is not None or \
        process_el.find(".//" + _B + "receiveTask") is not None
    return {
        "key": process_el.get("id"),
        "name": process_el.get("name") or process_el.get("id"),
        "tasks": tasks,
        "has_timers": has_timers,
        "has_messages": has_messages,
    }
