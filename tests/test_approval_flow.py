"""会签/或签/票签/依次 vote counting, 退回 across parallel branches, no-approver and
initiator-as-approver rules, 流程预测, and the administrator's moves (move, suspend, resume, terminate)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import update

from engine import approval_rules
from engine.errors import Conflict, Invalid, NotAllowed
from engine.models import Instance
from tests.conftest import example_files

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:tb="urn:tongban:bpmn:1" id="D_{key}" targetNamespace="urn:tongban:tests">\n'
        '<bpmn:process id="{key}" name="{key}" isExecutable="true">\n')
TAIL = '</bpmn:process>\n</bpmn:definitions>\n'


def countersign_bpmn(key: str, mode: str, *, extra: str = "", sequential: bool = False, attrs: str = "") -> dict:
    body = f"""
<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:userTask id="vote" name="会签" {attrs}>
  <bpmn:extensionElements><tb:countersign mode="{mode}" {extra}/></bpmn:extensionElements>
  <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
  <bpmn:multiInstanceLoopCharacteristics isSequential="{'true' if sequential else 'false'}">
    <bpmn:loopDataInputRef>approvers</bpmn:loopDataInputRef>
    <bpmn:inputDataItem id="approver" name="approver"/>
  </bpmn:multiInstanceLoopCharacteristics>
</bpmn:userTask>
<bpmn:userTask id="after" name="后续" tb:candidateGroups="window">
  <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
</bpmn:userTask>
<bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="vote"/>
<bpmn:sequenceFlow id="f2" sourceRef="vote" targetRef="after"/>
<bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end"/>
"""
    return {f"{key}.bpmn": (HEAD.format(key=key) + body + TAIL).encode()}


def votes(engine, iid):
    return sorted((t["assignee"], t["id"]) for t in engine.tasks(instance_id=iid) if t["bpmn_id"] == "vote")


def vote(engine, iid, user, decision):
    task_id = dict(votes(engine, iid))[user]
    engine.complete(task_id, user, decision=decision, opinion=f"{user}:{decision}")
    return task_id


@pytest.fixture
def voters(engine):
    for u in ("v1", "v2", "v3"):
        engine.add_user(u, ["panel"])
    engine.add_user("boss", [], roles=["admin"])
    return ["v1", "v2", "v3"]


def result(engine, iid):
    return engine.show(iid)["data"].get("countersign_result")


# ---- 会签 / 或签 / 票签 / 依次 ------------------------------------------------------------------------
def test_all_mode_needs_every_approval(engine, voters):
    engine.deploy(countersign_bpmn("cs_all", "all"))
    iid = engine.start("cs_all", {"approvers": voters}, actor="window_clerk")["instance_id"]
    assert [u for u, _ in votes(engine, iid)] == voters
    vote(engine, iid, "v1", "approve")
    vote(engine, iid, "v2", "approve")
    assert result(engine, iid) is None and len(votes(engine, iid)) == 1
    vote(engine, iid, "v3", "approve")
    assert result(engine, iid) == "approve"
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == ["after"]
    assert [(v["approver"], v["decision"]) for v in engine.countersign_votes(iid)] == [
        ("v1", "approve"), ("v2", "approve"), ("v3", "approve")]
    decided = [e for e in engine.trail(iid) if e["action"] == "countersign.decided"]
    assert decided[0]["detail"]["approve"] == 3
    assert [(o["actor"], o["kind"]) for o in engine.opinions(iid)] == [
        ("v1", "approve"), ("v2", "approve"), ("v3", "approve")]


def test_all_mode_one_reject_rejects_and_cancels_the_open_votes(engine, voters):
    engine.deploy(countersign_bpmn("cs_all_r", "all"))
    iid = engine.start("cs_all_r", {"approvers": voters}, actor="window_clerk")["instance_id"]
    open_ids = [t for _, t in votes(engine, iid)]
    vote(engine, iid, "v2", "reject")
    assert result(engine, iid) == "reject"
    statuses = {t["id"]: t["status"] for t in engine.tasks(instance_id=iid, status="all")}
    assert sorted(statuses[t] for t in open_ids) == ["cancelled", "cancelled", "completed"]
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == ["after"]


def test_any_mode_first_decision_decides(engine, voters):
    engine.deploy(countersign_bpmn("cs_any", "any"))
    iid = engine.start("cs_any", {"approvers": voters}, actor="window_clerk")["instance_id"]
    vote(engine, iid, "v3", "approve")
    assert result(engine, iid) == "approve" and votes(engine, iid) == []


def test_ratio_mode_two_thirds_and_reject_when_out_of_reach(engine, voters):
    engine.deploy(countersign_bpmn("cs_ratio", "ratio", extra='ratio="0.67"'))
    iid = engine.start("cs_ratio", {"approvers": voters}, actor="window_clerk")["instance_id"]
    vote(engine, iid, "v1", "reject")
    assert result(engine, iid) is None  # 2 of 3 can still approve
    vote(engine, iid, "v2", "approve")
    assert result(engine, iid) is None
    vote(engine, iid, "v3", "approve")
    assert result(engine, iid) == "approve"
    iid = engine.start("cs_ratio", {"approvers": voters}, actor="window_clerk")["instance_id"]
    vote(engine, iid, "v1", "reject")
    vote(engine, iid, "v2", "reject")  # 2/3 is out of reach
    assert result(engine, iid) == "reject" and votes(engine, iid) == []


def test_ratio_rejection_rule(engine, voters):
    engine.add_user("v4", ["panel"])
    engine.deploy(countersign_bpmn("cs_rr", "ratio", extra='ratio="0.5" reject="ratio" rejectRatio="0.5"'))
    iid = engine.start("cs_rr", {"approvers": voters + ["v4"]}, actor="window_clerk")["instance_id"]
    vote(engine, iid, "v1", "reject")
    assert result(engine, iid) is None
    vote(engine, iid, "v2", "reject")
    assert result(engine, iid) == "reject"


def test_sequential_mode_in_order_and_a_reject_stops_it(engine, voters):
    engine.deploy(countersign_bpmn("cs_seq", "sequential", sequential=True))
    iid = engine.start("cs_seq", {"approvers": voters}, actor="window_clerk")["instance_id"]
    assert [u for u, _ in votes(engine, iid)] == ["v1"]
    vote(engine, iid, "v1", "approve")
    assert [u for u, _ in votes(engine, iid)] == ["v2"]
    vote(engine, iid, "v2", "reject")
    assert result(engine, iid) == "reject" and votes(engine, iid) == []
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == ["after"]


def test_approvers_from_a_group_and_refusals(engine, voters):
    engine.deploy(countersign_bpmn("cs_group", "all", extra='group="panel"'))
    iid = engine.start("cs_group", {}, actor="window_clerk")["instance_id"]
    assert [u for u, _ in votes(engine, iid)] == voters
    task_id = dict(votes(engine, iid))["v1"]
    with pytest.raises(NotAllowed):
        engine.complete(task_id, "v2", decision="approve")  # each votes only their own
    with pytest.raises(Invalid):
        engine.complete(task_id, "v1", decision="maybe")
    with pytest.raises(NotAllowed):
        engine.add_sign(task_id, ["v2"], "v1", "before", "x")
    engine.complete(task_id, "v1", decision="approve")
    with pytest.raises(Conflict):
        engine.complete(task_id, "v1", decision="approve")


# ---- 退回 across parallel branches -----------------------------------------------------------------
def open_ids(engine, iid):
    return {t["bpmn_id"]: t["id"] for t in engine.tasks(instance_id=iid)}


def test_return_inside_a_branch_keeps_the_other_branch(engine):
    engine.deploy(example_files("approval_parallel.bpmn"))
    iid = engine.start("approval_parallel", {}, actor="window_clerk")["instance_id"]
    engine.complete(open_ids(engine, iid)["accept"], "window_clerk", {"a": 1})
    engine.complete(open_ids(engine, iid)["market_check"], "market_clerk", {"m": 1})
    engine.complete(open_ids(engine, iid)["tobacco_review"], "tobacco_clerk", {"t": 1})
    review = open_ids(engine, iid)["market_review"]
    targets = engine.return_targets(review, "market_clerk")
    assert [t["bpmn_id"] for t in targets] == ["market_check", "accept"]  # not tobacco_review: another branch
    engine.return_task(review, targets[0]["task_id"], "market_clerk", "初审意见不完整")
    assert set(open_ids(engine, iid)) == {"market_check"}  # tobacco_review stays done, waiting at the join
    engine.complete(open_ids(engine, iid)["market_check"], "market_clerk", {"m": 2})
    engine.complete(open_ids(engine, iid)["market_review"], "market_clerk", {})
    assert set(open_ids(engine, iid)) == {"decide"}


def test_return_before_the_split_cancels_both_branches_and_recreates_them(engine):
    engine.deploy(example_files("approval_parallel.bpmn"))
    iid = engine.start("approval_parallel", {}, actor="window_clerk")["instance_id"]
    engine.complete(open_ids(engine, iid)["accept"], "window_clerk", {"a": 1})
    engine.complete(open_ids(engine, iid)["tobacco_review"], "tobacco_clerk", {"t": 1})
    check = open_ids(engine, iid)["market_check"]
    accept = engine.return_targets(check, "market_clerk")[0]
    assert accept["bpmn_id"] == "accept"
    engine.return_task(check, accept["task_id"], "market_clerk", "需重新受理")
    assert set(open_ids(engine, iid)) == {"accept"}
    engine.complete(open_ids(engine, iid)["accept"], "window_clerk", {"a": 2})
    assert set(open_ids(engine, iid)) == {"market_check", "tobacco_review"}


# ---- no approver / initiator is the approver -----------------------------------------------------------
def rules_bpmn(attrs: str, group: str = "ghosts") -> dict:
    body = f"""
<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:userTask id="check" name="审核" tb:candidateGroups="{group}" {attrs}>
  <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
<bpmn:userTask id="after" name="后续" tb:candidateGroups="window">
  <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
<bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check"/>
<bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="after"/>
<bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end"/>
"""
    return {"rules.bpmn": (HEAD.format(key="rules") + body + TAIL).encode()}


@pytest.mark.parametrize("rule, decision", [("skip", None), ("auto_approve", "approve")])
def test_no_approver_skip_or_auto_approve(engine, rule, decision):
    engine.add_user("ghost", ["ghosts"])
    engine.set_active("ghost", False)  # a group with no active member counts as nobody
    engine.deploy(rules_bpmn(f'tb:noApprover="{rule}"'))
    iid = engine.start("rules", {}, actor="window_clerk")["instance_id"]
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == ["after"]
    done = [t for t in engine.tasks(instance_id=iid, status="completed") if t["bpmn_id"] == "check"][0]
    assert engine.task(done["id"])["decision"] == decision
    assert "approval.no_approver" in [e["action"] for e in engine.trail(iid)]


def test_no_approver_goes_to_the_administrators(engine):
    engine.deploy(rules_bpmn('tb:noApprover="admin"'))
    with pytest.raises(NotAllowed, match="no administrator"):
        engine.start("rules", {}, actor="window_clerk")
    engine.add_user("boss", [], roles=["admin"])
    iid = engine.start("rules", {}, actor="window_clerk")["instance_id"]
    t = engine.tasks(instance_id=iid)[0]
    assert t["bpmn_id"] == "check" and t["candidate_users"] == ["boss"] and t["candidate_groups"] == []
    assert [x["id"] for x in engine.tasks(user="boss")] == [t["id"]]


def test_without_a_rule_the_task_stays_as_declared(engine):
    engine.deploy(rules_bpmn(""))
    iid = engine.start("rules", {}, actor="window_clerk")["instance_id"]
    assert engine.tasks(instance_id=iid)[0]["candidate_groups"] == ["ghosts"]


def test_a_task_naming_nobody_goes_to_the_administrators_beside_a_rule_elsewhere(engine):
    """A rule on one task does not switch off the default for another task that names nobody."""
    body = """
<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:userTask id="check" name="审核" tb:candidateGroups="window" tb:initiatorIsApprover="allow">
  <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
<bpmn:userTask id="nobody" name="无人任务">
  <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
<bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check"/>
<bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="nobody"/>
<bpmn:sequenceFlow id="f3" sourceRef="nobody" targetRef="end"/>
"""
    engine.deploy({"mixed.bpmn": (HEAD.format(key="mixed") + body + TAIL).encode()})
    engine.add_user("boss", [], roles=["admin"])
    iid = engine.start("mixed", {}, actor="approver")["instance_id"]
    engine.complete(open_ids(engine, iid)["check"], "window_clerk", {})
    t = engine.tasks(instance_id=iid)[0]
    assert t["bpmn_id"] == "nobody" and t["candidate_users"] == ["boss"]
    assert "approval.no_approver" in [e["action"] for e in engine.trail(iid)]
    assert engine.complete(t["id"], "boss", {})["status"] == "completed"


@pytest.mark.parametrize("rule, left", [("skip", ["after"]), ("auto_approve", ["after"]), ("allow", ["check"])])
def test_initiator_is_the_only_approver(engine, rule, left):
    engine.add_user("solo_clerk", ["solo"])
    engine.deploy(rules_bpmn(f'tb:initiatorIsApprover="{rule}"', group="solo"))
    iid = engine.start("rules", {}, actor="solo_clerk")["instance_id"]
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == left
    if rule != "allow":
        assert "approval.initiator_is_approver" in [e["action"] for e in engine.trail(iid)]
    # another initiator: the rule does not apply
    iid = engine.start("rules", {}, actor="approver")["instance_id"]
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == ["check"]


# ---- 流程预测 ------------------------------------------------------------------------------------------
def gateway_bpmn() -> dict:
    body = """
<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:userTask id="accept" name="受理" tb:candidateGroups="window">
  <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
<bpmn:exclusiveGateway id="gw" default="f_small"><bpmn:incoming>f2</bpmn:incoming>
  <bpmn:outgoing>f_big</bpmn:outgoing><bpmn:outgoing>f_small</bpmn:outgoing></bpmn:exclusiveGateway>
<bpmn:userTask id="leader_ok" name="领导审批" tb:candidateGroups="leader">
  <bpmn:incoming>f_big</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
<bpmn:userTask id="section_ok" name="科室审批" tb:assignee="${handler}">
  <bpmn:incoming>f_small</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
<bpmn:userTask id="archive" name="归档" tb:candidateGroups="window">
  <bpmn:incoming>f3</bpmn:incoming><bpmn:incoming>f4</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing></bpmn:userTask>
<bpmn:endEvent id="end"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="accept"/>
<bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="gw"/>
<bpmn:sequenceFlow id="f_big" sourceRef="gw" targetRef="leader_ok">
  <bpmn:conditionExpression>amount &gt; 10000</bpmn:conditionExpression></bpmn:sequenceFlow>
<bpmn:sequenceFlow id="f_small" sourceRef="gw" targetRef="section_ok"/>
<bpmn:sequenceFlow id="f3" sourceRef="leader_ok" targetRef="archive"/>
<bpmn:sequenceFlow id="f4" sourceRef="section_ok" targetRef="archive"/>
<bpmn:sequenceFlow id="f5" sourceRef="archive" targetRef="end"/>
"""
    return {"fc.bpmn": (HEAD.format(key="fc") + body + TAIL).encode()}


def test_forecast_follows_the_gateway_when_the_data_decides(engine):
    engine.deploy(gateway_bpmn())
    iid = engine.start("fc", {"amount": 50000}, actor="window_clerk")["instance_id"]
    fc = engine.forecast(iid)
    assert fc["open"] == [{"bpmn_id": "accept", "name": "受理"}]
    assert [(s["bpmn_id"], s["certain"]) for s in fc["ahead"]] == [("leader_ok", True), ("archive", True)]
    assert fc["ahead"][0]["groups"] == ["leader"] and set(fc["ahead"][0]["resolved_users"]) == {"leader", "admin"}
    assert fc["choices"] == []


def test_forecast_lists_the_alternatives_when_the_data_is_not_there_yet(engine):
    engine.deploy(gateway_bpmn())
    iid = engine.start("fc", {"handler": "approver"}, actor="window_clerk")["instance_id"]
    fc = engine.forecast(iid)
    assert [c["gateway"] for c in fc["choices"]] == ["gw"]
    assert {o["to"] for o in fc["choices"][0]["options"]} == {"leader_ok", "section_ok"}
    steps = {s["bpmn_id"]: s for s in fc["ahead"]}
    assert set(steps) == {"leader_ok", "section_ok", "archive"} and not steps["archive"]["certain"]
    assert steps["section_ok"]["assignee"] == "approver" and steps["section_ok"]["resolved_users"] == ["approver"]
    engine.complete(engine.tasks(instance_id=iid)[0]["id"], "window_clerk", {"amount": 10})
    engine.complete(engine.tasks(instance_id=iid)[0]["id"], "approver", {})
    assert engine.forecast(iid)["ahead"] == []


def test_forecast_of_a_countersign_names_the_voters(engine, voters):
    body = """
<bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
<bpmn:userTask id="accept" name="受理" tb:candidateGroups="window">
  <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:userTask>
<bpmn:userTask id="vote" name="会签">
  <bpmn:extensionElements><tb:countersign mode="all" group="panel"/></bpmn:extensionElements>
  <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
  <bpmn:multiInstanceLoopCharacteristics isSequential="false">
    <bpmn:loopDataInputRef>approvers</bpmn:loopDataInputRef>
    <bpmn:inputDataItem id="approver" name="approver"/>
  </bpmn:multiInstanceLoopCharacteristics>
</bpmn:userTask>
<bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="accept"/>
<bpmn:sequenceFlow id="f1" sourceRef="accept" targetRef="vote"/>
<bpmn:sequenceFlow id="f2" sourceRef="vote" targetRef="end"/>
"""
    engine.deploy({"csfc.bpmn": (HEAD.format(key="csfc") + body + TAIL).encode()})
    iid = engine.start("csfc", {}, actor="window_clerk")["instance_id"]
    ahead = engine.forecast(iid)["ahead"]
    assert [(s["bpmn_id"], s["countersign"], s["resolved_users"]) for s in ahead] == [("vote", "all", voters)]
    engine.complete(engine.tasks(instance_id=iid)[0]["id"], "window_clerk", {})
    assert engine.forecast(iid)["open"] == [{"bpmn_id": "vote", "name": "会签"}]
    for u in voters:
        vote(engine, iid, u, "approve")
    assert engine.forecast(iid)["status"] == "completed"


# ---- administrator moves ------------------------------------------------------------------------------
@pytest.fixture
def admin_chain(engine):
    engine.deploy(example_files("approval_chain.bpmn"))
    engine.add_user("boss", [], roles=["admin"])
    iid = engine.start("approval_chain", {}, actor="window_clerk")["instance_id"]
    return engine, iid


def test_suspend_refuses_task_actions_and_resume_restores(admin_chain, clock):
    engine, iid = admin_chain
    accept = engine.tasks(instance_id=iid)[0]
    with pytest.raises(NotAllowed):
        engine.suspend(iid, "window_clerk", "x")  # not an administrator
    with pytest.raises(Invalid):
        engine.suspend(iid, "boss", "")
    engine.suspend(iid, "boss", "涉嫌虚假材料，暂停办理")
    assert engine.show(iid)["status"] == "suspended" and engine.tasks(instance_id=iid) == []
    for act in (lambda: engine.complete(accept["id"], "window_clerk", {}),
                lambda: engine.claim(accept["id"], "window_clerk"),
                lambda: engine.urge(accept["id"], "window_clerk"),
                lambda: engine.transfer(accept["id"], "admin", "window_clerk", "x")):
        with pytest.raises(NotAllowed):
            act()
    with pytest.raises(NotAllowed):
        engine.suspend(iid, "boss", "again")
    clock.advance(timedelta(days=10))
    engine.resume(iid, "boss", "核实无误")
    with pytest.raises(NotAllowed):
        engine.resume(iid, "boss")
    t = engine.tasks(instance_id=iid)[0]
    assert t["id"] == accept["id"] and t["due_at"] > accept["due_at"]  # the suspended days did not count
    engine.complete(accept["id"], "window_clerk", {})
    assert {"instance.suspend", "instance.resume"} <= {e["action"] for e in engine.trail(iid)}


def test_suspended_timer_jobs_wait(engine, clock):
    engine.deploy(example_files("intermediate_timer.bpmn"))
    engine.add_user("boss", [], roles=["admin"])
    iid = engine.start("intermediate_timer", {}, actor="admin")["instance_id"]
    engine.suspend(iid, "boss", "暂停")
    clock.advance(timedelta(hours=3))
    engine.run_due_jobs("w")
    assert engine.tasks(instance_id=iid, status="all") == []
    engine.resume(iid, "boss")
    engine.run_due_jobs("w")
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == ["confirm"]


def test_terminate(admin_chain):
    engine, iid = admin_chain
    accept = engine.tasks(instance_id=iid)[0]
    with pytest.raises(NotAllowed):
        engine.terminate(iid, "window_clerk", "x")
    engine.terminate(iid, "boss", "申请人撤回申请")
    shown = engine.show(iid)
    assert shown["status"] == "terminated" and shown["open_tasks"] == []
    assert engine.task(accept["id"])["status"] == "cancelled"
    with pytest.raises(NotAllowed):
        engine.terminate(iid, "boss", "again")
    with pytest.raises(NotAllowed):
        engine.complete(accept["id"], "window_clerk", {})
    assert all(c["status"] == "stopped" for c in engine.sla_status(iid)["tasks"])


def test_move_forward_and_back(admin_chain):
    engine, iid = admin_chain
    accept = engine.tasks(instance_id=iid)[0]
    with pytest.raises(NotAllowed):
        engine.move(iid, "decide", "window_clerk", "x")
    with pytest.raises(Invalid):
        engine.move(iid, "nowhere", "boss", "x")
    out = engine.move(iid, "decide", "boss", "领导直接决定")
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == ["decide"]
    assert engine.task(accept["id"])["status"] == "cancelled"
    engine.move(iid, "review", "boss", "还是要审查", from_task_id=out["task_id"])
    review = engine.tasks(instance_id=iid)[0]
    assert review["bpmn_id"] == "review"
    engine.complete(review["id"], "approver", decision="approve")
    engine.complete(engine.tasks(instance_id=iid)[0]["id"], "leader", {})
    assert engine.show(iid)["status"] == "completed"
    assert [e["action"] for e in engine.trail(iid)].count("instance.move") == 2


def test_admin_moves_conflict_with_a_concurrent_writer(admin_chain, monkeypatch):
    engine, iid = admin_chain
    real = approval_rules.record

    def record(session, clock, h, actor, kind, **kw):
        session.execute(update(Instance).where(Instance.id == iid).values(version=Instance.version + 1)
                        .execution_options(synchronize_session=False))
        return real(session, clock, h, actor, kind, **kw)

    for act in (lambda: engine.suspend(iid, "boss", "x"), lambda: engine.terminate(iid, "boss", "x"),
                lambda: engine.move(iid, "decide", "boss", "x")):
        with contextlib.ExitStack() as stack:
            m = stack.enter_context(monkeypatch.context())
            m.setattr(approval_rules, "record", record)
            with pytest.raises(Conflict):
                act()
    assert engine.show(iid)["status"] == "running"
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=iid)] == ["accept"]
