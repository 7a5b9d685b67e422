"""一业一证 · 便利店 (processes/convenience_store) driven end to end through the REST API by the clerks of
the right departments, against the real demo data exchange on 127.0.0.1, with the injected clock.

Applicants are found in the exchange's dataset by what each story needs (an active, trustworthy
enterprise; a blacklisted one; an address closer than 50 m to a tobacco retailer …), several per story."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.exchange_data import tobacco_layout
from tests.exchange_fixtures import configure_exchange, dataset
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture
from tests.web_support import ROOT

PROCESS = ROOT / "processes" / "convenience_store"
ALL_FOUR = {"sells_food": True, "sells_alcohol": True, "sells_tobacco": True, "sells_otc": True,
            "sells_devices": True, "sells_publications": True}
REVIEWS = {"market": "market_review", "tobacco": "tobacco_review", "drug": "drug_review", "culture": "culture_review"}


# ---- applicants from the dataset -------------------------------------------------------------------
def _eligible_codes():
    ds = dataset()
    out = []
    for code, e in ds.enterprises.items():
        if e["status"] != "存续" or code in ds.blacklist or e["legal_rep_id"] in ds.blacklist:
            continue
        if not ds.leases_by_lessee.get(code) and not any(p["owner_code"] == code for p in ds.properties.values()):
            continue
        out.append(code)
    return out


def eligible(n: int, *, tobacco_ok: bool | None = None, offset: int = 0) -> list[dict]:
    """``n`` active, trustworthy enterprises with premises; ``tobacco_ok`` filters on the distance rule."""
    ds = dataset()
    picked = []
    for code in _eligible_codes()[offset:]:
        e = ds.enterprises[code]
        if tobacco_ok is not None:
            far = tobacco_layout(e["address"])["nearest_retailer_m"] >= 50
            if far != tobacco_ok:
                continue
        picked.append(e)
        if len(picked) == n:
            break
    return picked


def application(ent: dict, **answers) -> dict:
    data = {"uscc": ent["uscc"], "shop_address": ent["address"], "contact_name": "钱申请",
            "contact_phone": "13912345678"}
    data.update(answers)
    return data


# ---- API helpers -----------------------------------------------------------------------------------
class Api:
    def __init__(self, client_for):
        self._clients = {}
        self._client_for = client_for

    def client(self, user):
        if user not in self._clients:
            self._clients[user] = self._client_for(user)
        return self._clients[user]

    def get(self, user, url, status=200):
        r = self.client(user).get(url)
        assert r.status_code == status, (url, r.status_code, r.get_data(as_text=True)[:500])
        return r.get_json() if r.is_json else r

    def post(self, user, url, body=None, status=(200, 201)):
        c = self.client(user)
        r = c.post(url, json=body or {}, headers={"X-CSRF-Token": c.csrf})
        ok = status if isinstance(status, tuple) else (status,)
        assert r.status_code in ok, (url, r.status_code, r.get_data(as_text=True)[:800])
        return r.get_json()

    def start(self, data, business_key=None, status=201):
        return self.post("applicant", "/api/v1/instances",
                         {"process_key": "convenience_store", "data": data, "business_key": business_key},
                         status=status)

    def instance(self, iid, user="admin"):
        return self.get(user, f"/api/v1/instances/{iid}")

    def task_of(self, user, iid, bpmn_id):
        tasks = [t for t in self.get(user, f"/api/v1/tasks?instance_id={iid}&scope=all") if t["bpmn_id"] == bpmn_id]
        assert len(tasks) == 1, (bpmn_id, tasks)
        return tasks[0]

    def complete(self, user, iid, bpmn_id, data, decision=None, opinion=None):
        t = self.task_of(user, iid, bpmn_id)
        body = {"data": data}
        if decision:
            body["decision"] = decision
        if opinion:
            body["opinion"] = opinion
        return self.post(user, f"/api/v1/tasks/{t['id']}/complete", body)


@pytest.fixture
def eng(demo_engine, exchange):
    configure_exchange(demo_engine, exchange)
    demo_engine.deploy_paths([PROCESS])
    yield demo_engine
    demo_engine.connector_pool.close()


@pytest.fixture
def api(eng, client_for):
    return Api(client_for)


def open_bpmn_ids(eng, iid):
    return sorted(t["bpmn_id"] for t in eng.tasks(instance_id=iid))


def accept(api, iid, joint=False):
    return api.complete("window_clerk", iid, "accept", {"accept_opinion": "材料齐全，予以受理", "joint_inspection": joint},
                        decision="accept")


def approve_all(api, iid, depts, inspection=None):
    for dept in depts:
        data = {f"{dept}_decision": "approve", f"{dept}_opinion": "符合条件，准予许可"}
        if inspection:
            data[f"{dept}_inspection"] = inspection
        api.complete(f"{dept}_clerk", iid, REVIEWS[dept], data)


def at(y, m, d, h=9):
    return datetime(y, m, d, h, 0, tzinfo=UTC) - timedelta(hours=8)  # Asia/Shanghai wall time


def day(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).__add__(timedelta(hours=8)).date().isoformat()


def blacklisted_with_premises(n: int) -> list[dict]:
    ds = dataset()
    out = [ds.enterprises[c] for c in ds.blacklist if c in ds.enterprises and ds.enterprises[c]["status"] == "存续"]
    return out[:n]


# ---- stories -----------------------------------------------------------------------------------------
def test_happy_path_four_departments_issue_one_licence_with_copies_and_green_clocks(eng, api, clock):
    clock.set(at(2026, 3, 2))  # a Monday
    for ent in eligible(2, tobacco_ok=True):
        iid = api.start(application(ent, **ALL_FOUR))["id"]
        assert open_bpmn_ids(eng, iid) == ["accept"]
        data = api.instance(iid)["data"]
        # pre-filled from the exchange: the applicant typed none of these
        assert data["enterprise_name"] == ent["enterprise_name"] and data["premises_address"] == ent["address"]
        assert data["legal_rep"] == ent["legal_rep"] and data["premises_area_m2"] > 0
        assert data["eligible"] is True and data["refusal_reasons"] == []
        # the window sees the legal representative's ID number masked
        t = api.task_of("window_clerk", iid, "accept")
        view = api.get("window_clerk", f"/api/v1/tasks/{t['id']}")
        assert ent["legal_rep_id"] not in str(view) and ent["legal_rep_id"][:6] + "********" in str(view)
        # the data the service tasks pulled is shown with where and when it came from
        pulled = {p["field"]: p for p in view["pulled"]}
        assert {"enterprise_name", "legal_rep", "legal_rep_id", "premises_address"} <= set(pulled), pulled
        assert pulled["legal_rep_id"]["masked"] and pulled["legal_rep_id"]["value"] == (
            ent["legal_rep_id"][:6] + "********" + ent["legal_rep_id"][-4:])
        assert all(p["at"] and p["connector"] and p["request_id"] for p in pulled.values())
        assert pulled["enterprise_name"]["value"] == ent["enterprise_name"]
        # ... also on the page, and the full value can be asked for with a reason (logged)
        page = api.client("window_clerk").get(f"/tasks/{t['id']}").get_data(as_text=True)
        assert 'id="pulled-data"' in page and 'data-field="legal_rep_id"' in page
        assert ent["legal_rep_id"] not in page
        assert eng.unmask(t["id"], "legal_rep_id", "window_clerk", "核对身份")["value"] == ent["legal_rep_id"]
        # the case view masks it for everybody but administrators
        for who in ("window_clerk", "monitor"):
            shown = api.get(who, f"/api/v1/instances/{iid}")
            assert shown["masked"] and ent["legal_rep_id"] not in str(shown), who
            assert shown["data"]["legal_rep_id"] == ent["legal_rep_id"][:6] + "********" + ent["legal_rep_id"][-4:]
        assert api.get("admin", f"/api/v1/instances/{iid}")["data"]["legal_rep_id"] == ent["legal_rep_id"]
        accept(api, iid)
        assert open_bpmn_ids(eng, iid) == sorted(REVIEWS.values())
        data = api.instance(iid)["data"]
        assert data["need_market"] and data["need_tobacco"] and data["need_drug"] and data["need_culture"]
        assert data["nearest_retailer_m"] >= 50 and data["tobacco_too_close"] is False
        # a department clerk sees only the tasks of their department
        assert {t["bpmn_id"] for t in api.get("drug_clerk", f"/api/v1/tasks?instance_id={iid}")} == {"drug_review"}
        clock.advance(hours=3)
        approve_all(api, iid, REVIEWS)
        inst = api.instance(iid)
        assert inst["status"] == "completed", inst
        data = inst["data"]
        assert data["outcome"] == "issued" and data["refusal_reasons"] == []
        items = ["食品经营许可", "烟草专卖零售许可", "药品经营许可（乙类非处方药）", "第二类医疗器械经营备案",
                 "出版物经营许可"]
        assert data["licence_items"] == items and data["licence_status"] == "valid"
        # the licence record (contract A), its PDF and the public verification page
        [lic] = api.get("admin", f"/api/v1/licences?instance_id={iid}")
        assert lic["licence_no"] == data["licence_no"] and lic["holder"] == ent["enterprise_name"]
        assert lic["holder_code"] == ent["uscc"] and lic["items"] == items and lic["address"] == ent["address"]
        assert lic["name"] == "行业综合许可证（便利店）" and lic["status"] == "valid"
        assert lic["valid_to"][:4] == str(int(lic["valid_from"][:4]) + 5)
        pdf = api.client("admin").get(f"/api/v1/licences/{lic['licence_no']}/pdf")
        assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data[:5] == b"%PDF-"
        public = api.client("admin").application.test_client()
        page = public.get(f"/verify/{lic['licence_no']}?c={lic['verify_code']}")
        assert page.status_code == 200 and "有效" in page.get_data(as_text=True)
        assert ent["enterprise_name"] in page.get_data(as_text=True)
        # 抄送: every member of the four departments got a copy with a read receipt
        copies = api.get("admin", f"/api/v1/instances/{iid}/cc")
        to = {c["user"] for c in copies}
        assert {"market_clerk", "tobacco_clerk", "drug_clerk", "culture_clerk"} <= to
        assert "window_clerk" not in to and "fire_clerk" not in to
        mine = [c for c in api.get("tobacco_clerk", "/api/v1/to-read") if c["instance_id"] == iid]
        assert len(mine) == 1 and not mine[0]["read"]
        api.post("tobacco_clerk", f"/api/v1/to-read/{mine[0]['id']}/read")
        receipts = {c["user"]: c["read"] for c in api.get("admin", f"/api/v1/instances/{iid}/cc")}
        assert receipts["tobacco_clerk"] is True and receipts["market_clerk"] is False
        # SLA: the case and every step finished green, and every clock is closed
        st = eng.sla_status(iid)
        assert st["instance"]["state"] == "green" and st["instance"]["status"] == "stopped"
        assert {t["bpmn_id"] for t in st["tasks"]} == {"accept", *REVIEWS.values()}
        assert all(t["state"] == "green" and t["status"] == "stopped" for t in st["tasks"])
        actions = [e["action"] for e in api.get("admin", f"/api/v1/instances/{iid}/audit")]
        assert {"licence.issue", "cc", "cc.read", "end"} <= set(actions)
    assert api.get("monitor", "/api/v1/audit/verify")["ok"] is True
    assert eng.verify_audit().ok


def test_eligibility_gate_refuses_with_every_reason_that_applies(eng, api):
    # 严重失信 enterprises from the dataset
    for ent in blacklisted_with_premises(3):
        iid = api.start(application(ent, sells_food=True))["id"]
        inst = api.instance(iid)
        assert inst["status"] == "completed" and inst["open_tasks"] == []
        data = inst["data"]
        assert data["outcome"] == "refused" and data["eligible"] is False
        assert "申请企业被列入严重失信主体名单" in data["refusal_reasons"]
        assert "ENTERPRISE_BLACKLISTED" in data["refusal_codes"]
        assert api.get("admin", f"/api/v1/licences?instance_id={iid}") == []
    # address mismatch: both the business licence and the premises record disagree
    for ent in eligible(2, offset=5):
        iid = api.start(application(ent, sells_food=True, shop_address=ent["address"] + "附1号"))["id"]
        data = api.instance(iid)["data"]
        assert data["outcome"] == "refused"
        assert data["refusal_reasons"] == ["申报的经营场所与营业执照登记的住所不一致",
                                           "申报的经营场所与产权或租赁备案登记的地址不一致"]
    # whitespace does not count as a difference
    [ent] = eligible(1, offset=9)
    spaced = " ".join(ent["address"]) + "  "
    iid = api.start(application(ent, sells_food=True, shop_address=spaced))["id"]
    assert open_bpmn_ids(eng, iid) == ["accept"]
    # several reasons at once: blacklisted and a wrong address and nothing to license
    [bad] = blacklisted_with_premises(1)
    iid = api.start(application(bad, shop_address="示范市无名路1号"))["id"]
    codes = api.instance(iid)["data"]["refusal_codes"]
    assert codes == ["ENTERPRISE_BLACKLISTED", "ADDRESS_MISMATCH_LICENCE", "ADDRESS_MISMATCH_PREMISES",
                     "NO_PERMIT_NEEDED"]
    # deregistered (注销) enterprises
    ds = dataset()
    for ent in [e for c, e in ds.enterprises.items() if e["status"] == "注销" and c not in ds.blacklist
                and e["legal_rep_id"] not in ds.blacklist][:2]:
        data = api.instance(api.start(application(ent, sells_otc=True))["id"])["data"]
        assert data["outcome"] == "refused" and data["refusal_codes"] == ["ENTERPRISE_NOT_ACTIVE"]
        assert data["refusal_reasons"] == ["营业执照登记状态不是“存续”"]
    # an enterprise the registry does not know (a well-formed code)
    ds = dataset()
    code = next(c[:-1] + ch for c in ds.enterprises for ch in "0123456789ABCDEFGHJKLMNPQRTUWXY"
                if c[:-1] + ch not in ds.enterprises)
    iid = api.start(application({"uscc": code, "address": "示范市世纪大道1号"}, sells_food=True))["id"]
    data = api.instance(iid)["data"]
    assert data["outcome"] == "refused"
    assert data["refusal_codes"] == ["ENTERPRISE_NOT_FOUND", "NO_PREMISES"]


def test_legal_representative_on_the_blacklist_is_refused(eng, api):
    ds = dataset()
    ents = [e for c, e in ds.enterprises.items() if e["legal_rep_id"] in ds.blacklist and c not in ds.blacklist
            and e["status"] == "存续"][:2]
    assert ents, "the dataset has enterprises whose legal representative is on the list"
    for ent in ents:
        data = api.instance(api.start(application(ent, sells_food=True))["id"])["data"]
        assert data["outcome"] == "refused" and data["refusal_codes"] == ["LEGAL_REP_BLACKLISTED"]
        assert data["refusal_reasons"] == ["法定代表人被列入严重失信主体名单"]


def test_supplement_loop_pauses_the_clock_and_moves_the_deadline(eng, api, clock):
    clock.set(at(2026, 3, 2))  # Monday
    [ent] = eligible(1, offset=12)
    iid = api.start(application(ent, sells_food=True, sells_alcohol=True))["id"]
    before = eng.sla_status(iid)["instance"]
    assert day(before["due_at"]) == "2026-03-09"  # 5 working days from the day after: 3,4,5,6,9
    t = api.task_of("window_clerk", iid, "accept")
    api.post("window_clerk", f"/api/v1/tasks/{t['id']}/return-to-applicant",
             {"opinion": "请补充联系人身份证明和可联系的电话", "fields": ["contact_name", "contact_phone"]})
    assert api.get("admin", f"/api/v1/tasks/{t['id']}")["status"] == "supplement"
    assert eng.sla_status(iid)["instance"]["status"] == "paused"
    assert api.get("window_clerk", f"/api/v1/tasks?instance_id={iid}") == []  # out of the inbox
    clock.set(at(2026, 3, 5, 10))  # Thursday: 3 working days waiting for the applicant
    eng.run_due_jobs()
    assert eng.supervision_cards(instance_id=iid) == []
    # only the applicant may supplement
    api.post("window_clerk", f"/api/v1/instances/{iid}/supplement", {"data": {"contact_phone": "13800001111"}},
             status=403)
    api.post("applicant", f"/api/v1/instances/{iid}/supplement",
             {"data": {"contact_name": "钱补正", "contact_phone": "13800001111"}})
    after = eng.sla_status(iid)["instance"]
    assert after["status"] == "running"
    # paused from Monday to Thursday: 3 working days (3, 4, 5 March) do not count
    assert day(after["due_at"]) == "2026-03-12"
    accept(api, iid)
    assert open_bpmn_ids(eng, iid) == ["market_review"]
    approve_all(api, iid, ["market"])
    data = api.instance(iid)["data"]
    assert data["outcome"] == "issued" and data["contact_name"] == "钱补正"
    assert data["licence_items"] == ["食品经营许可"]
    kinds = [o["kind"] for o in api.get("admin", f"/api/v1/instances/{iid}/opinions")]
    assert "return_applicant" in kinds and "supplement" in kinds


def test_a_late_department_goes_yellow_then_red_and_is_escalated(eng, api, clock):
    clock.set(at(2026, 3, 2))  # Monday
    [ent] = eligible(1, offset=15)
    iid = api.start(application(ent, sells_food=True, sells_publications=True))["id"]
    accept(api, iid)
    api.complete("culture_clerk", iid, "culture_review",
                 {"culture_decision": "approve", "culture_opinion": "符合出版物零售条件"})
    market = api.task_of("market_clerk", iid, "market_review")
    step = next(t for t in eng.sla_status(iid)["tasks"] if t["bpmn_id"] == "market_review")
    assert day(step["due_at"]) == "2026-03-05" and step["state"] == "green"  # promised 3 working days
    clock.set(at(2026, 3, 5, 10))  # 2 of 3 working days used up (3 and 4 March): yellow
    eng.run_due_jobs()
    step = next(t for t in eng.sla_status(iid)["tasks"] if t["bpmn_id"] == "market_review")
    assert step["state"] == "yellow"
    cards = eng.supervision_cards(instance_id=iid)
    assert [(c["color"], c["task_id"]) for c in cards] == [("yellow", market["id"])]
    clock.set(at(2026, 3, 6, 10))  # the deadline (end of 5 March) has passed: red, 催办
    eng.run_due_jobs()
    step = next(t for t in eng.sla_status(iid)["tasks"] if t["bpmn_id"] == "market_review")
    assert step["state"] == "red"
    assert "red" in [c["color"] for c in eng.supervision_cards(instance_id=iid) if c["task_id"] == market["id"]]
    clock.set(at(2026, 3, 9, 10))  # one working day after the deadline: raised to the parent department
    eng.run_due_jobs()
    log = [e for e in eng.escalation_log(instance_id=iid) if e.get("task_id") == market["id"]]
    assert {"notify", "remind", "raise"} <= {e["action"] for e in log}
    case = eng.sla_status(iid)["instance"]
    assert case["state"] in ("yellow", "red")  # the case (promised 5 days, due 9 March) is late too
    # the late department finally decides; the step is closed red, the licence is issued
    api.complete("market_clerk", iid, "market_review", {"market_decision": "approve", "market_opinion": "同意"})
    data = api.instance(iid)["data"]
    assert data["outcome"] == "issued" and data["licence_items"] == ["食品经营许可", "出版物经营许可"]
    step = next(t for t in eng.sla_status(iid)["tasks"] if t["bpmn_id"] == "market_review")
    assert step["state"] == "red" and step["status"] == "stopped"
    assert eng.verify_audit().ok


def test_tobacco_distance_rule_refuses_the_tobacco_permit_automatically(eng, api):
    close = eligible(2, tobacco_ok=False)
    assert len(close) == 2
    for ent in close:
        metres = tobacco_layout(ent["address"])["nearest_retailer_m"]
        iid = api.start(application(ent, sells_food=True, sells_tobacco=True))["id"]
        accept(api, iid)
        assert open_bpmn_ids(eng, iid) == ["market_review"]  # no tobacco clerk decision needed
        approve_all(api, iid, ["market"])
        data = api.instance(iid)["data"]
        assert data["outcome"] == "issued" and data["licence_items"] == ["食品经营许可"]
        assert data["tobacco_decision"] == "reject" and data["tobacco_too_close"] is True
        assert data["refused_permits"] == ["烟草专卖零售许可"] and data["refusal_codes"] == ["TOBACCO_DISTANCE"]
        [reason] = data["refusal_reasons"]
        assert reason.startswith("烟草专卖零售许可：") and f"{metres}米" in reason and "不足50米" in reason
    # tobacco alone and too close: nothing to license, the case is refused
    [ent] = eligible(1, tobacco_ok=False, offset=40)
    iid = api.start(application(ent, sells_tobacco=True))["id"]
    accept(api, iid)
    data = api.instance(iid)["data"]
    assert data["outcome"] == "refused" and data["licence_items"] == []
    assert api.get("admin", f"/api/v1/licences?instance_id={iid}") == []


def test_joint_inspection_is_scheduled_before_the_reviews(eng, api):
    [ent] = eligible(1, tobacco_ok=True, offset=20)
    iid = api.start(application(ent, sells_food=True, sells_tobacco=True, sells_otc=True))["id"]
    accept(api, iid, joint=True)
    assert open_bpmn_ids(eng, iid) == ["schedule_inspection"]
    assert api.instance(iid)["data"]["inspection_departments"] == ["market", "tobacco", "drug"]
    api.complete("market_clerk", iid, "schedule_inspection", {"inspection_date": "2026-01-08",
                                                              "inspection_note": "三部门同时到场"})
    assert open_bpmn_ids(eng, iid) == ["drug_review", "market_review", "tobacco_review"]
    approve_all(api, iid, ["market", "tobacco"], inspection="pass")
    api.complete("drug_clerk", iid, "drug_review", {"drug_decision": "reject", "drug_opinion": "药品陈列区不符合要求",
                                                    "drug_inspection": "fail"})
    data = api.instance(iid)["data"]
    assert data["inspection_date"] == "2026-01-08" and data["market_inspection"] == "pass"
    assert data["drug_inspection"] == "fail"
    assert data["outcome"] == "issued" and data["licence_items"] == ["食品经营许可", "烟草专卖零售许可"]
    assert data["refusal_reasons"] == ["药品经营许可（乙类非处方药）：药品陈列区不符合要求"]


def test_every_department_refusing_ends_the_case_refused_with_their_reasons(eng, api):
    [ent] = eligible(1, offset=25)
    iid = api.start(application(ent, sells_food=True, sells_publications=True))["id"]
    accept(api, iid)
    api.complete("market_clerk", iid, "market_review", {"market_decision": "reject", "market_opinion": "无冷藏设施"})
    api.complete("culture_clerk", iid, "culture_review", {"culture_decision": "reject", "culture_opinion": "无出版物陈列区"})
    data = api.instance(iid)["data"]
    assert data["outcome"] == "refused" and data["licence_items"] == []
    assert data["refusal_reasons"] == ["食品经营许可：无冷藏设施", "出版物经营许可：无出版物陈列区"]


def test_window_may_refuse_to_accept_with_an_opinion(eng, api):
    [ent] = eligible(1, offset=30)
    iid = api.start(application(ent, sells_food=True))["id"]
    t = api.task_of("window_clerk", iid, "accept")
    r = api.post("window_clerk", f"/api/v1/tasks/{t['id']}/complete", {"data": {}, "decision": "reject"}, status=400)
    assert "accept_opinion" in r["fields"]
    api.complete("window_clerk", iid, "accept", {"accept_opinion": "申请事项不属于本机关职权范围"}, decision="reject")
    data = api.instance(iid)["data"]
    assert data["outcome"] == "not_accepted" and data["refusal_reasons"] == ["申请事项不属于本机关职权范围"]


def test_commitment_licence_same_day_then_a_failed_post_check_revokes_it(eng, api, clock):
    clock.set(at(2026, 3, 2))
    for i, ent in enumerate(eligible(2, tobacco_ok=True, offset=50)):
        iid = api.start(application(ent, sells_food=True, sells_tobacco=True, commitment=True))["id"]
        accept(api, iid)
        data = api.instance(iid)["data"]
        # issued at once: no department review before the licence
        assert data["outcome"] == "issued" and data["licence_status"] == "valid"
        assert data["licence_items"] == ["食品经营许可", "烟草专卖零售许可"] and data["approval_mode"] == "commitment"
        assert open_bpmn_ids(eng, iid) == []
        assert not [t for t in eng.tasks(instance_id=iid, status="all") if t["bpmn_id"].endswith("_review")]
        [lic] = api.get("admin", f"/api/v1/licences?instance_id={iid}")
        assert lic["issued_on"] == "2026-03-02"
        assert {c["user"] for c in api.get("admin", f"/api/v1/instances/{iid}/cc")} >= {"market_clerk", "tobacco_clerk"}
        # nothing happens before three months
        clock.set(at(2026, 5, 29))
        eng.run_due_jobs()
        assert open_bpmn_ids(eng, iid) == []
        assert eng.sla_status(iid)["instance"]["state"] == "green"  # the commitment period does not count
        clock.set(at(2026, 6, 3))
        eng.run_due_jobs()
        assert open_bpmn_ids(eng, iid) == ["post_check"]
        if i == 0:
            api.complete("market_clerk", iid, "post_check", {"post_check_result": "fail",
                                                             "post_check_opinion": "现场无冷藏设施，与承诺不符"})
            data = api.instance(iid)["data"]
            assert data["outcome"] == "revoked" and data["licence_status"] == "revoked"
            lic = api.get("admin", f"/api/v1/licences/{lic['licence_no']}")
            assert lic["status"] == "revoked" and "与承诺不符" in lic["revoke_reason"]
            page = api.client("admin").application.test_client().get(
                f"/verify/{lic['licence_no']}?c={lic['verify_code']}")
            assert "已撤销" in page.get_data(as_text=True)
            assert api.get("admin", f"/api/v1/verify/{lic['licence_no']}?c={lic['verify_code']}")["status"] == "revoked"
        else:
            api.complete("market_clerk", iid, "post_check", {"post_check_result": "pass", "post_check_opinion": "符合承诺"})
            data = api.instance(iid)["data"]
            assert data["outcome"] == "issued" and data["post_check_status"] == "passed"
            assert api.get("admin", f"/api/v1/licences/{lic['licence_no']}")["status"] == "valid"
        assert api.instance(iid)["status"] == "completed"
        clock.set(at(2026, 3, 2))
    assert eng.verify_audit().ok


def test_bad_start_data_is_refused_with_the_fields(eng, api):
    [ent] = eligible(1)
    r = api.start({"shop_address": ent["address"], "contact_name": "钱申请", "contact_phone": "12345",
                   "sells_food": "maybe"}, status=(400, 422))
    assert r["error"] == "validation"
    assert {"uscc", "contact_phone", "sells_food"} <= set(r["fields"])
    r = api.start(application(ent, uscc="91310000ABC"), status=(400, 422))
    assert set(r["fields"]) == {"uscc"}
    assert api.get("admin", "/api/v1/instances?process_key=convenience_store") == []
