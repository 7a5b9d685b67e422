"""Chinese approval operations on a three-step chain (受理 → 审查 → 决定): 转办, 委派, 加签/减签,
退回, 退回补正, 撤回, 催办, 抄送, opinions and phrases. Each operation: the happy path, the
refusals (wrong person, wrong state) and a concurrent writer (Conflict)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import update

from engine import approval_rules
from engine.errors import Conflict, Invalid, NotAllowed, NotFound
from engine.models import Instance
from tests.conftest import example_files


@pytest.fixture
def chain(engine):
    engine.deploy(example_files("approval_chain.bpmn"))
    engine.add_user("approver2", ["approval"])
    engine.add_user("boss", [], roles=["admin"])
    return engine


def start(engine, actor="window_clerk"):
    return engine.start("approval_chain", {"applicant": "张三"}, actor=actor)["instance_id"]


def task_of(engine, iid, bpmn_id):
    found = [t for t in engine.tasks(instance_id=iid) if t["bpmn_id"] == bpmn_id]
    assert found, engine.tasks(instance_id=iid)
    return found[0]


def at_review(engine):
    iid = start(engine)
    engine.complete(task_of(engine, iid, "accept")["id"], "window_clerk", {"accepted": True})
    return iid, task_of(engine, iid, "review")


def actions(engine, iid):
    return [e["action"] for e in engine.trail(iid)]


@pytest.fixture
def racing(monkeypatch):
    """Another writer commits the instance between the operation's read and its write
    (on SQLite writers queue, so it is played inside the operation's transaction); ``with racing():``."""
    @contextlib.contextmanager
    def arm():
        real = approval_rules.record

        def record(session, clock, h, actor, kind, **kw):
            iid = h.instance_id if h is not None else kw.get("instance_id")
            session.execute(update(Instance).where(Instance.id == iid).values(version=Instance.version + 1)
                            .execution_options(synchronize_session=False))
            return real(session, clock, h, actor, kind, **kw)

        with monkeypatch.context() as m:
            m.setattr(approval_rules, "record", record)
            yield
    return arm


# ---- 转办 ----------------------------------------------------------------------------------------
def test_transfer_gives_the_task_to_the_new_assignee_and_keeps_the_deadline(chain):
    iid, review = at_review(chain)
    chain.claim(review["id"], "approver")
    out = chain.transfer(review["id"], "approver2", "approver", "请王科长办理")
    assert out["assignee"] == "approver2" and out["candidate_users"] == ["approver2"]
    assert out["candidate_groups"] == [] and out["due_at"] == review["due_at"]
    assert [t["id"] for t in chain.tasks(user="approver2", scope="mine")] == [review["id"]]
    assert chain.tasks(user="approver") == []
    assert "transfer" in actions(chain, iid)
    assert [(o["kind"], o["target"], o["text"]) for o in chain.opinions(task_id=review["id"])] == [
        ("transfer", "approver2", "请王科长办理")]
    assert any("转办" in n["title"] for n in chain.notices("approver2"))
    chain.complete(review["id"], "approver2", decision="approve")
    assert task_of(chain, iid, "decide")


def test_transfer_refusals(chain, racing):
    iid, review = at_review(chain)
    with pytest.raises(NotAllowed):
        chain.transfer(review["id"], "approver2", "outsider", "x")
    with pytest.raises(Invalid):  # the process requires an opinion for transfer
        chain.transfer(review["id"], "approver2", "approver", "")
    with pytest.raises(NotFound):
        chain.transfer(review["id"], "nobody_such", "approver", "x")
    chain.claim(review["id"], "approver")
    with pytest.raises(NotAllowed):  # claimed by someone else
        chain.transfer(review["id"], "approver", "approver2", "x")
    with racing(), pytest.raises(Conflict):
        chain.transfer(review["id"], "approver2", "approver", "x")
    assert chain.task(review["id"])["assignee"] == "approver"  # nothing of the loser remains


def test_transfer_of_a_completed_task_is_a_conflict_and_an_admin_may_transfer(chain):
    iid, review = at_review(chain)
    chain.transfer(review["id"], "approver2", "boss", "领导指派")
    chain.complete(review["id"], "approver2", decision="approve")
    with pytest.raises(Conflict, match="already completed by approver2"):
        chain.transfer(review["id"], "approver", "approver2", "x")


# ---- 委派 ----------------------------------------------------------------------------------------
def test_delegate_answers_and_the_task_returns_to_the_owner_who_decides(chain):
    iid, review = at_review(chain)
    chain.claim(review["id"], "approver")
    out = chain.delegate(review["id"], "market_clerk", "approver", "请核实经营场所")
    assert out["owner"] == "approver" and out["assignee"] == "market_clerk"
    assert [t["id"] for t in chain.tasks(user="market_clerk", scope="mine")] == [review["id"]]
    with pytest.raises(NotAllowed, match="delegated to market_clerk"):
        chain.complete(review["id"], "market_clerk", decision="approve")
    with pytest.raises(NotAllowed):  # the owner cannot decide while the delegate holds it
        chain.transfer(review["id"], "approver2", "approver", "x")
    with pytest.raises(NotAllowed):  # only the delegate answers
        chain.answer(review["id"], "approver", "我自己答")
    assert chain.task(review["id"], "approver")["assignee"] == "market_clerk"  # the owner still reads it
    with pytest.raises(Invalid):
        chain.answer(review["id"], "market_clerk", "")
    back = chain.answer(review["id"], "market_clerk", "场所属实")
    assert back == {"task_id": review["id"], "assignee": "approver", "owner": None, "completed": False}
    chain.complete(review["id"], "approver", decision="approve", opinion="同意")
    kinds = [(o["kind"], o["actor"]) for o in chain.opinions(task_id=review["id"])]
    assert kinds == [("delegate", "approver"), ("answer", "market_clerk"), ("approve", "approver")]
    assert {"delegate", "answer", "complete"} <= set(actions(chain, iid))


def test_delegate_refusals_and_conflict(chain, racing):
    iid, review = at_review(chain)
    with pytest.raises(NotAllowed):
        chain.delegate(review["id"], "market_clerk", "outsider", "x")
    with pytest.raises(Invalid):
        chain.delegate(review["id"], "approver", "approver", "x")  # not to oneself
    with racing(), pytest.raises(Conflict):
        chain.delegate(review["id"], "market_clerk", "approver", "x")
    assert chain.signs(review["id"]) == []


# ---- 加签 / 减签 --------------------------------------------------------------------------------
def test_add_signers_before_me_answer_in_turn_then_the_task_comes_back(chain):
    iid, review = at_review(chain)
    out = chain.add_sign(review["id"], ["market_clerk", "tobacco_clerk"], "approver", "before", "请会同审查")
    assert out["assignee"] == "market_clerk" and [s["status"] for s in out["signs"]] == ["active", "pending"]
    with pytest.raises(NotAllowed):
        chain.answer(review["id"], "tobacco_clerk", "not my turn")
    assert chain.answer(review["id"], "market_clerk", "无异议", "approve")["assignee"] == "tobacco_clerk"
    assert chain.answer(review["id"], "tobacco_clerk", "无异议", "approve")["assignee"] == "approver"
    chain.complete(review["id"], "approver", decision="approve")
    assert task_of(chain, iid, "decide")
    assert "add_sign" in actions(chain, iid)


def test_add_signers_after_me_complete_the_step_with_my_decision(chain):
    iid, review = at_review(chain)
    with pytest.raises(Invalid):  # an after-signer needs my decision first
        chain.add_sign(review["id"], ["leader"], "approver", "after", "请领导复核")
    chain.add_sign(review["id"], ["leader"], "approver", "after", "请领导复核", decision="approve",
                   data={"note": "ok"})
    assert chain.task(review["id"])["status"] == "open"
    done = chain.answer(review["id"], "leader", "同意", "approve")
    assert done["completed"] is True
    t = chain.task(review["id"])
    assert (t["status"], t["completed_by"], t["decision"]) == ("completed", "approver", "approve")
    assert task_of(chain, iid, "decide")
    assert chain.show(iid)["data"]["note"] == "ok"


def test_an_after_signer_who_rejects_sends_the_task_back_to_the_owner(chain):
    iid, review = at_review(chain)
    chain.add_sign(review["id"], ["leader", "market_clerk"], "approver", "after", "请复核", decision="approve")
    back = chain.answer(review["id"], "leader", "不同意", "reject")
    assert back["assignee"] == "approver" and back["completed"] is False
    assert [s["status"] for s in chain.signs(review["id"])] == ["done", "removed"]
    assert chain.task(review["id"])["status"] == "open"


def test_remove_sign_only_by_who_added_and_only_before_they_answer(chain, racing):
    iid, review = at_review(chain)
    signs = chain.add_sign(review["id"], ["market_clerk", "tobacco_clerk"], "approver", "before", "会审")["signs"]
    with pytest.raises(NotAllowed):
        chain.remove_sign(signs[1]["id"], "market_clerk")
    out = chain.remove_sign(signs[1]["id"], "approver", "不需要了")
    assert out["sign"]["status"] == "removed" and out["assignee"] == "market_clerk"
    with pytest.raises(Conflict):
        chain.remove_sign(signs[1]["id"], "approver")
    chain.answer(review["id"], "market_clerk", "ok", "approve")
    with pytest.raises(NotAllowed, match="already answered"):
        chain.remove_sign(signs[0]["id"], "approver")
    assert chain.task(review["id"])["assignee"] == "approver"
    assert "remove_sign" in actions(chain, iid)
    signs = chain.add_sign(review["id"], ["leader"], "approver", "before", "再请领导")["signs"]
    with racing(), pytest.raises(Conflict):
        chain.remove_sign(signs[0]["id"], "approver")


def test_removing_the_active_signer_hands_the_task_back(chain):
    iid, review = at_review(chain)
    signs = chain.add_sign(review["id"], ["leader"], "approver", "before", "请领导")["signs"]
    assert chain.remove_sign(signs[0]["id"], "approver")["assignee"] == "approver"
    chain.complete(review["id"], "approver", decision="approve")


# ---- 退回 ----------------------------------------------------------------------------------------
def test_return_to_an_earlier_step_keeps_its_data_and_history_and_new_deadlines(chain, clock):
    iid, review = at_review(chain)
    first_accept = chain.tasks(instance_id=iid, status="completed")[0]
    clock.advance(timedelta(days=3))
    targets = chain.return_targets(review["id"], "approver")
    assert [t["bpmn_id"] for t in targets] == ["accept"]
    with pytest.raises(Invalid):
        chain.return_task(review["id"], targets[0]["task_id"], "approver", "")
    out = chain.return_task(review["id"], targets[0]["task_id"], "approver", "材料缺营业执照")
    again = chain.task(out["task_id"])
    assert again["bpmn_id"] == "accept" and again["status"] == "open" and again["assignee"] == "window_clerk"
    assert again["data"]["accepted"] is True  # the earlier data comes back with it
    assert again["due_at"] > first_accept["due_at"]  # a new deadline from now
    assert chain.task(review["id"])["status"] == "cancelled"
    assert chain.task(first_accept["id"])["status"] == "completed"  # history stays
    assert [o["kind"] for o in chain.opinions(iid)] == ["complete", "return"]
    assert "return" in actions(chain, iid)
    status = chain.sla_status(iid)
    assert sum(1 for c in status["tasks"] if c["bpmn_id"] == "accept") == 2
    chain.complete(out["task_id"], "window_clerk", {"accepted": True})
    chain.complete(task_of(chain, iid, "review")["id"], "approver", decision="approve")
    assert task_of(chain, iid, "decide")


def test_return_refusals(chain, racing):
    iid, review = at_review(chain)
    target = chain.return_targets(review["id"], "approver")[0]["task_id"]
    with pytest.raises(NotAllowed):
        chain.return_targets(review["id"], "outsider")
    with pytest.raises(NotAllowed):
        chain.return_task(review["id"], target, "outsider", "x")
    with pytest.raises(NotAllowed):  # not an earlier step of this task
        chain.return_task(review["id"], review["id"], "approver", "x")
    with racing(), pytest.raises(Conflict):
        chain.return_task(review["id"], target, "approver", "x")
    assert chain.task(review["id"])["status"] == "open"


# ---- 退回补正 -------------------------------------------------------------------------------------
def test_a_supplement_changes_only_what_was_asked_or_what_the_applicant_gave(chain):
    iid, review = at_review(chain)  # the window accepted: "accepted" is the process's, not the applicant's
    chain.return_to_applicant(review["id"], "approver", "请补充租赁合同", ["lease"])
    with pytest.raises(Invalid) as refused:
        chain.supplement(iid, {"lease": "L-1", "accepted": False}, "window_clerk")
    assert refused.value.fields == {"accepted": "not asked for (asked: lease)"}
    chain.supplement(iid, {"lease": "L-1"}, "window_clerk")
    # a return naming no fields: the applicant corrects what they gave and adds what the case lacks,
    # but cannot rewrite what the process set
    chain.return_to_applicant(review["id"], "approver", "请核对申请信息")
    for forged in ({"accepted": False}, {"initiator": "approver"}, {"decision": "approve"}):
        with pytest.raises(Invalid, match="cannot change"):
            chain.supplement(iid, {"applicant": "张三丰", **forged}, "window_clerk")
    assert chain.task(review["id"])["status"] == "supplement"  # nothing of a refused supplement was kept
    chain.supplement(iid, {"applicant": "张三丰", "lease": "L-2", "lease_note": "原件已交窗口"}, "window_clerk")
    data = chain.task(review["id"])["data"]
    assert (data["applicant"], data["lease"], data["lease_note"], data["accepted"]) == ("张三丰", "L-2", "原件已交窗口", True)


def test_return_to_applicant_pauses_the_clock_until_the_supplement(chain, clock, racing):
    iid, review = at_review(chain)
    before = chain.task(review["id"])["due_at"]
    out = chain.return_to_applicant(review["id"], "approver", "请补充租赁合同", ["lease"])
    assert out["status"] == "supplement"
    assert chain.tasks(user="approver") == []
    with pytest.raises(NotAllowed):
        chain.complete(review["id"], "approver", decision="approve")
    assert any(p["source"] == f"supplement:{review['id']}" and p["ended_at"] is None
               for p in chain.sla_status(iid)["pauses"])
    assert any("补正" in n["title"] for n in chain.notices("window_clerk"))
    clock.advance(timedelta(days=7))
    with pytest.raises(NotAllowed) as refused:
        chain.supplement(iid, {"lease": "L-1"}, "outsider")
    assert "window_clerk" not in str(refused.value)  # the applicant is not named to an outsider
    with pytest.raises(NotAllowed):
        chain.supplement(iid, [], "outsider")  # who may comes before what was sent
    with pytest.raises(Invalid):
        chain.supplement(iid, {}, "window_clerk")
    with racing(), pytest.raises(Conflict):
        chain.supplement(iid, {"lease": "L-0"}, "window_clerk")
    assert chain.task(review["id"])["status"] == "supplement"
    with pytest.raises(NotAllowed):  # the clerk cannot take it back from the applicant
        chain.return_to_applicant(review["id"], "approver", "again")
    chain.supplement(iid, {"lease": "L-1"}, "window_clerk")
    t = chain.task(review["id"])
    assert t["status"] == "open" and t["data"]["lease"] == "L-1"
    assert t["due_at"] > before  # the paused days do not count
    with pytest.raises(NotAllowed):
        chain.supplement(iid, {"lease": "L-2"}, "window_clerk")
    assert {"return_applicant", "supplement"} <= set(actions(chain, iid))
    chain.complete(review["id"], "approver", decision="approve")


# ---- who learns what about a task that is no longer open ----------------------------------------------
def test_a_task_that_is_no_longer_open_tells_its_state_only_to_those_who_had_a_part_in_it(chain):
    iid, review = at_review(chain)
    accept = [t for t in chain.tasks(instance_id=iid, status="completed") if t["bpmn_id"] == "accept"][0]
    # someone outside the task: may not act, and is not told it was completed nor by whom
    for attempt in (lambda: chain.complete(accept["id"], "tobacco_clerk", {}),
                    lambda: chain.claim(accept["id"], "tobacco_clerk"),
                    lambda: chain.transfer(accept["id"], "approver2", "tobacco_clerk", "x"),
                    lambda: chain.delegate(accept["id"], "approver2", "tobacco_clerk", "x"),
                    lambda: chain.answer(accept["id"], "tobacco_clerk", "x")):
        with pytest.raises(NotAllowed) as refused:
            attempt()
        assert "window_clerk" not in str(refused.value) and "completed" not in str(refused.value)
    # a candidate of the task who came second: the conflict names who completed it
    with pytest.raises(Conflict, match="already completed by window_clerk"):
        chain.complete(accept["id"], "window_clerk", {})
    # an administrator too
    with pytest.raises(Conflict, match="already completed by window_clerk"):
        chain.transfer(accept["id"], "approver2", "boss", "x")
    # a task cancelled meanwhile (撤回 by its sender) is a conflict for its candidate, not a refusal
    chain.withdraw(accept["id"], "window_clerk", "填错了")
    with pytest.raises(Conflict, match="cancelled meanwhile"):
        chain.complete(review["id"], "approver", decision="approve")
    with pytest.raises(NotAllowed, match="may not act"):
        chain.complete(review["id"], "tobacco_clerk", decision="approve")


# ---- 撤回 ----------------------------------------------------------------------------------------
def test_withdraw_while_the_next_step_has_not_acted(chain):
    iid = start(chain)
    accept = task_of(chain, iid, "accept")
    chain.complete(accept["id"], "window_clerk", {"accepted": True})
    review = task_of(chain, iid, "review")
    with pytest.raises(NotAllowed):
        chain.withdraw(accept["id"], "approver")  # not the sender
    out = chain.withdraw(accept["id"], "window_clerk", "填错了")
    assert chain.task(review["id"])["status"] == "cancelled"
    again = chain.task(out["task_id"])
    assert again["bpmn_id"] == "accept" and again["assignee"] == "window_clerk" and again["status"] == "open"
    assert "withdraw" in actions(chain, iid)
    chain.complete(again["id"], "window_clerk", {"accepted": True})
    review = task_of(chain, iid, "review")
    chain.claim(review["id"], "approver")
    with pytest.raises(NotAllowed, match="claimed"):
        chain.withdraw(again["id"], "window_clerk")
    chain.complete(review["id"], "approver", decision="approve")
    with pytest.raises(NotAllowed):
        chain.withdraw(again["id"], "window_clerk")


def test_withdraw_refused_after_an_opinion_and_on_a_race(chain, racing):
    iid = start(chain)
    accept = task_of(chain, iid, "accept")
    chain.complete(accept["id"], "window_clerk", {})
    review = task_of(chain, iid, "review")
    with racing(), pytest.raises(Conflict):
        chain.withdraw(accept["id"], "window_clerk")
    assert chain.task(review["id"])["status"] == "open"


def test_withdraw_refused_once_the_next_step_delegated(chain):
    iid = start(chain)
    accept = task_of(chain, iid, "accept")
    chain.complete(accept["id"], "window_clerk", {})
    review = task_of(chain, iid, "review")
    chain.delegate(review["id"], "market_clerk", "approver", "请核实")
    with pytest.raises(NotAllowed):
        chain.withdraw(accept["id"], "window_clerk")


# ---- 催办 / 抄送 ---------------------------------------------------------------------------------
def test_urge_reminds_the_holders_once_an_hour(chain, clock, racing):
    iid, review = at_review(chain)
    out = chain.urge(review["id"], "window_clerk", "申请人催问")
    assert set(out["notified"]) == {"approver", "approver2", "admin"}
    assert any("催办" in n["title"] for n in chain.notices("approver2"))
    with pytest.raises(NotAllowed, match="once an hour"):
        chain.urge(review["id"], "window_clerk")
    with pytest.raises(NotAllowed):
        chain.urge(review["id"], "outsider")
    clock.advance(timedelta(minutes=61))
    chain.claim(review["id"], "approver")
    assert chain.urge(review["id"], "leader")["notified"] == ["approver"]
    assert actions(chain, iid).count("urge") == 2
    clock.advance(timedelta(minutes=61))
    with racing(), pytest.raises(Conflict):
        chain.urge(review["id"], "window_clerk")
    chain.complete(review["id"], "approver", decision="approve")
    with pytest.raises(NotAllowed):
        chain.urge(review["id"], "window_clerk")


def test_cc_to_read_list_and_read_receipts(chain):
    iid, review = at_review(chain)
    sent = chain.cc(review["id"], ["leader", "market_clerk"], "approver", "请知悉")
    assert [c["user"] for c in sent] == ["leader", "market_clerk"]
    todo = chain.to_read("leader")
    assert len(todo) == 1 and todo[0]["read"] is False and todo[0]["task_name"] == "审查"
    with pytest.raises(NotFound):
        chain.mark_read(todo[0]["id"], "market_clerk")  # not theirs
    first = chain.mark_read(todo[0]["id"], "leader")
    assert first["read"] is True
    assert {k: first[k] for k in ("task_name", "process_key")} == {"task_name": "审查", "process_key": "approval_chain"}
    assert chain.mark_read(todo[0]["id"], "leader")["read_at"] == first["read_at"]
    assert chain.to_read("leader", unread_only=True) == []
    view = chain.cc_task(todo[0]["id"], "leader")
    assert view["read_only"] is True and view["id"] == review["id"] and view["name"] == "审查"
    with pytest.raises(NotFound):
        chain.cc_task(todo[0]["id"], "approver")
    receipts = {c["user"]: c["read"] for c in chain.cc_receipts(iid)}
    assert receipts == {"leader": True, "market_clerk": False}
    with pytest.raises(NotAllowed):
        chain.cc(review["id"], ["leader"], "outsider")
    with pytest.raises(Invalid):
        chain.cc(review["id"], [], "approver")
    assert [a for a in actions(chain, iid) if a.startswith("cc")] == ["cc", "cc.read"]
    # a copy is read-only: the reader may not act on the task
    with pytest.raises(NotAllowed):
        chain.complete(review["id"], "market_clerk", decision="approve")


# ---- opinions and phrases ---------------------------------------------------------------------------
def test_opinions_are_typed_and_required_where_the_process_says(chain):
    iid, review = at_review(chain)
    chain.complete(review["id"], "approver", decision="reject", opinion="经营范围不符")
    decide = task_of(chain, iid, "decide")
    chain.complete(decide["id"], "leader", opinion="不予许可")
    ops = chain.opinions(iid)
    assert [(o["kind"], o["actor"], o["text"]) for o in ops] == [
        ("complete", "window_clerk", ""), ("reject", "approver", "经营范围不符"), ("complete", "leader", "不予许可")]


def test_phrases_per_user(chain):
    assert chain.phrases("approver") == []
    p = chain.add_phrase("approver", "同意，请领导审批")
    assert chain.add_phrase("approver", "同意，请领导审批") == p
    chain.add_phrase("approver", "材料不全，请补正")
    assert [x["text"] for x in chain.phrases("approver")] == ["同意，请领导审批", "材料不全，请补正"]
    assert chain.phrases("leader") == []
    with pytest.raises(Invalid):
        chain.add_phrase("approver", "  ")
    with pytest.raises(NotFound):
        chain.remove_phrase(p["id"], "leader")
    chain.remove_phrase(p["id"], "approver")
    assert [x["text"] for x in chain.phrases("approver")] == ["材料不全，请补正"]
    assert chain.verify_audit().ok


def _race_complete_and_delegate(chain):
    import threading

    iid, review = at_review(chain)
    chain.claim(review["id"], "approver")
    barrier = threading.Barrier(2)
    results = {}

    def run(name, fn):
        barrier.wait()
        try:
            fn()
            results[name] = "ok"
        except (Conflict, NotAllowed) as exc:
            results[name] = type(exc).__name__

    threads = [threading.Thread(target=run, args=("complete", lambda: chain.complete(
                   review["id"], "approver", decision="approve"))),
               threading.Thread(target=run, args=("delegate", lambda: chain.delegate(
                   review["id"], "market_clerk", "approver", "请核实")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return review, results


def test_complete_and_delegate_at_once_exactly_one_wins(chain):
    for _ in range(3):
        review, results = _race_complete_and_delegate(chain)
        assert sorted(results.values()).count("ok") == 1, results
        t = chain.task(review["id"])
        if results["complete"] == "ok":
            assert t["status"] == "completed" and chain.signs(review["id"]) == []
        else:
            assert t["status"] == "open" and t["assignee"] == "market_clerk"


@pytest.mark.parametrize("change, words", [
    ('mode="ratio" ratio="0.67"', None),
    ('mode="majority" ratio="0.67"', "mode must be one of"),
    ('mode="ratio" ratio="1.5"', "ratio must be in"),
])
def test_countersign_declarations_are_checked_at_deploy(engine, change, words):
    from engine.errors import InvalidProcess

    (name, data), = example_files("approval_countersign.bpmn").items()
    text = data.decode().replace('mode="ratio" ratio="0.67"', change)
    if words is None:
        assert engine.deploy({name: text.encode()})
        return
    with pytest.raises(InvalidProcess) as info:
        engine.deploy({name: text.encode()})
    problem = info.value.problems[0]
    assert words in problem.message and problem.element_id and problem.line


NOBODY_BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="urn:test">
  <bpmn:process id="nobody" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="review"/>
    <bpmn:userTask id="review" name="\xe5\xae\xa1\xe6\x9f\xa5"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_a_task_naming_nobody_goes_to_the_administrators_by_default(engine):
    engine.deploy({"nobody.bpmn": NOBODY_BPMN})
    # no administrator yet: the task stays as declared (and only the process admin could fix it)
    first = engine.start("nobody", {})["instance_id"]
    assert engine.tasks(instance_id=first)[0]["candidate_users"] == []
    engine.add_user("chief", roles=["admin"])
    second = engine.start("nobody", {})["instance_id"]
    task = engine.tasks(instance_id=second)[0]
    assert task["candidate_users"] == ["chief"]
    assert [t["id"] for t in engine.tasks(user="chief")] == [task["id"]]
    assert any(e["action"] == "approval.no_approver" for e in engine.trail(second))
    assert engine.complete(task["id"], "chief")["status"] == "completed"
