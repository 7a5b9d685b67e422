"""先照后证 · 双告知 (processes/dual_notice), end to end through the REST API.

The registry clerk starts the notice for a registered enterprise; the engine pulls its record
from the real demo exchange, the DMN maps each business-scope item to the permit still needed
and its department, the notice (告知书) is in the data at once, the record is pushed to each
responsible department, whose clerks confirm receipt; items with no clear department go to a
claim pool that any department may claim (认领).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.exchange_data import KINDS, uscc_check
from tests.exchange_fixtures import LibraryCase, act, dataset, instance, open_tasks, the_task
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture
from tests.exchange_fixtures import pushes_by_department as pushes

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
SH = ZoneInfo("Asia/Shanghai")
CLAIM_GROUPS = ["market", "tobacco", "drug", "culture", "health", "fire", "urban"]
# what the README promises for every scope item of the demo exchange
EXPECTED = {
    "食品销售": ("食品经营许可证", "market"), "餐饮服务": ("食品经营许可证", "market"),
    "烟草制品零售": ("烟草专卖零售许可证", "tobacco"), "出版物零售": ("出版物经营许可证", "culture"),
    "药品零售": ("药品经营许可证", "drug"), "第二类医疗器械销售": ("第二类医疗器械经营备案", "drug"),
    "住宿服务": ("公共场所卫生许可证", "health"), "酒类经营": ("酒类商品零售许可证", "market"),
    "日用百货销售": (None, "none"), "文具用品零售": (None, "none"),
    "体育健康服务": (None, "claim"), "健身休闲活动": (None, "claim"),
}


def at(y, m, d, h=9):
    return datetime(y, m, d, h, tzinfo=SH)


@pytest.fixture
def dn(demo_engine, exchange, app):
    case = LibraryCase(demo_engine, exchange, app, ROOT / "processes" / "dual_notice")
    yield case
    case.close()


def enterprises(scope_has=(), scope_lacks=(), n=3):
    """Live (存续) enterprises of the demo exchange whose scope has all of ``scope_has``."""
    out = [e for e in dataset().enterprises.values() if e["status"] == "存续"
           and all(i in e["business_scope"].split("；") for i in scope_has)
           and not any(i in e["business_scope"].split("；") for i in scope_lacks)]
    assert len(out) >= n, (scope_has, len(out))
    return out[:n]


def start(dn, uscc, user="registry_clerk"):
    r = dn.api(user).post("/instances", json={"process_key": "dual_notice", "data": {"uscc": uscc},
                                              "business_key": f"SGZ-{uscc}"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["instance_id"]







def test_food_and_tobacco_are_notified_pushed_to_market_and_tobacco_and_confirmed(dn):
    dn.engine.clock.set(at(2026, 3, 2))
    for ent in enterprises(["食品销售", "烟草制品零售"], n=2):
        iid = start(dn, ent["uscc"])
        data = instance(dn, iid)["data"]
        # the notice is served at once (same day): both permits, the commitment, the wording
        needed = {p["item"]: (p["permit"], p["department"]) for p in data["permits_needed"]}
        assert needed == {"食品销售": ("食品经营许可证", "market"), "烟草制品零售": ("烟草专卖零售许可证", "tobacco")}
        assert data["no_permit_items"] == ["日用百货销售"] and data["unclear_items"] == []
        assert data["permit_departments"] == ["market", "tobacco"] and data["notice_served"] is True
        for word in ("食品经营许可证", "烟草专卖零售许可证", ent["enterprise_name"], ent["uscc"]):
            assert word in data["notice_text"]
        assert data["commitment_required"] and "不从事相关经营活动" in data["commitment"]
        # one push per department on the real exchange
        recorded = pushes(dn, ent["uscc"])
        assert sorted(recorded) == ["market", "tobacco"]
        assert "食品销售" in recorded["market"]["items"] and "烟草制品零售" in recorded["tobacco"]["items"]
        # the departments confirm; the tobacco clerk cannot act on the market's step
        market = the_task(dn, iid, "market_clerk", "confirm_market")
        tobacco = the_task(dn, iid, "tobacco_clerk", "confirm_tobacco")
        assert dn.api("tobacco_clerk").post(f"/tasks/{market['id']}/claim").status_code == 403
        view = dn.api("market_clerk").get(f"/tasks/{market['id']}").get_json()
        assert view["data"]["market_receipt_no"] == recorded["market"]["receipt_no"]
        act(dn, "market_clerk", market, "confirm", market_note="已纳入食品经营许可办理")
        assert instance(dn, iid)["status"] == "running"
        act(dn, "tobacco_clerk", tobacco, "confirm")
        done = instance(dn, iid, "registry_clerk")
        assert done["status"] == "completed" and done["data"]["outcome"] == "notified"
        assert done["data"]["notified_departments"] == ["market", "tobacco"]
        assert done["data"]["tobacco_receipt_no"] == recorded["tobacco"]["receipt_no"]
        sla = dn.engine.sla_status(iid)
        assert sla["instance"]["promised"] == 5 and sorted(t["bpmn_id"] for t in sla["tasks"]) == [
            "confirm_market", "confirm_tobacco"]
    assert dn.engine.verify_audit().ok


def test_fitness_items_go_to_the_claim_pool_and_the_claiming_department_is_recorded(dn):
    for ent, (clerk, group) in zip(enterprises(["健身休闲活动"], n=2), [("culture_clerk", "culture"),
                                                                      ("health_clerk", "health")], strict=True):
        iid = start(dn, ent["uscc"])
        data = instance(dn, iid)["data"]
        assert data["permits_needed"] == [] and data["unclear_items"] == ["体育健康服务", "健身休闲活动"]
        assert "认领" in data["notice_text"] and data["commitment"]
        assert pushes(dn, ent["uscc"]) == {}  # nobody is responsible yet
        # the claim pool: every department group sees it
        pool = the_task(dn, iid, clerk, "claim_pool")
        assert sorted(pool["candidate_groups"]) == sorted(CLAIM_GROUPS)
        for other in ("market_clerk", "fire_clerk", "urban_clerk"):
            assert [t["id"] for t in open_tasks(dn, iid, other)] == [pool["id"]]
        # a claim needs the department and an opinion
        api = dn.api(clerk)
        assert api.post(f"/tasks/{pool['id']}/claim").status_code == 200
        r = api.post(f"/tasks/{pool['id']}/complete", json={"decision": "claim", "data": {"claimed_by": group}})
        assert r.status_code == 400 and "claim_opinion" in r.get_json()["fields"]
        r = api.post(f"/tasks/{pool['id']}/complete", json={"decision": "claim", "data": {
            "claimed_by": group, "claim_opinion": "本部门负责体育经营活动及公共场所卫生监管"}})
        assert r.status_code == 200, r.get_json()
        done = instance(dn, iid)
        assert done["status"] == "completed" and done["data"]["outcome"] == "notified"
        assert done["data"]["claimed_by"] == group
        assert done["data"]["claimed_items"] == [{"item": "体育健康服务", "department": group},
                                                 {"item": "健身休闲活动", "department": group}]
        recorded = pushes(dn, ent["uscc"])
        assert list(recorded) == [group] and done["data"]["claim_receipt"]["receipt_no"] == recorded[group]["receipt_no"]
        assert done["data"]["notified_departments"] == [group]


def test_an_unclaimed_record_is_escalated_to_the_leader_group(dn):
    clock = dn.engine.clock
    clock.set(at(2026, 3, 2))  # Monday; 5 working days → due at the end of Monday 9 March
    iid = start(dn, enterprises(["体育健康服务"], n=1)[0]["uscc"])
    pool = the_task(dn, iid, "market_clerk", "claim_pool")
    clock.set(at(2026, 3, 6, 10))
    dn.engine.run_due_jobs("w")
    assert sorted(c["color"] for c in dn.engine.supervision_cards(instance_id=iid) if c["task_id"] == pool["id"]) == [
        "yellow"]
    assert not dn.engine.notices("leader")
    clock.set(at(2026, 3, 10, 10))  # nobody claimed within 5 working days
    dn.engine.run_due_jobs("w")
    step = next(t for t in dn.engine.sla_status(iid)["tasks"] if t["task_id"] == pool["id"])
    assert step["state"] == "red"
    log = [e for e in dn.engine.escalation_log(instance_id=iid) if e["task_id"] == pool["id"]]
    assert any(e["action"] == "notify" and "leader" in str(e["target"]) for e in log), log
    assert dn.engine.notices("leader")
    act(dn, "urban_clerk", pool, "claim", claimed_by="urban", claim_opinion="户外经营活动由城市管理部门监管")
    assert instance(dn, iid)["data"]["outcome"] == "notified"


def test_an_enterprise_with_only_general_items_is_told_no_permit_is_needed(dn):
    # the demo exchange holds no such enterprise: register one in its registry first
    ds = dataset()
    base = enterprises(["日用百货销售"], n=1)[0]
    first17 = "91310115MA1G4K7P2"
    code = first17 + uscc_check(first17)
    record = {**base, "uscc": code, "enterprise_name": "上海示范日用品商行有限公司",
              "business_scope": "日用百货销售；文具用品零售；办公用品销售"}
    dn.ex.app.data = dataclasses.replace(ds, enterprises={**ds.enterprises, code: record})
    iid = start(dn, code, user="applicant")  # the applicant may start it too
    done = instance(dn, iid, "applicant")
    assert done["status"] == "completed" and open_tasks(dn, iid) == []
    data = done["data"]
    assert data["outcome"] == "notified" and data["permits_needed"] == [] and data["unclear_items"] == []
    assert data["no_permit_items"] == ["日用百货销售", "文具用品零售", "办公用品销售"]
    assert "无需办理后置许可" in data["notice_text"] and data["commitment_required"] is False
    assert data["commitment"] == "" and data["notified_departments"] == []
    assert pushes(dn, code) == {}


def test_every_scope_item_of_the_exchange_maps_as_the_readme_says(dn):
    # every kind of enterprise of the demo exchange, two of each
    assert {i for _kind, scope in KINDS for i in scope.split("；")} == set(EXPECTED)
    for _kind, scope in KINDS:
        for ent in [e for e in dataset().enterprises.values()
                    if e["business_scope"] == scope and e["status"] == "存续"][:2]:
            iid = start(dn, ent["uscc"])
            data = instance(dn, iid)["data"]
            items = scope.split("；")
            assert data["scope_items"] == items
            needed = {p["item"]: (p["permit"], p["department"]) for p in data["permits_needed"]}
            for item in items:
                permit, dept = EXPECTED[item]
                if dept == "none":
                    assert item in data["no_permit_items"]
                elif dept == "claim":
                    assert item in data["unclear_items"]
                else:
                    assert needed[item] == (permit, dept)
            departments = sorted({EXPECTED[i][1] for i in items} - {"none", "claim"})
            assert data["permit_departments"] == departments
            assert sorted(pushes(dn, ent["uscc"])) == departments
            expected_tasks = sorted([f"confirm_{d}" for d in departments]
                                    + (["claim_pool"] if data["unclear_items"] else []))
            assert sorted(t["bpmn_id"] for t in open_tasks(dn, iid)) == expected_tasks
            for task in open_tasks(dn, iid):
                if task["bpmn_id"] == "claim_pool":
                    act(dn, "drug_clerk", task, "claim", claimed_by="drug", claim_opinion="认领")
                else:
                    dept = task["bpmn_id"].removeprefix("confirm_")
                    act(dn, f"{dept}_clerk", task, "confirm")
            assert instance(dn, iid)["data"]["outcome"] == "notified"


def test_an_unknown_or_cancelled_enterprise_is_refused_and_unknown_items_go_to_the_claim_pool(dn):
    ds = dataset()
    first17 = "91310115MA1G4K7Q3"
    unknown = first17 + uscc_check(first17)
    assert unknown not in ds.enterprises
    iid = start(dn, unknown)
    data = instance(dn, iid)["data"]
    assert data["outcome"] == "refused" and data["refusal_reasons"] == ["未查询到该统一社会信用代码的企业登记信息"]
    cancelled = next(e for e in ds.enterprises.values() if e["status"] == "注销")
    data = instance(dn, start(dn, cancelled["uscc"]))["data"]
    assert data["outcome"] == "refused" and "注销" in data["refusal_reasons"][0]
    # an item the table does not know goes to the claim pool, next to the known ones
    base = enterprises(["食品销售"], n=1)[0]
    record = {**base, "business_scope": "食品销售；无人机飞行表演服务"}
    dn.ex.app.data = dataclasses.replace(ds, enterprises={**ds.enterprises, base["uscc"]: record})
    data = instance(dn, start(dn, base["uscc"]))["data"]
    assert data["unclear_items"] == ["无人机飞行表演服务"] and [p["item"] for p in data["permits_needed"]] == ["食品销售"]
    # a malformed code is refused at the start form
    r = dn.api("registry_clerk").post("/instances", json={"process_key": "dual_notice", "data": {"uscc": "123"}})
    assert r.status_code in (400, 422) and "uscc" in r.get_json()["fields"]
