"""Designer in a real browser (Playwright + Debian chromium): the located error of a bad upload,
the deploy of a good one, and the bpmn-js modeler editing a deployed version through the side panel."""

from __future__ import annotations

import re

from tests.test_web_designer import bad_file, good_file, script_line
from tests.web_support import browser_login, shot


def without_lines(value):
    """A manifest part without source line numbers (a re-saved file has other lines)."""
    if isinstance(value, dict):
        return {k: without_lines(v) for k, v in value.items() if k != "line"}
    if isinstance(value, list):
        return [without_lines(v) for v in value]
    return value


def choose(page, name: str, content: bytes) -> None:
    page.set_input_files("#files", files=[{"name": name, "mimeType": "application/xml", "buffer": content}])


def test_designer_sees_located_error_then_deploys_a_good_file(live_server, page, demo_engine):
    browser_login(page, live_server, "designer")
    page.goto(f"{live_server}/designer/")
    assert page.locator("#processes tr[data-key=lanes_review]").count() == 1
    shot(page, "designer_list")

    page.click("#upload-link")
    choose(page, "bad.bpmn", bad_file())
    page.click("#check-button")
    row = page.locator("tr.problem[data-element-id=calc_fee]").first
    assert row.locator(".problem-element").inner_text() == "calc_fee"
    assert row.locator(".problem-line").inner_text() == str(script_line(bad_file()))
    assert "import" in row.locator(".problem-message").inner_text()
    assert page.locator("#deploy-button").count() == 0
    # the diagram is drawn and the failing element is marked red, with a "!" badge
    page.wait_for_selector(".bpmn-view[data-drawn=true]")
    assert page.locator(".bpmn-view").get_attribute("data-marked") == "calc_fee"
    assert page.locator(".djs-element.hl-error[data-element-id=calc_fee]").count() == 1
    assert page.locator(".problem-badge").count() == 1
    row.click()  # centres the element
    assert page.locator(".djs-element.hl-focus[data-element-id=calc_fee]").count() == 1
    shot(page, "designer_upload_error")
    assert not demo_engine.versions("designer_bad")

    choose(page, "good.bpmn", good_file())
    page.click("#check-button")
    page.wait_for_selector("#deploy-button")
    assert "designer_good" in page.locator("#keys").inner_text()
    page.wait_for_selector(".bpmn-view[data-drawn=true]")
    shot(page, "designer_upload_ok")
    page.click("#deploy-button")
    page.wait_for_url(re.compile(r".*/designer/definitions/\d+$"))
    versions = demo_engine.versions("designer_good")
    assert [v["version"] for v in versions] == [1]
    assert page.url.endswith(f"/designer/definitions/{versions[0]['id']}")
    page.wait_for_selector(".bpmn-view[data-drawn=true]")
    assert page.locator("#manifest tr[data-task=approve]").count() == 1
    shot(page, "designer_version")


def test_modeler_edits_a_version_and_deploys_a_new_one(live_server, page, demo_engine):
    base = demo_engine.versions("lanes_review")[0]
    browser_login(page, live_server, "designer")
    page.goto(f"{live_server}/designer/definitions/{base['id']}")
    page.click("#edit-link")
    page.wait_for_selector("body[data-modeler-ready=true]")
    assert page.locator("#side-panel").get_attribute("data-type") == "bpmn:Collaboration" or \
        page.locator("#prop-id").input_value() == "lanes_review"

    page.locator(".djs-element[data-element-id=approve]").first.click()
    page.wait_for_selector("#side-panel[data-element=approve]")
    page.fill("#prop-name", "科长审批")
    page.press("#prop-name", "Tab")
    page.fill("#tb-candidateGroups", "leader")
    page.press("#tb-candidateGroups", "Tab")
    page.fill("#tb-outcomes", "approve:准予,reject:不予")
    page.press("#tb-outcomes", "Tab")
    page.fill("#tb-sla-limit", "5")
    page.press("#tb-sla-limit", "Tab")
    page.select_option("#tb-sla-unit", "day")
    page.fill("#tb-sla-warn", "0.6")
    page.press("#tb-sla-warn", "Tab")
    # the name shows on the canvas; the XML carries our attributes and the tb:sla element
    assert "科长审批" in page.locator(".djs-element[data-element-id=approve]").first.text_content()
    xml = page.evaluate("async () => (await window.tongbanModeler.saveXML()).xml")
    assert 'tb:candidateGroups="leader"' in xml and re.search(r'<tb:sla limit="5" unit="day" warn="0.6"\s*/>', xml)
    shot(page, "designer_modeler")

    page.click("#deploy-button")
    page.wait_for_selector("#deployed-link")
    new = demo_engine.versions("lanes_review")[0]
    assert new["version"] == base["version"] + 1
    assert page.locator("#deploy-result").get_attribute("data-definition-id") == str(new["id"])
    task = demo_engine.definition(new["id"])["manifest"]["tasks"]["approve"]
    assert task["name"] == "科长审批" and task["candidate_groups"] == ["leader"]
    assert task["sla"] == {"limit": "5", "unit": "day", "warn": "0.6"}
    assert [o["id"] for o in task["outcomes"]] == ["approve", "reject"]
    # the untouched task kept its lane as its group
    assert demo_engine.definition(new["id"])["manifest"]["tasks"]["accept"]["candidate_groups"] == ["window"]
    shot(page, "designer_modeler_deployed")

    page.goto(f"{live_server}/designer/compare/lanes_review?a={base['version']}&b={new['version']}")
    assert page.locator("#tasks-changed tr[data-task=approve][data-field=candidate_groups]").count() == 1
    shot(page, "designer_compare")


def test_modeler_shows_located_problems_and_selects_the_element(live_server, page, demo_engine):
    browser_login(page, live_server, "designer")
    page.goto(f"{live_server}/designer/modeler")
    page.wait_for_selector("body[data-modeler-ready=true]")
    assert page.locator(".djs-element[data-element-id=review]").count() == 1  # the new-diagram template
    shot(page, "designer_modeler_new")
    page.evaluate("async (xml) => { await window.tongbanModeler.importXML(xml); }", bad_file().decode())
    page.click("#deploy-button")
    page.wait_for_selector("#modeler-problems tr.problem[data-element-id=calc_fee]")
    assert "import" in page.locator("#modeler-problems .problem-message").first.inner_text()
    assert page.evaluate("window.tongbanModeler.get('selection').get().map(e => e.id)") == ["calc_fee"]
    assert page.locator(".djs-element.hl-error[data-element-id=calc_fee]").count() == 1
    assert page.locator("#side-panel").get_attribute("data-element") == "calc_fee"
    shot(page, "designer_modeler_problems")
    assert not demo_engine.versions("designer_bad")


def test_modeler_lays_out_a_file_without_di_and_keeps_its_data_pulls(live_server, page, demo_engine):
    """pull_enterprise has no diagram interchange and declares tb:data pulls and tb:authority:
    the modeler lays it out, and a deploy after an edit keeps every extension element."""
    base = demo_engine.versions("pull_enterprise")[0]
    before = demo_engine.definition(base["id"])["manifest"]
    browser_login(page, live_server, "designer")
    page.goto(f"{live_server}/designer/definitions/{base['id']}")
    page.wait_for_selector(".bpmn-view[data-drawn=true]")
    assert page.locator(".bpmn-view .djs-element[data-element-id=accept]").count() == 1
    page.goto(f"{live_server}/designer/modeler/{base['id']}")
    page.wait_for_selector("body[data-modeler-ready=true]")
    assert page.locator("#deploy-result").inner_text() == ""  # no import warnings: nothing would be lost
    page.locator(".djs-element[data-element-id=accept]").first.click()
    page.wait_for_selector("#side-panel[data-element=accept]")
    assert "exchange.enterprise" in page.locator("#tb-data").inner_text()  # its data pull, read-only
    page.fill("#tb-formKey", "accept_form")
    page.press("#tb-formKey", "Tab")
    shot(page, "designer_modeler_auto_layout")
    page.click("#deploy-button")
    page.wait_for_selector("#deployed-link")
    new = demo_engine.versions("pull_enterprise")[0]
    assert new["version"] == base["version"] + 1
    after = demo_engine.definition(new["id"])
    assert after["manifest"]["tasks"]["accept"]["form_key"] == "accept_form"
    for task in ("accept", "approve"):
        assert before["tasks"][task]["pulls"], task
        assert without_lines(before["tasks"][task]["pulls"]) == without_lines(after["manifest"]["tasks"][task]["pulls"])
    assert "tb:authority" in next(x for x in after["sources"].values() if 'id="pull_enterprise"' in x)
    assert "BPMNShape" in next(x for x in after["sources"].values() if 'id="pull_enterprise"' in x)


def test_admin_and_monitor_pages_render(live_server, page, demo_engine, clock):
    """Screenshots of the admin pages and the monitor dashboard (its ECharts chart draws)."""
    from datetime import timedelta

    demo_engine.start("parallel_gateway", data={"applicant": "张三"}, actor="window_clerk")
    demo_engine.start("lanes_review", data={"applicant": "李四"}, actor="window_clerk")
    clock.advance(timedelta(days=30))
    demo_engine.start("parallel_gateway", data={"applicant": "王五"}, actor="window_clerk")
    browser_login(page, live_server, "admin")
    for tab in ("users", "departments", "groups", "tokens", "audit"):
        page.goto(f"{live_server}/admin/{tab}")
        assert page.locator("#admin-tabs a.active").count() == 1
        shot(page, f"admin_{tab}")
    page.goto(f"{live_server}/admin/tokens")
    page.fill("#issue-token input[name=name]", "一网通办门户")
    page.click("#issue-token button[type=submit]")
    assert page.locator("#token-secret").inner_text().startswith("tb_")
    shot(page, "admin_token_issued")
    page.goto(f"{live_server}/monitor/")
    page.wait_for_selector("#dept-chart[data-ready=true] canvas")
    assert int(page.locator("#totals [data-state=overdue] b").inner_text()) >= 2
    assert page.locator("#overdue tr.overdue").count() >= 2
    shot(page, "monitor")
