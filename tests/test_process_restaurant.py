"""开办餐饮店一件事 (processes/restaurant) end to end through the REST API, against the real demo
data exchange on 127.0.0.1 and the injected clock: the applicant starts the case, the window
accepts it, the market, urban-management and fire departments review in parallel, and the food
business licence is issued — or the case is refused with every reason listed."""

from __future__ import annotations

import pytest

from connectors.exchange_data import uscc_check
from tests.conftest import ROOT
from tests.exchange_fixtures import configure_exchange, dataset
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture

API = "/api/v1"
FOLDER = ROOT / "processes" / "restaurant"


# ---- the applicants, found in the demo exchange's dataset -------------------------------------
def _has_valid_business_licence(ds, code: str) -> bool:
    return any(ds.licences[n]["licence_type"] == "business" and ds.licences[n]["status"] == "有效"
               for n in ds.licences_by_holder.get(code, []))


def eligible_enterprises() -> list[dict]:
    """Enterprises that meet every entry condition: 存续, not on the 严重失信 list, a valid
    electronic business licence, a premises record."""
    ds = dataset()
    return [e for c, e in ds.enterprises.items()
            if e["status"] == "存续" and c not in ds.blacklist and _has_valid_business_licence(ds, c)
            and c in ds.leases_by_lessee]


def blacklisted_enterprises() -> list[dict]:
    ds = dataset()
    return [e for c, e in ds.enterprises.items() if c in ds.blacklist and e["status"] == "存续"]


def closed_enterprises() -> list[dict]:
    ds = dataset()
    return [e for c, e in ds.enterprises.items() if e["status"] != "存续" and c not in ds.blacklist]


def application(ent: dict, **changes) -> dict:
    """The 一表申请 of a restaurant of ``ent`` at its registered address."""
    data = {"uscc": ent["uscc"], "shop_address": ent["address"], "contact_name": ent["legal_rep"],
            "contact_phone": "13912345678", "seats": 60, "dining_area_m2": 120.5, "has_outdoor_sign": True,
            "sign_text": ent["enterprise_name"][:8] + "餐厅", "sign_size_m2": 4.5, "central_kitchen": False,
            "food_categories": "热食类、冷食类"}
    data.update(changes)
    return data


# ---- the API as the demo users -------------------------------------------------------------------
class Desk:
    """One demo user's signed-in session (cookie + CSRF header) on the REST API."""

    def __init__(self, client, name):
        self.client, self.name = client, name

    def get(self, path, **kw):
        r = self.client.get(API + path, **kw)
        return r

    def post(self, path, body=None):
        return self.client.post(API + path, json=body if body is not None else {},
                                headers={"X-CSRF-Token": self.client.csrf})


@pytest.fixture
def office(demo_engine, client_for, exchange):
    """The demo office with the restaurant process deployed and the exchange connector pointed at
    the running demo exchange; ``office.desk("market_clerk")`` → that clerk's API session."""
    configure_exchange(demo_engine, exchange)
    demo_engine.deploy_paths([FOLDER], actor="designer")

    class Office:
        engine = demo_engine
        desks: dict[str, Desk] = {}

        def desk(self, name):
            if name not in self.desks:
                self.desks[name] = Desk(client_for(name), name)
            return self.desks[name]

    yield Office()
    demo_engine.connector_pool.close()


def apply_for(office, data, business_key="CY-2026-0001"):
    r = office.desk("applicant").post("/instances", {"process_key": "restaurant", "data": data,
                                                     "business_key": business_key})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def instance(office, iid, as_user="applicant"):
    r = office.desk(as_user).get(f"/instances/{iid}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def open_task(office, iid, clerk, bpmn_id):
    """The clerk's open task ``bpmn_id`` of the case, from their own task list."""
    r = office.desk(clerk).get(f"/tasks?instance_id={iid}")
    assert r.status_code == 200, r.get_json()
    rows = [t for t in r.get_json() if t["bpmn_id"] == bpmn_id]
    assert len(rows) == 1, (clerk, bpmn_id, r.get_json())
    return rows[0]


def act(office, iid, clerk, bpmn_id, decision, data=None, opinion="同意"):
    task = open_task(office, iid, clerk, bpmn_id)
    desk = office.desk(clerk)
    assert desk.post(f"/tasks/{task['id']}/claim").status_code == 200
    r = desk.post(f"/tasks/{task['id']}/complete", {"data": data or {}, "decision": decision, "opinion": opinion})
    assert r.status_code == 200, r.get_json()
    return task


def open_bpmn_ids(office, iid) -> set[str]:
    return {t["bpmn_id"] for t in office.engine.tasks(instance_id=iid)}


def audit_actions(office, iid) -> list[str]:
    r = office.desk("monitor").get(f"/instances/{iid}/audit")
    assert r.status_code == 200
    return [e["action"] for e in r.get_json()]


def chain_intact(office) -> bool:
    r = office.desk("monitor").get("/audit/verify")
    assert r.status_code == 200
    return r.get_json()["ok"] and office.engine.verify_audit().ok


# ---- happy paths --------------------------------------------------------------------------------
def test_a_restaurant_with_a_sign_and_a_large_dining_room_gets_its_licence_from_four_departments(office):
    ent = eligible_enterprises()[3]
    iid = apply_for(office, application(ent, food_categories="热食类, 冷食类、自制饮品"))
    # the pulls ran on submission: the window's task is open with the pulled data, nothing typed twice
    accept = open_task(office, iid, "window_clerk", "accept")
    view = office.desk("window_clerk").get(f"/tasks/{accept['id']}").get_json()
    assert view["data"]["registered_address"] == ent["address"]
    assert view["data"]["enterprise_name"] == ent["enterprise_name"]
    assert view["data"]["business_licence_no"] == ent["uscc"]
    assert view["data"]["eligible"] is True and view["data"]["refusal_reasons"] == []
    pulled = {p["field"]: p for p in view["pulled"]}
    assert pulled["legal_rep_id_valid"]["value"] is True and pulled["legal_rep_name_match"]["value"] is True
    assert pulled["legal_rep_id_valid"]["operation"] == "identity" and pulled["legal_rep_id_valid"]["request_id"]
    assert "elicences" not in view["data"]  # only the business licence is kept (minimum necessary)

    act(office, iid, "window_clerk", "accept", "accept", {"accept_opinion": "材料齐全，予以受理"})
    # the DMN sends the case to the three departments at once
    assert open_bpmn_ids(office, iid) == {"market_review", "urban_review", "fire_check"}
    act(office, iid, "fire_clerk", "fire_check", "pass", {"fire_opinion": "疏散通道畅通，合格",
                                                            "fire_inspected_on": "2026-01-07"})
    act(office, iid, "urban_clerk", "urban_review", "approve", {"urban_opinion": "招牌规格符合规定"})
    assert open_bpmn_ids(office, iid) == {"market_review"}
    act(office, iid, "market_clerk", "market_review", "approve", {"market_opinion": "准予许可"})

    inst = instance(office, iid)
    assert inst["status"] == "completed"
    data = inst["data"]
    assert data["outcome"] == "issued" and data["refusal_reasons"] == [] and data["refusal_codes"] == []
    assert data["licence_items"] == ["热食类", "冷食类", "自制饮品"]
    assert data["permits"] == ["食品经营许可", "户外招牌设置", "公众聚集场所投入使用、营业前消防安全检查"]
    assert data["departments"] == ["market", "urban", "fire"] and data["promised_days"] == 14
    assert data["market_decision"] == "approve"
    assert data["signage_decision"] == "approved" and data["signage_result"]["sign_text"] == ent["enterprise_name"][:8] + "餐厅"
    assert data["fire_check_result"] == "passed" and data["fire_check"]["opinion"] == "疏散通道畅通，合格"
    assert data["licence_no"].startswith("JY") and data["licence_status"] == "valid"

    # the licence record (contract A): one, for this case, holder and items from the case
    r = office.desk("applicant").get(f"/licences?instance_id={iid}")
    assert r.status_code == 200
    [lic] = r.get_json()
    assert lic["licence_no"] == data["licence_no"] and lic["name"] == "食品经营许可证"
    assert lic["holder"] == ent["enterprise_name"] and lic["holder_code"] == ent["uscc"]
    assert lic["items"] == ["热食类", "冷食类", "自制饮品"] and lic["address"] == ent["address"]
    assert lic["status"] == "valid"
    verify = office.desk("applicant").client.get(f"{API}/verify/{lic['licence_no']}?c={lic['verify_code']}")
    assert verify.status_code == 200

    # 抄送: each department that took part gets a copy of the finished case to read
    for clerk in ("market_clerk", "urban_clerk", "fire_clerk"):
        copies = [c for c in office.desk(clerk).get("/to-read").get_json() if c["instance_id"] == iid]
        assert len(copies) == 1 and "食品经营许可证已核发" in copies[0]["note"], (clerk, copies)
    assert [c for c in office.desk("tobacco_clerk").get("/to-read").get_json() if c["instance_id"] == iid] == []

    # the audit chain: every step, in order, and intact
    actions = audit_actions(office, iid)
    assert actions[0] == "start" and actions[-1] == "end"
    assert "service" in actions and "licence.issue" in actions and actions.count("complete") == 4
    assert chain_intact(office)

    # SLA records: the case clock (promised 14 / statutory 45) and one clock per step, all stopped in time
    sla = office.engine.sla_status(iid)
    assert sla["instance"]["promised"] == 14 and sla["instance"]["statutory"] == 45
    assert sla["instance"]["status"] == "stopped"
    steps = {c["bpmn_id"]: c for c in sla["tasks"]}
    assert set(steps) == {"accept", "market_review", "urban_review", "fire_check"}
    assert (steps["market_review"]["promised"], steps["market_review"]["statutory"]) == (7, 10)
    assert (steps["fire_check"]["promised"], steps["fire_check"]["statutory"]) == (10, 10)
    assert all(c["state"] == "green" for c in steps.values())
    assert office.engine.supervision_cards(instance_id=iid) == []


def test_a_small_restaurant_without_a_sign_needs_only_the_food_licence_within_seven_working_days(office):
    for pick in (11, 40):
        small_restaurant(office, eligible_enterprises()[pick])


def small_restaurant(office, ent):
    iid = apply_for(office, application(ent, dining_area_m2=35, seats=12, has_outdoor_sign=False,
                                        food_categories="糕点类,自制饮品"))
    case = office.engine.sla_status(iid)["instance"]
    assert (case["promised"], case["statutory"]) == (14, 45)  # before the route is known
    act(office, iid, "window_clerk", "accept", "accept")
    assert open_bpmn_ids(office, iid) == {"market_review"}  # no sign, under 50 m²: no urban, no fire
    case = office.engine.sla_status(iid)["instance"]
    assert (case["promised"], case["statutory"]) == (7, 45)  # the case clock follows the route's promise
    # the market step carries the 7-working-day promise (from acceptance), the statutory 10
    market = next(c for c in office.engine.sla_status(iid)["tasks"] if c["bpmn_id"] == "market_review")
    assert (market["promised"], market["statutory"], market["unit"]) == (7, 10, "workday")
    act(office, iid, "market_clerk", "market_review", "approve")

    data = instance(office, iid)["data"]
    assert data["outcome"] == "issued" and data["promised_days"] == 7
    assert data["permits"] == ["食品经营许可"] and data["departments"] == ["market"]
    assert data["signage_decision"] == "not_required" and data["fire_check_result"] == "not_required"
    assert data["licence_items"] == ["糕点类", "自制饮品"]
    [lic] = office.engine.licences(instance_id=iid)
    assert lic["licence_no"] == data["licence_no"] and lic["holder_code"] == ent["uscc"]
    sla = office.engine.sla_status(iid)
    assert {c["bpmn_id"] for c in sla["tasks"]} == {"accept", "market_review"}
    assert sla["instance"]["status"] == "stopped" and sla["instance"]["state"] == "green"
    assert chain_intact(office)


def test_the_decision_table_picks_the_departments_from_the_sign_and_the_dining_area(office):
    for pick, area, sign, departments in [
        (60, 49.9, False, {"market_review"}),
        (61, 50, False, {"market_review", "fire_check"}),
        (62, 12, True, {"market_review", "urban_review"}),
    ]:
        ent = eligible_enterprises()[pick]
        iid = apply_for(office, application(ent, dining_area_m2=area, has_outdoor_sign=sign))
        act(office, iid, "window_clerk", "accept", "accept")
        assert open_bpmn_ids(office, iid) == departments
        assert instance(office, iid)["data"]["promised_days"] == (14 if "fire_check" in departments else 7)


# ---- refusals ----------------------------------------------------------------------------------------
def refused_at_the_gate(office, iid) -> dict:
    inst = instance(office, iid)
    assert inst["status"] == "completed" and inst["open_tasks"] == []
    assert office.engine.tasks(instance_id=iid, status="all") == []  # never reached the window
    assert office.engine.licences(instance_id=iid) == []
    data = inst["data"]
    assert data["outcome"] == "refused" and data["refusal_stage"] == "eligibility" and data["eligible"] is False
    assert len(data["refusal_reasons"]) == len(data["refusal_codes"])
    return data


def test_central_kitchens_and_untrustworthy_enterprises_are_refused_with_every_reason_listed(office):
    ent = eligible_enterprises()[5]
    data = refused_at_the_gate(office, apply_for(office, application(ent, central_kitchen=True)))
    assert data["refusal_codes"] == ["central_kitchen"]
    assert "中央厨房" in data["refusal_reasons"][0]
    ds = dataset()
    for ent in blacklisted_enterprises()[:3]:
        data = refused_at_the_gate(office, apply_for(office, application(ent), business_key=ent["uscc"]))
        assert data["refusal_codes"] == ["serious_untrustworthy"]
        assert "严重失信" in data["refusal_reasons"][0]
        assert ds.blacklist[ent["uscc"]]["reason"] in data["refusal_reasons"][0]
    # every failing condition at once, in the documented order
    ent = blacklisted_enterprises()[4]
    data = refused_at_the_gate(office, apply_for(office, application(
        ent, shop_address="上海市黄浦区不存在路1号", central_kitchen=True)))
    assert data["refusal_codes"] == ["serious_untrustworthy", "address_mismatch", "central_kitchen"]
    assert len(data["refusal_reasons"]) == 3


def test_an_address_mismatch_and_a_deregistered_or_unknown_enterprise_are_refused(office):
    for ent in eligible_enterprises()[20:22]:
        other = ent["address"].replace("号", "号附", 1)
        data = refused_at_the_gate(office, apply_for(office, application(ent, shop_address=other)))
        assert data["refusal_codes"] == ["address_mismatch"]
        assert ent["address"] in data["refusal_reasons"][0]
    # whitespace is not a difference
    ent = eligible_enterprises()[22]
    iid = apply_for(office, application(ent, shop_address=" " + ent["address"].replace("号", "号 ", 1)))
    assert open_bpmn_ids(office, iid) == {"accept"}
    # a deregistered enterprise
    ent = closed_enterprises()[0]
    data = refused_at_the_gate(office, apply_for(office, application(ent)))
    assert data["refusal_codes"] == ["not_in_operation"]
    assert "注销" in data["refusal_reasons"][0]
    # a well-formed code that no registry knows: no e-licence, no premises
    body = "91310115MA1UNKNWX"
    data = refused_at_the_gate(office, apply_for(office, application(
        {**ent, "uscc": body + uscc_check(body)})))
    assert data["refusal_codes"] == ["no_business_licence", "no_premises"]


def test_the_window_may_refuse_to_accept_and_departments_may_refuse(office):
    ent = eligible_enterprises()[30]
    iid = apply_for(office, application(ent))
    act(office, iid, "window_clerk", "accept", "reject", {"accept_opinion": "申请人撤回申请"}, opinion="不予受理")
    data = instance(office, iid)["data"]
    assert data["outcome"] == "refused" and data["refusal_stage"] == "acceptance"
    assert data["refusal_codes"] == ["not_accepted"] and data["refusal_reasons"] == ["综合窗口不予受理：申请人撤回申请"]
    assert office.engine.licences(instance_id=iid) == []
    # a refused sign does not block the licence; a refused food licence or fire check refuses the case
    ents = eligible_enterprises()
    # the urban department refuses the sign: the food licence is still issued
    iid = apply_for(office, application(ents[70], dining_area_m2=30))
    act(office, iid, "window_clerk", "accept", "accept")
    act(office, iid, "urban_clerk", "urban_review", "reject", {"urban_opinion": "招牌超出建筑立面范围"})
    act(office, iid, "market_clerk", "market_review", "approve")
    data = instance(office, iid)["data"]
    assert data["outcome"] == "issued" and data["signage_decision"] == "refused"
    assert data["signage_result"]["opinion"] == "招牌超出建筑立面范围"
    assert len(office.engine.licences(instance_id=iid)) == 1
    # the market department refuses: the case is refused with its opinion, whatever the others said
    iid = apply_for(office, application(ents[71]))
    act(office, iid, "window_clerk", "accept", "accept")
    act(office, iid, "market_clerk", "market_review", "reject", {"market_opinion": "加工区布局不符合要求"},
        opinion="不予许可")
    act(office, iid, "urban_clerk", "urban_review", "approve")
    act(office, iid, "fire_clerk", "fire_check", "pass")
    inst = instance(office, iid)
    assert inst["status"] == "completed"
    data = inst["data"]
    assert data["outcome"] == "refused" and data["refusal_stage"] == "review"
    assert data["refusal_codes"] == ["food_licence_refused"]
    assert data["refusal_reasons"] == ["市场监管部门不予食品经营许可：加工区布局不符合要求"]
    assert data["signage_decision"] == "approved" and data["fire_check_result"] == "passed"
    assert office.engine.licences(instance_id=iid) == []
    # the fire check fails: the dining room may not open, the case is refused
    iid = apply_for(office, application(ents[72], has_outdoor_sign=False))
    act(office, iid, "window_clerk", "accept", "accept")
    act(office, iid, "fire_clerk", "fire_check", "fail", {"fire_opinion": "安全出口数量不足"})
    act(office, iid, "market_clerk", "market_review", "approve")
    data = instance(office, iid)["data"]
    assert data["outcome"] == "refused" and data["refusal_codes"] == ["fire_check_failed"]
    assert data["refusal_reasons"] == ["公众聚集场所投入使用、营业前消防安全检查不合格：安全出口数量不足"]
    assert office.engine.licences(instance_id=iid) == []
    assert chain_intact(office)


# ---- 补正 and time limits --------------------------------------------------------------------------
def local_day(iso: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(iso).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()


def test_the_supplement_loop_stops_the_clock_until_the_applicant_answers(office, clock):
    ent = eligible_enterprises()[80]
    iid = apply_for(office, application(ent, sign_size_m2=None))  # 2026-01-05 (Monday)
    assert instance(office, iid, "window_clerk")["data"]["sign_info_missing"] is True
    accept = open_task(office, iid, "window_clerk", "accept")
    before = office.engine.sla_status(iid)
    assert local_day(before["tasks"][0]["due_at"]) == "2026-01-06"  # promised 1 working day
    window = office.desk("window_clerk")
    r = window.post(f"/tasks/{accept['id']}/return-to-applicant", {"opinion": "请补充户外招牌面积",
                                                                   "fields": ["sign_size_m2"]})
    assert r.status_code == 200, r.get_json()
    assert instance(office, iid)["status"] == "running"
    clock.advance(days=2)  # Wednesday: two working days pass while the applicant prepares the supplement
    assert office.engine.run_due_jobs("w") == {}  # no warning fires while the clock stands still
    r = office.desk("applicant").post(f"/instances/{iid}/supplement", {"data": {"sign_size_m2": 6.0}})
    assert r.status_code == 200, r.get_json()
    after = office.engine.sla_status(iid)
    [pause] = after["pauses"]
    assert pause["reason"].startswith("补正") and pause["ended_at"] is not None
    # the days of the supplement are not counted: both deadlines move by two working days
    assert local_day(after["tasks"][0]["due_at"]) == "2026-01-08"
    assert (local_day(after["instance"]["due_at"]) > local_day(before["instance"]["due_at"]))
    act(office, iid, "window_clerk", "accept", "accept")
    for clerk, bpmn_id, decision in [("market_clerk", "market_review", "approve"),
                                     ("urban_clerk", "urban_review", "approve"),
                                     ("fire_clerk", "fire_check", "pass")]:
        act(office, iid, clerk, bpmn_id, decision)
    data = instance(office, iid)["data"]
    assert data["outcome"] == "issued" and data["signage_result"]["sign_size_m2"] == 6.0
    actions = audit_actions(office, iid)
    assert actions.index("return_applicant") < actions.index("supplement") < actions.index("licence.issue")
    assert office.engine.supervision_cards(instance_id=iid) == []
    assert chain_intact(office)


def test_a_late_fire_department_is_warned_then_overdue_then_raised_to_the_leader(office, clock):
    ent = eligible_enterprises()[90]
    iid = apply_for(office, application(ent))
    act(office, iid, "window_clerk", "accept", "accept")
    act(office, iid, "market_clerk", "market_review", "approve")
    act(office, iid, "urban_clerk", "urban_review", "approve")
    fire = open_task(office, iid, "fire_clerk", "fire_check")
    assert office.desk("fire_clerk").post(f"/tasks/{fire['id']}/claim").status_code == 200

    def fire_cards():
        return [c["color"] for c in sorted(office.engine.supervision_cards(instance_id=iid), key=lambda c: c["id"])
                if c["bpmn_id"] == "fire_check"]

    def fire_log():
        return [(e["point"], e["action"], e["outcome"]) for e in sorted(
            office.engine.escalation_log(instance_id=iid), key=lambda e: e["id"]) if e["task_id"] == fire["id"]]

    def state():
        return next(c for c in office.engine.sla_status(iid)["tasks"] if c["bpmn_id"] == "fire_check")["state"]

    # promised 10 working days from 2026-01-05; yellow after 8
    while not fire_cards():
        clock.advance(days=1)
        office.engine.run_due_jobs("w")
    assert fire_cards() == ["yellow"] and state() == "yellow"
    assert fire_log() == [("yellow", "notify", "done")]
    assert any(n["task_id"] == fire["id"] for n in office.engine.notices("fire_clerk"))
    while len(fire_cards()) < 2:
        clock.advance(days=1)
        office.engine.run_due_jobs("w")
    assert fire_cards() == ["yellow", "red"] and state() == "red"
    assert fire_log()[1:] == [("due", "remind", "done"), ("due", "card", "done")]
    assert any(n["kind"] == "remind" and n["task_id"] == fire["id"] for n in office.engine.notices("fire_clerk"))
    while len(fire_cards()) < 3:
        clock.advance(days=1)
        office.engine.run_due_jobs("w")
    assert fire_cards() == ["yellow", "red", "red"]
    assert fire_log()[3:] == [("due+2wd", "raise", "done")]
    assert any(n["kind"] == "raise" and n["task_id"] == fire["id"] for n in office.engine.notices("leader"))

    # the inspection is finally done: the licence is issued, the step's record stays overdue
    act(office, iid, "fire_clerk", "fire_check", "pass")
    assert instance(office, iid)["data"]["outcome"] == "issued"
    step = next(c for c in office.engine.sla_status(iid)["tasks"] if c["bpmn_id"] == "fire_check")
    assert step["status"] == "stopped" and step["state"] == "red"
    assert office.engine.run_due_jobs("w") == {}  # nothing more fires for a finished step
    assert chain_intact(office)


# ---- the start form ------------------------------------------------------------------------------------
def test_bad_start_data_is_refused_with_the_fields_and_writes_nothing(office):
    ent = eligible_enterprises()[0]
    desk = office.desk("applicant")
    bad = application(ent, seats="many", dining_area_m2="big", food_categories="火锅", contact_phone="12",
                      uscc="not-a-code")
    del bad["has_outdoor_sign"]
    r = desk.post("/instances", {"process_key": "restaurant", "data": bad})
    assert r.status_code in (400, 422)
    body = r.get_json()
    assert body["error"] == "validation"
    assert {"seats", "dining_area_m2", "food_categories", "contact_phone", "uscc", "has_outdoor_sign"} <= set(
        body["fields"])
    assert desk.get("/instances?process_key=restaurant").get_json() == []
    # and the same data, corrected, is accepted
    assert apply_for(office, application(ent))
