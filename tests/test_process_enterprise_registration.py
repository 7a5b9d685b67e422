"""多证合一 企业设立登记 (processes/enterprise_registration), end to end through the REST API.

The applicant (demo user ``applicant``) applies; the engine checks the legal representative's
identity and credit on the real demo exchange; the registry clerk approves, returns for 补正 or
refuses; on approval the engine assigns a 统一社会信用代码, issues the 营业执照 and pushes the
record to tax, social security, statistics and the housing fund, whose clerks confirm receipt.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.exchange_data import USCC_ALPHABET, uscc_check, valid_uscc
from tests.exchange_fixtures import LibraryCase, act, dataset, instance, open_tasks, the_task
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture
from tests.exchange_fixtures import pushes_of as pushes

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
SH = ZoneInfo("Asia/Shanghai")
DEPARTMENTS = ["tax", "social", "stats", "fund"]
GB11714 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def at(y, m, d, h=9):
    return datetime(y, m, d, h, tzinfo=SH)


# ---- fixtures and helpers ------------------------------------------------------------------
@pytest.fixture
def reg(demo_engine, exchange, app):
    """The demo engine with the registration process deployed and its exchange connector on the
    real demo exchange; ``reg.api(user)`` is a REST caller with that user's bearer token."""
    case = LibraryCase(demo_engine, exchange, app, ROOT / "processes" / "enterprise_registration")
    yield case
    case.close()


def good_people(n=3):
    ds = dataset()
    return [p for p in ds.persons.values() if p["id_number"] not in ds.blacklist][:n]


def blacklisted_people(n=3):
    ds = dataset()
    return [ds.persons[c] for c in ds.blacklist if c in ds.persons][:n]


def application(person, index=0, **over):
    data = {"enterprise_name": f"上海示范{index}号科技有限公司", "entity_type": "有限责任公司",
            "registered_capital_wan": 100.0, "address": f"上海市浦东新区世纪大道{100 + index}号",
            "business_scope": "食品销售；日用百货销售；信息咨询服务（不含许可类信息咨询服务）",
            "legal_rep": person["name"], "legal_rep_id": person["id_number"], "contact_phone": "13800138000",
            "region": "310115"}
    data.update(over)
    return data


def start(reg, data, business_key="DJ-2026-0001"):
    r = reg.api("applicant").post("/instances", json={"process_key": "enterprise_registration", "data": data,
                                                       "business_key": business_key})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["instance_id"]







def gb11714_ok(org: str) -> bool:
    weights = [3, 7, 9, 10, 5, 8, 4, 2]
    c = 11 - sum(GB11714.index(ch) * w for ch, w in zip(org[:8], weights, strict=True)) % 11
    return org[8] == ("X" if c == 10 else "0" if c == 11 else str(c))


def confirm_all(reg, iid, departments=DEPARTMENTS):
    for dept in departments:
        task = the_task(reg, iid, f"{dept}_clerk", f"confirm_{dept}")
        view = reg.api(f"{dept}_clerk").get(f"/tasks/{task['id']}").get_json()
        # the clerk sees the receipt the exchange gave for this department's push
        [push] = [p for p in pushes(reg, view["data"]["uscc"]) if p["department"] == dept]
        assert view["data"][f"{dept}_receipt_no"] == push["receipt_no"]
        act(reg, f"{dept}_clerk", task, "confirm", **{f"{dept}_note": "已接收"})


# ---- the happy path ------------------------------------------------------------------------
def test_a_registration_is_approved_coded_licensed_pushed_to_four_departments_and_confirmed(reg):
    reg.engine.clock.set(at(2026, 3, 2))  # a Monday
    for index, person in enumerate(good_people(2)):
        data = application(person, index, region=["310115", "330106"][index])
        iid = start(reg, data, business_key=f"DJ-2026-{index:04d}")
        # the legal representative was checked on the exchange before the clerk sees the case
        review = the_task(reg, iid, "registry_clerk", "registry_review")
        shown = instance(reg, iid)["data"]
        assert shown["eligible"] is True and shown["rep_identity_verified"] and shown["rep_credit_ok"]
        assert "rep_blacklisted" not in shown and "rep_name_match" not in shown  # raw answers not kept
        assert [p["operation"] for p in reversed(reg.engine.pull_log(iid))] == ["identity", "credit"]
        act(reg, "registry_clerk", review, "approve", review_opinion="材料齐全，准予设立登记")

        final = instance(reg, iid)["data"]
        uscc = final["uscc"]
        assert valid_uscc(uscc) and uscc[:2] == "91" and uscc[2:8] == data["region"]
        assert uscc[8:10] == "MA" and gb11714_ok(uscc[8:17]) and final["organisation_code"] == uscc[8:17]
        assert all(ch in USCC_ALPHABET for ch in uscc) and uscc_check(uscc[:17]) == uscc[17]
        assert final["scope_items"] == ["食品销售", "日用百货销售", "信息咨询服务（不含许可类信息咨询服务）"]

        # the business licence (contract A): 营业执照, held by the new code, 长期
        r = reg.api("registry_clerk").get(f"/licences?instance_id={iid}")
        assert r.status_code == 200, r.get_json()
        [lic] = r.get_json()
        assert lic["name"] == "营业执照" and lic["holder_code"] == uscc and lic["holder"] == data["enterprise_name"]
        assert lic["licence_no"].startswith("YZ") and lic["status"] == "valid" and lic["valid_to"] in (None, "", "长期")
        assert final["licence_no"] == lic["licence_no"]

        # one push per department on the real exchange, each with its own receipt in the data
        recorded = {p["department"]: p for p in pushes(reg, uscc)}
        assert sorted(recorded) == sorted(DEPARTMENTS)
        for dept in DEPARTMENTS:
            assert recorded[dept]["enterprise_name"] == data["enterprise_name"] and recorded[dept]["repeats"] == 0
        assert len({recorded[d]["receipt_no"] for d in DEPARTMENTS}) == 4

        # each department sees only its own confirmation task, and confirms
        assert [t["bpmn_id"] for t in reg.api("tax_clerk").get("/tasks").get_json()
                if t["instance_id"] == iid] == ["confirm_tax"]
        assert reg.api("stats_clerk").get(f"/tasks/{the_task(reg, iid, 'tax_clerk', 'confirm_tax')['id']}"
                                          ).status_code == 403
        reg.engine.clock.advance(hours=2)
        confirm_all(reg, iid)
        done = instance(reg, iid, "applicant")
        assert done["status"] == "completed" and done["data"]["outcome"] == "registered"
        assert done["data"]["push_receipts"] == {d: {"receipt_no": recorded[d]["receipt_no"],
                                                      "received_at": recorded[d]["received_at"]} for d in DEPARTMENTS}
        assert all(done["data"][f"{d}_receipt_no"] == recorded[d]["receipt_no"] for d in DEPARTMENTS)

        sla = reg.engine.sla_status(iid)
        assert sla["instance"]["statutory"] == 6 and sla["instance"]["promised"] == 4
        steps = {t["bpmn_id"]: t for t in sla["tasks"]}
        assert sorted(steps) == sorted(["registry_review", *[f"confirm_{d}" for d in DEPARTMENTS]])
        assert all(t["state"] == "green" and t["status"] == "stopped" for t in sla["tasks"])
        assert steps["registry_review"]["statutory"] == 3 and steps["registry_review"]["promised"] == 1
        assert steps["confirm_tax"]["promised"] == 3
        assert reg.engine.supervision_cards(instance_id=iid) == []

    monitor = reg.api("monitor").get("/audit/verify").get_json()
    assert monitor["ok"] is True and monitor["events"] > 0


def test_the_start_form_refuses_a_malformed_application_before_anything_is_written(reg):
    person = good_people(1)[0]
    for field, value in [("legal_rep_id", person["id_number"][:17]), ("region", "999999"),
                         ("entity_type", "外星公司"), ("contact_phone", "12345")]:
        r = reg.api("applicant").post("/instances", json={"process_key": "enterprise_registration",
                                                          "data": application(person, **{field: value})})
        assert r.status_code in (400, 422), (field, r.get_json())
        assert field in r.get_json().get("fields", {}), r.get_json()
    assert reg.api("admin").get("/instances?process_key=enterprise_registration").get_json() == []


# ---- refusal at the eligibility gate -------------------------------------------------------
def test_a_seriously_untrustworthy_legal_representative_is_refused_with_the_reason(reg):
    ds = dataset()
    for index, person in enumerate(blacklisted_people(3)):
        iid = start(reg, application(person, index), business_key=f"DJ-R-{index}")
        shown = instance(reg, iid, "applicant")
        assert shown["status"] == "completed" and open_tasks(reg, iid) == []
        data = shown["data"]
        assert data["outcome"] == "refused" and data["eligible"] is False and "uscc" not in data
        assert data["refusal_codes"] == ["blacklisted"]
        [reason] = data["refusal_reasons"]
        assert "严重失信" in reason and ds.blacklist[person["id_number"]]["reason"] in reason
        assert reg.api("admin").get(f"/licences?instance_id={iid}").get_json() == []
    # a name that does not match the ID number is refused too
    person = good_people(1)[0]
    iid = start(reg, application(person, 9, legal_rep=person["name"] + "某"))
    data = instance(reg, iid)["data"]
    assert data["outcome"] == "refused" and data["refusal_codes"] == ["name_mismatch"]
    assert reg.engine.verify_audit().ok


# ---- 补正 ----------------------------------------------------------------------------------
def test_a_return_for_supplement_pauses_the_clock_and_the_corrected_scope_is_registered(reg):
    clock = reg.engine.clock
    clock.set(at(2026, 3, 2))  # Monday
    person = good_people(2)[1]
    iid = start(reg, application(person, 3, business_scope="卖东西"))
    review = the_task(reg, iid, "registry_clerk", "registry_review")
    assert reg.api("registry_clerk").post(f"/tasks/{review['id']}/claim").status_code == 200
    r = reg.api("registry_clerk").post(f"/tasks/{review['id']}/return-to-applicant", json={
        "opinion": "经营范围不规范，请按经营范围规范表述目录填写", "fields": ["business_scope"]})
    assert r.status_code == 200, r.get_json()
    sla = reg.engine.sla_status(iid)
    assert sla["instance"]["status"] == "paused"
    assert open_tasks(reg, iid, "registry_clerk") == []
    due_before = sla["instance"]["due_at"]

    clock.set(at(2026, 3, 5, 15))  # the supplement arrives on Thursday
    r = reg.api("applicant").post(f"/instances/{iid}/supplement",
                                  json={"data": {"business_scope": "食品销售；日用百货销售"}})
    assert r.status_code == 200, r.get_json()
    sla = reg.engine.sla_status(iid)
    assert sla["instance"]["status"] == "running" and sla["instance"]["paused_units"] == 3
    assert sla["instance"]["due_at"] > due_before
    assert [(p["reason"][:2], p["ended_at"] is not None) for p in sla["pauses"]] == [("补正", True)]

    again = the_task(reg, iid, "registry_clerk", "registry_review")
    act(reg, "registry_clerk", again, "approve")
    data = instance(reg, iid)["data"]
    assert data["scope_items"] == ["食品销售", "日用百货销售"]
    [lic] = reg.api("admin").get(f"/licences?instance_id={iid}").get_json()
    assert lic["holder_code"] == data["uscc"]
    confirm_all(reg, iid)
    assert instance(reg, iid)["data"]["outcome"] == "registered"


def test_the_registry_may_refuse_with_its_own_reason(reg):
    iid = start(reg, application(good_people(1)[0], 4))
    act(reg, "registry_clerk", the_task(reg, iid, "registry_clerk", "registry_review"), "reject",
        review_opinion="企业名称与已登记企业名称相同")
    data = instance(reg, iid)["data"]
    assert data["outcome"] == "rejected" and data["refusal_reasons"] == ["企业名称与已登记企业名称相同"]
    assert "uscc" not in data and open_tasks(reg, iid) == []
    assert reg.api("admin").get(f"/licences?instance_id={iid}").get_json() == []
    assert not [p for p in pushes(reg, "") if p["enterprise_name"] == data["enterprise_name"]]


# ---- a department that runs late -----------------------------------------------------------
def test_a_late_department_confirmation_goes_yellow_then_red_and_is_escalated_to_the_leader(reg):
    clock = reg.engine.clock
    clock.set(at(2026, 3, 2))  # Monday; the confirmations are due at the end of Thursday 5 March
    iid = start(reg, application(good_people(1)[0], 5))
    act(reg, "registry_clerk", the_task(reg, iid, "registry_clerk", "registry_review"), "approve")
    confirm_all(reg, iid, ["tax", "social", "stats"])
    fund = the_task(reg, iid, "fund_clerk", "confirm_fund")

    def fund_clock():
        return next(t for t in reg.engine.sla_status(iid)["tasks"] if t["task_id"] == fund["id"])

    def fund_cards():
        return sorted(c["color"] for c in reg.engine.supervision_cards(instance_id=iid) if c["task_id"] == fund["id"])

    assert fund_clock()["state"] == "green"
    clock.set(at(2026, 3, 5, 10))  # past the yellow point (80 % of 3 working days)
    reg.engine.run_due_jobs("w")
    assert fund_clock()["state"] == "yellow" and fund_cards() == ["yellow"]
    assert any(n["kind"] == "notify" for n in reg.engine.notices("fund_clerk"))

    clock.set(at(2026, 3, 6, 10))  # the deadline has passed: red card, the clerk is reminded
    reg.engine.run_due_jobs("w")
    assert fund_clock()["state"] == "red" and fund_cards() == ["red", "yellow"]
    assert any(n["kind"] == "remind" for n in reg.engine.notices("fund_clerk"))
    leader_before = len(reg.engine.notices("leader"))

    clock.set(at(2026, 3, 9, 10))  # one working day later: escalated to the leader group
    reg.engine.run_due_jobs("w")
    log = [e for e in reg.engine.escalation_log(instance_id=iid) if e["task_id"] == fund["id"]]
    assert any(e["action"] == "notify" and "leader" in str(e.get("target")) for e in log), log
    assert len(reg.engine.notices("leader")) > leader_before
    # the other departments confirmed in time: no card on their steps
    assert {c["task_id"] for c in reg.engine.supervision_cards(instance_id=iid) if c["task_id"]} == {fund["id"]}
    act(reg, "fund_clerk", fund, "confirm")
    assert instance(reg, iid)["data"]["outcome"] == "registered"
    assert reg.engine.verify_audit().ok


# ---- the exchange fails during the pushes --------------------------------------------------
def test_an_exchange_outage_during_the_pushes_waits_retries_and_never_pushes_twice(reg):
    clock = reg.engine.clock
    iid = start(reg, application(good_people(1)[0], 6))
    review = the_task(reg, iid, "registry_clerk", "registry_review")
    reg.ex.stop()  # the exchange goes down after the checks, before the pushes
    act(reg, "registry_clerk", review, "approve")
    data = instance(reg, iid)["data"]
    uscc = data["uscc"]
    # the licence is issued inside the engine; the pushes wait, nothing reaches a department inbox
    assert len(reg.api("admin").get(f"/licences?instance_id={iid}").get_json()) == 1
    assert open_tasks(reg, iid) == [] and instance(reg, iid)["status"] == "running"
    assert not any(f"{d}_receipt_no" in data for d in DEPARTMENTS)
    clock.advance(hours=1)
    reg.engine.run_due_jobs("w")  # retried while still down
    # back up, but answering garbage: the exchange records each push, the engine cannot read the answer
    reg.ex.start()
    reg.ex.control(mode="wrong_schema")
    for _ in range(10):
        clock.advance(hours=1)
        reg.engine.run_due_jobs("w")
        if len(reg.engine.incidents(instance_id=iid)) == 4:
            break
    incidents = reg.engine.incidents(instance_id=iid)
    assert sorted(i["element_id"] for i in incidents) == sorted(f"push_{d}" for d in DEPARTMENTS)
    assert all(i["kind"] == "job:service" for i in incidents)
    assert open_tasks(reg, iid) == []
    assert sorted(p["department"] for p in pushes(reg, uscc)) == sorted(DEPARTMENTS)

    # recovery: an administrator retries each incident; the receipts are the exchange's first ones
    reg.ex.control(mode="ok")
    for incident in incidents:
        assert reg.engine.retry_incident(incident["id"], "admin")["outcome"] == "done"
    assert reg.engine.incidents(instance_id=iid) == []
    recorded = {p["department"]: p for p in pushes(reg, uscc)}
    assert sorted(recorded) == sorted(DEPARTMENTS)  # one record per department: no duplicate push
    for dept in DEPARTMENTS:
        assert recorded[dept]["repeats"] >= 1
    assert len(reg.api("admin").get(f"/licences?instance_id={iid}").get_json()) == 1  # issued once
    confirm_all(reg, iid)
    assert instance(reg, iid)["data"]["outcome"] == "registered"
    assert any(e["action"] == "incident.retry" for e in reg.engine.trail(iid))
    assert reg.engine.verify_audit().ok
