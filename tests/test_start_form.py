"""Start forms: when the start event declares form fields, Engine.start validates the start data
with the task-form validator (missing required, wrong type, enum, pattern) before anything is
written; REST answers 400 with ``fields``."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine import forms
from engine.errors import Invalid
from engine.models import AuditEvent, Instance

CAMUNDA = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="shop_apply" name="开店申请" isExecutable="true">
    <bpmn:startEvent id="apply" name="一表申请">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="uscc" label="统一社会信用代码" type="string">
            <camunda:validation>
              <camunda:constraint name="required"/>
              <camunda:constraint name="pattern" config="[0-9A-HJ-NPQRTUWXY]{18}"/>
            </camunda:validation>
          </camunda:formField>
          <camunda:formField id="floor_area" label="经营面积" type="long">
            <camunda:validation><camunda:constraint name="required"/>
              <camunda:constraint name="min" config="1"/></camunda:validation>
          </camunda:formField>
          <camunda:formField id="sells_tobacco" label="是否销售烟草" type="boolean"/>
          <camunda:formField id="kind" label="业态" type="enum">
            <camunda:value id="store" name="便利店"/>
            <camunda:value id="food" name="餐饮"/>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="apply" targetRef="accept"/>
    <bpmn:userTask id="accept" name="受理" camunda:candidateGroups="window"/>
    <bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>
"""

TB_SCHEMA = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:tb="urn:tongban:bpmn:1" id="d" targetNamespace="t">
  <bpmn:process id="schema_apply" isExecutable="true">
    <bpmn:startEvent id="apply">
      <bpmn:extensionElements>
        <tb:field id="applicant_name" label="申请人" required="true"/>
        <tb:jsonSchema>{"type": "object", "required": ["opened_on"], "properties": {
          "opened_on": {"type": "string", "format": "date", "title": "开业日期"},
          "seats": {"type": "integer", "minimum": 0}}}</tb:jsonSchema>
      </bpmn:extensionElements>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="apply" targetRef="accept"/>
    <bpmn:userTask id="accept" name="受理" tb:candidateGroups="window"/>
    <bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>
"""

GOOD = {"uscc": "91310115MA1H70000X", "floor_area": "80", "sells_tobacco": "true", "kind": "store"}


def _counts(engine):
    with engine.readers() as s:
        return (s.scalar(select(func.count()).select_from(Instance)),
                s.scalar(select(func.count()).select_from(AuditEvent)))


@pytest.fixture
def shop(engine):
    engine.add_user("window_clerk", ["window"])
    engine.deploy({"shop.bpmn": CAMUNDA.encode()})
    return engine


@pytest.mark.parametrize("data, bad", [
    ({**GOOD, "uscc": None}, {"uscc"}),
    ({k: v for k, v in GOOD.items() if k != "floor_area"}, {"floor_area"}),
    ({**GOOD, "floor_area": "八十"}, {"floor_area"}),
    ({**GOOD, "floor_area": 0}, {"floor_area"}),
    ({**GOOD, "kind": "weapons"}, {"kind"}),
    ({**GOOD, "uscc": "not-a-code"}, {"uscc"}),
    ({**GOOD, "sells_tobacco": "perhaps"}, {"sells_tobacco"}),
    ({}, {"uscc", "floor_area"}),
])
def test_bad_start_data_is_refused_before_anything_is_written(shop, data, bad):
    before = _counts(shop)
    with pytest.raises(Invalid) as info:
        shop.start("shop_apply", data, actor="window_clerk")
    assert set(info.value.fields) == bad
    assert _counts(shop) == before  # no instance, no audit event


def test_none_data_counts_as_empty(shop):
    with pytest.raises(Invalid) as info:
        shop.start("shop_apply", None)
    assert set(info.value.fields) == {"uscc", "floor_area"}


def test_valid_start_data_is_coerced_and_extra_keys_are_kept(shop):
    started = shop.start("shop_apply", {**GOOD, "applicant_note": "附加说明", "answers": {"q1": True}},
                         actor="window_clerk")
    data = shop.show(started["instance_id"])["data"]
    assert data["floor_area"] == 80 and data["sells_tobacco"] is True and data["kind"] == "store"
    assert data["applicant_note"] == "附加说明" and data["answers"] == {"q1": True}
    assert [t["bpmn_id"] for t in shop.show(started["instance_id"])["open_tasks"]] == ["accept"]


def test_tb_fields_and_json_schema_on_the_start_event(engine):
    engine.deploy({"schema.bpmn": TB_SCHEMA.encode()})
    with pytest.raises(Invalid) as info:
        engine.start("schema_apply", {"opened_on": "2025/03/01", "seats": -1})
    assert set(info.value.fields) == {"applicant_name", "opened_on", "seats"}
    ok = engine.start("schema_apply", {"applicant_name": "钱申请", "opened_on": "2025-03-01", "seats": "12"})
    assert engine.show(ok["instance_id"])["data"]["seats"] == 12


def test_a_process_without_a_start_form_takes_any_data(engine):
    xml = CAMUNDA.replace("shop_apply", "free_apply")
    start = xml.index("<bpmn:extensionElements>")
    end = xml.index("</bpmn:extensionElements>") + len("</bpmn:extensionElements>")
    engine.deploy({"free.bpmn": (xml[:start] + xml[end:]).encode()})
    ok = engine.start("free_apply", {"floor_area": "many"})
    assert engine.show(ok["instance_id"])["data"]["floor_area"] == "many"


def test_start_form_fields_come_from_the_top_level_none_start_event():
    xml = CAMUNDA.replace('<bpmn:sequenceFlow id="f2"', """<bpmn:subProcess id="sub">
      <bpmn:startEvent id="sub_start"><bpmn:extensionElements>
        <tb:field xmlns:tb="urn:tongban:bpmn:1" id="inner" required="true"/>
      </bpmn:extensionElements></bpmn:startEvent></bpmn:subProcess>
    <bpmn:sequenceFlow id="f2\"""")
    fields = forms.start_form_fields({"shop.bpmn": xml}, "shop_apply")
    assert [f["id"] for f in fields] == ["uscc", "floor_area", "sells_tobacco", "kind"]
    assert forms.start_form_fields({"shop.bpmn": xml}, "other_key") == []
    gbk = xml.replace('encoding="UTF-8"', 'encoding="GBK"')  # stored sources are decoded text
    assert len(forms.start_form_fields({"shop.bpmn": gbk}, "shop_apply")) == 4


def test_rest_start_answers_400_with_the_fields(db_url, clock):
    from engine.api import Engine
    from web import create_app

    eng = Engine(db_url, clock=clock, script_timeout=1.0)
    eng.upgrade()
    try:
        eng.add_user("window_clerk", ["window"], roles=["clerk"])
        eng.deploy({"shop.bpmn": CAMUNDA.encode()})
        token = eng.issue_token("window_clerk", "test", actor="admin")["token"]
        client = create_app(eng, {"TESTING": True, "SECRET_KEY": "test-secret"}).test_client()
        headers = {"Authorization": f"Bearer {token}"}
        r = client.post("/api/v1/instances", json={"process_key": "shop_apply", "data": {"kind": "x"}},
                        headers=headers)
        assert r.status_code == 400, r.get_data(as_text=True)
        body = r.get_json()
        assert set(body["fields"]) == {"uscc", "floor_area", "kind"}
        r = client.post("/api/v1/instances", json={"process_key": "shop_apply", "data": GOOD}, headers=headers)
        assert r.status_code == 201, r.get_data(as_text=True)
        assert eng.show(r.get_json()["instance_id"])["data"]["floor_area"] == 80
    finally:
        eng.db.dispose()


def test_a_supplement_is_validated_like_the_start_form(engine):
    """退回补正 of the floor area: the applicant's corrected value must pass the start form's checks."""
    engine.deploy({"shop.bpmn": CAMUNDA.encode()})
    iid = engine.start("shop_apply", {"uscc": "91310115MA1K4B2C3D", "floor_area": 80}, actor="window_clerk")[
        "instance_id"]
    [accept] = engine.tasks(instance_id=iid)
    engine.return_to_applicant(accept["id"], "window_clerk", "请核对经营面积", ["floor_area", "uscc"])
    for bad, field in (({"floor_area": 0}, "floor_area"), ({"floor_area": "大约八十"}, "floor_area"),
                       ({"uscc": ""}, "uscc"), ({"uscc": "not-a-code"}, "uscc")):
        with pytest.raises(Invalid) as refused:
            engine.supplement(iid, bad, "window_clerk")
        assert field in refused.value.fields, bad
    engine.supplement(iid, {"floor_area": "95"}, "window_clerk")
    assert engine.task(accept["id"])["data"]["floor_area"] == 95  # as the start form would have stored it
