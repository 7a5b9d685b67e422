"""A window clerk in a real browser (Debian's chromium via Playwright): starts an application,
claims the task from the inbox, submits the form with errors, corrects it, completes it, and
sees the instance page with the coloured diagram and the history. Screenshots of each page go
to test-output/screenshots/."""

from __future__ import annotations

import re

from tests.web_support import browser_login, shot

NO_DI = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="defs_no_di" targetNamespace="urn:tongban:test">
  <bpmn:process id="no_di_review" name="无图形信息的流程" isExecutable="true">
    <bpmn:startEvent id="start" name="申请"/>
    <bpmn:userTask id="check" name="材料核对" tb:candidateGroups="window"/>
    <bpmn:userTask id="decide" name="审批决定" tb:candidateGroups="approval"/>
    <bpmn:endEvent id="end" name="办结"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="decide"/>
    <bpmn:sequenceFlow id="f3" sourceRef="decide" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _diagram_classes(page) -> dict:
    page.wait_for_selector("#diagram[data-rendered]")
    assert page.get_attribute("#diagram", "data-rendered") in ("di", "auto-layout"), page.inner_text("#diagram")
    return page.evaluate("""() => {
        const ids = (cls) => [...document.querySelectorAll('#diagram svg .djs-element.' + cls)]
            .map((e) => e.getAttribute('data-element-id'));
        return {completed: ids('hl-completed'), active: ids('hl-active'), waiting: ids('hl-waiting'),
                flows: ids('hl-flow'), rendered: document.querySelector('#diagram').dataset.rendered};
    }""")


def test_window_clerk_starts_claims_corrects_and_completes(live_server, page):
    browser_login(page, live_server, "window_clerk")

    # start an application for an applicant
    page.goto(f"{live_server}/start")
    assert page.input_value("#input-business_key").startswith("SL")
    page.select_option("#input-process", "form_food_licence")
    page.fill("#input-applicant_name", "张三")
    page.fill("#input-id_number", "11010519491231002X")
    page.fill("#input-phone", "13812345678")
    shot(page, "clerk-01-start")
    page.click("#start-button")
    page.wait_for_url(re.compile(r".*/instances/\d+$"))
    assert page.inner_text("#instance-status") == "办理中"
    assert "110105********002X" in page.inner_text("#applicant-data")  # masked for a clerk
    classes = _diagram_classes(page)
    assert "accept" in classes["active"] and "start" in classes["completed"]
    instance_url = page.url

    # the new task waits in the inbox, unclaimed; claim it with htmx (no page reload)
    page.goto(f"{live_server}/")
    row = page.locator("tr.task-row", has_text="受理登记").first
    assert row.locator("text=待领取").count() == 1
    shot(page, "clerk-02-inbox")
    page.evaluate("window.__not_reloaded = true")
    row.locator("button.claim").click()
    row = page.locator("tr.task-row", has_text="受理登记").first
    row.locator("text=已领取").wait_for()
    assert page.evaluate("window.__not_reloaded") is True
    assert page.inner_text("#count-mine") == "1"
    row.locator("a.button.primary", has_text="办理").click()

    # the form: leave a required field empty and put letters in a number field
    page.wait_for_url(re.compile(r".*/tasks/\d+$"))
    assert page.locator("#field-shop_name .required").count() == 1
    assert page.input_value("#input-business_type") == "convenience"  # the field's default
    page.fill("#input-shop_name", "")
    page.fill("#input-floor_area", "八十")
    page.fill("#input-investment", "12.5")
    page.click("#submit-button")
    page.wait_for_selector("#error-floor_area")
    assert "请输入整数" in page.inner_text("#error-floor_area")
    assert "必填" in page.inner_text("#error-shop_name")
    assert page.input_value("#input-floor_area") == "八十"  # the submitted values stay
    assert page.input_value("#input-investment") == "12.5"
    assert page.locator("#field-floor_area.has-error").count() == 1
    _diagram_classes(page)
    shot(page, "clerk-03-task-errors")

    # correct it and complete
    page.fill("#input-shop_name", "湖东便利店")
    page.fill("#input-floor_area", "80")
    page.fill("#input-planned_opening", "2026-03-01")
    page.fill("#input-opinion", "材料齐全，予以受理")
    page.click("#submit-button")
    page.wait_for_url(re.compile(r".*/instances/\d+$"))
    assert page.url == instance_url
    assert "已办理完成" in page.inner_text("main")
    classes = _diagram_classes(page)
    assert {"start", "accept"} <= set(classes["completed"])
    assert classes["active"] == ["market_review"]
    assert "flow_start_accept" in classes["flows"]
    history = page.inner_text("#history")
    assert "受理" in history and "领取" in history and "办理" in history and "材料齐全，予以受理" in history
    assert "市场监管审查" in page.inner_text("#open-tasks")
    assert page.locator("#instance-data [data-key=shop_name]").inner_text() == "湖东便利店"
    shot(page, "clerk-04-instance")

    page.goto(f"{live_server}/instances")
    assert page.locator("#instance-table tr[data-instance-id]").count() == 1
    shot(page, "clerk-05-instances")


def test_market_clerk_decides_and_a_process_without_di_is_laid_out(live_server, page, demo_engine):
    demo_engine.deploy({"no_di.bpmn": NO_DI.encode()})
    iid = demo_engine.start("no_di_review", {"applicant_name": "李四"}, business_key="SL-NODI", actor="window_clerk")[
        "instance_id"]
    check = demo_engine.tasks(instance_id=iid)[0]
    demo_engine.claim(check["id"], "window_clerk")
    demo_engine.complete(check["id"], "window_clerk", {})

    browser_login(page, live_server, "window_clerk")
    page.goto(f"{live_server}/instances/{iid}")
    classes = _diagram_classes(page)
    assert classes["rendered"] == "auto-layout"
    assert {"start", "check"} <= set(classes["completed"]) and classes["active"] == ["decide"]
    assert page.locator("#diagram svg .djs-shape").count() >= 4
    assert page.locator("#diagram svg .djs-connection").count() == 3  # the flows were laid out too
    assert {"f1", "f2"} <= set(classes["flows"])
    shot(page, "clerk-06-instance-auto-layout")

    # a market clerk decides on an application: the outcome buttons and the opinion
    started = demo_engine.start("form_food_licence", {"applicant_name": "王五", "id_number": "11010519491231002X"},
                                business_key="SL-MARKET", actor="window_clerk")
    accept = demo_engine.tasks(instance_id=started["instance_id"])[0]
    demo_engine.claim(accept["id"], "window_clerk")
    demo_engine.complete(accept["id"], "window_clerk", {"shop_name": "新苑小餐馆", "business_type": "restaurant",
                                                         "floor_area": 45})
    review = demo_engine.tasks(instance_id=started["instance_id"])[0]
    page.goto("about:blank")  # no request of the old session still in flight
    page.context.clear_cookies()
    browser_login(page, live_server, "market_clerk")
    page.goto(f"{live_server}/tasks/{review['id']}")
    page.click("#claim-button")
    page.wait_for_selector("#submit-button")
    page.select_option("#input-inspection_result", "pass")
    page.click("#submit-button")
    page.wait_for_selector("#error-decision")
    shot(page, "clerk-07-review-errors")
    page.check("input[name=decision][value=approve]")
    page.fill("#input-opinion", "现场核查符合要求，准予许可")
    page.click("#submit-button")
    page.wait_for_url(re.compile(r".*/instances/\d+$"))
    assert "准予许可" in page.inner_text("#history") or "approve" in page.inner_text("#history")
    assert "制证发证" in page.inner_text("#open-tasks")
    shot(page, "clerk-08-after-review")
