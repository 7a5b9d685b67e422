"""多证合一 企业设立登记 (processes/enterprise_registration): the README's rules for any valid applicant.

Every region and entity type of the start form, the limits of each field, legal representatives
of the demo population other than the ones the other test file uses (ID numbers ending in X,
people from every region), every combination of eligibility refusals, a refusal without an
opinion, separators and repeated items in the scope, and a 补正 that changes the legal
representative — each end to end through the REST API on the real demo exchange.

One engine and one exchange serve the whole module (per database backend); every case registers
its own enterprise name, so the cases do not share codes or pushes.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from cli.demo import seed
from connectors.exchange_data import REGIONS, USCC_ALPHABET, id_check, org_code_check, uscc_check, valid_uscc
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
DEPARTMENTS = ["tax", "social", "stats", "fund"]
PUSHED_ITEMS = {"tax": "税务登记（多证合一）", "social": "社会保险登记（多证合一）", "stats": "统计登记（多证合一）",
                "fund": "住房公积金缴存单位登记（多证合一）"}
ENTITY_TYPES = ["有限责任公司", "股份有限公司", "个人独资企业", "合伙企业"]
NOT_FOUND = "法定代表人身份核验未通过：公民身份号码在人口库中不存在或无效"
MISMATCH = "法定代表人身份核验未通过：姓名与公民身份号码不一致"
RAW = ["rep_identity_found", "rep_id_valid", "rep_name_match", "rep_blacklisted", "rep_blacklist_reason"]


# ---- one engine and one exchange per backend -----------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def reg(request, tmp_path_factory):
    pg = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('registration') / 'tongban.sqlite'}"
    else:
        url, admin, name = _pg_database()
        pg = (admin, name)
    eng = Engine(url, clock=ManualClock(), script_timeout=1.0)
    eng.upgrade()
    seed(eng, library=False)
    app = create_app(eng, {"TESTING": True, "SECRET_KEY": "test-secret"})
    reset_breakers()
    ex = RunningExchange()
    ex.app.data = dataclasses.replace(dataset())
    case = LibraryCase(eng, ex, app, ROOT / "processes" / "enterprise_registration")
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


def good_people():
    ds = dataset()
    return [p for p in ds.persons.values() if p["id_number"] not in ds.blacklist]


def person(index=0, *, x=False, region=None):
    """A person of the demo population, not blacklisted, past the first few (used elsewhere)."""
    people = [p for p in good_people() if (not x or p["id_number"].endswith("X"))
              and (region is None or p["id_number"][:6] == region)]
    return people[5 + index]


def blacklisted(index=0):
    ds = dataset()
    return [ds.persons[c] for c in ds.blacklist if c in ds.persons][3 + index]


def application(rep, **over):
    n = next(_serial)
    data = {"enterprise_name": f"上海变体{n}号商贸有限公司", "entity_type": "有限责任公司",
            "registered_capital_wan": 50.0, "address": f"上海市浦东新区张杨路{n}号",
            "business_scope": "食品销售；日用百货销售", "legal_rep": rep["name"], "legal_rep_id": rep["id_number"],
            "contact_phone": "13912345678", "region": "310115"}
    data.update(over)
    return data


def post_start(reg, data):
    return reg.api("applicant").post("/instances", json={"process_key": "enterprise_registration", "data": data,
                                                          "business_key": f"DJV-{next(_serial)}"})


def start(reg, data):
    r = post_start(reg, data)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["instance_id"]







def licences(reg, iid):
    r = reg.api("admin").get(f"/licences?instance_id={iid}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def register_through(reg, data, scope_items, *, opinion=None):
    """Start, approve, check code, licence and pushes, confirm all; return the final data."""
    iid = start(reg, data)
    review = the_task(reg, iid, "registry_clerk", "registry_review")
    shown = instance(reg, iid)["data"]
    assert shown["eligible"] is True and shown["refusal_codes"] == [] and shown["refusal_reasons"] == []
    assert shown["rep_identity_verified"] is True and shown["rep_credit_ok"] is True
    assert not set(RAW) & set(shown)
    assert "uscc" not in shown and licences(reg, iid) == []
    extra = {"review_opinion": opinion} if opinion is not None else {}
    act(reg, "registry_clerk", review, "approve", **extra)

    data_now = instance(reg, iid)["data"]
    uscc = data_now["uscc"]
    assert valid_uscc(uscc) and uscc[:2] == "91" and uscc[2:8] == data["region"] and uscc[8:10] == "MA"
    assert data_now["organisation_code"] == uscc[8:17] and org_code_check(uscc[8:16]) == uscc[16]
    assert uscc_check(uscc[:17]) == uscc[17] and all(c in USCC_ALPHABET for c in uscc)
    assert data_now["scope_items"] == scope_items and data_now["registration_authority"]
    [lic] = licences(reg, iid)
    assert lic["name"] == "营业执照" and lic["holder"] == data["enterprise_name"] and lic["holder_code"] == uscc
    assert lic["licence_no"].startswith("YZ") and lic["items"] == scope_items and lic["address"] == data["address"]
    assert lic["valid_to"] in (None, "", "长期") and lic["status"] == "valid"
    assert data_now["licence_no"] == lic["licence_no"] and data_now["licence_status"]
    for key in ("licence_id", "licence_issued_on", "licence_verify_code"):
        assert data_now.get(key), key
    recorded = pushes(reg, uscc)
    assert sorted(recorded) == sorted(DEPARTMENTS)
    for dept in DEPARTMENTS:
        assert recorded[dept]["items"] == PUSHED_ITEMS[dept]
        assert recorded[dept]["enterprise_name"] == data["enterprise_name"] and recorded[dept]["repeats"] == 0
    # four confirmations at once, each seeing every receipt and no personal check result
    tasks = open_tasks(reg, iid)
    assert sorted(t["bpmn_id"] for t in tasks) == sorted(f"confirm_{d}" for d in DEPARTMENTS)
    for index, dept in enumerate(DEPARTMENTS):
        task = the_task(reg, iid, f"{dept}_clerk", f"confirm_{dept}")
        view = reg.api(f"{dept}_clerk").get(f"/tasks/{task['id']}").get_json()
        for other in DEPARTMENTS:
            assert view["data"][f"{other}_receipt_no"] == recorded[other]["receipt_no"]
        assert not set(RAW) & set(view["data"])
        # the note is optional: every other department confirms without one
        act(reg, f"{dept}_clerk", task, "confirm", **({f"{dept}_note": "已接收"} if index % 2 else {}))
    done = instance(reg, iid, "applicant")
    assert done["status"] == "completed" and open_tasks(reg, iid) == []
    final = done["data"]
    assert final["outcome"] == "registered" and final["pushed_departments"] == DEPARTMENTS
    assert final["push_receipts"] == {d: {"receipt_no": recorded[d]["receipt_no"],
                                          "received_at": recorded[d]["received_at"]} for d in DEPARTMENTS}
    return iid, final


# ---- every region and entity type ----------------------------------------------------------
@pytest.mark.parametrize("region", sorted(REGIONS))
def test_every_region_of_the_form_gets_its_code_licence_and_pushes(reg, region):
    rep = person(0, region=region)  # a legal representative born in that region
    data = application(rep, region=region, enterprise_name=f"{REGIONS[region]}变体{region}信息科技有限公司",
                       address=f"{REGIONS[region]}示范路{region[-3:]}号")
    register_through(reg, data, ["食品销售", "日用百货销售"])


@pytest.mark.parametrize("entity_type", ENTITY_TYPES)
def test_every_entity_type_is_an_enterprise_with_type_code_1(reg, entity_type):
    rep = person(ENTITY_TYPES.index(entity_type) + 20)
    data = application(rep, entity_type=entity_type, registered_capital_wan=0 if "合伙" in entity_type else 1000)
    _iid, final = register_through(reg, data, ["食品销售", "日用百货销售"])
    assert final["uscc"][:2] == "91" and final["entity_type"] == entity_type


def test_a_legal_representative_whose_id_ends_in_x_is_verified(reg):
    for index in range(2):
        rep = person(index, x=True)
        assert rep["id_number"][-1] == "X"
        register_through(reg, application(rep, region="330106"), ["食品销售", "日用百货销售"])


# ---- the limits of the start form ----------------------------------------------------------
NAME_100 = ("上海" + "浦东新区张江高科技园区示范" * 8)[:96] + "有限公司"


@pytest.mark.parametrize("field,value", [
    ("enterprise_name", "三味书屋"),
    ("enterprise_name", NAME_100),
    ("registered_capital_wan", 0),
    ("registered_capital_wan", 100000000),
    ("registered_capital_wan", 0.01),
    ("registered_capital_wan", 3),
    ("address", "上海市" + "浦东新区世纪大道" * 24 + "一号"),
    ("contact_phone", "021-58881234"),
    ("contact_phone", "0571-8888123"),
    ("contact_phone", "02158881234"),
    ("contact_phone", "19912345678"),
    ("business_scope", "；".join(["日用百货销售"] + [f"技术服务{i}" for i in range(280)])[:2000]),
])
def test_values_at_the_limits_of_the_form_are_accepted(reg, field, value):
    rep = person(40 + next(_serial) % 50)
    data = application(rep, **{field: value})
    assert len(str(data[field])) <= {"address": 200, "enterprise_name": 100}.get(field, 2000)
    iid = start(reg, data)
    shown = instance(reg, iid)["data"]
    assert shown["eligible"] is True and the_task(reg, iid, "registry_clerk", "registry_review")
    assert shown[field] == value


@pytest.mark.parametrize("field,value", [
    ("enterprise_name", "三味书"),
    ("enterprise_name", NAME_100[:96] + "甲有限公司"),
    ("enterprise_name", "    "),
    ("registered_capital_wan", -1),
    ("registered_capital_wan", 100000001),
    ("registered_capital_wan", "一百万"),
    ("address", "上" * 201),
    ("business_scope", "食" * 2001),
    ("business_scope", "；；"),
    ("legal_rep_id", "31011519900101123x"),
    ("legal_rep_id", "310115199013011234"),
    ("legal_rep_id", "010115199001011234"),
    ("contact_phone", "12912345678"),
    ("contact_phone", "021-123456"),
    ("contact_phone", "1391234567"),
    ("region", "310000"),
    ("entity_type", "有限公司"),
    ("legal_rep", ""),
])
def test_a_value_outside_the_form_is_refused_before_anything_is_written(reg, field, value):
    before = len(reg.api("admin").get("/instances?process_key=enterprise_registration").get_json())
    r = post_start(reg, application(person(0), **{field: value}))
    assert r.status_code in (400, 422), (field, value, r.get_json())
    assert field in r.get_json().get("fields", {}), r.get_json()
    assert len(reg.api("admin").get("/instances?process_key=enterprise_registration").get_json()) == before


@pytest.mark.parametrize("field", ["enterprise_name", "entity_type", "registered_capital_wan", "address",
                                   "business_scope", "legal_rep", "legal_rep_id", "contact_phone", "region"])
def test_every_start_field_is_required(reg, field):
    data = application(person(0))
    del data[field]
    r = post_start(reg, data)
    assert r.status_code in (400, 422) and field in r.get_json().get("fields", {}), r.get_json()


# ---- the business scope --------------------------------------------------------------------
@pytest.mark.parametrize("scope,items", [
    ("食品销售;日用百货销售;酒类经营", ["食品销售", "日用百货销售", "酒类经营"]),
    (" 食品销售 ；；日用百货销售；。", ["食品销售", "日用百货销售"]),
    ("食品销售；日用百货销售；食品销售；日用百货销售", ["食品销售", "日用百货销售"]),
    ("企业管理咨询", ["企业管理咨询"]),
])
def test_the_scope_is_split_into_items_for_the_licence(reg, scope, items):
    data = application(person(60 + len(scope) % 20), business_scope=scope)
    register_through(reg, data, items, opinion="准予设立登记")


# ---- the code ------------------------------------------------------------------------------
def test_the_same_application_gets_the_same_code_and_another_name_another_code(reg):
    rep = person(90)
    data = application(rep)
    codes = []
    for changed in (data, data, {**data, "enterprise_name": data["enterprise_name"].replace("商贸", "贸易")},
                    {**data, "region": "310104"}, {**data, "address": data["address"] + "1层"}):
        iid = start(reg, changed)
        act(reg, "registry_clerk", the_task(reg, iid, "registry_clerk", "registry_review"), "approve")
        codes.append(instance(reg, iid)["data"]["uscc"])
    assert codes[0] == codes[1] and len(set(codes)) == 4
    assert codes[3][2:8] == "310104" and all(valid_uscc(c) for c in codes)


# ---- eligibility ---------------------------------------------------------------------------
def unknown_id(region="310115"):
    """A well-formed ID number with a correct check digit that the population database lacks."""
    for seq in range(1000):
        body = f"{region}19900101{seq:03d}"
        number = body + id_check(body)
        if number not in dataset().persons:
            return number
    raise AssertionError


def bad_check_digit(number):
    body = number[:17]
    return body + next(c for c in "0123456789X" if c != id_check(body))


@pytest.mark.parametrize("case", ["unknown_id", "bad_check_digit", "name_mismatch", "other_persons_name",
                                  "blacklisted", "blacklisted_and_mismatch"])
def test_an_ineligible_legal_representative_is_refused_at_the_gate(reg, case):
    ds = dataset()
    good, bad = person(100), blacklisted(0)
    rep, codes, reasons = {
        "unknown_id": ({"name": "张三", "id_number": unknown_id()}, ["identity_not_found"], [NOT_FOUND]),
        "bad_check_digit": ({**good, "id_number": bad_check_digit(good["id_number"])}, ["identity_not_found"],
                            [NOT_FOUND]),
        "name_mismatch": ({**good, "name": good["name"][0] + "某某"}, ["name_mismatch"], [MISMATCH]),
        "other_persons_name": ({**good, "name": person(101)["name"]}, ["name_mismatch"], [MISMATCH]),
        "blacklisted": (bad, ["blacklisted"], None),
        "blacklisted_and_mismatch": ({**bad, "name": bad["name"] + "某"}, ["name_mismatch", "blacklisted"], None),
    }[case]
    if rep["name"] == good["name"] and case == "other_persons_name":
        pytest.skip("same name")
    if reasons is None:
        listed = ("法定代表人被列入严重失信主体名单（" + ds.blacklist[bad["id_number"]]["reason"]
                  + "），依法不得担任法定代表人")
        reasons = [MISMATCH, listed] if "mismatch" in case else [listed]
    iid = start(reg, application(rep))
    done = instance(reg, iid, "applicant")
    data = done["data"]
    assert done["status"] == "completed" and open_tasks(reg, iid) == []
    assert data["outcome"] == "refused" and data["refused_at_step"] == "eligibility" and data["eligible"] is False
    assert data["refusal_codes"] == codes and data["refusal_reasons"] == reasons
    assert data["rep_identity_verified"] is (codes == ["blacklisted"])
    assert data["rep_credit_ok"] is ("blacklisted" not in codes)
    assert not set(RAW) & set(data)
    assert not {"uscc", "organisation_code", "licence_no"} & set(data) and licences(reg, iid) == []
    assert not [p for p in pushes(reg, "").values() if p["enterprise_name"] == data["enterprise_name"]]
    assert [p["operation"] for p in reversed(reg.engine.pull_log(iid))] == ["identity", "credit"]


# ---- the registry's refusal ----------------------------------------------------------------
@pytest.mark.parametrize("opinion,reason", [
    (None, "申请材料不符合法定条件，不予登记"),
    ("", "申请材料不符合法定条件，不予登记"),
    ("住所不具备经营条件", "住所不具备经营条件"),
])
def test_the_registry_refuses_with_its_opinion_or_the_default_reason(reg, opinion, reason):
    iid = start(reg, application(person(110 + len(reason))))
    extra = {} if opinion is None else {"review_opinion": opinion}
    act(reg, "registry_clerk", the_task(reg, iid, "registry_clerk", "registry_review"), "reject", **extra)
    done = instance(reg, iid)
    data = done["data"]
    assert done["status"] == "completed" and open_tasks(reg, iid) == []
    assert data["outcome"] == "rejected" and data["refused_at_step"] == "registry_review"
    assert data["refusal_codes"] == ["review_rejected"] and data["refusal_reasons"] == [reason]
    assert "uscc" not in data and licences(reg, iid) == []


# ---- 补正 that changes the legal representative -------------------------------------------
def return_and_supplement(reg, iid, supplement):
    review = the_task(reg, iid, "registry_clerk", "registry_review")
    api = reg.api("registry_clerk")
    assert api.post(f"/tasks/{review['id']}/claim").status_code == 200
    r = api.post(f"/tasks/{review['id']}/return-to-applicant", json={
        "opinion": "请更正法定代表人信息", "fields": sorted(supplement)})
    assert r.status_code == 200, r.get_json()
    r = reg.api("applicant").post(f"/instances/{iid}/supplement", json={"data": supplement})
    assert r.status_code == 200, r.get_json()
    return the_task(reg, iid, "registry_clerk", "registry_review")


def test_a_supplement_naming_a_blacklisted_legal_representative_is_refused_not_registered(reg):
    iid = start(reg, application(person(120)))
    bad = blacklisted(1)
    again = return_and_supplement(reg, iid, {"legal_rep": bad["name"], "legal_rep_id": bad["id_number"]})
    act(reg, "registry_clerk", again, "approve")
    done = instance(reg, iid)
    data = done["data"]
    assert done["status"] == "completed" and data["outcome"] == "refused"
    assert data["refusal_codes"] == ["blacklisted"] and data["refused_at_step"] == "eligibility"
    assert "uscc" not in data and licences(reg, iid) == [] and open_tasks(reg, iid) == []
    assert [p["operation"] for p in reversed(reg.engine.pull_log(iid))] == ["identity", "credit"] * 2


def test_a_supplement_with_another_valid_legal_representative_is_checked_again_then_registered(reg):
    first, second = person(121), person(122)
    data = application(first)
    iid = start(reg, data)
    again = return_and_supplement(reg, iid, {"legal_rep": second["name"], "legal_rep_id": second["id_number"]})
    act(reg, "registry_clerk", again, "approve")
    # checked on the exchange again: the clerk reviews the checked case once more
    review = the_task(reg, iid, "registry_clerk", "registry_review")
    assert [p["operation"] for p in reversed(reg.engine.pull_log(iid))] == ["identity", "credit"] * 2
    shown = instance(reg, iid)["data"]
    assert shown["eligible"] is True and "uscc" not in shown and not set(RAW) & set(shown)
    act(reg, "registry_clerk", review, "approve")
    final = instance(reg, iid)["data"]
    assert valid_uscc(final["uscc"]) and final["legal_rep_id"] == second["id_number"]
    assert len(licences(reg, iid)) == 1 and sorted(pushes(reg, final["uscc"])) == sorted(DEPARTMENTS)


def test_a_supplement_that_keeps_the_legal_representative_goes_straight_to_registration(reg):
    iid = start(reg, application(person(123)))
    again = return_and_supplement(reg, iid, {"address": "上海市浦东新区碧波路690号"})
    act(reg, "registry_clerk", again, "approve")
    final = instance(reg, iid)["data"]
    assert valid_uscc(final["uscc"])
    checks = [p["operation"] for p in reversed(reg.engine.pull_log(iid)) if p["operation"] != "push_registration"]
    assert checks == ["identity", "credit"]  # checked once: the representative did not change
    [lic] = licences(reg, iid)
    assert lic["address"] == "上海市浦东新区碧波路690号"
