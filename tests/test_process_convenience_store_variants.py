"""一业一证 · 便利店 (processes/convenience_store): the README's rules checked for many applicants and
answers, end to end through the REST API, against the demo data exchange on 127.0.0.1.

One office (engine, demo users, exchange, deployed process) per database backend serves every case
of this module; each case is its own instance. Besides the demo dataset's enterprises (others than
those of tests/test_process_convenience_store.py), the exchange answers for a few extra, equally
valid subjects the dataset lacks: a legal representative unknown to the population register or with
another name, premises recorded at another address, no premises record, an address exactly 50 m from
the nearest tobacco retailer, a floor area just under 500 m², a very long name and address."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from cli.demo import seed
from connectors.exchange_data import id_check, org_code_check, tobacco_layout, uscc_check
from connectors.http import reset_breakers
from engine.api import Engine
from engine.clock import ManualClock
from tests.conftest import BACKENDS, ROOT, _pg_database
from tests.exchange_fixtures import ApiCaller, RunningExchange, configure_exchange, dataset
from web import create_app

PROCESS = ROOT / "processes" / "convenience_store"

FOOD, TOBACCO, OTC, DEVICES, PUBS = ("食品经营许可", "烟草专卖零售许可", "药品经营许可（乙类非处方药）",
                                     "第二类医疗器械经营备案", "出版物经营许可")
REVIEWS = {"market": "market_review", "tobacco": "tobacco_review", "drug": "drug_review", "culture": "culture_review"}
CLERKS = {"market": "market_clerk", "tobacco": "tobacco_clerk", "drug": "drug_clerk", "culture": "culture_clerk"}
ANSWERS = ("sells_food", "sells_alcohol", "sells_tobacco", "sells_otc", "sells_devices", "sells_publications")
HYGIENE = "另需向卫生健康部门申请公共场所卫生许可（不纳入本证）"
GATE_TEXT = {
    "ENTERPRISE_NOT_FOUND": "未查询到该统一社会信用代码的营业执照登记信息",
    "ENTERPRISE_NOT_ACTIVE": "营业执照登记状态不是“存续”",
    "ENTERPRISE_BLACKLISTED": "申请企业被列入严重失信主体名单",
    "LEGAL_REP_BLACKLISTED": "法定代表人被列入严重失信主体名单",
    "LEGAL_REP_UNVERIFIED": "法定代表人身份核验未通过",
    "NO_PREMISES": "未查询到经营场所的产权或租赁备案信息",
    "ADDRESS_MISMATCH_LICENCE": "申报的经营场所与营业执照登记的住所不一致",
    "ADDRESS_MISMATCH_PREMISES": "申报的经营场所与产权或租赁备案登记的地址不一致",
    "NO_PERMIT_NEEDED": "所选经营项目均不涉及本行业综合许可事项，无需申请",
}


# ---- subjects the demo dataset does not hold --------------------------------------------------------
def _code(n: int) -> str:
    first8 = f"TB{n:06d}"
    first17 = "91310115" + first8 + org_code_check(first8)
    return first17 + uscc_check(first17)


def _unknown_id(n: int) -> str:
    body = f"31011519900101{n:03d}"
    return body + id_check(body)


def _clean_person(ds, skip: int = 0) -> dict:
    people = [p for p in ds.persons.values() if p["id_number"] not in ds.blacklist]
    return people[skip]


EXTRA = {  # key → (enterprise changes, premises: None = no record, else (address or None = the 住所, area))
    "rep_unknown": ({"legal_rep_id": _unknown_id(1)}, (None, 88.0)),
    "rep_other_name": ({"legal_rep": "欧阳某某"}, (None, 88.0)),
    "premises_elsewhere": ({}, ("上海市浦东新区金科路88号2层", 120.0)),
    "no_premises": ({}, None),
    "exactly_50m": ({"address": "浦东新区碧波路5843号1层"}, (None, 60.0)),
    "area_499_99": ({}, (None, 499.99)),
    "long_names": ({"enterprise_name": "上海浦东新区张江高科技园区" + "便民" * 18 + "连锁便利店经营管理有限责任公司",
                    "address": "上海市浦东新区" + "张江高科技园区科苑路" * 15 + "88号1层"}, (None, 95.5)),
}


def _extended_dataset():
    base = dataset()
    ds = copy.copy(base)
    ds.enterprises, ds.leases_by_lessee = dict(base.enterprises), dict(base.leases_by_lessee)
    subjects = {}
    for i, (key, (changes, premises)) in enumerate(EXTRA.items()):
        rep = _clean_person(base, i)
        code = _code(i + 1)
        ent = {"uscc": code, "enterprise_name": f"上海示例{i}便利店有限公司", "entity_type": "有限责任公司(自然人投资或控股)",
               "legal_rep": rep["name"], "legal_rep_id": rep["id_number"], "registered_capital": "50万元人民币",
               "established_on": "2020-05-06", "address": f"上海市浦东新区东方路{700 + i}号1层",
               "business_scope": "食品销售；烟草制品零售；日用百货销售", "registration_authority": "上海市浦东新区市场监督管理局",
               "status": "存续", **changes}
        ds.enterprises[code] = ent
        if premises is not None:
            address, area = premises[0] or ent["address"], premises[1]
            ds.leases_by_lessee[code] = [{"filing_no": f"租备310115{i:07d}", "cert_no": f"沪(2018)浦字不动产权第{i:07d}号",
                                          "lessor": "张三", "lessee": ent["enterprise_name"], "lessee_code": code,
                                          "address": address, "area_m2": area, "start": "2020-05-06",
                                          "end": "2030-05-05"}]
        subjects[key] = {**ent, "premises_address": address if premises is not None else None}
    return ds, subjects


EXTENDED, SUBJECTS = _extended_dataset()
assert tobacco_layout(SUBJECTS["exactly_50m"]["address"])["nearest_retailer_m"] == 50.0
assert len(SUBJECTS["long_names"]["address"]) <= 200


# ---- applicants of the demo dataset -----------------------------------------------------------------
def _area(code: str) -> float:
    ds = dataset()
    leases = ds.leases_by_lessee.get(code)
    if leases:
        return leases[0]["area_m2"]
    return next(p for p in ds.properties.values() if p["owner_code"] == code)["area_m2"]


def _eligible():
    ds = dataset()
    return [e for c, e in ds.enterprises.items()
            if e["status"] == "存续" and c not in ds.blacklist and e["legal_rep_id"] not in ds.blacklist
            and c in ds.leases_by_lessee]


def pick(n: int, *, offset: int, far: bool | None = None, small: bool = True) -> list[dict]:
    """``n`` eligible enterprises from ``offset`` on (the existing tests use the first 60): ``far``
    filters on the 50 m tobacco rule, ``small`` keeps premises under 500 m²."""
    out = []
    for e in _eligible()[offset:]:
        if far is not None and (tobacco_layout(e["address"])["nearest_retailer_m"] >= 50) != far:
            continue
        if small and _area(e["uscc"]) >= 500:
            continue
        out.append(e)
        if len(out) == n:
            return out
    raise AssertionError("not enough applicants in the dataset")


def by_code(code: str) -> dict:
    return dataset().enterprises[code]


def application(ent: dict, **answers) -> dict:
    data = {"uscc": ent["uscc"], "shop_address": ent["address"], "contact_name": "钱申请",
            "contact_phone": "13912345678"}
    data.update(answers)
    return data


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
        r = self.api("applicant").post("/instances", json={"process_key": "convenience_store", "data": data,
                                                           "business_key": "YYYZ-V"})
        assert r.status_code == status, r.get_json()
        return r.get_json()["id"] if status == 201 else r.get_json()

    def instance(self, iid) -> dict:
        r = self.api("admin").get(f"/instances/{iid}")
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def data(self, iid) -> dict:
        return self.instance(iid)["data"]

    def open_ids(self, iid) -> list[str]:
        return sorted(t["bpmn_id"] for t in self.engine.tasks(instance_id=iid))

    def task(self, iid, bpmn_id) -> dict:
        [t] = [t for t in self.engine.tasks(instance_id=iid) if t["bpmn_id"] == bpmn_id]
        return t

    def complete(self, user, iid, bpmn_id, data, decision=None):
        body = {"data": data}
        if decision:
            body["decision"] = decision
        r = self.api(user).post(f"/tasks/{self.task(iid, bpmn_id)['id']}/complete", json=body)
        assert r.status_code == 200, r.get_json()

    def accept(self, iid, joint=False):
        self.complete("window_clerk", iid, "accept", {"accept_opinion": "材料齐全，予以受理", "joint_inspection": joint},
                      decision="accept")

    def review(self, iid, dept, decision="approve", opinion=None, inspection=None):
        data = {f"{dept}_decision": decision, f"{dept}_opinion": opinion or "符合条件，准予许可"}
        if inspection:
            data[f"{dept}_inspection"] = inspection
        self.complete(CLERKS[dept], iid, REVIEWS[dept], data)

    def licences(self, iid) -> list[dict]:
        r = self.api("admin").get(f"/licences?instance_id={iid}")
        assert r.status_code == 200
        return r.get_json()

    def copies_to(self, iid) -> dict[str, int]:
        r = self.api("admin").get(f"/instances/{iid}/cc")
        assert r.status_code == 200
        out: dict[str, int] = {}
        for c in r.get_json():
            out[c["user"]] = out.get(c["user"], 0) + 1
        return out


@pytest.fixture(scope="module", params=BACKENDS)
def office(request, tmp_path_factory):
    pg = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('convenience') / 'tongban.sqlite'}"
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
    eng.deploy_paths([PROCESS], actor="designer")
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


def at(y, m, d, h=9):
    return datetime(y, m, d, h, 0, tzinfo=UTC) - timedelta(hours=8)  # Asia/Shanghai wall time


# ---- §3 permits: every rule row of the decision table ---------------------------------------------------
ROUTES = [
    # (answers, permits, review departments)
    ({"sells_food": True}, [FOOD], ["market"]),
    ({"sells_alcohol": True}, [FOOD], ["market"]),
    ({"sells_food": True, "sells_alcohol": True}, [FOOD], ["market"]),
    ({"sells_tobacco": True}, [TOBACCO], ["tobacco"]),
    ({"sells_otc": True}, [OTC], ["drug"]),
    ({"sells_devices": True}, [DEVICES], ["drug"]),
    ({"sells_otc": True, "sells_devices": True}, [OTC, DEVICES], ["drug"]),
    ({"sells_publications": True}, [PUBS], ["culture"]),
    ({"sells_alcohol": True, "sells_devices": True, "sells_publications": True}, [FOOD, DEVICES, PUBS],
     ["market", "drug", "culture"]),
    ({"sells_publications": True, "sells_tobacco": True, "sells_food": True}, [FOOD, TOBACCO, PUBS],
     ["market", "tobacco", "culture"]),
    # the start form's other spellings of yes / no
    ({"sells_food": "是", "sells_otc": "1", "sells_tobacco": "false", "sells_publications": "否"}, [FOOD, OTC],
     ["market", "drug"]),
    ({"sells_devices": "true", "sells_alcohol": "0", "commitment": "false"}, [DEVICES], ["drug"]),
]


@pytest.mark.parametrize("k", range(len(ROUTES)))
def test_the_answers_pick_the_permits_and_departments_and_all_approved_gives_one_licence(office, k):
    answers, permits, depts = ROUTES[k]
    [ent] = pick(1, offset=100 + 3 * k, far=True)
    iid = office.start(application(ent, **answers))
    assert office.open_ids(iid) == ["accept"]
    office.accept(iid)
    data = office.data(iid)
    assert data["permits"] == permits and data["review_departments"] == depts
    assert data["permit_departments"] == {p: {FOOD: "market", TOBACCO: "tobacco", OTC: "drug", DEVICES: "drug",
                                              PUBS: "culture"}[p] for p in permits}
    for dept in REVIEWS:
        assert data[f"need_{dept}"] is (dept in depts), dept
    assert data["extra_notices"] == []  # premises under 500 m²
    assert office.open_ids(iid) == sorted(REVIEWS[d] for d in depts)  # one task per department
    for dept in depts:
        office.review(iid, dept)
    inst = office.instance(iid)
    assert inst["status"] == "completed"
    data = inst["data"]
    assert data["outcome"] == "issued" and data["licence_items"] == permits
    assert data["refused_permits"] == [] and data["refusal_reasons"] == [] and data["refusal_codes"] == []
    assert data["department_decisions"] == {d: "approve" for d in depts}
    assert data["approval_mode"] == "review" and data["licence_status"] == "valid"
    [lic] = office.licences(iid)
    assert lic["items"] == permits and lic["holder"] == ent["enterprise_name"] and lic["holder_code"] == ent["uscc"]
    assert lic["address"] == ent["address"] and lic["licence_no"].startswith("ZH")
    # 抄送: every clerk of the departments concerned, nobody else
    assert set(office.copies_to(iid)) & set(CLERKS.values()) == {CLERKS[d] for d in depts}
    assert "window_clerk" not in office.copies_to(iid)


# ---- §3 permits: the 500 m² notice ---------------------------------------------------------------------
@pytest.mark.parametrize("subject, area, notice", [
    ("91310110ACK21MA63D", 500.0, True),
    ("91440305TMKC4JHG13", 499.82, False),
    ("913101078HQB9L506A", 500.15, True),
    ("area_499_99", 499.99, False),
])
def test_premises_of_500_square_metres_or_more_get_the_hygiene_notice_only(office, subject, area, notice):
    ent = SUBJECTS[subject] if subject in SUBJECTS else by_code(subject)
    iid = office.start(application(ent, sells_food=True))
    assert office.data(iid)["premises_area_m2"] == area
    office.accept(iid)
    data = office.data(iid)
    assert data["extra_notices"] == ([HYGIENE] if notice else [])
    assert data["permits"] == [FOOD] and data["review_departments"] == ["market"]  # no permit, no department
    assert office.open_ids(iid) == ["market_review"]


# ---- §3 eligibility gate --------------------------------------------------------------------------------
def _gate_cases():
    ds = dataset()
    rep_listed = next(e for c, e in ds.enterprises.items() if e["legal_rep_id"] in ds.blacklist
                      and c not in ds.blacklist and e["status"] == "存续" and c in ds.leases_by_lessee)
    closed_listed = next(e for c, e in ds.enterprises.items() if c in ds.blacklist and e["status"] != "存续")
    [plain] = pick(1, offset=200)
    return {
        "rep_unknown": (SUBJECTS["rep_unknown"], {}, ["LEGAL_REP_UNVERIFIED"]),
        "rep_other_name": (SUBJECTS["rep_other_name"], {}, ["LEGAL_REP_UNVERIFIED"]),
        "premises_elsewhere": (SUBJECTS["premises_elsewhere"], {}, ["ADDRESS_MISMATCH_PREMISES"]),
        "at_premises_address": (SUBJECTS["premises_elsewhere"],
                                {"shop_address": SUBJECTS["premises_elsewhere"]["premises_address"]},
                                ["ADDRESS_MISMATCH_LICENCE"]),
        "no_premises": (SUBJECTS["no_premises"], {}, ["NO_PREMISES"]),
        "closed_and_listed": (closed_listed, {}, ["ENTERPRISE_NOT_ACTIVE", "ENTERPRISE_BLACKLISTED"]),
        "rep_listed_wrong_address": (rep_listed, {"shop_address": rep_listed["address"] + "B座"},
                                     ["LEGAL_REP_BLACKLISTED", "ADDRESS_MISMATCH_LICENCE", "ADDRESS_MISMATCH_PREMISES"]),
        "no_answers": (plain, {"sells_food": None}, ["NO_PERMIT_NEEDED"]),
        "every_answer_no": (plain, {a: False for a in ANSWERS} | {"commitment": True}, ["NO_PERMIT_NEEDED"]),
        "unknown_everything": ({"uscc": _code(999), "address": "上海市浦东新区世纪大道1号"}, {"sells_alcohol": True},
                               ["ENTERPRISE_NOT_FOUND", "NO_PREMISES"]),
    }


GATE = _gate_cases()


@pytest.mark.parametrize("case", list(GATE))
def test_the_gate_lists_every_reason_in_order_and_ends_the_case_without_a_clerk(office, case):
    ent, changes, codes = GATE[case]
    answers = {"sells_food": True, **changes}
    answers = {k: v for k, v in answers.items() if v is not None}
    iid = office.start(application(ent, **answers))
    inst = office.instance(iid)
    assert inst["status"] == "completed" and office.open_ids(iid) == []
    assert office.engine.tasks(instance_id=iid, status="all") == []
    data = inst["data"]
    assert data["eligible"] is False and data["outcome"] == "refused"
    assert data["refusal_codes"] == codes
    assert data["refusal_reasons"] == [GATE_TEXT[c] for c in codes]
    assert data["licence_items"] == [] and office.licences(iid) == []


@pytest.mark.parametrize("subject", ["long_names", "exactly_50m"])
def test_unusual_but_valid_applicants_pass_the_gate(office, subject):
    ent = SUBJECTS[subject]
    iid = office.start(application(ent, sells_food=True, contact_name="欧阳" + "申" * 48,
                                   contact_phone="0571-87654321",
                                   shop_address="  " + ent["address"][:10] + " \t" + ent["address"][10:] + " "))
    data = office.data(iid)
    assert data["eligible"] is True and data["refusal_codes"] == [] and office.open_ids(iid) == ["accept"]
    assert data["enterprise_name"] == ent["enterprise_name"] and data["identity_found"] is True
    office.accept(iid)
    office.review(iid, "market")
    data = office.data(iid)
    assert data["outcome"] == "issued"
    [lic] = office.licences(iid)
    assert lic["holder"] == ent["enterprise_name"] and lic["address"] == ent["address"]


# ---- §3 tobacco distance rule ---------------------------------------------------------------------------
DISTANCES = [("91310105FG3L7XH09Y", 49.8, True), ("91310110EE0JHF6E71", 50.1, False),
             ("exactly_50m", 50.0, False)]


@pytest.mark.parametrize("commitment", [False, True], ids=["review", "commitment"])
@pytest.mark.parametrize("subject, metres, too_close", DISTANCES, ids=[str(d[1]) for d in DISTANCES])
def test_the_tobacco_distance_rule_at_the_50_metre_boundary(office, subject, metres, too_close, commitment):
    ent = SUBJECTS.get(subject) or by_code(subject)
    iid = office.start(application(ent, sells_food=True, sells_tobacco=True, commitment=commitment))
    office.accept(iid)
    data = office.data(iid)
    assert data["nearest_retailer_m"] == metres and data["tobacco_too_close"] is too_close
    assert data["tobacco_layout_found"] is True and data["nearest_retailer"]
    reason = (f"经营场所与最近的烟草制品零售点（{data['nearest_retailer']}）相距{metres}米，不足50米的合理布局间距")
    if commitment:
        assert office.open_ids(iid) == []  # issued at once, no review
    elif too_close:
        assert office.open_ids(iid) == ["market_review"]  # no tobacco clerk
        office.review(iid, "market")
    else:
        assert office.open_ids(iid) == ["market_review", "tobacco_review"]
        office.review(iid, "market")
        office.review(iid, "tobacco")
    data = office.data(iid)
    assert data["outcome"] == "issued"
    if too_close:
        assert data["tobacco_decision"] == "reject" and data["tobacco_auto_refused"] is True
        assert data["tobacco_opinion"] == reason and data["tobacco_refusal_reason"] == reason
        assert data["licence_items"] == [FOOD] and data["refused_permits"] == [TOBACCO]
        assert data["refusal_codes"] == ["TOBACCO_DISTANCE"] and data["refusal_reasons"] == [f"{TOBACCO}：{reason}"]
    else:
        assert data["tobacco_auto_refused"] is False
        assert data["licence_items"] == [FOOD, TOBACCO] and data["refusal_reasons"] == []
    [lic] = office.licences(iid)
    assert lic["items"] == data["licence_items"]


@pytest.mark.parametrize("commitment", [False, True], ids=["review", "commitment"])
def test_tobacco_alone_and_too_close_refuses_the_case(office, commitment):
    [ent] = pick(1, offset=300 + commitment, far=False)
    iid = office.start(application(ent, sells_tobacco=True, commitment=commitment))
    office.accept(iid)
    inst = office.instance(iid)
    assert inst["status"] == "completed" and office.open_ids(iid) == []
    data = inst["data"]
    assert data["outcome"] == "refused" and data["licence_items"] == [] and office.licences(iid) == []
    assert data["refusal_codes"] == ["TOBACCO_DISTANCE"] and data["tobacco_auto_refused"] is True
    assert data["refusal_reasons"][0].startswith(TOBACCO + "：经营场所与最近的烟草制品零售点")


# ---- §3 result of the reviews ----------------------------------------------------------------------------
DECISIONS = {
    "drug_rejects_both_items": ({"drug": "reject"}, [FOOD, TOBACCO, PUBS], [OTC, DEVICES]),
    "tobacco_clerk_rejects": ({"tobacco": "reject"}, [FOOD, OTC, DEVICES, PUBS], [TOBACCO]),
    "only_culture_approves": ({"market": "reject", "tobacco": "reject", "drug": "reject"}, [PUBS],
                              [FOOD, TOBACCO, OTC, DEVICES]),
    "everybody_rejects": ({d: "reject" for d in REVIEWS}, [], [FOOD, TOBACCO, OTC, DEVICES, PUBS]),
}
OPINION = {"market": "无冷藏设施", "tobacco": "不符合烟草专卖零售条件", "drug": "无药品专柜", "culture": "无出版物陈列区"}
DEPT_OF = {FOOD: "market", TOBACCO: "tobacco", OTC: "drug", DEVICES: "drug", PUBS: "culture"}


@pytest.mark.parametrize("case", list(DECISIONS))
def test_each_department_decides_its_own_permits(office, case):
    rejects, granted, refused = DECISIONS[case]
    [ent] = pick(1, offset=400 + 2 * list(DECISIONS).index(case), far=True)
    iid = office.start(application(ent, sells_food=True, sells_tobacco=True, sells_otc=True, sells_devices=True,
                                   sells_publications=True))
    office.accept(iid)
    assert office.open_ids(iid) == sorted(REVIEWS.values())
    for dept in ("culture", "drug", "tobacco", "market"):  # any order
        decision = rejects.get(dept, "approve")
        office.review(iid, dept, decision, OPINION[dept] if decision == "reject" else "同意")
    inst = office.instance(iid)
    assert inst["status"] == "completed"
    data = inst["data"]
    assert data["licence_items"] == granted and data["refused_permits"] == refused
    assert data["refusal_reasons"] == [f"{p}：{OPINION[DEPT_OF[p]]}" for p in refused]
    assert data["refusal_codes"] == ["DEPARTMENT_REJECTED"] * len(refused)
    assert data["department_decisions"] == {d: rejects.get(d, "approve") for d in REVIEWS}
    if granted:
        assert data["outcome"] == "issued"
        [lic] = office.licences(iid)
        assert lic["items"] == granted and lic["status"] == "valid"
    else:
        assert data["outcome"] == "refused" and office.licences(iid) == []
        assert "licence_no" not in data


# ---- joint inspection, commitment -----------------------------------------------------------------------
def test_joint_inspection_lists_the_review_departments_and_each_step_carries_its_limits(office):
    office.clock.set(at(2026, 3, 2))  # a Monday
    [ent] = pick(1, offset=500, far=True)
    iid = office.start(application(ent, sells_alcohol=True, sells_tobacco=True, sells_devices=True,
                                   sells_publications=True))
    office.accept(iid, joint=True)
    assert office.open_ids(iid) == ["schedule_inspection"]
    assert office.data(iid)["inspection_departments"] == ["market", "tobacco", "drug", "culture"]
    office.complete("market_clerk", iid, "schedule_inspection", {"inspection_date": "2026-03-04"})
    assert office.open_ids(iid) == sorted(REVIEWS.values())
    for dept, finding in zip(REVIEWS, ["pass", "rectify", "pass", "fail"], strict=True):
        office.review(iid, dept, "reject" if finding == "fail" else "approve",
                      OPINION[dept] if finding == "fail" else None, inspection=finding)
    data = office.data(iid)
    assert data["inspection_date"] == "2026-03-04" and data["tobacco_inspection"] == "rectify"
    assert data["culture_inspection"] == "fail"
    assert data["licence_items"] == [FOOD, TOBACCO, DEVICES] and data["refused_permits"] == [PUBS]
    sla = office.engine.sla_status(iid)
    assert (sla["instance"]["promised"], sla["instance"]["statutory"]) == (5, 45)
    limits = {t["bpmn_id"]: (t["promised"], t["statutory"]) for t in sla["tasks"]}
    assert limits == {"accept": (1, 5), "schedule_inspection": (1, 5), "market_review": (3, 10),
                      "tobacco_review": (3, 20), "drug_review": (3, 20), "culture_review": (3, 20)}


def test_commitment_ignores_joint_inspection_issues_every_permit_then_revocation_copies_everybody(office):
    office.clock.set(at(2026, 3, 2))
    [ent] = pick(1, offset=520, far=True)
    iid = office.start(application(ent, sells_food=True, sells_otc=True, sells_devices=True, sells_publications=True,
                                   commitment="是"))
    office.accept(iid, joint=True)
    data = office.data(iid)
    assert office.open_ids(iid) == []  # no inspection scheduling, no review
    assert data["outcome"] == "issued" and data["approval_mode"] == "commitment"
    assert data["commitment_signed"] is True and data["post_check_status"] == "pending"
    assert data["licence_items"] == [FOOD, OTC, DEVICES, PUBS] and data["licence_status"] == "valid"
    issued_copies = office.copies_to(iid)
    assert {"market_clerk", "drug_clerk", "culture_clerk"} <= set(issued_copies)
    assert "tobacco_clerk" not in issued_copies
    office.clock.set(at(2026, 6, 3))
    office.engine.run_due_jobs()
    assert office.open_ids(iid) == ["post_check"]
    post = next(t for t in office.engine.sla_status(iid)["tasks"] if t["bpmn_id"] == "post_check")
    assert (post["promised"], post["statutory"]) == (3, 10)
    office.complete("market_clerk", iid, "post_check", {"post_check_result": "fail", "post_check_opinion": "药品未分区陈列"})
    inst = office.instance(iid)
    assert inst["status"] == "completed"
    data = inst["data"]
    assert data["outcome"] == "revoked" and data["licence_status"] == "revoked"
    assert data["post_check_status"] == "failed" and data["revoke_reason"] == "告知承诺事后核查不合格：药品未分区陈列"
    [lic] = office.licences(iid)
    assert lic["status"] == "revoked"
    revoked_copies = office.copies_to(iid)
    assert all(revoked_copies[u] == 2 * issued_copies[u] for u in issued_copies)  # copied again on revocation


# ---- 补正 after the gate ------------------------------------------------------------------------------------
def _return(office, iid, fields):
    r = office.api("window_clerk").post(f"/tasks/{office.task(iid, 'accept')['id']}/return-to-applicant",
                                        json={"opinion": "请核对申报事项", "fields": fields})
    assert r.status_code == 200, r.get_json()


def _supplement(office, iid, data):
    r = office.api("applicant").post(f"/instances/{iid}/supplement", json={"data": data})
    assert r.status_code == 200, r.get_json()


def test_supplemented_answers_decide_the_permits(office):
    a, b, c = pick(3, offset=600, far=True)
    # an answer added
    iid = office.start(application(a, sells_food=True))
    _return(office, iid, ["sells_publications"])
    _supplement(office, iid, {"sells_publications": True})
    office.accept(iid)
    assert office.data(iid)["permits"] == [FOOD, PUBS]
    assert office.open_ids(iid) == ["culture_review", "market_review"]
    # an answer changed, spelled as the start form allows
    iid = office.start(application(b, sells_food=True))
    _return(office, iid, ["sells_food", "sells_otc"])
    _supplement(office, iid, {"sells_food": "否", "sells_otc": "是"})
    office.accept(iid)
    assert office.data(iid)["permits"] == [OTC] and office.open_ids(iid) == ["drug_review"]
    # every answer withdrawn: nothing to license
    iid = office.start(application(c, sells_tobacco=True, sells_alcohol=True))
    _return(office, iid, ["sells_tobacco", "sells_alcohol"])
    _supplement(office, iid, {"sells_tobacco": False, "sells_alcohol": False})
    office.accept(iid)
    inst = office.instance(iid)
    assert inst["status"] == "completed" and office.open_ids(iid) == []
    data = inst["data"]
    assert data["outcome"] == "refused" and data["refusal_codes"] == ["NO_PERMIT_NEEDED"]
    assert data["refusal_reasons"] == [GATE_TEXT["NO_PERMIT_NEEDED"]] and office.licences(iid) == []


def test_a_supplemented_subject_or_address_goes_back_through_the_pulls_and_the_gate(office):
    a, b, c, d = pick(4, offset=700, far=True)
    # whitespace only: the same address, no second round
    iid = office.start(application(a, sells_food=True))
    _return(office, iid, ["shop_address"])
    _supplement(office, iid, {"shop_address": " ".join(a["address"])})
    office.accept(iid)
    assert office.open_ids(iid) == ["market_review"]
    # another address: checked again, refused at the gate
    iid = office.start(application(b, sells_food=True))
    _return(office, iid, ["shop_address"])
    _supplement(office, iid, {"shop_address": b["address"] + "附2号"})
    office.accept(iid)
    inst = office.instance(iid)
    assert inst["status"] == "completed" and office.open_ids(iid) == []
    assert inst["data"]["refusal_codes"] == ["ADDRESS_MISMATCH_LICENCE", "ADDRESS_MISMATCH_PREMISES"]
    assert inst["data"]["outcome"] == "refused"
    # another enterprise with its own address: pulled again and back to the window
    iid = office.start(application(c, sells_food=True))
    _return(office, iid, ["uscc", "shop_address"])
    _supplement(office, iid, {"uscc": d["uscc"], "shop_address": d["address"]})
    office.accept(iid)
    assert office.open_ids(iid) == ["accept"]
    data = office.data(iid)
    assert data["enterprise_name"] == d["enterprise_name"] and data["eligible"] is True
    office.accept(iid)
    office.review(iid, "market")
    data = office.data(iid)
    assert data["outcome"] == "issued"
    [lic] = office.licences(iid)
    assert lic["holder"] == d["enterprise_name"] and lic["holder_code"] == d["uscc"] and lic["address"] == d["address"]


# ---- §1 start form ---------------------------------------------------------------------------------------
FORM = [
    ({"shop_address": "上" * 201}, {"shop_address"}),
    ({"contact_name": "张" * 51}, {"contact_name"}),
    ({"contact_phone": "12912345678"}, {"contact_phone"}),
    ({"contact_phone": "1391234567"}, {"contact_phone"}),
    ({"contact_phone": "021-123456"}, {"contact_phone"}),
    ({"uscc": "91310115MA1K4XXXXI"}, {"uscc"}),  # I is not in the alphabet
    ({"uscc": "91310115ma1k4xxxxx"}, {"uscc"}),
    ({"uscc": "9131011X" + "MA1K4XXXXX"}, {"uscc"}),  # the region is digits
    ({"sells_tobacco": "perhaps", "commitment": "maybe"}, {"sells_tobacco", "commitment"}),
    ({"contact_name": None, "shop_address": ""}, {"contact_name", "shop_address"}),
]


@pytest.mark.parametrize("k", range(len(FORM)))
def test_bad_start_data_names_each_bad_field(office, k):
    changes, bad = FORM[k]
    [ent] = pick(1, offset=800)
    body = office.start(application(ent, sells_food=True, **changes), status=400)
    assert body["error"] == "validation" and set(body["fields"]) == bad


@pytest.mark.parametrize("phone", ["13912345678", "19912345678", "021-12345678", "0571-8765432"])
def test_good_phone_numbers_and_the_longest_contact_name_are_accepted(office, phone):
    [ent] = pick(1, offset=810)
    iid = office.start(application(ent, sells_food=True, contact_phone=phone, contact_name="张" * 50))
    assert office.open_ids(iid) == ["accept"]
