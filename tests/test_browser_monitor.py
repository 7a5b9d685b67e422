"""The monitor (电子监察) in a real browser (Debian's chromium via Playwright): the dashboard with
its charts drawn (canvas), the heat map overlays on the process diagram, and a clerk asking for
an extension that the leader approves. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import re

import pytest

from tests.test_web_monitor import build_scenario
from tests.web_support import browser_login, shot


@pytest.fixture
def scenario(demo_engine, clock):
    return build_scenario(demo_engine, clock)


def test_monitor_sees_charts_and_the_heat_map(scenario, live_server, page):
    browser_login(page, live_server, "monitor")
    page.goto(f"{live_server}/monitor/")
    page.wait_for_selector("#trend-chart[data-ready=true] canvas")
    page.wait_for_selector("#dept-chart[data-ready=true] canvas")
    assert page.inner_text('#sla-totals [data-clock=steps][data-state=red] b') == "2"
    assert page.inner_text('#sla-totals [data-clock=steps][data-state=yellow] b') == "1"
    page.wait_for_selector("#heatmap[data-rendered]")
    assert page.get_attribute("#heatmap", "data-rendered") == "heatmap", page.inner_text("#heatmap")
    assert page.input_value("#heatmap-process") == "mon_licence"
    overlays = page.eval_on_selector_all(".sla-heat", "els => els.map((e) => [e.dataset.step, e.dataset.avg])")
    assert sorted(overlays) == [["check", "6"], ["decide", "—"]]
    assert "平均 6h" in page.inner_text('.sla-heat[data-step=check]')
    assert "超期在办 1" in page.inner_text('.sla-heat[data-step=decide]')
    # the overlay sits on the task's shape
    box = page.locator(".sla-heat[data-step=check]").bounding_box()
    shape = page.locator("#heatmap [data-element-id=check] .djs-visual > rect").bounding_box()
    centre = lambda b: (b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)  # noqa: E731
    (bx, by), (sx, sy) = centre(box), centre(shape)
    assert abs(bx - sx) < 6 and abs(by - sy) < 6, (box, shape)
    page.locator("#heatmap-card").scroll_into_view_if_needed()
    shot(page, "monitor-01-dashboard")

    # another process: its overdue step is the only overlay
    page.select_option("#heatmap-process", "mon_market")
    page.wait_for_function("() => document.querySelector('.sla-heat[data-step=inspect]') !== null")
    assert page.eval_on_selector_all(".sla-heat", "els => els.map((e) => e.dataset.step)") == ["inspect"]
    shot(page, "monitor-02-heatmap-market")

    # the exports are links the browser downloads
    with page.expect_download() as dl:
        page.click("#export-overdue a:has-text('xlsx')")
    assert dl.value.suggested_filename.endswith(".xlsx")

    # in English
    page.goto(f"{live_server}/monitor/?lang=en")
    page.wait_for_selector("#trend-chart[data-ready=true] canvas")
    page.wait_for_selector("#heatmap[data-rendered=heatmap] .sla-heat")
    assert "Overdue steps" in page.inner_text("#sla-totals")
    assert "avg 6h" in page.inner_text(".sla-heat[data-step=check]")
    shot(page, "monitor-05-dashboard-en")


def test_clerk_requests_an_extension_and_the_leader_approves(scenario, live_server, page, demo_engine):
    task_id = scenario["a_check"]["id"]
    browser_login(page, live_server, "window_clerk")
    page.goto(f"{live_server}/tasks/{task_id}")
    assert page.inner_text(f"#sla-state-task-{task_id}") == "预警"
    assert page.inner_text("#sla-state-instance") == "正常"
    page.click("#sla-box details.sla-extend summary >> nth=-1")
    form = page.locator("form.extension-form input[name=task_id]").locator("xpath=..")
    form.locator("input[name=days]").fill("2")
    form.locator("input[name=reason]").fill("需要现场勘验")
    shot(page, "monitor-03-extension-request")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf".*/tasks/{task_id}$"))
    assert "延期申请已提交" in page.inner_text("main")
    [ext] = demo_engine.extensions()

    page.goto("about:blank")  # no request of the old session still in flight
    page.context.clear_cookies()
    browser_login(page, live_server, "leader")
    page.click("#nav-extensions")
    page.wait_for_selector(f"#decide-form-{ext['id']}")
    shot(page, "monitor-04-extensions")
    page.click(f"#decide-form-{ext['id']} button[value=approve]")
    page.wait_for_selector("#no-extensions")
    assert "已批准延期" in page.inner_text("main")
    assert demo_engine.sla_status(scenario["a"])["tasks"][0]["extended"] == 2
