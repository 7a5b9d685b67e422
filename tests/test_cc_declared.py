"""Declared 抄送: ``<tb:cc groups="..." groupsExpr="..." note="..."/>`` on an element copies the case to the
active members of those groups when the element completes — tb_cc rows with read receipts, notices, an
opinion row and an audit event, exactly once per completion."""

from __future__ import annotations

CC_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="Defs_cc" targetNamespace="urn:tongban:tests">
  <bpmn:process id="cc_declared" name="抄送声明" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="review" name="审查" tb:candidateGroups="approval">
      <bpmn:extensionElements>
        <tb:cc groups="market" note="审查已完成，请知悉"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>f_again</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:scriptTask id="notify_departments" name="通报各部门">
      <bpmn:extensionElements>
        <tb:cc groupsExpr="departments" note="结果通报"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>done = True</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="gw" default="f_end">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f_again</bpmn:outgoing><bpmn:outgoing>f_end</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f_end</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="notify_departments"/>
    <bpmn:sequenceFlow id="f3" sourceRef="notify_departments" targetRef="gw"/>
    <bpmn:sequenceFlow id="f_again" sourceRef="gw" targetRef="review">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">again</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_end" sourceRef="gw" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def deploy(engine):
    engine.deploy({"cc_declared.bpmn": CC_BPMN.encode()})
    engine.add_user("market_two", ["market"])
    engine.add_user("market_gone", ["market"])
    engine.set_active("market_gone", False)


def test_copies_go_to_the_active_members_when_the_element_completes(engine):
    deploy(engine)
    iid = engine.start("cc_declared", {"departments": ["tobacco", "drug"], "again": False},
                       actor="window_clerk")["instance_id"]
    assert engine.cc_receipts(iid) == []  # nothing before the step completes
    [task] = engine.tasks(instance_id=iid)
    engine.complete(task["id"], "approver", {})
    copies = engine.cc_receipts(iid)
    by_note = {}
    for c in copies:
        by_note.setdefault(c["note"], set()).add(c["user"])
    # the admin of the test directory is a member of every group; the inactive member gets nothing
    assert by_note["审查已完成，请知悉"] == {"market_clerk", "market_two", "admin"}
    assert by_note["结果通报"] == {"tobacco_clerk", "drug_clerk", "admin"}
    assert all(c["sent_by"] == "system" and not c["read"] for c in copies)
    review_copy = next(c for c in copies if c["user"] == "market_two")
    assert review_copy["task_id"] == task["id"]  # a user task's copy opens the task read-only
    assert engine.cc_task(review_copy["id"], "market_two")["read_only"] is True
    # read receipts as for a manual 抄送
    [mine] = engine.to_read("market_two")
    engine.mark_read(mine["id"], "market_two")
    assert engine.to_read("market_two", unread_only=True) == []
    assert any(n["kind"] == "cc" for n in engine.notices("tobacco_clerk"))
    events = [e for e in engine.trail(iid) if e["action"] == "cc"]
    assert [e["task"] for e in events] == ["review", "notify_departments"]
    assert events[0]["detail"]["declared"] is True and events[0]["detail"]["groups"] == ["market"]
    kinds = [o["kind"] for o in engine.opinions(iid)]
    assert kinds.count("cc") == 2
    assert engine.verify_audit().ok


def test_each_completion_sends_once_and_a_loop_sends_again(engine):
    deploy(engine)
    iid = engine.start("cc_declared", {"departments": "drug", "again": True}, actor="window_clerk")["instance_id"]
    [task] = engine.tasks(instance_id=iid)
    engine.complete(task["id"], "approver", {})
    assert len(engine.cc_receipts(iid)) == 3 + 2  # review → market (3), script → drug (2)
    # the loop reached the review again; a step that completes nothing declared sends nothing
    [again] = engine.tasks(instance_id=iid)
    engine.return_to_applicant(again["id"], "approver", "请补充")
    engine.supplement(iid, {"note": "已补充"}, "window_clerk")
    assert len(engine.cc_receipts(iid)) == 5
    engine.complete(again["id"], "approver", {"again": False})
    assert len(engine.cc_receipts(iid)) == 10  # the second pass through both elements sends again
    assert engine.show(iid)["status"] == "completed"
