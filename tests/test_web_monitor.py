"""Monitor pages (电子监察) and the SLA box of the clerk pages, through the Flask test client:
role checks, the dashboard's numbers in a scenario built by moving the clock (yellow, red, an
escalation fired by the worker), org-subtree scoping, xlsx/CSV exports, extension and pause
through the pages with CSRF."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from cli.demo import DEMO_PASSWORD

SH = ZoneInfo("Asia/Shanghai")

# a case clock (promised 10 workdays) and two steps: 审查 by the window (zwfw), with yellow and due
# points, and 决定 by the approval group (zwfw) without a chain
MON_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="Defs_mon" targetNamespace="urn:tongban:tests">
  <bpmn:process id="mon_licence" name="监察测试许可" isExecutable="true">
    <bpmn:extensionElements>
      <tb:sla statutory="20" promised="10" unit="workday"/>
      <tb:escalation at="due" action="notify" target="group:leader" scope="instance"/>
    </bpmn:extensionElements>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="check" name="受理审查" tb:candidateGroups="window">
      <bpmn:extensionElements>
        <tb:sla statutory="5" promised="4" unit="workday" warn="0.8" approver="leader"/>
        <tb:escalation at="yellow" action="notify"/>
        <tb:escalation at="due" action="remind,raise"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:userTask id="decide" name="审批决定" tb:candidateGroups="approval">
      <bpmn:extensionElements><tb:sla limit="3" unit="workday"/></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="decide"/>
    <bpmn:sequenceFlow id="f3" sourceRef="decide" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

# one step of the market regulator (scj), 2 workdays, notified at the deadline
MARKET_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="Defs_mkt" targetNamespace="urn:tongban:tests">
  <bpmn:process id="mon_market" name="市场监管核查" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="inspect" name="现场核查" tb:candidateGroups="market">
      <bpmn:extensionElements>
        <tb:sla limit="2" unit="workday"/>
        <tb:escalation at="due" action="notify"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="inspect"/>
    <bpmn:sequenceFlow id="f2" sourceRef="inspect" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

PLAIN_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="Defs_plain" targetNamespace="urn:tongban:tests">
  <bpmn:process id="mon_plain" name="无时限事项" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="note" name="登记" tb:candidateGroups="window">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="note"/>
    <bpmn:sequenceFlow id="f2" sourceRef="note" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def at(y, m, d, h=9, mi=0):
    return datetime(y, m, d, h, mi, tzinfo=SH)


def build_scenario(eng, clock) -> dict:
    """Monday 2 March 2026: cases A and B of mon_licence, C of mon_market. B's 审查 is done the same
    afternoon (6 hours). On Friday 6 March 10:00, after the worker ran:
    A 审查 yellow (warn after 3 workdays = end of Thu 5, due end of Fri 6) — its yellow point fired;
    B 决定 red (3 workdays from 2 March = end of Thu 5), no chain; C 现场核查 red (end of Wed 4) —
    its due point fired (a red card and a notify). Both cases are green (promised 10 → 16 March)."""
    eng.deploy({"mon_licence.bpmn": MON_BPMN.encode(), "mon_market.bpmn": MARKET_BPMN.encode()})
    eng.add_user("scj_monitor", [], "市监察", roles=["monitor"], password=DEMO_PASSWORD, department="sx.sz.kf.scj")
    clock.set(at(2026, 3, 2, 9))
    a = eng.start("mon_licence", {}, actor="window_clerk")["instance_id"]
    b = eng.start("mon_licence", {}, actor="window_clerk")["instance_id"]
    c = eng.start("mon_market", {}, actor="window_clerk")["instance_id"]
    clock.set(at(2026, 3, 2, 15))
    b_check = eng.tasks(instance_id=b)[0]
    eng.claim(b_check["id"], "window_clerk")
    eng.complete(b_check["id"], "window_clerk", {})
    clock.set(at(2026, 3, 6, 10))
    fired = eng.run_due_jobs("test")
    return {"a": a, "b": b, "c": c, "fired": fired,
            "a_check": eng.tasks(instance_id=a)[0], "b_decide": eng.tasks(instance_id=b)[0],
            "c_inspect": eng.tasks(instance_id=c)[0]}


@pytest.fixture
def scenario(demo_engine, clock):
    return build_scenario(demo_engine, clock)


def html_of(r) -> str:
    assert r.status_code == 200, (r.status_code, r.get_data(as_text=True)[:500])
    return r.get_data(as_text=True)


def row_ids(html: str, table: str, attr: str) -> list[str]:
    body = re.search(rf'<table id="{table}">(.*?)</table>', html, re.S)
    assert body, f"no table {table}"
    return re.findall(rf'{attr}="([^"]*)"', body.group(1))


def stat(html: str, clock_kind: str, st: str) -> int:
    m = re.search(rf'data-clock="{clock_kind}" data-state="{st}"><b>(\d+)</b>', html)
    assert m, (clock_kind, st)
    return int(m.group(1))


def test_only_monitors_and_admins_open_the_dashboard(client_for, app):
    assert client_for("window_clerk").get("/monitor/").status_code == 403
    assert client_for("window_clerk").get("/monitor/export/log.csv").status_code == 403
    assert client_for("window_clerk").get("/monitor/heatmap.json?process=approval_chain").status_code == 403
    assert client_for("designer").get("/monitor/").status_code == 403
    assert app.test_client().get("/monitor/").status_code == 302  # to the sign-in page
    assert "sla-totals" in html_of(client_for("monitor").get("/monitor/"))
    assert "sla-totals" in html_of(client_for("admin").get("/monitor/"))


def test_dashboard_numbers_after_yellow_red_and_an_escalation(scenario, client_for, demo_engine):
    s = scenario
    assert s["fired"] == {"done": 2}  # A's yellow point and C's due point
    html = html_of(client_for("monitor").get("/monitor/"))  # 示范市: the whole demo tree below it
    assert 'data-scope="sx.sz"' in html
    assert (stat(html, "steps", "red"), stat(html, "steps", "yellow"), stat(html, "steps", "green")) == (2, 1, 0)
    assert (stat(html, "cases", "red"), stat(html, "cases", "yellow")) == (0, 0)
    by_dept = re.findall(r'<tr data-dept="([^"]*)"><td>[^<]*</td><td>\d</td>\s*<td class="red-count[^"]*">(\d+)</td>'
                         r'<td class="yellow-count">(\d+)</td>', html)
    assert sorted(by_dept) == [("sx.sz.kf.scj", "1", "0"), ("sx.sz.kf.zwfw", "1", "1")]
    level3 = re.search(r'<tr data-level="3"><td>[^<]*</td><td class="red-count">(\d+)</td><td class="yellow-count">(\d+)',
                       html)
    assert level3 and level3.groups() == ("2", "1")
    # overdue steps with who holds them; no overdue case
    assert sorted(row_ids(html, "overdue-steps", "data-task")) == sorted(
        [str(s["b_decide"]["id"]), str(s["c_inspect"]["id"])])
    steps = re.search(r'<table id="overdue-steps">(.*?)</table>', html, re.S).group(1)
    assert "approval" in steps and "market" in steps
    assert row_ids(html, "overdue-cases", "data-instance") == []
    # handling time: B's 审查 took 6 hours
    handling = re.search(r'data-step="mon_licence:check">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="count">1</td>' in handling and '<td class="avg">6.0</td>' in handling
    assert '<td class="p90">6.0</td>' in handling
    # the escalation log and the cards
    assert sorted(row_ids(html, "escalation-log", "data-action")) == ["notify", "notify"]
    assert sorted(row_ids(html, "cards", "data-color")) == ["red", "yellow"]
    red_only = html_of(client_for("monitor").get("/monitor/?card=red"))
    assert row_ids(red_only, "cards", "data-color") == ["red"]
    # the weekly trend handed to the chart: this week has one yellow and one red card
    data = re.search(r'<script type="application/json" id="sla-data">(.*?)</script>', html, re.S).group(1)
    trend = json.loads(data)["trend"]
    assert trend["weeks"][-1] == "2026-03-02" and trend["yellow"][-1] == 1 and trend["red"][-1] == 1
    assert len(trend["weeks"]) == 8
    # the first dashboard still works: the overdue open tasks by deadline
    assert sorted(row_ids(html, "overdue", "data-task")) == sorted(
        [str(s["b_decide"]["id"]), str(s["c_inspect"]["id"])])
    # the worker's firing shows as the engine says
    ov = demo_engine.sla_overview("sx.sz")
    assert ov["steps"] == {"green": 0, "yellow": 1, "red": 2}


def test_a_monitor_of_a_sub_department_sees_only_its_subtree(scenario, client_for):
    s = scenario
    html = html_of(client_for("scj_monitor").get("/monitor/"))
    assert 'data-scope="sx.sz.kf.scj"' in html
    assert (stat(html, "steps", "red"), stat(html, "steps", "yellow")) == (1, 0)
    assert row_ids(html, "overdue-steps", "data-task") == [str(s["c_inspect"]["id"])]
    assert row_ids(html, "overdue", "data-task") == [str(s["c_inspect"]["id"])]
    assert row_ids(html, "escalation-log", "data-action") == ["notify"]
    assert row_ids(html, "cards", "data-color") == ["red"]
    assert row_ids(html, "handling", "data-step") == []  # B's 审查 belongs to zwfw
    assert "sx.sz.kf.zwfw" not in row_ids(html, "sla-by-department", "data-dept")
    assert "sx.sz.kf.zwfw" not in row_ids(html, "by-department", "data-dept")
    assert "window" not in row_ids(html, "by-group", "data-group")
    # exports are scoped the same way
    log = list(csv.reader(io.StringIO(client_for("scj_monitor").get("/monitor/export/log.csv")
                                      .get_data(as_text=True).lstrip("\ufeff"))))
    assert [r[2] for r in log[1:]] == [str(s["c"])]
    cards = list(csv.reader(io.StringIO(client_for("scj_monitor").get("/monitor/export/cards.csv")
                                        .get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r[1], r[2]) for r in cards[1:]] == [("red", str(s["c"]))]
    overdue = list(csv.reader(io.StringIO(client_for("scj_monitor").get("/monitor/export/overdue.csv")
                                          .get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r[0], r[1]) for r in overdue[1:]] == [("step", str(s["c"]))]
    # the heat map counts only the subtree's handling
    hm = client_for("scj_monitor").get("/monitor/heatmap.json?process=mon_licence").get_json()
    assert hm["steps"] == {}


def test_exports_are_valid_xlsx_and_csv_with_the_right_rows(scenario, client_for):
    s = scenario
    c = client_for("monitor")
    r = c.get("/monitor/export/overdue.xlsx")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert "attachment" in r.headers["Content-Disposition"] and ".xlsx" in r.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(r.data)).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:3] == ("kind", "instance_id", "task_id")
    assert sorted((k, i, t) for k, i, t, *_rest in rows[1:]) == sorted(
        [("step", s["b"], s["b_decide"]["id"]), ("step", s["c"], s["c_inspect"]["id"])])
    holders = {row[2]: row[6] for row in rows[1:]}
    assert holders == {s["b_decide"]["id"]: "approval", s["c_inspect"]["id"]: "market"}

    ws = load_workbook(io.BytesIO(c.get("/monitor/export/cards.xlsx").data)).active
    cards = list(ws.iter_rows(values_only=True))
    assert cards[0][:3] == ("id", "color", "instance_id")
    assert sorted((r[1], r[2]) for r in cards[1:]) == sorted([("yellow", s["a"]), ("red", s["c"])])

    r = c.get("/monitor/export/log.csv")
    assert r.headers["Content-Type"].startswith("text/csv") and r.data.startswith("\ufeff".encode())
    log = list(csv.DictReader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert sorted((int(e["instance_id"]), e["point"], e["action"], e["outcome"]) for e in log) == sorted(
        [(s["a"], "yellow", "notify", "done"), (s["c"], "due", "notify", "done")])
    ws = load_workbook(io.BytesIO(c.get("/monitor/export/log.xlsx").data)).active
    assert len(list(ws.iter_rows(values_only=True))) == 3
    assert c.get("/monitor/export/secrets.csv").status_code == 404
    assert c.get("/monitor/export/log.pdf").status_code == 404


def test_heat_map_json_gives_the_diagram_and_time_per_step(scenario, client_for):
    hm = client_for("monitor").get("/monitor/heatmap.json?process=mon_licence").get_json()
    assert "<bpmn:userTask id=\"check\"" in hm["xml"]
    assert hm["steps"]["check"]["avg_hours"] == 6.0 and hm["steps"]["check"]["count"] == 1
    assert hm["steps"]["decide"]["overdue"] == 1 and hm["steps"]["decide"]["avg_hours"] is None
    assert hm["max_avg_hours"] == 6.0
    assert client_for("monitor").get("/monitor/heatmap.json?process=nope").status_code == 404
    html = html_of(client_for("monitor").get("/monitor/"))
    assert '<option value="mon_licence" selected>' in html  # the process with handling data first


def test_calendar_banner_follows_calendar_status(demo_engine, client_for, clock):
    clock.set(at(2026, 3, 2, 9))
    status = demo_engine.calendar_status()
    html = html_of(client_for("monitor").get("/monitor/"))
    missing = [y["year"] for y in status["years"] if y["status"] == "missing"]
    assert ('id="calendar-banner"' in html) == bool(missing)
    clock.set(at(2040, 3, 1, 9))  # no schedule published for 2040 or 2041
    assert not demo_engine.calendar_status()["ok"]
    html = html_of(client_for("monitor").get("/monitor/"))
    banner = re.search(r'id="calendar-banner".*?</div>', html, re.S).group(0)
    assert "2040" in banner and "2041" in banner and "临时" in banner
    english = html_of(client_for("monitor").get("/monitor/?lang=en"))
    assert "Deadlines are provisional" in english


def test_sla_box_on_the_task_and_instance_pages(scenario, client_for, demo_engine):
    s = scenario
    clerk = client_for("window_clerk")
    html = html_of(clerk.get(f"/tasks/{s['a_check']['id']}"))
    box = re.search(r'<section class="card sla-box" id="sla-box">(.*?)</section>', html, re.S).group(1)
    assert 'data-scope="instance" data-state="green"' in box
    assert 'data-scope="task" data-state="yellow"' in box and "预警" in box
    assert "5 个工作日" in box and "4 个工作日" in box  # statutory and promised limits
    assert 'id="extension-form-' in box and 'id="pause-form"' in box
    # the instance page shows the case and its open step
    html = html_of(clerk.get(f"/instances/{s['b']}"))
    assert 'data-scope="task" data-state="red"' in html and "超期" in html
    # a case without any time limit shows no box
    demo_engine.deploy({"plain.bpmn": PLAIN_BPMN.encode()})
    plain = demo_engine.start("mon_plain", {}, actor="window_clerk")["instance_id"]
    html = html_of(clerk.get(f"/instances/{plain}"))
    assert 'id="sla-box"' not in html
    assert 'id="sla-box"' not in html_of(clerk.get(f"/tasks/{demo_engine.tasks(instance_id=plain)[0]['id']}"))


def test_extension_request_and_approval_through_the_pages(scenario, client_for, demo_engine):
    s = scenario
    task_id, iid = s["a_check"]["id"], s["a"]
    before = demo_engine.sla_status(iid)["tasks"][0]["due_at"]
    clerk = client_for("window_clerk")
    form = {"task_id": task_id, "days": "2", "reason": "需要补充现场勘验", "next": f"/tasks/{task_id}"}
    # no CSRF token: refused, nothing recorded
    assert clerk.post(f"/monitor/sla/{iid}/extension", data=form).status_code == 400
    assert demo_engine.extensions() == []
    r = clerk.post(f"/monitor/sla/{iid}/extension", data={**form, "csrf_token": clerk.csrf})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/tasks/{task_id}")
    [ext] = demo_engine.extensions()
    assert (ext["days"], ext["requested_by"], ext["approver_group"]) == (2, "window_clerk", "leader")
    page = html_of(clerk.get(f"/tasks/{task_id}"))
    assert "延期申请已提交" in page and f'data-extension="{ext["id"]}" data-status="pending"' in page
    assert f'id="decide-form-{ext["id"]}"' not in page  # the requester does not decide
    step_row = re.search(r'<tr data-clock="\d+" data-scope="task".*?</tr>', page, re.S).group(0)
    assert "extension-form" not in step_row  # one pending request per clock
    # a second request while one is pending is refused by the engine, shown as a message
    r = clerk.post(f"/monitor/sla/{iid}/extension", data={**form, "csrf_token": clerk.csrf}, follow_redirects=True)
    assert "操作未完成" in r.get_data(as_text=True) and len(demo_engine.extensions()) == 1
    # the approver group (leader) sees it in the navigation and decides on 延期审批
    leader = client_for("leader")
    page = html_of(leader.get("/monitor/extensions"))
    assert 'id="nav-extensions"' in page and f'id="decide-form-{ext["id"]}"' in page
    assert 'id="nav-extensions"' not in html_of(clerk.get("/"))
    decide = {"decision": "approve", "note": "同意", "next": "/monitor/extensions"}
    assert leader.post(f"/monitor/sla/{iid}/extensions/{ext['id']}", data=decide).status_code == 400  # no CSRF
    # someone outside the approver group is refused
    approver = client_for("approver")
    r = approver.post(f"/monitor/sla/{iid}/extensions/{ext['id']}", data={**decide, "csrf_token": approver.csrf})
    assert r.status_code in (302, 403)
    assert demo_engine.extensions()[0]["status"] == "pending"
    r = leader.post(f"/monitor/sla/{iid}/extensions/{ext['id']}", data={**decide, "csrf_token": leader.csrf})
    assert r.status_code == 302 and r.headers["Location"].endswith("/monitor/extensions")
    assert 'id="no-extensions"' in html_of(leader.get("/monitor/extensions"))
    assert demo_engine.extensions(status="approved")[0]["decided_by"] == "leader"
    after = demo_engine.sla_status(iid)["tasks"][0]
    assert after["extended"] == 2 and after["due_at"] > before
    assert datetime.fromisoformat(after["due_at"]).astimezone(SH).date().isoformat() == "2026-03-10"
    page = html_of(clerk.get(f"/tasks/{task_id}"))
    assert f'data-extension="{ext["id"]}" data-status="approved"' in page and "已延期 2" in page


def test_refusing_an_extension(scenario, client_for, demo_engine):
    s = scenario
    iid = s["a"]
    clerk = client_for("window_clerk")
    clerk.post(f"/monitor/sla/{iid}/extension", data={"days": "3", "reason": "案情复杂", "csrf_token": clerk.csrf})
    [ext] = demo_engine.extensions()
    assert ext["task_id"] is None  # the case's clock (no task_id sent)
    leader = client_for("leader")
    r = leader.post(f"/monitor/sla/{iid}/extensions/{ext['id']}",
                    data={"decision": "refuse", "note": "理由不足", "csrf_token": leader.csrf})
    assert r.status_code == 302
    assert demo_engine.extensions(status="refused")[0]["note"] == "理由不足"
    assert demo_engine.sla_status(iid)["instance"]["extended"] == 0


def test_pause_and_resume_through_the_pages(scenario, client_for, demo_engine, clock):
    s = scenario
    iid = s["a"]
    clerk = client_for("window_clerk")
    assert clerk.post(f"/monitor/sla/{iid}/pause", data={"reason": "专家评审"}).status_code == 400  # no CSRF
    r = clerk.post(f"/monitor/sla/{iid}/pause", data={"reason": "专家评审", "csrf_token": clerk.csrf})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/instances/{iid}")
    st = demo_engine.sla_status(iid)
    assert st["instance"]["status"] == "paused" and st["tasks"][0]["status"] == "paused"
    page = html_of(clerk.get(f"/instances/{iid}"))
    assert 'id="sla-paused"' in page and "专家评审" in page and 'id="resume-button"' in page
    assert 'id="pause-form"' not in page
    # a clerk of another department handles nothing in the case: the engine refuses
    market = client_for("market_clerk")
    r = market.post(f"/monitor/sla/{iid}/resume", data={"csrf_token": market.csrf})
    assert r.status_code == 403
    clock.set(at(2026, 3, 9, 10))  # Monday: Friday 6 (paused at 10:00) to Monday 9 not counted
    r = clerk.post(f"/monitor/sla/{iid}/resume", data={"csrf_token": clerk.csrf})
    assert r.status_code == 302
    st = demo_engine.sla_status(iid)
    assert st["instance"]["status"] == "running" and st["tasks"][0]["paused_units"] == 1
    assert 'id="pause-form"' in html_of(clerk.get(f"/instances/{iid}"))


def test_clock_actions_of_a_case_one_cannot_see_are_forbidden(scenario, client_for, demo_engine):
    s = scenario
    market = client_for("market_clerk")
    r = market.post(f"/monitor/sla/{s['a']}/pause", data={"reason": "x", "csrf_token": market.csrf})
    assert r.status_code == 403
    assert demo_engine.sla_status(s["a"])["instance"]["status"] == "running"
