"""``tongban check``'s summary per process: the departments concerned (candidate groups → their
departments in the directory), the steps in flow order, promised vs statutory limits."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import main as cli
from engine import flowcheck

MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="store" name="便利店开办" isExecutable="true">
    <bpmn:extensionElements>
      <tb:applicant fields="uscc,floor_area"/>
      <tb:sla statutory="20" promised="5" unit="workday"/>
    </bpmn:extensionElements>
    <bpmn:laneSet id="ls">
      <bpmn:lane id="window_lane" tb:group="window"><bpmn:flowNodeRef>accept</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="accept"/>
    <bpmn:userTask id="accept" name="综合窗口受理">
      <bpmn:extensionElements>
        <tb:data connector="exchange" operation="enterprise" purpose="核验营业执照" basis="《优化营商环境条例》">
          <tb:input name="uscc" expr="uscc"/><tb:output name="enterprise_name"/><tb:output name="address"/>
        </tb:data>
        <tb:sla limit="1" unit="工作日"/>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="split"/>
    <bpmn:parallelGateway id="split"/>
    <bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="tobacco_review"/>
    <bpmn:sequenceFlow id="f4" sourceRef="split" targetRef="market_review"/>
    <bpmn:userTask id="tobacco_review" name="烟草专卖审查" tb:candidateGroups="tobacco">
      <bpmn:extensionElements><tb:sla statutory="20" promised="3" unit="day"/></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:userTask id="market_review" name="食品经营审查" tb:candidateGroups="market,registry">
      <bpmn:extensionElements><tb:sla promised="2.5"/></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f5" sourceRef="tobacco_review" targetRef="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="market_review" targetRef="join"/>
    <bpmn:parallelGateway id="join"/>
    <bpmn:sequenceFlow id="f7" sourceRef="join" targetRef="notify"/>
    <bpmn:serviceTask id="notify" name="抄送各部门">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="exchange.push_registration" resultVariable="receipt"/>
        <tb:data connector="exchange" operation="push_registration" purpose="抄送" basis="《条例》">
          <tb:input name="department" expr="'烟草'"/><tb:input name="uscc" expr="uscc"/>
          <tb:output name="receipt_no"/>
        </tb:data>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f8" sourceRef="notify" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

NO_SLA = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="plain" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _summary(group_departments=None):
    [proc] = flowcheck.check_files({"store.bpmn": MODEL.encode()}, group_departments=group_departments)["processes"]
    return proc


def test_steps_in_flow_order_with_groups_and_types():
    proc = _summary()
    steps = proc["steps"]
    assert [s["id"] for s in steps][0] == "accept" and [s["id"] for s in steps][-1] == "notify"
    assert {s["id"] for s in steps[1:3]} == {"tobacco_review", "market_review"}
    by_id = {s["id"]: s for s in steps}
    assert by_id["accept"]["groups"] == ["window"]  # from the lane
    assert by_id["market_review"]["groups"] == ["market", "registry"]
    assert by_id["notify"] == {**by_id["notify"], "type": "serviceTask", "name": "抄送各部门", "groups": []}
    assert by_id["accept"]["type"] == "userTask" and by_id["accept"]["name"] == "综合窗口受理"
    # the existing keys stay
    assert proc["counts"] == {"applicant_fields": 2, "pulled_fields": 3}
    assert {"key", "tasks", "errors", "warnings", "applicant_fields", "pulled_fields"} <= set(proc)


def test_departments_come_from_the_directory_else_the_group_names():
    assert _summary()["departments"] == ["window", "tobacco", "market", "registry"] or \
        _summary()["departments"] == ["window", "market", "registry", "tobacco"]
    named = _summary({"window": "政务服务中心", "tobacco": "烟草专卖局", "market": "市场监管局",
                      "registry": "市场监管局"})
    assert sorted(named["departments"]) == ["市场监管局", "政务服务中心", "烟草专卖局"]  # one entry per department
    assert named["departments"][0] == "政务服务中心"
    partly = _summary({"window": "政务服务中心"})
    assert "tobacco" in partly["departments"] and "政务服务中心" in partly["departments"]


def test_limits_promised_vs_statutory_for_the_case_and_each_step():
    limits = _summary()["limits"]
    assert limits["promised"] == {"value": 5, "unit": "workday"}
    assert limits["statutory"] == {"value": 20, "unit": "workday"}
    tasks = {t["id"]: t for t in limits["tasks"]}
    assert set(tasks) == {"accept", "tobacco_review", "market_review"}
    assert tasks["accept"]["statutory"] == {"value": 1, "unit": "workday"} and tasks["accept"]["promised"] is None
    assert tasks["tobacco_review"]["promised"] == {"value": 3, "unit": "day"}
    assert tasks["tobacco_review"]["statutory"] == {"value": 20, "unit": "day"}
    assert tasks["market_review"]["promised"] == {"value": 2.5, "unit": "workday"}
    assert tasks["market_review"]["statutory"] is None
    [plain] = flowcheck.check_files({"plain.bpmn": NO_SLA.encode()})["processes"]
    assert plain["limits"] == {"promised": None, "statutory": None, "tasks": []}
    assert plain["steps"] == [] and plain["departments"] == []


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "processes" / "store"
    d.mkdir(parents=True)
    (d / "store.bpmn").write_text(MODEL, encoding="utf-8")
    (d / "README.md").write_text("便利店", encoding="utf-8")
    return d


def test_cli_check_of_a_folder_prints_the_summary(folder, monkeypatch, tmp_path):
    monkeypatch.setenv("TONGBAN_DATABASE_URL", f"sqlite:///{tmp_path / 'none.sqlite'}")  # no database yet
    r = CliRunner().invoke(cli, ["check", str(folder)])
    assert r.exit_code == 0, r.output
    assert "departments (4): window, " in r.output
    assert "1. 综合窗口受理 [accept] userTask  window  承诺 - / 法定 1个工作日" in r.output
    assert "limits: promised 5个工作日, statutory 20个工作日" in r.output
    assert "applicant fills 2" in r.output
    assert not (tmp_path / "none.sqlite").exists()  # the check creates no database

    r = CliRunner().invoke(cli, ["check", str(folder), "--json"])
    doc = json.loads(r.output)
    [proc] = doc["processes"]
    assert {"departments", "steps", "limits", "tasks", "counts", "errors", "warnings"} <= set(proc)
    assert [s["id"] for s in proc["steps"]][0] == "accept"


def test_cli_check_names_departments_from_the_demo_directory(folder, monkeypatch, tmp_path):
    from cli.demo import seed
    from engine.api import Engine

    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    eng = Engine(url)
    eng.upgrade()
    seed(eng, processes=False)
    eng.db.dispose()
    monkeypatch.setenv("TONGBAN_DATABASE_URL", url)
    r = CliRunner().invoke(cli, ["check", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    [proc] = json.loads(r.output)["processes"]
    assert sorted(proc["departments"]) == sorted(["开发区政务服务中心", "开发区烟草专卖局", "开发区市场监管局"])
    by_id = {s["id"]: s for s in proc["steps"]}
    assert by_id["market_review"]["departments"] == ["开发区市场监管局"]  # market and registry: one department
    r = CliRunner().invoke(cli, ["check", str(folder)])
    assert "开发区烟草专卖局" in r.output
