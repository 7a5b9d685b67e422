"""The manifest: our semantic layer over BPMN, read from extension elements at deploy.

Dialects read, in order of precedence: our namespace (``tb:``), ``camunda:``, and
``spiffworkflow:properties``; lanes map to candidate groups when nothing else says (the
lane's ``tb:group`` attribute, else its id).
"""

from __future__ import annotations

from lxml import etree

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
    fields = []
    for f in el.iter(f"{{{CAMUNDA_NS}}}formField", f"{{{TB_NS}}}field"):
        constraints = {c.get("name"): c.get("config") for c in f.iter(f"{{{CAMUNDA_NS}}}constraint")}
        fields.append({
            "id": f.get("id"),
            "label": f.get("label") or f.get("id"),
            "type": f.get("type", "string"),
            "required": "required" in constraints or f.get("required") == "true",
            "default": f.get("defaultValue") or f.get("default"),
        })
    return fields


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
