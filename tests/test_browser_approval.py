"""A clerk walks through 加签 → 委派 → 退回 → 撤回 on the demo process approval_chain in a real
browser (Debian's chromium via Playwright); the other users sign in in turn in their own browser
contexts. Screenshots go to test-output/screenshots/approval-*.png."""

from __future__ import annotations

import re

from tests.web_support import shot


def _flash(page) -> str:
    return page.inner_text("main .flash")


def test_add_sign_delegate_return_withdraw(live_server, demo_engine, context_for):
    iid = demo_engine.start("approval_chain", {"applicant_name": "张三"}, business_key="SP-2026-001",
                            actor="window_clerk")["instance_id"]
    accept = demo_engine.tasks(instance_id=iid)[0]
    demo_engine.claim(accept["id"], "window_clerk")
    demo_engine.complete(accept["id"], "window_clerk", {})
    review = demo_engine.tasks(instance_id=iid)[0]
    demo_engine.add_phrase("approver", "材料齐全，请会商")

    # the approver claims 审查 and adds the leader as a signer before them (加签), using a phrase
    approver = context_for("approver")
    approver.goto(f"{live_server}/tasks/{review['id']}")
    approver.click("#claim-button")
    approver.wait_for_selector("#approval-ops")
    approver.click("#op-add-sign summary")
    approver.select_option("#add-sign-users", ["leader"])
    approver.click("#op-add-sign button.phrase")
    assert approver.input_value("#op-add-sign textarea") == "材料齐全，请会商"
    shot(approver, "approval-01-add-sign")
    approver.click("#op-add-sign button[type=submit]")
    approver.wait_for_selector("#sign-note")
    assert "加签" in _flash(approver)
    assert approver.locator("#submit-button").count() == 0  # held by the added signer
    assert approver.locator("#signs tr[data-sign-id]").count() == 1
    shot(approver, "approval-02-waiting-for-signer")

    # the leader answers in their own browser
    leader = context_for("leader")
    leader.goto(f"{live_server}/tasks/{review['id']}")
    leader.wait_for_selector("#answer-form")
    assert leader.locator("#task-form").count() == 0
    leader.fill("#answer-opinion", "同意，注意核实经营场所")
    shot(leader, "approval-03-signer-answers")
    leader.click("#answer-button")
    leader.wait_for_url(re.compile(r".*/$"))
    assert "已提交答复" in _flash(leader)

    # back with the approver: 委派 to the market clerk for an opinion
    approver.goto(f"{live_server}/tasks/{review['id']}")
    assert "同意，注意核实经营场所" in approver.inner_text("#opinion-history")
    approver.click("#op-delegate summary")
    approver.select_option("#delegate-to", "market_clerk")
    approver.fill("#op-delegate textarea", "请市监提出意见")
    approver.click("#op-delegate button[type=submit]")
    approver.wait_for_selector("#sign-note")
    assert "委派" in approver.inner_text("#sign-note")

    market = context_for("market_clerk")
    market.goto(f"{live_server}/tasks/{review['id']}")
    market.wait_for_selector("#answer-form")
    assert market.locator("input[name=decision]").count() == 0  # a delegate gives an opinion
    market.click("#answer-button")  # empty: the browser asks for the opinion first
    assert market.locator("#answer-opinion:invalid").count() == 1
    market.fill("#answer-opinion", "经营范围符合规定")
    market.click("#answer-button")
    market.wait_for_url(re.compile(r".*/$"))

    # the approver decides; the leader returns the case from 决定 to 审查 (退回)
    approver.goto(f"{live_server}/tasks/{review['id']}")
    approver.wait_for_selector("#submit-button")
    approver.check("input[name=decision][value=approve]")
    approver.fill("#input-opinion", "同意")
    approver.click("#submit-button")
    approver.wait_for_url(re.compile(r".*/instances/\d+$"))
    assert "决定" in approver.inner_text("#open-tasks")
    assert "决定" in approver.inner_text("#forecast")  # 流程预测 shows the current step
    decide = [t for t in demo_engine.tasks(instance_id=iid) if t["bpmn_id"] == "decide"][0]

    leader.goto(f"{live_server}/tasks/{decide['id']}")
    leader.click("#claim-button")
    leader.wait_for_selector("#op-return")
    leader.click("#op-return summary")
    assert "审查" in leader.inner_text("#return-target")
    leader.click("#op-return button[type=submit]")  # no opinion: the browser refuses
    assert leader.locator("#return-opinion:invalid").count() == 1
    leader.fill("#return-opinion", "请补充现场核查意见")
    shot(leader, "approval-04-return")
    leader.click("#op-return button[type=submit]")
    leader.wait_for_url(re.compile(r".*/instances/\d+$"))
    assert "已退回" in _flash(leader)

    # the approver gets 审查 back (assigned to them), decides again, then takes it back (撤回)
    again = [t for t in demo_engine.tasks(instance_id=iid) if t["bpmn_id"] == "review"][0]
    assert again["assignee"] == "approver"
    approver.goto(f"{live_server}/tasks/{again['id']}")
    assert "请补充现场核查意见" in approver.inner_text("#opinion-history")
    approver.check("input[name=decision][value=approve]")
    approver.fill("#input-opinion", "已补充现场核查，同意")
    approver.click("#submit-button")
    approver.wait_for_url(re.compile(r".*/instances/\d+$"))
    approver.goto(f"{live_server}/tasks/{again['id']}")
    approver.click("#op-withdraw summary")
    approver.fill("#op-withdraw textarea", "意见有误，撤回修改")
    shot(approver, "approval-05-withdraw")
    approver.click("#withdraw-button")
    approver.wait_for_url(re.compile(r".*/tasks/\d+$"))
    assert "已撤回" in _flash(approver)
    assert approver.locator("#submit-button").count() == 1
    kinds = approver.eval_on_selector_all("#opinion-history tr[data-kind]", "rows => rows.map(r => r.dataset.kind)")
    assert {"add_sign", "sign", "delegate", "answer", "return", "withdraw"} <= set(kinds)
    shot(approver, "approval-06-after-withdraw")

    # the leader may no longer return the withdrawn step: a clear message, not a 500
    leader.goto(f"{live_server}/tasks/{decide['id']}")
    assert leader.locator("#op-return").count() == 0
    leader.goto(f"{live_server}/instances/{iid}")
    shot(leader, "approval-07-instance")
    assert leader.locator("#forecast-steps").count() == 1
