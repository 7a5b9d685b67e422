"""先照后证 · 双告知 (processes/dual_notice): the README's rules for any valid enterprise.

Every rule of scope_permit.dmn, every business scope of the demo exchange (enterprises the other
test file does not use, from every region), several items at once, repeated items, known and
unknown items mixed, unusual separators, long names, every claiming department, and every
refusal, each end to end through the REST API on the real demo exchange.

One engine and one exchange serve the whole module (per database backend); every case works on
its own enterprise, so the cases do not see each other's pushes.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cli.demo import seed
from connectors.exchange_data import KINDS, REGIONS, org_code_check, uscc_check
from connectors.http import reset_breakers
from engine.api import Engine
from engine.clock import ManualClock
from tests.conftest import BACKENDS, _pg_database
from tests.exchange_fixtures import (
    LibraryCase,
    RunningExchange,
    act,
    dataset,
    instance,
    open_tasks,
    the_task,
)
from tests.exchange_fixtures import pushes_by_department as pushes
from web import create_app

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
CLAIM_GROUPS = ["market", "tobacco", "drug", "culture", "health", "fire", "urban"]
DEPARTMENTS = ["market", "tobacco", "culture", "drug", "health"]
COMMITMENT = "本单位承诺：在取得上述许可（或完成备案）前，不从事相关经营活动；违反承诺的，依法承担法律责任，并记入信用记录。"
ALL_GENERAL = "你单位登记的经营范围均为一般经营项目，无需办理后置许可。"
FOOD = ("食品经营许可证", "market", "市场监督管理局", "《食品安全法》第三十五条")
# scope item → (permit, department, department name, basis) as the README's table says
RULES = {
    "烟草制品零售": ("烟草专卖零售许可证", "tobacco", "烟草专卖局", "《烟草专卖法》第十六条"),
    "卷烟、雪茄烟零售（烟草制品）": ("烟草专卖零售许可证", "tobacco", "烟草专卖局", "《烟草专卖法》第十六条"),
    "出版物零售": ("出版物经营许可证", "culture", "文化和旅游局（出版）", "《出版管理条例》第三十五条"),
    "出版物批发": ("出版物经营许可证", "culture", "文化和旅游局（出版）", "《出版管理条例》第三十五条"),
    "第二类医疗器械销售": ("第二类医疗器械经营备案", "drug", "药品监督管理部门", "《医疗器械监督管理条例》第四十一条"),
    "第三类医疗器械经营": ("医疗器械经营许可证", "drug", "药品监督管理部门", "《医疗器械监督管理条例》第四十二条"),
    "药品零售": ("药品经营许可证", "drug", "药品监督管理部门", "《药品管理法》第五十一条"),
    "药品批发": ("药品经营许可证", "drug", "药品监督管理部门", "《药品管理法》第五十一条"),
    "住宿服务": ("公共场所卫生许可证", "health", "卫生健康委", "《公共场所卫生管理条例》第八条"),
    "酒类经营": ("酒类商品零售许可证", "market", "市场监督管理局", "《上海市酒类商品产销管理条例》（as reported）"),
    "食品销售（仅销售预包装食品）": ("仅销售预包装食品备案", "market", "市场监督管理局", "《食品安全法》第三十五条"),
    "餐饮服务": FOOD,
    "餐饮服务（不产生油烟、异味、废气）": FOOD,
    "食品销售": FOOD,
    "保健食品销售": FOOD,
}
GENERAL = ["日用百货销售", "文具用品零售", "文具用品批发", "办公用品销售", "服装服饰零售", "针纺织品销售",
           "五金产品零售", "家用电器销售", "化妆品零售", "礼品花卉销售", "玩具销售", "体育用品及器材零售",
           "日用品销售", "鞋帽零售", "箱包销售", "眼镜销售（不含隐形眼镜）", "工艺美术品及收藏品零售（象牙及其制品除外）",
           "计算机软硬件及辅助设备零售", "信息咨询服务（不含许可类信息咨询服务）",
           "技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广", "企业管理咨询", "市场营销策划",
           "会议及展览服务", "组织文化艺术交流活动", "广告设计、代理", "图文设计制作"]
UNCLEAR = ["体育健康服务", "健身休闲活动", "无人机飞行表演服务", "宠物美容服务", "游泳馆经营"]


def at(y, m, d, h=9):
    return datetime(y, m, d, h, tzinfo=SH)


# ---- one engine and one exchange per backend -----------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def dn(request, tmp_path_factory):
    pg = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('dual_notice') / 'tongban.sqlite'}"
    else:
        url, admin, name = _pg_database()
        pg = (admin, name)
    eng = Engine(url, clock=ManualClock(), script_timeout=1.0)
    eng.upgrade()
    seed(eng, library=False)
    app = create_app(eng, {"TESTING": True, "SECRET_KEY": "test-secret"})
    reset_breakers()
    ex = RunningExchange()
    ex.app.data = dataclasses.replace(dataset(), enterprises=dict(dataset().enterprises))
    case = LibraryCase(eng, ex, app, ROOT / "processes" / "dual_notice")
    yield case
    case.close()
    ex.stop()
    reset_breakers()
    eng.db.dispose()
    if pg:
        from sqlalchemy import text

        with pg[0].connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{pg[1]}" WITH (FORCE)'))
        pg[0].dispose()


_serial = itertools.count(1)


def new_code(region="310115") -> str:
    """A fresh, valid 统一社会信用代码 that the demo exchange does not hold."""
    while True:
        body = f"MA{next(_serial):06d}"
        first17 = "91" + region + body + org_code_check(body)
        code = first17 + uscc_check(first17)
        if code not in dataset().enterprises:
            return code


def register(dn, scope, *, name=None, status="存续", region="310115") -> dict:
    """Put one enterprise into the exchange's registry and return its record."""
    code = new_code(region)
    record = {**dataset().enterprises[next(iter(dataset().enterprises))], "uscc": code,
              "enterprise_name": name or f"{REGIONS[region][:2]}测试{code[-6:]}有限公司",
              "business_scope": scope, "status": status,
              "registration_authority": f"{REGIONS[region]}市场监督管理局"}
    dn.ex.app.data.enterprises[code] = record
    return record


def start(dn, uscc, user="registry_clerk"):
    r = dn.api(user).post("/instances", json={"process_key": "dual_notice", "data": {"uscc": uscc},
                                              "business_key": f"SGZ-{uscc}-{next(_serial)}"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["instance_id"]







def expected_of(items):
    """What the README promises for a list of distinct items."""
    needed, free, unclear = [], [], []
    for item in items:
        if item in RULES:
            needed.append((item, *RULES[item]))
        elif item in GENERAL:
            free.append(item)
        else:
            unclear.append(item)
    return needed, free, unclear


def finish_all(dn, iid, claimer="drug"):
    """Confirm every open confirmation and claim the pool (as ``claimer``)."""
    for task in open_tasks(dn, iid):
        if task["bpmn_id"] == "claim_pool":
            act(dn, f"{claimer}_clerk", task, "claim", claimed_by=claimer, claim_opinion="本部门负责该经营项目的监管")
        else:
            dept = task["bpmn_id"].removeprefix("confirm_")
            act(dn, f"{dept}_clerk", task, "confirm", **{f"{dept}_note": "已接收"})


def check_notice(dn, iid, ent, items, claimer="drug"):
    """The whole case for a live enterprise whose distinct scope items are ``items``."""
    data = instance(dn, iid)["data"]
    needed, free, unclear = expected_of(items)
    departments = sorted({n[2] for n in needed})
    assert data["scope_items"] == items
    assert [(p["item"], p["permit"], p["department"], p["department_name"], p["basis"])
            for p in data["permits_needed"]] == needed
    assert data["no_permit_items"] == free and data["unclear_items"] == unclear
    assert data["permit_departments"] == departments
    assert [m["item"] for m in data["item_mappings"]] == items
    assert data["notice_served"] is True
    # only the four registry fields are kept: no personal data of the legal representative
    assert not {"legal_rep", "legal_rep_id", "address", "registered_capital"} & set(data)
    text = data["notice_text"]
    assert ent["enterprise_name"] in text and ent["uscc"] in text
    for item, permit, _dept, dept_name, basis in needed:
        assert item in text and permit in text and dept_name in text and basis in text
    for item in unclear + free:
        assert item in text
    if needed or unclear:
        assert data["commitment_required"] is True and data["commitment"] == COMMITMENT
        assert ALL_GENERAL not in text
    else:
        assert data["commitment_required"] is False and data["commitment"] == ""
        assert ALL_GENERAL in text
    # one push per department, with that department's items and permits; nothing else yet
    recorded = pushes(dn, ent["uscc"])
    assert sorted(recorded) == departments
    for dept in departments:
        mine = [n for n in needed if n[2] == dept]
        assert data["push_items"][dept] == "；".join(f"{n[0]}（{n[1]}）" for n in mine)
        assert recorded[dept]["items"] == data["push_items"][dept]
        assert recorded[dept]["enterprise_name"] == ent["enterprise_name"]
        assert data[f"{dept}_receipt_no"] == recorded[dept]["receipt_no"]
        assert data[f"{dept}_received_at"] == recorded[dept]["received_at"]
    for dept in set(DEPARTMENTS) - set(departments):
        assert dept not in data["push_items"] and f"{dept}_receipt_no" not in data
    assert data["push_items"].get("claim") == ("；".join(unclear) if unclear else None)
    # the tasks: one confirmation per department pushed, the pool when something is unclear
    tasks = open_tasks(dn, iid)
    assert sorted(t["bpmn_id"] for t in tasks) == sorted(
        [f"confirm_{d}" for d in departments] + (["claim_pool"] if unclear else []))
    for task in tasks:
        if task["bpmn_id"] != "claim_pool":
            dept = task["bpmn_id"].removeprefix("confirm_")
            view = dn.api(f"{dept}_clerk").get(f"/tasks/{task['id']}").get_json()
            # every receipt of the case is in every confirmation's data, in full (the health
            # department's receipt is not a person's health data)
            for other in departments:
                receipt = recorded[other]["receipt_no"]
                shown = view["data"][f"{other}_receipt_no"]
                assert shown == receipt, (other, shown)
    if not tasks:
        done = instance(dn, iid)
        assert done["status"] == "completed" and done["data"]["outcome"] == "notified"
        assert done["data"]["notified_departments"] == []
        return done["data"]
    finish_all(dn, iid, claimer)
    done = instance(dn, iid)
    assert done["status"] == "completed" and open_tasks(dn, iid) == []
    final = done["data"]
    assert final["outcome"] == "notified"
    notified = departments + ([claimer] if unclear and claimer not in departments else [])
    assert final["notified_departments"] == notified
    if unclear:
        assert final["claimed_by"] == claimer
        assert final["claimed_items"] == [{"item": i, "department": claimer} for i in unclear]
        after = pushes(dn, ent["uscc"])
        assert final["claim_receipt"] == {"department": claimer, "receipt_no": after[claimer]["receipt_no"],
                                          "received_at": after[claimer]["received_at"]}
    return final


# ---- every rule of the table, one item at a time -------------------------------------------
@pytest.mark.parametrize("item", [*RULES, "日用百货销售", "广告设计、代理", *UNCLEAR])
def test_each_rule_of_the_table_on_its_own(dn, item):
    ent = register(dn, item)
    iid = start(dn, ent["uscc"])
    check_notice(dn, iid, ent, [item])


def test_every_general_item_of_the_table_needs_no_permit_and_the_case_ends_at_once(dn):
    ent = register(dn, "；".join(GENERAL))
    iid = start(dn, ent["uscc"])
    final = check_notice(dn, iid, ent, GENERAL)
    assert final["no_permit_items"] == GENERAL and pushes(dn, ent["uscc"]) == {}
    assert dn.engine.sla_status(iid)["tasks"] == []


# ---- the demo exchange's enterprises the other test file does not use ----------------------
def demo_enterprises(scope, skip=2, n=2):
    """Live enterprises with ``scope`` after the first ``skip`` (used elsewhere), from distinct regions."""
    seen, out = set(), []
    for ent in [e for e in dataset().enterprises.values() if e["business_scope"] == scope and e["status"] == "存续"][skip:]:
        region = ent["uscc"][2:8]
        if region not in seen:
            seen.add(region)
            out.append(ent)
        if len(out) == n:
            return out
    raise AssertionError(scope)


@pytest.mark.parametrize("scope", sorted({s for _k, s in KINDS}))
def test_every_business_scope_of_the_demo_exchange_from_other_regions(dn, scope):
    for ent, claimer in zip(demo_enterprises(scope), ["health", "urban"], strict=True):
        iid = start(dn, ent["uscc"], user="applicant")
        check_notice(dn, iid, ent, scope.split("；"), claimer)


# ---- several items at once -----------------------------------------------------------------
def test_all_five_departments_and_the_pool_at_once_each_department_sees_every_receipt(dn):
    items = ["烟草制品零售", "出版物零售", "药品零售", "第二类医疗器械销售", "住宿服务", "食品销售", "酒类经营",
             "日用百货销售", "宠物美容服务", "体育健康服务"]
    ent = register(dn, "；".join(items), name="上海市浦东新区张江高科技园区示范综合商业服务与文化体育发展集团有限公司")
    iid = start(dn, ent["uscc"])
    data = instance(dn, iid)["data"]
    assert data["permit_departments"] == sorted(DEPARTMENTS)
    assert data["push_items"]["drug"] == "药品零售（药品经营许可证）；第二类医疗器械销售（第二类医疗器械经营备案）"
    assert data["push_items"]["market"] == "食品销售（食品经营许可证）；酒类经营（酒类商品零售许可证）"
    pool = the_task(dn, iid, "fire_clerk", "claim_pool")
    view = dn.api("fire_clerk").get(f"/tasks/{pool['id']}").get_json()
    for dept in DEPARTMENTS:
        assert view["data"][f"{dept}_receipt_no"]  # the pool opens after every push
    # market claims the unclear items although it was pushed already: one record, one receipt
    final = check_notice(dn, iid, ent, items, claimer="market")
    assert final["notified_departments"] == sorted(DEPARTMENTS)
    assert final["claim_receipt"]["receipt_no"] == final["market_receipt_no"]
    assert len(pushes(dn, ent["uscc"])) == 5


def test_repeated_items_are_notified_and_pushed_once(dn):
    scope = "食品销售；日用百货销售；食品销售；体育健康服务；日用百货销售；体育健康服务；酒类经营"
    ent = register(dn, scope)
    iid = start(dn, ent["uscc"])
    final = check_notice(dn, iid, ent, ["食品销售", "日用百货销售", "体育健康服务", "酒类经营"], claimer="culture")
    assert final["notice_text"].count("食品销售") == 1


@pytest.mark.parametrize("scope", [
    "食品销售;烟草制品零售;日用百货销售",
    " 食品销售 ； 烟草制品零售；；日用百货销售。",
    "食品销售；烟草制品零售;日用百货销售；",
])
def test_separators_blanks_and_a_final_full_stop_are_tolerated(dn, scope):
    ent = register(dn, scope)
    iid = start(dn, ent["uscc"])
    check_notice(dn, iid, ent, ["食品销售", "烟草制品零售", "日用百货销售"])


def test_known_and_unknown_items_mixed_keep_their_order(dn):
    items = ["无人机飞行表演服务", "出版物零售", "宠物美容服务", "文具用品零售", "住宿服务"]
    ent = register(dn, "；".join(items), region="440305")
    iid = start(dn, ent["uscc"], user="applicant")
    final = check_notice(dn, iid, ent, items, claimer="fire")
    assert final["notified_departments"] == ["culture", "health", "fire"]


# ---- the claim pool ------------------------------------------------------------------------
@pytest.mark.parametrize("group", CLAIM_GROUPS)
def test_any_department_of_the_pool_may_claim(dn, group):
    ent = register(dn, "健身休闲活动；游泳馆经营")
    iid = start(dn, ent["uscc"])
    pool = the_task(dn, iid, f"{group}_clerk", "claim_pool")
    assert sorted(pool["candidate_groups"]) == sorted(CLAIM_GROUPS)
    assert open_tasks(dn, iid, "registry_clerk") == []  # the registry is not a candidate
    api = dn.api(f"{group}_clerk")
    assert api.post(f"/tasks/{pool['id']}/claim").status_code == 200
    for bad in ({"claimed_by": "sports", "claim_opinion": "x"}, {"claim_opinion": "x"},
                {"claimed_by": group, "claim_opinion": "长" * 1001}):
        r = api.post(f"/tasks/{pool['id']}/complete", json={"decision": "claim", "data": bad})
        assert r.status_code in (400, 422), (bad, r.get_json())
    assert pushes(dn, ent["uscc"]) == {}
    r = api.post(f"/tasks/{pool['id']}/complete", json={"decision": "claim", "data": {
        "claimed_by": group, "claim_opinion": "本部门负责体育经营场所的许可与监管"}})
    assert r.status_code == 200, r.get_json()
    final = instance(dn, iid)["data"]
    assert final["outcome"] == "notified" and final["claim_opinion"] == "本部门负责体育经营场所的许可与监管"
    assert final["notified_departments"] == [group]
    recorded = pushes(dn, ent["uscc"])
    assert list(recorded) == [group] and recorded[group]["items"] == "健身休闲活动；游泳馆经营"
    assert final["claim_receipt"]["receipt_no"] == recorded[group]["receipt_no"] == final["claim_receipt_no"]


def test_a_second_notice_for_the_same_enterprise_gets_the_same_receipts(dn):
    ent = register(dn, "药品零售；出版物零售")
    first = check_notice(dn, start(dn, ent["uscc"]), ent, ["药品零售", "出版物零售"])
    second = instance(dn, start(dn, ent["uscc"], user="applicant"))["data"]
    assert second["drug_receipt_no"] == first["drug_receipt_no"]
    assert second["culture_receipt_no"] == first["culture_receipt_no"]
    assert {d: p["repeats"] for d, p in pushes(dn, ent["uscc"]).items()} == {"drug": 1, "culture": 1}


# ---- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize("status,scope,reason", [
    ("注销", "食品销售", "企业登记状态为“注销”，不是存续状态，无需告知"),
    ("吊销", "食品销售；烟草制品零售", "企业登记状态为“吊销”，不是存续状态，无需告知"),
    ("迁出", "体育健康服务", "企业登记状态为“迁出”，不是存续状态，无需告知"),
    ("存续", "", "企业登记信息中没有经营范围"),
    ("存续", "；；。", "企业登记信息中没有经营范围"),
])
def test_an_enterprise_that_is_not_live_or_has_no_scope_is_refused_without_a_push(dn, status, scope, reason):
    ent = register(dn, scope, status=status)
    iid = start(dn, ent["uscc"])
    done = instance(dn, iid)
    data = done["data"]
    assert done["status"] == "completed" and open_tasks(dn, iid) == []
    assert data["outcome"] == "refused" and data["refusal_reasons"] == [reason] and data["can_notify"] is False
    assert "notice_text" not in data and "permits_needed" not in data
    assert pushes(dn, ent["uscc"]) == {}


def test_every_cancelled_enterprise_of_the_demo_exchange_is_refused(dn):
    for ent in [e for e in dataset().enterprises.values() if e["status"] == "注销"][:4]:
        data = instance(dn, start(dn, ent["uscc"], user="applicant"))["data"]
        assert data["outcome"] == "refused"
        assert data["refusal_reasons"] == ["企业登记状态为“注销”，不是存续状态，无需告知"]
        assert pushes(dn, ent["uscc"]) == {}


def test_an_unknown_code_is_refused_and_a_malformed_one_never_starts(dn):
    code = new_code("330102")
    data = instance(dn, start(dn, code))["data"]
    assert data["outcome"] == "refused" and data["enterprise_found"] is False
    assert data["refusal_reasons"] == ["未查询到该统一社会信用代码的企业登记信息"]
    before = len(dn.api("admin").get("/instances?process_key=dual_notice").get_json())
    for bad in ["", "91310115MA1G4K7P2", "91310115ma1g4k7p2x", "91310115MA1G4K7PIO", "913101150A1G4K7P2X1"]:
        r = dn.api("registry_clerk").post("/instances", json={"process_key": "dual_notice", "data": {"uscc": bad}})
        assert r.status_code in (400, 422) and "uscc" in r.get_json()["fields"], bad
    assert len(dn.api("admin").get("/instances?process_key=dual_notice").get_json()) == before


# ---- a late confirmation -------------------------------------------------------------------
def test_a_late_confirmation_goes_yellow_then_red_and_reaches_the_leader(dn):
    clock = dn.engine.clock
    clock.set(at(2026, 4, 13))  # Monday; 5 working days from the next day: due at the end of Monday 20 April
    ent = register(dn, "住宿服务；出版物零售")
    iid = start(dn, ent["uscc"])
    act(dn, "culture_clerk", the_task(dn, iid, "culture_clerk", "confirm_culture"), "confirm")
    health = the_task(dn, iid, "health_clerk", "confirm_health")

    def cards():
        return sorted(c["color"] for c in dn.engine.supervision_cards(instance_id=iid) if c["task_id"] == health["id"])

    clock.set(at(2026, 4, 17, 10))  # not yet 80 % of the 5 working days
    dn.engine.run_due_jobs("w")
    assert cards() == []
    clock.set(at(2026, 4, 20, 10))  # past 80 %, before the end of the fifth working day
    dn.engine.run_due_jobs("w")
    assert cards() == ["yellow"]
    clock.set(at(2026, 4, 21, 10))
    dn.engine.run_due_jobs("w")
    assert cards() == ["red", "yellow"]
    assert any(n["kind"] == "remind" and n.get("instance_id") in (None, iid) for n in dn.engine.notices("health_clerk"))
    clock.set(at(2026, 4, 22, 10))  # one working day after the deadline
    dn.engine.run_due_jobs("w")
    log = [e for e in dn.engine.escalation_log(instance_id=iid) if e["task_id"] == health["id"]]
    assert any(e["action"] == "notify" and "leader" in str(e["target"]) for e in log), log
    act(dn, "health_clerk", health, "confirm")
    assert instance(dn, iid)["data"]["outcome"] == "notified"
