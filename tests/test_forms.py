"""Task forms: field lists from camunda:formData, tb:field and JSON Schema; server-side validation;
outcomes and required opinions enforced by the engine before SpiffWorkflow runs the task."""

from __future__ import annotations

import pytest

from engine import forms
from engine.errors import Invalid, InvalidProcess
from engine.masking import mask_data, mask_value

FIELDS = [
    forms.field("applicant", label="申请人", required=True, maxlength=20),
    forms.field("area", type_="long", required=True, min=1, max=10000),
    forms.field("ratio", type_="double"),
    forms.field("open", type_="boolean"),
    forms.field("opened_on", type_="date"),
    forms.field("kind", type_="enum", options=[{"id": "food", "name": "食品"}, {"id": "drug", "name": "药品"}]),
    forms.field("uscc", pattern=r"[0-9A-HJ-NPQRTUWXY]{18}"),
]


def test_valid_data_is_coerced():
    clean = forms.validate(FIELDS, {"applicant": "张三", "area": "120", "ratio": "0.5", "open": "on",
                                    "opened_on": "2026-11-30", "kind": "food", "uscc": "91350100M000100Y43",
                                    "extra": [1]})
    assert clean == {"applicant": "张三", "area": 120, "ratio": 0.5, "open": True, "opened_on": "2026-11-30",
                     "kind": "food", "uscc": "91350100M000100Y43", "extra": [1]}


@pytest.mark.parametrize("data, field", [
    ({"area": 5}, "applicant"),
    ({"applicant": "x", "area": "12.5"}, "area"),
    ({"applicant": "x", "area": True}, "area"),
    ({"applicant": "x", "area": 0}, "area"),
    ({"applicant": "x", "area": 10001}, "area"),
    ({"applicant": "x" * 21, "area": 1}, "applicant"),
    ({"applicant": "x", "area": 1, "ratio": "abc"}, "ratio"),
    ({"applicant": "x", "area": 1, "open": "maybe"}, "open"),
    ({"applicant": "x", "area": 1, "opened_on": "30/11/2026"}, "opened_on"),
    ({"applicant": "x", "area": 1, "kind": "weapons"}, "kind"),
    ({"applicant": "x", "area": 1, "uscc": "not-a-code"}, "uscc"),
])
def test_each_bad_field_is_named(data, field):
    with pytest.raises(Invalid) as info:
        forms.validate(FIELDS, data)
    assert set(info.value.fields) == {field}


def test_all_errors_are_reported_at_once():
    with pytest.raises(Invalid) as info:
        forms.validate(FIELDS, {"area": "many", "kind": "x"})
    assert set(info.value.fields) == {"applicant", "area", "kind"}


def test_json_schema_becomes_fields():
    fields = forms.fields_from_json_schema(
        '{"type":"object","required":["name"],"properties":{"name":{"type":"string","title":"名称","maxLength":5},'
        '"size":{"type":"integer","minimum":1},"kind":{"enum":["a","b"]},"day":{"type":"string","format":"date"}}}')
    by_id = {f["id"]: f for f in fields}
    assert by_id["name"]["required"] and by_id["name"]["label"] == "名称" and by_id["name"]["maxlength"] == 5
    assert by_id["size"]["type"] == "long" and by_id["kind"]["type"] == "enum" and by_id["day"]["type"] == "date"
    with pytest.raises(Invalid):
        forms.validate(fields, {"name": "toolong"})


FORM_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:tb="urn:tongban:bpmn:1"
  id="d" targetNamespace="urn:test">
  <bpmn:process id="form_test" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="review"/>
    <bpmn:userTask id="review" name="审查" tb:candidateGroups="approval"
        tb:outcomes="approve:准予许可,reject:不予许可" tb:opinionRequired="true">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="area" label="面积" type="long">
            <camunda:validation><camunda:constraint name="required"/><camunda:constraint name="min" config="1"/></camunda:validation>
          </camunda:formField>
        </camunda:formData>
        {schema}
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_engine_refuses_bad_form_data_before_running_the_task(engine):
    engine.deploy({"form.bpmn": FORM_BPMN.replace("{schema}", "").encode()})
    started = engine.start("form_test", {"applicant": "张三"})
    task = engine.tasks(instance_id=started["instance_id"])[0]
    view = engine.task(task["id"], "approver")
    assert [o["id"] for o in view["outcomes"]] == ["approve", "reject"] and view["opinion_required"]
    assert view["form"][0]["id"] == "area" and view["form"][0]["required"]
    with pytest.raises(Invalid) as info:
        engine.complete(task["id"], "approver", {"area": "big"}, decision="maybe", opinion="")
    assert set(info.value.fields) == {"area"}
    with pytest.raises(Invalid) as info:
        engine.complete(task["id"], "approver", {"area": "80"}, decision="maybe", opinion="")
    assert set(info.value.fields) == {"decision", "opinion"}
    assert engine.show(started["instance_id"])["status"] == "running"  # nothing happened
    done = engine.complete(task["id"], "approver", {"area": "80"}, decision="approve", opinion="符合条件")
    assert done["status"] == "completed"
    data = engine.show(started["instance_id"])["data"]
    assert data["area"] == 80 and data["decision"] == "approve"
    with pytest.raises(Exception, match="may not see"):
        engine.task(task["id"], "outsider")


def test_unreadable_json_schema_is_a_located_deploy_error(engine):
    bad = FORM_BPMN.replace("{schema}", "<tb:jsonSchema>{not json</tb:jsonSchema>")
    with pytest.raises(InvalidProcess) as info:
        engine.deploy({"form.bpmn": bad.encode()})
    problem = info.value.problems[0]
    assert problem.element_id == "review" and problem.line and "JSON Schema" in problem.message


def test_masking_keeps_region_code_and_check_digits():
    assert mask_value("350102199001011234", "id") == "350102********1234"
    assert mask_value("13912345678", "phone") == "139****5678"
    masked = mask_data({"applicant_id_number": "350102199001011234", "phone": "13912345678",
                        "name": "张三", "nested": [{"id_card": "11010519491231002X"}], "diagnosis": "x"},
                       declared={"diagnosis"})
    assert masked["applicant_id_number"] == "350102********1234" and masked["name"] == "张三"
    assert masked["nested"][0]["id_card"] == "110105********002X" and masked["diagnosis"] == "x*"
    assert masked["phone"] == "139****5678"


def test_unclaim_gives_the_task_back(engine):
    engine.deploy({"form.bpmn": FORM_BPMN.replace("{schema}", "").encode()})
    started = engine.start("form_test", {})
    task = engine.tasks(instance_id=started["instance_id"])[0]
    engine.claim(task["id"], "approver")
    assert engine.tasks(user="admin", scope="unclaimed") == []
    with pytest.raises(Exception, match="claimed by approver"):
        engine.unclaim(task["id"], "admin")
    assert engine.unclaim(task["id"], "admin", force=True)["assignee"] is None
    assert [t["id"] for t in engine.tasks(user="admin", scope="unclaimed")] == [task["id"]]
    counts = engine.task_counts("approver")
    assert counts == {"mine": 0, "unclaimed": 1, "overdue": 0}


@pytest.mark.parametrize("name, masked", [
    ("health_status", True), ("healthCertificate", True), ("medical_history", True), ("disease", True),
    ("健康证编号", True), ("既往病史", True), ("体检结果", True),
    # the health department's step data is not a person's health
    ("health_receipt_no", False), ("health_received_at", False), ("health_note", False), ("health", False),
])
def test_health_data_is_recognised_by_what_it_records_not_by_a_department_name(name, masked):
    from engine.masking import kind_of_field

    assert (kind_of_field(name) == "other") is masked
    shown = mask_data({name: "HZhealth00000003"})[name]
    assert (shown != "HZhealth00000003") is masked
