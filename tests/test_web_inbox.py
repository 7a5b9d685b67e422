"""The clerk pages through Flask's test client: inbox (who sees what, filters, claim/unclaim,
pagination), task page (403 across groups, form errors next to fields, completion, 409),
start, instance pages (masking, diagram data, a process without diagram interchange)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.test_browser_clerk import NO_DI

ID_NUMBER = "11010519491231002X"
OPINION_REQUIRED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_opinion" targetNamespace="urn:tongban:test">
  <bpmn:process id="opinion_review" name="需填写意见的审批" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="review" name="科室审批" tb:candidateGroups="approval" tb:opinionRequired="true"
        tb:outcomes="approve:同意,reject:不同意,return:退回补正">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="score" label="评分" type="double">
            <camunda:validation><camunda:constraint name="max" config="100"/></camunda:validation>
          </camunda:formField>
          <camunda:formField id="site_checked" label="已现场核查" type="boolean"/>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _text(response) -> str:
    return response.get_data(as_text=True)


def _task_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-task-id="(\d+)"', html)]


def _field_error(html: str, field: str) -> str | None:
    m = re.search(r'id="error-' + re.escape(field) + r'"[^>]*>([^<]*)<', html)
    return m.group(1).strip() if m else None


def _start_food(engine, applicant="张三", business_key=None):
    return engine.start("form_food_licence", {"applicant_name": applicant, "id_number": ID_NUMBER,
                                              "phone": "13812345678"},
                        business_key=business_key, actor="window_clerk")["instance_id"]


def _open(engine, iid, bpmn_id=None):
    tasks = [t for t in engine.tasks(instance_id=iid) if bpmn_id is None or t["bpmn_id"] == bpmn_id]
    assert tasks, engine.tasks(instance_id=iid)
    return tasks[0]


def _accept(engine, iid):
    t = _open(engine, iid, "accept")
    engine.claim(t["id"], "window_clerk")
    engine.complete(t["id"], "window_clerk", {"shop_name": "湖东便利店", "business_type": "convenience",
                                              "floor_area": 80})
    return _open(engine, iid, "market_review")


# ---- inbox ----------------------------------------------------------------------------------
def test_inbox_lists_only_the_tasks_of_my_groups(demo_engine, client_for):
    iid = _start_food(demo_engine)
    accept = _open(demo_engine, iid)
    other = demo_engine.start("parallel_gateway", {"applicant": "李四"}, actor="window_clerk")["instance_id"]
    market_task = _open(demo_engine, other, "market_review")

    window = client_for("window_clerk")
    html = _text(window.get("/"))
    assert _task_ids(html) == [accept["id"]]
    assert "受理登记" in html and "市场监管审核" not in html

    market = client_for("market_clerk")
    assert _task_ids(_text(market.get("/"))) == [market_task["id"]]
    assert _task_ids(_text(client_for("approver").get("/"))) == []
    assert 'id="inbox-empty"' in _text(client_for("approver").get("/"))
    # the navigation counts
    assert re.search(r'id="count-unclaimed"[^>]*>1<', html)


def test_inbox_tabs_and_filters(demo_engine, client_for, clock):
    first = _start_food(demo_engine)  # accept: due in 1 working day
    second = demo_engine.start("exclusive_gateway", {"applicant": "李四"}, actor="window_clerk")["instance_id"]
    third = demo_engine.start("lanes_review", {"applicant": "王五"}, actor="window_clerk")["instance_id"]
    a, b, c = (_open(demo_engine, i) for i in (first, second, third))
    demo_engine.claim(b["id"], "window_clerk")
    client = client_for("window_clerk")

    assert set(_task_ids(_text(client.get("/")))) == {a["id"], b["id"], c["id"]}
    assert _task_ids(_text(client.get("/?scope=mine"))) == [b["id"]]
    assert set(_task_ids(_text(client.get("/?scope=unclaimed")))) == {a["id"], c["id"]}
    assert _task_ids(_text(client.get("/?process=lanes_review"))) == [c["id"]]
    assert set(_task_ids(_text(client.get("/?department=sx.sz.kf.zwfw")))) == {a["id"], b["id"], c["id"]}
    assert _task_ids(_text(client.get("/?department=sx.sz.kf.scj"))) == []
    assert _text(client.get("/?department=nope")).count("data-task-id") == 0

    # sorted by due time (tasks without a deadline last); nothing is overdue yet
    html = _text(client.get("/"))
    due = [t for t in demo_engine.tasks(user="window_clerk") if t["due_at"]]
    assert due and _task_ids(html)[: len(due)] == [t["id"] for t in due]
    assert _task_ids(_text(client.get("/?due=overdue"))) == []
    soon = _task_ids(_text(client.get("/?due=soon")))
    assert soon and set(soon) <= {t["id"] for t in due}

    clock.advance(timedelta(days=10))
    html = _text(client.get("/?due=overdue"))
    assert set(_task_ids(html)) == {t["id"] for t in due}
    assert re.search(r'<tr id="task-\d+" class="task-row overdue"', html)
    assert re.search(r'id="count-overdue"[^>]*>\d+<', html)


def test_inbox_marks_near_due_rows(demo_engine, client_for, clock):
    iid = _start_food(demo_engine)
    task = _open(demo_engine, iid)
    assert task["due_at"]
    html = _text(client_for("window_clerk").get("/"))
    assert f'id="task-{task["id"]}" class="task-row near-due"' in html


def test_inbox_paginates(demo_engine, client_for, monkeypatch):
    import web.inbox

    monkeypatch.setattr(web.inbox, "PAGE_SIZE", 2)
    ids = [_open(demo_engine, _start_food(demo_engine, f"申请人{i}"))["id"] for i in range(5)]
    client = client_for("window_clerk")
    pages = [_task_ids(_text(client.get(f"/?page={n}"))) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(sum(pages, [])) == sorted(ids)
    assert 'id="page-next"' in _text(client.get("/?page=1")) and 'id="page-next"' not in _text(client.get("/?page=3"))


def test_claim_and_unclaim_with_htmx_and_csrf(demo_engine, client_for):
    task = _open(demo_engine, _start_food(demo_engine))
    client = client_for("window_clerk")
    assert client.post(f"/tasks/{task['id']}/claim").status_code == 400  # no CSRF token
    r = client.post(f"/tasks/{task['id']}/claim", headers={"HX-Request": "true", "X-CSRF-Token": client.csrf})
    assert r.status_code == 200
    html = _text(r)
    assert html.lstrip().startswith(f'<tr id="task-{task["id"]}"') and "王窗口" in html
    assert 'id="count-mine" title="我的" hx-swap-oob="true">1<' in html
    assert demo_engine.task(task["id"])["assignee"] == "window_clerk"
    assert _task_ids(_text(client.get("/?scope=mine"))) == [task["id"]]

    r = client.post(f"/tasks/{task['id']}/unclaim", headers={"HX-Request": "true", "X-CSRF-Token": client.csrf})
    assert r.status_code == 200 and "待领取" in _text(r)
    assert demo_engine.task(task["id"])["assignee"] is None
    # without htmx: a plain form post redirects back
    r = client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": client.csrf, "next": "/?scope=mine"})
    assert r.status_code == 302 and r.location.endswith("/?scope=mine")


def test_another_groups_task_answers_403(demo_engine, client_for):
    task = _open(demo_engine, _start_food(demo_engine))
    market = client_for("market_clerk")
    assert market.get(f"/tasks/{task['id']}").status_code == 403
    r = market.post(f"/tasks/{task['id']}/claim", headers={"X-CSRF-Token": market.csrf})
    assert r.status_code == 403
    r = market.post(f"/tasks/{task['id']}", data={"csrf_token": market.csrf, "shop_name": "x"})
    assert r.status_code == 403
    assert demo_engine.task(task["id"])["assignee"] is None
    assert market.get(f"/instances/{task['instance_id']}").status_code == 403
    assert market.get(f"/instances/{task['instance_id']}/diagram.json").status_code == 403
    assert client_for("window_clerk").get(f"/tasks/{task['id']}").status_code == 200
    assert client_for("monitor").get(f"/tasks/{task['id']}").status_code == 200  # reads, cannot act
    assert client_for("window_clerk").get("/tasks/99999").status_code == 404


# ---- task page ------------------------------------------------------------------------------
def test_task_page_shows_request_form_and_claim_first(demo_engine, client_for):
    iid = _start_food(demo_engine, business_key="SL-0001")
    task = _open(demo_engine, iid)
    client = client_for("window_clerk")
    html = _text(client.get(f"/tasks/{task['id']}"))
    assert 'id="claim-button"' in html and 'id="submit-button"' not in html  # claim before completing
    assert "<fieldset disabled>" in html
    assert "110105********002X" in html and ID_NUMBER not in html  # masked for a clerk
    assert "SL-0001" in html
    for fid in ("shop_name", "business_type", "floor_area", "investment", "planned_opening", "commitment_signed"):
        assert f'id="input-{fid}"' in html
    assert re.search(r'<option value="convenience" selected>便利店', html)  # the default
    assert 'type="date" name="planned_opening"' in html
    assert re.search(r'name="commitment_signed" id="input-commitment_signed" value="true" checked', html)
    assert html.count('class="required"') >= 3
    assert f'data-diagram-src="/instances/{iid}/diagram.json?task=accept"' in html

    r = client.post(f"/tasks/{task['id']}", data={"csrf_token": client.csrf, "shop_name": "x", "floor_area": "1",
                                                  "business_type": "bakery"})
    assert r.status_code == 409 and "请先领取" in _text(r)
    assert demo_engine.task(task["id"])["status"] == "open"

    r = client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": client.csrf})
    assert r.status_code == 302 and r.location.endswith(f"/tasks/{task['id']}")
    html = _text(client.get(f"/tasks/{task['id']}"))
    assert 'id="submit-button"' in html and "<fieldset>" in html and 'id="unclaim-button"' in html
    # an administrator sees the values in full
    assert ID_NUMBER in _text(client_for("admin").get(f"/tasks/{task['id']}"))


def test_form_errors_are_shown_next_to_fields_and_nothing_completes(demo_engine, client_for):
    iid = _start_food(demo_engine)
    task = _open(demo_engine, iid)
    demo_engine.claim(task["id"], "window_clerk")
    client = client_for("window_clerk")
    r = client.post(f"/tasks/{task['id']}", data={
        "csrf_token": client.csrf, "shop_name": "  ", "business_type": "supermarket", "floor_area": "八十",
        "investment": "12,5x", "planned_opening": "2026-02-30", "opinion": "已核对"})
    assert r.status_code == 400
    html = _text(r)
    assert _field_error(html, "shop_name") == "必填"
    assert _field_error(html, "floor_area") == "请输入整数"
    assert _field_error(html, "investment") == "请输入数字"
    assert _field_error(html, "planned_opening").startswith("日期格式应为")
    assert _field_error(html, "business_type").startswith("请从")
    assert 'class="field has-error" id="field-floor_area"' in html
    assert 'class="field" id="field-commitment_signed"' in html
    # the submitted values are kept
    assert 'value="八十"' in html and 'value="12,5x"' in html and ">已核对</textarea>" in html
    assert "commitment_signed\" value=\"true\" checked" not in html  # unchecked box stays unchecked
    assert demo_engine.task(task["id"])["status"] == "open"
    assert demo_engine.show(iid)["data"].get("shop_name") is None
    # numbers out of range
    r = client.post(f"/tasks/{task['id']}", data={"csrf_token": client.csrf, "shop_name": "店", "floor_area": "0",
                                                  "business_type": "bakery"})
    assert r.status_code == 400 and _field_error(_text(r), "floor_area") == "不能小于 1"
    # in English the English half of the engine's message
    r = client.post(f"/tasks/{task['id']}?lang=en", data={"csrf_token": client.csrf, "shop_name": "",
                                                          "floor_area": "1", "business_type": "bakery"})
    assert _field_error(_text(r), "shop_name") == "required"


def test_good_completion_moves_the_instance_on(demo_engine, client_for):
    iid = _start_food(demo_engine)
    task = _open(demo_engine, iid)
    demo_engine.claim(task["id"], "window_clerk")
    client = client_for("window_clerk")
    r = client.post(f"/tasks/{task['id']}", data={
        "csrf_token": client.csrf, "shop_name": "湖东便利店", "business_type": "convenience", "floor_area": "80",
        "investment": "12.5", "planned_opening": "2026-03-01", "commitment_signed": "true", "opinion": "材料齐全"})
    assert r.status_code == 302 and r.location.endswith(f"/instances/{iid}")
    done = demo_engine.task(task["id"])
    assert done["status"] == "completed" and done["opinion"] == "材料齐全"
    data = demo_engine.show(iid)["data"]
    assert data["floor_area"] == 80 and data["investment"] == 12.5 and data["commitment_signed"] is True
    assert data["planned_opening"] == "2026-03-01"
    assert _open(demo_engine, iid)["bpmn_id"] == "market_review"
    html = _text(client.get(r.location))
    assert "已办理完成" in html and "市场监管审查" in html

    # the completed task page says who did it and offers no form
    html = _text(client.get(f"/tasks/{task['id']}"))
    assert 'id="completed-note"' in html and "王窗口" in html and 'id="task-form"' not in html


def test_decision_and_opinion_required(demo_engine, client_for):
    demo_engine.deploy({"opinion.bpmn": OPINION_REQUIRED.encode()})
    iid = demo_engine.start("opinion_review", {}, actor="window_clerk")["instance_id"]
    task = _open(demo_engine, iid)
    demo_engine.claim(task["id"], "approver")
    client = client_for("approver")
    html = _text(client.get(f"/tasks/{task['id']}"))
    assert 'value="return"> 退回补正' in html and 'id="input-opinion"' in html
    r = client.post(f"/tasks/{task['id']}", data={"csrf_token": client.csrf, "score": "120", "opinion": " "})
    html = _text(r)
    assert r.status_code == 400
    assert _field_error(html, "decision") == "请选择办理结果"
    assert _field_error(html, "opinion") == "请填写审批意见"
    assert _field_error(html, "score") == "不能大于 100"
    r = client.post(f"/tasks/{task['id']}", data={"csrf_token": client.csrf, "score": "88.5", "decision": "return",
                                                  "opinion": "缺少场地证明，请补正"})
    assert r.status_code == 302
    done = demo_engine.task(task["id"])
    assert done["decision"] == "return" and done["opinion"] == "缺少场地证明，请补正"
    shown = demo_engine.show(iid)
    assert shown["status"] == "completed" and shown["data"]["site_checked"] is False
    html = _text(client.get(f"/instances/{iid}"))
    assert "退回补正" in html and "缺少场地证明，请补正" in html


def test_completed_by_someone_else_answers_409_with_who(demo_engine, client_for):
    iid = _start_food(demo_engine)
    review = _accept(demo_engine, iid)
    demo_engine.add_user("market_clerk2", ["market"], "钱市监", roles=["clerk"], password="tongban-demo")
    demo_engine.claim(review["id"], "market_clerk")
    other = client_for("market_clerk2")
    assert other.get(f"/tasks/{review['id']}").status_code == 403  # the engine: a claimed task is its holder's
    r = other.post(f"/tasks/{review['id']}", data={"csrf_token": other.csrf, "inspection_result": "pass",
                                                   "decision": "approve"})
    assert r.status_code == 403  # only the holder may act on a claimed task

    # market_clerk's page is open when someone (an administrator) completes the task meanwhile
    mine = client_for("market_clerk")
    demo_engine.complete(review["id"], "market_clerk", {"inspection_result": "pass"}, decision="approve")
    r = mine.post(f"/tasks/{review['id']}", data={"csrf_token": mine.csrf, "inspection_result": "fail",
                                                  "decision": "reject", "opinion": "不符合"})
    assert r.status_code == 409
    html = _text(r)
    assert "已由 张市监 (market_clerk) 办理" in html and 'id="conflict-message"' in html
    assert ">不符合</textarea>" in html  # what the clerk typed is still on the page
    assert demo_engine.task(review["id"])["decision"] == "approve"


def test_engine_conflict_during_completion_is_a_409_message(demo_engine, client_for, monkeypatch):
    from engine.errors import Conflict

    iid = _start_food(demo_engine)
    task = _open(demo_engine, iid)
    demo_engine.claim(task["id"], "window_clerk")
    client = client_for("window_clerk")
    real = demo_engine.complete

    def racing(task_id, actor, *args, **kwargs):
        demo_engine.add_user("window2", ["window"], "孙窗口")
        demo_engine.unclaim(task_id, actor)
        demo_engine.claim(task_id, "window2")
        real(task_id, "window2", {"shop_name": "先办的店", "business_type": "bakery", "floor_area": 10})
        raise Conflict(f"task {task_id} was already completed by window2")

    monkeypatch.setattr(demo_engine, "complete", racing)
    r = client.post(f"/tasks/{task['id']}", data={"csrf_token": client.csrf, "shop_name": "后办的店",
                                                  "business_type": "bakery", "floor_area": "20"})
    assert r.status_code == 409 and "已由 孙窗口 (window2) 办理" in _text(r)
    assert demo_engine.show(iid)["data"]["shop_name"] == "先办的店"


# ---- start ----------------------------------------------------------------------------------
def test_start_an_application(demo_engine, client_for):
    client = client_for("window_clerk")
    html = _text(client.get("/start"))
    assert re.search(r'name="business_key" id="input-business_key" value="SL\d{14}"', html)
    assert 'value="form_food_licence"' in html
    r = client.post("/start", data={"csrf_token": client.csrf, "process": "form_food_licence",
                                    "applicant_name": "张三", "id_number": ID_NUMBER.lower(), "phone": "13812345678",
                                    "business_key": "SL-TEST-1", "extra_key": ["floor_area", "", "shop_name"],
                                    "extra_value": ["80", "", "湖东便利店"], "data_json": '{"sells_tobacco": true}'})
    assert r.status_code == 302
    iid = int(r.location.rsplit("/", 1)[1])
    shown = demo_engine.show(iid)
    assert shown["business_key"] == "SL-TEST-1" and shown["started_by"] == "window_clerk"
    assert {"applicant_name": "张三", "id_number": ID_NUMBER, "phone": "13812345678", "floor_area": 80,
            "shop_name": "湖东便利店", "sells_tobacco": True}.items() <= shown["data"].items()
    assert "SL-TEST-1" in _text(client.get(r.location))


def test_start_errors_are_shown_next_to_fields(demo_engine, client_for):
    client = client_for("window_clerk")
    r = client.post("/start", data={"csrf_token": client.csrf, "process": "nope", "applicant_name": "",
                                    "id_number": "110105194912310021", "phone": "12345", "data_json": "[1]"})
    assert r.status_code == 400
    html = _text(r)
    for field in ("process", "applicant_name", "id_number", "phone", "data_json"):
        assert _field_error(html, field), field
    assert 'value="110105194912310021"' in html
    assert demo_engine.instances_for() == []
    r = client.post("/start", data={"csrf_token": client.csrf, "process": "lanes_review", "applicant_name": "张三",
                                    "id_number": ID_NUMBER, "extra_key": ["1bad"], "extra_value": ["x"]})
    assert r.status_code == 400 and _field_error(_text(r), "extra")


def test_only_clerks_start_applications(client_for):
    assert client_for("designer").get("/start").status_code == 403
    assert client_for("window_clerk").get("/start").status_code == 200


# ---- instances ------------------------------------------------------------------------------
def test_instance_page_masks_sensitive_data_except_for_admin(demo_engine, client_for):
    iid = _start_food(demo_engine)
    html = _text(client_for("window_clerk").get(f"/instances/{iid}"))
    assert "110105********002X" in html and "138****5678" in html
    assert ID_NUMBER not in html and "13812345678" not in html  # nowhere, not even in the history
    assert 'id="instance-status" data-status="running"' in html
    assert "受理登记" in html and 'id="history"' in html
    admin = _text(client_for("admin").get(f"/instances/{iid}"))
    assert ID_NUMBER in admin and "13812345678" in admin


def test_diagram_data_colours_completed_active_and_waiting(demo_engine, client_for):
    iid = _start_food(demo_engine)
    _accept(demo_engine, iid)
    client = client_for("window_clerk")
    body = client.get(f"/instances/{iid}/diagram.json").get_json()
    assert 'id="form_food_licence"' in body["xml"]
    assert set(body["highlight"]["completed"]) == {"start", "accept"}
    assert body["highlight"]["active"] == ["market_review"]
    # a timer waiting next to a user task
    timer = demo_engine.start("boundary_timer", {"applicant": "张三"}, actor="window_clerk")["instance_id"]
    body = client_for("approver").get(f"/instances/{timer}/diagram.json").get_json()
    assert body["highlight"]["waiting"] == ["review_timeout"] and body["highlight"]["active"] == ["review"]
    # the task page focuses its own task
    body = client.get(f"/instances/{iid}/diagram.json?task=accept").get_json()
    assert body["highlight"]["active"] == ["accept"] and "market_review" in body["highlight"]["waiting"]


def test_main_bpmn_of_a_deployment_with_dmn(demo_engine, client_for):
    iid = demo_engine.start("dmn_decision", {"applicant": "张三"}, actor="window_clerk")["instance_id"]
    body = client_for("admin").get(f"/instances/{iid}/diagram.json").get_json()
    assert 'id="dmn_decision"' in body["xml"] and "BPMNDiagram" in body["xml"]


def test_instance_page_of_a_process_without_di(demo_engine, client_for):
    demo_engine.deploy({"no_di.bpmn": NO_DI.encode()})
    iid = demo_engine.start("no_di_review", {"applicant_name": "李四"}, actor="window_clerk")["instance_id"]
    client = client_for("window_clerk")
    r = client.get(f"/instances/{iid}")
    assert r.status_code == 200
    html = _text(r)
    assert f'data-diagram-src="/instances/{iid}/diagram.json"' in html and "dist/diagram.js" in html
    body = client.get(f"/instances/{iid}/diagram.json").get_json()
    assert "BPMNDiagram" not in body["xml"] and body["highlight"]["active"] == ["check"]


def test_the_diagram_bundle_is_built():
    from pathlib import Path

    bundle = Path(__file__).resolve().parent.parent / "web" / "static" / "dist" / "diagram.js"
    assert bundle.exists(), "run make install (npm run build in web/)"


def test_instances_list_shows_mine_and_everything_for_monitors(demo_engine, client_for):
    mine = _start_food(demo_engine, business_key="SL-MINE")
    done = demo_engine.start("script_task", {"floor_area": 400, "is_small_business": True},
                             business_key="SL-AUTO", actor="admin")["instance_id"]
    assert demo_engine.show(done)["status"] == "completed"
    html = _text(client_for("window_clerk").get("/instances"))
    assert f'data-instance-id="{mine}"' in html and f'data-instance-id="{done}"' not in html
    assert _text(client_for("market_clerk").get("/instances")).count("data-instance-id") == 0
    monitor = client_for("monitor")
    html = _text(monitor.get("/instances"))
    assert f'data-instance-id="{mine}"' in html and f'data-instance-id="{done}"' in html
    html = _text(monitor.get("/instances?status=completed"))
    assert f'data-instance-id="{done}"' in html and f'data-instance-id="{mine}"' not in html
    # the instance page follows the same rule
    assert client_for("market_clerk").get(f"/instances/{mine}").status_code == 403
    assert monitor.get(f"/instances/{mine}").status_code == 200


@pytest.mark.parametrize("path", ["/", "/start", "/instances", "/tasks/1", "/instances/1"])
def test_pages_need_sign_in(app, path):
    r = app.test_client().get(path)
    assert r.status_code == 302 and "/login" in r.location


def test_pages_in_english(demo_engine, client_for):
    iid = _start_food(demo_engine)
    task = _open(demo_engine, iid)
    client = client_for("window_clerk")
    assert "Claim" in _text(client.get("/?lang=en"))
    assert "Claim and handle" in _text(client.get(f"/tasks/{task['id']}"))
    assert "Applicant name" in _text(client.get("/start"))
    assert "History" in _text(client.get(f"/instances/{iid}"))
