"""The start page renders a process's own start form (一表申请), validates it on the server with the
message next to each field, applies declared defaults to skipped guided questions, and starts the case."""

from __future__ import annotations

APPLY = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:tb="urn:tongban:bpmn:1" id="d" targetNamespace="t">
  <bpmn:process id="shop_form" name="开店一表申请" isExecutable="true">
    <bpmn:startEvent id="apply" name="一表申请">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="uscc" label="统一社会信用代码" type="string">
            <camunda:validation><camunda:constraint name="required"/>
              <camunda:constraint name="pattern" config="[0-9A-HJ-NPQRTUWXY]{18}"/></camunda:validation>
          </camunda:formField>
          <camunda:formField id="sells_tobacco" label="是否销售烟草制品" type="boolean" defaultValue="false"/>
          <camunda:formField id="channel" label="办理渠道" type="enum" defaultValue="online">
            <camunda:value id="online" name="网上"/><camunda:value id="window" name="窗口"/>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
      <bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="accept" name="受理" tb:candidateGroups="window"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="apply" targetRef="accept"/>
    <bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
USCC = "91310115MA1K4LXX3B"


def test_start_page_offers_and_renders_the_start_form(demo_engine, client_for):
    demo_engine.deploy({"shop_form.bpmn": APPLY.encode()})
    c = client_for("window_clerk")
    index = c.get("/start").get_data(as_text=True)
    assert "/start?process=shop_form" in index
    page = c.get("/start?process=shop_form").get_data(as_text=True)
    assert 'id="input-uscc"' in page and 'id="input-sells_tobacco"' in page and 'id="input-channel"' in page
    assert 'id="input-applicant_name"' not in page  # the generic block is not shown


def test_start_form_errors_sit_next_to_fields_and_nothing_starts(demo_engine, client_for):
    demo_engine.deploy({"shop_form.bpmn": APPLY.encode()})
    c = client_for("window_clerk")
    r = c.post("/start", data={"csrf_token": c.csrf, "process": "shop_form", "form": "start",
                               "uscc": "not-a-code", "channel": "fax"})
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert 'id="error-uscc"' in html and 'id="error-channel"' in html
    assert 'value="not-a-code"' in html  # what was typed is kept
    assert demo_engine.instances_for(None, process_key="shop_form") == []


def test_start_form_starts_the_case_with_defaults(demo_engine, client_for):
    demo_engine.deploy({"shop_form.bpmn": APPLY.encode()})
    c = client_for("window_clerk")
    r = c.post("/start", data={"csrf_token": c.csrf, "process": "shop_form", "form": "start", "uscc": USCC,
                               "business_key": "SF-1"})
    assert r.status_code == 302, r.get_data(as_text=True)
    instance_id = int(r.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    data = demo_engine.show(instance_id)["data"]
    assert data["uscc"] == USCC and data["sells_tobacco"] is False and data["channel"] == "online"


def test_api_start_applies_defaults_of_skipped_questions(demo_engine, client_for):
    demo_engine.deploy({"shop_form.bpmn": APPLY.encode()})
    c = client_for("window_clerk")
    r = c.post("/api/v1/instances", json={"process_key": "shop_form", "data": {"uscc": USCC}},
               headers={"X-CSRF-Token": c.csrf})
    assert r.status_code == 201, r.get_data(as_text=True)
    data = demo_engine.show(r.get_json()["instance_id"])["data"]
    assert data["sells_tobacco"] is False and data["channel"] == "online"
    bad = c.post("/api/v1/instances", json={"process_key": "shop_form", "data": {"uscc": USCC, "channel": "fax"}},
                 headers={"X-CSRF-Token": c.csrf})
    assert bad.status_code in (400, 422) and "channel" in bad.get_json()["fields"]


SERVICE_PULL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:tb="urn:tongban:bpmn:1" id="d" targetNamespace="t">
  <bpmn:process id="shop_lookup" name="开店核验" isExecutable="true">
    <bpmn:extensionElements><tb:applicant fields="uscc"/></bpmn:extensionElements>
    <bpmn:startEvent id="apply">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="uscc" label="申请人信用代码" type="string">
          <camunda:validation><camunda:constraint name="required"/></camunda:validation></camunda:formField>
      </camunda:formData></bpmn:extensionElements>
      <bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:serviceTask id="lookup">
      <bpmn:extensionElements>
        <tb:data connector="exchange" operation="enterprise" purpose="核验" basis="条例">
          <tb:input name="uscc" expr="uscc"/>
          <tb:output name="registration_authority"/>
          <tb:output name="status" as="enterprise_status"/>
        </tb:data>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:userTask id="accept" name="受理" tb:candidateGroups="window"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="apply" targetRef="lookup"/>
    <bpmn:sequenceFlow id="f2" sourceRef="lookup" targetRef="accept"/>
    <bpmn:sequenceFlow id="f3" sourceRef="accept" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_task_page_names_data_by_form_labels_and_connector_titles(demo_engine, client_for):
    from tests.exchange_fixtures import dataset

    demo_engine.deploy({"shop_lookup.bpmn": SERVICE_PULL.encode()})
    uscc = next(iter(dataset().enterprises))
    iid = demo_engine.start("shop_lookup", {"uscc": uscc}, actor="window_clerk")["instance_id"]
    demo_engine.run_due_jobs()
    task = next(t for t in demo_engine.tasks(instance_id=iid) if t["bpmn_id"] == "accept")
    html = client_for("window_clerk").get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert '<dt title="uscc">申请人信用代码</dt>' in html  # the start form's label
    assert '<dt title="registration_authority">登记机关</dt>' in html  # the exchange's title of the field
    assert '<dt title="enterprise_status">登记状态</dt>' in html  # renamed with as=, titled by its source field


def test_a_refused_form_keeps_each_box_as_it_was_ticked(demo_engine, client_for):
    import re

    demo_engine.deploy({"shop_form.bpmn": APPLY.encode()})
    c = client_for("window_clerk")

    def box(html):
        tag = re.search(r'<input type="checkbox" name="sells_tobacco"[^>]*>', html).group(0)
        return " checked" in tag

    unticked = c.post("/start", data={"csrf_token": c.csrf, "process": "shop_form", "form": "start", "uscc": "bad"})
    assert unticked.status_code == 400 and box(unticked.get_data(as_text=True)) is False
    ticked = c.post("/start", data={"csrf_token": c.csrf, "process": "shop_form", "form": "start", "uscc": "bad",
                                    "sells_tobacco": "true"})
    assert ticked.status_code == 400 and box(ticked.get_data(as_text=True)) is True
