"""``tb:sla promisedFrom="field"``: a case's promised limit taken from its data (e.g. the route the
rules picked: 7 working days for a small shop, 14 with a fire check), at start or when a later step
sets it; the deadlines, the escalation points and the audit trail follow; never beyond statutory."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.errors import InvalidProcess
from engine.models import AuditEvent, Job

SH = ZoneInfo("Asia/Shanghai")


def bpmn(sla_attrs: str, form_field: str = "days") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="Defs_pf" targetNamespace="urn:tongban:tests">
  <bpmn:process id="promise" isExecutable="true">
    <bpmn:extensionElements>
      <tb:sla {sla_attrs}/>
      <tb:escalation at="yellow" action="notify" scope="instance"/>
    </bpmn:extensionElements>
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="route" tb:candidateGroups="window">
      <bpmn:extensionElements><tb:form><tb:field id="{form_field}" label="承诺时限" type="integer"/></tb:form>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:userTask id="decide" tb:candidateGroups="window"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="route"/>
    <bpmn:sequenceFlow id="f2" sourceRef="route" targetRef="decide"/>
    <bpmn:sequenceFlow id="f3" sourceRef="decide" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>""".encode()


def case_clock(engine, iid) -> dict:
    return engine.sla_status(iid)["instance"]


def local_day(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(SH).date().isoformat()


def open_task(engine, iid):
    [t] = engine.tasks(instance_id=iid)
    return t


def test_the_start_data_sets_the_promise(engine, clock):
    engine.deploy({"p.bpmn": bpmn('statutory="20" promised="10" promisedFrom="days" unit="workday"')})
    clock.set(datetime(2026, 3, 2, 9, tzinfo=SH))  # a Monday, no holidays in the next weeks
    iid = engine.start("promise", {"days": 3}, actor="window_clerk")["instance_id"]
    c = case_clock(engine, iid)
    assert (c["promised"], c["statutory"]) == (3, 20)
    assert local_day(c["due_at"]) == "2026-03-05"  # 3 working days after Monday
    plain = engine.start("promise", {}, actor="window_clerk")["instance_id"]
    assert case_clock(engine, plain)["promised"] == 10  # no number in the data: the declared promise


def test_a_later_step_changes_the_promise_and_the_points_follow(engine, clock):
    engine.deploy({"p.bpmn": bpmn('statutory="20" promised="10" promisedFrom="days" unit="workday" warn="0.5"')})
    clock.set(datetime(2026, 3, 2, 9, tzinfo=SH))
    iid = engine.start("promise", {}, actor="window_clerk")["instance_id"]
    before = case_clock(engine, iid)
    assert before["promised"] == 10 and local_day(before["due_at"]) == "2026-03-16"
    engine.complete(open_task(engine, iid)["id"], "window_clerk", {"days": 4})
    after = case_clock(engine, iid)
    assert after["promised"] == 4 and local_day(after["due_at"]) == "2026-03-06"
    assert after["epoch"] == before["epoch"] + 1
    with engine.readers() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.instance_id == iid,
                                                     AuditEvent.action == "sla.promised")).all()
        pending = s.scalars(select(Job).where(Job.instance_id == iid, Job.kind == "sla",
                                              Job.status == "pending")).all()
    assert event.detail["from"] == 10 and event.detail["to"] == 4 and event.detail["field"] == "days"
    # the yellow point of the new limit (half of 4 working days) is the only one planned
    assert [j.payload["epoch"] for j in pending] == [after["epoch"]]
    assert all(j.due_at.astimezone(SH).date().isoformat() <= "2026-03-06" for j in pending)
    engine.complete(open_task(engine, iid)["id"], "window_clerk", {})  # no change: no second event
    with engine.readers() as s:
        assert len(s.scalars(select(AuditEvent).where(AuditEvent.action == "sla.promised")).all()) == 1
    assert engine.verify_audit().ok


def test_a_promise_beyond_the_statutory_limit_is_held_to_it(engine, clock):
    engine.deploy({"p.bpmn": bpmn('statutory="20" promised="10" promisedFrom="days" unit="workday"')})
    clock.set(datetime(2026, 3, 2, 9, tzinfo=SH))
    iid = engine.start("promise", {"days": 60}, actor="window_clerk")["instance_id"]
    assert case_clock(engine, iid)["promised"] == 20
    zero = engine.start("promise", {"days": 0}, actor="window_clerk")["instance_id"]
    assert case_clock(engine, zero)["promised"] == 10


@pytest.mark.parametrize("source", ["promised days", "1days", "a-b"])
def test_a_promisedfrom_that_is_not_a_field_name_is_refused_at_deploy(engine, source):
    with pytest.raises(InvalidProcess) as err:
        engine.deploy({"p.bpmn": bpmn(f'statutory="20" promised="10" promisedFrom="{source}"')})
    problem = err.value.problems[0]
    assert "promisedFrom" in problem.message and problem.line is not None


def test_a_step_reads_its_promise_from_the_data_when_it_opens(engine, clock):
    xml = bpmn('statutory="20" promised="10" unit="workday"').decode().replace(
        '<bpmn:userTask id="decide" tb:candidateGroups="window"/>',
        '<bpmn:userTask id="decide" tb:candidateGroups="window"><bpmn:extensionElements>'
        '<tb:sla statutory="8" promised="5" promisedFrom="days" unit="workday"/></bpmn:extensionElements>'
        '</bpmn:userTask>')
    engine.deploy({"p.bpmn": xml.encode()})
    clock.set(datetime(2026, 3, 2, 9, tzinfo=SH))
    iid = engine.start("promise", {}, actor="window_clerk")["instance_id"]
    engine.complete(open_task(engine, iid)["id"], "window_clerk", {"days": 2})
    [step] = [c for c in engine.sla_status(iid)["tasks"] if c["bpmn_id"] == "decide"]
    assert (step["promised"], step["statutory"]) == (2, 8)
    assert case_clock(engine, iid)["promised"] == 10  # the case has no promisedFrom: unchanged
