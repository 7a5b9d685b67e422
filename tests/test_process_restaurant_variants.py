"""开办餐饮店一件事 (processes/restaurant): the README's rules checked for many applicants and answers,
end to end through the REST API, against the demo data exchange on 127.0.0.1.

One office (engine, demo users, exchange, deployed process) per database backend serves every case
of this module; each case is its own instance. Besides the demo dataset's enterprises (others than
those of tests/test_process_restaurant.py), the exchange answers for a few extra, equally valid
subjects the dataset lacks: no electronic licence at all, an expired business licence, only a food
licence, no premises record, small premises, a very long name and address."""

from __future__ import annotations

import copy

import pytest

from cli.demo import seed
from connectors.exchange_data import org_code_check, uscc_check
from connectors.http import reset_breakers
from engine.api import Engine
from engine.clock import ManualClock
from tests.conftest import BACKENDS, ROOT, _pg_database
from tests.exchange_fixtures import ApiCaller, RunningExchange, configure_exchange, dataset
from web import create_app

FOLDER = ROOT / "processes" / "restaurant"
FOOD, SIGN, FIRE = "食品经营许可", "户外招牌设置", "公众聚集场所投入使用、营业前消防安全检查"
STEPS = {"market": ("market_clerk", "market_review"), "urban": ("urban_clerk", "urban_review"),
         "fire": ("fire_clerk", "fire_check")}


# ---- subjects the demo dataset does not hold --------------------------------------------------------
def _code(n: int) -> str:
    first8 = f"CY{n:06d}"
    first17 = "91310115" + first8 + org_code_check(first8)
    return first17 + uscc_check(first17)


EXTRA = {  # key → (enterprise changes, e-licences: list of (type, status), premises area or None)
    "no_elicence": ({}, [], 80.0),
    "expired_business_licence": ({}, [("business", "已过期")], 80.0),
    "food_licence_only": ({}, [("food", "有效")], 80.0),
    "no_premises": ({}, [("business", "有效")], None),
    "small_premises": ({}, [("business", "有效"), ("food", "已过期")], 40.0),
    "long_names": ({"enterprise_name": "上海浦东新区陆家嘴金融贸易区" + "美味" * 18 + "餐饮管理有限责任公司",
                    "address": "上海市浦东新区" + "陆家嘴环路世纪大道交叉口" * 13 + "1号1层"}, [("business", "有效")], 300.0),
}


def _extended_dataset():
    base = dataset()
    ds = copy.copy(base)
    ds.enterprises, ds.leases_by_lessee = dict(base.enterprises), dict(base.leases_by_lessee)
    ds.licences, ds.licences_by_holder = dict(base.licences), dict(base.licences_by_holder)
    people = [p for p in base.persons.values() if p["id_number"] not in base.blacklist]
    subjects = {}
    for i, (key, (changes, elicences, area)) in enumerate(EXTRA.items()):
        rep, code = people[100 + i], _code(i + 1)
        ent = {"uscc": code, "enterprise_name": f"上海示例{i}餐饮管理有限公司", "entity_type": "有限责任公司(自然人投资或控股)",
               "legal_rep": rep["name"], "legal_rep_id": rep["id_number"], "registered_capital": "100万元人民币",
               "established_on": "2021-03-01", "address": f"上海市浦东新区张杨路{900 + i}号1层",
               "business_scope": "餐饮服务；食品销售", "registration_authority": "上海市浦东新区市场监督管理局",
               "status": "存续", **changes}
        ds.enterprises[code] = ent
        for j, (kind, status) in enumerate(elicences):
            number = code if kind == "business" else f"JY{code[2:8]}{i:04d}{j:04d}"
            ds.licences[number] = {
                "licence_no": number, "licence_name": "营业执照" if kind == "business" else "食品经营许可证",
                "licence_type": kind, "type_code": f"{11000 + j:05d}", "holder": ent["enterprise_name"],
                "holder_code": code, "holder_code_type": "001", "issuer": "上海市浦东新区市场监督管理局",
                "issuer_code": f"310115{j:03d}", "issued_on": "2021-03-01", "valid_from": "2021-03-01",
                "valid_to": "长期" if status == "有效" else "2023-03-01", "status": status}
            ds.licences_by_holder.setdefault(code, []).append(number)
        if area is not None:
            ds.leases_by_lessee[code] = [{"filing_no": f"租备310115{i:07d}", "cert_no": f"沪(2019)浦字不动产权第{i:07d}号",
                                          "lessor": "李四", "lessee": ent["enterprise_name"], "lessee_code": code,
                                          "address": ent["address"], "area_m2": area, "start": "2021-03-01",
                                          "end": "2031-02-28"}]
        subjects[key] = ent
    return ds, subjects


EXTENDED, SUBJECTS = _extended_dataset()
assert len(SUBJECTS["long_names"]["address"]) <= 200


# ---- applicants of the demo dataset -----------------------------------------------------------------
def _eligible() -> list[dict]:
    ds = dataset()
    return [e for c, e in ds.enterprises.items()
            if e["status"] == "存续" and c not in ds.blacklist and c in ds.leases_by_lessee
            and any(ds.licences[n]["licence_type"] == "business" and ds.licences[n]["status"] == "有效"
                    for n in ds.licences_by_holder.get(c, []))]


def pick(offset: int) -> dict:
    """An eligible enterprise; the existing tests use the first hundred."""
    return _eligible()[150 + offset]


def application(ent: dict, **changes) -> dict:
    data = {"uscc": ent["uscc"], "shop_address": ent["address"], "contact_name": "孙联系", "contact_phone": "13812345678",
            "seats": 40, "dining_area_m2": 30, "has_outdoor_sign": False, "central_kitchen": False,
            "food_categories": "热食类"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


# ---- the office ---------------------------------------------------------------------------------------
class Office:
    def __init__(self, engine, clock, exchange, app):
        self.engine, self.clock, self.exchange, self.app = engine, clock, exchange, app
        self._callers = {}

    def api(self, user) -> ApiCaller:
        if user not in self._callers:
            self._callers[user] = ApiCaller(self.app, self.engine, user)
        return self._callers[user]

    def start(self, data, status=201):
        r = self.api("applicant").post("/instances", json={"process_key": "restaurant", "data": data,
                                                           "business_key": "CY-V"})
        assert r.status_code == status, r.get_json()
        return r.get_json()["id"] if status == 201 else r.get_json()

    def instance(self, iid) -> dict:
        r = self.api("admin").get(f"/instances/{iid}")
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def data(self, iid) -> dict:
        return self.instance(iid)["data"]

    def open_ids(self, iid) -> set[str]:
        return {t["bpmn_id"] for t in self.engine.tasks(instance_id=iid)}

    def task(self, iid, bpmn_id) -> dict:
        [t] = [t for t in self.engine.tasks(instance_id=iid) if t["bpmn_id"] == bpmn_id]
        return t

    def act(self, iid, user, bpmn_id, decision, data=None):
        t = self.task(iid, bpmn_id)
        caller = self.api(user)
        assert caller.post(f"/tasks/{t['id']}/claim").status_code == 200
        r = caller.post(f"/tasks/{t['id']}/complete", json={"data": data or {}, "decision": decision, "opinion": "意见"})
        assert r.status_code == 200, r.get_json()

    def accept(self, iid, data=None):
        self.act(iid, "window_clerk", "accept", "accept", data)

    def licences(self, iid) -> list[dict]:
        r = self.api("admin").get(f"/licences?instance_id={iid}")
        assert r.status_code == 200
        return r.get_json()

    def copied_clerks(self, iid) -> set[str]:
        r = self.api("admin").get(f"/instances/{iid}/cc")
        assert r.status_code == 200
        return {c["user"] for c in r.get_json()} & {"market_clerk", "urban_clerk", "fire_clerk", "window_clerk"}


@pytest.fixture(scope="module", params=BACKENDS)
def office(request, tmp_path_factory):
    pg = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('restaurant') / 'tongban.sqlite'}"
    else:
        url, admin, name = pg = _pg_database()
    clock = ManualClock()
    eng = Engine(url, clock=clock, script_timeout=1.0)
    eng.upgrade()
    seed(eng, library=False)
    reset_breakers()
    ex = RunningExchange()
    ex.app.data = EXTENDED
    configure_exchange(eng, ex)
    eng.deploy_paths([FOLDER], actor="designer")
    yield Office(eng, clock, ex, create_app(eng, {"TESTING": True, "SECRET_KEY": "test-secret"}))
    eng.connector_pool.close()
    ex.stop()
    reset_breakers()
    eng.db.dispose()
    if pg:
        from sqlalchemy import text

        with pg[1].connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{pg[2]}" WITH (FORCE)'))
        pg[1].dispose()


# ---- §3 which departments: every row of the decision table and its boundary ---------------------------------
ROUTES = [
    # (sign, dining area, departments, promised days)
    (False, 0, ["market"], 7),
    (False, 49.99, ["market"], 7),
    (False, 50, ["market", "fire"], 14),
    (False, 50.01, ["market", "fire"], 14),
    (True, 49.99, ["market", "urban"], 7),
    (True, 50, ["market", "urban", "fire"], 14),
    (True, 100000, ["market", "urban", "fire"], 14),
    ("是", 12.5, ["market", "urban"], 7),  # the form's other spellings of yes / no
    ("否", 50.0, ["market", "fire"], 14),
]
PERMIT_OF = {"market": FOOD, "urban": SIGN, "fire": FIRE}


@pytest.mark.parametrize("k", range(len(ROUTES)))
def test_the_sign_and_the_dining_area_pick_the_departments_and_the_promise(office, k):
    sign, area, depts, days = ROUTES[k]
    ent = pick(k)
    with_sign = sign in (True, "是")
    iid = office.start(application(ent, has_outdoor_sign=sign, dining_area_m2=area,
                                   sign_text="老街坊面馆" if with_sign else None, sign_size_m2=3.2 if with_sign else None))
    assert office.engine.sla_status(iid)["instance"]["promised"] == 14  # before the route is known
    office.accept(iid)
    data = office.data(iid)
    assert data["departments"] == depts and data["permits"] == [PERMIT_OF[d] for d in depts]
    assert data["needs_signage"] is ("urban" in depts) and data["needs_fire_check"] is ("fire" in depts)
    assert data["promised_days"] == days
    assert office.open_ids(iid) == {STEPS[d][1] for d in depts}
    sla = office.engine.sla_status(iid)
    assert (sla["instance"]["promised"], sla["instance"]["statutory"]) == (days, 45)
    limits = {t["bpmn_id"]: (t["promised"], t["statutory"]) for t in sla["tasks"]}
    expected = {"accept": (1, 5), "market_review": (7, 10), "urban_review": (7, 20), "fire_check": (10, 10)}
    assert limits == {b: expected[b] for b in ["accept"] + [STEPS[d][1] for d in depts]}
    for d in reversed(depts):
        self_decision = "pass" if d == "fire" else "approve"
        office.act(iid, STEPS[d][0], STEPS[d][1], self_decision)
    inst = office.instance(iid)
    assert inst["status"] == "completed"
    data = inst["data"]
    assert data["outcome"] == "issued" and data["refusal_codes"] == [] and data["refusal_reasons"] == []
    assert "refusal_stage" not in data
    assert data["signage_decision"] == ("approved" if with_sign else "not_required")
    assert data["fire_check_result"] == ("passed" if "fire" in depts else "not_required")
    assert data["signage_result"]["decision"] == data["signage_decision"]
    assert data["signage_result"]["sign_text"] == ("老街坊面馆" if with_sign else "")
    assert data["signage_result"]["sign_size_m2"] == (3.2 if with_sign else None)
    assert data["fire_check"]["result"] == data["fire_check_result"] and data["fire_check"]["dining_area_m2"] == area
    [lic] = office.licences(iid)
    assert lic["licence_no"] == data["licence_no"] and lic["licence_no"].startswith("JY")
    assert lic["name"] == "食品经营许可证" and lic["items"] == ["热食类"] and lic["status"] == "valid"
    assert lic["holder"] == ent["enterprise_name"] and lic["holder_code"] == ent["uscc"] and lic["address"] == ent["address"]
    assert office.copied_clerks(iid) == {STEPS[d][0] for d in depts}  # 抄送 to the departments that took part


# ---- food categories -------------------------------------------------------------------------------------
CATEGORIES = [
    ("冷食类", ["冷食类"]),
    ("生食类，热食类、生食类", ["生食类", "热食类"]),
    (" 糕点类 , 自制饮品 ", ["糕点类", "自制饮品"]),
    ("自制饮品、糕点类，生食类,冷食类 、热食类", ["自制饮品", "糕点类", "生食类", "冷食类", "热食类"]),
    ("冷食类\u3000、\u3000热食类", ["冷食类", "热食类"]),
    ("热食类,热食类,热食类", ["热食类"]),
]


@pytest.mark.parametrize("k", range(len(CATEGORIES)))
def test_food_categories_become_the_licence_items_in_order_without_duplicates(office, k):
    text, items = CATEGORIES[k]
    iid = office.start(application(pick(20 + k), food_categories=text))
    office.accept(iid)
    assert office.data(iid)["licence_items"] == items
    office.act(iid, "market_clerk", "market_review", "approve")
    [lic] = office.licences(iid)
    assert lic["items"] == items and office.data(iid)["outcome"] == "issued"


# ---- §3 entry conditions -----------------------------------------------------------------------------------
def _gate_cases():
    ds = dataset()
    closed_listed = next(e for c, e in ds.enterprises.items() if c in ds.blacklist and e["status"] != "存续")
    closed = [e for c, e in ds.enterprises.items() if e["status"] != "存续" and c not in ds.blacklist]
    listed = [e for c, e in ds.enterprises.items() if c in ds.blacklist and e["status"] == "存续"]
    return {
        "no_elicence": (SUBJECTS["no_elicence"], {}, ["no_business_licence"]),
        "expired_business_licence": (SUBJECTS["expired_business_licence"], {}, ["no_business_licence"]),
        "food_licence_only": (SUBJECTS["food_licence_only"], {}, ["no_business_licence"]),
        "no_premises": (SUBJECTS["no_premises"], {}, ["no_premises"]),
        "closed_and_listed": (closed_listed, {}, ["serious_untrustworthy", "not_in_operation"]),
        "closed_elsewhere": (closed[3], {"shop_address": closed[3]["address"] + "A座"},
                             ["address_mismatch", "not_in_operation"]),
        "listed_central_kitchen": (listed[7], {"central_kitchen": "是"}, ["serious_untrustworthy", "central_kitchen"]),
        "unknown_central_kitchen": ({"uscc": _code(999), "address": "上海市浦东新区龙阳路1号"}, {"central_kitchen": True},
                                    ["central_kitchen", "no_business_licence", "no_premises"]),
        "everything_but_the_licence": (listed[8], {"shop_address": "上海市浦东新区不存在路1号", "central_kitchen": True},
                                       ["serious_untrustworthy", "address_mismatch", "central_kitchen"]),
    }


GATE = _gate_cases()


def _reason(code, ent):
    ds = EXTENDED
    return {
        "serious_untrustworthy": lambda: f"申请人被列入严重失信主体名单（{ds.blacklist.get(ent['uscc'], {}).get('reason')}），不适用本事项",
        "address_mismatch": lambda: f"经营地址与营业执照住所不一致（营业执照住所：{ent['address']}）",
        "central_kitchen": lambda: "中央厨房不属于开办餐饮店“一件事”办理范围，请单独申请食品经营许可",
        "no_business_licence": lambda: "未查到申请人有效的电子营业执照",
        "not_in_operation": lambda: f"企业登记状态为“{ent.get('status')}”，不是存续状态",
        "no_premises": lambda: "未查到经营场所的不动产登记或租赁备案信息",
    }[code]()


@pytest.mark.parametrize("case", list(GATE))
def test_the_entry_conditions_list_every_failing_reason_in_order(office, case):
    ent, changes, codes = GATE[case]
    iid = office.start(application(ent, **changes))
    inst = office.instance(iid)
    assert inst["status"] == "completed" and office.engine.tasks(instance_id=iid, status="all") == []
    data = inst["data"]
    assert data["outcome"] == "refused" and data["refusal_stage"] == "eligibility" and data["eligible"] is False
    assert data["refusal_codes"] == codes
    assert data["refusal_reasons"] == [_reason(c, ent) for c in codes]
    assert office.licences(iid) == []


SIGNS = [  # (sign, text, size, sign_info_missing)
    (True, "喜士多小馆", 2.0, False),
    (True, None, 2.0, True),
    (True, "   ", 2.0, True),
    (True, "喜士多小馆", None, True),
    (False, None, None, False),
]


@pytest.mark.parametrize("k", range(len(SIGNS)))
def test_an_eligible_case_shows_the_window_the_licence_and_the_checks(office, k):
    sign, text, size, missing = SIGNS[k]
    ent = pick(40 + k) if k else SUBJECTS["small_premises"]
    iid = office.start(application(ent, has_outdoor_sign=sign, sign_text=text, sign_size_m2=size, dining_area_m2=45))
    assert office.open_ids(iid) == {"accept"}
    data = office.data(iid)
    assert data["eligible"] is True and data["refusal_codes"] == [] and data["refusal_reasons"] == []
    assert data["address_matches"] is True and data["sign_info_missing"] is missing
    assert data["business_licence_no"] == ent["uscc"] and data["business_licence_valid_to"] == "长期"
    assert data["business_licence_issuer"] and "elicences" not in data
    assert data["dining_area_exceeds_premises"] is (data["premises_area_m2"] < 45)
    assert data["dining_area_exceeds_premises"] is (k == 0)  # 45 m² dining room in 40 m² premises
    view = office.api("window_clerk").get(f"/tasks/{office.task(iid, 'accept')['id']}").get_json()
    pulled = {p["field"]: p["value"] for p in view["pulled"]}
    assert pulled["legal_rep_id_valid"] is True and pulled["legal_rep_name_match"] is True
    assert view["data"]["sign_info_missing"] is missing


# ---- §3 outcome after the reviews ---------------------------------------------------------------------------
OUTCOMES = {
    # market, urban, fire (decision, opinion) → codes, signage decision
    "all_refuse": ((("reject", "后厨面积不足"), ("reject", "招牌遮挡窗户"), ("fail", "缺少应急照明")),
                   ["food_licence_refused", "fire_check_failed"]),
    "sign_and_fire_refused": ((("approve", "准予"), ("reject", "招牌超出立面"), ("fail", "疏散宽度不足")),
                              ["fire_check_failed"]),
    "no_reasons_given": ((("reject", None), ("approve", None), ("fail", "  ")),
                         ["food_licence_refused", "fire_check_failed"]),
    "only_the_sign_refused": ((("approve", "准予许可"), ("reject", "招牌面积超标"), ("pass", "合格")), []),
}


@pytest.mark.parametrize("case", list(OUTCOMES))
def test_food_or_fire_refusal_refuses_the_case_and_a_refused_sign_does_not(office, case):
    (market, urban, fire), codes = OUTCOMES[case]
    ent = pick(60 + list(OUTCOMES).index(case))
    iid = office.start(application(ent, has_outdoor_sign=True, sign_text="申城小厨", sign_size_m2=6, dining_area_m2=88))
    office.accept(iid)
    office.act(iid, "fire_clerk", "fire_check", fire[0],
               {"fire_opinion": fire[1], "fire_inspected_on": "2026-01-07"} if fire[1] is not None else {})
    office.act(iid, "urban_clerk", "urban_review", urban[0], {"urban_opinion": urban[1]} if urban[1] else {})
    office.act(iid, "market_clerk", "market_review", market[0], {"market_opinion": market[1]} if market[1] else {})
    inst = office.instance(iid)
    assert inst["status"] == "completed"
    data = inst["data"]
    assert data["refusal_codes"] == codes
    reasons = []
    if "food_licence_refused" in codes:
        reasons.append("市场监管部门不予食品经营许可：" + ((market[1] or "").strip() or "未说明理由"))
    if "fire_check_failed" in codes:
        reasons.append("公众聚集场所投入使用、营业前消防安全检查不合格：" + ((fire[1] or "").strip() or "未说明理由"))
    assert data["refusal_reasons"] == reasons
    assert data["market_decision"] == market[0]
    assert data["signage_decision"] == ("approved" if urban[0] == "approve" else "refused")
    assert data["signage_result"]["opinion"] == (urban[1] or "")
    assert data["fire_check_result"] == ("passed" if fire[0] == "pass" else "failed")
    assert data["fire_check"]["opinion"] == (fire[1] or "").strip() and data["fire_check"]["dining_area_m2"] == 88
    if codes:
        assert data["outcome"] == "refused" and data["refusal_stage"] == "review"
        assert office.licences(iid) == [] and office.copied_clerks(iid) == set()
    else:
        assert data["outcome"] == "issued" and len(office.licences(iid)) == 1
        assert office.copied_clerks(iid) == {"market_clerk", "urban_clerk", "fire_clerk"}


def test_the_window_may_refuse_without_an_opinion(office):
    iid = office.start(application(pick(70)))
    office.act(iid, "window_clerk", "accept", "reject")
    data = office.data(iid)
    assert data["outcome"] == "refused" and data["refusal_stage"] == "acceptance"
    assert data["refusal_codes"] == ["not_accepted"] and data["refusal_reasons"] == ["综合窗口不予受理：未说明理由"]
    assert office.licences(iid) == [] and office.open_ids(iid) == set()


# ---- 补正: the routing and the categories are read after acceptance ------------------------------------------
def _return_and_supplement(office, iid, data):
    r = office.api("window_clerk").post(f"/tasks/{office.task(iid, 'accept')['id']}/return-to-applicant",
                                        json={"opinion": "请补正", "fields": sorted(data)})
    assert r.status_code == 200, r.get_json()
    r = office.api("applicant").post(f"/instances/{iid}/supplement", json={"data": data})
    assert r.status_code == 200, r.get_json()


def test_a_supplement_of_the_sign_the_area_and_the_categories_takes_effect(office):
    # a small room without a sign becomes a large one with a sign
    iid = office.start(application(pick(80), food_categories="热食类"))
    _return_and_supplement(office, iid, {"has_outdoor_sign": True, "sign_text": "沪上面馆", "sign_size_m2": 2.5,
                                         "dining_area_m2": 75, "food_categories": "冷食类、糕点类"})
    office.accept(iid)
    data = office.data(iid)
    assert office.open_ids(iid) == {"market_review", "urban_review", "fire_check"}
    assert data["departments"] == ["market", "urban", "fire"] and data["promised_days"] == 14
    assert data["licence_items"] == ["冷食类", "糕点类"]
    # the missing sign size is supplied: the case no longer reports it missing
    iid = office.start(application(pick(81), has_outdoor_sign=True, sign_text="沪上面馆"))
    assert office.data(iid)["sign_info_missing"] is True
    _return_and_supplement(office, iid, {"sign_size_m2": 1.5})
    office.accept(iid)
    data = office.data(iid)
    assert data["sign_info_missing"] is False and office.open_ids(iid) == {"market_review", "urban_review"}
    # a large room without a sign, corrected to a small one
    iid = office.start(application(pick(82), dining_area_m2=60))
    _return_and_supplement(office, iid, {"dining_area_m2": 20})
    office.accept(iid)
    assert office.open_ids(iid) == {"market_review"} and office.data(iid)["promised_days"] == 7


def test_a_long_enterprise_name_and_address_get_their_licence(office):
    ent = SUBJECTS["long_names"]
    iid = office.start(application(ent, contact_name="欧阳" + "联" * 48, contact_phone="021-63219876",
                                   shop_address=ent["address"][:30] + " " + ent["address"][30:]))
    assert office.data(iid)["eligible"] is True
    office.accept(iid, {"accept_opinion": "受理"})
    office.act(iid, "market_clerk", "market_review", "approve")
    [lic] = office.licences(iid)
    assert lic["holder"] == ent["enterprise_name"] and lic["holder_code"] == ent["uscc"]


# ---- §1 start form ------------------------------------------------------------------------------------------
GOOD = [{"seats": 0}, {"seats": 5000}, {"dining_area_m2": 100000}, {"has_outdoor_sign": True, "sign_size_m2": 0.1},
        {"has_outdoor_sign": True, "sign_size_m2": 500, "sign_text": "招" * 100}, {"contact_phone": "0571-8765432"}]
BAD = [
    ({"seats": 5001}, {"seats"}), ({"seats": -1}, {"seats"}), ({"seats": 2.5}, {"seats"}),
    ({"dining_area_m2": 100000.5}, {"dining_area_m2"}), ({"dining_area_m2": -0.5}, {"dining_area_m2"}),
    ({"sign_size_m2": 0.05}, {"sign_size_m2"}), ({"sign_size_m2": 500.5}, {"sign_size_m2"}),
    ({"sign_text": "招" * 101}, {"sign_text"}),
    ({"food_categories": "热食类、"}, {"food_categories"}), ({"food_categories": "热食类;冷食类"}, {"food_categories"}),
    ({"food_categories": "火锅"}, {"food_categories"}), ({"food_categories": ""}, {"food_categories"}),
    ({"uscc": "91310115abcdefgh12"}, {"uscc"}), ({"contact_name": "张" * 51}, {"contact_name"}),
    ({"shop_address": "路" * 201}, {"shop_address"}),
]


@pytest.mark.parametrize("k", range(len(GOOD)))
def test_values_at_the_limits_of_the_start_form_are_accepted(office, k):
    iid = office.start(application(pick(90 + k), **GOOD[k]))
    assert office.open_ids(iid) == {"accept"}


def test_values_beyond_the_limits_are_refused_with_the_field_named(office):
    ent = pick(99)
    for changes, fields in BAD:
        body = office.start(application(ent, **changes), status=400)
        assert body["error"] == "validation" and set(body["fields"]) == fields, changes
    for required in ("has_outdoor_sign", "central_kitchen", "seats", "dining_area_m2", "food_categories"):
        data = application(ent)
        del data[required]
        body = office.start(data, status=400)
        assert set(body["fields"]) == {required}
