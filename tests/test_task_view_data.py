"""An open task shows the data of its own branch: in parallel branches the instance's data is the branch
that moved last, so a task must not show another branch's results instead of its own."""

from __future__ import annotations

PARALLEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="d" targetNamespace="t">
  <bpmn:process id="branches" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:parallelGateway id="split"><bpmn:incoming>f0</bpmn:incoming>
      <bpmn:outgoing>fa</bpmn:outgoing><bpmn:outgoing>fb</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:scriptTask id="receipt_a"><bpmn:incoming>fa</bpmn:incoming><bpmn:outgoing>fa2</bpmn:outgoing>
      <bpmn:script>receipt_a = "HZtax00000001"</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="receipt_b"><bpmn:incoming>fb</bpmn:incoming><bpmn:outgoing>fb2</bpmn:outgoing>
      <bpmn:script>receipt_b = "HZstats00000002"</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="confirm_a" tb:candidateGroups="window"><bpmn:incoming>fa2</bpmn:incoming>
      <bpmn:outgoing>fa3</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="confirm_b" tb:candidateGroups="window"><bpmn:incoming>fb2</bpmn:incoming>
      <bpmn:outgoing>fb3</bpmn:outgoing></bpmn:userTask>
    <bpmn:parallelGateway id="join"><bpmn:incoming>fa3</bpmn:incoming><bpmn:incoming>fb3</bpmn:incoming>
      <bpmn:outgoing>f9</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f9</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="split"/>
    <bpmn:sequenceFlow id="fa" sourceRef="split" targetRef="receipt_a"/>
    <bpmn:sequenceFlow id="fb" sourceRef="split" targetRef="receipt_b"/>
    <bpmn:sequenceFlow id="fa2" sourceRef="receipt_a" targetRef="confirm_a"/>
    <bpmn:sequenceFlow id="fb2" sourceRef="receipt_b" targetRef="confirm_b"/>
    <bpmn:sequenceFlow id="fa3" sourceRef="confirm_a" targetRef="join"/>
    <bpmn:sequenceFlow id="fb3" sourceRef="confirm_b" targetRef="join"/>
    <bpmn:sequenceFlow id="f9" sourceRef="join" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _open(engine, iid):
    return {t["bpmn_id"]: t for t in engine.tasks(instance_id=iid)}


def test_each_open_task_sees_its_own_branch(engine):
    engine.add_user("window_clerk", ["window"])
    engine.deploy({"branches.bpmn": PARALLEL.encode()})
    iid = engine.start("branches", {"uscc": "x"})["instance_id"]
    tasks = _open(engine, iid)
    a = engine.task(tasks["confirm_a"]["id"], "window_clerk")["data"]
    b = engine.task(tasks["confirm_b"]["id"], "window_clerk")["data"]
    assert a["receipt_a"] == "HZtax00000001" and a["uscc"] == "x"
    assert b["receipt_b"] == "HZstats00000002" and b["uscc"] == "x"
    # the instance's own data is one branch only: the task view is what makes both right
    instance = engine.show(iid)["data"]
    assert not ("receipt_a" in instance and "receipt_b" in instance)
    # after completion a task shows the instance's data, and the join has both branches
    engine.complete(tasks["confirm_a"]["id"], "window_clerk")
    engine.complete(tasks["confirm_b"]["id"], "window_clerk")
    done = engine.task(tasks["confirm_a"]["id"], "window_clerk")
    assert done["status"] == "completed"
    assert done["data"]["receipt_a"] and done["data"]["receipt_b"]
