"""The exchange operations of the process library (tobacco layout, registration pushes) and the
demo org of the library's departments."""

from __future__ import annotations

import threading
from datetime import datetime

import httpx
import pytest

from connectors.exchange_data import OPERATIONS, tobacco_layout
from connectors.exchange_server import ExchangeApp
from engine.connectors import Operation, check_output
from tests.exchange_fixtures import API_KEY, dataset, good_enterprise
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - the fixture

KEY = {"X-API-Key": API_KEY}


def q(ex, op, body, headers=KEY):
    return httpx.post(f"{ex.url}/api/v1/query/{op}", json=body, headers=headers, timeout=5.0)


def pushes(ex, **params):
    r = httpx.get(f"{ex.url}/api/v1/pushes", params=params, headers=KEY, timeout=5.0)
    assert r.status_code == 200, r.text
    return r.json()


# ---- tobacco_layout -----------------------------------------------------------------------
def test_tobacco_layout_is_deterministic_and_about_15_percent_are_too_close():
    addresses = [e["address"] for e in list(dataset().enterprises.values())[:2000]]
    answers = [tobacco_layout(a) for a in addresses]
    assert answers == [tobacco_layout(a) for a in addresses]  # the same address, the same answer
    close = sum(a["nearest_retailer_m"] < 50 for a in answers)
    assert 0.11 * len(answers) <= close <= 0.19 * len(answers), close
    for a in answers:
        assert a["found"] is True and a["nearest_retailer"]
        assert 0 < a["nearest_retailer_m"] < 500
        assert isinstance(a["retailers_within_100m"], int)
        # at least the nearest one is within 100 m when it is closer than 100 m; none otherwise
        assert (a["retailers_within_100m"] >= 1) == (a["nearest_retailer_m"] < 100)
    # both sides of the 50 m rule occur, and whitespace does not change the place
    assert any(a["nearest_retailer_m"] >= 50 for a in answers)
    assert tobacco_layout(" 上海市浦东新区 世纪大道100号 ") == tobacco_layout("上海市浦东新区世纪大道100号")
    assert tobacco_layout("   ") == {"found": False}


def test_tobacco_layout_does_not_depend_on_the_process_hash_seed():
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("from connectors.exchange_data import tobacco_layout;"
            "print(tobacco_layout('上海市浦东新区张杨路500号3层'))")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin"}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and str(tobacco_layout("上海市浦东新区张杨路500号3层")) in outs.pop()


def test_tobacco_layout_over_http_matches_its_schema(exchange):
    address = good_enterprise()["address"]
    r = q(exchange, "tobacco_layout", {"address": address})
    assert r.status_code == 200
    data = r.json()["data"]
    assert data == tobacco_layout(address)
    title, ins, outs = OPERATIONS["tobacco_layout"]
    assert check_output(Operation("tobacco_layout", title, ins, outs), data) is data
    assert set(data) <= set(outs["properties"])
    assert q(exchange, "tobacco_layout", {}).status_code == 400
    assert q(exchange, "tobacco_layout", {"address": address}, headers={}).status_code == 401
    names = httpx.get(f"{exchange.url}/api/v1/operations", headers=KEY).json()["operations"]
    assert {"tobacco_layout", "push_registration"} <= set(names)


# ---- push_registration --------------------------------------------------------------------
def test_a_push_is_recorded_and_a_repeat_returns_the_same_receipt(exchange):
    ent = good_enterprise(2)
    body = {"department": "税务", "uscc": ent["uscc"], "enterprise_name": ent["enterprise_name"],
            "items": "税务登记信息确认"}
    first = q(exchange, "push_registration", body).json()["data"]
    assert first["found"] is True and first["received"] is True and first["department"] == "税务"
    assert first["receipt_no"].startswith("HZ税务") and first["receipt_no"][-8:].isdigit()
    datetime.fromisoformat(first["received_at"])
    title, ins, outs = OPERATIONS["push_registration"]
    assert check_output(Operation("push_registration", title, ins, outs), first) is first
    assert set(first) <= set(outs["properties"])

    again = q(exchange, "push_registration", {**body, "items": "重复推送"}).json()["data"]
    assert again["receipt_no"] == first["receipt_no"] and again["received_at"] == first["received_at"]

    other = q(exchange, "push_registration", {**body, "department": "人力社保"}).json()["data"]
    assert other["receipt_no"] != first["receipt_no"] and other["receipt_no"].startswith("HZ人力社保")

    listed = pushes(exchange, uscc=ent["uscc"])
    assert listed["count"] == 2
    assert [p["department"] for p in listed["pushes"]] == ["税务", "人力社保"]
    tax = listed["pushes"][0]
    assert tax["receipt_no"] == first["receipt_no"] and tax["enterprise_name"] == ent["enterprise_name"]
    assert tax["items"] == "税务登记信息确认" and tax["repeats"] == 1  # the first push's content is kept
    assert pushes(exchange, uscc=ent["uscc"], department="人力社保")["pushes"][0]["receipt_no"] == other["receipt_no"]
    assert pushes(exchange, uscc=ent["uscc"].lower())["count"] == 2
    assert pushes(exchange, uscc="91310115MA1H70000X")["count"] == 0
    assert httpx.get(f"{exchange.url}/api/v1/pushes").status_code == 401


def test_a_push_needs_department_and_uscc(exchange):
    assert q(exchange, "push_registration", {"uscc": good_enterprise()["uscc"]}).status_code == 400
    assert q(exchange, "push_registration", {"department": "统计"}).status_code == 400
    assert pushes(exchange)["count"] == 0


def test_pushes_are_recorded_once_under_concurrency():
    app = ExchangeApp(dataset(), api_key="k", clock=lambda: datetime(2025, 3, 3, 9, 30))
    receipts = []

    def push(i):
        receipts.append(app.push({"department": ["税务", "统计"][i % 2], "uscc": "91310115MA1H70000X"}))

    threads = [threading.Thread(target=push, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["receipt_no"] for r in receipts}) == 2
    listed = app.pushes()
    assert sorted(r["receipt_no"] for r in listed) == ["HZ税务00000001", "HZ统计00000002"] or \
        sorted(r["receipt_no"] for r in listed) == ["HZ税务00000002", "HZ统计00000001"]
    assert all(r["received_at"] == "2025-03-03T09:30:00" for r in listed)
    assert sum(r["repeats"] for r in listed) == 38


def test_the_exchange_connector_pushes_over_http(exchange):
    from engine.connectors import default_registry

    conn = default_registry().new("exchange", {"base_url": exchange.url, "retries": 0}, {"api_key": API_KEY})
    result = conn.call("push_registration", {
        "department": "统计", "uscc": "91310115MA1H70000X", "enterprise_name": "示范新设有限公司", "items": "统计登记"})
    assert result.data["received"] and result.data["receipt_no"].startswith("HZ统计")
    assert pushes(exchange, department="统计")["pushes"][0]["enterprise_name"] == "示范新设有限公司"


def test_the_embedded_exchange_records_pushes_too():
    from connectors.exchange import embedded_app
    from engine.connectors import default_registry

    conn = default_registry().new("exchange")
    uscc = "91310115MA1H7EMB0X"
    answer = conn.call("push_registration", {"department": "住房公积金", "uscc": uscc}).data
    assert answer["received"]
    assert [p["receipt_no"] for p in embedded_app().pushes(uscc=uscc)] == [answer["receipt_no"]]
    layout = conn.call("tobacco_layout", {"address": "上海市浦东新区世纪大道100号"}).data
    assert layout == tobacco_layout("上海市浦东新区世纪大道100号")


# ---- the demo org of the library ----------------------------------------------------------
def test_demo_org_has_the_library_departments_groups_and_clerks(engine):
    from cli.demo import DEMO_PASSWORD, GROUPS, USERS, seed

    seed(engine, processes=False)
    groups = {g["name"]: g for g in engine.groups()}
    depts = {d["code"]: d["name"] for d in engine.departments()}
    expected = {"culture": "文化和旅游局", "fire": "消防救援大队", "urban": "城市管理局", "registry": "市场监管局",
                "tax": "税务局", "social": "人力资源和社会保障局", "stats": "统计局", "health": "卫生健康委",
                "fund": "住房公积金中心"}
    for group, dept_name in expected.items():
        assert depts[groups[group]["department"]].endswith(dept_name), group
        clerk = engine.user(f"{group}_clerk")
        assert clerk["groups"] == [group] and clerk["roles"] == ["clerk"]
        assert engine.sign_in(f"{group}_clerk", DEMO_PASSWORD)
    assert groups["registry"]["department"] == groups["market"]["department"]
    applicant = engine.user("applicant")
    assert applicant["display_name"] == "钱申请" and applicant["groups"] == [] and applicant["roles"] == ["clerk"]
    assert set(engine.user("admin")["groups"]) == set(GROUPS)
    assert all(f"{g}_clerk" in USERS for g in expected)


def test_seed_adds_new_groups_to_existing_demo_users_without_touching_passwords(engine):
    from cli.demo import GROUPS, seed

    engine.add_user("admin", ["window"], "系统管理员", roles=["admin"], password="own-password-1")
    seed(engine, processes=False)
    seed(engine, processes=False)  # idempotent
    assert set(engine.user("admin")["groups"]) == set(GROUPS)
    assert engine.sign_in("admin", "own-password-1")


def test_a_broken_library_folder_is_reported_and_skipped(engine, tmp_path):
    from cli.demo import deploy_library, library_folders

    good = tmp_path / "processes" / "a_good"
    bad = tmp_path / "processes" / "b_bad"
    empty = tmp_path / "processes" / "c_no_bpmn"
    for d in (good, bad, empty):
        d.mkdir(parents=True)
    (empty / "README.md").write_text("nothing to deploy")
    (good / "p.bpmn").write_text(_BPMN.format(key="lib_good", flow='sourceRef="s" targetRef="e"'))
    (bad / "p.bpmn").write_text(_BPMN.format(key="lib_bad", flow='sourceRef="s" targetRef="nowhere"'))
    assert library_folders(tmp_path) == [good, bad]
    said = []
    deployed = deploy_library(engine, tmp_path, report=said.append)
    assert [d.key for d in deployed] == ["lib_good"]
    assert len(said) == 1 and "b_bad" in said[0] and "NOT DEPLOYED" in said[0]
    assert "p.bpmn" in said[0]  # located: the file (and line/element) of the problem
    assert {d["key"] for d in engine.definitions()} == {"lib_good"}


_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f" {flow}/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.parametrize("name", ["tobacco_layout", "push_registration"])
def test_the_flow_check_knows_the_new_operations(name):
    from engine.connectors import default_registry

    ops = default_registry().unconfigured("exchange").operations()
    assert name in ops and ops[name].output_schema["properties"]
