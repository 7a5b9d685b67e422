"""The approval operations (中国式审批) in the clerk pages and the REST API, on the demo process
approval_chain (窗口受理 → 审查 → 决定): each operation's happy path through the page routes and
through /api/v1, and its refusals (wrong person 403, wrong state, a concurrent action 409, a
missing opinion 400), shown as messages, never a 500."""

from __future__ import annotations

import re

import pytest

from tests.test_web_api import api, tokens  # noqa: F401 - fixtures

API = "/api/v1"


def _text(r) -> str:
    return r.get_data(as_text=True)


def _start(engine) -> int:
    return engine.start("approval_chain", {"applicant_name": "张三"}, business_key="SP-1",
                        actor="window_clerk")["instance_id"]


def _open(engine, iid, bpmn_id):
    rows = [t for t in engine.tasks(instance_id=iid) if t["bpmn_id"] == bpmn_id]
    assert rows, engine.tasks(instance_id=iid, status="all")
    return rows[0]


def _at_review(engine, claim=True) -> tuple[int, dict]:
    """An instance whose 审查 step is open (claimed by approver when ``claim``)."""
    iid = _start(engine)
    accept = _open(engine, iid, "accept")
    engine.claim(accept["id"], "window_clerk")
    engine.complete(accept["id"], "window_clerk", {})
    review = _open(engine, iid, "review")
    if claim:
        engine.claim(review["id"], "approver")
    return iid, review


def _post(client, url, **data):
    return client.post(url, data={"csrf_token": client.csrf, **data})


def _action_error(html: str) -> str:
    m = re.search(r'id="action-error"[^>]*>([^<]*)<', html)
    return m.group(1) if m else ""


def _audit_actions(engine, iid) -> list[str]:
    return [e["action"] for e in engine.trail(iid)]


# ---- the task page shows what the user may do -----------------------------------------------
def test_task_page_offers_the_holders_operations_with_phrases_and_opinions(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    demo_engine.add_phrase("approver", "材料齐全，同意")
    html = _text(client_for("approver").get(f"/tasks/{review['id']}"))
    for op in ("op-transfer", "op-delegate", "op-add-sign", "op-return", "op-return-applicant", "op-cc"):
        assert f'id="{op}"' in html, op
    assert 'id="op-withdraw"' not in html and 'id="answer-form"' not in html
    assert 'data-phrase="材料齐全，同意"' in html
    assert "窗口受理" in html.split('id="return-target"')[1].split("</select>")[0]  # from return_targets
    assert 'id="opinion-history"' in html
    # the sender of the earlier step sees its page with 撤回 only, and no holder's operations
    accept_id = demo_engine.return_targets(review["id"], "approver")[0]["task_id"]
    html = _text(client_for("window_clerk").get(f"/tasks/{accept_id}"))
    assert 'id="op-withdraw"' in html and 'id="op-transfer"' not in html and 'id="op-delegate"' not in html
    assert iid


def test_a_user_outside_the_task_is_refused_403(demo_engine, client_for):
    _iid, review = _at_review(demo_engine)
    market = client_for("market_clerk")
    for op, data in (("transfer", {"to": "leader", "opinion": "x"}), ("delegate", {"to": "leader", "opinion": "x"}),
                     ("add-sign", {"users": "leader", "opinion": "x"}), ("return", {"target_task_id": "1"}),
                     ("return-to-applicant", {"opinion": "x"}), ("withdraw", {}), ("cc", {"users": "leader"}),
                     ("answer", {"opinion": "x"})):
        r = _post(market, f"/tasks/{review['id']}/{op}", **data)
        assert r.status_code == 403, (op, r.status_code)
    assert demo_engine.task(review["id"])["assignee"] == "approver"


def test_post_without_csrf_is_refused(demo_engine, client_for):
    _iid, review = _at_review(demo_engine)
    r = client_for("approver").post(f"/tasks/{review['id']}/transfer", data={"to": "leader", "opinion": "x"})
    assert r.status_code == 400
    assert demo_engine.task(review["id"])["assignee"] == "approver"


# ---- 转办 -------------------------------------------------------------------------------------
def test_transfer_through_the_page(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    approver = client_for("approver")
    r = _post(approver, f"/tasks/{review['id']}/transfer", to="leader", opinion="")
    assert r.status_code == 400  # review requires an opinion for a transfer
    assert "意见" in _action_error(_text(r))
    r = _post(approver, f"/tasks/{review['id']}/transfer", to="leader", opinion="请周领导办理")
    assert r.status_code == 302 and r.headers["Location"] == "/"  # no longer mine: back to the inbox
    t = demo_engine.task(review["id"])
    assert t["assignee"] == "leader" and t["candidate_users"] == ["leader"]
    assert "transfer" in _audit_actions(demo_engine, iid)
    # the old holder now is the wrong person
    assert _post(approver, f"/tasks/{review['id']}/transfer", to="approver", opinion="x").status_code == 403
    html = _text(client_for("leader").get(f"/tasks/{review['id']}"))
    assert "请周领导办理" in html and 'id="op-transfer"' in html


def test_transfer_of_a_task_completed_meanwhile_is_409(demo_engine, client_for):
    _iid, review = _at_review(demo_engine)
    approver = client_for("approver")
    approver.get(f"/tasks/{review['id']}")  # the page is open...
    demo_engine.complete(review["id"], "approver", {}, "approve", "同意")  # ...and it was decided meanwhile
    r = _post(approver, f"/tasks/{review['id']}/transfer", to="leader", opinion="请办理")
    assert r.status_code == 409
    assert "已" in _action_error(_text(r)) or "completed" in _action_error(_text(r))


# ---- 委派 / answer ---------------------------------------------------------------------------------
def test_delegate_and_answer_through_the_pages(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    approver, leader = client_for("approver"), client_for("leader")
    r = _post(approver, f"/tasks/{review['id']}/delegate", to="leader", opinion="请提出意见")
    assert r.status_code == 302 and r.headers["Location"] == f"/tasks/{review['id']}"  # the owner still sees it
    html = _text(approver.get(f"/tasks/{review['id']}"))
    assert 'id="sign-note"' in html and 'id="submit-button"' not in html  # held by the delegate
    assert 'id="answer-form"' not in html
    html = _text(leader.get(f"/tasks/{review['id']}"))
    assert 'id="answer-form"' in html and 'id="task-form"' not in html
    # the owner may not answer for the delegate; the delegate's answer needs text
    assert _post(approver, f"/tasks/{review['id']}/answer", opinion="x").status_code == 403
    assert _post(approver, f"/tasks/{review['id']}/transfer", to="drug_clerk", opinion="x").status_code == 403
    r = _post(leader, f"/tasks/{review['id']}/answer", opinion="")
    assert r.status_code == 400
    r = _post(leader, f"/tasks/{review['id']}/answer", opinion="建议同意")
    assert r.status_code == 302
    assert demo_engine.task(review["id"])["assignee"] == "approver"
    html = _text(approver.get(f"/tasks/{review['id']}"))
    assert 'id="submit-button"' in html and "建议同意" in html
    # answered twice (a concurrent second answer): refused
    assert _post(leader, f"/tasks/{review['id']}/answer", opinion="再次").status_code == 403
    assert {"delegate", "answer"} <= set(_audit_actions(demo_engine, iid))


# ---- 加签 / 减签 ------------------------------------------------------------------------------------
def test_add_signers_before_then_remove_one(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    approver, leader = client_for("approver"), client_for("leader")
    r = approver.post(f"/tasks/{review['id']}/add-sign", data={"csrf_token": approver.csrf,
                                                               "users": ["leader", "market_clerk"],
                                                               "position": "before", "opinion": "请会商"})
    assert r.status_code == 302
    signs = demo_engine.signs(review["id"])
    assert [(s["user"], s["status"]) for s in signs] == [("leader", "active"), ("market_clerk", "pending")]
    html = _text(approver.get(f"/tasks/{review['id']}"))
    assert html.count('class="inline remove-sign"') == 2
    # 减签 by someone who did not add them: refused
    assert _post(leader, f"/signs/{signs[1]['id']}/remove", task_id=review["id"]).status_code == 403
    r = _post(approver, f"/signs/{signs[1]['id']}/remove", task_id=review["id"], reason="无需市监会商")
    assert r.status_code == 302
    # removing twice is a conflict
    assert _post(approver, f"/signs/{signs[1]['id']}/remove", task_id=review["id"]).status_code == 409
    r = _post(leader, f"/tasks/{review['id']}/answer", decision="approve", opinion="同意")
    assert r.status_code == 302
    assert demo_engine.task(review["id"])["assignee"] == "approver"
    # an answered signer cannot be removed any more
    assert _post(approver, f"/signs/{signs[0]['id']}/remove", task_id=review["id"]).status_code == 403
    assert {"add_sign", "remove_sign", "answer"} <= set(_audit_actions(demo_engine, iid))


def test_add_sign_needs_users(demo_engine, client_for):
    _iid, review = _at_review(demo_engine)
    r = _post(client_for("approver"), f"/tasks/{review['id']}/add-sign", opinion="x", position="before")
    assert r.status_code == 400 and _action_error(_text(r))


# ---- 退回 / 撤回 ------------------------------------------------------------------------------------
def test_return_to_an_earlier_step(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    demo_engine.complete(review["id"], "approver", {}, "approve", "同意")
    decide = _open(demo_engine, iid, "decide")
    leader = client_for("leader")
    html = _text(leader.get(f"/tasks/{decide['id']}"))
    options = re.findall(r'<option value="(\d+)">', html.split('id="return-target"')[1].split("</select>")[0])
    assert [int(x) for x in options][0] == review["id"]
    assert _post(leader, f"/tasks/{decide['id']}/return", target_task_id=review["id"], opinion="").status_code == 400
    assert _post(client_for("window_clerk"), f"/tasks/{decide['id']}/return", target_task_id=review["id"],
                 opinion="x").status_code == 403
    assert _post(leader, f"/tasks/{decide['id']}/return", target_task_id=999999, opinion="x").status_code == 403
    r = _post(leader, f"/tasks/{decide['id']}/return", target_task_id=review["id"], opinion="依据不足，请重新审查")
    assert r.status_code == 302
    again = _open(demo_engine, iid, "review")
    assert again["id"] != review["id"] and again["assignee"] == "approver"
    # the old decide task was cancelled: returning it again is a conflict
    assert _post(leader, f"/tasks/{decide['id']}/return", target_task_id=review["id"],
                 opinion="x").status_code in (403, 409)
    html = _text(client_for("approver").get(f"/tasks/{again['id']}"))
    assert "依据不足，请重新审查" in html


def test_withdraw_while_the_next_step_has_not_acted(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    demo_engine.complete(review["id"], "approver", {}, "approve", "同意")
    approver = client_for("approver")
    html = _text(approver.get(f"/tasks/{review['id']}"))
    assert 'id="op-withdraw"' in html
    assert _post(client_for("leader"), f"/tasks/{review['id']}/withdraw").status_code == 403  # not the sender
    r = _post(approver, f"/tasks/{review['id']}/withdraw", opinion="漏填意见，撤回修改")
    assert r.status_code == 302
    again = _open(demo_engine, iid, "review")
    assert r.headers["Location"] == f"/tasks/{again['id']}"
    assert again["assignee"] == "approver"
    assert not [t for t in demo_engine.tasks(instance_id=iid) if t["bpmn_id"] == "decide"]
    # once the next step has been claimed, withdraw is refused
    demo_engine.complete(again["id"], "approver", {}, "approve", "同意")
    decide = _open(demo_engine, iid, "decide")
    demo_engine.claim(decide["id"], "leader")
    r = _post(approver, f"/tasks/{again['id']}/withdraw")
    assert r.status_code == 403 and "领取" in _action_error(_text(r)) or "claimed" in _action_error(_text(r))


# ---- 退回补正 / 补正 ----------------------------------------------------------------------------------
def test_return_to_applicant_and_the_supplement(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    approver = client_for("approver")
    assert _post(approver, f"/tasks/{review['id']}/return-to-applicant", opinion="").status_code == 400
    r = _post(approver, f"/tasks/{review['id']}/return-to-applicant", opinion="请补充营业执照")
    assert r.status_code == 302
    assert demo_engine.task(review["id"])["status"] == "supplement"
    assert 'id="supplement-note"' in _text(approver.get(f"/tasks/{review['id']}"))
    # the applicant's clerk supplements on the instance page; someone else may not
    assert _post(approver, f"/instances/{iid}/supplement", data_json='{"licence": "已补交"}').status_code == 403
    assert _post(approver, f"/instances/{iid}/supplement", data_json="[1]").status_code == 403
    window = client_for("window_clerk")
    assert 'id="supplement-form"' in _text(window.get(f"/instances/{iid}"))
    assert _post(window, f"/instances/{iid}/supplement", data_json="[1]").status_code == 400
    assert _post(window, f"/instances/{iid}/supplement", data_json='{"licence": "已补交"}').status_code == 302
    t = demo_engine.task(review["id"])
    assert t["status"] == "open" and t["data"]["licence"] == "已补交"
    assert _post(window, f"/instances/{iid}/supplement", data_json='{"licence": "又一次"}').status_code == 403


# ---- 催办 / 抄送 / 待阅 ---------------------------------------------------------------------------------
def test_urge_from_the_instance_page_once_an_hour(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    window = client_for("window_clerk")
    html = _text(window.get(f"/instances/{iid}"))
    assert f'/tasks/{review["id"]}/urge' in html
    assert _post(window, f"/tasks/{review['id']}/urge", note="申请人询问进度").status_code == 302
    r = _post(window, f"/tasks/{review['id']}/urge", note="再催")
    assert r.status_code == 403 and "action-error" in _text(r)
    assert _post(client_for("drug_clerk"), f"/tasks/{review['id']}/urge").status_code == 403
    assert "urge" in _audit_actions(demo_engine, iid)


def test_cc_to_read_and_read_receipt(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    approver, leader = client_for("approver"), client_for("leader")
    assert _post(approver, f"/tasks/{review['id']}/cc", note="请知悉").status_code == 400  # nobody named
    assert _post(approver, f"/tasks/{review['id']}/cc", users="leader", note="请知悉").status_code == 302
    html = _text(leader.get("/"))
    assert re.search(r'id="count-to-read">1<', html)
    html = _text(leader.get("/to-read"))
    cc_id = int(re.search(r'data-cc-id="(\d+)" class="unread"', html).group(1))
    page = _text(leader.get(f"/to-read/{cc_id}"))
    assert 'id="read-only-note"' in page and 'id="task-form"' not in page and 'id="approval-ops"' not in page
    assert 'class="read"' in _text(leader.get("/to-read"))
    assert _post(leader, f"/to-read/{cc_id}/read").status_code == 302
    assert client_for("approver").get(f"/to-read/{cc_id}").status_code == 404  # not theirs
    assert "cc.read" in _audit_actions(demo_engine, iid)
    assert 'id="cc-receipts"' in _text(approver.get(f"/instances/{iid}"))


def test_phrases_through_the_page(demo_engine, client_for):
    _iid, review = _at_review(demo_engine)
    approver = client_for("approver")
    r = _post(approver, "/phrases", text="情况属实", next=f"/tasks/{review['id']}")
    assert r.status_code == 302 and r.headers["Location"] == f"/tasks/{review['id']}"
    [p] = demo_engine.phrases("approver")
    assert 'data-phrase="情况属实"' in _text(approver.get(f"/tasks/{review['id']}"))
    assert _post(client_for("leader"), f"/phrases/{p['id']}/delete").status_code == 404
    assert _post(approver, f"/phrases/{p['id']}/delete").status_code == 302
    assert demo_engine.phrases("approver") == []


# ---- the instance page: 流程预测 and administrators' moves --------------------------------------------
def test_instance_page_forecasts_the_steps_ahead(demo_engine, client_for):
    iid, _review = _at_review(demo_engine)
    html = _text(client_for("window_clerk").get(f"/instances/{iid}"))
    steps = html.split('id="forecast-steps"')[1].split("</ol>")[0]
    assert 'data-step="decide"' in steps and "周领导" in steps  # the leader group's member
    assert 'id="admin-ops"' not in html


def test_admin_suspends_resumes_moves_and_terminates(demo_engine, client_for):
    iid, review = _at_review(demo_engine)
    admin = client_for("admin")
    assert 'id="admin-ops"' in _text(admin.get(f"/instances/{iid}"))
    assert _post(client_for("approver"), f"/instances/{iid}/admin/suspend", reason="x").status_code == 403
    assert _post(admin, f"/instances/{iid}/admin/suspend", reason="").status_code == 400
    assert _post(admin, f"/instances/{iid}/admin/suspend", reason="等待上级批复").status_code == 302
    assert demo_engine.show(iid)["status"] == "suspended"
    # a suspended case refuses task actions, with a message
    r = _post(client_for("approver"), f"/tasks/{review['id']}/transfer", to="leader", opinion="x")
    assert r.status_code in (403, 409)
    assert _post(admin, f"/instances/{iid}/admin/suspend", reason="again").status_code == 403  # wrong state
    assert _post(admin, f"/instances/{iid}/admin/resume", reason="已批复").status_code == 302
    assert demo_engine.show(iid)["status"] == "running"
    assert _post(admin, f"/instances/{iid}/admin/move", to="decide", reason="领导直接决定").status_code == 302
    assert _open(demo_engine, iid, "decide")
    assert _post(admin, f"/instances/{iid}/admin/move", to="nope", reason="x").status_code == 400
    assert _post(admin, f"/instances/{iid}/admin/terminate", reason="申请人撤回申请").status_code == 302
    assert demo_engine.show(iid)["status"] == "terminated"
    assert _post(admin, f"/instances/{iid}/admin/terminate", reason="x").status_code == 403
    assert _post(admin, f"/instances/{iid}/admin/explode", reason="x").status_code == 404
    assert {"instance.suspend", "instance.resume", "instance.move", "instance.terminate"} <= set(
        _audit_actions(demo_engine, iid))


# ---- the REST API ------------------------------------------------------------------------------------
def _err(r, status):
    assert r.status_code == status, (r.status_code, _text(r)[:300])
    assert r.get_json()["error"]


def test_api_transfer_delegate_answer_signs(demo_engine, api):  # noqa: F811
    iid, review = _at_review(demo_engine)
    tid = review["id"]
    _err(api("market_clerk").post(f"/tasks/{tid}/transfer", json={"to": "leader", "opinion": "x"}), 403)
    _err(api("approver").post(f"/tasks/{tid}/transfer", json={"to": "leader"}), 400)
    _err(api("approver").post(f"/tasks/{tid}/transfer", json={"to": "no body!"}), 400)
    _err(api("approver").post(f"/tasks/{tid}/transfer", json={"to": "ghost", "opinion": "x"}), 404)
    r = api("approver").post(f"/tasks/{tid}/delegate", json={"to": "leader", "opinion": "请提意见"})
    assert r.status_code == 200 and r.get_json()["assignee"] == "leader"
    [sign] = api("approver").get(f"/tasks/{tid}/signs").get_json()
    assert sign["kind"] == "delegate" and sign["status"] == "active"
    _err(api("approver").post(f"/tasks/{tid}/answer", json={"opinion": "x"}), 403)
    _err(api("leader").post(f"/tasks/{tid}/answer", json={"decision": "maybe"}), 400)
    r = api("leader").post(f"/tasks/{tid}/answer", json={"opinion": "同意"})
    assert r.status_code == 200 and r.get_json()["assignee"] == "approver"
    r = api("approver").post(f"/tasks/{tid}/transfer", json={"to": "leader", "opinion": "转周领导"})
    assert r.status_code == 200 and r.get_json()["assignee"] == "leader"
    ops = api("window_clerk").get(f"/instances/{iid}/opinions").get_json()
    assert [o["kind"] for o in ops][-3:] == ["delegate", "answer", "transfer"]
    _err(api("drug_clerk").get(f"/instances/{iid}/opinions"), 403)


def test_api_add_sign_after_completes_with_the_owners_decision(demo_engine, api):  # noqa: F811
    iid, review = _at_review(demo_engine)
    tid = review["id"]
    _err(api("approver").post(f"/tasks/{tid}/add-sign", json={"users": [], "opinion": "x"}), 400)
    _err(api("approver").post(f"/tasks/{tid}/add-sign", json={"users": ["leader"], "position": "middle"}), 400)
    _err(api("approver").post(f"/tasks/{tid}/add-sign", json={"users": ["leader"], "position": "after",
                                                               "opinion": "x"}), 400)  # no decision
    r = api("approver").post(f"/tasks/{tid}/add-sign", json={"users": ["leader", "market_clerk"], "position": "after",
                                                              "decision": "approve", "opinion": "同意，请会签"})
    assert r.status_code == 200
    signs = r.get_json()["signs"]
    r = api("approver").post(f"/signs/{signs[1]['id']}/remove", json={"reason": "不需要"})
    assert r.status_code == 200 and r.get_json()["sign"]["status"] == "removed"
    _err(api("approver").post(f"/signs/{signs[1]['id']}/remove"), 409)
    _err(api("leader").post(f"/signs/{signs[0]['id']}/remove"), 403)
    r = api("leader").post(f"/tasks/{tid}/answer", json={"decision": "approve", "opinion": "同意"})
    assert r.status_code == 200 and r.get_json()["completed"] is True
    assert demo_engine.task(tid)["status"] == "completed" and demo_engine.task(tid)["decision"] == "approve"
    assert _open(demo_engine, iid, "decide")
    _err(api("leader").post(f"/tasks/{tid}/answer", json={"decision": "approve"}), 409)


def test_api_return_withdraw_supplement(demo_engine, api):  # noqa: F811
    iid, review = _at_review(demo_engine)
    demo_engine.complete(review["id"], "approver", {}, "approve", "同意")
    decide = _open(demo_engine, iid, "decide")
    # 撤回 by the sender
    _err(api("leader").post(f"/tasks/{review['id']}/withdraw"), 403)
    r = api("approver").post(f"/tasks/{review['id']}/withdraw", json={"opinion": "撤回修改"})
    assert r.status_code == 200 and r.get_json()["cancelled"] == [decide["id"]]
    review = _open(demo_engine, iid, "review")
    demo_engine.complete(review["id"], "approver", {}, "approve", "同意")
    decide = _open(demo_engine, iid, "decide")
    # 退回
    targets = api("leader").get(f"/tasks/{decide['id']}/return-targets").get_json()
    assert [t["bpmn_id"] for t in targets] == ["review", "accept"]
    _err(api("window_clerk").get(f"/tasks/{decide['id']}/return-targets"), 403)
    _err(api("leader").post(f"/tasks/{decide['id']}/return", json={"target_task_id": targets[0]["task_id"]}), 400)
    _err(api("leader").post(f"/tasks/{decide['id']}/return", json={"target_task_id": "x", "opinion": "y"}), 400)
    r = api("leader").post(f"/tasks/{decide['id']}/return", json={"target_task_id": targets[0]["task_id"],
                                                                   "opinion": "请重新审查"})
    assert r.status_code == 200 and r.get_json()["to"] == "review" and r.get_json()["assignee"] == "approver"
    _err(api("leader").post(f"/tasks/{decide['id']}/return", json={"target_task_id": targets[0]["task_id"],
                                                                    "opinion": "again"}), 409)
    # 退回补正 and the applicant's supplement through the API
    review = _open(demo_engine, iid, "review")
    _err(api("approver").post(f"/tasks/{review['id']}/return-to-applicant", json={"opinion": ""}), 400)
    r = api("approver").post(f"/tasks/{review['id']}/return-to-applicant",
                             json={"opinion": "请补充执照", "fields": ["licence"]})
    assert r.status_code == 200 and r.get_json()["status"] == "supplement"
    _err(api("approver").post(f"/instances/{iid}/supplement", json={"data": {"licence": "x"}}), 403)
    # an outsider learns nothing from a malformed body: who may is answered first
    _err(api("approver").post(f"/instances/{iid}/supplement", json={"data": []}), 403)
    _err(api("approver").post(f"/instances/{iid}/supplement", json={}), 403)
    _err(api("window_clerk").post(f"/instances/{iid}/supplement", json={"data": {}}), 400)
    r = api("window_clerk").post(f"/instances/{iid}/supplement", json={"data": {"licence": "已补交"}})
    assert r.status_code == 200 and r.get_json()["status"] == "open"
    _err(api("window_clerk").post(f"/instances/{iid}/supplement", json={"data": {"licence": "y"}}), 403)
    assert {"return", "withdraw", "return_applicant", "supplement"} <= set(_audit_actions(demo_engine, iid))


def test_api_urge_cc_to_read_forecast_phrases(demo_engine, api):  # noqa: F811
    iid, review = _at_review(demo_engine)
    tid = review["id"]
    r = api("window_clerk").post(f"/tasks/{tid}/urge", json={"note": "请尽快"})
    assert r.status_code == 200 and r.get_json()["notified"] == ["approver"]
    _err(api("window_clerk").post(f"/tasks/{tid}/urge"), 403)  # once an hour
    _err(api("drug_clerk").post(f"/tasks/{tid}/urge"), 403)
    _err(api("approver").post(f"/tasks/{tid}/cc", json={"users": []}), 400)
    _err(api("drug_clerk").post(f"/tasks/{tid}/cc", json={"users": ["leader"]}), 403)
    r = api("approver").post(f"/tasks/{tid}/cc", json={"users": ["leader"], "note": "请知悉"})
    assert r.status_code == 201
    cc_id = r.get_json()[0]["id"]
    rows = api("leader").get("/to-read?unread_only=true").get_json()
    assert [c["id"] for c in rows] == [cc_id] and rows[0]["task_name"] == "审查"
    copy = api("leader").get(f"/to-read/{cc_id}").get_json()
    assert copy["read_only"] is True and copy["id"] == tid
    _err(api("approver").post(f"/to-read/{cc_id}/read"), 404)
    r = api("leader").post(f"/to-read/{cc_id}/read")
    assert r.status_code == 200 and r.get_json()["read"] is True
    assert api("leader").get("/to-read?unread_only=true").get_json() == []
    assert api("approver").get(f"/instances/{iid}/cc").get_json()[0]["read"] is True
    fc = api("window_clerk").get(f"/instances/{iid}/forecast").get_json()
    assert [s["bpmn_id"] for s in fc["ahead"]] == ["decide"] and fc["ahead"][0]["resolved_users"]
    assert "leader" in fc["ahead"][0]["resolved_users"]
    _err(api("drug_clerk").get(f"/instances/{iid}/forecast"), 403)
    assert api("approver").get(f"/instances/{iid}/votes").get_json() == []
    # phrases
    r = api("approver").post("/phrases", json={"text": "同意"})
    assert r.status_code == 201
    pid = r.get_json()["id"]
    assert api("approver").get("/phrases").get_json() == [{"id": pid, "text": "同意"}]
    _err(api("approver").post("/phrases", json={"text": " "}), 400)
    _err(api("leader").delete(f"/phrases/{pid}"), 404)
    assert api("approver").delete(f"/phrases/{pid}").status_code == 204
    assert api("approver").get("/phrases").get_json() == []


def test_api_admin_moves(demo_engine, api):  # noqa: F811
    iid, review = _at_review(demo_engine)
    _err(api("approver").post(f"/instances/{iid}/suspend", json={"reason": "x"}), 403)
    _err(api("admin").post(f"/instances/{iid}/suspend", json={"reason": ""}), 400)
    missing = api("admin").post(f"/instances/{iid}/suspend", json={})
    assert missing.status_code == 400 and set(missing.get_json()["fields"]) == {"reason"}  # the field as sent
    r = api("admin").post(f"/instances/{iid}/suspend", json={"reason": "等待批复"})
    assert r.status_code == 200 and r.get_json()["status"] == "suspended"
    assert demo_engine.task(review["id"])["status"] == "suspended"
    _err(api("approver").post(f"/tasks/{review['id']}/transfer", json={"to": "leader", "opinion": "x"}), 403)
    _err(api("admin").post(f"/instances/{iid}/suspend", json={"reason": "again"}), 403)
    assert api("admin").post(f"/instances/{iid}/resume").get_json()["status"] == "running"
    _err(api("admin").post(f"/instances/{iid}/move", json={"to": "nope", "reason": "x"}), 400)
    _err(api("admin").post(f"/instances/{iid}/move", json={"reason": "x"}), 400)
    r = api("admin").post(f"/instances/{iid}/move", json={"to": "accept", "reason": "退回受理"})
    assert r.status_code == 200 and r.get_json()["to"] == "accept"
    r = api("admin").post(f"/instances/{iid}/terminate", json={"reason": "撤回申请"})
    assert r.status_code == 200 and r.get_json()["status"] == "terminated"
    _err(api("admin").post(f"/instances/{iid}/terminate", json={"reason": "again"}), 403)
    _err(api("admin").post("/instances/99999/suspend", json={"reason": "x"}), 404)


@pytest.mark.parametrize("path", ["/tasks/1/transfer", "/to-read", "/phrases", "/instances/1/forecast"])
def test_api_approval_endpoints_need_credentials(app, path):
    c = app.test_client()
    r = c.get(API + path) if path in ("/to-read", "/phrases", "/instances/1/forecast") else c.post(API + path, json={})
    assert r.status_code == 401
