"""一业一证 · 便利店 in a real browser (Debian's chromium via Playwright): the applicant's case arrives;
the window clerk claims it in the inbox and accepts it; the market clerk approves on the task page;
the licence page and the public verification page show the comprehensive licence.
Screenshots go to test-output/screenshots/convenience-*.png."""

from __future__ import annotations

import pytest

from tests.exchange_fixtures import configure_exchange
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture
from tests.test_process_convenience_store import PROCESS, application, eligible
from tests.web_support import shot


@pytest.fixture
def store_engine(demo_engine, exchange, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the browser story runs on SQLite; the API tests cover PostgreSQL")
    configure_exchange(demo_engine, exchange)
    demo_engine.deploy_paths([PROCESS])
    yield demo_engine
    demo_engine.connector_pool.close()


def test_window_accepts_in_the_inbox_market_approves_and_the_licence_verifies(store_engine, live_server, context_for,
                                                                             browser):
    eng = store_engine
    [ent] = eligible(1, offset=60)
    iid = eng.start("convenience_store", application(ent, sells_food=True, sells_alcohol=True),
                    business_key="YYYZ-2026-0001", actor="applicant")["instance_id"]
    [accept] = eng.tasks(instance_id=iid)

    # the window clerk finds the case in the inbox, claims it there and opens it
    window = context_for("window_clerk")
    window.goto(f"{live_server}/")
    row = window.locator(f"#task-{accept['id']}")
    row.wait_for()
    assert "综合窗口受理" in row.inner_text()
    shot(window, "convenience-01-window-inbox")
    row.locator("button.claim").click()
    window.locator(f"#task-{accept['id']} a.button.primary").click()
    window.wait_for_selector("#task-form")
    # the business licence and premises pulled before the window are shown; the ID number is masked
    pulled = window.inner_text("#step-data")
    assert ent["enterprise_name"] in pulled and ent["legal_rep_id"] not in pulled
    window.fill("#input-accept_opinion", "材料齐全，予以受理")
    window.check("input[name=decision][value=accept]")
    shot(window, "convenience-02-window-accepts")
    window.click("#submit-button")
    window.wait_for_selector(".flash")
    assert [t["bpmn_id"] for t in eng.tasks(instance_id=iid)] == ["market_review"]

    # the market clerk approves on the task page
    [review] = eng.tasks(instance_id=iid)
    market = context_for("market_clerk")
    market.goto(f"{live_server}/tasks/{review['id']}")
    market.click("#claim-button")
    market.wait_for_selector("#task-form")
    market.select_option("#input-market_decision", "approve")
    market.fill("#input-market_opinion", "经营场所和设施符合食品经营条件，准予许可")
    shot(market, "convenience-03-market-approves")
    market.click("#submit-button")
    market.wait_for_selector(".flash")
    data = eng.show(iid)["data"]
    assert data["outcome"] == "issued" and data["licence_items"] == ["食品经营许可"]

    # the licence page (signed in) and the public verification page (no sign-in) show the licence
    [lic] = eng.licences(instance_id=iid)
    market.goto(f"{live_server}/licences/{lic['licence_no']}")
    body = market.inner_text("body")
    assert lic["licence_no"] in body and ent["enterprise_name"] in body and "食品经营许可" in body
    shot(market, "convenience-04-licence")
    public = browser.new_context(viewport={"width": 1000, "height": 900}, locale="zh-CN")
    try:
        page = public.new_page()
        page.goto(f"{live_server}/verify/{lic['licence_no']}?c={lic['verify_code']}")
        text = page.inner_text("body")
        assert "有效" in text and ent["enterprise_name"] in text and "行业综合许可证（便利店）" in text
        shot(page, "convenience-05-verify")
    finally:
        public.close()
